"""Store benchmarks: concurrent writers, and claim-next latency on a large database.

    python benchmarks/bench_storage.py [--writers 8] [--per-writer 2000]
                                       [--items 100000] [--judgments 1000000]

Prints the figures; benchmarks/README.md records them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefstore import store  # noqa: E402


def seed(db, n_items: int, n_responses: int = 2, raters_per_item: int = 3,
         name: str = "bench") -> dict:
    project = store.create_project(db, name, "pairwise",
                                     {"raters_per_item": raters_per_item, "gold_rate": 0.0})
    batch = 5000
    for start in range(0, n_items, batch):
        store.insert_items(db, project["id"], [
            {"external_id": f"i{k}", "prompt": f"prompt {k}",
             "responses": [{"text": f"response {k}.{r}", "system": f"sys{(k + r) % 20}"}
                           for r in range(n_responses)]}
            for k in range(start, min(n_items, start + batch))])
    return project


def bulk_judgments(db, project_id: int, n_judgments: int, n_items: int, n_raters: int = 100):
    """Insert judgments fast (the import path), spread over items and raters."""
    raters = [store.get_or_create_rater(db, f"bulk{r}")["id"] for r in range(n_raters)]
    first_item = db.execute("SELECT MIN(id) FROM items WHERE project_id = ?",
                            [project_id]).fetchone()[0]
    per_item = max(1, n_judgments // n_items)
    rows, done = [], 0
    for k in range(n_items):
        for j in range(per_item):
            if done >= n_judgments:
                break
            rows.append({"item_id": first_item + k, "rater_id": raters[(k + j) % n_raters],
                         "kind": "human", "outcome": "choice", "choice": (k + j) % 2,
                         "strength": 1 + (k + j) % 3, "display_order": [0, 1],
                         "submission_id": f"bulk-{k}-{j}"})
            done += 1
        if len(rows) >= 50_000:
            store.insert_judgments(db, rows)
            rows = []
    if rows:
        store.insert_judgments(db, rows)


def _writer(path: str, rater: str, n: int, start_barrier, out) -> None:
    db = store.connect(path)
    rater_id = store.get_rater(db, rater)["id"]
    items = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")]
    start_barrier.wait()
    t0 = time.perf_counter()
    errors = 0
    for k in range(n):
        try:
            store.submit_judgment(db, item_id=items[k % len(items)], rater_id=rater_id,
                                    submission_id=f"{rater}-{k}", choice=k % 2, strength=1,
                                    display_order=[0, 1], time_ms=1000)
        except Exception as exc:  # counted: the goal is zero
            errors += 1
            print(f"{rater}: {exc}", file=sys.stderr)
    out.put((rater, n, errors, time.perf_counter() - t0))


def bench_writers(tmp: Path, writers: int, per_writer: int) -> dict:
    path = tmp / "writers.db"
    db = store.connect(path)
    seed(db, 2000)
    for w in range(writers):
        store.create_rater(db, f"w{w}", with_token=False)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{w}", per_writer, barrier, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    committed = store.count_judgments(db)
    expected = writers * per_writer
    return {"writers": writers, "submitted": expected, "committed": committed,
            "lost": expected - committed, "errors": sum(r[2] for r in results),
            "seconds": elapsed, "judgments_per_s": committed / elapsed}


def bench_claim(tmp: Path, n_items: int, n_judgments: int, samples: int = 300) -> dict:
    path = tmp / "claim.db"
    db = store.connect(path)
    t0 = time.perf_counter()
    # raters_per_item above the judgments per item keeps every item claimable, the
    # hardest case for the scan: the bulk raters leave n_human at 10 everywhere.
    project = seed(db, n_items, raters_per_item=12)
    bulk_judgments(db, project["id"], n_judgments, n_items)
    db.execute("ANALYZE")
    build = time.perf_counter() - t0
    raters = [store.create_rater(db, f"claimer{r}", with_token=False)[0]["id"]
              for r in range(samples)]
    times = []
    for k, rater in enumerate(raters):
        t = time.perf_counter()
        claim = store.claim_next(db, project["id"], rater)
        times.append((time.perf_counter() - t) * 1000)
        store.submit_judgment(db, item_id=claim["item_id"], rater_id=rater,
                                submission_id=f"c{k}", choice=0, assignment_id=claim["id"])
    times.sort()
    return {"items": n_items, "judgments": store.count_judgments(db),
            "build_seconds": build, "claims": samples,
            "p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * len(times))],
            "max_ms": times[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--per-writer", type=int, default=2000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        w = bench_writers(Path(tmp), args.writers, args.per_writer)
        print(f"writers: {w['writers']} processes, {w['committed']}/{w['submitted']} committed, "
              f"lost {w['lost']}, errors {w['errors']}, {w['seconds']:.2f} s, "
              f"{w['judgments_per_s']:.0f} judgments/s")
        c = bench_claim(Path(tmp), args.items, args.judgments)
        print(f"claim-next: {c['items']} items, {c['judgments']} judgments "
              f"(built in {c['build_seconds']:.0f} s); {c['claims']} claims: "
              f"p50 {c['p50_ms']:.2f} ms, p95 {c['p95_ms']:.2f} ms, max {c['max_ms']:.2f} ms")


if __name__ == "__main__":
    main()
