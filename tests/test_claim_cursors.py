"""Claims that start at the rater's cursor serve exactly what a walk from the start would."""

import datetime as dt
import random

import pytest

from prefstore import store
from tests.reliability import workload

pytestmark = pytest.mark.both_backends

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def items(prefix, n):
    return [{"external_id": f"{prefix}{i}", "prompt": f"prompt {prefix}{i}",
             "responses": [{"text": f"{prefix}{i}.a", "system": "s0"},
                           {"text": f"{prefix}{i}.b", "system": "s1"}]} for i in range(n)]


def expected_next(db, project_id, rater_id, now):
    """The first item open to the rater, in queue order, computed from the tables alone."""
    cap = store.get_project(db, project_id)["settings"].raters_per_item
    now_s = store.connection.now_iso(now)
    held = {}
    for item_id, status, expires_at in db.execute(
            "SELECT item_id, status, expires_at FROM assignments").fetchall():
        if status == "claimed" and expires_at > now_s:
            held[item_id] = held.get(item_id, 0) + 1
    mine = {item_id for item_id, status, expires_at in db.execute(
        "SELECT item_id, status, expires_at FROM assignments WHERE rater_id = ?",
        [rater_id]).fetchall() if status != "claimed" or expires_at > now_s}
    mine |= {r[0] for r in db.execute("SELECT item_id FROM judgments WHERE rater_id = ?",
                                      [rater_id]).fetchall()}
    open_items = [
        (rank, n_human, -priority, item_id)
        for item_id, rank, n_human, priority, excluded in db.execute(
            "SELECT id, queue_rank, n_human, priority, excluded_at FROM items "
            "WHERE project_id = ? AND is_gold = 0", [project_id]).fetchall()
        if rank < 2 and excluded is None and n_human + held.get(item_id, 0) < cap
        and item_id not in mine]
    return min(open_items)[3] if open_items else None


def open_items_counted(db, project_id):
    cap = store.get_project(db, project_id)["settings"].raters_per_item
    return db.execute("SELECT COUNT(*) FROM items WHERE project_id = ? AND queue_rank < 2 "
                      "AND n_human < ? AND excluded_at IS NULL", [project_id, cap]).fetchone()[0]


def served_counted(db, project_id):
    return sorted(tuple(r) for r in db.execute(
        "SELECT a.rater_id, COUNT(*), SUM(i.is_gold) FROM assignments a "
        "JOIN items i ON i.id = a.item_id WHERE i.project_id = ? GROUP BY a.rater_id",
        [project_id]).fetchall())


def served_kept(db, project_id):
    return sorted(tuple(r) for r in db.execute(
        "SELECT rater_id, served, served_gold FROM served_counts WHERE project_id = ? "
        "AND served > 0", [project_id]).fetchall())


def open_items_kept(db, project_id):
    return db.execute("SELECT open_items FROM projects WHERE id = ?", [project_id]).fetchone()[0]


def test_cursor_claims_match_a_walk_from_the_start(db):
    """Random sessions of three raters with every event that can reopen an item.

    After every step the project's open-item counter equals a count from the items,
    and the served counters a count from the assignments.
    """
    rng = random.Random(7)
    project = store.create_project(db, "p", "pairwise",
                                   {"raters_per_item": 2, "gold_rate": 0.0,
                                    "claim_ttl_seconds": 60})
    pid = project["id"]
    store.insert_items(db, pid, items("a", 30))
    raters = [store.create_rater(db, name)[0] for name in ("ann", "bob", "cy")]
    importer, _ = store.create_rater(db, "imported")
    now = T0
    claims = {}
    checked = {"cursor": 0, "claims": 0}
    new_items = 0
    for step in range(400):
        now += dt.timedelta(seconds=1)
        rater = rng.choice(raters)
        action = rng.random()
        open_claim = claims.get(rater["id"])
        if open_claim is not None and open_claim["expires_at"] <= store.connection.now_iso(now):
            del claims[rater["id"]]  # lapsed: the next claim walks again
            open_claim = None
        if open_claim is None and action < 0.6:
            cursors = db.execute("SELECT COUNT(*) FROM claim_cursors WHERE rater_id = ?",
                                 [rater["id"]]).fetchone()[0]
            want = expected_next(db, pid, rater["id"], now)
            claim = store.claim_next(db, pid, rater["id"], now=now, rng=rng)
            assert (claim and claim["item_id"]) == want, f"step {step}"
            checked["claims"] += 1
            checked["cursor"] += cursors > 0
            if claim:
                claims[rater["id"]] = claim
        elif open_claim is not None and action < 0.8:
            store.submit_judgment(db, item_id=open_claim["item_id"], rater_id=rater["id"],
                                  submission_id=f"s{step}", choice=rng.randrange(2),
                                  assignment_id=open_claim["id"])
            del claims[rater["id"]]
        elif open_claim is not None and action < 0.85:
            store.release_assignment(db, open_claim["id"], rater["id"],
                                     status=rng.choice(["skipped", "flagged"]))
            del claims[rater["id"]]
        elif action < 0.87:
            now += dt.timedelta(seconds=61)  # every open claim lapses
        elif action < 0.88:  # an imported judgment fills an item outside the queue
            fresh = [r[0] for r in db.execute(
                "SELECT id FROM items WHERE project_id = ? AND id NOT IN "
                "(SELECT item_id FROM judgments WHERE rater_id = ?)", [pid, importer["id"]])]
            if fresh:
                store.insert_judgments(db, [{
                    "item_id": rng.choice(fresh), "rater_id": importer["id"], "kind": "human",
                    "outcome": "choice", "choice": 0, "display_order": [0, 1],
                    "submission_id": f"import-{step}"}])
        elif action < 0.9:
            store.insert_items(db, pid, items(f"n{new_items}-", 2))
            new_items += 1
        elif action < 0.93:
            item = rng.choice(list(db.query("SELECT external_id, excluded_at FROM items "
                                            "WHERE project_id = ?", [pid])))
            store.set_item_excluded(db, pid, item["external_id"], item["excluded_at"] is None,
                                    actor="admin")
        elif action < 0.96:
            ids = [r[0] for r in db.execute("SELECT id FROM items WHERE project_id = ?", [pid])]
            store.save_routing(db, pid, [
                {"item_id": i, "decision": rng.choice(["human", "llm", "both"]),
                 "priority": rng.choice([0.0, 0.5, 1.0])}
                for i in rng.sample(ids, 6)])
        elif action < 0.965:  # a gold mark changes what was served as gold
            item_id = rng.choice([r[0] for r in db.execute(
                "SELECT id FROM items WHERE project_id = ?", [pid])])
            store.set_item_gold(db, pid, item_id, choice=rng.choice([0, None]), actor="admin")
        elif action < 0.97:  # deactivated and back: their open claim is gone
            store.set_rater_active(db, rater["id"], False, actor="admin")
            store.set_rater_active(db, rater["id"], True, actor="admin")
            claims.pop(rater["id"], None)
        elif action < 0.98:
            store.update_project_settings(db, pid, {"raters_per_item": rng.choice([2, 3])},
                                          actor="admin")
        else:
            queue = [e for e in store.review_queue(db, pid) if e["resolution"] is None]
            if queue:
                entry = rng.choice(queue)
                store.resolve_review(db, pid, entry["item"], entry["rater"],
                                     rng.choice(["requeue", "exclude"]), actor="admin", now=now)
        assert open_items_kept(db, pid) == open_items_counted(db, pid), f"step {step}"
        assert served_kept(db, pid) == served_counted(db, pid), f"step {step}"
        assert (workload.progress_kept(db, pid) == workload.progress_counted(db, pid)
                ), f"step {step}"
    assert checked["claims"] > 150 and checked["cursor"] > 100, checked


def test_cursor_is_the_last_item_served_in_its_queue(db):
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 2, "gold_rate": 0.0})
    store.insert_items(db, project["id"], items("a", 3))
    ann, _ = store.create_rater(db, "ann")
    epoch = db.execute("SELECT queue_epoch FROM projects WHERE id = ?",
                       [project["id"]]).fetchone()[0]
    claim = store.claim_next(db, project["id"], ann["id"], now=T0)
    store.submit_judgment(db, item_id=claim["item_id"], rater_id=ann["id"], submission_id="s1",
                          choice=0, assignment_id=claim["id"])
    second = store.claim_next(db, project["id"], ann["id"], now=T0)
    assert (claim["item_id"], second["item_id"]) == (1, 2)
    rows = db.execute("SELECT rater_id, project_id, is_gold, queue_rank, epoch, claimed_at, "
                      "n_human, priority, item_id FROM claim_cursors").fetchall()
    assert [tuple(r) for r in rows] == [
        (ann["id"], project["id"], 0, 1, epoch, store.connection.now_iso(T0), 0, 0.0, 2)]


@pytest.mark.parametrize("event", ["include", "settings", "skip", "deactivate", "unassign",
                                   "expiry", "requeue"])
def test_events_that_reopen_an_item_before_the_cursor(db, event):
    """Each event puts item 1, before ann's cursor (item 2), back in her reach."""
    project = store.create_project(db, "p", "pairwise",
                                   {"raters_per_item": 1, "gold_rate": 0.0,
                                    "claim_ttl_seconds": 60})
    pid = project["id"]
    store.insert_items(db, pid, items("a", 4))
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    now = T0
    if event in ("include", "requeue"):
        if event == "include":
            store.set_item_excluded(db, pid, "a0", True, actor="admin")
        else:  # ann skips item 1: closed to her until the admin requeues it
            claim = store.claim_next(db, pid, ann["id"], now=now)
            store.release_assignment(db, claim["id"], ann["id"], status="skipped")
    else:
        assert store.claim_next(db, pid, bob["id"], now=now)["item_id"] == 1
    first = store.claim_next(db, pid, ann["id"], now=now)
    assert first["item_id"] == 2
    store.submit_judgment(db, item_id=2, rater_id=ann["id"], submission_id="x", choice=0,
                          assignment_id=first["id"])
    # Without the event the walk goes on from the cursor.
    assert expected_next(db, pid, ann["id"], now) == 3
    bob_claim = db.execute("SELECT id FROM assignments WHERE rater_id = ?",
                           [bob["id"]]).fetchone()
    if event == "include":
        store.set_item_excluded(db, pid, "a0", False, actor="admin")
    elif event == "settings":
        store.update_project_settings(db, pid, {"raters_per_item": 2}, actor="admin")
    elif event == "skip":
        store.release_assignment(db, bob_claim[0], bob["id"], status="skipped")
    elif event == "deactivate":
        store.set_rater_active(db, bob["id"], False, actor="admin")
    elif event == "unassign":
        store.assign_rater(db, bob["id"], pid)
        store.unassign_rater(db, bob["id"], pid)
    elif event == "requeue":
        store.resolve_review(db, pid, "a0", "ann", "requeue", actor="admin", now=now)
    else:
        now += dt.timedelta(seconds=61)
    assert expected_next(db, pid, ann["id"], now) == 1
    assert store.claim_next(db, pid, ann["id"], now=now)["item_id"] == 1


def test_new_items_and_routing_reach_raters_with_a_cursor(db):
    """A new item (fewer judgments) and a higher routing priority both come before the cursor."""
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 3, "gold_rate": 0.0})
    pid = project["id"]
    store.insert_items(db, pid, items("a", 4))
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    for k in range(4):  # bob rates everything: every item is at level 1
        claim = store.claim_next(db, pid, bob["id"], now=T0)
        store.submit_judgment(db, item_id=claim["item_id"], rater_id=bob["id"],
                              submission_id=f"b{k}", choice=0, assignment_id=claim["id"])

    def rate(expected):
        claim = store.claim_next(db, pid, ann["id"], now=T0)
        assert claim["item_id"] == expected
        store.submit_judgment(db, item_id=expected, rater_id=ann["id"],
                              submission_id=f"a{expected}", choice=0, assignment_id=claim["id"])

    rate(1)                                        # cursor: level 1, item 1
    store.insert_items(db, pid, items("b", 1))     # item 5 at level 0
    rate(5)
    store.save_routing(db, pid, [{"item_id": 2, "decision": "human", "priority": 0.5},
                                 {"item_id": 3, "decision": "human", "priority": 0.2}])
    rate(2)                                        # rank 0 cursor: priority 0.5, item 2
    store.save_routing(db, pid, [{"item_id": 3, "decision": "human", "priority": 0.2},
                                 {"item_id": 4, "decision": "human", "priority": 1.0}])
    rate(4)                                        # priority 1.0 comes before the cursor
    rate(3)
    assert store.claim_next(db, pid, ann["id"], now=T0) is None


def test_a_submit_counts_with_the_cap_stored_when_it_writes(db, monkeypatch):
    """A settings change can commit between a submit's first read and its write.

    PostgreSQL's submit reads the cap again under the project's counter lock, so
    the item closes by the cap stored then, not by the one its first read saw.
    """
    if db.dialect != "postgres":
        pytest.skip("PostgreSQL-specific: SQLite reads and writes in one locked transaction")
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 1, "gold_rate": 0.0})
    pid = project["id"]
    store.insert_items(db, pid, items("a", 2))
    ann, _ = store.create_rater(db, "ann")
    stale = store.projects.settings_from_text(
        '{"raters_per_item": 3, "gold_rate": 0.0}')  # what a read before the change saw
    monkeypatch.setattr(store.judgments, "settings_from_text", lambda text: stale)
    claim = store.claim_next(db, pid, ann["id"], now=T0)
    store.submit_judgment(db, item_id=claim["item_id"], rater_id=ann["id"], submission_id="s",
                          choice=0, assignment_id=claim["id"])
    assert open_items_kept(db, pid) == open_items_counted(db, pid) == 1
    assert workload.progress_kept(db, pid) == workload.progress_counted(db, pid) == [
        (ann["id"], 1, 0, 0)]


def test_a_claim_carries_its_item_as_get_item_returns_it(db, monkeypatch):
    """PostgreSQL returns the item from the claim's one call: the same dict as get_item."""
    if db.dialect == "postgres":  # the common claim never needs the Python path
        monkeypatch.setattr(store.claims, "_claim", lambda *a, **k: pytest.fail("fallback"))
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 2, "gold_rate": 0.0})
    pid = project["id"]
    store.insert_items(db, pid, [{
        "external_id": "x", "messages": [{"role": "user", "content": "hi é"}],
        "metadata": {"k": [1, 2.5, None]}, "category": "c",
        "responses": [{"text": "a", "system": "s0"}, {"text": "b", "system": None},
                      {"text": "c", "system": "s2"}]}])
    ann, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, pid, ann["id"], now=T0)
    assert claim["item"] == store.get_item(db, claim["item_id"])
    assert sorted(claim["display_order"]) == [0, 1, 2]
    stored = store.get_assignment(db, claim["id"])
    assert {k: stored[k] for k in claim} == claim
    again = store.claim_next(db, pid, ann["id"], now=T0 + dt.timedelta(seconds=5))
    assert again == {**stored, "item": claim["item"]}  # the open claim, resumed


def test_more_responses_than_order_keys_and_unreadable_items(db):
    """The rare cases of a claim: an item with many responses is shown in a random
    order of all of them; an item whose data cannot be read is flagged and skipped."""
    project = store.create_project(db, "p", "slate", {"raters_per_item": 2, "gold_rate": 0.0})
    pid = project["id"]
    many = store.claims.ORDER_KEYS + 2
    deep = "[" * 5000 + "]" * 5000  # valid JSON, too deep for Python's parser
    bad, wide = store.insert_items(db, pid, [
        {"external_id": "bad", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]},
        {"external_id": "wide", "prompt": "p",
         "responses": [{"text": f"r{k}"} for k in range(many)]}])
    db.execute("UPDATE items SET metadata = ? WHERE id = ?", [deep, bad])
    ann, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, pid, ann["id"], now=T0)
    assert claim["item_id"] == wide
    assert sorted(claim["display_order"]) == list(range(many))
    assert claim["item"] == store.get_item(db, wide)
    assert db.execute("SELECT status, reason FROM assignments WHERE item_id = ?",
                      [bad]).fetchall() == [("flagged", "could not be shown: RecursionError")]
