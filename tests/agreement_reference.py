"""The agreement report as it was before issue 17 (commit cbdc3e2): a frozen test oracle.

tests/test_agreement_report_oracle.py checks that the vectorized report of
prefstore.agreement gives the same numbers as this per-pair, per-rater code.
Do not edit it to follow the library: it pins the values the report had.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import f1_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as _sm_fleiss_kappa

from prefstore.errors import InvalidInput

__all__ = [
    "LEVELS",
    "TIE",
    "agreement_over_time",
    "agreement_report",
    "cohen_kappa_pairs",
    "edit_stats",
    "fleiss_kappa_counts",
    "fleiss_kappa_ratings",
    "kappa_matrix",
    "krippendorff_alpha",
    "krippendorff_alpha_ci",
    "levenshtein",
    "percent_agreement",
    "strict_majority",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
TIE = -1
# Rater-vs-rater agreement keeps both-bad as its own category; judge metrics fold it into tie.
BOTH_BAD = -2
"""Label code of a tie (and of a both-bad outcome) in a reliability matrix."""

MIN_SHARED = 20
KINDS = ("human", "llm", "all")
JUDGMENT_COLUMNS = (
    "id",
    "item_id",
    "rater",
    "kind",
    "outcome",
    "choice",
    "strength",
    "display_order",
    "time_ms",
    "created_at",
    "metadata",
)
_BOOT_CHUNK = 4_000_000  # elements of the resampling-weight matrix held at once


# --------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------


def _as_matrix(data: Any, name: str = "data") -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f'"{name}" must be numeric with NaN for missing, got {exc}') from None
    if arr.ndim != 2:
        raise InvalidInput(f'"{name}" must be 2-D (raters, units), got {arr.ndim}-D')
    return arr


_DENSE_RANGE = 64  # integer codes spanning at most this many slots are counted without a search


def _value_counts(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (units, values) count matrix, the values per unit ``m_u`` and the value domain.

    One ``bincount`` over ``unit * slots + code``; missing values fall in a slot
    that is dropped. Issue 17: no per-pair arrays and no (units, V, V) stack.
    """
    n_raters, n_units = data.shape
    missing = np.isnan(data)
    m = n_raters - missing.sum(axis=0)
    domain = np.unique(data)  # NaNs collapse into one, sorted last
    values = domain[~np.isnan(domain)]
    n_values = len(values)
    if n_values == 0:
        return np.zeros((n_units, 0)), m, values
    lo, hi = values[0], values[-1]
    integer = bool(np.isfinite(hi - lo)) and np.array_equal(values, np.rint(values))
    if integer and hi - lo < _DENSE_RANGE:
        # Small integer codes (the usual labels and scales): the code is the
        # offset from the smallest value, which skips a searchsorted over every cell.
        slots = int(hi - lo) + 2
        flat = data - lo
        np.copyto(flat, slots - 1, where=missing)
        flat += np.arange(n_units) * float(slots)
        code = flat.astype(np.intp)
        keep = (values - lo).astype(np.intp)
        if n_values == slots - 1:  # every code in the range occurs: a view, not a gather
            keep = slice(0, n_values)
    else:
        slots = n_values + 1
        code = np.searchsorted(values, data)  # NaN sorts after every value: slot n_values
        code += np.arange(n_units) * slots
        keep = slice(0, n_values)
    counts = np.bincount(code.ravel(), minlength=n_units * slots).reshape(n_units, slots)
    return counts[:, keep].astype(float), m, values


def _unit_coincidences(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-unit coincidence matrices of pairable units and the value domain."""
    counts, m, values = _value_counts(data)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    n_values = len(values)
    coinc = counts[:, :, None] * counts[:, None, :]
    coinc[:, np.arange(n_values), np.arange(n_values)] -= counts
    return coinc / (m - 1)[:, None, None], values


def _coincidences(data: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Return the summed coincidence matrix (``None`` without a pairable unit) and the domain.

    ``o = C^T diag(w) C - diag(w^T C)`` with ``C`` the (units, values) counts and
    ``w_u = 1 / (m_u - 1)`` on pairable units, 0 elsewhere: one small matmul.
    """
    counts, m, values = _value_counts(data)
    pairable = m >= 2
    if not pairable.any():
        return None, values
    w = np.divide(1.0, m - 1, out=np.zeros(len(m)), where=pairable)
    coinc = counts.T @ (counts * w[:, None])
    coinc[np.diag_indices_from(coinc)] -= w @ counts
    return coinc, values


def _alpha_from_coincidence(coinc: np.ndarray, values: np.ndarray, level: str) -> np.ndarray:
    """Alpha for one coincidence matrix (V, V) or a stack of them (..., V, V)."""
    n_c = coinc.sum(axis=-1)
    n = n_c.sum(axis=-1)
    diff = values[:, None] - values[None, :]
    if level == "nominal":
        delta = (diff != 0).astype(float)
    elif level == "interval":
        delta = diff**2
    elif level == "ratio":
        total = values[:, None] + values[None, :]
        ratio = np.divide(diff, total, out=np.zeros_like(diff), where=total != 0)
        delta = ratio**2
    else:  # ordinal: the distance depends on the marginals, so on the sample
        cum = np.cumsum(n_c, axis=-1)
        delta = (
            cum[..., None, :] - cum[..., :, None] + (n_c[..., :, None] - n_c[..., None, :]) / 2
        ) ** 2
    observed = (coinc * delta).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - (n - 1) * observed / expected


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InvalidInput(f'"level" must be one of {", ".join(LEVELS)}, got {level!r}')


def krippendorff_alpha(data: Any, level: str = "nominal") -> float:
    """Compute Krippendorff's alpha of a reliability matrix.

    Builds the coincidence matrix ``o_ck = sum_u (n_uc n_uk - [c=k] n_uc) / (m_u - 1)``
    over the pairable units (``m_u >= 2`` values) and returns
    ``1 - (n - 1) sum o_ck d_ck / sum n_c n_k d_ck`` (Krippendorff 2011).

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Numeric values, ``NaN`` where a rater did not judge a unit.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement, which picks the squared distance ``d_ck``. The
        ordinal distance uses the value marginals ``n_g`` of the coincidence
        matrix; the value domain is the set of values that occur.

    Returns
    -------
    float
        Alpha, or ``NaN`` when it is undefined: no pairable unit, or only one
        value occurs (no expected disagreement).

    Raises
    ------
    InvalidInput
        If ``data`` is not a 2-D numeric array or ``level`` is unknown.
    """
    _check_level(level)
    coinc, values = _coincidences(_as_matrix(data))
    if coinc is None:
        return math.nan
    return float(_alpha_from_coincidence(coinc, values, level))


def krippendorff_alpha_ci(
    data: Any,
    level: str = "nominal",
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap a percentile confidence interval for Krippendorff's alpha over units.

    Each replicate resamples the pairable units with replacement and recomputes
    alpha from the summed per-unit coincidence matrices (Krippendorff 2011),
    all replicates at once as a weight-matrix product. Replicates where alpha is
    undefined are ignored.

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Numeric values, ``NaN`` where missing.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Level of measurement.
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of the ``numpy.random.default_rng`` generator.
    confidence : float
        Coverage of the two-sided percentile interval.

    Returns
    -------
    tuple of float
        ``(low, high)``, both ``NaN`` when alpha is undefined in every replicate.

    Raises
    ------
    InvalidInput
        If ``level``, ``n_boot`` or ``confidence`` is out of range.
    """
    _check_level(level)
    if int(n_boot) < 1:
        raise InvalidInput(f'"n_boot" must be at least 1, got {n_boot}')
    if not 0 < confidence < 1:
        raise InvalidInput(f'"confidence" must be in (0, 1), got {confidence}')
    coinc, values = _unit_coincidences(_as_matrix(data))
    n_units, n_values = len(coinc), len(values)
    if n_units == 0:
        return (math.nan, math.nan)
    flat = coinc.reshape(n_units, n_values * n_values)
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CHUNK // n_units)
    alphas = []
    for start in range(0, int(n_boot), chunk):
        size = min(chunk, int(n_boot) - start)
        draws = rng.integers(0, n_units, size=(size, n_units))
        offsets = (draws + np.arange(size)[:, None] * n_units).ravel()
        weights = np.bincount(offsets, minlength=size * n_units).reshape(size, n_units)
        boot = (weights @ flat).reshape(size, n_values, n_values)
        alphas.append(_alpha_from_coincidence(boot, values, level))
    alpha = np.concatenate(alphas)
    alpha = alpha[np.isfinite(alpha)]
    if alpha.size == 0:
        return (math.nan, math.nan)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(alpha, [tail, 100 - tail])
    return (float(low), float(high))


# --------------------------------------------------------------------------
# Kappas, percent agreement, majorities
# --------------------------------------------------------------------------


def _category_counts(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (units, categories) counts and the sorted categories."""
    cats = np.unique(data[~np.isnan(data)])
    counts = (data[:, :, None] == cats[None, None, :]).sum(axis=0)
    return counts, cats


def fleiss_kappa_counts(counts: Any) -> float:
    """Compute Fleiss' kappa from a (units, categories) table of rating counts.

    Thin wrapper over ``statsmodels.stats.inter_rater.fleiss_kappa`` (Fleiss 1971).

    Parameters
    ----------
    counts : array_like, shape (units, categories)
        How many raters put each unit in each category.

    Returns
    -------
    float
        Kappa, ``NaN`` when undefined (a single category used throughout).

    Raises
    ------
    InvalidInput
        If the table is not 2-D or the units do not all have the same number of
        ratings, which Fleiss' kappa requires (use Krippendorff's alpha instead).
    """
    table = _as_matrix(counts, "counts")
    totals = table.sum(axis=1)
    if table.shape[0] == 0 or np.any(totals != totals[0]) or totals[0] < 2:
        found = sorted({int(t) for t in totals})
        raise InvalidInput(
            f'"counts" must have the same number (>= 2) of ratings on every unit, got {found}'
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_sm_fleiss_kappa(table, method="fleiss"))


def fleiss_kappa_ratings(data: Any) -> float:
    """Compute Fleiss' kappa of a reliability matrix, skipping units with under 2 ratings.

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Nominal codes, ``NaN`` where missing.

    Returns
    -------
    float
        Fleiss' kappa (Fleiss 1971), see :func:`fleiss_kappa_counts`.

    Raises
    ------
    InvalidInput
        If the rated units do not all have the same number of ratings.
    """
    arr = _as_matrix(data)
    arr = arr[:, (~np.isnan(arr)).sum(axis=0) >= 2]
    counts, _ = _category_counts(arr)
    return fleiss_kappa_counts(counts)


def percent_agreement(data: Any) -> float:
    """Compute the mean pairwise percent agreement.

    For each unit with ``m >= 2`` ratings, the share of its ``m (m - 1) / 2``
    rater pairs that gave the same label; the result is the unweighted mean of
    that share over those units (Fleiss 1971's ``P_i`` averaged, which allows a
    varying number of raters per unit).

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Nominal codes, ``NaN`` where missing.

    Returns
    -------
    float
        Agreement in [0, 1], ``NaN`` if no unit has two ratings.
    """
    arr = _as_matrix(data)
    counts, _ = _category_counts(arr)
    m = counts.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        return math.nan
    counts, m = counts[keep], m[keep]
    return float(np.mean((counts * (counts - 1)).sum(axis=1) / (m * (m - 1))))


def strict_majority(data: Any, tie: float = TIE) -> np.ndarray:
    """Return each unit's strict-majority label.

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Nominal codes, ``NaN`` where missing.
    tie : float
        Label given to units where no label has more than half of the ratings.

    Returns
    -------
    numpy.ndarray, shape (units,)
        The majority label, ``tie`` without a strict majority, ``NaN`` for
        units nobody rated.
    """
    arr = _as_matrix(data)
    counts, cats = _category_counts(arr)
    out = np.full(arr.shape[1], np.nan)
    if cats.size == 0:
        return out
    m = counts.sum(axis=1)
    top = counts.argmax(axis=1)
    strict = counts.max(axis=1) * 2 > m
    out[m > 0] = tie
    out[strict] = cats[top[strict]]
    return out


def _kappa(a: np.ndarray, b: np.ndarray, labels: np.ndarray | None = None, weights=None) -> float:
    """Cohen's (1960) kappa of two label vectors, linearly weighted if asked.

    The same computation as ``sklearn.metrics.cohen_kappa_score`` (a test
    oracle) on a numpy confusion matrix: sklearn's per-call label encoding
    dominated a million-judgment report. NaN when undefined (one shared label).
    """
    cats = np.unique(np.concatenate([a, b])) if labels is None else np.asarray(labels, float)
    k = len(cats)
    keep = np.isin(a, cats) & np.isin(b, cats)
    conf = np.zeros((k, k))
    np.add.at(conf, (np.searchsorted(cats, a[keep]), np.searchsorted(cats, b[keep])), 1.0)
    n = conf.sum()
    if n == 0:
        return math.nan
    expected = np.outer(conf.sum(axis=1), conf.sum(axis=0)) / n
    index = np.arange(k)
    if weights is None:
        w = 1.0 - np.eye(k)
    elif weights == "linear":
        w = np.abs(index[:, None] - index[None, :]).astype(float)
    else:
        raise InvalidInput(f'"weights" must be None or "linear", got {weights!r}')
    denominator = (w * expected).sum()
    return math.nan if denominator == 0 else float(1.0 - (w * conf).sum() / denominator)


def _ordinal_labels(values: np.ndarray) -> np.ndarray:
    """Label list for weighted kappa whose index distance equals the value distance."""
    values = np.unique(values[~np.isnan(values)])
    if values.size and np.all(values == np.round(values)):
        return np.arange(values.min(), values.max() + 1)
    return values


def cohen_kappa_pairs(
    data: Any,
    raters: Iterable[str] | None = None,
    ordinal: Any | None = None,
    min_shared: int = MIN_SHARED,
) -> list[dict]:
    """Compute Cohen's kappa for every pair of raters with enough shared units.

    Parameters
    ----------
    data : array_like, shape (raters, units)
        Nominal codes, ``NaN`` where missing.
    raters : iterable of str, optional
        Names of the rows; defaults to ``"0"``, ``"1"``, ...
    ordinal : array_like, shape (raters, units), optional
        Ordinal values (the signed strength) for the linearly weighted kappa.
        Weights are linear in the value distance: integer values are placed on
        the full integer scale between their minimum and maximum.
    min_shared : int
        Pairs sharing fewer units are left out; the weighted kappa is ``NaN``
        when fewer than ``min_shared`` shared units have an ordinal value.

    Returns
    -------
    list of dict
        ``{"a", "b", "kappa", "weighted_kappa", "n", "n_weighted"}`` per pair
        (Cohen 1960; checked against ``sklearn.metrics.cohen_kappa_score``); ``kappa`` is
        ``NaN`` when undefined (both raters used one and the same label).
    """
    arr = _as_matrix(data)
    names = [str(i) for i in range(arr.shape[0])] if raters is None else list(raters)
    if len(names) != arr.shape[0]:
        raise InvalidInput(f'"raters" must name {arr.shape[0]} rows, got {len(names)}')
    ordv = None if ordinal is None else _as_matrix(ordinal, "ordinal")
    if ordv is not None and ordv.shape != arr.shape:
        raise InvalidInput(f'"ordinal" must have shape {arr.shape}, got {ordv.shape}')
    scale = None if ordv is None else _ordinal_labels(ordv)
    present = (~np.isnan(arr)).astype(float)
    shared = present @ present.T
    out = []
    for i, j in combinations(range(arr.shape[0]), 2):
        if shared[i, j] < min_shared:
            continue
        mask = ~np.isnan(arr[i]) & ~np.isnan(arr[j])
        weighted, n_weighted = math.nan, 0
        if ordv is not None:
            wmask = ~np.isnan(ordv[i]) & ~np.isnan(ordv[j])
            n_weighted = int(wmask.sum())
            if n_weighted >= min_shared:
                weighted = _kappa(ordv[i, wmask], ordv[j, wmask], scale, "linear")
        out.append(
            {
                "a": names[i],
                "b": names[j],
                "kappa": _kappa(arr[i, mask], arr[j, mask]),
                "weighted_kappa": weighted,
                "n": int(mask.sum()),
                "n_weighted": n_weighted,
            }
        )
    return out


def kappa_matrix(
    pairs: Iterable[Mapping], raters: Iterable[str] | None = None, key: str = "kappa"
) -> tuple[list[str], np.ndarray]:
    """Arrange pairwise kappas as a symmetric matrix for a heatmap.

    Parameters
    ----------
    pairs : iterable of mapping
        Output of :func:`cohen_kappa_pairs`.
    raters : iterable of str, optional
        Row order; defaults to the sorted names found in ``pairs``.
    key : str
        Which value to place, ``"kappa"`` or ``"weighted_kappa"``.

    Returns
    -------
    tuple
        ``(raters, matrix)``: 1 on the diagonal, ``NaN`` for pairs not listed.
    """
    pairs = list(pairs)
    names = (
        sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
        if raters is None
        else list(raters)
    )
    index = {name: k for k, name in enumerate(names)}
    matrix = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for p in pairs:
        if p["a"] in index and p["b"] in index:
            value = math.nan if p[key] is None else p[key]
            matrix[index[p["a"]], index[p["b"]]] = matrix[index[p["b"]], index[p["a"]]] = value
    return names, matrix


# --------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """Return the Levenshtein distance between two strings, on characters.

    Unit-cost insertions, deletions and substitutions, by the Wagner-Fischer
    dynamic programme after stripping the common prefix and suffix. Each row is
    one numpy step: the insertion chain ``row[j] = min(cand[j], row[j-1] + 1)``
    equals ``j + cummin(cand[k] - k)``. Time O(len(a) len(b)), memory
    O(max(len)); a few KB per side takes milliseconds.
    """
    if a == b:
        return 0
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    if len(a) > len(b):
        a, b = b, a  # loop over the shorter string, vectorize over the longer
    if not a:
        return len(b)
    row_chars = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    cols = np.arange(len(b) + 1)
    row = cols.copy()
    cand = np.empty(len(b) + 1, dtype=np.int64)
    for i, ch in enumerate(a, start=1):
        cand[0] = i
        np.minimum(row[:-1] + (row_chars != ord(ch)), row[1:] + 1, out=cand[1:])
        row = np.minimum.accumulate(cand - cols) + cols
    return int(row[-1])


# --------------------------------------------------------------------------
# Adapter: store DataFrames -> reliability matrices -> report
# --------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _check_columns(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f'"{name}" must be a pandas DataFrame, got {type(frame).__name__}')
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f'"{name}" lacks columns {missing}')


def _n_responses(responses: pd.DataFrame | None, items: pd.DataFrame | None) -> dict:
    n = {}
    if responses is not None and len(responses):
        n.update(responses.groupby("item_id")["idx"].nunique().astype(int).to_dict())
    if items is not None and len(items) and "n_responses" in items.columns:
        for item_id, k in zip(items["item_id"], items["n_responses"]):
            if not _missing(k):
                n[item_id] = int(k)
    return n


def _prepare(
    judgments: pd.DataFrame,
    responses: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per judgment with the numeric fields every metric needs (vectorized)."""
    _check_columns(judgments, "judgments", ("id", "item_id", "rater", "kind", "outcome", "choice"))
    n = len(judgments)
    ids = judgments["id"].to_numpy()
    outcome = judgments["outcome"].to_numpy(dtype=object)
    bad = ~np.isin(outcome, ("choice", "tie", "both_bad"))
    if bad.any():
        k = int(bad.argmax())
        raise InvalidInput(
            f'judgment {ids[k]}: "outcome" must be choice, tie or both_bad, got {outcome[k]!r}'
        )
    tie = outcome != "choice"
    choice = pd.to_numeric(judgments["choice"], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)
    missing = ~tie & np.isnan(choice)
    if missing.any():
        raise InvalidInput(
            f'judgment {ids[int(missing.argmax())]}: outcome "choice" needs a "choice", got None')
    label = np.where(tie, float(TIE), choice)
    item_ids = judgments["item_id"].to_numpy()
    n_resp = pd.Series(item_ids).map(_n_responses(responses, items)).fillna(2).to_numpy()
    pairwise = n_resp == 2

    def numeric(name: str) -> np.ndarray:
        if name not in judgments.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(judgments[name], errors="coerce").to_numpy(dtype=float,
                                                                       na_value=np.nan)

    strength = numeric("strength")
    signed = np.full(n, np.nan)
    signed[tie & pairwise] = 0.0
    scored = ~tie & pairwise & ~np.isnan(strength)
    signed[scored & (label == 0)] = strength[scored & (label == 0)]
    signed[scored & (label == 1)] = -strength[scored & (label == 1)]

    orders = judgments["display_order"] if "display_order" in judgments.columns else [None] * n
    first = np.array([float(o[0]) if isinstance(o, list | tuple | np.ndarray) and len(o)
                      else np.nan for o in orders], dtype=float)
    decided = ~tie & pairwise
    left = np.full(n, np.nan)
    shown = decided & ~np.isnan(first)
    left[shown] = (label[shown] == first[shown]).astype(float)

    longer = np.full(n, np.nan)
    if responses is not None and len(responses):
        _check_columns(responses, "responses", ("item_id", "idx", "length"))
        by_idx = responses.dropna(subset=["length"]).pivot_table(
            index="item_id", columns="idx", values="length", aggfunc="first")
        len0 = (by_idx[0] if 0 in by_idx.columns else pd.Series(dtype=float)).reindex(item_ids)
        len1 = (by_idx[1] if 1 in by_idx.columns else pd.Series(dtype=float)).reindex(item_ids)
        len0, len1 = len0.to_numpy(dtype=float), len1.to_numpy(dtype=float)
        mine = np.where(label == 0, len0, len1)
        other = np.where(label == 0, len1, len0)
        known = decided & np.isin(label, (0.0, 1.0)) & ~np.isnan(mine) & ~np.isnan(other)
        known &= mine != other
        longer[known] = (mine[known] > other[known]).astype(float)

    metas = judgments["metadata"] if "metadata" in judgments.columns else [None] * n
    swap = np.array([float(m["swap_consistent"]) if isinstance(m, Mapping)
                     and isinstance(m.get("swap_consistent"), bool | np.bool_) else np.nan
                     for m in metas], dtype=float)
    w = pd.DataFrame({
        "id": judgments["id"].to_numpy(),
        "item_id": item_ids,
        "rater": judgments["rater"].astype(str).to_numpy(),
        "kind": judgments["kind"].to_numpy(),
        "label": label,
        "nominal": np.where(outcome == "both_bad", float(BOTH_BAD), label),
        "signed": signed,
        "is_tie": tie.astype(float),
        "left": left,
        "longer": longer,
        "swap_ok": swap,
        "first": first,
    }, index=judgments.index)
    if "time_ms" in judgments.columns:
        w["seconds"] = pd.to_numeric(judgments["time_ms"], errors="coerce") / 1000.0
    else:
        w["seconds"] = math.nan
    if "created_at" in judgments.columns:
        created = pd.to_datetime(judgments["created_at"], utc=True, format="ISO8601")
        w["created"] = created.dt.tz_localize(None)
    else:
        w["created"] = pd.NaT
    w["aspects"] = judgments["aspects"] if "aspects" in judgments.columns else None
    return w


def _latest(w: pd.DataFrame) -> pd.DataFrame:
    """Keep each rater's latest judgment per item."""
    ordered = w.sort_values(["created", "id"], kind="stable")
    return ordered.drop_duplicates(["rater", "item_id"], keep="last")


def _matrix(latest: pd.DataFrame, column: str, raters: list[str], units: list) -> np.ndarray:
    table = latest.pivot(index="rater", columns="item_id", values=column)
    return table.reindex(index=raters, columns=units).to_numpy(dtype=float)


def _rate(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def _binom_p(values: pd.Series) -> float:
    values = values.dropna()
    if not len(values):
        return math.nan
    return float(binomtest(int(values.sum()), len(values), 0.5).pvalue)


def _behaviour(rows: pd.DataFrame) -> dict:
    return {
        "n": int(len(rows)),
        "position_bias": _rate(rows["left"]),
        "position_bias_p": _binom_p(rows["left"]),
        "length_bias": _rate(rows["longer"]),
        "length_bias_p": _binom_p(rows["longer"]),
        "tie_rate": _rate(rows["is_tie"]),
        "median_seconds": float(rows["seconds"].median())
        if rows["seconds"].notna().any()
        else None,
    }


def _gold(latest_rows: pd.DataFrame, gold: dict) -> float:
    hits = [
        float(label == gold[item])
        for item, label in zip(latest_rows["item_id"], latest_rows["label"])
        if item in gold
    ]
    return float(np.mean(hits)) if hits else math.nan


def _consensus(labels: np.ndarray) -> np.ndarray:
    """Per rater, agreement with the strict leave-one-out majority of the others."""
    counts, cats = _category_counts(labels)
    out = np.full(labels.shape[0], np.nan)
    for r in range(labels.shape[0]):
        rated = ~np.isnan(labels[r])
        if not rated.any():
            continue
        own = labels[r, rated][:, None] == cats[None, :]
        others = counts[rated] - own
        strict = others.max(axis=1) * 2 > others.sum(axis=1)
        if strict.any():
            majority = cats[others.argmax(axis=1)]
            out[r] = np.mean(majority[strict] == labels[r, rated][strict])
    return out


def _label_name(code: float) -> str:
    # As the import file and the raters name them: responses count from 1.
    return "tie" if code == TIE else f"Response {int(code) + 1}"


def _swap_inconsistency(rows: pd.DataFrame) -> float:
    flags = rows["swap_ok"].dropna()
    if len(flags):
        return float(1.0 - flags.mean())
    # No flag stored: compare the latest label under each first-shown response.
    decided = []
    for _, group in rows.dropna(subset=["first"]).groupby("item_id"):
        by_order = group.sort_values(["created", "id"]).drop_duplicates("first", keep="last")
        if len(by_order) >= 2:
            decided.append(float(by_order["label"].nunique() > 1))
    return float(np.mean(decided)) if decided else math.nan


def _judge_metrics(
    judge_rows: pd.DataFrame, human_latest: pd.DataFrame, gold: dict, notes: list
) -> dict:
    out = {"rater": str(judge_rows["rater"].iloc[0])}
    out.update(_behaviour(judge_rows))
    mine = _latest(judge_rows).set_index("item_id")["label"]
    humans = human_latest[human_latest["item_id"].isin(mine.index)]
    units = sorted(humans["item_id"].unique().tolist())
    out["n_items"] = len(units)
    out["gold_accuracy"] = _gold(_latest(judge_rows), gold)
    out["swap_inconsistency"] = _swap_inconsistency(judge_rows)
    empty = dict.fromkeys(
        [
            "accuracy_vs_human_majority",
            "accuracy_vs_human_majority_no_ties",
            "agreement_with_ties",
            "agreement_without_ties",
            "kappa",
            "macro_f1",
        ],
        math.nan,
    )
    if not units:
        notes.append(f"judge {out['rater']}: no item shared with a human rater")
        out.update(empty, confusion=None)
        return out
    raters = sorted(humans["rater"].unique().tolist())
    human = _matrix(humans, "label", raters, units)
    majority = strict_majority(human)
    judge = mine.reindex(units).to_numpy(dtype=float)
    not_tie = majority != TIE
    # MT-Bench pairs: every (human judgment, judge judgment) on the same item.
    pair_h = human[~np.isnan(human)]
    pair_j = np.broadcast_to(judge, human.shape)[~np.isnan(human)]
    clean = (pair_h != TIE) & (pair_j != TIE)
    names = sorted(set(majority.tolist()) | set(judge.tolist()), key=lambda c: (c == TIE, c))
    labels = [_label_name(c) for c in names]
    confusion = [[int(np.sum((majority == a) & (judge == b))) for b in names] for a in names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = f1_score(majority, judge, labels=names, average="macro", zero_division=0)
    out.update(
        accuracy_vs_human_majority=float(np.mean(judge == majority)),
        accuracy_vs_human_majority_no_ties=(
            float(np.mean(judge[not_tie] == majority[not_tie])) if not_tie.any() else math.nan
        ),
        n_items_no_ties=int(not_tie.sum()),
        agreement_with_ties=float(np.mean(pair_h == pair_j)),
        agreement_without_ties=(
            float(np.mean(pair_h[clean] == pair_j[clean])) if clean.any() else math.nan
        ),
        n_pairs=int(pair_h.size),
        n_pairs_without_ties=int(clean.sum()),
        kappa=_kappa(majority, judge),
        macro_f1=float(macro),
        confusion={
            "rows": "human_majority",
            "cols": "judge",
            "labels": labels,
            "counts": confusion,
        },
    )
    return out


def _alpha_or_none(data: np.ndarray, level: str, what: str, notes: list) -> float:
    if np.isnan(data).all():
        notes.append(f"{what}: no strength recorded on any choice, alpha not computed")
        return math.nan
    value = krippendorff_alpha(data, level)
    if math.isnan(value):
        notes.append(f"{what}: alpha undefined (fewer than 2 values per item or a single value)")
    return value


def _aspect_matrices(latest: pd.DataFrame, raters: list[str], units: list) -> dict:
    names = sorted({k for a in latest["aspects"] if isinstance(a, Mapping) for k in a}, key=str)
    out = {}
    for name in names:
        scores = [
            pd.to_numeric(a.get(name), errors="coerce") if isinstance(a, Mapping) else math.nan
            for a in latest["aspects"]
        ]
        frame = latest[["rater", "item_id"]].assign(score=np.asarray(scores, dtype=float))
        out[str(name)] = _matrix(frame, "score", raters, units)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if value is None or isinstance(value, str):
        return value
    if _missing(value):
        return None
    return value


def _select(w: pd.DataFrame, kind: str) -> pd.DataFrame:
    if kind not in KINDS:
        raise InvalidInput(f'"kind" must be one of {", ".join(KINDS)}, got {kind!r}')
    return w if kind == "all" else w[w["kind"] == kind]


def agreement_report(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    items: pd.DataFrame,
    kind: str = "human",
    seed: int = 0,
    n_boot: int = 1000,
    min_shared: int = MIN_SHARED,
) -> dict:
    """Compute every agreement and bias figure of a project from the store's frames.

    Agreement metrics (Krippendorff 2011 alpha with a unit bootstrap CI,
    Fleiss 1971 kappa, Cohen 1960 kappa per rater pair, percent agreement) use
    the raters of the selected ``kind``. ``"judges"`` always compares each LLM
    rater with the human raters: accuracy against the human strict majority
    (no strict majority means the gold label is tie), with and without the
    tie items, and the MT-Bench agreement over (human, judge) judgment pairs
    with and without ties (Zheng et al. 2023). Both-bad counts as tie.

    Parameters
    ----------
    judgments, responses, items : pandas.DataFrame
        The store's frames; see the module docstring for the label rules.
    kind : {"human", "llm", "all"}
        Raters whose agreement is measured and who are listed in ``"raters"``.
    seed : int
        Seed of the bootstrap.
    n_boot : int
        Bootstrap replicates for the alpha intervals.
    min_shared : int
        Minimum shared items for a Cohen's kappa pair.

    Returns
    -------
    dict
        JSON-able (plain floats, ``None`` for undefined values): keys
        ``krippendorff_alpha`` (nominal on the label, ordinal and interval on
        the signed strength), ``krippendorff_alpha_ci95``,
        ``krippendorff_alpha_aspects`` (interval), ``fleiss_kappa``,
        ``percent_agreement``, ``cohen_kappa``, ``raters``, ``judges``,
        ``notes`` and counts.

    Raises
    ------
    InvalidInput
        If a frame lacks a column, ``kind`` is unknown or a judgment is malformed.
    """
    notes: list[str] = []
    w = _prepare(judgments, responses, items)
    gold = {}
    if items is not None and len(items) and "gold_choice" in items.columns:
        gold = {
            i: float(int(g))
            for i, g in zip(items["item_id"], items["gold_choice"])
            if not _missing(g)
        }
    sel = _select(w, kind)
    latest = _latest(sel)
    raters = sorted(latest["rater"].unique().tolist())
    units = sorted(latest["item_id"].unique().tolist())
    labels = _matrix(latest, "nominal", raters, units)
    signed = _matrix(latest, "signed", raters, units)
    if not latest.loc[latest["is_tie"] == 0, "signed"].notna().any():
        # Ties alone (signed 0) would make a biased sample of the strength scale.
        signed = np.full_like(signed, np.nan)
    multi = int(((~np.isnan(labels)).sum(axis=0) >= 2).sum()) if len(units) else 0

    report: dict[str, Any] = {
        "kind": kind,
        "n_judgments": int(len(sel)),
        "n_raters": len(raters),
        "n_items": len(units),
        "n_items_multi_rated": multi,
    }
    alpha = {"nominal": math.nan, "ordinal": math.nan, "interval": math.nan}
    ci = dict.fromkeys(alpha, [math.nan, math.nan])
    if multi == 0:
        notes.append(f"no item has judgments from two {kind} raters: agreement not computed")
    else:
        for level, data in (("nominal", labels), ("ordinal", signed), ("interval", signed)):
            what = "label" if level == "nominal" else "signed strength"
            alpha[level] = _alpha_or_none(data, level, f"{level} alpha on {what}", notes)
            if math.isfinite(alpha[level]):
                ci[level] = list(krippendorff_alpha_ci(data, level, n_boot, seed))
    report["krippendorff_alpha"] = alpha
    report["krippendorff_alpha_ci95"] = ci
    report["krippendorff_alpha_aspects"] = {
        name: krippendorff_alpha(data, "interval")
        for name, data in (_aspect_matrices(latest, raters, units) if multi else {}).items()
    }

    fleiss = math.nan
    if multi:
        rated = labels[:, (~np.isnan(labels)).sum(axis=0) >= 2]
        per_item = sorted(set((~np.isnan(rated)).sum(axis=0).tolist()))
        if len(per_item) > 1:
            notes.append(
                f"Fleiss' kappa not computed: raters per item vary ({per_item[0]} to "
                f"{per_item[-1]}); use Krippendorff's alpha, which allows missing judgments"
            )
        else:
            counts, _ = aggregate_raters(rated.T[~np.isnan(rated.T)].reshape(rated.shape[1], -1))
            fleiss = fleiss_kappa_counts(counts)
    report["fleiss_kappa"] = fleiss
    report["percent_agreement"] = percent_agreement(labels) if multi else math.nan
    report["cohen_kappa"] = cohen_kappa_pairs(labels, raters, signed, min_shared=min_shared)
    if multi and not report["cohen_kappa"]:
        notes.append(f"Cohen's kappa: no rater pair shares {min_shared} items")

    consensus = _consensus(labels) if len(raters) else np.array([])
    rater_rows = []
    for r, name in enumerate(raters):
        rows = sel[sel["rater"] == name]
        entry = {"rater": name}
        entry.update(_behaviour(rows))
        entry["agreement_with_consensus"] = consensus[r]
        entry["gold_accuracy"] = _gold(latest[latest["rater"] == name], gold)
        rater_rows.append(entry)
    report["raters"] = rater_rows

    human_latest = _latest(w[w["kind"] == "human"])
    judges = []
    for _, rows in w[w["kind"] == "llm"].groupby("rater", sort=True):
        judges.append(_judge_metrics(rows, human_latest, gold, notes))
    report["judges"] = judges
    report["notes"] = notes
    return _jsonable(report)


def agreement_over_time(
    judgments: pd.DataFrame, freq: str = "W", kind: str = "human"
) -> list[dict]:
    """Compute percent agreement and nominal alpha per calendar bin, to show drift.

    Each judgment falls in the bin of its ``created_at`` (UTC); agreement in a
    bin uses only that bin's judgments, so an item judged in two weeks counts
    in neither unless two raters judged it within one of them.

    Parameters
    ----------
    judgments : pandas.DataFrame
        The store's judgments frame.
    freq : {"W", "D"}
        Weekly (weeks ending Sunday) or daily bins.
    kind : {"human", "llm", "all"}
        Raters to include.

    Returns
    -------
    list of dict
        ``{"period", "n_judgments", "n_items_multi_rated", "percent_agreement",
        "krippendorff_alpha"}`` per non-empty bin, in time order; ``period`` is
        the bin's first day as ``YYYY-MM-DD``. Undefined values are ``None``.
    """
    if freq not in ("W", "D"):
        raise InvalidInput(f'"freq" must be "W" or "D", got {freq!r}')
    _check_columns(judgments, "judgments", ("created_at",))
    w = _select(_prepare(judgments), kind)
    w = w[w["created"].notna()]
    if w.empty:
        return []
    period = w["created"].dt.to_period(freq).dt.start_time
    out = []
    for start, rows in w.groupby(period, sort=True):
        latest = _latest(rows)
        raters = sorted(latest["rater"].unique().tolist())
        units = sorted(latest["item_id"].unique().tolist())
        labels = _matrix(latest, "nominal", raters, units)
        multi = int(((~np.isnan(labels)).sum(axis=0) >= 2).sum())
        out.append(
            {
                "period": start.strftime("%Y-%m-%d"),
                "n_judgments": int(len(rows)),
                "n_items_multi_rated": multi,
                "percent_agreement": percent_agreement(labels) if multi else None,
                "krippendorff_alpha": krippendorff_alpha(labels) if multi else None,
            }
        )
    return _jsonable(out)


def edit_stats(judgments: pd.DataFrame, responses: pd.DataFrame) -> dict:
    """Summarise the raters' edits of responses.

    The distance is the character Levenshtein distance (:func:`levenshtein`)
    between the edited text and the chosen response; for a tie or both-bad
    judgment, whose starting point is unknown, the closest response is used.
    A judgment counts as edited when its ``edited`` text is present and differs
    from that response.

    Parameters
    ----------
    judgments, responses : pandas.DataFrame
        The store's frames (``judgments`` needs ``edited``).

    Returns
    -------
    dict
        ``{"n_judgments", "n_edited", "share_edited", "distances", "normalized",
        "median_distance", "mean_distance", "p90_distance", "per_judgment"}``;
        ``distances`` lists the positive distances, ``normalized`` divides each
        by the longer text's length, and ``per_judgment`` gives ``{"id",
        "rater", "distance", "normalized"}`` for every edited judgment.
    """
    _check_columns(
        judgments, "judgments", ("id", "item_id", "rater", "outcome", "choice", "edited")
    )
    _check_columns(responses, "responses", ("item_id", "idx", "text"))
    texts: dict[Any, dict[int, str]] = {}
    for item, idx, text in zip(responses["item_id"], responses["idx"], responses["text"]):
        texts.setdefault(item, {})[int(idx)] = "" if _missing(text) else str(text)
    per = []
    for jid, item, rater, outcome, choice, edited in zip(
        judgments["id"],
        judgments["item_id"],
        judgments["rater"],
        judgments["outcome"],
        judgments["choice"],
        judgments["edited"],
    ):
        if _missing(edited):
            continue
        edited = str(edited)
        candidates = texts.get(item, {})
        if outcome == "choice" and not _missing(choice) and int(choice) in candidates:
            bases = [candidates[int(choice)]]
        else:
            bases = list(candidates.values()) or [""]
        dist, base = min((levenshtein(edited, b), b) for b in bases)
        if dist > 0:
            per.append(
                {
                    "id": jid,
                    "rater": str(rater),
                    "distance": dist,
                    "normalized": dist / max(len(edited), len(base)),
                }
            )
    dists = np.array([p["distance"] for p in per], dtype=float)
    n = int(len(judgments))
    return _jsonable(
        {
            "n_judgments": n,
            "n_edited": len(per),
            "share_edited": len(per) / n if n else math.nan,
            "distances": [p["distance"] for p in per],
            "normalized": [p["normalized"] for p in per],
            "median_distance": float(np.median(dists)) if dists.size else math.nan,
            "mean_distance": float(dists.mean()) if dists.size else math.nan,
            "p90_distance": float(np.percentile(dists, 90)) if dists.size else math.nan,
            "per_judgment": per,
        }
    )


def project_agreement(db, project: str | int, *, kind: str = "human", seed: int = 0,
                      n_boot: int = 1000, min_shared: int = MIN_SHARED) -> dict:
    """Read a project's frames from the store and return :func:`agreement_report`.

    The report also carries the judges' style bias (:func:`with_style_bias`), fitted
    only when the project has LLM judgments.
    """
    from prefstore import store

    proj = store.get_project(db, project)
    judgments = store.judgments_frame(db, proj["id"])
    report = agreement_report(
        judgments,
        store.responses_frame(db, proj["id"], with_text=False),
        store.items_frame(db, proj["id"]),
        kind=kind, seed=seed, n_boot=n_boot, min_shared=min_shared,
    )
    return {"project": proj["name"], **with_style_bias(report, project_style_bias(
        db, proj["id"], judgments))}


def refresh_agreement(db, project: str | int, *, kinds: tuple[str, ...] = ("human", "all"),
                      seed: int = 0, n_boot: int = 1000) -> dict[str, int]:
    """Compute and store the agreement report per kind; return the report ids.

    Each report carries the judges' style bias (:func:`with_style_bias`), computed once.
    """
    import time

    from prefstore import store

    proj = store.get_project(db, project)
    judgments = store.judgments_frame(db, proj["id"])
    responses = store.responses_frame(db, proj["id"], with_text=False)
    items = store.items_frame(db, proj["id"])
    start = time.perf_counter()
    bias = project_style_bias(db, proj["id"], judgments)  # the same for every kind
    bias_seconds = time.perf_counter() - start
    ids = {}
    for kind in kinds:
        start = time.perf_counter()
        report = agreement_report(judgments, responses, items, kind=kind, seed=seed,
                                  n_boot=n_boot)
        report = with_style_bias(report, bias)
        report["over_time"] = agreement_over_time(judgments, kind=kind if kind != "all"
                                                  else "human")
        ids[kind] = store.save_report(
            db, proj["id"], name="agreement", kind=kind, result={"project": proj["name"],
                                                                 **report},
            n_judgments=len(judgments), seconds=time.perf_counter() - start + bias_seconds)
    return ids


# --------------------------------------------------------------------------
# Outlier raters (the Agreement dashboard)
# --------------------------------------------------------------------------

#: Defaults of :func:`rater_outliers`.
MIN_CONSENSUS = 0.6
MAX_BIAS_P = 0.01
MIN_MEDIAN_SECONDS = 5.0


def rater_outliers(
    raters: Iterable[Mapping],
    *,
    min_consensus: float = MIN_CONSENSUS,
    max_p: float = MAX_BIAS_P,
    min_seconds: float = MIN_MEDIAN_SECONDS,
) -> list[dict]:
    """Flag raters of a report's ``"raters"`` list that look unreliable.

    A rater is flagged for ``low_consensus`` when their agreement with the
    leave-one-out majority is below ``min_consensus``, for ``position_bias``
    when the binomial test of choosing the left response has ``p < max_p``,
    and as ``too_fast`` when their median seconds per judgment is below
    ``min_seconds``. Missing figures never flag.

    Returns
    -------
    list of dict
        Each input row with boolean ``low_consensus``, ``position_bias_flag``
        and ``too_fast``, and ``flags``: the names of the raised flags joined
        by ", " (empty when none).
    """
    out = []
    for row in raters:
        consensus = row.get("agreement_with_consensus")
        p = row.get("position_bias_p")
        seconds = row.get("median_seconds")
        flags = {
            "low_consensus": not _missing(consensus) and consensus < min_consensus,
            "position_bias_flag": not _missing(p) and p < max_p,
            "too_fast": not _missing(seconds) and seconds < min_seconds,
        }
        names = {"low_consensus": "low consensus", "position_bias_flag": "position bias",
                 "too_fast": "too fast"}
        out.append({**row, **flags, "flags": ", ".join(names[k] for k, v in flags.items() if v)})
    return out


# --------------------------------------------------------------------------
# Judge style bias (the Judges dashboard, ``prefstore agreement --json``)
# --------------------------------------------------------------------------

#: Per-judge keys :func:`with_style_bias` adds, from
#: :func:`prefstore.models.judge_style.judge_style_bias`'s entry of that judge.
JUDGE_STYLE_KEYS = {
    "style_coefficients": "style_coefficients",
    "style_ci95": "style_ci95",
    "humans_style_coefficients": "humans_style_coefficients",
    "humans_style_ci95": "humans_style_ci95",
    "z": "style_z",
    "differs": "style_differs",
    "summary": "style_summary",
    "n_items": "style_n_items",
}


def project_style_bias(db, project: str | int, judgments: pd.DataFrame | None = None) -> dict:
    """Return each LLM judge's style coefficients beside the human raters' for a project.

    Runs :func:`prefstore.models.judge_style.judge_style_bias` at the system level
    on the store's frames (the response texts are read only when the project has LLM
    judgments, so a human-only project costs one query). Never raises a
    :class:`PrefstoreError`: a bias that cannot be computed (no human judgment,
    responses without a system, ...) comes back as ``{"error": message}``.

    Returns
    -------
    dict
        ``{}`` without LLM judgments; else ``judge_style_bias``'s result or
        ``{"error": str}``.
    """
    from prefstore import store
    from prefstore.errors import PrefstoreError
    from prefstore.models.judge_style import judge_style_bias

    proj = store.get_project(db, project)
    if judgments is None:
        if not store.has_llm_judgments(db, proj["id"]):
            return {}
        judgments = store.judgments_frame(db, proj["id"], columns="model")
    if not (judgments["kind"] == "llm").any():
        return {}
    try:
        return judge_style_bias(judgments, store.responses_frame(db, proj["id"]))
    except PrefstoreError as exc:
        return {"error": str(exc)}


def with_style_bias(report: dict, bias: dict) -> dict:
    """Return ``report`` with :func:`project_style_bias`'s figures merged in.

    Top level: ``humans_style_coefficients`` and ``humans_style_ci95`` (the human
    raters over all their items), ``style_features`` (definitions) and
    ``style_bias_error`` (None unless the bias could not be computed); all None when
    the project has no LLM judgments. Each entry of ``report["judges"]`` gains the
    keys of :data:`JUDGE_STYLE_KEYS` (None where missing).
    """
    out = dict(report)
    out["humans_style_coefficients"] = bias.get("humans_style_coefficients")
    out["humans_style_ci95"] = bias.get("humans_style_ci95")
    out["style_features"] = bias.get("style_features")
    out["style_bias_error"] = bias.get("error")
    by_judge = {entry["judge"]: entry for entry in bias.get("judges", [])}
    judges = []
    for judge in report.get("judges", []):
        entry = by_judge.get(str(judge["rater"]), {})
        judges.append({**judge, **{ours: entry.get(theirs)
                                   for theirs, ours in JUDGE_STYLE_KEYS.items()}})
    out["judges"] = judges
    return out


def judge_style_rows(judge: Mapping) -> list[dict]:
    """Return one row per style feature of a judge entry of :func:`with_style_bias`.

    Keys: ``feature``, ``judge`` and ``humans`` (coefficients, the humans' refitted on
    the items they share with the judge, on the same scale) with their 95%
    intervals (``*_ci_low``, ``*_ci_high``), ``z`` and ``differs`` ("yes" when
    ``|z| > 1.96``, "no", or "" when not computed).
    """
    coef = judge.get("style_coefficients") or {}
    rows = []
    for name in coef:
        j_ci = (judge.get("style_ci95") or {}).get(name) or (None, None)
        h_ci = (judge.get("humans_style_ci95") or {}).get(name) or (None, None)
        differs = (judge.get("style_differs") or {}).get(name)
        rows.append({
            "feature": name,
            "judge": coef[name], "judge_ci_low": j_ci[0], "judge_ci_high": j_ci[1],
            "humans": (judge.get("humans_style_coefficients") or {}).get(name),
            "humans_ci_low": h_ci[0], "humans_ci_high": h_ci[1],
            "z": (judge.get("style_z") or {}).get(name),
            "differs": "" if differs is None else ("yes" if differs else "no"),
        })
    return rows
