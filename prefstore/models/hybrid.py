"""Hybrid leaderboards: human judgments made more precise by an LLM judge (PPI++).

Prediction-powered inference (Angelopoulos et al., Science 2023) with power tuning
(PPI++: Angelopoulos, Duchi & Zrnic 2023), applied to LLM rankings as in Chatzi et
al. (NeurIPS 2024). Bradley-Terry is an M-estimator: on item ``i`` comparing systems
``a`` and ``b`` with label ``y`` (share of "a won": 1, 0, or 0.5 for a tie) the loss
is ``l_i(theta; y) = softplus(d_i) - y d_i`` with ``d_i = theta_a - theta_b``. With
the human-labelled items ``L`` (``n`` of them, a random share of the ``N`` items the
judge labelled) the estimate is

    theta_lambda = argmin  sum_{i in L} l_i(theta; ybar_i)
                           + lambda ( n/N sum_{all i} l_i(theta; yhat_i)
                                      - sum_{i in L} l_i(theta; yhat_i) )
                           + alpha |theta|^2,

``ybar_i`` the mean of item ``i``'s human labels (the item is the unit of sampling,
however many raters judged it) and ``yhat_i`` the judge's label. The bracket has
expectation zero whatever the judge says, so the estimate targets the human
ranking; ``lambda = 0`` is the human-only fit, exactly Bradley-Terry on the human
judgments with each item's labels weighted ``1 / (number of labels)`` and the same
prior (tested to 1e-10). The loss is linear in the label, so the objective is a
Bradley-Terry objective on the compared pairs with (possibly fractional or
negative) win weights and is minimised by :func:`bt_pairwise`'s Newton method.

Intervals: the sandwich ``H^-1 V H^-1`` with ``H`` the Hessian of the objective and
``V = n Cov_L(u - lambda (1 - n/N) v) + (N - n) Cov_U(lambda n/N v)``, where
``u_i``, ``v_i`` are item ``i``'s human-label and judge-label gradients and ``U``
the items without human labels: the exact plug-in variance of the estimating
equation when the labelled items are a random subset of the judged ones (the judge
term runs over all items, labelled included). Scores are centred (pseudo-inverse
on the sum-to-zero plane). ``lambda = "auto"`` minimises the total variance,
``lambda* = tr(H^-1 Cov(u, v) H^-1) / tr(H^-1 Cov(v) H^-1)`` clipped to [0, 1]
(with the judge term over all items the ``1 + n/N`` factor of PPI++ cancels),
computed at the ``lambda = 1`` estimate and refitted, as ``ppi_py`` does.

An item whose judge output could not be parsed (PandaLM's "garbage") has no judge
label: its judge loss is zero on both sides of the bracket, which keeps the
estimate unbiased (the judge is simply a predictor that abstains there), unless
``missing_judge="tie"`` scores it as a tie.

Why not ``ppi_py``'s ``ppi_logistic_ci``: its design needs a full-rank covariate
matrix (Bradley-Terry's ``e_a - e_b`` rows sum to zero, so a reference system would
replace the centring constraint), its initialisation calls scikit-learn's
``LogisticRegression`` which refuses the 0.5 labels of ties, it has no ridge, it
treats the unlabelled set as disjoint from the labelled one, it cannot leave one
item's judge label out, and it optimises with L-BFGS, so ``lambda = 0`` would not
reproduce the human-only Bradley-Terry fit to 1e-10. The tests compare its point
estimate with ours where its assumptions hold.

``alpha`` (default :data:`HYBRID_ALPHA`, in units of items) only keeps every fit
finite when a system never loses in a small human sample; it is applied
identically to the human-only, judge-only and hybrid fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prefstore.errors import InvalidInput
from prefstore.models.base import FitResult, laplacian
from prefstore.models.bradley_terry import PairCounts, bt_pairwise

#: Ridge on the scores, in units of items, shared by all hybrid fits.
HYBRID_ALPHA = 1e-3
Z95 = 1.959963984540054


@dataclass
class HybridItems:
    """One row per item (the unit of sampling): the compared systems and the labels.

    Parameters
    ----------
    first, second : ndarray of int, shape (u,)
        Systems of the item's two responses.
    human : ndarray of float, shape (u,)
        Mean of the item's human labels as the share of "first won" (1 win, 0 loss,
        0.5 tie); NaN when no human judged it.
    judge : ndarray of float, shape (u,)
        The judge's label on the same scale; NaN when missing.
    n_systems : int
    names : list of str, optional
        System names.
    n_human : ndarray of int, shape (u,), optional
        Number of human labels per item (information only).
    item_ids : ndarray, optional
        Store ids, for messages.
    """

    first: np.ndarray
    second: np.ndarray
    human: np.ndarray
    judge: np.ndarray
    n_systems: int
    names: list[str] | None = None
    n_human: np.ndarray | None = None
    item_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.first = np.asarray(self.first, dtype=np.intp)
        self.second = np.asarray(self.second, dtype=np.intp)
        self.human = np.asarray(self.human, dtype=float)
        self.judge = np.asarray(self.judge, dtype=float)
        u = self.first.shape[0]
        for name in ("second", "human", "judge"):
            if getattr(self, name).shape != (u,):
                raise InvalidInput(
                    f'"{name}" must have length {u}, got {getattr(self, name).shape}'
                )
        self.n_systems = int(self.n_systems)
        if u and (
            min(self.first.min(), self.second.min()) < 0
            or max(self.first.max(), self.second.max()) >= self.n_systems
        ):
            raise InvalidInput(f"system indices must lie in 0..{self.n_systems - 1}")
        for name in ("human", "judge"):
            v = getattr(self, name)
            ok = np.isnan(v) | ((v >= 0) & (v <= 1))
            if not ok.all():
                raise InvalidInput(f'"{name}" labels must lie in [0, 1] or be NaN')
        if self.names is None:
            self.names = [str(i) for i in range(self.n_systems)]
        if len(self.names) != self.n_systems:
            raise InvalidInput(f'"names" must have {self.n_systems} entries, got {len(self.names)}')
        if self.n_human is None:
            self.n_human = (~np.isnan(self.human)).astype(np.intp)

    def __len__(self) -> int:
        return int(self.first.shape[0])


@dataclass
class _Prep:
    """Items oriented along their pair ``lo < hi``; same-system items dropped."""

    k: int
    lo: np.ndarray  # per pair
    hi: np.ndarray
    pair: np.ndarray  # per unit
    ulo: np.ndarray  # per unit
    uhi: np.ndarray
    yh: np.ndarray  # NaN: no human label
    yj: np.ndarray  # 0 where missing
    m: np.ndarray  # judge label present (float 0/1)
    has_human: np.ndarray


def _prepare(items: HybridItems, missing_judge: str) -> _Prep:
    if missing_judge not in ("drop", "tie"):
        raise InvalidInput(f'"missing_judge" must be "drop" or "tie", got {missing_judge!r}')
    # Every item given is in the population the judge was asked about: one with no
    # label at all is one it abstained on (and no human labelled).
    keep = items.first != items.second
    first, second = items.first[keep], items.second[keep]
    flip = first > second
    lo, hi = np.minimum(first, second), np.maximum(first, second)
    yh = np.where(flip, 1.0 - items.human[keep], items.human[keep])
    yj = np.where(flip, 1.0 - items.judge[keep], items.judge[keep])
    missing = np.isnan(yj)
    if missing_judge == "tie":
        yj = np.where(missing, 0.5, yj)
        missing = np.zeros_like(missing)
    k = items.n_systems
    code = lo.astype(np.int64) * k + hi
    keys, pair = np.unique(code, return_inverse=True)
    return _Prep(
        k=k,
        lo=(keys // k).astype(np.intp),
        hi=(keys % k).astype(np.intp),
        pair=pair.astype(np.intp),
        ulo=lo,
        uhi=hi,
        yh=yh,
        yj=np.where(missing, 0.0, yj),
        m=(~missing).astype(float),
        has_human=~np.isnan(yh),
    )


def _weights(prep: _Prep, labelled: np.ndarray, lam: float, judge_only: bool = False):
    """Per-item weight ``w`` and "lo won" weight ``t`` of the objective."""
    if judge_only:
        return prep.m.copy(), prep.m * prep.yj
    n, big_n = labelled.sum(), labelled.shape[0]
    rho = n / big_n
    lab = labelled.astype(float)
    yh = np.where(labelled, prep.yh, 0.0)
    w = lab * (1.0 - lam * prep.m) + lam * rho * prep.m
    t = lab * (yh - lam * prep.m * prep.yj) + lam * rho * prep.m * prep.yj
    return w, t


def _solve(prep: _Prep, w: np.ndarray, t: np.ndarray, alpha: float, names) -> np.ndarray:
    p = prep.lo.shape[0]
    wp = np.bincount(prep.pair, w, minlength=p)
    tp = np.bincount(prep.pair, t, minlength=p)
    counts = PairCounts(prep.k, prep.lo, prep.hi, tp, wp - tp, np.zeros(p))
    return bt_pairwise(counts, alpha, "half", names=names)


def _zsum(prep: _Prep, a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``sum_i a_i z_i`` over ``rows`` with ``z_i = e_lo - e_hi``."""
    return np.bincount(prep.ulo[rows], a[rows], minlength=prep.k) - np.bincount(
        prep.uhi[rows], a[rows], minlength=prep.k
    )


def _zz(prep: _Prep, a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``sum_i a_i z_i z_i^T`` over ``rows``."""
    per_pair = np.bincount(prep.pair[rows], a[rows], minlength=prep.lo.shape[0])
    return laplacian(prep.k, prep.lo, prep.hi, per_pair, dense=True)


def _cov(prep: _Prep, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sample covariance of the vectors ``a_i z_i`` and ``b_i z_i`` over ``rows``."""
    n = int(rows.sum())
    if n < 2:
        return np.zeros((prep.k, prep.k))
    mu_a, mu_b = _zsum(prep, a, rows) / n, _zsum(prep, b, rows) / n
    cross = np.outer(mu_a, mu_b)
    out = (_zz(prep, a * b, rows) - n * 0.5 * (cross + cross.T)) / (n - 1)
    return out


def _bread(prep: _Prep, w: np.ndarray, theta: np.ndarray, alpha: float):
    """Per-item ``sigma(d_i)`` and the centred pseudo-inverse of the Hessian."""
    k = prep.k
    s = 1.0 / (1.0 + np.exp(-(theta[prep.ulo] - theta[prep.uhi])))
    h = _zz(prep, w * s * (1.0 - s), np.ones(s.shape[0], bool)) + 2.0 * alpha * np.eye(k)
    inv = np.linalg.pinv(h + np.full((k, k), 1.0 / k))
    c = np.eye(k) - 1.0 / k
    hp = c @ inv @ c
    return s, 0.5 * (hp + hp.T)


def _sandwich(prep, labelled, lam, theta, alpha, judge_only=False):
    w, _ = _weights(prep, labelled, lam, judge_only)
    s, hp = _bread(prep, w, theta, alpha)
    v = prep.m * (s - prep.yj)
    if judge_only:
        meat = labelled.shape[0] * _cov(prep, v, v, np.ones(s.shape[0], bool))
    else:
        n, big_n = labelled.sum(), labelled.shape[0]
        rho = n / big_n
        u = np.where(labelled, s - np.where(labelled, prep.yh, 0.0), 0.0)
        r = u - lam * (1.0 - rho) * v
        q = lam * rho * v
        meat = n * _cov(prep, r, r, labelled) + (big_n - n) * _cov(prep, q, q, ~labelled)
    cov = hp @ meat @ hp
    return 0.5 * (cov + cov.T)


def _power_lambda(prep, labelled, theta, alpha) -> float:
    w, _ = _weights(prep, labelled, 1.0)
    s, hp = _bread(prep, w, theta, alpha)
    u = np.where(labelled, s - np.where(labelled, prep.yh, 0.0), 0.0)
    v = prep.m * (s - prep.yj)
    hp2 = hp @ hp
    t_uv = float(np.sum(hp2 * _cov(prep, u, v, labelled)))
    t_vv = float(np.sum(hp2 * _cov(prep, v, v, np.ones(s.shape[0], bool))))
    if t_vv <= 0 or not np.isfinite(t_uv):
        return 0.0
    return float(np.clip(t_uv / t_vv, 0.0, 1.0))


def _check_lambda(lam: Any) -> float | str:
    if isinstance(lam, str):
        if lam != "auto":
            raise InvalidInput(f'"lam" must be "auto" or a number in [0, 1], got {lam!r}')
        return lam
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise InvalidInput(f'"lam" must be "auto" or a number in [0, 1], got {lam!r}') from None
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f'"lam" must be "auto" or a number in [0, 1], got {lam!r}')
    return value


def _hybrid(prep: _Prep, labelled: np.ndarray, lam, alpha: float, names, ci: bool = True):
    """Fit on one labelled subset; returns ``(theta, ci95 or None, lambda)``."""
    if lam == "auto":
        pilot = _solve(prep, *_weights(prep, labelled, 1.0), alpha, names)
        lam = _power_lambda(prep, labelled, pilot, alpha)
    theta = _solve(prep, *_weights(prep, labelled, lam), alpha, names)
    ci95 = None
    if ci:
        sd = np.sqrt(np.clip(np.diag(_sandwich(prep, labelled, lam, theta, alpha)), 0, None))
        ci95 = np.column_stack([theta - Z95 * sd, theta + Z95 * sd])
    return theta, ci95, lam


def _judge_only(prep: _Prep, alpha: float, names):
    everything = np.ones(prep.pair.shape[0], bool)
    theta = _solve(prep, *_weights(prep, everything, 0.0, judge_only=True), alpha, names)
    cov = _sandwich(prep, everything, 0.0, theta, alpha, judge_only=True)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    return theta, np.column_stack([theta - Z95 * sd, theta + Z95 * sd])


@dataclass
class HybridFitResult(FitResult):
    """A :class:`FitResult` with the PPI++ figures: ``lam``, ``n_human_items``, ``n_llm_items``."""

    lam: float = 0.0
    n_human_items: int = 0
    n_llm_items: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(
            {
                "lambda": float(self.lam),
                "n_human_items": int(self.n_human_items),
                "n_llm_items": int(self.n_llm_items),
                "notes": list(self.notes),
            }
        )
        return out


def hybrid_pairwise(
    items: HybridItems,
    *,
    lam: float | str = "auto",
    alpha: float = HYBRID_ALPHA,
    missing_judge: str = "drop",
) -> HybridFitResult:
    """Fit a hybrid (human + LLM judge) Bradley-Terry leaderboard by PPI++.

    Parameters
    ----------
    items : HybridItems
        The items the judge was asked about, labelled or not (an item without a
        judge label is one it abstained on); those with a human label form the
        labelled set, assumed a random share of them.
    lam : "auto" or float in [0, 1]
        "auto": power-tuned (PPI++); 0: human-only; 1: plain PPI.
    alpha : float
        Ridge ``alpha |theta|^2`` (in units of items).
    missing_judge : {"drop", "tie"}
        An item without a judge label contributes no judge loss, or counts as a tie.

    Returns
    -------
    HybridFitResult
        ``model="hybrid"``, centred natural-log scores with PPI++ sandwich 95%
        intervals; ``lam``, ``n_human_items``, ``n_llm_items``.

    Raises
    ------
    InvalidInput
        On a bad option, or fewer than 2 human-labelled items.
    """
    start = time.perf_counter()
    lam = _check_lambda(lam)
    if not np.isfinite(alpha) or alpha < 0:
        raise InvalidInput(f'"alpha" must be a non-negative number, got {alpha!r}')
    prep = _prepare(items, missing_judge)
    labelled = prep.has_human
    n_h = int(labelled.sum())
    if n_h < 2:
        raise InvalidInput(f"a hybrid fit needs at least 2 human-labelled items, got {n_h}")
    theta, ci95, lam_used = _hybrid(prep, labelled, lam, alpha, items.names)
    notes = []
    dropped = len(items) - prep.pair.shape[0]
    if dropped:
        notes.append(f"{dropped} item(s) left out: the same system on both sides")
    kept = items.first != items.second
    n_llm = int(np.count_nonzero(kept & ~np.isnan(items.judge)))
    # log-likelihood of the human labels (item means) at the estimate
    ll_w, ll_t = _weights(prep, labelled, 0.0)
    d = theta[prep.ulo] - theta[prep.uhi]
    loglik = -float(ll_w @ np.logaddexp(0.0, d) - ll_t @ d)
    return HybridFitResult(
        model="hybrid",
        scores=theta,
        ci95=ci95,
        names=list(items.names),
        log_likelihood=loglik,
        n_comparisons=int(n_h),
        seconds=time.perf_counter() - start,
        params={
            "lambda": lam_used,
            "lambda_requested": lam,
            "alpha": alpha,
            "missing_judge": missing_judge,
            "ci": "ppi++ sandwich",
        },
        level="system",
        lam=lam_used,
        n_human_items=n_h,
        n_llm_items=n_llm,
        notes=notes,
    )


def fit_hybrid(
    items: HybridItems,
    *,
    lam: float | str = "auto",
    alpha: float = HYBRID_ALPHA,
    missing_judge: str = "drop",
) -> dict:
    """Return :func:`hybrid_pairwise`'s JSON-able summary (``scores``, ``ci95``,
    ``lambda``, ``n_human_items``, ``n_llm_items``, ...)."""
    return hybrid_pairwise(items, lam=lam, alpha=alpha, missing_judge=missing_judge).to_dict()


def _kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (Kendall 1945) of two short score vectors."""
    i, j = np.triu_indices(a.shape[0], 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    denom = np.sqrt(np.count_nonzero(sa) * np.count_nonzero(sb))
    return float((sa * sb).sum() / denom) if denom > 0 else float("nan")


def evaluate_hybrid(
    items: HybridItems,
    *,
    fractions: tuple[float, ...] | list[float] = (0.1, 0.25, 0.5),
    reps: int = 200,
    seed: int = 0,
    lam: float | str = "auto",
    alpha: float = HYBRID_ALPHA,
    missing_judge: str = "drop",
) -> dict[str, Any]:
    """Simulate human labelling budgets: how good are human-only, judge-only and hybrid?

    For each fraction, ``reps`` times (seeded): draw that share of the items with
    human labels as the labelled set and fit human-only (``lambda = 0``), judge-only
    (Bradley-Terry on the judge's labels of all items, sandwich intervals) and
    hybrid. Each fit is scored against the all-human fit (every item labelled,
    ``lambda = 0``): ``coverage`` (share of systems whose 95% interval covers the
    all-human score), ``mean_ci_width`` and ``kendall_tau`` with the all-human
    ranking, averaged over the draws. The intervals target the population of items,
    so coverage of the all-item score is conservative at large fractions (no
    finite-population correction).

    Parameters
    ----------
    items : HybridItems
        Items without a human label are left out (the simulation needs them all).
    fractions : sequence of float in (0, 1]
    reps : int
    seed : int
    lam, alpha, missing_judge
        As in :func:`hybrid_pairwise`.

    Returns
    -------
    dict
        ``{"fractions", "results": [{"fraction", "n_human_items", "human_only",
        "llm_only", "hybrid"}], "n_items", "n_systems", "reps"}``; ``hybrid`` also
        has ``mean_lambda``.
    """
    lam = _check_lambda(lam)
    if reps < 1:
        raise InvalidInput(f'"reps" must be at least 1, got {reps}')
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise InvalidInput(f'"fractions" must lie in (0, 1], got {fractions}')
    keep = ~np.isnan(items.human)
    sub = HybridItems(
        items.first[keep],
        items.second[keep],
        items.human[keep],
        items.judge[keep],
        items.n_systems,
        items.names,
    )
    prep = _prepare(sub, missing_judge)
    big_n = prep.pair.shape[0]
    everyone = np.ones(big_n, bool)
    target = _solve(prep, *_weights(prep, everyone, 0.0), alpha, sub.names)
    judge_theta, judge_ci = _judge_only(prep, alpha, sub.names)
    rng = np.random.default_rng(seed)

    def score(theta, ci95):
        return (
            np.mean((ci95[:, 0] <= target) & (target <= ci95[:, 1])),
            np.mean(ci95[:, 1] - ci95[:, 0]),
            _kendall_tau(theta, target),
        )

    judge_row = dict(
        zip(("coverage", "mean_ci_width", "kendall_tau"), map(float, score(judge_theta, judge_ci)))
    )
    results = []
    for frac in fractions:
        n = max(2, int(round(frac * big_n)))
        human, hybrid, lams = [], [], []
        for _ in range(reps):
            labelled = np.zeros(big_n, bool)
            labelled[rng.choice(big_n, n, replace=False)] = True
            theta, ci95, _ = _hybrid(prep, labelled, 0.0, alpha, sub.names)
            human.append(score(theta, ci95))
            theta, ci95, used = _hybrid(prep, labelled, lam, alpha, sub.names)
            hybrid.append(score(theta, ci95))
            lams.append(used)
        h, y = np.nanmean(human, axis=0), np.nanmean(hybrid, axis=0)
        keys = ("coverage", "mean_ci_width", "kendall_tau")
        results.append(
            {
                "fraction": frac,
                "n_human_items": n,
                "human_only": dict(zip(keys, map(float, h))),
                "llm_only": dict(judge_row),
                "hybrid": {**dict(zip(keys, map(float, y))), "mean_lambda": float(np.mean(lams))},
            }
        )
    return {
        "fractions": fractions,
        "results": results,
        "n_items": int(big_n),
        "n_systems": int(items.n_systems),
        "reps": int(reps),
    }


__all__ = [
    "HYBRID_ALPHA",
    "HybridFitResult",
    "HybridItems",
    "evaluate_hybrid",
    "fit_hybrid",
    "hybrid_pairwise",
]
