"""Raters (people and LLM judges) and their link tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from prefstore.errors import AccessDenied, Conflict, InvalidInput, NotFound
from prefstore.store.connection import now_iso, write
from prefstore.store.projects import bump_queue_epoch, log_action, recount_served

RATER_KINDS = ("human", "llm")
ROLES = ("rater", "admin")
MAX_NAME_CHARS = 100
#: The rater the admin token rates as; no other rater may take this name.
ADMIN_NAME = "admin"
# Scripts whose letters look alike: a name mixing them ("alicе" with a Cyrillic е)
# impersonates another, so it is refused.
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def normalize_name(name: object, what: str = "rater name") -> str:
    """Return a rater name as stored: NFC, without control or invisible characters,
    inner whitespace collapsed.

    Raises InvalidInput for a name that is empty after that, longer than
    100 characters, or that mixes Latin, Cyrillic and Greek letters.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"{what} must be text, got {type(name).__name__}")
    # Cc: controls; Cf: zero-width and direction overrides; Cs: lone surrogates;
    # Co/Cn: private use and unassigned code points.
    text = "".join(" " if ch.isspace() else ch for ch in unicodedata.normalize("NFC", name)
                   if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co",
                                                                        "Cn"))
    text = " ".join(text.split())
    if not text:
        raise InvalidInput(f"{what} must not be empty, got {name!r}")
    if len(text) > MAX_NAME_CHARS:
        raise InvalidInput(f"{what} must be at most {MAX_NAME_CHARS} characters, got "
                           f"{len(text)}")
    scripts = {unicodedata.name(ch, "").split(" ")[0] for ch in text if ch.isalpha()}
    mixed = sorted(scripts & set(_CONFUSABLE_SCRIPTS))
    if len(mixed) > 1:
        raise InvalidInput(f"{what} {text!r} mixes {' and '.join(m.title() for m in mixed)} "
                           "letters, which look alike; use one alphabet")
    return text


def name_key(name: str, *, check: bool = True) -> str:
    """Return the key two names clash on: the normalized name, case-folded."""
    return (normalize_name(name) if check else name).casefold()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_rater(db, name: str, *, kind: str = "human", role: str = "rater",
                 with_token: bool = True, actor: str = "system") -> tuple[dict, str | None]:
    """Create a rater; return it and its raw token (shown once, stored hashed)."""
    name = normalize_name(name)
    if name_key(name) == ADMIN_NAME:
        raise Conflict(f"rater name {name!r} is reserved for the admin; choose another")
    if kind not in RATER_KINDS:
        raise InvalidInput(f"rater kind must be one of {', '.join(RATER_KINDS)}, got {kind!r}")
    if role not in ROLES:
        raise InvalidInput(f"rater role must be one of {', '.join(ROLES)}, got {role!r}")
    token = secrets.token_urlsafe(32) if with_token else None
    with write(db):
        row = db.execute(
            "INSERT INTO raters (name, name_key, kind, role, token_hash, active, created_at) "
            "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING RETURNING id",
            [name, name_key(name), kind, role, hash_token(token) if token else None,
             now_iso()]).fetchone()
        if row is None:
            other = _by_key(db, name)
            raise Conflict(f"rater {name!r} already exists" + (
                f" (as {other['name']!r})" if other and other["name"] != name else ""))
        log_action(db, None, actor, "create_rater", {"name": name, "kind": kind, "role": role})
    return get_rater(db, row[0]), token


def _by_key(db, name: str) -> dict | None:
    rows = list(db.query("SELECT * FROM raters WHERE name_key = ?", [name_key(name)]))
    return rows[0] if rows else None


def get_rater(db, rater: int | str) -> dict:
    """Return a rater by id, or by name (case-insensitively, as names clash). Raises NotFound."""
    if isinstance(rater, int):
        rows = list(db.query("SELECT * FROM raters WHERE id = ?", [rater]))
        found = rows[0] if rows else None
    else:
        try:
            found = _by_key(db, rater)
        except InvalidInput:
            found = None
    if found is None:
        raise NotFound(f"rater {rater!r} does not exist")
    return found


def get_or_create_rater(db, name: str, kind: str = "human") -> dict:
    """Return the rater called ``name``, creating it (without a token) if absent.

    Human and LLM raters share one namespace: a name held by the other kind, or
    the admin's name for an LLM judge, is refused with InvalidInput.
    """
    name = normalize_name(name)
    if kind not in RATER_KINDS:
        raise InvalidInput(f"rater kind must be one of {', '.join(RATER_KINDS)}, got {kind!r}")
    if kind == "llm" and name_key(name) == ADMIN_NAME:
        raise InvalidInput(f"rater name {name!r} is reserved for the admin; give the LLM judge "
                           "another name")
    found = _by_key(db, name)
    if found is None:
        with write(db):
            db.execute(
                "INSERT INTO raters (name, name_key, kind, role, active, created_at) "
                "VALUES (?, ?, ?, 'rater', 1, ?) ON CONFLICT DO NOTHING",
                [name, name_key(name), kind, now_iso()])
        found = _by_key(db, name)
    if found["kind"] != kind:
        what = "an LLM judge" if found["kind"] == "llm" else "a human rater"
        wanted = "an LLM judge" if kind == "llm" else "a human rater"
        raise InvalidInput(f"rater {found['name']!r} is {what}; {wanted} needs another name")
    return found


def admin_rater(db) -> dict:
    """Return the rater the admin token rates as (created on first use; no token of its own)."""
    found = _by_key(db, ADMIN_NAME)
    if found is None:
        with write(db):
            db.execute(
                "INSERT INTO raters (name, name_key, kind, role, active, created_at) "
                "VALUES (?, ?, 'human', 'rater', 1, ?) ON CONFLICT DO NOTHING",
                [ADMIN_NAME, ADMIN_NAME, now_iso()])
        found = _by_key(db, ADMIN_NAME)
    return found


def list_raters(db, kind: str | None = None) -> list[dict]:
    return list(db.query(
        "SELECT id, name, kind, role, active, created_at, "
        "CASE WHEN token_hash IS NULL THEN 0 ELSE 1 END AS has_token "
        "FROM raters WHERE (? IS NULL OR kind = ?) ORDER BY id",
        [kind, kind],
    ))


def rater_for_token(db, token: str | None) -> dict:
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


def rotate_token(db, rater_id: int, *, actor: str = "system") -> str:
    """Give the rater a new token; the old link stops working."""
    token = secrets.token_urlsafe(32)
    with write(db):
        cur = db.execute("UPDATE raters SET token_hash = ? WHERE id = ?",
                         [hash_token(token), rater_id])
        if cur.rowcount == 0:
            raise NotFound(f"rater {rater_id!r} does not exist")
        log_action(db, None, actor, "rotate_token", {"rater_id": rater_id})
    return token


def set_rater_active(db, rater_id: int, active: bool, *, actor: str = "system") -> None:
    """Activate or deactivate a rater; a deactivated rater gets no new items."""
    with write(db):
        cur = db.execute("UPDATE raters SET active = ? WHERE id = ?", [int(active), rater_id])
        if cur.rowcount == 0:
            raise NotFound(f"rater {rater_id!r} does not exist")
        if not active:
            # Their open claims would otherwise hold slots until they expire.
            freed = db.execute(
                "SELECT DISTINCT i.project_id FROM assignments a JOIN items i ON i.id = a.item_id "
                "WHERE a.rater_id = ? AND a.status = 'claimed'", [rater_id]).fetchall()
            db.execute("DELETE FROM assignments WHERE rater_id = ? AND status = 'claimed'",
                       [rater_id])
            for (project_id,) in freed:
                bump_queue_epoch(db, project_id)
                recount_served(db, project_id, rater_id=rater_id)
        log_action(db, None, actor, "set_rater_active", {"rater_id": rater_id, "active": active})


# --------------------------------------------------------------------------
# Which projects a rater may rate


def assign_rater(db, rater_id: int, project_id: int, *, actor: str = "system") -> bool:
    """Let the rater rate in the project; return False if they already could."""
    with write(db):
        added = db.execute(
            "INSERT INTO rater_projects (rater_id, project_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING rater_id",
            [rater_id, project_id, now_iso()]).fetchone() is not None
        if added:
            log_action(db, project_id, actor, "assign_rater", {"rater_id": rater_id})
    return added


def unassign_rater(db, rater_id: int, project_id: int, *, actor: str = "system") -> bool:
    """Take the project away from the rater (their judgments stay); False if not assigned."""
    with write(db):
        removed = db.execute("DELETE FROM rater_projects WHERE rater_id = ? AND project_id = ?",
                             [rater_id, project_id]).rowcount > 0
        if removed:
            # An open claim would otherwise hold a slot until it expires.
            db.execute("DELETE FROM assignments WHERE rater_id = ? AND status = 'claimed' AND "
                       "item_id IN (SELECT id FROM items WHERE project_id = ?)",
                       [rater_id, project_id])
            bump_queue_epoch(db, project_id)
            recount_served(db, project_id, rater_id=rater_id)
            log_action(db, project_id, actor, "unassign_rater", {"rater_id": rater_id})
    return removed


def rater_project_ids(db, rater_id: int) -> list[int]:
    """Return the ids of the projects the rater is assigned to, in id order."""
    return [r[0] for r in db.execute(
        "SELECT project_id FROM rater_projects WHERE rater_id = ? ORDER BY project_id",
        [rater_id])]


def project_rater_ids(db, project_id: int) -> list[int]:
    return [r[0] for r in db.execute(
        "SELECT rater_id FROM rater_projects WHERE project_id = ? ORDER BY rater_id",
        [project_id])]


def rater_judgments_frame(db, project_id: int):
    """Return a project's effective human judgments for the quality table, in id order.

    Columns: rater, item_id, outcome, choice, display_order (parsed), time_ms,
    created_at, gold (the item's parsed gold, None on other items). Equal JSON
    values share one parsed object: treat the frame as read-only.
    """
    import json

    frame = db.frame(
        "SELECT r.name AS rater, j.item_id, j.outcome, j.choice, j.display_order, j.time_ms, "
        "j.created_at, CASE WHEN i.is_gold = 1 THEN i.gold END AS gold "
        "FROM judgments j JOIN items i ON i.id = j.item_id JOIN raters r ON r.id = j.rater_id "
        "WHERE i.project_id = ? AND j.kind = 'human' "
        "AND NOT EXISTS (SELECT 1 FROM judgments sj WHERE sj.supersedes = j.id) "
        "AND i.excluded_at IS NULL ORDER BY j.id", [project_id])
    parsed: dict[str, object] = {}  # few distinct values ("[0, 1]", "[1, 0]"): parse each once
    for col in ("display_order", "gold"):
        frame[col] = [(parsed[v] if v in parsed else parsed.setdefault(v, json.loads(v)))
                      if isinstance(v, str) else None for v in frame[col]]
    for col in ("choice", "time_ms"):
        frame[col] = frame[col].astype("Int64")
    return frame
