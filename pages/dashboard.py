"""Dashboard · Overview: counts, coverage towards the target, and the headline α values."""

import streamlit as st

from prefstore import agreement, assignment, store
from ui import common
from ui import dashboard as dc

common.require_app_entry()  # a page runs only inside app.py's navigation

# The landing page of the dashboard keeps its title; the navigation calls it Overview.
db, project, counts = dc.open_page("Dashboard")
target = project["settings"].raters_per_item
judgments = counts["judgments"]

cols = st.columns(5)
cols[0].metric("Items", f"{counts['items']:,}")
cols[1].metric("Human judgments", f"{judgments['human']:,}")
cols[2].metric("LLM judgments", f"{judgments['llm']:,}")
cols[3].metric("Human raters", f"{counts['raters']['human']:,}")
cols[4].metric("LLM raters", f"{counts['raters']['llm']:,}")
st.progress(counts["coverage"],
            text=f"Coverage: {counts['covered_items']:,} of {counts['items']:,} items have "
                 f"at least {target} human judgment{'s' * (target != 1)} "
                 f"({counts['coverage']:.1%})")

if not judgments["total"]:
    st.info(dc.NO_JUDGMENTS, icon=":material/share:")
else:
    st.subheader("Agreement between human raters")
    row = dc.agreement_report(db, project, "human", counts)
    if row is not None:
        result = row["result"]
        alpha, ci = result["krippendorff_alpha"], result["krippendorff_alpha_ci95"]
        levels = [("nominal", "α (label)")]
        if project["kind"] == "pairwise" and project["settings"].strength_scale:
            # Strength is only rated on the graded scale; elsewhere these tiles are empty.
            levels += [("ordinal", "α (strength, ordinal)"),
                       ("interval", "α (strength, interval)")]
        cards = st.columns(len(levels) + 2)
        for col, (level, name) in zip(cards, levels):
            col.metric(f"Krippendorff {name}", dc.fmt(alpha[level]), delta=dc.ci_text(ci[level]),
                       delta_color="off", delta_arrow="off")
        cards[-2].metric("Percent agreement", dc.fmt(result["percent_agreement"]))
        cards[-1].metric("Fleiss κ", dc.fmt(result["fleiss_kappa"]))
        for note in result["notes"]:
            st.text(note)
        dc.freshness(row, judgments["total"], "Agreement report",
                     lambda: agreement.refresh_agreement(db, project["id"]),
                     key=f"{dc.Keys.REFIT}:overview")

gold = assignment.gold_counts(db, project["id"])
if gold:
    st.subheader("Accuracy on gold items")
    st.dataframe(
        [{"rater": name, "gold judged": c["n"], "correct": c["correct"]}
         for name, c in gold.items()], hide_index=True)

projects = store.list_projects(db)
if len(projects) > 1:
    st.subheader("All projects")
    rows, version = [], store.data_version(db)
    for p in projects:
        c = dc.counts(dc.db_path(), p["id"], p["settings"].raters_per_item, version)
        rows.append({"project": p["name"], "kind": p["kind"], "items": c["items"],
                     "human judgments": c["judgments"]["human"],
                     "LLM judgments": c["judgments"]["llm"], "coverage": c["coverage"]})
    st.dataframe(rows, hide_index=True, column_config={
        "coverage": st.column_config.ProgressColumn("coverage", min_value=0, max_value=1,
                                                    format="percent")})
