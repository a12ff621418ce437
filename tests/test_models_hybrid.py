"""Hybrid (PPI++) leaderboards: exact human-only limit, the estimator, intervals, PandaLM."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from prefstore import store
from prefstore.errors import InvalidInput
from prefstore.models import PairwiseData, bt_pairwise
from prefstore.models.adapter import hybrid_items_from_frames
from prefstore.models.hybrid import (
    HybridItems,
    evaluate_hybrid,
    fit_hybrid,
    hybrid_pairwise,
)
from tests import pandalm

EXACT = 1e-10  # lambda = 0 against plain Bradley-Terry
ATOL = 1e-6  # against a direct minimisation of the PPI++ objective


def synthetic_items(seed=0, n_items=1200, k=5, judge_noise=0.6, n_raters=3, human_share=1.0):
    """Items with several human labels each and a judge that agrees with them mostly."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(-0.8, 0.8, k)
    first = rng.integers(0, k, n_items)
    second = (first + rng.integers(1, k, n_items)) % k
    p = expit(theta[first] - theta[second])
    # item difficulty shared by humans and judge: the judge is informative per item
    latent = p + rng.normal(0, 0.15, n_items)
    labels = (rng.random((n_items, n_raters)) < np.clip(latent, 0, 1)[:, None]).astype(float)
    tie = rng.random((n_items, n_raters)) < 0.1
    labels[tie] = 0.5
    human = labels.mean(axis=1)
    judge = (
        rng.random(n_items) < np.clip(latent + rng.normal(0, judge_noise * 0.2, n_items), 0, 1)
    ).astype(float)
    judge[rng.random(n_items) < 0.03] = np.nan  # unparseable judge output
    human[rng.random(n_items) > human_share] = np.nan
    return HybridItems(first, second, human, judge, k), labels


def test_lambda_zero_is_bradley_terry_on_the_human_judgments():
    items, labels = synthetic_items(human_share=0.3)
    lab = ~np.isnan(items.human)
    # every human judgment as a row, each item's labels sharing weight 1
    n_r = labels.shape[1]
    f, s = np.repeat(items.first[lab], n_r), np.repeat(items.second[lab], n_r)
    y = labels[lab].ravel()
    data = PairwiseData(
        np.where(y == 0.0, s, f),
        np.where(y == 0.0, f, s),
        items.n_systems,
        ties=y == 0.5,
        weights=np.full(y.shape[0], 1.0 / n_r),
    )
    for alpha in (0.0, 1e-3, 0.5):
        fit = hybrid_pairwise(items, lam=0.0, alpha=alpha)
        np.testing.assert_allclose(fit.scores, bt_pairwise(data, alpha=alpha), atol=EXACT)
        assert fit.lam == 0.0


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_estimate_minimises_the_ppi_objective(lam):
    items, _ = synthetic_items(seed=1, human_share=0.25)
    alpha = 1e-3
    fit = hybrid_pairwise(items, lam=lam, alpha=alpha)
    lab = ~np.isnan(items.human)
    has_j = ~np.isnan(items.judge)
    n, big_n = lab.sum(), len(items)

    def loss(theta, rows, y):
        d = theta[items.first[rows]] - theta[items.second[rows]]
        return np.sum(np.logaddexp(0, d) - y[rows] * d)

    def objective(theta):  # PPI++ in its published mean form, times n
        human = loss(theta, lab, items.human)
        judge_all = loss(theta, has_j, items.judge) / big_n
        judge_lab = loss(theta, lab & has_j, items.judge) / n
        return human / n + lam * (judge_all - judge_lab) + alpha / n * theta @ theta

    res = minimize(objective, np.zeros(items.n_systems), method="BFGS", options={"gtol": 1e-12})
    np.testing.assert_allclose(fit.scores, res.x - res.x.mean(), atol=ATOL)


def test_auto_lambda_minimises_the_variance_and_ignores_a_useless_judge():
    items, _ = synthetic_items(seed=2, human_share=0.25)
    auto = hybrid_pairwise(items)
    width = lambda fit: np.sum((fit.ci95[:, 1] - fit.ci95[:, 0]) ** 2)  # noqa: E731
    grid = [width(hybrid_pairwise(items, lam=x)) for x in np.linspace(0, 1, 11)]
    assert 0 < auto.lam < 1
    assert width(auto) <= min(grid) * 1.01
    noise = np.random.default_rng(3).random(len(items)).round()
    useless = HybridItems(items.first, items.second, items.human, noise, items.n_systems)
    assert hybrid_pairwise(useless).lam < 0.15


def test_sandwich_matches_the_spread_over_draws():
    # A large population of items; the spread of the estimate over random labelled
    # subsets is what the PPI++ sandwich predicts (both for lambda = 0 and auto).
    items, _ = synthetic_items(seed=4, n_items=20_000, k=4)
    rng = np.random.default_rng(5)
    n = 600
    for lam in (0.0, 0.7):
        est, sds = [], []
        for _ in range(150):
            pick = rng.choice(len(items), n, replace=False)
            judged = np.zeros(len(items), bool)
            judged[rng.choice(len(items), 4 * n, replace=False)] = True
            judged[pick] = True  # the judge labels a superset of the human items
            human = np.full(len(items), np.nan)
            human[pick] = items.human[pick]
            sub = HybridItems(
                items.first[judged],
                items.second[judged],
                human[judged],
                items.judge[judged],
                items.n_systems,
            )
            fit = hybrid_pairwise(sub, lam=lam)
            est.append(fit.scores)
            sds.append((fit.ci95[:, 1] - fit.ci95[:, 0]) / (2 * 1.96))
        ratio = np.std(est, axis=0) / np.mean(sds, axis=0)
        assert np.all((ratio > 0.8) & (ratio < 1.2)), (lam, ratio)


def test_evaluate_hybrid_shape_and_speed():
    items, _ = synthetic_items(seed=6)
    out = evaluate_hybrid(items, fractions=(0.1, 0.5), reps=20, seed=1)
    json.dumps(out, allow_nan=False)
    assert out["n_items"] == len(items) and out["n_systems"] == 5 and out["reps"] == 20
    assert [r["fraction"] for r in out["results"]] == [0.1, 0.5]
    for r in out["results"]:
        assert set(r) == {"fraction", "n_human_items", "human_only", "llm_only", "hybrid"}
        assert set(r["human_only"]) == {"coverage", "mean_ci_width", "kendall_tau"}
        assert r["hybrid"]["mean_ci_width"] <= r["human_only"]["mean_ci_width"]
    # same seed, same figures
    assert evaluate_hybrid(items, fractions=(0.1, 0.5), reps=20, seed=1) == out


def test_bad_arguments():
    items, _ = synthetic_items()
    with pytest.raises(InvalidInput, match='"lam"'):
        hybrid_pairwise(items, lam=1.5)
    with pytest.raises(InvalidInput, match='"lam"'):
        hybrid_pairwise(items, lam="best")
    with pytest.raises(InvalidInput, match="2 human-labelled"):
        hybrid_pairwise(HybridItems([0, 1], [1, 2], [np.nan, np.nan], [1, 0], 3))
    with pytest.raises(InvalidInput, match='"fractions"'):
        evaluate_hybrid(items, fractions=(0.0,))
    out = fit_hybrid(items)
    assert {"scores", "ci95", "lambda", "n_human_items", "n_llm_items"} <= set(out)
    json.dumps(out, allow_nan=False)


def test_hybrid_items_from_frames():
    responses = pd.DataFrame(
        [
            (1, 0, "A", 10),
            (1, 1, "B", 11),
            (2, 0, "B", 20),
            (2, 1, "C", 21),
            (3, 0, "A", 30),
            (3, 1, "A", 31),
            (4, 0, "C", 40),
            (4, 1, "A", 41),
            (4, 2, "B", 42),
        ],
        columns=["item_id", "idx", "system", "response_id"],
    )
    nan = float("nan")
    judgments = pd.DataFrame(
        [
            (1, 1, "ann", "human", "choice", 0),
            (2, 1, "bob", "human", "tie", nan),
            (3, 1, "gpt", "llm", "choice", 1),
            (4, 2, "ann", "human", "both_bad", nan),
            (5, 2, "other-llm", "llm", "choice", 0),
            (6, 3, "ann", "human", "choice", 0),
            (7, 4, "gpt", "llm", "choice", 2),
        ],
        columns=["id", "item_id", "rater", "kind", "outcome", "choice"],
    ).assign(ranking=None, strength=nan)
    items = hybrid_items_from_frames(judgments, responses, "gpt")
    assert items.names == ["A", "B", "C"]
    np.testing.assert_array_equal(items.item_ids, [1, 2])  # same system / slate left out
    np.testing.assert_array_equal(items.first, [0, 1])
    np.testing.assert_array_equal(items.second, [1, 2])
    np.testing.assert_allclose(items.human, [0.75, 0.5])
    np.testing.assert_allclose(items.judge, [0.0, nan])
    np.testing.assert_array_equal(items.n_human, [2, 1])
    dropped = hybrid_items_from_frames(judgments, responses, "gpt", both_bad="drop")
    np.testing.assert_allclose(dropped.human, [0.75, nan])
    with pytest.raises(InvalidInput, match="no judgment"):
        hybrid_items_from_frames(judgments, responses, "nobody")


# --- PandaLM: GPT-3.5 as the judge, 25% of the items human-labelled -------------------


@pytest.mark.skipif(
    not pandalm.PANDALM.is_dir(), reason=f"PandaLM data not found at {pandalm.PANDALM}"
)
def test_pandalm_hybrid_covers_and_narrows(pandalm_db_path):
    db = store.connect(pandalm_db_path)
    try:
        project = store.get_project(db, "pandalm")
        judgments = store.judgments_frame(db, project["id"], columns="model")
        responses = store.responses_frame(db, project["id"], with_text=False)
    finally:
        db.close()
    items = hybrid_items_from_frames(judgments, responses, "gpt-3.5-turbo")
    assert len(items) == 999 and items.n_systems == 5
    # the 25 "garbage" answers were not stored: missing judge labels
    assert np.isnan(items.judge).sum() == 25
    fit = hybrid_pairwise(items)
    assert (fit.n_human_items, fit.n_llm_items) == (999, 974)
    out = evaluate_hybrid(items, fractions=(0.25,), reps=30, seed=0)
    row = out["results"][0]
    assert row["hybrid"]["coverage"] >= 0.90
    assert row["hybrid"]["mean_ci_width"] <= row["human_only"]["mean_ci_width"]
    assert 0 <= row["llm_only"]["coverage"] <= 1
