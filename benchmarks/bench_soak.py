"""Reliability soak and crash runs at full size; prints the figures.

    python benchmarks/bench_soak.py [--processes 16] [--per-process 2000]
                                    [--raters-per-item 3] [--kills 50] [--seed 0]

The soak has ``--processes`` processes claim and submit through the rating
page's API (about 5% double clicks, sent twice at once); the crash run
SIGKILLs a streaming writer ``--kills`` times and checks the store after each
kill. The same code runs small in tests/reliability (CI) and full here.
benchmarks/README.md records the results.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefstore import store  # noqa: E402
from tests.reliability import workload  # noqa: E402


def soak(tmp: Path, processes: int, per_process: int, raters_per_item: int, seed: int) -> bool:
    path = tmp / "soak.db"
    r = workload.run_soak(path, processes=processes, per_process=per_process,
                          raters_per_item=raters_per_item, seed=seed)
    db = store.connect(path)
    report = workload.check_store(db, r["project_id"], raters_per_item)
    stored = store.count_judgments(db, r["project_id"])
    lost = len(set(r["acked"]) - workload.stored_submissions(db, r["project_id"]))
    max_raters = db.execute("SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(DISTINCT rater_id) "
                            "AS n FROM judgments GROUP BY item_id)").fetchone()[0]
    db.close()
    print(f"soak: {processes} processes x {per_process} judgments on {r['items']} items "
          f"(raters_per_item {raters_per_item}) in {r['seconds']:.1f} s "
          f"({stored / r['seconds']:.0f} judgments/s)")
    print(f"  submissions {r['submissions']} (distinct {r['distinct_submissions']}), "
          f"judgments stored {stored}, lost {lost}, duplicates rejected "
          f"{r['duplicates_rejected']}, double clicks that stored two rows "
          f"{r['double_created']}")
    print(f"  most raters on one item {max_raters}; 'database is locked' / OperationalError "
          f"{len(r['locked_errors'])}, other errors {len(r['other_errors'])}, "
          f"workers starved {r['starved']}")
    print(f"  store check: {'sound' if report == workload.SOUND else report}")
    for err in (r["locked_errors"] + r["other_errors"])[:5]:
        print(f"  error: {err}")
    return (report == workload.SOUND and stored == r["distinct_submissions"] == r["submissions"]
            and not lost and not r["locked_errors"] and not r["other_errors"]
            and not r["double_created"])


def crash(tmp: Path, kills: int, seed: int) -> bool:
    r = workload.run_crash(tmp / "crash.db", rounds=kills, seed=seed, n_items=8000)
    print(f"crash: {r['kills']}/{r['rounds']} SIGKILLs survived, {r['acked']} acknowledged "
          f"submissions all present, {r['judgments']} judgments stored "
          f"({r['unacked_committed']} committed but killed before the ack), "
          f"rounds with a violation {len(r['failures'])}")
    for failure in r["failures"][:3]:
        print(f"  failure: {failure}")
    return not r["failures"] and r["kills"] == r["rounds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--per-process", type=int, default=2000)
    parser.add_argument("--raters-per-item", type=int, default=3)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ok = soak(Path(tmp), args.processes, args.per_process, args.raters_per_item, args.seed)
        ok = crash(Path(tmp), args.kills, args.seed) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
