"""Dashboard inputs in the library: outlier raters, routing calibration, cheap counts."""

import math

import numpy as np
import pandas as pd
import pytest

from prefstore import routing, store
from prefstore.agreement import rater_outliers
from prefstore.errors import InvalidInput


def test_rater_outliers_flags():
    rows = [
        {"rater": "ok", "agreement_with_consensus": 0.9, "position_bias_p": 0.5,
         "median_seconds": 20.0},
        {"rater": "all", "agreement_with_consensus": 0.5, "position_bias_p": 0.001,
         "median_seconds": 2.0},
        {"rater": "unknown", "agreement_with_consensus": None, "position_bias_p": math.nan,
         "median_seconds": None},
    ]
    out = rater_outliers(rows)
    assert [r["flags"] for r in out] == ["", "low consensus, position bias, too fast", ""]
    assert [(r["low_consensus"], r["position_bias_flag"], r["too_fast"]) for r in out] == [
        (False, False, False), (True, True, True), (False, False, False)]
    assert rater_outliers(rows[:1], min_consensus=0.95)[0]["flags"] == "low consensus"


def test_calibration_bins_exact():
    bins = routing.calibration_bins([0.05, 0.15, 0.12, 1.0, 0.95, np.nan],
                                    [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], n_bins=10)
    assert bins == [
        {"bin_low": 0.0, "bin_high": 0.1, "n": 1, "mean_predicted": 0.05, "realized": 0.0},
        {"bin_low": 0.1, "bin_high": 0.2, "n": 2, "mean_predicted": pytest.approx(0.135),
         "realized": 0.5},
        {"bin_low": 0.9, "bin_high": 1.0, "n": 2, "mean_predicted": 0.975, "realized": 0.5}]
    with pytest.raises(InvalidInput, match='"predicted" and "realized"'):
        routing.calibration_bins([0.1], [1.0, 0.0])


def test_realized_agreement_and_decisions_table():
    judgments = pd.DataFrame([
        {"id": i, "item_id": item, "rater": rater, "kind": kind, "outcome": outcome,
         "choice": choice, "metadata": {}}
        for i, (item, rater, kind, outcome, choice) in enumerate([
            (1, "h1", "human", "choice", 0), (1, "h2", "human", "choice", 0),
            (1, "j", "llm", "choice", 0),
            (2, "h1", "human", "choice", 1), (2, "h2", "human", "tie", None),
            (2, "j", "llm", "choice", 1),
            (3, "j", "llm", "choice", 1)], start=1)])
    judgments["choice"] = judgments["choice"].astype("Int64")
    realized = routing.realized_agreement(judgments, "j")
    # Item 2 has no strict human majority: its label is TIE, which the judge missed.
    assert realized.to_dict() == {1: 1.0, 2: 0.0}
    decisions = pd.DataFrame({"item_id": [1, 3], "decision": ["llm", "human"],
                              "predicted_agreement": [0.9, 0.2], "priority": [0.1, 0.8]})
    table = routing.decisions_table(decisions, {"1": 1.0})
    assert table["realized_agreement"].tolist()[0] == 1.0
    assert math.isnan(table["realized_agreement"].tolist()[1])


def test_dashboard_counts(db):
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 2})
    ids = store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": "p",
         "responses": [{"text": "A", "system": "a"}, {"text": "B", "system": "b"}]}
        for i in range(3)])
    h1, _ = store.create_rater(db, "h1")
    h2, _ = store.create_rater(db, "h2")
    store.create_rater(db, "idle")
    judge, _ = store.create_rater(db, "j", kind="llm")
    for n, (item, rater) in enumerate([(ids[0], h1), (ids[0], h2), (ids[1], h1),
                                        (ids[0], judge), (ids[2], judge)]):
        store.submit_judgment(db, item_id=item, rater_id=rater["id"], submission_id=str(n),
                                outcome="choice", choice=0)
    assert store.dashboard_counts(db, project["id"], 2) == {
        "items": 3, "covered_items": 1, "coverage": 1 / 3,
        "judgments": {"human": 3, "llm": 2, "total": 5}, "raters": {"human": 2, "llm": 1}}
    empty = store.create_project(db, "e", "pairwise")
    assert store.dashboard_counts(db, empty["id"], 3)["coverage"] == 0.0
