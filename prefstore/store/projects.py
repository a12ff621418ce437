"""Projects and the audit log of who changed what."""

from __future__ import annotations

import functools
import secrets
from typing import Any

from prefstore.errors import Conflict, InvalidInput, NotFound
from prefstore.settings import ProjectSettings
from prefstore.store.connection import dumps, loads, now_iso, write
from prefstore.store.progress import lock_project_counts, recount_rater_counts

TASK_KINDS = ("pairwise", "slate")
MAX_NAME_CHARS = 200


@functools.lru_cache(maxsize=256)
def settings_from_text(text: str | None) -> ProjectSettings:
    """Parse a project's stored settings; the same text is parsed once (130 us a time,
    read by every claim and submit). The settings are frozen, so sharing them is safe."""
    return ProjectSettings.from_stored(loads(text, {}))


def _row(row: dict) -> dict:
    row = dict(row)
    row["settings"] = settings_from_text(row["settings"])
    return row


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"project name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"project name must be at most {MAX_NAME_CHARS} characters, "
                           f"got {len(name)}")
    return name


def _settings(settings: ProjectSettings | dict | None) -> ProjectSettings:
    if isinstance(settings, ProjectSettings):
        settings.validate()
        return settings
    return ProjectSettings.from_dict(settings)


def create_project(db, name: str, kind: str = "pairwise",
                   settings: ProjectSettings | dict | None = None, *,
                   actor: str = "system") -> dict:
    """Create a project and return it. Raises Conflict if the name is taken."""
    project, created = ensure_project(db, name, kind, settings, actor=actor)
    if not created:
        raise Conflict(f"project {name!r} already exists")
    return project


def ensure_project(db, name: str, kind: str = "pairwise",
                   settings: ProjectSettings | dict | None = None, *,
                   actor: str = "system") -> tuple[dict, bool]:
    """Return the project called ``name``, creating it if absent; and whether it was created.

    Safe under concurrency: two imports into the same new project both succeed,
    one creating it. Runs in the caller's transaction when there is one.
    """
    _check_name(name)
    if kind not in TASK_KINDS:
        raise InvalidInput(f"project kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
    merged = _settings(settings)
    with write(db):
        row = db.execute(
            "INSERT INTO projects (name, kind, settings, pseudonym_salt, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id",
            [name, kind, dumps(merged.to_dict()), secrets.token_hex(16), now_iso()]).fetchone()
        if row is not None:
            log_action(db, row[0], actor, "create_project",
                       {"name": name, "kind": kind, "settings": merged.to_dict()})
    project = get_project(db, name)
    return project, row is not None


def get_project(db, project: str | int) -> dict:
    """Return a project by name or id. Raises NotFound."""
    if isinstance(project, int):
        rows = list(db.query("SELECT * FROM projects WHERE id = ?", [project]))
    else:
        rows = list(db.query("SELECT * FROM projects WHERE name = ?", [project]))
    if not rows:
        raise NotFound(f"project {project!r} does not exist")
    return _row(rows[0])


def find_project(db, name: str) -> dict | None:
    try:
        return get_project(db, name)
    except NotFound:
        return None


def list_projects(db, *, include_archived: bool = True) -> list[dict]:
    """Return the projects in id order; ``include_archived=False`` leaves archived ones out."""
    return [_row(r) for r in db.query(
        "SELECT * FROM projects WHERE (? = 1 OR archived_at IS NULL) ORDER BY id",
        [int(include_archived)])]


def rename_project(db, project_id: int, new_name: str, *, actor: str) -> dict:
    """Rename a project and return it, logging the old and the new name.

    The new name follows the rules of creation. Raises InvalidInput for a bad
    name, Conflict when another project has it, NotFound for a missing project.
    """
    _check_name(new_name)
    project = get_project(db, project_id)
    if new_name == project["name"]:
        return project
    with write(db):
        row = db.execute(
            "UPDATE projects SET name = ? WHERE id = ? AND NOT EXISTS "
            "(SELECT 1 FROM projects p WHERE p.name = ?) RETURNING id",
            [new_name, project_id, new_name]).fetchone()
        if row is None:
            raise Conflict(f"project {new_name!r} already exists")
        log_action(db, project_id, actor, "rename_project",
                   {"from": project["name"], "to": new_name})
    return get_project(db, project_id)


def project_formerly_named(db, name: str | None) -> dict | None:
    """Return the project that was called ``name`` before a rename, or None.

    For links made before a rename (``?project=old``): the newest rename away
    from ``name`` wins, followed to the project's name now. A project that has
    the name now is the caller's to prefer. Matched here, not in SQL: a URL's
    text may not even encode (a lone surrogate).
    """
    if not name:
        return None
    for project_id, details in db.execute(
            "SELECT project_id, details FROM audit_log WHERE action = 'rename_project' "
            "AND project_id IS NOT NULL ORDER BY id DESC").fetchall():
        if loads(details).get("from") == name:
            try:
                return get_project(db, project_id)
            except NotFound:
                return None
    return None


def set_project_archived(db, project_id: int, archived: bool, *, actor: str) -> dict:
    """Archive a project (hidden from raters, nothing deleted) or bring it back; return it.

    Archiving an archived project keeps its first ``archived_at`` and logs nothing.
    """
    project = get_project(db, project_id)
    if (project["archived_at"] is not None) == archived:
        return project
    with write(db):
        cur = db.execute(
            "UPDATE projects SET archived_at = ? WHERE id = ? AND (archived_at IS NULL) = ?",
            [now_iso() if archived else None, project_id, archived])
        if cur.rowcount:
            log_action(db, project_id, actor,
                       "archive_project" if archived else "unarchive_project",
                       {"name": project["name"]})
    return get_project(db, project_id)


def update_project_settings(db, project_id: int, changes: dict, *, actor: str) -> dict:
    """Validate and apply setting changes, logging who changed what."""
    project = get_project(db, project_id)
    current: ProjectSettings = project["settings"]
    merged = current.replace(**changes)
    diff = current.changes(merged)
    if not diff:
        return project
    with write(db):
        lock_project_counts(db, project_id, exclusive=True)
        db.execute("UPDATE projects SET settings = ? WHERE id = ?",
                   [dumps(merged.to_dict()), project_id])
        bump_queue_epoch(db, project_id)
        recount_queue_counts(db, project_id)
        log_action(db, project_id, actor, "update_settings", diff)
    return get_project(db, project_id)


def bump_queue_epoch(db, project_id: int) -> None:
    """Send every rater's next claim in the project back to the start of its queues.

    Call it, in the same transaction, on any change that can reopen an item to
    a rater or move it earlier in a queue (see ``claims._claim``).
    """
    db.execute("UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = ?", [project_id])


def recount_queue_counts(db, project_id: int) -> None:
    """Count the project's open items and every rater's progress in it again.

    Open items: routed to humans or not yet routed, below ``raters_per_item``
    human judgments, not excluded. A submit keeps ``projects.open_items`` and
    the raters' counters (``prefstore.store.progress``) current as it fills an
    item; changes that move many items at once (routing, settings, imports,
    exclusions) call this, having called ``lock_project_counts(db, project_id,
    exclusive=True)`` first thing in their transaction.
    """
    cap = recount_open_items(db, project_id)
    recount_rater_counts(db, project_id, cap)


def recount_open_items(db, project_id: int) -> int:
    """Count the project's open items again (``projects.open_items``); return its cap."""
    cap = get_project(db, project_id)["settings"].raters_per_item
    db.execute(
        "UPDATE projects SET open_items = (SELECT COUNT(*) FROM items i WHERE i.project_id = ? "
        "AND i.queue_rank < 2 AND i.n_human < ? AND i.excluded_at IS NULL) WHERE id = ?",
        [project_id, cap, project_id])
    return cap


# How many items each rater was served in a project, and how many were gold: the
# claim reads them to schedule gold. A claim adds one; these recount after a
# change that removes claims or turns items gold, for the raters it touched.
_RECOUNT_SERVED = {
    "rater": (
        "INSERT INTO served_counts (rater_id, project_id, served, served_gold) "
        "SELECT a.rater_id, i.project_id, COUNT(*), COALESCE(SUM(i.is_gold), 0) "
        "FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE i.project_id = :p AND a.rater_id = :r GROUP BY a.rater_id, i.project_id "
        "ON CONFLICT (rater_id, project_id) DO UPDATE SET served = excluded.served, "
        "served_gold = excluded.served_gold"),
    "item": (
        "INSERT INTO served_counts (rater_id, project_id, served, served_gold) "
        "SELECT a.rater_id, i.project_id, COUNT(*), COALESCE(SUM(i.is_gold), 0) "
        "FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE i.project_id = :p AND a.rater_id IN "
        "(SELECT x.rater_id FROM assignments x WHERE x.item_id = :item) "
        "GROUP BY a.rater_id, i.project_id "
        "ON CONFLICT (rater_id, project_id) DO UPDATE SET served = excluded.served, "
        "served_gold = excluded.served_gold"),
    "project": (
        "INSERT INTO served_counts (rater_id, project_id, served, served_gold) "
        "SELECT a.rater_id, i.project_id, COUNT(*), COALESCE(SUM(i.is_gold), 0) "
        "FROM assignments a JOIN items i ON i.id = a.item_id "
        "WHERE i.project_id = :p GROUP BY a.rater_id, i.project_id "
        "ON CONFLICT (rater_id, project_id) DO UPDATE SET served = excluded.served, "
        "served_gold = excluded.served_gold"),
}


def recount_served(db, project_id: int, *, rater_id: int | None = None,
                   item_id: int | None = None) -> None:
    """Count again what was served in a project: to one rater, to the raters of one
    item, or (neither given) to everyone."""
    params = {"p": project_id, "r": rater_id, "item": item_id}
    if rater_id is not None:
        # A rater whose every claim was removed has no row to count from.
        db.execute("UPDATE served_counts SET served = 0, served_gold = 0 "
                   "WHERE project_id = :p AND rater_id = :r", params)
        db.execute(_RECOUNT_SERVED["rater"], params)
    elif item_id is not None:
        db.execute(_RECOUNT_SERVED["item"], params)
    else:
        db.execute("UPDATE served_counts SET served = 0, served_gold = 0 WHERE project_id = :p",
                   params)
        db.execute(_RECOUNT_SERVED["project"], params)


def log_action(db, project_id: int | None, actor: str, action: str, details: dict) -> None:
    db.execute(
        "INSERT INTO audit_log (project_id, actor, action, details, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [project_id, actor, action, dumps(details), now_iso()],
    )


def audit_log(db, project_id: int | None = None, limit: int = 100) -> list[dict]:
    rows = db.query(
        "SELECT * FROM audit_log WHERE (? IS NULL OR project_id = ?) ORDER BY id DESC LIMIT ?",
        [project_id, project_id, limit],
    )
    return [{**r, "details": loads(r["details"], {})} for r in rows]
