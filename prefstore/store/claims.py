"""Claims: which item a rater is served next, skips and flags (the ``assignments`` table)."""

from __future__ import annotations

import datetime as dt
import random
import time

from prefstore.errors import AccessDenied, InvalidInput, NotFound
from prefstore.store.connection import dumps, loads, now_iso, prepared, write
from prefstore.store.items import get_item, item_with_responses
from prefstore.store.progress import count_release, lock_item_for_rater, lock_project_counts
from prefstore.store.projects import settings_from_text

# The statements that differ: PostgreSQL locks rows explicitly where SQLite's
# BEGIN IMMEDIATE already holds the whole database.
# The rater (locked on PostgreSQL), their open claim in this project, the
# project's queue epoch and the rater's cursors (one row per queue), in one round
# trip. A cursor is usable while the epoch is unchanged and no claim has expired
# since it was set (see _claim).
_RATER_AND_CURSORS = {
    "sqlite": (
        "SELECT r.active, (SELECT a.id FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'claimed' "
        "AND a.expires_at > :now AND i.excluded_at IS NULL ORDER BY a.id LIMIT 1), "
        "p.id, p.name, p.settings, p.archived_at, p.queue_epoch, "
        "EXISTS (SELECT 1 FROM items q WHERE q.project_id = :p AND q.is_gold = 0 "
        "  AND q.queue_rank = 0), "
        "EXISTS (SELECT 1 FROM items q WHERE q.project_id = :p AND q.is_gold = 1 "
        "  AND q.queue_rank = 0), "
        "(SELECT s.served FROM served_counts s WHERE s.rater_id = r.id AND s.project_id = :p), "
        "(SELECT s.served_gold FROM served_counts s WHERE s.rater_id = r.id "
        "  AND s.project_id = :p), "
        "c.is_gold, c.queue_rank, c.epoch, c.claimed_at, c.n_human, c.priority, c.item_id, "
        "EXISTS (SELECT 1 FROM assignments x WHERE x.status = 'claimed' "
        "  AND x.expires_at > c.claimed_at AND x.expires_at <= :now) "
        "FROM raters r LEFT JOIN projects p ON p.id = :p "
        "LEFT JOIN claim_cursors c ON c.rater_id = r.id AND c.project_id = :p "
        "WHERE r.id = :r"),
    "postgres": prepared(
        "SELECT r.active, (SELECT a.id FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'claimed' "
        "AND a.expires_at > :now AND i.excluded_at IS NULL ORDER BY a.id LIMIT 1), "
        "p.id, p.name, p.settings, p.archived_at, p.queue_epoch, "
        "EXISTS (SELECT 1 FROM items q WHERE q.project_id = :p AND q.is_gold = 0 "
        "  AND q.queue_rank = 0), "
        "EXISTS (SELECT 1 FROM items q WHERE q.project_id = :p AND q.is_gold = 1 "
        "  AND q.queue_rank = 0), "
        "(SELECT s.served FROM served_counts s WHERE s.rater_id = r.id AND s.project_id = :p), "
        "(SELECT s.served_gold FROM served_counts s WHERE s.rater_id = r.id "
        "  AND s.project_id = :p), "
        "c.is_gold, c.queue_rank, c.epoch, c.claimed_at, c.n_human, c.priority, c.item_id, "
        "EXISTS (SELECT 1 FROM assignments x WHERE x.status = 'claimed' "
        "  AND x.expires_at > c.claimed_at AND x.expires_at <= :now) "
        "FROM raters r LEFT JOIN projects p ON p.id = :p "
        "LEFT JOIN claim_cursors c ON c.rater_id = r.id AND c.project_id = :p "
        "WHERE r.id = :r FOR UPDATE OF r"),
}
# Candidates in one queue (gold or not, queue rank), in queue order (n_human,
# priority DESC, id), each statement one range of the items_queue index:
# AFTER_LEVEL takes the levels above :after (-1: the whole queue), SAME_PRIORITY
# the rest of the cursor's (level, priority) after its item, LOWER_PRIORITY the
# rest of its level. PostgreSQL's SKIP LOCKED: a claimant does not queue behind
# another; the item it skips is being claimed or judged right now (when that
# leaves nothing, _ANY_CANDIDATE decides whether to wait a moment). The rater's
# own rows are probed per candidate as scalar subqueries: as NOT EXISTS, the
# planner turned them into an anti join that read all of a long history on every
# claim, cursor or not. One row at a
# time: each locked row costs a write, and a row the claim's recheck refuses
# has left the next query's snapshot.
_AFTER_LEVEL = {
    "sqlite": (
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human > :after AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id "
        "  AND x.rater_id = :r AND (x.status != 'claimed' OR x.expires_at > :now)) "
        "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id) "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1"),
    "postgres": prepared(
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human > :after AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.rater_id = :r "
        "  AND (x.status != 'claimed' OR x.expires_at > :now) LIMIT 1) IS NULL "
        "AND (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id "
        "  LIMIT 1) IS NULL "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED"),
}
_SAME_PRIORITY = {
    "sqlite": (
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human = :level AND i.priority = :priority AND i.id > :item "
        "AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id "
        "  AND x.rater_id = :r AND (x.status != 'claimed' OR x.expires_at > :now)) "
        "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id) "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1"),
    "postgres": prepared(
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human = :level AND i.priority = :priority AND i.id > :item "
        "AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.rater_id = :r "
        "  AND (x.status != 'claimed' OR x.expires_at > :now) LIMIT 1) IS NULL "
        "AND (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id "
        "  LIMIT 1) IS NULL "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED"),
}
_LOWER_PRIORITY = {
    "sqlite": (
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human = :level AND i.priority < :priority "
        "AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id "
        "  AND x.rater_id = :r AND (x.status != 'claimed' OR x.expires_at > :now)) "
        "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id) "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1"),
    "postgres": prepared(
        "SELECT i.id, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id), "
        "i.n_human, i.priority FROM items i "
        "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
        "AND i.n_human = :level AND i.priority < :priority "
        "AND i.n_human < :cap AND i.excluded_at IS NULL "
        "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
        "AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.rater_id = :r "
        "  AND (x.status != 'claimed' OR x.expires_at > :now) LIMIT 1) IS NULL "
        "AND (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id "
        "  LIMIT 1) IS NULL "
        "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED"),
}
# The same candidates without locking: is an open item there, locked by a claim or a
# submit in flight? SKIP LOCKED alone would then answer "nothing to rate" for a moment.
_ANY_CANDIDATE = prepared(
    "SELECT i.id FROM items i "
    "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
    "AND i.n_human < :cap AND i.excluded_at IS NULL "
    "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
    "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
    "AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id "
    "  AND x.rater_id = :r AND (x.status != 'claimed' OR x.expires_at > :now)) "
    "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id) "
    "LIMIT 1")
LOCKED_RETRIES = 10
# The claim and the rater's cursor for the item's queue, written together. An
# expired claim of this same rater is reused, so the pair stays unique. On
# PostgreSQL the item row is locked by then, and this new statement (a new READ
# COMMITTED snapshot) counts a claim committed while the candidate query ran:
# no row comes back when the item filled meanwhile.
_CLAIM = {
    "sqlite": (
        "INSERT INTO assignments (item_id, rater_id, claimed_at, expires_at, status, "
        "display_order, updated_at) VALUES (:item, :r, :now, :expires, 'claimed', :order, :now) "
        "ON CONFLICT (item_id, rater_id) DO UPDATE SET claimed_at = excluded.claimed_at, "
        "expires_at = excluded.expires_at, display_order = excluded.display_order, "
        "updated_at = excluded.updated_at RETURNING id"),
    "postgres": prepared(
        "WITH claim AS (INSERT INTO assignments (item_id, rater_id, claimed_at, expires_at, "
        "status, display_order, updated_at) "
        "SELECT :item, :r, :now, :expires, 'claimed', CAST(:order AS jsonb), :now "
        "WHERE (SELECT i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
        "  AND a.status = 'claimed' AND a.expires_at > :now) FROM items i WHERE i.id = :item) "
        "  < :cap "
        "ON CONFLICT (item_id, rater_id) DO UPDATE SET claimed_at = excluded.claimed_at, "
        "expires_at = excluded.expires_at, display_order = excluded.display_order, "
        "updated_at = excluded.updated_at RETURNING id, xmax = 0 AS inserted), "
        "cursor AS (INSERT INTO claim_cursors (rater_id, project_id, is_gold, queue_rank, "
        "epoch, claimed_at, n_human, priority, item_id) "
        "SELECT :r, :p, :gold, :rank, :epoch, :now, :level, :priority, :item FROM claim "
        "ON CONFLICT (rater_id, project_id, is_gold, queue_rank) DO UPDATE SET "
        "epoch = excluded.epoch, claimed_at = excluded.claimed_at, n_human = excluded.n_human, "
        "priority = excluded.priority, item_id = excluded.item_id), "
        "served AS (INSERT INTO served_counts (rater_id, project_id, served, served_gold) "
        "SELECT :r, :p, 1, :gold FROM claim WHERE claim.inserted "
        "ON CONFLICT (rater_id, project_id) DO UPDATE SET served = served_counts.served + 1, "
        "served_gold = served_counts.served_gold + excluded.served_gold) "
        "SELECT id FROM claim"),
}
# A new assignment row (not a rater's own expired claim taken again) counts as served.
_COUNT_SERVED = (
    "INSERT INTO served_counts (rater_id, project_id, served, served_gold) "
    "VALUES (:r, :p, 1, :gold) ON CONFLICT (rater_id, project_id) DO UPDATE SET "
    "served = served_counts.served + 1, served_gold = served_counts.served_gold + "
    "excluded.served_gold")
_SET_CURSOR = (
    "INSERT INTO claim_cursors (rater_id, project_id, is_gold, queue_rank, epoch, claimed_at, "
    "n_human, priority, item_id) VALUES (:r, :p, :gold, :rank, :epoch, :now, :level, :priority, "
    ":item) ON CONFLICT (rater_id, project_id, is_gold, queue_rank) DO UPDATE SET "
    "epoch = excluded.epoch, claimed_at = excluded.claimed_at, n_human = excluded.n_human, "
    "priority = excluded.priority, item_id = excluded.item_id")


# PostgreSQL: the common claim in one round trip (migration m010_claim_function);
# it answers 'fallback' for the rare cases _claim handles. It repeats the statements
# above: a change to them goes into it too (in a new migration).
_CLAIM_ON_SERVER = prepared(
    "SELECT * FROM prefstore_claim(:p, :r, :now, :expires, :settings, :cap, :gold_rate, :keys)")
# Random keys whose order is the display order; an item with more responses than
# this (importing.MAX_RESPONSES) takes the Python path.
ORDER_KEYS = 10
_ASSIGNMENT_COLUMNS = ("id", "item_id", "rater_id", "claimed_at", "expires_at", "status",
                       "reason", "display_order", "updated_at", "resolution", "resolved_at",
                       "resolved_by")
_NEW_CLAIM_COLUMNS = _ASSIGNMENT_COLUMNS[:9]
_ITEM_COLUMNS = ("id", "project_id", "external_id", "prompt", "messages", "metadata",
                 "category", "gold", "is_gold", "queue_rank", "priority", "n_human",
                 "created_at", "excluded_at")
# The settings text each project had at this process's last claim there, per store:
# the server function takes the values parsed from it, and refuses a stale text.
_SEEN_SETTINGS: dict[tuple[str, int], str] = {}
_FALLBACK = object()

#: The flag reason of an item whose stored data cannot be read (the rater moves on).
UNREADABLE = "could not be shown"
MAX_UNREADABLE_PER_CLAIM = 20


def claim_next(db, project_id: int, rater_id: int, *, now: dt.datetime | None = None,
               rng: random.Random | None = None) -> dict | None:
    """Claim the next item for a rater and return the assignment with its item.

    An item whose stored data cannot be read is flagged (reason ``"could not be
    shown: ..."``, for the admin's review) and the next one is claimed instead,
    so one bad item never blocks a rater.
    """
    for _ in range(MAX_UNREADABLE_PER_CLAIM):
        found = (_claim_on_server(db, project_id, rater_id, now=now, rng=rng)
                 if db.dialect == "postgres" else _FALLBACK)
        if found is _FALLBACK:
            claim = _claim(db, project_id, rater_id, now=now, rng=rng)
            row = None
        elif found is None:
            return None
        else:
            claim, row = found
        if claim is None:
            return None
        try:
            claim["item"] = (get_item(db, claim["item_id"]) if row is None
                             else _item_from_row(row))
        except (ValueError, RecursionError) as exc:  # corrupt JSON, or nested too deep
            release_assignment(db, claim["id"], rater_id, status="flagged",
                               reason=f"{UNREADABLE}: {type(exc).__name__}")
            continue
        return claim
    raise InvalidInput(f"more than {MAX_UNREADABLE_PER_CLAIM} items in a row could not be "
                       "read; run `prefstore check`")


def _claim_on_server(db, project_id: int, rater_id: int, *, now: dt.datetime | None,
                     rng: random.Random | None):
    """Claim in one call of ``prefstore_claim`` (PostgreSQL): ``(claim, row)``, None when
    nothing is left, or ``_FALLBACK`` for :func:`_claim` (nothing was written then).

    The function runs _claim's statements in the same order and with the same locks;
    ``row`` also holds the item and its responses.
    """
    now = now or dt.datetime.now(dt.UTC)
    now_s = now_iso(now)
    rng = rng or random.Random()
    key = (db.target, project_id)
    for _ in range(3):  # a settings text this process has not parsed yet: parse, call again
        text = _SEEN_SETTINGS.get(key)
        settings = settings_from_text(text) if text is not None else None
        values = {"p": project_id, "r": rater_id, "now": now_s, "settings": text,
                  "expires": now_s, "cap": 0, "gold_rate": 0.0, "keys": [0.0]}
        if settings is not None:
            values.update(
                expires=now_iso(now + dt.timedelta(seconds=settings.claim_ttl_seconds)),
                cap=settings.raters_per_item, gold_rate=float(settings.gold_rate),
                keys=[rng.random() for _ in range(ORDER_KEYS)])
        row = db.execute(_CLAIM_ON_SERVER, values).fetchone()
        outcome = row[0]
        if outcome == "settings":
            _SEEN_SETTINGS[key] = row[1]
            continue
        if outcome == "none":
            return None
        if outcome != "claimed":
            return _FALLBACK
        resumed = row[2]
        claim = dict(zip(_ASSIGNMENT_COLUMNS if resumed else _NEW_CLAIM_COLUMNS, row[3:15]))
        claim["display_order"] = loads(claim["display_order"])
        return claim, row
    return _FALLBACK


def _item_from_row(row: tuple) -> dict:
    """The item of a ``prefstore_claim`` row, as :func:`get_item` returns it."""
    ids, idx, texts, systems = (value or [] for value in row[29:33])
    return item_with_responses(dict(zip(_ITEM_COLUMNS, row[15:29])), [
        {"id": i, "idx": k, "text": t, "system": s}
        for i, k, t, s in zip(ids, idx, texts, systems)])


def _claim(db, project_id: int, rater_id: int, *, now: dt.datetime | None,
           rng: random.Random | None) -> dict | None:
    """Claim the next item (without loading it): the assignment row.

    Two raters can never both take an item's last slot: SQLite serializes
    claims with ``BEGIN IMMEDIATE``; PostgreSQL locks the candidate item row
    (``FOR UPDATE SKIP LOCKED``) and rechecks its quota. A rater's open,
    unexpired claim is returned again (a refresh resumes it). Order: items
    routed to humans, a gold item at the project's gold rate, then the items
    with the fewest human judgments. An item never goes to a rater twice, nor
    to more raters than ``raters_per_item``; claims expire.

    The walk starts at the rater's cursor in each queue: the item they were
    last served there. Every item before it was closed to them then, and stays
    closed: their own items stay theirs, and a judgment only moves an item
    later in the queue. What could reopen one (new items, a skip, a flag, an
    exclusion lifted, routing, settings, a removed claim) bumps the project's
    ``queue_epoch``, and an expired claim is seen by its expiry time; either
    sends the next walk back to the start of the queue. So a rater who has
    judged 100,000 items does not step over them on every claim.
    """
    now = now or dt.datetime.now(dt.UTC)
    now_s = now_iso(now)
    rng = rng or random.Random()
    with write(db):
        rows = db.execute(_RATER_AND_CURSORS[db.dialect],
                          {"p": project_id, "now": now_s, "r": rater_id}).fetchall()
        if not rows:
            raise NotFound(f"rater {rater_id!r} does not exist")
        (active, open_claim, found_project, name, stored, archived, epoch, routed_plain,
         routed_gold, served, served_gold) = rows[0][:11]
        routed = {0: routed_plain, 1: routed_gold}  # any items routed to humans in the queue?
        if found_project is None:
            raise NotFound(f"project {project_id!r} does not exist")
        if archived is not None:
            raise AccessDenied(f"project {name!r} is archived: it takes no more ratings")
        if not active:
            raise AccessDenied("this rater is deactivated")
        if open_claim is not None:
            found = db.query("SELECT * FROM assignments WHERE id = ?", [open_claim])
            claim = next(iter(found))
            claim["display_order"] = loads(claim["display_order"])
            return claim
        settings = settings_from_text(stored)
        cap = settings.raters_per_item
        expires = now_iso(now + dt.timedelta(seconds=settings.claim_ttl_seconds))
        cursors = {(gold, rank): (level, priority, item)
                   for gold, rank, cursor_epoch, claimed_at, level, priority, item, expired
                   in (row[11:] for row in rows)
                   if gold is not None and cursor_epoch == epoch and claimed_at <= now_s
                   and not expired}
        params = {"p": project_id, "r": rater_id, "now": now_s, "cap": cap}
        claimed: dict = {}

        def take(query: dict, row: tuple) -> bool:
            """Claim a candidate; False when it filled meanwhile (PostgreSQL)."""
            item_id, n_responses, level, priority = row
            order = list(range(n_responses))
            rng.shuffle(order)
            values = {**query, "epoch": epoch, "expires": expires, "order": dumps(order),
                      "level": level, "priority": priority, "item": item_id}
            if db.dialect == "sqlite":
                db.execute(_SET_CURSOR, values)
                if db.execute("SELECT 1 FROM assignments WHERE item_id = ? AND rater_id = ?",
                              [item_id, rater_id]).fetchone() is None:
                    db.execute(_COUNT_SERVED, values)
            assignment = db.execute(_CLAIM[db.dialect], values).fetchone()
            if assignment is None:
                return False
            claimed.update(id=assignment[0], item_id=item_id, display_order=order)
            return True

        def pick(statement: dict, query: dict) -> bool:
            if db.dialect == "sqlite":
                row = db.execute(statement["sqlite"], query).fetchone()
                return row is not None and take(query, row)
            # Candidates that filled up meanwhile drop out of the next query's
            # snapshot, so this loop ends.
            while rows := db.execute(statement["postgres"], query).fetchall():
                if any(take(query, row) for row in rows):
                    return True
            return False

        def walk(query: dict) -> bool:
            """Claim the first open item of one queue: from the cursor, else from the start."""
            cursor = cursors.get((query["gold"], query["rank"]))
            if cursor is not None:
                level, priority, item = cursor
                at = {**query, "level": level, "priority": priority, "item": item}
                if (pick(_SAME_PRIORITY, at) or pick(_LOWER_PRIORITY, at)
                        or pick(_AFTER_LEVEL, {**query, "after": level})):
                    return True
            # No cursor, or nothing after it: the whole queue, so that "nothing
            # left" is never wrong.
            for attempt in range(1 if db.dialect == "sqlite" else LOCKED_RETRIES):
                if pick(_AFTER_LEVEL, {**query, "after": -1}):
                    return True
                # PostgreSQL, none free: wait out a claim or submit that holds an open item.
                if db.dialect == "sqlite" or db.execute(_ANY_CANDIDATE, query).fetchone() is None:
                    return False
                time.sleep(0.02 * (attempt + 1))
            return False

        def serve(gold: int) -> bool:
            # One queue rank at a time (routed to humans, then not routed yet):
            # with equality on the rank, items_queue yields rows already in
            # (n_human, priority DESC, id) order and LIMIT stops at the first
            # fit instead of sorting every open item (benchmarks/README.md).
            return ((routed[gold] and walk({**params, "gold": gold, "rank": 0}))
                    or walk({**params, "gold": gold, "rank": 1}))

        # Gold on every 1/rate-th item: the (served+1)-th item is gold when the
        # quota grows past the golds already served.
        gold_first = (settings.gold_rate > 0
                      and int(((served or 0) + 1) * settings.gold_rate) > (served_gold or 0))
        if not ((gold_first and serve(1)) or serve(0)
                or (settings.gold_rate > 0 and not gold_first and serve(1))):
            return None
    return {"id": claimed["id"], "item_id": claimed["item_id"], "rater_id": rater_id,
            "claimed_at": now_s, "expires_at": expires, "status": "claimed", "reason": None,
            "display_order": claimed["display_order"], "updated_at": now_s}


def get_assignment(db, assignment_id: int) -> dict:
    rows = list(db.query("SELECT * FROM assignments WHERE id = ?", [assignment_id]))
    if not rows:
        raise NotFound(f"assignment {assignment_id!r} does not exist")
    assignment = rows[0]
    assignment["display_order"] = loads(assignment["display_order"])
    assignment["item"] = get_item(db, assignment["item_id"])
    return assignment


def release_assignment(db, assignment_id: int, rater_id: int, *, status: str,
                       reason: str | None = None) -> None:
    """Record a skip or a flag for a claimed item; the slot is freed.

    A skip or flag of an item the admin re-queued opens a new review entry.
    """
    if status not in ("skipped", "flagged"):
        raise InvalidInput(f"status must be 'skipped' or 'flagged', got {status!r}")
    claim = db.execute(
        "SELECT a.item_id, i.project_id, p.settings FROM assignments a "
        "JOIN items i ON i.id = a.item_id JOIN projects p ON p.id = i.project_id "
        "WHERE a.id = ? AND a.rater_id = ?", [assignment_id, rater_id]).fetchone()
    if claim is None:
        raise NotFound(f"assignment {assignment_id!r} does not belong to this rater")
    item_id, project_id, settings = claim
    with write(db):
        # Lock order, as in a submit: the counter lock, the item, the counters, the project.
        lock_project_counts(db, project_id, exclusive=False)
        item = lock_item_for_rater(db, item_id, rater_id,
                                   settings_from_text(settings).raters_per_item)
        cur = db.execute(
            "UPDATE assignments SET status = ?, reason = ?, updated_at = ?, resolution = NULL, "
            "resolved_at = NULL, resolved_by = NULL "
            "WHERE id = ? AND rater_id = ? AND status = 'claimed'",
            [status, reason, now_iso(), assignment_id, rater_id],
        )
        if cur.rowcount:
            count_release(db, rater_id, item, delta=1)
            # The slot is free again, and may lie before other raters' cursors.
            db.execute("UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = ?",
                       [project_id])
