"""prefstore's Streamlit entry point: config, the store, the identity gate, navigation."""

import streamlit as st

from pages import common

st.set_page_config(page_title="prefstore", page_icon=":material/balance:", layout="wide")

db = common.get_db()
common.ensure_demo_once(db)

st.title("prefstore")
st.caption("Local mode: anyone who opens this page can rate. Set PREFSTORE_ADMIN_TOKEN to "
           "require links.")
for project in common.list_projects(db):
    stats = common.project_stats(db, project["id"])
    st.subheader(project["name"])
    st.write(f"{stats['items']} items · {stats['judgments']['human']} human judgments")
