"""The per-rater quality table: small hand-computed cases, and the store adapter."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from prefstore import quality, store

GOLD = {"choice": 0}
# rater, item, outcome, choice, display order, time_ms, created_at, gold
ROWS = [
    ("ann", 1, "choice", 0, [0, 1], 2000, "2026-01-01T00:00:01Z", GOLD),
    ("bob", 1, "choice", 1, [1, 0], 4000, "2026-01-01T00:00:02Z", GOLD),
    ("cat", 1, "choice", 0, [1, 0], None, "2026-01-01T00:00:03Z", GOLD),
    ("ann", 2, "choice", 1, [0, 1], 6000, "2026-01-01T00:00:04Z", None),
    ("bob", 2, "choice", 1, [0, 1], 1000, "2026-01-01T00:00:05Z", None),
    ("ann", 3, "tie", None, [0, 1], 3000, "2026-01-01T00:00:06Z", None),
    ("bob", 3, "choice", 0, [1, 0], 5000, "2026-01-01T00:00:07Z", None),
    ("cat", 3, "choice", 1, [1, 0], 8000, "2026-01-01T00:00:08Z", None),
]
COLUMNS = ["rater", "item_id", "outcome", "choice", "display_order", "time_ms", "created_at",
           "gold"]


def records(table: pd.DataFrame) -> list[dict]:
    """The table's rows, NaN (nothing counted) shown as None."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in table.to_dict("records")]


def frame(rows) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["choice"] = out["choice"].astype("Int64")
    out["time_ms"] = out["time_ms"].astype("Int64")
    return out


# By hand. Item 1: ann 0, bob 1, cat 0 (gold 0); item 2: ann 1, bob 1; item 3: ann tie,
# bob 0, cat 1. Leave-one-out majorities: ann has one on item 2 only (item 1: bob 1 vs
# cat 0, item 3: bob 0 vs cat 1, both ties); bob on items 1 (0, he chose 1) and 2 (1, he
# agrees), not on 3 (tie vs 1); cat on none. First-shown choices: ann 1 of 2, bob 1 of 3
# (item 1 shown [1, 0], chose 1), cat 1 of 2; ann's tie has no position.
EXPECTED = [
    {"rater": "ann", "judgments": 3, "median_seconds": 3.0, "gold_n": 1, "gold_accuracy": 1.0,
     "majority_n": 1, "majority_agreement": 1.0, "position_n": 2, "position_bias": 0.5,
     "last_active": "2026-01-01T00:00:06Z"},
    {"rater": "bob", "judgments": 3, "median_seconds": 4.0, "gold_n": 1, "gold_accuracy": 0.0,
     "majority_n": 2, "majority_agreement": 0.5, "position_n": 3, "position_bias": 1 / 3,
     "last_active": "2026-01-01T00:00:07Z"},
    {"rater": "cat", "judgments": 2, "median_seconds": 8.0, "gold_n": 1, "gold_accuracy": 1.0,
     "majority_n": 0, "majority_agreement": None, "position_n": 2, "position_bias": 0.5,
     "last_active": "2026-01-01T00:00:08Z"},
]


def test_hand_computed_table():
    table = quality.quality_judgments(frame(ROWS))
    assert list(table.columns) == list(quality.QUALITY_COLUMNS)
    assert records(table) == EXPECTED


def test_a_raters_latest_label_on_an_item_is_the_one_compared():
    rows = [("ann", 1, "choice", 0, None, None, "t1", None),
            ("bob", 1, "choice", 1, None, None, "t2", None),
            ("ann", 1, "choice", 1, None, None, "t3", None)]
    table = quality.quality_judgments(frame(rows)).set_index("rater")
    assert table.loc["ann", ["judgments", "majority_n", "majority_agreement"]].tolist() == [
        2, 1, 1.0]
    assert table.loc["bob", ["majority_n", "majority_agreement", "position_n"]].tolist() == [
        1, 1.0, 0]
    assert math.isnan(table.loc["bob", "position_bias"])
    assert math.isnan(table.loc["bob", "median_seconds"])


def test_no_gold_items_leave_gold_accuracy_empty():
    table = quality.quality_judgments(frame([
        (name, 1, "both_bad", None, [0, 1], 1000, "t", None) for name in ("ann", "bob")]))
    assert records(table[["gold_n", "gold_accuracy", "majority_agreement"]]) == [
        {"gold_n": 0, "gold_accuracy": None, "majority_agreement": 1.0}] * 2


def test_gold_tie_and_slate_ranking_gold():
    table = quality.quality_judgments(frame([
        ("ann", 1, "tie", None, None, None, "t", {"choice": "tie"}),
        ("ann", 2, "choice", 2, [2, 0, 1], None, "t", {"choice": 2, "ranking": [2, 0, 1]}),
        ("ann", 3, "choice", 0, [2, 0, 1], None, "t", {"choice": 1, "ranking": [1, 0, 2]})]))
    assert table[["gold_n", "gold_accuracy", "position_n", "position_bias"]].to_dict(
        "records") == [{"gold_n": 3, "gold_accuracy": 2 / 3, "position_n": 2,
                        "position_bias": 0.5}]


def test_no_judgments_give_an_empty_table():
    table = quality.quality_judgments(frame([]))
    assert table.empty and list(table.columns) == list(quality.QUALITY_COLUMNS)


@pytest.mark.both_backends
def test_rater_quality_reads_human_judgments_of_the_project(db):
    project = store.create_project(db, "p", "pairwise")
    other = store.create_project(db, "other", "pairwise")
    items = store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}],
         "gold": {"choice": 0} if i == 0 else None} for i in range(2)])
    (elsewhere,) = store.insert_items(db, other["id"], [
        {"external_id": "o", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}])
    ann = store.create_rater(db, "ann")[0]["id"]
    bob = store.create_rater(db, "bob")[0]["id"]
    llm = store.create_rater(db, "judge", kind="llm")[0]["id"]
    rows = [(items[0], ann, "human", 0, [1, 0], 1500), (items[0], bob, "human", 1, [0, 1], 2500),
            (items[1], ann, "human", 1, [1, 0], 500), (items[0], llm, "llm", 0, [0, 1], None),
            (elsewhere, bob, "human", 0, [0, 1], 9000)]
    store.insert_judgments(db, [
        {"item_id": i, "rater_id": r, "kind": k, "outcome": "choice", "choice": c,
         "display_order": d, "time_ms": t, "submission_id": f"s{n}",
         "created_at": f"2026-01-01T00:00:0{n}Z"} for n, (i, r, k, c, d, t) in enumerate(rows)])
    assert records(quality.rater_quality(db, project["id"])) == [
        {"rater": "ann", "judgments": 2, "median_seconds": 1.0, "gold_n": 1,
         "gold_accuracy": 1.0, "majority_n": 1, "majority_agreement": 0.0, "position_n": 2,
         "position_bias": 0.5, "last_active": "2026-01-01T00:00:02Z"},
        {"rater": "bob", "judgments": 1, "median_seconds": 2.5, "gold_n": 1,
         "gold_accuracy": 0.0, "majority_n": 1, "majority_agreement": 0.0, "position_n": 1,
         "position_bias": 0.0, "last_active": "2026-01-01T00:00:01Z"}]
