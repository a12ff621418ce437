"""Leaderboard tables: empirical win rates between systems and rows from stored fits.

:func:`win_rate_pairwise` and the ``*_rows`` functions are pure; the
adapter :func:`refresh_win_rates` reads a project's frames and stores the win
rates as a report (``name="win_rate"``), so the dashboard reads one row.
"""

from __future__ import annotations

import math
import time

import numpy as np

from prefstore.models import PairwiseData, pairwise_from_frames

KINDS = ("human", "llm", "all")
REPORT = "win_rate"


def win_rate_pairwise(data: PairwiseData) -> dict:
    """Count wins and games between every pair of items of pairwise data.

    Every row of ``data`` is one game whatever its weight (strength is not an
    outcome count); a tie gives half a win to each side. A slate judgment
    arrives here already expanded into its pairs by the adapter.

    Returns
    -------
    dict
        ``{"names", "wins", "games", "rate"}``: ``wins[i][j]`` is how often
        ``names[i]`` beat ``names[j]``, ``games`` is symmetric, and
        ``rate[i][j] = wins[i][j] / games[i][j]`` (``None`` where they never met).
    """
    n = data.n_items
    wins = np.zeros((n, n))
    games = np.zeros((n, n))
    w, lo, tie = data.winners, data.losers, data.ties
    np.add.at(wins, (w[~tie], lo[~tie]), 1.0)
    np.add.at(wins, (w[tie], lo[tie]), 0.5)
    np.add.at(wins, (lo[tie], w[tie]), 0.5)
    np.add.at(games, (w, lo), 1.0)
    np.add.at(games, (lo, w), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(games > 0, wins / games, np.nan)
    return {
        "names": list(data.names),
        "wins": wins.tolist(),
        "games": games.astype(int).tolist(),
        "rate": [[None if math.isnan(v) else float(v) for v in row] for row in rate],
    }


def leaderboard_rows(result: dict) -> list[dict]:
    """Return a fit result's items as rows, best first: rank, name, score, 95% CI, Elo.

    ``result`` is a stored :meth:`FitResult.to_dict` (``scores``, ``ci95``,
    optionally ``elo``). Ties in score share the order of their names.
    """
    scores = result.get("scores") or {}
    ci = result.get("ci95") or {}
    elo = result.get("elo") or {}
    ordered = sorted(scores, key=lambda name: (-scores[name], name))
    rows = []
    for rank, name in enumerate(ordered, start=1):
        low, high = ci.get(name) or (None, None)
        rows.append({"rank": rank, "name": name, "score": scores[name],
                     "ci_low": low, "ci_high": high, "elo": elo.get(name)})
    return rows


def rank_change(before: int | None, after: int) -> str:
    """Describe a move in rank as plain text: "▲2" up two places, "▼1" down one, "=" none.

    ``before`` None (not ranked before) gives "".
    """
    if before is None:
        return ""
    if before == after:
        return "="
    return f"▲{before - after}" if after < before else f"▼{after - before}"


def style_comparison(plain: dict, styled: dict) -> tuple[list[dict], list[dict]]:
    """Return both leaderboards side by side: plain rows, then style-controlled rows.

    ``plain`` and ``styled`` are stored fit results (a Bradley-Terry fit and its
    style-controlled counterpart); each style row gains ``change``, the
    :func:`rank_change` from the plain ranking.
    """
    plain_rows = leaderboard_rows(plain)
    before = {row["name"]: row["rank"] for row in plain_rows}
    style_rows = [{**row, "change": rank_change(before.get(row["name"]), row["rank"])}
                  for row in leaderboard_rows(styled)]
    return plain_rows, style_rows


def style_coefficient_rows(result: dict) -> list[dict]:
    """Return a style fit's coefficients: feature, coefficient, 95% CI and what is counted.

    A feature left out of the fit (it never varied) has None for its figures.
    """
    coef = result.get("style_coefficients") or {}
    ci = result.get("style_ci95") or {}
    definitions = result.get("style_features") or {}
    rows = []
    for name, value in coef.items():
        low, high = ci.get(name) or (None, None)
        rows.append({"feature": name, "coefficient": value, "ci_low": low, "ci_high": high,
                     "counts": definitions.get(name)})
    return rows


def type_rows(result: dict) -> list[dict]:
    """Return a mixture fit's types: ``{"type", "weight", "rows"}`` with each type's leaderboard.

    Types are numbered from 1 in the fit's order; an ordinary fit (no
    ``types``) gives an empty list.
    """
    return [{"type": k, "weight": t["weight"],
             "rows": leaderboard_rows({"scores": t["scores"], "ci95": t.get("ci95")})}
            for k, t in enumerate(result.get("types") or [], start=1)]


def rater_type_rows(result: dict) -> list[dict]:
    """Return each rater's type probabilities and most likely type (numbered from 1)."""
    rows = []
    for rater, probs in sorted((result.get("raters") or {}).items()):
        row = {"rater": rater}
        row.update({f"type {k}": p for k, p in enumerate(probs, start=1)})
        row["most likely type"] = int(np.argmax(probs)) + 1 if probs else None
        rows.append(row)
    return rows


def project_win_rates(db, project: str | int, *, kinds: tuple[str, ...] = KINDS,
                      frames: tuple | None = None) -> dict:
    """Return ``{kind: win_rate_pairwise(...) + {"n_judgments"}}`` of a project at system level.

    ``frames`` is ``(judgments, responses)`` when the caller has read them already
    (judgments with at least ``store.judgments_frame(columns="model")``'s columns).
    """
    from prefstore import store

    proj = store.get_project(db, project)
    if frames is None:
        frames = (store.judgments_frame(db, proj["id"], columns="model"),
                  store.responses_frame(db, proj["id"], with_text=False))
    judgments, responses = frames
    out = {}
    for kind in kinds:
        data = pairwise_from_frames(judgments, responses, level="system", kind=kind,
                                    strength_weights=None)
        n = len(judgments) if kind == "all" else int((judgments["kind"] == kind).sum())
        out[kind] = {**win_rate_pairwise(data), "n_judgments": n}
    return out


def refresh_win_rates(db, project: str | int, *, kinds: tuple[str, ...] = KINDS,
                      frames: tuple | None = None) -> dict[str, int]:
    """Compute and store the system win-rate matrix per kind; return the report ids.

    ``frames``: see :func:`project_win_rates`; with them, the stored judgment count
    is the frame's length instead of a count query.
    """
    from prefstore import store

    proj = store.get_project(db, project)
    start = time.perf_counter()
    rates = project_win_rates(db, proj["id"], kinds=kinds, frames=frames)
    seconds = time.perf_counter() - start
    total = len(frames[0]) if frames is not None else store.count_judgments(db, proj["id"])
    return {kind: store.save_report(db, proj["id"], name=REPORT, kind=kind, result=result,
                                      n_judgments=total, seconds=seconds)
            for kind, result in rates.items()}
