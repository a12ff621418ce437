"""app.py's pages, per role: the one list that st.navigation is given."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# Absolute: a page script run on its own runs app.py from pages/ (common.require_app_entry).
APP_DIR = Path(__file__).resolve().parent.parent

RATE = ("pages/rate.py", "Rate", ":material/thumbs_up_down:", "rate")
DASHBOARD_PAGES = (  # (file, title, icon, url_path)
    ("pages/dashboard.py", "Overview", ":material/monitoring:", "dashboard"),
    ("pages/agreement.py", "Agreement", ":material/handshake:", "agreement"),
    ("pages/leaderboard.py", "Leaderboard", ":material/leaderboard:", "leaderboard"),
    ("pages/rater-types.py", "Rater types", ":material/groups:", "rater-types"),
    ("pages/judges.py", "Judges", ":material/smart_toy:", "judges"),
    ("pages/edits.py", "Edits", ":material/edit_note:", "edits"),
    ("pages/routing.py", "Routing", ":material/alt_route:", "routing"),
)
ADMIN = ("pages/admin.py", "Admin", ":material/settings:", "admin")


def pages(*, is_admin: bool) -> dict[str, list]:
    """The navigation's sections: raters see Rate; admins also the dashboards and Admin."""
    def page(spec, **kwargs):
        path, title, icon, url_path = spec
        return st.Page(APP_DIR / path, title=title, icon=icon, url_path=url_path, **kwargs)

    sections = {"Rate": [page(RATE, default=True)]}
    if is_admin:
        sections["Dashboard"] = [page(spec) for spec in DASHBOARD_PAGES]
        sections["Admin"] = [page(ADMIN)]
    return sections
