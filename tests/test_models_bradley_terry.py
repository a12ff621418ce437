"""Bradley-Terry and Davidson: golden values, gradients, intervals, errors, registry."""

import json

import choix
import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad
from scipy.sparse.csgraph import connected_components

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models import (
    MODELS,
    BradleyTerry,
    Davidson,
    PairwiseData,
    aggregate_pairwise,
    bradley_terry,
    bt_gradient,
    bt_hessian,
    bt_objective,
    bt_pairwise,
    davidson_gradient,
    davidson_hessian,
    davidson_objective,
    davidson_pairwise,
    get_model,
    sparse_var,
)
from prefstore.models import base as models_base
from prefstore.models.bradley_terry import bt_pairwise_var

ATOL = 1e-4  # published values are given to 4 decimals
RTOL = 1e-6  # agreement with choix run to a tight tolerance
GRAD_TOL = 1e-4  # check_grad: finite differences against analytic gradients


def pairs(n_items, data, **kwargs):
    data = np.asarray(data)
    return PairwiseData(data[:, 0], data[:, 1], n_items, **kwargs)


def random_pairs(rng, n_items, m, theta=None):
    i = rng.integers(0, n_items, m)
    j = (i + rng.integers(1, n_items, m)) % n_items
    if theta is None:
        return i, j
    win = rng.random(m) < 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
    return np.where(win, i, j), np.where(win, j, i)


# --- golden values -----------------------------------------------------------------


def test_choix_published_pairwise_ml():
    # choix tests/data/testcase-pairwise-2.json: ml_est [1.43586088, 0.62035049, 0.94378863]
    # as strengths, i.e. centred log-strengths [0.4196, -0.4196, 0].
    data = pairs(3, [[0, 1], [0, 1], [1, 2], [2, 0]])
    np.testing.assert_allclose(bt_pairwise(data), [0.4196, -0.4196, 0.0], atol=ATOL)
    published = np.log([1.43586088, 0.62035049, 0.94378863])
    np.testing.assert_allclose(bt_pairwise(data), published - published.mean(), atol=ATOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_choix_ml_and_map(seed):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=6)
    w, lo = random_pairs(rng, 6, 80, theta)
    data = PairwiseData(w, lo, 6)
    raw = np.column_stack([w, lo]).tolist()
    ml = choix.ilsr_pairwise(6, raw, tol=1e-12)
    np.testing.assert_allclose(bt_pairwise(data), ml - ml.mean(), rtol=RTOL, atol=1e-7)
    alpha = 0.3
    mine = bt_pairwise(data, alpha=alpha)
    theirs = choix.opt_pairwise(6, raw, alpha=alpha, tol=1e-12)
    np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=1e-7)


def test_wikipedia_example():
    # en.wikipedia.org/wiki/Bradley-Terry_model: 0.640, 1.043, 0.660, 2.270 (geometric mean 1)
    wins = {(0, 1): 2, (1, 0): 3, (0, 3): 1, (3, 0): 4, (1, 2): 5, (2, 1): 3, (2, 3): 1, (3, 2): 3}
    data = pairs(4, [k for k, c in wins.items() for _ in range(c)], names=list("ABCD"))
    np.testing.assert_allclose(np.exp(bt_pairwise(data)), [0.640, 1.043, 0.660, 2.270], atol=1e-3)


def test_three_cycle_gives_equal_scores():
    np.testing.assert_allclose(bt_pairwise(pairs(3, [[0, 1], [1, 2], [2, 0]])), 0.0, atol=1e-12)


def test_weight_equals_multiplicity():
    doubled = pairs(3, [[0, 1], [0, 1], [1, 2], [2, 0]])
    weighted = pairs(3, [[0, 1], [1, 2], [2, 0]], weights=[2.0, 1.0, 1.0])
    np.testing.assert_allclose(bt_pairwise(weighted), bt_pairwise(doubled), atol=1e-10)


def test_tie_counts_as_half_a_win_each():
    with_tie = pairs(3, [[0, 1], [1, 2], [2, 0], [0, 2]], ties=[0, 0, 0, 1])
    halves = pairs(3, [[0, 1], [1, 2], [2, 0], [0, 2], [2, 0]], weights=[1, 1, 1, 0.5, 0.5])
    np.testing.assert_allclose(bt_pairwise(with_tie), bt_pairwise(halves), atol=1e-10)
    dropped = bt_pairwise(with_tie, ties="drop")
    np.testing.assert_allclose(dropped, 0.0, atol=1e-10)


def test_davidson_two_items_closed_form():
    # Two items form a saturated multinomial: exp(d) = W1 / W2 and nu = T / sqrt(W1 W2).
    w1, w2, t = 6, 3, 4
    data = pairs(2, [[0, 1]] * w1 + [[1, 0]] * w2 + [[0, 1]] * t, ties=[0] * (w1 + w2) + [1] * t)
    scores, nu = davidson_pairwise(data)
    assert scores[0] - scores[1] == pytest.approx(np.log(w1 / w2), abs=1e-10)
    assert nu == pytest.approx(t / np.sqrt(w1 * w2), rel=1e-10)


def test_davidson_without_ties_is_refused():
    with pytest.raises(InvalidInput, match="at least one tie"):
        davidson_pairwise(pairs(3, [[0, 1], [1, 2], [2, 0]]))


# --- gradients -----------------------------------------------------------------------


def _weighted_counts(seed=3, n=6, m=150):
    rng = np.random.default_rng(seed)
    i, j = random_pairs(rng, n, m)
    data = PairwiseData(i, j, n, ties=rng.random(m) < 0.2, weights=rng.choice([0.5, 1, 2], m))
    return aggregate_pairwise(data), rng.normal(size=n + 1)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
@pytest.mark.parametrize("ties", ["half", "drop"])
def test_bt_gradient_and_hessian(alpha, ties):
    counts, x = _weighted_counts()
    x = x[:-1]
    assert check_grad(bt_objective, bt_gradient, x, counts, alpha, ties) < GRAD_TOL
    num = approx_fprime(x, bt_gradient, 1e-6, counts, alpha, ties)
    np.testing.assert_allclose(bt_hessian(x, counts, alpha, ties), num, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_davidson_gradient_and_hessian(alpha):
    counts, x = _weighted_counts()
    assert check_grad(davidson_objective, davidson_gradient, x, counts, alpha) < GRAD_TOL
    num = approx_fprime(x, davidson_gradient, 1e-6, counts, alpha)
    np.testing.assert_allclose(davidson_hessian(x, counts, alpha), num, atol=1e-4)


def test_sparse_path_agrees_with_dense(monkeypatch):
    rng = np.random.default_rng(5)
    i, j = random_pairs(rng, 12, 400, rng.normal(size=12))
    data = PairwiseData(i, j, 12, ties=rng.random(400) < 0.15)
    dense_bt, (dense_dav, nu) = bt_pairwise(data), davidson_pairwise(data, alpha=0.1)
    monkeypatch.setattr(models_base, "DENSE_MAX", 5)
    np.testing.assert_allclose(bt_pairwise(data), dense_bt, atol=1e-7)
    sparse_dav, nu_sparse = davidson_pairwise(data, alpha=0.1)
    np.testing.assert_allclose(sparse_dav, dense_dav, atol=1e-7)
    assert nu_sparse == pytest.approx(nu, rel=1e-7)


# --- identifiability ----------------------------------------------------------------


def test_disconnected_graph_names_components():
    data = pairs(5, [[0, 1], [1, 0], [2, 3], [3, 4], [4, 2]], names=["gpt", "llama", "a", "b", "c"])
    with pytest.raises(NotConverged, match=r"not connected.*\{a, b, c\}; \{gpt, llama\}"):
        bt_pairwise(data)
    with pytest.raises(NotConverged, match=r"\{2, 3, 4\}; \{0, 1\}"):
        bt_pairwise(pairs(5, [[0, 1], [1, 0], [2, 3], [3, 4], [4, 2]]))
    assert np.all(np.isfinite(bt_pairwise(data, alpha=0.1)))


def test_undefeated_item_is_named_unless_prior():
    data = pairs(3, [[0, 1], [0, 2], [1, 2], [2, 1]], names=["champ", "x", "y"])
    with pytest.raises(NotConverged, match="champ never lost"):
        BradleyTerry().fit(data)
    scores = bt_pairwise(data, alpha=0.5)
    assert scores[0] > scores[1] and np.all(np.isfinite(scores))


def test_tie_keeps_davidson_finite():
    # 0 never lost, but drew with 1: finite under Davidson, divergent under ties="drop".
    data = pairs(3, [[0, 1], [0, 1], [1, 2], [2, 1], [0, 2]], ties=[0, 1, 0, 0, 0])
    scores, _ = davidson_pairwise(data)
    assert np.all(np.isfinite(scores))
    with pytest.raises(NotConverged, match="0 never lost"):
        bt_pairwise(data, ties="drop")


# --- intervals -----------------------------------------------------------------------


def test_hessian_ci_coverage_in_simulation():
    rng = np.random.default_rng(2024)
    truth = np.linspace(-1.0, 1.0, 10)
    truth -= truth.mean()
    covered = []
    for _ in range(200):
        w, lo = random_pairs(rng, 10, 300, truth)
        fit = BradleyTerry().fit(PairwiseData(w, lo, 10))
        covered.append((fit.ci95[:, 0] <= truth) & (truth <= fit.ci95[:, 1]))
    assert 0.93 <= np.mean(covered) <= 0.97


def test_bootstrap_ci_agrees_with_hessian():
    rng = np.random.default_rng(7)
    truth = np.linspace(-1.0, 1.0, 8)
    w, lo = random_pairs(rng, 8, 2000, truth)
    data = PairwiseData(w, lo, 8, ties=rng.random(2000) < 0.1)
    hess = BradleyTerry().fit(data)
    boot = BradleyTerry().fit(data, ci="bootstrap", n_boot=200, seed=1)
    np.testing.assert_array_equal(hess.scores, boot.scores)
    ratio = np.diff(boot.ci95, axis=1) / np.diff(hess.ci95, axis=1)
    assert np.all((0.75 < ratio) & (ratio < 1.3))
    again = BradleyTerry().fit(data, ci="bootstrap", n_boot=200, seed=1)
    np.testing.assert_array_equal(boot.ci95, again.ci95)


def test_davidson_fit_intervals():
    rng = np.random.default_rng(11)
    w, lo = random_pairs(rng, 5, 600, np.linspace(-1, 1, 5))
    data = PairwiseData(w, lo, 5, ties=rng.random(600) < 0.25)
    for ci in ("hessian", "bootstrap"):
        fit = Davidson().fit(data, ci=ci, n_boot=50)
        assert np.all(fit.ci95[:, 0] < fit.scores) and np.all(fit.scores < fit.ci95[:, 1])
        lo_nu, hi_nu = fit.params["nu_ci95"]
        assert lo_nu < fit.params["nu"] < hi_nu


# --- results ----------------------------------------------------------------------------


def test_fit_result_predictions_elo_and_dict():
    data = pairs(3, [[0, 1], [0, 1], [1, 2], [2, 0]], names=["a", "b", "c"])
    fit = BradleyTerry().fit(data, anchor="c")
    assert fit.win_probability("a", "b") == pytest.approx(1 / (1 + np.exp(-2 * 0.41961762)), 1e-6)
    assert fit.win_probability(0, 1) + fit.win_probability(1, 0) == pytest.approx(1.0)
    np.testing.assert_allclose(
        fit.predict_pairwise([0, 2], [1, 1]), [fit.win_probability(0, 1), fit.win_probability(2, 1)]
    )
    assert fit.elo[2] == pytest.approx(1000.0)
    # 400 Elo points are 10-to-1 odds.
    odds = fit.win_probability("a", "b") / fit.win_probability("b", "a")
    assert fit.elo[0] - fit.elo[1] == pytest.approx(400 * np.log10(odds))
    out = json.loads(json.dumps(fit.to_dict()))
    assert out["model"] == "bt" and out["n_comparisons"] == 4
    assert list(out["scores"]) == ["a", "b", "c"]
    assert out["ci95"]["a"][0] < out["scores"]["a"] < out["ci95"]["a"][1]
    assert out["elo"]["c"] == pytest.approx(1000.0)
    assert out["log_likelihood"] == pytest.approx(fit.log_likelihood)


def test_davidson_win_probability_leaves_room_for_ties():
    data = pairs(2, [[0, 1], [1, 0], [0, 1]], ties=[0, 0, 1])
    fit = Davidson().fit(data)
    p_tie = fit.params["nu"] / (2 + fit.params["nu"])
    assert fit.win_probability(0, 1) == pytest.approx((1 - p_tie) / 2)


def test_registry():
    assert [m.name for m in MODELS] == ["bt", "davidson", "pl", "mixture"]
    assert [m.data for m in MODELS] == ["pairwise", "pairwise", "rankings", "pairwise"]
    assert all(m.label and callable(m.fit) for m in MODELS)
    assert get_model("davidson") is MODELS[1]
    with pytest.raises(InvalidInput, match="'bt', 'davidson', 'pl', 'mixture'.*got 'elo'"):
        get_model("elo")


def test_bad_arguments_raise_invalid_input():
    data = pairs(3, [[0, 1], [1, 2], [2, 0]])
    with pytest.raises(InvalidInput, match='"alpha"'):
        bt_pairwise(data, alpha=-1)
    with pytest.raises(InvalidInput, match='"ties"'):
        bt_pairwise(data, ties="coin")
    with pytest.raises(InvalidInput, match='"ci"'):
        BradleyTerry().fit(data, ci="profile")
    with pytest.raises(InvalidInput, match="unknown options"):
        BradleyTerry().fit(data, k=3)
    with pytest.raises(InvalidInput, match="compared with itself"):
        pairs(3, [[1, 1]])
    with pytest.raises(InvalidInput, match=r"0\.\.2"):
        pairs(3, [[0, 3]])


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_hessian_ci_matches_reduced_parametrization(alpha):
    # Regression: the gauge fix must not leak the prior's all-ones eigenvalue into the
    # covariance. Reference: fix theta_0 = -sum(others), invert the reduced Hessian.
    rng = np.random.default_rng(12)
    w, lo = random_pairs(rng, 5, 120, np.linspace(-1, 1, 5))
    data = PairwiseData(w, lo, 5)
    counts = aggregate_pairwise(data)
    fit = BradleyTerry().fit(data, alpha=alpha)
    basis = np.vstack([-np.ones(4), np.eye(4)])  # theta = basis @ phi, sum(theta) = 0
    reduced = basis.T @ bt_hessian(fit.scores, counts, alpha) @ basis
    cov = basis @ np.linalg.inv(reduced) @ basis.T
    half = 1.959963984540054 * np.sqrt(np.diag(cov))
    np.testing.assert_allclose(fit.ci95[:, 1] - fit.scores, half, rtol=1e-8)


def _chain(n):
    winners = np.concatenate([np.arange(n - 1), np.arange(1, n)])
    losers = np.concatenate([np.arange(1, n), np.arange(n - 1)])
    return PairwiseData(winners, losers, n_items=n)


def _pool(rng, n_prompts, per_prompt, m):
    """Response-level data: judgments only compare responses to the same prompt."""
    prompt = rng.integers(0, n_prompts, m)
    a = rng.integers(0, per_prompt, m)
    b = (a + rng.integers(1, per_prompt, m)) % per_prompt
    return PairwiseData(per_prompt * prompt + a, per_prompt * prompt + b, n_prompts * per_prompt)


def _hessian(data, alpha):
    counts = aggregate_pairwise(data)
    theta = bt_pairwise(counts, alpha)
    return bt_hessian(theta, counts, alpha), theta, counts


def _dense_var(h):
    h = h.toarray() if hasattr(h, "toarray") else h
    return np.diag(models_base.centred_cov(h))


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize(
    ("block", "gain"),
    [(4000, 8), (10, 8), (10, 0)],  # batched dense, one dense block, sparse LU
)
def test_sparse_variances_equal_the_dense_inverse(monkeypatch, alpha, block, gain):
    # Issue 17: the per-component diagonal must equal np.linalg.inv's.
    monkeypatch.setattr(sparse_var, "DENSE_CI_BLOCK", block)
    monkeypatch.setattr(sparse_var, "SPARSE_GAIN", gain)
    rng = np.random.default_rng(21)
    i, j = random_pairs(rng, 300, 4000, rng.normal(size=300))
    h, _, _ = _hessian(PairwiseData(i, j, 300, ties=rng.random(4000) < 0.1), alpha)
    np.testing.assert_allclose(sparse_var.centred_var(h), _dense_var(h), rtol=1e-9)


@pytest.mark.parametrize("per_prompt", [2, 3, 7])
def test_sparse_variances_of_a_pool_equal_the_dense_inverse(per_prompt):
    rng = np.random.default_rng(per_prompt)
    data = _pool(rng, 400 // per_prompt, per_prompt, 3000)
    h, _, _ = _hessian(data, 1.0)
    np.testing.assert_allclose(sparse_var.centred_var(h), _dense_var(h), rtol=1e-9)


def test_sparse_variances_of_prompts_with_different_response_counts():
    # Components of 2, 3 and 4 responses (a slate project): batching blocks by size
    # once indexed a batch's nodes by their global ids and raised IndexError.
    rng = np.random.default_rng(5)
    sizes = rng.choice([2, 3, 4], size=120)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    prompt = rng.integers(0, sizes.size, 3000)
    a = rng.integers(0, sizes[prompt])
    b = (a + rng.integers(1, sizes[prompt])) % sizes[prompt]
    data = PairwiseData(first[prompt] + a, first[prompt] + b, int(sizes.sum()))
    h, _, _ = _hessian(data, 1.0)  # several components: only a prior makes it regular
    np.testing.assert_allclose(sparse_var.centred_var(h), _dense_var(h), rtol=1e-9)


def test_hessian_ci_of_a_pool_above_the_old_limit_in_closed_form():
    # 6,000 prompts x 2 responses: each block [[w + 2a, -w], [-w, w + 2a]] has
    # (H^-1)_ii = (w + 2a) / (4 a w + 4 a^2); centring subtracts 1 / (2 a n).
    rng = np.random.default_rng(3)
    n, alpha = 12_000, 1.0
    data = _pool(rng, n // 2, 2, 60_000)
    fit = BradleyTerry().fit(data, alpha=alpha)
    counts = aggregate_pairwise(data)
    d = fit.scores[counts.lo] - fit.scores[counts.hi]
    w = (counts.wins_lo + counts.wins_hi) / (2.0 + np.exp(d) + np.exp(-d))
    var = np.full(n, 1.0 / (2 * alpha))  # responses never compared: the prior alone
    var[counts.lo] = var[counts.hi] = (w + 2 * alpha) / (4 * alpha * w + 4 * alpha**2)
    half = 1.959963984540054 * np.sqrt(var - 1.0 / (2 * alpha * n))
    np.testing.assert_allclose(fit.ci95[:, 1] - fit.scores, half, rtol=1e-9)
    np.testing.assert_allclose(fit.scores - fit.ci95[:, 0], half, rtol=1e-9)


def test_hessian_ci_of_a_long_chain_above_the_old_limit():
    # One connected component of 4,001 items: the sparse LU path. Reference: a few
    # columns of H^-1 by spsolve; for Bradley-Terry H 1 = 2 alpha 1, so centring
    # subtracts 1 / (2 alpha n).
    from scipy.sparse.linalg import spsolve

    n, alpha = models_base.MAX_HESSIAN_CI_ITEMS + 1, 0.1
    data = _chain(n)
    fit = BradleyTerry().fit(data, alpha=alpha, ci="hessian")
    assert np.allclose(fit.scores, 0.0, atol=1e-8)
    h, _, _ = _hessian(data, alpha)
    h = h.tocsc()
    for k in [0, 1, 1234, n // 2, n - 1]:
        e = np.zeros(n)
        e[k] = 1.0
        var = spsolve(h, e)[k] - 1.0 / (2 * alpha * n)
        assert fit.ci95[k, 1] == pytest.approx(1.959963984540054 * np.sqrt(var), rel=1e-9)


def test_sparse_variances_refuse_a_full_factor_and_a_split_graph(monkeypatch):
    rng = np.random.default_rng(4)
    i, j = random_pairs(rng, 60, 600, rng.normal(size=60))
    h, _, _ = _hessian(PairwiseData(i, j, 60), 0.5)
    monkeypatch.setattr(sparse_var, "DENSE_CI_BLOCK", 10)
    monkeypatch.setattr(sparse_var, "DENSE_CI_MAX", 50)
    monkeypatch.setattr(sparse_var, "SPARSE_CI_FLOPS", 1e3)
    with pytest.raises(InvalidInput, match="connected component of 60 items: its sparse factor"):
        sparse_var.centred_var(h)
    split = bt_hessian(np.zeros(4), aggregate_pairwise(pairs(4, [[0, 1], [1, 0], [2, 3], [3, 2]])))
    with pytest.raises(NotConverged, match="singular: 2 connected components"):
        sparse_var.centred_var(split)


def test_davidson_hessian_ci_refused_clearly_for_huge_pools():
    # Davidson's tie parameter couples every item: still a dense inverse, still refused.
    n = models_base.MAX_HESSIAN_CI_ITEMS + 1
    chain = _chain(n)
    ties = np.arange(len(chain)) % 3 == 0
    data = PairwiseData(chain.winners, chain.losers, n_items=n, ties=ties)
    with pytest.raises(InvalidInput, match=f"over {n + 1:,} items need a dense"):
        Davidson().fit(data, alpha=0.1, ci="hessian")
    assert Davidson().fit(data, alpha=0.1, ci=None).scores.shape == (n,)


def test_to_dict_without_intervals_is_strict_json():
    data = PairwiseData(np.array([0, 1, 2]), np.array([1, 2, 0]), n_items=3)
    out = BradleyTerry().fit(data, ci=None).to_dict()
    assert out["ci95"] == {"0": [None, None], "1": [None, None], "2": [None, None]}
    json.dumps(out, allow_nan=False)


# --- a prior splits the fit over connected components (issue 17) ---------------------


def _one_newton_solve(counts, alpha, ties="half", tol=1e-13):
    """The fit as bt_pairwise made it before the split: one Newton solve over every item."""

    def fgh(x, order=2):
        f = bt_objective(x, counts, alpha, ties)
        if order == 0:
            return f
        if order == 1:
            return f, bt_gradient(x, counts, alpha, ties)
        return f, bt_gradient(x, counts, alpha, ties), bt_hessian(x, counts, alpha, ties)

    x, _, _ = models_base.newton_minimize(fgh, np.zeros(counts.n_items), None, tol=tol)
    return x - x.mean()


def _groups(rng, sizes, ties=True):
    """Judgments only within groups of ``sizes`` items (a pool's prompts), each group connected."""
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = int(np.sum(sizes))
    theta = 2.0 * rng.normal(size=n)
    i, j = [], []
    for start, s in zip(first, sizes):
        if s < 2:
            continue
        chain = start + np.arange(s)  # a chain keeps the group one component
        extra = int(rng.integers(0, 3 * s))
        a = start + rng.integers(0, s, extra)
        b = start + (a - start + rng.integers(1, s, extra)) % s
        i += [chain[:-1], a]
        j += [chain[1:], b]
    i, j = np.concatenate(i), np.concatenate(j)
    win = rng.random(i.size) < 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
    w, lose = np.where(win, i, j), np.where(win, j, i)
    if not ties:
        return PairwiseData(w, lose, n)
    return PairwiseData(w, lose, n, ties=rng.random(i.size) < 0.15,
                        weights=rng.choice([1.0, 2.0, 3.0], i.size))


def _component_sizes(data):
    counts = aggregate_pairwise(data)
    edges = np.zeros((data.n_items, data.n_items))
    edges[counts.lo, counts.hi] = 1.0
    _, label = connected_components(edges, directed=False)
    return set(np.bincount(label).tolist())


MIXED = [2] * 40 + [3] * 30 + [4] * 30 + [1, 1] + [80]  # 80 > BLOCK_MAX: the sparse path


@pytest.mark.parametrize("alpha", [0.01, 1.0])
@pytest.mark.parametrize("ties", ["half", "drop"])
def test_split_fit_equals_one_solve_on_components_of_mixed_sizes(alpha, ties):
    rng = np.random.default_rng(17)
    data = _groups(rng, MIXED)
    assert _component_sizes(data) == {1, 2, 3, 4, 80}
    counts = aggregate_pairwise(data)
    mine = bt_pairwise(data, alpha=alpha, ties=ties)
    np.testing.assert_allclose(mine, _one_newton_solve(counts, alpha, ties), rtol=0, atol=1e-9)
    # The optimum itself: the gradient of the penalized objective vanishes.
    assert np.abs(bt_gradient(mine, counts, alpha, ties)).max() < 1e-8


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_split_fit_matches_choix_map(alpha):
    rng = np.random.default_rng(3)
    data = _groups(rng, [2] * 30 + [3] * 20 + [4] * 20 + [1], ties=False)
    theirs = choix.opt_pairwise(data.n_items, list(zip(data.winners, data.losers)),
                                alpha=alpha, tol=1e-12)
    np.testing.assert_allclose(bt_pairwise(data, alpha=alpha), theirs - theirs.mean(),
                               rtol=0, atol=1e-6)


def test_one_component_keeps_the_one_solve():
    rng = np.random.default_rng(8)
    i, j = random_pairs(rng, 150, 900, rng.normal(size=150))
    counts = aggregate_pairwise(PairwiseData(i, j, 150, ties=rng.random(900) < 0.1))
    assert _component_sizes(PairwiseData(i, j, 150)) == {150}
    # Bit for bit the single solve: the same path, not merely the same optimum.
    np.testing.assert_array_equal(bt_pairwise(counts, alpha=0.5),
                                  _one_newton_solve(counts, 0.5, tol=1e-11))


def test_split_fit_in_several_batches_and_from_a_warm_start(monkeypatch):
    rng = np.random.default_rng(11)
    data = _groups(rng, [2] * 25 + [3] * 25 + [4] * 25)
    whole = bt_pairwise(data, alpha=0.05)
    start = rng.normal(size=data.n_items)  # two-item blocks start off their line
    np.testing.assert_allclose(bt_pairwise(data, alpha=0.05, initial_params=start), whole,
                               rtol=0, atol=1e-10)
    monkeypatch.setattr(bradley_terry, "_BATCH_ELEMENTS", 40)  # 2-4 blocks per batch
    np.testing.assert_allclose(bt_pairwise(data, alpha=0.05), whole, rtol=0, atol=1e-12)
    monkeypatch.setattr(bradley_terry, "BLOCK_MAX", 1)  # every component by the sparse path
    np.testing.assert_allclose(bt_pairwise(data, alpha=0.05), whole, rtol=0, atol=1e-9)


def test_split_fit_keeps_the_hessian_intervals():
    rng = np.random.default_rng(5)
    data = _groups(rng, [2] * 40 + [3] * 30 + [4] * 30)
    counts = aggregate_pairwise(data)
    fit = BradleyTerry().fit(data, alpha=0.5, ci="hessian")
    theta = _one_newton_solve(counts, 0.5)
    before = models_base.wald_ci(theta, bt_pairwise_var(theta, counts, 0.5))
    np.testing.assert_allclose(fit.ci95, before, rtol=0, atol=1e-9)
    # ... which are the dense inverse's.
    half = 1.959963984540054 * np.sqrt(_dense_var(bt_hessian(theta, counts, 0.5)))
    np.testing.assert_allclose(fit.ci95[:, 1] - fit.scores, half, rtol=1e-8)
