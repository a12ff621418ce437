"""Plackett-Luce: golden values (choix, NASCAR 2002), gradients, intervals, errors."""


import choix
import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad

from prefstore.errors import NotConverged
from prefstore.models import (
    PairwiseData,
    PlackettLuce,
    RankingData,
    bt_pairwise,
    get_model,
    pl_gradient,
    pl_hessian,
    pl_objective,
    pl_rankings,
)
from tests import pandalm

ATOL = 1e-4  # published values are given to 4 decimals
RTOL = 1e-6  # agreement with choix run to a tight tolerance
GRAD_TOL = 1e-4



def test_choix_published_rankings_ml():
    # choix tests/data/testcase-rankings-2.json ("partial rankings of variable lengths")
    data = RankingData([[0, 1, 2], [3, 2, 0], [1, 3]], 4)
    np.testing.assert_allclose(pl_rankings(data), [-0.4433, 0.6951, -0.6706, 0.4188], atol=ATOL)


def test_choix_published_cycle():
    # choix tests/data/testcase-rankings-1.json
    data = RankingData([[0, 1, 2], [1, 2, 0], [2, 0, 1]], 3)
    np.testing.assert_allclose(pl_rankings(data), 0.0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_choix_rankings(seed):
    rng = np.random.default_rng(seed)
    n = 7
    raw = [rng.permutation(n)[: rng.integers(2, n + 1)].tolist() for _ in range(40)]
    data = RankingData(raw, n)
    ml = choix.ilsr_rankings(n, raw, tol=1e-12)
    np.testing.assert_allclose(pl_rankings(data), ml - ml.mean(), rtol=RTOL, atol=1e-7)
    theirs = choix.opt_rankings(n, raw, alpha=0.2, tol=1e-12)
    np.testing.assert_allclose(pl_rankings(data, alpha=0.2), theirs, rtol=RTOL, atol=1e-7)


def test_matches_choix_top1():
    rng = np.random.default_rng(3)
    n = 6
    slates = [rng.permutation(n)[: rng.integers(2, 5)] for _ in range(60)]
    raw = [(int(s[0]), s[1:].tolist()) for s in slates]
    data = RankingData([s.tolist() for s in slates], n, depth=np.ones(60, int))
    theirs = choix.opt_top1(n, raw, alpha=0.1, tol=1e-12)
    np.testing.assert_allclose(pl_rankings(data, alpha=0.1), theirs, rtol=RTOL, atol=1e-7)


def test_pairs_reduce_to_bradley_terry():
    rng = np.random.default_rng(4)
    i = rng.integers(0, 5, 100)
    j = (i + rng.integers(1, 5, 100)) % 5
    ranks = RankingData(np.column_stack([i, j]), 5)
    np.testing.assert_allclose(pl_rankings(ranks), bt_pairwise(PairwiseData(i, j, 5)), atol=1e-9)


def load_nascar():
    rows = np.loadtxt(pandalm.NASCAR, skiprows=1, dtype=int)
    order = np.lexsort((rows[:, 2], rows[:, 1]))
    rows = rows[order]
    races = np.split(rows[:, 0] - 1, np.flatnonzero(np.diff(rows[:, 1])) + 1)
    return RankingData(races, 83, names=[str(d) for d in range(1, 84)])


def test_nascar_2002_hunter(shared_data):
    data = load_nascar()
    assert len(data) == 36 and data.n_items == 83
    fit = PlackettLuce().fit(data)
    share = dict(zip(fit.names, np.exp(fit.scores) / np.exp(fit.scores).sum()))
    published = {"58": 0.1864, "68": 0.1096, "54": 0.0274, "51": 0.0235, "66": 0.0230}
    for driver, value in published.items():
        assert share[driver] == pytest.approx(value, abs=0.5e-4), driver
    # 58 and 68 ran a single race each: finite, but very uncertain.
    widths = np.diff(fit.ci95, axis=1).ravel()
    assert widths[57] > 2 * np.median(widths)


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_gradient_and_hessian(alpha):
    rng = np.random.default_rng(8)
    raw = [rng.permutation(6)[: rng.integers(2, 7)].tolist() for _ in range(25)]
    depth = [rng.integers(1, len(r)) for r in raw]
    data = RankingData(raw, 6, depth=depth, weights=rng.choice([0.5, 1.0, 2.0], 25))
    x = rng.normal(size=6)
    assert check_grad(pl_objective, pl_gradient, x, data, alpha) < GRAD_TOL
    num = approx_fprime(x, pl_gradient, 1e-6, data, alpha)
    np.testing.assert_allclose(pl_hessian(x, data, alpha), num, atol=1e-4)


def test_intervals():
    rng = np.random.default_rng(9)
    truth = np.linspace(-1, 1, 6)
    # Top-4 of 6 by Gumbel-max sampling: the last two are "unranked" (depth 4).
    raw = [np.argsort(-(truth + rng.gumbel(size=6))) for _ in range(300)]
    data = RankingData(raw, 6, depth=np.full(300, 4))
    hess = PlackettLuce().fit(data)
    boot = get_model("pl").fit(data, ci="bootstrap", n_boot=100, seed=0)
    assert np.all(
        (hess.ci95[:, 0] < truth - truth.mean()) & (truth - truth.mean() < hess.ci95[:, 1])
    )
    ratio = np.diff(boot.ci95, axis=1) / np.diff(hess.ci95, axis=1)
    assert np.all((0.7 < ratio) & (ratio < 1.4))


def test_always_first_item_is_named():
    data = RankingData([[0, 1, 2], [0, 2, 1], [1, 2]], 3, names=["top", "b", "c"])
    with pytest.raises(NotConverged, match="top never lost"):
        pl_rankings(data)
    assert np.all(np.isfinite(pl_rankings(data, alpha=0.1)))


def test_top1_only_links_winner_to_the_rest():
    # Item 2 was never chosen over anyone: finite MLE impossible for it (-inf),
    # i.e. {0, 1} never lost to it.
    data = RankingData([[0, 1, 2], [1, 0, 2]], 3, depth=[1, 1])
    with pytest.raises(NotConverged, match=r"0, 1 never lost"):
        pl_rankings(data)
