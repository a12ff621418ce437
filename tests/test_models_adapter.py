"""Store frames -> integer arrays: a small hand-built store gives exact arrays."""

import numpy as np
import pandas as pd
import pytest

from prefstore.errors import InvalidInput
from prefstore.models import (
    STRENGTH_WEIGHTS,
    adapter,
    get_model,
    pairwise_from_frames,
    rankings_from_frames,
)

NAN = float("nan")


@pytest.fixture
def responses():
    return pd.DataFrame(
        [
            # a pair
            (1, 0, "A", 10),
            (1, 1, "B", 11),
            # a slate of three
            (2, 0, "B", 20),
            (2, 1, "C", 21),
            (2, 2, "A", 22),
            # the same system twice
            (3, 0, "A", 30),
            (3, 1, "A", 31),
            # a response without a system
            (4, 0, None, 40),
            (4, 1, "C", 41),
        ],
        columns=["item_id", "idx", "system", "response_id"],
    )


@pytest.fixture
def judgments():
    rows = [
        # id, item, rater, kind, outcome, choice, ranking, strength
        (1, 1, "ann", "human", "choice", 1, None, 3),
        (2, 1, "bob", "llm", "tie", NAN, None, NAN),
        (3, 2, "ann", "human", "choice", 2, None, NAN),
        (4, 2, "bob", "llm", "choice", NAN, [1, 0, 2], NAN),
        (5, 3, "ann", "human", "both_bad", NAN, None, NAN),
        (6, 1, "cat", "human", "choice", 0, None, 0),
    ]
    frame = pd.DataFrame(
        rows, columns=["id", "item_id", "rater", "kind", "outcome", "choice", "ranking", "strength"]
    )
    frame["display_order"] = [[0, 1], [1, 0], [2, 0, 1], [0, 1, 2], [0, 1], [1, 0]]
    frame["created_at"] = "2025-01-01T00:00:00"
    return frame.sample(frac=1.0, random_state=0)  # the adapter must not rely on row order


def test_pairwise_system_level(judgments, responses):
    data = pairwise_from_frames(judgments, responses)
    assert data.names == ["A", "B", "C"] and data.level == "system"
    assert data.rater_names == ["ann", "bob", "cat"]
    # j1 B>A (strength 3), j2 tie A-B, j3 A>B A>C, j4 C>B C>A B>A, j5 same system: dropped, j6 A>B
    np.testing.assert_array_equal(data.winners, [1, 0, 0, 0, 2, 2, 1, 0])
    np.testing.assert_array_equal(data.losers, [0, 1, 1, 2, 1, 0, 0, 1])
    np.testing.assert_array_equal(data.ties, [0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(data.weights, [2.0, 1, 1, 1, 1, 1, 1, 0.5])
    np.testing.assert_array_equal(data.raters, [0, 1, 0, 0, 1, 1, 1, 2])


def test_pairwise_response_level_keeps_same_system_pairs(judgments, responses):
    data = pairwise_from_frames(judgments, responses, level="response", strength_weights=None)
    assert data.names == ["10", "11", "20", "21", "22", "30", "31"]
    np.testing.assert_array_equal(data.winners, [1, 0, 4, 4, 3, 3, 2, 5, 0])
    np.testing.assert_array_equal(data.losers, [0, 1, 2, 3, 2, 4, 4, 6, 1])
    np.testing.assert_array_equal(data.ties, [0, 1, 0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(data.weights, np.ones(9))


def test_pairwise_filters_and_policies(judgments, responses):
    human = pairwise_from_frames(judgments, responses, kind="human")
    assert human.rater_names == ["ann", "cat"]
    np.testing.assert_array_equal(human.winners, [1, 0, 0, 0])
    llm = pairwise_from_frames(judgments, responses, kind="llm", tie_policy="drop")
    np.testing.assert_array_equal(llm.winners, [2, 2, 1])
    assert not llm.ties.any()
    resp = pairwise_from_frames(judgments, responses, level="response", both_bad="drop")
    assert "30" not in resp.names and resp.ties.sum() == 1


def test_rankings_system_level(judgments, responses):
    data = rankings_from_frames(judgments, responses)
    assert data.names == ["A", "B", "C"]
    # j1 top-1 B of {A, B}; j3 top-1 A of the slate; j4 full ranking C > B > A; j6 A of {A, B};
    # ties and both_bad are left out.
    np.testing.assert_array_equal(data.rankings, [[1, 0, -1], [0, 1, 2], [2, 1, 0], [0, 1, -1]])
    np.testing.assert_array_equal(data.depth, [1, 1, 2, 1])
    np.testing.assert_array_equal(data.weights, [2.0, 1.0, 1.0, 0.5])
    np.testing.assert_array_equal(data.raters, [0, 0, 1, 2])


def test_rankings_drop_rows_with_one_system(responses):
    judgments = pd.DataFrame(
        [
            (1, 3, "ann", "human", "choice", 0, None, NAN),
            (2, 1, "ann", "human", "choice", 0, None, NAN),
        ],
        columns=["id", "item_id", "rater", "kind", "outcome", "choice", "ranking", "strength"],
    )
    data = rankings_from_frames(judgments, responses)
    np.testing.assert_array_equal(data.rankings, [[0, 1]])
    assert data.names == ["A", "B"]


def test_missing_system_names_the_item(judgments, responses):
    extra = pd.DataFrame(
        [(7, 4, "ann", "human", "choice", 1, None, NAN)], columns=judgments.columns[:8]
    )
    with_missing = pd.concat([judgments, extra], ignore_index=True)
    with pytest.raises(InvalidInput, match="item 4: response 0 has no system"):
        pairwise_from_frames(with_missing, responses)
    with pytest.raises(InvalidInput, match="item 4: response 0 has no system"):
        rankings_from_frames(with_missing, responses)
    ok = pairwise_from_frames(with_missing, responses, level="response")
    assert "40" in ok.names


def test_bad_input_is_named(judgments, responses):
    with pytest.raises(InvalidInput, match='"level"'):
        pairwise_from_frames(judgments, responses, level="model")
    with pytest.raises(InvalidInput, match='"kind"'):
        pairwise_from_frames(judgments, responses, kind="robot")
    with pytest.raises(InvalidInput, match=r"missing columns \['system'\]"):
        pairwise_from_frames(judgments, responses.drop(columns="system"))
    bad = judgments.copy()
    bad.loc[bad["id"] == 3, "choice"] = 7
    with pytest.raises(InvalidInput, match="judgment 3: item 2 has no response with index 7"):
        pairwise_from_frames(bad, responses)
    bad = judgments.copy()
    bad.loc[bad["id"] == 6, "strength"] = 9
    with pytest.raises(InvalidInput, match="judgment 6: strength"):
        pairwise_from_frames(bad, responses)


def test_end_to_end_fit_uses_names(judgments, responses):
    data = pairwise_from_frames(judgments, responses)
    out = get_model("bt").fit(data, anchor="A").to_dict()
    assert out["level"] == "system" and set(out["scores"]) == {"A", "B", "C"}
    assert out["elo"]["A"] == pytest.approx(1000.0)
    assert STRENGTH_WEIGHTS[3] == 2.0


def test_no_usable_judgments_is_invalid_input(responses):
    empty = pd.DataFrame(
        [(1, 3, "ann", "human", "both_bad", NAN, None, NAN)],
        columns=["id", "item_id", "rater", "kind", "outcome", "choice", "ranking", "strength"],
    )
    data = pairwise_from_frames(empty, responses)
    assert len(data) == 0 and data.names == []
    with pytest.raises(InvalidInput, match="at least 2 items, got 0"):
        get_model("bt").fit(data)
    with pytest.raises(InvalidInput, match="at least 2 items, got 0"):
        get_model("pl").fit(rankings_from_frames(empty, responses))


@pytest.mark.parametrize("level", ["system", "response"])
@pytest.mark.parametrize("kind, tie_policy, both_bad", [
    ("all", "keep", "tie"), ("human", "drop", "tie"), ("llm", "keep", "drop")])
def test_vectorized_pairs_match_the_general_loop(monkeypatch, level, kind, tie_policy,
                                                 both_bad):
    rng = np.random.default_rng(7)
    n_items, n_judgments = 60, 400
    responses = pd.DataFrame({
        "item_id": np.repeat(np.arange(1, n_items + 1), 2),
        "idx": np.tile([0, 1], n_items),
        "system": rng.choice(["gpt", "llama", "mistral", "qwen"], size=2 * n_items),
        "response_id": np.arange(100, 100 + 2 * n_items),
    }).sample(frac=1.0, random_state=3)  # stored order must not matter
    outcome = rng.choice(["choice", "choice", "choice", "tie", "both_bad"], size=n_judgments)
    choice = np.where(outcome == "choice", rng.integers(0, 2, n_judgments), -1)
    strength = rng.choice([0, 1, 2, 3, -1], size=n_judgments)
    judgments = pd.DataFrame({
        "id": rng.permutation(n_judgments) + 1,
        "item_id": rng.integers(1, n_items + 1, n_judgments),
        "rater": rng.choice(["ann", "bob", "cy", "gpt-judge"], size=n_judgments),
        "kind": rng.choice(["human", "llm"], size=n_judgments),
        "outcome": outcome,
        "choice": pd.array([None if c < 0 else int(c) for c in choice], dtype="Int64"),
        "ranking": [None] * n_judgments,
        "strength": pd.array([None if s < 0 or o != "choice" else int(s)
                              for s, o in zip(strength, outcome)], dtype="Int64"),
    })
    options = dict(level=level, kind=kind, tie_policy=tie_policy, both_bad=both_bad)
    fast = adapter._pairwise_vectorized(judgments, responses, level, kind, tie_policy,
                                        both_bad, adapter.STRENGTH_WEIGHTS)
    assert fast is not None
    monkeypatch.setattr(adapter, "_pairwise_vectorized", lambda *args: None)
    slow = adapter.pairwise_from_frames(judgments, responses, **options)
    assert fast.names == slow.names and fast.rater_names == slow.rater_names
    assert fast.n_items == slow.n_items
    for field in ("winners", "losers", "ties", "weights", "raters"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)


def test_vectorized_path_steps_aside_for_slates_and_rankings():
    responses = pd.DataFrame({"item_id": [1, 1, 1], "idx": [0, 1, 2],
                              "system": ["a", "b", "c"], "response_id": [1, 2, 3]})
    judgments = pd.DataFrame({"id": [1], "item_id": [1], "rater": ["r"], "kind": ["human"],
                              "outcome": ["choice"], "choice": [0], "ranking": [None],
                              "strength": [None]})
    assert adapter._pairwise_vectorized(judgments, responses, "system", "all", "keep", "tie",
                                        adapter.STRENGTH_WEIGHTS) is None


# --- style covariates -------------------------------------------------------------------


def _with_texts(responses):
    texts = {
        10: "short answer",
        11: "# Title\n- one\n- two\n**bold** and more words here",
        20: "1. a\n2. b",
        21: "plain text of six words here",
        22: "## H\n```\n# code\n```",
        30: "x",
        31: "y y",
        40: "z",
        41: "w",
    }
    out = responses.copy()
    out["text"] = out["response_id"].map(texts)
    return out


@pytest.mark.parametrize("level", ["system", "response"])
@pytest.mark.parametrize("both_bad", ["tie", "drop"])
def test_pairwise_style_rows_mirror_pairwise_from_frames(judgments, responses, level, both_bad):
    from prefstore.models import pairwise_style_from_frames
    from prefstore.models.style import style_covariates, style_features

    frame = _with_texts(responses)
    plain = pairwise_from_frames(judgments, frame, level=level, both_bad=both_bad)
    data, x = pairwise_style_from_frames(judgments, frame, level=level, both_bad=both_bad)
    for attr in ("winners", "losers", "ties", "weights", "raters"):
        np.testing.assert_array_equal(getattr(data, attr), getattr(plain, attr))
    assert (data.names, data.rater_names, data.level) == (plain.names, plain.rater_names, level)
    assert x.shape == (len(plain), 4)
    if level == "system":
        # j1: B (response 11) beat A (response 10); j3: A (22) beat B (20) and C (21)
        f = style_features([frame.set_index("response_id").loc[r, "text"]
                            for r in (10, 11, 20, 21, 22)])
        np.testing.assert_allclose(x[0], style_covariates(f[[1]], f[[0]])[0])
        np.testing.assert_allclose(x[2], style_covariates(f[[4]], f[[2]])[0])
        np.testing.assert_allclose(x[3], style_covariates(f[[4]], f[[3]])[0])
        # headers: response 22 has one (the code block's "# code" does not count)
        assert f[4, 1] == 1


def test_pairwise_style_feature_subset_and_errors(judgments, responses):
    from prefstore.models import pairwise_style_from_frames

    frame = _with_texts(responses)
    data, x = pairwise_style_from_frames(judgments, frame, features=["length", "bold"])
    _, full = pairwise_style_from_frames(judgments, frame)
    np.testing.assert_array_equal(x, full[:, [0, 3]])
    with pytest.raises(InvalidInput, match='"features"'):
        pairwise_style_from_frames(judgments, frame, features=["emoji"])
    with pytest.raises(InvalidInput, match="text"):
        pairwise_style_from_frames(judgments, responses)
    judged = pd.concat([judgments, judgments.iloc[[0]].assign(id=99, item_id=4, choice=0)])
    with pytest.raises(InvalidInput, match="item 4: response 0 has no system"):
        pairwise_style_from_frames(judged, frame)


def test_pairwise_style_on_pairs_uses_the_vectorized_rows():
    from prefstore.models import pairwise_style_from_frames

    rng = np.random.default_rng(0)
    n_items = 60
    responses = pd.DataFrame(
        [(i, k, ["A", "B", "C"][(i + k) % 3], 100 * i + k, "word " * int(rng.integers(1, 30)))
         for i in range(n_items) for k in (0, 1)],
        columns=["item_id", "idx", "system", "response_id", "text"],
    )
    outcomes = rng.choice(["choice", "tie", "both_bad"], 3 * n_items, p=[0.8, 0.1, 0.1])
    judgments = pd.DataFrame({
        "id": np.arange(3 * n_items), "item_id": np.repeat(np.arange(n_items), 3),
        "rater": np.tile(["r1", "r2", "r3"], n_items), "kind": "human", "outcome": outcomes,
        "choice": np.where(outcomes == "choice", rng.integers(0, 2, 3 * n_items), NAN),
        "ranking": None, "strength": NAN,
    })
    plain = pairwise_from_frames(judgments, responses)
    data, x = pairwise_style_from_frames(judgments, responses)
    np.testing.assert_array_equal(data.winners, plain.winners)
    np.testing.assert_array_equal(data.losers, plain.losers)
    np.testing.assert_array_equal(data.ties, plain.ties)
    length = responses.set_index("response_id")["text"].str.split().str.len()
    # recompute row 0 by hand from the judgment it came from
    j0 = judgments[judgments["outcome"] != "both_bad"].iloc[0]
    ids = [100 * j0["item_id"], 100 * j0["item_id"] + 1]
    first_won = j0["outcome"] == "tie" or j0["choice"] == 0
    lw, ll = (length[ids[0]], length[ids[1]]) if first_won else (length[ids[1]], length[ids[0]])
    assert x[0, 0] == pytest.approx((lw - ll) / (lw + ll + 1))


def test_unjudged_slates_beside_judged_pairs(judgments, responses):
    # A slate project's win rates: only two-response judgments so far, while
    # three-response items wait unjudged (this raised "duplicate labels").
    pairs_only = judgments[judgments["item_id"] == 1]
    named = responses[responses["item_id"] != 4]  # every response has a system
    data = pairwise_from_frames(pairs_only, named)
    assert data.names == ["A", "B"]
    # j1 B>A (strength 3), j2 tie A-B, j6 A>B (strength 0)
    np.testing.assert_array_equal(data.winners, [1, 0, 0])
    np.testing.assert_array_equal(data.losers, [0, 1, 1])
    np.testing.assert_array_equal(data.ties, [0, 1, 0])
    np.testing.assert_array_equal(data.weights, [2.0, 1, 0.5])
