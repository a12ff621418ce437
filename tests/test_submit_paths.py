"""PostgreSQL's submit in one call (m011) against the checked path it stands in for.

A plain submit is one statement, ``prefstore_submit_one``; anything else falls
back to the checked path, which reads the item first. Both must answer and
store exactly the same for every kind of submit, valid or not.
"""

import random
import time

import pytest

from prefstore import store
from prefstore.store import judgments
from tests.conftest import drop_pg_database, new_pg_database

pytestmark = pytest.mark.both_backends


def build(db) -> dict:
    pairs = store.create_project(db, "pairs", "pairwise", {"raters_per_item": 2, "gold_rate": 0.0})
    slate = store.create_project(db, "slate", "slate", {"raters_per_item": 2, "gold_rate": 0.0})
    store.insert_items(db, pairs["id"], [
        {"external_id": f"p{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"r{i}.{k}", "system": f"s{k}"} for k in range(2)]}
        for i in range(6)])
    store.insert_items(db, slate["id"], [
        {"external_id": f"s{i}", "prompt": f"slate {i}",
         "responses": [{"text": f"t{i}.{k}", "system": f"s{k}"} for k in range(3)]}
        for i in range(2)])
    ids = {row[0]: row[1] for row in db.execute("SELECT external_id, id FROM items")}
    raters = {name: store.create_rater(db, name, kind=kind, with_token=False)[0]["id"]
              for name, kind in (("ann", "human"), ("bob", "human"), ("judge", "llm"))}
    store.set_item_excluded(db, pairs["id"], "p5", True, actor="admin")
    return {"pairs": pairs["id"], "slate": slate["id"], "items": ids, "raters": raters}


def run(db) -> tuple[list, list[int]]:
    """Submit every case; return what each answered and how many statements it took."""
    ids = build(db)
    item, rater = ids["items"], ids["raters"]
    statements: list[int] = []
    real_execute = db.execute
    real_direct = getattr(db, "execute_direct", None)

    def counted(sql, params=None):
        statements[-1] += 1
        return real_execute(sql, params)

    def counted_direct(sql, params):
        statements[-1] += 1
        return real_direct(sql, params)

    answers = []

    def submit(**kwargs):
        statements.append(0)
        db.execute, db.execute_direct = counted, counted_direct
        try:
            answers.append(store.submit_judgment(db, **kwargs))
        except Exception as exc:
            answers.append((type(exc).__name__, str(exc)))
        finally:
            db.execute, db.execute_direct = real_execute, real_direct

    full = dict(strength=2, display_order=[1, 0], time_ms=500, aspects={"clarity": 1},
                rationale="because", reason_tags=["facts"], metadata={"m": 1}, edited="e")
    submit(item_id=item["p0"], rater_id=rater["ann"], submission_id="a1", choice=0, **full)
    submit(item_id=item["p0"], rater_id=rater["ann"], submission_id="a1", choice=1)  # again
    submit(item_id=item["s0"], rater_id=rater["ann"], submission_id="a2", ranking=[2, 0, 1],
           time_ms=10)
    submit(item_id=item["s1"], rater_id=rater["ann"], submission_id="a3", choice=2,
           display_order=(2, 1, 0), time_ms=10)
    submit(item_id=item["p1"], rater_id=rater["ann"], submission_id="a4", choice="tie",
           strength=0, time_ms=10)
    submit(item_id=item["p2"], rater_id=rater["ann"], submission_id="a5", outcome="both_bad",
           time_ms=10)
    # The item's real count differs from what the label implies.
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b1", choice=2)
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b2", ranking=[0, 1, 2])
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b3", choice=0,
           display_order=[0, 1, 2])
    submit(item_id=item["s0"], rater_id=rater["bob"], submission_id="b4", ranking=[1, 0])
    # Labels that fail before the database is asked.
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b5", choice=-1)
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b6", choice=0,
           display_order=[0, 0])
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b7", choice=0,
           display_order="01")
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b8", choice=0, strength=7)
    submit(item_id=item["p1"], rater_id=rater["bob"], submission_id="b9", choice=True)
    # No such item, rater; an excluded item (stored, counted nowhere).
    submit(item_id=10**9, rater_id=rater["bob"], submission_id="c1", choice=0)
    submit(item_id=item["p1"], rater_id=10**9, submission_id="c2", choice=0)
    submit(item_id=item["p5"], rater_id=rater["bob"], submission_id="c3", choice=1, time_ms=10)
    # Claims: the order and the time come from the claim; another rater's claim is refused.
    claim = store.claim_next(db, ids["pairs"], rater["bob"], rng=random.Random(1))
    submit(item_id=claim["item_id"], rater_id=rater["bob"], submission_id="d1", choice=1,
           assignment_id=claim["id"])
    ann_claim = store.claim_next(db, ids["pairs"], rater["ann"], rng=random.Random(2))
    submit(item_id=ann_claim["item_id"], rater_id=rater["bob"], submission_id="d2", choice=1,
           assignment_id=ann_claim["id"])
    submit(item_id=item["p2"], rater_id=rater["bob"], submission_id="d3", choice=1,
           assignment_id=claim["id"])  # the claim was on another item
    # The LLM judge's kind comes from its rater; a kind given wins.
    submit(item_id=item["p0"], rater_id=rater["judge"], submission_id="e1", choice=1, time_ms=9)
    submit(item_id=item["p2"], rater_id=rater["bob"], submission_id="e2", choice=0, time_ms=9,
           kind="llm")
    # The second human closes p0: its counters move.
    submit(item_id=item["p0"], rater_id=rater["bob"], submission_id="e3", choice=0, time_ms=9)
    return answers, statements


def state(db) -> dict:
    rows = [dict(r) for r in db.query(
        "SELECT j.id, i.external_id, r.name, j.kind, j.display_order, j.outcome, j.choice, "
        "j.ranking, j.strength, j.aspects, j.rationale, j.reason_tags, j.edited, j.metadata, "
        "j.time_ms, j.submission_id FROM judgments j JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id ORDER BY j.id")]
    return {
        "judgments": rows,
        "items": db.execute("SELECT external_id, n_human FROM items ORDER BY id").fetchall(),
        "open": db.execute("SELECT name, open_items FROM projects ORDER BY id").fetchall(),
        "progress": db.execute("SELECT rater_id, project_id, done, skipped, open_mine "
                               "FROM rater_counts ORDER BY rater_id, project_id").fetchall(),
        "claims": db.execute("SELECT rater_id, item_id, status FROM assignments "
                             "ORDER BY id").fetchall(),
    }


def by_submission(answers: list, stored: dict) -> list:
    """Name each stored judgment by its submission id, and drop the ids."""
    names = {row.pop("id"): row["submission_id"] for row in stored["judgments"]}
    return [(names[a[0]], a[1]) if isinstance(a[0], int) else a for a in answers]


def test_one_call_answers_and_stores_as_the_checked_path(db, pg_server, monkeypatch):
    if db.dialect != "postgres":
        pytest.skip("PostgreSQL-specific: SQLite's submit is one locked transaction")
    started = time.time()
    fast, fast_statements = run(db)
    fast_state = state(db)
    elapsed_ms = (time.time() - started) * 1000
    checked_url = new_pg_database(pg_server)
    try:
        checked_db = store.connect(checked_url)
        monkeypatch.setattr(judgments, "_submit_in_one_call", lambda db, **kwargs: None)
        checked, checked_statements = run(checked_db)
        checked_state = state(checked_db)
        checked_db.close()
    finally:
        drop_pg_database(pg_server, checked_url)

    # Ids may differ: an insert that meets a double submit uses up a sequence value.
    fast, checked = by_submission(fast, fast_state), by_submission(checked, checked_state)
    assert fast == checked
    # The claim's time is the server's clock: equal up to when each run made it.
    claimed = [r for r in fast_state["judgments"] if r["submission_id"] == "d1"]
    assert len(claimed) == 1 and 1 <= claimed[0]["time_ms"] <= elapsed_ms
    for rows in (fast_state["judgments"], checked_state["judgments"]):
        for row in rows:
            if row["submission_id"] == "d1":
                row["time_ms"] = "clock"
    assert fast_state == checked_state
    assert [r["submission_id"] for r in fast_state["judgments"]] == [
        "a1", "a2", "a3", "a4", "a5", "c3", "d1", "e1", "e2", "e3"]
    assert fast[:3] == [("a1", True), ("a1", False), ("a2", True)]
    assert fast[6] == ("InvalidInput",
                       'judgment: "choice" must be a response index 0..1, "tie" or "both_bad", '
                       "got 2")
    assert fast[15][0] == "NotFound" and fast[16][0] == "NotFound"
    assert fast[19][0] == fast[20][0] == "InvalidInput"
    assert "is not this rater's claim" in fast[19][1]

    # Every plain submit is one statement; what the database refuses falls back to
    # the checked path's reads, as do labels refused before it is asked.
    plain = [0, 1, 2, 3, 4, 5, 17, 18, 21, 22, 23]
    refused_by_the_database = [6, 7, 8, 9, 15, 16, 19, 20]
    refused_here = [10, 11, 12, 13, 14]
    assert len(fast) == 24
    assert [fast_statements[k] for k in plain] == [1] * len(plain)
    # (The checked path's first read finds a double submit: one statement too.)
    assert [checked_statements[k] for k in plain] == [2, 1] + [2] * (len(plain) - 2)
    assert [fast_statements[k] for k in refused_by_the_database] == [
        1 + checked_statements[k] for k in refused_by_the_database]
    assert [fast_statements[k] for k in refused_here] == [
        checked_statements[k] for k in refused_here]
