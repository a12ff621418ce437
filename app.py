"""prefstore's Streamlit entry point: config, the store, the identity gate, navigation."""

import streamlit as st

from ui import common, navigation

# A local icon: a Material icon here makes every browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="prefstore", page_icon=str(common.APP_DIR / "ui" / "favicon.png"),
                   layout="wide")

try:
    db = common.get_db()
    common.ensure_demo_once(db)
    common.ensure_worker_once()
    identity = common.gate(db)

    page = st.navigation(navigation.pages(is_admin=identity.is_admin))
    common.local_mode_banner(identity)
    common.run_page(page)
finally:  # also when st.stop or st.rerun ends the run
    common.close_db()
