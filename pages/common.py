"""Helpers shared by the pages: the per-thread store handle and session-state keys."""

from __future__ import annotations

import threading

from prefstore import demo, storage

_local = threading.local()


class StateKeys:
    """Every session-state key, in one place."""

    DEMO_CHECKED = "demo_checked"


def get_db():
    """Return this thread's store handle; Streamlit reruns may run on new threads."""
    db = getattr(_local, "db", None)
    path = storage.default_db_path()
    if db is None or getattr(_local, "path", None) != path:
        db = storage.connect(path)
        _local.db, _local.path = db, path
    return db


def ensure_demo_once(db) -> None:
    demo.ensure_demo(db)


list_projects = storage.list_projects
project_stats = storage.project_stats
