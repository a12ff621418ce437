"""AppTest flows through the admin page's Items tab and the Raters tab's quality table."""

from __future__ import annotations

from prefstore import store
from tests.ui.conftest import rendered
from tests.ui.test_admin_apptest import errors, last_audit, open_admin
from ui.common import Keys

B = Keys.browser_item
HOSTILE = "![x](http://203.0.113.9/p.png) <img src=x onerror=alert(1)> **bold**"


def seed(db):
    """A pairwise project of four items, three raters' judgments and one LLM verdict."""
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    ids = store.insert_items(db, project["id"], [
        {"external_id": "q0", "prompt": "Rate 100% sure", "metadata": {"category": "math"},
         "responses": [{"text": "one copy"}, {"text": "no"}]},
        {"external_id": "q1", "prompt": "Rate 100 sure", "metadata": {"category": "math"},
         "responses": [{"text": HOSTILE}, {"text": "camel"}]},
        {"external_id": "q2", "prompt": "HELLO there", "category": "code",
         "responses": [{"text": "x"}, {"text": "Hello back"}]},
        {"external_id": "q3", "prompt": "plain", "responses": [{"text": "a"}, {"text": "b"}]}])
    raters = [store.create_rater(db, n)[0]["id"] for n in ("ann", "bob", "cat")]
    judge = store.create_rater(db, "judge", kind="llm")[0]["id"]
    labels = {ids[0]: [0, 0, 1], ids[1]: [0, 1], ids[2]: [1, 1, 1]}
    rows = [{"item_id": item, "rater_id": rater, "kind": "human", "outcome": "choice",
             "choice": c, "display_order": [0, 1], "time_ms": 2000,
             "submission_id": f"s{item}-{rater}", "created_at": "2026-01-01T00:00:00Z"}
            for item, chosen in labels.items() for rater, c in zip(raters, chosen)]
    rows.append({"item_id": ids[1], "rater_id": judge, "kind": "llm", "outcome": "choice",
                 "choice": 1, "display_order": [0, 1], "submission_id": "llm",
                 "metadata": {"confidence": 0.75, "swap_consistent": True}})
    store.insert_judgments(db, rows)
    return project, ids


def items_tab(at):
    (tab,) = [t for t in at.tabs if t.label == "Items"]
    return tab


def labels(at) -> list[str]:
    """The item expanders' labels, as shown."""
    return [rendered(e.label) for e in items_tab(at).expander]


def gold_of(db, item_id):
    row = db.execute("SELECT is_gold, gold FROM items WHERE id = ?", [item_id]).fetchone()
    return row[0], store.get_item(db, item_id)["gold"]


def test_search_filter_and_order(app_db, monkeypatch):
    project, ids = seed(app_db)
    at = open_admin(monkeypatch)
    assert labels(at) == [
        "q0: Rate 100% sure (3 human, 33% disagree)",
        "q1: Rate 100 sure (2 human, 50% disagree)",
        "q2: HELLO there (3 human, 0% disagree)",
        "q3: plain"]
    assert "Items 1–4 of 4 (page 1 of 1)." in [c.value for c in at.caption]

    at.text_input(key=Keys.ITEMS_SEARCH).input("100%").run()
    assert labels(at) == ["q0: Rate 100% sure (3 human, 33% disagree)"]
    at.text_input(key=Keys.ITEMS_SEARCH).input("hello").run()
    assert labels(at) == ["q2: HELLO there (3 human, 0% disagree)"]
    at.text_input(key=Keys.ITEMS_SEARCH).input("").run()

    at.text_input(key=Keys.ITEMS_META_KEY).input("category")
    at.text_input(key=Keys.ITEMS_META_VALUE).input("math").run()
    assert [label.split(":")[0] for label in labels(at)] == ["q0", "q1"]
    at.selectbox(key=Keys.ITEMS_ORDER).set_value("disagreement").run()
    assert [label.split(":")[0] for label in labels(at)] == ["q1", "q0"]
    at.text_input(key=Keys.ITEMS_META_KEY).input("")
    at.text_input(key=Keys.ITEMS_META_VALUE).input("").run()
    assert [label.split(":")[0] for label in labels(at)] == ["q1", "q0", "q2", "q3"]

    store.save_routing(app_db, project["id"], [{"item_id": ids[2], "decision": "llm"}])
    at.selectbox(key=Keys.ITEMS_ROUTING).set_value("llm").run()
    assert [label.split(":")[0] for label in labels(at)] == ["q2"]
    at.selectbox(key=Keys.ITEMS_ROUTING).set_value("none").run()
    assert [label.split(":")[0] for label in labels(at)] == ["q1", "q0", "q3"]
    at.selectbox(key=Keys.ITEMS_FLAGGED).set_value(True).run()
    assert labels(at) == [] and [i.value for i in at.info] == ["No items match."]
    at.selectbox(key=Keys.ITEMS_FLAGGED).set_value(None)
    at.text_input(key=Keys.ITEMS_META_KEY).input("").run()
    at.text_input(key=Keys.ITEMS_META_VALUE).input("math").run()
    assert errors(at) == ["Cannot search: name the metadata key to filter its value by."]
    assert not at.exception


def test_item_detail_is_inert_and_lists_judgments(app_db, monkeypatch):
    _, ids = seed(app_db)
    at = open_admin(monkeypatch)
    markdown = [m.value for m in at.markdown]
    # The image became a link shown as text; Streamlit escapes the HTML.
    assert "\\![x](http://203.0.113.9/p.png) <img src=x onerror=alert(1)> **bold**" in markdown
    assert HOSTILE not in markdown
    tables = [d.value for d in at.dataframe]
    humans = [t for t in tables if list(t.columns)[:2] == ["rater", "choice"]]
    assert humans[1].to_dict("records") == [
        {"rater": "ann", "choice": "response 0", "strength": None, "aspects": None,
         "rationale": None, "edit": None, "seconds": 2.0, "at": "2026-01-01T00:00:00Z"},
        {"rater": "bob", "choice": "response 1", "strength": None, "aspects": None,
         "rationale": None, "edit": None, "seconds": 2.0, "at": "2026-01-01T00:00:00Z"}]
    (verdicts,) = [t for t in tables if "swap consistent" in t.columns]
    assert verdicts[["llm judge", "choice", "confidence", "swap consistent"]].to_dict(
        "records") == [{"llm judge": "judge", "choice": "response 1", "confidence": 0.75,
                        "swap consistent": True}]
    assert not at.exception and errors(at) == []
    assert ids


def test_mark_change_and_unmark_gold(app_db, monkeypatch):
    project, ids = seed(app_db)
    at = open_admin(monkeypatch)
    at.selectbox(key=B(Keys.ITEM_GOLD_ANSWER, ids[3])).set_value(1)
    at.button(key=B(Keys.ITEM_GOLD_SAVE, ids[3])).click().run()
    assert not at.exception and errors(at) == []
    assert gold_of(app_db, ids[3]) == (1, {"choice": 1})
    assert last_audit(app_db) == {"project_id": project["id"], "actor": "admin",
                                  "action": "mark_gold", "details": {
                                      "item_id": ids[3], "external_id": "q3",
                                      "gold": {"choice": 1}}}
    assert labels(at)[3] == "q3: plain (gold)"
    at.selectbox(key=Keys.ITEMS_GOLD).set_value(True).run()
    assert labels(at) == ["q3: plain (gold)"]

    at.selectbox(key=B(Keys.ITEM_GOLD_ANSWER, ids[3])).set_value("both_bad")
    at.button(key=B(Keys.ITEM_GOLD_SAVE, ids[3])).click().run()
    assert gold_of(app_db, ids[3]) == (1, {"choice": "both_bad"})
    assert last_audit(app_db)["details"]["gold"] == {"choice": "both_bad"}

    at.button(key=B(Keys.ITEM_GOLD_CLEAR, ids[3])).click().run()
    assert not at.exception and errors(at) == []
    assert gold_of(app_db, ids[3]) == (0, None)
    assert last_audit(app_db) == {"project_id": project["id"], "actor": "admin",
                                  "action": "unmark_gold", "details": {
                                      "item_id": ids[3], "external_id": "q3", "gold": None}}
    assert labels(at) == [] and [i.value for i in at.info] == ["No items match."]
    assert [r["action"] for r in store.audit_log(app_db, project["id"])][:3] == [
        "unmark_gold", "mark_gold", "mark_gold"]


def test_slate_gold_ranking_and_a_bad_one(app_db, monkeypatch):
    project = store.create_project(app_db, "s", "slate", {"gold_rate": 0.0})
    (item_id,) = store.insert_items(app_db, project["id"], [
        {"external_id": "s0", "prompt": "p", "responses": [{"text": t} for t in "abc"]}])
    at = open_admin(monkeypatch)
    at.text_input(key=B(Keys.ITEM_GOLD_ANSWER, item_id)).input("2, x").run()
    at.button(key=B(Keys.ITEM_GOLD_SAVE, item_id)).click().run()
    assert errors(at) == ["Not saved: the ranking must list response numbers, got 'x'."]
    at.text_input(key=B(Keys.ITEM_GOLD_ANSWER, item_id)).input("2, 0").run()
    at.button(key=B(Keys.ITEM_GOLD_SAVE, item_id)).click().run()
    assert errors(at) == ['Not saved: gold: "ranking" must be a permutation of 0..2, '
                          "got [2, 0]."]
    assert gold_of(app_db, item_id) == (0, None)
    at.text_input(key=B(Keys.ITEM_GOLD_ANSWER, item_id)).input("2 0 1").run()
    at.button(key=B(Keys.ITEM_GOLD_SAVE, item_id)).click().run()
    assert not at.exception and errors(at) == []
    assert gold_of(app_db, item_id) == (1, {"choice": 2, "ranking": [2, 0, 1]})
    assert last_audit(app_db)["details"] == {"item_id": item_id, "external_id": "s0",
                                             "gold": {"choice": 2, "ranking": [2, 0, 1]}}


def test_quality_table_in_the_raters_tab(app_db, monkeypatch):
    seed(app_db)
    at = open_admin(monkeypatch)
    (table,) = [d.value for d in at.dataframe if "majority_agreement" in d.value.columns]
    assert table[["rater", "judgments", "median_seconds", "majority_n",
                  "majority_agreement", "position_bias"]].to_dict("records") == [
        {"rater": "ann", "judgments": 3, "median_seconds": 2.0, "majority_n": 2,
         "majority_agreement": 0.5, "position_bias": 2 / 3},
        {"rater": "bob", "judgments": 3, "median_seconds": 2.0, "majority_n": 2,
         "majority_agreement": 0.5, "position_bias": 1 / 3},
        {"rater": "cat", "judgments": 2, "median_seconds": 2.0, "majority_n": 2,
         "majority_agreement": 0.5, "position_bias": 0.0}]


def test_a_large_projects_quality_table_waits_to_be_asked_for(app_db, monkeypatch):
    seed(app_db)
    monkeypatch.setattr("ui.item_browser.QUALITY_AUTO_MAX_JUDGMENTS", 8)  # 9 judgments
    at = open_admin(monkeypatch)
    assert not [d for d in at.dataframe if "majority_agreement" in d.value.columns]
    at.toggle(key=Keys.RATER_QUALITY_SHOW).set_value(True).run()
    (table,) = [d.value for d in at.dataframe if "majority_agreement" in d.value.columns]
    assert table["rater"].tolist() == ["ann", "bob", "cat"]


def test_paging_and_a_filter_change_returns_to_page_one(app_db, monkeypatch):
    project = store.create_project(app_db, "p", "pairwise", {"gold_rate": 0.0})
    store.insert_items(app_db, project["id"], [
        {"external_id": f"q{k:02d}", "prompt": f"prompt {k}",
         "responses": [{"text": "a"}, {"text": "b"}]} for k in range(25)])
    at = open_admin(monkeypatch)
    assert len(labels(at)) == 20 and labels(at)[0] == "q00: prompt 0"
    assert "Items 1–20 of 25 (page 1 of 2)." in [c.value for c in at.caption]
    at.number_input(key=Keys.ITEMS_PAGE).set_value(2).run()
    assert labels(at) == [f"q{k}: prompt {k}" for k in range(20, 25)]
    assert "Items 21–25 of 25 (page 2 of 2)." in [c.value for c in at.caption]
    at.number_input(key=Keys.ITEMS_PAGE).set_value(3).run()
    assert labels(at) == [] and [i.value for i in at.info] == ["Page 3 is past the last page (2)."]
    at.text_input(key=Keys.ITEMS_SEARCH).input("prompt 1").run()
    assert at.number_input(key=Keys.ITEMS_PAGE).value == 1
    assert [label.split(":")[0] for label in labels(at)] == [
        "q01", *(f"q{k}" for k in range(10, 20))]
