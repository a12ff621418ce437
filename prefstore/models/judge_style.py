"""Judge style bias: do LLM judges reward style more than the human raters do?

The style-controlled Bradley-Terry model (:mod:`prefstore.models.style`, Li et al.
2024) is fitted separately to the human judgments and to each LLM judge's
judgments on the items both have judged, with the covariates standardised on one
scale (the humans'), so the coefficients are comparable. A judge's coefficient
differs from the humans' when ``|z| > 1.96`` with
``z = (gamma_judge - gamma_humans) / sqrt(se_judge^2 + se_humans^2)``; the two fits
are treated as independent, which ignores that they share items and is therefore
approximate. LLM-as-judge length bias is well documented (Zheng et al. 2023,
"Judging LLM-as-a-judge with MT-Bench and Chatbot Arena"; Dubois et al. 2024,
"Length-controlled AlpacaEval").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput, PrefstoreError
from prefstore.models.adapter import STRENGTH_WEIGHTS, pairwise_style_from_frames
from prefstore.models.style import (
    FASTCHAT_ALPHA,
    FASTCHAT_BETA,
    STYLE_FEATURE_DEFINITIONS,
    STYLE_FEATURES,
    style_pairwise,
)

Z95 = 1.959963984540054
_WORDS = {"length": "length", "headers": "headers", "lists": "lists", "bold": "bold text"}


def _fit(judgments, responses, level, features, alpha, beta, scale=None):
    data, x = pairwise_style_from_frames(
        judgments,
        responses,
        level=level,
        kind="all",
        strength_weights=STRENGTH_WEIGHTS,
        features=features,
    )
    return style_pairwise(
        data, x, alpha=alpha, beta=beta, feature_names=list(features), scale=scale, ci="hessian"
    )


def _coefs(fit, features) -> tuple[dict, dict, dict]:
    out = fit.to_dict()
    se = {}
    for name, (lo, hi) in zip(features, fit.style_ci95):
        width = hi - lo
        se[name] = float(width / (2 * Z95)) if np.isfinite(width) else None
    return out["style_coefficients"], out["style_ci95"], se


def style_difference_summary(judge: dict, humans: dict, humans_se: dict, differs: dict) -> str:
    """Say in one sentence how a judge's style coefficients differ from the humans'.

    A ratio is given when both coefficients have the same sign and the humans'
    is itself clearly non-zero (``|coef| > 1.96 se``); otherwise the difference is
    put in words.
    """
    parts = []
    for name, flag in differs.items():
        if not flag:
            continue
        j, h, se = judge[name], humans[name], humans_se[name]
        what = _WORDS.get(name, name)
        verb = "rewards" if j > 0 else "penalises"
        if se and abs(h) > Z95 * se and np.sign(j) == np.sign(h):
            ratio = j / h
            if ratio >= 1:
                parts.append(f"{verb} {what} {ratio:.1f}x more than your raters")
            else:
                parts.append(f"{verb} {what} less than your raters ({ratio:.1f}x as much)")
        elif se and abs(h) > Z95 * se:
            theirs = "reward" if h > 0 else "penalise"
            parts.append(f"{verb} {what} while your raters {theirs} it")
        else:
            parts.append(
                f"{verb} {what} ({j:+.2f} log-odds per standard deviation) while your "
                f"raters show no clear preference"
            )
    if not parts:
        return "No significant difference from your raters in how style is rewarded."
    return "This judge " + "; ".join(parts) + "."


def judge_style_bias(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    *,
    level: str = "system",
    features: tuple[str, ...] | list[str] | None = None,
    alpha: float = FASTCHAT_ALPHA,
    beta: float = FASTCHAT_BETA,
) -> dict[str, Any]:
    """Compare each LLM judge's style coefficients with the human raters'.

    Parameters
    ----------
    judgments, responses : DataFrame
        The store's frames, as for
        :func:`prefstore.models.adapter.pairwise_style_from_frames` (``responses``
        with a ``text`` column; ``judgments`` with ``kind`` "human" or "llm").
    level : {"system", "response"}
    features : sequence of str, optional
        Default :data:`prefstore.models.style.STYLE_FEATURES`.
    alpha, beta : float
        Penalties of :func:`prefstore.models.style.style_pairwise`; the defaults
        (FastChat's) keep fits on small subsets finite.

    Returns
    -------
    dict
        JSON-able, None where a value does not exist::

            {"humans_style_coefficients": {feature: coef}, "humans_style_ci95": {...},
             "n_human_items": int, "style_features": {feature: definition},
             "judges": [{"judge", "n_items", "style_coefficients", "style_ci95",
                         "humans_style_coefficients", "humans_style_ci95", "z",
                         "differs", "summary"}]}

        Per judge, the humans' coefficients are refitted on the items that judge
        shares with them, on the same covariate scale as the judge's fit.

    Raises
    ------
    InvalidInput
        If there is no human judgment, or on bad frames (see the adapter).
    """
    features = tuple(STYLE_FEATURES if features is None else features)
    human = judgments[judgments["kind"] == "human"]
    if human.empty:
        raise InvalidInput("judge style bias needs human judgments, got none")
    humans_fit = _fit(human, responses, level, features, alpha, beta)
    h_coef, h_ci, _ = _coefs(humans_fit, features)
    human_items = set(human["item_id"].tolist())
    llm = judgments[judgments["kind"] == "llm"]
    report = []
    for name in sorted(llm["rater"].astype(str).unique()):
        mine = llm[llm["rater"].astype(str) == name]
        shared = sorted(human_items & set(mine["item_id"].tolist()))
        entry: dict[str, Any] = {"judge": name, "n_items": len(shared)}
        empty = dict.fromkeys(features)
        try:
            if not shared:
                raise InvalidInput("no item judged by both this judge and humans")
            hs = _fit(human[human["item_id"].isin(shared)], responses, level, features, alpha, beta)
            js = _fit(
                mine[mine["item_id"].isin(shared)],
                responses,
                level,
                features,
                alpha,
                beta,
                scale=hs.style_scale,
            )
        except PrefstoreError as exc:
            entry.update(
                style_coefficients=empty,
                style_ci95=empty,
                humans_style_coefficients=empty,
                humans_style_ci95=empty,
                z=empty,
                differs=empty,
                summary=f"could not compare: {exc}",
            )
            report.append(entry)
            continue
        jc, jci, jse = _coefs(js, features)
        hc, hci, hse = _coefs(hs, features)
        z, differs = {}, {}
        for f in features:
            if jc[f] is None or hc[f] is None or jse[f] is None or hse[f] is None:
                z[f], differs[f] = None, None
                continue
            z[f] = float((jc[f] - hc[f]) / np.hypot(jse[f], hse[f]))
            differs[f] = bool(abs(z[f]) > Z95)
        entry.update(
            style_coefficients=jc,
            style_ci95=jci,
            humans_style_coefficients=hc,
            humans_style_ci95=hci,
            z=z,
            differs=differs,
            summary=style_difference_summary(jc, hc, hse, differs),
        )
        report.append(entry)
    return {
        "humans_style_coefficients": h_coef,
        "humans_style_ci95": h_ci,
        "n_human_items": len(human_items),
        "style_features": {f: STYLE_FEATURE_DEFINITIONS[f] for f in features},
        "judges": report,
    }


__all__ = ["judge_style_bias", "style_difference_summary"]
