"""Routing decisions (human, LLM or both per item) and the queue ranks they set on items."""

from __future__ import annotations

import json

import pandas as pd

from prefstore.errors import InvalidInput
from prefstore.store.connection import dumps, now_iso, write
from prefstore.store.progress import lock_project_counts
from prefstore.store.projects import bump_queue_epoch, recount_queue_counts

ROUTES = ("human", "llm", "both")


def save_routing(db, project_id: int, decisions: list[dict]) -> None:
    """Replace the project's routing decisions and the items' queue ranks.

    Each decision: ``{"item_id", "decision", "predicted_agreement", "priority",
    "features"}``.
    """
    rank = {"human": 0, "both": 0, "llm": 2}
    for d in decisions:
        if d["decision"] not in ROUTES:
            raise InvalidInput(f"routing decision must be one of {', '.join(ROUTES)}, "
                               f"got {d['decision']!r}")
    created = now_iso()
    with write(db):
        lock_project_counts(db, project_id, exclusive=True)
        db.execute("DELETE FROM routing WHERE project_id = ?", [project_id])
        db.executemany(
            "INSERT INTO routing (project_id, item_id, decision, predicted_agreement, priority, "
            "features, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(project_id, d["item_id"], d["decision"], d.get("predicted_agreement"),
              d.get("priority"), dumps(d.get("features") or {}), created) for d in decisions])
        db.execute("UPDATE items SET queue_rank = 1, priority = 0 WHERE project_id = ?",
                   [project_id])
        db.executemany(
            "UPDATE items SET queue_rank = ?, priority = ? WHERE id = ? AND project_id = ?",
            [(rank[d["decision"]], d.get("priority") or 0.0, d["item_id"], project_id)
             for d in decisions])
        bump_queue_epoch(db, project_id)
        recount_queue_counts(db, project_id)


def routing_frame(db, project_id: int) -> pd.DataFrame:
    frame = db.frame(
        "SELECT r.item_id, i.external_id, r.decision, r.predicted_agreement, r.priority, "
        "r.features, r.created_at FROM routing r JOIN items i ON i.id = r.item_id "
        "WHERE r.project_id = ? ORDER BY r.item_id", [project_id])
    frame["features"] = [json.loads(f) if isinstance(f, str) else {} for f in frame["features"]]
    return frame


def routing_counts(db, project_id: int) -> dict[str, int]:
    """Return the project's routing decisions counted by route, every route listed."""
    counts = dict.fromkeys(ROUTES, 0)
    counts.update(db.execute(
        "SELECT decision, COUNT(*) FROM routing WHERE project_id = ? GROUP BY decision",
        [project_id]).fetchall())
    return counts
