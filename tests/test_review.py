"""The admin's review queue, item exclusion, and project rename/archive."""

import pytest

from prefstore import access, assignment, store, worker
from prefstore.errors import AccessDenied, Conflict, InvalidInput, NotFound

pytestmark = pytest.mark.both_backends


def make_project(db, n_items=3, name="p", **settings):
    project = store.create_project(db, name, "pairwise",
                                   {"gold_rate": 0.0, "raters_per_item": 1, **settings})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"r{i}.0"}, {"text": f"r{i}.1"}]} for i in range(n_items)])
    return project


def served(db, project, rater):
    claim = store.claim_next(db, project["id"], rater["id"])
    return None if claim is None else claim["item"]["external_id"]


def queue(db, project):
    return [(r["item"], r["rater"], r["status"], r["reason"], r["resolution"], r["resolved_by"])
            for r in store.review_queue(db, project["id"])]


def audit(db, project, since=0):
    return [(r["actor"], r["action"], r["details"])
            for r in reversed(store.audit_log(db, project["id"]))][since:]


def test_the_queue_lists_open_entries_first_then_the_resolved(db):
    project = make_project(db, raters_per_item=2)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    claim = store.claim_next(db, project["id"], ann["id"])
    assignment.skip(db, claim, ann["id"], "later")
    claim = store.claim_next(db, project["id"], ann["id"])
    assignment.flag(db, claim, ann["id"], "broken")
    claim = store.claim_next(db, project["id"], bob["id"])
    assignment.flag(db, claim, bob["id"], "unclear", "which prompt?")
    store.claim_next(db, project["id"], bob["id"])  # an open claim is not in the queue
    assert queue(db, project) == [
        ("q0", "ann", "skipped", "later", None, None),
        ("q1", "ann", "flagged", "broken", None, None),
        ("q0", "bob", "flagged", "unclear: which prompt?", None, None)]
    assert store.review_counts(db, project["id"]) == {"open": 3, "resolved": 0}

    row = store.resolve_review(db, project["id"], "q1", "ann", "dismiss", actor="admin")
    assert (row["item"], row["rater"], row["resolution"], row["resolved_by"]) == (
        "q1", "ann", "dismiss", "admin")
    assert row["resolved_at"] is not None
    assert queue(db, project) == [
        ("q0", "ann", "skipped", "later", None, None),
        ("q0", "bob", "flagged", "unclear: which prompt?", None, None),
        ("q1", "ann", "flagged", "broken", "dismiss", "admin")]
    assert store.review_counts(db, project["id"]) == {"open": 2, "resolved": 1}
    assert audit(db, project, since=1) == [
        ("admin", "resolve_review", {"item": "q1", "rater": "ann", "status": "flagged",
                                     "reason": "broken", "resolution": "dismiss"})]


def test_dismiss_keeps_the_item_from_that_rater_only(db):
    project = make_project(db, n_items=2)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    assignment.skip(db, store.claim_next(db, project["id"], ann["id"]), ann["id"])
    store.resolve_review(db, project["id"], "q0", "ann", "dismiss", actor="admin")
    assert served(db, project, ann) == "q1"
    assert served(db, project, bob) == "q0"


def test_requeue_serves_the_item_to_that_rater_again(db):
    project = make_project(db, n_items=2)
    ann, _ = store.create_rater(db, "ann")
    first = store.claim_next(db, project["id"], ann["id"])
    assignment.skip(db, first, ann["id"], "later")
    assignment.flag(db, store.claim_next(db, project["id"], ann["id"]), ann["id"], "broken")
    assert served(db, project, ann) is None
    assert store.rater_progress(db, project["id"], ann["id"]) == {
        "done": 0, "skipped": 2, "k": 2, "n": 2, "remaining": 0}

    store.resolve_review(db, project["id"], "q0", "ann", "requeue", actor="admin")
    assert store.rater_progress(db, project["id"], ann["id"]) == {
        "done": 0, "skipped": 1, "k": 1, "n": 2, "remaining": 1}
    again = store.claim_next(db, project["id"], ann["id"])
    assert (again["item"]["external_id"], again["id"], again["status"]) == (
        "q0", first["id"], "claimed")
    assert queue(db, project) == [
        ("q1", "ann", "flagged", "broken", None, None),
        ("q0", "ann", "claimed", "later", "requeue", "admin")]
    # A requeued entry cannot be resolved again; a new skip opens a new entry.
    with pytest.raises(Conflict, match="the review of item 'q0' by 'ann' is already "
                                       "resolved: requeue by 'admin' at "):
        store.resolve_review(db, project["id"], "q0", "ann", "dismiss", actor="admin")
    assignment.skip(db, again, ann["id"], "still later")
    assert queue(db, project) == [
        ("q1", "ann", "flagged", "broken", None, None),
        ("q0", "ann", "skipped", "still later", None, None)]

    # A flagged item (here the rater's second) comes back the same way.
    store.resolve_review(db, project["id"], "q1", "ann", "requeue", actor="admin")
    claim = store.claim_next(db, project["id"], ann["id"])
    assert claim["item"]["external_id"] == "q1"
    assert assignment.submit(db, claim, ann["id"], {"outcome": "tie"})[1] is True
    assert queue(db, project) == [
        ("q0", "ann", "skipped", "still later", None, None),
        ("q1", "ann", "done", "broken", "requeue", "admin")]
    assert store.rater_progress(db, project["id"], ann["id"]) == {
        "done": 1, "skipped": 1, "k": 2, "n": 2, "remaining": 0}


def test_an_excluded_item_is_never_served_nor_counted(db):
    project = make_project(db, n_items=3)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    assignment.flag(db, store.claim_next(db, project["id"], ann["id"]), ann["id"], "harmful")
    store.resolve_review(db, project["id"], "q0", "ann", "exclude", actor="admin")
    excluded_at = store.item_by_external(db, project["id"], "q0")["excluded_at"]
    assert excluded_at is not None
    assert queue(db, project) == [("q0", "ann", "flagged", "harmful", "exclude", "admin")]
    assert store.review_queue(db, project["id"])[0]["item_excluded_at"] == excluded_at

    # bob would get q0 first (fewest judgments, lowest id): it is excluded.
    assert served(db, project, bob) == "q1"
    assert store.rater_progress(db, project["id"], ann["id"]) == {
        "done": 0, "skipped": 0, "k": 0, "n": 2, "remaining": 2}
    stats = store.project_stats(db, project["id"])
    assert (stats["items"], stats["excluded"], stats["items_by_human_judgments"]) == (
        2, 1, {"0": 2})
    assert store.open_item_count(db, project["id"], 1) == 2

    # An open claim on an item excluded meanwhile is not resumed.
    store.set_item_excluded(db, project["id"], "q1", True, actor="admin")
    assert served(db, project, bob) == "q2"

    carol, _ = store.create_rater(db, "carol")
    store.set_item_excluded(db, project["id"], "q0", False, actor="admin")
    assert store.item_by_external(db, project["id"], "q0")["excluded_at"] is None
    assert served(db, project, carol) == "q0"
    assert store.rater_progress(db, project["id"], ann["id"]) == {
        "done": 0, "skipped": 1, "k": 1, "n": 2, "remaining": 1}
    assert audit(db, project, since=1) == [
        ("admin", "resolve_review", {"item": "q0", "rater": "ann", "status": "flagged",
                                     "reason": "harmful", "resolution": "exclude"}),
        ("admin", "exclude_item", {"item": "q1"}),
        ("admin", "include_item", {"item": "q0"})]


def test_resolve_errors_name_the_item_and_rater(db):
    project = make_project(db)
    ann, _ = store.create_rater(db, "ann")
    store.create_rater(db, "bob")
    assignment.skip(db, store.claim_next(db, project["id"], ann["id"]), ann["id"])
    with pytest.raises(InvalidInput, match="action must be one of dismiss, exclude, requeue, "
                                           "got 'delete'"):
        store.resolve_review(db, project["id"], "q0", "ann", "delete", actor="admin")
    with pytest.raises(NotFound, match="item 'nope' does not exist in this project"):
        store.resolve_review(db, project["id"], "nope", "ann", "dismiss", actor="admin")
    with pytest.raises(NotFound, match="rater 'zed' does not exist"):
        store.resolve_review(db, project["id"], "q0", "zed", "dismiss", actor="admin")
    with pytest.raises(NotFound, match="rater 'bob' has no skip or flag on item 'q0'"):
        store.resolve_review(db, project["id"], "q0", "bob", "dismiss", actor="admin")
    store.claim_next(db, project["id"], ann["id"])  # an open claim is no skip either
    with pytest.raises(NotFound, match="rater 'ann' has no skip or flag on item 'q1'"):
        store.resolve_review(db, project["id"], "q1", "ann", "dismiss", actor="admin")
    store.resolve_review(db, project["id"], "q0", "ann", "exclude", actor="admin")
    with pytest.raises(Conflict, match="already resolved: exclude by 'admin'"):
        store.resolve_review(db, project["id"], "q0", "ann", "requeue", actor="admin")
    assert [r["action"] for r in store.audit_log(db, project["id"])] == [
        "resolve_review", "create_project"]


def test_rename_follows_the_creation_rules(db):
    project = make_project(db)
    store.create_project(db, "other")
    renamed = store.rename_project(db, project["id"], "renamed", actor="admin")
    assert renamed["name"] == "renamed"
    assert store.get_project(db, "renamed")["id"] == project["id"]
    with pytest.raises(Conflict, match="project 'other' already exists"):
        store.rename_project(db, project["id"], "other", actor="admin")
    with pytest.raises(InvalidInput, match="project name must be a non-empty string, got ' '"):
        store.rename_project(db, project["id"], " ", actor="admin")
    with pytest.raises(InvalidInput, match="project name must be at most 200 characters, "
                                           "got 201"):
        store.rename_project(db, project["id"], "x" * 201, actor="admin")
    with pytest.raises(NotFound, match="project 999 does not exist"):
        store.rename_project(db, 999, "new", actor="admin")
    assert store.rename_project(db, project["id"], "renamed", actor="admin") == renamed
    assert audit(db, project, since=1) == [
        ("admin", "rename_project", {"from": "p", "to": "renamed"})]


def test_a_former_name_leads_to_the_project_renamed(db):
    project = make_project(db)
    assert store.project_formerly_named(db, "p") is None
    store.rename_project(db, project["id"], "q", actor="admin")
    store.rename_project(db, project["id"], "r", actor="admin")
    assert store.project_formerly_named(db, "p")["name"] == "r"  # followed to its name now
    assert store.project_formerly_named(db, "q")["name"] == "r"
    assert store.project_formerly_named(db, "r") is None  # its name now, not a former one
    # The newest rename away from a name wins.
    other = store.create_project(db, "p")
    store.rename_project(db, other["id"], "s", actor="admin")
    assert store.project_formerly_named(db, "p")["id"] == other["id"]
    assert store.project_formerly_named(db, "\ud800") is None
    assert store.project_formerly_named(db, None) is None


def test_archive_hides_the_project_from_raters_and_unarchive_restores_it(db):
    project = make_project(db)
    other = store.create_project(db, "other")
    ann, _ = store.create_rater(db, "ann")
    for p in (project, other):
        store.assign_rater(db, ann["id"], p["id"], actor="admin")
    rater = access.Identity(role="rater", mode="token", rater=ann)
    admin = access.Identity(role="admin", mode="local")
    store.submit_judgment(db, item_id=store.item_by_external(db, project["id"], "q0")["id"],
                          rater_id=ann["id"], submission_id="s1", outcome="tie")

    archived = store.set_project_archived(db, project["id"], True, actor="admin")
    assert archived["archived_at"] is not None
    assert store.set_project_archived(db, project["id"], True, actor="admin") == archived
    assert [p["name"] for p in access.visible_projects(db, rater)] == ["other"]
    assert [p["name"] for p in access.visible_projects(db, admin)] == ["other"]
    assert [p["name"] for p in store.list_projects(db)] == ["p", "other"]
    with pytest.raises(AccessDenied, match="project 'p' is archived: it takes no more ratings"):
        store.claim_next(db, project["id"], ann["id"])
    assert worker.schedule_due_jobs(db) == []  # the judgment would make a refit due
    # A link to it says it is archived, to those it was theirs only.
    zed, _ = store.create_rater(db, "zed")
    stranger = access.Identity(role="rater", mode="token", rater=zed)
    assert access.archived_project(db, rater, "p")["id"] == project["id"]
    assert access.archived_project(db, admin, "p")["id"] == project["id"]
    assert access.archived_project(db, stranger, "p") is None
    assert access.archived_project(db, rater, "other") is None
    assert access.archived_project(db, rater, "\ud800") is None
    assert access.archived_project(db, rater, None) is None

    store.set_project_archived(db, project["id"], False, actor="admin")
    assert store.get_project(db, project["id"])["archived_at"] is None
    assert [p["name"] for p in access.visible_projects(db, rater)] == ["p", "other"]
    assert access.archived_project(db, rater, "p") is None
    assert served(db, project, ann) == "q1"
    assert len(worker.schedule_due_jobs(db)) == 1
    assert audit(db, project, since=2) == [
        ("admin", "archive_project", {"name": "p"}),
        ("admin", "unarchive_project", {"name": "p"})]
