"""Mixture of rater types: planted types are recovered, BIC picks K, priors behave."""

import json

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from prefstore.errors import InvalidInput
from prefstore.models import (
    Mixture,
    PairwiseData,
    RankingData,
    get_model,
    mixture_pairwise,
    mixture_rankings,
)
from prefstore.models.mixture import _rows

MIN_ARI = 0.9
MIN_SPEARMAN = 0.9
# Warm-started search against fits from scratch: at the true K both reach the same
# optimum; at other K their local optima may differ by a little log-likelihood,
# far below the 10 ln(2400) / 2 = 38.9 that one more type must gain under BIC here.
ATOL_TRUE_K = 0.01
ATOL_OTHER_K = 2.0


def planted_types(k, n_items=10, n_raters=60, per_rater=40, seed=0, scale=2.0):
    """Types with opposed preferences: ascending, descending, shuffled."""
    rng = np.random.default_rng(seed)
    base = np.linspace(-scale, scale, n_items)
    truth = np.stack([base, -base, rng.permutation(base)])[:k]
    return truth, np.arange(n_raters) % k, rng


def simulate_pairs(k, n_items=10, n_raters=60, per_rater=40, seed=0):
    truth, z, rng = planted_types(k, n_items, n_raters, per_rater, seed)
    m = n_raters * per_rater
    rater = np.repeat(np.arange(n_raters), per_rater)
    i = rng.integers(0, n_items, m)
    j = (i + rng.integers(1, n_items, m)) % n_items
    th = truth[z[rater]]
    rows = np.arange(m)
    win = rng.random(m) < 1.0 / (1.0 + np.exp(-(th[rows, i] - th[rows, j])))
    data = PairwiseData(
        np.where(win, i, j),
        np.where(win, j, i),
        n_items,
        raters=rater,
        rater_names=[f"r{r}" for r in range(n_raters)],
    )
    return data, truth, z


def best_spearman(scores, truth):
    return max(spearmanr(scores, t).statistic for t in truth)


def test_recovers_three_opposed_types():
    data, truth, z = simulate_pairs(3)
    est = mixture_pairwise(data, k=3, seed=0)
    assert adjusted_rand_score(z, est.rater_probs.argmax(axis=1)) >= MIN_ARI
    for scores in est.scores:
        assert best_spearman(scores, truth) >= MIN_SPEARMAN
    # each planted type is matched by a different fitted type
    match = {int(np.argmax([spearmanr(s, t).statistic for t in truth])) for s in est.scores}
    assert match == {0, 1, 2}
    np.testing.assert_allclose(est.weights, 1 / 3, atol=0.05)


def test_bic_picks_one_type_on_homogeneous_data():
    data, _, _ = simulate_pairs(1, seed=1)
    est = mixture_pairwise(data, k=None, k_max=3, seed=0)
    assert est.k == 1


def test_rater_with_few_judgments_gets_no_type_of_its_own():
    data, truth, z = simulate_pairs(2, n_raters=40, seed=2)
    # One extra rater with three judgments against every planted preference.
    odd = PairwiseData(
        np.concatenate([data.winners, [0, 1, 5]]),
        np.concatenate([data.losers, [9, 8, 4]]),
        data.n_items,
        raters=np.concatenate([data.raters, [40, 40, 40]]),
    )
    est = mixture_pairwise(odd, k=None, k_max=3, seed=0)
    assert est.k == 2
    assert np.all(est.weights > 0.3)
    forced = mixture_pairwise(odd, k=3, seed=0)
    owners = forced.rater_probs.argmax(axis=1)
    assert np.sum(owners == owners[40]) > 1


@pytest.mark.parametrize("true_k", [1, 2, 3])
def test_warm_started_search_finds_k_and_matches_fits_from_scratch(true_k):
    data, _, _ = simulate_pairs(true_k)
    est = mixture_pairwise(data, k=None, k_max=4)
    scratch = {k: mixture_pairwise(data, k=k) for k in range(1, 5)}
    assert est.k == true_k
    assert min(scratch, key=lambda k: scratch[k].bic) == true_k
    assert sorted(est.bic_by_k) == [1, 2, 3, 4]
    for k in range(1, 5):
        n_params = k * 9 + (k - 1)
        assert est.bic_by_k[k] == pytest.approx(-2 * est.ll_by_k[k] + n_params * np.log(2400))
        atol = ATOL_TRUE_K if k == true_k else ATOL_OTHER_K
        assert est.ll_by_k[k] >= scratch[k].log_likelihood - atol
    assert est.log_likelihood == pytest.approx(scratch[true_k].log_likelihood, abs=ATOL_TRUE_K)
    assert est.bic == min(est.bic_by_k.values())


def test_search_on_the_benchmark_population():
    """``bench_models.py``'s mixture case (the same draws): per-K log-likelihoods of the
    from-scratch search.

    Reference: 4 restarts from scratch for each K (the search before issue 17).
    The warm-started search reaches the same optima for K <= 3, and at K = 4 (a
    type too many) one no worse.
    """
    data, _, z = simulate_pairs(3, n_items=50, n_raters=1000, per_rater=200, seed=3)
    est = mixture_pairwise(data, k=None, k_max=4)
    reference = {1: -134699.5351, 2: -112652.1060, 3: -99287.9324, 4: -99233.6635}
    assert est.k == 3
    assert adjusted_rand_score(z, est.rater_probs.argmax(axis=1)) == 1.0
    for k in (1, 2, 3):
        assert est.ll_by_k[k] == pytest.approx(reference[k], abs=1e-3)
    assert est.ll_by_k[4] >= reference[4]


def test_rater_gradients_match_finite_differences():
    pairs, _, _ = simulate_pairs(2, n_raters=6, per_rater=30, seed=4)
    truth, z, rng = planted_types(2, n_items=5, n_raters=4)
    ranks = RankingData(
        [np.argsort(-(truth[z[r % 4]][:5] + rng.gumbel(size=5)))[:3] for r in range(40)],
        5,
        raters=np.arange(40) % 4,
    )
    for data in (pairs, ranks):
        rows = _rows(data)
        theta = np.random.default_rng(5).normal(size=data.n_items)
        grad = rows.rater_grad(theta)
        for r in range(data.n_raters):
            numeric = approx_fprime(
                theta, lambda x, r=r, rows=rows: rows.rater_ll(x[None])[r, 0], 1e-7
            )
            np.testing.assert_allclose(grad[r], numeric, atol=1e-5)


def test_plackett_luce_mixture():
    truth, z, rng = planted_types(2, n_items=6, n_raters=30)
    rows, raters = [], []
    for r in range(30):
        for _ in range(15):
            rows.append(np.argsort(-(truth[z[r]] + rng.gumbel(size=6)))[:4])
            raters.append(r)
    data = RankingData(rows, 6, raters=raters)
    est = mixture_rankings(data, k=2, seed=0)
    assert adjusted_rand_score(z, est.rater_probs.argmax(axis=1)) >= MIN_ARI
    for scores in est.scores:
        assert best_spearman(scores, truth) >= MIN_SPEARMAN
    chosen = mixture_rankings(data, k=None, k_max=3)
    assert chosen.k == 2
    assert chosen.log_likelihood == pytest.approx(est.log_likelihood, abs=ATOL_TRUE_K)


def test_fit_result_and_determinism():
    data, _, _ = simulate_pairs(2, n_raters=20, seed=3)
    fit = get_model("mixture").fit(data, k=2, seed=5)
    again = Mixture().fit(data, k=2, seed=5)
    np.testing.assert_array_equal(fit.rater_probs, again.rater_probs)
    assert fit.k == 2 and fit.rater_probs.shape == (20, 2)
    np.testing.assert_allclose(fit.rater_probs.sum(axis=1), 1.0)
    assert fit.types[0]["weight"] >= fit.types[1]["weight"]
    out = json.loads(json.dumps(fit.to_dict()))
    assert out["model"] == "mixture" and out["k"] == 2
    assert set(out["raters"]) == {f"r{r}" for r in range(20)}
    assert len(out["raters"]["r0"]) == 2 and len(out["types"]) == 2
    assert out["bic"] == pytest.approx(-2 * fit.log_likelihood + (2 * 9 + 1) * np.log(800))
    assert out["params"]["bic_by_k"] == {"2": out["bic"]}
    for t in fit.types:
        assert np.all(t["ci95"][:, 0] < t["scores"]) and np.all(t["scores"] < t["ci95"][:, 1])


def test_bad_arguments():
    data, _, _ = simulate_pairs(1, n_raters=4, per_rater=10)
    with pytest.raises(InvalidInput, match='"k" must lie in 1..4'):
        mixture_pairwise(data, k=5)
    with pytest.raises(InvalidInput, match='"alpha" must be positive'):
        mixture_pairwise(data, k=1, alpha=0.0)
    with pytest.raises(InvalidInput, match="bootstrap"):
        Mixture().fit(data, ci="bootstrap")
