"""Dashboard · Edits: how much raters changed the responses, with a few diffs."""

import streamlit as st

from prefstore import charts, edits
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

db, project, counts = dc.open_page("Edits")
dc.require_judgments(counts["judgments"]["total"])
row = dc.edit_report(db, project, counts)
if row is None:
    st.stop()
dc.freshness(row, counts["judgments"]["total"], "Edit report",
             lambda: edits.refresh_edit_report(db, project["id"]),
             key=f"{Keys.REFIT}:edits", label="Recompute")
result = row["result"]
if not result["n_edited"]:
    st.info("No edits yet: raters can improve the chosen response on the Rate page when the "
            "project allows edits.", icon=":material/edit:")
    st.stop()

cards = st.columns(4)
cards[0].metric("Edited judgments", f"{result['n_edited']:,}")
cards[1].metric("Share of judgments", "—" if result["share_edited"] is None
                else f"{result['share_edited']:.1%}")
cards[2].metric("Median distance", dc.fmt(result["median_distance"], 0))
cards[3].metric("90th percentile", dc.fmt(result["p90_distance"], 0))
st.plotly_chart(charts.edit_histogram(result["distances"]))

st.subheader("Examples")
st.caption("Edits spread over the distance range, as unified diffs from the response the rater "
           "started from.")
for example in dc.edit_examples(dc.db_path(), tuple(result["examples"])):
    st.text(f"Judgment {example['id']} by {example['rater']} on item {example['item']}")
    st.code(example["diff"] or "(whitespace-only change)", language="diff")
