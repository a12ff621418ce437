"""Published PandaLM figures, reproduced through the CLI on imported data."""

import json

import pytest

from prefstore.cli import main
from tests import pandalm

ATOL = 5e-5


def run_json(capsys, *args):
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def judge_row(report, name="gpt-3.5-turbo"):
    return next(j for j in report["judges"] if j["rater"] == name)


def test_pandalm_kappas_and_gpt35_accuracy_skipping_garbage(pandalm_db_path, capsys):
    report = run_json(capsys, "agreement", "--project", "pandalm", "--db",
                      str(pandalm_db_path), "--json", "--n-boot", "50")
    kappas = {(c["a"], c["b"]): round(c["kappa"], 3) for c in report["cohen_kappa"]}
    assert kappas == {("annotator1", "annotator2"): 0.852, ("annotator1", "annotator3"): 0.879,
                      ("annotator2", "annotator3"): 0.862}
    gpt = judge_row(report)
    assert gpt["n"] == 974
    assert gpt["accuracy_vs_human_majority"] == pytest.approx(0.7156, abs=ATOL)
    lo, hi = report["krippendorff_alpha_ci95"]["nominal"]
    assert lo < report["krippendorff_alpha"]["nominal"] < hi


def test_pandalm_gpt35_accuracy_with_garbage_as_tie(tmp_path, capsys, shared_data):
    db = str(tmp_path / "g.db")
    items = pandalm.write_jsonl(tmp_path / "i.jsonl", pandalm.item_rows())
    # The published metrics script counts "garbage" as a tie.
    rows = [{**r, "choice": "tie" if r["choice"] == "garbage" else r["choice"]}
            for r in pandalm.gpt_judgment_rows()]
    judge = pandalm.write_jsonl(tmp_path / "j.jsonl", rows)
    assert main(["import", str(items), "--project", "p", "--db", db]) == 0
    assert main(["import-judgments", str(judge), "--project", "p", "--db", db]) == 0
    capsys.readouterr()
    report = run_json(capsys, "agreement", "--project", "p", "--db", db, "--json",
                      "--n-boot", "20")
    gpt = judge_row(report)
    assert gpt["n"] == 999
    assert gpt["accuracy_vs_human_majority"] == pytest.approx(0.7107, abs=ATOL)
    assert gpt["macro_f1"] == pytest.approx(0.5755, abs=ATOL)
