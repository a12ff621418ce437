"""Rater agreement and rater bias: pure functions plus one adapter from the store.

The pure functions take a reliability matrix ``data`` of shape (raters, units)
holding numeric codes, with ``NaN`` where a rater did not judge a unit. The
adapter :func:`agreement_report` turns the store's DataFrames into such
matrices and returns a JSON-able dict for the dashboard.

Pairwise labels are the chosen response index (0, 1, ...) or a tie; a
``both_bad`` outcome is its own category (:data:`BOTH_BAD`) when raters are
compared with each other (alpha, kappa, percent agreement, consensus), and
counts as a tie (code :data:`TIE`) when LLM judges are compared with humans,
as MT-Bench does. The signed
strength of a two-response judgment is ``+strength`` when response 0 was
chosen, ``-strength`` when response 1 was chosen and 0 for a tie or both-bad;
it is ``NaN`` when a choice has no strength (we do not invent one) and for
items with more than two responses.

When a rater judged the same item more than once, the agreement metrics use
the latest judgment (by ``created_at``, then ``id``); the per-rater behaviour
figures (counts, time, position, length, tie rate) use every judgment.

References
----------
Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational
and Psychological Measurement, 20(1), 37-46.

Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
Psychological Bulletin, 76(5), 378-382.

Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability.
Annenberg School for Communication, University of Pennsylvania.

Zheng, L. et al. (2023). Judging LLM-as-a-judge with MT-Bench and Chatbot
Arena. NeurIPS Datasets and Benchmarks (agreement with and without ties).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import fleiss_kappa as _sm_fleiss_kappa

from prefstore.errors import InvalidInput
from prefstore.memory import release_freed_memory

__all__ = [
    "LEVELS",
    "TIE",
    "agreement_over_time",
    "agreement_report",
    "agreement_reports",
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
OUTCOMES = ("choice", "tie", "both_bad")
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


def _unit_coincidence_rows(counts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Return each pairable unit's coincidence matrix, flattened: (pairable units, V * V)."""
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    n_values = counts.shape[1]
    coinc = counts[:, :, None] * counts[:, None, :]
    coinc[:, np.arange(n_values), np.arange(n_values)] -= counts
    coinc /= (m - 1)[:, None, None]
    return coinc.reshape(len(counts), n_values * n_values)


def _coincidence_sum(counts: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """Return the summed coincidence matrix of a count table, ``None`` without a pairable unit.

    ``o = C^T diag(w) C - diag(w^T C)`` with ``C`` the (units, values) counts and
    ``w_u = 1 / (m_u - 1)`` on pairable units, 0 elsewhere: one small matmul.
    """
    pairable = m >= 2
    if not pairable.any():
        return None
    w = np.divide(1.0, m - 1, out=np.zeros(len(m)), where=pairable)
    coinc = counts.T @ (counts * w[:, None])
    coinc[np.diag_indices_from(coinc)] -= w @ counts
    return coinc


def _coincidences(data: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Return the summed coincidence matrix (``None`` without a pairable unit) and the domain."""
    counts, m, values = _value_counts(data)
    return _coincidence_sum(counts, m), values


def _long_value_counts(unit: np.ndarray, value: np.ndarray, n_units: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_value_counts` of long rows (unit index, value; ``NaN`` for missing).

    The same table as the dense (raters, units) matrix gives, without building it:
    one row per unit ``0..n_units-1``, the values sorted.
    """
    keep = ~np.isnan(value)
    values, code = _sorted_codes(value[keep])
    n_values = len(values)
    flat = unit[keep] * n_values + code.reshape(-1)
    counts = np.bincount(flat, minlength=n_units * n_values).reshape(n_units, n_values)
    return counts.astype(float), counts.sum(axis=1), values


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` by hashing, not sorting every value.

    Small integer codes (labels, strengths) are counted instead: a hash table sized
    for a million values was the agreement report's memory peak (issue 17).
    """
    if values.dtype.kind == "f" and len(values):
        low, high = np.min(values), np.max(values)  # NaN in either: not this path
        if high - low < _DENSE_RANGE:
            code = values.astype(np.intp)
            if np.array_equal(code, values):  # whole numbers, exactly
                code -= int(low)
                present = np.flatnonzero(np.bincount(code))
                rank = np.zeros(int(high - low) + 1, dtype=np.intp)
                rank[present] = np.arange(len(present))
                return (present + int(low)).astype(float), rank[code]
    code, uniques = pd.factorize(values, sort=True)
    return np.asarray(uniques), code


def _dense_codes(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique`` of integer codes in ``[0, n)`` with the inverse, by counting."""
    present = np.bincount(codes, minlength=n) > 0
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present), rank[codes]


def _row_patterns(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(table, axis=0, return_inverse=True)`` of a small non-negative integer table.

    Each row becomes one integer key (a mixed-radix number) when it fits in 63 bits.
    """
    table = np.asarray(table)
    ints = table.astype(np.int64)
    if len(ints) and ints.shape[1] and np.array_equal(ints, table) and ints.min() >= 0:
        base = int(ints.max()) + 1
        if base ** ints.shape[1] < 2**62:
            key = ints @ (base ** np.arange(ints.shape[1] - 1, -1, -1, dtype=np.int64))
            first, inverse = np.unique(key, return_index=True, return_inverse=True)[1:]
            return table[first], inverse.reshape(-1)
    unique, inverse = np.unique(table, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


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
    summed over the units' count patterns (:func:`_bootstrap_alpha_cis`).
    Replicates where alpha is undefined are ignored.

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
    counts, m, values = _value_counts(_as_matrix(data))
    if not (m >= 2).any():
        return (math.nan, math.nan)
    [cis] = _bootstrap_alpha_cis([(counts, m, values, (level,))], n_boot, seed, confidence)
    return cis[level]


def _bootstrap_alpha_cis(
    jobs: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]],
    n_boot: int,
    seed: int,
    confidence: float = 0.95,
) -> list[dict[str, tuple[float, float]]]:
    """Bootstrap alpha intervals for several count tables, sharing the unit draws.

    Each job is ``(counts, m, values, levels)`` with at least one pairable unit. A
    replicate draws the pairable units with ``default_rng(seed).integers``, as
    :func:`krippendorff_alpha_ci` does for one table, so jobs with as many pairable
    units share the draws. Units with the same value counts have the same
    coincidence matrix, so a replicate's sum runs over those patterns (a few
    thousand at most for labels and short scales) weighted by how often each was
    drawn, not over every unit (issue 17: 100k units x 1,000 replicates).
    """
    patterns = []
    for counts, m, _, _ in jobs:
        unique, inverse = _row_patterns(counts[m >= 2])
        patterns.append((inverse, _unit_coincidence_rows(unique, unique.sum(axis=1))))
    out: list[dict[str, tuple[float, float]]] = [{} for _ in jobs]
    tail = (1 - confidence) / 2 * 100
    for n_units in sorted({len(inverse) for inverse, _ in patterns}):
        members = [k for k, (inverse, _) in enumerate(patterns) if len(inverse) == n_units]
        groups = [(patterns[k][0], {k: patterns[k][1]}) for k in members]
        if len(members) > 1:
            # Jobs drawn together can share one count per replicate, over their joint
            # patterns, when those are not many more than each job's own.
            joint, code = _row_patterns(np.column_stack([patterns[k][0] for k in members]))
            if len(joint) <= 2 * max(len(patterns[k][1]) for k in members):
                groups = [(code.reshape(-1), {k: patterns[k][1][joint[:, slot]]
                                              for slot, k in enumerate(members)})]
        alphas: dict[tuple[int, str], list[np.ndarray]] = {}
        rng = np.random.default_rng(seed)
        widest = max(len(next(iter(rows.values()))) for _, rows in groups)
        chunk = max(1, _BOOT_CHUNK // widest)
        for start in range(0, int(n_boot), chunk):
            size = min(chunk, int(n_boot) - start)
            weights = [np.empty((size, len(next(iter(rows.values()))))) for _, rows in groups]
            for b in range(size):
                # One replicate at a time keeps its draws in cache; int32 draws are the
                # same numbers as the default int64 ones (the stream does not depend on
                # how the draws are split into calls).
                drawn = rng.integers(0, n_units, size=n_units, dtype=np.int32)
                for g, (inverse, _) in enumerate(groups):
                    weights[g][b] = np.bincount(inverse[drawn], minlength=weights[g].shape[1])
            for g, (_, rows) in enumerate(groups):
                for k, pattern_rows in rows.items():
                    values, levels = jobs[k][2], jobs[k][3]
                    boot = (weights[g] @ pattern_rows).reshape(size, len(values), len(values))
                    for level in levels:
                        alphas.setdefault((k, level), []).append(
                            _alpha_from_coincidence(boot, values, level))
        for (k, level), parts in alphas.items():
            alpha = np.concatenate(parts)
            alpha = alpha[np.isfinite(alpha)]
            if alpha.size == 0:
                out[k][level] = (math.nan, math.nan)
            else:
                low, high = np.percentile(alpha, [tail, 100 - tail])
                out[k][level] = (float(low), float(high))
    return out


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
    rater, unit = np.nonzero(~np.isnan(arr))
    ordinal_long = None
    if ordv is not None:
        o_rater, o_unit = np.nonzero(~np.isnan(ordv))
        ordinal_long = (o_rater, o_unit, ordv[o_rater, o_unit], _ordinal_labels(ordv))
    return _kappa_pairs_long(names, arr.shape[1], rater, unit, arr[rater, unit], ordinal_long,
                             min_shared)


def _pair_contingency(n_raters: int, n_units: int, rater: np.ndarray, unit: np.ndarray,
                      code: np.ndarray, n_codes: int) -> np.ndarray:
    """Return ``T[i, j, a, b]`` for ``i < j``: units where rater i gave a and rater j gave b.

    The ratings are sorted by unit; the ratings ``d`` places apart on the same unit
    are pairs, for ``d = 1 .. (most ratings of a unit) - 1``, and each pass counts
    its pairs with one ``bincount``. The work is the number of (rating, rating)
    pairs on shared units, in memory linear in the ratings (issue 17: no pass over
    the units per rater pair, no (units, raters) matrix). Each rater rates a unit
    at most once, so a pair is two raters; ``T[j, i]`` for ``i < j`` stays zero.
    """
    width = n_raters * n_codes
    table = np.zeros(width * width)
    if len(rater):
        order = np.argsort(unit, kind="stable")
        unit = unit[order]
        small = np.int32 if width < 2**31 else np.int64  # a million codes in half the memory
        slot = (rater[order].astype(np.int64) * n_codes + code[order]).astype(small)
        rater = rater[order]
        del order
        most = int(np.bincount(unit).max())
        for d in range(1, most):
            same = np.flatnonzero(unit[d:] == unit[:-d]).astype(small)
            first, second = slot[same], slot[same + d]
            swap = rater[same] > rater[same + d]
            low = np.where(swap, second, first).astype(np.int64)
            low *= width
            low += np.where(swap, first, second)
            del first, second, swap, same
            table += np.bincount(low, minlength=width * width)
    return table.reshape(n_raters, n_codes, n_raters, n_codes).transpose(0, 2, 1, 3)


def _kappas(conf: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa of a stack of confusion matrices (pairs, K, K), :func:`_kappa`'s formula."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = conf.sum(axis=(1, 2))
        expected = conf.sum(axis=2)[:, :, None] * conf.sum(axis=1)[:, None, :] / n[:, None, None]
        denominator = (weights * expected).sum(axis=(1, 2))
        kappa = 1.0 - (weights * conf).sum(axis=(1, 2)) / denominator
    return np.where((n == 0) | (denominator == 0), np.nan, kappa)


def _kappa_pairs_long(
    names: list[str],
    n_units: int,
    rater: np.ndarray,
    unit: np.ndarray,
    label: np.ndarray,
    ordinal: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
    min_shared: int,
    coded: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict]:
    """:func:`cohen_kappa_pairs` on long rows: (rater index, unit index, label) per rating.

    ``ordinal`` is ``(rater, unit, value, scale)`` of the ordinal ratings, or None;
    ``coded`` is ``_sorted_codes(label)`` when the caller has it already.
    """
    n_raters = len(names)
    cats, code = coded if coded is not None else _sorted_codes(label)
    table = _pair_contingency(n_raters, n_units, rater, unit, code.reshape(-1), len(cats))
    first, second = np.triu_indices(n_raters, 1)
    conf = table[first, second]
    shared = conf.sum(axis=(1, 2))
    keep = shared >= min_shared
    first, second, conf, shared = first[keep], second[keep], conf[keep], shared[keep]
    kappa = _kappas(conf, 1.0 - np.eye(len(cats)))
    weighted = np.full(len(first), np.nan)
    n_weighted = np.zeros(len(first), dtype=int)
    if ordinal is not None:
        o_rater, o_unit, o_value, scale = ordinal
        scale = np.asarray(scale, float)
        inside = np.isin(o_value, scale)
        if not inside.all():
            o_rater, o_unit, o_value = o_rater[inside], o_unit[inside], o_value[inside]
        o_table = _pair_contingency(n_raters, n_units, o_rater, o_unit,
                                    np.searchsorted(scale, o_value), len(scale))
        o_conf = o_table[first, second]
        n_weighted = np.rint(o_conf.sum(axis=(1, 2))).astype(int)
        index = np.arange(len(scale))
        linear = np.abs(index[:, None] - index[None, :]).astype(float)
        enough = n_weighted >= min_shared
        weighted[enough] = _kappas(o_conf[enough], linear)
    return [
        {
            "a": names[i],
            "b": names[j],
            "kappa": float(kappa[k]),
            "weighted_kappa": float(weighted[k]),
            "n": int(shared[k]),
            "n_weighted": int(n_weighted[k]),
        }
        for k, (i, j) in enumerate(zip(first.tolist(), second.tolist()))
    ]


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
        given = items["n_responses"].notna().to_numpy()
        n.update(zip(items["item_id"].to_numpy()[given].tolist(),
                     items["n_responses"].to_numpy()[given].astype(int).tolist()))
    return n


def _category_codes(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``categories`` (-1 for any other); a categorical is recoded."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = np.array([categories.index(c) if c in categories else -1
                           for c in values.cat.categories.tolist()] + [-1])
        return lookup[values.cat.codes.to_numpy()]
    return pd.Categorical(values, categories=categories).codes.astype(np.int64)


def _names(raters: pd.Series) -> pd.Categorical:
    """The rater column as a categorical of ``str`` names (one string per rater, not per row)."""
    cat = raters.astype("category")
    return cat.cat.rename_categories([str(c) for c in cat.cat.categories]).array


def _prepare(
    judgments: pd.DataFrame,
    responses: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    handed_over: bool = False,
) -> pd.DataFrame:
    """One row per judgment with the numeric fields every metric needs (vectorized).

    ``handed_over``: the caller keeps no use of ``judgments``; its columns are
    dropped from it as they are read, so they are freed while the rows are built.
    """
    _check_columns(judgments, "judgments", ("id", "item_id", "rater", "kind", "outcome", "choice"))
    n = len(judgments)
    take = judgments.pop if handed_over else judgments.__getitem__
    if handed_over and "ranking" in judgments.columns:
        del judgments["ranking"]  # no agreement figure reads it
    ids = judgments["id"].to_numpy()
    # Category codes, not a million string comparisons (issue 17).
    outcome = _category_codes(judgments["outcome"], OUTCOMES)
    bad = outcome < 0
    if bad.any():
        k = int(bad.argmax())
        raise InvalidInput(
            f'judgment {ids[k]}: "outcome" must be choice, tie or both_bad, '
            f'got {judgments["outcome"].iloc[k]!r}'
        )
    tie = outcome != 0
    choice = pd.to_numeric(take("choice"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan, copy=True)
    missing = ~tie & np.isnan(choice)
    if missing.any():
        raise InvalidInput(
            f'judgment {ids[int(missing.argmax())]}: outcome "choice" needs a "choice", got None')
    label = choice  # the choice column is this function's own: labelled in place
    label[tie] = float(TIE)
    del choice
    item_ids = judgments["item_id"].to_numpy()
    known = _n_responses(responses, items)
    # Per item whether it has two responses; an item not listed counts as two.
    two = np.array([v == 2 for v in known.values()] + [True], dtype=bool)
    pairwise = two[pd.Index(list(known)).get_indexer(item_ids)]
    del known, two

    def numeric(name: str) -> np.ndarray:
        if name not in judgments.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(take(name), errors="coerce").to_numpy(dtype=float,
                                                                   na_value=np.nan)

    strength = numeric("strength")
    signed = np.full(n, np.nan)
    signed[tie & pairwise] = 0.0
    scored = ~tie & pairwise & ~np.isnan(strength)
    signed[scored & (label == 0)] = strength[scored & (label == 0)]
    signed[scored & (label == 1)] = -strength[scored & (label == 1)]
    del strength, scored

    if "first_shown" in judgments.columns:  # the store's lean frame reads display_order[0]
        first = numeric("first_shown")
    else:
        orders = (judgments["display_order"] if "display_order" in judgments.columns
                  else [None] * n)
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
        by_idx = by_idx.reindex(columns=[0, 1])  # a missing index: its lengths are NaN
        # Per item, response 0's length minus response 1's (NaN when either is unknown):
        # the chosen one is longer when the gap has the chosen side's sign.
        gap = (by_idx[0].to_numpy(dtype=float) - by_idx[1].to_numpy(dtype=float))
        gap = np.append(gap, np.nan)[by_idx.index.get_indexer(item_ids)]
        known = decided & np.isin(label, (0.0, 1.0)) & ~np.isnan(gap) & (gap != 0)
        longer[known] = np.where(label[known] == 0, gap[known] > 0, gap[known] < 0)
        del gap, known

    # Only the judges' swap consistency is read: look at the LLM rows alone.
    swap = None
    llm = np.flatnonzero((judgments["kind"] == "llm").to_numpy())
    if llm.size:
        swap = np.full(n, np.nan)
    if llm.size and "metadata" in judgments.columns:
        metas = judgments["metadata"].to_numpy(dtype=object)[llm]
        swap[llm] = [float(m["swap_consistent"]) if isinstance(m, Mapping)
                     and isinstance(m.get("swap_consistent"), bool | np.bool_) else np.nan
                     for m in metas]
    w = pd.DataFrame({
        "id": judgments["id"].to_numpy(),
        "item_id": item_ids,
        "rater": _names(judgments["rater"]),
        "kind": pd.Categorical(judgments["kind"]),
        "label": label,
        "nominal": np.where(outcome == 2, float(BOTH_BAD), label),
        "signed": signed,
        "is_tie": tie.astype(float),
        "left": left,
        "longer": longer,
    }, index=judgments.index, copy=False)  # no consolidated copy of every column
    if llm.size:  # what only the judges' metrics read
        w["swap_ok"], w["first"] = swap, first
    if "time_ms" in judgments.columns:
        w["seconds"] = pd.to_numeric(take("time_ms"), errors="coerce") / 1000.0
    else:
        w["seconds"] = math.nan
    if "created_at" in judgments.columns:
        created = pd.to_datetime(take("created_at"), utc=True, format="ISO8601")
        w["created"] = created.dt.tz_localize(None)
    else:
        w["created"] = pd.NaT
    # No column of a million Nones: only when some judgment has aspects.
    if "aspects" in judgments.columns and judgments["aspects"].notna().any():
        w["aspects"] = judgments["aspects"]
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
    from sklearn.metrics import f1_score  # only judges need it: ~20 MB the refit can spare

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
        The store's frames; see the module docstring for the label rules. A
        ``first_shown`` column (the first entry of ``display_order``), as the
        store's lean frame has, stands in for ``display_order``.
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
    return agreement_reports(judgments, responses, items, kinds=(kind,), seed=seed,
                             n_boot=n_boot, min_shared=min_shared)[kind]


def agreement_reports(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    items: pd.DataFrame,
    kinds: tuple[str, ...] = ("human", "all"),
    seed: int = 0,
    n_boot: int = 1000,
    min_shared: int = MIN_SHARED,
    over_time: str | None = None,
) -> dict[str, dict]:
    """Return :func:`agreement_report` for several kinds, sharing the work between them.

    The frames are prepared once, the judges compared once, and a kind that
    selects the same judgments as an earlier one (``"all"`` in a project without
    LLM judgments) reuses its figures; the alpha intervals of a report share
    their unit draws (:func:`_bootstrap_alpha_cis`). With ``over_time`` ("W" or
    "D"), each report also holds ``"over_time"``: :func:`agreement_over_time` of
    its kind at that frequency, of the human raters for ``"all"``.
    """
    if over_time not in (None, "W", "D"):
        raise InvalidInput(f'"over_time" must be None, "W" or "D", got {over_time!r}')
    for kind in kinds:
        _check_kind(kind)
    return _reports(_prepare(judgments, responses, items), _gold_of(items), kinds, seed, n_boot,
                    min_shared, over_time)


def _gold_of(items: pd.DataFrame | None) -> dict:
    """The items' gold labels by item id (a response index as a float)."""
    if items is None or not len(items) or "gold_choice" not in items.columns:
        return {}
    given = items["gold_choice"].notna().to_numpy()
    return {i: float(int(g)) for i, g in zip(items["item_id"].to_numpy()[given].tolist(),
                                             items["gold_choice"].to_numpy()[given])}


def _reports(w: pd.DataFrame, gold: dict, kinds: tuple[str, ...], seed: int, n_boot: int,
             min_shared: int, over_time: str | None) -> dict[str, dict]:
    """:func:`agreement_reports` of a prepared frame."""
    codes = _Codes(w, gold)
    judge_notes: list[str] = []
    judges = None
    out: dict[str, dict] = {}
    done: dict[bytes, str] = {}
    for kind in kinds:
        rows = codes.select(kind)
        key = rows.tobytes()
        if key in done and out[done[key]]["n_items_multi_rated"]:
            out[kind] = {**copy.deepcopy(out[done[key]]), "kind": kind}
            continue
        if judges is None:
            judges = _judges(w, gold, judge_notes)
        report = _report_for(w, codes, rows, kind, seed, n_boot, min_shared)
        report["judges"] = copy.deepcopy(judges)
        report["notes"] += judge_notes
        out[kind] = _jsonable(report)
        done.setdefault(key, kind)
    if over_time is not None:
        bins: dict[str, list[dict]] = {}
        for kind in kinds:
            binned = "human" if kind == "all" else kind
            if binned not in bins:
                bins[binned] = _over_time(w, codes, over_time, binned)
            out[kind]["over_time"] = copy.deepcopy(bins[binned])
    return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f'"kind" must be one of {", ".join(KINDS)}, got {kind!r}')


class _Codes:
    """Integer codes of a prepared frame's raters and items, and the sort key of "latest"."""

    def __init__(self, w: pd.DataFrame, gold: dict):
        names = w["rater"].cat.categories.to_numpy(dtype=object)
        order = np.argsort(names, kind="stable")
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        self.rater_names = names[order]
        self.rater = rank.astype(np.int32)[w["rater"].cat.codes.to_numpy()]
        item, self.item_ids = pd.factorize(w["item_id"].to_numpy(), sort=True)
        self.item = item.astype(np.int32)  # half the memory of a million int64 codes
        stamps = w["created"].to_numpy(dtype="datetime64[ns]")
        created = stamps.view("i8")
        missing = np.isnat(stamps)
        if missing.any():
            # pandas sorts a missing time last, so such a judgment counts as the latest.
            created = np.where(missing, np.iinfo(np.int64).max, created)
        self.created = created
        self.ids = w["id"].to_numpy()
        self.kind = w["kind"]
        # Gold labels per item; per judgment when asked (most projects have no gold).
        self.item_gold = pd.Series(self.item_ids).map(gold).to_numpy(dtype=float)

    def gold(self, rows: np.ndarray) -> np.ndarray:
        """Each row's gold label, NaN where its item has none."""
        return self.item_gold[self.item[rows]]

    def select(self, kind: str) -> np.ndarray:
        """Row positions of the kind's judgments."""
        if kind == "all":
            return np.arange(len(self.rater))
        return np.flatnonzero((self.kind == kind).to_numpy())

    def latest(self, rows: np.ndarray) -> np.ndarray:
        """Row positions (among ``rows``) of each rater's latest judgment per item."""
        return _latest_positions(rows, self.rater[rows], self.item[rows], self.created[rows],
                                 self.ids[rows])


def _latest_positions(rows, rater, item, created, ids) -> np.ndarray:
    """The rows that are last of their (rater, item) group by (created, id)."""
    if len(rows) == 0:
        return rows
    order = None
    if not (np.all(created[1:] >= created[:-1]) and np.all(
            (created[1:] > created[:-1]) | (ids[1:] > ids[:-1]))):
        order = np.lexsort((ids, created))  # rows are usually stored in time order already
        rater, item = rater[order], item[order]
    key = rater.astype(np.int64) * (int(item.max()) + 1) + item
    last = np.flatnonzero(~pd.Series(key).duplicated(keep="last").to_numpy())
    return np.sort(rows[last if order is None else order[last]])


def _report_for(w: pd.DataFrame, codes: _Codes, rows: np.ndarray, kind: str, seed: int,
                n_boot: int, min_shared: int) -> dict:
    """The agreement figures of one selection of judgments, on long rows (no dense matrix)."""
    notes: list[str] = []
    latest = codes.latest(rows)
    rater_codes, rater = _dense_codes(codes.rater[latest], len(codes.rater_names))
    unit_codes, unit = _dense_codes(codes.item[latest], len(codes.item_ids))
    rater, unit = rater.astype(np.int32), unit.astype(np.int32)
    names = [str(n) for n in codes.rater_names[rater_codes]]
    n_raters, n_units = len(names), len(unit_codes)
    nominal = w["nominal"].to_numpy()[latest]
    signed = w["signed"].to_numpy()[latest]
    if not np.any((w["is_tie"].to_numpy()[latest] == 0) & ~np.isnan(signed)):
        # Ties alone (signed 0) would make a biased sample of the strength scale.
        signed = np.full_like(signed, np.nan)
    per_unit = np.bincount(unit, minlength=n_units)
    multi = int((per_unit >= 2).sum())
    report: dict[str, Any] = {
        "kind": kind,
        "n_judgments": int(len(rows)),
        "n_raters": n_raters,
        "n_items": n_units,
        "n_items_multi_rated": multi,
    }
    alpha = {"nominal": math.nan, "ordinal": math.nan, "interval": math.nan}
    ci = dict.fromkeys(alpha, [math.nan, math.nan])
    if multi == 0:
        notes.append(f"no item has judgments from two {kind} raters: agreement not computed")
    else:
        jobs = []
        for levels, data, what in ((("nominal",), nominal, "label"),
                                   (("ordinal", "interval"), signed, "signed strength")):
            if np.isnan(data).all():
                for level in levels:
                    notes.append(f"{level} alpha on {what}: no strength recorded on any choice, "
                                 "alpha not computed")
                continue
            counts, m, values = _long_value_counts(unit, data, n_units)
            coinc = _coincidence_sum(counts, m)
            finite = []
            for level in levels:
                value = (math.nan if coinc is None
                         else float(_alpha_from_coincidence(coinc, values, level)))
                alpha[level] = value
                if math.isnan(value):
                    notes.append(f"{level} alpha on {what}: alpha undefined (fewer than 2 values "
                                 "per item or a single value)")
                elif math.isfinite(value):
                    finite.append(level)
            if finite:
                jobs.append((counts, m, values, tuple(finite)))
        for cis in _bootstrap_alpha_cis(jobs, n_boot, seed):
            for level, pair in cis.items():
                ci[level] = list(pair)
    report["krippendorff_alpha"] = alpha
    report["krippendorff_alpha_ci95"] = ci
    report["krippendorff_alpha_aspects"] = (
        _aspect_alphas(w["aspects"].to_numpy(dtype=object)[latest], unit, n_units)
        if multi and "aspects" in w.columns else {})

    fleiss = math.nan
    cats, label_code = _sorted_codes(nominal)
    if len(cats) <= np.iinfo(np.int8).max:
        label_code = label_code.astype(np.int8)  # a few label codes: one byte per rating
    counts = np.bincount(unit * len(cats) + label_code,
                         minlength=n_units * len(cats)).reshape(n_units, len(cats))
    if multi:
        rated = per_unit >= 2
        per_item = sorted(set(per_unit[rated].tolist()))
        if len(per_item) > 1:
            notes.append(
                f"Fleiss' kappa not computed: raters per item vary ({per_item[0]} to "
                f"{per_item[-1]}); use Krippendorff's alpha, which allows missing judgments"
            )
        else:
            table = counts[rated]
            fleiss = fleiss_kappa_counts(table[:, table.sum(axis=0) > 0])
    report["fleiss_kappa"] = fleiss
    percent = math.nan
    if multi:
        keep = per_unit >= 2
        pairs = (counts[keep] * (counts[keep] - 1)).sum(axis=1)
        percent = float(np.mean(pairs / (per_unit[keep] * (per_unit[keep] - 1))))
    report["percent_agreement"] = percent
    has_signed = ~np.isnan(signed)
    scale = _ordinal_labels(signed)
    ordinal = ((rater, unit, signed, scale) if has_signed.all()  # no copy of every rating
               else (rater[has_signed], unit[has_signed], signed[has_signed], scale))
    report["cohen_kappa"] = _kappa_pairs_long(names, n_units, rater, unit, nominal, ordinal,
                                              min_shared, coded=(cats, label_code))
    del ordinal
    if multi and not report["cohen_kappa"]:
        notes.append(f"Cohen's kappa: no rater pair shares {min_shared} items")

    consensus = _consensus_long(rater, unit, label_code, counts, cats, n_raters)
    behaviour = _behaviour_by_rater(w, codes.rater[rows], rater_codes, rows)
    gold = codes.gold(latest)
    graded = ~np.isnan(gold)
    hits = np.bincount(rater[graded], weights=(w["label"].to_numpy()[latest][graded]
                                               == gold[graded]).astype(float),
                       minlength=n_raters)
    graded_n = np.bincount(rater[graded], minlength=n_raters)
    report["raters"] = [
        {"rater": name, **behaviour[r], "agreement_with_consensus": consensus[r],
         "gold_accuracy": float(hits[r] / graded_n[r]) if graded_n[r] else math.nan}
        for r, name in enumerate(names)
    ]
    report["judges"] = []
    report["notes"] = notes
    return report


def _consensus_long(rater: np.ndarray, unit: np.ndarray, code: np.ndarray, counts: np.ndarray,
                    cats: np.ndarray, n_raters: int) -> np.ndarray:
    """Per rater, agreement with the strict leave-one-out majority of the others (long rows)."""
    if len(unit) == 0:
        return np.full(n_raters, np.nan)
    # A rater's row of the others' counts: a gather is a copy already. Counts are at most
    # the ratings of one unit, so int32 holds them, in half the memory.
    others = counts.astype(np.int32)[unit]
    others[np.arange(len(unit)), code] -= 1
    strict = others.max(axis=1) * 2 > others.sum(axis=1)
    agree = (others.argmax(axis=1) == code) & strict
    n_strict = np.bincount(rater[strict], minlength=n_raters)
    n_agree = np.bincount(rater[agree], minlength=n_raters)
    out = np.full(n_raters, np.nan)
    has = n_strict > 0
    out[has] = n_agree[has] / n_strict[has]
    return out


def _binom_cached(cache: dict, k: int, n: int) -> float:
    if (k, n) not in cache:
        cache[(k, n)] = float(binomtest(k, n, 0.5).pvalue)
    return cache[(k, n)]


def _behaviour_by_rater(w: pd.DataFrame, rater_of_row: np.ndarray, rater_codes: np.ndarray,
                        rows: np.ndarray) -> list[dict]:
    """:func:`_behaviour` of every rater at once, from group sums over the selected rows."""
    index = np.full(int(rater_codes.max()) + 1 if len(rater_codes) else 0, -1)
    index[rater_codes] = np.arange(len(rater_codes))
    group = index[rater_of_row]
    n_raters = len(rater_codes)
    size = np.bincount(group, minlength=n_raters)

    def rates(column: str) -> tuple[np.ndarray, np.ndarray]:
        values = w[column].to_numpy()[rows]
        known = ~np.isnan(values)
        return (np.bincount(group[known], weights=values[known], minlength=n_raters),
                np.bincount(group[known], minlength=n_raters))

    left, left_n = rates("left")
    longer, longer_n = rates("longer")
    ties, ties_n = rates("is_tie")
    seconds = w["seconds"].to_numpy(dtype=float)[rows]
    timed = ~np.isnan(seconds)
    order = np.lexsort((seconds[timed], group[timed]))
    sorted_seconds = seconds[timed][order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(group[timed], minlength=n_raters))])
    pvalues: dict = {}
    out = []
    for r in range(n_raters):
        mine = sorted_seconds[bounds[r]:bounds[r + 1]]
        out.append({
            "n": int(size[r]),
            "position_bias": left[r] / left_n[r] if left_n[r] else math.nan,
            "position_bias_p": (_binom_cached(pvalues, int(left[r]), int(left_n[r]))
                                if left_n[r] else math.nan),
            "length_bias": longer[r] / longer_n[r] if longer_n[r] else math.nan,
            "length_bias_p": (_binom_cached(pvalues, int(longer[r]), int(longer_n[r]))
                              if longer_n[r] else math.nan),
            "tie_rate": ties[r] / ties_n[r] if ties_n[r] else math.nan,
            "median_seconds": float(np.median(mine)) if len(mine) else None,
        })
    return out


def _aspect_alphas(aspects: np.ndarray, unit: np.ndarray, n_units: int) -> dict:
    """Interval alpha of each aspect score over the latest judgments (long rows)."""
    present = np.flatnonzero(pd.notna(aspects))  # most judgments have no aspects
    scored = present[[isinstance(a, Mapping) for a in aspects[present]]]
    names = sorted({k for a in aspects[scored] for k in a}, key=str)
    out = {}
    for name in names:
        scores = np.full(len(aspects), np.nan)
        scores[scored] = np.asarray(
            [pd.to_numeric(a.get(name), errors="coerce") for a in aspects[scored]], dtype=float)
        counts, m, values = _long_value_counts(unit, scores, n_units)
        coinc = _coincidence_sum(counts, m)
        out[str(name)] = (math.nan if coinc is None
                          else float(_alpha_from_coincidence(coinc, values, "interval")))
    return out


def _judges(w: pd.DataFrame, gold: dict, notes: list) -> list[dict]:
    """Each LLM judge compared with the human raters (:func:`_judge_metrics`)."""
    llm = w["kind"] == "llm"
    if not llm.any():
        return []
    w = w.assign(rater=w["rater"].astype(object))
    human_latest = _latest(w[w["kind"] == "human"])
    return [_judge_metrics(rows, human_latest, gold, notes)
            for _, rows in w[llm].groupby("rater", sort=True)]


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
    _check_kind(kind)
    w = _prepare(judgments)
    return _over_time(w, _Codes(w, {}), freq, kind)


def _over_time(w: pd.DataFrame, codes: _Codes, freq: str, kind: str) -> list[dict]:
    rows = codes.select(kind)
    rows = rows[~np.isnat(w["created"].to_numpy(dtype="datetime64[ns]")[rows])]
    if len(rows) == 0:
        return []
    days = w["created"].to_numpy(dtype="datetime64[ns]")[rows].astype("datetime64[D]")
    if freq == "W":  # weeks end on Sunday: a bin starts on Monday (1970-01-01 was a Thursday)
        days -= ((days.view("i8") + 3) % 7).astype("timedelta64[D]")
    periods, period = np.unique(days, return_inverse=True)
    del days
    period = period.reshape(-1)
    order = np.argsort(period, kind="stable")  # within a bin, rows stay in ascending order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(period, minlength=len(periods)))])
    del period
    nominal = w["nominal"].to_numpy()
    out = []
    for k, start in enumerate(periods):
        in_bin = rows if len(periods) == 1 else rows[order[bounds[k]:bounds[k + 1]]]
        latest = codes.latest(in_bin)
        unit = _dense_codes(codes.item[latest], len(codes.item_ids))[1]
        n_units = int(unit.max()) + 1
        counts, m, values = _long_value_counts(unit, nominal[latest], n_units)
        multi = int((m >= 2).sum())
        percent = alpha = None
        if multi:
            keep = m >= 2
            table = counts[keep].astype(np.int64)
            percent = float(np.mean((table * (table - 1)).sum(axis=1)
                                    / (m[keep] * (m[keep] - 1))))
            alpha = float(_alpha_from_coincidence(_coincidence_sum(counts, m), values,
                                                  "nominal"))
        out.append(
            {
                "period": str(start),
                "n_judgments": int(len(in_bin)),
                "n_items_multi_rated": multi,
                "percent_agreement": percent,
                "krippendorff_alpha": alpha,
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
                      seed: int = 0, n_boot: int = 1000,
                      frames: tuple | list | None = None) -> dict[str, int]:
    """Compute and store the agreement report per kind; return the report ids.

    Each report carries the judges' style bias (:func:`with_style_bias`), computed
    once, and ``over_time`` (:func:`agreement_over_time` of its kind; of the human
    raters for ``"all"``). The kinds share their work (:func:`agreement_reports`).

    Parameters
    ----------
    frames : (judgments, responses, items), optional
        The project's frames, when the caller has read them for other reports too
        (the worker's refit); judgments need the columns of
        ``store.judgments_frame(columns="report")``. Read here when omitted. A
        list is handed over: its judgments frame is taken out of it, so that the
        frame is freed once the report has its own rows.
    """
    import time

    from prefstore import store

    proj = store.get_project(db, project)
    start = time.perf_counter()
    handed_over = frames is None or isinstance(frames, list)
    if frames is None:
        frames = [store.judgments_frame(db, proj["id"], columns="report"),
                  store.responses_frame(db, proj["id"], with_text=False),
                  store.items_frame(db, proj["id"])]
    elif isinstance(frames, list):
        frames = [frames.pop(0), *frames]  # handed over: no copy stays with the caller
    judgments, responses, items = frames
    del frames
    n_judgments = len(judgments)
    bias = project_style_bias(db, proj["id"], judgments)  # the same for every kind
    for kind in kinds:
        _check_kind(kind)
    # A frame handed over gives up its columns as the report's own rows are made.
    prepared = _prepare(judgments, responses, items, handed_over=handed_over)
    del judgments  # the report works on its own rows from here
    release_freed_memory()
    reports = _reports(prepared, _gold_of(items), kinds, seed, n_boot, MIN_SHARED, "W")
    seconds = time.perf_counter() - start
    ids = {}
    for kind, report in reports.items():
        over_time = report.pop("over_time")  # last, as the stored reports always had it
        ids[kind] = store.save_report(
            db, proj["id"], name="agreement", kind=kind,
            result={"project": proj["name"], **with_style_bias(report, bias),
                    "over_time": over_time},
            n_judgments=n_judgments, seconds=seconds)
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
