"""Running pair counts: the pairwise models' sufficient statistics, kept up to date.

``pair_counts`` holds, per project, level ("system"/"response"), judgment kind and
pair of nodes, the pairwise rows won by each side and tied, and their strength
weights: all a Bradley-Terry or Davidson fit reads (issue 17). They count the
effective judgments (the last row of each ``supersedes`` chain, on items not
excluded) up to the watermark ``pair_count_marks.last_judgment_id``, with the items
that were excluded at the last fold listed in ``pair_count_excluded``.

:func:`fold_pair_counts` brings them up to date, each step one transaction with
its new watermark: it adds the judgments after the watermark, takes out the rows
they supersede, and takes out (or adds back) the judgments of items excluded (or
included again) since the last fold. Folds are serialized: SQLite's write lock,
PostgreSQL's lock on the project's watermark row. Submits are never touched.

Judgment ids on PostgreSQL come from a sequence, so a transaction can commit id 100
after another committed 101. The fold only goes as far as a horizon that no
transaction in flight can fall below: the largest id seen under a brief SHARE lock on
``judgments``, which waits for the inserts in flight and holds new ones back only
for that read. On SQLite writers are serialized, so the largest id is the horizon.

A store handle keeps a copy of each project's response-level rows as arrays (100k
rows took 0.2-0.4 s to read): its own folds move it on, any other fold makes the next
read fetch the rows again (:func:`_copied_counts`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import itemgetter

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput
from prefstore.store.connection import now_iso, write
from prefstore.store.items import id_list

KINDS = ("human", "llm")
LEVELS = ("system", "response")
# Above this many items a fold reads the project's responses whole, not by id list.
_RESPONSES_BY_ID_MAX = 20_000
#: Judgment ids one fold step (one transaction) covers at most.
FOLD_WINDOW = 500_000

# A horizon below every uncommitted judgment: see the module docstring.
_HORIZON_LOCK = {
    "sqlite": None,
    "postgres": "LOCK TABLE judgments IN SHARE MODE",
}
_HORIZON_TIMEOUT = {
    "sqlite": None,
    "postgres": "SET LOCAL lock_timeout = '30s'",
}
_HORIZON = "SELECT COALESCE(MAX(id), 0) FROM judgments"

_ENSURE_MARK = ("INSERT INTO pair_count_marks (project_id) VALUES (?) "
                "ON CONFLICT (project_id) DO NOTHING")
_LOCK_MARK = {
    "sqlite": ("SELECT last_judgment_id, updated_at FROM pair_count_marks "
               "WHERE project_id = ?"),
    "postgres": ("SELECT last_judgment_id, updated_at FROM pair_count_marks "
                 "WHERE project_id = ? FOR UPDATE"),
}
_EXCLUDED_NOW = ("SELECT id FROM items WHERE project_id = ? AND excluded_at IS NOT NULL "
                 "ORDER BY id")
_EXCLUDED_FOLDED = ("SELECT item_id FROM pair_count_excluded WHERE project_id = ? "
                    "ORDER BY item_id")
# The judgments after the watermark, up to the horizon.
_NEW_JUDGMENTS = (
    "SELECT j.id, j.item_id, j.kind, j.outcome, j.choice, j.ranking, j.strength, j.supersedes "
    "FROM judgments j JOIN items i ON i.id = j.item_id "
    "WHERE j.id > :w AND j.id <= :h AND i.project_id = :p ORDER BY j.id")
# Rows by id (the ones new judgments supersede).
_JUDGMENTS_BY_ID = {
    "sqlite": ("SELECT j.id, j.item_id, j.kind, j.outcome, j.choice, j.ranking, j.strength, "
               "j.supersedes FROM judgments j WHERE j.id IN (SELECT value FROM json_each(?)) "
               "ORDER BY j.id"),
    "postgres": ("SELECT j.id, j.item_id, j.kind, j.outcome, j.choice, j.ranking, j.strength, "
                 "j.supersedes FROM judgments j WHERE j.id = ANY(?) ORDER BY j.id"),
}
# The judgments of some items that counted at watermark :w (no successor up to :w).
_COUNTED_OF_ITEMS = {
    "sqlite": ("SELECT j.id, j.item_id, j.kind, j.outcome, j.choice, j.ranking, j.strength, "
               "j.supersedes FROM judgments j "
               "WHERE j.item_id IN (SELECT value FROM json_each(:ids)) AND j.id <= :w "
               "AND NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id "
               "AND sj.id <= :w) ORDER BY j.id"),
    "postgres": ("SELECT j.id, j.item_id, j.kind, j.outcome, j.choice, j.ranking, j.strength, "
                 "j.supersedes FROM judgments j WHERE j.item_id = ANY(:ids) AND j.id <= :w "
                 "AND NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id "
                 "AND sj.id <= :w) ORDER BY j.id"),
}
_RESPONSES_OF_ITEMS = {
    "sqlite": ("SELECT item_id, idx, id AS response_id, system FROM responses "
               "WHERE item_id IN (SELECT value FROM json_each(?)) ORDER BY item_id, idx"),
    "postgres": ("SELECT item_id, idx, id AS response_id, system FROM responses "
                 "WHERE item_id = ANY(?) ORDER BY item_id, idx"),
}
_RESPONSES_OF_PROJECT = (
    "SELECT r.item_id, r.idx, r.id AS response_id, r.system "
    "FROM responses r JOIN items i ON i.id = r.item_id WHERE i.project_id = ? "
    "ORDER BY r.item_id, r.idx")
_ADD_COUNTS = (
    "INSERT INTO pair_counts (project_id, level, kind, lo, hi, n_lo, n_hi, n_tie, "
    "w_lo, w_hi, w_tie) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (project_id, level, kind, lo, hi) DO UPDATE SET "
    "n_lo = pair_counts.n_lo + excluded.n_lo, n_hi = pair_counts.n_hi + excluded.n_hi, "
    "n_tie = pair_counts.n_tie + excluded.n_tie, w_lo = pair_counts.w_lo + excluded.w_lo, "
    "w_hi = pair_counts.w_hi + excluded.w_hi, w_tie = pair_counts.w_tie + excluded.w_tie")
# PostgreSQL: the same upsert for a whole level in one statement from arrays, as
# one round trip per row made a fold of 2,000 judgments cost 0.4 s there.
_ADD_COUNTS_FROM_ARRAYS = (
    "INSERT INTO pair_counts (project_id, level, kind, lo, hi, n_lo, n_hi, n_tie, "
    "w_lo, w_hi, w_tie) SELECT :p, :level, u.kind, u.lo, u.hi, u.n_lo, u.n_hi, u.n_tie, "
    "u.w_lo, u.w_hi, u.w_tie FROM unnest(:kind::text[], :lo::text[], :hi::text[], "
    ":n_lo::bigint[], :n_hi::bigint[], :n_tie::bigint[], :w_lo::float8[], :w_hi::float8[], "
    ":w_tie::float8[]) AS u(kind, lo, hi, n_lo, n_hi, n_tie, w_lo, w_hi, w_tie) "
    "ON CONFLICT (project_id, level, kind, lo, hi) DO UPDATE SET "
    "n_lo = pair_counts.n_lo + excluded.n_lo, n_hi = pair_counts.n_hi + excluded.n_hi, "
    "n_tie = pair_counts.n_tie + excluded.n_tie, w_lo = pair_counts.w_lo + excluded.w_lo, "
    "w_hi = pair_counts.w_hi + excluded.w_hi, w_tie = pair_counts.w_tie + excluded.w_tie")
_DROP_EMPTY = ("DELETE FROM pair_counts WHERE project_id = ? AND level = ? AND kind = ? "
               "AND lo = ? AND hi = ? AND n_lo = 0 AND n_hi = 0 AND n_tie = 0")
_ADD_TOTALS = (
    "UPDATE pair_count_marks SET n_human = n_human + :nh, n_llm = n_llm + :nl, "
    "n_human_no_system = n_human_no_system + :sh, n_llm_no_system = n_llm_no_system + :sl "
    "WHERE project_id = :p")
_MOVE_MARK_ONLY = ("UPDATE pair_count_marks SET last_judgment_id = ?, updated_at = ? "
                   "WHERE project_id = ?")
_ADD_EXCLUDED = ("INSERT INTO pair_count_excluded (project_id, item_id) VALUES (?, ?)")
_DROP_EXCLUDED = "DELETE FROM pair_count_excluded WHERE project_id = ? AND item_id = ?"
# A pair has a row per kind; the adapter sums the repeats (no GROUP BY, no sort).
# Response ids come back as integers: 100k text ids cost more to convert and sort
# than the whole response-level fit (issue 17).
_COUNTS = {
    "system": ("SELECT lo, hi, n_lo, n_hi, n_tie, w_lo, w_hi, w_tie FROM pair_counts "
               "WHERE project_id = :p AND level = 'system' "
               "AND (:kind = 'all' OR kind = :kind)"),
    "response": ("SELECT CAST(lo AS BIGINT) AS lo, CAST(hi AS BIGINT) AS hi, n_lo, n_hi, "
                 "n_tie, w_lo, w_hi, w_tie FROM pair_counts "
                 "WHERE project_id = :p AND level = 'response' "
                 "AND (:kind = 'all' OR kind = :kind)"),
}
_COUNT_COLUMNS = ("lo", "hi", "n_lo", "n_hi", "n_tie", "w_lo", "w_hi", "w_tie")
# Every response-level row of a project, its kind as 0 (human) or 1 (llm): what a
# handle's copy (:class:`_Copy`) starts from.
_RESPONSE_ROWS = (
    "SELECT CASE WHEN kind = 'llm' THEN 1 ELSE 0 END AS k, CAST(lo AS BIGINT) AS lo, "
    "CAST(hi AS BIGINT) AS hi, n_lo, n_hi, n_tie, w_lo, w_hi, w_tie FROM pair_counts "
    "WHERE project_id = ? AND level = 'response'")
# The fold state in one statement (one snapshot): watermark, time of the last fold
# step, and the items excluded at it.
_FOLD_STATE = {
    "sqlite": ("SELECT m.last_judgment_id, m.updated_at, (SELECT group_concat(e.item_id) "
               "FROM pair_count_excluded e WHERE e.project_id = m.project_id) "
               "FROM pair_count_marks m WHERE m.project_id = ?"),
    "postgres": ("SELECT m.last_judgment_id, m.updated_at, (SELECT string_agg("
                 "e.item_id::text, ',') FROM pair_count_excluded e "
                 "WHERE e.project_id = m.project_id) "
                 "FROM pair_count_marks m WHERE m.project_id = ?"),
}
_MARK = ("SELECT last_judgment_id, n_human, n_llm, n_human_no_system, n_llm_no_system "
         "FROM pair_count_marks WHERE project_id = ?")

_FRAME_COLUMNS = ["id", "item_id", "kind", "outcome", "choice", "ranking", "strength",
                  "supersedes"]
_RESPONSE_COLUMNS = ["item_id", "idx", "response_id", "system"]

#: ``expand(judgments, responses) -> (deltas, totals)``: the model adapter's
#: :func:`prefstore.models.adapter.pair_count_deltas`, passed in so the store
#: never imports the models.
Expand = Callable[[pd.DataFrame, pd.DataFrame], tuple[dict, dict]]


def _judgment_frame(result, sign: int) -> pd.DataFrame:
    frame = _rows_frame(result, _FRAME_COLUMNS)
    frame["sign"] = sign
    return frame


# Text (and PostgreSQL's JSON) columns of the fold's queries: kept as Python objects.
_OBJECT_COLUMNS = ("kind", "outcome", "ranking", "system")


def _rows_frame(result, columns: list[str]) -> pd.DataFrame:
    """A query's rows as a frame with ``columns``, built a column at a time.

    ``from_records`` on 500k judgments, then pandas' string columns, took a third
    of a catch-up fold. Numbers get the dtypes ``from_records`` infers (int64, or
    float64 with NaN where a value is missing); :data:`_OBJECT_COLUMNS` stay
    Python objects, None where missing (a PostgreSQL ranking is a list).
    """
    rows = result.fetchall()
    if not rows:
        return pd.DataFrame.from_records(rows, columns=columns)
    # A list per column: zip(*rows) over 500k rows took longer than all of these.
    return pd.DataFrame({c: _column(c, list(map(itemgetter(k), rows)))
                         for k, c in enumerate(columns)})


def _column(name: str, values: list) -> pd.Series:
    if name in _OBJECT_COLUMNS:
        return pd.Series(np.fromiter(values, dtype=object, count=len(values)), dtype=object,
                         copy=False)
    if None not in values:
        numbers = np.array(values)
        if numbers.dtype.kind in "if":  # only ints, or only floats: numpy infers as pandas does
            return pd.Series(numbers, copy=False)
    return pd.Series(values)  # None among them: pandas' own inference


def _horizon(db) -> int:
    if db.dialect == "sqlite":  # the caller's write transaction holds the lock
        return int(db.execute(_HORIZON).fetchone()[0])
    with write(db):
        db.execute(_HORIZON_TIMEOUT[db.dialect])
        db.execute(_HORIZON_LOCK[db.dialect])
        return int(db.execute(_HORIZON).fetchone()[0])


def fold_pair_counts(db, project_id: int, expand: Expand, *,
                     window: int = FOLD_WINDOW) -> dict:
    """Bring a project's pair counts up to the newest judgments; return what was folded.

    Each step is one transaction, serialized against other folds: the count
    changes, the watermark and the folded exclusions commit together or not at
    all, so a fold killed half-way leaves the counts of its last finished step and
    the next fold goes on from there. A step folds at most ``window`` judgment ids,
    which bounds the memory of a catch-up over millions of judgments.

    Parameters
    ----------
    db
        The store.
    project_id : int
    expand : callable
        :func:`prefstore.models.adapter.pair_count_deltas`.
    window : int
        Judgment ids per step.

    Returns
    -------
    dict
        ``{"last_judgment_id", "judgments": rows added or taken back,
        "items_excluded", "items_included", "steps"}``.

    Raises
    ------
    InvalidInput
        From ``expand``, for a judgment the models cannot read.
    """
    done = {"judgments": 0, "items_excluded": 0, "items_included": 0, "steps": 0}
    mark = _current_mark(db, project_id)
    if mark is not None:  # nothing new: no write lock, no horizon lock
        done["last_judgment_id"] = mark
        return done
    horizon = None if db.dialect == "sqlite" else _horizon(db)
    while True:
        step, caught_up = _fold_step(db, project_id, expand, horizon, window)
        for key in ("judgments", "items_excluded", "items_included"):
            done[key] += step[key]
        done["steps"] += 1
        done["last_judgment_id"] = step["last_judgment_id"]
        if caught_up:
            return done


def _current_mark(db, project_id: int) -> int | None:
    """The watermark if the counts are plainly up to date (read without locks), else None.

    Judgments the read does not see yet (uncommitted) are left for the next fold:
    the watermark only moves under the locks of a fold step.
    """
    row = db.execute(_MARK, [project_id]).fetchone()
    if row is None or int(db.execute(_HORIZON).fetchone()[0]) > int(row[0]):
        return None
    excluded_now = [r[0] for r in db.execute(_EXCLUDED_NOW, [project_id])]
    excluded_before = [r[0] for r in db.execute(_EXCLUDED_FOLDED, [project_id])]
    return int(row[0]) if excluded_now == excluded_before else None


def _fold_step(db, project_id: int, expand: Expand, horizon: int | None,
               window: int) -> tuple[dict, bool]:
    with write(db):
        if horizon is None:
            horizon = _horizon(db)
        db.execute(_ENSURE_MARK, [project_id])
        mark, stamp = db.execute(_LOCK_MARK[db.dialect], [project_id]).fetchone()
        mark = int(mark)
        excluded_now = {r[0] for r in db.execute(_EXCLUDED_NOW, [project_id])}
        excluded_before = {r[0] for r in db.execute(_EXCLUDED_FOLDED, [project_id])}
        before = (mark, stamp, tuple(sorted(excluded_before)))
        newly_excluded = sorted(excluded_now - excluded_before)
        included = sorted(excluded_before - excluded_now)
        new_mark = max(mark, min(horizon, mark + window))
        caught_up = new_mark >= horizon
        if new_mark == mark and not newly_excluded and not included:
            return {"last_judgment_id": mark, "judgments": 0, "items_excluded": 0,
                    "items_included": 0}, caught_up
        frames = []
        # Exclusions first, on the counts as of the old watermark ...
        for items, sign in ((included, 1), (newly_excluded, -1)):
            if items:
                frames.append(_judgment_frame(db.execute(
                    _COUNTED_OF_ITEMS[db.dialect], {"ids": id_list(db, items), "w": mark}),
                    sign))
        # ... then the new judgments, on items not excluded now.
        new = _judgment_frame(db.execute(_NEW_JUDGMENTS, {"w": mark, "h": new_mark,
                                                          "p": project_id}), 1)
        new = new[~new["item_id"].isin(excluded_now)]
        replaced = set(new["supersedes"].dropna().astype("int64"))
        frames.append(new[~new["id"].isin(replaced)])
        # A row is superseded at most once (a unique index): a replaced row older
        # than the watermark is in the counts, and comes out.
        old = sorted(r for r in replaced if r <= mark)
        if old:
            frames.append(_judgment_frame(db.execute(_JUDGMENTS_BY_ID[db.dialect],
                                                     [id_list(db, old)]), -1))
        judgments = pd.concat(frames, ignore_index=True)
        deltas = _apply(db, project_id, judgments, expand)
        stamp = now_iso()
        db.execute(_MOVE_MARK_ONLY, [new_mark, stamp, project_id])
        db.executemany(_ADD_EXCLUDED, [(project_id, i) for i in newly_excluded])
        db.executemany(_DROP_EXCLUDED, [(project_id, i) for i in included])
    # Committed (not a savepoint of an outer transaction, which could still roll back).
    copy = _copy(db, project_id)
    if copy is not None:
        after = (new_mark, stamp, tuple(sorted(excluded_now)))
        if db.in_transaction or copy.state != before or not copy.add(deltas.get("response")):
            _drop_copy(db, project_id)
        else:
            copy.state = after
    return {"last_judgment_id": new_mark, "judgments": len(judgments),
            "items_excluded": len(newly_excluded), "items_included": len(included)}, caught_up


def _apply(db, project_id: int, judgments: pd.DataFrame, expand: Expand) -> dict:
    """Add the signed judgments' pairwise rows to the counts, and their number to the totals.

    Returns the deltas per level (``expand``'s), empty when there were no judgments.
    """
    if judgments.empty:
        return {}
    item_ids = np.unique(judgments["item_id"].to_numpy(dtype=np.int64)).tolist()
    if len(item_ids) > _RESPONSES_BY_ID_MAX:
        responses = _rows_frame(db.execute(_RESPONSES_OF_PROJECT, [project_id]),
                                _RESPONSE_COLUMNS)
    else:
        responses = _rows_frame(db.execute(_RESPONSES_OF_ITEMS[db.dialect],
                                           [id_list(db, item_ids)]), _RESPONSE_COLUMNS)
    deltas, totals = expand(judgments, responses)
    for level in LEVELS:
        delta = deltas[level]
        if delta.empty:
            continue
        _add_counts(db, project_id, level, delta)
        shrunk = delta[(delta[["n_lo", "n_hi", "n_tie"]] < 0).any(axis=1)]
        db.executemany(_DROP_EMPTY, list(zip([project_id] * len(shrunk), [level] * len(shrunk),
                                             *(shrunk[c].tolist() for c in ("kind", "lo", "hi")))))
    db.execute(_ADD_TOTALS, {
        "nh": totals["human"]["n"], "nl": totals["llm"]["n"],
        "sh": totals["human"]["n_no_system"], "sl": totals["llm"]["n_no_system"],
        "p": project_id})
    return deltas


def _add_counts(db, project_id: int, level: str, delta: pd.DataFrame) -> None:
    if db.dialect == "postgres":
        columns = {c: delta[c].tolist() for c in ("kind", "lo", "hi", "n_lo", "n_hi", "n_tie",
                                                  "w_lo", "w_hi", "w_tie")}
        db.execute(_ADD_COUNTS_FROM_ARRAYS, {"p": project_id, "level": level, **columns})
        return
    # Whole columns to Python values at once: a row at a time over pandas' string
    # columns cost more than the upsert itself.
    n = len(delta)
    db.executemany(_ADD_COUNTS, list(zip(
        [project_id] * n, [level] * n, *(delta[c].tolist() for c in ("kind", "lo", "hi")),
        *(delta[c].to_numpy(dtype=np.int64).tolist() for c in ("n_lo", "n_hi", "n_tie")),
        *(delta[c].to_numpy(dtype=np.float64).tolist() for c in ("w_lo", "w_hi", "w_tie")))))


def pair_counts_frame(db, project_id: int, *, level: str, kind: str = "all") -> pd.DataFrame:
    """Return a project's folded pair counts at ``level`` for judgments of ``kind``.

    Columns: lo, hi, n_lo, n_hi, n_tie, w_lo, w_hi, w_tie; with ``kind`` "all" a pair
    has a row per judgment kind (:func:`prefstore.models.adapter.pairwise_from_counts`
    sums them). A pair whose judgments were all taken back is gone. ``lo`` and ``hi``
    are system names (level "system") or response ids as integers (level "response").
    """
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if level == "system":
        return db.frame(_COUNTS[level], {"p": project_id, "kind": kind})
    copied = _copied_counts(db, project_id, kind)
    if copied is not None:
        return copied
    # Every column a number: one float array, exact for ids and counts below 2^53,
    # is a third cheaper than the data frame's per-column conversion of 100k rows.
    rows = db.execute(_COUNTS[level], {"p": project_id, "kind": kind}).fetchall()
    values = np.array(rows, dtype=np.float64).reshape(-1, len(_COUNT_COLUMNS))
    return pd.DataFrame({
        c: values[:, k] if c.startswith("w_") else values[:, k].astype(np.int64)
        for k, c in enumerate(_COUNT_COLUMNS)})


# A store handle's copy of its projects' response-level count rows, as arrays (issue 17:
# reading 100k rows took 0.2-0.4 s of a 1M-judgment fit). A copy holds the fold state
# it is of: watermark, time of the last fold step and the items excluded then. A fold
# step through the same handle moves the copy on with its own deltas, the same
# additions the database makes; any other fold changes the state, and the next read
# fetches the rows again. Never used inside a transaction, which could roll back.
_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Copy keys pack (lo, hi, kind) into one int64: response ids below 2^31.
_ID_LIMIT = 1 << 31


class _Copy:
    """A project's response-level count rows: kind (0 human, 1 llm), lo, hi, n, w."""

    def __init__(self, state, rows: list[tuple]):
        values = np.array(rows, dtype=np.float64).reshape(-1, 9)
        ids = values[:, :3].astype(np.int64)
        self.state = state
        self.kind, self.lo, self.hi = ids[:, 0], ids[:, 1], ids[:, 2]
        self.n = values[:, 3:6].astype(np.int64)
        self.w = values[:, 6:9].copy()

    def usable(self) -> bool:
        return not len(self.lo) or max(self.lo.max(), self.hi.max()) < _ID_LIMIT

    def frame(self, kind: str) -> pd.DataFrame:
        keep = (self.n != 0).any(axis=1)  # emptied pairs: deleted in the table
        if kind != "all":
            keep &= self.kind == (KINDS.index(kind) if kind in KINDS else -1)
        n, w = self.n[keep], self.w[keep]
        return pd.DataFrame({"lo": self.lo[keep], "hi": self.hi[keep],
                             "n_lo": n[:, 0], "n_hi": n[:, 1], "n_tie": n[:, 2],
                             "w_lo": w[:, 0], "w_hi": w[:, 1], "w_tie": w[:, 2]})

    def add(self, delta: pd.DataFrame | None) -> bool:
        """Add a fold's response-level deltas as the upsert does; False if it cannot."""
        if delta is None or delta.empty:
            return True
        kind = (delta["kind"].to_numpy(dtype=object) == "llm").astype(np.int64)
        lo = delta["lo"].astype(np.int64).to_numpy()
        hi = delta["hi"].astype(np.int64).to_numpy()
        if max(lo.max(), hi.max()) >= _ID_LIMIT:
            return False
        n = delta[["n_lo", "n_hi", "n_tie"]].to_numpy(dtype=np.int64)
        w = delta[["w_lo", "w_hi", "w_tie"]].to_numpy(dtype=np.float64)
        at = pd.Index(_keys(self.kind, self.lo, self.hi)).get_indexer(_keys(kind, lo, hi))
        old = at >= 0
        rows = at[old]
        self.n[rows] += n[old]
        self.w[rows] += w[old]
        # A shrunk pair whose counts reach zero is deleted (_DROP_EMPTY): its weights
        # start again from 0 when it comes back, as an inserted row's do.
        shrunk = (n[old] < 0).any(axis=1)
        self.w[rows[shrunk & (self.n[rows] == 0).all(axis=1)]] = 0.0
        new = ~old
        self.kind = np.concatenate([self.kind, kind[new]])
        self.lo = np.concatenate([self.lo, lo[new]])
        self.hi = np.concatenate([self.hi, hi[new]])
        self.n = np.concatenate([self.n, n[new]])
        self.w = np.concatenate([self.w, w[new]])
        return True


def _keys(kind: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (((lo << 31) | hi) << 1) | kind


def _fold_state(db, project_id: int):
    row = db.execute(_FOLD_STATE[db.dialect], [project_id]).fetchone()
    if row is None:
        return None
    excluded = tuple(sorted(int(i) for i in row[2].split(","))) if row[2] else ()
    return int(row[0]), row[1], excluded


def _copy(db, project_id: int) -> _Copy | None:
    return _COPIES.get(db, {}).get(project_id)


def _drop_copy(db, project_id: int) -> None:
    _COPIES.get(db, {}).pop(project_id, None)


def _copied_counts(db, project_id: int, kind: str) -> pd.DataFrame | None:
    """The response-level counts from the handle's copy, made or refreshed; None inside
    a transaction or for response ids too large to pack."""
    if db.in_transaction:
        return None
    state = _fold_state(db, project_id)
    copy = _copy(db, project_id)
    if state is None or copy is None or copy.state != state:
        _drop_copy(db, project_id)
        rows = db.execute(_RESPONSE_ROWS, [project_id]).fetchall()
        copy = _Copy(state, rows)
        # Kept only if no fold step committed during the read.
        if state is None or not copy.usable() or _fold_state(db, project_id) != state:
            return copy.frame(kind)
        _COPIES.setdefault(db, {})[project_id] = copy
    return copy.frame(kind)


def pair_count_totals(db, project_id: int, *, kind: str = "all") -> dict:
    """Return the folded state of a project's counts for judgments of ``kind``.

    ``{"last_judgment_id", "n_judgments": effective judgments counted,
    "n_no_system": those on items with a response without a system}``; zeros
    before the first fold.
    """
    row = db.execute(_MARK, [project_id]).fetchone() or (0, 0, 0, 0, 0)
    last, n_human, n_llm, s_human, s_llm = (int(v) for v in row)
    n = {"human": n_human, "llm": n_llm, "all": n_human + n_llm}[kind]
    s = {"human": s_human, "llm": s_llm, "all": s_human + s_llm}[kind]
    return {"last_judgment_id": last, "n_judgments": n, "n_no_system": s}


def reset_pair_counts(db, project_id: int) -> None:
    """Forget a project's pair counts: the next fold recounts from watermark 0."""
    with write(db):
        db.execute(_ENSURE_MARK, [project_id])
        db.execute(_LOCK_MARK[db.dialect], [project_id])
        db.execute("DELETE FROM pair_counts WHERE project_id = ?", [project_id])
        db.execute("DELETE FROM pair_count_excluded WHERE project_id = ?", [project_id])
        db.execute("DELETE FROM pair_count_marks WHERE project_id = ?", [project_id])
    _drop_copy(db, project_id)


def stored_pair_counts(db, project_id: int) -> pd.DataFrame:
    """Return every stored count row of a project: level, kind and the count columns.

    Sorted by level, kind, lo, hi; what tests compare with a recount.
    """
    return db.frame(
        "SELECT level, kind, lo, hi, n_lo, n_hi, n_tie, w_lo, w_hi, w_tie FROM pair_counts "
        "WHERE project_id = ? ORDER BY level, kind, lo, hi", [project_id])


__all__ = [
    "fold_pair_counts",
    "pair_count_totals",
    "pair_counts_frame",
    "reset_pair_counts",
    "stored_pair_counts",
]
