"""Items and their responses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from prefstore.errors import Conflict, InvalidInput, NotFound
from prefstore.store.connection import dumps, loads, now_iso, write
from prefstore.store.progress import lock_project_counts
from prefstore.store.projects import (
    bump_queue_epoch,
    log_action,
    recount_queue_counts,
    recount_served,
)


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
        if ids:
            bump_queue_epoch(db, project_id)
            # New items have no judgments and are not routed yet: all open.
            db.execute("UPDATE projects SET open_items = open_items + ? WHERE id = ?",
                       [len(ids), project_id])
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
    return item_with_responses(rows[0], list(db.query(
        "SELECT id, idx, text, system FROM responses WHERE item_id = ? ORDER BY idx", [item_id])))


def item_with_responses(row: dict, responses: list[dict]) -> dict:
    """An ``items`` row with its JSON fields parsed and its responses attached."""
    row["messages"] = loads(row["messages"])
    row["metadata"] = loads(row["metadata"], {})
    row["gold"] = loads(row["gold"])
    row["responses"] = responses
    return row


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


def items_report_frame(db, project_id: int) -> pd.DataFrame:
    """Return what the agreement report reads of a project's items: item_id, gold_choice,
    n_responses (:func:`items_frame`'s values, without parsing every item's metadata)."""
    frame = db.frame(
        "SELECT i.id AS item_id, i.gold, "
        "(SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id) AS n_responses "
        "FROM items i WHERE i.project_id = ? ORDER BY i.id", [project_id])
    choice = [None] * len(frame)
    for k in np.flatnonzero(frame["gold"].notna().to_numpy()).tolist():
        gold = json.loads(frame["gold"].iloc[k])
        if gold and isinstance(gold.get("choice"), int):
            choice[k] = gold["choice"]
    frame["gold_choice"] = pd.array(choice, dtype="Int64")
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
        lock_project_counts(db, project_id, exclusive=True)
        item = item_by_external(db, project_id, external_id)
        cur = db.execute(
            "UPDATE items SET excluded_at = ? WHERE id = ? AND (excluded_at IS NULL) = ?",
            [now_iso() if excluded else None, item["id"], excluded])
        if cur.rowcount:
            bump_queue_epoch(db, project_id)
            recount_queue_counts(db, project_id)
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


# --------------------------------------------------------------------------
# The admin's item browser

#: The longest search text or metadata filter the browser accepts.
MAX_FILTER_CHARS = 1_000
#: The routing filters: a decision of :data:`~prefstore.store.routing.ROUTES`, or not routed.
ROUTING_FILTERS = ("human", "llm", "both", "none")
ITEM_ORDERS = ("id", "disagreement")

# The browser's search, fully static SQL: a NULL parameter switches a filter
# off. The ids that match come first (their count is the total, and import order
# pages them without sorting); the page's rows are read by id after. One
# statement per dialect, as they read metadata differently.
_MATCHING_ITEMS = {
    "sqlite": """
        SELECT i.id FROM items i
        LEFT JOIN routing ro ON ro.item_id = i.id AND ro.project_id = i.project_id
        WHERE i.project_id = :project
        AND (:pattern IS NULL
             OR LOWER(COALESCE(i.prompt, CAST(i.messages AS TEXT))) LIKE :pattern ESCAPE '\\'
             OR EXISTS (SELECT 1 FROM responses sr WHERE sr.item_id = i.id
                        AND LOWER(sr.text) LIKE :pattern ESCAPE '\\'))
        AND (:meta_key IS NULL
             OR (:meta_key = 'category' AND i.category = :meta_value)
             OR EXISTS (SELECT 1 FROM json_each(i.metadata) m WHERE m.key = :meta_key
                        AND m.type IN ('text', 'integer', 'real')
                        AND CAST(m.value AS TEXT) = :meta_value))
        AND (:routing IS NULL OR (:routing = 'none' AND ro.decision IS NULL)
             OR ro.decision = :routing)
        AND (:gold IS NULL OR i.is_gold = :gold)
        AND (:flagged IS NULL OR :flagged = CASE WHEN EXISTS (
            SELECT 1 FROM assignments fa WHERE fa.item_id = i.id
            AND fa.status IN ('flagged', 'skipped')) THEN 1 ELSE 0 END)
        ORDER BY i.id
    """,
    "postgres": """
        SELECT i.id FROM items i
        LEFT JOIN routing ro ON ro.item_id = i.id AND ro.project_id = i.project_id
        WHERE i.project_id = :project
        AND (CAST(:pattern AS TEXT) IS NULL
             OR LOWER(COALESCE(i.prompt, CAST(i.messages AS TEXT))) LIKE :pattern ESCAPE '\\'
             OR EXISTS (SELECT 1 FROM responses sr WHERE sr.item_id = i.id
                        AND LOWER(sr.text) LIKE :pattern ESCAPE '\\'))
        AND (CAST(:meta_key AS TEXT) IS NULL
             OR (CAST(:meta_key AS TEXT) = 'category' AND i.category = :meta_value)
             OR (jsonb_typeof(i.metadata -> CAST(:meta_key AS TEXT)) IN ('string', 'number')
                 AND i.metadata ->> CAST(:meta_key AS TEXT) = :meta_value))
        AND (CAST(:routing AS TEXT) IS NULL
             OR (CAST(:routing AS TEXT) = 'none' AND ro.decision IS NULL)
             OR ro.decision = :routing)
        AND (CAST(:gold AS INTEGER) IS NULL OR i.is_gold = :gold)
        AND (CAST(:flagged AS INTEGER) IS NULL OR :flagged = CASE WHEN EXISTS (
            SELECT 1 FROM assignments fa WHERE fa.item_id = i.id
            AND fa.status IN ('flagged', 'skipped')) THEN 1 ELSE 0 END)
        ORDER BY i.id
    """,
}

_PAGE_ROWS = {
    "sqlite": """
        SELECT i.id, i.external_id, i.category, i.is_gold, i.gold, i.metadata,
            COALESCE(i.prompt, CAST(i.messages AS TEXT)) AS prompt, ro.decision AS routing,
            (SELECT COUNT(*) FROM assignments fa WHERE fa.item_id = i.id
             AND fa.status IN ('flagged', 'skipped')) AS flags
        FROM items i
        LEFT JOIN routing ro ON ro.item_id = i.id AND ro.project_id = i.project_id
        WHERE i.id IN (SELECT value FROM json_each(?))
    """,
    "postgres": """
        SELECT i.id, i.external_id, i.category, i.is_gold, i.gold, i.metadata,
            COALESCE(i.prompt, CAST(i.messages AS TEXT)) AS prompt, ro.decision AS routing,
            (SELECT COUNT(*) FROM assignments fa WHERE fa.item_id = i.id
             AND fa.status IN ('flagged', 'skipped')) AS flags
        FROM items i
        LEFT JOIN routing ro ON ro.item_id = i.id AND ro.project_id = i.project_id
        WHERE i.id = ANY(?)
    """,
}

# Each item's effective human labels (for "most disagreed first").
_PROJECT_LABEL_COUNTS = (
    "SELECT j.item_id, COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
    "WHERE i.project_id = ? AND j.kind = 'human' "
    "AND NOT EXISTS (SELECT 1 FROM judgments s WHERE s.supersedes = j.id) "
    "GROUP BY j.item_id, j.outcome, j.choice")


_LABEL_COUNTS = {
    "sqlite": "SELECT item_id, COUNT(*) FROM judgments WHERE item_id IN "
              "(SELECT value FROM json_each(?)) AND kind = 'human' AND NOT EXISTS "
              "(SELECT 1 FROM judgments s WHERE s.supersedes = judgments.id) "
              "GROUP BY item_id, outcome, choice",
    "postgres": "SELECT item_id, COUNT(*) FROM judgments WHERE item_id = ANY(?) "
                "AND kind = 'human' AND NOT EXISTS (SELECT 1 FROM judgments s "
                "WHERE s.supersedes = judgments.id) GROUP BY item_id, outcome, choice",
}


def _disagreement_of(db, item_ids: list[int]) -> dict[int, tuple[int, float]]:
    """Return ``{item_id: (human judgments, disagreement)}`` for items with human judgments."""
    counts: dict[int, list[int]] = {}
    for item_id, n in db.execute(_LABEL_COUNTS[db.dialect], [id_list(db, item_ids)]):
        counts.setdefault(item_id, []).append(n)
    return {item_id: (sum(ns), 1.0 - max(ns) / sum(ns)) for item_id, ns in counts.items()}


def _filter_text(value: object, what: str) -> str:
    """Return a filter text, or raise InvalidInput naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__}")
    if len(value) > MAX_FILTER_CHARS:
        raise InvalidInput(f"{what} must have at most {MAX_FILTER_CHARS:,} characters, "
                           f"it has {len(value):,}")
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise InvalidInput(f"{what} must not contain NUL or unpaired surrogate characters")
    return value


def like_pattern(text: str) -> str:
    r"""Return a ``LIKE ... ESCAPE '\'`` pattern matching ``text`` anywhere, its ``%`` and ``_`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def search_items(db, project_id: int, *, text: str = "", metadata_key: str = "",
                 metadata_value: str = "", routing: str | None = None,
                 gold: bool | None = None, flagged: bool | None = None, order: str = "id",
                 limit: int = 20, offset: int = 0) -> dict:
    """Return one page of a project's items matching the filters, and how many match in all.

    Parameters
    ----------
    text : case-insensitive substring of the prompt (or the chat messages) or of
        any response; ``%``, ``_`` and ``\\`` are literal. SQLite folds the case
        of ASCII letters only. Empty: every item.
    metadata_key, metadata_value : the item's metadata value under the key
        equals the value, compared as text (``3`` matches ``"3"``); strings and
        numbers only. The key ``category`` also matches the item's category.
    routing : one of :data:`ROUTING_FILTERS` (``"none"``: no routing decision), or None.
    gold : True for gold items only, False for the others, None for both.
    flagged : True for items with a flagged or skipped assignment, False for
        the others, None for both.
    order : ``"id"`` (import order) or ``"disagreement"``: most disagreed first.
        An item's disagreement is the share of its human judgments that differ
        from its most common human label (a label is the chosen response, tie
        or both bad; a slate's is its best response): 0 when all agree, 0.5
        for a 1-1 split. Items without human judgments come last; equal ones
        in id order.
    limit, offset : the page.

    Returns
    -------
    ``{"total": matching items, "items": [{"id", "external_id", "category",
    "is_gold", "gold", "metadata", "prompt", "routing", "n_human",
    "disagreement", "flags"}, ...]}``; ``prompt`` is the prompt or the
    messages' JSON, ``disagreement`` None without human judgments, ``flags``
    the number of flagged or skipped assignments.

    Raises InvalidInput for an unknown filter value or an unusable text.
    """
    text = _filter_text(text, "the search text")
    metadata_key = _filter_text(metadata_key, "the metadata key").strip()
    metadata_value = _filter_text(metadata_value, "the metadata value").strip()
    if routing is not None and routing not in ROUTING_FILTERS:
        raise InvalidInput(f"routing must be one of {', '.join(ROUTING_FILTERS)}, "
                           f"got {routing!r}")
    if order not in ITEM_ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ITEM_ORDERS)}, got {order!r}")
    if not (isinstance(limit, int) and limit >= 1 and isinstance(offset, int) and offset >= 0):
        raise InvalidInput(f"limit must be at least 1 and offset at least 0, got {limit!r} "
                           f"and {offset!r}")
    if metadata_value and not metadata_key:
        raise InvalidInput("name the metadata key to filter its value by")
    params = {"project": project_id,
              "pattern": like_pattern(text) if text else None,
              "meta_key": metadata_key or None, "meta_value": metadata_value,
              "routing": routing, "gold": None if gold is None else int(gold),
              "flagged": None if flagged is None else int(flagged)}
    ids = [r[0] for r in db.execute(_MATCHING_ITEMS[db.dialect], params)]
    labels: dict[int, tuple[int, float]] = {}
    if order == "disagreement":
        counts: dict[int, list[int]] = {}
        for item_id, n in db.execute(_PROJECT_LABEL_COUNTS, [project_id]):
            counts.setdefault(item_id, []).append(n)
        labels = {i: (sum(ns), 1.0 - max(ns) / sum(ns)) for i, ns in counts.items()}
        # Most disagreed first; items without human judgments last; equal ones by id.
        ids.sort(key=lambda i: (i not in labels, -labels.get(i, (0, 0.0))[1], i))
    page_ids = ids[offset:offset + limit]
    if order != "disagreement":
        labels = _disagreement_of(db, page_ids)
    by_id = {row["id"]: row for row in db.query(_PAGE_ROWS[db.dialect],
                                                [id_list(db, page_ids)])}
    rows = [by_id[i] for i in page_ids]
    for row in rows:
        row["n_human"], row["disagreement"] = labels.get(row["id"], (0, None))
    for row in rows:
        row["gold"] = loads(row["gold"]) if isinstance(row["gold"], str) else row["gold"]
        if isinstance(row["metadata"], str):
            row["metadata"] = loads(row["metadata"], {})
        row["n_human"] = int(row["n_human"] or 0)
        if row["disagreement"] is not None:
            row["disagreement"] = float(row["disagreement"])
    return {"total": len(ids), "items": rows}


def item_detail(db, project_id: int, item_id: int) -> dict:
    """Return everything the browser shows of one item of a project.

    Returns :func:`get_item`'s dict plus ``routing`` (the decision or None),
    ``judgments`` (every human judgment, oldest first: id, rater, kind,
    outcome, choice, ranking, strength, display_order, aspects, rationale,
    reason_tags, edited, time_ms, created_at), ``verdicts`` (the LLM
    judgments, shaped the same plus ``confidence`` and ``swap_consistent``
    from the judge's metadata, None when not recorded) and ``flags`` (flagged
    or skipped assignments: rater, status, reason, updated_at).

    Raises NotFound when the item is not in the project.
    """
    item = get_item(db, item_id)
    if item["project_id"] != project_id:
        raise NotFound(f"item {item_id!r} is not in project {project_id!r}")
    decision = db.execute("SELECT decision FROM routing WHERE project_id = ? AND item_id = ?",
                          [project_id, item_id]).fetchone()
    item["routing"] = decision[0] if decision else None
    item["judgments"], item["verdicts"] = [], []
    for row in db.query(
            "SELECT j.id, r.name AS rater, j.kind, j.outcome, j.choice, j.ranking, j.strength, "
            "j.display_order, j.aspects, j.rationale, j.reason_tags, j.edited, j.metadata, "
            "j.time_ms, j.created_at FROM judgments j JOIN raters r ON r.id = j.rater_id "
            # A changed judgment shows as its latest row; the audit export has the chain.
            "WHERE j.item_id = ? AND NOT EXISTS (SELECT 1 FROM judgments sj "
            "WHERE sj.supersedes = j.id) ORDER BY j.id", [item_id]):
        for key in ("ranking", "display_order", "aspects", "reason_tags"):
            row[key] = loads(row[key])
        metadata = loads(row.pop("metadata"), {})
        if row["kind"] == "llm":
            row["confidence"] = metadata.get("confidence")
            row["swap_consistent"] = metadata.get("swap_consistent")
            item["verdicts"].append(row)
        else:
            item["judgments"].append(row)
    item["flags"] = list(db.query(
        "SELECT r.name AS rater, a.status, a.reason, a.updated_at FROM assignments a "
        "JOIN raters r ON r.id = a.rater_id WHERE a.item_id = ? "
        "AND a.status IN ('flagged', 'skipped') ORDER BY a.id", [item_id]))
    return item


def set_item_gold(db, project_id: int, item_id: int, *, choice: int | str | None = None,
                  ranking: list[int] | None = None, actor: str) -> dict | None:
    """Mark an item of a project gold with its expected answer, or unmark it; log who did it.

    A pairwise item's answer is ``choice``: a response index, ``"tie"`` or
    ``"both_bad"``. A slate item's is ``ranking``: every response index, best
    first. Neither given: the item is no longer gold. The gold is stored as
    imports store it (``{"choice": k}``, or ``{"choice": best, "ranking":
    [...]}``) and the audit log gets a ``mark_gold`` or ``unmark_gold`` row
    with the item's id, external id and the gold. Judgments already stored
    keep the ``gold_correct`` they were saved with.

    Returns the stored gold (None when unmarked). Raises NotFound when the
    item is not in the project, InvalidInput for an answer that does not fit it.
    """
    from prefstore.store.judgments import normalize_judgment  # judgments imports this module

    row = db.execute(
        "SELECT i.external_id, p.kind, (SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id) "
        "FROM items i JOIN projects p ON p.id = i.project_id "
        "WHERE i.id = ? AND i.project_id = ?", [item_id, project_id]).fetchone()
    if row is None:
        raise NotFound(f"item {item_id!r} is not in project {project_id!r}")
    external_id, kind, n_responses = row
    gold = None
    if choice is not None or ranking is not None:
        if kind == "pairwise" and ranking is not None:
            raise InvalidInput("a pairwise item's gold is a choice (a response index, tie or "
                               f"both_bad), not a ranking: got {ranking!r}")
        if kind == "slate" and ranking is None:
            raise InvalidInput(f"a slate item's gold is a ranking of all {n_responses} "
                               f"responses, best first: got only a choice {choice!r}")
        label = normalize_judgment(n_responses, choice=choice, ranking=ranking, where="gold")
        gold = {"choice": label["choice"] if label["outcome"] == "choice" else label["outcome"]}
        if label["ranking"] is not None:
            gold["ranking"] = label["ranking"]
    with write(db):
        db.execute("UPDATE items SET gold = ?, is_gold = ? WHERE id = ?",
                   [dumps(gold), int(gold is not None), item_id])
        bump_queue_epoch(db, project_id)
        recount_served(db, project_id, item_id=item_id)
        log_action(db, project_id, actor, "mark_gold" if gold is not None else "unmark_gold",
                   {"item_id": item_id, "external_id": external_id, "gold": gold})
    return gold
