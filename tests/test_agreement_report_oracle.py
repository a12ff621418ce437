"""The vectorized agreement report against the frozen per-pair, per-rater code it replaced.

``tests/agreement_reference.py`` is prefstore/agreement.py as it was before issue 17.
Every number of the report must stay what it was: floats to 1e-12, counts, names and
notes exactly.
"""

import math

import numpy as np
import pandas as pd
import pytest

from prefstore import agreement
from tests import agreement_reference as reference

TOL = 1e-12


def assert_same(got, want, where="report"):
    """Compare two JSON-able values: floats to TOL, everything else exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{k}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float), f"{where}: {got!r} != {want!r}"
        if math.isnan(want):
            assert math.isnan(got), where
        else:
            assert got == pytest.approx(want, abs=TOL, rel=0), f"{where}: {got} != {want}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def random_frames(seed, n_items=60, n_humans=7, n_judges=2, strength=True, aspects=True,
                  repeats=True, slates=True):
    """A messy project: missing judgments, ties, both-bad, repeats, judges, gold, aspects."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-03T09:00:00+00:00")
    raters = [(f"h{k}", "human") for k in range(n_humans)]
    raters += [(f"judge-{k}", "llm") for k in range(n_judges)]
    n_resp = {i: (3 if slates and i % 11 == 0 else 2) for i in range(1, n_items + 1)}
    rows = []
    for item in range(1, n_items + 1):
        for rater, kind in raters:
            if rng.random() < (0.35 if kind == "human" else 0.2):
                continue
            for _ in range(1 + (repeats and rng.random() < 0.1)):
                u = rng.random()
                outcome = "choice" if u < 0.75 else ("tie" if u < 0.9 else "both_bad")
                choice = int(rng.integers(n_resp[item])) if outcome == "choice" else None
                meta = {}
                if kind == "llm" and rng.random() < 0.5:
                    meta = {"swap_consistent": bool(rng.random() < 0.7)}
                seconds = None if rng.random() < 0.1 else int(rng.integers(1, 90)) * 250
                created = start + pd.Timedelta(hours=int(rng.integers(0, 24 * 40)))
                rows.append({
                    "id": len(rows) + 1,
                    "item_id": item,
                    "rater": rater,
                    "kind": kind,
                    "outcome": outcome,
                    "choice": choice,
                    "ranking": None,
                    "strength": (int(rng.integers(1, 4)) if strength and outcome == "choice"
                                 and rng.random() < 0.9 else None),
                    "display_order": list(rng.permutation(n_resp[item]).tolist())
                    if rng.random() < 0.95 else None,
                    "time_ms": seconds,
                    "created_at": None if rng.random() < 0.02 else created.isoformat(),
                    "metadata": meta,
                    "edited": None,
                    "aspects": ({"clarity": int(rng.integers(1, 6)),
                                 "safety": float(rng.integers(0, 3))}
                                if aspects and rng.random() < 0.6 else None),
                })
    judgments = pd.DataFrame(rows)
    responses = pd.DataFrame([
        {"item_id": i, "idx": k, "system": f"s{k}", "length": int(rng.integers(10, 40)),
         "text": "x"} for i, n in n_resp.items() for k in range(n)])
    items = pd.DataFrame([
        {"item_id": i, "external_id": f"e{i}", "category": "c",
         "gold_choice": int(rng.integers(2)) if i % 5 == 0 else None, "n_responses": n}
        for i, n in n_resp.items()])
    return judgments, responses, items


CASES = [
    {"seed": 1},
    {"seed": 2, "strength": False},
    {"seed": 3, "aspects": False, "repeats": False, "slates": False},
    {"seed": 4, "n_judges": 0},
    {"seed": 5, "n_humans": 3, "n_items": 25},
    {"seed": 6, "n_humans": 2, "n_items": 8},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c['seed']}")
def test_report_equals_the_previous_implementation(case):
    frames = random_frames(**case)
    got = agreement.agreement_reports(*frames, kinds=("human", "all", "llm"), n_boot=150,
                                      seed=3, min_shared=5)
    for kind in ("human", "all", "llm"):
        want = reference.agreement_report(*frames, kind=kind, n_boot=150, seed=3, min_shared=5)
        assert_same(got[kind], want, kind)
        assert_same(agreement.agreement_report(*frames, kind=kind, n_boot=150, seed=3,
                                               min_shared=5), want, kind)


def test_a_kind_with_the_same_judgments_reuses_the_report():
    frames = random_frames(4, n_judges=0)
    got = agreement.agreement_reports(*frames, kinds=("human", "all"), n_boot=100)
    assert got["all"]["kind"] == "all"
    assert_same({**got["all"], "kind": "human"}, got["human"])
    assert_same(got["all"], reference.agreement_report(*frames, kind="all", n_boot=100))


def test_report_without_multi_rated_items_keeps_its_notes():
    judgments, responses, items = random_frames(7, n_humans=1, n_judges=0)
    got = agreement.agreement_reports(judgments, responses, items, kinds=("human", "all"))
    for kind in ("human", "all"):
        assert_same(got[kind], reference.agreement_report(judgments, responses, items,
                                                          kind=kind))
        assert got[kind]["notes"][0] == (f"no item has judgments from two {kind} raters: "
                                         "agreement not computed")


@pytest.mark.parametrize("freq", ["W", "D"])
@pytest.mark.parametrize("kind", ["human", "all"])
def test_agreement_over_time_equals_the_previous_implementation(freq, kind):
    judgments = random_frames(8)[0]
    assert_same(agreement.agreement_over_time(judgments, freq=freq, kind=kind),
                reference.agreement_over_time(judgments, freq=freq, kind=kind))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_shared", [0, 5, 20])
def test_kappa_pairs_equal_the_per_pair_loop(seed, min_shared):
    rng = np.random.default_rng(seed)
    n_raters, n_units = 9, 80
    labels = rng.integers(-2, 3, size=(n_raters, n_units)).astype(float)
    labels[rng.random(labels.shape) < 0.4] = np.nan
    ordinal = rng.integers(-3, 4, size=labels.shape).astype(float)
    ordinal[np.isnan(labels) | (rng.random(labels.shape) < 0.2)] = np.nan
    if seed == 3:  # one rater who used one label only, another with nothing at all
        labels[0, ~np.isnan(labels[0])] = 1.0
        labels[1] = np.nan
        ordinal[1] = np.nan
    names = [f"r{k}" for k in range(n_raters)]
    for ords in (None, ordinal, ordinal / 2):
        assert_same(agreement.cohen_kappa_pairs(labels, names, ords, min_shared),
                    reference.cohen_kappa_pairs(labels, names, ords, min_shared))


def test_pandalm_report_equals_the_previous_implementation(shared_data):
    from tests.test_agreement_pandalm import build_frames, load_pandalm

    frames = build_frames(*load_pandalm())
    got = agreement.agreement_reports(*frames, kinds=("human", "all"), n_boot=200)
    for kind in ("human", "all"):
        assert_same(got[kind], reference.agreement_report(*frames, kind=kind, n_boot=200))
