"""Dashboard · Rater types: the mixture model's types, their leaderboards and each rater's type."""

import streamlit as st

from prefstore import charts, fitting, leaderboard
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

MODEL = "mixture"
AUTO = "auto (BIC)"

db, project, counts = dc.open_page("Rater types")
dc.require_judgments(counts["judgments"]["total"])
kind = st.segmented_control("Judgments", list(leaderboard.KINDS), default="human",
                            required=True, format_func=dc.KIND_LABELS.get, key=Keys.TYPES_KIND)
n = dc.n_of(counts, kind)
dc.require_judgments(n, f"No {dc.KIND_LABELS[kind].lower()} judgments yet.")

n_raters = counts["raters"]["human"] + counts["raters"]["llm"]
k = st.selectbox("Types when refitting", [AUTO, *range(1, max(1, min(n_raters, 8)) + 1)],
                 key=Keys.TYPES_K, help="Auto fits 1, 2, ... types and keeps the best BIC.")
row = dc.fit(db, project, MODEL, kind, n)
dc.freshness(row, n, "Mixture fit", lambda: fitting.fit_project(
    db, project["id"], model=MODEL, level="system", kind=kind, k=None if k == AUTO else k,
    fallback_alpha=fitting.FALLBACK_ALPHA),
    key=f"{Keys.REFIT}:types")
if row is None:
    st.stop()
result = row["result"]
types = leaderboard.type_rows(result)

cards = st.columns(3)
cards[0].metric("Types", f"{result.get('k', len(types))}")
cards[1].metric("Raters", f"{len(result.get('raters') or {}):,}")
cards[2].metric("BIC", dc.fmt(result.get("bic"), 1))

st.plotly_chart(charts.type_scores(types))
tabs = st.tabs([f"Type {t['type']} · {t['weight']:.0%} of raters" for t in types])
for tab, t in zip(tabs, types):
    tab.dataframe(t["rows"], hide_index=True, column_config={
        "name": st.column_config.TextColumn("system"),
        "score": st.column_config.NumberColumn("score", format="%.3f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "elo": None})

st.subheader("Raters")
raters = leaderboard.rater_type_rows(result)
st.plotly_chart(charts.type_probabilities(raters))
st.dataframe(raters, hide_index=True, column_config={
    f"type {t['type']}": st.column_config.ProgressColumn(f"type {t['type']}", min_value=0,
                                                         max_value=1, format="percent")
    for t in types})
