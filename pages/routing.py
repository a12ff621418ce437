"""Dashboard · Routing: who labels each item, and how well predicted agreement matched reality."""

import streamlit as st

from prefstore import charts, routing
from ui import common
from ui import dashboard as dc
from ui.dashboard import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

db, project, counts = dc.open_page("Routing")
dc.require_judgments(counts["judgments"]["total"])


def route_now() -> None:
    routing.refresh_routing(db, project["id"])
    routing.refresh_routing_report(db, project["id"])


decisions = dc.routing_decisions(dc.db_path(), project["id"], counts["judgments"]["total"])
if decisions.empty:
    st.info("No routing decisions yet: the worker routes the items once an LLM judge has "
            "labelled them.", icon=":material/alt_route:")
    dc.freshness(None, 0, "Routing", route_now, key=Keys.ROUTE, label="Route now")
    st.stop()

row = dc.routing_report(db, project, counts, decided_at=decisions["created_at"].max())
if row is None:
    st.stop()
dc.freshness(row, counts["judgments"]["total"], "Routing report", route_now, key=Keys.ROUTE,
             label="Route now")
result = row["result"]

cards = st.columns(5)
for col, decision in zip(cards, ("human", "both", "llm")):
    col.metric(f"To {'humans and the judge' if decision == 'both' else decision}",
               f"{result['decisions'].get(decision, 0):,}")
cards[3].metric("Items with both labels", f"{result['n_calibration']:,}")
cards[4].metric("Brier score", dc.fmt(result["brier"]))

st.subheader("Calibration")
if result["bins"]:
    st.plotly_chart(charts.calibration_plot(result["bins"]))
    st.caption("Items with both a judge and a human label, binned by predicted agreement. The "
               "predictor trained on these items, so this is in-sample calibration.")
else:
    st.info("No item has both a prediction and human labels yet.")

st.subheader("Decisions")
shown = st.segmented_control("Decision", ["human", "both", "llm"], selection_mode="multi",
                             default=["human", "both", "llm"], key=Keys.DECISION)
table = routing.decisions_table(decisions, result["realized"])
# Items by the ids of the import file; the internal id stays out of sight.
st.dataframe(table[table["decision"].isin(shown)], hide_index=True,
             column_order=["external_id", "decision", "predicted_agreement",
                           "realized_agreement", "priority"], column_config={
    "external_id": st.column_config.TextColumn("item"),
    "predicted_agreement": st.column_config.NumberColumn("predicted agreement", format="%.3f"),
    "realized_agreement": st.column_config.NumberColumn("judge matched humans", format="%.0f"),
    "priority": st.column_config.NumberColumn("priority", format="%.3f")})
