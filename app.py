"""prefstore's Streamlit entry point: config, the store, the identity gate, navigation."""

import streamlit as st

from ui import common

common.leave_pages_directory_mode()
# A local icon: a Material icon here makes every browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="prefstore", page_icon=str(common.APP_DIR / "ui" / "favicon.png"),
                   layout="wide")

db = common.get_db()
common.ensure_demo_once(db)
common.ensure_worker_once()
identity = common.gate(db)


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
    pages["Admin"] = [st.Page("pages/admin.py", title="Admin", icon=":material/settings:",
                              url_path="admin")]

page = st.navigation(pages)
common.local_mode_banner(identity)
page.run()
