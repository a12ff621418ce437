"""Time the worker's whole refit cycle on a big store, stage by stage, with its peak memory.

The cycle is what a refit job runs, ``worker.refit_cycle`` (``run_refit`` calls
it): the default model fits (``fitting.refit_all``), one read of the project's
frames (the judgments from their columnar copy, ``store.report_frame``), the
win-rate matrices, the agreement report, the edit report and the routing check,
each timed by the cycle itself. The store (SQLite): ``--items`` pairwise items with
``--judgments`` human judgments from ``--raters`` synthetic raters
(``store.seed_synthetic``, round-robin, so every pair of raters shares items),
built once and reused by every run.

Two cases, ``--repeats`` runs each:

- **cold**: the columnar copy is dropped first, so the read fetches every row
  and stores the copy again: the first cycle on a store, or after a copy-db.
- **warm**: ``--new`` judgments arrive first (on the first items, by a new
  synthetic rater each run), as between two scheduled refits; the read fetches
  only those. The store grows by ``--new`` per warm run.

Before them, the store's judgments are folded into the pair counts once, in a
child process timed on its own: what ``import_items`` and ``import_judgments``
run after their commit, so after a real import of these judgments the first
cycle is a cold one. ``--catchup`` adds one last run with the counts reset
(``store.reset_pair_counts``) and the copy dropped: what a store written
outside the import (raw SQL, or a store from before the pair counts) pays once.

Each run is a fresh child process (started and waited for here, nothing outlives
it), so its peak RSS (``ru_maxrss``) is the cycle's own, not the store build's.
The child times ``refit_cycle`` as a whole; imports happen before the clock
starts, as in a running worker. Times are wall seconds; the figures are medians
(``statistics.median``) over the runs of each case.

Goal (issue 17): the whole cycle at 1M judgments < 10 s wall and < 500 MB peak RSS.

    python benchmarks/bench_worker_cycle.py [--items 100000] [--judgments 1000000]
                                            [--raters 100] [--repeats 3] [--new 10000]
                                            [--without-fits] [--catchup] [--postgres]

``--without-fits`` replaces the fits with a no-op in the child: the stages that
remain (everything but the fits) and their peak memory, to combine with a
measure of the fits taken apart.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
STAGES = ("fits", "read", "win_rates", "agreement", "edits", "routing")
# What issue 17 left to this part of the work: everything but the fits.
REPORTS = ("read", "win_rates", "agreement", "edits", "routing")

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from prefstore import agreement, edits, fitting, leaderboard, store, worker
import prefstore.models  # what the cycle imports, and nothing more (sklearn: judges only)
if {without_fits!r}:  # the reports alone, to combine with a separate measure of the fits
    fitting.refit_all = lambda db, project, progress=None: {{}}
db = store.connect({db!r})
project = store.get_project(db, "bench")["id"]
start = time.perf_counter()
result = worker.refit_cycle(db, project)
times = dict(result["seconds"], total=time.perf_counter() - start)
times["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times["failed"] = sorted(result.get("failed", {{}}))
print(json.dumps(times))
"""


def build(path, n_items: int, n_judgments: int, n_raters: int) -> float:
    start = time.perf_counter()
    db = store.connect(path)
    project = store.create_project(db, "bench", "pairwise", {
        "raters_per_item": n_judgments // max(n_items, 1) + 5, "gold_rate": 0.0})
    store.seed_synthetic(db, project["id"], n_items=n_items, n_judgments=n_judgments,
                         n_raters=n_raters)
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - start


def drop_copy(path) -> None:
    """Forget the columnar copy: the next cycle reads every judgment again."""
    db = store.connect(path)
    with store.write(db):
        db.execute("DELETE FROM judgment_columns")
    db.close()


def add_judgments(path, n: int, tag: str) -> None:
    """Store ``n`` new judgments on the first items, by one new synthetic rater."""
    db = store.connect(path)
    project = store.get_project(db, "bench")["id"]
    rater, _ = store.create_rater(db, f"new-{tag}")
    items = [r[0] for r in db.execute(
        "SELECT id FROM items WHERE project_id = ? ORDER BY id LIMIT ?", [project, n])]
    store.insert_judgments(db, [
        {"item_id": item, "rater_id": rater["id"], "kind": "human", "display_order": [0, 1],
         "outcome": "choice", "choice": k % 2, "strength": 1 + k % 3, "time_ms": 1000,
         "submission_id": f"new-{tag}-{item}"} for k, item in enumerate(items)])
    db.close()


FOLD_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from prefstore import fitting, store
db = store.connect({db!r})
start = time.perf_counter()
done = fitting.refresh_pair_counts(db, "bench")
print(json.dumps({{"seconds": time.perf_counter() - start, "judgments": done["judgments"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def fold_after_import(path) -> dict:
    """Fold every judgment into the pair counts, as an import does after its commit."""
    out = subprocess.run([sys.executable, "-c", FOLD_CHILD.format(repo=str(REPO), db=str(path))],
                         capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the fold failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def reset_counts(path) -> None:
    """Forget the pair counts: the next fit folds every judgment from watermark 0."""
    db = store.connect(path)
    store.reset_pair_counts(db, store.get_project(db, "bench")["id"])
    db.close()


def run_cycle(path, without_fits: bool) -> dict:
    child = CHILD.format(repo=str(REPO), db=str(path), without_fits=without_fits)
    out = subprocess.run([sys.executable, "-c", child],
                         capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the cycle failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(case: str, runs: list[dict]) -> None:
    print(f"\n{case}: medians of {len(runs)} runs")
    for part in (*STAGES, "reports", "total", "peak_mb"):
        values = [r[part] for r in runs]
        unit = "MB" if part == "peak_mb" else "s"
        print(f"  {part:<10} {statistics.median(values):8.2f} {unit} "
              f"(range {min(values):.2f}-{max(values):.2f})")
    total = statistics.median(r["total"] for r in runs)
    peak = statistics.median(r["peak_mb"] for r in runs)
    met = total < GOAL_S and peak < GOAL_MB
    print(f"  goal: cycle < {GOAL_S:.0f} s and peak < {GOAL_MB:.0f} MB: "
          f"{'met' if met else 'NOT met'} ({total:.2f} s, {peak:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new", type=int, default=10_000,
                        help="judgments that arrive before each warm run")
    parser.add_argument("--without-fits", action="store_true",
                        help="skip fitting.refit_all (its stage reads 0): the reports alone")
    parser.add_argument("--catchup", action="store_true",
                        help="one more run at the end with the pair counts reset: the fold of "
                             "every judgment inside the cycle")
    parser.add_argument("--postgres", action="store_true",
                        help="the store on a throwaway PostgreSQL cluster (tests.pgcluster), "
                             "stopped at the end")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    cluster = None
    with tempfile.TemporaryDirectory(prefix="prefstore-cycle-") as tmp:
        try:
            if args.postgres:
                from tests import pgcluster

                cluster = pgcluster.Cluster().start()
                path = cluster.url()
                print(f"started a throwaway PostgreSQL cluster at {path}", flush=True)
            else:
                path = Path(tmp) / "cycle.db"
            cases = run_cases(path, args)
        finally:
            store.close_pools()
            if cluster is not None:
                cluster.stop()
    for case, runs in cases.items():
        summary(case, runs)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def run_cases(path, args) -> dict[str, list[dict]]:
    """Build the store, then run the cold and warm cycles, alternating."""
    seconds = build(path, args.items, args.judgments, args.raters)
    print(f"store: {args.items:,} items, {args.judgments:,} judgments, {args.raters} raters, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}, built in {seconds:.1f} s"
          + (" (fits skipped)" if args.without_fits else ""))
    fold = fold_after_import(path)
    print(f"the import's fold of {fold['judgments']:,} judgments into the pair counts "
          f"(fitting.refresh_pair_counts, as import_items / import_judgments run after their "
          f"commit): {fold['seconds']:.2f} s, peak {fold['peak_mb']:.0f} MB "
          f"(load {os.getloadavg()[0]:.2f})", flush=True)
    cases: dict[str, list[dict]] = {"cold": [], "warm": []}
    plan = [(case, k) for k in range(args.repeats) for case in cases]
    if args.catchup:
        cases["catch-up"] = []
        plan.append(("catch-up", 0))
    for case, k in plan:
        if case == "cold":
            drop_copy(path)
        elif case == "warm":
            add_judgments(path, args.new, str(k))
        else:
            reset_counts(path)
            drop_copy(path)
        run = run_cycle(path, args.without_fits)
        run["reports"] = sum(run[part] for part in REPORTS)
        cases[case].append(run)
        print(f"{case} run {k + 1}: " + ", ".join(
            f"{p} {run[p]:.2f} s" for p in (*STAGES, "total"))
            + f", peak {run['peak_mb']:.0f} MB (load {os.getloadavg()[0]:.2f})"
            + (f", failed fits: {run['failed']}" if run["failed"] else ""), flush=True)
    return cases


if __name__ == "__main__":
    main()
