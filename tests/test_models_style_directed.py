"""The directed-pair single fit of style control agrees with the design path it replaces.

``style_pairwise`` fits a dense problem over directed pairs (raw covariates, the
standardisation folded into the penalty, Hessian blocks rebuilt selectively); the
per-comparison design path (still used for the bootstrap refits and sparse
problems) is the reference. Both minimise the same objective, so estimates,
log-likelihoods and Hessian intervals must agree.
"""

import numpy as np
import pytest

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models import PairwiseData
from prefstore.models import style as style_mod
from prefstore.models.style import style_pairwise

ATOL = 1e-8  # estimates of the two paths, both converged to tol = 1e-13
LL_RTOL = 1e-10
# At the default tol (1e-9 on the relative Newton decrement) both stop within far
# less than a standard error of the optimum, but the directed path's last step uses
# the previous pass's Hessian, so the two land 1e-7 apart instead of 1e-10.
DEFAULT_TOL_ATOL = 1e-6
TIGHT = 1e-13


def random_problem(seed, n=7, m=3000, f=3, weighted=False, tie_rate=0.15):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.7, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    x = rng.normal(0, 0.4, (m, f))
    gamma = rng.normal(0, 0.5, f) / 0.4
    a_won = rng.random(m) < 1 / (1 + np.exp(-(theta[a] - theta[b] + x @ gamma)))
    sign = np.where(a_won, 1.0, -1.0)[:, None]
    weights = rng.choice([0.5, 1.0, 2.0], m) if weighted else None
    data = PairwiseData(np.where(a_won, a, b), np.where(a_won, b, a), n,
                        ties=rng.random(m) < tie_rate, weights=weights)
    return data, x * sign


def design_path(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(style_mod, "_dense_ok", lambda *_: False)
        return style_pairwise(*args, **kwargs)


def assert_same(fast, slow, atol=ATOL, ll_rtol=LL_RTOL):
    np.testing.assert_allclose(fast.scores, slow.scores, atol=atol)
    np.testing.assert_allclose(fast.style_coefficients, slow.style_coefficients, atol=atol)
    np.testing.assert_allclose(fast.style_scale, slow.style_scale, atol=1e-12)
    assert fast.log_likelihood == pytest.approx(slow.log_likelihood, rel=ll_rtol)
    np.testing.assert_allclose(fast.ci95, slow.ci95, atol=100 * atol)
    np.testing.assert_allclose(fast.style_ci95, slow.style_ci95, atol=100 * atol)


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.25), (0.3, 0.0), (0.05, 1.0)])
@pytest.mark.parametrize("ties", ["half", "drop"])
@pytest.mark.parametrize("weighted", [False, True])
def test_directed_fit_equals_design_fit(monkeypatch, alpha, beta, ties, weighted):
    data, x = random_problem(1, weighted=weighted)
    kwargs = dict(alpha=alpha, beta=beta, ties=ties, ci="hessian")
    assert_same(style_pairwise(data, x, **kwargs, tol=TIGHT),
                design_path(monkeypatch, data, x, **kwargs, tol=TIGHT))
    assert_same(style_pairwise(data, x, **kwargs), design_path(monkeypatch, data, x, **kwargs),
                atol=DEFAULT_TOL_ATOL, ll_rtol=1e-9)


def test_given_scale_unstandardised_and_dropped_covariates(monkeypatch):
    data, x = random_problem(2)
    x[:, 1] = 0.0  # left out: never varies
    # a given positive scale keeps even a constant covariate; NaN leaves one out
    for kwargs, out in (({"standardize": False}, 1), ({"scale": np.array([0.2, 1.0, np.nan])}, 2)):
        fast = style_pairwise(data, x, ci="hessian", tol=TIGHT, **kwargs)
        assert np.isnan(fast.style_coefficients).tolist() == [j == out for j in range(3)]
        assert_same(fast, design_path(monkeypatch, data, x, ci="hessian", tol=TIGHT, **kwargs))


def test_warm_start_and_no_covariate_left(monkeypatch):
    data, x = random_problem(3)
    fit = style_pairwise(data, x, ci=None)
    start = np.concatenate([fit.scores, fit.style_coefficients])
    again = style_pairwise(data, x, ci=None, initial_params=start + 0.05)
    np.testing.assert_allclose(again.scores, fit.scores, atol=DEFAULT_TOL_ATOL)
    zero = np.zeros((len(data), 1))
    assert_same(style_pairwise(data, zero, ci="hessian", tol=TIGHT),
                design_path(monkeypatch, data, zero, ci="hessian", tol=TIGHT))
    with pytest.raises(InvalidInput, match="initial_params"):
        style_pairwise(data, x, initial_params=np.zeros(3))


def test_errors_match_the_design_path():
    data, x = random_problem(4, n=4)
    bad = x.copy()
    bad[5, 0] = np.inf
    with pytest.raises(InvalidInput, match="finite"):
        style_pairwise(data, bad)
    never_lost = PairwiseData([0, 0, 1, 2], [1, 2, 2, 1], 3)
    with pytest.raises(NotConverged, match="never lost"):
        style_pairwise(never_lost, np.ones((4, 1)), alpha=0.0)
    # a covariate that is a difference of system constants, with beta = 0
    rng = np.random.default_rng(0)
    i = rng.integers(0, 4, 300)
    j = (i + rng.integers(1, 4, 300)) % 4
    c = np.array([1.0, 5.0, 2.0, 8.0])
    with pytest.raises(NotConverged, match="not identified"):
        style_pairwise(PairwiseData(i, j, 4), (c[i] - c[j])[:, None], beta=0.0, alpha=0.0)


# --- the sampled curvature corrections of a large fit ----------------------------------
#
# Above 2 * SAMPLE_MIN comparisons the directed fit corrects its first step (third
# order) and its Hessian with a random sample of the comparisons. The sample only
# decides how fast the fit reaches the optimum: the tests shrink SAMPLE_MIN so that a
# few thousand comparisons take that path, and compare with the design path.


@pytest.fixture
def sampled(monkeypatch):
    monkeypatch.setattr(style_mod, "SAMPLE_MIN", 300)
    monkeypatch.setattr(style_mod, "SAMPLE_SHARE", 0.05)
    calls = {"corrected_hessian": 0, "sampled_third": 0}
    for name in calls:
        original = getattr(style_mod._DirectedFit, name)

        def counted(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(style_mod._DirectedFit, name, counted)
    return calls


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.25), (0.3, 0.0), (0.05, 1.0)])
@pytest.mark.parametrize("ties", ["half", "drop"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sampled_corrections_reach_the_design_optimum(monkeypatch, sampled, alpha, beta, ties,
                                                      weighted):
    data, x = random_problem(5, m=8000, weighted=weighted)
    kwargs = dict(alpha=alpha, beta=beta, ties=ties, ci="hessian")
    fast = style_pairwise(data, x, **kwargs, tol=TIGHT)
    assert sampled["corrected_hessian"] and sampled["sampled_third"]  # the sampled path ran
    assert_same(fast, design_path(monkeypatch, data, x, **kwargs, tol=TIGHT))
    assert_same(style_pairwise(data, x, **kwargs), design_path(monkeypatch, data, x, **kwargs),
                atol=DEFAULT_TOL_ATOL, ll_rtol=1e-9)


def test_sampled_path_with_strong_effects_falls_back_to_plain_newton(monkeypatch, sampled):
    # Large coefficients: the step off gamma = 0 is long and far from quadratic, so the
    # third-order correction and full steps are rejected and exact Hessians take over.
    rng = np.random.default_rng(11)
    n, m = 6, 8000
    theta = rng.normal(0, 1.0, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    x = rng.normal(0, 1.0, (m, 2))
    a_won = rng.random(m) < 1 / (1 + np.exp(-(theta[a] - theta[b] + x @ [4.0, -3.0])))
    data = PairwiseData(np.where(a_won, a, b), np.where(a_won, b, a), n)
    x = x * np.where(a_won, 1.0, -1.0)[:, None]
    kwargs = dict(beta=0.01, ci="hessian")
    fast = style_pairwise(data, x, **kwargs, tol=TIGHT)
    assert_same(fast, design_path(monkeypatch, data, x, **kwargs, tol=TIGHT))
    np.testing.assert_allclose(fast.style_coefficients / fast.style_scale, [4.0, -3.0], rtol=0.15)


def test_hessian_intervals_are_taken_at_the_estimate():
    # The intervals come from the Hessian at the returned estimate, so at the default
    # tolerance they match those of a fit run to machine precision far more closely
    # than the estimates' own tolerance would suggest.
    data, x = random_problem(6)
    loose = style_pairwise(data, x, ci="hessian")
    tight = style_pairwise(data, x, ci="hessian", tol=TIGHT)
    np.testing.assert_allclose(loose.ci95, tight.ci95, atol=1e-7)
    np.testing.assert_allclose(loose.style_ci95, tight.style_ci95, atol=1e-7)
