"""Benchmark the JSONL export: rows per second and peak memory on 1M judgments.

Builds (once) benchmarks/out/export_<items>x<per_item>.db with ``--items``
pairwise items and ``--per-item`` human judgments each (10% ties, 5% both-bad,
responses of 150-600 characters), then runs each export in a fresh
subprocess so its peak RSS (VmHWM) is its own. Wall and CPU time are both
reported: on a shared machine the CPU figure is the steadier one. Results:
README.md.

    python benchmarks/bench_export.py                # 100k items x 10 = 1M judgments
    python benchmarks/bench_export.py --items 2000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

WORDS = ("the model answer is clear and short but it misses a step in the proof while "
         "another reply explains each part with care so a reader can follow along easily "
         "yet some details about units dates names and numbers are wrong").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words, n = [], 0
    target = rng.randint(lo, hi)
    while n < target:
        w = rng.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    return " ".join(words).capitalize() + "."


def build(path: Path, n_items: int, per_item: int, seed: int = 0) -> None:
    """Create the benchmark database through the storage API (one transaction per phase)."""
    from prefstore import store

    rng = random.Random(seed)
    db = store.connect(path)
    project = store.create_project(db, "bench", "pairwise")
    raters = [store.get_or_create_rater(db, f"rater{k:02d}")["id"] for k in range(per_item)]
    start = time.perf_counter()
    item_ids: list[int] = []
    with store.write(db):
        for lo in range(0, n_items, 10_000):
            item_ids += store.insert_items(db, project["id"], (
                {"external_id": f"item{i}", "prompt": _text(rng, 60, 300),
                 "responses": [{"text": _text(rng, 150, 600), "system": f"sys{i % 7}"},
                               {"text": _text(rng, 150, 600), "system": f"sys{(i + 3) % 7}"}]}
                for i in range(lo, min(lo + 10_000, n_items))))
    print(f"  items: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    start = time.perf_counter()
    created = store.now_iso()
    with store.write(db):
        rows = []
        for i, item_id in enumerate(item_ids):
            for n, rater_id in enumerate(raters):
                u = rng.random()
                outcome = "tie" if u < 0.10 else "both_bad" if u < 0.15 else "choice"
                rows.append({
                    "item_id": item_id, "rater_id": rater_id, "kind": "human",
                    "outcome": outcome, "choice": rng.randrange(2) if outcome == "choice" else None,
                    "strength": rng.randint(1, 3) if outcome == "choice" else 0,
                    "rationale": _text(rng, 20, 80) if rng.random() < 0.2 else None,
                    "submission_id": f"b{i}-{n}", "created_at": created, "time_ms": 5000})
            if len(rows) >= 100_000:
                store.insert_judgments(db, rows)
                rows = []
        store.insert_judgments(db, rows)
    print(f"  judgments: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    db.close()


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(db_path: str, out: str, options: dict) -> None:
    """Run one export and print its figures as JSON (run in a fresh process)."""
    from prefstore import export, store

    db = store.connect(db_path)
    baseline = _vmhwm_mb()
    start, cpu = time.perf_counter(), time.process_time()
    summary = export.export(db, "bench", out, **options)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "summary": summary,
                      "baseline_rss_mb": baseline, "peak_rss_mb": _vmhwm_mb()}))


def run_export(db_path: Path, options: dict) -> dict:
    out = OUT / "export_bench.jsonl"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(db_path), str(out), json.dumps(options)],
        capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    result["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["bytes"] = out.stat().st_size
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-item", type=int, default=10)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("DB", "OUT", "OPTIONS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], json.loads(args.child[2]))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    db_path = OUT / f"export_{args.items}x{args.per_item}.db"
    if args.rebuild or not db_path.exists():
        for p in OUT.glob(db_path.name + "*"):
            p.unlink()
        print(f"building {db_path.name} ...", file=sys.stderr)
        build(db_path, args.items, args.per_item)
    cases = [
        {"format": "pairs"},
        {"format": "pairs", "conversational": True},
        {"format": "pairs", "aggregate": "majority"},
        {"format": "kto"},
        {"format": "judgments"},
    ]
    print(f"{args.items * args.per_item:,} judgments ({args.items:,} items x {args.per_item})")
    print(f"{'export':<34} {'rows':>9} {'wall s':>7} {'cpu s':>6} {'rows/s':>8} "
          f"{'rows/cpu-s':>10} {'MB out':>7} {'base MB':>8} {'peak MB':>8}")
    for options in cases:
        r = run_export(db_path, options)
        s = r["summary"]
        label = " ".join(f"{k}={v}" for k, v in options.items())
        print(f"{label:<34} {s['written']:>9,} {r['seconds']:>7.1f} {r['cpu_seconds']:>6.1f} "
              f"{s['written'] / r['seconds']:>8,.0f} {s['written'] / r['cpu_seconds']:>10,.0f} "
              f"{r['bytes'] / 1e6:>7.0f} {r['baseline_rss_mb']:>8.0f} {r['peak_rss_mb']:>8.0f}",
              flush=True)
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
