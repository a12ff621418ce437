"""The admin's item browser in the store: search, filters, disagreement order, detail, gold."""

from __future__ import annotations

import pytest

from prefstore import store
from prefstore.errors import InvalidInput, NotFound

pytestmark = pytest.mark.both_backends

ITEMS = [
    {"external_id": "q0", "prompt": "Rate 100% sure", "metadata": {"category": "math"},
     "responses": [{"text": "one copy"}, {"text": "no"}]},
    {"external_id": "q1", "prompt": "Rate 100 sure", "metadata": {"level": 3},
     "responses": [{"text": "snake_case"}, {"text": "camel"}]},
    {"external_id": "q2", "prompt": "HELLO there", "category": "code",
     "responses": [{"text": "x"}, {"text": "Hello back"}]},
    {"external_id": "q3", "prompt": "plain", "metadata": {"category": "code", "level": "3"},
     "responses": [{"text": "a\\b"}, {"text": "c"}]},
]


def make_project(db):
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    ids = store.insert_items(db, project["id"], [dict(item) for item in ITEMS])
    return project, dict(zip(("q0", "q1", "q2", "q3"), ids))


def found(db, project, **filters) -> list[str]:
    return [row["external_id"] for row in store.search_items(db, project["id"], **filters)["items"]]


def judge(db, item_id, rater_id, label, n, *, kind="human", **extra):
    choice = label if isinstance(label, int) else None
    outcome = "choice" if choice is not None else label
    return store.insert_judgments(db, [{"item_id": item_id, "rater_id": rater_id, "kind": kind,
                                        "outcome": outcome, "choice": choice,
                                        "submission_id": f"s{n}", **extra}])


def test_text_search_is_a_case_insensitive_substring_with_literal_wildcards(db):
    project, _ = make_project(db)
    assert found(db, project, text="100%") == ["q0"]
    assert found(db, project, text="100") == ["q0", "q1"]
    assert found(db, project, text="e_c") == ["q1"]  # "one copy" would match a wildcard _
    assert found(db, project, text="a\\b") == ["q3"]
    assert found(db, project, text="hello") == ["q2"]
    assert found(db, project, text="BACK") == ["q2"]
    assert found(db, project, text="") == ["q0", "q1", "q2", "q3"]
    assert found(db, project, text="%") == ["q0"]
    assert found(db, project, text="nowhere") == []


def test_metadata_filter_compares_as_text_and_knows_the_category_column(db):
    project, _ = make_project(db)
    assert found(db, project, metadata_key="category", metadata_value="math") == ["q0"]
    assert found(db, project, metadata_key="category", metadata_value="code") == ["q2", "q3"]
    assert found(db, project, metadata_key="level", metadata_value="3") == ["q1", "q3"]
    assert found(db, project, metadata_key="level", metadata_value="4") == []
    with pytest.raises(InvalidInput, match="^name the metadata key to filter its value by$"):
        store.search_items(db, project["id"], metadata_value="3")


def test_routing_gold_and_flagged_filters(db):
    project, ids = make_project(db)
    rater, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, project["id"], rater["id"])
    assert claim["item_id"] == ids["q0"]
    store.release_assignment(db, claim["id"], rater["id"], status="skipped", reason="unsure")
    store.save_routing(db, project["id"], [
        {"item_id": ids["q0"], "decision": "human"}, {"item_id": ids["q1"], "decision": "llm"},
        {"item_id": ids["q2"], "decision": "both"}])
    store.set_item_gold(db, project["id"], ids["q3"], choice=1, actor="boss")

    assert found(db, project, routing="llm") == ["q1"]
    assert found(db, project, routing="human") == ["q0"]
    assert found(db, project, routing="none") == ["q3"]
    assert found(db, project, gold=True) == ["q3"]
    assert found(db, project, gold=False) == ["q0", "q1", "q2"]
    assert found(db, project, flagged=True) == ["q0"]
    assert found(db, project, flagged=False) == ["q1", "q2", "q3"]
    assert found(db, project, routing="human", flagged=True, text="100") == ["q0"]
    page = store.search_items(db, project["id"], flagged=True)
    assert {k: page["items"][0][k] for k in ("routing", "flags", "is_gold", "gold")} == {
        "routing": "human", "flags": 1, "is_gold": 0, "gold": None}
    with pytest.raises(InvalidInput, match="^routing must be one of human, llm, both, none, "
                                           "got 'robot'$"):
        store.search_items(db, project["id"], routing="robot")


def test_most_disagreed_first_and_paging(db):
    project, ids = make_project(db)
    ann, bob, cat = (store.create_rater(db, n)[0]["id"] for n in ("ann", "bob", "cat"))
    llm = store.create_rater(db, "judge", kind="llm")[0]["id"]
    judge(db, ids["q0"], ann, 0, 1)
    judge(db, ids["q0"], bob, 0, 2)
    judge(db, ids["q0"], cat, 1, 3)
    judge(db, ids["q1"], ann, 0, 4)
    judge(db, ids["q1"], bob, 1, 5)
    for n, rater in enumerate((ann, bob, cat)):
        judge(db, ids["q2"], rater, "tie", 6 + n)
    judge(db, ids["q2"], llm, 1, 9, kind="llm")  # LLM verdicts do not count

    page = store.search_items(db, project["id"], order="disagreement")
    assert page["total"] == 4
    assert [(r["external_id"], r["disagreement"], r["n_human"]) for r in page["items"]] == [
        ("q1", 0.5, 2), ("q0", pytest.approx(1 / 3), 3), ("q2", 0.0, 3), ("q3", None, 0)]
    first = store.search_items(db, project["id"], order="disagreement", limit=2)
    second = store.search_items(db, project["id"], order="disagreement", limit=2, offset=2)
    assert (first["total"], [r["external_id"] for r in first["items"]]) == (4, ["q1", "q0"])
    assert (second["total"], [r["external_id"] for r in second["items"]]) == (4, ["q2", "q3"])
    narrowed = store.search_items(db, project["id"], text="rate", order="disagreement", limit=1)
    assert (narrowed["total"], [r["external_id"] for r in narrowed["items"]]) == (2, ["q1"])


@pytest.mark.parametrize(("filters", "message"), [
    ({"text": "x" * 1001}, "the search text must have at most 1,000 characters, it has 1,001"),
    ({"text": "a\ud800"}, "the search text must not contain NUL or unpaired surrogate characters"),
    ({"metadata_key": "k\x00"},
     "the metadata key must not contain NUL or unpaired surrogate characters"),
    ({"order": "random"}, "order must be one of id, disagreement, got 'random'"),
    ({"limit": 0}, "limit must be at least 1 and offset at least 0, got 0 and 0"),
])
def test_bad_filters_say_what_is_wrong(db, filters, message):
    project, _ = make_project(db)
    with pytest.raises(InvalidInput) as caught:
        store.search_items(db, project["id"], **filters)
    assert str(caught.value) == message


def test_item_detail_lists_judgments_verdicts_and_flags(db):
    project, ids = make_project(db)
    ann = store.create_rater(db, "ann")[0]["id"]
    bob = store.create_rater(db, "bob")[0]["id"]
    llm = store.create_rater(db, "judge", kind="llm")[0]["id"]
    judge(db, ids["q0"], ann, 1, 1, strength=2, display_order=[1, 0],
          aspects={"helpful": 4}, rationale="**shorter**", reason_tags=["clearer"],
          edited="better text", time_ms=4200, created_at="2026-01-02T03:04:05Z")
    judge(db, ids["q0"], llm, 0, 2, kind="llm", display_order=[0, 1],
          metadata={"confidence": 0.8, "swap_consistent": False, "probs": [0.9, 0.1]},
          created_at="2026-01-02T03:04:06Z")
    claim = store.claim_next(db, project["id"], bob)
    assert claim["item_id"] == ids["q1"]  # fewest human judgments first
    store.release_assignment(db, claim["id"], bob, status="flagged", reason="broken")

    detail = store.item_detail(db, project["id"], ids["q0"])
    assert (detail["external_id"], detail["prompt"], detail["routing"]) == (
        "q0", "Rate 100% sure", None)
    assert [(r["idx"], r["text"]) for r in detail["responses"]] == [(0, "one copy"), (1, "no")]
    ids_ = [r.pop("id") for r in detail["judgments"] + detail["verdicts"]]
    assert len(set(ids_)) == 2
    assert detail["judgments"] == [{
        "rater": "ann", "kind": "human", "outcome": "choice", "choice": 1, "ranking": None,
        "strength": 2, "display_order": [1, 0], "aspects": {"helpful": 4},
        "rationale": "**shorter**", "reason_tags": ["clearer"], "edited": "better text",
        "time_ms": 4200, "created_at": "2026-01-02T03:04:05Z"}]
    assert detail["verdicts"] == [{
        "rater": "judge", "kind": "llm", "outcome": "choice", "choice": 0, "ranking": None,
        "strength": None, "display_order": [0, 1], "aspects": None, "rationale": None,
        "reason_tags": None, "edited": None, "time_ms": None,
        "created_at": "2026-01-02T03:04:06Z", "confidence": 0.8, "swap_consistent": False}]
    assert detail["flags"] == []
    assert [(f["rater"], f["status"], f["reason"])
            for f in store.item_detail(db, project["id"], ids["q1"])["flags"]] == [
        ("bob", "flagged", "broken")]
    other = store.create_project(db, "other", "pairwise")
    with pytest.raises(NotFound, match=f"^item {ids['q0']} is not in project {other['id']}$"):
        store.item_detail(db, other["id"], ids["q0"])


def gold_row(db, item_id):
    item = store.get_item(db, item_id)
    return item["is_gold"], item["gold"]


def audit_rows(db, project_id):
    return [(r["actor"], r["action"], r["details"])
            for r in reversed(store.audit_log(db, project_id)) if "gold" in r["action"]]


def test_mark_and_unmark_gold_with_audit(db):
    project, ids = make_project(db)
    assert store.set_item_gold(db, project["id"], ids["q1"], choice=1, actor="boss") == {
        "choice": 1}
    assert gold_row(db, ids["q1"]) == (1, {"choice": 1})
    assert store.set_item_gold(db, project["id"], ids["q1"], choice="tie", actor="boss") == {
        "choice": "tie"}
    assert gold_row(db, ids["q1"]) == (1, {"choice": "tie"})
    assert store.set_item_gold(db, project["id"], ids["q1"], actor="eve") is None
    assert gold_row(db, ids["q1"]) == (0, None)
    assert audit_rows(db, project["id"]) == [
        ("boss", "mark_gold", {"item_id": ids["q1"], "external_id": "q1", "gold": {"choice": 1}}),
        ("boss", "mark_gold", {"item_id": ids["q1"], "external_id": "q1",
                               "gold": {"choice": "tie"}}),
        ("eve", "unmark_gold", {"item_id": ids["q1"], "external_id": "q1", "gold": None})]


def test_slate_gold_is_a_ranking(db):
    project = store.create_project(db, "s", "slate")
    (item_id,) = store.insert_items(db, project["id"], [
        {"external_id": "s0", "prompt": "p", "responses": [{"text": t} for t in "abc"]}])
    assert store.set_item_gold(db, project["id"], item_id, ranking=[2, 0, 1], actor="boss") == {
        "choice": 2, "ranking": [2, 0, 1]}
    assert gold_row(db, item_id) == (1, {"choice": 2, "ranking": [2, 0, 1]})
    with pytest.raises(InvalidInput) as caught:
        store.set_item_gold(db, project["id"], item_id, choice=1, actor="boss")
    assert str(caught.value) == ("a slate item's gold is a ranking of all 3 responses, best "
                                 "first: got only a choice 1")
    with pytest.raises(InvalidInput) as caught:
        store.set_item_gold(db, project["id"], item_id, ranking=[0, 0, 1], actor="boss")
    assert str(caught.value) == 'gold: "ranking" must be a permutation of 0..2, got [0, 0, 1]'
    assert gold_row(db, item_id) == (1, {"choice": 2, "ranking": [2, 0, 1]})


@pytest.mark.parametrize(("answer", "message"), [
    ({"choice": 2}, 'gold: "choice" must be a response index 0..1, "tie" or "both_bad", got 2'),
    ({"choice": "maybe"},
     'gold: "choice" must be a response index 0..1, "tie" or "both_bad", got \'maybe\''),
    ({"ranking": [1, 0]}, "a pairwise item's gold is a choice (a response index, tie or "
                          "both_bad), not a ranking: got [1, 0]"),
])
def test_invalid_gold_changes_nothing(db, answer, message):
    project, ids = make_project(db)
    with pytest.raises(InvalidInput) as caught:
        store.set_item_gold(db, project["id"], ids["q0"], actor="boss", **answer)
    assert str(caught.value) == message
    assert gold_row(db, ids["q0"]) == (0, None)
    assert audit_rows(db, project["id"]) == []


def test_gold_of_an_item_elsewhere_is_not_found(db):
    project, ids = make_project(db)
    other = store.create_project(db, "other", "pairwise")
    with pytest.raises(NotFound, match=f"^item {ids['q0']} is not in project {other['id']}$"):
        store.set_item_gold(db, other["id"], ids["q0"], choice=0, actor="boss")
