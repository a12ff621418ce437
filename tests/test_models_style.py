"""Style control (Li et al. 2024): features, gradients, FastChat parity, recovery, JSON."""

import json
import math
import re

import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad, minimize
from scipy.special import expit
from scipy.stats import kendalltau

from prefstore.errors import InvalidInput, NotConverged
from prefstore.models import PairwiseData, bt_pairwise
from prefstore.models import style as style_mod
from prefstore.models.style import (
    FASTCHAT_ALPHA,
    FASTCHAT_BETA,
    STYLE_FEATURES,
    fit_style_control,
    style_covariates,
    style_design,
    style_features,
    style_gradient,
    style_hessian,
    style_objective,
    style_pairwise,
)

ATOL = 1e-8  # golden values, pinned from this implementation (checked against FastChat below)
RTOL = 1e-6  # log-likelihood against the FastChat reference
SCORE_ATOL = 1e-4  # centred scores against the FastChat reference
GRAD_TOL = 1e-4


# --- features -----------------------------------------------------------------------

MARKDOWN = """# Title
Some **bold** words and __more bold__ here.

## Steps
1. first
2. second
   - nested
* star item
+ plus item

```python
# not a header
- not a list
**not bold**
```
Done."""


def test_style_features_follow_fastchat_patterns():
    feats = style_features([MARKDOWN, "", None, "plain words only"])
    words = len(MARKDOWN.split())  # code included in the length
    np.testing.assert_array_equal(
        feats, [[words, 2, 5, 2], [0, 0, 0, 0], [0, 0, 0, 0], [3, 0, 0, 0]]
    )
    assert feats.shape == (4, len(STYLE_FEATURES))


def test_style_covariates_ratio():
    a = np.array([[10.0, 0, 3, 1]])
    b = np.array([[5.0, 0, 0, 1]])
    np.testing.assert_allclose(style_covariates(a, b), [[5 / 16, 0, 3 / 4, 0]])
    with pytest.raises(InvalidInput, match="non-negative"):
        style_covariates(-a, b)


# --- a small synthetic arena with texts -----------------------------------------------


def _text(rng, words, headers, lists, bold, code):
    parts = [f"# Heading {k}" for k in range(headers)]
    parts += [f"- item {k}" for k in range(lists)]
    parts += [f"**key {k}**" for k in range(bold)]
    parts.append(" ".join(rng.choice(["alpha", "beta", "gamma", "delta"], words)))
    if code:
        parts.append("```\n# comment\n- dash\nx = 1\n```")
    return "\n".join(parts)


def text_arena(n_systems=6, m=900, seed=0, tie_rate=0.15):
    """Battles between systems whose responses differ in style; style affects votes."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.6, n_systems)
    verbosity = rng.uniform(20, 120, n_systems)
    markdown = rng.uniform(0, 3, (n_systems, 3))
    a = rng.integers(0, n_systems, m)
    b = (a + rng.integers(1, n_systems, m)) % n_systems
    texts, feats = [], []
    for s in np.concatenate([a, b]):
        counts = rng.poisson(markdown[s])
        text = _text(rng, rng.poisson(verbosity[s]) + 1, *counts, rng.random() < 0.3)
        texts.append(text)
    feats = style_features(texts)
    fa, fb = feats[:m], feats[m:]
    x = style_covariates(fa, fb)
    xs = x / np.sqrt((x * x).mean(axis=0))
    eta = theta[a] - theta[b] + xs @ np.array([0.4, 0.1, 0.2, 0.0])
    a_won = rng.random(m) < expit(eta)
    tie = rng.random(m) < tie_rate
    winner = np.where(tie, "tie", np.where(a_won, "model_a", "model_b"))
    return {
        "a": a,
        "b": b,
        "winner": winner,
        "text_a": texts[:m],
        "text_b": texts[m:],
        "n": n_systems,
        "theta": theta,
    }


def prefstore_inputs(battles):
    """PairwiseData (winner first) and covariates oriented winner minus loser."""
    a, b, winner = battles["a"], battles["b"], battles["winner"]
    b_won = winner == "model_b"
    w = np.where(b_won, b, a)
    lo = np.where(b_won, a, b)
    fa = style_features(battles["text_a"])
    fb = style_features(battles["text_b"])
    fw = np.where(b_won[:, None], fb, fa)
    fl = np.where(b_won[:, None], fa, fb)
    data = PairwiseData(w, lo, battles["n"], ties=winner == "tie")
    return data, style_covariates(fw, fl)


# --- FastChat reference, written from its published description -----------------------
# fastchat/serve/monitor/elo_analysis.py (construct_style_matrices + fit_mle_elo) and
# rating_systems.py (compute_style_control): duplicate every battle, a tie as one win
# for model_a and one for model_b; design +ln(10) / -ln(10) for model_a / model_b and
# the standardised covariates; logistic regression without intercept, penalty
# 1/2 |w|^2 (scikit-learn's C = 1; rating_systems.py: reg = 0.5 on undoubled battles).


def fastchat_count(text):
    """FastChat's count_markdown_elements after remove_pattern (code contents removed)."""
    for block in re.findall("```([^`]*)```", text):
        text = text.replace(block, "")
    headers = sum(len(re.findall(rf"^#{{{k}}}\s", text, re.MULTILINE)) for k in range(1, 7))
    lists = len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE)) + len(
        re.findall(r"^\s*[-*+]\s", text, re.MULTILINE)
    )
    bold = len(re.findall(r"\*\*[^*\n]+\*\*", text)) + len(re.findall(r"__[^_\n]+__", text))
    return headers, lists, bold


def fastchat_style_control(battles, base=10.0):
    m, p = len(battles["winner"]), battles["n"]
    cols = []
    for key in ("text_a", "text_b"):
        cols.append(
            np.array([(len(t.split()), *fastchat_count(t)) for t in battles[key]], dtype=float)
        )
    fa, fb = cols
    diff = (fa - fb) / (fa + fb + 1.0)
    feats = (diff - diff.mean(axis=0)) / diff.std(axis=0)
    # duplicate the battles
    x = np.zeros((2 * m, p + 4))
    rows = np.arange(2 * m)
    x[rows, np.tile(battles["a"], 2)] = math.log(base)
    x[rows, np.tile(battles["b"], 2)] = -math.log(base)
    x[:, p:] = np.tile(feats, (2, 1))
    y = np.zeros(2 * m)
    y[np.tile(battles["winner"] == "model_a", 2)] = 1.0
    tie = battles["winner"] == "tie"
    y[:m][tie] = 1.0  # one tie => one A win + one B win

    def loss(w):
        z = x @ w
        f = np.sum(np.logaddexp(0, z) - y * z) + 0.5 * w @ w
        return f, x.T @ (expit(z) - y) + w

    res = minimize(
        loss,
        np.zeros(p + 4),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-15},
    )
    w = res.x
    z = x @ w
    loglik = -np.sum(np.logaddexp(0, z) - y * z) / 2  # per battle, duplicates halved
    elo = 400 * w[:p] + 1000
    return elo, w[p:], loglik, feats


def test_fastchat_defaults_reproduce_its_optimum_on_the_same_covariates():
    battles = text_arena()
    elo, coef, loglik, feats = fastchat_style_control(battles)
    data, _ = prefstore_inputs(battles)
    # FastChat's own standardised covariates, oriented winner minus loser per row.
    b_won = battles["winner"] == "model_b"
    x = np.where(b_won[:, None], -feats, feats)
    fit = style_pairwise(
        data, x, alpha=FASTCHAT_ALPHA, beta=FASTCHAT_BETA, standardize=False, ci=None
    )
    theta_ref = math.log(10) * (elo - 1000) / 400
    np.testing.assert_allclose(fit.scores, theta_ref - theta_ref.mean(), atol=SCORE_ATOL)
    np.testing.assert_allclose(fit.style_coefficients, coef, atol=SCORE_ATOL)
    assert fit.log_likelihood == pytest.approx(loglik, rel=RTOL)
    # and the Elo-like scale is FastChat's (up to its anchor)
    np.testing.assert_allclose(fit.elo - fit.elo.mean(), elo - elo.mean(), atol=0.05)


def test_fastchat_parity_through_prefstore_features_on_balanced_positions():
    # Every battle also seen with positions swapped: FastChat's centring then removes
    # nothing and its standard deviation is prefstore's root mean square, so the whole
    # pipeline (texts -> features -> covariates -> fit) must agree.
    one = text_arena(seed=1)
    swapped = {
        **one,
        "a": one["b"],
        "b": one["a"],
        "text_a": one["text_b"],
        "text_b": one["text_a"],
        "winner": np.select(
            [one["winner"] == "model_a", one["winner"] == "model_b"], ["model_b", "model_a"], "tie"
        ),
    }
    battles = {
        k: (np.concatenate([one[k], swapped[k]]) if k not in ("n", "theta") else one[k])
        for k in one
    }
    battles["text_a"] = list(one["text_a"]) + list(swapped["text_a"])
    battles["text_b"] = list(one["text_b"]) + list(swapped["text_b"])
    elo, coef, loglik, _ = fastchat_style_control(battles)
    data, x = prefstore_inputs(battles)
    out = fit_style_control(
        data, x, list(STYLE_FEATURES), alpha=FASTCHAT_ALPHA, beta=FASTCHAT_BETA, ci=None
    )
    theta_ref = math.log(10) * (elo - 1000) / 400
    scores = np.array([out["scores"][str(i)] for i in range(battles["n"])])
    np.testing.assert_allclose(scores, theta_ref - theta_ref.mean(), atol=SCORE_ATOL)
    got = [out["style_coefficients"][f] for f in STYLE_FEATURES]
    np.testing.assert_allclose(got, coef, atol=SCORE_ATOL)
    assert out["log_likelihood"] == pytest.approx(loglik, rel=RTOL)


def test_fastchat_alpha_beta_values():
    assert FASTCHAT_ALPHA == pytest.approx(0.25 / math.log(10) ** 2)
    assert FASTCHAT_ALPHA == pytest.approx(0.0471529, abs=1e-7)
    assert FASTCHAT_BETA == 0.25


# --- golden values, gradients ------------------------------------------------------------


def golden_data():
    data = PairwiseData(
        [0, 0, 1, 2, 2, 1, 0, 3, 3, 2],
        [1, 2, 2, 0, 3, 3, 3, 1, 0, 1],
        4,
        ties=[0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    )
    x = np.array(
        [
            [0.5, 1],
            [0.2, 0],
            [-0.3, 0],
            [0.1, -1],
            [0.0, 0],
            [0.4, 1],
            [-0.2, 0],
            [0.3, 0],
            [0.6, -1],
            [-0.1, 0],
        ]
    )
    return data, x


def test_golden_values():
    # Checked against scipy BFGS on the same objective (agrees to 1e-8).
    data, x = golden_data()
    fit = style_pairwise(data, x, alpha=0.0, beta=0.25, feature_names=["length", "bold"])
    np.testing.assert_allclose(
        fit.scores, [0.867356976, 0.187947519, -0.4945875647, -0.5607169303], atol=ATOL
    )
    np.testing.assert_allclose(fit.style_coefficients, [1.1917944741, -0.6573174376], atol=ATOL)
    np.testing.assert_allclose(fit.style_scale, [0.3240370349, 0.632455532], atol=ATOL)
    assert fit.log_likelihood == pytest.approx(-4.7916391346, abs=ATOL)


def test_zero_covariates_give_plain_bradley_terry_and_a_note():
    data, _ = golden_data()
    x = np.zeros((len(data), 2))
    x[:, 0] = np.linspace(-1, 1, len(data))
    x[:, 1] = 0.0
    fit = style_pairwise(data, x[:, 1:], ci=None, feature_names=["headers"])
    np.testing.assert_allclose(fit.scores, bt_pairwise(data), atol=1e-10)
    out = fit.to_dict()
    assert out["style_coefficients"] == {"headers": None}
    assert out["style_ci95"] == {"headers": None}
    assert "headers: left out" in out["notes"][0]
    json.dumps(out, allow_nan=False)


def _random_design(seed=3, n=6, m=200, ties="half"):
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    data = PairwiseData(i, j, n, ties=rng.random(m) < 0.2, weights=rng.choice([0.5, 1, 2], m))
    x = rng.normal(size=(m, 3))
    return style_design(data, x, ties=ties), rng.normal(size=n + 3)


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (0.3, 0.25)])
@pytest.mark.parametrize("ties", ["half", "drop"])
def test_gradient_and_hessian(alpha, beta, ties):
    design, params = _random_design(ties=ties)
    args = (design, alpha, beta)
    assert check_grad(style_objective, style_gradient, params, *args) < GRAD_TOL
    num = approx_fprime(params, style_gradient, 1e-6, *args)
    np.testing.assert_allclose(style_hessian(params, *args), num, atol=1e-4)


def test_sparse_path_agrees_with_dense(monkeypatch):
    design, _ = _random_design()
    rng = np.random.default_rng(4)
    i = rng.integers(0, 12, 600)
    j = (i + rng.integers(1, 12, 600)) % 12
    data = PairwiseData(i, j, 12, ties=rng.random(600) < 0.1)
    x = rng.normal(size=(600, 2))
    dense = style_pairwise(data, x, alpha=0.1, ci=None)
    monkeypatch.setattr(style_mod, "DENSE_MAX", 5)
    sparse = style_pairwise(data, x, alpha=0.1, ci=None)
    np.testing.assert_allclose(sparse.scores, dense.scores, atol=1e-7)
    np.testing.assert_allclose(sparse.style_coefficients, dense.style_coefficients, atol=1e-7)


# --- recovery -------------------------------------------------------------------------


def length_arena(seed=0, n=20, m=50_000, gamma=0.5):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.5, n)
    # verbose systems are not the better ones: length and ability are independent
    verbosity = rng.uniform(3.5, 6.5, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    la = np.round(np.exp(rng.normal(verbosity[a], 0.4)))
    lb = np.round(np.exp(rng.normal(verbosity[b], 0.4)))
    x = style_covariates(la[:, None], lb[:, None])
    scale = np.sqrt(np.mean(x * x))
    a_won = rng.random(m) < expit(theta[a] - theta[b] + gamma * x[:, 0] / scale)
    w, lo = np.where(a_won, a, b), np.where(a_won, b, a)
    sign = np.where(a_won, 1.0, -1.0)[:, None]
    return PairwiseData(w, lo, n), x * sign, theta


def test_synthetic_length_effect_recovered():
    data, x, theta = length_arena()
    fit = style_pairwise(data, x, feature_names=["length"])
    lo, hi = fit.style_ci95[0]
    assert lo <= 0.5 <= hi
    tau_style = kendalltau(fit.scores, theta).statistic
    tau_plain = kendalltau(bt_pairwise(data), theta).statistic
    assert tau_style > tau_plain
    assert tau_style > 0.85
    # the Hessian intervals cover the truth for most systems
    covered = np.mean(
        (fit.ci95[:, 0] <= theta - theta.mean()) & (theta - theta.mean() <= fit.ci95[:, 1])
    )
    assert covered >= 0.85


def test_bootstrap_intervals_agree_with_hessian():
    data, x, _ = length_arena(m=4000, n=6)
    hess = style_pairwise(data, x, feature_names=["length"])
    boot = style_pairwise(data, x, feature_names=["length"], ci="bootstrap", n_boot=60, seed=1)
    np.testing.assert_allclose(boot.scores, hess.scores)
    w_h = np.diff(hess.ci95, axis=1).ravel()
    w_b = np.diff(boot.ci95, axis=1).ravel()
    np.testing.assert_allclose(w_b, w_h, rtol=0.35)
    gw_h, gw_b = np.diff(hess.style_ci95[0]), np.diff(boot.style_ci95[0])
    np.testing.assert_allclose(gw_b, gw_h, rtol=0.35)


# --- errors --------------------------------------------------------------------------------


def test_bad_inputs():
    data, x = golden_data()
    with pytest.raises(InvalidInput, match="one row per judgment"):
        style_pairwise(data, x[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="finite"):
        style_pairwise(data, bad)
    with pytest.raises(InvalidInput, match='"beta"'):
        style_pairwise(data, x, beta=-1)
    with pytest.raises(InvalidInput, match='"ci"'):
        style_pairwise(data, x, ci="exact")
    with pytest.raises(InvalidInput, match='"feature_names"'):
        style_pairwise(data, x, feature_names=["one"])


def test_covariate_determined_by_the_pair_is_refused_without_beta():
    rng = np.random.default_rng(0)
    i = rng.integers(0, 4, 300)
    j = (i + rng.integers(1, 4, 300)) % 4
    data = PairwiseData(i, j, 4)
    c = np.array([1.0, 5.0, 2.0, 8.0])  # a covariate that is a difference of system constants
    x = (c[i] - c[j])[:, None]
    with pytest.raises(NotConverged, match="not identified"):
        style_pairwise(data, x, beta=0.0, alpha=0.0)
    assert np.isfinite(style_pairwise(data, x, beta=0.25, alpha=0.1).style_coefficients).all()


def test_covariates_are_not_modified():
    data, x, _ = length_arena(m=500, n=4)
    before = x.copy()
    style_pairwise(data, x, ci=None)
    np.testing.assert_array_equal(x, before)


def test_repeated_comparisons_are_merged_without_changing_the_fit():
    # Three raters per item: every (pair, covariates) row appears three times.
    data, x, _ = length_arena(m=3000, n=8)
    rng = np.random.default_rng(9)
    flip = rng.random((3, len(data))) < 0.3  # raters disagree on some items
    w = np.concatenate([np.where(f, data.losers, data.winners) for f in flip])
    lo = np.concatenate([np.where(f, data.winners, data.losers) for f in flip])
    xx = np.concatenate([np.where(f[:, None], -x, x) for f in flip])
    many = PairwiseData(w, lo, 8, ties=rng.random(w.shape[0]) < 0.1)
    merged = style_design(many, xx, dedup=0.5)
    plain = style_design(many, xx)
    unique_rows = np.unique(np.column_stack([plain.pair, plain.x.T]), axis=0).shape[0]
    assert merged.n.shape[0] == unique_rows <= len(data)
    assert plain.n.shape[0] == len(many)
    params = rng.normal(size=9)
    for fn in (style_objective, style_gradient):
        np.testing.assert_allclose(
            fn(params, merged, 0.1, 0.2), fn(params, plain, 0.1, 0.2), rtol=1e-11
        )
    # bootstrap weights still resample whole judgments through the merged rows
    boot = merged.with_weights(np.arange(len(many), dtype=float))
    np.testing.assert_allclose(boot.n.sum(), np.arange(len(many)).sum())
    hess = style_pairwise(many, xx, feature_names=["length"])
    fit = style_pairwise(many, xx, feature_names=["length"], ci="bootstrap", n_boot=40)
    np.testing.assert_allclose(fit.scores, hess.scores)
    np.testing.assert_allclose(np.diff(fit.ci95).ravel(), np.diff(hess.ci95).ravel(), rtol=0.4)
