"""Style-controlled fit against the plain Bradley-Terry fit on 1M battles; prints figures.

Run from the repository root::

    python benchmarks/bench_style.py               # 1M battles, 200 systems, 5 repeats
    python benchmarks/bench_style.py --battles 100000 --repeat 3

Synthetic, seeded arena: 200 systems, 10% ties, every response with its own word
count and header/list/bold counts drawn around its system's habits, and votes from
the style model with a length effect. Both fits start from the same PairwiseData
(built once, outside the timing) and compute point estimates only (``bt_pairwise``
against ``style_pairwise(ci=None)``); a second line times both with Hessian 95%
intervals. Runs alternate between the two fits and the medians of the same number
of runs are compared, so load from other processes hits both alike; medians of
wall time and of process CPU time are both printed (CPU time is steadier on a
shared machine). BLAS is pinned to one thread (both fits solve small dense systems,
where extra BLAS threads only add contention on a shared machine). The last block
says where the style fit's time goes, stage by stage (CPU time of one more run).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefstore.models import BradleyTerry, PairwiseData, bt_pairwise  # noqa: E402
from prefstore.models.style import style_covariates, style_pairwise  # noqa: E402

GAMMA = np.array([0.3, 0.1, 0.1, 0.05])  # true effects per standard deviation


def style_arena(n_items: int, m: int, tie_rate: float, seed: int):
    """Battles with style: returns winners, losers, ties, covariates (winner - loser), truth."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_items)
    log_words = rng.normal(5.5, 0.5, n_items)
    rates = rng.gamma(2.0, 1.0, (n_items, 3))
    a = rng.integers(0, n_items, m)
    b = (a + rng.integers(1, n_items, m)) % n_items

    def features(s):
        words = np.round(np.exp(rng.normal(log_words[s], 0.6))) + 1
        return np.column_stack([words, rng.poisson(rates[s])]).astype(float)

    x = style_covariates(features(a), features(b))
    eta = theta[a] - theta[b] + (x / np.sqrt((x * x).mean(axis=0))) @ GAMMA
    a_won = rng.random(m) < 1.0 / (1.0 + np.exp(-eta))
    ties = rng.random(m) < tie_rate
    sign = np.where(a_won, 1.0, -1.0)[:, None]
    return np.where(a_won, a, b), np.where(a_won, b, a), ties, x * sign, theta


def interleaved(fns: dict, repeat: int) -> dict:
    """Alternate the functions ``repeat`` times: {name: (median wall s, median CPU s, result)}."""
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    out = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            out[name] = fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), out[k]) for k in fns}


def stage_profile(data, x) -> list[tuple[str, int, float]]:
    """CPU seconds of each stage of one ``style_pairwise(ci=None)``: (stage, calls, seconds)."""
    from prefstore.models import style

    stages = {
        "setup (directed codes, counts, transpose + X^T X, sample)": (style, "_directed_rows"),
        "Bradley-Terry start (unordered pairs)": (style, "newton_minimize"),
        "start at gamma = 0 (per-pair sums of x, Hessian)": (style._DirectedFit, "first"),
        "objective passes (gather, x . g, exp, log)": (style._DirectedFit, "point"),
        "gradient passes (scatter, X^T p)": (style._DirectedFit, "gradient"),
        "sampled third-order correction": (style._DirectedFit, "sampled_third"),
        "sampled Hessian corrections": (style._DirectedFit, "corrected_hessian"),
        "exact Hessian rebuilds": (style._DirectedFit, "hessian"),
    }
    spent = {k: [0, 0.0] for k in stages}
    saved = []
    for label, (owner, name) in stages.items():
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def timed(*args, _fn=original, _label=label, **kwargs):
            start = time.process_time()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label][0] += 1
                spent[_label][1] += time.process_time() - start

        setattr(owner, name, timed)
    try:
        start = time.process_time()
        style_pairwise(data, x, ci=None)
        total = time.process_time() - start
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    rows = [(k, calls, s) for k, (calls, s) in spent.items()]
    rows.append(("other (solves, checks)", 0, total - sum(s for _, _, s in rows)))
    rows.append(("total", 0, total))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--systems", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, m = args.systems, args.battles
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
    )
    print(
        f"== {m:,} battles over {n} systems, 10% ties, 4 style covariates; "
        f"medians of {args.repeat} alternating runs =="
    )
    w, lo, ties, x, theta = style_arena(n, m, 0.10, seed=1)
    data = PairwiseData(w, lo, n, ties=ties)
    res = interleaved(
        {
            "bt": lambda: bt_pairwise(data),
            "style": lambda: style_pairwise(data, x, ci=None),
        },
        args.repeat,
    )
    t_bt, c_bt, plain = res["bt"]
    t_style, c_style, fit = res["style"]
    ratio = t_style / t_bt
    print(f"  bt_pairwise:                  {t_bt:.3f} s wall, {c_bt:.3f} s CPU")
    print(
        f"  style_pairwise(ci=None):      {t_style:.3f} s wall, {c_style:.3f} s CPU  -> ratio "
        f"{ratio:.2f}x wall, {c_style / c_bt:.2f}x CPU "
        f"(goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})"
    )
    res = interleaved(
        {
            "bt": lambda: BradleyTerry().fit(data),
            "style": lambda: style_pairwise(data, x, ci="hessian"),
        },
        max(1, args.repeat // 2),
    )
    print(
        f"  with Hessian 95% intervals:   BT {res['bt'][0]:.3f} s, style {res['style'][0]:.3f} s"
        f" -> ratio {res['style'][0] / res['bt'][0]:.2f}x wall, "
        f"{res['style'][1] / res['bt'][1]:.2f}x CPU"
    )
    truth = theta - theta.mean()
    names = ("length", "headers", "lists", "bold")
    coef = ", ".join(
        f"{k} {c:.3f} (true {g})" for k, c, g in zip(names, fit.style_coefficients, GAMMA)
    )
    print(
        f"  style coefficients: {coef} (ties are drawn apart from the vote, which "
        f"shrinks every effect a little)"
    )
    print(
        f"  Kendall tau with the true abilities: style {kendalltau(fit.scores, truth)[0]:.4f}, "
        f"plain BT {kendalltau(plain, truth)[0]:.4f}"
    )
    print("  where the style fit's CPU time goes (one more run):")
    for stage, calls, seconds in stage_profile(data, x):
        what = f" ({calls} call{'s' * (calls != 1)})" if calls else ""
        print(f"    {stage + what:62s} {1000 * seconds:7.1f} ms")


if __name__ == "__main__":
    main()
