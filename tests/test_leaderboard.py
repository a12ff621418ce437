"""prefstore.leaderboard: exact win rates and table rows on tiny inputs."""

import numpy as np
import pandas as pd
import pytest

from prefstore import leaderboard, store
from prefstore.models import PairwiseData, pairwise_from_frames


def test_win_rate_pairwise_counts_ties_as_half():
    # a beats b twice, b beats a once, a ties c once; b and c never meet.
    data = PairwiseData(winners=[0, 0, 1, 0], losers=[1, 1, 0, 2], n_items=3,
                        ties=[False, False, False, True], weights=[2.0, 1.0, 1.0, 1.0],
                        names=["a", "b", "c"])
    out = leaderboard.win_rate_pairwise(data)
    assert out["names"] == ["a", "b", "c"]
    assert out["wins"] == [[0.0, 2.0, 0.5], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]
    assert out["games"] == [[0, 3, 1], [3, 0, 0], [1, 0, 0]]
    assert out["rate"] == [[None, 2 / 3, 0.5], [1 / 3, None, None], [0.5, None, None]]


def test_win_rate_from_a_slate_expands_pairs():
    judgments = pd.DataFrame([
        {"id": 1, "item_id": 1, "rater": "r", "kind": "human", "outcome": "choice",
         "choice": None, "ranking": [2, 0, 1], "strength": None},
        {"id": 2, "item_id": 1, "rater": "s", "kind": "human", "outcome": "choice",
         "choice": 0, "ranking": None, "strength": 3}])
    responses = pd.DataFrame({"item_id": [1, 1, 1], "idx": [0, 1, 2], "response_id": [1, 2, 3],
                              "system": ["x", "y", "z"]})
    data = pairwise_from_frames(judgments, responses, strength_weights=None)
    out = leaderboard.win_rate_pairwise(data)
    assert out["names"] == ["x", "y", "z"]
    # ranking z > x > y, then x beats y and z: x-y 2/2, x-z 1/2, z-y 1/1.
    assert out["rate"] == [[None, 1.0, 0.5], [0.0, None, 0.0], [0.5, 1.0, None]]


def test_leaderboard_rows_best_first():
    result = {"scores": {"a": -0.5, "b": 0.5, "c": -0.5},
              "ci95": {"a": [-1.0, 0.0], "b": [0.0, 1.0], "c": [-1.0, 0.0]},
              "elo": {"a": 950.0, "b": 1050.0, "c": 950.0}}
    assert leaderboard.leaderboard_rows(result) == [
        {"rank": 1, "name": "b", "score": 0.5, "ci_low": 0.0, "ci_high": 1.0, "elo": 1050.0},
        {"rank": 2, "name": "a", "score": -0.5, "ci_low": -1.0, "ci_high": 0.0, "elo": 950.0},
        {"rank": 3, "name": "c", "score": -0.5, "ci_low": -1.0, "ci_high": 0.0, "elo": 950.0}]


def test_type_and_rater_rows():
    result = {"types": [{"weight": 0.25, "scores": {"a": 1.0, "b": -1.0},
                         "ci95": {"a": [0.0, 2.0], "b": [-2.0, 0.0]}},
                        {"weight": 0.75, "scores": {"a": -1.0, "b": 1.0}, "ci95": {}}],
              "raters": {"r2": [0.1, 0.9], "r1": [0.8, 0.2]}}
    types = leaderboard.type_rows(result)
    assert [(t["type"], t["weight"], [r["name"] for r in t["rows"]]) for t in types] == [
        (1, 0.25, ["a", "b"]), (2, 0.75, ["b", "a"])]
    assert types[1]["rows"][0]["ci_low"] is None
    assert leaderboard.rater_type_rows(result) == [
        {"rater": "r1", "type 1": 0.8, "type 2": 0.2, "most likely type": 1},
        {"rater": "r2", "type 1": 0.1, "type 2": 0.9, "most likely type": 2}]
    assert leaderboard.type_rows({"scores": {}}) == []


def test_refresh_win_rates_stores_each_kind(db):
    project = store.create_project(db, "p", "pairwise")
    [item] = store.insert_items(db, project["id"], [{
        "external_id": "q", "prompt": "p",
        "responses": [{"text": "A", "system": "a"}, {"text": "B", "system": "b"}]}])
    human, _ = store.create_rater(db, "h")
    judge, _ = store.create_rater(db, "j", kind="llm")
    store.submit_judgment(db, item_id=item, rater_id=human["id"], submission_id="1",
                            outcome="choice", choice=1)
    store.submit_judgment(db, item_id=item, rater_id=judge["id"], submission_id="2",
                            outcome="tie")
    leaderboard.refresh_win_rates(db, project["id"])
    rate = {k: store.latest_report(db, project["id"], name="win_rate", kind=k)["result"]
            for k in leaderboard.KINDS}
    assert rate["human"]["rate"] == [[None, 0.0], [1.0, None]]
    assert rate["llm"]["rate"] == [[None, 0.5], [0.5, None]]
    assert rate["all"]["rate"] == [[None, 0.25], [0.75, None]]
    assert [rate[k]["n_judgments"] for k in leaderboard.KINDS] == [1, 1, 2]


@pytest.mark.parametrize("kind", leaderboard.KINDS)
def test_no_judgments_gives_an_empty_matrix(db, kind):
    project = store.create_project(db, "empty", "pairwise")
    out = leaderboard.project_win_rates(db, project["id"], kinds=(kind,))
    assert out[kind] == {"names": [], "wins": [], "games": [], "rate": [], "n_judgments": 0}


@pytest.mark.parametrize("seed", range(4))
def test_win_rates_equal_the_adapter_path(seed):
    """The direct system games give what win_rate_pairwise(pairwise_from_frames) gives."""
    from prefstore.leaderboard import KINDS, win_rates
    from prefstore.models import pairwise_from_frames
    from tests.test_agreement_report_oracle import random_frames

    judgments, responses, _ = random_frames(seed, slates=seed == 3, n_judges=seed % 3)
    responses["response_id"] = range(1, len(responses) + 1)
    if seed == 1:  # a pair of responses from one system says nothing about systems
        responses.loc[responses["item_id"] == 2, "system"] = "s0"
    if seed == 2:  # categoricals, as the store's report frame has them
        judgments = judgments.astype({"rater": "category", "kind": "category",
                                      "outcome": "category"})
    got = win_rates(judgments, responses)
    direct = leaderboard._system_games(judgments, responses, np.arange(len(judgments)))
    assert (direct is None) == (seed == 3)  # slates go through the adapter
    for kind in KINDS:
        data = pairwise_from_frames(judgments, responses, level="system", kind=kind,
                                    strength_weights=None)
        n = len(judgments) if kind == "all" else int((judgments["kind"] == kind).sum())
        assert got[kind] == {**leaderboard.win_rate_pairwise(data), "n_judgments": n}
