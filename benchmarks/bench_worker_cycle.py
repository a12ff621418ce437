"""Time the worker's whole refit cycle on a big store, part by part, with its peak memory.

The cycle is what a refit job runs (``worker.run_refit``): the default model fits
(``fitting.refit_all``), the agreement report, the win-rate matrices and the
edit report. The store (SQLite): ``--items`` pairwise items with ``--judgments``
human judgments from ``--raters`` synthetic raters (``store.seed_synthetic``,
round-robin, so every pair of raters shares items).

Each repeat runs the cycle in a fresh child process on the same store, so its
peak RSS (``ru_maxrss``) is the cycle's own, not the store build's. Times are
wall seconds; the figures are medians over ``--repeats``.

Goal (issue 17): the whole cycle at 1M judgments < 10 s wall and < 500 MB peak RSS.

    python benchmarks/bench_worker_cycle.py [--items 100000] [--judgments 1000000]
                                            [--raters 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefstore import store  # noqa: E402

GOAL_S = 10.0
GOAL_MB = 500.0
PARTS = ("fits", "agreement", "win_rates", "edits")

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from prefstore import agreement, edits, fitting, leaderboard, store
db = store.connect({db!r})
project = store.get_project(db, "bench")["id"]
times = {{}}
start = time.perf_counter()
fits = fitting.refit_all(db, project)
times["fits"] = time.perf_counter() - start
t = time.perf_counter()
agreement.refresh_agreement(db, project)
times["agreement"] = time.perf_counter() - t
t = time.perf_counter()
leaderboard.refresh_win_rates(db, project)
times["win_rates"] = time.perf_counter() - t
t = time.perf_counter()
edits.refresh_edit_report(db, project)
times["edits"] = time.perf_counter() - t
times["total"] = time.perf_counter() - start
times["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times["failed"] = sorted(fits.get("failed", {{}}))
print(json.dumps(times))
"""


def build(path: Path, n_items: int, n_judgments: int, n_raters: int) -> float:
    start = time.perf_counter()
    db = store.connect(path)
    project = store.create_project(db, "bench", "pairwise", {
        "raters_per_item": n_judgments // max(n_items, 1) + 5, "gold_rate": 0.0})
    store.seed_synthetic(db, project["id"], n_items=n_items, n_judgments=n_judgments,
                         n_raters=n_raters)
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - start


def run_cycle(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), db=str(path))],
                         capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the cycle failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefstore-cycle-") as tmp:
        path = Path(tmp) / "cycle.db"
        seconds = build(path, args.items, args.judgments, args.raters)
        print(f"store: {args.items:,} items, {args.judgments:,} judgments, {args.raters} raters, "
              f"built in {seconds:.1f} s")
        runs = []
        for k in range(args.repeats):
            runs.append(run_cycle(path))
            print(f"run {k + 1}: " + ", ".join(
                f"{p} {runs[-1][p]:.2f} s" for p in (*PARTS, "total"))
                + f", peak {runs[-1]['peak_mb']:.0f} MB (load {os.getloadavg()[0]:.2f})"
                + (f", failed fits: {runs[-1]['failed']}" if runs[-1]["failed"] else ""))
    print(f"\nmedians of {len(runs)} runs:")
    for part in (*PARTS, "total", "peak_mb"):
        values = [r[part] for r in runs]
        unit = "MB" if part == "peak_mb" else "s"
        print(f"  {part:<10} {statistics.median(values):8.2f} {unit} "
              f"(range {min(values):.2f}-{max(values):.2f})")
    total = statistics.median(r["total"] for r in runs)
    peak = statistics.median(r["peak_mb"] for r in runs)
    met = total < GOAL_S and peak < GOAL_MB
    print(f"goal: cycle < {GOAL_S:.0f} s and peak < {GOAL_MB:.0f} MB: "
          f"{'met' if met else 'NOT met'} ({total:.2f} s, {peak:.0f} MB); "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
