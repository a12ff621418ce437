"""The LLM judges' ledger: each item's state per judge, the requests it cost, and cached responses.

``judge_state`` holds one row per (judge rater, item) once a run has taken the
item: ``pending`` while it is being judged, ``done`` with its judgment, or
``failed`` with the reason, the raw answer (at most :data:`RAW_MAX_CHARS`) and
the attempts so far. Attempts and tokens add up over runs, so a project's judge
costs are one sum. A judgment and its ``done`` are written in one transaction,
and an answer that did not parse stays here, never becoming a judgment.

Items are to do for a judge when it has no judgment on them and they are not
failed (with ``retry_failed``, failed ones too), so a run killed mid-way resumes
where it stopped. ``judge_cache`` keeps server responses by the judge's cache key
(:func:`prefstore.judges.cache.cache_key`), for every project and process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from prefstore.store.connection import loads, now_iso, write
from prefstore.store.items import id_list, responses_for_items
from prefstore.store.judgments import submit_judgment

STATES = ("pending", "done", "failed")
#: The raw answer of a failed item is kept up to this many characters.
RAW_MAX_CHARS = 2000
REASON_MAX_CHARS = 500

# The items of project :p that rater :r has yet to judge, after item :after: no
# judgment of theirs, and not done or (unless :retry) failed. Spelled out three
# times, since SQL is never assembled from pieces here.
_TODO_IDS = (
    "SELECT i.id FROM items i WHERE i.project_id = :p AND i.id > :after "
    "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.rater_id = :r) "
    "AND NOT EXISTS (SELECT 1 FROM judge_state s WHERE s.item_id = i.id AND s.rater_id = :r "
    "AND (s.status = 'done' OR (s.status = 'failed' AND :retry = 0))) ORDER BY i.id LIMIT :n")
_TODO_COUNT = (
    "SELECT COUNT(*) FROM items i WHERE i.project_id = :p AND i.id > :after "
    "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.rater_id = :r) "
    "AND NOT EXISTS (SELECT 1 FROM judge_state s WHERE s.item_id = i.id AND s.rater_id = :r "
    "AND (s.status = 'done' OR (s.status = 'failed' AND :retry = 0)))")
_TODO_ANY = (
    "SELECT 1 FROM items i WHERE i.project_id = :p AND i.id > :after "
    "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.rater_id = :r) "
    "AND NOT EXISTS (SELECT 1 FROM judge_state s WHERE s.item_id = i.id AND s.rater_id = :r "
    "AND (s.status = 'done' OR (s.status = 'failed' AND :retry = 0))) LIMIT 1")

_ITEMS_BY_IDS = {
    "sqlite": "SELECT id, external_id, prompt, messages FROM items "
              "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
    "postgres": "SELECT id, external_id, prompt, messages FROM items WHERE id = ANY(?) "
                "ORDER BY id",
}


def judge_submission_id(item_id: int) -> str:
    """Return the submission id of a judge's judgment on an item (one per judge and item)."""
    return f"judge:{item_id}"


def _rater_id(db, rater_name: str) -> int | None:
    row = db.execute("SELECT id FROM raters WHERE name = ?", [rater_name]).fetchone()
    return None if row is None else row[0]


def judge_todo(db, project_id: int, rater_id: int, *, after: int = 0, limit: int = 32,
               retry_failed: bool = False) -> list[dict]:
    """Return up to ``limit`` items the judge has yet to do, in id order after ``after``.

    Items are ``{"id", "external_id", "prompt", "messages", "responses": [{"idx",
    "text", ...}]}``. Failed items are left out unless ``retry_failed``.
    """
    params = {"p": project_id, "r": rater_id, "after": after, "retry": int(retry_failed),
              "n": limit}
    ids = [r[0] for r in db.execute(_TODO_IDS, params)]
    if not ids:
        return []
    responses = responses_for_items(db, ids)
    items = []
    for row in db.query(_ITEMS_BY_IDS[db.dialect], [id_list(db, ids)]):
        row["messages"] = loads(row["messages"])
        row["responses"] = responses[row["id"]]
        items.append(row)
    return items


def count_judge_todo(db, project_id: int, rater_name: str, *,
                     retry_failed: bool = False) -> int:
    """Count the project's items the judge called ``rater_name`` has yet to do."""
    rater_id = _rater_id(db, rater_name)
    if rater_id is None:
        return db.execute("SELECT COUNT(*) FROM items WHERE project_id = ?",
                          [project_id]).fetchone()[0]
    return db.execute(_TODO_COUNT, {"p": project_id, "r": rater_id, "after": 0,
                       "retry": int(retry_failed)}).fetchone()[0]


def has_judge_todo(db, project_id: int, rater_name: str) -> bool:
    """Return whether the judge called ``rater_name`` has a pending (not failed) item."""
    rater_id = _rater_id(db, rater_name)
    if rater_id is None:
        return db.execute("SELECT 1 FROM items WHERE project_id = ? LIMIT 1",
                          [project_id]).fetchone() is not None
    return db.execute(_TODO_ANY, {"p": project_id, "r": rater_id, "after": 0,
                       "retry": 0}).fetchone() is not None


def mark_judge_pending(db, project_id: int, rater_id: int, item_ids: Iterable[int]) -> None:
    """Record that a run took these items: new and failed ones become ``pending``."""
    now = now_iso()
    with write(db):
        db.executemany(
            "INSERT INTO judge_state (project_id, rater_id, item_id, status, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (rater_id, item_id) DO UPDATE SET "
            "status = 'pending', updated_at = excluded.updated_at "
            "WHERE judge_state.status = 'failed'",
            [(project_id, rater_id, item_id, now) for item_id in item_ids])


# A verdict: the item is done, and this run's attempts and tokens add to its totals.
_DONE = (
    "INSERT INTO judge_state (project_id, rater_id, item_id, status, attempts, prompt_tokens, "
    "completion_tokens, judgment_id, updated_at) VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?) "
    "ON CONFLICT (rater_id, item_id) DO UPDATE SET status = 'done', kind = NULL, "
    "reason = NULL, raw = NULL, attempts = judge_state.attempts + excluded.attempts, "
    "prompt_tokens = judge_state.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = judge_state.completion_tokens + excluded.completion_tokens, "
    "judgment_id = excluded.judgment_id, updated_at = excluded.updated_at")
# A failure, unless the item is done already (a concurrent run judged it).
_FAILED = (
    "INSERT INTO judge_state (project_id, rater_id, item_id, status, kind, reason, raw, "
    "attempts, prompt_tokens, completion_tokens, updated_at) "
    "VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater_id, item_id) DO UPDATE "
    "SET status = 'failed', kind = excluded.kind, reason = excluded.reason, "
    "raw = excluded.raw, attempts = judge_state.attempts + excluded.attempts, "
    "prompt_tokens = judge_state.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = judge_state.completion_tokens + excluded.completion_tokens, "
    "updated_at = excluded.updated_at WHERE judge_state.status <> 'done' RETURNING id")


def _tokens(usage: dict | None) -> tuple[int, int]:
    usage = usage or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def save_judge_verdict(db, *, project_id: int, rater_id: int, item_id: int, judgment: dict,
                       attempts: int = 0, usage: dict | None = None) -> tuple[int, bool]:
    """Store a judge's verdict on an item and mark the item ``done``, in one transaction.

    ``judgment`` is ``JudgeResult.to_judgment()``; ``attempts`` and ``usage``
    (``prompt_tokens``, ``completion_tokens``) are the requests this run sent for
    the item and their tokens, added to the item's totals. Returns ``(judgment
    id, created)``: a verdict stored before (a resumed or concurrent run) is kept.
    """
    prompt, completion = _tokens(usage)
    with write(db):
        judgment_id, created = submit_judgment(
            db, item_id=item_id, rater_id=rater_id, kind="llm",
            submission_id=judge_submission_id(item_id), outcome=judgment["outcome"],
            choice=judgment["choice"], ranking=judgment["ranking"],
            display_order=judgment["display_order"],
            # A model's text as the failure path keeps it: storable, never refused.
            rationale=_clean(judgment["rationale"], len(judgment["rationale"] or "")),
            metadata=_clean_tree(judgment["metadata"]))
        db.execute(_DONE, [project_id, rater_id, item_id, attempts, prompt, completion,
                           judgment_id, now_iso()])
    return judgment_id, created


def save_judge_failure(db, *, project_id: int, rater_id: int, item_id: int, kind: str,
                       reason: str, raw: str | None, attempts: int = 0,
                       usage: dict | None = None) -> bool:
    """Mark an item ``failed`` with the reason and the raw answer; never a judgment.

    The raw answer is cut to :data:`RAW_MAX_CHARS`. Returns False, changing
    nothing, when the item is already done (a concurrent run judged it).
    """
    prompt, completion = _tokens(usage)
    with write(db):
        row = db.execute(
            _FAILED, [project_id, rater_id, item_id, kind, _clean(reason, REASON_MAX_CHARS),
                      _clean(raw, RAW_MAX_CHARS), attempts, prompt, completion,
                      now_iso()]).fetchone()
    return row is not None


def _clean(text: str | None, limit: int) -> str | None:
    """Cut text to ``limit`` characters that both databases can store (no NUL, valid UTF-8)."""
    if text is None:
        return None
    text = str(text)[:limit].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _clean_tree(value):
    """JSON-like data with every string (keys too) made storable as :func:`_clean` does."""
    if isinstance(value, str):
        return _clean(value, len(value))
    if isinstance(value, dict):
        return {_clean_tree(k): _clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_tree(v) for v in value]
    return value


def judge_states(db, project_id: int, rater_id: int | None = None) -> list[dict]:
    """Return the project's judge states (every judge, or one), by rater and item id."""
    return list(db.query(
        "SELECT s.rater_id, r.name AS rater, s.item_id, i.external_id, s.status, s.kind, "
        "s.reason, s.raw, s.attempts, s.prompt_tokens, s.completion_tokens, s.judgment_id, "
        "s.updated_at FROM judge_state s JOIN raters r ON r.id = s.rater_id "
        "JOIN items i ON i.id = s.item_id "
        "WHERE s.project_id = :p AND (:r IS NULL OR s.rater_id = :r) "
        "ORDER BY s.rater_id, s.item_id", {"p": project_id, "r": rater_id}))


def judge_usage(db, project_id: int, names: Iterable[str] = ()) -> dict[str, dict]:
    """Return each judge's work and cost in a project, by rater name.

    Judges are the raters with a judge state in the project, plus ``names`` (say
    the configured judge, before its first run). Each gets ``{"calls", "tokens":
    {"prompt", "completion"}, "labelled", "failed", "pending"}``: ``calls`` and
    ``tokens`` count every request sent to a server, the failed items' included
    (cached answers and local judges cost none); ``labelled`` counts items with
    the judge's judgment, ``failed`` items whose last answer failed, and
    ``pending`` the rest of the project's items.
    """
    items = db.execute("SELECT COUNT(*) FROM items WHERE project_id = ?",
                       [project_id]).fetchone()[0]
    rows = {name: (rater_id, calls, prompt, completion) for rater_id, name, calls, prompt,
            completion in db.execute(
                "SELECT s.rater_id, r.name, SUM(s.attempts), SUM(s.prompt_tokens), "
                "SUM(s.completion_tokens) FROM judge_state s JOIN raters r ON r.id = s.rater_id "
                "WHERE s.project_id = ? GROUP BY s.rater_id, r.name", [project_id])}
    for name in names:
        if name not in rows:
            rows[name] = (_rater_id(db, name), 0, 0, 0)
    out = {}
    for name in sorted(rows):
        rater_id, calls, prompt, completion = rows[name]
        labelled = failed = 0
        if rater_id is not None:
            labelled = db.execute(
                "SELECT COUNT(DISTINCT j.item_id) FROM judgments j "
                "JOIN items i ON i.id = j.item_id WHERE i.project_id = ? AND j.rater_id = ?",
                [project_id, rater_id]).fetchone()[0]
            failed = db.execute(
                "SELECT COUNT(*) FROM judge_state s WHERE s.project_id = ? AND s.rater_id = ? "
                "AND s.status = 'failed' AND NOT EXISTS (SELECT 1 FROM judgments j "
                "WHERE j.item_id = s.item_id AND j.rater_id = s.rater_id)",
                [project_id, rater_id]).fetchone()[0]
        out[name] = {"calls": int(calls or 0),
                     "tokens": {"prompt": int(prompt or 0), "completion": int(completion or 0)},
                     "labelled": labelled, "failed": failed,
                     "pending": items - labelled - failed}
    return out


def last_annotate_job(db, project_id: int) -> dict | None:
    """Return the newest annotate job of a project (``id``, ``status``, ``finished_at``)."""
    rows = list(db.query(
        "SELECT id, status, finished_at FROM jobs WHERE type = 'annotate' AND project_id = ? "
        "ORDER BY id DESC LIMIT 1", [project_id]))
    return rows[0] if rows else None


class JudgeCache:
    """A response cache (:class:`prefstore.judges.cache.ResponseCache`) in ``judge_cache``.

    It uses the store handle it is given, so it belongs to that handle's thread;
    the server judge reads and writes its cache from the calling thread only.
    """

    def __init__(self, db):
        self.db = db

    def get(self, key: str) -> dict | None:
        """Return the response stored under ``key``, or ``None``."""
        row = self.db.execute("SELECT response FROM judge_cache WHERE key = ?", [key]).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, response: dict) -> None:
        """Store a response under ``key`` (replacing any earlier one)."""
        model = response.get("model") if isinstance(response, dict) else None
        with write(self.db):
            self.db.execute(
                "INSERT INTO judge_cache (key, model, response, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET model = excluded.model, "
                "response = excluded.response, created_at = excluded.created_at",
                [key, model if isinstance(model, str) else None, json.dumps(response),
                 now_iso()])

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM judge_cache").fetchone()[0]

