"""Time ``fitting.fit_project`` from the running pair counts against the judgments frames.

The store: ``--items`` pairwise items with ``--judgments`` human judgments from
``--raters`` synthetic raters over ``--systems`` systems (``store.seed_synthetic``,
round-robin; every pair of systems is met). Strengths 1-3, no ties.

Timed, each as exactly one ``fit_project`` call (Bradley-Terry with the worker's
settings: system level with Hessian intervals, response level with ``alpha = 0.01``
and no intervals; ``save=False`` on both sides), with the same ``--repeats`` for
every column, medians (``statistics.median``):

- ``frames``: ``from_counts=False``, the reference path (reads every judgment);
- ``counts, behind``: ``--behind`` new judgments were stored since the last fold,
  so the call folds them first, then reads the counts;
- ``counts, current``: the counts are up to date (the fold finds nothing new).

Before the steady state, the first (catch-up) fold of the whole store from watermark
0 is timed once (``fitting.refresh_pair_counts``), or ``--catchup-repeats`` times
after ``store.reset_pair_counts``. The two paths' scores are compared after each
repeat (largest absolute difference printed).

Goals (issue 17): at 1M judgments < 0.3 s (system) and < 0.8 s (response);
at 10M judgments < 1 s (system).

    python benchmarks/bench_fit_counts.py [--backend sqlite|postgres] [--items 100000]
        [--judgments 1000000] [--systems 20] [--repeats 5] [--behind 2000]
    python benchmarks/bench_fit_counts.py --items 1000000 --judgments 10000000 --levels system
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefstore import fitting, store  # noqa: E402

GOALS = {(1_000_000, "system"): 0.3, (1_000_000, "response"): 0.8,
         (10_000_000, "system"): 1.0}
# The worker's settings (fitting.refit_all).
OPTIONS = {"system": {"alpha": None, "ci": "hessian", "fallback_alpha": fitting.FALLBACK_ALPHA},
           "response": {"alpha": 0.01, "ci": None, "fallback_alpha": fitting.FALLBACK_ALPHA}}


def build(target: str, args) -> tuple[int, float]:
    start = time.perf_counter()
    db = store.connect(target)
    project = store.create_project(db, "bench", "pairwise", {"gold_rate": 0.0})
    store.seed_synthetic(db, project["id"], n_items=args.items, n_judgments=args.judgments,
                         n_raters=args.raters, n_systems=args.systems)
    db.execute("VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE")
    db.close()
    return project["id"], time.perf_counter() - start


def reusable(target: str, args) -> int | None:
    """The "bench" project of a store kept from an earlier run (--keep, --pg-url), if any."""
    if args.backend == "sqlite" and not (args.keep and Path(args.keep).exists()):
        return None
    if args.backend == "postgres" and not args.pg_url:
        return None
    project = store.find_project(store.connect(target), "bench")
    return None if project is None else project["id"]


def add_judgments(db, project_id: int, n: int, rng: random.Random, tag: str) -> None:
    """Store ``n`` more judgments (the import path: validated rows, one transaction)."""
    before = store.count_judgments(db, project_id)
    items = db.execute("SELECT MIN(id), MAX(id) FROM items WHERE project_id = ?",
                       [project_id]).fetchone()
    raters = [r[0] for r in db.execute("SELECT id FROM raters WHERE kind = 'human'")]
    store.insert_judgments(db, [
        {"item_id": rng.randint(*items), "rater_id": rng.choice(raters), "kind": "human",
         "outcome": "choice", "choice": rng.randrange(2), "strength": 1 + rng.randrange(3),
         "display_order": [0, 1], "submission_id": f"{tag}-{k}"} for k in range(n)])
    assert store.count_judgments(db, project_id) == before + n


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def max_gap(a: dict, b: dict) -> float:
    assert list(a["scores"]) == list(b["scores"])
    return max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"])


def run(target: str, project_id: int, args) -> None:
    db = store.connect(target)
    rng = random.Random(0)
    print(f"store: {args.items:,} items, {store.count_judgments(db, project_id):,} judgments, "
          f"{args.systems} systems ({db.dialect})")
    catchup = []
    for k in range(args.catchup_repeats):
        store.reset_pair_counts(db, project_id)  # from watermark 0, also on a reused store
        seconds, out = timed(fitting.refresh_pair_counts, db, project_id)
        catchup.append(seconds)
        print(f"catch-up fold {k + 1}: {seconds:.2f} s ({out['judgments']:,} judgments, "
              f"{out['steps']} steps)")
    rows = store.stored_pair_counts(db, project_id)
    print(f"count rows: {len(rows):,} ({(rows['level'] == 'system').sum():,} system, "
          f"{(rows['level'] == 'response').sum():,} response)")
    for level in args.levels:
        options = OPTIONS[level]
        times = {"frames": [], "behind": [], "current": []}
        gaps = []
        for r in range(args.repeats):
            # New submission ids on a reused store too, or the rows would be duplicates.
            add_judgments(db, project_id, args.behind, rng, f"bench-{time.time_ns()}")
            fit = {"level": level, "save": False, **options}
            t_behind, counted = timed(fitting.fit_project, db, project_id, **fit)
            t_current, _ = timed(fitting.fit_project, db, project_id, **fit)
            t_frames, framed = timed(fitting.fit_project, db, project_id, from_counts=False,
                                     **fit)
            times["behind"].append(t_behind)
            times["current"].append(t_current)
            times["frames"].append(t_frames)
            gaps.append(max_gap(counted, framed))
            print(f"  {level} repeat {r + 1}: frames {t_frames:.3f} s, counts behind "
                  f"{t_behind:.3f} s, counts current {t_current:.3f} s, gap {gaps[-1]:.1e}")
        med = {k: statistics.median(v) for k, v in times.items()}
        goal = GOALS.get((args.judgments, level))
        print(f"{level}: median of {args.repeats}: frames {med['frames']:.3f} s | counts, "
              f"{args.behind:,} behind {med['behind']:.3f} s | counts, current "
              f"{med['current']:.3f} s | x{med['frames'] / med['behind']:.1f} | "
              f"largest score gap {max(gaps):.1e}")
        if goal is not None:
            met = "met" if med["behind"] < goal and med["current"] < goal else "NOT met"
            print(f"goal {level} at {args.judgments:,} judgments < {goal} s: {met}")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", help="a PostgreSQL database (default: a throwaway "
                        "cluster); a store built there earlier is reused")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--catchup-repeats", type=int, default=1)
    parser.add_argument("--behind", type=int, default=2000)
    parser.add_argument("--levels", default="system,response")
    parser.add_argument("--keep", help="build (or reuse) the SQLite store at this path")
    args = parser.parse_args()
    args.levels = [lv for lv in args.levels.split(",") if lv]
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    cluster = None
    with tempfile.TemporaryDirectory(prefix="bench_fit_counts_") as tmp:
        try:
            if args.backend == "postgres":
                url = args.pg_url
                if url is None:
                    from tests import pgcluster

                    cluster = pgcluster.Cluster().start()
                    url = cluster.url()
                target = url
            else:
                target = args.keep or str(Path(tmp) / "bench.db")
            existing = reusable(target, args)
            if existing is not None:
                project_id = existing
                print(f"reusing the store at {target}")
            else:
                project_id, seconds = build(target, args)
                print(f"built in {seconds:.1f} s")
            run(target, project_id, args)
        finally:
            store.close_pools()
            if cluster is not None:
                cluster.stop()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
