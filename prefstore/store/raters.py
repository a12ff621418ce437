"""Raters (people and LLM judges) and their link tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from prefstore.errors import AccessDenied, Conflict, InvalidInput, NotFound
from prefstore.store.connection import now_iso, write
from prefstore.store.projects import log_action

RATER_KINDS = ("human", "llm")
ROLES = ("rater", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_rater(db, name: str, *, kind: str = "human", role: str = "rater",
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
        row = db.execute(
            "INSERT INTO raters (name, kind, role, token_hash, active, created_at) "
            "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (name) DO NOTHING RETURNING id",
            [name, kind, role, hash_token(token) if token else None, now_iso()]).fetchone()
        if row is None:
            raise Conflict(f"rater {name!r} already exists")
        log_action(db, None, actor, "create_rater", {"name": name, "kind": kind, "role": role})
    return get_rater(db, row[0]), token


def get_rater(db, rater: int | str) -> dict:
    if isinstance(rater, int):
        rows = list(db.query("SELECT * FROM raters WHERE id = ?", [rater]))
    else:
        rows = list(db.query("SELECT * FROM raters WHERE name = ?", [rater]))
    if not rows:
        raise NotFound(f"rater {rater!r} does not exist")
    return rows[0]


def get_or_create_rater(db, name: str, kind: str = "human") -> dict:
    """Return the rater called ``name``, creating it (without a token) if absent."""
    rows = list(db.query("SELECT * FROM raters WHERE name = ?", [name]))
    if not rows:
        with write(db):
            db.execute(
                "INSERT INTO raters (name, kind, role, active, created_at) "
                "VALUES (?, ?, 'rater', 1, ?) ON CONFLICT (name) DO NOTHING",
                [name, kind, now_iso()])
        rows = list(db.query("SELECT * FROM raters WHERE name = ?", [name]))
    if rows[0]["kind"] != kind:
        raise InvalidInput(f"rater {name!r} exists with kind {rows[0]['kind']!r}, not {kind!r}")
    return rows[0]


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
            db.execute("DELETE FROM assignments WHERE rater_id = ? AND status = 'claimed'",
                       [rater_id])
        log_action(db, None, actor, "set_rater_active", {"rater_id": rater_id, "active": active})
