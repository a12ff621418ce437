"""prefstore's Streamlit entry point: config, the store, the identity gate, navigation."""

import streamlit as st

from pages import common

common.leave_pages_directory_mode()
st.set_page_config(page_title="prefstore", page_icon=":material/balance:", layout="wide")

db = common.get_db()
common.ensure_demo_once(db)
common.ensure_worker_once()
identity = common.gate(db)


def admin_not_installed() -> None:
    common.require_admin(db)
    st.title("Admin")
    st.info("Admin page not installed.")


rate = st.Page("pages/rate.py", title="Rate", icon=":material/thumbs_up_down:",
               url_path="rate", default=True)
DASHBOARD_PAGES = [  # (file, title, icon, url_path)
    ("pages/dashboard.py", "Overview", ":material/monitoring:", "dashboard"),
    ("pages/dashboard_agreement.py", "Agreement", ":material/handshake:", "agreement"),
    ("pages/dashboard_leaderboard.py", "Leaderboard", ":material/leaderboard:", "leaderboard"),
    ("pages/dashboard_rater_types.py", "Rater types", ":material/groups:", "rater-types"),
    ("pages/dashboard_judges.py", "Judges", ":material/smart_toy:", "judges"),
    ("pages/dashboard_edits.py", "Edits", ":material/edit_note:", "edits"),
    ("pages/dashboard_routing.py", "Routing", ":material/alt_route:", "routing"),
]
pages = {"Rate": [rate]}
if identity.is_admin:
    pages["Dashboard"] = [st.Page(path, title=title, icon=icon, url_path=url)
                          for path, title, icon, url in DASHBOARD_PAGES]
    # pages/admin.py is written separately; until it exists the navigation says so
    # plainly instead of failing on a missing file.
    if (common.APP_DIR / "pages" / "admin.py").exists():
        admin = st.Page("pages/admin.py", title="Admin", icon=":material/settings:",
                        url_path="admin")
    else:
        admin = st.Page(admin_not_installed, title="Admin", icon=":material/settings:",
                        url_path="admin")
    pages["Admin"] = [admin]

page = st.navigation(pages)
common.local_mode_banner(identity)
page.run()
