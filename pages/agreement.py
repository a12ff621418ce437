"""Dashboard · Agreement: Cohen's κ between raters, α over time, and outlier raters."""

import pandas as pd
import streamlit as st

from prefstore import agreement, charts
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

db, project, counts = dc.open_page("Agreement")
dc.require_judgments(counts["judgments"]["total"])

kind = st.segmented_control("Raters", ["human", "all"], default="human", required=True,
                            format_func=lambda k: {"human": "Humans", "all": "Humans and LLMs"}[k],
                            key=Keys.AGREEMENT_KIND)
row = dc.agreement_report(db, project, kind, counts)
if row is None:
    st.stop()
dc.freshness(row, counts["judgments"]["total"], "Agreement report",
             lambda: agreement.refresh_agreement(db, project["id"]),
             key=f"{Keys.REFIT}:agreement")
result = row["result"]

cards = st.columns(4)
cards[0].metric("Krippendorff α (label)", dc.fmt(result["krippendorff_alpha"]["nominal"]),
                delta=dc.ci_text(result["krippendorff_alpha_ci95"]["nominal"]),
                delta_color="off", delta_arrow="off")
cards[1].metric("Percent agreement", dc.fmt(result["percent_agreement"]))
cards[2].metric("Fleiss κ", dc.fmt(result["fleiss_kappa"]))
cards[3].metric("Items with 2+ raters", f"{result['n_items_multi_rated']:,}")

st.subheader("Cohen's κ between raters")
pairs = result["cohen_kappa"]
if not pairs:
    st.info("No pair of raters shares enough items for Cohen's κ yet.")
else:
    names, matrix = agreement.kappa_matrix(pairs)
    st.plotly_chart(charts.kappa_heatmap(names, matrix))
    st.dataframe(pd.DataFrame(pairs).rename(columns={"a": "rater A", "b": "rater B"}),
                 hide_index=True, column_config={
                     "kappa": st.column_config.NumberColumn("κ", format="%.3f"),
                     "weighted_kappa": st.column_config.NumberColumn("weighted κ", format="%.3f"),
                     "n": st.column_config.NumberColumn("shared items"),
                     "n_weighted": st.column_config.NumberColumn("shared with strength")})

st.subheader("Agreement over time")
if result.get("over_time"):
    st.plotly_chart(charts.alpha_over_time(result["over_time"]))
else:
    st.caption("Not in this report: refit to add it.")

st.subheader("Raters")
controls = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
query = controls[0].text_input("Filter by name", key=Keys.RATER_FILTER)
min_consensus = controls[1].number_input(
    "Low consensus below", 0.0, 1.0, agreement.MIN_CONSENSUS, 0.05, key=Keys.MIN_CONSENSUS)
min_seconds = controls[2].number_input(
    "Too fast below (median s)", 0.0, 600.0, agreement.MIN_MEDIAN_SECONDS, 1.0,
    key=Keys.MIN_SECONDS)
flagged_only = controls[3].toggle("Flagged only", key=Keys.FLAGGED_ONLY)
raters = pd.DataFrame(agreement.rater_outliers(result["raters"], min_consensus=min_consensus,
                                               min_seconds=min_seconds))
if raters.empty:
    st.info("No raters of this kind yet.")
    st.stop()
if query:
    raters = raters[raters["rater"].str.contains(query, case=False, regex=False)]
if flagged_only:
    raters = raters[raters["flags"] != ""]
percent = "%.3f"
st.dataframe(
    raters, hide_index=True,
    column_order=["rater", "flags", "n", "agreement_with_consensus", "position_bias",
                  "position_bias_p", "length_bias", "length_bias_p", "tie_rate",
                  "median_seconds", "gold_accuracy"],
    column_config={
        "n": st.column_config.NumberColumn("judgments"),
        "agreement_with_consensus": st.column_config.NumberColumn("consensus", format=percent,
                                                                  help="Agreement with the "
                                                                  "others' strict majority"),
        "position_bias": st.column_config.NumberColumn("chose left", format=percent),
        "position_bias_p": st.column_config.NumberColumn("p (left)", format="%.2g"),
        "length_bias": st.column_config.NumberColumn("chose longer", format=percent),
        "length_bias_p": st.column_config.NumberColumn("p (longer)", format="%.2g"),
        "tie_rate": st.column_config.NumberColumn("ties", format=percent),
        "median_seconds": st.column_config.NumberColumn("median s", format="%.1f"),
        "gold_accuracy": st.column_config.NumberColumn("gold accuracy", format=percent)})
st.caption(f"Flags: consensus below {min_consensus:.2f}; position bias with binomial "
           f"p < {agreement.MAX_BIAS_P}; median time below {min_seconds:g} s.")
