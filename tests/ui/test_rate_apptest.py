"""AppTest flows through app.py: click widgets by key, then compare the stored rows."""

from __future__ import annotations

import gc
import os

import pytest

from prefstore import assignment, store
from prefstore.errors import AccessDenied
from tests.ui.conftest import REPO, app_test, notices, open_box, rendered
from ui.common import Keys

K = Keys.item


def make_project(db, name="p", kind="pairwise", n_items=3, n_responses=2, gold=None, **settings):
    project = store.create_project(db, name, kind, {"gold_rate": 0.0, **settings})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"response {i}.{k}", "system": f"sys{k}"}
                       for k in range(n_responses)],
         "gold": gold}
        for i in range(n_items)])
    return project


def rater_with_token(db, name="ann", role="rater"):
    """A rater with a link, assigned to every project that exists so far."""
    rater, token = store.create_rater(db, name, role=role)
    for project in store.list_projects(db):
        store.assign_rater(db, rater["id"], project["id"])
    return rater, token


def served(db, project, rater):
    """Return the rater's open claim (claim_next resumes it without a new one)."""
    return assignment.next_item(db, project["id"], rater["id"])


def stored(db, rater, keys=("item_id", "outcome", "choice", "ranking", "strength",
                            "display_order", "aspects", "rationale", "reason_tags", "edited",
                            "metadata", "submission_id")):
    return [{k: row[k] for k in keys} for row in store.list_judgments(db, rater_id=rater["id"])]


def errors(at) -> list[str]:
    return [rendered(e.value) for e in at.error]


def test_pairwise_with_strength_rationale_and_edit(app_db):
    project = make_project(app_db, strength_scale=True, aspects=["helpfulness"],
                           reason_tags=["clearer", "safer"], rationale_required=True,
                           rationale_min_chars=10, edits_allowed=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    assert not at.exception
    claim = served(app_db, project, rater)
    aid, order = claim["id"], claim["display_order"]
    at.button(key=K(Keys.STRENGTH_STEP, aid, 5)).click().run()
    original = f"response {claim['item_id'] - 1}.{order[1]}"
    open_box(at, Keys.EDIT_OPEN)
    edit = at.text_area(key=K(Keys.EDIT, aid, 1))
    assert edit.value == original  # pre-filled with the chosen response
    edit.input(original + " Now with a source.")
    at.segmented_control(key=K(Keys.ASPECT, aid, "helpfulness")).set_value(4)
    at.text_area(key=K(Keys.RATIONALE, aid)).input("B cites its source.")
    at.checkbox(key=K(Keys.TAG, aid, 1)).check()
    at.button(key=K(Keys.SUBMIT, aid)).click().run()

    assert not at.exception and errors(at) == []
    assert stored(app_db, rater) == [{
        "item_id": claim["item_id"], "outcome": "choice", "choice": order[1], "ranking": None,
        "strength": 2, "display_order": order, "aspects": {"helpfulness": 4},
        "rationale": "B cites its source.", "reason_tags": ["safer"],
        "edited": original + " Now with a source.", "metadata": {},
        "submission_id": f"a{aid}"}]
    assert store.list_judgments(app_db, rater_id=rater["id"])[0]["time_ms"] > 0
    # The next item is served at once, with fresh fields.
    following = served(app_db, project, rater)
    assert following["id"] != aid
    assert at.text_area(key=K(Keys.RATIONALE, following["id"])).value == ""
    assert at.session_state[Keys.EDIT_OPEN] is False  # its improve box starts closed
    assert notices(at) == [":material/check: Saved: B clearly better"]
    assert not at.toast  # a line on the page, not a toast: cheaper in the rater's browser


def test_unchanged_edit_is_not_stored_and_scale_tie_has_strength_zero(app_db):
    project = make_project(app_db, strength_scale=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    at.button(key=K(Keys.STRENGTH_STEP, claim["id"], 2)).click().run()
    at.button(key=K(Keys.SUBMIT, claim["id"])).click().run()
    second = served(app_db, project, rater)
    at.button(key=K(Keys.STRENGTH_STEP, second["id"], 3)).click().run()
    assert [t.key for t in at.text_area] == [K(Keys.RATIONALE, second["id"])]  # no edit box
    at.button(key=K(Keys.SUBMIT, second["id"])).click().run()
    rows = stored(app_db, rater, keys=("outcome", "choice", "strength", "edited"))
    assert rows == [
        {"outcome": "choice", "choice": claim["display_order"][0], "strength": 1, "edited": None},
        {"outcome": "tie", "choice": None, "strength": 0, "edited": None}]


def test_submit_without_a_scale_choice_is_refused(app_db):
    project = make_project(app_db, strength_scale=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    at.button(key=K(Keys.SUBMIT, claim["id"])).click().run()
    assert errors(at) == ["Not saved: pick how much better one response is (or Tie) first."]
    assert store.count_judgments(app_db) == 0


def test_tie_and_both_bad(app_db):
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    at.button(key=K(Keys.TIE, first["id"])).click().run()
    second = served(app_db, project, rater)
    at.button(key=K(Keys.BOTH_BAD, second["id"])).click().run()
    assert not at.exception
    assert stored(app_db, rater, keys=("item_id", "outcome", "choice", "strength",
                                      "display_order", "submission_id")) == [
        {"item_id": first["item_id"], "outcome": "tie", "choice": None, "strength": None,
         "display_order": first["display_order"], "submission_id": f"a{first['id']}"},
        {"item_id": second["item_id"], "outcome": "both_bad", "choice": None, "strength": None,
         "display_order": second["display_order"], "submission_id": f"a{second['id']}"}]


def test_missing_required_rationale_blocks_the_submit(app_db):
    project = make_project(app_db, strength_scale=False, rationale_required=True,
                           rationale_min_chars=20)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    aid = served(app_db, project, rater)["id"]
    at.button(key=K(Keys.CHOOSE_A, aid)).click().run()
    assert errors(at) == ["Not saved: a rationale is required: say briefly why "
                          "(at least 20 characters)."]
    assert store.count_judgments(app_db) == 0
    at.text_area(key=K(Keys.RATIONALE, aid)).input("too short")
    at.button(key=K(Keys.CHOOSE_A, aid)).click().run()
    assert errors(at) == ["Not saved: the rationale must have at least 20 characters, it has 9."]
    assert store.count_judgments(app_db) == 0
    assert served(app_db, project, rater)["id"] == aid  # still the same item
    at.text_area(key=K(Keys.RATIONALE, aid)).input("A answers the question asked.")
    at.button(key=K(Keys.CHOOSE_A, aid)).click().run()
    assert errors(at) == []
    assert stored(app_db, rater, keys=("outcome", "rationale")) == [
        {"outcome": "choice", "rationale": "A answers the question asked."}]


def test_edit_of_the_other_response_blocks_the_submit(app_db):
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    aid = served(app_db, project, rater)["id"]
    open_box(at, Keys.EDIT_OPEN)
    at.segmented_control(key=K(Keys.EDIT_TARGET, aid)).set_value("B").run()
    at.text_area(key=K(Keys.EDIT, aid, 1)).input("a better B")
    at.button(key=K(Keys.CHOOSE_A, aid)).click().run()
    assert errors(at) == ["Not saved: you improved Response B but chose Response A; improve "
                          "the chosen response instead."]
    assert store.count_judgments(app_db) == 0


def test_an_edit_outlives_folding_its_box(app_db):
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    aid, order = claim["id"], claim["display_order"]
    # Closed, the box builds no widgets.
    assert not [t for t in at.text_area if t.key.startswith(K(Keys.EDIT, aid, ""))]
    assert not [c for c in at.segmented_control if c.key == K(Keys.EDIT_TARGET, aid)]
    open_box(at, Keys.EDIT_OPEN)
    at.segmented_control(key=K(Keys.EDIT_TARGET, aid)).set_value("B").run()
    original = f"response 0.{order[1]}"
    at.text_area(key=K(Keys.EDIT, aid, 1)).input(original + " with a source")
    at.session_state[Keys.EDIT_OPEN] = False  # folded away
    at.run()
    assert not [t for t in at.text_area if t.key.startswith(K(Keys.EDIT, aid, ""))]
    at.run()  # a run more: Streamlit has forgotten the widgets by now
    open_box(at, Keys.EDIT_OPEN)  # opened again: the fields as the rater left them
    assert at.segmented_control(key=K(Keys.EDIT_TARGET, aid)).value == "B"
    assert at.text_area(key=K(Keys.EDIT, aid, 1)).value == original + " with a source"
    at.session_state[Keys.EDIT_OPEN] = False
    at.run()
    at.button(key=K(Keys.CHOOSE_B, aid)).click().run()  # submitted with the box folded
    assert not at.exception and errors(at) == []
    assert stored(app_db, rater, keys=("choice", "edited")) == [
        {"choice": order[1], "edited": original + " with a source"}]


def test_skip_and_flag_are_recorded(app_db):
    project = make_project(app_db)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    # The box's widgets exist only while it is open.
    assert not [w for w in at.text_input if w.key == K(Keys.SKIP_REASON, first["id"])]
    open_box(at, Keys.SKIP_OPEN)
    at.text_input(key=K(Keys.SKIP_REASON, first["id"])).input("not my field")
    at.button(key=K(Keys.SKIP, first["id"])).click().run()
    second = served(app_db, project, rater)
    # A new item's box starts closed.
    assert at.session_state[Keys.SKIP_OPEN] is False
    assert not [w for w in at.text_input if w.key == K(Keys.SKIP_REASON, second["id"])]
    open_box(at, Keys.SKIP_OPEN)
    at.button(key=K(Keys.FLAG, second["id"])).click().run()
    assert "Choose what is wrong with the item first." in errors(at)
    at.selectbox(key=K(Keys.FLAG_REASON, second["id"])).select("broken")
    at.button(key=K(Keys.FLAG, second["id"])).click().run()
    assert not at.exception
    rows = [store.get_assignment(app_db, a["id"]) for a in (first, second)]
    assert [(r["item_id"], r["status"], r["reason"]) for r in rows] == [
        (first["item_id"], "skipped", "not my field"), (second["item_id"], "flagged", "broken")]
    assert store.count_judgments(app_db) == 0
    assert store.rater_progress(app_db, project["id"], rater["id"])["skipped"] == 2


def test_flag_as_other_needs_a_note(app_db):
    project = make_project(app_db)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    open_box(at, Keys.SKIP_OPEN)
    at.selectbox(key=K(Keys.FLAG_REASON, claim["id"])).select("other").run()
    at.button(key=K(Keys.FLAG, claim["id"])).click().run()
    assert errors(at) == ['Not flagged: say what is wrong with the item when you choose '
                          '"other".']
    assert store.get_assignment(app_db, claim["id"])["status"] == "claimed"
    at.text_input(key=K(Keys.FLAG_NOTE, claim["id"])).input("  the prompt is\ncut off ")
    at.button(key=K(Keys.FLAG, claim["id"])).click().run()
    row = store.get_assignment(app_db, claim["id"])
    assert (row["status"], row["reason"]) == ("flagged", "other: the prompt is cut off")


def test_skip_and_flag_fields_outlive_folding_their_box(app_db):
    project = make_project(app_db)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    aid = claim["id"]
    open_box(at, Keys.SKIP_OPEN)
    at.text_input(key=K(Keys.SKIP_REASON, aid)).input("not my field")
    at.selectbox(key=K(Keys.FLAG_REASON, aid)).select("other").run()
    at.text_input(key=K(Keys.FLAG_NOTE, aid)).input("the prompt is cut off")
    at.session_state[Keys.SKIP_OPEN] = False  # folded away
    at.run()
    assert not [w for w in at.text_input if w.key == K(Keys.SKIP_REASON, aid)]
    at.run()  # a run more: Streamlit has forgotten the widgets by now
    open_box(at, Keys.SKIP_OPEN)  # opened again: the fields as the rater left them
    assert at.text_input(key=K(Keys.SKIP_REASON, aid)).value == "not my field"
    assert at.selectbox(key=K(Keys.FLAG_REASON, aid)).value == "other"
    assert at.text_input(key=K(Keys.FLAG_NOTE, aid)).value == "the prompt is cut off"
    at.button(key=K(Keys.FLAG, aid)).click().run()
    assert not at.exception and errors(at) == []
    row = store.get_assignment(app_db, aid)
    assert (row["status"], row["reason"]) == ("flagged", "other: the prompt is cut off")


def test_double_submit_stores_one_row(app_db):
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    button_key = K(Keys.CHOOSE_B, claim["id"])
    at.button(key=button_key).click().run()
    at.run()  # a plain rerun (a refresh) stores nothing more
    # A second click on the same served item cannot land: its button is gone,
    # and the next item's buttons have other keys.
    assert button_key not in [b.key for b in at.button]
    # The same submission reaching the app_db twice is a no-op.
    again = assignment.submit(app_db, claim, rater["id"],
                              assignment.label_for_position(claim["display_order"], 1))
    assert again[1] is False
    assert stored(app_db, rater, keys=("item_id", "choice", "submission_id")) == [
        {"item_id": claim["item_id"], "choice": claim["display_order"][1],
         "submission_id": f"a{claim['id']}"}]


def test_slate_best_of_k(app_db):
    project = make_project(app_db, "s", "slate", n_items=2, n_responses=4, ranking_mode="best")
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    assert [b.key for b in at.button][:5] == [K(Keys.BEST, claim["id"], p) for p in range(4)] + [
        K(Keys.BOTH_BAD, claim["id"])]
    at.button(key=K(Keys.BEST, claim["id"], 2)).click().run()
    assert not at.exception
    assert stored(app_db, rater, keys=("outcome", "choice", "ranking", "display_order")) == [
        {"outcome": "choice", "choice": claim["display_order"][2], "ranking": None,
         "display_order": claim["display_order"]}]


def test_slate_full_ranking_with_rank_selectors(app_db):
    project = make_project(app_db, "s", "slate", n_items=2, n_responses=3, ranking_mode="full",
                           reason_tags=["concise"])
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    aid, order = claim["id"], claim["display_order"]
    at.toggle(key=Keys.DRAG).set_value(False).run()
    for p, rank in enumerate([1, 1, 3]):
        at.selectbox(key=K(Keys.RANK, aid, p)).select(rank)
    at.button(key=K(Keys.SUBMIT, aid)).click().run()
    assert errors(at) == ["Not saved: each rank 1..3 must be used exactly once; repeated: 1; "
                          "unused: 2."]
    assert store.count_judgments(app_db) == 0
    at.selectbox(key=K(Keys.RANK, aid, 0)).select(2)
    at.checkbox(key=K(Keys.TAG, aid, 0)).check()
    at.button(key=K(Keys.SUBMIT, aid)).click().run()
    assert not at.exception and errors(at) == []
    # Ranks by displayed position: 2, 1, 3 -> best first: positions 1, 0, 2.
    ranking = [order[1], order[0], order[2]]
    assert stored(app_db, rater, keys=("outcome", "choice", "ranking", "display_order",
                                      "reason_tags", "metadata")) == [
        {"outcome": "choice", "choice": ranking[0], "ranking": ranking, "display_order": order,
         "reason_tags": ["concise"], "metadata": {"ranking_input": "select"}}]
    # The next slate keeps the rank selectors: the choice is the rater's, not the item's.
    following = served(app_db, project, rater)
    assert at.toggle(key=Keys.DRAG).value is False
    assert [s.key for s in at.selectbox if s.key.startswith(K(Keys.RANK, following["id"], ""))
            ] == [K(Keys.RANK, following["id"], p) for p in range(3)]


def test_full_ranking_edit_box_follows_the_top_response_and_previews_the_edit(app_db):
    project = make_project(app_db, "s", "slate", n_items=1, n_responses=3, ranking_mode="full",
                           edits_allowed=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    aid, order = claim["id"], claim["display_order"]
    at.toggle(key=Keys.DRAG).set_value(False).run()
    for p, rank in enumerate([3, 1, 2]):  # Response 2 (position 1) is ranked first
        at.selectbox(key=K(Keys.RANK, aid, p)).select(rank)
    open_box(at, Keys.EDIT_OPEN)
    assert [t.key for t in at.text_area if t.key.startswith(K(Keys.EDIT, aid, ""))] == [
        K(Keys.EDIT, aid, 1)]
    original = f"response 0.{order[1]}"
    at.text_area(key=K(Keys.EDIT, aid, 1)).input(original + " **Sourced** ![x](http://203.0.113.9/p.png)")
    at.run()
    preview = [m.value for m in at.markdown if "Sourced" in m.value]
    # Rendered as the rater's own markdown, with the image made an inert link.
    assert preview == [original + " **Sourced** \\![x](http://203.0.113.9/p.png)"]
    at.button(key=K(Keys.SUBMIT, aid)).click().run()
    assert not at.exception and errors(at) == []
    assert stored(app_db, rater, keys=("ranking", "edited")) == [
        {"ranking": [order[1], order[2], order[0]],
         "edited": original + " **Sourced** ![x](http://203.0.113.9/p.png)"}]


def test_rater_token_cannot_reach_admin_pages(app_db):
    make_project(app_db)
    _, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    assert not at.exception
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/dashboard.py")
    # The page script run on its own (a deep link on a fresh server) runs app.py
    # around itself: the rater gets the Rate page.
    page = app_test(str(REPO / "pages" / "dashboard.py"), token=token).run()
    assert not page.exception and errors(page) == []
    assert [t.value for t in page.title] == ["p"] and not page.metric  # the project rated


def test_wrong_token_is_refused_like_a_missing_one(app_db, monkeypatch):
    make_project(app_db)
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", "the-admin-token")
    wrong = app_test(token="not-a-token").run()
    missing = app_test().run()
    assert errors(wrong) == errors(missing) == [
        "Access denied: this link is not valid; ask your project admin for a new one."]
    assert not wrong.button and not missing.button


def test_admin_token_from_secrets(app_db):
    make_project(app_db)
    at = app_test(token="s3cret")
    at.secrets["admin_token"] = "s3cret"
    at.run()
    assert not at.exception and errors(at) == []
    at.switch_page("pages/dashboard.py").run()
    assert [t.value for t in at.title] == ["Dashboard"]


def test_local_mode_type_a_name_and_rate(app_db):
    project = make_project(app_db, strength_scale=False)
    at = app_test().run()
    assert any("Local mode" in i.value for i in at.info)
    at.text_input(key=Keys.LOCAL_NAME_INPUT).input("Ada Lovelace")
    at.button(key=Keys.LOCAL_NAME_GO).click().run()  # a form: Enter in the field does this
    rater = store.get_rater(app_db, "Ada Lovelace")
    claim = served(app_db, project, rater)
    at.button(key=K(Keys.CHOOSE_A, claim["id"])).click().run()
    assert not at.exception
    rows = store.list_judgments(app_db)
    assert [(r["rater_id"], r["item_id"], r["choice"]) for r in rows] == [
        (rater["id"], claim["item_id"], claim["display_order"][0])]
    assert at.query_params["name"] == "Ada Lovelace"  # a refresh keeps the rater


def test_gold_correctness_is_stored(app_db):
    project = make_project(app_db, strength_scale=False, gold={"choice": 1}, gold_rate=0.5)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    at.button(key=K(Keys.CHOOSE_A, claim["id"])).click().run()
    correct = claim["display_order"][0] == 1
    assert stored(app_db, rater, keys=("metadata",)) == [{"metadata": {"gold_correct": correct}}]
    assert assignment.gold_accuracy(app_db, project["id"]) == {"ann": float(correct)}


def test_gold_feedback_tells_the_expected_answer_when_the_project_asks(app_db):
    project = make_project(app_db, n_items=2, strength_scale=False, gold={"choice": 1},
                           gold_rate=1.0, gold_feedback=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    expected = "AB"[first["display_order"].index(1)]
    # The first answer matches the gold (response 1), the second does not.
    at.button(key=K(Keys.CHOOSE_A if expected == "A" else Keys.CHOOSE_B, first["id"])).click()
    at.run()
    assert notices(at) == [
        f":material/check: Saved: Response {expected}. Gold item: you matched the expected "
        f"answer (Response {expected})."]
    second = served(app_db, project, rater)
    expected = "AB"[second["display_order"].index(1)]
    at.button(key=K(Keys.TIE, second["id"])).click().run()
    assert notices(at) == [
        f":material/check: Saved: Tie. Gold item: the expected answer was Response {expected}; "
        "you chose Tie."]
    assert stored(app_db, rater, keys=("metadata",)) == [
        {"metadata": {"gold_correct": True}}, {"metadata": {"gold_correct": False}}]


def test_no_gold_feedback_by_default(app_db):
    make_project(app_db, n_items=1, strength_scale=False, gold={"choice": 1}, gold_rate=1.0)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, store.get_project(app_db, "p"), rater)
    at.button(key=K(Keys.TIE, claim["id"])).click().run()
    assert notices(at) == [":material/check: Saved: Tie"]


def test_all_done_message(app_db):
    project = make_project(app_db, n_items=1, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    at.button(key=K(Keys.TIE, served(app_db, project, rater)["id"])).click().run()
    assert [s.value for s in at.success] == [
        "All done, thank you! You judged 1 item and skipped or flagged 0."]


PAGES = ["pages/rate.py", "pages/dashboard.py"] + (
    ["pages/admin.py"] if (REPO / "pages" / "admin.py").exists() else [])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_for_an_admin(app_db, monkeypatch, page):
    make_project(app_db)
    make_project(app_db, "s", "slate", n_responses=3, ranking_mode="full")
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", "admin-secret")
    at = app_test(token="admin-secret").run()
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception
    assert errors(at) == []


def test_dashboard_empty_state(app_db):
    make_project(app_db)
    at = app_test().run()
    at.switch_page("pages/dashboard.py").run()
    assert [i.value for i in at.info][-1] == "No judgments yet — share rater links from Admin."



# --------------------------------------------------------------------------
# A team's everyday path (issue: links, progress, rankings, one bad item)


def progress_text(at) -> str:
    return at.get("progress")[0].text


def test_a_rater_sees_only_the_projects_assigned_to_them(app_db):
    make_project(app_db, "first")
    second = make_project(app_db, "second")
    rater, token = store.create_rater(app_db, "ann")
    at = app_test(token=token).run()
    assert [i.value for i in at.info] == [
        "No projects for you yet: ask your project admin to add you to one."]
    store.assign_rater(app_db, rater["id"], second["id"])
    at = app_test(token=token)
    at.query_params["project"] = "first"  # a link to a project that is not theirs
    at.run()
    assert not at.exception
    assert at.title[0].value == "second"
    assert [s.key for s in at.selectbox if s.key == Keys.PROJECT] == []  # one project: no picker
    assert served(app_db, second, rater) is not None
    with pytest.raises(AccessDenied, match="not assigned to this project"):
        assignment.next_item(app_db, 1, rater["id"], assigned_only=True)


def test_a_link_naming_the_project_opens_it(app_db):
    make_project(app_db, "first")
    second = make_project(app_db, "second")
    rater, token = rater_with_token(app_db)
    at = app_test(token=token)
    at.query_params["project"] = "second"
    at.run()
    assert not at.exception and at.title[0].value == "second"
    assert at.selectbox(key=Keys.PROJECT).value == "second"
    assert served(app_db, second, rater)["item"]["prompt"] == "prompt 0"


def test_progress_counts_k_of_n_and_n_does_not_grow(app_db):
    """Regression: "1 of 20", "2 of 21" ... in a 20-item project."""
    project = make_project(app_db, n_items=4, strength_scale=False, edits_allowed=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    seen = [progress_text(at)]
    for _ in range(3):
        claim = served(app_db, project, rater)
        at.button(key=K(Keys.CHOOSE_A, claim["id"])).click().run()
        seen.append(progress_text(at))
    claim = served(app_db, project, rater)
    open_box(at, Keys.SKIP_OPEN)
    at.button(key=K(Keys.SKIP, claim["id"])).click().run()
    seen.append(progress_text(at))
    assert seen == ["0 of 4 done", "1 of 4 done", "2 of 4 done", "3 of 4 done", "4 of 4 done"]
    assert at.get("progress")[0].value == 100
    assert [s.value for s in at.success] == [
        "All done, thank you! You judged 3 items and skipped or flagged 1."]
    assert [c.value for c in at.caption][:1] == ["Rating as ann"]


def test_a_complete_project_says_nothing_is_left(app_db):
    project = make_project(app_db, n_items=1, raters_per_item=1)
    bob, _ = rater_with_token(app_db, "bob")
    claim = served(app_db, project, bob)
    store.submit_judgment(app_db, item_id=claim["item_id"], rater_id=bob["id"],
                          submission_id="b", choice=0, assignment_id=claim["id"])
    _, token = rater_with_token(app_db, "ann")
    at = app_test(token=token).run()
    assert progress_text(at) == "0 of 0 done"
    assert [i.value for i in at.info] == [
        "Nothing left to rate here: every item has all the judgments it needs."]


def test_an_untouched_ranking_is_not_a_ranking(app_db):
    """Regression: pressing S on a full-ranking slate stored the display order as "drag"."""
    project = make_project(app_db, "s", "slate", n_items=2, n_responses=3, ranking_mode="full")
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    aid, order = claim["id"], claim["display_order"]
    at.button(key=K(Keys.SUBMIT, aid)).click().run()
    assert errors(at) == [
        'Not saved: drag the responses into your order first, or tick "Keep this order" if '
        "the order shown is your ranking."]
    assert store.count_judgments(app_db) == 0
    at.checkbox(key=K(Keys.KEEP, aid)).check()
    at.button(key=K(Keys.SUBMIT, aid)).click().run()
    assert not at.exception and errors(at) == []
    assert stored(app_db, rater, keys=("ranking", "metadata")) == [
        {"ranking": order, "metadata": {"ranking_input": "kept"}}]
    assert project["id"] == claim["item"]["project_id"]


def test_an_item_the_page_cannot_show_is_flagged_and_the_next_one_served(app_db, monkeypatch):
    project = make_project(app_db, n_items=2)
    rater, token = rater_with_token(app_db)
    from prefstore import text as inert

    real = inert.inert_markdown

    def fragile(text):
        if text == "prompt 0":
            raise RecursionError("maximum recursion depth exceeded")
        return real(text)

    monkeypatch.setattr(inert, "inert_markdown", fragile)
    at = app_test(token=token).run()
    assert not at.exception
    assert notices(at) == [
        ":material/check: That item could not be shown, so it was flagged for the admin; here "
        "is the next one"]
    rows = list(app_db.query("SELECT i.external_id, a.status, a.reason FROM assignments a "
                             "JOIN items i ON i.id = a.item_id ORDER BY a.id"))
    assert rows == [{"external_id": "q0", "status": "flagged",
                     "reason": "could not be shown: RecursionError"},
                    {"external_id": "q1", "status": "claimed", "reason": None}]
    assert served(app_db, project, rater)["item"]["external_id"] == "q1"


def test_each_script_run_closes_its_connection(app_db):
    # A run opens the store on its own thread, and the handle sits in a reference cycle:
    # with Streamlit's collection after every run turned off (.streamlit/config.toml),
    # an unclosed handle would hold its file descriptors until a full collection.
    project = make_project(app_db, n_items=12, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    gc.collect()
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(10):
            claim = served(app_db, project, rater)
            at.button(key=K(Keys.CHOOSE_A, claim["id"])).click().run()
        after = len(os.listdir("/proc/self/fd"))
    finally:
        gc.enable()
    assert not at.exception
    assert store.rater_progress(app_db, project["id"], rater["id"])["done"] == 10
    assert after == before




def test_a_queued_line_shows_when_the_page_stops_before_the_item(app_db):
    """What the last click queued (common.flash) shows also when the page stops early:
    here the rater lost their only project between the click's run and this one."""
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    store.unassign_rater(app_db, rater["id"], project["id"])  # meanwhile, by the admin
    at.session_state[Keys.FLASH] = "Saved: Tie"  # as the click's callback queues it
    at.run()
    assert not at.exception
    assert [i.value for i in at.info] == [
        "No projects for you yet: ask your project admin to add you to one."]
    assert notices(at) == [":material/check: Saved: Tie"]
    at.run()
    assert notices(at) == []  # shown once
