"""Each rater's progress in a project (the ``rater_counts`` table), kept by the writes.

Per (rater, project), over the project's items that are not excluded:

- ``done``: the items the rater judged (a changed judgment is still one item);
- ``skipped``: the items the rater skipped or flagged;
- ``open_mine``: the items the rater judged, skipped or flagged ("touched") that
  are still open (routed to humans, below ``raters_per_item``).

A rater's progress is then read in one row, whatever their history (issue 17):
``n = done + skipped + open_items - open_mine``.

A submit, a skip and a requeue change the counters of the rater who made them;
a submit that fills an item's last slot takes it out of ``open_mine`` for every
rater who touched it. Those writes lock the item first, so the set of raters who
touched it is read after every earlier write to it has committed. Changes that
move many items at once (settings, routing, exclusions, imports) count the
project again, under :func:`lock_project_counts`, which waits for the writes in
flight and holds new ones back until the recount commits. On SQLite every write
transaction holds the database, so the lock is a no-op there.
"""

from __future__ import annotations

from prefstore.errors import NotFound
from prefstore.store.connection import prepared

#: Advisory lock class of the progress counters (PostgreSQL); the project id is the
#: second key. Writes take it shared, a recount exclusively.
PG_COUNTS_LOCK = 0x70726567

# The raters whose touch of an item counts now, bar the judgment just stored.
_CLOSE_ITEM = (
    "UPDATE rater_counts SET open_mine = open_mine - 1 WHERE project_id = :p AND rater_id IN ("
    "SELECT j.rater_id FROM judgments j WHERE j.item_id = :i AND j.id <> :j "
    "UNION SELECT a.rater_id FROM assignments a WHERE a.item_id = :i "
    "AND a.status IN ('skipped', 'flagged'))")
_TOUCHED_BEFORE = (
    "SELECT NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = :i "
    "AND j.id <> :j), EXISTS (SELECT 1 FROM assignments a WHERE a.rater_id = :r "
    "AND a.item_id = :i AND a.status IN ('skipped', 'flagged'))")
_ADD_OWN = (
    "INSERT INTO rater_counts (rater_id, project_id, done, skipped, open_mine) "
    "VALUES (:r, :p, :done, :skipped, :open) ON CONFLICT (rater_id, project_id) DO UPDATE SET "
    "done = rater_counts.done + excluded.done, skipped = rater_counts.skipped + excluded.skipped, "
    "open_mine = rater_counts.open_mine + excluded.open_mine")
# The item (locked on PostgreSQL, so the reads after it see every committed touch),
# whether the rater judged it, and whether it is open.
_ITEM_FOR_RATER = {
    "sqlite": (
        "SELECT i.project_id, i.excluded_at IS NULL AND i.queue_rank < 2 AND i.n_human < :cap, "
        "i.excluded_at IS NULL, EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r "
        "AND j.item_id = i.id) FROM items i WHERE i.id = :i"),
    "postgres": (
        "SELECT i.project_id, i.excluded_at IS NULL AND i.queue_rank < 2 AND i.n_human < :cap, "
        "i.excluded_at IS NULL, EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r "
        "AND j.item_id = i.id) FROM items i WHERE i.id = :i FOR UPDATE OF i"),
}
_LOCK_SHARED = {
    "postgres": "SELECT pg_advisory_xact_lock_shared(:key, CAST(:p AS integer))",
}
_LOCK_EXCLUSIVE = {
    "postgres": "SELECT pg_advisory_xact_lock(:key, CAST(:p AS integer))",
}
_PROGRESS = prepared(
    "SELECT p.open_items, c.done, c.skipped, c.open_mine FROM projects p "
    "LEFT JOIN rater_counts c ON c.project_id = p.id AND c.rater_id = ? WHERE p.id = ?")
_RECOUNT = (
    "INSERT INTO rater_counts (rater_id, project_id, done, skipped, open_mine) "
    "SELECT t.rater_id, :p, SUM(t.judged), SUM(t.skipped), SUM(t.open_now) FROM ("
    " SELECT u.rater_id, MAX(u.judged) AS judged, MAX(u.skipped) AS skipped, "
    " MAX(u.open_now) AS open_now FROM ("
    "  SELECT j.rater_id, j.item_id, 1 AS judged, 0 AS skipped, "
    "  CASE WHEN i.queue_rank < 2 AND i.n_human < :cap THEN 1 ELSE 0 END AS open_now "
    "  FROM judgments j JOIN items i ON i.id = j.item_id "
    "  WHERE i.project_id = :p AND i.excluded_at IS NULL "
    "  UNION ALL SELECT a.rater_id, a.item_id, 0, 1, "
    "  CASE WHEN i.queue_rank < 2 AND i.n_human < :cap THEN 1 ELSE 0 END "
    "  FROM assignments a JOIN items i ON i.id = a.item_id "
    "  WHERE i.project_id = :p AND i.excluded_at IS NULL "
    "  AND a.status IN ('skipped', 'flagged')) u "
    " GROUP BY u.rater_id, u.item_id) t GROUP BY t.rater_id")


def lock_project_counts(db, project_id: int, *, exclusive: bool) -> None:
    """Take the project's counter lock for this transaction (PostgreSQL; SQLite: no-op).

    Writes that keep the counters take it shared, before any row lock; a change
    that recounts takes it exclusively, first thing in its transaction, so no
    write it waits for can be waiting for a row it holds.
    """
    if db.dialect == "postgres":
        db.execute((_LOCK_EXCLUSIVE if exclusive else _LOCK_SHARED)["postgres"],
                   {"key": PG_COUNTS_LOCK, "p": project_id})


def count_judgment(db, *, judgment_id: int, item_id: int, rater_id: int, project_id: int,
                   n_human: int, queue_rank: int, excluded: bool, human: bool,
                   cap: int) -> None:
    """Count a judgment just stored (SQLite; PostgreSQL's ``prefstore_submit_one`` does the same).

    ``n_human``, ``queue_rank`` and ``excluded`` are the item's after the judgment.
    """
    if excluded:
        return
    params = {"r": rater_id, "i": item_id, "j": judgment_id, "p": project_id}
    first, skipped_before = db.execute(_TOUCHED_BEFORE, params).fetchone()
    open_after = queue_rank < 2 and n_human < cap
    open_before = queue_rank < 2 and n_human - int(human) < cap
    if open_before and not open_after:  # its last slot filled: open to no one now
        db.execute(_CLOSE_ITEM, params)
    touched = not first or skipped_before
    db.execute(_ADD_OWN, {**params, "done": int(bool(first)), "skipped": 0,
                          "open": int(not touched and open_after)})


def lock_item_for_rater(db, item_id: int, rater_id: int, cap: int) -> tuple | None:
    """Lock the item (PostgreSQL) and return ``(project_id, open, included, judged_by_rater)``.

    Call it before changing the rater's skip or flag on the item, and pass the
    result to :func:`count_release`.
    """
    return db.execute(_ITEM_FOR_RATER[db.dialect],
                      {"i": item_id, "r": rater_id, "cap": cap}).fetchone()


def count_release(db, rater_id: int, item: tuple, *, delta: int) -> None:
    """Count a skip or flag (``delta=1``) or its requeue (``delta=-1``) of a locked item."""
    project_id, is_open, included, judged = item
    if not included:
        return
    db.execute(_ADD_OWN, {"r": rater_id, "p": project_id, "done": 0, "skipped": delta,
                          "open": delta if is_open and not judged else 0})


def recount_rater_counts(db, project_id: int, cap: int) -> None:
    """Count every rater's progress in the project again, from their rows.

    Call it in the transaction of a change that moves many items at once, after
    :func:`lock_project_counts` (exclusive) at its start (see
    ``projects.recount_queue_counts``).
    """
    db.execute("DELETE FROM rater_counts WHERE project_id = ?", [project_id])
    db.execute(_RECOUNT, {"p": project_id, "cap": cap})


def rater_progress(db, project_id: int, rater_id: int) -> dict:
    """Return the rater's progress in a project: ``k`` of ``n`` done.

    ``k`` counts the items they judged (a changed judgment is still one item;
    excluded items drop out) and the items they skipped or flagged.
    ``n`` is every item they can ever be served here: those, plus the items
    still open to them (routed to humans, below their quota, not yet theirs).
    ``n`` does not move when they submit; it shrinks only when other raters
    fill an item's quota, and grows when items are added. Excluded items
    count nowhere.

    Returns ``{"done", "skipped", "k", "n", "remaining"}``, read in one row of
    counters kept by the writes: the same cost whatever the rater's history.
    """
    row = db.execute(_PROGRESS, [rater_id, project_id]).fetchone()
    if row is None:
        raise NotFound(f"project {project_id!r} does not exist")
    open_items, done, skipped, open_mine = row[0], row[1] or 0, row[2] or 0, row[3] or 0
    remaining = open_items - open_mine
    return {"done": done, "skipped": skipped, "k": done + skipped,
            "n": done + skipped + remaining, "remaining": remaining}
