"""Tests for prefstore.agreement: published values, an oracle cross-check, the adapter."""

import ast
import json
from pathlib import Path

import krippendorff  # GPL: test oracle only, never imported from prefstore/
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, to_table

from prefstore import agreement
from prefstore.agreement import (
    BOTH_BAD,
    LEVELS,
    TIE,
    agreement_over_time,
    agreement_report,
    cohen_kappa_pairs,
    edit_stats,
    fleiss_kappa_counts,
    fleiss_kappa_ratings,
    kappa_matrix,
    krippendorff_alpha,
    krippendorff_alpha_ci,
    levenshtein,
    percent_agreement,
    strict_majority,
)
from prefstore.errors import InvalidInput

ATOL = 1e-9
nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders x 12 units
# example with missing values (also quoted in the fast-krippendorff docstring).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Fleiss (1971) psychiatric diagnoses, 30 subjects x 6 raters, categories 1..5, as in
# statsmodels' statsmodels/stats/tests/test_inter_rater.py (R irr::kappam.fleiss 0.4302445).
DIAGNOSES = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ]
)

# Wikipedia's Fleiss' kappa example: 10 subjects, 14 raters, 5 categories -> 0.210.
WIKIPEDIA_FLEISS = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def random_reliability(seed, raters=6, units=40, values=5, missing=0.35):
    rng = np.random.default_rng(seed)
    data = rng.integers(1, values + 1, size=(raters, units)).astype(float)
    data[rng.random(data.shape) < missing] = nan
    return data


# --------------------------------------------------------------------------- alpha


@pytest.mark.parametrize("level", LEVELS)
def test_krippendorff_2011_published_values(level):
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == KRIPPENDORFF_2011_ALPHA[level]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(8))
def test_krippendorff_matches_oracle_on_random_data(level, seed):
    data = random_reliability(seed, values=3 + seed % 5)
    if seed % 2:
        data = data * 0.7 + 0.25  # non-integer values
    expected = krippendorff.alpha(data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "domain",
    [
        [-2, -1, 0, 1],  # both-bad, tie and the two choices
        [1, 3, 7],  # integer codes with gaps
        [0, 1000, 5000],  # a range too wide for the direct count: the searchsorted path
        [-0.5, 0.25, 2.0],  # non-integer values
        [4],  # one value: undefined
    ],
)
def test_krippendorff_matches_oracle_on_value_domains(level, domain):
    # Issue 17: the counting shortcut for small integer codes must agree with the oracle.
    rng = np.random.default_rng(len(domain))
    data = rng.choice(np.asarray(domain, dtype=float), size=(5, 3000))
    data[rng.random(data.shape) < 0.3] = nan
    data[:, :7] = nan  # units with no value
    data[1:, 7:20] = nan  # units with a single value, not pairable
    expected = krippendorff.alpha(data, level_of_measurement=level) if len(domain) > 1 else nan
    before = data.copy()
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=ATOL, nan_ok=True)
    np.testing.assert_array_equal(data, before)  # the input is not written to


def test_krippendorff_no_values_at_all():
    assert np.isnan(krippendorff_alpha(np.full((3, 4), nan)))
    assert np.isnan(krippendorff_alpha(np.empty((2, 0))))
    assert np.isnan(krippendorff_alpha_ci(np.full((3, 4), nan))).all()


def test_krippendorff_perfect_and_undefined():
    assert krippendorff_alpha([[1, 2, 3, nan], [1, 2, 3, 4]], "interval") == 1.0
    assert np.isnan(
        krippendorff_alpha([[1, 1, 1], [1, 1, 1]])
    )  # one value: no expected disagreement
    assert np.isnan(krippendorff_alpha([[1, nan], [nan, 2]]))  # no pairable unit


def test_krippendorff_rejects_bad_input():
    with pytest.raises(InvalidInput, match='"level"'):
        krippendorff_alpha(KRIPPENDORFF_2011, "cardinal")
    with pytest.raises(InvalidInput, match="2-D"):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(InvalidInput, match='"n_boot"'):
        krippendorff_alpha_ci(KRIPPENDORFF_2011, n_boot=0)


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_bootstrap_ci_matches_a_plain_loop(level):
    data = random_reliability(3, raters=4, units=30)
    n_boot, seed = 200, 7
    low, high = krippendorff_alpha_ci(data, level, n_boot=n_boot, seed=seed)
    # Reference: the same unit draws, alpha recomputed by the oracle one replicate at a time.
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    draws = np.random.default_rng(seed).integers(
        0, pairable.shape[1], size=(n_boot, pairable.shape[1])
    )
    ref = [krippendorff.alpha(pairable[:, d], level_of_measurement=level) for d in draws]
    assert (low, high) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])), abs=ATOL)
    assert low < krippendorff_alpha(data, level) < high


def test_bootstrap_ci_is_seeded_and_chunk_independent(monkeypatch):
    data = random_reliability(5)
    first = krippendorff_alpha_ci(data, n_boot=300, seed=1)
    assert krippendorff_alpha_ci(data, n_boot=300, seed=1) == first
    assert krippendorff_alpha_ci(data, n_boot=300, seed=2) != first
    # Holding fewer replicates in memory at once must not change the draws.
    monkeypatch.setattr(agreement, "_BOOT_CHUNK", 7 * data.shape[1])
    assert krippendorff_alpha_ci(data, n_boot=300, seed=1) == pytest.approx(first, abs=ATOL)


# --------------------------------------------------------------------------- kappas


def test_fleiss_kappa_diagnoses_fleiss_1971():
    counts, _ = aggregate_raters(DIAGNOSES)
    assert fleiss_kappa_counts(counts) == pytest.approx(0.4302445, abs=5e-8)
    assert fleiss_kappa_ratings(DIAGNOSES.T.astype(float)) == pytest.approx(0.4302445, abs=5e-8)


def test_fleiss_kappa_wikipedia_example():
    assert round(fleiss_kappa_counts(WIKIPEDIA_FLEISS), 3) == 0.210


def test_fleiss_kappa_needs_constant_raters():
    with pytest.raises(InvalidInput, match=r"same number.*\[2, 3\]"):
        fleiss_kappa_counts([[2, 1], [1, 1]])
    # A unit with a single rating is skipped, not an error.
    data = np.array([[0, 1, 1, nan], [0, 1, 0, nan], [nan, nan, nan, 1]])
    assert fleiss_kappa_ratings(data) == pytest.approx(
        fleiss_kappa_counts([[2, 0], [0, 2], [1, 1]])
    )


def test_cohen_kappa_pairs_against_sklearn_and_statsmodels():
    rng = np.random.default_rng(11)
    truth = rng.integers(-3, 4, size=60).astype(float)
    ordinal = np.vstack([np.clip(truth + rng.integers(-1, 2, size=60), -3, 3) for _ in range(3)])
    ordinal[2, :45] = nan  # rater 2 shares only 15 items with the others
    labels = np.sign(ordinal)
    pairs = cohen_kappa_pairs(labels, ["x", "y", "z"], ordinal=ordinal)
    assert [(p["a"], p["b"], p["n"]) for p in pairs] == [("x", "y", 60)]
    assert pairs[0]["kappa"] == pytest.approx(cohen_kappa_score(labels[0], labels[1]), abs=ATOL)
    table = to_table(np.column_stack([ordinal[0], ordinal[1]]) + 3, bins=np.arange(8) - 0.5)[0]
    assert pairs[0]["weighted_kappa"] == pytest.approx(
        cohens_kappa(table, wt="linear").kappa, abs=ATOL
    )
    assert len(cohen_kappa_pairs(labels, ordinal=ordinal, min_shared=15)) == 3


def test_weighted_kappa_uses_value_distance():
    # Only -3, 0 and 3 occur; the linear weights must still follow the -3..3 scale.
    a = np.array([-3, 0, 3, 3, 0, -3, 0, 3] * 3, dtype=float)
    b = np.array([0, 0, 3, 0, 0, -3, 3, 3] * 3, dtype=float)
    pair = cohen_kappa_pairs(np.vstack([a, b]), ordinal=np.vstack([a, b]))[0]
    expected = cohen_kappa_score(a, b, labels=np.arange(-3, 4), weights="linear")
    assert pair["weighted_kappa"] == pytest.approx(expected, abs=ATOL)


def test_kappa_matrix():
    pairs = [{"a": "x", "b": "z", "kappa": 0.5}, {"a": "x", "b": "y", "kappa": None}]
    names, matrix = kappa_matrix(pairs)
    assert names == ["x", "y", "z"]
    np.testing.assert_array_equal(matrix, [[1, nan, 0.5], [nan, 1, nan], [0.5, nan, 1]])


def test_percent_agreement_and_majority():
    data = np.array([[0, 1, 0, TIE, nan], [0, 1, 1, 0, 1], [1, nan, TIE, nan, nan]], dtype=float)
    # unit 0: 1 of 3 pairs agree; unit 1: 1 of 1; unit 2: 0 of 3; unit 3: 0 of 1; unit 4 skipped
    assert percent_agreement(data) == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)
    np.testing.assert_array_equal(strict_majority(data), [0, 1, TIE, TIE, 1])
    assert np.isnan(percent_agreement([[0, nan], [nan, 1]]))


# --------------------------------------------------------------------------- levenshtein


def naive_levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_levenshtein_against_naive_dp():
    rng = np.random.default_rng(0)
    alphabet = list("abcé漢 ")
    for _ in range(200):
        a = "".join(rng.choice(alphabet, size=rng.integers(0, 15)))
        b = "".join(rng.choice(alphabet, size=rng.integers(0, 15)))
        assert levenshtein(a, b) == naive_levenshtein(a, b), (a, b)
    assert levenshtein("kitten", "sitting") == 3


def test_levenshtein_handles_a_few_kilobytes():
    rng = np.random.default_rng(1)
    a = "".join(rng.choice(list("abcd"), size=3000))
    b = a[:1000] + "XYZ" + a[1500:]
    assert levenshtein(a, b) == 500


# --------------------------------------------------------------------------- adapter

T0 = "2024-01-01T10:00:00+00:00"  # Monday


def day(n):
    return pd.Timestamp(T0) + pd.Timedelta(days=n)


# (rater, kind, item, outcome, choice, strength, display_order, seconds, day, metadata, edited)
ROWS = [
    ("a", "human", 1, "choice", 0, 2, [0, 1], 1, 0, {}, "a" * 95 + "zz"),
    ("a", "human", 2, "choice", 1, 1, [0, 1], 2, 1, {}, None),
    ("a", "human", 3, "tie", None, None, [0, 1], 3, 7, {}, None),
    ("a", "human", 4, "choice", 0, None, [0, 1], 4, 8, {}, None),
    ("b", "human", 1, "choice", 0, 3, [1, 0], 5, 0, {}, None),
    ("b", "human", 2, "choice", 1, 2, [1, 0], 5, 1, {}, "b" * 50),
    ("b", "human", 3, "choice", 0, 1, [1, 0], 5, 7, {}, None),
    ("b", "human", 4, "choice", 1, 2, [1, 0], 5, 8, {}, None),
    ("c", "human", 1, "choice", 1, 1, [0, 1], 9, 0, {}, None),
    ("c", "human", 2, "choice", 1, 1, [0, 1], None, 1, {}, None),
    ("c", "human", 3, "both_bad", None, None, [0, 1], 7, 7, {}, "b" * 48),
    ("gpt", "llm", 1, "choice", 0, 2, [0, 1], None, 0, {"swap_consistent": True}, None),
    ("gpt", "llm", 2, "tie", None, None, [0, 1], None, 1, {}, None),
    ("gpt", "llm", 3, "choice", 1, 2, [0, 1], None, 7, {"swap_consistent": False}, None),
    ("gpt", "llm", 4, "choice", 0, 1, [0, 1], None, 8, {}, None),
]


def make_frames(rows=ROWS, gold=None):
    judgments = pd.DataFrame(
        [
            {
                "id": k + 1,
                "item_id": item,
                "rater": rater,
                "kind": kind,
                "outcome": outcome,
                "choice": choice,
                "ranking": None,
                "strength": strength,
                "display_order": order,
                "time_ms": None if secs is None else secs * 1000,
                "created_at": day(d).isoformat(),
                "metadata": meta,
                "edited": edited,
                "aspects": None,
            }
            for k, (
                rater,
                kind,
                item,
                outcome,
                choice,
                strength,
                order,
                secs,
                d,
                meta,
                edited,
            ) in enumerate(rows)
        ]
    )
    texts = {
        1: ("a" * 100, "b" * 50),
        2: ("a" * 100, "b" * 50),
        3: ("a" * 100, "b" * 50),
        4: ("c" * 60, "d" * 60),
    }
    responses = pd.DataFrame(
        [
            {"item_id": i, "idx": k, "system": f"s{k}", "length": len(t), "text": t}
            for i, pair in texts.items()
            for k, t in enumerate(pair)
        ]
    )
    gold = {1: 0, 2: 1} if gold is None else gold
    items = pd.DataFrame(
        [
            {
                "item_id": i,
                "external_id": f"e{i}",
                "category": "c",
                "gold_choice": gold.get(i),
                "n_responses": 2,
            }
            for i in texts
        ]
    )
    return judgments, responses, items


def by_rater(report, key="raters"):
    return {r["rater"]: r for r in report[key]}


def test_report_is_json_and_matches_hand_values():
    report = agreement_report(*make_frames(), kind="human", n_boot=200, min_shared=3)
    json.dumps(report, allow_nan=False)
    assert (report["n_raters"], report["n_items"], report["n_judgments"]) == (3, 4, 11)
    assert report["percent_agreement"] == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)
    assert report["fleiss_kappa"] is None
    assert any("Fleiss" in note and "2 to 3" in note for note in report["notes"])

    labels = np.array([[0, 1, TIE, 0], [0, 1, 0, 1], [1, 1, BOTH_BAD, nan]], dtype=float)
    signed = np.array([[2, -1, 0, nan], [3, -2, 1, -2], [-1, -1, 0, nan]], dtype=float)
    alpha = report["krippendorff_alpha"]
    assert alpha["nominal"] == pytest.approx(
        krippendorff.alpha(labels, level_of_measurement="nominal"), abs=ATOL
    )
    assert alpha["ordinal"] == pytest.approx(
        krippendorff.alpha(signed, level_of_measurement="ordinal"), abs=ATOL
    )
    assert alpha["interval"] == pytest.approx(
        krippendorff.alpha(signed, level_of_measurement="interval"), abs=ATOL
    )
    lo, hi = report["krippendorff_alpha_ci95"]["nominal"]
    assert [lo, hi] == pytest.approx(list(krippendorff_alpha_ci(labels, n_boot=200, seed=0)))

    ab = report["cohen_kappa"][0]
    assert (ab["a"], ab["b"], ab["n"]) == ("a", "b", 4)
    assert ab["kappa"] == pytest.approx(cohen_kappa_score(labels[0], labels[1]))
    assert ab["n_weighted"] == 3  # a's item 4 has no strength: signed strength is NaN
    expected = cohen_kappa_score([2, -1, 0], [3, -2, 1], labels=np.arange(-3, 4), weights="linear")
    assert ab["weighted_kappa"] == pytest.approx(expected)
    default = agreement_report(*make_frames(), n_boot=10)
    assert default["cohen_kappa"] == [] and any("shares 20 items" in n for n in default["notes"])

    raters = by_rater(report)
    expected = {
        # n, consensus, gold, position, length, tie rate, median seconds
        "a": (4, 0.5, 1.0, 2 / 3, 1 / 2, 1 / 4, 2.5),
        "b": (4, 1 / 2, 1.0, 2 / 4, 2 / 3, 0.0, 5.0),
        "c": (3, 0.5, 0.5, 0.0, 0.0, 1 / 3, 8.0),
    }
    for name, (n, cons, gold, pos, length, tie, secs) in expected.items():
        row = raters[name]
        got = (
            row["n"],
            row["agreement_with_consensus"],
            row["gold_accuracy"],
            row["position_bias"],
            row["length_bias"],
            row["tie_rate"],
            row["median_seconds"],
        )
        assert got == pytest.approx((n, cons, gold, pos, length, tie, secs)), name
    assert raters["a"]["position_bias_p"] == pytest.approx(binomtest(2, 3).pvalue)


def test_report_judges_follow_mt_bench_definitions():
    report = agreement_report(*make_frames(), kind="human", n_boot=50)
    (judge,) = report["judges"]
    # human majority: item 1 -> 0, item 2 -> 1, item 3 -> tie (both_bad is tie), item 4 -> tie
    assert judge["rater"] == "gpt" and judge["n"] == 4 and judge["n_items"] == 4
    assert judge["accuracy_vs_human_majority"] == pytest.approx(1 / 4)
    assert judge["accuracy_vs_human_majority_no_ties"] == pytest.approx(1 / 2)
    assert judge["agreement_with_ties"] == pytest.approx(3 / 11)
    assert judge["agreement_without_ties"] == pytest.approx(3 / 6)
    assert judge["kappa"] == pytest.approx(cohen_kappa_score([0, 1, TIE, TIE], [0, TIE, 1, 0]))
    assert judge["position_bias"] == pytest.approx(2 / 3)
    assert judge["length_bias"] == pytest.approx(1 / 2)
    assert judge["swap_inconsistency"] == pytest.approx(1 / 2)
    assert judge["gold_accuracy"] == pytest.approx(1 / 2)
    assert judge["confusion"] == {
        "rows": "human_majority",
        "cols": "judge",
        "labels": ["Response 1", "Response 2", "tie"],
        "counts": [[1, 0, 0], [0, 0, 1], [1, 1, 0]],
    }


def test_report_kind_selection():
    frames = make_frames()
    llm = agreement_report(*frames, kind="llm", n_boot=10)
    assert llm["krippendorff_alpha"]["nominal"] is None and llm["percent_agreement"] is None
    assert [r["rater"] for r in llm["raters"]] == ["gpt"]
    assert any("two llm raters" in note for note in llm["notes"])
    assert len(llm["judges"]) == 1  # judges always compare with the humans
    every = agreement_report(*frames, kind="all", n_boot=10)
    assert every["n_raters"] == 4 and every["fleiss_kappa"] is None
    with pytest.raises(InvalidInput, match='"kind"'):
        agreement_report(*frames, kind="robots")


def test_report_uses_latest_judgment_and_fleiss_when_balanced():
    rows = [r for r in ROWS if r[2] != 4 and r[1] == "human"]
    # an earlier, superseded judgment by c on item 1 must not count
    rows.insert(0, ("c", "human", 1, "choice", 0, 1, [0, 1], 1, -1, {}, None))
    report = agreement_report(*make_frames(rows), n_boot=10)
    labels = np.array([[0, 1, TIE], [0, 1, 0], [1, 1, BOTH_BAD]], dtype=float)
    assert report["percent_agreement"] == pytest.approx(percent_agreement(labels))
    counts, _ = aggregate_raters(labels.T)
    assert report["fleiss_kappa"] == pytest.approx(fleiss_kappa_counts(counts))
    assert by_rater(report)["c"]["n"] == 4  # behaviour counts every judgment


def test_report_rejects_malformed_judgments():
    judgments, responses, items = make_frames()
    judgments.loc[0, "choice"] = None
    with pytest.raises(InvalidInput, match='judgment 1: outcome "choice" needs'):
        agreement_report(judgments, responses, items)
    with pytest.raises(InvalidInput, match="lacks columns"):
        agreement_report(judgments.drop(columns="outcome"), responses, items)


def test_aspect_alpha():
    judgments, responses, items = make_frames()
    rng = np.random.default_rng(0)
    judgments["aspects"] = [
        {"helpful": int(rng.integers(1, 6)), "note": "x"} for _ in range(len(judgments))
    ]
    report = agreement_report(judgments, responses, items, n_boot=10)
    human = judgments[judgments["kind"] == "human"]
    matrix = human.pivot(index="rater", columns="item_id", values="aspects").map(
        lambda a: a["helpful"] if isinstance(a, dict) else nan
    )
    expected = krippendorff.alpha(matrix.to_numpy(dtype=float), level_of_measurement="interval")
    assert report["krippendorff_alpha_aspects"]["helpful"] == pytest.approx(expected, abs=ATOL)
    assert report["krippendorff_alpha_aspects"]["note"] is None


def test_agreement_over_time_bins():
    judgments, _, _ = make_frames()
    weekly = agreement_over_time(judgments, freq="W")
    assert [w["period"] for w in weekly] == ["2024-01-01", "2024-01-08"]
    assert [w["n_judgments"] for w in weekly] == [6, 5]
    assert weekly[0]["percent_agreement"] == pytest.approx((1 / 3 + 1) / 2)
    assert weekly[1]["percent_agreement"] == pytest.approx(0.0)  # both-bad != tie
    daily = agreement_over_time(judgments, freq="D")
    assert [d["period"] for d in daily] == ["2024-01-01", "2024-01-02", "2024-01-08", "2024-01-09"]
    assert daily[1]["percent_agreement"] == 1.0 and daily[1]["krippendorff_alpha"] is None
    json.dumps(weekly + daily, allow_nan=False)
    with pytest.raises(InvalidInput, match='"freq"'):
        agreement_over_time(judgments, freq="M")


def test_edit_stats():
    judgments, responses, _ = make_frames()
    stats = edit_stats(judgments, responses)
    # a edits the chosen "a"*100 (distance 5); b saves the chosen text unchanged (no edit);
    # c's both-bad edit is measured against the closest response "b"*50 (distance 2).
    assert stats["n_judgments"] == 15 and stats["n_edited"] == 2
    assert stats["share_edited"] == pytest.approx(2 / 15)
    assert stats["distances"] == [5, 2]
    assert stats["normalized"] == pytest.approx([5 / 100, 2 / 50])
    assert stats["median_distance"] == 3.5
    assert [(p["id"], p["rater"]) for p in stats["per_judgment"]] == [(1, "a"), (11, "c")]
    json.dumps(stats, allow_nan=False)


def test_library_imports_neither_streamlit_nor_the_gpl_oracle():
    source = Path(__file__).resolve().parents[1] / "prefstore" / "agreement.py"
    tree = ast.parse(source.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"streamlit", "krippendorff"}


def test_kappa_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(11)
    for trial in range(200):
        n = int(rng.integers(2, 60))
        k = int(rng.integers(1, 5))
        a = rng.integers(-1, k, n).astype(float)
        b = np.where(rng.random(n) < 0.6, a, rng.integers(-1, k, n)).astype(float)
        expected = cohen_kappa_score(a, b) if len(np.unique(np.r_[a, b])) > 1 else np.nan
        got = agreement._kappa(a, b)
        if np.isnan(expected):
            assert np.isnan(got), trial
        else:
            assert got == pytest.approx(expected, abs=ATOL), trial
        scale = np.arange(-3, 4)
        sa, sb = rng.integers(-3, 4, n).astype(float), rng.integers(-3, 4, n).astype(float)
        assert agreement._kappa(sa, sb, scale, "linear") == pytest.approx(
            cohen_kappa_score(sa, sb, labels=scale, weights="linear"), abs=ATOL, nan_ok=True)


@pytest.mark.parametrize("values", [
    [2.0, -1.0, 2.0, 0.0, -2.0],  # labels with tie and both-bad codes
    [3.0, -3.0, 0.0, 1.0, -1.0, 3.0],  # signed strengths
    [5.0],
    [0.5, 1.0, 0.5],  # not whole numbers: hashed
    [1.0, np.nan, 0.0],  # a missing value: hashed, code -1
    [1e300, 0.0],  # too wide a range to count
    [0.0, 63.0, 64.0],  # just past the counted range
    [],
])
def test_sorted_codes_is_pandas_factorize(values):
    """The counted path for small whole numbers gives factorize's values and codes."""
    from prefstore.agreement import _sorted_codes

    values = np.array(values, dtype=float)
    uniques, codes = _sorted_codes(values)
    want_codes, want_uniques = pd.factorize(values, sort=True)
    assert uniques.tolist() == np.asarray(want_uniques).tolist() and uniques.dtype == float
    assert codes.tolist() == want_codes.tolist() and codes.dtype == want_codes.dtype
