"""The admin's review queue: the skips and flags of a project and how each was resolved.

Rows are ``assignments`` in status ``skipped`` or ``flagged``; a resolution
(``dismiss``, ``exclude``, ``requeue``) is recorded on the row itself with its
time and resolver, and in the audit log. Nothing is deleted.

A skip or a flag only ever keeps the item from the rater who made it (the
claim query passes over items the rater has a finished assignment for); the
item stays open to everyone else. ``requeue`` undoes that for the rater: the
row becomes an expired claim, which the claim query treats as free, so the
rater is served the item again (and a new skip opens a new entry).
"""

from __future__ import annotations

import datetime as dt

from prefstore.errors import Conflict, InvalidInput, NotFound
from prefstore.store.connection import now_iso, write
from prefstore.store.items import item_by_external
from prefstore.store.progress import count_release, lock_item_for_rater, lock_project_counts
from prefstore.store.projects import (
    bump_queue_epoch,
    get_project,
    log_action,
    recount_queue_counts,
)
from prefstore.store.raters import get_rater

RESOLUTIONS = ("dismiss", "exclude", "requeue")

_QUEUE = (
    "SELECT a.id AS assignment_id, i.external_id AS item, r.name AS rater, a.status, a.reason, "
    "a.updated_at AS at, a.resolution, a.resolved_by, a.resolved_at, "
    "i.excluded_at AS item_excluded_at FROM assignments a "
    "JOIN items i ON i.id = a.item_id JOIN raters r ON r.id = a.rater_id "
    "WHERE i.project_id = :p AND (a.status IN ('skipped', 'flagged') OR a.resolution IS NOT NULL) "
    "AND (:item IS NULL OR a.id = :item) "
    # Open ones first, oldest first (the order they came in); then the latest resolved.
    "ORDER BY CASE WHEN a.resolution IS NULL THEN 0 ELSE 1 END, "
    "CASE WHEN a.resolution IS NULL THEN a.updated_at END, a.resolved_at DESC, a.id "
    "LIMIT :limit")


def review_queue(db, project_id: int, *, limit: int = 1000) -> list[dict]:
    """Return a project's skips and flags: the open ones first, oldest first, then the resolved.

    Each row: ``assignment_id``, ``item`` (its external id), ``rater`` (name),
    ``status`` (``skipped`` or ``flagged``; a re-queued row shows the state of
    its new claim), ``reason`` (the skip reason or flag note), ``at`` (when),
    ``resolution``, ``resolved_by``, ``resolved_at`` (None while open) and
    ``item_excluded_at``.
    """
    return list(db.query(_QUEUE, {"p": project_id, "item": None, "limit": int(limit)}))


def review_counts(db, project_id: int) -> dict[str, int]:
    """Return ``{"open": ..., "resolved": ...}`` for a project's review queue."""
    open_, resolved = db.execute(
        "SELECT COUNT(CASE WHEN a.resolution IS NULL THEN 1 END), COUNT(a.resolution) "
        "FROM assignments a JOIN items i ON i.id = a.item_id WHERE i.project_id = ? "
        "AND (a.status IN ('skipped', 'flagged') OR a.resolution IS NOT NULL)",
        [project_id]).fetchone()
    return {"open": open_, "resolved": resolved}


def resolve_review(db, project_id: int, item: str, rater: str, action: str, *, actor: str,
                   now: dt.datetime | None = None) -> dict:
    """Resolve the skip or flag of ``rater`` on the item with external id ``item``.

    ``dismiss`` only records the decision. ``exclude`` also excludes the item
    from the project (:func:`~prefstore.store.items.set_item_excluded`).
    ``requeue`` makes the item servable to that rater again. Returns the
    resolved queue row.

    Raises
    ------
    InvalidInput
        For an unknown action.
    NotFound
        For an unknown item or rater, or when the rater has no skip or flag on the item.
    Conflict
        When the entry is already resolved.
    """
    if action not in RESOLUTIONS:
        raise InvalidInput(f"action must be one of {', '.join(RESOLUTIONS)}, got {action!r}")
    project = get_project(db, project_id)
    found = item_by_external(db, project_id, item)
    rater_row = get_rater(db, rater)
    at = now_iso(now)
    with write(db):
        # Exclusive: a requeue counts the rater's skip out, an exclusion recounts.
        lock_project_counts(db, project["id"], exclusive=True)
        row = db.execute(
            "SELECT id, status, reason, resolution, resolved_by, resolved_at FROM assignments "
            "WHERE item_id = ? AND rater_id = ?", [found["id"], rater_row["id"]]).fetchone()
        if row is None or (row[1] not in ("skipped", "flagged") and row[3] is None):
            raise NotFound(f"rater {rater_row['name']!r} has no skip or flag on item {item!r}")
        assignment_id, status, reason = row[0], row[1], row[2]
        # Conditional, so of two admins resolving at once exactly one wins. A
        # requeue turns the row into a claim that expired just now: free again.
        done = db.execute(
            "UPDATE assignments SET resolution = :action, resolved_at = :at, "
            "resolved_by = :actor, "
            "status = CASE WHEN :action = 'requeue' THEN 'claimed' ELSE status END, "
            "expires_at = CASE WHEN :action = 'requeue' THEN :at ELSE expires_at END "
            "WHERE id = :id AND resolution IS NULL "
            "AND status IN ('skipped', 'flagged') RETURNING id",
            {"action": action, "at": at, "actor": actor, "id": assignment_id}).fetchone()
        if done is None:
            current = db.execute(
                "SELECT resolution, resolved_by, resolved_at FROM assignments WHERE id = ?",
                [assignment_id]).fetchone()
            raise Conflict(f"the review of item {item!r} by {rater_row['name']!r} is already "
                           f"resolved: {current[0]} by {current[1]!r} at {current[2]}")
        if action == "requeue":
            count_release(db, rater_row["id"], lock_item_for_rater(
                db, found["id"], rater_row["id"], project["settings"].raters_per_item), delta=-1)
            bump_queue_epoch(db, project["id"])
        if action == "exclude":
            db.execute("UPDATE items SET excluded_at = ? WHERE id = ? AND excluded_at IS NULL",
                       [at, found["id"]])
            recount_queue_counts(db, project["id"])
        log_action(db, project["id"], actor, "resolve_review",
                   {"item": item, "rater": rater_row["name"], "status": status,
                    "reason": reason, "resolution": action})
    return next(iter(db.query(_QUEUE, {"p": project_id, "item": assignment_id, "limit": 1})))
