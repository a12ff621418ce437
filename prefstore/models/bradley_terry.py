"""Bradley-Terry and Davidson models for pairwise judgments.

Bradley & Terry (1952): ``P(i beats j) = pi_i / (pi_i + pi_j)`` with
``pi_i = exp(theta_i)``. Davidson (1970) adds ties:
``P(i beats j) = pi_i / D``, ``P(tie) = nu sqrt(pi_i pi_j) / D`` with
``D = pi_i + pi_j + nu sqrt(pi_i pi_j)``.

Judgments are first aggregated to unique unordered pairs (one row per pair with
the weight of each outcome), so a fit costs O(pairs) per Newton step whatever
the number of judgments. The optional prior is ``alpha * sum(theta ** 2)``, the
same penalty as ``choix.opt_pairwise``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import bmat, coo_matrix, csr_matrix, issparse
from scipy.sparse.csgraph import connected_components

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models.base import (
    DENSE_MAX,
    FitResult,
    PairwiseData,
    centred_cov,
    check_dense_ci,
    check_identifiable,
    laplacian,
    newton_minimize,
    percentile_ci,
    wald_ci,
)
from prefstore.models.sparse_var import centred_var

TIE_POLICIES = ("half", "drop")

#: With a prior the fit splits over connected components; those up to this many
#: items are solved together by batched dense Newton steps, larger ones by the
#: sparse path. A response-level pool has one component of 2-4 items per prompt.
BLOCK_MAX = 64
_BATCH_ELEMENTS = 1 << 22  # Hessian entries of the stacked blocks solved at once


@dataclass
class PairCounts:
    """Judgments aggregated to unique unordered pairs ``lo < hi``.

    Attributes
    ----------
    n_items : int
    lo, hi : ndarray of int, shape (p,)
    wins_lo, wins_hi, ties : ndarray of float, shape (p,)
        Summed weights of "lo beat hi", "hi beat lo" and "tie".
    cell : ndarray of int, shape (m,) or None
        For each judgment, ``3 * pair + outcome`` (outcome 0: lo won, 1: hi won,
        2: tie); used to resample judgments in the bootstrap.
    """

    n_items: int
    lo: np.ndarray
    hi: np.ndarray
    wins_lo: np.ndarray
    wins_hi: np.ndarray
    ties: np.ndarray
    cell: np.ndarray | None = None

    @property
    def n_pairs(self) -> int:
        return int(self.lo.shape[0])

    def with_weights(self, cell_weights: np.ndarray) -> PairCounts:
        """Return the same pairs with outcome weights from a ``(3 * p,)`` array."""
        w = cell_weights.reshape(-1, 3)
        return PairCounts(self.n_items, self.lo, self.hi, w[:, 0], w[:, 1], w[:, 2])


def aggregate_pairwise(data: PairwiseData) -> PairCounts:
    """Aggregate judgments to unique (pair, outcome) weights.

    Parameters
    ----------
    data : PairwiseData

    Returns
    -------
    PairCounts
    """
    n = data.n_items
    w, lo_ = data.winners, data.losers
    lo = np.minimum(w, lo_)
    hi = np.maximum(w, lo_)
    outcome = np.where(data.ties, 2, np.where(w == lo, 0, 1))
    code = lo.astype(np.int64) * n + hi
    if n * n <= max(8 * code.shape[0], 1 << 22):
        # Dense code space: a bincount is several times faster than sorting.
        present = np.bincount(code, minlength=n * n) > 0
        keys = np.flatnonzero(present)
        pair_of_code = np.cumsum(present) - 1
        pair = pair_of_code[code]
    else:
        keys, pair = np.unique(code, return_inverse=True)
    cell = 3 * pair + outcome
    sums = np.bincount(cell, data.weights, minlength=3 * keys.shape[0]).reshape(-1, 3)
    return PairCounts(
        n,
        (keys // n).astype(np.intp),
        (keys % n).astype(np.intp),
        sums[:, 0],
        sums[:, 1],
        sums[:, 2],
        cell,
    )


def _half_ties(counts: PairCounts, ties: str) -> tuple[np.ndarray, np.ndarray]:
    if ties == "half":
        return counts.wins_lo + 0.5 * counts.ties, counts.wins_hi + 0.5 * counts.ties
    if ties == "drop":
        return counts.wins_lo, counts.wins_hi
    raise InvalidInput(f'"ties" must be one of {TIE_POLICIES}, got {ties!r}')


def _softplus(x: np.ndarray) -> np.ndarray:
    # Objectives take softplus(d) as softplus(-d) + d: one pass of logaddexp, not two.
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bt_fgh(counts: PairCounts, alpha: float, ties: str = "half"):
    a, b = _half_ties(counts, ties)
    tot = a + b
    n, lo, hi = counts.n_items, counts.lo, counts.hi

    def fgh(theta: np.ndarray, order: int = 2):
        d = theta[lo] - theta[hi]
        f = float(tot @ _softplus(-d) + b @ d + alpha * theta @ theta)
        if order == 0:
            return f
        s = _sigmoid(d)
        gd = tot * s - a
        g = np.bincount(lo, gd, minlength=n) - np.bincount(hi, gd, minlength=n)
        g += 2.0 * alpha * theta
        if order == 1:
            return f, g
        h = laplacian(n, lo, hi, tot * s * (1.0 - s))
        h = h + 2.0 * alpha * (np.eye(n) if not issparse(h) else _speye(n))
        return f, g, h

    return fgh


def _speye(n: int) -> csr_matrix:
    return csr_matrix((np.ones(n), (np.arange(n), np.arange(n))), shape=(n, n))


def bt_objective(params: np.ndarray, counts: PairCounts, alpha: float = 0.0, ties="half") -> float:
    """Return the negative log-likelihood plus ``alpha * |theta|^2`` (Bradley & Terry 1952)."""
    return _bt_fgh(counts, alpha, ties)(np.asarray(params, float), 0)


def bt_gradient(params: np.ndarray, counts: PairCounts, alpha: float = 0.0, ties="half"):
    """Return the gradient of :func:`bt_objective`."""
    return _bt_fgh(counts, alpha, ties)(np.asarray(params, float), 1)[1]


def bt_hessian(params: np.ndarray, counts: PairCounts, alpha: float = 0.0, ties="half"):
    """Return the Hessian of :func:`bt_objective` (dense up to ``DENSE_MAX`` items)."""
    return _bt_fgh(counts, alpha, ties)(np.asarray(params, float), 2)[2]


def _counts(data: PairwiseData | PairCounts) -> PairCounts:
    if isinstance(data, PairwiseData):
        data = aggregate_pairwise(data)
    if not isinstance(data, PairCounts):
        raise InvalidInput(f'"data" must be PairwiseData or PairCounts, got {type(data).__name__}')
    if data.n_items < 2 or data.n_pairs == 0:
        raise InvalidInput(
            f'"data" must compare at least 2 items, got {data.n_items} items '
            f"and {data.n_pairs} compared pairs"
        )
    return data


def _edges(counts: PairCounts, a: np.ndarray, b: np.ndarray, extra: np.ndarray | None = None):
    """Directed "preferred at least once" edges for the identifiability check."""
    both = extra if extra is not None else np.zeros_like(a)
    fwd = (a > 0) | (both > 0)
    bwd = (b > 0) | (both > 0)
    src = np.concatenate([counts.lo[fwd], counts.hi[bwd]])
    dst = np.concatenate([counts.hi[fwd], counts.lo[bwd]])
    return src, dst


def bt_pairwise(
    data: PairwiseData | PairCounts,
    alpha: float = 0.0,
    ties: str = "half",
    initial_params: np.ndarray | None = None,
    tol: float = 1e-11,
    names: list[str] | None = None,
) -> np.ndarray:
    """Compute the (penalized) ML estimate of Bradley-Terry log-strengths.

    Bradley & Terry (1952); maximized with Newton's method on the aggregated
    pairs, whose Hessian is a weighted graph Laplacian. With a prior
    (``alpha > 0``) and a comparison graph in several connected components (a
    response-level pool: one per prompt) each component is its own problem, and
    the small ones are solved side by side in batches (:func:`_bt_by_component`).

    Parameters
    ----------
    data : PairwiseData or PairCounts
        Judgments (weights are multiplicities: a weight-2 judgment counts as two).
    alpha : float
        L2 prior strength, penalty ``alpha * sum(theta ** 2)`` as in choix.
    ties : {"half", "drop"}
        "half": a tie counts as half a win for each side; "drop": ignore ties.
    initial_params : ndarray, optional
        Warm start.
    tol : float
        Newton-decrement tolerance, relative to the objective.
    names : list of str, optional
        Item names for error messages (default: ``data.names`` or indices).

    Returns
    -------
    ndarray, shape (n_items,)
        Centred log-strengths.

    Raises
    ------
    NotConverged
        If no prior is set and the comparison graph is disconnected, or some items
        never lost to the rest (the MLE diverges); the message names them.
    """
    counts = _counts(data)
    names = names or getattr(data, "names", None) or [str(i) for i in range(counts.n_items)]
    _check_alpha(alpha)
    a, b = _half_ties(counts, ties)
    check_identifiable(counts.n_items, *_edges(counts, a, b), names, alpha)
    x0 = np.zeros(counts.n_items) if initial_params is None else initial_params
    if alpha > 0:
        n_comp, label = connected_components(
            coo_matrix((np.ones(counts.n_pairs), (counts.lo, counts.hi)),
                       shape=(counts.n_items, counts.n_items)),
            directed=False,
        )
        if n_comp > 1:
            theta = _bt_by_component(counts, alpha, ties, np.asarray(x0, float), label, tol,
                                     cold=initial_params is None)
            return theta - theta.mean()
    gauge = np.ones(counts.n_items, bool) if alpha == 0 else None
    theta, _, _ = newton_minimize(
        _bt_fgh(counts, alpha, ties), x0, gauge, tol=tol, what="Bradley-Terry fit"
    )
    return theta - theta.mean()


def _bt_by_component(
    counts: PairCounts,
    alpha: float,
    ties: str,
    x0: np.ndarray,
    label: np.ndarray,
    tol: float,
    cold: bool = False,
) -> np.ndarray:
    """Minimize the penalized objective one connected component at a time.

    With ``alpha > 0`` the objective is a sum of one term per component, so its
    minimum is the components' minima side by side. Components of up to
    :data:`BLOCK_MAX` items are solved many of one size at once (two items by
    :func:`_newton_two_items`, more by :func:`_newton_blocks`); the larger ones
    together by :func:`newton_minimize`. An item without comparisons stays at 0,
    the prior's minimum. ``cold``: no warm start was given, and two-item
    components start from their smoothed log-odds instead of ``x0``.
    """
    n = counts.n_items
    size = np.bincount(label)
    a, b = _half_ties(counts, ties)
    theta = np.zeros(n)
    big = size[label] > BLOCK_MAX
    if big.any():
        nodes = np.flatnonzero(big)
        index = np.full(n, -1, dtype=np.intp)
        index[nodes] = np.arange(nodes.size)
        keep = big[counts.lo]
        sub = PairCounts(nodes.size, index[counts.lo[keep]], index[counts.hi[keep]],
                         counts.wins_lo[keep], counts.wins_hi[keep], counts.ties[keep])
        theta[nodes], _, _ = newton_minimize(
            _bt_fgh(sub, alpha, ties), x0[nodes], None, tol=tol, what="Bradley-Terry fit"
        )
    # Each node's place in its component, components of one size side by side.
    order = np.argsort(label, kind="stable")
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    local = np.empty(n, dtype=np.intp)
    local[order] = np.arange(n) - start[label[order]]
    pair_comp = label[counts.lo]
    for s in np.unique(size):
        if not 2 <= s <= BLOCK_MAX:
            continue
        comps = np.flatnonzero(size == s)
        block_of = np.full(size.size, -1, dtype=np.intp)
        block_of[comps] = np.arange(comps.size)
        nodes = np.flatnonzero(size[label] == s)
        pairs = np.flatnonzero(size[pair_comp] == s)
        pairs = pairs[np.argsort(block_of[pair_comp[pairs]], kind="stable")]
        pair_block = block_of[pair_comp[pairs]]
        lo, hi = local[counts.lo[pairs]], local[counts.hi[pairs]]
        x = np.zeros((comps.size, s))
        x[block_of[label[nodes]], local[nodes]] = x0[nodes]
        if s == 2:
            x = _newton_two_items(x, pair_block, lo, a[pairs], b[pairs], alpha, tol, cold)
        else:
            per_batch = max(1, _BATCH_ELEMENTS // (s * s))
            for first in range(0, comps.size, per_batch):
                last = min(comps.size, first + per_batch)
                i, j = np.searchsorted(pair_block, [first, last])
                x[first:last] = _newton_blocks(x[first:last], pair_block[i:j] - first, lo[i:j],
                                               hi[i:j], a[pairs[i:j]], b[pairs[i:j]], alpha, tol)
        theta[nodes] = x[block_of[label[nodes]], local[nodes]]
    return theta


def _newton_blocks(
    x: np.ndarray,
    block: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    alpha: float,
    tol: float,
) -> np.ndarray:
    """Minimize ``k`` independent penalized Bradley-Terry objectives of ``s`` items each.

    Newton steps from dense ``(k, s, s)`` Hessians, one batched solve per
    iteration, in :func:`_batched_newton`. ``alpha > 0`` keeps every Hessian regular.

    Parameters
    ----------
    x : ndarray, shape (k, s)
        Starting points.
    block, lo, hi : ndarray of int, shape (p,)
        Each pair's block and its two items' places in the block.
    a, b : ndarray, shape (p,)
        Wins of ``lo`` over ``hi`` and of ``hi`` over ``lo``.
    alpha, tol : float

    Returns
    -------
    ndarray, shape (k, s)
    """
    k, s = x.shape
    tot = a + b
    at_lo, at_hi = block * s + lo, block * s + hi
    cell = block * (s * s)
    entries = np.concatenate([cell + lo * (s + 1), cell + hi * (s + 1),
                              cell + lo * s + hi, cell + hi * s + lo])
    ridge = 2.0 * alpha * np.eye(s)

    def objective(x: np.ndarray) -> np.ndarray:
        d = x.ravel()[at_lo] - x.ravel()[at_hi]
        nll = tot * _softplus(-d) + b * d
        return np.bincount(block, nll, minlength=k) + alpha * np.einsum("ij,ij->i", x, x)

    def newton_step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = x.ravel()[at_lo] - x.ravel()[at_hi]
        sig = _sigmoid(d)
        gd = tot * sig - a
        g = np.bincount(at_lo, gd, minlength=k * s) - np.bincount(at_hi, gd, minlength=k * s)
        g = g.reshape(k, s) + 2.0 * alpha * x
        w = tot * sig * (1.0 - sig)
        h = np.bincount(entries, np.concatenate([w, w, -w, -w]), minlength=k * s * s)
        step = -np.linalg.solve(h.reshape(k, s, s) + ridge, g[..., None])[..., 0]
        return step, -np.einsum("ij,ij->i", g, step)

    return _batched_newton(x, objective, newton_step, tol, f"components of {s} items")


def _newton_two_items(
    x: np.ndarray,
    block: np.ndarray,
    lo: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    alpha: float,
    tol: float,
    cold: bool = False,
) -> np.ndarray:
    """Minimize ``k`` penalized Bradley-Terry objectives of two items each.

    The gradient of a two-item objective at ``(u, -u)`` is ``(c, -c)``, and the
    Hessian has equal diagonal entries, so a Newton step from there stays on that
    line: the iteration of :func:`_newton_blocks` from a point ``(u, -u)`` is the
    scalar Newton iteration on ``phi(u) = a softplus(-2u) + b softplus(2u) +
    2 alpha u^2``, with the same objective values and Newton decrements. A start
    off the line is projected on it: the minimum lies on it (each block's
    scores sum to 0 there, as the gradient of the likelihood sums to 0).

    Parameters
    ----------
    x : ndarray, shape (k, 2)
        Starting points.
    block, lo : ndarray of int, shape (p,)
        Each pair's block and the place of its ``lo`` item (0 or 1) in the block.
    a, b : ndarray, shape (p,)
        Wins of ``lo`` over the other item, and of the other item over ``lo``.
    alpha, tol : float
    cold : bool
        Start from half the log-odds with half a win added to each side
        (Haldane 1956) instead of ``x``: a third fewer iterations than from 0.

    Returns
    -------
    ndarray, shape (k, 2)

    References
    ----------
    Haldane, J. B. S. (1956). The estimation and significance of the logarithm of a
    ratio of frequencies. Annals of Human Genetics, 20(4), 309-311.
    """
    k = x.shape[0]
    first = lo == 0  # orient every pair from the block's item 0
    a0 = np.bincount(block, np.where(first, a, b), minlength=k)
    b0 = np.bincount(block, np.where(first, b, a), minlength=k)
    tot = a0 + b0

    def objective(u: np.ndarray) -> np.ndarray:
        d = 2.0 * u[:, 0]
        return tot * _softplus(-d) + b0 * d + 2.0 * alpha * u[:, 0] ** 2

    def newton_step(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sig = _sigmoid(2.0 * u[:, 0])
        grad = 2.0 * (tot * sig - a0) + 4.0 * alpha * u[:, 0]
        curv = 4.0 * tot * sig * (1.0 - sig) + 4.0 * alpha
        return (-grad / curv)[:, None], grad * grad / curv

    u0 = 0.5 * np.log((a0 + 0.5) / (b0 + 0.5))[:, None] if cold else 0.5 * (x[:, :1] - x[:, 1:])
    u = _batched_newton(u0, objective, newton_step, tol, "components of 2 items")
    return np.hstack([u, -u])


def _batched_newton(x, objective, newton_step, tol: float, what: str, max_iter: int = 200):
    """Run :func:`newton_minimize`'s damped Newton iteration on ``k`` problems at once.

    ``objective(x)`` returns the ``(k,)`` objective values at the rows of ``x``,
    ``newton_step(x)`` the ``(k, s)`` Newton steps and ``(k,)`` Newton decrements.
    Each row keeps its own stopping rule (decrement below ``tol * (1 + |f|)``,
    then the last step is taken) and its own backtracking line search.
    """
    k = x.shape[0]
    x = x.copy()
    f = objective(x)
    active = np.ones(k, dtype=bool)
    for it in range(1, max_iter + 1):
        if not np.all(np.isfinite(f[active])):
            raise NotConverged(f"Bradley-Terry fit: the objective is not finite at iteration {it}")
        step, dec = newton_step(x)
        done = active & (0.5 * dec <= tol * (1.0 + np.abs(f)))
        x[done] += step[done]
        active &= ~done
        if not active.any():
            return x
        step[~active] = 0.0
        t = np.ones(k)
        searching = active.copy()
        while True:
            x_new = x + t[:, None] * step
            f_new = objective(x_new)
            accept = searching & np.isfinite(f_new) & (f_new <= f - 1e-4 * t * dec)
            x[accept], f[accept] = x_new[accept], f_new[accept]
            searching &= ~accept
            if not searching.any():
                break
            t[searching] *= 0.5
            stuck = searching & (t < 1e-12)
            if stuck.any():
                flat = stuck & (np.abs(f_new - f) <= 1e-12 * (1.0 + np.abs(f)))
                if (stuck & ~flat).any():
                    raise NotConverged(f"Bradley-Terry fit: line search failed at iteration {it}")
                active &= ~flat  # flat to machine precision: converged
                searching &= ~flat
                if not searching.any():
                    break
    raise NotConverged(
        f"Bradley-Terry fit: no convergence after {max_iter} Newton iterations in "
        f"{int(active.sum())} of {k} {what}"
    )


def _check_alpha(alpha: float) -> None:
    if not np.isfinite(alpha) or alpha < 0:
        raise InvalidInput(f'"alpha" must be a non-negative number, got {alpha!r}')


def bt_log_likelihood(theta: np.ndarray, counts: PairCounts, ties: str = "half") -> float:
    """Return the Bradley-Terry log-likelihood (no prior)."""
    return -bt_objective(theta, counts, 0.0, ties)


# --- Davidson (1970) ------------------------------------------------------------


def _dav_fgh(counts: PairCounts, alpha: float):
    a, b, t = counts.wins_lo, counts.wins_hi, counts.ties
    tot = a + b + t
    n, lo, hi = counts.n_items, counts.lo, counts.hi

    def fgh(x: np.ndarray, order: int = 2):
        theta, lam = x[:n], x[n]
        u = 0.5 * (theta[lo] - theta[hi])
        log_z = np.logaddexp(np.logaddexp(u, -u), lam)
        f = float(tot @ log_z - (a - b) @ u - t.sum() * lam + alpha * theta @ theta)
        if order == 0:
            return f
        p1 = np.exp(u - log_z)
        p2 = np.exp(-u - log_z)
        p3 = np.exp(lam - log_z)
        gu = tot * (p1 - p2) - (a - b)
        g = np.empty(n + 1)
        g[:n] = 0.5 * (np.bincount(lo, gu, minlength=n) - np.bincount(hi, gu, minlength=n))
        g[:n] += 2.0 * alpha * theta
        g[n] = float(tot @ p3 - t.sum())
        if order == 1:
            return f, g
        huu = tot * (p1 + p2 - (p1 - p2) ** 2)
        hul = -tot * (p1 - p2) * p3
        col = 0.5 * (np.bincount(lo, hul, minlength=n) - np.bincount(hi, hul, minlength=n))
        hll = float(tot @ (p3 - p3 * p3))
        lap = laplacian(n, lo, hi, 0.25 * huu)
        if issparse(lap):
            h = bmat(
                [
                    [lap + 2.0 * alpha * _speye(n), csr_matrix(col[:, None])],
                    [csr_matrix(col[None, :]), csr_matrix([[hll]])],
                ]
            ).tocsr()
        else:
            h = np.empty((n + 1, n + 1))
            h[:n, :n] = lap + 2.0 * alpha * np.eye(n)
            h[:n, n] = h[n, :n] = col
            h[n, n] = hll
        return f, g, h

    return fgh


def davidson_objective(params: np.ndarray, counts: PairCounts, alpha: float = 0.0) -> float:
    """Return the Davidson (1970) negative log-likelihood plus ``alpha |theta|^2``.

    ``params`` is ``[theta_0, ..., theta_{n-1}, log(nu)]``.
    """
    return _dav_fgh(counts, alpha)(np.asarray(params, float), 0)


def davidson_gradient(params: np.ndarray, counts: PairCounts, alpha: float = 0.0):
    """Return the gradient of :func:`davidson_objective`."""
    return _dav_fgh(counts, alpha)(np.asarray(params, float), 1)[1]


def davidson_hessian(params: np.ndarray, counts: PairCounts, alpha: float = 0.0):
    """Return the Hessian of :func:`davidson_objective`."""
    return _dav_fgh(counts, alpha)(np.asarray(params, float), 2)[2]


def davidson_pairwise(
    data: PairwiseData | PairCounts,
    alpha: float = 0.0,
    initial_params: np.ndarray | None = None,
    tol: float = 1e-11,
    names: list[str] | None = None,
) -> tuple[np.ndarray, float]:
    """Compute the (penalized) ML estimate of the Davidson (1970) tie model.

    Parameters
    ----------
    data : PairwiseData or PairCounts
    alpha : float
        L2 prior ``alpha * sum(theta ** 2)`` on the log-strengths (not on ``nu``).
    initial_params : ndarray, shape (n_items + 1,), optional
        Warm start ``[theta, log(nu)]``.
    tol : float
    names : list of str, optional

    Returns
    -------
    scores : ndarray, shape (n_items,)
        Centred log-strengths.
    nu : float
        Tie parameter; ``P(tie)`` between equals is ``nu / (2 + nu)``.

    Raises
    ------
    InvalidInput
        If there is no tie at all (``nu`` would be 0): use Bradley-Terry instead.
    NotConverged
        As :func:`bt_pairwise`; a tie links its two items both ways.
    """
    counts = _counts(data)
    names = names or getattr(data, "names", None) or [str(i) for i in range(counts.n_items)]
    _check_alpha(alpha)
    n_ties = counts.ties.sum()
    if n_ties <= 0:
        raise InvalidInput("the Davidson model needs at least one tie, got none; use 'bt'")
    if n_ties >= counts.wins_lo.sum() + counts.wins_hi.sum() + n_ties:
        raise InvalidInput("the Davidson model needs at least one win, got only ties")
    check_identifiable(
        counts.n_items, *_edges(counts, counts.wins_lo, counts.wins_hi, counts.ties), names, alpha
    )
    n = counts.n_items
    if initial_params is None:
        frac = n_ties / (counts.wins_lo.sum() + counts.wins_hi.sum() + n_ties)
        x0 = np.zeros(n + 1)
        x0[n] = np.log(2.0 * frac / (1.0 - frac))  # P(tie | equal) = nu / (2 + nu)
    else:
        x0 = np.asarray(initial_params, float)
    gauge = np.zeros(n + 1, bool)
    gauge[:n] = alpha == 0
    x, _, _ = newton_minimize(
        _dav_fgh(counts, alpha), x0, gauge if alpha == 0 else None, tol=tol, what="Davidson fit"
    )
    theta = x[:n]
    return theta - theta.mean(), float(np.exp(x[n]))


# --- intervals --------------------------------------------------------------------


def bt_pairwise_cov(theta: np.ndarray, counts: PairCounts, alpha: float = 0.0, ties="half"):
    """Return the covariance of centred scores: the inverse observed Fisher information.

    The sum-to-zero gauge is handled by :func:`prefstore.models.base.centred_cov`.
    """
    h = _bt_fgh(counts, alpha, ties)(theta, 2)[2]
    return centred_cov(h)


def bt_pairwise_var(theta: np.ndarray, counts: PairCounts, alpha: float = 0.0, ties="half"):
    """Return the variances of centred scores: the diagonal of :func:`bt_pairwise_cov`.

    Computed from the sparse Hessian one connected component at a time
    (:func:`prefstore.models.sparse_var.centred_var`), so big pools get
    intervals without an n x n inverse (issue 17).
    """
    n, lo, hi = counts.n_items, counts.lo, counts.hi
    a, b = _half_ties(counts, ties)
    s = _sigmoid(theta[lo] - theta[hi])
    h = laplacian(n, lo, hi, (a + b) * s * (1.0 - s), dense=False) + 2.0 * alpha * _speye(n)
    return centred_var(h)


def davidson_pairwise_cov(theta: np.ndarray, nu: float, counts: PairCounts, alpha: float = 0.0):
    """Return the covariance of ``[centred scores, log(nu)]``."""
    n = counts.n_items
    check_dense_ci(n + 1)
    h = _dav_fgh(counts, alpha)(np.append(theta, np.log(nu)), 2)[2]
    h = h.toarray() if issparse(h) else h
    g = np.zeros((n + 1, n + 1))
    g[:n, :n] = 1.0 / n
    inv = np.linalg.inv(h + g)
    c = np.eye(n + 1)
    c[:n, :n] -= 1.0 / n  # centre the scores, leave log(nu) alone
    inv = c @ inv @ c
    return 0.5 * (inv + inv.T)


def bootstrap_cells(counts: PairCounts, weights: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Resample judgments and return ``(n_boot, 3 * n_pairs)`` outcome weights.

    Poisson(1) reweighting of each judgment (Hanley & MacGibbon 2006), done on
    the aggregated cells: identical (pair, outcome, weight) judgments are
    grouped, and the sum of ``c`` Poisson(1) draws is one Poisson(``c``) draw.
    """
    rng = np.random.default_rng(seed)
    wvals, widx = np.unique(weights, return_inverse=True)
    key = counts.cell.astype(np.int64) * wvals.shape[0] + widx
    ukey, mult = np.unique(key, return_counts=True)
    cell, wv = ukey // wvals.shape[0], wvals[ukey % wvals.shape[0]]
    draws = rng.poisson(mult, size=(n_boot, mult.shape[0])) * wv
    n_cells = 3 * counts.n_pairs
    flat = (np.arange(n_boot)[:, None] * n_cells + cell[None, :]).ravel()
    return np.bincount(flat, draws.ravel(), minlength=n_boot * n_cells).reshape(n_boot, -1)


# --- model objects ----------------------------------------------------------------


def _resolve_anchor(anchor: Any, names: list[str]) -> int | None:
    if anchor is None:
        return None
    if isinstance(anchor, (int, np.integer)):
        if not 0 <= int(anchor) < len(names):
            raise InvalidInput(f'"anchor" must lie in 0..{len(names) - 1}, got {anchor}')
        return int(anchor)
    if str(anchor) not in names:
        raise InvalidInput(f'"anchor" {anchor!r} is not an item name')
    return names.index(str(anchor))


def _check_ci(ci: str | None, n_boot: int) -> None:
    if ci not in (None, "hessian", "bootstrap"):
        raise InvalidInput(f'"ci" must be None, "hessian" or "bootstrap", got {ci!r}')
    if ci == "bootstrap" and n_boot < 2:
        raise InvalidInput(f'"n_boot" must be at least 2, got {n_boot}')


class BradleyTerry:
    """Bradley-Terry (1952) model; ties count as half a win each (or are dropped)."""

    name = "bt"
    label = "Bradley-Terry (ties = half a win)"
    data = "pairwise"

    def fit(
        self,
        data: PairwiseData,
        *,
        alpha: float = 0.0,
        ci: str | None = "hessian",
        n_boot: int = 200,
        seed: int = 0,
        anchor: int | str | None = None,
        ties: str = "half",
        **options: Any,
    ) -> FitResult:
        """Fit the model and return a :class:`FitResult`.

        Parameters
        ----------
        data : PairwiseData
        alpha : float
            L2 prior strength (0: plain maximum likelihood).
        ci : {"hessian", "bootstrap", None}
            "hessian": Wald intervals from the inverse observed information;
            "bootstrap": percentile intervals over ``n_boot`` Poisson reweightings
            of the judgments, each refit warm-started at the estimate.
        n_boot, seed : int
            Bootstrap rounds and RNG seed.
        anchor : int or str, optional
            Item placed at 1000 on the Elo-like scale.
        ties : {"half", "drop"}
        """
        _reject_options(options, self.name)
        _check_ci(ci, n_boot)
        start = time.perf_counter()
        counts = _counts(data)
        theta = bt_pairwise(counts, alpha, ties, names=data.names)
        ci95 = np.full((data.n_items, 2), np.nan)
        if ci == "hessian":
            ci95 = wald_ci(theta, bt_pairwise_var(theta, counts, alpha, ties))
        elif ci == "bootstrap":
            cells = bootstrap_cells(counts, data.weights, n_boot, seed)
            gauge = np.ones(data.n_items, bool) if alpha == 0 else None
            samples = np.empty((n_boot, data.n_items))
            for k in range(n_boot):  # one warm-started Newton fit per round
                fgh = _bt_fgh(counts.with_weights(cells[k]), max(alpha, 1e-8), ties)
                x, _, _ = newton_minimize(fgh, theta, gauge, tol=1e-9, what="bootstrap refit")
                samples[k] = x - x.mean()
            ci95 = percentile_ci(samples)
        return FitResult(
            model=self.name,
            scores=theta,
            ci95=ci95,
            names=list(data.names),
            log_likelihood=bt_log_likelihood(theta, counts, ties),
            n_comparisons=len(data),
            seconds=time.perf_counter() - start,
            params={"alpha": alpha, "ties": ties, "ci": ci},
            level=data.level,
            anchor=_resolve_anchor(anchor, data.names),
        )


class Davidson:
    """Davidson (1970) model: Bradley-Terry with an explicit tie probability."""

    name = "davidson"
    label = "Davidson (Bradley-Terry with ties)"
    data = "pairwise"

    def fit(
        self,
        data: PairwiseData,
        *,
        alpha: float = 0.0,
        ci: str | None = "hessian",
        n_boot: int = 200,
        seed: int = 0,
        anchor: int | str | None = None,
        **options: Any,
    ) -> FitResult:
        """Fit the model and return a :class:`FitResult` (``params["nu"]`` is the tie parameter).

        Parameters are those of :meth:`BradleyTerry.fit`.
        """
        _reject_options(options, self.name)
        _check_ci(ci, n_boot)
        start = time.perf_counter()
        counts = _counts(data)
        theta, nu = davidson_pairwise(counts, alpha, names=data.names)
        n = data.n_items
        ci95 = np.full((n, 2), np.nan)
        nu_ci = [float("nan"), float("nan")]
        if ci == "hessian":
            cov = davidson_pairwise_cov(theta, nu, counts, alpha)
            ci95 = wald_ci(theta, cov[:n, :n])
            sd = np.sqrt(max(cov[n, n], 0.0))
            nu_ci = [float(nu * np.exp(-1.96 * sd)), float(nu * np.exp(1.96 * sd))]
        elif ci == "bootstrap":
            cells = bootstrap_cells(counts, data.weights, n_boot, seed)
            gauge = np.zeros(n + 1, bool)
            gauge[:n] = True
            x0 = np.append(theta, np.log(nu))
            samples = np.empty((n_boot, n + 1))
            for k in range(n_boot):
                fgh = _dav_fgh(counts.with_weights(cells[k]), max(alpha, 1e-8))
                x, _, _ = newton_minimize(fgh, x0, gauge, tol=1e-9, what="bootstrap refit")
                samples[k, :n] = x[:n] - x[:n].mean()
                samples[k, n] = np.exp(x[n])
            ci95 = percentile_ci(samples[:, :n])
            nu_ci = np.percentile(samples[:, n], [2.5, 97.5]).tolist()
        ll = -davidson_objective(np.append(theta, np.log(nu)), counts, 0.0)
        return FitResult(
            model=self.name,
            scores=theta,
            ci95=ci95,
            names=list(data.names),
            log_likelihood=ll,
            n_comparisons=len(data),
            seconds=time.perf_counter() - start,
            params={"alpha": alpha, "nu": nu, "nu_ci95": nu_ci, "ci": ci},
            level=data.level,
            anchor=_resolve_anchor(anchor, data.names),
        )


def _reject_options(options: dict, model: str) -> None:
    if options:
        raise InvalidInput(f"model {model!r} got unknown options: {sorted(options)}")


__all__ = [
    "DENSE_MAX",
    "BradleyTerry",
    "Davidson",
    "PairCounts",
    "aggregate_pairwise",
    "bootstrap_cells",
    "bt_gradient",
    "bt_hessian",
    "bt_log_likelihood",
    "bt_objective",
    "bt_pairwise",
    "bt_pairwise_cov",
    "bt_pairwise_var",
    "davidson_gradient",
    "davidson_hessian",
    "davidson_objective",
    "davidson_pairwise",
    "davidson_pairwise_cov",
]
