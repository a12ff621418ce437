"""Dashboard · Leaderboard: system scores with 95% CIs from any registered model, and win rates.

Beside the registered models: Bradley-Terry controlled for style (both rankings
side by side) and, when there are human and LLM judgments, a hybrid leaderboard.
"""

import streamlit as st

from prefstore import charts, fitting, leaderboard
from prefstore import text as inert
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

db, project, counts = dc.open_page("Leaderboard")
dc.require_judgments(counts["judgments"]["total"])

judged = counts["judgments"]
# PPI++ works item by item on two-response items: a slate project has none.
pairwise = project["kind"] == "pairwise"
hybrid_offered = pairwise and judged["human"] > 0 and judged["llm"] > 0
sources = list(leaderboard.KINDS) + ([dc.HYBRID] if hybrid_offered else [])
models = dict(fitting.model_choices())
left, right = st.columns(2)
kind = right.segmented_control("Judgments", sources, default="human", required=True,
                               format_func=dc.SOURCE_LABELS.get, key=Keys.JUDGMENT_KIND)
hybrid = kind == dc.HYBRID
model = left.selectbox("Model", list(models), format_func=models.get, key=Keys.MODEL,
                       disabled=hybrid, help="A hybrid leaderboard is Bradley-Terry." if hybrid
                       else None)
if not pairwise:
    st.caption("Hybrid (human-corrected) leaderboards compare two responses per item; this "
               "is a slate project.")
elif not hybrid_offered:
    missing = "LLM" if judged["human"] else "human"
    st.caption(f"Hybrid (human-corrected) leaderboards need both human and LLM judgments; "
               f"this project has no {missing} judgments yet.")
style_on = False
if not hybrid:
    style_on = st.toggle(
        "Control for style", key=Keys.STYLE_CONTROL, disabled=model != "bt",
        help="Bradley-Terry with the answers' length and markdown (headers, lists, bold) as "
             "covariates (Li et al. 2024): the ranking the systems would have if style did "
             "not sway the votes." + ("" if model == "bt" else " Choose Bradley-Terry."))
    style_on = style_on and model == "bt"

rows = None
win_kind = "human" if hybrid else kind
if hybrid:
    n = judged["total"]
    judges = dc.llm_judges(dc.db_path(), project["id"], n)
    if not judges:
        st.info("No LLM judge has judged this project yet.")
        st.stop()
    judge = (st.selectbox("Judge", judges, key=Keys.HYBRID_JUDGE) if len(judges) > 1
             else judges[0])
    if len(judges) == 1:
        st.text(f"Judge: {judge}")
    st.caption("Hybrid (human-corrected): the LLM judge's labels on every item narrow the "
               "intervals, and its disagreement with your raters on the items they both "
               "judged is subtracted (prediction-powered inference, PPI++), so the scores "
               "still estimate the human ranking.")
    row = dc.hybrid_fit(db, project, judge, n)
    dc.freshness(row, n, "Hybrid fit",
                 lambda: fitting.fit_hybrid_project(db, project["id"], judge=judge),
                 key=f"{Keys.REFIT}:leaderboard-hybrid")
    if row is not None:
        result = row["result"]
        rows = leaderboard.leaderboard_rows(result)
        st.plotly_chart(charts.score_errorbars(rows, title="Hybrid: system scores with 95% CI"))
        st.dataframe(rows, hide_index=True, column_config={
            "name": st.column_config.TextColumn("system"),
            "score": st.column_config.NumberColumn("score", format="%.3f"),
            "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
            "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
            "elo": st.column_config.NumberColumn("Elo-like", format="%.0f")})
        st.caption(f"λ = {result['lambda']:.2f} (0: human-only, 1: the judge's labels at full "
                   f"weight); {result['n_human_items']:,} human-labelled items, "
                   f"{result['n_llm_items']:,} labelled by the judge.")
else:
    n = dc.n_of(counts, kind)
    dc.require_judgments(n, f"No {dc.KIND_LABELS[kind].lower()} judgments yet"
                            + (" — share rater links from Admin." if kind == "human" else "."))

    def refit() -> None:
        fitting.fit_project(db, project["id"], model=model, level="system", kind=kind,
                            fallback_alpha=fitting.FALLBACK_ALPHA)
        if style_on:
            fitting.fit_style_project(db, project["id"], kind=kind)
        leaderboard.refresh_win_rates(db, project["id"])

    row = dc.fit(db, project, model, kind, n)
    styled = dc.style_fit(db, project, kind, n) if style_on and row is not None else None
    dc.freshness(row, n, f"{models[model]} fit", refit, key=f"{Keys.REFIT}:leaderboard")
    if styled is not None:
        st.caption(dc.stored_caption(styled, n, "Style-controlled fit"))
    if row is not None and styled is not None:
        plain_rows, rows = leaderboard.style_comparison(row["result"], styled["result"])
        number = {"score": st.column_config.NumberColumn("score", format="%.3f"),
                  "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
                  "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f")}
        plain_col, style_col = st.columns(2)
        plain_col.subheader("Without style control")
        plain_col.dataframe(plain_rows, hide_index=True,
                            column_order=["rank", "name", "score", "ci_low", "ci_high"],
                            column_config={"name": st.column_config.TextColumn("system"),
                                           **number})
        style_col.subheader("Controlled for style")
        style_col.dataframe(rows, hide_index=True,
                            column_order=["rank", "change", "name", "score", "ci_low",
                                          "ci_high"],
                            column_config={"name": st.column_config.TextColumn("system"),
                                           "change": st.column_config.TextColumn(
                                               "change", help="Places gained (▲) or lost (▼) "
                                               "against the ranking without style control"),
                                           **number})
        st.plotly_chart(charts.score_errorbars(rows, title="Controlled for style: system "
                                                           "scores with 95% CI"))
        st.subheader("Style coefficients")
        st.dataframe(leaderboard.style_coefficient_rows(styled["result"]), hide_index=True,
                     column_config={
                         "coefficient": st.column_config.NumberColumn("coefficient",
                                                                      format="%.3f"),
                         "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
                         "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
                         "counts": st.column_config.TextColumn("what is counted")})
        st.caption("A coefficient is the change in the log-odds of winning per standard "
                   "deviation of the style difference between the two answers: a positive "
                   "length coefficient means longer answers win more often, whichever system "
                   "wrote them.")
        for note in styled["result"].get("notes", []):
            st.text(note)
    elif row is not None:
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
        for note in row["result"].get("notes", []):
            st.caption(inert.escape_markdown(note))

st.subheader("Win rates")
if hybrid:
    st.caption("Between the human judgments (the ranking a hybrid leaderboard estimates).")
report = dc.win_rates(db, project, win_kind, counts)
if report is not None:
    rates = report["result"]
    if not rates["names"]:
        st.info("No comparisons between different systems yet.")
    else:
        ranked = [r["name"] for r in rows] if rows is not None else None
        st.plotly_chart(charts.win_rate_heatmap(rates["names"], rates["rate"], rates["games"],
                                                order=ranked))
        st.caption("Empirical share of games the row system won against the column system "
                   "(a tie counts half); empty cells never met.")
