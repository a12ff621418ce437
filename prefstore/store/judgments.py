"""Judgments: append-only labels, idempotent submits, and the reads built on them."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from prefstore.errors import Conflict, InvalidInput, NotFound
from prefstore.store.connection import (
    check_kind,
    direct,
    dumps,
    is_integrity_error,
    loads,
    now_iso,
    parse_iso,
    prepared,
    write,
)
from prefstore.store.items import id_list
from prefstore.store.progress import PG_COUNTS_LOCK, count_judgment, lock_project_counts
from prefstore.store.projects import recount_queue_counts, settings_from_text
from prefstore.text import text_problem

OUTCOMES = ("choice", "tie", "both_bad")

# Which rows count. A changed judgment is a new row naming the row it replaces
# in ``supersedes``, so only the last row of a chain counts; a judgment on an
# excluded item does not count at all. Every reader of labels (fits, agreement,
# exports, stats, progress, routing, dashboards) filters with these, written for
# a query whose judgments are ``j`` and items ``i``. The unique partial index
# ``judgments_supersedes`` makes the NOT EXISTS one index probe per row. SQL is
# never composed from strings here (tests/test_security_store.py), so each query
# spells EFFECTIVE out; tests/test_undo.py checks that every reader does.
NOT_SUPERSEDED = "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id)"
ITEM_INCLUDED = "i.excluded_at IS NULL"
EFFECTIVE = ("NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
             "AND i.excluded_at IS NULL")


def normalize_judgment(n_responses: int, *, outcome: str | None = None,
                       choice: int | str | None = None, ranking: list[int] | None = None,
                       strength: int | None = None, where: str = "judgment") -> dict:
    """Check a judgment's label against its item and return the stored fields.

    ``choice`` is a response index, ``"tie"`` or ``"both_bad"``; ``ranking``
    lists response indices best first. Raises InvalidInput naming the field.
    """
    if isinstance(choice, str) and choice in ("tie", "both_bad"):
        outcome, choice = choice, None
    if outcome is None:
        outcome = "choice"
    if outcome not in OUTCOMES:
        raise InvalidInput(f'{where}: "outcome" must be one of {", ".join(OUTCOMES)}, '
                           f"got {outcome!r}")
    if ranking is not None:
        if (not isinstance(ranking, list) or any(
                not isinstance(r, int) or isinstance(r, bool) for r in ranking)
                or sorted(ranking) != list(range(n_responses))):
            raise InvalidInput(f'{where}: "ranking" must be a permutation of 0..{n_responses - 1}'
                               f", got {ranking!r}")
        if outcome != "choice":
            raise InvalidInput(f'{where}: "ranking" cannot go with a {outcome} outcome')
        if choice is not None and choice != ranking[0]:
            raise InvalidInput(f'{where}: "choice" {choice!r} disagrees with the ranking\'s '
                               f"first entry {ranking[0]}")
        choice = ranking[0]
    if outcome == "choice":
        if not isinstance(choice, int) or isinstance(choice, bool) or not (
                0 <= choice < n_responses):
            raise InvalidInput(f'{where}: "choice" must be a response index 0..{n_responses - 1}'
                               f', "tie" or "both_bad", got {choice!r}')
    elif choice is not None:
        raise InvalidInput(f'{where}: "choice" must be empty for a {outcome} outcome')
    if strength is not None:
        if not isinstance(strength, int) or isinstance(strength, bool) or not 0 <= strength <= 3:
            raise InvalidInput(f'{where}: "strength" must be an integer 0..3, got {strength!r}')
        if outcome == "choice" and strength == 0:
            raise InvalidInput(f'{where}: "strength" 0 means a tie, but the choice is '
                               f"response {choice}")
        if outcome != "choice" and strength != 0:
            raise InvalidInput(f'{where}: "strength" must be 0 for a {outcome}, got {strength}')
    return {"outcome": outcome, "choice": choice, "ranking": ranking, "strength": strength}


_INSERT = (
    "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, "
    "ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms, "
    "submission_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (rater_id, submission_id) DO NOTHING RETURNING id")
_CLAIM_DONE = ("UPDATE assignments SET status = 'done', updated_at = ? "
               "WHERE item_id = ? AND rater_id = ? AND status = 'claimed'")
# Everything a submit's checks need, in one round trip.
_SUBMIT_CONTEXT = prepared(
    "SELECT (SELECT id FROM judgments WHERE rater_id = :r AND submission_id = :s), "
    "(SELECT kind FROM raters WHERE id = :r), "
    "(SELECT COUNT(*) FROM responses WHERE item_id = :i), "
    "p.settings, i.project_id, a.claimed_at, a.item_id, a.display_order "
    "FROM (SELECT 1 AS one) one LEFT JOIN items i ON i.id = :i "
    "LEFT JOIN projects p ON p.id = i.project_id "
    "LEFT JOIN assignments a ON a.id = :a AND a.rater_id = :r")
# The checks' reads and the writes in one call of the function the schema defines
# (m012): one round trip, through libpq directly. It answers NULL, NULL, having
# written nothing, for anything but the plain case it is given.
_PG_SUBMIT_ONE = direct(prepared(
    "SELECT o_id, o_created FROM prefstore_submit_one(CAST(? AS BIGINT), CAST(? AS BIGINT), "
    "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER), "
    "CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), "
    "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), "
    "CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS INTEGER), "
    "CAST(? AS INTEGER), CAST(? AS INTEGER), CAST(? AS INTEGER))"))
# For settings stored without raters_per_item (the function reads the stored one).
_DEFAULT_CAP = settings_from_text(None).raters_per_item


def _submit_in_one_call(db, *, item_id, rater_id, submission_id, outcome, choice, ranking,
                        strength, display_order, aspects, rationale, reason_tags, edited,
                        metadata, time_ms, kind, assignment_id) -> tuple[int, bool] | None:
    """PostgreSQL's plain submit in one round trip; None leaves it to the checked path.

    The label is checked here against the response count it implies (the
    ranking's length, or the choice + 1); the database compares that with the
    item's real count. A label that fails here, or a count that differs, goes
    the checked path, which reads the item first and names the error exactly.
    """
    guess = (len(ranking) if isinstance(ranking, list)
             else choice + 1 if type(choice) is int and choice >= 0 else 1)
    try:
        label = normalize_judgment(guess, outcome=outcome, choice=choice, ranking=ranking,
                                   strength=strength)
        if display_order is not None and (
                not isinstance(display_order, list | tuple)
                or sorted(display_order) != list(range(len(display_order)))):
            return None
    except (InvalidInput, TypeError):  # TypeError: an order sorted() cannot compare
        return None
    now = dt.datetime.now(dt.UTC)
    done = _call_submit_one(db, [
        item_id, rater_id, submission_id, kind or None, dumps(display_order),
        label["outcome"], label["choice"], dumps(label["ranking"]), label["strength"],
        dumps(aspects or None), rationale or None, dumps(reason_tags or None), edited,
        dumps(metadata or {}), time_ms, now_iso(now), now.timestamp() * 1000, assignment_id,
        1 if label["choice"] is None else label["choice"] + 1,
        None if label["ranking"] is None else len(label["ranking"]),
        None if display_order is None else len(display_order),
        _DEFAULT_CAP, PG_COUNTS_LOCK])
    return None if done[0] is None else done


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def refuse_unstorable(**fields) -> None:
    """Refuse a judgment's text that a backend cannot store: PostgreSQL takes no NUL,
    and neither takes a lone surrogate (so a SQLite store stays copyable)."""
    for name, value in fields.items():
        for text in _strings(value):
            if problem := text_problem(text):
                raise InvalidInput(f"judgment: {name} {problem}")


def _call_submit_one(db, params: list) -> tuple[int | None, bool | None]:
    """``(judgment id, created)`` from ``prefstore_submit_one``; ``(None, None)`` if it
    declined."""
    rows = db.execute_direct(_PG_SUBMIT_ONE, params)
    if rows is None:  # a parameter without a plain text form: psycopg adapts or refuses it
        judgment_id, created = db.execute(_PG_SUBMIT_ONE, params).fetchone()
        return judgment_id, created
    judgment_id, created = rows[0]
    return (None, None) if judgment_id is None else (int(judgment_id), created == b"t")


def submit_judgment(
    db,
    *,
    item_id: int,
    rater_id: int,
    submission_id: str,
    outcome: str | None = None,
    choice: int | str | None = None,
    ranking: list[int] | None = None,
    strength: int | None = None,
    display_order: list[int] | None = None,
    aspects: dict | None = None,
    rationale: str | None = None,
    reason_tags: list[str] | None = None,
    edited: str | None = None,
    metadata: dict | None = None,
    time_ms: int | None = None,
    kind: str | None = None,
    assignment_id: int | None = None,
) -> tuple[int, bool]:
    """Store one judgment; return ``(judgment id, created)``.

    A second submit with the same ``(rater, submission_id)`` is a no-op that
    returns the first judgment's id with ``created=False``, also when the two
    race. If ``assignment_id`` is given, ``time_ms`` defaults to the time since
    the item was served, measured here on the server.
    """
    if not isinstance(submission_id, str) or not submission_id:
        raise InvalidInput(f"submission_id must be a non-empty string, got {submission_id!r}")
    refuse_unstorable(submission_id=submission_id, aspects=aspects, rationale=rationale,
                      reason_tags=reason_tags, edited=edited, metadata=metadata)
    existing_sql = "SELECT id FROM judgments WHERE rater_id = ? AND submission_id = ?"
    postgres = db.dialect == "postgres"
    if postgres:
        done = _submit_in_one_call(
            db, item_id=item_id, rater_id=rater_id, submission_id=submission_id,
            outcome=outcome, choice=choice, ranking=ranking, strength=strength,
            display_order=display_order, aspects=aspects, rationale=rationale,
            reason_tags=reason_tags, edited=edited, metadata=metadata, time_ms=time_ms,
            kind=kind, assignment_id=assignment_id)
        if done is not None:
            return done
    # The checked path. On PostgreSQL the checks read outside a transaction and
    # the writes are one call of prefstore_submit_one with the values checked
    # here: 2 round trips. Its ON CONFLICT still makes a racing double submit
    # store one row.
    with contextlib.nullcontext(db) if postgres else write(db):
        (existing, rater_kind, n_responses, settings, project_id, claimed_at, claim_item,
         claim_order) = db.execute(
            _SUBMIT_CONTEXT,
            {"r": rater_id, "s": submission_id, "i": item_id, "a": assignment_id}).fetchone()
        if existing is not None:
            return existing, False
        if rater_kind is None:
            raise NotFound(f"rater {rater_id!r} does not exist")
        if n_responses == 0:
            raise NotFound(f"item {item_id!r} does not exist")
        label = normalize_judgment(n_responses, outcome=outcome, choice=choice, ranking=ranking,
                                   strength=strength)
        now = dt.datetime.now(dt.UTC)
        if assignment_id is not None:
            if claim_item != item_id:
                raise InvalidInput(f"assignment {assignment_id!r} is not this rater's claim "
                                   f"on item {item_id!r}")
            if time_ms is None:
                time_ms = max(1, int((now - parse_iso(claimed_at)).total_seconds() * 1000))
            if display_order is None:
                display_order = loads(claim_order)
        if display_order is not None and sorted(display_order) != list(range(n_responses)):
            raise InvalidInput(f"display_order must be a permutation of 0..{n_responses - 1}, "
                               f"got {display_order!r}")
        kind = kind or rater_kind
        label_values = [dumps(display_order), label["outcome"], label["choice"],
                        dumps(label["ranking"]), label["strength"], dumps(aspects or None),
                        rationale or None, dumps(reason_tags or None), edited,
                        dumps(metadata or {}), time_ms]
        if postgres:
            judgment_id, created = _call_submit_one(db, [
                item_id, rater_id, submission_id, kind, *label_values, now_iso(now),
                now.timestamp() * 1000, None, n_responses, None, None, _DEFAULT_CAP,
                PG_COUNTS_LOCK])
            if judgment_id is None:  # it read another rater or item than the checks did
                raise Conflict(f"item {item_id!r} or rater {rater_id!r} changed during the "
                               "submit; submit again")
            return judgment_id, created
        cap = settings_from_text(settings).raters_per_item
        inserted = db.execute(_INSERT, [item_id, rater_id, kind, *label_values, submission_id,
                                        now_iso(now)]).fetchone()
        if inserted is None:  # a concurrent double submit committed first
            return db.execute(existing_sql, [rater_id, submission_id]).fetchone()[0], False
        human = kind == "human"
        n_human, queue_rank, excluded_at = db.execute(
            "UPDATE items SET n_human = n_human + ? WHERE id = ? "
            "RETURNING n_human, queue_rank, excluded_at", [int(human), item_id]).fetchone()
        if human and n_human == cap and queue_rank < 2 and excluded_at is None:
            db.execute("UPDATE projects SET open_items = open_items - 1 WHERE id = ?",
                       [project_id])
        if human:
            db.execute(_CLAIM_DONE, [now_iso(now), item_id, rater_id])
        count_judgment(db, judgment_id=inserted[0], item_id=item_id, rater_id=rater_id,
                       project_id=project_id, n_human=n_human, queue_rank=queue_rank,
                       excluded=excluded_at is not None, human=human, cap=cap)
    return inserted[0], True


_INSERT_CHANGE = (
    "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, "
    "ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms, "
    "submission_id, created_at, supersedes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (rater_id, submission_id) DO NOTHING RETURNING id")


def change_judgment(
    db,
    *,
    judgment_id: int,
    rater_id: int,
    submission_id: str,
    outcome: str | None = None,
    choice: int | str | None = None,
    ranking: list[int] | None = None,
    strength: int | None = None,
    aspects: dict | None = None,
    rationale: str | None = None,
    reason_tags: list[str] | None = None,
    metadata: dict | None = None,
    time_ms: int | None = None,
) -> tuple[int, bool]:
    """Store a rater's changed label for one of their judgments; return ``(id, created)``.

    The store stays append-only: the change is a new row on the same item by
    the same rater, with the old row's display order and ``supersedes`` set
    to ``judgment_id``; from then on only the new row counts. ``items.n_human``
    does not move (same rater, same item). Like :func:`submit_judgment`, a
    second call with the same ``(rater, submission_id)`` is a no-op returning
    the first id with ``created=False``.

    Raises
    ------
    NotFound
        If the judgment does not exist.
    InvalidInput
        If the judgment is not this rater's or not a human's, its item is
        excluded, or the label does not fit the item.
    Conflict
        If the judgment was already changed: only the last row of a chain can
        be changed (the unique index on ``supersedes`` also settles races).
    """
    if not isinstance(submission_id, str) or not submission_id:
        raise InvalidInput(f"submission_id must be a non-empty string, got {submission_id!r}")
    refuse_unstorable(submission_id=submission_id, aspects=aspects, rationale=rationale,
                      reason_tags=reason_tags, metadata=metadata)
    existing_sql = "SELECT id FROM judgments WHERE rater_id = ? AND submission_id = ?"
    try:
        with write(db):
            existing = db.execute(existing_sql, [rater_id, submission_id]).fetchone()
            if existing is not None:
                return existing[0], False
            old = db.execute(
                "SELECT j.item_id, j.rater_id, j.kind, j.display_order, i.excluded_at, "
                "(SELECT sj.id FROM judgments sj WHERE sj.supersedes = j.id), "
                "(SELECT COUNT(*) FROM responses r WHERE r.item_id = j.item_id) "
                "FROM judgments j JOIN items i ON i.id = j.item_id WHERE j.id = ?",
                [judgment_id]).fetchone()
            if old is None:
                raise NotFound(f"judgment {judgment_id!r} does not exist")
            item_id, owner, kind, display_order, excluded_at, replaced_by, n_responses = old
            if owner != rater_id:
                raise InvalidInput(f"judgment {judgment_id} is not yours to change")
            if kind != "human":
                raise InvalidInput(f"judgment {judgment_id} is an LLM's; only a human's "
                                   "judgment can be changed")
            if excluded_at is not None:
                raise InvalidInput(f"judgment {judgment_id} is on an excluded item")
            if replaced_by is not None:
                raise Conflict(f"judgment {judgment_id} was already changed (by judgment "
                               f"{replaced_by}); change the latest one")
            label = normalize_judgment(n_responses, outcome=outcome, choice=choice,
                                       ranking=ranking, strength=strength)
            inserted = db.execute(
                _INSERT_CHANGE,
                [item_id, rater_id, kind, display_order, label["outcome"], label["choice"],
                 dumps(label["ranking"]), label["strength"], dumps(aspects or None),
                 rationale or None, dumps(reason_tags or None), None, dumps(metadata or {}),
                 time_ms, submission_id, now_iso(), judgment_id],
            ).fetchone()
    except Exception as exc:
        # A concurrent change of the same row lost the race on judgments_supersedes;
        # a concurrent double submit of this change is the same change, stored once.
        if not is_integrity_error(exc):
            raise
        again = db.execute(existing_sql, [rater_id, submission_id]).fetchone()
        if again is not None:
            return again[0], False
        raise Conflict(f"judgment {judgment_id} was already changed; change the latest one"
                       ) from None
    if inserted is None:  # a concurrent double submit committed first
        return db.execute(existing_sql, [rater_id, submission_id]).fetchone()[0], False
    return inserted[0], True


def recent_judgments(db, project_id: int, rater_id: int, *, limit: int = 10) -> list[dict]:
    """Return a rater's latest effective judgments in a project, newest first.

    Rows: id, item_id, external_id, prompt, messages, outcome, choice,
    ranking, strength, display_order, aspects, rationale, reason_tags,
    supersedes, created_at, n_responses, with the JSON columns parsed. Only the last row of
    each chain is listed, so each item appears once.
    """
    rows = db.query(
        "SELECT j.id, j.item_id, i.external_id, i.prompt, i.messages, j.outcome, j.choice, "
        "j.ranking, j.strength, j.display_order, j.aspects, j.rationale, j.reason_tags, "
        "j.supersedes, j.created_at, "
        "(SELECT COUNT(*) FROM responses r WHERE r.item_id = j.item_id) AS n_responses "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE j.rater_id = ? AND i.project_id = ? AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id DESC LIMIT ?", [rater_id, project_id, limit])
    out = []
    for row in rows:
        row = dict(row)
        for key in ("messages", "ranking", "display_order", "aspects", "reason_tags"):
            row[key] = loads(row[key])
        out.append(row)
    return out


def insert_judgments(db, rows: list[dict]) -> int:
    """Bulk-insert validated judgments (import path); return how many were new.

    Each row carries the columns of ``judgments`` with Python values. Runs in
    the caller's transaction when there is one.
    """
    created = now_iso()
    inserted = 0
    human_counts: dict[int, int] = {}
    with write(db):
        # The recount below must not miss a submit in flight.
        projects = sorted(_projects_of(db, sorted({row["item_id"] for row in rows})))
        for project_id in projects:
            lock_project_counts(db, project_id, exclusive=True)
        for row in rows:
            new = db.execute(
                _INSERT,
                [row["item_id"], row["rater_id"], row["kind"], dumps(row.get("display_order")),
                 row["outcome"], row.get("choice"), dumps(row.get("ranking")),
                 row.get("strength"), dumps(row.get("aspects") or None),
                 row.get("rationale") or None, dumps(row.get("reason_tags") or None),
                 row.get("edited"), dumps(row.get("metadata") or {}), row.get("time_ms"),
                 row["submission_id"], row.get("created_at") or created],
            ).fetchone()
            if new is not None:
                inserted += 1
                if row["kind"] == "human":
                    human_counts[row["item_id"]] = human_counts.get(row["item_id"], 0) + 1
        db.executemany("UPDATE items SET n_human = n_human + ? WHERE id = ?",
                       [(n, item_id) for item_id, n in human_counts.items()])
        if inserted:
            for project_id in projects:
                recount_queue_counts(db, project_id)
    return inserted


def _projects_of(db, item_ids: list[int]) -> list[int]:
    if not item_ids:
        return []
    return [r[0] for r in db.execute(_PROJECTS_OF_ITEMS[db.dialect], [id_list(db, item_ids)])]


_PROJECTS_OF_ITEMS = {
    "sqlite": "SELECT DISTINCT project_id FROM items WHERE id IN (SELECT value FROM json_each(?))",
    "postgres": "SELECT DISTINCT project_id FROM items WHERE id = ANY(?)",
}


def _judgment_row(row: dict) -> dict:
    row = dict(row)
    for key in ("display_order", "ranking", "aspects", "reason_tags"):
        row[key] = loads(row[key])
    row["metadata"] = loads(row["metadata"], {})
    return row


def list_judgments(db, *, item_id: int | None = None, rater_id: int | None = None,
                   project_id: int | None = None) -> list[dict]:
    """Return stored judgment rows filtered by item, rater and/or project, oldest first.

    Every row, superseded ones included (the import's duplicate check needs them).
    """
    rows = db.query(
        "SELECT j.* FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE (:item IS NULL OR j.item_id = :item) AND (:rater IS NULL OR j.rater_id = :rater) "
        "AND (:project IS NULL OR i.project_id = :project) ORDER BY j.id",
        {"item": item_id, "rater": rater_id, "project": project_id},
    )
    return [_judgment_row(r) for r in rows]


_JOINED_JSON_COLUMNS = ("display_order", "ranking", "aspects", "reason_tags", "messages", "gold")


def _parsed_judgment_rows(cursor) -> list[dict]:
    """Return a judgments-joined query's rows as dicts with the JSON columns parsed.

    The exports' hot path: plain ``zip`` and no parse of NULL or ``'{}'``.
    """
    cols = [d[0] for d in cursor.description]
    json_loads = json.loads
    out = []
    for values in cursor:
        row = dict(zip(cols, values))
        for key in _JOINED_JSON_COLUMNS:
            if row[key] is not None:
                row[key] = json_loads(row[key])
        meta = row["metadata"]
        row["metadata"] = {} if meta is None or meta == "{}" else json_loads(meta)
        out.append(row)
    return out


def iter_judgment_rows(db, project_id: int, *, kind: str = "all", batch: int = 2000,
                       include_superseded: bool = False) -> Iterator[dict]:
    """Stream a project's effective judgments with rater names, item ids and responses' meta.

    Rows are joined with the item's external id, prompt, messages and gold.
    Memory stays constant: rows are read in id-ordered batches.
    ``include_superseded`` (the audit export) adds the rows a change replaced.
    """
    check_kind(kind)
    last = 0
    while True:
        rows = _parsed_judgment_rows(db.execute(
            # CROSS JOIN keeps judgments the outer loop, walked in id order from
            # :last; a plain JOIN let SQLite's planner scan all of the project's
            # items and sort on every batch, which made a full read quadratic.
            "SELECT j.*, r.name AS rater, i.external_id, i.prompt, i.messages, i.gold, "
            "i.category FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
            "JOIN raters r ON r.id = j.rater_id "
            "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) "
            "AND (:all_rows = 1 OR "
            "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id)) "
            "AND i.excluded_at IS NULL AND j.id > :last ORDER BY j.id LIMIT :n",
            {"p": project_id, "kind": kind, "last": last, "n": batch,
             "all_rows": int(include_superseded)}))
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


_JUDGMENTS_OF_ITEMS = {
    "sqlite": "SELECT j.*, r.name AS rater, i.external_id, i.prompt, i.messages, i.gold, "
              "i.category FROM judgments j JOIN items i ON i.id = j.item_id "
              "JOIN raters r ON r.id = j.rater_id "
              "WHERE j.item_id IN (SELECT value FROM json_each(:ids)) "
              "AND (:kind = 'all' OR j.kind = :kind) AND "
              "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
              "AND i.excluded_at IS NULL ORDER BY j.item_id, j.id",
    "postgres": "SELECT j.*, r.name AS rater, i.external_id, i.prompt, i.messages, i.gold, "
                "i.category FROM judgments j JOIN items i ON i.id = j.item_id "
                "JOIN raters r ON r.id = j.rater_id WHERE j.item_id = ANY(:ids) "
                "AND (:kind = 'all' OR j.kind = :kind) AND "
                "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
                "AND i.excluded_at IS NULL "
                "ORDER BY j.item_id, j.id",
}


def iter_judgment_rows_by_item(db, project_id: int, *, kind: str = "all",
                               batch: int = 500) -> Iterator[dict]:
    """Stream a project's effective judgments ordered by ``(item_id, id)``.

    Rows are shaped as in :func:`iter_judgment_rows`. Items are read in
    id-ordered batches of ``batch`` and each batch's judgments in one query, so
    an item's judgments arrive together and memory stays bounded by one batch.
    Items without judgments of ``kind`` are skipped.
    """
    check_kind(kind)
    last = 0
    while True:
        ids = [r[0] for r in db.execute(
            "SELECT id FROM items WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?",
            [project_id, last, batch])]
        if not ids:
            return
        yield from _parsed_judgment_rows(db.execute(
            _JUDGMENTS_OF_ITEMS[db.dialect], {"ids": id_list(db, ids), "kind": kind}))
        last = ids[-1]


def count_judgment_rows(db, project_id: int, *, kind: str = "all",
                        include_superseded: bool = False) -> int:
    """Return how many effective judgments of ``kind`` a project holds (an export's total)."""
    check_kind(kind)
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) "
        "AND (:all_rows = 1 OR NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id)) "
        "AND i.excluded_at IS NULL",
        {"p": project_id, "kind": kind, "all_rows": int(include_superseded)}).fetchone()[0]


def iter_pair_export_rows(db, project_id: int, *, kind: str = "all",
                          batch: int = 5000) -> Iterator[tuple]:
    """Stream a pairwise project's effective judgments with the chosen and rejected texts.

    Yields tuples ``(id, external_id, rater, kind, outcome, strength, rationale,
    reason_tags JSON, item_id, prompt, messages JSON, chosen text, chosen
    system, rejected text, rejected system)`` in judgment id order; the texts
    are NULL for ties and both-bad. One read snapshot covers the whole stream,
    so the export is consistent while raters keep writing.
    """
    check_kind(kind)
    yield from db.stream(
        "SELECT j.id, i.external_id, r.name, j.kind, j.outcome, j.strength, j.rationale, "
        "j.reason_tags, j.item_id, i.prompt, i.messages, rc.text, rc.system, rr.text, rr.system "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "LEFT JOIN responses rc ON rc.item_id = j.item_id AND rc.idx = j.choice "
        "LEFT JOIN responses rr ON rr.item_id = j.item_id AND rr.idx = 1 - j.choice "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id", {"p": project_id, "kind": kind}, batch)


# Two fixed column sets: the models need eight columns, and reading all nineteen
# of a million judgments takes three times as long.
_JUDGMENT_FRAME_SQL = {
    "all": (
        "SELECT j.id, j.item_id, i.external_id, j.rater_id, r.name AS rater, j.kind, j.outcome, "
        "j.choice, j.ranking, j.strength, j.display_order, j.aspects, j.rationale, "
        "j.reason_tags, j.edited, j.metadata, j.time_ms, j.submission_id, j.created_at "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id"),
    "model": (
        "SELECT j.id, j.item_id, r.name AS rater, j.kind, j.outcome, j.choice, j.ranking, "
        "j.strength FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id"),
}

# What the worker's reports read (agreement, win rates, style bias): the model columns,
# the first response shown instead of the whole display order, and the metadata of LLM
# judgments only (their swap flags); JSON paths differ between the dialects.
_REPORT_FRAME_SQL = {
    "sqlite": (
        "SELECT j.id, j.item_id, r.name AS rater, j.kind, j.outcome, j.choice, j.ranking, "
        "j.strength, json_extract(j.display_order, '$[0]') AS first_shown, j.time_ms, "
        "j.created_at, CASE WHEN j.kind = 'llm' THEN j.metadata END AS metadata, j.aspects "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id"),
    "postgres": (
        "SELECT j.id, j.item_id, r.name AS rater, j.kind, j.outcome, j.choice, j.ranking, "
        "j.strength, (j.display_order ->> 0)::integer AS first_shown, j.time_ms, "
        "j.created_at, CASE WHEN j.kind = 'llm' THEN j.metadata END AS metadata, j.aspects "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "ORDER BY j.id"),
}


def _parse_json_column(values, default=None) -> list:
    """Parse a JSON text column; equal short texts (e.g. "[0, 1]") are parsed once.

    Those parsed values are shared between rows: treat the frame as read-only.
    """
    cache: dict[str, Any] = {}
    out = []
    for v in values:
        # NULL comes back as None, or as float NaN in an all-NULL column.
        if not isinstance(v, str):
            out.append(default() if callable(default) else default)
        elif len(v) <= 32:
            if v not in cache:
                cache[v] = json.loads(v)
            out.append(cache[v])
        else:
            out.append(json.loads(v))
    return out


def judgments_frame(db, project_id: int, *, kind: str = "all",
                    columns: str = "all") -> pd.DataFrame:
    """Return a project's effective judgments as a DataFrame for the models and metrics.

    ``columns="all"``: id, item_id, external_id, rater_id, rater, kind,
    outcome, choice, ranking, strength, display_order, aspects, rationale,
    reason_tags, edited, metadata, time_ms, submission_id, created_at.
    ``columns="model"``: id, item_id, rater, kind, outcome, choice, ranking,
    strength, which is all the model adapter reads. ``columns="report"``: the
    model columns plus first_shown (the first entry of display_order), time_ms,
    created_at, metadata (of LLM judgments only, ``{}`` for the others) and
    aspects: what the worker's agreement and win-rate reports read. JSON columns
    are parsed; treat the frame as read-only (equal short JSON values share one
    object).
    """
    check_kind(kind)
    if columns == "report":
        sql = _REPORT_FRAME_SQL[db.dialect]
    elif columns in _JUDGMENT_FRAME_SQL:
        sql = _JUDGMENT_FRAME_SQL[columns]
    else:
        raise InvalidInput(f'columns must be "all", "model" or "report", got {columns!r}')
    frame = db.frame(sql, {"p": project_id, "kind": kind})
    for col in ("ranking", "display_order", "aspects", "reason_tags"):
        if col in frame:
            frame[col] = _parse_json_column(frame[col])
    if "metadata" in frame:
        frame["metadata"] = _parse_json_column(frame["metadata"], dict)
    for col in ("choice", "strength", "time_ms", "first_shown"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


def count_judgments(db, project_id: int | None = None) -> int:
    """Return how many effective judgments a project (or the whole store) holds."""
    if project_id is None:
        return db.execute("SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
                          "WHERE "
                          "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
                          "AND i.excluded_at IS NULL").fetchone()[0]
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL", [project_id]).fetchone()[0]


def judgments_since(db, project_id: int, since_iso: str | None) -> int:
    """Return how many judgment rows were stored since ``since_iso`` (a change counts:
    it calls for a refit as a new judgment does)."""
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND (? IS NULL OR j.created_at > ?)",
        [project_id, since_iso, since_iso]).fetchone()[0]


def last_change_at(db, project_id: int) -> str | None:
    """Return when a judgment of the project was last changed (a superseding row stored).

    A change keeps the judgment count, so a stored fit or report older than this
    leaves it out although its count matches. Reads the partial index on
    ``supersedes``: only the changes are visited.
    """
    return db.execute(
        "SELECT MAX(j.created_at) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE j.supersedes IS NOT NULL AND i.project_id = ?", [project_id]).fetchone()[0]


def has_llm_judgments(db, project_id: int) -> bool:
    return db.execute(
        "SELECT 1 FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.kind = 'llm' AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL LIMIT 1",
        [project_id]).fetchone() is not None


def project_stats(db, project_id: int) -> dict:
    """Return counts of items, responses, effective judgments and raters by kind.

    Excluded items and their responses and judgments are left out, as in
    :func:`dashboard_counts`, so coverage and targets agree; ``excluded`` counts
    those items. ``superseded`` counts the rows that a change replaced (kept
    for the audit).
    """
    items, excluded = db.execute(
        "SELECT COUNT(*) - COUNT(excluded_at), COUNT(excluded_at) FROM items "
        "WHERE project_id = ?", [project_id]).fetchone()
    responses = db.execute(
        "SELECT COUNT(*) FROM responses r JOIN items i ON i.id = r.item_id "
        "WHERE i.project_id = ? AND i.excluded_at IS NULL", [project_id]).fetchone()[0]
    judgments = {"human": 0, "llm": 0}
    raters = {"human": 0, "llm": 0}
    for kind, n, n_raters in db.execute(
        "SELECT j.kind, COUNT(*), COUNT(DISTINCT j.rater_id) FROM judgments j "
        "JOIN items i ON i.id = j.item_id WHERE i.project_id = ? AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL "
        "GROUP BY j.kind", [project_id]):
        judgments[kind] = n
        raters[kind] = n_raters
    superseded = db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.supersedes IS NOT NULL", [project_id]).fetchone()[0]
    coverage = dict(db.execute(
        "SELECT n_human, COUNT(*) FROM items WHERE project_id = ? AND excluded_at IS NULL "
        "GROUP BY n_human", [project_id]).fetchall())
    flags = db.execute(
        "SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE i.project_id = ? AND a.status = 'flagged'", [project_id]).fetchone()[0]
    return {"items": items, "responses": responses, "judgments": judgments, "raters": raters,
            "items_by_human_judgments": {str(k): v for k, v in sorted(coverage.items())},
            "flags": flags, "excluded": excluded, "superseded": superseded}


def project_rater_summary(db, project_id: int) -> list[dict]:
    """Per-rater counts for the admin page: effective judgments, skips, flags, last activity."""
    return list(db.query(
        "SELECT r.id, r.name, r.kind, r.active, "
        "(SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        " WHERE j.rater_id = r.id AND i.project_id = :p AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL) AS judgments, "
        "(SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        " WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'skipped') AS skipped, "
        "(SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        " WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'flagged') AS flagged, "
        "(SELECT MAX(j.created_at) FROM judgments j JOIN items i ON i.id = j.item_id "
        " WHERE j.rater_id = r.id AND i.project_id = :p) AS last_judgment_at "
        "FROM raters r ORDER BY r.kind, r.name",
        {"p": project_id}))


def gold_judgments(db, project_id: int) -> list[dict]:
    """Return every effective judgment on the project's gold items, with rater name and gold.

    Rows: rater, item_id, outcome, choice, ranking, metadata, gold (parsed).
    """
    rows = db.query(
        "SELECT r.name AS rater, j.item_id, j.outcome, j.choice, j.ranking, j.metadata, i.gold "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = ? AND i.is_gold = 1 AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL ORDER BY j.id", [project_id])
    return [{**row, "ranking": loads(row["ranking"]), "metadata": loads(row["metadata"], {}),
             "gold": loads(row["gold"])} for row in rows]


def dashboard_counts(db, project_id: int, raters_per_item: int) -> dict:
    """Return the headline counts of a project without grouping its judgments.

    Human judgments are summed from ``items.n_human``, which every insert path
    keeps in step, because counting them by kind needs a table lookup per
    judgment (~0.3 s at 1M); LLM judgments are the rest of the total. A change
    leaves ``n_human`` as it is (same rater, same item), so these counts are
    effective judgments; excluded items are left out.

    Returns ``{"items", "covered_items", "coverage", "judgments": {"human", "llm",
    "total"}, "raters": {"human", "llm"}}``; ``covered_items`` have at least
    ``raters_per_item`` human judgments and ``coverage`` is their share (0 without items).
    """
    items, human, covered = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(n_human), 0), "
        "COALESCE(SUM(CASE WHEN n_human >= ? THEN 1 ELSE 0 END), 0) "
        "FROM items WHERE project_id = ? AND excluded_at IS NULL",
        [raters_per_item, project_id]).fetchone()
    total = count_judgments(db, project_id)
    raters = {"human": 0, "llm": 0}
    for kind, n in db.execute(
        "SELECT r.kind, COUNT(*) FROM raters r WHERE EXISTS (SELECT 1 FROM judgments j "
        "JOIN items i ON i.id = j.item_id WHERE j.rater_id = r.id AND i.project_id = ? "
        "AND i.excluded_at IS NULL) GROUP BY r.kind", [project_id]):
        raters[kind] = n
    return {"items": items, "covered_items": covered,
            "coverage": covered / items if items else 0.0,
            "judgments": {"human": human, "llm": total - human, "total": total},
            "raters": raters}


def data_version(db) -> tuple:
    """Return a cheap stamp that changes whenever a judgment, item or rater is added.

    Rows are append-only, so the largest ids (primary-key lookups) and the rater
    count tell a cache whether anything it shows may have changed.
    """
    return tuple(db.execute(
        "SELECT (SELECT MAX(id) FROM judgments), (SELECT MAX(id) FROM items), "
        "(SELECT COUNT(*) FROM raters), (SELECT MAX(id) FROM projects)").fetchone())


def edited_judgments_frame(db, project_id: int) -> pd.DataFrame:
    """Return the effective judgments with an edit: id, item_id, rater, outcome, choice, edited."""
    frame = db.frame(
        "SELECT j.id, j.item_id, r.name AS rater, j.outcome, j.choice, j.edited "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = ? AND j.edited IS NOT NULL AND "
        "NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL ORDER BY j.id",
        [project_id])
    frame["choice"] = frame["choice"].astype("Int64")
    return frame


_BY_IDS = {
    "sqlite": "SELECT j.id, j.item_id, i.external_id, r.name AS rater, j.outcome, j.choice, "
              "j.edited FROM judgments j JOIN items i ON i.id = j.item_id "
              "JOIN raters r ON r.id = j.rater_id "
              "WHERE j.id IN (SELECT value FROM json_each(?)) ORDER BY j.id",
    "postgres": "SELECT j.id, j.item_id, i.external_id, r.name AS rater, j.outcome, j.choice, "
                "j.edited FROM judgments j JOIN items i ON i.id = j.item_id "
                "JOIN raters r ON r.id = j.rater_id WHERE j.id = ANY(?) ORDER BY j.id",
}


def judgments_by_id(db, judgment_ids: list[int]) -> list[dict]:
    """Return judgments by id with the rater's name and the item's external id, in id order."""
    return list(db.query(_BY_IDS[db.dialect], [id_list(db, judgment_ids)]))


def llm_judge_names(db, project_id: int) -> list[str]:
    """Return the names of the raters with LLM judgments in a project, sorted.

    One index probe per LLM rater (``judgments_rater_item``), never a scan of the
    project's judgments.
    """
    return [row[0] for row in db.execute(
        "SELECT r.name FROM raters r WHERE r.kind = 'llm' AND EXISTS (SELECT 1 FROM judgments j "
        "JOIN items i ON i.id = j.item_id WHERE j.rater_id = r.id AND i.project_id = ? "
        "AND j.kind = 'llm' AND i.excluded_at IS NULL) ORDER BY r.name", [project_id]).fetchall()]
