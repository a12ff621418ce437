"""Benchmark prefstore.models against choix on synthetic data; prints figures.

Run from the repository root::

    python benchmarks/bench_models.py            # everything (about 5-8 minutes, mostly choix)
    python benchmarks/bench_models.py --quick    # smaller sizes, no choix on the big cases

Figures are wall-clock medians on this machine; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import choix  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from prefstore.models import (  # noqa: E402
    BradleyTerry,
    Mixture,
    PairwiseData,
    aggregate_pairwise,
    bt_objective,
    bt_pairwise,
)
from prefstore.models.bradley_terry import bt_pairwise_cov  # noqa: E402


class Timeout(Exception):
    pass


@contextmanager
def time_cap(seconds: int):
    """Interrupt pure-Python code (choix's loops) after ``seconds``."""

    def handler(signum, frame):
        raise Timeout

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def median_time(fn, repeat: int = 5) -> tuple[float, object]:
    """Return the best of ``repeat`` wall times (as ``timeit`` does) and the last result.

    The best time is the least disturbed by other processes on a shared machine;
    the median is printed alongside when it differs by more than 20%.
    """
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    if median > 1.2 * best:
        print(f"    (noisy: best {best:.3f} s, median {median:.3f} s over {repeat} runs)")
    return best, out


def arena(n_items: int, m: int, tie_rate: float, seed: int):
    """Raw battles: random pairs, Bradley-Terry outcomes, a share of ties."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_items)
    i = rng.integers(0, n_items, m)
    j = (i + rng.integers(1, n_items, m)) % n_items
    win = rng.random(m) < 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
    ties = rng.random(m) < tie_rate
    return np.where(win, i, j), np.where(win, j, i), ties, theta


def choix_rows(w, lo, ties):
    """Ties as half wins in choix's unweighted format: every win twice, a tie once each way."""
    wins = np.column_stack([w[~ties], lo[~ties]])
    tie_pairs = np.column_stack([w[ties], lo[ties]])
    rows = np.concatenate([wins, wins, tie_pairs, tie_pairs[:, ::-1]])
    return rows.tolist()


def fit_from_raw(w, lo, ties, n_items, alpha):
    return bt_pairwise(PairwiseData(w, lo, n_items, ties=ties), alpha=alpha)


def rel_gap(f_other: float, f_ours: float) -> float:
    return (f_other - f_ours) / abs(f_ours)


def run_choix(label, fn, cap):
    try:
        with time_cap(cap):
            start = time.perf_counter()
            out = fn()
            return time.perf_counter() - start, out
    except Timeout:
        print(f"  {label}: stopped at the {cap} s cap")
        return None, None


def bench_arena(args):
    n, m = 200, args.arena
    alpha = 1.0
    print(f"\n== Arena: {m:,} battles over {n} systems, 10% ties, alpha = {alpha} ==")
    w, lo, ties, _ = arena(n, m, 0.10, seed=1)
    t_fit, theta = median_time(lambda: fit_from_raw(w, lo, ties, n, alpha), 7)
    counts = aggregate_pairwise(PairwiseData(w, lo, n, ties=ties))
    t_agg, _ = median_time(lambda: aggregate_pairwise(PairwiseData(w, lo, n, ties=ties)))
    print(f"  prefstore bt_pairwise incl. aggregation: {t_fit:.3f} s (aggregation {t_agg:.3f} s)")
    t_ml, theta_ml = median_time(lambda: fit_from_raw(w, lo, ties, n, 0.0), 7)
    print(f"  prefstore ML (alpha = 0):                {t_ml:.3f} s")

    # choix, same ML objective on the full arena (ILSR converges to the MLE).
    rows = choix_rows(w, lo, ties)
    t_ilsr, p = run_choix(
        "choix.ilsr_pairwise", lambda: choix.ilsr_pairwise(n, rows, alpha=0.0, tol=1e-10), args.cap
    )
    if t_ilsr is not None:
        gap = rel_gap(bt_objective(p, counts, 0.0), bt_objective(theta_ml, counts, 0.0))
        print(
            f"  choix.ilsr_pairwise (ML, {len(rows):,} rows): {t_ilsr:.2f} s -> "
            f"{t_ilsr / t_ml:.0f}x slower; objective gap {gap:.1e} (relative)"
        )

    # choix, same penalized objective: opt_pairwise on a subset (its loops are pure Python).
    sub = args.choix_subset
    ws, ls, ts = w[:sub], lo[:sub], ties[:sub]
    sub_counts = aggregate_pairwise(PairwiseData(ws, ls, n, ties=ts))
    t_sub, theta_sub = median_time(lambda: fit_from_raw(ws, ls, ts, n, alpha))
    rows = choix_rows(ws, ls, ts)
    # choix's objective on doubled rows is twice ours, so its alpha doubles too.
    t_opt, p = run_choix(
        "choix.opt_pairwise",
        lambda: choix.opt_pairwise(n, rows, alpha=2 * alpha, tol=1e-10),
        args.cap,
    )
    if t_opt is not None:
        gap = rel_gap(
            bt_objective(p, sub_counts, alpha), bt_objective(theta_sub, sub_counts, alpha)
        )
        print(
            f"  subset {sub:,} battles: prefstore {t_sub:.4f} s, choix.opt_pairwise "
            f"(alpha {alpha}) {t_opt:.2f} s -> {t_opt / t_sub:.0f}x; objective gap {gap:.1e}"
        )

    # Intervals: Hessian (one n x n inverse) against a 100-round bootstrap.
    t_cov, _ = median_time(lambda: bt_pairwise_cov(theta, counts, alpha), repeat=3)
    data = PairwiseData(w, lo, n, ties=ties)
    t_full_ci, _ = median_time(lambda: BradleyTerry().fit(data, alpha=alpha), repeat=5)
    t_boot, _ = median_time(
        lambda: BradleyTerry().fit(data, alpha=alpha, ci="bootstrap", n_boot=100, seed=0),
        repeat=1,
    )
    print(
        f"  95% CI: Hessian {t_cov:.3f} s (fit + CI {t_full_ci:.3f} s); 100-round bootstrap "
        f"{t_boot:.2f} s (warm-started refits); 100 plain fits {100 * t_fit:.1f} s; "
        f"ratio fit+CI / bootstrap = {t_full_ci / t_boot:.3f}"
    )
    return t_fit


def bench_pool(args):
    n, m = 6000, args.pool
    alpha = 1.0
    print(f"\n== Pool (GIFGIF size): {m:,} comparisons over {n:,} items, alpha = {alpha} ==")
    w, lo, _, _ = arena(n, m, 0.0, seed=2)
    counts = aggregate_pairwise(PairwiseData(w, lo, n))
    t_fit, theta = median_time(lambda: bt_pairwise(PairwiseData(w, lo, n), alpha=alpha), 3)
    print(f"  prefstore bt_pairwise (sparse Newton-CG): {t_fit:.3f} s")
    if args.quick:
        return
    rows = np.column_stack([w, lo]).tolist()
    t_opt, p = run_choix(
        "choix.opt_pairwise",
        lambda: choix.opt_pairwise(n, rows, alpha=alpha, tol=1e-10),
        args.cap,
    )
    if t_opt is not None:
        gap = rel_gap(bt_objective(p, counts, alpha), bt_objective(theta, counts, alpha))
        print(
            f"  choix.opt_pairwise: {t_opt:.1f} s -> {t_opt / t_fit:.0f}x slower; "
            f"objective gap {gap:.1e}"
        )


def bench_mixture(args):
    n, raters, per = 50, 1000, args.mixture // 1000
    print(f"\n== Mixture: {raters * per:,} comparisons, {raters:,} raters, {n} systems, K = 3 ==")
    rng = np.random.default_rng(3)
    base = np.linspace(-2, 2, n)
    truth = np.stack([base, -base, rng.permutation(base)])
    z = np.arange(raters) % 3
    rater = np.repeat(np.arange(raters), per)
    m = rater.shape[0]
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    th = truth[z[rater]]
    win = rng.random(m) < 1 / (1 + np.exp(-(th[np.arange(m), i] - th[np.arange(m), j])))
    data = PairwiseData(np.where(win, i, j), np.where(win, j, i), n, raters=rater)
    t, fit = median_time(lambda: Mixture().fit(data, k=3), repeat=1)
    ari = adjusted_rand_score(z, fit.rater_probs.argmax(axis=1))
    print(f"  Mixture().fit(k=3, 4 restarts, with CIs): {t:.2f} s; ARI {ari:.3f}")
    t_bic, fit = median_time(lambda: Mixture().fit(data, k=None, k_max=4), repeat=1)
    print(f"  K by BIC over 1..4: {t_bic:.2f} s, chose K = {fit.k}")


def bench_scaling(args):
    print("\n== Scaling: arena fit incl. aggregation, 200 systems, 10% ties, alpha = 1 ==")
    sizes = [100_000, 1_000_000] + ([] if args.quick else [10_000_000])
    times = []
    for m in sizes:
        w, lo, ties, _ = arena(200, m, 0.10, seed=4)
        t, _ = median_time(lambda w=w, lo=lo, ties=ties: fit_from_raw(w, lo, ties, 200, 1.0), 3)
        times.append(t)
        print(f"  {m:>12,} battles: {t:.3f} s")
    for a, b, ta, tb in zip(sizes, sizes[1:], times, times[1:]):
        print(f"  x{b // a} comparisons ({a:,} -> {b:,}): x{tb / ta:.1f} time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, skip slow choix runs")
    parser.add_argument("--cap", type=int, default=300, help="time cap per choix run, seconds")
    args = parser.parse_args()
    args.arena = 100_000 if args.quick else 1_000_000
    args.pool = 20_000 if args.quick else 100_000
    args.mixture = 50_000 if args.quick else 200_000
    args.choix_subset = 10_000 if args.quick else 100_000
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, choix {choix_version()}, "
        f"{os.cpu_count()} cores; times are the best of several runs unless noted"
    )
    bench_arena(args)
    bench_pool(args)
    bench_mixture(args)
    bench_scaling(args)


def choix_version() -> str:
    from importlib.metadata import version

    return version("choix")


if __name__ == "__main__":
    main()
