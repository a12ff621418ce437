"""A columnar copy of each project's judgment rows, extended from a watermark (issue 17).

The worker's reports (agreement, win rates) read every effective judgment of a
project on each refit; at a million judgments that read alone took seconds and
most of the cycle's memory. Judgments are append-only, so a copy of their rows
stays true: :func:`report_frame` stores the rows in compact numeric chunks
(``judgment_columns``) and on each call reads only the rows past the last
chunk's watermark. What can change about an old row is read fresh every time,
and is small: which rows a later change superseded (a new row names them), which
items are excluded now, and the raters' names.

Every row of the project is kept, superseded and excluded ones included, so an
undo or an item that is included again needs no rewrite. On SQLite one writer
commits at a time and ids only grow, so the rows past the watermark are exactly
the new ones. On PostgreSQL a transaction can commit a smaller id after a larger
one was read; the chunks are checked against a count of the project's rows up to
the watermark, and rebuilt when they differ.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput
from prefstore.store.connection import now_iso, write

OUTCOMES = ("choice", "tie", "both_bad")
KINDS = ("human", "llm")
NULL = np.iinfo(np.int64).min  # a missing integer in a stored column
#: More chunks than this are merged into one on the next write.
MAX_CHUNKS = 8
READ_BATCH = 50_000
_INT_COLUMNS = ("id", "item_id", "rater_id", "supersedes", "choice", "strength",
                "first_shown", "time_ms", "created_ns")
_CODE_COLUMNS = ("kind", "outcome", "swap")

_ROWS_SQL = {
    "sqlite": (
        "SELECT j.id, j.item_id, j.rater_id, j.supersedes, j.kind, j.outcome, j.choice, "
        "j.strength, json_extract(j.display_order, '$[0]'), j.time_ms, j.created_at, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata END, j.ranking, j.aspects "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? ORDER BY j.id"),
    "postgres": (
        "SELECT j.id, j.item_id, j.rater_id, j.supersedes, j.kind, j.outcome, j.choice, "
        "j.strength, (j.display_order ->> 0)::bigint, j.time_ms, j.created_at, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata END, j.ranking, j.aspects "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? ORDER BY j.id"),
}


def _encode(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Turn fetched judgment rows into the stored columns."""
    n = len(rows)
    cols = list(zip(*rows)) if rows else [()] * 14
    out: dict[str, np.ndarray] = {}

    def ints(values) -> np.ndarray:
        return np.array([NULL if v is None else int(v) for v in values], dtype=np.int64)

    out["id"], out["item_id"], out["rater_id"] = (np.array(cols[k], dtype=np.int64)
                                                  for k in range(3))
    out["supersedes"] = ints(cols[3])
    kind = pd.Categorical(cols[4], categories=KINDS)
    outcome = pd.Categorical(cols[5], categories=OUTCOMES)
    if (kind.codes < 0).any() or (outcome.codes < 0).any():
        k = int(np.argmax((kind.codes < 0) | (outcome.codes < 0)))
        raise InvalidInput(f"judgment {rows[k][0]}: kind {rows[k][4]!r} or outcome "
                           f"{rows[k][5]!r} is not one the reports know")
    out["kind"], out["outcome"] = kind.codes.astype(np.int8), outcome.codes.astype(np.int8)
    out["choice"], out["strength"] = ints(cols[6]), ints(cols[7])
    out["first_shown"], out["time_ms"] = ints(cols[8]), ints(cols[9])
    created = pd.to_datetime(pd.Series(cols[10], dtype=object), utc=True, format="ISO8601")
    out["created_ns"] = created.dt.tz_localize(None).to_numpy(
        dtype="datetime64[ns]").view(np.int64)  # NaT is NULL
    # Of an LLM judgment's metadata only its swap flag is read (-1: none).
    swap = np.full(n, -1, dtype=np.int8)
    for k, text in enumerate(cols[11]):
        if text is not None:
            flag = json.loads(text).get("swap_consistent") if text.startswith("{") else None
            if isinstance(flag, bool):
                swap[k] = int(flag)
    out["swap"] = swap
    # Rankings and aspects are rare outside slate projects: kept as their JSON text.
    for name, values in (("ranking", cols[12]), ("aspects", cols[13])):
        where = np.array([k for k, v in enumerate(values) if v is not None], dtype=np.int64)
        text = "\0".join(values[k] for k in where).encode()
        out[f"{name}_rows"] = where
        out[f"{name}_text"] = np.frombuffer(text, dtype=np.uint8)
    return out


def _pack(columns: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    return buffer.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _texts(columns: dict[str, np.ndarray], name: str) -> list[str]:
    raw = columns[f"{name}_text"].tobytes().decode()
    return raw.split("\0") if len(columns[f"{name}_rows"]) else []


def _concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join chunks into one (the sparse text rows are offset to the joined positions)."""
    if len(chunks) == 1:
        return chunks[0]
    out = {name: np.concatenate([c[name] for c in chunks])
           for name in (*_INT_COLUMNS, *_CODE_COLUMNS)}
    offset = 0
    for name in ("ranking", "aspects"):
        rows, texts = [], []
        offset = 0
        for c in chunks:
            rows.append(c[f"{name}_rows"] + offset)
            texts.extend(_texts(c, name))
            offset += len(c["id"])
        out[f"{name}_rows"] = np.concatenate(rows)
        out[f"{name}_text"] = np.frombuffer("\0".join(texts).encode(), dtype=np.uint8)
    return out


def _stored(db, project_id: int) -> tuple[list[dict], int, int]:
    """Return the stored chunks, their last id and their row count."""
    chunks = [dict(r) for r in db.query(
        "SELECT first_id, last_id, n_rows, data FROM judgment_columns WHERE project_id = ? "
        "ORDER BY first_id", [project_id])]
    last = chunks[-1]["last_id"] if chunks else 0
    return chunks, last, sum(c["n_rows"] for c in chunks)


def judgment_columns(db, project_id: int) -> dict[str, np.ndarray]:
    """Return every judgment row of a project as stored columns, bringing the copy up to date.

    Reads the rows past the stored watermark, appends them as a chunk (merging the
    chunks when there are more than :data:`MAX_CHUNKS`), and returns all rows in id
    order: ``id``, ``item_id``, ``rater_id``, ``supersedes``, ``choice``,
    ``strength``, ``first_shown``, ``time_ms``, ``created_ns`` (int64, :data:`NULL`
    for missing), ``kind`` (index into :data:`KINDS`), ``outcome`` (into
    :data:`OUTCOMES`), ``swap`` (the LLM's swap flag, -1 for none), and the JSON
    texts of ``ranking`` and ``aspects`` on the rows that have one.
    """
    chunks, last, n_rows = _stored(db, project_id)
    stored_last = last
    if chunks and db.dialect == "postgres":
        upto = db.execute(
            "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
            "WHERE i.project_id = ? AND j.id <= ?", [project_id, last]).fetchone()[0]
        if upto != n_rows:  # a row below the watermark committed late: start again
            chunks, last = [], 0
    loaded = [_unpack(c.pop("data")) for c in chunks]
    # Encoded a batch at a time: a first read of a million rows never holds them as tuples.
    fresh, batch = [], []
    for row in db.stream(_ROWS_SQL[db.dialect], [project_id, last], READ_BATCH):
        batch.append(row)
        if len(batch) == READ_BATCH:
            fresh.append(_encode(batch))
            batch = []
    if batch:
        fresh.append(_encode(batch))
    if not fresh:
        return _concat(loaded) if loaded else _encode([])
    loaded.append(_concat(fresh))
    del fresh
    columns = _concat(loaded)
    merge = not chunks or len(loaded) > MAX_CHUNKS
    stored = columns if merge else loaded[-1]
    with write(db):
        # Another process may have extended the copy meanwhile: then keep its chunks.
        now = db.execute("SELECT COALESCE(MAX(last_id), 0) FROM judgment_columns "
                         "WHERE project_id = ?", [project_id]).fetchone()[0]
        if now == stored_last:
            if merge:
                db.execute("DELETE FROM judgment_columns WHERE project_id = ?", [project_id])
            db.execute(
                "INSERT INTO judgment_columns (project_id, first_id, last_id, n_rows, data, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [project_id, int(stored["id"][0]), int(stored["id"][-1]), len(stored["id"]),
                 _pack(stored), now_iso()])
    return columns


def _nullable(values: np.ndarray) -> pd.arrays.IntegerArray:
    missing = values == NULL
    return pd.arrays.IntegerArray(np.where(missing, 0, values), missing)


def report_frame(db, project_id: int) -> pd.DataFrame:
    """Return the project's effective judgments as ``judgments_frame(columns="report")`` does.

    The same rows and values, in id order, from the columnar copy
    (:func:`judgment_columns`): rows a later change superseded and rows of
    excluded items are left out. ``rater``, ``kind`` and ``outcome`` are
    categoricals, ``created_at`` is a UTC timestamp instead of its ISO text, and
    ``metadata`` holds only an LLM judgment's ``swap_consistent`` flag.
    """
    columns = judgment_columns(db, project_id)
    ids = columns["id"]
    superseded = np.isin(ids, columns["supersedes"][columns["supersedes"] != NULL])
    excluded = np.array([r[0] for r in db.execute(
        "SELECT id FROM items WHERE project_id = ? AND excluded_at IS NOT NULL",
        [project_id]).fetchall()], dtype=np.int64)
    keep = np.flatnonzero(~superseded & ~np.isin(columns["item_id"], excluded))
    names = dict(db.execute("SELECT id, name FROM raters").fetchall())
    rater_ids, rater_code = np.unique(columns["rater_id"][keep], return_inverse=True)
    frame = pd.DataFrame({
        "id": ids[keep],
        "item_id": columns["item_id"][keep],
        "rater": pd.Categorical.from_codes(
            rater_code.reshape(-1), categories=[names[int(r)] for r in rater_ids]),
        "kind": pd.Categorical.from_codes(columns["kind"][keep], categories=KINDS),
        "outcome": pd.Categorical.from_codes(columns["outcome"][keep], categories=OUTCOMES),
        "choice": _nullable(columns["choice"][keep]),
        "strength": _nullable(columns["strength"][keep]),
        "first_shown": _nullable(columns["first_shown"][keep]),
        "time_ms": _nullable(columns["time_ms"][keep]),
    })
    created = columns["created_ns"][keep]
    frame["created_at"] = pd.to_datetime(np.where(created == NULL, np.iinfo(np.int64).min,
                                                  created).view("datetime64[ns]"), utc=True)
    position = np.full(len(ids), -1)
    position[keep] = np.arange(len(keep))
    for name in ("ranking", "aspects"):
        values = np.full(len(keep), None, dtype=object)
        for row, text in zip(columns[f"{name}_rows"].tolist(), _texts(columns, name)):
            if position[row] >= 0:
                values[position[row]] = json.loads(text)
        frame[name] = values
    swap = columns["swap"][keep]
    meta = np.empty(len(keep), dtype=object)
    meta.fill({})  # one shared empty dict, as judgments_frame shares equal short JSON
    for k in np.flatnonzero(swap >= 0).tolist():
        meta[k] = {"swap_consistent": bool(swap[k])}
    frame["metadata"] = meta
    return frame
