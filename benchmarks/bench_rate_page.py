"""Time one rate-page rerun (serve the next item, then submit) on a big and a small store.

Two measurements per store:

- library: the calls the rate page makes per rerun (list the projects, claim
  the next item, the rater's progress, submit), timed directly;
- page: full AppTest reruns of app.py that click "A is better" on the served
  item (Streamlit's script overhead included, browser excluded).

The big store holds 100k items and 1M human judgments; the small one holds
1k items and none. Goal: library p50 < 100 ms, and big <= 1.5x small.

    python benchmarks/bench_rate_page.py [--items 100000] [--judgments 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefstore import assignment, store  # noqa: E402

GOAL_P50_MS = 100.0
GOAL_RATIO = 1.5


def build(path: Path, n_items: int, n_judgments: int) -> float:
    start = time.perf_counter()
    db = store.connect(path)
    # Enough raters per item that every item stays open to a newcomer.
    project = store.create_project(db, "bench", "pairwise", {
        "raters_per_item": n_judgments // max(n_items, 1) + 5, "strength_scale": False,
        "gold_rate": 0.0})
    store.seed_synthetic(db, project["id"], n_items=n_items, n_judgments=n_judgments)
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def time_library(path: Path, rater_name: str, n: int) -> list[float]:
    db = store.connect(path)
    rater, _ = store.create_rater(db, rater_name)
    times = []
    open_all = 0
    for i in range(n):
        start = time.perf_counter()
        project = store.list_projects(db)[0]
        claim = assignment.next_item(db, project["id"], rater["id"])
        # The page caches the project-wide open count for 30 s: recount it here
        # once per 30 reruns, as a rater at ~1 item per second would see.
        if i % 30 == 0:
            open_all = store.open_item_count(db, project["id"])
        store.rater_progress(db, project["id"], rater["id"], open_all=open_all)
        assignment.submit(db, claim, rater["id"],
                          assignment.label_for_position(claim["display_order"], 0),
                          settings=project["settings"])
        times.append((time.perf_counter() - start) * 1000)
    db.close()
    return times


def time_page(path: Path, rater_name: str, n: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    from ui.common import Keys

    os.environ["PREFSTORE_DB"] = str(path)
    os.environ.pop("PREFSTORE_ADMIN_TOKEN", None)
    db = store.connect(path)
    rater, token = store.create_rater(db, rater_name)
    project = store.list_projects(db)[0]
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.query_params["token"] = token
    at.run()
    times = []
    for _ in range(n):
        claim = assignment.next_item(db, project["id"], rater["id"])
        button = at.button(key=Keys.item(Keys.CHOOSE_A, claim["id"])).click()
        start = time.perf_counter()
        button.run()  # the click's rerun: submit, st.rerun, serve the next item
        times.append((time.perf_counter() - start) * 1000)
        assert not at.exception, at.exception
    db.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--small-items", type=int, default=1_000)
    parser.add_argument("--reruns", type=int, default=200)
    parser.add_argument("--page-reruns", type=int, default=30)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"small": (Path(tmp) / "small.db", args.small_items, 0),
                  "big": (Path(tmp) / "big.db", args.items, args.judgments)}
        for name, (path, n_items, n_judgments) in stores.items():
            seconds = build(path, n_items, n_judgments)
            print(f"{name}: {n_items:,} items, {n_judgments:,} judgments, built in "
                  f"{seconds:.1f} s", flush=True)
            lib = time_library(path, "bench-lib", args.reruns)
            page = time_page(path, "bench-page", args.page_reruns)
            results[name] = {"library": lib, "page": page}

    print()
    print(f"{'store':6} {'path':8} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}")
    for name, paths in results.items():
        for kind, times in paths.items():
            print(f"{name:6} {kind:8} {pct(times, 50):8.1f} {pct(times, 95):8.1f} "
                  f"{len(times):5d}")
    lib_big, lib_small = pct(results["big"]["library"], 50), pct(results["small"]["library"], 50)
    ratio = lib_big / lib_small
    page_ratio = pct(results["big"]["page"], 50) / pct(results["small"]["page"], 50)
    print(f"\nlibrary p50 big/small = {ratio:.2f}x; page p50 big/small = {page_ratio:.2f}x")
    ok = lib_big < GOAL_P50_MS and ratio <= GOAL_RATIO
    print(f"goal (library p50 < {GOAL_P50_MS:.0f} ms and <= {GOAL_RATIO}x small): "
          f"{'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
