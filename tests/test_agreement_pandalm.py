"""PandaLM test set (Wang et al. 2023): published agreement numbers through the adapter.

The data stay in ../shared/data/pandalm/ (Apache-2.0), read in place. Annotator labels
are 0 = tie, 1 = response1 better, 2 = response2 better; response1 is idx 0.
"""

import json
from collections import Counter

import krippendorff  # GPL: test oracle only
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from prefstore.agreement import TIE, agreement_report
from tests import pandalm as pandalm_data

ANNOTATORS = ("annotator1", "annotator2", "annotator3")
HUMAN = {0: ("tie", None), 1: ("choice", 0), 2: ("choice", 1)}
# The published script scores "garbage" (unparseable) GPT answers as a tie.
GPT = {"1": ("choice", 0), "2": ("choice", 1), "Tie": ("tie", None), "garbage": ("tie", None)}



@pytest.fixture(autouse=True)
def _data(shared_data):
    """Every test here reads the PandaLM files: through the one data fixture."""


def load_pandalm():
    test = json.loads((pandalm_data.PANDALM / "testset-v1.json").read_text())
    gpt = json.loads((pandalm_data.PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text())
    assert [g["idx"] for g in gpt] == [t["idx"] for t in test]
    return test, gpt


def build_frames(test, gpt, skip_garbage=False):
    """Build the store's frames: three human annotators and one LLM judge per item."""
    items, responses, judgments = [], [], []

    def judge(rater, kind, item, outcome, choice, raw=None):
        judgments.append(
            {
                "id": len(judgments) + 1,
                "item_id": item,
                "rater": rater,
                "kind": kind,
                "outcome": outcome,
                "choice": choice,
                "ranking": None,
                "strength": None,
                "display_order": [0, 1],
                "time_ms": None,
                "created_at": "2023-04-01T00:00:00+00:00",
                "metadata": {} if raw is None else {"raw": raw},
                "edited": None,
                "aspects": None,
            }
        )

    for row, answer in zip(test, gpt):
        item = row["idx"]
        systems = row["cmp_key"].split("_")
        items.append(
            {
                "item_id": item,
                "external_id": str(item),
                "category": row["motivation_app"],
                "gold_choice": None,
                "n_responses": 2,
            }
        )
        for k, key in enumerate(("response1", "response2")):
            text = str(row[key])  # six responses are JSON `true`, not text
            responses.append(
                {"item_id": item, "idx": k, "system": systems[k], "length": len(text), "text": text}
            )
        for name in ANNOTATORS:
            judge(name, "human", item, *HUMAN[row[name]])
        if not (skip_garbage and answer["gpt_result"] == "garbage"):
            judge(
                "gpt-3.5-turbo", "llm", item, *GPT[answer["gpt_result"]], raw=answer["gpt_result"]
            )
    return pd.DataFrame(judgments), pd.DataFrame(responses), pd.DataFrame(items)


@pytest.fixture(scope="module")
def pandalm():
    return load_pandalm()


@pytest.fixture(scope="module")
def report(pandalm):
    return agreement_report(*build_frames(*pandalm), kind="human", seed=0, n_boot=500)


def annotator_codes(test):
    """(3, 999) matrix of our label codes: 0, 1 or TIE."""
    code = {0: TIE, 1: 0, 2: 1}
    return np.array([[code[row[name]] for row in test] for name in ANNOTATORS], dtype=float)


def test_frames_shape(pandalm):
    judgments, responses, items = build_frames(*pandalm)
    assert len(items) == 999 and len(responses) == 1998 and len(judgments) == 4 * 999
    assert responses.loc[(responses.item_id == 157) & (responses.idx == 0), "text"].item() == "True"


def test_cohen_kappa_between_annotators(report):
    kappas = {(p["a"], p["b"]): round(p["kappa"], 3) for p in report["cohen_kappa"]}
    assert kappas == {
        ("annotator1", "annotator2"): 0.852,
        ("annotator1", "annotator3"): 0.879,
        ("annotator2", "annotator3"): 0.862,
    }
    assert all(p["n"] == 999 and p["weighted_kappa"] is None for p in report["cohen_kappa"])
    assert all(p["n_weighted"] == 0 for p in report["cohen_kappa"])  # no strength recorded


def test_majority_definitions_coincide_on_pandalm(pandalm):
    # The published script takes the first-seen label when all three annotators differ;
    # ours calls that a tie. PandaLM has no such item, so both give the same majority.
    test, _ = pandalm
    labels = [tuple(row[name] for name in ANNOTATORS) for row in test]
    assert sum(len(set(lab)) == 3 for lab in labels) == 0


def test_gpt35_against_human_majority_garbage_as_tie(report):
    (judge,) = report["judges"]
    assert judge["rater"] == "gpt-3.5-turbo" and judge["n_items"] == 999
    assert round(judge["accuracy_vs_human_majority"], 4) == 0.7107
    assert round(judge["macro_f1"], 4) == 0.5755


def test_gpt35_against_human_majority_garbage_skipped(pandalm):
    result = agreement_report(*build_frames(*pandalm, skip_garbage=True), n_boot=10)
    (judge,) = result["judges"]
    assert judge["n_items"] == 974
    assert round(judge["accuracy_vs_human_majority"], 4) == 0.7156


def test_judge_mt_bench_agreements_by_hand(pandalm, report):
    test, gpt = pandalm
    human = annotator_codes(test)
    code = {"1": 0, "2": 1, "Tie": TIE, "garbage": TIE}
    judge_labels = np.array([code[g["gpt_result"]] for g in gpt], dtype=float)
    majority = np.array([Counter(col).most_common(1)[0][0] for col in human.T])
    (judge,) = report["judges"]
    keep = majority != TIE
    assert judge["accuracy_vs_human_majority_no_ties"] == pytest.approx(
        np.mean(judge_labels[keep] == majority[keep])
    )
    assert judge["agreement_with_ties"] == pytest.approx(np.mean(human == judge_labels))
    clean = (human != TIE) & (judge_labels != TIE)
    assert judge["agreement_without_ties"] == pytest.approx(np.mean((human == judge_labels)[clean]))
    assert sum(map(sum, judge["confusion"]["counts"])) == 999
    assert judge["swap_inconsistency"] is None


def test_alpha_and_fleiss_on_pandalm(pandalm, report):
    human = annotator_codes(pandalm[0])
    expected = krippendorff.alpha(human, level_of_measurement="nominal")
    assert report["krippendorff_alpha"]["nominal"] == pytest.approx(expected, abs=1e-9)
    lo, hi = report["krippendorff_alpha_ci95"]["nominal"]
    assert lo < expected < hi and hi - lo < 0.1
    assert report["krippendorff_alpha"]["ordinal"] is None  # PandaLM has no strength
    assert any("no strength recorded" in note for note in report["notes"])
    assert report["fleiss_kappa"] == pytest.approx(
        fleiss_kappa(aggregate_raters(human.T)[0]), abs=1e-12
    )
    assert report["n_items_multi_rated"] == 999
    json.dumps(report, allow_nan=False)
