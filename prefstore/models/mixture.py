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

A given K is fitted from ``n_restarts`` farthest-first seedings. Choosing K
does not repeat that for every K: it fits K = 1, then gets each K from the
fitted K - 1 by splitting a type along the direction in which its raters
disagree most (a split move as in Ueda et al. 2000), runs the best of a few
such splits to convergence with SQUAREM-accelerated EM (Varadhan & Roland
2008; a type too many makes plain EM crawl), and keeps every K's BIC. Per-rater
sufficient statistics are built once for the whole search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import eigh
from scipy.sparse import csr_matrix
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
    _sigmoid,
    _softplus,
)
from prefstore.models.plackett_luce import _Stages


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
        EM updates of the retained restart; for a chosen K, the updates its
        step of the search took (split candidates included).
    bic_by_k, ll_by_k : dict of int to float
        BIC and log-likelihood of every K fitted (one entry when K is given).
    """

    scores: np.ndarray
    weights: np.ndarray
    rater_probs: np.ndarray
    cov: list[np.ndarray]
    log_likelihood: float
    bic: float
    n_iter: int
    bic_by_k: dict[int, float] = field(default_factory=dict)
    ll_by_k: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.weights.shape[0])


class _PairRows:
    """Per-rater sufficient statistics of pairwise judgments.

    A rater's Bradley-Terry log-likelihood depends on its judgments only through
    its summed wins on each unordered pair, so a few sparse rater x pair matrices
    serve every E-step (one product for all types) and every M-step (one product
    for all types' pair counts), whatever K: the search over K builds them once.
    """

    def __init__(self, data: PairwiseData):
        n, n_raters = data.n_items, data.n_raters
        lo = np.minimum(data.winners, data.losers).astype(np.int64)
        hi = np.maximum(data.winners, data.losers).astype(np.int64)
        code = (data.raters.astype(np.int64) * n + lo) * n + hi
        keys, inv = np.unique(code, return_inverse=True)
        half = 0.5 * data.weights * data.ties
        win_lo = np.where(data.ties, 0.0, data.weights * (data.winners == lo)) + half
        win_hi = np.where(data.ties, 0.0, data.weights * (data.winners == hi)) + half
        a = np.bincount(inv, win_lo, minlength=keys.shape[0])
        b = np.bincount(inv, win_hi, minlength=keys.shape[0])
        rater = (keys // (n * n)).astype(np.intp)
        pkeys, pair = np.unique(keys % (n * n), return_inverse=True)
        self.lo, self.hi = (pkeys // n).astype(np.intp), (pkeys % n).astype(np.intp)
        p = pkeys.shape[0]
        self.n_items, self.n_pairs = n, p
        # (rater, pair) keys are unique and sorted by rater: CSR without a sort
        self.tot = csr_matrix((a + b, (rater, pair)), shape=(n_raters, p))
        self.wins_t = csr_matrix(
            (np.r_[a, b], (np.r_[pair, pair + p], np.r_[rater, rater])), shape=(2 * p, n_raters)
        )
        lo_r, hi_r = rater * n + self.lo[pair], rater * n + self.hi[pair]
        size = n_raters * n

        def net(w):  # sum over a rater's pairs of w * (e_lo - e_hi)
            return (np.bincount(lo_r, w, size) - np.bincount(hi_r, w, size)).reshape(n_raters, n)

        self.lo_net, self.hi_net = net(a), net(b)
        self._nz = (lo_r, hi_r, pair, a + b, size)
        self.n_raters = n_raters
        self.n_rows = np.bincount(rater, minlength=n_raters).astype(float)

    def rater_ll(self, theta: np.ndarray) -> np.ndarray:
        """Log-likelihood of each rater's judgments under each type, shape (n_raters, k)."""
        # -(a softplus(-d) + b softplus(d)), d = theta_lo - theta_hi, softplus(d) = softplus(-d) + d
        sp = _softplus(theta[:, self.hi] - theta[:, self.lo])
        return -(self.tot @ sp.T) - self.hi_net @ theta.T

    def rater_grad(self, theta: np.ndarray) -> np.ndarray:
        """Gradient of each rater's log-likelihood at one type's scores, shape (n_raters, n)."""
        lo_r, hi_r, pair, tot, size = self._nz
        w = tot * _sigmoid(theta[self.lo] - theta[self.hi])[pair]
        expected = np.bincount(lo_r, w, size) - np.bincount(hi_r, w, size)
        return self.lo_net - expected.reshape(self.n_raters, self.n_items)

    def type_fghs(self, resp: np.ndarray, alpha: float) -> list:
        """Penalized objective of each type, a column of ``resp`` weighting the raters."""
        ab = self.wins_t @ resp
        a, b = ab[: self.n_pairs], ab[self.n_pairs :]
        zero = np.zeros(self.n_pairs)
        return [
            _bt_fgh(PairCounts(self.n_items, self.lo, self.hi, a[:, k], b[:, k], zero), alpha)
            for k in range(resp.shape[1])
        ]


class _RankRows:
    """Ranking rows for a Plackett-Luce mixture."""

    def __init__(self, data: RankingData):
        self.data = data
        self.rater = data.raters
        self.n_raters = data.n_raters
        self.n_items = data.n_items
        self.n_rows = np.bincount(self.rater, minlength=self.n_raters).astype(float)
        self.stages = _Stages(data)

    def rater_ll(self, theta: np.ndarray) -> np.ndarray:
        st = self.stages
        th = np.where(st.present[None], theta[:, st.items], -np.inf)  # (k, rows, width)
        log_s = np.logaddexp.accumulate(th[:, :, ::-1], axis=2)[:, :, ::-1]
        with np.errstate(invalid="ignore"):
            row_ll = -np.where(st.stage[None], log_s - th, 0.0).sum(axis=2) * self.data.weights
        return np.column_stack([np.bincount(self.rater, r, self.n_raters) for r in row_ll])

    def rater_grad(self, theta: np.ndarray) -> np.ndarray:
        st = self.stages
        th = np.where(st.present, theta[st.items], -np.inf)
        log_s = np.logaddexp.accumulate(th[:, ::-1], axis=1)[:, ::-1]
        c1 = np.logaddexp.accumulate(np.where(st.stage, -log_s, -np.inf), axis=1)
        # each position: chosen (at its stage) minus its expected number of choices
        g = self.data.weights[:, None] * (st.stage - np.where(st.present, np.exp(th + c1), 0.0))
        code = (self.rater[:, None] * self.n_items + st.items)[st.present]
        size = self.n_raters * self.n_items
        return np.bincount(code, g[st.present], size).reshape(self.n_raters, self.n_items)

    def type_fghs(self, resp: np.ndarray, alpha: float) -> list:
        out = []
        for k in range(resp.shape[1]):
            self.stages.w = resp[self.rater, k] * self.data.weights  # fgh() captures w
            out.append(self.stages.fgh(alpha))
        return out


def _rows(data: PairwiseData | RankingData):
    if isinstance(data, PairwiseData):
        return _PairRows(data)
    if isinstance(data, RankingData):
        return _RankRows(data)
    raise InvalidInput(f'"data" must be PairwiseData or RankingData, got {type(data).__name__}')


def _fit_type(fgh, theta0: np.ndarray, what: str) -> np.ndarray:
    x, _, _ = newton_minimize(fgh, theta0, None, tol=1e-10, what=what)
    return x - x.mean()


def _m_step(rows, resp: np.ndarray, theta: np.ndarray, alpha: float) -> np.ndarray:
    fghs = rows.type_fghs(resp, alpha)
    return np.stack(
        [_fit_type(f, t, f"mixture type {k + 1}") for k, (f, t) in enumerate(zip(fghs, theta))]
    )


def _e_step(rows, theta: np.ndarray, log_pi: np.ndarray):
    joint = rows.rater_ll(theta) + log_pi
    norm = logsumexp(joint, axis=1)
    return np.exp(joint - norm[:, None]), float(norm.sum())


def _seed_types(rows, k: int, alpha: float, rng: np.random.Generator):
    """Farthest-first seeding: each new type is fitted to the worst-explained rater."""
    n_rows = rows.n_rows
    theta = np.zeros((k, rows.n_items))
    chosen = [rng.choice(rows.n_raters, p=n_rows / n_rows.sum())]
    for j in range(k):
        one = np.zeros((rows.n_raters, 1))
        one[chosen[j], 0] = 1.0
        fgh = rows.type_fghs(one, max(alpha, 1e-2))[0]
        theta[j] = _fit_type(fgh, np.zeros(rows.n_items), "mixture seed")
        if j + 1 < k:
            per_row = rows.rater_ll(theta[: j + 1]).max(axis=1) / np.maximum(n_rows, 1)
            # Among raters with a typical amount of data, pick the worst explained.
            per_row[n_rows < np.median(n_rows)] = np.inf
            per_row[chosen] = np.inf
            worst = np.argsort(per_row)[: max(1, rows.n_raters // 50)]
            chosen.append(int(rng.choice(worst)))
    return theta


def _n_params(k: int, n: int) -> int:
    return k * (n - 1) + (k - 1)


def _em_map(rows, theta, log_pi, alpha, concentration):
    """One EM update; also returns the penalized objective and log-likelihood at the input."""
    resp, ll = _e_step(rows, theta, log_pi)
    objective = ll + (concentration - 1.0) * log_pi.sum() - alpha * (theta**2).sum()
    # MAP weights under a symmetric Dirichlet(concentration) prior
    pi = resp.sum(axis=0) + concentration - 1.0
    new_log_pi = np.log(np.maximum(pi, 1e-300) / pi.sum())
    return _m_step(rows, resp, theta, alpha), new_log_pi, objective, ll


def _run_em(rows, theta, log_pi, alpha, concentration, max_iter, tol):
    """Plain EM from ``(theta, log_pi)``: (objective, theta, log_pi, iterations).

    The objective is the penalized log-likelihood at the last E-step, one update
    before the returned parameters (a lower bound on theirs: EM never decreases it).
    """
    prev, it = -np.inf, 0
    while it < max_iter:
        theta, log_pi, _, ll = _em_map(rows, theta, log_pi, alpha, concentration)
        it += 1
        if ll - prev <= tol * (1.0 + abs(ll)):
            break
        prev = ll
    objective = ll + (concentration - 1.0) * log_pi.sum() - alpha * (theta**2).sum()
    return objective, theta, log_pi, it


def _run_squarem(rows, theta, log_pi, alpha, concentration, max_iter, tol):
    """EM accelerated by squared extrapolation (SQUAREM, Varadhan & Roland 2008).

    Each cycle takes two EM updates, extrapolates along them (step length of
    their scheme S3) and takes one more update from there, falling back to the
    second plain update when the extrapolated point has a lower penalized
    likelihood, so the objective never decreases. A redundant type (K above the
    truth) makes plain EM crawl: on the benchmark's K = 4, 64 plain updates
    against 20 here. Returns (objective, theta, log_pi, EM updates, converged),
    the objective as in :func:`_run_em`; it stops after ``max_iter`` updates or
    when a cycle gains no more than plain EM's tolerance.
    """
    used, size = 0, theta.size
    while True:
        th1, lp1, obj0, ll0 = _em_map(rows, theta, log_pi, alpha, concentration)
        th2, lp2, obj1, ll1 = _em_map(rows, th1, lp1, alpha, concentration)
        used += 2
        if ll1 - ll0 <= tol * (1.0 + abs(ll1)):  # plain EM would stop here
            return obj1, th2, lp2, used, True
        r = np.r_[(th1 - theta).ravel(), lp1 - log_pi]
        v = np.r_[(th2 - th1).ravel(), lp2 - lp1] - r
        vv = float(v @ v)
        step = min(-np.sqrt(float(r @ r) / vv), -1.0) if vv > 0 else -1.0
        x = np.r_[theta.ravel(), log_pi] - 2.0 * step * r + step * step * v
        th_x = x[:size].reshape(theta.shape)
        th_x -= th_x.mean(axis=1, keepdims=True)
        lp_x = x[size:] - logsumexp(x[size:])
        th3, lp3, obj_x, ll_x = _em_map(rows, th_x, lp_x, alpha, concentration)
        used += 1
        if np.isfinite(obj_x) and obj_x >= obj1:
            theta, log_pi, objective, ll = th3, lp3, obj_x, ll_x
        else:
            theta, log_pi, objective, ll = th2, lp2, obj1, ll1
        if ll - ll0 <= tol * (1.0 + abs(ll)):
            return objective, theta, log_pi, used, True
        if used >= max_iter:
            return objective, theta, log_pi, used, False


def _estimate(data, rows, theta, log_pi, n_iter, alpha, with_cov=True) -> MixtureEstimate:
    """Order the types heaviest first; log-likelihood, BIC and (optionally) covariances."""
    k = theta.shape[0]
    resp, ll = _e_step(rows, theta, log_pi)
    order = np.argsort(-np.exp(log_pi), kind="stable")
    theta, log_pi, resp = theta[order], log_pi[order], resp[:, order]
    cov = []
    if with_cov:
        fghs = rows.type_fghs(resp, alpha)
        cov = [centred_cov(f(t, 2)[2]) for f, t in zip(fghs, theta)]
    bic = -2.0 * ll + _n_params(k, data.n_items) * np.log(max(len(data), 2))
    return MixtureEstimate(theta, np.exp(log_pi), resp, cov, ll, float(bic), n_iter)


def _em(data, k, alpha, concentration, n_restarts, seed, max_iter, tol) -> MixtureEstimate:
    rows = _rows(data)
    best = None
    for restart in range(n_restarts):
        rng = np.random.default_rng([seed, restart])
        theta = _seed_types(rows, k, alpha, rng)
        log_pi = np.full(k, -np.log(k))
        fit = _run_em(rows, theta, log_pi, alpha, concentration, max_iter, tol)
        if best is None or fit[0] > best[0]:
            best = fit
    _, theta, log_pi, n_iter = best
    est = _estimate(data, rows, theta, log_pi, n_iter, alpha)
    est.bic_by_k, est.ll_by_k = {k: est.bic}, {k: est.log_likelihood}
    return est


def _split(rows, theta, log_pi, resp, j, alpha):
    """Split type ``j`` in two along the direction in which its raters disagree most.

    If the type's raters share one preference, their scores (log-likelihood
    gradients at the type's strengths) scatter like the type's information
    matrix. The top generalized eigenvector of the responsibility-weighted
    scatter against that information is the direction of excess spread, and its
    eigenvalue (about 1 for a homogeneous type, plus the prior's share) says how
    much a split can gain. The type's raters on either side of it seed two types
    (the split move of Ueda et al. 2000). Returns (eigenvalue, theta, log_pi).
    """
    w = resp[:, j]
    g = rows.rater_grad(theta[j])
    scatter = g.T @ (w[:, None] * g)
    info = rows.type_fghs(w[:, None], alpha)[0](theta[j], 2)[2]
    info = info.toarray() if hasattr(info, "toarray") else info
    n = info.shape[0]
    lam, vec = eigh(scatter, info, subset_by_index=[n - 1, n - 1])
    side = g @ vec[:, 0] > 0
    halves = np.column_stack([w * side, w * ~side])
    fghs = rows.type_fghs(halves, alpha)
    new = np.stack([_fit_type(f, theta[j], "mixture split") for f in fghs])
    share = np.clip(halves.sum(axis=0) / max(w.sum(), 1e-300), 0.05, 0.95)
    new_theta = np.vstack([np.delete(theta, j, axis=0), new])
    new_log_pi = np.r_[np.delete(log_pi, j), log_pi[j] + np.log(share / share.sum())]
    return float(lam[0]), new_theta, new_log_pi


def _select_k(data, k_max, alpha, concentration, n_restarts, seed, max_iter, tol):
    """Choose K in 1..``k_max`` by BIC, each K warm-started from the fitted K - 1.

    K = 1 is one convex fit (restarts could not find anything else). Each later
    K splits one type of the K - 1 solution (:func:`_split`): the ``n_restarts``
    types with the largest excess spread are split, each candidate gets
    ``SCOUT`` accelerated EM updates, and the best penalized likelihood is run on
    to convergence. The restarts are thus shared along the path instead of
    repeated from scratch for every K. Every K up to ``k_max`` is fitted: BIC
    need not be unimodal in K, so stopping at its first rise would not be safe.
    The search is deterministic (``seed`` is unused).
    """
    rows = _rows(data)
    n = data.n_items
    fit = _run_em(rows, np.zeros((1, n)), np.zeros(1), alpha, concentration, max_iter, tol)
    path = [fit]
    for k in range(2, k_max + 1):
        _, theta, log_pi, _ = fit
        resp, _ = _e_step(rows, theta, log_pi)
        splits = sorted(
            (_split(rows, theta, log_pi, resp, j, alpha) for j in range(k - 1)),
            key=lambda c: -c[0],
        )[:n_restarts]
        best, used = (None, splits[0][1], splits[0][2], 0, False), 0
        if len(splits) > 1:  # scout every candidate, go on with the best
            for _, start, start_log_pi in splits:
                cand = _run_squarem(rows, start, start_log_pi, alpha, concentration, SCOUT, tol)
                used += cand[3]
                if best[0] is None or cand[0] > best[0]:
                    best = cand
        objective, theta, log_pi, _, done = best
        if not done:
            objective, theta, log_pi, more, _ = _run_squarem(
                rows, theta, log_pi, alpha, concentration, max_iter - used, tol
            )
            used += more
        fit = (objective, theta, log_pi, used)
        path.append(fit)
    ests = [_estimate(data, rows, t, lp, it, alpha, with_cov=False) for _, t, lp, it in path]
    chosen = min(range(len(ests)), key=lambda i: ests[i].bic)
    _, theta, log_pi, n_iter = path[chosen]
    est = _estimate(data, rows, theta, log_pi, n_iter, alpha)
    est.bic_by_k = {e.k: e.bic for e in ests}
    est.ll_by_k = {e.k: e.log_likelihood for e in ests}
    return est


#: EM updates each split candidate gets before the best one is run to convergence.
SCOUT = 3


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
    k_max = min(k_max, data.n_raters)
    return _select_k(data, k_max, alpha, concentration, n_restarts, seed, max_iter, tol)


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
        With ``k`` given: EM restarts, seeded ``[seed, restart]``; the best
        penalized likelihood wins. With ``k`` None: how many types' splits are
        tried for each K (the search is deterministic and ignores ``seed``).
    seed, max_iter, tol : int, int, float
        RNG seed, EM update budget (per K), relative log-likelihood tolerance.
    k_max : int
        Largest K tried when ``k`` is None; every K in 1..``k_max`` is fitted
        and its BIC kept in ``bic_by_k``.

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
                "bic_by_k": est.bic_by_k,
                "ll_by_k": est.ll_by_k,
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
