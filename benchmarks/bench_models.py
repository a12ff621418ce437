"""Benchmark prefstore.models against choix on synthetic data; prints figures.

Run from the repository root::

    python benchmarks/bench_models.py            # everything (mostly choix: 3 runs of each)
    python benchmarks/bench_models.py --quick    # smaller sizes, no choix on the big cases
    python benchmarks/bench_models.py --repeat 5 # runs per timing (default 3)
    python benchmarks/bench_models.py --only mixture   # one case (repeatable)

Every figure is the median wall time of ``--repeat`` runs, the same count for
prefstore and for choix; the range is printed beside it. See benchmarks/README.md.
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
    mixture_pairwise,
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


def median_time(fn, repeat: int) -> tuple[float, object, list[float]]:
    """Return the median of ``repeat`` wall times, the last result, and all the times."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out, times


def spread(times: list[float]) -> str:
    """``"median of n (min-max)"``: what every printed time is."""
    if len(times) == 1:
        return "1 run"
    return f"median of {len(times)}, range {min(times):.3g}-{max(times):.3g} s"


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


def run_choix(label, fn, cap, repeat):
    """Time ``fn`` ``repeat`` times, each run capped at ``cap`` seconds; (median, out, times)."""
    times, out = [], None
    for _ in range(repeat):
        try:
            with time_cap(cap):
                start = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - start)
        except Timeout:
            print(f"  {label}: stopped at the {cap} s cap")
            return None, None, times
    return statistics.median(times), out, times


def bench_arena(args):
    n, m, r = 200, args.arena, args.repeat
    alpha = 1.0
    print(f"\n== Arena: {m:,} battles over {n} systems, 10% ties, alpha = {alpha} ==")
    w, lo, ties, _ = arena(n, m, 0.10, seed=1)
    t_fit, theta, times = median_time(lambda: fit_from_raw(w, lo, ties, n, alpha), r)
    counts = aggregate_pairwise(PairwiseData(w, lo, n, ties=ties))
    t_agg, _, _ = median_time(lambda: aggregate_pairwise(PairwiseData(w, lo, n, ties=ties)), r)
    print(f"  prefstore bt_pairwise incl. aggregation: {t_fit:.3f} s ({spread(times)}); "
          f"aggregation alone {t_agg:.3f} s")
    t_ml, theta_ml, times = median_time(lambda: fit_from_raw(w, lo, ties, n, 0.0), r)
    print(f"  prefstore ML (alpha = 0):                {t_ml:.3f} s ({spread(times)})")

    # choix, same ML objective on the full arena (ILSR converges to the MLE).
    rows = choix_rows(w, lo, ties)
    t_ilsr, p, times = run_choix(
        "choix.ilsr_pairwise", lambda: choix.ilsr_pairwise(n, rows, alpha=0.0, tol=1e-10),
        args.cap, r)
    if t_ilsr is not None:
        gap = rel_gap(bt_objective(p, counts, 0.0), bt_objective(theta_ml, counts, 0.0))
        print(
            f"  choix.ilsr_pairwise (ML, {len(rows):,} rows): {t_ilsr:.2f} s ({spread(times)}) "
            f"-> {t_ilsr / t_ml:.0f}x slower; objective gap {gap:.1e} (relative)"
        )

    # choix, same penalized objective: opt_pairwise on a subset (its loops are pure Python).
    sub = args.choix_subset
    ws, ls, ts = w[:sub], lo[:sub], ties[:sub]
    sub_counts = aggregate_pairwise(PairwiseData(ws, ls, n, ties=ts))
    t_sub, theta_sub, times_sub = median_time(lambda: fit_from_raw(ws, ls, ts, n, alpha), r)
    rows = choix_rows(ws, ls, ts)
    # choix's objective on doubled rows is twice ours, so its alpha doubles too.
    t_opt, p, times = run_choix(
        "choix.opt_pairwise",
        lambda: choix.opt_pairwise(n, rows, alpha=2 * alpha, tol=1e-10),
        args.cap, r,
    )
    print(f"  subset {sub:,} battles: prefstore {t_sub:.4f} s ({spread(times_sub)})")
    if t_opt is not None:
        gap = rel_gap(
            bt_objective(p, sub_counts, alpha), bt_objective(theta_sub, sub_counts, alpha)
        )
        print(
            f"  subset {sub:,} battles: choix.opt_pairwise (alpha {alpha}) {t_opt:.2f} s "
            f"({spread(times)}) -> {t_opt / t_sub:.0f}x; objective gap {gap:.1e}"
        )

    # Intervals: Hessian (one n x n inverse) against a 100-round bootstrap.
    t_cov, _, _ = median_time(lambda: bt_pairwise_cov(theta, counts, alpha), r)
    data = PairwiseData(w, lo, n, ties=ties)
    t_full_ci, _, times_ci = median_time(lambda: BradleyTerry().fit(data, alpha=alpha), r)
    t_boot, _, times_boot = median_time(
        lambda: BradleyTerry().fit(data, alpha=alpha, ci="bootstrap", n_boot=100, seed=0), r)
    print(
        f"  95% CI: Hessian {t_cov:.3f} s (fit + CI {t_full_ci:.3f} s, {spread(times_ci)}); "
        f"100-round bootstrap {t_boot:.2f} s ({spread(times_boot)}, warm-started refits); "
        f"100 plain fits {100 * t_fit:.1f} s; ratio fit+CI / bootstrap = "
        f"{t_full_ci / t_boot:.3f}"
    )
    return t_fit


def bench_pool(args):
    n, m, r = 6000, args.pool, args.repeat
    alpha = 1.0
    print(f"\n== Pool (GIFGIF size): {m:,} comparisons over {n:,} items, alpha = {alpha} ==")
    w, lo, _, _ = arena(n, m, 0.0, seed=2)
    counts = aggregate_pairwise(PairwiseData(w, lo, n))
    t_fit, theta, times = median_time(lambda: bt_pairwise(PairwiseData(w, lo, n), alpha=alpha),
                                      r)
    print(f"  prefstore bt_pairwise (sparse Newton-CG): {t_fit:.3f} s ({spread(times)})")
    if args.quick:
        return
    rows = np.column_stack([w, lo]).tolist()
    t_opt, p, times = run_choix(
        "choix.opt_pairwise",
        lambda: choix.opt_pairwise(n, rows, alpha=alpha, tol=1e-10),
        args.cap, r,
    )
    if t_opt is not None:
        gap = rel_gap(bt_objective(p, counts, alpha), bt_objective(theta, counts, alpha))
        print(
            f"  choix.opt_pairwise: {t_opt:.1f} s ({spread(times)}) -> {t_opt / t_fit:.0f}x "
            f"slower; objective gap {gap:.1e}"
        )


def bench_mixture(args):
    n, raters, per, r = 50, 1000, args.mixture // 1000, args.repeat
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
    # Fixed K and K by BIC alternate, run for run, so both see the same machine load.
    fixed, by_bic = [], []
    for _ in range(r):
        start = time.perf_counter()
        fit = Mixture().fit(data, k=3)
        fixed.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit_bic = Mixture().fit(data, k=None, k_max=4)
        by_bic.append(time.perf_counter() - start)
    t, t_bic = statistics.median(fixed), statistics.median(by_bic)
    ari = adjusted_rand_score(z, fit.rater_probs.argmax(axis=1))
    print(f"  Mixture().fit(k=3, 4 restarts, with CIs): {t:.2f} s ({spread(fixed)}); "
          f"ARI {ari:.3f}")
    print(f"  K by BIC over 1..4 (warm-started): {t_bic:.2f} s ({spread(by_bic)}), chose "
          f"K = {fit_bic.k}; {t_bic / t:.2f}x the fixed-K fit (medians, alternating runs); "
          f"load average {load()}")
    scratch = {}
    if not args.quick:  # the search before issue 17: every K from scratch, 4 restarts
        start = time.perf_counter()
        scratch = {k: mixture_pairwise(data, k=k) for k in range(1, 5)}
        t_old = time.perf_counter() - start
        print(f"  every K from scratch (the former search): {t_old:.2f} s (1 run), "
              f"{t_old / t:.1f}x the fixed-K median")
    for k, bic in fit_bic.params["bic_by_k"].items():
        ll = fit_bic.params["ll_by_k"][k]
        old = f"; from scratch (4 restarts) {scratch[k].log_likelihood:.2f}" if scratch else ""
        print(f"    K = {k}: BIC {bic:.2f}, log-likelihood {ll:.2f}{old}")


def bench_scaling(args):
    print("\n== Scaling: arena fit incl. aggregation, 200 systems, 10% ties, alpha = 1 ==")
    sizes = [100_000, 1_000_000] + ([] if args.quick else [10_000_000])
    medians = []
    for m in sizes:
        w, lo, ties, _ = arena(200, m, 0.10, seed=4)
        t, _, times = median_time(
            lambda w=w, lo=lo, ties=ties: fit_from_raw(w, lo, ties, 200, 1.0), args.repeat)
        medians.append(t)
        print(f"  {m:>12,} battles: {t:.3f} s ({spread(times)})")
    for a, b, ta, tb in zip(sizes, sizes[1:], medians, medians[1:]):
        print(f"  x{b // a} comparisons ({a:,} -> {b:,}): x{tb / ta:.1f} time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, skip slow choix runs")
    parser.add_argument("--cap", type=int, default=300, help="time cap per choix run, seconds")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per timing, the same for prefstore and choix (median)")
    parser.add_argument("--only", choices=sorted(CASES), action="append",
                        help="run only this case (repeatable); default: all")
    args = parser.parse_args()
    args.arena = 100_000 if args.quick else 1_000_000
    args.pool = 20_000 if args.quick else 100_000
    args.mixture = 50_000 if args.quick else 200_000
    args.choix_subset = 10_000 if args.quick else 100_000
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, choix {choix_version()}, "
        f"{os.cpu_count()} cores; every time is the median of {args.repeat} runs, the same "
        f"count for prefstore and choix; load average {load()}"
    )
    for name in args.only or CASES:
        CASES[name](args)
    print(f"\nload average at the end: {load()}")


CASES = {"arena": bench_arena, "pool": bench_pool, "mixture": bench_mixture,
         "scaling": bench_scaling}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def choix_version() -> str:
    from importlib.metadata import version

    return version("choix")


if __name__ == "__main__":
    main()
