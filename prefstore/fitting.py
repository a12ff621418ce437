"""Fit a project's preference models from the store and keep the results in ``fits``.

This is the one place where the store's frames meet the pure models: it
reads the frames, lets :mod:`prefstore.models.adapter` map them to integer
indices, calls the registered model and saves the JSON result.
"""

from __future__ import annotations

import time

from prefstore import store
from prefstore.errors import InvalidInput, NotConverged
from prefstore.models import MODELS, get_model
from prefstore.models.adapter import pairwise_from_frames, rankings_from_frames

LEVELS = ("system", "response")
KINDS = ("all", "human", "llm")


def fit_project(db, project: str | int, *, model: str = "bt", level: str = "system",
                kind: str = "all", k: int | None = None, alpha: float | None = None,
                ci: str | None = "hessian", n_boot: int = 200, seed: int = 0,
                save: bool = True) -> dict:
    """Fit ``model`` on a project's judgments and return the JSON-able result.

    The result holds at least ``model, level, scores, ci95, log_likelihood,
    n_comparisons, seconds``; a mixture adds ``types`` and ``raters``. With
    ``save`` the fit is stored in the ``fits`` table with its parameters.
    ``alpha`` is the L2 prior; None keeps the model's default (0 for BT and
    PL, a small positive prior for the mixture).

    Raises
    ------
    InvalidInput
        For an unknown model, level or kind, or a project with no usable judgments.
    NotConverged
        When the comparison graph is disconnected and no prior is set.
    """
    spec = get_model(model)
    if level not in LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    proj = store.get_project(db, project)
    start = time.perf_counter()
    judgments = store.judgments_frame(db, proj["id"], kind=kind, columns="model")
    if judgments.empty:
        which = "" if kind == "all" else f"{kind} "
        raise InvalidInput(f"project {proj['name']!r} has no {which}judgments to fit")
    responses = store.responses_frame(db, proj["id"], with_text=False)
    if spec.data == "rankings":
        data = rankings_from_frames(judgments, responses, level=level, kind=kind)
    else:
        data = pairwise_from_frames(judgments, responses, level=level, kind=kind)
    options = {"k": k} if model == "mixture" else {}
    if alpha is not None:  # else the model's own default prior
        options["alpha"] = alpha
    result = spec.fit(data, ci=ci, n_boot=n_boot, seed=seed, **options)
    seconds = time.perf_counter() - start
    out = result.to_dict()
    out.update({"model": model, "level": level, "kind": kind, "seconds": seconds,
                "project": proj["name"]})
    if save:
        params = {"alpha": alpha, "ci": ci, "n_boot": n_boot, "seed": seed, "k": k}
        out["fit_id"] = store.save_fit(
            db, proj["id"], model=model, level=level, kind=kind, params=params, result=out,
            n_judgments=len(judgments), seconds=seconds)
    return out


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
                        alpha=0.0 if level == "system" else 0.01,
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
