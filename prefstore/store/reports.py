"""Stored results: model fits and derived reports, newest first."""

from __future__ import annotations

import json

from prefstore.store.connection import dumps, loads, now_iso, write


def save_fit(db, project_id: int, *, model: str, level: str, kind: str, params: dict,
             result: dict, n_judgments: int, seconds: float) -> int:
    with write(db):
        return db.execute(
            "INSERT INTO fits (project_id, model, level, kind, params, result, n_judgments, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [project_id, model, level, kind, dumps(params), json.dumps(result), n_judgments,
             seconds, now_iso()]).fetchone()[0]


def latest_fit(db, project_id: int, *, model: str, level: str = "system",
               kind: str = "all") -> dict | None:
    rows = list(db.query(
        "SELECT * FROM fits WHERE project_id = ? AND model = ? AND level = ? AND kind = ? "
        "ORDER BY id DESC LIMIT 1", [project_id, model, level, kind]))
    if not rows:
        return None
    row = rows[0]
    row["params"] = loads(row["params"], {})
    row["result"] = loads(row["result"], {})
    return row


def last_fit_time(db, project_id: int) -> str | None:
    return db.execute("SELECT MAX(created_at) FROM fits WHERE project_id = ?",
                      [project_id]).fetchone()[0]


def save_report(db, project_id: int, *, name: str, kind: str, result: dict,
                n_judgments: int, seconds: float) -> int:
    """Store a derived report (e.g. ``name="agreement"``) for the dashboards."""
    with write(db):
        return db.execute(
            "INSERT INTO reports (project_id, name, kind, result, n_judgments, seconds, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [project_id, name, kind, json.dumps(result), n_judgments, seconds,
             now_iso()]).fetchone()[0]


def latest_report(db, project_id: int, *, name: str, kind: str) -> dict | None:
    rows = list(db.query(
        "SELECT * FROM reports WHERE project_id = ? AND name = ? AND kind = ? "
        "ORDER BY id DESC LIMIT 1", [project_id, name, kind]))
    if not rows:
        return None
    row = rows[0]
    row["result"] = loads(row["result"], {})
    return row
