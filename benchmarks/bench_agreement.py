"""Benchmark prefstore's Krippendorff's alpha against fast-krippendorff; prints figures.

Run from the repository root::

    python benchmarks/bench_agreement.py                 # 100k units x 5 raters, 15 repeats
    python benchmarks/bench_agreement.py --repeats 31    # more repeats per side

Issue 17: prefstore's alpha must take at most fast-krippendorff's time (ratio
<= 1.0) on 100k units x 5 raters, nominal and ordinal, with values equal to
1e-9. The two calls alternate on the same matrix, each side gets the same
number of repeats, and every time printed is the true median
(``statistics.median``). fast-krippendorff (``import krippendorff``) is GPL:
it is a benchmark peer and test oracle here, never imported by prefstore/.
See benchmarks/README.md.
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

import krippendorff  # noqa: E402

from prefstore.agreement import krippendorff_alpha  # noqa: E402

ATOL = 1e-9


def reliability(units: int, raters: int, values: int, missing: float, seed: int) -> np.ndarray:
    """A (raters, units) matrix of codes 1..values that agree a little, NaN where missing."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, values + 1, size=units)
    noise = rng.integers(1, values + 1, size=(raters, units))
    data = np.where(rng.random((raters, units)) < 0.6, truth, noise).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--values", type=int, default=5, help="number of codes")
    parser.add_argument("--missing", type=float, default=0.2, help="share of empty cells")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = reliability(args.units, args.raters, args.values, args.missing, args.seed)
    print(
        f"{args.units:,} units x {args.raters} raters, {args.values} codes, "
        f"{np.isnan(data).mean():.1%} missing; {args.repeats} alternating repeats per side"
    )
    print(f"before: {load()}")
    ok = True
    for level in ("nominal", "ordinal"):
        ours, peer = [], []
        a = b = None
        for _ in range(args.repeats):
            start = time.perf_counter()
            a = krippendorff_alpha(data, level)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            b = krippendorff.alpha(data, level_of_measurement=level)
            peer.append(time.perf_counter() - start)
        gap = abs(a - float(b))
        ok &= gap <= ATOL
        t_ours, t_peer = statistics.median(ours), statistics.median(peer)
        print(
            f"{level:8s} prefstore {t_ours * 1e3:7.2f} ms (range {min(ours) * 1e3:.2f}-"
            f"{max(ours) * 1e3:.2f})  fast-krippendorff {t_peer * 1e3:7.2f} ms (range "
            f"{min(peer) * 1e3:.2f}-{max(peer) * 1e3:.2f})  ratio {t_ours / t_peer:.2f}x  "
            f"alpha {a:.12f} vs {float(b):.12f}, gap {gap:.1e} "
            f"({'equal' if gap <= ATOL else 'DIFFERENT'} to {ATOL:g})"
        )
    print(f"after: {load()}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
