"""Items and their responses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import pandas as pd

from prefstore.errors import Conflict, NotFound
from prefstore.store.connection import dumps, loads, now_iso, write
from prefstore.store.projects import log_action


def insert_items(db, project_id: int, items: Iterable[dict]) -> list[int]:
    """Insert validated items with their responses; return the new item ids.

    Each item dict has ``external_id``, ``prompt`` or ``messages``, ``responses``
    (list of ``{"text", "system"}``), and optional ``metadata``, ``category``,
    ``gold``. Call inside :func:`write` to make a batch atomic.
    """
    created = now_iso()
    ids = []
    with write(db):
        for item in items:
            row = db.execute(
                "INSERT INTO items (project_id, external_id, prompt, messages, metadata, "
                "category, gold, is_gold, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project_id, external_id) DO NOTHING RETURNING id",
                [project_id, item["external_id"], item.get("prompt"),
                 dumps(item.get("messages")), dumps(item.get("metadata") or {}),
                 item.get("category"), dumps(item.get("gold")),
                 int(item.get("gold") is not None), created],
            ).fetchone()
            if row is None:
                raise Conflict(
                    f"item id {item['external_id']!r} already exists in this project")
            item_id = row[0]
            db.executemany(
                "INSERT INTO responses (item_id, idx, text, system) VALUES (?, ?, ?, ?)",
                [(item_id, i, r["text"], r.get("system"))
                 for i, r in enumerate(item["responses"])],
            )
            ids.append(item_id)
    return ids


def existing_external_ids(db, project_id: int) -> set[str]:
    return {r[0] for r in db.execute(
        "SELECT external_id FROM items WHERE project_id = ?", [project_id])}


def item_ids_by_external(db, project_id: int) -> dict[str, tuple[int, int]]:
    """Map external id -> (item id, number of responses) for a project."""
    rows = db.execute(
        "SELECT i.external_id, i.id, COUNT(r.id) FROM items i "
        "JOIN responses r ON r.item_id = i.id WHERE i.project_id = ? "
        "GROUP BY i.id, i.external_id",
        [project_id],
    )
    return {ext: (item_id, n) for ext, item_id, n in rows}


def get_item(db, item_id: int) -> dict:
    """Return an item with its parsed fields and its responses in stored order."""
    rows = list(db.query("SELECT * FROM items WHERE id = ?", [item_id]))
    if not rows:
        raise NotFound(f"item {item_id!r} does not exist")
    item = rows[0]
    item["messages"] = loads(item["messages"])
    item["metadata"] = loads(item["metadata"], {})
    item["gold"] = loads(item["gold"])
    item["responses"] = list(db.query(
        "SELECT id, idx, text, system FROM responses WHERE item_id = ? ORDER BY idx", [item_id]))
    return item


def iter_items(db, project_id: int) -> Iterator[dict]:
    """Yield a project's items with responses, streaming in id order."""
    last = 0
    while True:
        batch = list(db.query(
            "SELECT id FROM items WHERE project_id = ? AND id > ? ORDER BY id LIMIT 500",
            [project_id, last]))
        if not batch:
            return
        for row in batch:
            yield get_item(db, row["id"])
        last = batch[-1]["id"]


# The one statement whose spelling differs: a list of ids as one parameter.
_RESPONSES_FOR_ITEMS = {
    "sqlite": "SELECT id, item_id, idx, text, system FROM responses "
              "WHERE item_id IN (SELECT value FROM json_each(?)) ORDER BY item_id, idx",
    "postgres": "SELECT id, item_id, idx, text, system FROM responses "
                "WHERE item_id = ANY(?) ORDER BY item_id, idx",
}


def id_list(db, ids: list[int]):
    """Return ``ids`` as the one parameter of an ``IN``-list statement for this dialect."""
    ids = [int(i) for i in ids]
    return json.dumps(ids) if db.dialect == "sqlite" else ids


def responses_for_items(db, item_ids: list[int]) -> dict[int, list[dict]]:
    """Return ``{item_id: [response, ...]}`` for a batch of items."""
    out: dict[int, list[dict]] = {i: [] for i in item_ids}
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start:start + 500]
        for row in db.query(_RESPONSES_FOR_ITEMS[db.dialect], [id_list(db, chunk)]):
            out[row["item_id"]].append(row)
    return out


def responses_frame(db, project_id: int, *, with_text: bool = True) -> pd.DataFrame:
    """Return a project's responses: item_id, idx, response_id, system, length (and text)."""
    return db.frame(
        "SELECT r.item_id, r.idx, r.id AS response_id, r.system, LENGTH(r.text) AS length, "
        "CASE WHEN :text = 1 THEN r.text END AS text "
        "FROM responses r JOIN items i ON i.id = r.item_id WHERE i.project_id = :p "
        "ORDER BY r.item_id, r.idx",
        {"p": project_id, "text": int(with_text)},
    )


def items_frame(db, project_id: int) -> pd.DataFrame:
    """Return a project's items: item_id, external_id, category, gold_choice, n_responses, ..."""
    frame = db.frame(
        "SELECT i.id AS item_id, i.external_id, i.category, i.gold, i.is_gold, i.queue_rank, "
        "i.n_human, LENGTH(COALESCE(i.prompt, CAST(i.messages AS TEXT))) AS prompt_length, "
        "i.metadata, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id) AS n_responses "
        "FROM items i WHERE i.project_id = ? ORDER BY i.id",
        [project_id],
    )
    gold = [json.loads(g) if isinstance(g, str) else None for g in frame["gold"]]
    frame["gold_choice"] = pd.array(
        [g.get("choice") if g and isinstance(g.get("choice"), int) else None for g in gold],
        dtype="Int64")
    frame["metadata"] = [json.loads(m) if isinstance(m, str) else {} for m in frame["metadata"]]
    return frame.drop(columns=["gold"])


def open_item_count(db, project_id: int, raters_per_item: int) -> int:
    """Return how many of the project's items still want a human judgment (for anyone)."""
    return db.execute(
        "SELECT COUNT(*) FROM items WHERE project_id = ? AND queue_rank < 2 AND n_human < ? "
        "AND excluded_at IS NULL", [project_id, raters_per_item]).fetchone()[0]


def item_by_external(db, project_id: int, external_id: str) -> dict:
    """Return the item row (without responses) with this external id. Raises NotFound."""
    rows = list(db.query("SELECT * FROM items WHERE project_id = ? AND external_id = ?",
                         [project_id, external_id]))
    if not rows:
        raise NotFound(f"item {external_id!r} does not exist in this project")
    return rows[0]


def excluded_items(db, project_id: int) -> list[dict]:
    """Return the project's excluded items, ``{"external_id", "excluded_at"}``, latest first."""
    return list(db.query(
        "SELECT external_id, excluded_at FROM items WHERE project_id = ? "
        "AND excluded_at IS NOT NULL ORDER BY excluded_at DESC, id", [project_id]))


def set_item_excluded(db, project_id: int, external_id: str, excluded: bool, *,
                      actor: str) -> dict:
    """Exclude an item from its project (never served or counted again) or include it again.

    A state, nothing is deleted: the item keeps its judgments and comes back
    as it was. Excluding an excluded item keeps its first ``excluded_at`` and
    logs nothing. Returns the item row. Raises NotFound for an unknown id.
    """
    with write(db):
        item = item_by_external(db, project_id, external_id)
        cur = db.execute(
            "UPDATE items SET excluded_at = ? WHERE id = ? AND (excluded_at IS NULL) = ?",
            [now_iso() if excluded else None, item["id"], excluded])
        if cur.rowcount:
            log_action(db, project_id, actor, "exclude_item" if excluded else "include_item",
                       {"item": external_id})
    return item_by_external(db, project_id, external_id)


def items_missing_judgment(db, project_id: int, rater_id: int, *, limit: int = 32) -> list[dict]:
    """Return up to ``limit`` items (with responses) that ``rater_id`` has not judged."""
    rows = db.execute(
        "SELECT i.id FROM items i WHERE i.project_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.rater_id = ?) "
        "ORDER BY i.id LIMIT ?", [project_id, rater_id, limit]).fetchall()
    return [get_item(db, r[0]) for r in rows]


def count_items_missing_judgment(db, project_id: int, rater_name: str) -> int:
    """Count the items of a project that the rater called ``rater_name`` has not judged."""
    return db.execute(
        "SELECT COUNT(*) FROM items i WHERE i.project_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM judgments j JOIN raters r ON r.id = j.rater_id "
        " WHERE j.item_id = i.id AND r.name = ?)", [project_id, rater_name]).fetchone()[0]
