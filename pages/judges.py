"""Dashboard · Judges: each LLM judge against the human majority: agreement, bias, confusion,
and how its style preferences (length, markdown) compare with the human raters'."""

import pandas as pd
import streamlit as st

from prefstore import agreement, charts
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

db, project, counts = dc.open_page("Judges")
dc.require_judgments(counts["judgments"]["total"])
dc.require_judgments(counts["judgments"]["llm"],
                     "No LLM judgments yet — configure a judge in Admin and the worker labels "
                     "the items.")
# Reports stored before the style comparison existed are recomputed once.
row = dc.agreement_report(db, project, "human", counts, needs_key="humans_style_coefficients")
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

st.subheader("Style: what this judge rewards")
error = row["result"].get("style_bias_error")
style_rows = agreement.judge_style_rows(judge)
if error:
    st.info("Style preferences could not be compared:", icon=":material/info:")
    st.text(error)
elif not style_rows:
    st.info("No style comparison for this judge in the stored report: press Refit now.")
else:
    if any(r["differs"] == "yes" for r in style_rows):
        st.warning(judge["style_summary"], icon=":material/flag:")
    else:
        st.text(judge["style_summary"])
    st.plotly_chart(dc.style_bias_figure(style_rows))
    st.dataframe(style_rows, hide_index=True, column_config={
        "judge": st.column_config.NumberColumn("judge", format="%.3f"),
        "judge_ci_low": st.column_config.NumberColumn("judge 95% CI low", format="%.3f"),
        "judge_ci_high": st.column_config.NumberColumn("judge 95% CI high", format="%.3f"),
        "humans": st.column_config.NumberColumn("your raters", format="%.3f"),
        "humans_ci_low": st.column_config.NumberColumn("raters 95% CI low", format="%.3f"),
        "humans_ci_high": st.column_config.NumberColumn("raters 95% CI high", format="%.3f"),
        "z": st.column_config.NumberColumn("z", format="%.2f"),
        "differs": st.column_config.TextColumn("differs (|z| > 1.96)")})
    st.caption(f"Style-controlled Bradley-Terry fitted to this judge's labels and to your "
               f"raters' on the {judge.get('style_n_items') or 0:,} items both judged, on one covariate "
               f"scale: a coefficient is the change in the log-odds of winning per standard "
               f"deviation of the style difference between the two answers. Over all their "
               f"items your raters' length coefficient is "
               f"{dc.fmt((row['result']['humans_style_coefficients'] or {}).get('length'))}.")

st.subheader("All judges")
shown = ["rater", "n", "n_items", "accuracy_vs_human_majority",
         "accuracy_vs_human_majority_no_ties", "agreement_with_ties", "agreement_without_ties",
         "kappa", "macro_f1", "position_bias", "length_bias", "tie_rate", "swap_inconsistency",
         "gold_accuracy", "style_summary"]
st.dataframe(
    # only flat columns: the style figures are nested dicts
    pd.DataFrame(judges).reindex(columns=shown), hide_index=True, column_order=shown,
    column_config={
        "rater": st.column_config.TextColumn("judge"),
        "style_summary": st.column_config.TextColumn("style vs your raters"),
        "n": st.column_config.NumberColumn("judgments"),
        "n_items": st.column_config.NumberColumn("items shared with humans"),
        **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.4f") for c in (
            "accuracy_vs_human_majority", "accuracy_vs_human_majority_no_ties",
            "agreement_with_ties", "agreement_without_ties", "kappa", "macro_f1",
            "position_bias", "length_bias", "tie_rate", "swap_inconsistency",
            "gold_accuracy")}})
