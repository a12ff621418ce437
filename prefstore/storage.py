"""The SQLite store: every SQL statement and the schema migrations live here.

Functions take the database handle first and return plain dicts, in the
manner of sqlite-utils. Writes run in short ``BEGIN IMMEDIATE`` transactions,
so a read-then-write (claiming an item) cannot race another process.

Connections are per thread: :func:`connect` opens a new one each time it is
called, and callers keep it to the thread that opened it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from sqlite_utils import Database, Migrations

from prefstore.errors import AccessDenied, Conflict, InvalidInput, NotFound

DEFAULT_DB = "prefstore.db"
BUSY_TIMEOUT_MS = 30_000

TASK_KINDS = ("pairwise", "slate")
RATER_KINDS = ("human", "llm")
ROLES = ("rater", "admin")
OUTCOMES = ("choice", "tie", "both_bad")
ROUTES = ("human", "llm", "both")

DEFAULT_SETTINGS: dict[str, Any] = {
    "raters_per_item": 3,
    "strength_scale": True,
    "aspects": [],
    "rationale_required": False,
    "rationale_min_chars": 0,
    "reason_tags": [],
    "edits_allowed": True,
    "guidelines": "",
    "human_budget": None,
    "gold_rate": 0.05,
    "ranking_mode": "best",
    "claim_ttl_seconds": 1800,
    "calibration_fraction": 0.1,
    "refit_every_judgments": 50,
    "refit_every_minutes": 10,
    "active_selection": False,
    "judge": None,
}

migrations = Migrations("prefstore")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('pairwise', 'slate')),
            settings TEXT NOT NULL DEFAULT '{}',
            pseudonym_salt TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            external_id TEXT NOT NULL,
            prompt TEXT,
            messages TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            category TEXT,
            gold TEXT,
            is_gold INTEGER NOT NULL DEFAULT 0,
            -- 0 = routed to humans, 1 = not routed yet, 2 = routed to the LLM only
            queue_rank INTEGER NOT NULL DEFAULT 1,
            -- expected information of one more human label (active selection)
            priority REAL NOT NULL DEFAULT 0,
            n_human INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, external_id)
        );
        CREATE INDEX items_queue ON items (project_id, is_gold, queue_rank, n_human, priority DESC, id);
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            system TEXT,
            UNIQUE (item_id, idx)
        );
        CREATE TABLE raters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            role TEXT NOT NULL DEFAULT 'rater' CHECK (role IN ('rater', 'admin')),
            token_hash TEXT UNIQUE,
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        );
        CREATE TABLE assignments (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            claimed_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'claimed'
                CHECK (status IN ('claimed', 'done', 'skipped', 'flagged')),
            reason TEXT,
            display_order TEXT,
            updated_at TEXT,
            UNIQUE (item_id, rater_id)
        );
        CREATE INDEX assignments_active ON assignments (item_id, status, expires_at);
        CREATE INDEX assignments_rater ON assignments (rater_id, status);
        CREATE TABLE judgments (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            display_order TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('choice', 'tie', 'both_bad')),
            choice INTEGER,
            ranking TEXT,
            strength INTEGER CHECK (strength IS NULL OR strength BETWEEN 0 AND 3),
            aspects TEXT,
            rationale TEXT,
            reason_tags TEXT,
            edited TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            time_ms INTEGER,
            submission_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (rater_id, submission_id)
        );
        CREATE INDEX judgments_item ON judgments (item_id, rater_id);
        CREATE INDEX judgments_rater_item ON judgments (rater_id, item_id);
        -- Judgments are append-only: a bug elsewhere must not rewrite paid labels.
        CREATE TRIGGER judgments_no_update BEFORE UPDATE ON judgments
        BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END;
        CREATE TRIGGER judgments_no_delete BEFORE DELETE ON judgments
        BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END;
        CREATE TABLE fits (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            model TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL,
            n_judgments INTEGER NOT NULL DEFAULT 0,
            seconds REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX fits_latest ON fits (project_id, model, level, kind, id);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id),
            type TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
            lease_owner TEXT,
            lease_expires_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            progress TEXT,
            result TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        );
        CREATE INDEX jobs_queue ON jobs (status, lease_expires_at, id);
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            pid INTEGER,
            host TEXT,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE routing (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            decision TEXT NOT NULL CHECK (decision IN ('human', 'llm', 'both')),
            predicted_agreement REAL,
            priority REAL,
            features TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (project_id, item_id)
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id),
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_reports(db: Database) -> None:
    # Derived reports (agreement, routing evaluation) cached by the worker, so a
    # dashboard over a million judgments reads one row instead of recomputing.
    db.executescript(
        """
        CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            result TEXT NOT NULL,
            n_judgments INTEGER NOT NULL DEFAULT 0,
            seconds REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX reports_latest ON reports (project_id, name, kind, id);
        """
    )


# --------------------------------------------------------------------------
# Connections and transactions

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def default_db_path() -> str:
    """Return the database path: ``$PREFSTORE_DB`` or ``prefstore.db`` here."""
    return os.environ.get("PREFSTORE_DB") or DEFAULT_DB


def connect(path: str | os.PathLike | None = None, *, migrate: bool = True) -> Database:
    """Open the store at ``path`` (WAL, busy timeout, synchronous=NORMAL).

    The returned handle belongs to the calling thread. Migrations run once per
    path and process.
    """
    path = str(path or default_db_path())
    if path != ":memory:":
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise InvalidInput(f"--db {path}: directory {parent} does not exist")
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, and sqlite-utils
    # nests its own atomic() blocks inside as savepoints.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    db = Database(conn, execute_plugins=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if path != ":memory:":
        db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    if migrate:
        key = path if path == ":memory:" else str(Path(path).resolve())
        if key == ":memory:" or key not in _migrated or not db["projects"].exists():
            with _migrate_lock:
                with write(db):
                    migrations.apply(db)
                _migrated.add(key)
    return db


def is_locked_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


@contextlib.contextmanager
def write(db: Database, *, deadline_s: float = BUSY_TIMEOUT_MS / 1000) -> Iterator[Database]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction.

    The write lock is taken up front, so a read-then-write inside cannot be
    invalidated by another writer. Nested calls become savepoints.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            # busy_timeout already waited; retry a little more in case the
            # handler gave up early (it can under checkpoint contention).
            if not is_locked_error(exc) or time.monotonic() - start > deadline_s:
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.2)
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise


def now_iso(at: dt.datetime | None = None) -> str:
    """Return a UTC timestamp that sorts as text (ISO 8601, milliseconds)."""
    at = at or dt.datetime.now(dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _loads(value: str | None, default: Any = None) -> Any:
    return default if value is None else json.loads(value)


def integrity_check(db: Database) -> str:
    return db.execute("PRAGMA integrity_check").fetchone()[0]


def backup(db: Database, out_path: str | os.PathLike) -> None:
    """Copy the live database to ``out_path`` with SQLite's online backup API."""
    out_path = Path(out_path)
    if out_path.exists():
        raise Conflict(f"backup target {out_path} already exists; choose a new path")
    if not out_path.resolve().parent.is_dir():
        raise InvalidInput(f"backup target {out_path}: directory does not exist")
    # Written beside the target and renamed, so a failed backup leaves no partial file.
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    dest = sqlite3.connect(str(tmp))
    try:
        # One step: a commit from another connection between steps restarts the
        # copy, so a stepwise backup need never finish under steady writes. In WAL
        # mode the single step's read snapshot does not block the writers.
        db.conn.backup(dest, pages=-1)
        dest.close()
        os.replace(tmp, out_path)
    finally:
        dest.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------
# Projects


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Return ``settings`` merged over the defaults, or raise InvalidInput."""
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise InvalidInput(
            f"settings: unknown key(s) {', '.join(unknown)}; valid keys are "
            f"{', '.join(sorted(DEFAULT_SETTINGS))}"
        )
    merged = {**DEFAULT_SETTINGS, **settings}

    def need(cond: bool, key: str, what: str) -> None:
        if not cond:
            raise InvalidInput(f"settings: {key!r} must be {what}, got {merged[key]!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    need(is_int(merged["raters_per_item"]) and merged["raters_per_item"] >= 1,
         "raters_per_item", "an integer >= 1")
    for key in ("strength_scale", "rationale_required", "edits_allowed", "active_selection"):
        need(isinstance(merged[key], bool), key, "true or false")
    need(is_int(merged["rationale_min_chars"]) and merged["rationale_min_chars"] >= 0,
         "rationale_min_chars", "an integer >= 0")
    for key in ("aspects", "reason_tags"):
        value = merged[key]
        need(isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value),
             key, "a list of non-empty strings")
        need(len(set(value)) == len(value), key, "a list without duplicates")
    need(isinstance(merged["guidelines"], str), "guidelines", "markdown text")
    budget = merged["human_budget"]
    need(budget is None or (isinstance(budget, (int, float)) and not isinstance(budget, bool)
                            and budget >= 0 and (budget <= 1 or float(budget).is_integer())),
         "human_budget", "null, a fraction in [0, 1] or a whole count of items")
    need(isinstance(merged["gold_rate"], (int, float)) and 0 <= merged["gold_rate"] <= 1,
         "gold_rate", "a number in [0, 1]")
    need(merged["ranking_mode"] in ("best", "full"), "ranking_mode", '"best" or "full"')
    need(is_int(merged["claim_ttl_seconds"]) and merged["claim_ttl_seconds"] >= 10,
         "claim_ttl_seconds", "an integer >= 10")
    need(isinstance(merged["calibration_fraction"], (int, float))
         and 0 <= merged["calibration_fraction"] <= 1, "calibration_fraction", "a number in [0, 1]")
    need(is_int(merged["refit_every_judgments"]) and merged["refit_every_judgments"] >= 1,
         "refit_every_judgments", "an integer >= 1")
    need(isinstance(merged["refit_every_minutes"], (int, float))
         and merged["refit_every_minutes"] > 0, "refit_every_minutes", "a positive number")
    need(merged["judge"] is None or isinstance(merged["judge"], dict), "judge",
         "null or an object with the judge configuration")
    if merged["judge"] is not None:
        # A pure dataclass (no torch import): a bad judge setting fails here, at
        # save time, rather than later in the worker.
        from prefstore.judges.base import JudgeConfig

        try:
            JudgeConfig.from_dict(merged["judge"])
        except InvalidInput as exc:
            raise InvalidInput(f"settings: 'judge': {exc}") from exc
    return merged


def _project_row(row: dict) -> dict:
    row = dict(row)
    row["settings"] = {**DEFAULT_SETTINGS, **_loads(row["settings"], {})}
    return row


def create_project(db: Database, name: str, kind: str = "pairwise",
                   settings: dict | None = None, *, actor: str = "system") -> dict:
    """Create a project and return it. Raises Conflict if the name is taken."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"project name must be a non-empty string, got {name!r}")
    if kind not in TASK_KINDS:
        raise InvalidInput(f"project kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
    merged = validate_settings(settings or {})
    with write(db):
        if db.execute("SELECT 1 FROM projects WHERE name = ?", [name]).fetchone():
            raise Conflict(f"project {name!r} already exists")
        cur = db.execute(
            "INSERT INTO projects (name, kind, settings, pseudonym_salt, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [name, kind, _dumps(merged), secrets.token_hex(16), now_iso()],
        )
        project_id = cur.lastrowid
        log_action(db, project_id, actor, "create_project", {"name": name, "kind": kind,
                                                        "settings": merged})
    return get_project(db, project_id)


def get_project(db: Database, project: str | int) -> dict:
    """Return a project by name or id. Raises NotFound."""
    if isinstance(project, int):
        row = db.execute("SELECT * FROM projects WHERE id = ?", [project]).fetchone()
    else:
        row = db.execute("SELECT * FROM projects WHERE name = ?", [project]).fetchone()
    if row is None:
        raise NotFound(f"project {project!r} does not exist")
    cols = [d[0] for d in db.execute("SELECT * FROM projects LIMIT 0").description]
    return _project_row(dict(zip(cols, row)))


def find_project(db: Database, name: str) -> dict | None:
    try:
        return get_project(db, name)
    except NotFound:
        return None


def list_projects(db: Database) -> list[dict]:
    return [_project_row(r) for r in db.query("SELECT * FROM projects ORDER BY id")]


def update_project_settings(db: Database, project_id: int, changes: dict, *,
                            actor: str) -> dict:
    """Validate and apply setting changes, logging who changed what."""
    project = get_project(db, project_id)
    current = project["settings"]
    merged = validate_settings({**current, **changes})
    diff = {k: {"old": current.get(k), "new": merged[k]}
            for k in merged if current.get(k) != merged[k]}
    if not diff:
        return project
    with write(db):
        db.execute("UPDATE projects SET settings = ? WHERE id = ?", [_dumps(merged), project_id])
        log_action(db, project_id, actor, "update_settings", diff)
    return get_project(db, project_id)


def log_action(db: Database, project_id: int | None, actor: str, action: str, details: dict) -> None:
    db.execute(
        "INSERT INTO audit_log (project_id, actor, action, details, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [project_id, actor, action, _dumps(details), now_iso()],
    )


def audit_log(db: Database, project_id: int | None = None, limit: int = 100) -> list[dict]:
    rows = db.query(
        "SELECT * FROM audit_log WHERE (? IS NULL OR project_id = ?) ORDER BY id DESC LIMIT ?",
        [project_id, project_id, limit],
    )
    return [{**r, "details": _loads(r["details"], {})} for r in rows]


# --------------------------------------------------------------------------
# Raters and tokens


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_rater(db: Database, name: str, *, kind: str = "human", role: str = "rater",
                 with_token: bool = True, actor: str = "system") -> tuple[dict, str | None]:
    """Create a rater; return it and its raw token (shown once, stored hashed)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"rater name must be a non-empty string, got {name!r}")
    if kind not in RATER_KINDS:
        raise InvalidInput(f"rater kind must be one of {', '.join(RATER_KINDS)}, got {kind!r}")
    if role not in ROLES:
        raise InvalidInput(f"rater role must be one of {', '.join(ROLES)}, got {role!r}")
    token = secrets.token_urlsafe(32) if with_token else None
    with write(db):
        if db.execute("SELECT 1 FROM raters WHERE name = ?", [name]).fetchone():
            raise Conflict(f"rater {name!r} already exists")
        cur = db.execute(
            "INSERT INTO raters (name, kind, role, token_hash, active, created_at) "
            "VALUES (?, ?, ?, ?, 1, ?)",
            [name, kind, role, hash_token(token) if token else None, now_iso()],
        )
        log_action(db, None, actor, "create_rater", {"name": name, "kind": kind, "role": role})
    return get_rater(db, cur.lastrowid), token


def get_rater(db: Database, rater: int | str) -> dict:
    if isinstance(rater, int):
        rows = list(db.query("SELECT * FROM raters WHERE id = ?", [rater]))
    else:
        rows = list(db.query("SELECT * FROM raters WHERE name = ?", [rater]))
    if not rows:
        raise NotFound(f"rater {rater!r} does not exist")
    return rows[0]


def get_or_create_rater(db: Database, name: str, kind: str = "human") -> dict:
    """Return the rater called ``name``, creating it (without a token) if absent."""
    rows = list(db.query("SELECT * FROM raters WHERE name = ?", [name]))
    if rows:
        if rows[0]["kind"] != kind:
            raise InvalidInput(
                f"rater {name!r} exists with kind {rows[0]['kind']!r}, not {kind!r}"
            )
        return rows[0]
    with write(db):
        db.execute(
            "INSERT OR IGNORE INTO raters (name, kind, role, active, created_at) "
            "VALUES (?, ?, 'rater', 1, ?)",
            [name, kind, now_iso()],
        )
    return get_rater(db, name)


def list_raters(db: Database, kind: str | None = None) -> list[dict]:
    return list(db.query(
        "SELECT id, name, kind, role, active, created_at, token_hash IS NOT NULL AS has_token "
        "FROM raters WHERE (? IS NULL OR kind = ?) ORDER BY id",
        [kind, kind],
    ))


def rater_for_token(db: Database, token: str | None) -> dict:
    """Return the active rater holding ``token``.

    A missing, wrong or deactivated token all raise the same AccessDenied, so
    the message tells an attacker nothing about which it was.
    """
    denied = AccessDenied("this link is not valid; ask your project admin for a new one")
    if not token or not isinstance(token, str) or len(token) > 200:
        raise denied
    digest = hash_token(token)
    rows = list(db.query("SELECT * FROM raters WHERE token_hash = ?", [digest]))
    if not rows or not hmac.compare_digest(rows[0]["token_hash"], digest):
        raise denied
    if not rows[0]["active"]:
        raise denied
    return rows[0]


def rotate_token(db: Database, rater_id: int, *, actor: str = "system") -> str:
    """Give the rater a new token; the old link stops working."""
    token = secrets.token_urlsafe(32)
    with write(db):
        cur = db.execute("UPDATE raters SET token_hash = ? WHERE id = ?",
                         [hash_token(token), rater_id])
        if cur.rowcount == 0:
            raise NotFound(f"rater {rater_id!r} does not exist")
        log_action(db, None, actor, "rotate_token", {"rater_id": rater_id})
    return token


def set_rater_active(db: Database, rater_id: int, active: bool, *, actor: str = "system") -> None:
    """Activate or deactivate a rater; a deactivated rater gets no new items."""
    with write(db):
        cur = db.execute("UPDATE raters SET active = ? WHERE id = ?", [int(active), rater_id])
        if cur.rowcount == 0:
            raise NotFound(f"rater {rater_id!r} does not exist")
        if not active:
            # Their open claims would otherwise hold slots until they expire.
            db.execute("DELETE FROM assignments WHERE rater_id = ? AND status = 'claimed'",
                       [rater_id])
        log_action(db, None, actor, "set_rater_active", {"rater_id": rater_id, "active": active})


# --------------------------------------------------------------------------
# Items


def insert_items(db: Database, project_id: int, items: Iterable[dict]) -> list[int]:
    """Insert validated items with their responses; return the new item ids.

    Each item dict has ``external_id``, ``prompt`` or ``messages``, ``responses``
    (list of ``{"text", "system"}``), and optional ``metadata``, ``category``,
    ``gold``. Call inside :func:`write` to make a batch atomic.
    """
    created = now_iso()
    ids = []
    with write(db):
        for item in items:
            try:
                cur = db.execute(
                    "INSERT INTO items (project_id, external_id, prompt, messages, metadata, "
                    "category, gold, is_gold, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [project_id, item["external_id"], item.get("prompt"),
                     _dumps(item.get("messages")), _dumps(item.get("metadata") or {}),
                     item.get("category"), _dumps(item.get("gold")),
                     int(item.get("gold") is not None), created],
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(
                    f"item id {item['external_id']!r} already exists in this project"
                ) from exc
            item_id = cur.lastrowid
            db.conn.executemany(
                "INSERT INTO responses (item_id, idx, text, system) VALUES (?, ?, ?, ?)",
                [(item_id, i, r["text"], r.get("system"))
                 for i, r in enumerate(item["responses"])],
            )
            ids.append(item_id)
    return ids


def existing_external_ids(db: Database, project_id: int) -> set[str]:
    return {r[0] for r in db.execute(
        "SELECT external_id FROM items WHERE project_id = ?", [project_id])}


def item_ids_by_external(db: Database, project_id: int) -> dict[str, tuple[int, int]]:
    """Map external id -> (item id, number of responses) for a project."""
    rows = db.execute(
        "SELECT i.external_id, i.id, COUNT(r.id) FROM items i "
        "JOIN responses r ON r.item_id = i.id WHERE i.project_id = ? GROUP BY i.id",
        [project_id],
    )
    return {ext: (item_id, n) for ext, item_id, n in rows}


def get_item(db: Database, item_id: int) -> dict:
    """Return an item with its parsed fields and its responses in stored order."""
    rows = list(db.query("SELECT * FROM items WHERE id = ?", [item_id]))
    if not rows:
        raise NotFound(f"item {item_id!r} does not exist")
    item = rows[0]
    item["messages"] = _loads(item["messages"])
    item["metadata"] = _loads(item["metadata"], {})
    item["gold"] = _loads(item["gold"])
    item["responses"] = list(db.query(
        "SELECT id, idx, text, system FROM responses WHERE item_id = ? ORDER BY idx", [item_id]))
    return item


def iter_items(db: Database, project_id: int) -> Iterator[dict]:
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


# --------------------------------------------------------------------------
# Assignment: claiming the next item


def claim_next(db: Database, project_id: int, rater_id: int, *,
               now: dt.datetime | None = None, rng: random.Random | None = None) -> dict | None:
    """Claim the next item for a rater and return the assignment with its item.

    Runs in ``BEGIN IMMEDIATE`` so two raters cannot both take the last slot.
    A rater's open, unexpired claim is returned again (a refresh resumes it).
    Order: items routed to humans, a gold item at the project's gold rate,
    then the items with the fewest human judgments. An item never goes to a
    rater twice, nor to more raters than ``raters_per_item``; claims expire.
    """
    project = get_project(db, project_id)
    settings = project["settings"]
    now = now or dt.datetime.now(dt.UTC)
    now_s = now_iso(now)
    expires = now_iso(now + dt.timedelta(seconds=settings["claim_ttl_seconds"]))
    rng = rng or random.Random()
    with write(db):
        rater = db.execute("SELECT active, kind FROM raters WHERE id = ?", [rater_id]).fetchone()
        if rater is None:
            raise NotFound(f"rater {rater_id!r} does not exist")
        if not rater[0]:
            raise AccessDenied("this rater is deactivated")
        open_claim = db.execute(
            "SELECT a.id FROM assignments a JOIN items i ON i.id = a.item_id "
            "WHERE a.rater_id = ? AND i.project_id = ? AND a.status = 'claimed' "
            "AND a.expires_at > ? ORDER BY a.id LIMIT 1",
            [rater_id, project_id, now_s],
        ).fetchone()
        if open_claim:
            return get_assignment(db, open_claim[0])
        params = {"p": project_id, "r": rater_id, "now": now_s,
                  "cap": settings["raters_per_item"]}
        candidate_sql = (
            "SELECT i.id FROM items i "
            "WHERE i.project_id = :p AND i.is_gold = :gold AND i.queue_rank = :rank "
            "AND i.n_human < :cap "
            "AND i.n_human + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id "
            "  AND a.status = 'claimed' AND a.expires_at > :now) < :cap "
            "AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id "
            "  AND x.rater_id = :r AND (x.status != 'claimed' OR x.expires_at > :now)) "
            "AND NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = :r AND j.item_id = i.id) "
            "ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1"
        )

        def candidate(gold: int) -> int | None:
            # One queue rank at a time (routed to humans, then not routed yet):
            # with equality on the rank, items_queue yields rows already in
            # (n_human, priority DESC, id) order and LIMIT 1 stops at the first
            # fit instead of sorting every open item (benchmarks/README.md).
            for rank in (0, 1):
                row = db.execute(candidate_sql, {**params, "gold": gold, "rank": rank}).fetchone()
                if row:
                    return row[0]
            return None

        item_id = None
        if settings["gold_rate"] > 0 and _gold_due(db, project_id, rater_id,
                                                   settings["gold_rate"]):
            item_id = candidate(1)
        if item_id is None:
            item_id = candidate(0)
        if item_id is None and settings["gold_rate"] > 0:
            item_id = candidate(1)
        if item_id is None:
            return None
        n_responses = db.execute("SELECT COUNT(*) FROM responses WHERE item_id = ?",
                                 [item_id]).fetchone()[0]
        order = list(range(n_responses))
        rng.shuffle(order)
        # An expired claim of this same rater is reused, so the pair stays unique.
        db.execute(
            "INSERT INTO assignments (item_id, rater_id, claimed_at, expires_at, status, "
            "display_order, updated_at) VALUES (?, ?, ?, ?, 'claimed', ?, ?) "
            "ON CONFLICT (item_id, rater_id) DO UPDATE SET claimed_at = excluded.claimed_at, "
            "expires_at = excluded.expires_at, display_order = excluded.display_order, "
            "updated_at = excluded.updated_at",
            [item_id, rater_id, now_s, expires, _dumps(order), now_s],
        )
        assignment_id = db.execute(
            "SELECT id FROM assignments WHERE item_id = ? AND rater_id = ?",
            [item_id, rater_id]).fetchone()[0]
    return get_assignment(db, assignment_id)


def _gold_due(db: Database, project_id: int, rater_id: int, rate: float) -> bool:
    served, gold = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(i.is_gold), 0) FROM assignments a "
        "JOIN items i ON i.id = a.item_id WHERE a.rater_id = ? AND i.project_id = ?",
        [rater_id, project_id],
    ).fetchone()
    # Serve gold on every 1/rate-th item: the (served+1)-th item is gold when
    # the quota grows past the golds already served.
    return int((served + 1) * rate) > gold


def get_assignment(db: Database, assignment_id: int) -> dict:
    rows = list(db.query("SELECT * FROM assignments WHERE id = ?", [assignment_id]))
    if not rows:
        raise NotFound(f"assignment {assignment_id!r} does not exist")
    assignment = rows[0]
    assignment["display_order"] = _loads(assignment["display_order"])
    assignment["item"] = get_item(db, assignment["item_id"])
    return assignment


def release_assignment(db: Database, assignment_id: int, rater_id: int, *, status: str,
                       reason: str | None = None) -> None:
    """Record a skip or a flag for a claimed item; the slot is freed."""
    if status not in ("skipped", "flagged"):
        raise InvalidInput(f"status must be 'skipped' or 'flagged', got {status!r}")
    with write(db):
        cur = db.execute(
            "UPDATE assignments SET status = ?, reason = ?, updated_at = ? "
            "WHERE id = ? AND rater_id = ? AND status = 'claimed'",
            [status, reason, now_iso(), assignment_id, rater_id],
        )
        if cur.rowcount == 0:
            row = db.execute("SELECT status FROM assignments WHERE id = ? AND rater_id = ?",
                             [assignment_id, rater_id]).fetchone()
            if row is None:
                raise NotFound(f"assignment {assignment_id!r} does not belong to this rater")


def rater_progress(db: Database, project_id: int, rater_id: int, *,
                   open_all: int | None = None) -> dict:
    """Return this rater's done / skipped counts and the items still open to them.

    ``open_all`` may pass in a recent :func:`open_item_count`, the one part
    whose cost grows with the project (the rate page caches it briefly).
    """
    settings = get_project(db, project_id)["settings"]
    done = db.execute(
        "SELECT COUNT(DISTINCT j.item_id) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE j.rater_id = ? AND i.project_id = ?", [rater_id, project_id]).fetchone()[0]
    skipped = db.execute(
        "SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE a.rater_id = ? AND i.project_id = ? AND a.status IN ('skipped', 'flagged')",
        [rater_id, project_id]).fetchone()[0]
    # Open items minus those this rater already finished: the first count reads
    # only the items_queue index, the second only this rater's own rows, instead
    # of probing two indexes for every item of the project.
    if open_all is None:
        open_all = open_item_count(db, project_id, settings["raters_per_item"])
    finished = db.execute(
        "SELECT COUNT(*) FROM items i WHERE i.id IN ("
        "  SELECT x.item_id FROM assignments x WHERE x.rater_id = :r AND x.status != 'claimed' "
        "  UNION SELECT j.item_id FROM judgments j WHERE j.rater_id = :r) "
        "AND i.project_id = :p AND i.queue_rank < 2 AND i.n_human < :cap",
        {"r": rater_id, "p": project_id, "cap": settings["raters_per_item"]}).fetchone()[0]
    open_items = max(open_all - finished, 0)
    return {"done": done, "skipped": skipped, "available": done + open_items,
            "remaining": open_items}


# --------------------------------------------------------------------------
# Judgments


def normalize_judgment(n_responses: int, *, outcome: str | None = None,
                       choice: int | str | None = None, ranking: list[int] | None = None,
                       strength: int | None = None, where: str = "judgment") -> dict:
    """Check a judgment's label against its item and return the stored fields.

    ``choice`` is a response index, ``"tie"`` or ``"both_bad"``; ``ranking``
    lists response indices best first. Raises InvalidInput naming the field.
    """
    if isinstance(choice, str) and choice in ("tie", "both_bad"):
        outcome, choice = choice, None
    if outcome is None:
        outcome = "choice"
    if outcome not in OUTCOMES:
        raise InvalidInput(f'{where}: "outcome" must be one of {", ".join(OUTCOMES)}, '
                           f"got {outcome!r}")
    if ranking is not None:
        if (not isinstance(ranking, list) or any(
                not isinstance(r, int) or isinstance(r, bool) for r in ranking)
                or sorted(ranking) != list(range(n_responses))):
            raise InvalidInput(f'{where}: "ranking" must be a permutation of 0..{n_responses - 1}'
                               f", got {ranking!r}")
        if outcome != "choice":
            raise InvalidInput(f'{where}: "ranking" cannot go with a {outcome} outcome')
        if choice is not None and choice != ranking[0]:
            raise InvalidInput(f'{where}: "choice" {choice!r} disagrees with the ranking\'s '
                               f"first entry {ranking[0]}")
        choice = ranking[0]
    if outcome == "choice":
        if not isinstance(choice, int) or isinstance(choice, bool) or not (
                0 <= choice < n_responses):
            raise InvalidInput(f'{where}: "choice" must be a response index 0..{n_responses - 1}'
                               f', "tie" or "both_bad", got {choice!r}')
    elif choice is not None:
        raise InvalidInput(f'{where}: "choice" must be empty for a {outcome} outcome')
    if strength is not None:
        if not isinstance(strength, int) or isinstance(strength, bool) or not 0 <= strength <= 3:
            raise InvalidInput(f'{where}: "strength" must be an integer 0..3, got {strength!r}')
        if outcome == "choice" and strength == 0:
            raise InvalidInput(f'{where}: "strength" 0 means a tie, but the choice is '
                               f"response {choice}")
        if outcome != "choice" and strength != 0:
            raise InvalidInput(f'{where}: "strength" must be 0 for a {outcome}, got {strength}')
    return {"outcome": outcome, "choice": choice, "ranking": ranking, "strength": strength}


def submit_judgment(
    db: Database,
    *,
    item_id: int,
    rater_id: int,
    submission_id: str,
    outcome: str | None = None,
    choice: int | str | None = None,
    ranking: list[int] | None = None,
    strength: int | None = None,
    display_order: list[int] | None = None,
    aspects: dict | None = None,
    rationale: str | None = None,
    reason_tags: list[str] | None = None,
    edited: str | None = None,
    metadata: dict | None = None,
    time_ms: int | None = None,
    kind: str | None = None,
    assignment_id: int | None = None,
) -> tuple[int, bool]:
    """Store one judgment; return ``(judgment id, created)``.

    A second submit with the same ``(rater, submission_id)`` is a no-op that
    returns the first judgment's id with ``created=False``. If
    ``assignment_id`` is given, ``time_ms`` defaults to the time since the
    item was served, measured here on the server.
    """
    if not isinstance(submission_id, str) or not submission_id:
        raise InvalidInput(f"submission_id must be a non-empty string, got {submission_id!r}")
    with write(db):
        existing = db.execute(
            "SELECT id FROM judgments WHERE rater_id = ? AND submission_id = ?",
            [rater_id, submission_id]).fetchone()
        if existing:
            return existing[0], False
        rater = db.execute("SELECT kind, active FROM raters WHERE id = ?", [rater_id]).fetchone()
        if rater is None:
            raise NotFound(f"rater {rater_id!r} does not exist")
        n_responses = db.execute("SELECT COUNT(*) FROM responses WHERE item_id = ?",
                                 [item_id]).fetchone()[0]
        if n_responses == 0:
            raise NotFound(f"item {item_id!r} does not exist")
        label = normalize_judgment(n_responses, outcome=outcome, choice=choice, ranking=ranking,
                                   strength=strength)
        now = dt.datetime.now(dt.UTC)
        if assignment_id is not None:
            row = db.execute("SELECT claimed_at, item_id FROM assignments "
                             "WHERE id = ? AND rater_id = ?", [assignment_id, rater_id]).fetchone()
            if row is None or row[1] != item_id:
                raise InvalidInput(f"assignment {assignment_id!r} is not this rater's claim "
                                   f"on item {item_id!r}")
            if time_ms is None:
                time_ms = max(1, int((now - parse_iso(row[0])).total_seconds() * 1000))
            if display_order is None:
                stored = db.execute("SELECT display_order FROM assignments WHERE id = ?",
                                    [assignment_id]).fetchone()[0]
                display_order = _loads(stored)
        if display_order is not None and sorted(display_order) != list(range(n_responses)):
            raise InvalidInput(f"display_order must be a permutation of 0..{n_responses - 1}, "
                               f"got {display_order!r}")
        kind = kind or rater[0]
        cur = db.execute(
            "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, "
            "ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms, "
            "submission_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [item_id, rater_id, kind, _dumps(display_order), label["outcome"], label["choice"],
             _dumps(label["ranking"]), label["strength"], _dumps(aspects or None),
             rationale or None, _dumps(reason_tags or None), edited,
             _dumps(metadata or {}), time_ms, submission_id, now_iso(now)],
        )
        if kind == "human":
            db.execute("UPDATE items SET n_human = n_human + 1 WHERE id = ?", [item_id])
            db.execute(
                "UPDATE assignments SET status = 'done', updated_at = ? "
                "WHERE item_id = ? AND rater_id = ? AND status = 'claimed'",
                [now_iso(now), item_id, rater_id])
    return cur.lastrowid, True


def insert_judgments(db: Database, rows: list[dict]) -> int:
    """Bulk-insert validated judgments (import path); return how many were new.

    Each row carries the columns of ``judgments`` with Python values. Runs in
    the caller's transaction when there is one.
    """
    created = now_iso()
    inserted = 0
    human_counts: dict[int, int] = {}
    with write(db):
        for row in rows:
            cur = db.execute(
                "INSERT OR IGNORE INTO judgments (item_id, rater_id, kind, display_order, "
                "outcome, choice, ranking, strength, aspects, rationale, reason_tags, edited, "
                "metadata, time_ms, submission_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [row["item_id"], row["rater_id"], row["kind"], _dumps(row.get("display_order")),
                 row["outcome"], row.get("choice"), _dumps(row.get("ranking")),
                 row.get("strength"), _dumps(row.get("aspects") or None),
                 row.get("rationale") or None, _dumps(row.get("reason_tags") or None),
                 row.get("edited"), _dumps(row.get("metadata") or {}), row.get("time_ms"),
                 row["submission_id"], row.get("created_at") or created],
            )
            if cur.rowcount:
                inserted += 1
                if row["kind"] == "human":
                    human_counts[row["item_id"]] = human_counts.get(row["item_id"], 0) + 1
        db.conn.executemany("UPDATE items SET n_human = n_human + ? WHERE id = ?",
                            [(n, item_id) for item_id, n in human_counts.items()])
    return inserted


def _judgment_row(row: dict) -> dict:
    row = dict(row)
    for key in ("display_order", "ranking", "aspects", "reason_tags"):
        row[key] = _loads(row[key])
    row["metadata"] = _loads(row["metadata"], {})
    return row


def list_judgments(db: Database, *, item_id: int | None = None, rater_id: int | None = None,
                   project_id: int | None = None) -> list[dict]:
    """Return judgments filtered by item, rater and/or project, oldest first."""
    rows = db.query(
        "SELECT j.* FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE (:item IS NULL OR j.item_id = :item) AND (:rater IS NULL OR j.rater_id = :rater) "
        "AND (:project IS NULL OR i.project_id = :project) ORDER BY j.id",
        {"item": item_id, "rater": rater_id, "project": project_id},
    )
    return [_judgment_row(r) for r in rows]


def _check_kind(kind: str) -> str:
    if kind not in ("all", "human", "llm"):
        raise InvalidInput(f'kind must be "human", "llm" or "all", got {kind!r}')
    return kind


def iter_judgment_rows(db: Database, project_id: int, *, kind: str = "all",
                       batch: int = 2000) -> Iterator[dict]:
    """Stream a project's judgments with rater names, item ids and responses' meta.

    Rows are joined with the item's external id, prompt, messages and gold.
    Memory stays constant: rows are read in id-ordered batches.
    """
    _check_kind(kind)
    last = 0
    while True:
        rows = _parsed_judgment_rows(db.conn.execute(
            # CROSS JOIN keeps judgments the outer loop, walked in id order from
            # :last; a plain JOIN let the planner scan all of the project's items
            # and sort on every batch, which made a full read quadratic.
            "SELECT j.*, r.name AS rater, i.external_id, i.prompt, i.messages, i.gold, "
            "i.category FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
            "JOIN raters r ON r.id = j.rater_id "
            "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) AND j.id > :last "
            "ORDER BY j.id LIMIT :n",
            {"p": project_id, "kind": kind, "last": last, "n": batch}))
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def responses_for_items(db: Database, item_ids: list[int]) -> dict[int, list[dict]]:
    """Return ``{item_id: [response, ...]}`` for a batch of items."""
    out: dict[int, list[dict]] = {i: [] for i in item_ids}
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start:start + 500]
        for row in db.query(
            "SELECT id, item_id, idx, text, system FROM responses "
            "WHERE item_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY item_id, idx", [json.dumps(chunk)]):
            out[row["item_id"]].append(row)
    return out


# Two fixed column sets: the models need eight columns, and reading all nineteen
# of a million judgments takes three times as long.
_JUDGMENT_FRAME_SQL = {
    "all": (
        "SELECT j.id, j.item_id, i.external_id, j.rater_id, r.name AS rater, j.kind, j.outcome, "
        "j.choice, j.ranking, j.strength, j.display_order, j.aspects, j.rationale, "
        "j.reason_tags, j.edited, j.metadata, j.time_ms, j.submission_id, j.created_at "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) ORDER BY j.id"),
    "model": (
        "SELECT j.id, j.item_id, r.name AS rater, j.kind, j.outcome, j.choice, j.ranking, "
        "j.strength FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) ORDER BY j.id"),
}


def _parse_json_column(values, default=None) -> list:
    """Parse a JSON text column; equal short texts (e.g. "[0, 1]") are parsed once.

    Those parsed values are shared between rows: treat the frame as read-only.
    """
    cache: dict[str, Any] = {}
    out = []
    for v in values:
        # An all-NULL column comes back as float NaN, hence the isinstance check.
        if not isinstance(v, str):
            out.append(default() if callable(default) else default)
        elif len(v) <= 32:
            if v not in cache:
                cache[v] = json.loads(v)
            out.append(cache[v])
        else:
            out.append(json.loads(v))
    return out


def judgments_frame(db: Database, project_id: int, *, kind: str = "all",
                    columns: str = "all") -> pd.DataFrame:
    """Return a project's judgments as a DataFrame for the models and metrics.

    ``columns="all"``: id, item_id, external_id, rater_id, rater, kind,
    outcome, choice, ranking, strength, display_order, aspects, rationale,
    reason_tags, edited, metadata, time_ms, submission_id, created_at.
    ``columns="model"``: id, item_id, rater, kind, outcome, choice, ranking,
    strength, which is all the model adapter reads. JSON columns are parsed;
    treat the frame as read-only (equal short JSON values share one object).
    """
    _check_kind(kind)
    if columns not in _JUDGMENT_FRAME_SQL:
        raise InvalidInput(f'columns must be "all" or "model", got {columns!r}')
    frame = pd.read_sql_query(_JUDGMENT_FRAME_SQL[columns], db.conn,
                              params={"p": project_id, "kind": kind})
    for col in ("ranking", "display_order", "aspects", "reason_tags"):
        if col in frame:
            frame[col] = _parse_json_column(frame[col])
    if "metadata" in frame:
        frame["metadata"] = _parse_json_column(frame["metadata"], dict)
    for col in ("choice", "strength", "time_ms"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


def responses_frame(db: Database, project_id: int, *, with_text: bool = True) -> pd.DataFrame:
    """Return a project's responses: item_id, idx, response_id, system, length (and text)."""
    return pd.read_sql_query(
        "SELECT r.item_id, r.idx, r.id AS response_id, r.system, LENGTH(r.text) AS length, "
        "CASE WHEN :text THEN r.text END AS text "
        "FROM responses r JOIN items i ON i.id = r.item_id WHERE i.project_id = :p "
        "ORDER BY r.item_id, r.idx",
        db.conn, params={"p": project_id, "text": int(with_text)},
    )


def items_frame(db: Database, project_id: int) -> pd.DataFrame:
    """Return a project's items: item_id, external_id, category, gold_choice, n_responses, ..."""
    frame = pd.read_sql_query(
        "SELECT i.id AS item_id, i.external_id, i.category, i.gold, i.is_gold, i.queue_rank, "
        "i.n_human, LENGTH(COALESCE(i.prompt, i.messages)) AS prompt_length, i.metadata, "
        "(SELECT COUNT(*) FROM responses r WHERE r.item_id = i.id) AS n_responses "
        "FROM items i WHERE i.project_id = ? ORDER BY i.id",
        db.conn, params=[project_id],
    )
    gold = [json.loads(g) if isinstance(g, str) else None for g in frame["gold"]]
    frame["gold_choice"] = pd.array(
        [g.get("choice") if g and isinstance(g.get("choice"), int) else None for g in gold],
        dtype="Int64")
    frame["metadata"] = [json.loads(m) if isinstance(m, str) else {} for m in frame["metadata"]]
    return frame.drop(columns=["gold"])


# --------------------------------------------------------------------------
# Stats


def project_stats(db: Database, project_id: int) -> dict:
    """Return counts of items, responses, judgments and raters by kind."""
    items = db.execute("SELECT COUNT(*) FROM items WHERE project_id = ?",
                       [project_id]).fetchone()[0]
    responses = db.execute(
        "SELECT COUNT(*) FROM responses r JOIN items i ON i.id = r.item_id "
        "WHERE i.project_id = ?", [project_id]).fetchone()[0]
    judgments = {"human": 0, "llm": 0}
    raters = {"human": 0, "llm": 0}
    for kind, n, n_raters in db.execute(
        "SELECT j.kind, COUNT(*), COUNT(DISTINCT j.rater_id) FROM judgments j "
        "JOIN items i ON i.id = j.item_id WHERE i.project_id = ? GROUP BY j.kind",
        [project_id]):
        judgments[kind] = n
        raters[kind] = n_raters
    coverage = dict(db.execute(
        "SELECT n_human, COUNT(*) FROM items WHERE project_id = ? GROUP BY n_human",
        [project_id]).fetchall())
    flags = db.execute(
        "SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE i.project_id = ? AND a.status = 'flagged'", [project_id]).fetchone()[0]
    return {"items": items, "responses": responses, "judgments": judgments, "raters": raters,
            "items_by_human_judgments": {str(k): v for k, v in sorted(coverage.items())},
            "flags": flags}


def project_rater_summary(db: Database, project_id: int) -> list[dict]:
    """Per-rater counts for the admin page: judgments, skips, flags, last activity."""
    return list(db.query(
        "SELECT r.id, r.name, r.kind, r.active, "
        "(SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        " WHERE j.rater_id = r.id AND i.project_id = :p) AS judgments, "
        "(SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        " WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'skipped') AS skipped, "
        "(SELECT COUNT(*) FROM assignments a JOIN items i ON i.id = a.item_id "
        " WHERE a.rater_id = r.id AND i.project_id = :p AND a.status = 'flagged') AS flagged, "
        "(SELECT MAX(j.created_at) FROM judgments j JOIN items i ON i.id = j.item_id "
        " WHERE j.rater_id = r.id AND i.project_id = :p) AS last_judgment_at "
        "FROM raters r ORDER BY r.kind, r.name",
        {"p": project_id}))


def count_judgments(db: Database, project_id: int | None = None) -> int:
    if project_id is None:
        return db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ?", [project_id]).fetchone()[0]


# --------------------------------------------------------------------------
# Fits


def save_fit(db: Database, project_id: int, *, model: str, level: str, kind: str,
             params: dict, result: dict, n_judgments: int, seconds: float) -> int:
    with write(db):
        cur = db.execute(
            "INSERT INTO fits (project_id, model, level, kind, params, result, n_judgments, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [project_id, model, level, kind, _dumps(params), json.dumps(result), n_judgments,
             seconds, now_iso()])
    return cur.lastrowid


def latest_fit(db: Database, project_id: int, *, model: str, level: str = "system",
               kind: str = "all") -> dict | None:
    rows = list(db.query(
        "SELECT * FROM fits WHERE project_id = ? AND model = ? AND level = ? AND kind = ? "
        "ORDER BY id DESC LIMIT 1", [project_id, model, level, kind]))
    if not rows:
        return None
    row = rows[0]
    row["params"] = _loads(row["params"], {})
    row["result"] = _loads(row["result"], {})
    return row


def save_report(db: Database, project_id: int, *, name: str, kind: str, result: dict,
                n_judgments: int, seconds: float) -> int:
    """Store a derived report (e.g. ``name="agreement"``) for the dashboards."""
    with write(db):
        cur = db.execute(
            "INSERT INTO reports (project_id, name, kind, result, n_judgments, seconds, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [project_id, name, kind, json.dumps(result), n_judgments, seconds, now_iso()])
    return cur.lastrowid


def latest_report(db: Database, project_id: int, *, name: str, kind: str) -> dict | None:
    rows = list(db.query(
        "SELECT * FROM reports WHERE project_id = ? AND name = ? AND kind = ? "
        "ORDER BY id DESC LIMIT 1", [project_id, name, kind]))
    if not rows:
        return None
    row = rows[0]
    row["result"] = _loads(row["result"], {})
    return row


# --------------------------------------------------------------------------
# Routing decisions


def save_routing(db: Database, project_id: int, decisions: list[dict]) -> None:
    """Replace the project's routing decisions and the items' queue ranks.

    Each decision: ``{"item_id", "decision", "predicted_agreement", "priority",
    "features"}``.
    """
    rank = {"human": 0, "both": 0, "llm": 2}
    created = now_iso()
    with write(db):
        db.execute("DELETE FROM routing WHERE project_id = ?", [project_id])
        for d in decisions:
            if d["decision"] not in ROUTES:
                raise InvalidInput(f"routing decision must be one of {', '.join(ROUTES)}, "
                                   f"got {d['decision']!r}")
        db.conn.executemany(
            "INSERT INTO routing (project_id, item_id, decision, predicted_agreement, priority, "
            "features, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(project_id, d["item_id"], d["decision"], d.get("predicted_agreement"),
              d.get("priority"), _dumps(d.get("features") or {}), created) for d in decisions])
        db.execute("UPDATE items SET queue_rank = 1, priority = 0 WHERE project_id = ?",
                   [project_id])
        db.conn.executemany(
            "UPDATE items SET queue_rank = ?, priority = ? WHERE id = ? AND project_id = ?",
            [(rank[d["decision"]], d.get("priority") or 0.0, d["item_id"], project_id)
             for d in decisions])


def routing_frame(db: Database, project_id: int) -> pd.DataFrame:
    frame = pd.read_sql_query(
        "SELECT item_id, decision, predicted_agreement, priority, features, created_at "
        "FROM routing WHERE project_id = ? ORDER BY item_id", db.conn, params=[project_id])
    frame["features"] = [json.loads(f) if isinstance(f, str) else {} for f in frame["features"]]
    return frame


# --------------------------------------------------------------------------
# Jobs and workers


def enqueue_job(db: Database, job_type: str, *, project_id: int | None = None,
                payload: dict | None = None, unique: bool = True) -> int | None:
    """Queue a job; with ``unique`` an identical queued job makes this a no-op."""
    with write(db):
        if unique:
            row = db.execute(
                "SELECT id FROM jobs WHERE type = ? AND project_id IS ? AND status = 'queued'",
                [job_type, project_id]).fetchone()
            if row:
                return None
        cur = db.execute(
            "INSERT INTO jobs (project_id, type, payload, status, created_at) "
            "VALUES (?, ?, ?, 'queued', ?)",
            [project_id, job_type, _dumps(payload or {}), now_iso()])
    return cur.lastrowid


def claim_job(db: Database, worker_id: str, *, lease_s: float = 60,
              now: dt.datetime | None = None) -> dict | None:
    """Lease the oldest queued job, or a running one whose lease expired."""
    now = now or dt.datetime.now(dt.UTC)
    now_s = now_iso(now)
    with write(db):
        row = db.execute(
            "SELECT id FROM jobs WHERE status = 'queued' "
            "OR (status = 'running' AND lease_expires_at < ?) ORDER BY id LIMIT 1",
            [now_s]).fetchone()
        if row is None:
            return None
        db.execute(
            "UPDATE jobs SET status = 'running', lease_owner = ?, lease_expires_at = ?, "
            "attempts = attempts + 1, started_at = ? WHERE id = ?",
            [worker_id, now_iso(now + dt.timedelta(seconds=lease_s)), now_s, row[0]])
    return get_job(db, row[0])


def get_job(db: Database, job_id: int) -> dict:
    rows = list(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise NotFound(f"job {job_id!r} does not exist")
    job = rows[0]
    job["payload"] = _loads(job["payload"], {})
    job["result"] = _loads(job["result"])
    return job


def heartbeat_job(db: Database, job_id: int, worker_id: str, *, lease_s: float = 60,
                  progress: str | None = None) -> bool:
    """Extend a job's lease; False if another worker has taken it over."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET lease_expires_at = ?, progress = COALESCE(?, progress) "
            "WHERE id = ? AND lease_owner = ? AND status = 'running'",
            [now_iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lease_s)), progress,
             job_id, worker_id])
    return cur.rowcount == 1


def finish_job(db: Database, job_id: int, worker_id: str, *, result: dict | None = None,
               error: str | None = None) -> bool:
    """Mark a job done or failed; False if this worker no longer holds the lease."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, "
            "lease_expires_at = NULL WHERE id = ? AND lease_owner = ? AND status = 'running'",
            ["failed" if error else "done", _dumps(result), error, now_iso(), job_id, worker_id])
    return cur.rowcount == 1


def recent_jobs(db: Database, limit: int = 20) -> list[dict]:
    return list(db.query(
        "SELECT id, project_id, type, status, lease_owner, attempts, progress, error, "
        "created_at, started_at, finished_at FROM jobs ORDER BY id DESC LIMIT ?", [limit]))


def register_worker(db: Database, worker_id: str, pid: int, host: str) -> None:
    now = now_iso()
    with write(db):
        db.execute(
            "INSERT INTO workers (id, pid, host, started_at, heartbeat_at, status) "
            "VALUES (?, ?, ?, ?, ?, 'running') ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, status = 'running'",
            [worker_id, pid, host, now, now])


def worker_heartbeat(db: Database, worker_id: str, status: str = "running") -> None:
    with write(db):
        db.execute("UPDATE workers SET heartbeat_at = ?, status = ? WHERE id = ?",
                   [now_iso(), status, worker_id])


def live_workers(db: Database, *, within_s: float = 30) -> list[dict]:
    cutoff = now_iso(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=within_s))
    return list(db.query(
        "SELECT * FROM workers WHERE status = 'running' AND heartbeat_at > ? ORDER BY id",
        [cutoff]))


def judgments_since(db: Database, project_id: int, since_iso: str | None) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND (? IS NULL OR j.created_at > ?)",
        [project_id, since_iso, since_iso]).fetchone()[0]


# --------------------------------------------------------------------------
# Rating UI support (prefstore.assignment, the rate page and its benchmark)


def gold_judgments(db: Database, project_id: int) -> list[dict]:
    """Return every judgment on the project's gold items with the rater's name and the gold.

    Rows: rater, item_id, outcome, choice, ranking, metadata, gold (parsed).
    """
    rows = db.query(
        "SELECT r.name AS rater, j.item_id, j.outcome, j.choice, j.ranking, j.metadata, i.gold "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = ? AND i.is_gold = 1 ORDER BY j.id", [project_id])
    return [{**row, "ranking": _loads(row["ranking"]), "metadata": _loads(row["metadata"], {}),
             "gold": _loads(row["gold"])} for row in rows]


def seed_synthetic(db: Database, project_id: int, *, n_items: int, n_judgments: int,
                   n_raters: int = 100, seed: int = 0, batch: int = 50_000) -> None:
    """Bulk-fill a project with synthetic pairwise items and human judgments (benchmarks).

    Judgments go to items round-robin from the first item, ``n_judgments //
    n_items`` (+1) per item, each by a different synthetic rater, with
    ``n_human`` kept in step. Everything is written with ``executemany``.
    """
    rng = random.Random(seed)
    created = now_iso()
    with write(db):
        raters = []
        for k in range(n_raters):
            cur = db.execute(
                "INSERT INTO raters (name, kind, role, active, created_at) "
                "VALUES (?, 'human', 'rater', 1, ?)", [f"synthetic-{project_id}-{k}", created])
            raters.append(cur.lastrowid)
        first = (db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]) + 1
        item_ids = list(range(first, first + n_items))
        per_item = [n_judgments // n_items + (1 if i < n_judgments % n_items else 0)
                    for i in range(n_items)]
        for start in range(0, n_items, batch):
            chunk = range(start, min(start + batch, n_items))
            db.conn.executemany(
                "INSERT INTO items (id, project_id, external_id, prompt, metadata, is_gold, "
                "queue_rank, n_human, created_at) VALUES (?, ?, ?, ?, '{}', 0, 1, ?, ?)",
                [(item_ids[i], project_id, f"s{i}", f"synthetic prompt {i}", per_item[i],
                  created) for i in chunk])
            db.conn.executemany(
                "INSERT INTO responses (item_id, idx, text, system) VALUES (?, ?, ?, ?)",
                [(item_ids[i], k, f"synthetic response {i}.{k}", f"s{k}")
                 for i in chunk for k in range(2)])
        rows = []
        for i in range(n_items):
            for n in range(per_item[i]):
                choice = rng.randrange(2)
                rows.append((item_ids[i], raters[(i + n) % n_raters], "[0, 1]", choice,
                             1 + rng.randrange(3), f"seed-{item_ids[i]}-{n}", created))
                if len(rows) >= batch:
                    _insert_synthetic_judgments(db, rows)
                    rows = []
        _insert_synthetic_judgments(db, rows)


def _insert_synthetic_judgments(db: Database, rows: list[tuple]) -> None:
    db.conn.executemany(
        "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, "
        "strength, metadata, time_ms, submission_id, created_at) "
        "VALUES (?, ?, 'human', ?, 'choice', ?, ?, '{}', 1000, ?, ?)", rows)


def open_item_count(db: Database, project_id: int, raters_per_item: int | None = None) -> int:
    """Return how many of the project's items still want a human judgment (for anyone)."""
    if raters_per_item is None:
        raters_per_item = get_project(db, project_id)["settings"]["raters_per_item"]
    return db.execute(
        "SELECT COUNT(*) FROM items WHERE project_id = ? AND queue_rank < 2 AND n_human < ?",
        [project_id, raters_per_item]).fetchone()[0]


# --------------------------------------------------------------------------
# Exports (prefstore.export): streaming reads grouped by item


def iter_judgment_rows_by_item(db: Database, project_id: int, *, kind: str = "all",
                               batch: int = 500) -> Iterator[dict]:
    """Stream a project's judgments ordered by ``(item_id, id)``.

    Rows are shaped as in :func:`iter_judgment_rows`. Items are read in
    id-ordered batches of ``batch`` and each batch's judgments in one query, so
    an item's judgments arrive together and memory stays bounded by one batch.
    Items without judgments of ``kind`` are skipped.
    """
    _check_kind(kind)
    last = 0
    while True:
        ids = [r[0] for r in db.execute(
            "SELECT id FROM items WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?",
            [project_id, last, batch])]
        if not ids:
            return
        yield from _parsed_judgment_rows(db.conn.execute(
            "SELECT j.*, r.name AS rater, i.external_id, i.prompt, i.messages, i.gold, "
            "i.category FROM judgments j JOIN items i ON i.id = j.item_id "
            "JOIN raters r ON r.id = j.rater_id "
            "WHERE j.item_id IN (SELECT value FROM json_each(:ids)) "
            "AND (:kind = 'all' OR j.kind = :kind) ORDER BY j.item_id, j.id",
            {"ids": json.dumps(ids), "kind": kind}))
        last = ids[-1]


_JOINED_JSON_COLUMNS = ("display_order", "ranking", "aspects", "reason_tags", "messages", "gold")


def _parsed_judgment_rows(cursor: sqlite3.Cursor) -> list[dict]:
    """Return a judgments-joined query's rows as dicts with the JSON columns parsed.

    The exports' hot path: plain ``zip`` and no parse of NULL or ``'{}'``.
    """
    cols = [d[0] for d in cursor.description]
    loads = json.loads
    out = []
    for values in cursor:
        row = dict(zip(cols, values))
        for key in _JOINED_JSON_COLUMNS:
            if row[key] is not None:
                row[key] = loads(row[key])
        meta = row["metadata"]
        row["metadata"] = {} if meta is None or meta == "{}" else loads(meta)
        out.append(row)
    return out


def count_judgment_rows(db: Database, project_id: int, *, kind: str = "all") -> int:
    """Return how many judgments of ``kind`` a project holds (an export's progress total)."""
    _check_kind(kind)
    return db.execute(
        "SELECT COUNT(*) FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind)",
        {"p": project_id, "kind": kind}).fetchone()[0]


# --------------------------------------------------------------------------
# Worker support


def items_missing_judgment(db: Database, project_id: int, rater_id: int, *,
                           limit: int = 32) -> list[dict]:
    """Return up to ``limit`` items (with responses) that ``rater_id`` has not judged."""
    rows = db.execute(
        "SELECT i.id FROM items i WHERE i.project_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.rater_id = ?) "
        "ORDER BY i.id LIMIT ?", [project_id, rater_id, limit]).fetchall()
    return [get_item(db, r[0]) for r in rows]


def count_items_missing_judgment(db: Database, project_id: int, rater_name: str) -> int:
    """Count the items of a project that the rater called ``rater_name`` has not judged."""
    return db.execute(
        "SELECT COUNT(*) FROM items i WHERE i.project_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM judgments j JOIN raters r ON r.id = j.rater_id "
        " WHERE j.item_id = i.id AND r.name = ?)", [project_id, rater_name]).fetchone()[0]


def has_llm_judgments(db: Database, project_id: int) -> bool:
    return db.execute(
        "SELECT 1 FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ? AND j.kind = 'llm' LIMIT 1", [project_id]).fetchone() is not None


def last_fit_time(db: Database, project_id: int) -> str | None:
    return db.execute("SELECT MAX(created_at) FROM fits WHERE project_id = ?",
                      [project_id]).fetchone()[0]


def release_job(db: Database, job_id: int, worker_id: str) -> bool:
    """Put a leased job back in the queue (a worker that stops mid-job)."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ? AND lease_owner = ? AND status = 'running'", [job_id, worker_id])
    return cur.rowcount == 1


# --------------------------------------------------------------------------
# Export fast path


def iter_pair_export_rows(db: Database, project_id: int, *, kind: str = "all",
                          batch: int = 5000) -> Iterator[tuple]:
    """Stream a pairwise project's judgments with the chosen and rejected texts joined in.

    Yields tuples ``(id, external_id, rater, kind, outcome, strength, rationale,
    reason_tags JSON, item_id, prompt, messages JSON, chosen text, chosen
    system, rejected text, rejected system)`` in judgment id order; the texts
    are NULL for ties and both-bad. One read transaction covers the whole
    stream, so the export is a consistent snapshot while raters keep writing.
    """
    _check_kind(kind)
    cur = db.conn.execute(
        "SELECT j.id, i.external_id, r.name, j.kind, j.outcome, j.strength, j.rationale, "
        "j.reason_tags, j.item_id, i.prompt, i.messages, rc.text, rc.system, rr.text, rr.system "
        "FROM judgments j CROSS JOIN items i ON i.id = j.item_id "
        "JOIN raters r ON r.id = j.rater_id "
        "LEFT JOIN responses rc ON rc.item_id = j.item_id AND rc.idx = j.choice "
        "LEFT JOIN responses rr ON rr.item_id = j.item_id AND rr.idx = 1 - j.choice "
        "WHERE i.project_id = :p AND (:kind = 'all' OR j.kind = :kind) ORDER BY j.id",
        {"p": project_id, "kind": kind})
    while rows := cur.fetchmany(batch):
        yield from rows


# --------------------------------------------------------------------------
# Dashboards (pages/dashboard*.py): cheap counts and the rows behind their reports


def dashboard_counts(db: Database, project_id: int, raters_per_item: int) -> dict:
    """Return the headline counts of a project without grouping its judgments.

    Human judgments are summed from ``items.n_human``, which every insert path
    keeps in step, because counting them by kind needs a table lookup per
    judgment (~0.3 s at 1M); LLM judgments are the rest of the total.

    Returns ``{"items", "covered_items", "coverage", "judgments": {"human", "llm",
    "total"}, "raters": {"human", "llm"}}``; ``covered_items`` have at least
    ``raters_per_item`` human judgments and ``coverage`` is their share (0 without items).
    """
    items, human, covered = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(n_human), 0), COALESCE(SUM(n_human >= ?), 0) "
        "FROM items WHERE project_id = ?", [raters_per_item, project_id]).fetchone()
    total = count_judgments(db, project_id)
    raters = {"human": 0, "llm": 0}
    for kind, n in db.execute(
        "SELECT r.kind, COUNT(*) FROM raters r WHERE EXISTS (SELECT 1 FROM judgments j "
        "JOIN items i ON i.id = j.item_id WHERE j.rater_id = r.id AND i.project_id = ?) "
        "GROUP BY r.kind", [project_id]):
        raters[kind] = n
    return {"items": items, "covered_items": covered,
            "coverage": covered / items if items else 0.0,
            "judgments": {"human": human, "llm": total - human, "total": total},
            "raters": raters}


def edited_judgments_frame(db: Database, project_id: int) -> pd.DataFrame:
    """Return the project's judgments that carry an edit: id, item_id, rater, outcome, choice, edited."""
    frame = pd.read_sql_query(
        "SELECT j.id, j.item_id, r.name AS rater, j.outcome, j.choice, j.edited "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = ? AND j.edited IS NOT NULL ORDER BY j.id",
        db.conn, params=[project_id])
    frame["choice"] = frame["choice"].astype("Int64")
    return frame


def judgments_by_id(db: Database, judgment_ids: list[int]) -> list[dict]:
    """Return judgments by id with the rater's name and the item's external id, in id order."""
    return list(db.query(
        "SELECT j.id, j.item_id, i.external_id, r.name AS rater, j.outcome, j.choice, j.edited "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE j.id IN (SELECT value FROM json_each(?)) ORDER BY j.id",
        [json.dumps([int(i) for i in judgment_ids])]))


# --------------------------------------------------------------------------
# Admin page (pages/admin.py)


def routing_counts(db: Database, project_id: int) -> dict[str, int]:
    """Return the project's routing decisions counted by route, every route listed."""
    counts = dict.fromkeys(ROUTES, 0)
    counts.update(db.execute(
        "SELECT decision, COUNT(*) FROM routing WHERE project_id = ? GROUP BY decision",
        [project_id]).fetchall())
    return counts
