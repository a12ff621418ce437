import random

import pytest

from prefstore import assignment, store
from prefstore.errors import InvalidInput
from prefstore.settings import ProjectSettings

pytestmark = pytest.mark.both_backends


def make_project(db, n_items=4, n_responses=2, gold=None, **settings):
    project = store.create_project(db, "p", "pairwise" if n_responses == 2 else "slate",
                                     {"gold_rate": 0.0, **settings})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"r{i}.{k}"} for k in range(n_responses)],
         "gold": gold(i) if gold else None} for i in range(n_items)])
    return store.get_project(db, project["id"])


def test_labels_map_display_positions_to_response_indices():
    order = [1, 0]
    assert assignment.label_for_position(order, 0) == {
        "outcome": "choice", "choice": 1, "strength": None}
    assert assignment.label_for_strength(order, "A much better") == {
        "outcome": "choice", "choice": 1, "strength": 3}
    assert assignment.label_for_strength(order, "B slightly better") == {
        "outcome": "choice", "choice": 0, "strength": 1}
    assert assignment.label_for_strength(order, "Tie") == {
        "outcome": "tie", "choice": None, "strength": 0}
    assert assignment.label_for_outcome("both_bad") == {
        "outcome": "both_bad", "choice": None, "strength": None}
    with pytest.raises(InvalidInput, match="strength must be one of"):
        assignment.label_for_strength(order, "A is better")


def test_ranking_from_ranks_checks_the_permutation():
    order = [2, 0, 1]
    assert assignment.ranking_from_ranks(order, [3, 1, 2]) == [0, 1, 2]
    assert assignment.ranking_from_positions(order, [2, 0, 1]) == [1, 2, 0]
    with pytest.raises(InvalidInput, match="missing for response 2"):
        assignment.ranking_from_ranks(order, [1, None, 2])
    with pytest.raises(InvalidInput, match="repeated: 1; unused: 3"):
        assignment.ranking_from_ranks(order, [1, 1, 2])


def test_check_form_rationale_rules():
    required = ProjectSettings(rationale_required=True, rationale_min_chars=5)
    assert assignment.check_form(required, rationale="  ") == [
        "a rationale is required: say briefly why (at least 5 characters)"]
    assert assignment.check_form(required, rationale="abc") == [
        "the rationale must have at least 5 characters, it has 3"]
    assert assignment.check_form(required, rationale="abcdef") == []
    assert assignment.check_form(ProjectSettings(rationale_min_chars=5), rationale="") == []
    assert assignment.check_form(ProjectSettings(), aspects={"x": 7}) == ['aspect "x" must be scored 1..5, got 7']


def test_gold_correct():
    assert assignment.gold_correct(None, {"outcome": "choice", "choice": 0}) is None
    assert assignment.gold_correct({"choice": 0}, {"outcome": "choice", "choice": 0}) is True
    assert assignment.gold_correct({"choice": 0}, {"outcome": "tie", "choice": None}) is False
    assert assignment.gold_correct({"choice": "tie"}, {"outcome": "tie", "choice": None}) is True
    assert assignment.gold_correct({"ranking": [2, 0, 1]},
                                   {"outcome": "choice", "ranking": [2, 1, 0]}) is True


def test_submit_stores_gold_correctness_and_is_idempotent(db):
    project = make_project(db, gold=lambda i: {"choice": 0}, gold_rate=1.0)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    for rater, chosen in ((ann, [0, 0]), (bob, [0, 1])):
        for choice in chosen:
            claim = assignment.next_item(db, project["id"], rater["id"], rng=random.Random(1))
            label = {"outcome": "choice", "choice": choice, "strength": None}
            first = assignment.submit(db, claim, rater["id"], label)
            assert assignment.submit(db, claim, rater["id"], label) == (first[0], False)
    rows = store.list_judgments(db)
    assert [(r["rater_id"], r["metadata"], r["submission_id"][0]) for r in rows] == [
        (ann["id"], {"gold_correct": True}, "a"), (ann["id"], {"gold_correct": True}, "a"),
        (bob["id"], {"gold_correct": True}, "a"), (bob["id"], {"gold_correct": False}, "a")]
    assert assignment.gold_accuracy(db, project["id"]) == {"ann": 1.0, "bob": 0.5}
    assert assignment.gold_counts(db, project["id"]) == {
        "ann": {"n": 2, "correct": 2}, "bob": {"n": 2, "correct": 1}}


def test_gold_accuracy_recomputes_imported_judgments(db):
    project = make_project(db, n_items=2, gold=lambda i: {"choice": 1})
    cat = store.get_or_create_rater(db, "cat")
    items = [i["id"] for i in store.iter_items(db, project["id"])]
    store.insert_judgments(db, [
        {"item_id": items[0], "rater_id": cat["id"], "kind": "human", "outcome": "choice",
         "choice": 1, "submission_id": "i1"},
        {"item_id": items[1], "rater_id": cat["id"], "kind": "human", "outcome": "tie",
         "submission_id": "i2"}])
    assert assignment.gold_accuracy(db, project["id"]) == {"cat": 0.5}


def test_submit_refuses_a_missing_rationale_and_stores_nothing(db):
    project = make_project(db, rationale_required=True)
    rater, _ = store.create_rater(db, "ann")
    claim = assignment.next_item(db, project["id"], rater["id"])
    with pytest.raises(InvalidInput, match="a rationale is required"):
        assignment.submit(db, claim, rater["id"], assignment.label_for_position([0, 1], 0),
                          settings=project["settings"], rationale=" ")
    assert store.count_judgments(db) == 0


def test_resolve_edit(db):
    project = make_project(db)
    rater, _ = store.create_rater(db, "ann")
    claim = assignment.next_item(db, project["id"], rater["id"], rng=random.Random(0))
    order = claim["display_order"]
    text_a = claim["item"]["responses"][order[0]]["text"]
    chose_a = assignment.label_for_position(order, 0)
    assert assignment.resolve_edit(claim, chose_a, 0, text_a + "  \n") is None
    assert assignment.resolve_edit(claim, chose_a, 0, "better") == "better"
    assert assignment.resolve_edit(claim, chose_a, None, None) is None
    with pytest.raises(InvalidInput, match="improved Response B but chose Response A"):
        assignment.resolve_edit(claim, chose_a, 1, "better")
    with pytest.raises(InvalidInput, match="but chose Tie"):
        assignment.resolve_edit(claim, assignment.label_for_outcome("tie"), 0, "better")


def test_skip_and_flag(db):
    project = make_project(db, n_items=2)
    rater, _ = store.create_rater(db, "ann")
    first = assignment.next_item(db, project["id"], rater["id"])
    assignment.skip(db, first, rater["id"], "  ")
    second = assignment.next_item(db, project["id"], rater["id"])
    with pytest.raises(InvalidInput, match="flag reason must be one of harmful, broken, unclear"):
        assignment.flag(db, second, rater["id"], "boring")
    assignment.flag(db, second, rater["id"], "harmful")
    assert [(store.get_assignment(db, c["id"])["status"],
             store.get_assignment(db, c["id"])["reason"]) for c in (first, second)] == [
        ("skipped", None), ("flagged", "harmful")]
    assert assignment.next_item(db, project["id"], rater["id"]) is None


@pytest.mark.parametrize("label,order,text", [
    ({"outcome": "choice", "choice": 1, "strength": 2}, [0, 1], "B clearly better"),
    ({"outcome": "choice", "choice": 1, "strength": 3}, [1, 0], "A much better"),
    ({"outcome": "choice", "choice": 0, "strength": None}, [1, 0], "Response B"),
    ({"outcome": "tie", "strength": 0}, [0, 1], "Tie"),
    ({"outcome": "both_bad"}, [0, 1], "Both bad"),
    ({"outcome": "both_bad"}, [0, 1, 2], "All bad"),
    ({"outcome": "choice", "ranking": [2, 0, 1]}, [1, 2, 0], "Ranking 2 > 3 > 1"),
    ({"outcome": "choice", "choice": 2}, [1, 2, 0], "Response 2"),
])
def test_the_toast_says_what_was_saved(label, order, text):
    assert assignment.describe_saved(label, order) == text


@pytest.mark.parametrize(("gold", "label", "order", "told"), [
    ({"choice": 0}, {"outcome": "choice", "choice": 0}, [1, 0],
     "Gold item: you matched the expected answer (Response B)."),
    ({"choice": 0}, {"outcome": "choice", "choice": 1}, [1, 0],
     "Gold item: the expected answer was Response B; you chose Response A."),
    ({"choice": "tie"}, {"outcome": "both_bad", "choice": None}, [0, 1],
     "Gold item: the expected answer was Tie; you chose Both bad."),
    ({"choice": 2, "ranking": [2, 0, 1]}, {"outcome": "choice", "choice": 0}, [2, 1, 0],
     "Gold item: the expected answer was Response 1; you chose Response 3."),
    ({"choice": 2, "ranking": [2, 0, 1]}, {"outcome": "choice", "choice": 2,
                                          "ranking": [2, 1, 0]}, [0, 1, 2],
     "Gold item: you matched the expected answer (Response 3)."),
    (None, {"outcome": "choice", "choice": 0}, [0, 1], None),
])
def test_gold_feedback_names_the_expected_answer_as_shown(gold, label, order, told):
    assert assignment.gold_feedback(gold, label, order) == told
