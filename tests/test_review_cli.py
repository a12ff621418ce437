"""`prefstore review`, `prefstore resolve` and `prefstore project` (rename, archive)."""

import json

import pytest

from prefstore import assignment, store
from prefstore.cli import main


@pytest.fixture
def queued(tmp_path):
    """A project where ann skipped q0 (reason with a terminal escape) and flagged q1."""
    path = str(tmp_path / "x.db")
    db = store.connect(path)
    project = store.create_project(db, "p", settings={"gold_rate": 0.0})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": "x", "responses": [{"text": "a"}, {"text": "b"}]}
        for i in range(3)])
    ann, _ = store.create_rater(db, "ann")
    assignment.skip(db, store.claim_next(db, project["id"], ann["id"]), ann["id"],
                    "later\x1b[2J")
    assignment.flag(db, store.claim_next(db, project["id"], ann["id"]), ann["id"], "broken")
    return path, db, project


def test_review_lists_the_queue_as_text_and_json(queued, capsys):
    path, db, project = queued
    rows = store.review_queue(db, project["id"])
    assert main(["review", "--project", "p", "--db", path]) == 0
    assert capsys.readouterr().out == (
        "'p': 2 open, 0 resolved\n"
        f"'q0' skipped by 'ann' at {rows[0]['at']} reason 'later\\x1b[2J': open\n"
        f"'q1' flagged by 'ann' at {rows[1]['at']} reason 'broken': open\n")
    assert main(["resolve", "--project", "p", "--item", "q1", "--rater", "ann",
                 "--action", "exclude", "--db", path]) == 0
    assert capsys.readouterr().out == "resolved item 'q1' of 'ann': exclude\n"
    assert main(["review", "--project", "p", "--db", path, "--json"]) == 0
    [first, second] = json.loads(capsys.readouterr().out)
    resolved = store.review_queue(db, project["id"])[1]
    assert first == {"item": "q0", "rater": "ann", "status": "skipped",
                     "reason": "later\x1b[2J", "at": rows[0]["at"], "resolution": None,
                     "resolved_by": None, "resolved_at": None, "item_excluded_at": None}
    assert second == {"item": "q1", "rater": "ann", "status": "flagged", "reason": "broken",
                      "at": rows[1]["at"], "resolution": "exclude", "resolved_by": "cli",
                      "resolved_at": resolved["resolved_at"],
                      "item_excluded_at": resolved["resolved_at"]}
    assert main(["review", "--project", "p", "--db", path]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"'q1' flagged by 'ann' at {rows[1]['at']} reason 'broken': exclude by 'cli' at "
        f"{resolved['resolved_at']}")


def test_review_of_an_empty_queue(tmp_path, capsys):
    path = str(tmp_path / "x.db")
    store.create_project(store.connect(path), "p")
    assert main(["review", "--project", "p", "--db", path]) == 0
    assert capsys.readouterr().out == "nothing to review in 'p': no skips or flags\n"


def test_resolve_requeue_and_its_errors(queued, capsys):
    path, db, project = queued
    assert main(["resolve", "--project", "p", "--item", "q0", "--rater", "ann",
                 "--action", "requeue", "--db", path]) == 0
    assert capsys.readouterr().out == "resolved item 'q0' of 'ann': requeue\n"
    ann = store.get_rater(db, "ann")
    assert store.claim_next(db, project["id"], ann["id"])["item"]["external_id"] == "q0"
    for args, message in [
        (["--item", "nope", "--rater", "ann", "--action", "dismiss"],
         "error: item 'nope' does not exist in this project\n"),
        (["--item", "q2", "--rater", "ann", "--action", "dismiss"],
         "error: rater 'ann' has no skip or flag on item 'q2'\n"),
        (["--item", "q0", "--rater", "ann", "--action", "dismiss"],
         "error: the review of item 'q0' by 'ann' is already resolved: requeue by 'cli' at "
         f"{store.review_queue(db, project['id'])[1]['resolved_at']}\n"),
    ]:
        assert main(["resolve", "--project", "p", *args, "--db", path]) == 2
        assert capsys.readouterr().err == message
    with pytest.raises(SystemExit) as exited:
        main(["resolve", "--project", "p", "--item", "q0", "--rater", "ann",
              "--action", "delete", "--db", path])
    assert exited.value.code == 2
    assert "argument --action: invalid choice: 'delete'" in capsys.readouterr().err


def test_project_rename_archive_and_unarchive(queued, capsys):
    path, db, project = queued
    store.create_project(db, "other")
    assert main(["project", "--project", "p", "--rename", "p2", "--db", path]) == 0
    assert main(["project", "--project", "p2", "--archive", "--db", path]) == 0
    assert capsys.readouterr().out == (
        "project 'p' is now called 'p2'\n"
        "project 'p2' is archived: hidden from raters, its data kept\n")
    assert store.get_project(db, "p2")["archived_at"] is not None
    assert main(["projects", "--db", path]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "p2 (archived)  pairwise  3 items, 0 judgments (0 human, 0 llm)",
        "other          pairwise  0 items, 0 judgments (0 human, 0 llm)"]
    assert main(["project", "--project", "p2", "--unarchive", "--db", path]) == 0
    assert capsys.readouterr().out == "project 'p2' is no longer archived\n"
    assert store.get_project(db, "p2")["archived_at"] is None
    assert [(e["actor"], e["action"], e["details"]) for e in store.audit_log(db, project["id"])
            ][:3] == [("cli", "unarchive_project", {"name": "p2"}),
                      ("cli", "archive_project", {"name": "p2"}),
                      ("cli", "rename_project", {"from": "p", "to": "p2"})]
    assert main(["project", "--project", "p2", "--rename", "other", "--db", path]) == 2
    assert capsys.readouterr().err == "error: project 'other' already exists\n"
    with pytest.raises(SystemExit):
        main(["project", "--project", "p2", "--archive", "--unarchive", "--db", path])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["project", "--project", "p2", "--db", path])
    assert "one of the arguments --rename --archive --unarchive is required" in (
        capsys.readouterr().err)
