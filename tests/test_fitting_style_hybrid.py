"""Style-controlled and hybrid fits from the store: CLI JSON, stored fits, errors, agreement.

The project (tests/style_hybrid_data.py) has four systems, one human and one LLM
label per item; the judge rewards length about 2.5 times as much as the human.
Figures are pinned from this implementation (checked against the pure models in
tests/test_models_style.py and tests/test_models_hybrid.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from prefstore import agreement, fitting, store
from prefstore.cli import main
from prefstore.models.hybrid import HYBRID_ALPHA
from prefstore.models.style import STYLE_FEATURE_DEFINITIONS
from tests import style_hybrid_data as synthetic

ATOL = 1e-6
EXACT = 1e-10  # lambda = 0 against the human-only Bradley-Terry fit
BASE_KEYS = {"model", "level", "kind", "project", "scores", "ci95", "elo", "log_likelihood",
             "n_comparisons", "seconds", "params", "notes", "fit_id"}
STYLE_KEYS = BASE_KEYS | {"style_coefficients", "style_ci95", "style_scale", "style_features",
                          "style_covariate"}
HYBRID_KEYS = BASE_KEYS | {"judge", "lambda", "n_human_items", "n_llm_items"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The synthetic project, built once; tests that write fits use a copy."""
    path = tmp_path_factory.mktemp("style") / "style.db"
    db = store.connect(path)
    synthetic.build(db)
    db.close()
    return path


@pytest.fixture
def db_file(source, tmp_path):
    path = tmp_path / "copy.db"
    db = store.connect(source)
    store.backup(db, path)
    db.close()
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run the command line in-process: (exit code, stdout, stderr); argparse exits too."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def fit_json(capsys, db_file, *args) -> dict:
    code, out, err = cli(capsys, "fit", "--project", "style", "--db", str(db_file), "--json",
                         *args)
    assert (code, err) == (0, "")
    return json.loads(out)


def rounded(scores: dict, digits: int = 6) -> dict:
    return {k: round(v, digits) for k, v in scores.items()}


# --- fit --style-control ------------------------------------------------------------


def test_style_control_json_and_stored_fit(capsys, db_file):
    out = fit_json(capsys, db_file, "--kind", "human", "--style-control")
    assert set(out) == STYLE_KEYS
    assert (out["model"], out["level"], out["kind"], out["project"]) == (
        "bt+style", "system", "human", "style")
    assert out["n_comparisons"] == 400
    assert rounded(out["scores"]) == {"alpha": 0.668943, "beta": 0.125517,
                                      "delta": -0.831309, "gamma": 0.036849}
    coef = out["style_coefficients"]
    assert list(coef) == ["length", "headers", "lists", "bold"]
    np.testing.assert_allclose([coef["length"], coef["headers"], coef["lists"]],
                               [1.3178798712, -0.0877482487, 0.0194673836], atol=ATOL)
    assert coef["bold"] is None and out["style_ci95"]["bold"] is None
    np.testing.assert_allclose(out["style_ci95"]["length"], [0.9283900567, 1.7073696857],
                               atol=ATOL)
    assert out["style_features"] == STYLE_FEATURE_DEFINITIONS
    assert out["notes"] == ["bold: left out, its covariate is zero over all fitted comparisons "
                            "(the feature does not vary between the compared responses)"]
    assert out["params"] == {"alpha": 0.0, "beta": 0.25, "ties": "half", "ci": "hessian",
                             "standardize": True}
    assert out["log_likelihood"] == pytest.approx(-199.4641444824, abs=ATOL)
    # the fit is stored like any other, under its own model name
    db = store.connect(db_file)
    stored = store.latest_fit(db, 1, model="bt+style", level="system", kind="human")
    db.close()
    assert stored["id"] == out["fit_id"] and stored["n_judgments"] == 400
    assert stored["result"]["scores"] == out["scores"]
    assert stored["params"] == {"alpha": None, "style_alpha": None,
                                "style_features": ["length", "headers", "lists", "bold"],
                                "ci": "hessian", "n_boot": 200, "seed": 0}


def test_style_features_and_alphas_reach_the_fit(capsys, db_file):
    out = fit_json(capsys, db_file, "--kind", "human", "--style-control", "--style-features",
                   "length", "--style-alpha", "2", "--alpha", "0.5")
    assert list(out["style_coefficients"]) == ["length"]
    assert list(out["style_features"]) == ["length"]
    assert (out["params"]["alpha"], out["params"]["beta"]) == (0.5, 2.0)
    # a stronger prior shrinks the coefficient
    assert 0 < out["style_coefficients"]["length"] < 1.3178798712


def test_style_features_come_from_the_final_turn(tmp_path):
    # The same items once with a plain prompt and once as multi-turn conversations
    # whose earlier assistant turn is full of headers, bold and lists: the compared
    # responses are the final turn, so the fits are identical.
    db = store.connect(tmp_path / "turns.db")
    synthetic.build(db, "plain", n_items=120)
    synthetic.build(db, "turns", n_items=120, multi_turn=True, prefix="t")
    plain = fitting.fit_style_project(db, "plain", kind="human", save=False)
    turns = fitting.fit_style_project(db, "turns", kind="human", save=False)
    db.close()
    assert turns["style_coefficients"] == plain["style_coefficients"]
    assert turns["scores"] == plain["scores"]
    assert turns["style_coefficients"]["bold"] is None  # no bold in any response


# --- fit --hybrid-judge -------------------------------------------------------------


def test_hybrid_json_and_stored_fit(capsys, db_file):
    out = fit_json(capsys, db_file, "--hybrid-judge", synthetic.JUDGE)
    assert set(out) == HYBRID_KEYS
    assert (out["model"], out["judge"], out["kind"]) == ("bt+hybrid:judge-x", "judge-x", "all")
    assert (out["n_human_items"], out["n_llm_items"]) == (400, 400)
    assert out["lambda"] == pytest.approx(0.2599650721, abs=ATOL)
    assert rounded(out["scores"]) == {"alpha": 0.568435, "beta": -0.634919,
                                      "delta": -0.735368, "gamma": 0.801852}
    for name, (lo, hi) in out["ci95"].items():
        assert lo < out["scores"][name] < hi
    db = store.connect(db_file)
    stored = store.latest_fit(db, 1, model=fitting.hybrid_model_name("judge-x"), kind="all")
    db.close()
    assert stored["id"] == out["fit_id"] and stored["n_judgments"] == 800
    assert stored["params"] == {"judge": "judge-x", "lambda": "auto", "alpha": None}


def test_lambda_zero_is_the_human_only_fit_through_the_cli(capsys, db_file):
    hybrid = fit_json(capsys, db_file, "--hybrid-judge", synthetic.JUDGE, "--ppi-lambda", "0")
    human = fit_json(capsys, db_file, "--kind", "human", "--alpha", str(HYBRID_ALPHA))
    assert hybrid["lambda"] == 0.0
    assert hybrid["scores"].keys() == human["scores"].keys()
    for name, score in human["scores"].items():
        assert hybrid["scores"][name] == pytest.approx(score, abs=EXACT)


# --- evaluate-hybrid ----------------------------------------------------------------


def test_evaluate_hybrid_json(capsys, source):
    code, out, err = cli(capsys, "evaluate-hybrid", "--project", "style", "--judge", "judge-x",
                         "--fractions", "0.25,0.5", "--reps", "5", "--seed", "0", "--json",
                         "--db", str(source))
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert set(result) == {"project", "judge", "fractions", "results", "n_items", "n_systems",
                           "reps"}
    assert (result["fractions"], result["n_items"], result["n_systems"], result["reps"]) == (
        [0.25, 0.5], 400, 4, 5)
    first = result["results"][0]
    assert set(first) == {"fraction", "n_human_items", "human_only", "llm_only", "hybrid"}
    assert (first["fraction"], first["n_human_items"]) == (0.25, 100)
    assert set(first["human_only"]) == set(first["llm_only"]) == {
        "coverage", "mean_ci_width", "kendall_tau"}
    assert set(first["hybrid"]) == {"coverage", "mean_ci_width", "kendall_tau", "mean_lambda"}
    np.testing.assert_allclose(
        [first["human_only"]["mean_ci_width"], first["hybrid"]["mean_ci_width"],
         first["llm_only"]["mean_ci_width"], first["hybrid"]["mean_lambda"]],
        [1.0535533366, 1.0115882475, 0.5633987105, 0.2492358560], atol=ATOL)
    # the biased judge's own leaderboard misses the human scores half the time
    assert first["llm_only"]["coverage"] == 0.5


HELP = " (see prefstore evaluate-hybrid --help)"


@pytest.mark.parametrize("args,message", [
    (["--fractions", "0.5,1"],
     "argument --fractions: must be comma-separated numbers strictly between 0 and 1, "
     "got '0.5,1'" + HELP),
    (["--fractions", "half"],
     "argument --fractions: must be comma-separated numbers strictly between 0 and 1, "
     "got 'half'" + HELP),
    (["--reps", "0"], "argument --reps: must be a number of draws from 1 to 100000, got 0" + HELP),
    (["--seed", "4294967296"],
     "argument --seed: must be an integer seed from 0 to 4294967295, got 4294967296" + HELP),
    (["--seed", "-1"],
     "argument --seed: must be an integer seed from 0 to 4294967295, got -1" + HELP),
])
def test_evaluate_hybrid_bad_options_one_line(capsys, source, args, message):
    code, out, err = cli(capsys, "evaluate-hybrid", "--project", "style", "--judge", "judge-x",
                         "--db", str(source), *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")


def test_evaluate_hybrid_needs_a_judge_one_line(capsys, source):
    code, _, err = cli(capsys, "evaluate-hybrid", "--project", "style", "--db", str(source))
    assert (code, err) == (2, "error: the following arguments are required: --judge" + HELP + "\n")
    code, _, err = cli(capsys, "evaluate-hybrid", "--project", "style", "--judge", "gpt-9",
                       "--db", str(source))
    assert (code, err) == (2, "error: --judge: project 'style' has no LLM judge called "
                              "'gpt-9'; its judges: 'judge-x'\n")


# --- one-line errors of fit ---------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (["--style-control", "--model", "davidson"],
     "--style-control works with --model bt at --level system only, got --model davidson "
     "--level system"),
    (["--style-control", "--level", "response"],
     "--style-control works with --model bt at --level system only, got --model bt "
     "--level response"),
    (["--hybrid-judge", "judge-x", "--model", "pl"],
     "--hybrid-judge works with --model bt at --level system only, got --model pl "
     "--level system"),
    (["--hybrid-judge", "judge-x", "--kind", "human"],
     "--hybrid-judge uses the human judgments and the judge's: leave --kind at all, "
     "got 'human'"),
    (["--hybrid-judge", "gpt-9"],
     "--hybrid-judge: project 'style' has no LLM judge called 'gpt-9'; its judges: 'judge-x'"),
    (["--hybrid-judge", "judge-x", "--ppi-lambda", "1.5"],
     "--ppi-lambda must be auto or a number in [0, 1], got 1.5"),
    (["--hybrid-judge", "judge-x", "--ppi-lambda", "best"],
     "--ppi-lambda must be auto or a number in [0, 1], got nan"),
    (["--style-control", "--hybrid-judge", "judge-x"],
     "--style-control and --hybrid-judge are separate fits: give one"),
    (["--style-control", "--style-features", "length,italics"],
     "--style-features must be distinct names from length, headers, lists, bold, "
     "got 'length,italics'"),
    (["--style-control", "--style-alpha", "-1"],
     "argument --style-alpha: must be a number from 0 to 1e+06, got -1 (see prefstore fit --help)"),
    (["--style-features", "length"], "--style-features and --style-alpha need --style-control"),
    (["--ppi-lambda", "0"], "--ppi-lambda needs --hybrid-judge"),
])
def test_fit_errors_are_one_line(capsys, source, args, message):
    code, out, err = cli(capsys, "fit", "--project", "style", "--db", str(source), *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")


def test_hybrid_without_llm_judgments(capsys, tmp_path):
    db = store.connect(tmp_path / "human.db")
    synthetic.build(db, "human-only", n_items=20, judge=False)
    db.close()
    code, _, err = cli(capsys, "fit", "--project", "human-only", "--hybrid-judge", "x",
                       "--db", str(tmp_path / "human.db"))
    assert (code, err) == (2, "error: project 'human-only' has no LLM judgments: a hybrid "
                              "leaderboard needs an LLM judge\n")


# --- agreement --json: judge style bias ---------------------------------------------


def test_agreement_json_has_style_coefficients(capsys, source):
    code, out, err = cli(capsys, "agreement", "--project", "style", "--json", "--n-boot", "20",
                         "--db", str(source))
    assert (code, err) == (0, "")
    report = json.loads(out)
    humans = report["humans_style_coefficients"]
    np.testing.assert_allclose([humans["length"], humans["headers"], humans["lists"]],
                               [1.3168760796, -0.0875976368, 0.0194521329], atol=ATOL)
    assert humans["bold"] is None and report["style_bias_error"] is None
    assert list(report["style_features"]) == ["length", "headers", "lists", "bold"]
    [judge] = report["judges"]
    assert judge["rater"] == "judge-x" and judge["style_n_items"] == 400
    assert set(agreement.JUDGE_STYLE_KEYS.values()) <= set(judge)
    assert judge["style_coefficients"]["length"] == pytest.approx(3.3226866279, abs=ATOL)
    assert judge["style_differs"] == {"length": True, "headers": False, "lists": False,
                                      "bold": None}
    assert judge["style_summary"] == "This judge rewards length 2.5x more than your raters."


def test_agreement_without_llm_judgments_skips_the_style_fits(capsys, tmp_path, monkeypatch):
    db = store.connect(tmp_path / "human.db")
    synthetic.build(db, "human-only", n_items=20, judge=False)
    db.close()

    def refuse(*args, **kwargs):
        raise AssertionError("no style fit without LLM judgments")

    monkeypatch.setattr("prefstore.models.judge_style.judge_style_bias", refuse)
    code, out, _ = cli(capsys, "agreement", "--project", "human-only", "--json", "--n-boot",
                       "10", "--db", str(tmp_path / "human.db"))
    report = json.loads(out)
    assert code == 0 and report["judges"] == []
    assert (report["humans_style_coefficients"], report["style_features"],
            report["style_bias_error"]) == (None, None, None)


def test_judge_style_rows(source):
    db = store.connect(source)
    report = agreement.project_agreement(db, "style", n_boot=10)
    db.close()
    rows = agreement.judge_style_rows(report["judges"][0])
    assert [r["feature"] for r in rows] == ["length", "headers", "lists", "bold"]
    assert [r["differs"] for r in rows] == ["yes", "no", "no", ""]
    assert rows[3] == {"feature": "bold", "judge": None, "judge_ci_low": None,
                       "judge_ci_high": None, "humans": None, "humans_ci_low": None,
                       "humans_ci_high": None, "z": None, "differs": ""}
    assert rows[0]["judge_ci_low"] < rows[0]["judge"] < rows[0]["judge_ci_high"]


# --- the store: the project's LLM judges ----------------------------------------------


@pytest.mark.both_backends
def test_llm_judge_names(db):
    from prefstore.store.judgments import llm_judge_names

    project = store.create_project(db, "p", "pairwise")
    other = store.create_project(db, "q", "pairwise")
    [item] = store.insert_items(db, project["id"], [{
        "external_id": "a", "prompt": "p",
        "responses": [{"text": "x", "system": "s"}, {"text": "y", "system": "t"}]}])
    [elsewhere] = store.insert_items(db, other["id"], [{
        "external_id": "a", "prompt": "p",
        "responses": [{"text": "x", "system": "s"}, {"text": "y", "system": "t"}]}])
    human, _ = store.create_rater(db, "ann")
    for n, (name, target) in enumerate((("zeta", item), ("<b>judge</b>", item),
                                        ("only-elsewhere", elsewhere))):
        judge = store.get_or_create_rater(db, name, "llm")
        store.submit_judgment(db, item_id=target, rater_id=judge["id"], submission_id=str(n),
                              kind="llm", outcome="choice", choice=0)
    store.submit_judgment(db, item_id=item, rater_id=human["id"], submission_id="h",
                          outcome="choice", choice=1)
    assert llm_judge_names(db, project["id"]) == ["<b>judge</b>", "zeta"]
    assert llm_judge_names(db, other["id"]) == ["only-elsewhere"]


# --- PandaLM: evaluate-hybrid through the CLI ------------------------------------------


def test_pandalm_evaluate_hybrid_cli(capsys, pandalm_db_path):
    code, out, err = cli(capsys, "evaluate-hybrid", "--project", "pandalm", "--judge",
                         "gpt-3.5-turbo", "--fractions", "0.25", "--reps", "30", "--json",
                         "--db", str(pandalm_db_path))
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert (result["n_items"], result["n_systems"], result["fractions"]) == (999, 5, [0.25])
    [row] = result["results"]
    assert row["n_human_items"] == 250
    assert row["hybrid"]["mean_ci_width"] <= row["human_only"]["mean_ci_width"]
    assert row["hybrid"]["coverage"] >= 0.90
    assert row["llm_only"]["coverage"] == 1.0
