"""Plackett-Luce model for rankings and best-of-K choices.

Luce (1959) / Plackett (1975): a ranking is a sequence of choices, each a
multinomial logit over the items not yet chosen,
``P(a > b > c) = pi_a / (pi_a + pi_b + pi_c) * pi_b / (pi_b + pi_c)``.
A best-of-K choice is the first stage only. Rankings of different lengths are
padded with -1 into one array, and the suffix sums of every row are computed at
once in log space (``np.logaddexp.accumulate``), so there is no Python loop over
rankings or stages.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.optimize import minimize

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models.base import (
    DENSE_MAX,
    FitResult,
    RankingData,
    centred_cov,
    check_dense_ci,
    check_identifiable,
    newton_minimize,
    percentile_ci,
    wald_ci,
)
from prefstore.models.bradley_terry import (
    _check_alpha,
    _check_ci,
    _reject_options,
    _resolve_anchor,
)


class _Stages:
    """Precomputed masks of a :class:`RankingData` (row weights may change)."""

    def __init__(self, data: RankingData, weights: np.ndarray | None = None):
        x = data.rankings
        self.n = data.n_items
        self.items = np.where(x >= 0, x, 0)
        self.present = x >= 0
        width = x.shape[1]
        self.stage = np.arange(width)[None, :] < data.depth[:, None]
        self.w = data.weights if weights is None else weights
        self.flat_items = self.items[self.present]
        self.n_pos = int(self.present.sum())

    def fgh(self, alpha: float):
        n, items, present, stage = self.n, self.items, self.present, self.stage
        w = self.w[:, None]

        def fgh(theta: np.ndarray, order: int = 2):
            th = np.where(present, theta[items], -np.inf)
            log_s = np.logaddexp.accumulate(th[:, ::-1], axis=1)[:, ::-1]
            with np.errstate(invalid="ignore"):
                terms = np.where(stage, log_s - th, 0.0)
            f = float((w * terms).sum() + alpha * theta @ theta)
            if order == 0:
                return f
            # c1[r, l] = log sum_{s <= l, s < depth} 1 / S[r, s]
            neg = np.where(stage, -log_s, -np.inf)
            c1 = np.logaddexp.accumulate(neg, axis=1)
            p = np.where(present, np.exp(th + c1), 0.0)
            gpos = w * (p - stage)
            g = np.bincount(self.flat_items, gpos[present], minlength=n) + 2 * alpha * theta
            if order == 1:
                return f, g
            c2 = np.logaddexp.accumulate(2.0 * neg, axis=1)
            width = th.shape[1]
            mn = np.minimum(np.arange(width)[:, None], np.arange(width)[None, :])
            with np.errstate(invalid="ignore"):
                outer = np.exp(th[:, :, None] + th[:, None, :] + c2[:, mn])
            outer = np.where(present[:, :, None] & present[:, None, :], outer, 0.0)
            outer *= w[:, :, None]
            code = items[:, :, None] * n + items[:, None, :]
            h = -np.bincount(code.ravel(), outer.ravel(), minlength=n * n).reshape(n, n)
            h[np.diag_indices(n)] += np.bincount(self.flat_items, (w * p)[present], minlength=n)
            h[np.diag_indices(n)] += 2 * alpha
            return f, g, h

        return fgh


def pl_objective(params: np.ndarray, data: RankingData, alpha: float = 0.0) -> float:
    """Return the Plackett-Luce negative log-likelihood plus ``alpha |theta|^2``."""
    return _Stages(data).fgh(alpha)(np.asarray(params, float), 0)


def pl_gradient(params: np.ndarray, data: RankingData, alpha: float = 0.0) -> np.ndarray:
    """Return the gradient of :func:`pl_objective`."""
    return _Stages(data).fgh(alpha)(np.asarray(params, float), 1)[1]


def pl_hessian(params: np.ndarray, data: RankingData, alpha: float = 0.0) -> np.ndarray:
    """Return the (dense) Hessian of :func:`pl_objective`."""
    return _Stages(data).fgh(alpha)(np.asarray(params, float), 2)[2]


def pl_log_likelihood(theta: np.ndarray, data: RankingData) -> float:
    """Return the Plackett-Luce log-likelihood (no prior)."""
    return -pl_objective(theta, data, 0.0)


def pl_row_log_likelihood(theta: np.ndarray, data: RankingData) -> np.ndarray:
    """Return the unweighted log-likelihood of each row, shape ``(r,)``."""
    st = _Stages(data)
    th = np.where(st.present, theta[st.items], -np.inf)
    log_s = np.logaddexp.accumulate(th[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore"):
        return -np.where(st.stage, log_s - th, 0.0).sum(axis=1)


def _edges(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """Edges "preferred at least once": each chosen item over the next, the last over the rest."""
    x, depth = data.rankings, data.depth
    width = x.shape[1]
    col = np.arange(width)[None, :]
    # stage s < depth - 1: x[s] -> x[s + 1]; last stage: x[depth - 1] -> every later item
    chain = (col[:, :-1] < (depth[:, None] - 1)) & (x[:, 1:] >= 0)
    src1, dst1 = x[:, :-1][chain], x[:, 1:][chain]
    last = x[np.arange(x.shape[0]), np.maximum(depth - 1, 0)]
    rest = (col >= depth[:, None]) & (x >= 0) & (depth[:, None] > 0)
    src2 = np.broadcast_to(last[:, None], x.shape)[rest]
    dst2 = x[rest]
    return np.concatenate([src1, src2]), np.concatenate([dst1, dst2])


def pl_rankings(
    data: RankingData,
    alpha: float = 0.0,
    initial_params: np.ndarray | None = None,
    tol: float = 1e-11,
    names: list[str] | None = None,
) -> np.ndarray:
    """Compute the (penalized) ML estimate of Plackett-Luce log-strengths.

    Luce (1959), Plackett (1975). Newton's method with the exact Hessian up to
    ``DENSE_MAX`` items, L-BFGS beyond.

    Parameters
    ----------
    data : RankingData
        Full or partial rankings and best-of-K choices (``depth`` 1).
    alpha : float
        L2 prior ``alpha * sum(theta ** 2)``.
    initial_params : ndarray, optional
    tol : float
    names : list of str, optional

    Returns
    -------
    ndarray, shape (n_items,)
        Centred log-strengths.

    Raises
    ------
    NotConverged
        If no prior is set and the MLE does not exist (Hunter 2004's condition:
        the "ranked above" graph must be strongly connected); names the items.
    """
    _check_alpha(alpha)
    if data.n_items < 2 or not np.any(data.depth > 0):
        raise InvalidInput(
            f'"data" must rank at least 2 items, got {data.n_items} items and {len(data)} rows'
        )
    names = names or data.names
    check_identifiable(data.n_items, *_edges(data), names, alpha)
    n = data.n_items
    fgh = _Stages(data).fgh(alpha)
    x0 = np.zeros(n) if initial_params is None else np.asarray(initial_params, float)
    if n <= DENSE_MAX:
        gauge = np.ones(n, bool) if alpha == 0 else None
        theta, _, _ = newton_minimize(fgh, x0, gauge, tol=tol, what="Plackett-Luce fit")
    else:
        res = minimize(
            lambda t: fgh(t, 1),
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 10_000, "gtol": 1e-8, "ftol": 1e-15},
        )
        if not res.success:
            raise NotConverged(f"Plackett-Luce fit: L-BFGS stopped: {res.message}")
        theta = res.x
    return theta - theta.mean()


class PlackettLuce:
    """Plackett-Luce (Luce 1959 / Plackett 1975) for rankings and best-of-K choices."""

    name = "pl"
    label = "Plackett-Luce (rankings and best-of-K)"
    data = "rankings"

    def fit(
        self,
        data: RankingData,
        *,
        alpha: float = 0.0,
        ci: str | None = "hessian",
        n_boot: int = 200,
        seed: int = 0,
        anchor: int | str | None = None,
        **options: Any,
    ) -> FitResult:
        """Fit the model and return a :class:`FitResult`.

        Parameters are those of :meth:`prefstore.models.BradleyTerry.fit`; the
        bootstrap reweights whole rankings with Poisson(1) draws.
        """
        _reject_options(options, self.name)
        _check_ci(ci, n_boot)
        start = time.perf_counter()
        theta = pl_rankings(data, alpha)
        n = data.n_items
        ci95 = np.full((n, 2), np.nan)
        if ci == "hessian":
            check_dense_ci(data.n_items)
            ci95 = wald_ci(theta, centred_cov(pl_hessian(theta, data, alpha)))
        elif ci == "bootstrap":
            rng = np.random.default_rng(seed)
            draws = rng.poisson(1.0, size=(n_boot, len(data))) * data.weights
            stages = _Stages(data)
            gauge = np.ones(n, bool) if alpha == 0 else None
            samples = np.empty((n_boot, n))
            for k in range(n_boot):  # warm-started refits, one per round
                stages.w = draws[k]
                x, _, _ = newton_minimize(
                    stages.fgh(max(alpha, 1e-8)), theta, gauge, tol=1e-9, what="bootstrap refit"
                )
                samples[k] = x - x.mean()
            ci95 = percentile_ci(samples)
        return FitResult(
            model=self.name,
            scores=theta,
            ci95=ci95,
            names=list(data.names),
            log_likelihood=pl_log_likelihood(theta, data),
            n_comparisons=len(data),
            seconds=time.perf_counter() - start,
            params={"alpha": alpha, "ci": ci},
            level=data.level,
            anchor=_resolve_anchor(anchor, data.names),
        )


__all__ = [
    "PlackettLuce",
    "pl_gradient",
    "pl_hessian",
    "pl_log_likelihood",
    "pl_objective",
    "pl_rankings",
    "pl_row_log_likelihood",
]
