"""Data containers, the common fit result and the model interface.

Items are integers ``0..n_items-1`` everywhere in ``prefstore.models``; the
only place database ids become indices is :mod:`prefstore.models.adapter`.
Scores are centred log-strengths (natural log, mean zero), as in choix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from scipy.sparse import csr_matrix, issparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, cg

from prefstore.errors import InvalidInput, NotConverged

#: Points per natural-log unit on the Elo-like scale (400 per factor of ten in odds).
ELO_PER_NAT = 400.0 / math.log(10.0)
#: Elo-like value of the anchor item (or of the average item when no anchor is set).
ELO_BASE = 1000.0


def _as_int_array(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.intp)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.intp)
        else:
            raise InvalidInput(f'"{name}" must hold integers, got dtype {arr.dtype}')
    return arr.astype(np.intp, copy=False)


def _default_names(n: int, names: list[str] | None, what: str = "names") -> list[str]:
    if names is None:
        return [str(i) for i in range(n)]
    names = list(map(str, names))
    if len(names) != n:
        raise InvalidInput(f'"{what}" must have {n} entries, got {len(names)}')
    return names


@dataclass
class PairwiseData:
    """Pairwise judgments as integer arrays (one entry per judgment).

    Parameters
    ----------
    winners, losers : ndarray of int, shape (m,)
        Item indices. For a tie the order of the two items does not matter.
    n_items : int
        Number of items; indices run over ``0..n_items-1``.
    ties : ndarray of bool, shape (m,), optional
        True where the judgment is a tie. Default: no ties.
    weights : ndarray of float, shape (m,), optional
        Non-negative weight of each judgment (e.g. from its strength). Default 1.
    raters : ndarray of int, shape (m,), optional
        Rater index of each judgment, used by the mixture model. Default 0.
    names, rater_names : list of str, optional
        Display names of the items and raters. Default ``"0", "1", ...``.
    level : str, optional
        What an item is ("system" or "response"); copied into fit results.
    """

    winners: np.ndarray
    losers: np.ndarray
    n_items: int
    ties: np.ndarray | None = None
    weights: np.ndarray | None = None
    raters: np.ndarray | None = None
    names: list[str] | None = None
    rater_names: list[str] | None = None
    level: str | None = None

    data: ClassVar[str] = "pairwise"

    def __post_init__(self) -> None:
        self.winners = _as_int_array("winners", self.winners)
        self.losers = _as_int_array("losers", self.losers)
        m = self.winners.shape[0]
        if self.winners.ndim != 1 or self.losers.shape != (m,):
            raise InvalidInput(
                f'"winners" and "losers" must be 1-d of equal length, got shapes '
                f"{self.winners.shape} and {self.losers.shape}"
            )
        self.n_items = int(self.n_items)
        if m and (
            min(self.winners.min(), self.losers.min()) < 0
            or max(self.winners.max(), self.losers.max()) >= self.n_items
        ):
            raise InvalidInput(f"item indices must lie in 0..{self.n_items - 1}")
        if m and np.any(self.winners == self.losers):
            k = int(np.flatnonzero(self.winners == self.losers)[0])
            raise InvalidInput(f"judgment {k}: an item is compared with itself ({self.winners[k]})")
        self.ties = (
            np.zeros(m, dtype=bool) if self.ties is None else np.asarray(self.ties, dtype=bool)
        )
        self.weights = np.ones(m) if self.weights is None else np.asarray(self.weights, dtype=float)
        if self.ties.shape != (m,) or self.weights.shape != (m,):
            raise InvalidInput(f'"ties" and "weights" must have length {m}')
        if np.any(~np.isfinite(self.weights)) or np.any(self.weights < 0):
            raise InvalidInput('"weights" must be finite and non-negative')
        self.raters = (
            np.zeros(m, dtype=np.intp)
            if self.raters is None
            else _as_int_array("raters", self.raters)
        )
        if self.raters.shape != (m,):
            raise InvalidInput(f'"raters" must have length {m}, got {self.raters.shape}')
        self.names = _default_names(self.n_items, self.names)
        n_r = int(self.raters.max()) + 1 if m else 1
        if self.rater_names is not None:
            n_r = max(n_r, len(self.rater_names))
        self.rater_names = _default_names(n_r, self.rater_names, "rater_names")

    def __len__(self) -> int:
        return int(self.winners.shape[0])

    @property
    def n_raters(self) -> int:
        return len(self.rater_names)

    def subset(self, mask: np.ndarray) -> PairwiseData:
        """Return the judgments selected by a boolean mask (same items and raters)."""
        return PairwiseData(
            self.winners[mask],
            self.losers[mask],
            self.n_items,
            self.ties[mask],
            self.weights[mask],
            self.raters[mask],
            self.names,
            self.rater_names,
            self.level,
        )


@dataclass
class RankingData:
    """Rankings and best-of-K choices as a padded integer array.

    Row ``r`` lists the items shown, best first, padded with ``-1``. The first
    ``depth[r]`` positions are successive choices (Plackett-Luce stages): a full
    ranking of ``L`` items has depth ``L - 1``; a best-of-K choice (only the
    winner known) has depth 1, its remaining entries being the items not chosen
    in any order.

    Parameters
    ----------
    rankings : ndarray of int, shape (r, L)
        Padded rankings (``-1`` pads). A list of lists is accepted too.
    n_items : int
        Number of items.
    depth : ndarray of int, shape (r,), optional
        Number of choice stages of each row. Default: full rankings.
    weights, raters, names, rater_names, level
        As in :class:`PairwiseData`, one weight and rater per row.
    """

    rankings: np.ndarray
    n_items: int
    depth: np.ndarray | None = None
    weights: np.ndarray | None = None
    raters: np.ndarray | None = None
    names: list[str] | None = None
    rater_names: list[str] | None = None
    level: str | None = None

    data: ClassVar[str] = "rankings"

    def __post_init__(self) -> None:
        self.rankings = pad_rankings(self.rankings)
        r, width = self.rankings.shape
        self.n_items = int(self.n_items)
        lengths = (self.rankings >= 0).sum(axis=1)
        if r and np.any(self.rankings[:, 0] < 0):
            raise InvalidInput("every ranking must hold at least one item")
        if r and np.any(np.diff((self.rankings >= 0).astype(np.int8), axis=1) > 0):
            raise InvalidInput("rankings must be padded with -1 at the end only")
        if r and self.rankings.max() >= self.n_items:
            raise InvalidInput(f"item indices must lie in 0..{self.n_items - 1}")
        if r and width > 1:
            srt = np.sort(self.rankings, axis=1)
            dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
            if dup.any():
                k = int(np.flatnonzero(dup.any(axis=1))[0])
                raise InvalidInput(f"ranking {k} lists an item twice: {self.rankings[k].tolist()}")
        if self.depth is None:
            self.depth = np.maximum(lengths - 1, 0)
        else:
            self.depth = _as_int_array("depth", self.depth)
            if self.depth.shape != (r,):
                raise InvalidInput(f'"depth" must have length {r}, got {self.depth.shape}')
            self.depth = np.minimum(self.depth, np.maximum(lengths - 1, 0))
        self.weights = np.ones(r) if self.weights is None else np.asarray(self.weights, float)
        if self.weights.shape != (r,) or np.any(self.weights < 0):
            raise InvalidInput(f'"weights" must be {r} non-negative numbers')
        self.raters = (
            np.zeros(r, dtype=np.intp)
            if self.raters is None
            else _as_int_array("raters", self.raters)
        )
        if self.raters.shape != (r,):
            raise InvalidInput(f'"raters" must have length {r}, got {self.raters.shape}')
        self.names = _default_names(self.n_items, self.names)
        n_r = int(self.raters.max()) + 1 if r else 1
        if self.rater_names is not None:
            n_r = max(n_r, len(self.rater_names))
        self.rater_names = _default_names(n_r, self.rater_names, "rater_names")

    def __len__(self) -> int:
        return int(self.rankings.shape[0])

    @property
    def n_raters(self) -> int:
        return len(self.rater_names)

    def subset(self, mask: np.ndarray) -> RankingData:
        """Return the rows selected by a boolean mask (same items and raters)."""
        return RankingData(
            self.rankings[mask],
            self.n_items,
            self.depth[mask],
            self.weights[mask],
            self.raters[mask],
            self.names,
            self.rater_names,
            self.level,
        )


def pad_rankings(rankings: Any) -> np.ndarray:
    """Return rankings of different lengths as one ``(r, L)`` int array padded with -1."""
    if isinstance(rankings, np.ndarray) and rankings.ndim == 2:
        if rankings.size == 0:
            return rankings.astype(np.intp)
        return _as_int_array("rankings", rankings)
    rows = [list(map(int, row)) for row in rankings]
    width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), -1, dtype=np.intp)
    for k, row in enumerate(rows):  # one pass over rows to pad, not over comparisons
        out[k, : len(row)] = row
    return out


def components_message(labels: np.ndarray, names: list[str], limit: int = 6) -> str:
    """Describe graph components by item names, the largest first."""
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    groups.sort(key=len, reverse=True)
    parts = []
    for g in groups[:limit]:
        shown = [names[i] for i in g[:8]]
        more = f", ... ({len(g)} items)" if len(g) > 8 else ""
        parts.append("{" + ", ".join(shown) + more + "}")
    if len(groups) > limit:
        parts.append(f"... and {len(groups) - limit} more")
    return "; ".join(parts)


def check_identifiable(
    n_items: int, src: np.ndarray, dst: np.ndarray, names: list[str], alpha: float
) -> None:
    """Raise when the maximum-likelihood estimate does not exist.

    ``src -> dst`` edges mean "src was preferred to dst at least once". The MLE
    of a Bradley-Terry / Plackett-Luce model is finite iff this directed graph is
    strongly connected (Zermelo 1929; Ford 1957; Hunter 2004). A positive
    ``alpha`` (L2 prior) always makes the estimate finite, so nothing is checked.

    Raises
    ------
    NotConverged
        Naming the components when the comparison graph is disconnected, or the
        items that were never beaten by the rest.
    """
    if alpha > 0 or n_items <= 1:
        return
    from scipy.sparse import coo_matrix

    graph = coo_matrix((np.ones(src.shape[0]), (src, dst)), shape=(n_items, n_items)).tocsr()
    n_weak, weak = connected_components(graph, directed=True, connection="weak")
    if n_weak > 1:
        raise NotConverged(
            f"the comparison graph is not connected ({n_weak} components: "
            f"{components_message(weak, names)}); scores of different components are "
            f"not comparable. Collect comparisons across them or set alpha > 0"
        )
    n_strong, strong = connected_components(graph, directed=True, connection="strong")
    if n_strong > 1:
        # Components that no outside item ever beat: their strengths run off to infinity.
        beaten_from_outside = np.zeros(n_strong, dtype=bool)
        cross = strong[src] != strong[dst]
        beaten_from_outside[strong[dst[cross]]] = True
        top = np.flatnonzero(~beaten_from_outside)
        top_items = np.flatnonzero(np.isin(strong, top))
        shown = ", ".join(names[i] for i in top_items[:8])
        more = f", ... ({len(top_items)} items)" if len(top_items) > 8 else ""
        raise NotConverged(
            f"the maximum-likelihood estimate diverges: {shown}{more} never lost to the "
            f"other items ({n_strong} strongly connected components: "
            f"{components_message(strong, names)}). Set alpha > 0 for a finite estimate"
        )


MAX_HESSIAN_CI_ITEMS = 4000


def check_dense_ci(n: int) -> None:
    """Refuse Hessian intervals whose dense n x n inverse would not fit in memory.

    Raises
    ------
    InvalidInput
        Above ``MAX_HESSIAN_CI_ITEMS`` items (400k responses would ask for terabytes).
    """
    if n > MAX_HESSIAN_CI_ITEMS:
        raise InvalidInput(
            f"Hessian 95% intervals over {n:,} items need a dense {n:,} x {n:,} inverse "
            f"(limit {MAX_HESSIAN_CI_ITEMS:,} items); use ci='bootstrap' or ci=None")


def centred_cov(hessian) -> np.ndarray:
    """Covariance of centred scores from the Hessian of the negative log-posterior.

    The likelihood is invariant to adding a constant to all scores, so the
    Hessian is singular along the all-ones vector. Adding ``J / n`` (``J`` the
    all-ones matrix) fixes the sum-to-zero gauge, and projecting with the
    centring matrix ``C = I - J / n`` gives ``C (H + J / n)^{-1} C``: the
    pseudo-inverse of ``H`` without a prior, and the covariance of the centred
    scores ``C theta`` with one (then ``H`` is regular).

    Raises
    ------
    NotConverged
        If the Hessian is singular in another direction (disconnected data).
    InvalidInput
        Above ``MAX_HESSIAN_CI_ITEMS`` items, where the dense inverse is too big.
    """
    n = hessian.shape[0]
    check_dense_ci(n)
    if hasattr(hessian, "toarray"):  # sparse, checked small enough above
        hessian = hessian.toarray()
    j = np.full((n, n), 1.0 / n)
    try:
        inv = np.linalg.inv(hessian + j)
    except np.linalg.LinAlgError as exc:
        raise NotConverged(f"the information matrix is singular: {exc}") from None
    inv -= inv.mean(axis=0, keepdims=True)
    inv -= inv.mean(axis=1, keepdims=True)
    return 0.5 * (inv + inv.T)


def wald_ci(scores: np.ndarray, cov: np.ndarray, z: float = 1.959963984540054) -> np.ndarray:
    """Return ``(n, 2)`` Wald intervals ``scores +- z * sd``.

    ``cov`` is the ``(n, n)`` covariance or only its diagonal, ``(n,)`` variances.
    """
    var = np.diag(cov) if np.ndim(cov) == 2 else np.asarray(cov)
    sd = np.sqrt(np.clip(var, 0.0, None))
    return np.column_stack([scores - z * sd, scores + z * sd])


def percentile_ci(samples: np.ndarray) -> np.ndarray:
    """Return ``(n, 2)`` 2.5 / 97.5 percentile intervals of ``(B, n)`` samples."""
    return np.percentile(samples, [2.5, 97.5], axis=0).T


def to_elo(scores: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Map centred log-strengths to an Elo-like scale.

    ``elo = 1000 + 400 / ln(10) * (score - score[anchor])``: a 400-point gap means
    10-to-1 odds. Without an anchor the average item sits at 1000.
    """
    ref = 0.0 if anchor is None else scores[anchor]
    return ELO_BASE + ELO_PER_NAT * (np.asarray(scores) - ref)


@dataclass
class FitResult:
    """What every model returns.

    Attributes
    ----------
    model : str
        Registry name of the model (``"bt"``, ``"davidson"``, ``"pl"``, ``"mixture"``).
    scores : ndarray, shape (n,)
        Centred log-strengths. For the mixture, the strengths of the population
        (the types' scores averaged with the mixture weights).
    ci95 : ndarray, shape (n, 2)
        95% intervals for ``scores`` (NaN when no interval was asked for).
    names : list of str
        Item names, aligned with ``scores``.
    log_likelihood : float
        Log-likelihood at the estimate (without the prior term).
    n_comparisons : int
        Number of judgments used (rows of the data).
    seconds : float
        Wall time of the fit, intervals included.
    params : dict
        Other fitted or chosen parameters (tie parameter, alpha, ci method, ...).
    level : str or None
        What an item is ("system" or "response"), from the data.
    anchor : int or None
        Item at 1000 on the Elo-like scale (None: the average item).
    types : list of dict or None
        Mixture only: per type ``{"weight", "scores", "ci95"}`` (arrays).
    rater_probs : ndarray, shape (n_raters, k) or None
        Mixture only: posterior type probabilities of each rater.
    rater_names : list of str or None
        Mixture only: names aligned with ``rater_probs``.
    bic : float or None
        Mixture only: Bayesian information criterion (Schwarz 1978).
    k : int or None
        Mixture only: number of types.
    """

    model: str
    scores: np.ndarray
    ci95: np.ndarray
    names: list[str]
    log_likelihood: float
    n_comparisons: int
    seconds: float
    params: dict = field(default_factory=dict)
    level: str | None = None
    anchor: int | None = None
    types: list[dict] | None = None
    rater_probs: np.ndarray | None = None
    rater_names: list[str] | None = None
    bic: float | None = None
    k: int | None = None

    @property
    def elo(self) -> np.ndarray:
        """Scores on the Elo-like scale (see :func:`to_elo`)."""
        return to_elo(self.scores, self.anchor)

    def index(self, item: int | str) -> int:
        """Return the index of an item given by index or name."""
        if isinstance(item, (int, np.integer)):
            if not 0 <= int(item) < len(self.names):
                raise InvalidInput(f"item index must lie in 0..{len(self.names) - 1}, got {item}")
            return int(item)
        try:
            return self.names.index(str(item))
        except ValueError:
            raise InvalidInput(f"unknown item {item!r}") from None

    def win_probability(self, i: int | str, j: int | str) -> float:
        """Return the Bradley-Terry probability that item ``i`` beats item ``j``.

        For the Davidson model this is the probability of a win, ties excluded
        from neither side: ``P(i > j) = pi_i / (pi_i + pi_j + nu sqrt(pi_i pi_j))``.
        """
        return float(self.predict_pairwise([self.index(i)], [self.index(j)])[0])

    def predict_pairwise(self, i: Any, j: Any) -> np.ndarray:
        """Return win probabilities of items ``i`` over items ``j`` (vectorized)."""
        i = _as_int_array("i", i)
        j = _as_int_array("j", j)
        d = self.scores[i] - self.scores[j]
        nu = self.params.get("nu")
        if nu is None:
            return 1.0 / (1.0 + np.exp(-d))
        return 1.0 / (1.0 + np.exp(-d) + nu * np.exp(-0.5 * d))

    def to_dict(self) -> dict:
        """Return a JSON-able summary keyed by item name."""
        elo = self.elo
        out: dict[str, Any] = {
            "model": self.model,
            "level": self.level,
            # Whole arrays to Python floats at once: a response-level fit has 100k+ names.
            "scores": dict(zip(self.names, np.asarray(self.scores, float).tolist())),
            "ci95": dict(zip(self.names, _finite_rows(self.ci95))),
            "elo": dict(zip(self.names, np.asarray(elo, float).tolist())),
            "log_likelihood": float(self.log_likelihood),
            "n_comparisons": int(self.n_comparisons),
            "seconds": float(self.seconds),
            "params": _jsonable(self.params),
        }
        if self.types is not None:
            out["types"] = [
                {
                    "weight": float(t["weight"]),
                    "scores": {n: float(s) for n, s in zip(self.names, t["scores"])},
                    "ci95": {
                        n: [_finite(lo), _finite(hi)] for n, (lo, hi) in zip(self.names, t["ci95"])
                    },
                }
                for t in self.types
            ]
            out["raters"] = {
                r: [float(p) for p in row] for r, row in zip(self.rater_names, self.rater_probs)
            }
            out["bic"] = float(self.bic)
            out["k"] = int(self.k)
        return out


def _finite_rows(values: np.ndarray) -> list[list[float | None]]:
    """Rows of floats for JSON, NaN as null: :func:`_finite` over a whole array."""
    values = np.asarray(values, float)
    if values.ndim == 2 and not np.isfinite(values).any():
        # No intervals asked for (response level: 200k rows): nulls without the object array.
        return [[None] * values.shape[1] for _ in range(values.shape[0])]
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def _finite(value: float) -> float | None:
    """A float for JSON; NaN (no interval computed) becomes null, as JSON has no NaN."""
    value = float(value)
    return value if np.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Above this many parameters Newton steps use conjugate gradients on a sparse Hessian.
DENSE_MAX = 1500


def newton_minimize(
    fgh: Any,
    x0: np.ndarray,
    gauge: np.ndarray | None = None,
    *,
    tol: float = 1e-11,
    max_iter: int = 200,
    what: str = "fit",
) -> tuple[np.ndarray, float, int]:
    """Minimize a smooth convex function by damped Newton steps.

    Parameters
    ----------
    fgh : callable
        ``fgh(x, order)`` returns ``f`` (order 0), ``(f, g)`` (order 1) or
        ``(f, g, H)`` (order 2); ``H`` dense or scipy-sparse.
    x0 : ndarray
        Starting point (warm starts make bootstrap refits cheap).
    gauge : ndarray of bool, optional
        Coordinates along whose common shift ``f`` is invariant. ``H + u u^T / n``
        is solved instead of the singular ``H`` (the shift does not change ``f``).
    tol : float
        Stop when the Newton decrement ``g^T H^{-1} g / 2`` falls below
        ``tol * (1 + |f|)``.
    max_iter : int
        Iteration budget.
    what : str
        Named in the error message.

    Returns
    -------
    x, f, n_iter

    Raises
    ------
    NotConverged
        If the budget runs out, or the objective is not finite.
    """
    x = np.array(x0, dtype=float)
    u = None if gauge is None else gauge.astype(float) / math.sqrt(max(gauge.sum(), 1))
    f, g, hess = fgh(x, 2)
    for it in range(1, max_iter + 1):
        if not np.isfinite(f):
            raise NotConverged(f"{what}: the objective is not finite ({f}) at iteration {it}")
        step = -_solve(hess, g, u)
        dec = -float(g @ step)
        if not np.isfinite(dec) or dec < 0:
            step, dec = -g, float(g @ g)
        if 0.5 * dec <= tol * (1.0 + abs(f)):
            return x + step, f, it
        t = 1.0
        while True:
            x_new = x + t * step
            f_new = fgh(x_new, 0)
            if np.isfinite(f_new) and f_new <= f - 1e-4 * t * dec:
                break
            t *= 0.5
            if t < 1e-12:
                if abs(f_new - f) <= 1e-12 * (1.0 + abs(f)):
                    return x, f, it  # flat to machine precision: converged
                raise NotConverged(f"{what}: line search failed at iteration {it}")
        x = x_new
        f, g, hess = fgh(x, 2)
    raise NotConverged(
        f"{what}: no convergence after {max_iter} Newton iterations "
        f"(gradient norm {np.abs(g).max():.3g})"
    )


def _solve(hess: Any, g: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    if not issparse(hess):
        h = hess if u is None else hess + np.outer(u, u)
        try:
            return np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(h, g, rcond=None)[0]
    hess = csr_matrix(hess)
    n = g.shape[0]
    if u is None:
        op = hess
    else:
        op = LinearOperator((n, n), matvec=lambda v: hess @ v + u * (u @ v), dtype=float)
    diag = hess.diagonal() + (0.0 if u is None else u * u)
    diag = np.where(diag > 0, diag, 1.0)
    pre = LinearOperator((n, n), matvec=lambda v: v / diag, dtype=float)
    sol, _ = cg(op, g, rtol=1e-10, atol=0.0, maxiter=10 * n, M=pre)
    return sol


def laplacian(
    n: int, lo: np.ndarray, hi: np.ndarray, h: np.ndarray, dense: bool | None = None
) -> Any:
    """Return the weighted graph Laplacian ``sum h (e_lo - e_hi)(e_lo - e_hi)^T``."""
    diag = np.bincount(lo, h, minlength=n) + np.bincount(hi, h, minlength=n)
    if dense is None:
        dense = n <= DENSE_MAX
    if dense:
        out = -np.bincount(lo * n + hi, h, minlength=n * n).reshape(n, n)
        out = out + out.T
        out[np.diag_indices(n)] = diag
        return out
    rows = np.concatenate([lo, hi, np.arange(n)])
    cols = np.concatenate([hi, lo, np.arange(n)])
    vals = np.concatenate([-h, -h, diag])
    return csr_matrix((vals, (rows, cols)), shape=(n, n))


class Model(Protocol):
    """The interface every registered model offers.

    ``name`` is the registry key, ``label`` is for humans, ``data`` says which
    container ``fit`` takes ("pairwise" or "rankings").
    """

    name: str
    label: str
    data: str

    def fit(
        self,
        data: PairwiseData | RankingData,
        *,
        alpha: float = 0.0,
        ci: str | None = "hessian",
        n_boot: int = 200,
        seed: int = 0,
        anchor: int | str | None = None,
        **options: Any,
    ) -> FitResult: ...
