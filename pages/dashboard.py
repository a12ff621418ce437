"""Dashboard: an overview of every project for admins (counts, coverage, gold accuracy)."""

import streamlit as st

from pages import common
from prefstore import assignment, storage

db = common.get_db()
common.require_admin(db)

st.title("Dashboard")
projects = storage.list_projects(db)
if not projects:
    st.info("No projects yet: import items with `prefstore import items.jsonl --project NAME`.")
    st.stop()

stats = {p["id"]: storage.project_stats(db, p["id"]) for p in projects}
if not any(s["judgments"]["human"] or s["judgments"]["llm"] for s in stats.values()):
    st.info("No judgments yet — share rater links from Admin.", icon=":material/share:")

for project in projects:
    s = stats[project["id"]]
    with st.container(border=True):
        st.subheader(f"{project['name']} · {project['kind']}")
        cols = st.columns(5)
        cols[0].metric("Items", s["items"])
        cols[1].metric("Human judgments", s["judgments"]["human"])
        cols[2].metric("LLM judgments", s["judgments"]["llm"])
        cols[3].metric("Human raters", s["raters"]["human"])
        cols[4].metric("Flags", s["flags"])
        covered = s["items_by_human_judgments"]
        if s["items"] and any(int(k) > 0 for k in covered):
            st.caption("Items by number of human judgments: " + ", ".join(
                f"{k}: {v}" for k, v in covered.items()))
        gold = assignment.gold_counts(db, project["id"])
        if gold:
            st.caption("Accuracy on gold items")
            st.dataframe(
                [{"rater": name, "gold judged": c["n"],
                  "accuracy": round(c["correct"] / c["n"], 3)} for name, c in gold.items()],
                hide_index=True)
