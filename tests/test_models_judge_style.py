"""Judge style bias: a length-loving judge is flagged, a faithful one is not."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from prefstore.errors import InvalidInput
from prefstore.models.judge_style import judge_style_bias, style_difference_summary

SYSTEMS = ["A", "B", "C", "D"]


def frames(seed=0, n_items=1500):
    """Items with two responses; humans mildly like length, 'verbose-judge' a lot."""
    rng = np.random.default_rng(seed)
    quality = {"A": 0.6, "B": 0.2, "C": -0.2, "D": -0.6}
    verbosity = {"A": 40, "B": 120, "C": 60, "D": 200}
    responses, judgments, lengths = [], [], {}
    for item in range(n_items):
        pair = rng.choice(SYSTEMS, 2, replace=False)
        for idx, system in enumerate(pair):
            words = int(np.exp(rng.normal(np.log(verbosity[system]), 0.8))) + 1
            rid = 10 * item + idx
            lengths[rid] = words
            text = " ".join(["word"] * words) + ("\n# Heading" if rng.random() < 0.5 else "")
            responses.append((item, idx, system, rid, text))
        la, lb = lengths[10 * item], lengths[10 * item + 1]
        x = (la - lb) / (la + lb + 1)
        base = quality[pair[0]] - quality[pair[1]]
        for rater, effect in (("human", 0.5), ("fair-judge", 0.5), ("verbose-judge", 2.5)):
            first = rng.random() < expit(base + effect * x / 0.4)
            kind = "human" if rater == "human" else "llm"
            judgments.append((len(judgments), item, rater, kind, "choice", 0 if first else 1))
    responses = pd.DataFrame(responses, columns=["item_id", "idx", "system", "response_id", "text"])
    judgments = pd.DataFrame(
        judgments, columns=["id", "item_id", "rater", "kind", "outcome", "choice"]
    ).assign(ranking=None, strength=np.nan)
    return judgments, responses


def test_length_loving_judge_is_flagged_and_summarised():
    judgments, responses = frames()
    out = judge_style_bias(judgments, responses, features=["length", "headers"])
    json.dumps(out, allow_nan=False)
    assert out["n_human_items"] == 1500
    assert out["humans_style_coefficients"]["length"] > 0
    by_name = {j["judge"]: j for j in out["judges"]}
    assert list(by_name) == ["fair-judge", "verbose-judge"]
    verbose, fair = by_name["verbose-judge"], by_name["fair-judge"]
    assert verbose["differs"] == {"length": True, "headers": False}
    assert fair["differs"] == {"length": False, "headers": False}
    ratio = verbose["style_coefficients"]["length"] / verbose["humans_style_coefficients"]["length"]
    assert 3 < ratio < 8  # truth: 5x
    assert f"rewards length {ratio:.1f}x more than your raters" in verbose["summary"]
    assert fair["summary"].startswith("No significant difference")
    assert verbose["n_items"] == 1500
    assert set(verbose["style_ci95"]) == {"length", "headers"}


def test_summary_in_words():
    differs = {"length": True, "bold": True, "lists": True}
    judge = {"length": -0.4, "bold": 0.3, "lists": 0.1}
    humans = {"length": 0.5, "bold": 0.01, "lists": 0.4}
    se = {"length": 0.05, "bold": 0.05, "lists": 0.05}
    text = style_difference_summary(judge, humans, se, differs)
    assert text == (
        "This judge penalises length while your raters reward it; rewards bold text "
        "(+0.30 log-odds per standard deviation) while your raters show no clear preference; "
        "rewards lists less than your raters (0.2x as much)."
    )


def test_judge_without_shared_items_and_no_humans():
    judgments, responses = frames(n_items=200)
    lonely = judgments.iloc[[0]].assign(id=10**6, rater="lonely", kind="llm", item_id=10**6)
    extra = pd.DataFrame(
        [(10**6, 0, "A", 10**8, "a"), (10**6, 1, "B", 10**8 + 1, "b b")], columns=responses.columns
    )
    out = judge_style_bias(
        pd.concat([judgments, lonely]), pd.concat([responses, extra]), features=["length"]
    )
    entry = next(j for j in out["judges"] if j["judge"] == "lonely")
    assert entry["style_coefficients"] == {"length": None}
    assert entry["summary"].startswith("could not compare")
    with pytest.raises(InvalidInput, match="human"):
        judge_style_bias(judgments[judgments["kind"] == "llm"], responses)
