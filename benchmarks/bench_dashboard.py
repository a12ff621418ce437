"""Time every dashboard page on a store holding 1M judgments.

Steps:

1. build: a project of 200k pairwise items and 1M human judgments
   (``store.seed_synthetic``);
2. precompute, as the worker would (its system-level fits and
   ``agreement.refresh_agreement``), plus what a dashboard computes once on
   its first visit (the human BT and mixture fits, the win rates, the edit
   report): timed per step, not part of the page times;
3. pages: an AppTest run of each dashboard page as an admin, first with
   empty Streamlit caches ("first") and then again ("warm").

Goal: every page renders in < 1 s. Pass ``--db`` to reuse a built store.

    python benchmarks/bench_dashboard.py [--items 200000] [--judgments 1000000] [--db PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefstore import agreement, edits, fitting, leaderboard, store  # noqa: E402
from prefstore.errors import PrefstoreError  # noqa: E402

GOAL_S = 1.0
ADMIN_TOKEN = "bench-admin-token"
PAGES = {
    "Overview": "pages/dashboard.py",
    "Agreement": "pages/agreement.py",
    "Leaderboard": "pages/leaderboard.py",
    "Rater types": "pages/rater-types.py",
    "Judges": "pages/judges.py",
    "Edits": "pages/edits.py",
    "Routing": "pages/routing.py",
}


def timed(label: str, fn, results: list) -> None:
    start = time.perf_counter()
    try:
        fn()
    except PrefstoreError as exc:  # as the worker does: record, go on
        print(f"  {label:<48} skipped: {exc}", flush=True)
        return
    seconds = time.perf_counter() - start
    results.append((label, seconds))
    print(f"  {label:<48} {seconds:8.2f} s", flush=True)


def build(path: Path, n_items: int, n_judgments: int) -> float:
    start = time.perf_counter()
    db = store.connect(path)
    project = store.create_project(db, "bench", "pairwise", {"raters_per_item": 5})
    store.seed_synthetic(db, project["id"], n_items=n_items, n_judgments=n_judgments)
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - start


def precompute(path: Path) -> list:
    db = store.connect(path)
    out: list = []
    print("precompute (not part of the page times):")
    # The worker's system-level fits: they are what the dashboard pages read.
    for model in ("bt", "davidson"):
        timed(f"worker: {model} fit, system level, all judgments", lambda m=model:
              fitting.fit_project(db, 1, model=m, level="system", kind="all", alpha=0.0), out)
    timed("worker: agreement.refresh_agreement", lambda: agreement.refresh_agreement(db, 1), out)
    timed("first visit: BT fit on human judgments", lambda: fitting.fit_project(
        db, 1, model="bt", level="system", kind="human"), out)
    timed("first visit: mixture fit on human judgments", lambda: fitting.fit_project(
        db, 1, model="mixture", level="system", kind="human"), out)
    timed("first visit: leaderboard.refresh_win_rates", lambda: leaderboard.refresh_win_rates(
        db, 1), out)
    timed("first visit: edits.refresh_edit_report", lambda: edits.refresh_edit_report(db, 1), out)
    db.close()
    return out


def time_pages(path: Path) -> list:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["PREFSTORE_DB"] = str(path)
    os.environ["PREFSTORE_ADMIN_TOKEN"] = ADMIN_TOKEN
    os.environ["PREFSTORE_AUTOSTART_WORKER"] = "0"
    rows = []
    print("pages (AppTest run as an admin):")
    for title, script in PAGES.items():
        st.cache_data.clear()
        at = AppTest.from_file(str(REPO / script), default_timeout=120)
        at.query_params["token"] = ADMIN_TOKEN
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        start = time.perf_counter()
        at.run()
        warm = time.perf_counter() - start
        if at.exception:
            raise RuntimeError(f"{title}: {at.exception[0].value}")
        rows.append((title, first, warm))
        print(f"  {title:<14} first {first * 1000:7.0f} ms   warm {warm * 1000:7.0f} ms",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse this store (built here if missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "dashboard.db"
        if not path.exists():
            print(f"build: {args.items:,} items, {args.judgments:,} judgments "
                  f"in {build(path, args.items, args.judgments):.1f} s", flush=True)
        db = store.connect(path)
        stored = store.latest_report(db, 1, name=edits.REPORT, kind="all")
        db.close()
        if stored is None:
            precompute(path)
        pages = time_pages(path)
    slowest = max(max(first, warm) for _, first, warm in pages)
    print(f"slowest page run: {slowest * 1000:.0f} ms (goal < {GOAL_S * 1000:.0f} ms): "
          f"{'PASS' if slowest < GOAL_S else 'FAIL'}")


if __name__ == "__main__":
    main()
