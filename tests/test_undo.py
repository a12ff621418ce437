"""Undo: a changed judgment is a new row with ``supersedes``; only the last row of a chain counts."""

import json
import math

import pytest

from prefstore import agreement, assignment, export, fitting, store
from prefstore.cli import main
from prefstore.errors import Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.both_backends

# The stored columns a change sets; the rest (ids, times) are checked apart.
LABEL = ("item_id", "rater_id", "kind", "display_order", "outcome", "choice", "ranking",
         "strength", "submission_id", "supersedes")


def make_project(db, n_items=3):
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"r{i}.{k}", "system": f"s{k}"} for k in range(2)]}
        for i in range(n_items)])
    items = [row[0] for row in db.execute(
        "SELECT id FROM items WHERE project_id = ? ORDER BY id", [project["id"]])]
    return project, items


def submit(db, rater, item_id, choice, sub, **label):
    return store.submit_judgment(db, item_id=item_id, rater_id=rater["id"], submission_id=sub,
                                 choice=choice, **label)[0]


def label_of(row):
    return {k: row[k] for k in LABEL}


def test_change_is_a_new_row_naming_the_old_one(db):
    project, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, project["id"], ann["id"])
    first, _ = store.submit_judgment(db, item_id=claim["item_id"], rater_id=ann["id"],
                                     submission_id="a1", choice=0, strength=2,
                                     assignment_id=claim["id"])
    version = store.data_version(db)
    since = store.judgments_since(db, project["id"], None)
    new, created = store.change_judgment(db, judgment_id=first, rater_id=ann["id"],
                                         submission_id="c1", choice=1, strength=3)
    assert created and new > first
    old_row, new_row = store.list_judgments(db, project_id=project["id"])
    assert label_of(new_row) == {
        "item_id": claim["item_id"], "rater_id": ann["id"], "kind": "human",
        "display_order": claim["display_order"], "outcome": "choice", "choice": 1,
        "ranking": None, "strength": 3, "submission_id": "c1", "supersedes": first}
    # The old row is untouched: judgments are append-only.
    assert (old_row["id"], old_row["choice"], old_row["strength"], old_row["supersedes"]) == (
        first, 0, 2, None)
    assert store.get_item(db, claim["item_id"])["n_human"] == 1
    # Dashboards see the change; the worker's refit schedule counts it as new activity.
    assert store.data_version(db) != version
    assert store.judgments_since(db, project["id"], None) == since + 1
    assert store.count_judgments(db, project["id"]) == 1


def test_change_is_idempotent_on_its_submission_id(db):
    _, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    first = submit(db, ann, items[0], 0, "a1")
    once = store.change_judgment(db, judgment_id=first, rater_id=ann["id"],
                                 submission_id="c1", outcome="tie")
    twice = store.change_judgment(db, judgment_id=first, rater_id=ann["id"],
                                  submission_id="c1", outcome="tie")
    assert twice == (once[0], False)
    assert len(store.list_judgments(db)) == 2


def test_change_refusals(db):
    _, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    judge, _ = store.create_rater(db, "judge", kind="llm")
    mine = submit(db, ann, items[0], 0, "a1")
    llm = submit(db, judge, items[0], 1, "j1")

    def change(judgment_id, rater, sub, **label):
        return store.change_judgment(db, judgment_id=judgment_id, rater_id=rater["id"],
                                     submission_id=sub, **label)

    with pytest.raises(InvalidInput, match=f"^judgment {mine} is not yours to change$"):
        change(mine, bob, "x1", choice=1)
    with pytest.raises(InvalidInput, match=f"^judgment {llm} is an LLM's; only a human's "):
        change(llm, judge, "x2", choice=0)
    with pytest.raises(NotFound, match="^judgment 999 does not exist$"):
        change(999, ann, "x3", choice=0)
    with pytest.raises(InvalidInput, match='"choice" must be a response index 0..1'):
        change(mine, ann, "x4", choice=5)
    second, _ = change(mine, ann, "x5", choice=1)
    with pytest.raises(Conflict, match=f"^judgment {mine} was already changed \\(by judgment "
                                       f"{second}\\); change the latest one$"):
        change(mine, ann, "x6", choice=0)
    db.execute("UPDATE items SET excluded_at = '2026-01-01T00:00:00+00:00' WHERE id = ?",
               [items[0]])
    with pytest.raises(InvalidInput, match=f"^judgment {second} is on an excluded item$"):
        change(second, ann, "x7", choice=0)
    # Nothing was written by a refused change.
    assert [j["submission_id"] for j in store.list_judgments(db)] == ["a1", "j1", "x5"]


def test_unique_index_refuses_a_second_row_superseding_the_same_one(db):
    _, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    first = submit(db, ann, items[0], 0, "a1")
    store.change_judgment(db, judgment_id=first, rater_id=ann["id"], submission_id="c1",
                          choice=1)
    # What a racing second change would do once past the check: the index stops it.
    with pytest.raises(Exception) as raised, store.write(db):
        db.execute(
            "INSERT INTO judgments (item_id, rater_id, kind, outcome, choice, metadata, "
            "submission_id, created_at, supersedes) VALUES (?, ?, 'human', 'choice', 0, '{}', "
            "'c2', '2026-01-01T00:00:00+00:00', ?)", [items[0], ann["id"], first])
    assert store.connection.is_integrity_error(raised.value)


def test_chain_counts_once(db):
    project, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    a = submit(db, ann, items[0], 0, "a1")
    b, _ = store.change_judgment(db, judgment_id=a, rater_id=ann["id"], submission_id="c1",
                                 choice=1)
    c, _ = store.change_judgment(db, judgment_id=b, rater_id=ann["id"], submission_id="c2",
                                 outcome="both_bad")
    stats = store.project_stats(db, project["id"])
    assert stats["judgments"] == {"human": 1, "llm": 0}
    assert stats["superseded"] == 2
    assert stats["items_by_human_judgments"] == {"0": 2, "1": 1}
    assert store.count_judgments(db, project["id"]) == 1
    assert store.dashboard_counts(db, project["id"], 1)["judgments"] == {
        "human": 1, "llm": 0, "total": 1}
    assert [r["judgments"] for r in store.project_rater_summary(db, project["id"])] == [1]
    assert store.rater_progress(db, project["id"], ann["id"])["done"] == 1
    frame = store.judgments_frame(db, project["id"])
    assert frame[["id", "outcome"]].values.tolist() == [[c, "both_bad"]]
    recent = store.recent_judgments(db, project["id"], ann["id"])
    assert [(r["id"], r["supersedes"], r["outcome"], r["external_id"]) for r in recent] == [
        (c, b, "both_bad", "q0")]
    assert store.get_item(db, items[0])["n_human"] == 1


def test_recent_judgments_newest_first_with_a_limit(db):
    project, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    ids = [submit(db, ann, item, 0, f"a{k}") for k, item in enumerate(items)]
    submit(db, bob, items[0], 1, "b0")
    changed, _ = store.change_judgment(db, judgment_id=ids[1], rater_id=ann["id"],
                                       submission_id="c1", choice=1)
    rows = store.recent_judgments(db, project["id"], ann["id"], limit=2)
    assert [(r["id"], r["external_id"], r["choice"], r["prompt"]) for r in rows] == [
        (changed, "q1", 1, "prompt 1"), (ids[2], "q2", 0, "prompt 2")]
    assert [r["id"] for r in store.recent_judgments(db, project["id"], ann["id"])] == [
        changed, ids[2], ids[0]]


def test_excluded_items_drop_out_of_every_count(db):
    project, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    for k, item in enumerate(items):
        submit(db, ann, item, 0, f"a{k}")
    store.set_item_excluded(db, project["id"], "q1", True, actor="admin")
    assert store.count_judgments(db, project["id"]) == 2
    stats = store.project_stats(db, project["id"])
    assert (stats["items"], stats["responses"], stats["judgments"]["human"]) == (2, 4, 2)
    assert stats["items_by_human_judgments"] == {"1": 2}
    assert store.dashboard_counts(db, project["id"], 1)["judgments"]["total"] == 2
    assert store.judgments_frame(db, project["id"])["item_id"].tolist() == [items[0], items[2]]
    assert store.rater_progress(db, project["id"], ann["id"])["done"] == 2
    assert [r["external_id"] for r in store.recent_judgments(db, project["id"], ann["id"])] == [
        "q2", "q0"]


@pytest.fixture
def changed(db):
    """Two raters on three items; ann changes q0 from s0 to s1, so both agree on q0 and q1."""
    project, items = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    a0 = submit(db, ann, items[0], 0, "a0")
    submit(db, ann, items[1], 0, "a1")
    submit(db, ann, items[2], 1, "a2")
    submit(db, bob, items[0], 1, "b0")
    submit(db, bob, items[1], 0, "b1")
    new, _ = store.change_judgment(db, judgment_id=a0, rater_id=ann["id"], submission_id="c0",
                                   choice=1)
    return {"project": project, "items": items, "old": a0, "new": new}


def test_fit_and_agreement_see_only_the_latest_label(db, changed):
    fit = fitting.fit_project(db, "p", alpha=0.0, ci=None, save=False)
    # s1 wins 3 (ann's changed q0, ann's q2, bob's q0), s0 wins 2: BT gives log(3/2) apart.
    assert fit["n_comparisons"] == 5
    assert fit["scores"]["s1"] == pytest.approx(math.log(1.5) / 2, abs=1e-6)
    assert fit["scores"]["s0"] == pytest.approx(-math.log(1.5) / 2, abs=1e-6)
    report = agreement.project_agreement(db, "p", n_boot=20)
    assert (report["n_judgments"], report["n_items_multi_rated"]) == (5, 2)
    assert report["percent_agreement"] == 1.0
    assert [(r["rater"], r["n"]) for r in report["raters"]] == [("ann", 3), ("bob", 2)]


def test_last_change_at_is_the_time_of_the_newest_change(db, changed):
    rows = {j["id"]: j for j in store.list_judgments(db)}
    assert store.last_change_at(db, changed["project"]["id"]) == rows[changed["new"]]["created_at"]
    other = store.create_project(db, "other", "pairwise")
    assert store.last_change_at(db, other["id"]) is None  # no change there


def test_stats_cli_counts_effective_judgments(db_path, db, changed, capsys):
    assert main(["stats", "--project", "p", "--db", str(db_path)]) == 0
    assert capsys.readouterr().out == (
        "p (pairwise): 3 items, 6 responses; judgments: 5 human, 0 llm; 1 superseded row kept "
        "for the audit; raters: 2 human, 0 llm\n")
    assert main(["stats", "--project", "p", "--db", str(db_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["judgments"], stats["superseded"]) == ({"human": 5, "llm": 0}, 1)


def test_pairs_export_writes_the_latest_label(db, tmp_path, changed):
    out = tmp_path / "pairs.jsonl"
    summary = export.export(db, "p", out, format="pairs", real_rater_names=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["judgments"] == summary["written"] == 5
    assert [(r["metadata"]["item"], r["metadata"]["rater"], r["chosen"], r["rejected"])
            for r in rows] == [
        ("q1", "ann", "r1.0", "r1.1"), ("q2", "ann", "r2.1", "r2.0"),
        ("q0", "bob", "r0.1", "r0.0"), ("q1", "bob", "r1.0", "r1.1"),
        ("q0", "ann", "r0.1", "r0.0")]
    # The generic path (the iterator) agrees with the fast pairs path.
    assert [json.loads(line) for line in export.iter_jsonl(
        db, "p", format="pairs", real_rater_names=True)] == rows


def test_audit_export_includes_superseded_rows(db, db_path, tmp_path, changed):
    plain, audit = tmp_path / "plain.jsonl", tmp_path / "audit.jsonl"
    export.export(db, "p", plain, format="judgments")
    summary = export.export(db, "p", audit, format="judgments", include_superseded=True)
    assert summary["written"] == 6
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["id"], r["item"], r["choice"], r["supersedes"]) for r in rows] == [
        (changed["old"], "q0", 0, None), (changed["old"] + 1, "q1", 0, None),
        (changed["old"] + 2, "q2", 1, None), (changed["old"] + 3, "q0", 1, None),
        (changed["old"] + 4, "q1", 0, None), (changed["new"], "q0", 1, changed["old"])]
    assert [json.loads(line)["id"] for line in plain.read_text().splitlines()] == [
        r["id"] for r in rows[1:]]
    cli_out = tmp_path / "cli.jsonl"
    assert main(["export", str(cli_out), "--project", "p", "--db", str(db_path), "--format",
                 "judgments", "--include-superseded"]) == 0
    assert cli_out.read_text() == audit.read_text()
    with pytest.raises(InvalidInput, match='^include_superseded works with format "judgments" '
                                           "only \\(the audit export\\), got format 'pairs'$"):
        export.export(db, "p", tmp_path / "x.jsonl", format="pairs", include_superseded=True)


def test_assignment_change_keeps_display_order_and_rechecks_gold(db):
    project = store.create_project(db, "g", "pairwise", {"gold_rate": 1.0})
    store.insert_items(db, project["id"], [
        {"external_id": "gold1", "prompt": "p", "gold": {"choice": 1},
         "responses": [{"text": "x"}, {"text": "y"}]}])
    ann, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, project["id"], ann["id"])
    assignment.submit(db, claim, ann["id"], {"outcome": "choice", "choice": 0},
                      aspects={"helpful": 4}, reason_tags=["tone"])
    (recent,) = store.recent_judgments(db, project["id"], ann["id"])
    new, created = assignment.change(db, recent, ann["id"],
                                     {"outcome": "choice", "choice": 1, "strength": None},
                                     rationale="  looked again ")
    again = assignment.change(db, recent, ann["id"], {"outcome": "choice", "choice": 1})
    assert created and again == (new, False)
    row = store.list_judgments(db, project_id=project["id"])[-1]
    assert {k: row[k] for k in ("id", "supersedes", "choice", "display_order", "aspects",
                                "reason_tags", "rationale", "metadata", "submission_id")} == {
        "id": new, "supersedes": recent["id"], "choice": 1,
        "display_order": claim["display_order"], "aspects": {"helpful": 4},
        "reason_tags": ["tone"], "rationale": "looked again",
        "metadata": {"gold_correct": True}, "submission_id": f"c{recent['id']}"}


def test_model_export_refits_after_a_change(db, tmp_path):
    _, items = make_project(db, n_items=1)
    ann, _ = store.create_rater(db, "ann")
    first = submit(db, ann, items[0], 0, "a0")

    def chosen():
        out = tmp_path / "model.jsonl"
        summary = export.export(db, "p", out, format="pairs", aggregate="model")
        (row,) = [json.loads(line) for line in out.read_text().splitlines()]
        return row["chosen"], summary["refitted"]

    assert chosen() == ("r0.0", True)
    assert chosen() == ("r0.0", False)  # the stored fit is current
    store.change_judgment(db, judgment_id=first, rater_id=ann["id"], submission_id="c0",
                          choice=1)
    # Same number of judgments, but one changed: the stored fit is stale.
    assert chosen() == ("r0.1", True)


@pytest.mark.parametrize(("n", "scale", "order"), [
    (2, True, [1, 0]), (2, False, [1, 0]), (3, False, [2, 0, 1])])
def test_every_answer_of_the_change_form_round_trips(n, scale, order):
    for answer in assignment.label_choices(n, strength_scale=scale):
        label = assignment.label_from_choice(order, answer, strength_scale=scale)
        assert assignment.choice_for_label(label, order, strength_scale=scale) == answer


def test_change_form_answers_and_labels():
    assert assignment.label_choices(2) == ("A is better", "B is better", "Tie", "Both bad")
    assert assignment.label_choices(3) == ("1 is best", "2 is best", "3 is best", "All bad")
    assert assignment.label_from_choice([1, 0], "B much better", strength_scale=True) == {
        "outcome": "choice", "choice": 0, "strength": 3}
    assert assignment.label_from_choice([1, 0], "Tie") == {
        "outcome": "tie", "choice": None, "strength": None}
    # A choice stored without a strength has no step on the scale: nothing is preselected.
    assert assignment.choice_for_label({"outcome": "choice", "choice": 0, "strength": None},
                                       [1, 0], strength_scale=True) is None
    with pytest.raises(InvalidInput, match="^answer must be one of A is better, B is better, "
                                           "Tie, Both bad, got 'C'$"):
        assignment.label_from_choice([0, 1], "C")


# Readers of judgment rows that do not filter to effective judgments, each for a reason:
# a change checks the row it replaces; the import's duplicate check and the audit need
# every row; the refit schedule counts a change as activity; superseded rows are counted
# as such; lookups by id; raters who judged an included item; when the last change was
# stored (what dashboards compare their stored results with). A new reader must choose.
RAW_READERS = {"change_judgment", "list_judgments", "judgments_since", "project_stats",
               "dashboard_counts", "llm_judge_names", "_BY_IDS", "last_change_at"}


def test_every_reader_of_judgments_filters_effective_rows():
    import ast
    import inspect

    from prefstore.store import judgments

    tree = ast.parse(inspect.getsource(judgments))
    raw, effective = set(), set()
    for top in tree.body:
        name = (top.name if isinstance(top, ast.FunctionDef)
                else top.targets[0].id if isinstance(top, ast.Assign) else None)
        for node in ast.walk(top):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and ("FROM judgments j " in node.value or "JOIN judgments j " in node.value)):
                continue
            text = node.value
            if (judgments.EFFECTIVE in text or (
                    "AND (:all_rows = 1 OR " + judgments.NOT_SUPERSEDED + ") AND "
                    + judgments.ITEM_INCLUDED) in text):
                effective.add(name)
            else:
                raw.add(name)
    assert raw == RAW_READERS
    assert {"recent_judgments", "iter_judgment_rows", "_JUDGMENTS_OF_ITEMS",
            "count_judgment_rows", "iter_pair_export_rows", "_JUDGMENT_FRAME_SQL",
            "count_judgments", "has_llm_judgments", "project_stats", "project_rater_summary",
            "gold_judgments", "edited_judgments_frame", "_REPORT_FRAME_SQL"} == effective
