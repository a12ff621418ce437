"""Mixture of rater types, fitted by EM over raters.

Each rater belongs to one of K latent types; each type has its own
Bradley-Terry (pairwise data) or Plackett-Luce (rankings) log-strengths. This
is a finite mixture of choice models (McLachlan & Peel 2000) fitted by EM
(Dempster, Laird & Rubin 1977), with raters, not judgments, as the units: all
of a rater's judgments share the rater's type.

Two priors keep a rater with very few judgments from getting a type of its
own: a symmetric Dirichlet prior on the mixture weights (``concentration`` > 1
keeps every weight away from zero, so a type cannot shrink onto one rater) and
an L2 prior ``alpha * |theta_k|^2`` on each type's scores, which pulls a type
supported by few judgments back to "no preference". K is given, or chosen by
BIC (Schwarz 1978) with ``K (n - 1) + (K - 1)`` free parameters and the number
of judgments as the sample size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from prefstore.errors import InvalidInput
from prefstore.models.base import (
    FitResult,
    PairwiseData,
    RankingData,
    centred_cov,
    newton_minimize,
    wald_ci,
)
from prefstore.models.bradley_terry import (
    PairCounts,
    _bt_fgh,
    _check_alpha,
    _reject_options,
    _resolve_anchor,
    _softplus,
)
from prefstore.models.plackett_luce import _Stages, pl_row_log_likelihood


@dataclass
class MixtureEstimate:
    """What :func:`mixture_pairwise` / :func:`mixture_rankings` return.

    Attributes
    ----------
    scores : ndarray, shape (k, n_items)
        Centred log-strengths of each type, the heaviest type first.
    weights : ndarray, shape (k,)
        Mixture weights.
    rater_probs : ndarray, shape (n_raters, k)
        Posterior type probabilities of each rater.
    cov : list of ndarray
        Covariance of each type's centred scores (inverse observed information,
        the rater posteriors held fixed).
    log_likelihood : float
        Marginal log-likelihood (priors excluded).
    bic : float
    n_iter : int
        EM iterations of the retained restart.
    """

    scores: np.ndarray
    weights: np.ndarray
    rater_probs: np.ndarray
    cov: list[np.ndarray]
    log_likelihood: float
    bic: float
    n_iter: int

    @property
    def k(self) -> int:
        return int(self.weights.shape[0])


class _PairRows:
    """Pairwise judgments aggregated to unique (rater, pair) rows."""

    def __init__(self, data: PairwiseData):
        n = data.n_items
        lo = np.minimum(data.winners, data.losers).astype(np.int64)
        hi = np.maximum(data.winners, data.losers).astype(np.int64)
        code = (data.raters.astype(np.int64) * n + lo) * n + hi
        keys, inv = np.unique(code, return_inverse=True)
        half = 0.5 * data.weights * data.ties
        win_lo = np.where(data.ties, 0.0, data.weights * (data.winners == lo)) + half
        win_hi = np.where(data.ties, 0.0, data.weights * (data.winners == hi)) + half
        self.a = np.bincount(inv, win_lo, minlength=keys.shape[0])
        self.b = np.bincount(inv, win_hi, minlength=keys.shape[0])
        self.rater = (keys // (n * n)).astype(np.intp)
        pair_code = keys % (n * n)
        pkeys, self.pair = np.unique(pair_code, return_inverse=True)
        self.lo, self.hi = (pkeys // n).astype(np.intp), (pkeys % n).astype(np.intp)
        self.n_items, self.n_pairs = n, pkeys.shape[0]

    def row_ll(self, theta: np.ndarray) -> np.ndarray:
        d = theta[self.lo][self.pair] - theta[self.hi][self.pair]
        sp = _softplus(-d)
        return -(self.a * sp + self.b * (sp + d))

    def counts(self, row_w: np.ndarray) -> PairCounts:
        a = np.bincount(self.pair, row_w * self.a, minlength=self.n_pairs)
        b = np.bincount(self.pair, row_w * self.b, minlength=self.n_pairs)
        return PairCounts(self.n_items, self.lo, self.hi, a, b, np.zeros_like(a))

    def fgh(self, row_w: np.ndarray, alpha: float):
        return _bt_fgh(self.counts(row_w), alpha, "half")


class _RankRows:
    """Ranking rows for a Plackett-Luce mixture."""

    def __init__(self, data: RankingData):
        self.data = data
        self.rater = data.raters
        self.n_items = data.n_items
        self.stages = _Stages(data)

    def row_ll(self, theta: np.ndarray) -> np.ndarray:
        return self.data.weights * pl_row_log_likelihood(theta, self.data)

    def fgh(self, row_w: np.ndarray, alpha: float):
        self.stages.w = row_w * self.data.weights
        return self.stages.fgh(alpha)


def _rows(data: PairwiseData | RankingData):
    if isinstance(data, PairwiseData):
        return _PairRows(data)
    if isinstance(data, RankingData):
        return _RankRows(data)
    raise InvalidInput(f'"data" must be PairwiseData or RankingData, got {type(data).__name__}')


def _m_step(rows, resp: np.ndarray, theta: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(theta)
    for k in range(theta.shape[0]):  # one weighted fit per type
        x, _, _ = newton_minimize(
            rows.fgh(resp[rows.rater, k], alpha),
            theta[k],
            None,
            tol=1e-10,
            what=f"mixture type {k + 1}",
        )
        out[k] = x - x.mean()
    return out


def _e_step(rows, theta: np.ndarray, log_pi: np.ndarray, n_raters: int):
    ll = np.column_stack(
        [np.bincount(rows.rater, rows.row_ll(t), minlength=n_raters) for t in theta]
    )
    joint = ll + log_pi
    norm = logsumexp(joint, axis=1)
    return np.exp(joint - norm[:, None]), float(norm.sum()), ll


def _seed_types(rows, k: int, alpha: float, n_raters: int, rng: np.random.Generator):
    """Farthest-first seeding: each new type is fitted to the worst-explained rater."""
    n = rows.n_items
    n_rows = np.bincount(rows.rater, minlength=n_raters).astype(float)
    theta = np.zeros((k, n))
    first = rng.choice(n_raters, p=n_rows / n_rows.sum())
    chosen = [first]
    for j in range(k):
        one = np.zeros((n_raters, 1))
        one[chosen[j], 0] = 1.0
        theta[j] = _m_step(rows, one, theta[j : j + 1], max(alpha, 1e-2))[0]
        if j + 1 < k:
            ll = np.column_stack(
                [
                    np.bincount(rows.rater, rows.row_ll(t), minlength=n_raters)
                    for t in theta[: j + 1]
                ]
            )
            per_row = ll.max(axis=1) / np.maximum(n_rows, 1)
            # Among raters with a typical amount of data, pick the worst explained.
            per_row[n_rows < np.median(n_rows)] = np.inf
            per_row[chosen] = np.inf
            worst = np.argsort(per_row)[: max(1, n_raters // 50)]
            chosen.append(int(rng.choice(worst)))
    return theta


def _n_params(k: int, n: int) -> int:
    return k * (n - 1) + (k - 1)


def _em(data, k, alpha, concentration, n_restarts, seed, max_iter, tol) -> MixtureEstimate:
    rows = _rows(data)
    n_raters, n = data.n_raters, data.n_items
    best = None
    for restart in range(n_restarts):
        rng = np.random.default_rng([seed, restart])
        theta = _seed_types(rows, k, alpha, n_raters, rng)
        log_pi = np.full(k, -np.log(k))
        prev = -np.inf
        for it in range(1, max_iter + 1):
            n_done = it
            resp, ll, _ = _e_step(rows, theta, log_pi, n_raters)
            # MAP weights under a symmetric Dirichlet(concentration) prior
            pi = resp.sum(axis=0) + concentration - 1.0
            log_pi = np.log(np.maximum(pi, 1e-300) / pi.sum())
            theta = _m_step(rows, resp, theta, alpha)
            if ll - prev <= tol * (1.0 + abs(ll)):
                break
            prev = ll
        objective = ll + (concentration - 1.0) * log_pi.sum() - alpha * (theta**2).sum()
        if best is None or objective > best[0]:
            best = (objective, theta, log_pi, n_done)
    _, theta, log_pi, n_iter = best
    resp, ll, _ = _e_step(rows, theta, log_pi, n_raters)
    order = np.argsort(-np.exp(log_pi), kind="stable")
    theta, log_pi, resp = theta[order], log_pi[order], resp[:, order]
    cov = []
    for j in range(k):
        h = rows.fgh(resp[rows.rater, j], alpha)(theta[j], 2)[2]
        cov.append(centred_cov(h))
    n_obs = len(data)
    bic = -2.0 * ll + _n_params(k, n) * np.log(max(n_obs, 2))
    return MixtureEstimate(theta, np.exp(log_pi), resp, cov, ll, float(bic), n_iter)


def _mixture(data, k, alpha, concentration, n_restarts, seed, max_iter, tol, k_max):
    _check_alpha(alpha)
    if concentration < 1:
        raise InvalidInput(f'"concentration" must be at least 1, got {concentration}')
    if alpha <= 0:
        raise InvalidInput(f'"alpha" must be positive for a mixture, got {alpha}')
    if len(data) == 0:
        raise InvalidInput("the mixture needs at least one judgment, got none")
    if k is not None:
        if not 1 <= int(k) <= data.n_raters:
            raise InvalidInput(f'"k" must lie in 1..{data.n_raters} (the raters), got {k}')
        return _em(data, int(k), alpha, concentration, n_restarts, seed, max_iter, tol)
    fits = [
        _em(data, kk, alpha, concentration, n_restarts, seed, max_iter, tol)
        for kk in range(1, min(k_max, data.n_raters) + 1)
    ]
    return min(fits, key=lambda f: f.bic)


def mixture_pairwise(
    data: PairwiseData,
    k: int | None = None,
    alpha: float = 0.5,
    concentration: float = 2.0,
    n_restarts: int = 4,
    seed: int = 0,
    max_iter: int = 200,
    tol: float = 1e-8,
    k_max: int = 4,
) -> MixtureEstimate:
    """Fit a mixture of Bradley-Terry rater types by EM.

    Parameters
    ----------
    data : PairwiseData
        Judgments with ``raters``; ties count as half a win each.
    k : int, optional
        Number of types; None chooses 1..``k_max`` by BIC.
    alpha : float
        L2 prior on each type's scores (must be positive).
    concentration : float
        Symmetric Dirichlet prior on the mixture weights (1: flat).
    n_restarts : int
        EM restarts, seeded ``[seed, restart]``; the best penalized likelihood wins.
    seed, max_iter, tol : int, int, float
        RNG seed, EM iteration budget, relative log-likelihood tolerance.
    k_max : int
        Largest K tried when ``k`` is None.

    Returns
    -------
    MixtureEstimate
    """
    return _mixture(data, k, alpha, concentration, n_restarts, seed, max_iter, tol, k_max)


def mixture_rankings(
    data: RankingData,
    k: int | None = None,
    alpha: float = 0.5,
    concentration: float = 2.0,
    n_restarts: int = 4,
    seed: int = 0,
    max_iter: int = 200,
    tol: float = 1e-8,
    k_max: int = 4,
) -> MixtureEstimate:
    """Fit a mixture of Plackett-Luce rater types by EM (see :func:`mixture_pairwise`)."""
    return _mixture(data, k, alpha, concentration, n_restarts, seed, max_iter, tol, k_max)


class Mixture:
    """Mixture of rater types (EM over raters; BT for pairwise data, PL for rankings)."""

    name = "mixture"
    label = "Mixture of rater types (EM)"
    data = "pairwise"

    def fit(
        self,
        data: PairwiseData | RankingData,
        *,
        alpha: float = 0.5,
        ci: str | None = "hessian",
        n_boot: int = 200,
        seed: int = 0,
        anchor: int | str | None = None,
        k: int | None = None,
        concentration: float = 2.0,
        n_restarts: int = 4,
        k_max: int = 4,
        **options: Any,
    ) -> FitResult:
        """Fit the mixture and return a :class:`FitResult` with ``types`` and ``rater_probs``.

        ``scores`` are the types' scores averaged with the mixture weights, with
        Wald intervals treating the types as independent. Only Hessian intervals
        are offered (``ci="bootstrap"`` raises). See :func:`mixture_pairwise`.
        """
        _reject_options(options, self.name)
        if ci not in (None, "hessian"):
            raise InvalidInput(f'the mixture offers ci="hessian" or None, got {ci!r}')
        start = time.perf_counter()
        est = _mixture(data, k, alpha, concentration, n_restarts, seed, 200, 1e-8, k_max)
        n = data.n_items
        scores = est.weights @ est.scores
        nan = np.full((n, 2), np.nan)
        types = [
            {"weight": float(w), "scores": s, "ci95": wald_ci(s, c) if ci else nan}
            for w, s, c in zip(est.weights, est.scores, est.cov)
        ]
        pooled = sum(w**2 * c for w, c in zip(est.weights, est.cov))
        return FitResult(
            model=self.name,
            scores=scores,
            ci95=wald_ci(scores, pooled) if ci else nan,
            names=list(data.names),
            log_likelihood=est.log_likelihood,
            n_comparisons=len(data),
            seconds=time.perf_counter() - start,
            params={
                "alpha": alpha,
                "concentration": concentration,
                "n_restarts": n_restarts,
                "base": "bt" if isinstance(data, PairwiseData) else "pl",
                "n_iter": est.n_iter,
                "ci": ci,
            },
            level=data.level,
            anchor=_resolve_anchor(anchor, data.names),
            types=types,
            rater_probs=est.rater_probs,
            rater_names=list(data.rater_names),
            bic=est.bic,
            k=est.k,
        )


__all__ = ["Mixture", "MixtureEstimate", "mixture_pairwise", "mixture_rankings"]
