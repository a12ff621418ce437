"""What the dashboard pages share: the admin gate, the project picker and cached loaders.

Every heavy view reads a stored result (a fit, or a report the worker or
this module wrote); when none exists yet it is computed once and stored, so
a page is never empty when data exists. A stored result made from fewer
judgments than the project now has is recomputed on opening while the project
is small (RECOMPUTE_ON_OPEN judgments); above that the page says plainly how
stale it is and offers a refit. Loaders are keyed by the database path, the
project and store.data_version, so a new judgment shows at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import streamlit as st

from prefstore import agreement, charts, edits, fitting, leaderboard, routing, store
from prefstore import text as inert
from prefstore.errors import PrefstoreError
from prefstore.store.judgments import llm_judge_names
from ui import common

TTL_S = 30
# Up to this many judgments a stale result is recomputed when its page opens
# (a second or two); above it the worker's refits and the Refit button do it.
RECOMPUTE_ON_OPEN = 20_000
NO_JUDGMENTS = "No judgments yet — share rater links from Admin."
KIND_LABELS = {"human": "Human", "llm": "LLM", "all": "All"}
HYBRID = "hybrid"
SOURCE_LABELS = {**KIND_LABELS, HYBRID: "Hybrid (human-corrected)"}


class Keys(common.Keys):
    """The dashboard's widget keys, beside the shared ones."""

    DASH_PROJECT = "dash_project"
    AGREEMENT_KIND = "dash_agreement_kind"
    RATER_FILTER = "dash_rater_filter"
    FLAGGED_ONLY = "dash_flagged_only"
    MIN_CONSENSUS = "dash_min_consensus"
    MIN_SECONDS = "dash_min_seconds"
    MODEL = "dash_model"
    JUDGMENT_KIND = "dash_judgment_kind"
    TYPES_KIND = "dash_types_kind"
    TYPES_K = "dash_types_k"
    JUDGE = "dash_judge"
    DECISION = "dash_decision"
    REFIT = "dash_refit"
    ROUTE = "dash_route"
    STYLE_CONTROL = "dash_style_control"
    HYBRID_JUDGE = "dash_hybrid_judge"


def db_path() -> str:
    return store.canonical()


# --------------------------------------------------------------------------
# Page frame


def open_page(title: str) -> tuple:
    """Refuse non-admins, show the title and the project picker; return (db, project, counts)."""
    db = common.get_db()
    common.require_admin(db)
    st.title(title)
    projects = store.list_projects(db)
    if not projects:
        st.info("No projects yet: import items with `prefstore import items.jsonl "
                "--project NAME`.", icon=":material/upload:")
        st.stop()
    project = common.pick_project(projects, Keys.DASH_PROJECT)
    return db, project, counts(db_path(), project["id"], project["settings"].raters_per_item,
                               store.data_version(db))


def require_judgments(n: int, message: str = NO_JUDGMENTS) -> None:
    if not n:
        st.info(message, icon=":material/share:")
        st.stop()


def n_of(counts: dict, kind: str) -> int:
    """Judgments of ``kind`` ("human", "llm" or "all")."""
    return counts["judgments"]["total" if kind == "all" else kind]


# --------------------------------------------------------------------------
# Cached loaders


@st.cache_data(ttl=TTL_S, show_spinner=False)
def counts(path: str, project_id: int, raters_per_item: int, version: tuple) -> dict:
    return store.dashboard_counts(common.get_db(), project_id, raters_per_item)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _latest_report(path: str, project_id: int, name: str, kind: str, n: int) -> dict | None:
    return store.latest_report(common.get_db(), project_id, name=name, kind=kind)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _latest_fit(path: str, project_id: int, model: str, kind: str, n: int) -> dict | None:
    return store.latest_fit(common.get_db(), project_id, model=model, level="system",
                              kind=kind)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _latest_fit_named(path: str, project_id: int, model: str, kind: str, n: int) -> dict | None:
    return store.latest_fit(common.get_db(), project_id, model=model, level="system", kind=kind)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def llm_judges(path: str, project_id: int, n: int) -> list[str]:
    """Names of the project's LLM raters (cached by judgment count)."""
    return llm_judge_names(common.get_db(), project_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def routing_decisions(path: str, project_id: int, n: int) -> pd.DataFrame:
    return store.routing_frame(common.get_db(), project_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def edit_examples(path: str, judgment_ids: tuple[int, ...]) -> list[dict]:
    return edits.edit_examples(common.get_db(), list(judgment_ids))


def clear_caches() -> None:
    for loader in (counts, _latest_report, _latest_fit, routing_decisions, edit_examples,
                   _latest_fit_named, llm_judges, _last_change_at):
        loader.clear()


# --------------------------------------------------------------------------
# Stored results, computed once when missing


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _last_change_at(path: str, project_id: int, version: tuple) -> str | None:
    return store.last_change_at(common.get_db(), project_id)


def _last_change(project_id: int) -> str | None:
    return _last_change_at(db_path(), project_id, store.data_version(common.get_db()))


def changed_since(row: dict, changed: str | None = None) -> bool:
    """Whether a judgment was changed after ``row`` was stored (its count still matches)."""
    changed = _last_change(row["project_id"]) if changed is None else changed
    return changed is not None and changed >= row["created_at"]


def _bring_up_to_date(row: dict | None, n: int, key: tuple) -> bool:
    """Whether to recompute ``row`` now: it is missing, or stale on a small project.

    Tried once per result, judgment count and last change in a session: a
    result whose own count can never match (a filtered fit) must not be
    recomputed on every run.
    """
    changed = None if row is None else _last_change(row["project_id"])
    if row is not None and ((row["n_judgments"] == n and not changed_since(row, changed))
                            or n > RECOMPUTE_ON_OPEN):
        return False
    tried = st.session_state.setdefault("_dash_recomputed", set())
    if (key, n, changed) in tried and row is not None:
        return False
    tried.add((key, n, changed))
    return True


def _compute_once(what: str, compute: Callable[[], object], stale: bool = False) -> bool:
    message = (f"{what[0].upper()}{what[1:]} is older than the latest judgments: updating it…"
               if stale else f"No stored {what} yet: computing it once…")
    with st.spinner(message):
        try:
            compute()
        except PrefstoreError as exc:
            st.error(f"Could not compute the {what}: {inert.escape_markdown(exc)}", icon=":material/error:")
            return False
    clear_caches()
    return True


def report(db, project: dict, name: str, kind: str, n: int, compute: Callable[[], object],
           *, what: str, stale_before: str | None = None,
           needs_key: str | None = None) -> dict | None:
    """Return the latest stored report ``name``/``kind``; compute and store it if missing.

    ``stale_before``: an ISO time; a report older than it is recomputed once
    (e.g. routing decisions newer than their calibration report). ``needs_key``:
    a report whose result lacks this key (stored by an older version) is
    recomputed once.
    """
    row = _latest_report(db_path(), project["id"], name, kind, n)
    if row is None or (stale_before is not None and row["created_at"] < stale_before) or (
            needs_key is not None and needs_key not in row["result"]) or _bring_up_to_date(
            row, n, ("report", project["id"], name, kind)):
        if not _compute_once(what, compute, stale=row is not None):
            return row
        row = store.latest_report(db, project["id"], name=name, kind=kind)
    return row


def agreement_report(db, project: dict, kind: str, counts: dict,
                     needs_key: str | None = None) -> dict | None:
    return report(db, project, "agreement", kind, counts["judgments"]["total"],
                  lambda: agreement.refresh_agreement(db, project["id"]),
                  what="agreement report", needs_key=needs_key)


def fit(db, project: dict, model: str, kind: str, n: int) -> dict | None:
    """Return the latest stored system-level fit of ``model`` on ``kind``; fit once if missing."""
    row = _latest_fit(db_path(), project["id"], model, kind, n)
    if row is None or _bring_up_to_date(row, n, ("fit", project["id"], model, kind)):
        if not _compute_once(f"{model} fit", lambda: fitting.fit_project(
                db, project["id"], model=model, level="system", kind=kind,
                fallback_alpha=fitting.FALLBACK_ALPHA),
                stale=row is not None):
            return row
        row = store.latest_fit(db, project["id"], model=model, level="system", kind=kind)
    return row


def stored_fit(db, project: dict, model: str, kind: str, n: int,
               compute: Callable[[], object], what: str, *, follow: bool = True) -> dict | None:
    """Return the latest stored system-level fit ``model``/``kind``; compute it once if missing.

    ``follow``: also recompute it when stale (its count is comparable with ``n``).
    """
    row = _latest_fit_named(db_path(), project["id"], model, kind, n)
    if row is None or (follow and _bring_up_to_date(row, n, ("fit", project["id"], model,
                                                            kind))):
        if not _compute_once(what, compute, stale=row is not None):
            return row
        row = store.latest_fit(db, project["id"], model=model, level="system", kind=kind)
    return row


def style_fit(db, project: dict, kind: str, n: int) -> dict | None:
    """The latest style-controlled Bradley-Terry fit on ``kind`` judgments (fitted if missing)."""
    return stored_fit(db, project, fitting.STYLE_MODEL, kind, n,
                      lambda: fitting.fit_style_project(db, project["id"], kind=kind),
                      "style-controlled fit")


def hybrid_fit(db, project: dict, judge: str, n: int) -> dict | None:
    """The latest hybrid fit with LLM judge ``judge`` (fitted if missing)."""
    return stored_fit(db, project, fitting.hybrid_model_name(judge), "all", n,
                      lambda: fitting.fit_hybrid_project(db, project["id"], judge=judge),
                      "hybrid fit", follow=False)


def win_rates(db, project: dict, kind: str, counts: dict) -> dict | None:
    return report(db, project, leaderboard.REPORT, kind, counts["judgments"]["total"],
                  lambda: leaderboard.refresh_win_rates(db, project["id"]),
                  what="win-rate matrix")


def edit_report(db, project: dict, counts: dict) -> dict | None:
    return report(db, project, edits.REPORT, "all", counts["judgments"]["total"],
                  lambda: edits.refresh_edit_report(db, project["id"]), what="edit report")


def routing_report(db, project: dict, counts: dict, decided_at: str) -> dict | None:
    return report(db, project, routing.REPORT, "all", counts["judgments"]["total"],
                  lambda: routing.refresh_routing_report(db, project["id"]),
                  what="routing report", stale_before=decided_at)


# --------------------------------------------------------------------------
# Age and "refit now"


def describe_age(created_at: str, now: dt.datetime | None = None) -> str:
    """Return how long ago an ISO timestamp was, coarsely: "12 s", "5 min", "3 h", "2 d"."""
    seconds = max(0, int(((now or dt.datetime.now(dt.UTC))
                          - store.parse_iso(created_at)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def stored_caption(row: dict, n_now: int, what: str) -> str:
    new = n_now - row["n_judgments"]
    text = (f"{what} stored {describe_age(row['created_at'])} ago from "
            f"{row['n_judgments']:,} judgments")
    if new > 0:
        text += f"; {new:,} new since"
    if row.get("seconds") is not None:
        text += f" (took {row['seconds']:.1f} s)"
    return text + "."


def freshness(row: dict | None, n_now: int, what: str, run: Callable[[], object],
              key: str, label: str = "Refit now") -> None:
    """Show the stored result's age and a button that recomputes it here and reruns."""
    left, right = st.columns([4, 1], vertical_alignment="center")
    if row is not None and n_now > row["n_judgments"]:
        # Not a grey caption: numbers that leave out judgments must be noticed.
        left.warning(stored_caption(row, n_now, what) + " Refit to include the new ones.",
                     icon=":material/update:")
    elif row is not None and changed_since(row):
        left.warning(stored_caption(row, n_now, what) + " A judgment was changed since: "
                     "refit to use the change.", icon=":material/update:")
    elif row is not None:
        left.caption(stored_caption(row, n_now, what))
    if right.button(label, key=key, icon=":material/refresh:", width="stretch"):
        with st.spinner(f"Recomputing the {what.lower()}…"):
            try:
                run()
            except PrefstoreError as exc:
                st.error(f"Not recomputed: {inert.escape_markdown(exc)}", icon=":material/error:")
                return
        clear_caches()
        st.rerun()


def style_bias_figure(rows: list[dict], title: str = "Style coefficients with 95% CI"):
    """Grouped bars of a judge's and the human raters' style coefficients, with error bars.

    ``rows`` are :func:`prefstore.agreement.judge_style_rows`; the legend names no
    one, so no stored text reaches Plotly's HTML-capable labels.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    features = [charts.label(r["feature"]) for r in rows]
    for key, name in (("judge", "this judge"), ("humans", "your raters (same items)")):
        values = [r[key] for r in rows]
        fig.add_trace(go.Bar(
            x=features, y=[float("nan") if v is None else v for v in values], name=name,
            error_y={"type": "data", "symmetric": False,
                     "array": [float("nan") if r[f"{key}_ci_high"] is None or r[key] is None
                               else r[f"{key}_ci_high"] - r[key] for r in rows],
                     "arrayminus": [float("nan") if r[f"{key}_ci_low"] is None or r[key] is None
                                    else r[key] - r[f"{key}_ci_low"] for r in rows]},
            hovertemplate=f"{name} · %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", title=charts.label(title), margin=charts.MARGIN,
                      yaxis={"title": "log-odds per SD of the feature difference"})
    return fig


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a stored figure for a card: fixed digits, "—" when undefined."""
    return "—" if value is None else f"{value:.{digits}f}"


def ci_text(ci: list | None, digits: int = 3) -> str | None:
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return f"95% CI {ci[0]:.{digits}f} – {ci[1]:.{digits}f}"
