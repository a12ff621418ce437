import datetime as dt
import multiprocessing as mp
import random
import subprocess
import threading

import pytest

from prefstore import store
from prefstore.errors import AccessDenied, Conflict, InvalidInput

pytestmark = pytest.mark.both_backends


def make_project(db, n_items=5, n_responses=2, **settings):
    project = store.create_project(
        db, "p", "pairwise" if n_responses == 2 else "slate", {"gold_rate": 0.0, **settings}
    )
    store.insert_items(
        db,
        project["id"],
        [
            {
                "external_id": f"q{i}",
                "prompt": f"prompt {i}",
                "responses": [{"text": f"r{i}.{k}", "system": f"s{k}"} for k in range(n_responses)],
            }
            for i in range(n_items)
        ],
    )
    return project


@pytest.mark.sqlite_only("SQLite's pragmas")
def test_pragmas(db):
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == store.BUSY_TIMEOUT_MS
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_tables_exist(db):
    assert {
        "projects",
        "items",
        "responses",
        "raters",
        "assignments",
        "judgments",
        "fits",
        "jobs",
        "routing",
        "workers",
        "audit_log",
    } <= set(db.table_names())


def test_double_submit_stores_one_row(db):
    project = make_project(db)
    rater, _ = store.create_rater(db, "ann")
    claim = store.claim_next(db, project["id"], rater["id"])
    kwargs = dict(
        item_id=claim["item_id"],
        rater_id=rater["id"],
        submission_id="sub-1",
        choice=1,
        strength=2,
        assignment_id=claim["id"],
    )
    first = store.submit_judgment(db, **kwargs)
    second = store.submit_judgment(db, **kwargs)
    assert first == (first[0], True)
    assert second == (first[0], False)
    assert store.count_judgments(db) == 1
    assert store.get_item(db, claim["item_id"])["n_human"] == 1
    row = store.list_judgments(db)[0]
    assert row["display_order"] == claim["display_order"]
    assert row["time_ms"] >= 1


def test_judgments_are_append_only(db):
    project = make_project(db)
    rater, _ = store.create_rater(db, "ann")
    store.submit_judgment(db, item_id=1, rater_id=rater["id"], submission_id="s", choice=0)
    with pytest.raises(store.driver_errors(), match="append-only"):
        db.execute("UPDATE judgments SET choice = 1")
    with pytest.raises(store.driver_errors(), match="append-only"):
        db.execute("DELETE FROM judgments")
    assert project["id"] == 1


def test_claim_resumes_open_claim_and_never_repeats(db):
    project = make_project(db, n_items=3, raters_per_item=1)
    rater, _ = store.create_rater(db, "ann")
    first = store.claim_next(db, project["id"], rater["id"])
    assert store.claim_next(db, project["id"], rater["id"])["id"] == first["id"]
    served = []
    claim = first
    while claim:
        served.append(claim["item_id"])
        store.submit_judgment(
            db,
            item_id=claim["item_id"],
            rater_id=rater["id"],
            submission_id=f"s{claim['item_id']}",
            choice=0,
            assignment_id=claim["id"],
        )
        claim = store.claim_next(db, project["id"], rater["id"])
    assert served == [1, 2, 3]
    assert store.rater_progress(db, project["id"], rater["id"]) == {
        "done": 3, "skipped": 0, "k": 3, "n": 3, "remaining": 0}


def test_progress_total_moves_only_when_items_are_added_or_filled_by_others(db):
    """Regression: "1 of 20", "2 of 21" ... "12 of 31" in a 20-item project."""
    project = make_project(db, n_items=20, raters_per_item=2)
    ann, bob, cy = (store.create_rater(db, n)[0] for n in ("ann", "bob", "cy"))

    def progress(rater):
        p = store.rater_progress(db, project["id"], rater["id"])
        return p["k"], p["n"]

    def rate(rater, n, skip=False):
        for _ in range(n):
            claim = store.claim_next(db, project["id"], rater["id"])
            if skip:
                store.release_assignment(db, claim["id"], rater["id"], status="skipped")
            else:
                store.submit_judgment(db, item_id=claim["item_id"], rater_id=rater["id"],
                                      submission_id=f"{rater['name']}{claim['item_id']}",
                                      choice=0, assignment_id=claim["id"])

    assert progress(ann) == (0, 20)
    for k in range(1, 13):
        rate(ann, 1)
        assert progress(ann) == (k, 20)        # the total stays put while ann rates
    rate(ann, 2, skip=True)
    assert progress(ann) == (14, 20)           # skips count as done
    # bob and cy fill the last 6 items (the ones ann never saw): ann can no longer get them.
    rate(bob, 20)
    assert progress(bob) == (20, 20)
    # cy takes items 13..18 (one judgment each so far, lowest ids first) and fills them:
    # ann skipped 13 and 14 (still hers), but 15..18 were open to her and now are not.
    rate(cy, 6)
    assert progress(ann) == (14, 16)
    store.insert_items(db, project["id"], [{"external_id": "new", "prompt": "p",
                                            "responses": [{"text": "a"}, {"text": "b"}]}])
    assert progress(ann) == (14, 17)
    rate(ann, 3)
    assert progress(ann) == (17, 17) and store.claim_next(db, project["id"], ann["id"]) is None


def test_claims_expire(db):
    project = make_project(db, n_items=1, raters_per_item=1, claim_ttl_seconds=60)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert store.claim_next(db, project["id"], ann["id"], now=t0)["item_id"] == 1
    assert store.claim_next(db, project["id"], bob["id"], now=t0) is None
    later = t0 + dt.timedelta(seconds=61)
    assert store.claim_next(db, project["id"], bob["id"], now=later)["item_id"] == 1
    # ann's claim lapsed and bob holds the only slot now.
    assert store.claim_next(db, project["id"], ann["id"], now=later) is None


def test_skip_frees_the_slot_and_is_recorded(db):
    project = make_project(db, n_items=1, raters_per_item=1)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    claim = store.claim_next(db, project["id"], ann["id"])
    store.release_assignment(db, claim["id"], ann["id"], status="flagged", reason="harmful")
    assert store.claim_next(db, project["id"], ann["id"]) is None
    assert store.claim_next(db, project["id"], bob["id"])["item_id"] == 1
    rows = list(db.query("SELECT rater_id, status, reason FROM assignments ORDER BY id"))
    assert rows == [
        {"rater_id": ann["id"], "status": "flagged", "reason": "harmful"},
        {"rater_id": bob["id"], "status": "claimed", "reason": None},
    ]


def test_gold_items_served_at_rate(db):
    project = store.create_project(db, "g", "pairwise", {"gold_rate": 0.25, "raters_per_item": 1})
    store.insert_items(
        db,
        project["id"],
        [
            {
                "external_id": f"q{i}",
                "prompt": "p",
                "responses": [{"text": "a"}, {"text": "b"}],
                "gold": {"choice": 0} if i >= 10 else None,
            }
            for i in range(14)
        ],
    )
    rater, _ = store.create_rater(db, "ann")
    gold_flags = []
    for k in range(12):
        claim = store.claim_next(db, project["id"], rater["id"])
        gold_flags.append(claim["item"]["is_gold"])
        store.submit_judgment(
            db,
            item_id=claim["item_id"],
            rater_id=rater["id"],
            submission_id=str(k),
            choice=0,
            assignment_id=claim["id"],
        )
    assert gold_flags == [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_llm_routed_items_are_not_served_to_humans(db):
    project = make_project(db, n_items=3)
    store.save_routing(
        db, project["id"], [{"item_id": 1, "decision": "llm"}, {"item_id": 3, "decision": "human"}]
    )
    rater, _ = store.create_rater(db, "ann")
    order = []
    while claim := store.claim_next(db, project["id"], rater["id"]):
        order.append(claim["item_id"])
        store.release_assignment(db, claim["id"], rater["id"], status="skipped")
    assert order == [3, 2]


def _claim_worker(path, rater_name, barrier, out):
    db = store.connect(path)
    rater = store.get_rater(db, rater_name)
    barrier.wait()
    got = []
    while claim := store.claim_next(db, 1, rater["id"]):
        got.append(claim["item_id"])
        store.submit_judgment(
            db,
            item_id=claim["item_id"],
            rater_id=rater["id"],
            submission_id=f"{rater_name}-{claim['item_id']}",
            choice=random.randint(0, 1),
            assignment_id=claim["id"],
        )
    out.put((rater_name, got))


def test_concurrent_claims_respect_raters_per_item(db_path):
    db = store.connect(db_path)
    make_project(db, n_items=20, raters_per_item=2)
    names = [f"r{i}" for i in range(5)]
    for name in names:
        store.create_rater(db, name)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(5), ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(str(db_path), n, barrier, out)) for n in names]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    per_item = {}
    for name, items in results.items():
        assert len(items) == len(set(items)), f"{name} got an item twice"
        for item in items:
            per_item.setdefault(item, []).append(name)
    assert sorted(per_item) == list(range(1, 21))
    assert {item: len(raters) for item, raters in per_item.items()} == {
        item: 2 for item in range(1, 21)}, per_item
    counts = db.execute(
        "SELECT item_id, COUNT(*), COUNT(DISTINCT rater_id) FROM judgments GROUP BY item_id"
    ).fetchall()
    assert counts == [(i, 2, 2) for i in range(1, 21)]
    # Every item reached its quota in a race for its last slot: each closed exactly once.
    assert db.execute("SELECT open_items FROM projects").fetchone()[0] == 0


def test_threads_use_their_own_connections(db_path):
    db = store.connect(db_path)
    make_project(db, n_items=30, raters_per_item=3)
    for i in range(6):
        store.create_rater(db, f"t{i}")
    errors = []

    def work(i):
        try:
            own = store.connect(db_path)
            rater = store.get_rater(own, f"t{i}")
            while claim := store.claim_next(own, 1, rater["id"]):
                store.submit_judgment(
                    own,
                    item_id=claim["item_id"],
                    rater_id=rater["id"],
                    submission_id=str(claim["id"]),
                    choice=0,
                    assignment_id=claim["id"],
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_judgments(db) == 90


def test_tokens_are_stored_hashed(db, db_path, backend):
    rater, token = store.create_rater(db, "ann")
    assert rater["token_hash"] == store.hash_token(token)
    assert store.rater_for_token(db, token)["name"] == "ann"
    db.close()
    if backend == "sqlite":
        assert token.encode() not in db_path.read_bytes()
    db = store.connect(db_path)
    stored = [str(value) for row in db.query("SELECT * FROM raters") for value in row.values()]
    assert not any(token in value for value in stored)
    with pytest.raises(AccessDenied) as wrong:
        store.rater_for_token(db, token + "x")
    with pytest.raises(AccessDenied) as missing:
        store.rater_for_token(db, None)
    assert str(wrong.value) == str(missing.value)
    store.set_rater_active(db, rater["id"], False)
    with pytest.raises(AccessDenied) as inactive:
        store.rater_for_token(db, token)
    assert str(inactive.value) == str(missing.value)
    new = store.rotate_token(db, rater["id"])
    store.set_rater_active(db, rater["id"], True)
    assert store.rater_for_token(db, new)["id"] == rater["id"]
    with pytest.raises(AccessDenied):
        store.rater_for_token(db, token)


def test_settings_validation_and_audit(db):
    with pytest.raises(InvalidInput, match="'raters_per_item' must be an integer from 1 to 1000, got 0"):
        store.create_project(db, "x", "pairwise", {"raters_per_item": 0})
    with pytest.raises(InvalidInput, match="unknown key"):
        store.create_project(db, "x", "pairwise", {"nope": 1})
    project = store.create_project(db, "x", "pairwise")
    with pytest.raises(Conflict):
        store.create_project(db, "x", "pairwise")
    store.update_project_settings(db, project["id"], {"raters_per_item": 5}, actor="admin")
    log = store.audit_log(db, project["id"])
    assert (log[0]["actor"], log[0]["action"], log[0]["details"]) == (
        "admin",
        "update_settings",
        {"raters_per_item": {"old": 3, "new": 5}},
    )


def test_backup_copies_a_live_database(db, tmp_path, backend, request):
    make_project(db)
    out = tmp_path / "copy.db"
    store.backup(db, out)
    if backend == "sqlite":
        copy = store.connect(out)
        assert store.integrity_check(copy) == "ok"
    else:  # a pg_dump archive: restore it into a new database
        from tests.conftest import drop_pg_database

        server = request.getfixturevalue("pg_server")
        import psycopg

        target = server.rsplit("/", 1)[0] + "/restored_backup"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS restored_backup WITH (FORCE)")
            conn.execute("CREATE DATABASE restored_backup")
        subprocess.run([store.connection.pg_tool("pg_restore"), "--dbname", target, str(out)],
                       check=True, capture_output=True)
        copy = store.connect(target)
        request.addfinalizer(lambda: drop_pg_database(server, target))
    assert store.project_stats(copy, 1)["items"] == 5


def test_jobs_lease_and_takeover(db):
    job_id = store.enqueue_job(db, "refit", project_id=None)
    assert store.enqueue_job(db, "refit", project_id=None) is None
    t0 = dt.datetime.now(dt.UTC)
    job = store.claim_job(db, "w1", lease_s=10, now=t0)
    assert (job["id"], job["lease_owner"], job["attempts"]) == (job_id, "w1", 1)
    assert store.claim_job(db, "w2", now=t0) is None
    taken = store.claim_job(db, "w2", now=t0 + dt.timedelta(seconds=11))
    assert (taken["id"], taken["lease_owner"], taken["attempts"]) == (job_id, "w2", 2)
    assert store.finish_job(db, job_id, "w1", result={}) is False
    assert store.finish_job(db, job_id, "w2", result={"ok": 1}) is True
    assert store.get_job(db, job_id)["status"] == "done"


def test_judge_setting_is_validated_when_saved(db):
    with pytest.raises(InvalidInput, match="^settings: 'judge': .*batch_size"):
        store.create_project(db, "j", "pairwise", {"judge": {"model": "m", "batch_size": 0}})
    project = store.create_project(db, "j", "pairwise", {"judge": {"model": "m"}})
    assert project["settings"].judge == {"model": "m"}


@pytest.mark.sqlite_only("builds a database of an older schema with sqlite-utils")
def test_an_older_database_is_migrated_keeping_access_and_names(tmp_path):
    import sqlite3

    from sqlite_utils import Database

    from prefstore.store import schema

    path = tmp_path / "old.db"
    old = Database(sqlite3.connect(path, isolation_level=None))
    schema._sqlite_migrations.apply(old, stop_before="m003_raters_and_projects")
    old.execute("INSERT INTO projects (id, name, kind, settings, pseudonym_salt, created_at) "
                "VALUES (1, 'p', 'pairwise', '{}', 's', 't'), (2, 'q', 'pairwise', '{}', 's', 't')")
    old.execute("INSERT INTO items (id, project_id, external_id, created_at) "
                "VALUES (1, 1, 'a', 't'), (2, 2, 'b', 't')")
    old.execute("INSERT INTO raters (id, name, kind, created_at) VALUES "
                "(1, 'Alice', 'human', 't'), (2, 'alice', 'human', 't'), (3, 'bob', 'human', 't')")
    old.execute("INSERT INTO judgments (item_id, rater_id, kind, outcome, choice, metadata, "
                "submission_id, created_at) VALUES (1, 1, 'human', 'choice', 0, '{}', 's1', 't')")
    old.execute("INSERT INTO assignments (item_id, rater_id, claimed_at, expires_at, status) "
                "VALUES (2, 3, 't', 't', 'skipped')")
    old.conn.close()

    db = store.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")] == [
        m.name for m in schema.MIGRATIONS]
    assert store.rater_project_ids(db, 1) == [1]   # judged in p
    assert store.rater_project_ids(db, 3) == [2]   # skipped an item of q
    assert store.rater_project_ids(db, 2) == []
    keys = dict(db.execute("SELECT name, name_key FROM raters").fetchall())
    assert keys == {"Alice": "alice", "alice": "alice#2", "bob": "bob"}


def test_assigning_raters_to_projects(db):
    p = store.create_project(db, "p")
    q = store.create_project(db, "q")
    rater, _ = store.create_rater(db, "ann")
    assert store.assign_rater(db, rater["id"], p["id"], actor="admin") is True
    assert store.assign_rater(db, rater["id"], p["id"], actor="admin") is False
    store.assign_rater(db, rater["id"], q["id"], actor="admin")
    assert store.rater_project_ids(db, rater["id"]) == [p["id"], q["id"]]
    assert store.project_rater_ids(db, q["id"]) == [rater["id"]]
    assert store.unassign_rater(db, rater["id"], q["id"], actor="admin") is True
    assert store.rater_project_ids(db, rater["id"]) == [p["id"]]
    assert [e["action"] for e in store.audit_log(db, q["id"])][:2] == [
        "unassign_rater", "assign_rater"]


@pytest.mark.sqlite_only("POSIX locks on a SQLite file")
def test_opening_a_second_handle_keeps_the_first_ones_locks(db, db_path):
    """Regression: connect() read the file's header with open()/close(), and closing any
    descriptor of the file drops every POSIX lock the process holds on it. Another process
    closing its connection then believed it was the last one, checkpointed and deleted the
    WAL under our open connections: acknowledged writes were lost, the file malformed."""
    import sys

    store.create_project(db, "p")
    assert (db_path.parent / (db_path.name + "-wal")).exists()
    second = store.connect(db_path)  # another thread's handle, say
    subprocess.run([sys.executable, "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT COUNT(*) FROM projects').fetchone(); c.close()",
                    str(db_path)], check=True, timeout=60)
    assert (db_path.parent / (db_path.name + "-wal")).exists()  # still ours: we are open
    store.create_project(db, "q")
    assert [p["name"] for p in store.list_projects(second)] == ["p", "q"]
    second.close()
