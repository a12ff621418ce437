"""Plotly figures for the dashboards: data in, ``plotly.graph_objects.Figure`` out.

Pure functions, no Streamlit. Plotly renders a subset of HTML in labels,
ticks and hover text (``<b>``, ``<a href>``, ...), so every name that comes
from the data (raters, systems, judges) passes through :func:`label` first
and shows as the text it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

HEATMAP_SCALE = "RdBu"
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def label(text: object) -> str:
    """Return ``text`` escaped so that Plotly shows it literally."""
    return html.escape(str(text), quote=True)


def _none_to_nan(rows: Iterable[Iterable[float | None]]) -> list[list[float]]:
    return [[math.nan if v is None else float(v) for v in row] for row in rows]


def _layout(fig: go.Figure, title: str, **extra) -> go.Figure:
    fig.update_layout(title=label(title), margin=MARGIN, **extra)
    return fig


def kappa_heatmap(raters: Sequence[str], matrix: Sequence[Sequence[float | None]],
                  title: str = "Cohen's κ between raters") -> go.Figure:
    """Heatmap of pairwise kappas on a fixed [-1, 1] scale, values printed in the cells."""
    z = _none_to_nan(np.asarray(matrix, dtype=float).tolist())
    names = [label(r) for r in raters]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, zmin=-1, zmax=1, colorscale=HEATMAP_SCALE,
        text=[["" if math.isnan(v) else f"{v:.3f}" for v in row] for row in z],
        texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"))
    return _layout(fig, title, yaxis={"autorange": "reversed"})


def alpha_over_time(rows: Sequence[Mapping], title: str = "Agreement over time") -> go.Figure:
    """Lines of Krippendorff's α and percent agreement per period (rows of agreement_over_time)."""
    periods = [r["period"] for r in rows]
    fig = go.Figure()
    for key, name in (("krippendorff_alpha", "Krippendorff's α"),
                      ("percent_agreement", "percent agreement")):
        fig.add_trace(go.Scatter(
            x=periods, y=[math.nan if r.get(key) is None else r[key] for r in rows],
            mode="lines+markers", name=name))
    alphas = [r["krippendorff_alpha"] for r in rows if r.get("krippendorff_alpha") is not None]
    return _layout(fig, title, yaxis={"range": [min([0.0, *alphas]), 1.0]},
                   xaxis={"title": "period"})


def score_errorbars(rows: Sequence[Mapping], title: str = "Scores with 95% CI") -> go.Figure:
    """Points at each row's ``score`` with asymmetric error bars to ``ci_low``/``ci_high``.

    ``rows`` are leaderboard rows (best first); they are drawn top to bottom.
    """
    names = [label(r["name"]) for r in rows]
    scores = [float(r["score"]) for r in rows]
    plus = [math.nan if r.get("ci_high") is None else float(r["ci_high"]) - float(r["score"])
            for r in rows]
    minus = [math.nan if r.get("ci_low") is None else float(r["score"]) - float(r["ci_low"])
             for r in rows]
    fig = go.Figure(go.Scatter(
        x=scores, y=names, mode="markers",
        error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    return _layout(fig, title, xaxis={"title": "log-strength (centred)"},
                   yaxis={"autorange": "reversed", "type": "category"},
                   height=max(300, 28 * len(rows) + 120))


def win_rate_heatmap(names: Sequence[str], rate: Sequence[Sequence[float | None]],
                     games: Sequence[Sequence[int]] | None = None,
                     title: str = "Win rate of row over column",
                     order: Sequence[str] | None = None) -> go.Figure:
    """Heatmap of empirical win rates on [0, 1]; empty where two systems never met.

    ``order`` (e.g. the leaderboard's) puts those names first, in that order.
    """
    n = games if games is not None else [[0] * len(names) for _ in names]
    if order is not None:
        pos = [names.index(x) for x in order if x in names]
        pos += [i for i in range(len(names)) if i not in pos]
        names = [names[i] for i in pos]
        rate = [[rate[i][j] for j in pos] for i in pos]
        n = [[n[i][j] for j in pos] for i in pos]
    z = _none_to_nan(rate)
    text = [["" if math.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    shown = [label(x) for x in names]
    fig = go.Figure(go.Heatmap(
        z=z, x=shown, y=shown, zmin=0, zmax=1, colorscale=HEATMAP_SCALE, text=text,
        texttemplate="%{text}", customdata=n,
        hovertemplate="%{y} beat %{x}: %{z:.3f} of %{customdata} games<extra></extra>"))
    return _layout(fig, title, yaxis={"autorange": "reversed"})


def type_scores(types: Sequence[Mapping], title: str = "Scores per rater type") -> go.Figure:
    """Grouped bars: one trace per type (rows of leaderboard.type_rows), systems on the x axis."""
    fig = go.Figure()
    order = [r["name"] for r in types[0]["rows"]] if types else []
    for t in types:
        scores = {r["name"]: r["score"] for r in t["rows"]}
        fig.add_trace(go.Bar(x=[label(n) for n in order], y=[scores.get(n) for n in order],
                             name=f"type {t['type']} ({t['weight']:.0%})"))
    return _layout(fig, title, barmode="group", yaxis={"title": "log-strength"})


def type_probabilities(rows: Sequence[Mapping], title: str = "Type probability per rater"
                       ) -> go.Figure:
    """Stacked horizontal bars of each rater's type probabilities (rows of rater_type_rows)."""
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("type ")]
    raters = [label(r["rater"]) for r in rows]
    fig = go.Figure([go.Bar(y=raters, x=[r[k] for r in rows], name=k, orientation="h")
                     for k in keys])
    return _layout(fig, title, barmode="stack", xaxis={"range": [0, 1]},
                   yaxis={"type": "category"}, height=max(300, 24 * len(rows) + 120))


def confusion_heatmap(labels: Sequence[str], counts: Sequence[Sequence[int]],
                      title: str = "Human majority (rows) vs judge (columns)") -> go.Figure:
    """Heatmap of a confusion matrix with the counts printed in the cells."""
    names = [label(x) for x in labels]
    fig = go.Figure(go.Heatmap(
        z=[[int(v) for v in row] for row in counts], x=names, y=names, colorscale="Blues",
        texttemplate="%{z}", hovertemplate="human %{y}, judge %{x}: %{z}<extra></extra>"))
    return _layout(fig, title, xaxis={"title": "judge", "type": "category"},
                   yaxis={"title": "human majority", "type": "category",
                          "autorange": "reversed"})


def edit_histogram(distances: Sequence[float], title: str = "Edit distance (characters)",
                   nbins: int = 30) -> go.Figure:
    """Histogram of the edits' Levenshtein distances."""
    fig = go.Figure(go.Histogram(x=[float(d) for d in distances], nbinsx=nbins))
    return _layout(fig, title, xaxis={"title": "characters changed"},
                   yaxis={"title": "edits"})


def calibration_plot(bins: Sequence[Mapping], title: str = "Predicted vs realized agreement"
                     ) -> go.Figure:
    """Realized agreement against mean predicted agreement per bin, with the diagonal."""
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                   line={"dash": "dash", "color": "grey"}),
        go.Scatter(x=[b["mean_predicted"] for b in bins], y=[b["realized"] for b in bins],
                   mode="lines+markers", name="router", customdata=[b["n"] for b in bins],
                   marker={"size": [6 + 14 * math.sqrt(b["n"] / max(x["n"] for x in bins))
                                    for b in bins]},
                   hovertemplate="predicted %{x:.2f}, realized %{y:.2f}, "
                                 "%{customdata} items<extra></extra>"),
    ])
    return _layout(fig, title, xaxis={"title": "predicted agreement", "range": [0, 1]},
                   yaxis={"title": "realized agreement", "range": [0, 1]})
