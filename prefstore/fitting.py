"""Fit a project's preference models from the store and keep the results in ``fits``.

This is the one place where the store's frames meet the pure models: it
reads the frames, lets :mod:`prefstore.models.adapter` map them to integer
indices, calls the registered model and saves the JSON result.

Two Bradley-Terry variants are stored beside the registered models:

- ``"bt+style"`` (one per kind): scores controlled for style (Li et al. 2024,
  :mod:`prefstore.models.style`), with the style coefficients;
- ``"bt+hybrid:<judge>"`` (kind ``"all"``): human judgments made more precise by an
  LLM judge's by prediction-powered inference (PPI++, :mod:`prefstore.models.hybrid`).
"""

from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager

from prefstore import store
from prefstore.errors import InvalidInput, NotConverged
from prefstore.models import MODELS, get_model
from prefstore.models.adapter import (
    hybrid_items_from_frames,
    pair_count_deltas,
    pairwise_from_counts,
    pairwise_from_frames,
    pairwise_style_from_frames,
    rankings_from_frames,
)
from prefstore.models.hybrid import HYBRID_ALPHA, evaluate_hybrid, hybrid_pairwise
from prefstore.models.style import FASTCHAT_BETA, STYLE_FEATURES, style_pairwise

LEVELS = ("system", "response")
KINDS = ("all", "human", "llm")
#: Stored model name of the style-controlled Bradley-Terry fit.
STYLE_MODEL = "bt+style"
#: Stored model names of hybrid fits start with this, then ":" and the judge's name.
HYBRID_MODEL = "bt+hybrid"


# The L2 prior of response-level fits made for exports: most responses meet one
# other response once, and without a prior a response that never lost runs off to infinity.
RESPONSE_ALPHA = 1.0


# The models whose fits read the running pair counts instead of every judgment
# (issue 17): their likelihood only needs the summed weights per pair and outcome.
COUNTS_MODELS = ("bt", "davidson")


# The weak prior a background or dashboard fit falls back to when the maximum-likelihood
# estimate does not exist (a system that never lost yet, a split comparison graph).
FALLBACK_ALPHA = 0.01


def fit_project(db, project: str | int, *, model: str = "bt", level: str = "system",
                kind: str = "all", k: int | None = None, alpha: float | None = None,
                fallback_alpha: float | None = None,
                ci: str | None = "hessian", n_boot: int = 200, seed: int = 0,
                save: bool = True, style_control: bool = False,
                style_features: str | list[str] | tuple[str, ...] | None = None,
                style_alpha: float | None = None, hybrid_judge: str | None = None,
                ppi_lambda: float | str = "auto", from_counts: bool = True) -> dict:
    """Fit ``model`` on a project's judgments and return the JSON-able result.

    The result holds at least ``model, level, scores, ci95, log_likelihood,
    n_comparisons, seconds``; a mixture adds ``types`` and ``raters``. With
    ``save`` the fit is stored in the ``fits`` table with its parameters.
    ``alpha`` is the L2 prior; None keeps the model's default (0 for BT and
    PL, a small positive prior for the mixture). With ``fallback_alpha`` and
    no ``alpha``, a fit whose maximum-likelihood estimate does not exist is
    made again with that prior, and ``notes`` in the result says so.

    ``style_control`` (Bradley-Terry at system level only) fits
    :func:`fit_style_project` instead; ``hybrid_judge`` (the same) fits
    :func:`fit_hybrid_project` with that LLM judge and ``ppi_lambda``.

    Bradley-Terry and Davidson fits without bootstrap intervals read the running
    pair counts (:func:`refresh_pair_counts` first folds in what is new), O(pairs)
    rows instead of every judgment, with the same result; ``from_counts=False``
    reads the judgments instead (the reference the counts are tested against).

    Raises
    ------
    InvalidInput
        For an unknown model, level or kind, a style or hybrid fit asked of another
        model or level, or a project with no usable judgments.
    NotConverged
        When the comparison graph is disconnected and no prior is set.
    """
    if not style_control and (style_features is not None or style_alpha is not None):
        raise InvalidInput("--style-features and --style-alpha need --style-control")
    if hybrid_judge is None and ppi_lambda != "auto":
        raise InvalidInput("--ppi-lambda needs --hybrid-judge")
    if style_control or hybrid_judge is not None:
        _check_variant(model, level, kind, style_control, hybrid_judge)
        if style_control:
            return fit_style_project(db, project, kind=kind, features=style_features,
                                     alpha=alpha, style_alpha=style_alpha, ci=ci,
                                     n_boot=n_boot, seed=seed, save=save)
        return fit_hybrid_project(db, project, judge=hybrid_judge, lam=ppi_lambda, alpha=alpha,
                                  save=save)
    spec = get_model(model)
    if level not in LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    proj = store.get_project(db, project)
    start = time.perf_counter()
    counted = None
    if from_counts and model in COUNTS_MODELS and ci != "bootstrap":
        counted = _data_from_counts(db, proj, level, kind)
    if counted is not None:
        data, n_judgments, n_comparisons = counted
    else:
        judgments = store.judgments_frame(db, proj["id"], kind=kind, columns="model")
        if judgments.empty:
            raise _no_judgments(proj, kind)
        responses = store.responses_frame(db, proj["id"], with_text=False)
        if spec.data == "rankings":
            data = rankings_from_frames(judgments, responses, level=level, kind=kind)
        else:
            data = pairwise_from_frames(judgments, responses, level=level, kind=kind)
        n_judgments, n_comparisons = len(judgments), len(data)
    options = {"k": k} if model == "mixture" else {}
    if alpha is not None:  # else the model's own default prior
        options["alpha"] = alpha
    notes = []
    try:
        result = spec.fit(data, ci=ci, n_boot=n_boot, seed=seed, **options)
    except NotConverged as exc:
        if fallback_alpha is None or alpha is not None:
            raise
        options["alpha"] = fallback_alpha
        result = spec.fit(data, ci=ci, n_boot=n_boot, seed=seed, **options)
        notes.append(f"No maximum-likelihood fit yet ({exc}); these scores use a weak prior, "
                     f"alpha = {fallback_alpha}, until more comparisons arrive.")
    seconds = time.perf_counter() - start
    with _collector_paused():
        out = result.to_dict()
    if notes:
        out["notes"] = notes
    out.update({"model": model, "level": level, "kind": kind, "seconds": seconds,
                "project": proj["name"], "n_comparisons": n_comparisons})
    if save:
        params = {"alpha": options.get("alpha", alpha), "ci": ci, "n_boot": n_boot,
                  "seed": seed, "k": k}
        out["fit_id"] = store.save_fit(
            db, proj["id"], model=model, level=level, kind=kind, params=params, result=out,
            n_judgments=n_judgments, seconds=seconds)
    return out


def _no_judgments(proj: dict, kind: str) -> InvalidInput:
    which = "" if kind == "all" else f"{kind} "
    return InvalidInput(f"project {proj['name']!r} has no {which}judgments to fit")


def refresh_pair_counts(db, project: str | int) -> dict:
    """Fold a project's new judgments, changes and exclusions into its pair counts.

    Returns :func:`prefstore.store.fold_pair_counts`'s summary. Safe to call from
    several processes at once: folds are serialized and never count a judgment twice.
    """
    proj = store.get_project(db, project)
    return store.fold_pair_counts(db, proj["id"], pair_count_deltas)


def _data_from_counts(db, proj: dict, level: str, kind: str):
    """Return ``(data, n_judgments, n_comparisons)`` from the pair counts, or None.

    None sends the fit to the judgments, which name the problem: a judgment the
    models cannot read, or (level "system") one on an item whose response has no system.
    """
    try:
        store.fold_pair_counts(db, proj["id"], pair_count_deltas)
    except InvalidInput:
        return None
    totals = store.pair_count_totals(db, proj["id"], kind=kind)
    if totals["n_judgments"] == 0:
        raise _no_judgments(proj, kind)
    if level == "system" and totals["n_no_system"]:
        return None
    with _collector_paused():
        counts = store.pair_counts_frame(db, proj["id"], level=level, kind=kind)
    data, n_comparisons = pairwise_from_counts(counts, level)
    return data, totals["n_judgments"], n_comparisons


@contextmanager
def _collector_paused():
    """Hold off Python's cyclic garbage collector for a moment.

    A response-level read or result makes a few hundred thousand small objects
    that stay alive (a tuple per count row, an interval pair per response), and
    the collector walked the whole heap over them three times: a quarter of a
    1M-judgment fit (issue 17). They make no cycles; collection resumes after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def default_models(project: dict) -> list[tuple[str, str]]:
    """Return the (model, level) pairs the worker refits for a project."""
    if project["kind"] == "slate":
        return [("pl", "system"), ("bt", "system"), ("bt", "response")]
    return [("bt", "system"), ("davidson", "system"), ("bt", "response")]


def refit_all(db, project: str | int, *, progress=None) -> dict:
    """Refit the default models of a project; failures are recorded, not raised."""
    proj = store.get_project(db, project)
    done, failed = [], {}
    pairs = default_models(proj)
    for n, (model, level) in enumerate(pairs, start=1):
        try:
            # Some systems may have too few comparisons for a finite MLE: a weak
            # prior keeps the background refit informative instead of failing.
            # Response level: scores only (export margins read them); Hessian
            # intervals over a large pool would need a dense n x n inverse.
            fit_project(db, proj["id"], model=model, level=level, kind="all",
                        alpha=None if level == "system" else 0.01,
                        fallback_alpha=FALLBACK_ALPHA,
                        ci="hessian" if level == "system" else None)
            done.append(f"{model}/{level}")
        except (InvalidInput, NotConverged) as exc:
            failed[f"{model}/{level}"] = str(exc)
        if progress:
            progress(f"fitted {n}/{len(pairs)} models")
    return {"project": proj["name"], "fitted": done, "failed": failed}


def model_choices() -> list[tuple[str, str]]:
    """(name, label) of every registered model, for selectboxes."""
    return [(m.name, m.label) for m in MODELS]


# --------------------------------------------------------------------------
# Style control and hybrid leaderboards


def _check_variant(model: str, level: str, kind: str, style_control: bool,
                   hybrid_judge: str | None) -> None:
    if style_control and hybrid_judge is not None:
        raise InvalidInput("--style-control and --hybrid-judge are separate fits: give one")
    flag = "--style-control" if style_control else "--hybrid-judge"
    if model != "bt" or level != "system":
        raise InvalidInput(f"{flag} works with --model bt at --level system only, got "
                           f"--model {model} --level {level}")
    if hybrid_judge is not None and kind != "all":
        raise InvalidInput(f"--hybrid-judge uses the human judgments and the judge's: leave "
                           f"--kind at all, got {kind!r}")


def parse_style_features(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Return the style features named by ``value`` (comma-separated or a list; None: all).

    Raises
    ------
    InvalidInput
        On an unknown or repeated feature, or none.
    """
    if value is None:
        return STYLE_FEATURES
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    unknown = [v for v in names if v not in STYLE_FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        raise InvalidInput(f"--style-features must be distinct names from "
                           f"{', '.join(STYLE_FEATURES)}, got {value!r}")
    return tuple(names)


def _check_non_negative(flag: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{flag} must be a non-negative number, got {value!r}")
    return float(value)


def fit_style_project(db, project: str | int, *, kind: str = "all",
                      features: str | list[str] | tuple[str, ...] | None = None,
                      alpha: float | None = None, style_alpha: float | None = None,
                      ci: str | None = "hessian", n_boot: int = 200, seed: int = 0,
                      save: bool = True) -> dict:
    """Fit style-controlled Bradley-Terry scores of a project's systems (Li et al. 2024).

    The features are counted on the response texts being compared, which for a
    multi-turn item are the final assistant turn (earlier turns are the item's
    ``messages``, its context). The objective is ``-log L + alpha |theta|^2 +
    style_alpha |gamma|^2`` with ``alpha`` 0 and ``style_alpha``
    :data:`prefstore.models.style.FASTCHAT_BETA` by default.

    Returns
    -------
    dict
        :meth:`prefstore.models.style.StyleFitResult.to_dict` (``scores`` and
        ``ci95`` are the style-controlled ones, plus ``style_coefficients``,
        ``style_ci95`` and ``style_features``, the definitions used) with ``model``
        :data:`STYLE_MODEL`, ``level``, ``kind``, ``project``, ``seconds`` and, when
        saved, ``fit_id``.

    Raises
    ------
    InvalidInput
        On a bad option or a project without judgments of ``kind``.
    NotConverged
        As :func:`prefstore.models.style.style_pairwise`.
    """
    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    features = parse_style_features(features)
    alpha = _check_non_negative("--alpha", alpha)
    style_alpha = _check_non_negative("--style-alpha", style_alpha)
    proj = store.get_project(db, project)
    start = time.perf_counter()
    judgments = store.judgments_frame(db, proj["id"], kind=kind, columns="model")
    if judgments.empty:
        which = "" if kind == "all" else f"{kind} "
        raise InvalidInput(f"project {proj['name']!r} has no {which}judgments to fit")
    responses = store.responses_frame(db, proj["id"], with_text=True)
    data, covariates = pairwise_style_from_frames(judgments, responses, level="system",
                                                  kind=kind, features=features)
    beta = FASTCHAT_BETA if style_alpha is None else style_alpha
    result = style_pairwise(data, covariates, alpha=alpha or 0.0, beta=beta,
                            feature_names=list(features), ci=ci, n_boot=n_boot, seed=seed)
    seconds = time.perf_counter() - start
    out = result.to_dict()
    out.update({"model": STYLE_MODEL, "level": "system", "kind": kind, "seconds": seconds,
                "project": proj["name"]})
    if save:
        params = {"alpha": alpha, "style_alpha": style_alpha, "style_features": list(features),
                  "ci": ci, "n_boot": n_boot, "seed": seed}
        out["fit_id"] = store.save_fit(
            db, proj["id"], model=STYLE_MODEL, level="system", kind=kind, params=params,
            result=out, n_judgments=len(judgments), seconds=seconds)
    return out


def hybrid_model_name(judge: str) -> str:
    """Return the stored model name of a hybrid fit with LLM judge ``judge``."""
    return f"{HYBRID_MODEL}:{judge}"


def _hybrid_items(db, proj: dict, judge: str, flag: str):
    judgments = store.judgments_frame(db, proj["id"], columns="model")
    judges = sorted(judgments.loc[judgments["kind"] == "llm", "rater"].astype(str).unique())
    if not judges:
        raise InvalidInput(f"project {proj['name']!r} has no LLM judgments: a hybrid "
                           f"leaderboard needs an LLM judge")
    if judge not in judges:
        raise InvalidInput(f"{flag}: project {proj['name']!r} has no LLM judge called "
                           f"{judge!r}; its judges: {', '.join(map(repr, judges))}")
    responses = store.responses_frame(db, proj["id"], with_text=False)
    return hybrid_items_from_frames(judgments, responses, judge), len(judgments)


def _check_lambda(value: float | str) -> float | str:
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return text
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"--ppi-lambda must be auto or a number in [0, 1], got {value!r}")
    return float(value)


def fit_hybrid_project(db, project: str | int, *, judge: str, lam: float | str = "auto",
                       alpha: float | None = None, save: bool = True) -> dict:
    """Fit a hybrid (human-corrected) Bradley-Terry leaderboard with LLM judge ``judge``.

    Bradley-Terry as an M-estimator with prediction-powered inference (PPI++,
    Angelopoulos, Duchi & Zrnic 2023): the judge's labels on every two-response
    item sharpen the estimate, its bias is measured and removed on the items humans
    also labelled, so the scores target the human ranking. ``lam = 0`` is the
    human-only fit; ``alpha`` defaults to
    :data:`prefstore.models.hybrid.HYBRID_ALPHA`.

    Returns
    -------
    dict
        ``scores``, ``ci95`` (PPI++ sandwich), ``lambda``, ``n_human_items``,
        ``n_llm_items`` and the rest of :meth:`FitResult.to_dict`, with ``model``
        (:func:`hybrid_model_name`), ``judge``, ``level``, ``kind`` ("all"),
        ``project``, ``seconds`` and, when saved, ``fit_id``.

    Raises
    ------
    InvalidInput
        On a bad option, a judge that is not one of the project's LLM raters (the
        message lists them), or fewer than 2 human-labelled items.
    """
    lam = _check_lambda(lam)
    alpha = _check_non_negative("--alpha", alpha)
    proj = store.get_project(db, project)
    start = time.perf_counter()
    items, n_judgments = _hybrid_items(db, proj, str(judge), "--hybrid-judge")
    result = hybrid_pairwise(items, lam=lam, alpha=HYBRID_ALPHA if alpha is None else alpha)
    seconds = time.perf_counter() - start
    out = result.to_dict()
    model = hybrid_model_name(judge)
    out.update({"model": model, "judge": str(judge), "level": "system", "kind": "all",
                "seconds": seconds, "project": proj["name"]})
    if save:
        params = {"judge": str(judge), "lambda": lam, "alpha": alpha}
        out["fit_id"] = store.save_fit(db, proj["id"], model=model, level="system", kind="all",
                                       params=params, result=out, n_judgments=n_judgments,
                                       seconds=seconds)
    return out


def evaluate_hybrid_project(db, project: str | int, *, judge: str,
                            fractions: tuple[float, ...] | list[float] = (0.1, 0.25, 0.5),
                            reps: int = 200, seed: int = 0) -> dict:
    """Simulate human labelling budgets on a project: human-only, LLM-only and hybrid.

    Runs :func:`prefstore.models.hybrid.evaluate_hybrid` on the project's
    two-response items that humans labelled, scored against the all-human fit.

    Returns
    -------
    dict
        ``{"project", "judge", "fractions", "results": [{"fraction", "n_human_items",
        "human_only", "llm_only", "hybrid"}], "n_items", "n_systems", "reps"}``, each
        fit with ``coverage``, ``mean_ci_width`` and ``kendall_tau``.
    """
    proj = store.get_project(db, project)
    items, _ = _hybrid_items(db, proj, str(judge), "--judge")
    labelled = int((items.n_human > 0).sum())
    if labelled < 2:
        raise InvalidInput(f"project {proj['name']!r} has {labelled} human-labelled "
                           f"two-response item(s): the simulation needs at least 2")
    out = evaluate_hybrid(items, fractions=fractions, reps=reps, seed=seed)
    return {"project": proj["name"], "judge": str(judge), **out}
