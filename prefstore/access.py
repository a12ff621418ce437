"""Who is asking: resolve a link token (or local mode) to an identity and a role.

Pure library code: the pages pass in the token from the URL, the configured
admin token and, in local mode, the name the person typed. Nothing here
imports streamlit.

Three ways in:

- a rater's personal link ``?token=...``: the token is random, stored only as
  its SHA-256 and compared with :func:`hmac.compare_digest`
  (:func:`prefstore.store.rater_for_token`); raters whose ``role`` is
  ``"admin"`` are admins;
- the admin token from ``PREFSTORE_ADMIN_TOKEN`` or the ``admin_token``
  secret; an admin who rates is stored as the rater called ``"admin"``;
- local mode, when no admin token is configured at all: the person on this
  machine may open every page and rates under the name they type.

A wrong token and a missing one raise the same :class:`AccessDenied`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prefstore import store
from prefstore.errors import AccessDenied, InvalidInput

ADMIN_TOKEN_ENV = "PREFSTORE_ADMIN_TOKEN"
ADMIN_TOKEN_SECRET = "admin_token"

# The message rater_for_token uses, so every refusal reads the same.
DENIED_MESSAGE = "this link is not valid; ask your project admin for a new one"

MODES = ("token", "admin_token", "local")


@dataclass(frozen=True)
class Identity:
    """The person behind this session.

    ``rater`` is the raters row they rate as, or None in local mode before
    they have typed a name. ``mode`` says how they got in: "token" (a rater's
    link), "admin_token" or "local".
    """

    role: str
    mode: str
    rater: dict | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def name(self) -> str | None:
        return self.rater["name"] if self.rater else None


def configured_admin_token(env: Mapping[str, str],
                           secrets: Mapping[str, Any] | None = None) -> str | None:
    """Return the admin token from the environment, else from the secrets, else None.

    An empty or blank value counts as not configured.
    """
    for source in (env, secrets or {}):
        value = source.get(ADMIN_TOKEN_ENV if source is env else ADMIN_TOKEN_SECRET)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _same_secret(given: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def resolve(db, token: str | None, *, admin_token: str | None) -> Identity:
    """Return the identity for a URL token.

    Parameters
    ----------
    token:
        The ``?token=`` value, or None when the URL has none.
    admin_token:
        The configured admin token, or None for local mode.

    Raises
    ------
    AccessDenied
        For a wrong, deactivated or (outside local mode) missing token, with
        one message for all of them.
    """
    if token:
        if admin_token and _same_secret(token, admin_token):
            return Identity(role="admin", mode="admin_token", rater=store.admin_rater(db))
        rater = store.rater_for_token(db, token)
        return Identity(role=rater["role"], mode="token", rater=rater)
    if admin_token:
        raise AccessDenied(DENIED_MESSAGE)
    return Identity(role="admin", mode="local")


def local_rater(db, identity: Identity, name: str) -> Identity:
    """Attach the rater called ``name`` to a local-mode identity, creating it if new.

    Raises InvalidInput for a blank or over-long name, or for the name of a
    rater who has a personal link (local mode must not rate as them).
    """
    if identity.mode != "local":
        raise AccessDenied("choosing a name is only possible in local mode")
    clean = store.normalize_name(name or "", what="name")
    rater = store.get_or_create_rater(db, clean)
    if rater["token_hash"] is not None:
        raise InvalidInput(f"name {clean!r} belongs to a rater with a personal link; "
                           "choose another name")
    if not rater["active"]:
        raise AccessDenied(f"rater {clean!r} is deactivated")
    return Identity(role=identity.role, mode="local", rater=rater)


def require_admin(identity: Identity | None) -> Identity:
    """Return ``identity`` if it is an admin's; raise AccessDenied otherwise."""
    if identity is None or not identity.is_admin:
        raise AccessDenied("this page is for project admins")
    return identity


def visible_projects(db, identity: Identity) -> list[dict]:
    """Return the projects this person may rate in: all for admins and in local mode,
    the assigned ones for a rater's link; never an archived one."""
    projects = store.list_projects(db, include_archived=False)
    if identity.is_admin or identity.mode == "local" or identity.rater is None:
        return projects
    assigned = set(store.rater_project_ids(db, identity.rater["id"]))
    return [p for p in projects if p["id"] in assigned]


def archived_project(db, identity: Identity, name: str | None) -> dict | None:
    """Return the archived project called ``name`` if this person could rate in it otherwise.

    For a rater's link to an archived project: the page says it is archived
    instead of showing another project silently. None for any other name, so
    a rater learns nothing about projects that are not theirs.
    """
    # Matched here, not in SQL: a URL's text may not even encode (a lone surrogate).
    project = next((p for p in store.list_projects(db) if p["name"] == name
                    and p["archived_at"] is not None), None)
    if project is None:
        return None
    if identity.is_admin or identity.mode == "local" or identity.rater is None:
        return project
    return project if project["id"] in store.rater_project_ids(db, identity.rater["id"]) else None
