"""Style control: Bradley-Terry with per-comparison style covariates.

Chatbot Arena's method (Li et al. 2024, "Does style matter? Disentangling style
and substance in Chatbot Arena"; FastChat ``compute_style_control``): the log-odds
that the first item of a comparison beats the second are

    theta_a - theta_b + gamma . x_ab,

with ``x_ab`` one covariate per style feature,
``(feature(a) - feature(b)) / (feature(a) + feature(b) + 1)``, standardised over the
comparisons being fitted. ``theta`` are the style-controlled scores (natural-log
units, centred, as every prefstore model) and ``gamma`` the style coefficients
(change in log-odds per standard deviation of a covariate). Ties count as half a
win for each side, as in FastChat.

The objective is ``-log L(theta, gamma) + alpha |theta|^2 + beta |gamma|^2``,
minimised by Newton's method; the Hessian is the Bradley-Terry graph Laplacian
plus a small dense ``gamma`` block and a cross block.

FastChat's defaults
-------------------
FastChat fits ``rating r`` in log10 units (``logit = ln(10) (r_a - r_b) + x . beta``,
Elo ``= 400 r + 1000``) with the penalty ``reg / 2 * (|r|^2 + |beta|^2)`` and
``reg = 0.5`` on the sum of log-losses over battles (its earlier version duplicated
every battle, a tie as one win and one loss, and used scikit-learn's
``LogisticRegression(C=1)``, i.e. ``1/2 |w|^2`` on twice the log-loss: the same
objective). With ``theta = ln(10) r`` the penalty is
``0.25 / ln(10)^2 |theta|^2 + 0.25 |gamma|^2``, so :data:`FASTCHAT_ALPHA`
``= 0.25 / ln(10)^2 = 0.0471529`` and :data:`FASTCHAT_BETA` ``= 0.25`` reproduce
FastChat's optimum exactly (tested), and ``to_elo`` gives FastChat's ratings up to
its anchor (it pins mixtral-8x7b-instruct-v0.1 at 1114 when present).

Two deliberate differences:

- Standardisation divides each covariate by its root mean square over the fitted
  comparisons without subtracting the mean. FastChat also subtracts the mean over
  its (model_a, model_b) display positions; the sign of a covariate depends on which
  response is called "a", so that mean is zero in expectation and what it adds is a
  small intercept for position a. prefstore's comparisons carry no position (a row
  is winner-loser), and centring a winner-minus-loser covariate would leak the
  outcome into the design. On data whose positions are balanced (every battle also
  seen mirrored) the two coincide exactly.
- Length counts whitespace-separated words; FastChat counts tiktoken tokens, whose
  encoder files cannot be loaded offline. Ratios of word counts are close to ratios
  of token counts, and the covariate is a ratio.

A covariate that is zero over all fitted comparisons (a feature constant across
responses, e.g. no response has a header) is left out: its coefficient is None
(FastChat would divide by a zero standard deviation and return NaN) and a note says
so.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import LinAlgWarning, lu_factor, lu_solve
from scipy.linalg.blas import dgemv
from scipy.sparse import bmat, csr_matrix, issparse

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models.base import (
    DENSE_MAX,
    FitResult,
    PairwiseData,
    check_dense_ci,
    check_identifiable,
    laplacian,
    newton_minimize,
    percentile_ci,
)
from prefstore.models.bradley_terry import (
    PairCounts,
    _resolve_anchor,
    aggregate_pairwise,
    bt_pairwise,
)

#: The style features of FastChat's style control, in its order.
STYLE_FEATURES = ("length", "headers", "lists", "bold")

#: What each feature counts (copied into the JSON output as ``style_features``).
STYLE_FEATURE_DEFINITIONS: dict[str, str] = {
    "length": (
        "words of the response (whitespace-separated, code included); FastChat counts "
        "tiktoken tokens, which cannot be loaded offline"
    ),
    "headers": "markdown headers: lines matching ^#{1,6}\\s, fenced code blocks removed",
    "lists": (
        "markdown list items: ^\\s*\\d+\\.\\s (ordered) plus ^\\s*[-*+]\\s (unordered), "
        "line by line, fenced code blocks removed"
    ),
    "bold": "bold spans: \\*\\*[^*\\n]+\\*\\* plus __[^_\\n]+__, fenced code blocks removed",
}
_COVARIATE_NOTE = (
    "covariate per comparison: (feature(a) - feature(b)) / (feature(a) + feature(b) + 1), "
    "divided by its root mean square over the fitted comparisons; a coefficient is the "
    "change in log-odds per standard deviation"
)

#: ``alpha`` (on natural-log scores) equal to FastChat's ``reg = 0.5`` on log10 ratings.
FASTCHAT_ALPHA = 0.25 / math.log(10.0) ** 2
#: ``beta`` (on the style coefficients) equal to FastChat's ``reg = 0.5``.
FASTCHAT_BETA = 0.25

# FastChat's patterns (fastchat/serve/monitor/add_markdown_info.py).
_CODE = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD_STARS = re.compile(r"\*\*[^*\n]+\*\*")
_BOLD_UNDERSCORES = re.compile(r"__[^_\n]+__")

TIE_POLICIES = ("half", "drop")
#: Merge repeated (pair, covariates) rows when a sample shows this share of repeats.
DEDUP_SHARE_FIT = 0.75
DEDUP_SHARE_BOOTSTRAP = 0.25


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def style_features(texts: Iterable[Any]) -> np.ndarray:
    """Count the style features of each response text.

    Definitions follow FastChat (``add_markdown_info.py``), see
    :data:`STYLE_FEATURE_DEFINITIONS`. Markdown elements are counted after the
    contents of fenced code blocks (```` ```...``` ````, FastChat's pattern) are
    removed; FastChat removes them with ``str.replace``, which also deletes the
    same text elsewhere in the answer, here each block is emptied where it stands.
    Length is the number of whitespace-separated words of the whole text, code
    included (FastChat: tiktoken tokens of all assistant turns, unavailable
    offline). For a multi-turn item pass the final assistant turn being compared.

    Parameters
    ----------
    texts : iterable of str
        One response each; None or NaN count as an empty text.

    Returns
    -------
    ndarray of float, shape (n, 4)
        Columns in the order of :data:`STYLE_FEATURES`.
    """
    rows = []
    for value in texts:
        text = _text(value)
        markdown = _CODE.sub("``````", text) if "```" in text else text
        # Substring checks skip the patterns that cannot match (most texts are plain).
        rows.append(
            (
                len(text.split()),
                len(_HEADER.findall(markdown)) if "#" in markdown else 0,
                len(_ORDERED.findall(markdown)) + len(_UNORDERED.findall(markdown)),
                (len(_BOLD_STARS.findall(markdown)) if "**" in markdown else 0)
                + (len(_BOLD_UNDERSCORES.findall(markdown)) if "__" in markdown else 0),
            )
        )
    return np.array(rows, dtype=float).reshape(-1, len(STYLE_FEATURES))


def style_covariates(features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
    """Return FastChat's per-comparison covariates ``(a - b) / (a + b + 1)``.

    Parameters
    ----------
    features_a, features_b : ndarray, shape (m, f)
        Non-negative feature counts of the two responses of each comparison. For
        :func:`style_pairwise` ``a`` is the winner (``data.winners``) and ``b`` the loser.

    Returns
    -------
    ndarray, shape (m, f)
        Unstandardised covariates in ``(-1, 1)``.
    """
    a = np.asarray(features_a, dtype=float)
    b = np.asarray(features_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise InvalidInput(
            f'"features_a" and "features_b" must be 2-d of equal shape, got {a.shape} and {b.shape}'
        )
    if np.any(a < 0) or np.any(b < 0):
        raise InvalidInput("style feature counts must be non-negative")
    return (a - b) / (a + b + 1.0)


# --- the design ----------------------------------------------------------------------


@dataclass
class StyleDesign:
    """Comparisons oriented along their unordered pair ``lo < hi``, one row each.

    Attributes
    ----------
    n_items : int
    lo, hi : ndarray of int, shape (p,)
        The compared pairs.
    pair : ndarray of int, shape (r,)
        Pair of each row.
    x : ndarray, shape (f, r)
        Standardised covariates, oriented ``lo`` minus ``hi`` (feature-major).
    n, k : ndarray, shape (r,)
        Weight of each row and weight of "lo won" (a tie gives half of it).
    scale : ndarray, shape (f_all,)
        Divisor of each input covariate (NaN for a dropped one).
    kept : ndarray of bool, shape (f_all,)
        Which input covariates are in ``x``.
    row_of : ndarray of int, shape (m,)
        Row of each input judgment (-1: not fitted), for the bootstrap.
    y : ndarray, shape (m,)
        "lo won" share of each input judgment (1, 0 or 0.5).
    """

    n_items: int
    lo: np.ndarray
    hi: np.ndarray
    pair: np.ndarray
    x: np.ndarray
    n: np.ndarray
    k: np.ndarray
    scale: np.ndarray
    kept: np.ndarray
    row_of: np.ndarray
    y: np.ndarray
    counts: PairCounts | None = None

    @property
    def n_features(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_pairs(self) -> int:
        return int(self.lo.shape[0])

    def with_weights(self, judgment_weights: np.ndarray) -> StyleDesign:
        """Return the design with new per-judgment weights (bootstrap reweighting)."""
        ok = self.row_of >= 0
        r = self.n.shape[0]
        n = np.bincount(self.row_of[ok], judgment_weights[ok], minlength=r)
        k = np.bincount(self.row_of[ok], judgment_weights[ok] * self.y[ok], minlength=r)
        return StyleDesign(
            self.n_items,
            self.lo,
            self.hi,
            self.pair,
            self.x,
            n,
            k,
            self.scale,
            self.kept,
            self.row_of,
            self.y,
        )


def style_design(
    data: PairwiseData,
    covariates: np.ndarray,
    *,
    ties: str = "half",
    standardize: bool = True,
    scale: np.ndarray | None = None,
    dedup: bool | float = False,
) -> StyleDesign:
    """Orient, standardise and weigh the comparisons for the style objective.

    Parameters
    ----------
    data : PairwiseData
    covariates : ndarray, shape (m, f)
        One row per judgment, oriented winner minus loser: ``covariates[j]`` is
        computed with ``a = data.winners[j]`` and ``b = data.losers[j]`` (for a tie,
        in the order the two items are stored).
    ties : {"half", "drop"}
        A tie counts as half a win each (FastChat), or is left out.
    standardize : bool
        Divide each covariate by its root mean square over the fitted comparisons
        (weighted by the judgment weights). False: use the covariates as given.
    scale : ndarray, shape (f,), optional
        Divisors to use instead (e.g. to compare fits on the same scale); a
        non-positive or NaN entry drops the covariate.
    dedup : bool or float
        Merge comparisons of the same pair with the same covariates into one
        weighted row (several raters on the same two responses, or covariates with
        few distinct values): the objective is unchanged and each pass over the
        data is shorter, but grouping costs about two passes (a sort). A float
        merges when a sample shows at least that share of rows are repeats.

    Returns
    -------
    StyleDesign
    """
    if not isinstance(data, PairwiseData):
        raise InvalidInput(f'"data" must be PairwiseData, got {type(data).__name__}')
    if ties not in TIE_POLICIES:
        raise InvalidInput(f'"ties" must be one of {TIE_POLICIES}, got {ties!r}')
    m = len(data)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != m:
        raise InvalidInput(
            f'"covariates" must have shape ({m}, f), one row per judgment, got {x.shape}'
        )
    if not np.all(np.isfinite(x)):
        raise InvalidInput('"covariates" must be finite')
    if data.n_items < 2 or m == 0:
        raise InvalidInput(
            f'"data" must compare at least 2 items, got {data.n_items} items and {m} judgments'
        )
    counts = aggregate_pairwise(data)
    pair, outcome = np.divmod(counts.cell, 3)
    w = data.weights
    if ties == "drop":
        w = np.where(outcome == 2, 0.0, w)
    fitted = w > 0
    rows = np.flatnonzero(fitted)
    if rows.shape[0] == 0:
        raise InvalidInput('"data" has no judgment with positive weight to fit')
    every = rows.shape[0] == m
    f_all = x.shape[1]
    xf = x if every else x[rows]
    wf = w if every else w[rows]
    # Sums of squares are the same in either orientation, so the scale comes first.
    if np.all(wf == 1.0):
        ss = np.einsum("ij,ij->j", xf, xf)
    else:
        ss = np.einsum("ij,ij,i->j", xf, xf, wf)
    if scale is not None:
        scale = np.asarray(scale, dtype=float).reshape(-1)
        if scale.shape != (f_all,):
            raise InvalidInput(f'"scale" must have {f_all} entries, got {scale.shape[0]}')
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    elif standardize:
        scale = np.where(ss > 0, np.sqrt(ss / wf.sum()), np.nan)
    else:
        scale = np.where(ss > 0, 1.0, np.nan)
    kept = np.isfinite(scale)
    winners = data.winners if every else data.winners[rows]
    losers = data.losers if every else data.losers[rows]
    sign = (winners < losers) * 2.0 - 1.0
    # Feature-major: every later pass reads one feature at a time. np.multiply writes a
    # fresh array (never a view of the caller's covariates).
    xt = np.empty((int(kept.sum()), rows.shape[0]))
    for j, col in enumerate(np.flatnonzero(kept)):
        np.multiply(xf[:, col], sign, out=xt[j])
        xt[j] *= 1.0 / scale[col]
    y = np.array([1.0, 0.0, 0.5])[outcome]
    row_of = np.full(m, -1, dtype=np.intp)
    row_of[rows] = np.arange(rows.shape[0])
    if every:
        lo, hi, prow = counts.lo, counts.hi, pair
    else:
        pair_used = np.bincount(pair[rows], minlength=counts.n_pairs) > 0
        # Pairs seen only in dropped ties: renumber the pairs that are fitted.
        remap = np.cumsum(pair_used) - 1
        lo, hi, prow = counts.lo[pair_used], counts.hi[pair_used], remap[pair[rows]]
    nw = wf
    kw = nw * (y if every else y[rows])
    prow = prow.astype(np.intp, copy=False)
    if not isinstance(dedup, bool):
        dedup = _mostly_duplicates(prow, xt, float(dedup))
    if dedup:
        group, first = _group_rows(prow, xt)
        n_rows = first.shape[0]
        nw = np.bincount(group, nw, minlength=n_rows)
        kw = np.bincount(group, kw, minlength=n_rows)
        prow, xt = prow[first], np.ascontiguousarray(xt[:, first])
        row_of = np.where(row_of >= 0, group[np.maximum(row_of, 0)], -1)
    return StyleDesign(
        n_items=data.n_items,
        lo=lo,
        hi=hi,
        pair=prow,
        x=xt,
        n=nw,
        k=kw,
        scale=scale,
        kept=kept,
        row_of=row_of,
        y=y,
        counts=counts,
    )


# Fixed irrational weights: a row's hash is one float, equal for equal rows.
_HASH_PAIR = math.pi
_HASH_X = (math.e, math.sqrt(2.0), math.sqrt(3.0), math.sqrt(5.0), math.sqrt(7.0))


def _row_hash(pair: np.ndarray, xt: np.ndarray) -> np.ndarray:
    h = pair * _HASH_PAIR
    for j in range(xt.shape[0]):
        h += xt[j] * (_HASH_X[j % len(_HASH_X)] + j // len(_HASH_X))
    return h


def _mostly_duplicates(pair: np.ndarray, xt: np.ndarray, share: float) -> bool:
    """Guess whether at least ``share`` of the rows repeat an earlier (pair, covariates).

    Several raters judging the same two responses give identical rows. Rows are
    sampled by a bit-mix of their hash, so equal rows are sampled together and
    the duplicate share of the sample estimates that of the data, for about 2% of
    the cost of a sort.
    """
    if pair.shape[0] < 64:
        return False
    h = _row_hash(pair, xt)
    mixed = h.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    sample = h[(mixed >> np.uint64(58)) == 0]
    if sample.shape[0] < 16:
        return False
    return 1.0 - np.unique(sample).shape[0] / sample.shape[0] >= share


def _group_rows(pair: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group identical (pair, covariates) rows: group of each row, first row of each group."""
    h = _row_hash(pair, xt)
    order = np.argsort(h)
    hs = h[order]
    new = np.empty(hs.shape[0], bool)
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    # Equal hashes must be equal rows: compare each sorted row with its predecessor.
    same = ~new[1:]
    ok = True
    for values in (pair, *xt):
        vs = values[order]
        ok = ok and bool(np.all((vs[1:] == vs[:-1]) | ~same))
    if not ok:  # a hash collision: group exactly
        keys = np.column_stack([pair.astype(float), xt.T])
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        return group.ravel().astype(np.intp), first
    group = np.empty(hs.shape[0], dtype=np.intp)
    group[order] = np.cumsum(new) - 1
    return group, order[new]


def _speye(n: int) -> csr_matrix:
    return csr_matrix((np.ones(n), (np.arange(n), np.arange(n))), shape=(n, n))


def _style_fgh(design: StyleDesign, alpha: float, beta: float):
    """Objective, gradient and Hessian of the style model in one closure.

    Each evaluation costs a pass over the comparisons; the per-comparison
    probabilities of the last point are cached, so the line search's objective
    value and the next Newton step's gradient and Hessian share one pass, and the
    pass writes into buffers allocated once.
    """
    n, nf = design.n_items, design.n_features
    lo, hi, pair, xt = design.lo, design.hi, design.pair, design.x
    nw = design.n
    unit = bool(np.all(nw == 1.0))
    n_pairs = design.n_pairs
    kp = np.bincount(pair, design.k, minlength=n_pairs)
    xk = xt @ design.k
    dense = n + nf <= DENSE_MAX
    r_ = pair.shape[0]
    eta, e, s, tmp = (np.empty(r_) for _ in range(4))
    cache: dict[str, Any] = {"x": None}

    def point(x: np.ndarray) -> float:
        if cache["x"] is not None and np.array_equal(cache["x"], x):
            return cache["f"]
        theta, gamma = x[:n], x[n:]
        d = theta[lo] - theta[hi]
        np.take(d, pair, out=eta)
        if nf:
            np.dot(gamma, xt, out=tmp)
            np.add(eta, tmp, out=eta)
        np.abs(eta, out=e)
        np.negative(e, out=e)
        with np.errstate(over="ignore"):
            np.exp(e, out=e)  # e = exp(-|eta|) in (0, 1]
        np.add(e, 1.0, out=s)
        # softplus(eta) = max(eta, 0) + log(1 + e); log(1 + e) rather than log1p(e) is
        # exact to 1e-16 absolute per term and twice as fast.
        np.log(s, out=tmp)
        sp_sum = (
            (tmp.sum() + np.maximum(eta, 0.0, out=tmp).sum())
            if unit
            else (nw @ tmp + nw @ np.maximum(eta, 0.0, out=tmp))
        )
        np.reciprocal(s, out=s)  # 1 / (1 + e)
        np.multiply(e, s, out=e)  # e / (1 + e)
        np.copyto(s, e, where=eta < 0)  # sigmoid(eta), both tails accurate
        f = float(sp_sum - kp @ d - gamma @ xk + alpha * theta @ theta + beta * gamma @ gamma)
        cache.update(x=x.copy(), f=f)
        return f

    def fgh(x: np.ndarray, order: int = 2):
        f = point(x)
        if order == 0:
            return f
        theta, gamma = x[:n], x[n:]
        ns = s if unit else nw * s
        e_pair = np.bincount(pair, ns, minlength=n_pairs) - kp
        g = np.empty(n + nf)
        g[:n] = np.bincount(lo, e_pair, minlength=n) - np.bincount(hi, e_pair, minlength=n)
        g[:n] += 2.0 * alpha * theta
        g[n:] = xt @ ns - xk + 2.0 * beta * gamma
        if order == 1:
            return f, g
        v = np.subtract(1.0, s, out=tmp)
        v *= ns  # n s (1 - s)
        lap = laplacian(n, lo, hi, np.bincount(pair, v, minlength=n_pairs), dense=dense)
        cross = np.empty((n, nf))
        gram = np.empty((nf, nf))
        vx = e  # free until the next point
        for j in range(nf):
            np.multiply(xt[j], v, out=vx)
            c = np.bincount(pair, vx, minlength=n_pairs)
            cross[:, j] = np.bincount(lo, c, minlength=n) - np.bincount(hi, c, minlength=n)
            gram[j, j:] = xt[j:] @ vx
            gram[j:, j] = gram[j, j:]
        cache["x"] = None  # e was overwritten
        gram += 2.0 * beta * np.eye(nf)
        if dense:
            h = np.empty((n + nf, n + nf))
            h[:n, :n] = lap + 2.0 * alpha * np.eye(n)
            h[:n, n:] = cross
            h[n:, :n] = cross.T
            h[n:, n:] = gram
        else:
            h = bmat(
                [
                    [lap + 2.0 * alpha * _speye(n), csr_matrix(cross)],
                    [csr_matrix(cross.T), csr_matrix(gram)],
                ]
            ).tocsr()
        return f, g, h

    return fgh


def style_objective(
    params: np.ndarray, design: StyleDesign, alpha: float = 0.0, beta: float = 0.0
) -> float:
    """Return ``-log L + alpha |theta|^2 + beta |gamma|^2``; ``params = [theta, gamma]``."""
    return _style_fgh(design, alpha, beta)(np.asarray(params, float), 0)


def style_gradient(
    params: np.ndarray, design: StyleDesign, alpha: float = 0.0, beta: float = 0.0
) -> np.ndarray:
    """Return the gradient of :func:`style_objective`."""
    return _style_fgh(design, alpha, beta)(np.asarray(params, float), 1)[1]


def style_hessian(params: np.ndarray, design: StyleDesign, alpha: float = 0.0, beta: float = 0.0):
    """Return the Hessian of :func:`style_objective` (dense up to ``DENSE_MAX`` parameters)."""
    return _style_fgh(design, alpha, beta)(np.asarray(params, float), 2)[2]


def style_log_likelihood(params: np.ndarray, design: StyleDesign) -> float:
    """Return the log-likelihood (ties as half wins, no prior) at ``[theta, gamma]``."""
    return -style_objective(params, design, 0.0, 0.0)


def _check_penalty(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f'"{name}" must be a non-negative number, got {value!r}') from None
    if not np.isfinite(value) or value < 0:
        raise InvalidInput(f'"{name}" must be a non-negative number, got {value!r}')
    return value


@dataclass
class _Solution:
    """A Newton solution and what the last Newton step knew about it."""

    x: np.ndarray  # [centred theta, gamma]
    log_likelihood: float
    hessian: Any  # at the last Newton iterate (directed path with intervals: the estimate)


def _newton(
    design: StyleDesign, alpha: float, beta: float, x0: np.ndarray, tol: float, what: str
) -> _Solution:
    n = design.n_items
    gauge = None
    if alpha == 0:
        gauge = np.zeros(n + design.n_features, bool)
        gauge[:n] = True
    fgh = _style_fgh(design, alpha, beta)
    last: dict[str, Any] = {}

    def recording(x: np.ndarray, order: int = 2):
        out = fgh(x, order)
        if order == 2:
            last.update(x=x.copy(), f=out[0], g=out[1], h=out[2])
        return out

    x, _, _ = newton_minimize(recording, x0, gauge, tol=tol, what=what)
    # The estimate is one Newton step past the last point evaluated: its objective
    # is that step's quadratic model, exact to third order in the (tiny) last step,
    # which spares a pass over the comparisons.
    step = x - last["x"]
    obj = last["f"] + last["g"] @ step + 0.5 * step @ (last["h"] @ step)
    theta, gamma = x[:n], x[n:]
    loglik = -(obj - alpha * theta @ theta - beta * gamma @ gamma)
    x = x.copy()
    x[:n] -= x[:n].mean()
    return _Solution(x, float(loglik), last["h"])


def _fit_design(
    design: StyleDesign,
    alpha: float,
    beta: float,
    ties: str,
    names: list[str],
    initial_params: np.ndarray | None,
    tol: float,
) -> _Solution:
    n = design.n_items
    if initial_params is not None:
        x0 = np.asarray(initial_params, dtype=float)
        if x0.shape != (n + design.n_features,):
            raise InvalidInput(
                f'"initial_params" must have {n + design.n_features} entries, got {x0.shape}'
            )
    else:
        # Plain Bradley-Terry on the aggregated pairs: a cheap start, and with
        # alpha = 0 the same existence check (an item that never lost diverges
        # whatever the covariates: every one of its terms grows with its score).
        x0 = np.zeros(n + design.n_features)
        x0[:n] = bt_pairwise(design.counts, alpha, ties, tol=1e-6, names=names)
    return _newton(design, alpha, beta, x0, tol, "style-controlled fit")


def _check_collinear(h: np.ndarray, n: int, feature_names: list[str]) -> None:
    """Raise when the style coefficients are not identified (beta = 0 only)."""
    nf = h.shape[0] - n
    if nf == 0:
        return
    htt = h[:n, :n] + np.full((n, n), 1.0 / n)
    schur = h[n:, n:] - h[n:, :n] @ np.linalg.solve(htt, h[:n, n:])
    eig, vec = np.linalg.eigh(0.5 * (schur + schur.T))
    top = max(np.abs(np.diag(h[n:, n:])).max(), 1e-300)
    if eig[0] <= 1e-10 * top:
        bad = [feature_names[j] for j in np.flatnonzero(np.abs(vec[:, 0]) > 0.1)]
        raise NotConverged(
            f"the style coefficients of {bad} are not identified: those covariates are "
            f"(nearly) determined by which items are compared, or by each other. "
            f"Set beta > 0 or leave them out"
        )


# --- the single fit over directed pairs ---------------------------------------------
#
# A single fit (no bootstrap) of a dense problem takes a leaner path than the design
# above. Rows stay in the caller's winner-first order and are indexed by their
# directed pair ``winner * n + loser`` (no aggregation, no orientation, no sort);
# covariates stay on their raw scale, the standardisation being folded into the
# penalty (``gamma = g * scale``, so ``beta |gamma|^2 = beta sum scale^2 g^2``). A pass
# over the comparisons (objective and gradient at a point, fused: one gather of
# score differences, one matrix-vector product with the covariates, exp, log, one
# scatter and one more matrix-vector product) is the unit of cost, and an exact fit
# of a large arena makes two of them:
#
# - The start is plain Bradley-Terry at gamma = 0, where every comparison of a pair
#   has the same probability: the gradient and the Hessian there follow from
#   per-pair sums of the covariates (the covariate block from ``X^T X`` and a
#   sample, below), with no exp or log per comparison.
# - The first Newton step is corrected to third order (Chebyshev's method):
#   ``-H^{-1} T[s, s] / 2`` with ``T`` the third derivative of the loss, estimated
#   on a fixed random sample of the comparisons. The step off gamma = 0 is the one
#   long step of the fit; the correction takes the Newton decrement after it from
#   about 18 to about 1 on a 1M-battle arena.
# - Later Hessians are the start's plus the change of the curvature estimated on
#   the same sample, ``sum over the sample of (p q - p0 q0) a a^T`` scaled up: the
#   change is small, so its sampling error is smaller still. From the third pass
#   on, or after a step the line search had to shorten, the Hessian is rebuilt
#   exactly (plain Newton).
# - A pass whose Newton decrement already meets ``tol`` is the last one.
#
# Below 2 * SAMPLE_MIN comparisons the "sample" is every comparison, so the
# corrections are exact. Every step is checked with the exact objective and gradient
# (Armijo, as newton_minimize) and the stopping rule is the design path's, so both
# reach the same optimum: to 1e-8 when both run to tol = 1e-13 (tested). The sample
# only decides how fast the fit gets there. At the default tol the returned step uses
# a Hessian that is not rebuilt exactly, so the estimate lands about 1e-7 from the
# design path's, far inside a standard error; the log-likelihood agrees to 1e-9.
# Hessian intervals use the exact Hessian at the estimate (one more pass). The bootstrap
# keeps the design (its refits reweight comparisons) but starts from, and reports,
# this path's point estimate.

#: Comparisons sampled for the curvature corrections of a large fit (at least).
SAMPLE_MIN = 50_000
#: Share of the comparisons sampled when that is more than SAMPLE_MIN.
SAMPLE_SHARE = 0.05
_SAMPLE_SEED = 20240905
_START_TOL = 1e-2  # of the Bradley-Terry start: two Newton steps from 0 on an arena
_BLOCK = 16384  # rows per block of the covariate transpose (fits in L2 cache)


def _dense_ok(n: int, m: int, nf: int) -> bool:
    """Whether the directed-pair path fits: dense Hessian and an n x n code space."""
    return n + nf <= DENSE_MAX and n * n <= max(8 * m, 1 << 22)


@dataclass
class _DirectedRows:
    """Fitted comparisons winner first, indexed by directed pair (see above)."""

    n: int
    code: np.ndarray  # (m,) winner * n + loser, plus n * n for a tie
    tied: bool  # some comparison is a tie (codes span 2 n^2, else n^2)
    xt: np.ndarray  # (f, m) raw covariates of the kept features, feature-major
    c: np.ndarray | None  # (m,) weights; None when all are 1
    pa: np.ndarray  # (q,) winner of each present directed pair
    pb: np.ndarray  # (q,) loser
    cell: np.ndarray  # (q,) index of each present pair in the n x n code space
    nw: np.ndarray  # (q,) summed weight per directed pair
    lin: np.ndarray  # (n,) d/dtheta of the tie term: half the tie weight, winner minus loser
    xx: np.ndarray  # (f, f) sum of c x x^T
    pick: np.ndarray | None  # comparisons sampled for the corrections (None: all, see _Sample)
    xs: np.ndarray | None  # (f, k) their covariates
    s: np.ndarray  # (f,) scale of each kept covariate
    scale: np.ndarray  # (f_all,) divisor of every input covariate (NaN: left out)
    kept: np.ndarray  # (f_all,) bool


def _sweep(x: np.ndarray, c: np.ndarray | None, winners: np.ndarray, losers: np.ndarray,
           tie: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sweep over blocks of comparisons that fit in cache.

    Returns ``x.T`` as a C-contiguous array (copying a block at a time is twice as
    fast as transposing at once), the Gram matrix ``sum_k c_k x_k x_k^T`` (summed
    while the block is in cache) and the comparison codes ``winner * n + loser``,
    plus ``n * n`` for a tie (``tie`` None: no tie).
    """
    xt = x.T
    copy = not xt.flags.c_contiguous
    if copy:
        xt = np.empty(xt.shape)
    f, m = xt.shape
    gram = np.zeros((f, f))
    code = np.empty(m, dtype=np.intp)
    buf = np.empty(min(m, _BLOCK))
    for start in range(0, m, _BLOCK):
        stop = min(start + _BLOCK, m)
        rows = code[start:stop]
        np.multiply(winners[start:stop], n, out=rows)
        rows += losers[start:stop]
        if tie is not None:
            rows += tie[start:stop] * (n * n)
        block = xt[:, start:stop]
        if copy:
            block[...] = x[start:stop].T
        weights = None if c is None else c[start:stop]
        for j in range(f):
            wx = block[j] if weights is None else np.multiply(
                block[j], weights, out=buf[:stop - start])
            gram[j, j:] += block[j:] @ wx
    return xt, np.triu(gram) + np.triu(gram, 1).T, code


def _gram(xt: np.ndarray, w: np.ndarray | None, buf: np.ndarray | None = None) -> np.ndarray:
    """``sum_k w_k x_k x_k^T`` over the columns of ``xt`` (w None: 1), one row at a time."""
    f = xt.shape[0]
    out = np.empty((f, f))
    for j in range(f):
        wx = xt[j] if w is None else np.multiply(xt[j], w, out=buf)
        out[j, j:] = xt[j:] @ wx
        out[j:, j] = out[j, j:]
    return out


def _directed_rows(
    data: PairwiseData, covariates: np.ndarray, ties: str, standardize: bool,
    scale: np.ndarray | None,
) -> _DirectedRows:
    n, m = data.n_items, len(data)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != m:
        raise InvalidInput(
            f'"covariates" must have shape ({m}, f), one row per judgment, got {x.shape}'
        )
    if n < 2 or m == 0:
        raise InvalidInput(
            f'"data" must compare at least 2 items, got {n} items and {m} judgments'
        )
    w, tie = data.weights, data.ties
    if ties == "drop":
        w = np.where(tie, 0.0, w)
    low = w.min()  # two reductions instead of two comparisons over all comparisons
    rows = None if low > 0 else np.flatnonzero(w > 0)
    if rows is not None and rows.shape[0] == 0:
        raise InvalidInput('"data" has no judgment with positive weight to fit')
    winners, losers = data.winners, data.losers
    if rows is not None:
        if not np.all(np.isfinite(x)):
            raise InvalidInput('"covariates" must be finite')
        winners, losers, tie, w, x = winners[rows], losers[rows], tie[rows], w[rows], x[rows]
        low = w.min()
    c = None if low == 1.0 and w.max() == 1.0 else w
    nn = n * n
    tied = bool(tie.any())  # ties get codes of their own: one scatter sums them apart
    xt_all, xx_all, code = _sweep(x, c, winners, losers, tie if tied else None, n)
    f_all = xt_all.shape[0]
    k = max(SAMPLE_MIN, int(SAMPLE_SHARE * x.shape[0]))
    pick = xs = None
    if 2 * k < x.shape[0]:  # else the "sample" is every comparison
        # A fixed seed: the same data always takes the same path to the optimum.
        pick = np.sort(np.random.default_rng(_SAMPLE_SEED).integers(0, x.shape[0], k))
        xs = np.take(x, pick, axis=0).T  # rows of x: far faster than columns of xt
    ss = np.diag(xx_all)
    if not np.all(np.isfinite(ss)) and not np.all(np.isfinite(x)):  # sums first: cheaper
        raise InvalidInput('"covariates" must be finite')
    total = float(w.shape[0] if c is None else c.sum())
    if scale is not None:
        scale = np.asarray(scale, dtype=float).reshape(-1)
        if scale.shape != (f_all,):
            raise InvalidInput(f'"scale" must have {f_all} entries, got {scale.shape[0]}')
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    elif standardize:
        scale = np.where(ss > 0, np.sqrt(ss / total), np.nan)
    else:
        scale = np.where(ss > 0, 1.0, np.nan)
    kept = np.isfinite(scale)
    xt = xt_all if kept.all() else xt_all[kept]
    nw_all = np.bincount(code, c, minlength=2 * nn if tied else nn)
    if tied:
        tie_all = nw_all[nn:]
        nw_all = nw_all[:nn] + tie_all
    cell = np.flatnonzero(nw_all)
    tie_all = tie_all[cell] if tied else np.zeros(cell.shape[0])
    pa, pb = np.divmod(cell, n)
    lin = 0.5 * (np.bincount(pa, tie_all, minlength=n) - np.bincount(pb, tie_all, minlength=n))
    return _DirectedRows(
        n=n, code=code, tied=tied, xt=xt, c=c, pa=pa, pb=pb, cell=cell, nw=nw_all[cell],
        lin=lin, xx=xx_all[np.ix_(kept, kept)], pick=pick,
        xs=None if xs is None else np.ascontiguousarray(xs[kept]), s=scale[kept], scale=scale,
        kept=kept,
    )


@dataclass
class _Sample:
    """Comparisons drawn with replacement (or all of them) for the curvature corrections."""

    code: np.ndarray  # directed pair, winner * n + loser (ties not apart)
    a: np.ndarray  # winner
    b: np.ndarray  # loser
    xt: np.ndarray  # (f, k)
    c: np.ndarray | None
    scale: float  # m / k: sums over the sample estimate sums over all comparisons
    rows: np.ndarray | None  # which comparisons; None: every one, once (exact sums)

    @property
    def every(self) -> bool:
        return self.rows is None


def _draw_sample(rows: _DirectedRows) -> _Sample:
    pick = rows.pick
    if pick is None:
        code, xt, c, scale = rows.code, rows.xt, rows.c, 1.0
    else:
        code, xt = rows.code[pick], rows.xs
        c = None if rows.c is None else rows.c[pick]
        scale = rows.code.shape[0] / pick.shape[0]
    nn = rows.n * rows.n
    if rows.tied:
        code = np.where(code >= nn, code - nn, code)
    a, b = np.divmod(code, rows.n)
    return _Sample(code, a, b, xt, c, scale, pick)


class _DirectedFit:
    """Objective, gradient and Hessian over directed pairs, with reused buffers.

    Parameters are ``[theta, g]`` with ``g`` the coefficients of the raw covariates.
    For the loss of a comparison ``softplus(mu)`` with ``mu = theta_loser -
    theta_winner - x . g`` (a tie adds ``-mu / 2``): ``p = 1 / (1 + exp(mu))`` is the
    probability that the winner wins, ``q = 1 - p`` the derivative, ``p q`` the
    curvature and ``p q (p - q)`` the third derivative; in the parameters, each
    comparison's terms are multiples of ``a = (e_winner - e_loser, x)``.
    """

    def __init__(self, rows: _DirectedRows, alpha: float, beta: float):
        self.r = rows
        self.alpha, self.beta = alpha, beta
        self.pen = 2.0 * beta * rows.s * rows.s  # curvature of the penalty on g
        m = rows.code.shape[0]
        self.buf, self.p = np.empty(m), np.empty(m)  # reused by every pass
        self.f = math.nan
        self.xc: np.ndarray | None = None  # sum of c x (first() has it for free)
        self.xtie: np.ndarray | None = None  # sum of c x over ties (the same)
        self.sample: _Sample | None = None
        self.p0: np.ndarray | None = None  # p of each sampled comparison at the start
        self._bt: Any = None

    # per-pair pieces --------------------------------------------------------------
    def _scatter(self, per_row: np.ndarray, apart: bool = False):
        """Sums per directed pair; ``apart``: also the sums over its ties."""
        r = self.r
        nn = r.n * r.n
        if not r.tied:
            out = np.bincount(r.code, per_row, minlength=nn)[r.cell]
            return (out, None) if apart else out
        both = np.bincount(r.code, per_row, minlength=2 * nn)
        tie = both[nn:]
        out = (both[:nn] + tie)[r.cell]
        return (out, tie[r.cell]) if apart else out

    def _per_code(self, per_pair: np.ndarray) -> np.ndarray:
        """A table over the codes of :attr:`_DirectedRows.code` from per-pair values."""
        r = self.r
        nn = r.n * r.n
        table = np.zeros(2 * nn if r.tied else nn)
        table[r.cell] = per_pair
        if r.tied:
            table[nn:] = table[:nn]
        return table

    def _item_diff(self, per_pair: np.ndarray) -> np.ndarray:
        """``sum over pairs of value (e_winner - e_loser)``."""
        n = self.r.n
        return np.bincount(self.r.pa, per_pair, minlength=n) - np.bincount(
            self.r.pb, per_pair, minlength=n)

    def _theta_block(self, vp: np.ndarray) -> np.ndarray:
        r = self.r
        h = laplacian(r.n, r.pa, r.pb, vp, dense=True)
        h[np.diag_indices(r.n)] += 2.0 * self.alpha
        return h

    def _cx(self) -> np.ndarray:
        if self.xc is None:
            r = self.r
            self.xc = r.xt.sum(axis=1) if r.c is None else r.xt @ r.c
        return self.xc

    def _xtie(self) -> np.ndarray:
        if self.xtie is None:
            r = self.r
            if not r.tied:
                self.xtie = np.zeros(r.xt.shape[0])
            else:
                rows_tie = np.flatnonzero(r.code >= r.n * r.n)
                xt = r.xt[:, rows_tie]
                self.xtie = xt.sum(axis=1) if r.c is None else xt @ r.c[rows_tie]
        return self.xtie

    def bt(self, theta: np.ndarray, order: int = 2):
        """Plain Bradley-Terry (gamma = 0): ``fgh`` for newton_minimize.

        The same objective over unordered pairs ``lo < hi``, half as many as
        directed ones: a pair's two directions are its two win counts, and ties
        (counted as wins of their first item) are corrected by ``theta . lin``.
        """
        if self._bt is None:
            r = self.r
            n = r.n
            w = np.zeros(n * n)
            w[r.cell] = r.nw
            w = w.reshape(n, n)
            lo, hi = np.nonzero(np.triu(w + w.T) > 0)
            self._bt = (lo, hi, w[lo, hi], w[hi, lo])
        lo, hi, a, b = self._bt
        r, alpha = self.r, self.alpha
        d = theta[lo] - theta[hi]
        u = np.exp(-np.abs(d))
        sp = np.log1p(u)  # softplus(-|d|)
        # a softplus(-d) + b softplus(d), softplus(d) = softplus(-|d|) + max(d, 0)
        f = float((a + b) @ sp + a @ np.maximum(-d, 0.0) + b @ np.maximum(d, 0.0)
                  + theta @ r.lin + alpha * theta @ theta)
        if order == 0:
            return f
        p = 1.0 / (1.0 + u)
        p = np.where(d >= 0, p, u * p)  # P(lo beats hi)
        tot = a + b
        gd = tot * p - a
        n = r.n
        g = (np.bincount(lo, gd, minlength=n) - np.bincount(hi, gd, minlength=n) + r.lin
             + 2.0 * alpha * theta)
        if order == 1:
            return f, g
        h = laplacian(n, lo, hi, tot * p * (1.0 - p), dense=True)
        h[np.diag_indices(n)] += 2.0 * alpha
        return f, g, h

    # the start ------------------------------------------------------------------------
    def first(self, theta: np.ndarray):
        """Objective, gradient and Hessian at ``[theta, 0]`` from per-pair sums.

        Returns ``f, g, h, exact``: the covariate block of ``h`` is exact on small
        problems and when ``beta = 0`` (the collinearity check needs it), else
        ``X^T X / 4`` less a sampled ``sum (1/4 - p q) x x^T``.
        """
        r = self.r
        n, nf = r.n, r.xt.shape[0]
        f, gt, ht = self.bt(theta)
        pp = 1.0 / (np.exp(theta[r.pb] - theta[r.pa]) + 1.0)
        vp = pp * (1.0 - pp)
        x_pair = np.empty((nf, r.cell.shape[0]))  # sum of c x per directed pair
        xtie = np.zeros(nf)
        for j in range(nf):
            x_pair[j], tie = self._scatter(r.xt[j] if r.c is None else r.xt[j] * r.c, True)
            if tie is not None:
                xtie[j] = tie.sum()
        self.xc, self.xtie = x_pair.sum(axis=1), xtie
        g = np.empty(n + nf)
        g[:n] = gt
        g[n:] = x_pair @ pp - self.xc + 0.5 * xtie
        h = np.empty((n + nf, n + nf))
        h[:n, :n] = ht
        for j in range(nf):
            h[:n, n + j] = self._item_diff(vp * x_pair[j])
        h[n:, :n] = h[:n, n:].T
        self.f = f
        if not nf:
            return f, g, h, True
        smp = self.sample = _draw_sample(r)
        table = np.zeros(r.n * r.n)
        table[r.cell] = pp
        self.p0 = table[smp.code]
        exact = smp.every or self.beta == 0
        if exact:  # p q of its pair for every comparison
            w = np.take(self._per_code(vp), r.code, out=self.buf, mode="clip")
            if r.c is not None:
                w *= r.c
            h[n:, n:] = _gram(r.xt, w, self.p)  # p is free before the first point
        else:  # X^T X / 4 is exact; the sample only estimates what p q takes off it
            h[n:, n:] = 0.25 * r.xx - self.sampled_hessian(0.25 - self.p0 * (1.0 - self.p0),
                                                           blocks="x")
        h[n + np.arange(nf), n + np.arange(nf)] += self.pen
        return f, g, h, exact

    # sampled corrections ----------------------------------------------------------------
    def sampled_hessian(self, w: np.ndarray, blocks: str = "all") -> np.ndarray:
        """``sum over the sample of c w a a^T``, scaled to all comparisons.

        ``blocks="x"`` returns the covariate block only.
        """
        smp, n = self.sample, self.r.n
        nf = smp.xt.shape[0]
        cw = w if smp.c is None else w * smp.c
        if blocks == "x":
            return smp.scale * _gram(smp.xt, cw)
        h = np.empty((n + nf, n + nf))
        wp = np.bincount(smp.code, cw, minlength=n * n).reshape(n, n)
        h[:n, :n] = -(wp + wp.T)
        h[np.arange(n), np.arange(n)] = wp.sum(axis=0) + wp.sum(axis=1)
        for j in range(nf):
            wx = cw * smp.xt[j]
            h[:n, n + j] = np.bincount(smp.a, wx, minlength=n) - np.bincount(
                smp.b, wx, minlength=n)
        h[n:, :n] = h[:n, n:].T
        h[n:, n:] = _gram(smp.xt, cw)
        h *= smp.scale
        return h

    def sampled_third(self, step: np.ndarray) -> np.ndarray:
        """``T[step, step]`` at the start: the third derivative of the loss, sampled."""
        smp, n = self.sample, self.r.n
        p0 = self.p0
        along = step[:n][smp.a] - step[:n][smp.b] + step[n:] @ smp.xt  # a . step
        w = p0 * (1.0 - p0) * (1.0 - 2.0 * p0) * along * along  # -q'' (a . s)^2
        if smp.c is not None:
            w *= smp.c
        out = np.empty(step.shape[0])
        out[:n] = np.bincount(smp.a, w, minlength=n) - np.bincount(smp.b, w, minlength=n)
        out[n:] = smp.xt @ w
        return smp.scale * out

    def corrected_hessian(self, h0: np.ndarray) -> np.ndarray:
        """The start's Hessian plus the sampled change of curvature to the last point."""
        smp = self.sample
        p = self.p if smp.every else self.p[smp.rows]
        return h0 + self.sampled_hessian(p * (1.0 - p) - self.p0 * (1.0 - self.p0))

    # passes over the comparisons ----------------------------------------------------
    def _margins(self, theta: np.ndarray, g: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``mu`` of every comparison: one gather and one matrix-vector product."""
        r = self.r
        diff = (theta[None, :] - theta[:, None]).ravel()  # [a, b]: theta_b - theta_a
        if r.tied:
            diff = np.concatenate([diff, diff])
        mu = np.take(diff, r.code, out=out, mode="clip")
        if g.shape[0]:  # mu -= X g in place (BLAS: no temporary)
            res = dgemv(-1.0, r.xt.T, g, beta=1.0, y=mu, overwrite_y=1)
            if res is not mu:  # pragma: no cover - f2py copied y after all
                mu[:] = res
        return mu

    def point(self, x: np.ndarray) -> float:
        """Objective at ``x``; keeps p for :meth:`gradient` and :meth:`hessian`.

        Two buffers of one value per comparison: ``mu`` becomes ``1 + exp(mu)``
        and then its log in place, ``p`` is its reciprocal.
        """
        r = self.r
        n = r.n
        theta, g = x[:n], x[n:]
        s1 = self._margins(theta, g, self.buf)
        with np.errstate(over="ignore"):
            np.exp(s1, out=s1)
        s1 += 1.0
        np.reciprocal(s1, out=self.p)
        logs = np.log(s1, out=s1)
        loss = float(logs.sum() if r.c is None else r.c @ logs)
        if not math.isfinite(loss):  # exp overflowed: the stable form
            mu = self._margins(theta, g, self.buf)
            np.logaddexp(0.0, mu, out=mu)
            loss = float(mu.sum() if r.c is None else r.c @ mu)
        self.f = (loss + theta @ r.lin + 0.5 * g @ self._xtie() + self.alpha * theta @ theta
                  + 0.5 * g @ (self.pen * g))
        return self.f

    def gradient(self, x: np.ndarray) -> np.ndarray:
        r = self.r
        n = r.n
        cp = self.p if r.c is None else np.multiply(self.p, r.c, out=self.buf)
        g = np.empty(x.shape[0])
        g[:n] = self._item_diff(self._scatter(cp) - r.nw) + r.lin + 2.0 * self.alpha * x[:n]
        g[n:] = r.xt @ cp - self._cx() + 0.5 * self._xtie() + self.pen * x[n:]
        return g

    def hessian(self) -> np.ndarray:
        """The exact Hessian at the last :meth:`point`."""
        r = self.r
        n, nf = r.n, r.xt.shape[0]
        v = np.multiply(self.p, self.p, out=self.buf)
        np.subtract(self.p, v, out=v)
        if r.c is not None:
            v *= r.c
        h = np.empty((n + nf, n + nf))
        h[:n, :n] = self._theta_block(self._scatter(v))
        vx = np.empty_like(v)
        for j in range(nf):
            np.multiply(r.xt[j], v, out=vx)
            h[:n, n + j] = self._item_diff(self._scatter(vx))
            h[n + j, n + j:] = r.xt[j:] @ vx
            h[n + j:, n + j] = h[n + j, n + j:]
        h[n:, :n] = h[:n, n:].T
        h[n + np.arange(nf), n + np.arange(nf)] += self.pen
        return h


class _Steps:
    """Newton steps ``-H^{-1} g``, factorising each Hessian once.

    With ``gauge`` (alpha = 0) the scores' common shift leaves the objective
    unchanged: ``H + J/n`` on the score block is solved instead of the singular ``H``.
    """

    def __init__(self, n: int, gauge: bool):
        self.n, self.gauge = n, gauge
        self.h: np.ndarray | None = None

    def __call__(self, h: np.ndarray, g: np.ndarray) -> np.ndarray:
        if h is not self.h:
            self.h = h
            a = h.copy()
            if self.gauge:
                a[:self.n, :self.n] += 1.0 / self.n
            self.a, self.lu = a, None
            if np.all(np.isfinite(a)):
                with warnings.catch_warnings():  # a singular H: least squares below
                    warnings.simplefilter("ignore", LinAlgWarning)
                    lu, piv = lu_factor(a, check_finite=False)
                if np.all(np.diag(lu) != 0):
                    self.lu = (lu, piv)
        if self.lu is not None:
            return -lu_solve(self.lu, g, check_finite=False)
        return -np.linalg.lstsq(self.a, g, rcond=None)[0]


def _fit_directed(
    rows: _DirectedRows,
    alpha: float,
    beta: float,
    names: list[str],
    initial_params: np.ndarray | None,
    tol: float,
    feature_names: list[str],
    want_hessian: bool,
    max_iter: int = 200,
) -> _Solution:
    """Minimise the style objective over directed pairs (see the section comment)."""
    n, nf = rows.n, rows.xt.shape[0]
    fit = _DirectedFit(rows, alpha, beta)
    gauge = alpha == 0
    what = "style-controlled fit"
    h0 = None  # the Hessian at the start, which the sample corrects
    if initial_params is not None:
        x0 = np.asarray(initial_params, dtype=float)
        if x0.shape != (n + nf,):
            raise InvalidInput(f'"initial_params" must have {n + nf} entries, got {x0.shape}')
        x = x0.copy()
        x[n:] /= rows.s
        f = fit.point(x)
        g = fit.gradient(x)
        h, exact = fit.hessian(), True
    else:
        # With alpha = 0, the same existence check as bt_pairwise: an item that never
        # lost diverges whatever the covariates (every one of its terms grows with it).
        won = rows.nw > 0
        check_identifiable(n, rows.pa[won], rows.pb[won], names, alpha)
        theta, _, _ = newton_minimize(
            fit.bt, np.zeros(n), np.ones(n, bool) if gauge else None,
            tol=tol if nf == 0 else _START_TOL, what="Bradley-Terry start")
        x = np.concatenate([theta, np.zeros(nf)])
        f, g, h, exact = fit.first(theta)
        if nf:
            h0 = h
    if beta == 0 and nf:
        # The information does not depend on where it is taken: check it first.
        _check_collinear(_to_gamma(h, rows.s, n), n, feature_names)
    passes = 0
    steps = _Steps(n, gauge)
    for it in range(1, max_iter + 1):
        if not np.isfinite(f):
            raise NotConverged(f"{what}: the objective is not finite ({f}) at iteration {it}")
        step = steps(h, g)
        dec = -float(g @ step)
        if (not np.isfinite(dec) or dec < 0) and not exact:
            if not passes:  # p is that of the last point: make it x's
                fit.point(x)
            h, exact = fit.hessian(), True  # the corrected Hessian failed: rebuild it
            step = steps(h, g)
            dec = -float(g @ step)
        if 0.5 * dec <= tol * (1.0 + abs(f)):
            break
        if not np.isfinite(dec) or dec < 0:
            step, dec = -g, float(g @ g)
        direction, slope = step, dec
        if h0 is not None and passes == 0:
            # The long step off gamma = 0: Chebyshev's third-order correction, kept
            # while it is small next to the step (inside the quadratic regime).
            corr = steps(h, 0.5 * fit.sampled_third(step))
            if np.all(np.isfinite(corr)) and corr @ (h @ corr) <= 0.25 * dec:
                direction = step + corr
                slope = -float(g @ direction)
                if not slope > 0:
                    direction, slope = step, dec
        t = 1.0
        while True:
            x_new = x + t * direction
            f_new = fit.point(x_new)
            passes += 1
            if np.isfinite(f_new) and f_new <= f - 1e-4 * t * slope:
                break
            if direction is not step:  # drop the correction before shortening the step
                direction, slope = step, dec
                continue
            t *= 0.5
            if t < 1e-12:
                raise NotConverged(f"{what}: line search failed at iteration {it}")
        x, f = x_new, f_new
        g = fit.gradient(x)
        if h0 is not None and t == 1.0 and it <= 2 and not fit.sample.every:
            if it == 1:
                h = fit.corrected_hessian(h0)
            # else: the step was short, the curvature barely moved: keep h for one more
            exact = False
        else:
            h, exact = fit.hessian(), True
    else:
        raise NotConverged(
            f"{what}: no convergence after {max_iter} Newton iterations "
            f"(gradient norm {np.abs(g).max():.3g})")
    # The estimate is one step past the last point evaluated. Its objective is that
    # step's quadratic model (see _newton), unless intervals are wanted: they take
    # the exact Hessian at the estimate itself, one more pass, which also gives the
    # exact objective there.
    est = x + step
    if want_hessian:
        obj = fit.point(est)
        h = fit.hessian()
    else:
        obj = f + g @ step + 0.5 * step @ (h @ step)
    theta, gsc = est[:n], est[n:]
    loglik = -(obj - alpha * theta @ theta - 0.5 * gsc @ (fit.pen * gsc))
    out = est.copy()
    out[:n] -= theta.mean()
    out[n:] *= rows.s
    return _Solution(out, float(loglik), _to_gamma(h, rows.s, n))


def _to_gamma(h: np.ndarray, s: np.ndarray, n: int) -> np.ndarray:
    """A Hessian over ``[theta, g]`` as one over ``[theta, gamma = g s]``."""
    d = np.concatenate([np.ones(n), 1.0 / s])
    return h * d[:, None] * d[None, :]


@dataclass
class StyleFitResult(FitResult):
    """A :class:`FitResult` with the style coefficients.

    Attributes
    ----------
    feature_names : list of str
        One per input covariate.
    style_coefficients : ndarray, shape (f,)
        Log-odds per standard deviation of each covariate (NaN: left out).
    style_ci95 : ndarray, shape (f, 2)
        95% intervals (NaN: left out or not computed).
    style_scale : ndarray, shape (f,)
        Divisor used to standardise each covariate (NaN: left out).
    notes : list of str
        Decisions worth telling the user (features left out, ...).
    """

    feature_names: list[str] = field(default_factory=list)
    style_coefficients: np.ndarray | None = None
    style_ci95: np.ndarray | None = None
    style_scale: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return a JSON-able summary; NaN becomes None (null)."""
        out = super().to_dict()
        out["style_coefficients"] = {
            n: _num(c) for n, c in zip(self.feature_names, self.style_coefficients)
        }
        out["style_ci95"] = {
            n: (None if not np.all(np.isfinite(ci)) else [float(ci[0]), float(ci[1])])
            for n, ci in zip(self.feature_names, self.style_ci95)
        }
        out["style_scale"] = {n: _num(s) for n, s in zip(self.feature_names, self.style_scale)}
        out["style_features"] = {
            n: STYLE_FEATURE_DEFINITIONS.get(n, "covariate supplied by the caller")
            for n in self.feature_names
        }
        out["style_covariate"] = _COVARIATE_NOTE
        out["notes"] = list(self.notes)
        return _nan_free(out)


def _num(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _nan_free(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_free(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _feature_names(names: list[str] | None, f: int) -> list[str]:
    if names is None:
        return list(STYLE_FEATURES) if f == len(STYLE_FEATURES) else [f"x{j}" for j in range(f)]
    names = [str(n) for n in names]
    if len(names) != f:
        raise InvalidInput(f'"feature_names" must have {f} entries, got {len(names)}')
    if len(set(names)) != f:
        raise InvalidInput(f'"feature_names" must be distinct, got {names}')
    return names


def style_cov(
    params: np.ndarray,
    design: StyleDesign,
    alpha: float = 0.0,
    beta: float = 0.0,
    hessian: np.ndarray | None = None,
) -> np.ndarray:
    """Return the covariance of ``[centred theta, gamma]`` from the inverse Hessian.

    The scores are identified up to a common shift; adding ``J / n`` on the
    ``theta`` block fixes the sum-to-zero gauge and projecting with the centring
    matrix gives the covariance of the centred scores (as
    :func:`prefstore.models.base.centred_cov`); ``gamma`` is not centred. A
    ``hessian`` already computed (at or next to ``params``) saves a pass.
    """
    h = style_hessian(params, design, alpha, beta) if hessian is None else hessian
    return _cov_from_hessian(h, design.n_items, design.n_features)


def _cov_from_hessian(h: Any, n: int, nf: int) -> np.ndarray:
    check_dense_ci(n + nf)
    h = h.toarray() if issparse(h) else np.array(h)
    g = np.zeros((n + nf, n + nf))
    g[:n, :n] = 1.0 / n
    try:
        inv = np.linalg.inv(h + g)
    except np.linalg.LinAlgError as exc:
        raise NotConverged(f"the information matrix is singular: {exc}") from None
    c = np.eye(n + nf)
    c[:n, :n] -= 1.0 / n
    inv = c @ inv @ c
    return 0.5 * (inv + inv.T)


def style_pairwise(
    data: PairwiseData,
    covariates: np.ndarray,
    *,
    alpha: float = 0.0,
    beta: float = FASTCHAT_BETA,
    ties: str = "half",
    feature_names: list[str] | None = None,
    ci: str | None = "hessian",
    n_boot: int = 200,
    seed: int = 0,
    anchor: int | str | None = None,
    standardize: bool = True,
    scale: np.ndarray | None = None,
    initial_params: np.ndarray | None = None,
    tol: float = 1e-9,
) -> StyleFitResult:
    """Fit Bradley-Terry scores controlled for style (Li et al. 2024).

    Parameters
    ----------
    data : PairwiseData
        Judgments (weights are multiplicities; ties count half a win each).
    covariates : ndarray, shape (m, f)
        One row per judgment, winner minus loser, e.g. :func:`style_covariates` of
        :func:`style_features` (``prefstore.models.adapter.pairwise_style_from_frames``
        builds both from the store's frames).
    alpha : float
        Penalty ``alpha |theta|^2`` on the scores (0: maximum likelihood, as the
        other prefstore models). :data:`FASTCHAT_ALPHA` reproduces FastChat.
    beta : float
        Penalty ``beta |gamma|^2`` on the style coefficients; default
        :data:`FASTCHAT_BETA` (FastChat's), which also keeps a rare feature's
        coefficient finite when it separates wins from losses.
    ties : {"half", "drop"}
    feature_names : list of str, optional
        Default :data:`STYLE_FEATURES` for 4 columns, else ``x0, x1, ...``.
    ci : {"hessian", "bootstrap", None}
        "hessian": Wald intervals from the inverse of the full ``(theta, gamma)``
        Hessian with the centring constraint; "bootstrap": percentile intervals over
        ``n_boot`` Poisson(1) reweightings of the judgments (covariate scale fixed),
        each refit warm-started at the estimate.

        Comparisons repeating a (pair, covariates) row are merged into weighted rows
        first when a sample shows that at least :data:`DEDUP_SHARE_FIT` of the rows
        repeat (:data:`DEDUP_SHARE_BOOTSTRAP` for the bootstrap): several raters on
        the same two responses, or covariates with few distinct values.
    n_boot, seed : int
    anchor : int or str, optional
        Item placed at 1000 on the Elo-like scale.
    standardize, scale
        See :func:`style_design`.
    initial_params : ndarray, optional
        Warm start ``[theta, gamma]`` over the kept covariates.
    tol : float
        Newton-decrement tolerance, relative to the objective. The estimate returned
        is one Newton step past the point that met it (on a large dense problem with
        a sample-corrected Hessian, see the section comment of ``_fit_directed``),
        which spares one pass over the comparisons and leaves errors far below a
        standard error.

    Returns
    -------
    StyleFitResult
        ``model="style"``; ``scores`` are the style-controlled centred log-strengths.

    Raises
    ------
    InvalidInput
        On misshapen or non-finite covariates, or a bad option.
    NotConverged
        If ``alpha = 0`` and some items never lost (as :func:`bt_pairwise`), or
        ``beta = 0`` and a covariate is determined by the compared items.
    """
    start = time.perf_counter()
    alpha = _check_penalty("alpha", alpha)
    beta = _check_penalty("beta", beta)
    if ci not in (None, "hessian", "bootstrap"):
        raise InvalidInput(f'"ci" must be None, "hessian" or "bootstrap", got {ci!r}')
    if ci == "bootstrap" and n_boot < 2:
        raise InvalidInput(f'"n_boot" must be at least 2, got {n_boot}')
    if not isinstance(data, PairwiseData):
        raise InvalidInput(f'"data" must be PairwiseData, got {type(data).__name__}')
    if ties not in TIE_POLICIES:
        raise InvalidInput(f'"ties" must be one of {TIE_POLICIES}, got {ties!r}')
    shape = np.shape(covariates)
    n_cov = shape[1] if len(shape) == 2 else 1
    # The point estimate takes the directed-pair path whenever the problem is dense,
    # whatever the intervals; the bootstrap refits need the design.
    rows = design = None
    if _dense_ok(data.n_items, len(data), n_cov):
        rows = _directed_rows(data, covariates, ties, standardize, scale)
        kept, cov_scale = rows.kept, rows.scale
    if rows is None or ci == "bootstrap":
        design = style_design(
            data,
            covariates,
            ties=ties,
            standardize=standardize,
            scale=scale if rows is None else rows.scale,
            # A single fit makes about three passes, so merging pays when most rows
            # repeat; the bootstrap makes hundreds.
            dedup=DEDUP_SHARE_BOOTSTRAP if ci == "bootstrap" else DEDUP_SHARE_FIT,
        )
        kept, cov_scale = design.kept, design.scale
    names = _feature_names(feature_names, kept.shape[0])
    notes = [
        f"{names[j]}: left out, its covariate is zero over all fitted comparisons "
        f"(the feature does not vary between the compared responses)"
        for j in np.flatnonzero(~kept)
    ]
    kept_names = [nm for nm, k in zip(names, kept) if k]
    n, nf = data.n_items, int(kept.sum())
    if rows is not None:  # checks identifiability itself when beta = 0
        sol = _fit_directed(rows, alpha, beta, data.names, initial_params, tol, kept_names,
                            want_hessian=ci == "hessian")
    else:
        sol = _fit_design(design, alpha, beta, ties, data.names, initial_params, tol)
        if beta == 0 and nf and n + nf <= DENSE_MAX:
            _check_collinear(np.asarray(sol.hessian), n, kept_names)
    x = sol.x
    ci95 = np.full((n, 2), np.nan)
    gci = np.full((nf, 2), np.nan)
    if ci == "hessian":
        # The exact Hessian at the estimate (dense problems, one more pass), or that
        # of the last Newton iterate, one tiny step from it (the design path).
        cov = _cov_from_hessian(sol.hessian, n, nf)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        z = 1.959963984540054
        lohi = np.column_stack([x - z * sd, x + z * sd])
        ci95, gci = lohi[:n], lohi[n:]
    elif ci == "bootstrap":
        rng = np.random.default_rng(seed)
        samples = np.empty((n_boot, n + nf))
        for b in range(n_boot):  # one warm-started Newton fit per round
            w = rng.poisson(1.0, len(data)) * data.weights
            boot = design.with_weights(w)
            samples[b] = _newton(boot, max(alpha, 1e-8), beta, x, 1e-9, "bootstrap refit").x
        lohi = percentile_ci(samples)
        ci95, gci = lohi[:n], lohi[n:]
    f_all = kept.shape[0]
    coef = np.full(f_all, np.nan)
    coef[kept] = x[n:]
    coef_ci = np.full((f_all, 2), np.nan)
    coef_ci[kept] = gci
    return StyleFitResult(
        model="style",
        scores=x[:n],
        ci95=ci95,
        names=list(data.names),
        log_likelihood=sol.log_likelihood,
        n_comparisons=len(data),
        seconds=time.perf_counter() - start,
        params={
            "alpha": alpha,
            "beta": beta,
            "ties": ties,
            "ci": ci,
            "standardize": bool(standardize) if scale is None else "given",
        },
        level=data.level,
        anchor=_resolve_anchor(anchor, data.names),
        feature_names=names,
        style_coefficients=coef,
        style_ci95=coef_ci,
        style_scale=cov_scale.copy(),
        notes=notes,
    )


def fit_style_control(
    data: PairwiseData,
    covariates: np.ndarray,
    feature_names: list[str] | None = None,
    *,
    alpha: float = 0.0,
    beta: float = FASTCHAT_BETA,
    ci: str | None = "hessian",
    n_boot: int = 200,
    seed: int = 0,
    ties: str = "half",
    anchor: int | str | None = None,
) -> dict:
    """Fit :func:`style_pairwise` and return its JSON-able summary (no NaN).

    Keys: those of :meth:`FitResult.to_dict` (``scores``, ``ci95``, ``elo``,
    ``log_likelihood``, ``params``, ...) plus ``style_coefficients`` and
    ``style_ci95`` (by feature, None when left out), ``style_scale``,
    ``style_features`` (definitions), ``style_covariate`` and ``notes``.
    """
    result = style_pairwise(
        data,
        covariates,
        alpha=alpha,
        beta=beta,
        ties=ties,
        feature_names=feature_names,
        ci=ci,
        n_boot=n_boot,
        seed=seed,
        anchor=anchor,
    )
    return result.to_dict()


__all__ = [
    "FASTCHAT_ALPHA",
    "FASTCHAT_BETA",
    "STYLE_FEATURES",
    "STYLE_FEATURE_DEFINITIONS",
    "StyleDesign",
    "StyleFitResult",
    "fit_style_control",
    "style_cov",
    "style_covariates",
    "style_design",
    "style_features",
    "style_gradient",
    "style_hessian",
    "style_log_likelihood",
    "style_objective",
    "style_pairwise",
]
