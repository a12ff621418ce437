"""Dashboard · Leaderboard: system scores with 95% CIs from any registered model, and win rates."""

import streamlit as st

from pages import dashboard_common as dc
from pages.dashboard_common import Keys
from prefstore import charts, fitting, leaderboard

db, project, counts = dc.open_page("Leaderboard")
dc.require_judgments(counts["judgments"]["total"])

models = dict(fitting.model_choices())
left, right = st.columns(2)
model = left.selectbox("Model", list(models), format_func=models.get, key=Keys.MODEL)
kind = right.segmented_control("Judgments", list(leaderboard.KINDS), default="human",
                               required=True, format_func=dc.KIND_LABELS.get,
                               key=Keys.JUDGMENT_KIND)
n = dc.n_of(counts, kind)
dc.require_judgments(n, f"No {dc.KIND_LABELS[kind].lower()} judgments yet"
                        + (" — share rater links from Admin." if kind == "human" else "."))


def refit() -> None:
    fitting.fit_project(db, project["id"], model=model, level="system", kind=kind)
    leaderboard.refresh_win_rates(db, project["id"])


row = dc.fit(db, project, model, kind, n)
dc.freshness(row, n, f"{models[model]} fit", refit, key=f"{Keys.REFIT}:leaderboard")
if row is not None:
    rows = leaderboard.leaderboard_rows(row["result"])
    st.plotly_chart(charts.score_errorbars(rows, title=f"{models[model]}: system scores "
                                                       "with 95% CI"))
    st.dataframe(rows, hide_index=True, column_config={
        "name": st.column_config.TextColumn("system"),
        "score": st.column_config.NumberColumn("score", format="%.3f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "elo": st.column_config.NumberColumn("Elo-like", format="%.0f")})
    st.caption(f"{row['result'].get('n_comparisons', 0):,} comparisons; scores are centred "
               "log-strengths.")

st.subheader("Win rates")
report = dc.win_rates(db, project, kind, counts)
if report is not None:
    rates = report["result"]
    if not rates["names"]:
        st.info("No comparisons between different systems yet.")
    else:
        ranked = [r["name"] for r in rows] if row is not None else None
        st.plotly_chart(charts.win_rate_heatmap(rates["names"], rates["rate"], rates["games"],
                                                order=ranked))
        st.caption("Empirical share of games the row system won against the column system "
                   "(a tie counts half); empty cells never met.")
