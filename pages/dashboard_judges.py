"""Dashboard · Judges: each LLM judge against the human majority: agreement, bias, confusion."""

import pandas as pd
import streamlit as st

from pages import dashboard_common as dc
from pages.dashboard_common import Keys
from prefstore import agreement, charts

db, project, counts = dc.open_page("Judges")
dc.require_judgments(counts["judgments"]["total"])
dc.require_judgments(counts["judgments"]["llm"],
                     "No LLM judgments yet — configure a judge in Admin and the worker labels "
                     "the items.")
row = dc.agreement_report(db, project, "human", counts)
if row is None:
    st.stop()
dc.freshness(row, counts["judgments"]["total"], "Agreement report",
             lambda: agreement.refresh_agreement(db, project["id"]),
             key=f"{Keys.REFIT}:judges")
judges = row["result"]["judges"]
if not judges:
    st.info("The stored report has no judge yet: refit to include the new LLM judgments.")
    st.stop()

names = [j["rater"] for j in judges]
name = st.selectbox("Judge", names, key=Keys.JUDGE) if len(names) > 1 else names[0]
judge = judges[names.index(name)]

cards = st.columns(4)
cards[0].metric("Accuracy vs human majority", dc.fmt(judge["accuracy_vs_human_majority"], 4),
                help="A judge's label against the strict majority of the human raters "
                     "(no strict majority: tie).")
cards[1].metric("Accuracy without tie items",
                dc.fmt(judge["accuracy_vs_human_majority_no_ties"], 4))
cards[2].metric("Agreement with humans (MT-Bench)", dc.fmt(judge["agreement_with_ties"], 4),
                delta=f"without ties {dc.fmt(judge['agreement_without_ties'], 4)}",
                delta_color="off", delta_arrow="off")
cards[3].metric("Cohen κ vs majority", dc.fmt(judge["kappa"]))

bias = st.columns(4)
bias[0].metric("Chose the left response", dc.fmt(judge["position_bias"]),
               delta=None if judge["position_bias_p"] is None
               else f"p = {judge['position_bias_p']:.2g}", delta_color="off", delta_arrow="off")
bias[1].metric("Chose the longer response", dc.fmt(judge["length_bias"]),
               delta=None if judge["length_bias_p"] is None
               else f"p = {judge['length_bias_p']:.2g}", delta_color="off", delta_arrow="off")
bias[2].metric("Tie rate", dc.fmt(judge["tie_rate"]))
bias[3].metric("Swap inconsistency", dc.fmt(judge["swap_inconsistency"]))

if judge["confusion"]:
    st.plotly_chart(charts.confusion_heatmap(judge["confusion"]["labels"],
                                             judge["confusion"]["counts"]))

st.subheader("All judges")
st.dataframe(
    pd.DataFrame(judges).drop(columns=["confusion"]), hide_index=True,
    column_order=["rater", "n", "n_items", "accuracy_vs_human_majority",
                  "accuracy_vs_human_majority_no_ties", "agreement_with_ties",
                  "agreement_without_ties", "kappa", "macro_f1", "position_bias",
                  "length_bias", "tie_rate", "swap_inconsistency", "gold_accuracy"],
    column_config={
        "rater": st.column_config.TextColumn("judge"),
        "n": st.column_config.NumberColumn("judgments"),
        "n_items": st.column_config.NumberColumn("items shared with humans"),
        **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.4f") for c in (
            "accuracy_vs_human_majority", "accuracy_vs_human_majority_no_ties",
            "agreement_with_ties", "agreement_without_ties", "kappa", "macro_f1",
            "position_bias", "length_bias", "tie_rate", "swap_inconsistency",
            "gold_accuracy")}})
