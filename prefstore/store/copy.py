"""Copying a whole store between backends (SQLite ⇄ PostgreSQL), verified by checksums.

Rows keep their ids, so links, exports and audit entries mean the same on
both sides. Table names are composed with the drivers' own identifier
quoting (sqlite-utils' table API, ``psycopg.sql``), never by formatting strings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from prefstore.errors import Conflict
from prefstore.store.connection import describe, write

#: Every table, parents before children (foreign keys), as the copy fills them.
TABLES = ("projects", "raters", "rater_projects", "items", "responses", "assignments",
          "claim_cursors", "served_counts", "rater_counts", "judgments", "fits", "reports",
          "jobs", "workers", "routing", "audit_log", "judge_state", "judge_cache", "pair_counts",
          "pair_count_marks", "pair_count_excluded")
#: Caches that are not copied: the copy rebuilds them on first use.
CACHES = ("judgment_columns",)
BATCH = 5000
_JSON = ("display_order", "ranking", "aspects", "reason_tags", "metadata")


def _rows(db, table: str) -> tuple[list[str], Iterator[tuple]]:
    if db.dialect == "sqlite":
        t = db[table]
        columns = t.columns_dict
        order = "id" if "id" in columns else ", ".join(t.pks)
        return list(columns), (tuple(r.values()) for r in t.rows_where(order_by=order))
    from psycopg import sql

    columns = [r[0] for r in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = ? ORDER BY ordinal_position", [table])]
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table))
    return columns, db.stream(query.as_string(None), None, BATCH)


def _insert(db, table: str, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    if db.dialect == "sqlite":
        db[table].insert_all([dict(zip(columns, r)) for r in rows], batch_size=BATCH)
        return
    from psycopg import sql

    with db._conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
        for row in rows:
            copy.write_row(row)


# Tables keyed otherwise than by an identity ``id``.
_NO_IDENTITY = ("workers", "rater_projects", "judge_cache", "claim_cursors", "served_counts",
                "rater_counts", "pair_counts", "pair_count_marks", "pair_count_excluded")


def _reset_identity(db, table: str) -> None:
    if db.dialect != "postgres" or table in _NO_IDENTITY:
        return
    from psycopg import sql

    db._conn.execute(sql.SQL(
        "SELECT setval(pg_get_serial_sequence({t}, 'id'), "
        "COALESCE((SELECT MAX(id) FROM {i}), 0) + 1, false)").format(
        t=sql.Literal(table), i=sql.Identifier(table)))


def count(db, table: str) -> int:
    if db.dialect == "sqlite":
        return db[table].count
    from psycopg import sql

    return db.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(
        sql.Identifier(table)).as_string(None)).fetchone()[0]


def judgments_checksum(db) -> str:
    """Return a SHA-256 over every judgment, its JSON fields compared as values."""
    digest = hashlib.sha256()
    for row in db.stream(
            "SELECT id, item_id, rater_id, kind, display_order, outcome, choice, ranking, "
            "strength, aspects, rationale, reason_tags, edited, metadata, time_ms, "
            "submission_id, created_at FROM judgments ORDER BY id", (), BATCH):
        values = list(row)
        for i in (4, 7, 9, 11, 13):  # JSON columns: jsonb may reorder keys
            if values[i] is not None:
                values[i] = json.loads(values[i])
        digest.update(json.dumps(values, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def copy_database(src, dst, *, progress=None) -> dict:
    """Copy every row of ``src`` into the empty store ``dst``; verify and return a summary.

    Returns ``{"tables": {name: rows}, "judgments_checksum": sha256}``.

    Raises
    ------
    Conflict
        If ``dst`` already holds projects, raters or judgments.
    """
    for table in ("projects", "raters", "judgments"):
        if count(dst, table):
            raise Conflict(f"copy target {describe(dst.target)} is not empty ({table} has rows);"
                           " copy into a new database")
    copied: dict[str, int] = {}
    with write(dst):
        for table in TABLES:
            columns, rows = _rows(src, table)
            n, batch = 0, []
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH:
                    _insert(dst, table, columns, batch)
                    n += len(batch)
                    batch = []
            _insert(dst, table, columns, batch)
            n += len(batch)
            _reset_identity(dst, table)
            copied[table] = n
            if progress:
                progress(table, n)
    for table, n in copied.items():
        if count(dst, table) != n:
            raise Conflict(f"copy of {table} is incomplete: {count(dst, table)} of {n} rows")
    checksum = judgments_checksum(src)
    if judgments_checksum(dst) != checksum:
        raise Conflict("the copied judgments differ from the source's (checksum mismatch)")
    return {"tables": copied, "judgments_checksum": checksum}
