"""prefstore's Streamlit entry point: config, the store, the identity gate, navigation."""

import streamlit as st

from pages import common

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
pages = [rate]
if identity.is_admin:
    dashboard = st.Page("pages/dashboard.py", title="Dashboard", icon=":material/monitoring:",
                        url_path="dashboard")
    # pages/admin.py is written separately; until it exists the navigation says so
    # plainly instead of failing on a missing file.
    if (common.APP_DIR / "pages" / "admin.py").exists():
        admin = st.Page("pages/admin.py", title="Admin", icon=":material/settings:",
                        url_path="admin")
    else:
        admin = st.Page(admin_not_installed, title="Admin", icon=":material/settings:",
                        url_path="admin")
    pages += [dashboard, admin]

page = st.navigation(pages)
common.local_mode_banner(identity)
page.run()
