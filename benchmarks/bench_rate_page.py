"""Time one rate-page rerun (submit, then serve the next item) on a big and a small store.

Two measurements per case:

- library: the calls the rate page makes per rerun (list the projects, claim
  the next item, the rater's progress, submit), timed directly, in all and
  each call on its own;
- page: full AppTest reruns of app.py that click "A is better" on the served
  item (Streamlit's script overhead included, browser excluded).

Stores (SQLite): small = 1k items and no judgments; big = 100k items and 1M
human judgments (``seed_synthetic`` for 900k, then 100k through
``insert_judgments``). Cases: a fresh rater (H = 0) on each store, and on the
big store a rater with a long history (H = 50,000 judged items) whose judged
items lead the claim queue (every item holds 10 judgments and theirs have the
lowest ids), so every claim steps over all of them: the worst place for a
history. Raters rate through their own link (token), assigned to the project.

Goal (issue 17; the page, as a rater sees it): page p50 < 40 ms on the big store
and <= 1.3x the small store's page p50, checked for H = 0 and for H = 50,000.

No background worker is started (PREFSTORE_AUTOSTART_WORKER=0), and AppTest
runs in this process, so the script leaves nothing running.

    python benchmarks/bench_rate_page.py [--items 100000] [--judgments 1000000]
                                         [--history 50000] [--reruns 200] [--page-reruns 60]
"""

from __future__ import annotations

import os

# Before anything imports ui.common: app.py would otherwise spawn a worker process.
os.environ["PREFSTORE_AUTOSTART_WORKER"] = "0"
os.environ.pop("PREFSTORE_ADMIN_TOKEN", None)

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefstore import assignment, store  # noqa: E402

GOAL_P50_MS = 40.0
GOAL_RATIO = 1.3


def build(path: Path, n_items: int, n_judgments: int, history: int) -> tuple[float, dict]:
    """Build a store; return the seconds and the history rater (None without history).

    With ``history``: ``seed_synthetic`` gives every item ``q - 1`` judgments,
    then the history rater judges the first ``history`` items and a filler
    rater the others, so every item ends with ``q`` = judgments / items and the
    history rater's items come first in the queue (same count, lower ids).
    """
    start = time.perf_counter()
    db = store.connect(path)
    per_item = n_judgments // max(n_items, 1)
    # Enough raters per item that every item stays open to a newcomer.
    project = store.create_project(db, "bench", "pairwise", {
        "raters_per_item": per_item + 5, "strength_scale": False, "gold_rate": 0.0})
    rater = None
    if history and per_item >= 1:
        history = min(history, n_items)
        store.seed_synthetic(db, project["id"], n_items=n_items,
                             n_judgments=n_judgments - n_items)
        rater, token = store.create_rater(db, "history")
        store.assign_rater(db, rater["id"], project["id"])
        rater["token"] = token
        filler = store.create_rater(db, "filler", with_token=False)[0]["id"]
        ids = [r[0] for r in db.execute("SELECT id FROM items WHERE project_id = ? ORDER BY id",
                                        [project["id"]]).fetchall()]
        rows = []
        for k, item_id in enumerate(ids):
            rows.append({"item_id": item_id, "rater_id": rater["id"] if k < history else filler,
                         "kind": "human", "outcome": "choice", "choice": k % 2,
                         "display_order": [0, 1], "time_ms": 1000, "submission_id": f"h{k}"})
            if len(rows) >= 50_000:
                store.insert_judgments(db, rows)
                rows = []
        if rows:
            store.insert_judgments(db, rows)
        rater["history"] = history
    else:
        store.seed_synthetic(db, project["id"], n_items=n_items, n_judgments=n_judgments)
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - start, rater


def new_rater(path: Path, name: str) -> dict:
    db = store.connect(path)
    rater, token = store.create_rater(db, name)
    store.assign_rater(db, rater["id"], store.list_projects(db)[0]["id"])
    rater["token"] = token
    db.close()
    return rater


def history_of(path: Path, rater: dict) -> int:
    db = store.connect(path)
    n = db.execute("SELECT COUNT(*) FROM judgments WHERE rater_id = ?",
                   [rater["id"]]).fetchone()[0]
    db.close()
    return n


CALLS = ("projects", "claim_next", "rater_progress", "submit")


def time_library(path: Path, rater: dict, n: int) -> tuple[list[float], dict[str, list[float]]]:
    """The store calls of pages/rate.py, per rerun, for a rater's link; also each call alone."""
    db = store.connect(path)
    times: list[float] = []
    calls: dict[str, list[float]] = {name: [] for name in CALLS}
    for _ in range(n):
        t0 = time.perf_counter()
        projects = [p for p in store.list_projects(db)
                    if p["id"] in set(store.rater_project_ids(db, rater["id"]))]
        project = projects[0]
        t1 = time.perf_counter()
        claim = assignment.next_item(db, project["id"], rater["id"], assigned_only=True)
        t2 = time.perf_counter()
        store.rater_progress(db, project["id"], rater["id"])
        t3 = time.perf_counter()
        _, created = assignment.submit(
            db, claim, rater["id"], assignment.label_for_position(claim["display_order"], 0),
            settings=project["settings"])
        t4 = time.perf_counter()
        times.append((t4 - t0) * 1000)
        for name, a, b in zip(CALLS, (t0, t1, t2, t3), (t1, t2, t3, t4)):
            calls[name].append((b - a) * 1000)
        if not created:
            raise RuntimeError("a submit stored nothing: the claim stays open")
    db.close()
    return times, calls


def time_page(path: Path, rater: dict, n: int) -> list[float]:
    """Full AppTest reruns of app.py: click "A is better", submit, serve the next item."""
    from streamlit.testing.v1 import AppTest

    from ui.common import Keys

    os.environ["PREFSTORE_DB"] = str(path)
    db = store.connect(path)
    project = store.list_projects(db)[0]
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["token"] = rater["token"]
    at.run()
    assert not at.exception, at.exception
    times = []
    for _ in range(n):
        claim = assignment.next_item(db, project["id"], rater["id"])  # the open claim, resumed
        button = at.button(key=Keys.item(Keys.CHOOSE_A, claim["id"])).click()
        start = time.perf_counter()
        button.run()  # the click's rerun: submit, st.rerun, serve the next item
        times.append((time.perf_counter() - start) * 1000)
        assert not at.exception, at.exception
    db.close()
    return times


def stats(times: list[float]) -> tuple[float, float]:
    """True median, and the 95th percentile (inclusive method)."""
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if len(times) > 1 \
        else times[0]
    return statistics.median(times), p95


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--small-items", type=int, default=1_000)
    parser.add_argument("--reruns", type=int, default=200)
    parser.add_argument("--page-reruns", type=int, default=60)
    args = parser.parse_args()

    results: dict[str, dict[str, list[float]]] = {}
    breakdown: dict[str, dict[str, list[float]]] = {}
    print(f"load average at start: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.db", Path(tmp) / "big.db"
        seconds, _ = build(small, args.small_items, 0, 0)
        print(f"small: {args.small_items:,} items, 0 judgments, built in {seconds:.1f} s",
              flush=True)
        seconds, hist = build(big, args.items, args.judgments, args.history)
        print(f"big: {args.items:,} items, {args.judgments:,} judgments, built in "
              f"{seconds:.1f} s", flush=True)
        cases = [("small H=0", small, [new_rater(small, "lib"), new_rater(small, "page")])]
        if hist is not None:
            # One history rater for both paths: the library reruns add --reruns judgments
            # to their 50,000 before the page runs.
            cases.append((f"big H={hist['history']:,}", big, [hist, hist]))
        cases.append(("big H=0", big, [new_rater(big, "lib"), new_rater(big, "page")]))
        for name, path, (lib_rater, page_rater) in cases:
            lib, calls = time_library(path, lib_rater, args.reruns)
            print(f"{name}: library done (load {load()})", flush=True)
            page = time_page(path, page_rater, args.page_reruns)
            print(f"{name}: page done (load {load()}); rater's judgments now "
                  f"{history_of(path, page_rater):,}", flush=True)
            results[name] = {"library": lib, "page": page}
            breakdown[name] = calls

    print()
    print(f"{'case':16} {'path':8} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}")
    for name, paths in results.items():
        for kind, times in paths.items():
            p50, p95 = stats(times)
            print(f"{name:16} {kind:8} {p50:8.1f} {p95:8.1f} {len(times):5d}")
    print(f"\nlibrary calls, p50 ms: {'case':16} " + " ".join(f"{c:>14}" for c in CALLS))
    for name, calls in breakdown.items():
        print(f"{'':22}{name:16} " + " ".join(f"{statistics.median(calls[c]):14.2f}"
                                             for c in CALLS))
    small_p50 = {kind: stats(t)[0] for kind, t in results["small H=0"].items()}
    print()
    all_ok = True
    for name in results:
        if name.startswith("small"):
            continue
        page_p50 = stats(results[name]["page"])[0]
        page_ratio = page_p50 / small_p50["page"]
        lib_ratio = stats(results[name]["library"])[0] / small_p50["library"]
        ok = page_p50 < GOAL_P50_MS and page_ratio <= GOAL_RATIO
        all_ok &= ok
        print(f"{name}: page p50 {page_p50:.1f} ms, {page_ratio:.2f}x small; library p50 "
              f"{lib_ratio:.2f}x small -> goal (page p50 < {GOAL_P50_MS:.0f} ms and <= "
              f"{GOAL_RATIO}x small): {'met' if ok else 'NOT met'}")
    print(f"goal, every case: {'met' if all_ok else 'NOT met'}")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
