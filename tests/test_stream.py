"""Streamed reads (exports, copy-db): one snapshot, and nothing left running when left early."""

from __future__ import annotations

import time

import pytest

from prefstore import store

pytestmark = pytest.mark.both_backends

# Far more rows than any test reads: the server is still producing when the reader stops.
ENDLESS = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50000000) "
           "SELECT n FROM c")


def _items(db, project_id: int, start: int, n: int) -> None:
    store.insert_items(db, project_id, [
        {"external_id": f"i{k}", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}
        for k in range(start, start + n)])


def _stream_ids(db, project_id: int):
    return db.stream("SELECT external_id FROM items WHERE project_id = ? ORDER BY id",
                     [project_id], 10)


def test_a_stream_reads_one_snapshot_while_another_handle_writes(db, db_path):
    project = store.create_project(db, "s", "pairwise", {})
    _items(db, project["id"], 0, 300)
    rows = _stream_ids(db, project["id"])
    assert next(rows) == ("i0",)
    other = store.connect(db_path)
    _items(other, project["id"], 300, 50)
    other.close()
    assert [r[0] for r in rows] == [f"i{k}" for k in range(1, 300)]
    assert [r[0] for r in _stream_ids(db, project["id"])] == [f"i{k}" for k in range(350)]


def test_a_stream_left_early_leaves_no_query_running_and_frees_its_connection(db):
    rows = db.stream(ENDLESS, [], 100)
    assert [next(rows) for _ in range(3)] == [(1,), (2,), (3,)]
    start = time.monotonic()
    rows.close()
    assert time.monotonic() - start < 5
    if db.dialect == "postgres":
        running = db.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
                             "AND query LIKE 'WITH RECURSIVE c(n)%'").fetchone()[0]
        assert running == 0
    # More statements than the pool holds connections: none was kept by the stream.
    for _ in range(25):
        assert db.execute("SELECT 41 + 1").fetchone()[0] == 42
    again = db.stream(ENDLESS.replace("50000000", "1000"), [], 100)
    assert sum(1 for _ in again) == 1000


def test_postgres_streams_in_chunks_and_through_a_cursor_before_libpq_17(db, monkeypatch):
    if db.dialect != "postgres":
        pytest.skip("libpq's chunked rows: a PostgreSQL test")
    from psycopg import pq

    project = store.create_project(db, "s", "pairwise", {})
    _items(db, project["id"], 0, 25)
    calls = []
    batches = type(db).batches
    monkeypatch.setattr(type(db), "batches",
                        lambda self, *a, **k: calls.append(a) or batches(self, *a, **k))
    expected = [f"i{k}" for k in range(25)]
    assert pq.version() >= 170000  # Debian's libpq, and psycopg[binary]'s own
    assert [r[0] for r in _stream_ids(db, project["id"])] == expected
    assert calls == []
    monkeypatch.setattr(pq, "version", lambda: 160004)
    assert [r[0] for r in _stream_ids(db, project["id"])] == expected
    assert len(calls) == 1
