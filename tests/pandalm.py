"""Convert the PandaLM test set (../shared/data/pandalm/) into prefstore's import schema.

The data is read in place; it is never copied into the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DATA_ENV = "PREFSTORE_TEST_DATA"
DATA = Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")
PANDALM = DATA / "pandalm"
NASCAR = DATA / "nascar2002" / "nascar2002.txt"

LABELS = {0: "tie", 1: 0, 2: 1}
GPT_LABELS = {"1": 0, "2": 1, "Tie": "tie"}
ANNOTATORS = ("annotator1", "annotator2", "annotator3")


def load_testset() -> list[dict]:
    return json.loads((PANDALM / "testset-v1.json").read_text())


def _text(value, convert: bool):
    # Six items hold the JSON value true instead of a response text.
    if convert and not isinstance(value, str):
        return json.dumps(value)
    return value


def item_rows(*, convert: bool = True, with_judgments: bool = True) -> list[dict]:
    """Return one import row per PandaLM item, with the 3 annotators' judgments."""
    rows = []
    for rec in load_testset():
        sys1, sys2 = rec["cmp_key"].split("_")
        prompt = rec["instruction"] + ("\n\n" + rec["input"] if rec["input"] else "")
        row = {
            "id": str(rec["idx"]),
            "prompt": prompt,
            "responses": [
                {"text": _text(rec["response1"], convert), "system": sys1},
                {"text": _text(rec["response2"], convert), "system": sys2},
            ],
            "metadata": {"motivation_app": rec["motivation_app"]},
            "category": rec["motivation_app"],
        }
        if with_judgments:
            row["judgments"] = [
                {"rater": a, "kind": "human", "choice": LABELS[rec[a]]} for a in ANNOTATORS
            ]
        rows.append(row)
    return rows


def gpt_judgment_rows() -> list[dict]:
    """Return GPT-3.5's labels as import-judgments rows; "garbage" stays unparseable."""
    rows = json.loads((PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text())
    return [
        {
            "item": str(r["idx"]),
            "rater": "gpt-3.5-turbo",
            "kind": "llm",
            "choice": GPT_LABELS.get(r["gpt_result"], r["gpt_result"]),
        }
        for r in rows
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path
