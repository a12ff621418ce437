import json

import numpy as np
import pandas as pd
import pytest

from prefstore import importing, routing, store
from prefstore.cli import main
from prefstore.errors import InvalidInput
from tests import pandalm


def test_budget_count_fraction_and_count():
    assert routing.budget_count(0.25, 999) == 250
    assert routing.budget_count(1.0, 10) == 10
    assert routing.budget_count(3, 10) == 3
    assert routing.budget_count(30, 10) == 10
    assert routing.budget_count(None, 7) == 7
    with pytest.raises(InvalidInput, match="human budget"):
        routing.budget_count(-1, 10)


def test_route_respects_budget_exactly_and_takes_lowest_first():
    predicted = np.array([0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6, 0.4, 0.95])
    decisions = routing.route(predicted, 4)
    assert list(decisions) == ["llm", "human", "llm", "human", "llm", "human", "llm", "llm",
                               "human", "llm"]
    with_calibration = routing.route(predicted, 4, calibration_fraction=0.5, seed=1)
    assert (with_calibration == "human").sum() == 2
    assert (with_calibration == "both").sum() == 2
    assert set(np.flatnonzero(with_calibration == "human")) == {1, 5}
    both = np.flatnonzero(with_calibration == "both")
    assert all(predicted[i] > 0.2 for i in both)


def test_human_majority_strict():
    frame = pd.DataFrame({
        "id": range(7), "item_id": [1, 1, 1, 2, 2, 3, 3],
        "rater": ["a", "b", "c", "a", "b", "a", "b"], "kind": ["human"] * 7,
        "outcome": ["choice", "choice", "tie", "choice", "choice", "both_bad", "tie"],
        "choice": pd.array([0, 0, None, 0, 1, None, None], dtype="Int64")})
    assert routing.human_majority(frame).to_dict() == {1: 0, 2: routing.TIE, 3: routing.TIE}


@pytest.fixture(scope="module")
def pandalm_eval(pandalm_db_path):
    db = store.connect(pandalm_db_path)
    return routing.evaluate_routing(db, "pandalm", judge="gpt-3.5-turbo",
                                    budgets=(0.1, 0.25, 0.5), seed=0, folds=5)


def test_router_beats_random_on_pandalm(pandalm_eval):
    result = pandalm_eval
    assert result["n_items"] == 974
    assert result["llm_only_accuracy"] == pytest.approx(0.7156, abs=5e-5)
    router, rand = result["router_accuracy"], result["random_accuracy"]
    assert all(r >= x for r, x in zip(router, rand))
    assert router[1] - rand[1] >= 0.03
    # Random routing is exact in expectation: acc + budget * error rate.
    for b, x in zip(result["budgets"], rand):
        k = routing.budget_count(b, 974)
        assert x == pytest.approx(0.7156 + k / 974 * (1 - 0.7156), abs=0.01)


def test_evaluate_routing_cli(pandalm_db_path, capsys):
    assert main(["evaluate-routing", "--project", "pandalm", "--judge", "gpt-3.5-turbo",
                 "--budgets", "0.25", "--db", str(pandalm_db_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"budgets", "router_accuracy", "random_accuracy", "llm_only_accuracy",
                        "n_items", "features"}
    assert out["budgets"] == [0.25]
    assert "judge_tie" in out["features"] and "ratio_max" in out["features"]


def test_refresh_routing_stores_decisions_within_budget(tmp_path, shared_data):
    db = store.connect(tmp_path / "r.db")
    rows = pandalm.item_rows()[:200]
    for row in rows[100:]:
        row.pop("judgments")  # half the items have no human label yet
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "i.jsonl", rows), "p")
    project = store.get_project(db, "p")
    summary = routing.refresh_routing(db, "p")
    assert (summary["judge"], summary["human"], summary["llm"]) == (None, 200, 0)
    judge_rows = [r for r in pandalm.gpt_judgment_rows() if int(r["item"]) < 200
                  and r["choice"] != "garbage"]
    importing.import_judgments(db, pandalm.write_jsonl(tmp_path / "j.jsonl", judge_rows), "p")
    store.update_project_settings(db, project["id"], {"human_budget": 0.3,
                                                        "calibration_fraction": 0.2},
                                    actor="test")
    summary = routing.refresh_routing(db, "p")
    assert (summary["human"], summary["both"], summary["llm"]) == (48, 12, 140)
    assert summary["trained_on"] == sum(1 for r in judge_rows if int(r["item"]) < 100)
    frame = store.routing_frame(db, project["id"])
    assert len(frame) == 200
    assert frame["decision"].value_counts().to_dict() == {"llm": 140, "human": 48, "both": 12}
    # Items without a judge label are never left to the judge.
    labelled = {int(r["item"]) for r in judge_rows}
    ext = store.items_frame(db, project["id"]).set_index("item_id")["external_id"]
    unlabelled = frame[~frame["item_id"].map(ext).astype(int).isin(labelled)]
    assert set(unlabelled["decision"]) <= {"human"}
    queue = dict(db.execute("SELECT queue_rank, COUNT(*) FROM items GROUP BY queue_rank"))
    assert queue == {0: 60, 2: 140}


def test_active_selection_orders_human_items_by_outcome_uncertainty(tmp_path, shared_data):
    from prefstore import fitting

    db = store.connect(tmp_path / "a.db")
    rows = pandalm.item_rows(with_judgments=False)[:120]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "i.jsonl", rows), "p",
                           settings={"gold_rate": 0.0})
    judge_rows = [r for r in pandalm.gpt_judgment_rows()[:120] if r["choice"] != "garbage"]
    importing.import_judgments(db, pandalm.write_jsonl(tmp_path / "j.jsonl", judge_rows), "p")
    fit = fitting.fit_project(db, "p", model="bt", level="system", kind="all")
    routing.refresh_routing(db, "p", active=True)
    frame = store.routing_frame(db, 1).set_index("item_id")
    systems = store.responses_frame(db, 1, with_text=False).pivot(
        index="item_id", columns="idx", values="system")
    scores = fit["scores"]
    expected = {}
    for item_id in frame.index:
        a, b = systems.loc[item_id, 0], systems.loc[item_id, 1]
        p = 1 / (1 + np.exp(scores[b] - scores[a]))
        expected[item_id] = p * (1 - p)
        assert frame.loc[item_id, "priority"] == pytest.approx(expected[item_id])
    # No budget: every item goes to humans (a calibration share marked "both"),
    # the most uncertain comparison first.
    assert "llm" not in set(frame["decision"])
    rater, _ = store.create_rater(db, "ann")
    served = []
    for _ in range(5):
        claim = store.claim_next(db, 1, rater["id"])
        served.append(claim["item_id"])
        store.release_assignment(db, claim["id"], rater["id"], status="skipped")
    ranked = sorted(expected, key=lambda i: (-round(expected[i], 12), i))
    assert [round(expected[i], 12) for i in served] == [round(expected[i], 12)
                                                        for i in ranked[:5]]
