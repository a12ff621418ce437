"""Benchmark Bradley-Terry Hessian intervals on big pools; prints figures.

Run from the repository root::

    python benchmarks/bench_intervals.py              # 100k responses / 1M judgments + sweep
    python benchmarks/bench_intervals.py --no-sweep   # the big pool only
    python benchmarks/bench_intervals.py --repeats 5

Issue 17: response-level 95% intervals for 100k items / 1M judgments in < 10 s,
from the sparse Hessian (:func:`prefstore.models.sparse_var.centred_var`)
instead of a dense n x n inverse (refused above 4,000 items before).

- **pool**: response-level data as prefstore builds it: 25,000 prompts x 4
  responses = 100,000 items; each judgment compares two responses to the same
  prompt (Bradley-Terry outcomes from random true strengths), alpha = 1 (the
  prior of response-level export fits). Components are checked against a dense
  inverse of their own block.
- **random pairs**: ``bench_models.py``'s arena generator (uniform random pairs)
  over the same 100,000 items: one connected expander whose exact inverse
  diagonal is out of reach; the call must refuse quickly and clearly.
- **sweep**: one connected component of s items, dense inverse against the
  sparse LU path, forced either way, on random pairs (10 judgments per item)
  and on a chain, with the factor-size bound that picks between them; and the old whole-matrix dense inverse against the new
  per-component path on pools of n items.

Every time is the true median (``statistics.median``) of ``--repeats`` runs,
the two sides alternating. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy.sparse import identity  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

from prefstore.errors import InvalidInput  # noqa: E402
from prefstore.models import (  # noqa: E402
    BradleyTerry,
    PairwiseData,
    aggregate_pairwise,
    bt_pairwise,
    sparse_var,  # noqa: E402
)
from prefstore.models.base import centred_cov, laplacian  # noqa: E402
from prefstore.models.bradley_terry import bt_hessian, bt_pairwise_var  # noqa: E402
from prefstore.models.sparse_var import SPARSE_GAIN  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def alternate(fns: dict, repeats: int) -> dict:
    """Run each callable ``repeats`` times, alternating; return (median, min, max, last)."""
    times = {k: [] for k in fns}
    last = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t, last[k] = timed(fn)
            times[k].append(t)
    return {k: (statistics.median(v), min(v), max(v), last[k]) for k, v in times.items()}


def fmt(entry) -> str:
    med, lo, hi, _ = entry
    return f"{med:.3f} s (range {lo:.3f}-{hi:.3f})"


def pool(n_prompts: int, per_prompt: int, m: int, seed: int) -> PairwiseData:
    """Judgments between two responses to the same prompt, Bradley-Terry outcomes."""
    rng = np.random.default_rng(seed)
    n = n_prompts * per_prompt
    theta = rng.normal(size=n)
    prompt = rng.integers(0, n_prompts, m)
    a = rng.integers(0, per_prompt, m)
    b = (a + rng.integers(1, per_prompt, m)) % per_prompt
    i, j = per_prompt * prompt + a, per_prompt * prompt + b
    win = rng.random(m) < 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
    return PairwiseData(np.where(win, i, j), np.where(win, j, i), n)


def random_pairs(n: int, m: int, seed: int) -> PairwiseData:
    """bench_models.py's arena generator without ties: uniform random pairs."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
    return PairwiseData(np.where(win, i, j), np.where(win, j, i), n)


def check_blocks(h, var: np.ndarray, alpha: float, k: int, seed: int) -> float:
    """Largest relative gap to a dense inverse of ``k`` random components' own blocks."""
    h = h.tocsr()
    n = h.shape[0]
    _, label = connected_components(h, directed=False)
    worst = 0.0
    for c in np.random.default_rng(seed).choice(label.max() + 1, k, replace=False):
        idx = np.flatnonzero(label == c)
        block = h[idx][:, idx].toarray()
        # Bradley-Terry: H 1 = 2 alpha 1, so centring subtracts 1 / (2 alpha n).
        ref = np.diag(np.linalg.inv(block)) - 1.0 / (2 * alpha * n)
        worst = max(worst, float(np.max(np.abs(var[idx] / ref - 1))))
    return worst


def bench_pool(args) -> None:
    n = args.prompts * args.per_prompt
    alpha = 1.0
    print(f"\n== Pool: {args.prompts:,} prompts x {args.per_prompt} responses = {n:,} items, "
          f"{args.judgments:,} judgments, alpha = {alpha} ==")
    data = pool(args.prompts, args.per_prompt, args.judgments, seed=1)
    counts = aggregate_pairwise(data)
    theta = bt_pairwise(counts, alpha)
    n_comp, _ = connected_components(bt_hessian(theta, counts, alpha), directed=False)
    print(f"  {counts.n_pairs:,} distinct pairs, {n_comp:,} connected components")
    r = alternate({
        "intervals": lambda: bt_pairwise_var(theta, counts, alpha),
        "fit+ci": lambda: BradleyTerry().fit(data, alpha=alpha, ci="hessian"),
        "fit": lambda: BradleyTerry().fit(data, alpha=alpha, ci=None),
    }, args.repeats)
    var = r["intervals"][3]
    gap = check_blocks(bt_hessian(theta, counts, alpha), var, alpha, 50, seed=2)
    fit = r["fit+ci"][3]
    print(f"  intervals alone (bt_pairwise_var): {fmt(r['intervals'])}; goal < 10 s: "
          f"{'met' if r['intervals'][0] < 10 else 'NOT met'}")
    print(f"  BradleyTerry().fit, ci='hessian': {fmt(r['fit+ci'])}; ci=None: {fmt(r['fit'])}")
    print(f"  all {n:,} intervals finite: {bool(np.isfinite(fit.ci95).all())}; "
          f"50 components against a dense inverse of their block: max relative gap {gap:.1e}")
    print(f"  {load()}")


def bench_random(args) -> None:
    n = args.prompts * args.per_prompt
    print(f"\n== Random pairs (bench_models' arena generator): {n:,} items, "
          f"{args.judgments:,} judgments, alpha = 1.0 ==")
    counts = aggregate_pairwise(random_pairs(n, args.judgments, seed=3))
    theta = bt_pairwise(counts, 1.0)
    t, out = timed(lambda: _refusal(theta, counts))
    print(f"  bt_pairwise_var after {t:.2f} s: {out}")
    print(f"  {load()}")


def _refusal(theta, counts) -> str:
    try:
        bt_pairwise_var(theta, counts, 1.0)
    except InvalidInput as exc:
        return f"refused: {exc}"
    return "computed"


def sweep(args) -> None:
    print("\n== Sweep: one connected component of s items, dense inverse vs sparse LU ==")
    print("  (times are diag(H^-1) only; alternating, median of "
          f"{args.sweep_repeats}; LU on random pairs skipped above {args.lu_max:,})")
    print(f"  {'graph':13s} {'s':>6s} {'bound/s^2':>9s} {'picks':>6s} {'dense s':>9s} "
          f"{'sparse LU s':>12s} {'LU/dense':>9s}")
    rng = np.random.default_rng(4)
    for graph in ("random pairs", "chain"):
        for s in args.sizes:
            if graph == "chain":
                lo, hi = np.arange(s - 1), np.arange(1, s)
            else:
                i = rng.integers(0, s, 10 * s)
                j = (i + rng.integers(1, s, 10 * s)) % s
                lo, hi = np.minimum(i, j), np.maximum(i, j)
            # A Bradley-Terry Hessian at equal strengths (weight 1/4 per judgment), alpha = 1.
            h = (laplacian(s, lo, hi, np.full(lo.size, 0.25), dense=False) + 2.0 * identity(s))
            fns = {"dense": lambda h=h: _with(h, block=10**9, gain=SPARSE_GAIN)}
            if graph == "chain" or s <= args.lu_max:
                fns["lu"] = lambda h=h: _with(h, block=0, gain=0)
            r = alternate(fns, args.sweep_repeats)
            gap = ""
            if "lu" in r:
                rel = np.max(np.abs(r["lu"][3] / r["dense"][3] - 1))
                gap = f"{r['lu'][0]:12.3f} {r['lu'][0] / r['dense'][0]:9.2f}  gap {rel:.0e}"
            edges = (h.nnz - s) // 2
            bound = 2 * s if edges < s else sparse_var._envelope(h.tocsr())
            picks = "dense" if bound * SPARSE_GAIN > s * s else "LU"
            print(f"  {graph:13s} {s:6d} {bound / s**2:9.3f} {picks:>6s} "
                  f"{r['dense'][0]:9.3f} {gap}")
    print("\n== Sweep: old whole-matrix dense inverse vs per-component, pools of n items ==")
    print(f"  {'n':>6s} {'old dense s':>12s} {'new s':>9s} {'new/old':>8s}")
    for n in args.pool_sizes:
        data = pool(n // 4, 4, 10 * n, seed=5)
        counts = aggregate_pairwise(data)
        theta = bt_pairwise(counts, 1.0)
        h = bt_hessian(theta, counts, 1.0)
        r = alternate({
            "old": lambda h=h: np.diag(centred_cov(h)),
            "new": lambda h=h: sparse_var.centred_var(h),
        }, args.sweep_repeats)
        rel = np.max(np.abs(r["new"][3] / r["old"][3] - 1))
        print(f"  {n:6d} {r['old'][0]:12.3f} {r['new'][0]:9.4f} "
              f"{r['new'][0] / r['old'][0]:8.3f}  gap {rel:.0e}")
    print(f"  {load()}")


def _with(h, block: int, gain: float) -> np.ndarray:
    """centred_var with the switch forced: dense (``block`` huge) or sparse LU (``gain`` 0)."""
    old = sparse_var.DENSE_CI_BLOCK, sparse_var.SPARSE_GAIN
    sparse_var.DENSE_CI_BLOCK, sparse_var.SPARSE_GAIN = block, gain
    try:
        return sparse_var.centred_var(h)
    finally:
        sparse_var.DENSE_CI_BLOCK, sparse_var.SPARSE_GAIN = old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=25_000)
    parser.add_argument("--per-prompt", type=int, default=4)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--lu-max", type=int, default=2000,
                        help="largest random-pairs component given to sparse LU in the sweep")
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    args = parser.parse_args()
    print(f"numpy {np.__version__}; {os.cpu_count()} cores; {load()}")
    bench_pool(args)
    bench_random(args)
    if args.sweep:
        sweep(args)


if __name__ == "__main__":
    main()
