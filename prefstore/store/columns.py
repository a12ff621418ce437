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

A chunk is an ``.npz`` whose integer columns are stored in the smallest type that
holds them (:func:`_narrow`): a million rows take about 26 MB instead of 75. The
frame is built from the chunks a column at a time, without a joined copy of them.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput
from prefstore.store.connection import now_iso, write

OUTCOMES = ("choice", "tie", "both_bad")
KINDS = ("human", "llm")
NULL = np.iinfo(np.int64).min  # a missing integer in a stored column
#: More chunks than this are merged into one on the next write.
MAX_CHUNKS = 8
_KIND_CODES = {name: code for code, name in enumerate(KINDS)}
_OUTCOME_CODES = {name: code for code, name in enumerate(OUTCOMES)}
_INT_COLUMNS = ("id", "item_id", "rater_id", "supersedes", "choice", "strength",
                "first_shown", "time_ms", "created_ns")
_CODE_COLUMNS = ("kind", "outcome", "swap")

#: Ids per read of the copy: a block of this many ids (:func:`_read_rows`).
READ_BATCH = 50_000
# One block of ids ``(lo, hi]`` comes as one row of text columns: the database turns
# the values into text, numpy parses a column in one call, and no Python object is
# made per judgment (fetching a million rows of 14 values took 3 s, turning them into
# columns 2.5 s). Each column is an aggregate of the same pass over the block, so
# the columns agree on the order of the rows, whatever it is; ``kind + 2 * outcome``
# is one code, its CASEs spelling out KINDS and OUTCOMES in order (-1: neither). The
# rare columns (supersedes, an LLM judgment's metadata, ranking, aspects) come as one
# JSON array of the rows that have one. A block the parse does not take (a timestamp
# of another shape, an unknown code, a value that is not an integer) is read again
# through _ROWS_SQL and _encode, which say what is wrong as they always did.
_BLOCK_SQL = {
    "sqlite": (
        "SELECT COUNT(*), group_concat(j.id), group_concat(j.item_id), "
        "group_concat(j.rater_id), "
        "group_concat(COALESCE(j.choice, -9223372036854775807 - 1)), "
        "group_concat(COALESCE(j.strength, -9223372036854775807 - 1)), "
        "group_concat(COALESCE(json_extract(j.display_order, '$[0]'), "
        "-9223372036854775807 - 1)), "
        "group_concat(COALESCE(j.time_ms, -9223372036854775807 - 1)), "
        "group_concat(COALESCE(CASE j.kind WHEN 'human' THEN 0 WHEN 'llm' THEN 1 END "
        "+ 2 * CASE j.outcome WHEN 'choice' THEN 0 WHEN 'tie' THEN 1 WHEN 'both_bad' THEN 2 END, "
        "-1)), "
        "group_concat(j.created_at), "
        "json_group_array(json_array(j.id, j.supersedes, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata END, j.ranking, j.aspects)) "
        "FILTER (WHERE j.supersedes IS NOT NULL OR j.kind = 'llm' OR j.ranking IS NOT NULL "
        "OR j.aspects IS NOT NULL) "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? AND j.id <= ?"),
    "postgres": (
        "SELECT COUNT(*), string_agg(j.id::text, ','), string_agg(j.item_id::text, ','), "
        "string_agg(j.rater_id::text, ','), "
        "string_agg(COALESCE(j.choice::bigint, -9223372036854775807 - 1)::text, ','), "
        "string_agg(COALESCE(j.strength::bigint, -9223372036854775807 - 1)::text, ','), "
        "string_agg(COALESCE((j.display_order ->> 0)::bigint, "
        "-9223372036854775807 - 1)::text, ','), "
        "string_agg(COALESCE(j.time_ms, -9223372036854775807 - 1)::text, ','), "
        "string_agg(COALESCE(CASE j.kind WHEN 'human' THEN 0 WHEN 'llm' THEN 1 END "
        "+ 2 * CASE j.outcome WHEN 'choice' THEN 0 WHEN 'tie' THEN 1 WHEN 'both_bad' THEN 2 END, "
        "-1)::text, ','), "
        "string_agg(j.created_at, ','), "
        "json_agg(json_build_array(j.id, j.supersedes, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata::text END, j.ranking::text, j.aspects::text)) "
        "FILTER (WHERE j.supersedes IS NOT NULL OR j.kind = 'llm' OR j.ranking IS NOT NULL "
        "OR j.aspects IS NOT NULL) "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? AND j.id <= ?"),
}
_ROWS_SQL = {
    "sqlite": (
        "SELECT j.id, j.item_id, j.rater_id, j.supersedes, j.kind, j.outcome, j.choice, "
        "j.strength, json_extract(j.display_order, '$[0]'), j.time_ms, j.created_at, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata END, j.ranking, j.aspects "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? AND j.id <= ? ORDER BY j.id"),
    "postgres": (
        "SELECT j.id, j.item_id, j.rater_id, j.supersedes, j.kind, j.outcome, j.choice, "
        "j.strength, (j.display_order ->> 0)::bigint, j.time_ms, j.created_at, "
        "CASE WHEN j.kind = 'llm' THEN j.metadata END, j.ranking, j.aspects "
        "FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.id > ? AND j.id <= ? ORDER BY j.id"),
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
    # A dict lookup per value: pandas' Categorical of a million strings took 0.4 s each.
    kind_code, outcome_code = _KIND_CODES.get, _OUTCOME_CODES.get
    kind = np.array([kind_code(v, -1) for v in cols[4]], dtype=np.int8)
    outcome = np.array([outcome_code(v, -1) for v in cols[5]], dtype=np.int8)
    if (kind < 0).any() or (outcome < 0).any():
        k = int(np.argmax((kind < 0) | (outcome < 0)))
        raise InvalidInput(f"judgment {rows[k][0]}: kind {rows[k][4]!r} or outcome "
                           f"{rows[k][5]!r} is not one the reports know")
    out["kind"], out["outcome"] = kind, outcome
    out["choice"], out["strength"] = ints(cols[6]), ints(cols[7])
    out["first_shown"], out["time_ms"] = ints(cols[8]), ints(cols[9])
    created = pd.to_datetime(pd.Series(cols[10], dtype=object), utc=True, format="ISO8601")
    out["created_ns"] = created.dt.tz_localize(None).to_numpy(
        dtype="datetime64[ns]").view(np.int64)  # NaT is NULL
    # Of an LLM judgment's metadata only its swap flag is read (-1: none).
    swap = np.full(n, -1, dtype=np.int8)
    for k, text in enumerate(cols[11]):
        swap[k] = _swap_flag(text)
    out["swap"] = swap
    # Rankings and aspects are rare outside slate projects: kept as their JSON text.
    for name, values in (("ranking", cols[12]), ("aspects", cols[13])):
        where = np.array([k for k, v in enumerate(values) if v is not None], dtype=np.int64)
        text = "\0".join(values[k] for k in where).encode()
        out[f"{name}_rows"] = where
        out[f"{name}_text"] = np.frombuffer(text, dtype=np.uint8)
    return out


def _swap_flag(metadata: str | None) -> int:
    """An LLM judgment's ``swap_consistent`` flag from its metadata text: 1, 0, or -1 for none."""
    if metadata is None:
        return -1
    flag = json.loads(metadata).get("swap_consistent") if metadata.startswith("{") else None
    return int(flag) if isinstance(flag, bool) else -1


#: A timestamp as :func:`~prefstore.store.connection.now_iso` writes it, byte by byte
#: ("d" a digit), and the comma :data:`_BLOCK_SQL` puts after it.
_ISO_SHAPE = np.frombuffer(b"dddd-dd-ddTdd:dd:dd.dddZ,", dtype=np.uint8)
_ISO_DIGIT = _ISO_SHAPE == ord("d")


def _parse_ints(text: str | None, n: int) -> np.ndarray | None:
    """The ``n`` comma-separated integers of ``text``, or None if it is not exactly that."""
    if text is None:
        return None
    raw = text.encode()
    # Only digits, minus signs and n - 1 commas: a token numpy cannot read (say "1-2")
    # ends its read early, and so gives fewer than n values. (Not warnings turned into
    # errors: their filters are the whole process's, and a worker has threads.)
    if raw.translate(None, b"0123456789-,") or raw.count(b",") != n - 1:
        return None
    signs = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("-"))
    if signs.size and not _signs_lead_numbers(raw, signs):
        return None  # numpy would read a lone "-" as 0
    try:
        values = np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:
        return None
    # A value past int64 (never a stored integer) would be read clipped.
    return values if len(values) == n else None


def _signs_lead_numbers(raw: bytes, signs: np.ndarray) -> bool:
    """Whether each minus sign at ``signs`` starts a value and has a digit after it."""
    chars = np.frombuffer(raw + b",", dtype=np.uint8)
    before = np.where(signs > 0, chars[np.maximum(signs - 1, 0)], ord(","))
    after = chars[signs + 1]
    return bool(((before == ord(",")) & (after >= ord("0")) & (after <= ord("9"))).all())


def _parse_created(text: str | None, n: int) -> np.ndarray | None:
    """Nanoseconds (NULL for none) of ``n`` comma-separated timestamps, as the row path reads them."""
    if text is None:
        return None
    raw = np.frombuffer(text.encode() + b",", dtype=np.uint8)
    if len(raw) == n * len(_ISO_SHAPE):
        # Every one as now_iso writes it: numpy parses them without a Python object each.
        shaped = raw.reshape(n, len(_ISO_SHAPE))
        digits = shaped[:, _ISO_DIGIT]
        if ((shaped[:, ~_ISO_DIGIT] == _ISO_SHAPE[~_ISO_DIGIT]).all()
                and ((digits >= ord("0")) & (digits <= ord("9"))).all()):
            try:
                stamps = np.ascontiguousarray(shaped[:, :23]).view("S23").ravel().astype(
                    "datetime64[ms]")
            except ValueError:  # a date that does not exist: as the row path says it
                stamps = None
            years = None if stamps is None else stamps.astype("datetime64[Y]").astype(int) + 1970
            # pandas' range of nanosecond timestamps; outside it the row path says what it does.
            if years is not None and years.min() >= 1678 and years.max() <= 2261:
                return stamps.astype("datetime64[ns]").view(np.int64)
    texts = text.split(",")
    if len(texts) != n:  # a comma inside a timestamp
        return None
    created = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, format="ISO8601")
    return created.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _encode_block(row: tuple) -> dict[str, np.ndarray] | None:
    """The stored columns of one row of :data:`_BLOCK_SQL`, or None if it needs the row path."""
    n = row[0]
    ints = [_parse_ints(text, n) for text in row[1:8]]
    code = _parse_ints(row[8], n)
    created = _parse_created(row[9], n)
    if any(v is None for v in ints) or code is None or created is None or (code < 0).any():
        return None
    ids = ints[0]
    order = None if (ids[1:] > ids[:-1]).all() else np.argsort(ids, kind="stable")

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    out: dict[str, np.ndarray] = {}
    for name, values in zip(("id", "item_id", "rater_id", "choice", "strength", "first_shown",
                             "time_ms"), ints):
        out[name] = ordered(values)
    code = ordered(code)
    out["kind"], out["outcome"] = (code % 2).astype(np.int8), (code // 2).astype(np.int8)
    out["created_ns"] = ordered(created)
    out["supersedes"] = np.full(n, NULL, dtype=np.int64)
    out["swap"] = np.full(n, -1, dtype=np.int8)
    rare = sorted(json.loads(row[10] or "[]"))  # [id, supersedes, metadata, ranking, aspects]
    at = np.searchsorted(out["id"], np.array([r[0] for r in rare], dtype=np.int64))
    texts: dict[str, tuple[list[int], list[str]]] = {"ranking": ([], []), "aspects": ([], [])}
    for k, (_, supersedes, metadata, ranking, aspects) in zip(at.tolist(), rare):
        if supersedes is not None:
            out["supersedes"][k] = supersedes
        out["swap"][k] = _swap_flag(metadata)
        for name, text in (("ranking", ranking), ("aspects", aspects)):
            if text is not None:
                texts[name][0].append(k)
                texts[name][1].append(text)
    for name, (where, values) in texts.items():
        out[f"{name}_rows"] = np.array(where, dtype=np.int64)
        out[f"{name}_text"] = np.frombuffer("\0".join(values).encode(), dtype=np.uint8)
    return out


def _read_rows(db, project_id: int, last: int):
    """Yield the project's rows past ``last`` as stored columns, a block of ids at a time."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM judgments").fetchone()[0]
    for lo in range(last, top, READ_BATCH):
        hi = min(lo + READ_BATCH, top)
        row = db.execute(_BLOCK_SQL[db.dialect], [project_id, lo, hi]).fetchone()
        if not row[0]:
            continue
        block = _encode_block(row)
        if block is None:  # something the parse does not take: the row path reads it
            block = _encode(db.execute(_ROWS_SQL[db.dialect], [project_id, lo, hi]).fetchall())
        yield block


def _narrow(values: np.ndarray) -> np.ndarray:
    """Store an int64 column in the smallest signed type that holds it exactly.

    The type's minimum marks a missing value, as :data:`NULL` does in int64, so a
    copy stored before narrowing (all int64) reads the same way.
    """
    present = values[values != NULL]
    if not present.size:
        return np.full(len(values), np.iinfo(np.int8).min, dtype=np.int8)
    low, high = int(present.min()), int(present.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min < low and high <= info.max:
            return np.where(values == NULL, info.min, values).astype(dtype)
    return values


def _widen(stored: np.ndarray) -> np.ndarray:
    """The int64 column (:data:`NULL` for missing) of a column :func:`_narrow` stored."""
    if stored.dtype == np.int64:
        return stored
    missing = stored == np.iinfo(stored.dtype).min
    values = stored.astype(np.int64)
    values[missing] = NULL
    return values


def _pack(columns) -> bytes:
    """An ``.npz`` of ``(name, array)`` pairs, the integer columns narrowed.

    Written one member at a time, as ``np.savez`` does, so that a merge can
    produce each column just before it is written.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, values in columns:
            if name in _INT_COLUMNS:
                values = _narrow(values)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(values), allow_pickle=False)
    return buffer.getvalue()


class _Chunk:
    """One stored chunk, its columns read from the blob one at a time when asked.

    Also wraps freshly encoded columns (a dict), which are read as they are.
    """

    def __init__(self, data: bytes | dict[str, np.ndarray]):
        self._data = (data if isinstance(data, dict)
                      else np.load(io.BytesIO(data), allow_pickle=False))
        self.n_rows = len(self._data["kind"])

    def __getitem__(self, name: str) -> np.ndarray:
        values = self._data[name]
        return _widen(values) if name in _INT_COLUMNS else values

    def kept(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column ``name`` at ``rows``, indexed before it is widened."""
        values = self._data[name][rows]
        return _widen(values) if name in _INT_COLUMNS else values

    def texts(self, name: str) -> tuple[np.ndarray, list[str]]:
        """The rows that have a ``name`` text (ranking, aspects) and their texts."""
        rows = self[f"{name}_rows"].astype(np.int64)
        raw = self[f"{name}_text"].tobytes().decode()
        return rows, raw.split("\0") if len(rows) else []

    def columns(self) -> dict[str, np.ndarray]:
        return {name: self[name] for name in self._data}


def _merged(chunks: list[_Chunk]):
    """The ``(name, array)`` pairs of the chunks joined, one column at a time."""
    for name in (*_INT_COLUMNS, *_CODE_COLUMNS):
        yield name, np.concatenate([c[name] for c in chunks])
    for name in ("ranking", "aspects"):
        rows, texts, offset = [], [], 0
        for c in chunks:
            where, text = c.texts(name)
            rows.append(where + offset)
            texts.extend(text)
            offset += c.n_rows
        yield f"{name}_rows", np.concatenate(rows)
        yield f"{name}_text", np.frombuffer("\0".join(texts).encode(), dtype=np.uint8)


def _stored(db, project_id: int) -> tuple[list[dict], int, int]:
    """Return the stored chunks, their last id and their row count."""
    chunks = [dict(r) for r in db.query(
        "SELECT first_id, last_id, n_rows, data FROM judgment_columns WHERE project_id = ? "
        "ORDER BY first_id", [project_id])]
    last = chunks[-1]["last_id"] if chunks else 0
    return chunks, last, sum(c["n_rows"] for c in chunks)


def _chunks(db, project_id: int) -> list[_Chunk]:
    """Bring the project's copy up to date; return its chunks, oldest first.

    Reads the rows past the stored watermark and stores them as a new chunk, or,
    with no chunk yet or more than :data:`MAX_CHUNKS`, stores every row as one.
    """
    stored, last, n_rows = _stored(db, project_id)
    stored_last = last
    if stored and db.dialect == "postgres":
        upto = db.execute(
            "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
            "WHERE i.project_id = ? AND j.id <= ?", [project_id, last]).fetchone()[0]
        if upto != n_rows:  # a row below the watermark committed late: start again
            stored, last = [], 0
    chunks = [_Chunk(c.pop("data")) for c in stored]
    # Read a block of ids at a time: a first read of a million rows never holds them as tuples.
    fresh = list(_read_rows(db, project_id, last))
    if not fresh:
        return chunks
    # Kept packed: a chunk's columns are read from its blob when the frame needs them.
    new = _pack(_merged([_Chunk(batch) for batch in fresh]))
    del fresh
    chunks.append(_Chunk(new))
    merge = not stored or len(chunks) > MAX_CHUNKS
    if merge and len(chunks) > 1:
        new = _pack(_merged(chunks))
        chunks = [_Chunk(new)]
    first_id, n_new = int(chunks[-1]["id"][0]), chunks[-1].n_rows
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
                [project_id, first_id, int(chunks[-1]["id"][-1]), n_new, new, now_iso()])
    return chunks


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
    chunks = _chunks(db, project_id)
    if not chunks:
        return _encode([])
    return dict(_merged(chunks)) if len(chunks) > 1 else chunks[0].columns()


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
    chunks = _chunks(db, project_id)
    superseded = np.concatenate([np.zeros(0, dtype=np.int64)] + [
        s[s != NULL] for s in (c["supersedes"] for c in chunks)])
    excluded = np.array([r[0] for r in db.execute(
        "SELECT id FROM items WHERE project_id = ? AND excluded_at IS NOT NULL",
        [project_id]).fetchall()], dtype=np.int64)
    # Built a chunk at a time, a column at a time: no full copy of the stored rows is
    # held beside the frame (issue 17: the read was the cycle's memory peak).
    keeps = [np.flatnonzero(~np.isin(c["id"], superseded) & ~np.isin(c["item_id"], excluded))
             for c in chunks]

    def kept(name: str) -> np.ndarray:
        parts = [c.kept(name, keep) for c, keep in zip(chunks, keeps)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    n_kept = sum(len(keep) for keep in keeps)
    names = dict(db.execute("SELECT id, name FROM raters").fetchall())
    rater = kept("rater_id")
    rater_ids = np.unique(pd.unique(rater))  # hashing the few raters, not sorting every row
    rater = pd.Categorical.from_codes(np.searchsorted(rater_ids, rater),
                                      categories=[names[int(r)] for r in rater_ids])
    # Every column before the frame: one frame, built without a copy of its columns.
    data = {"id": kept("id"), "item_id": kept("item_id"), "rater": rater,
            "kind": pd.Categorical.from_codes(kept("kind"), categories=KINDS),
            "outcome": pd.Categorical.from_codes(kept("outcome"), categories=OUTCOMES)}
    del rater
    for name in ("choice", "strength", "first_shown", "time_ms"):
        data[name] = _nullable(kept(name))
    data["created_at"] = pd.DatetimeIndex(
        kept("created_ns").view("datetime64[ns]")).tz_localize("UTC")  # NULL is NaT
    for name in ("ranking", "aspects"):
        values = np.full(n_kept, None, dtype=object)
        offset = 0
        for c, keep in zip(chunks, keeps):
            rows, texts = c.texts(name)
            where = np.searchsorted(keep, rows)
            for row, at, text in zip(rows.tolist(), where.tolist(), texts):
                if at < len(keep) and keep[at] == row:
                    values[offset + at] = json.loads(text)
            offset += len(keep)
        data[name] = values
    swap = kept("swap")
    chunks.clear()  # the stored columns go before the last columns are made
    keeps.clear()
    meta = np.empty(n_kept, dtype=object)
    meta.fill({})  # one shared empty dict, as judgments_frame shares equal short JSON
    for k in np.flatnonzero(swap >= 0).tolist():
        meta[k] = {"swap_consistent": bool(swap[k])}
    data["metadata"] = meta
    return pd.DataFrame(data, copy=False)
