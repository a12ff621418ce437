"""Hybrid (PPI++) leaderboards on the PandaLM test set, GPT-3.5 as the judge; prints figures.

Run from the repository root::

    python benchmarks/bench_hybrid.py              # 200 draws per fraction (about 10 s)
    python benchmarks/bench_hybrid.py --reps 30

The data are read in place from ../shared/data/pandalm/ (999 items, three human
annotators, GPT-3.5 labels; its 25 "garbage" answers are missing judge labels).
For each share of items labelled by humans, the labelled items are drawn ``reps``
times and human-only, judge-only and hybrid fits are scored against the fit on
all human labels (see ``prefstore.models.hybrid.evaluate_hybrid``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefstore.models.hybrid import HybridItems, evaluate_hybrid, hybrid_pairwise  # noqa: E402

PANDALM = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
HUMAN = {0: 0.5, 1: 1.0, 2: 0.0}  # share of "response 1 won": tie, response 1, response 2
GPT = {"1": 1.0, "2": 0.0, "Tie": 0.5}  # "garbage" -> missing


def load_items() -> HybridItems:
    test = json.loads((PANDALM / "testset-v1.json").read_text())
    gpt = json.loads((PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text())
    assert [g["idx"] for g in gpt] == [t["idx"] for t in test]
    pairs = [t["cmp_key"].split("_") for t in test]
    names = sorted({s for p in pairs for s in p})
    return HybridItems(
        first=[names.index(p[0]) for p in pairs],
        second=[names.index(p[1]) for p in pairs],
        human=[np.mean([HUMAN[t[a]] for a in ANNOTATORS]) for t in test],
        judge=[GPT.get(g["gpt_result"], np.nan) for g in gpt],
        n_systems=len(names),
        names=names,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not PANDALM.is_dir():
        sys.exit(f"PandaLM data not found at {PANDALM}")
    items = load_items()
    full = hybrid_pairwise(items)
    print(
        f"{len(items)} items, {items.n_systems} systems; GPT-3.5 labels on "
        f"{full.n_llm_items} items ({len(items) - full.n_llm_items} unparseable)"
    )
    start = time.perf_counter()
    out = evaluate_hybrid(items, fractions=(0.1, 0.25, 0.5), reps=args.reps, seed=args.seed)
    seconds = time.perf_counter() - start
    print(f"evaluate_hybrid: {args.reps} draws x 3 fractions in {seconds:.1f} s\n")
    print(
        f"{'human share':>11}  {'fit':<10} {'coverage':>8} {'mean CI width':>13} "
        f"{'Kendall tau':>11} {'lambda':>7}"
    )
    for row in out["results"]:
        for fit in ("human_only", "llm_only", "hybrid"):
            r = row[fit]
            lam = f"{r['mean_lambda']:.2f}" if "mean_lambda" in r else ""
            print(
                f"{row['fraction']:>11.2f}  {fit:<10} {r['coverage']:>8.3f} "
                f"{r['mean_ci_width']:>13.3f} {r['kendall_tau']:>11.3f} {lam:>7}"
            )
    quarter = next(r for r in out["results"] if r["fraction"] == 0.25)
    ok = (
        quarter["hybrid"]["coverage"] >= 0.90
        and quarter["hybrid"]["mean_ci_width"] <= quarter["human_only"]["mean_ci_width"]
    )
    print(
        f"\n25% human: hybrid coverage {quarter['hybrid']['coverage']:.3f} (goal >= 0.90), "
        f"width {quarter['hybrid']['mean_ci_width']:.3f} vs human-only "
        f"{quarter['human_only']['mean_ci_width']:.3f}; LLM-only coverage "
        f"{quarter['llm_only']['coverage']:.3f} -> {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
