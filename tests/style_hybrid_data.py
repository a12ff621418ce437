"""A small seeded project for the style-control and hybrid tests (CLI, store, dashboard).

Four systems; each item compares two of them. Response length carries each
system's verbosity: "gamma" writes long answers, "beta" short ones. The human
rater ("ann") rewards length a little and the LLM judge ("judge-x") a lot, so
style control swaps beta and gamma in the human ranking, and the judge's length
coefficient differs from the humans'. Headers and lists vary; bold never occurs
(left out of every style fit). Every item has one human and one judge label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SYSTEMS = ("alpha", "beta", "gamma", "delta")
THETA = {"alpha": 1.0, "beta": 0.15, "gamma": 0.0, "delta": -1.0}
VERBOSITY = {"alpha": 60, "beta": 25, "gamma": 140, "delta": 60}
HUMAN, JUDGE = "ann", "judge-x"
N_ITEMS = 400


def _text(rng: np.random.Generator, system: str) -> str:
    words = max(3, int(rng.normal(VERBOSITY[system], 0.5 * VERBOSITY[system])))
    lines = []
    if rng.random() < 0.3:
        lines.append("# Answer")
    body = " ".join(rng.choice(["word", "text", "more", "answer"], words))
    lines.append(body)
    for k in range(int(rng.integers(0, 3))):
        lines.append(f"- point {k}")
    return "\n".join(lines)


def rows(seed: int = 7, n_items: int = N_ITEMS, *, judge: bool = True,
         multi_turn: bool = False, prefix: str = "q") -> list[dict]:
    """Import rows (``prefstore import`` JSONL) with inline human and judge labels.

    ``prefix`` starts the items' ids: an imported judgment's id hashes the item id
    and the label but not the project, so the same rows imported into a second
    project of the same store would be taken for duplicates.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_items):
        a, b = rng.choice(len(SYSTEMS), 2, replace=False)
        sa, sb = SYSTEMS[a], SYSTEMS[b]
        ta, tb = _text(rng, sa), _text(rng, sb)
        la, lb = len(ta.split()), len(tb.split())
        x = (la - lb) / (la + lb + 1) / 0.4  # about one standard deviation per unit
        human_first = rng.random() < 1 / (1 + np.exp(-(THETA[sa] - THETA[sb] + 1.2 * x)))
        judge_first = rng.random() < 1 / (1 + np.exp(-(THETA[sa] - THETA[sb] + 3.0 * x)))
        row = {"id": f"{prefix}{i}", "responses": [{"text": ta, "system": sa},
                                            {"text": tb, "system": sb}],
               "judgments": [{"rater": HUMAN, "kind": "human",
                              "choice": 0 if human_first else 1}]}
        if multi_turn:
            # Earlier assistant turns full of markdown: context, not what is compared.
            row["messages"] = [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": "# Heading\n**bold** and\n- a list\n" * 5},
                {"role": "user", "content": "And more?"}]
        else:
            row["prompt"] = f"Question {i}?"
        if judge:
            row["judgments"].append({"rater": JUDGE, "kind": "llm",
                                     "choice": 0 if judge_first else 1})
        out.append(row)
    return out


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def build(db, project: str = "style", **kwargs) -> dict:
    """Import :func:`rows` into ``project`` of an open store; return the project."""
    import tempfile

    from prefstore import importing, store

    with tempfile.TemporaryDirectory() as tmp:
        importing.import_items(db, write(Path(tmp) / "items.jsonl", rows(**kwargs)), project)
    return store.get_project(db, project)
