import json
import math

import pytest

from prefstore import fitting, store
from prefstore.cli import main
from prefstore.errors import InvalidInput

SYSTEMS = {"llama-7b", "bloom-7b", "cerebras-gpt-6.7B", "pythia-6.9b", "opt-7b"}


def test_pandalm_system_bt_end_to_end_via_cli(pandalm_db_path, tmp_path, capsys):
    # Copy the session database: fits are written and the fixture is shared.
    db = store.connect(pandalm_db_path)
    copy = tmp_path / "copy.db"
    store.backup(db, copy)
    assert main(["fit", "--project", "pandalm", "--model", "bt", "--level", "system",
                 "--kind", "human", "--json", "--db", str(copy)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"model", "level", "scores", "ci95", "log_likelihood", "n_comparisons",
            "seconds"} <= set(out)
    assert (out["model"], out["level"], out["n_comparisons"]) == ("bt", "system", 2997)
    assert set(out["scores"]) == SYSTEMS
    for name, score in out["scores"].items():
        lo, hi = out["ci95"][name]
        assert math.isfinite(score) and lo < score < hi
    assert abs(sum(out["scores"].values())) < 1e-9
    ranking = sorted(out["scores"], key=out["scores"].get, reverse=True)
    assert ranking[0] == "llama-7b" and ranking[-1] == "cerebras-gpt-6.7B"
    stored = store.latest_fit(store.connect(copy), 1, model="bt", level="system",
                                kind="human")
    assert stored["result"]["scores"] == out["scores"]
    assert stored["n_judgments"] == 2997
    assert stored["params"] == {"alpha": None, "ci": "hessian", "n_boot": 200, "seed": 0,
                                "k": None}


def test_mixture_fit_prints_types_and_raters(pandalm_db_path, tmp_path, capsys):
    copy = tmp_path / "copy.db"
    store.backup(store.connect(pandalm_db_path), copy)
    assert main(["fit", "--project", "pandalm", "--model", "mixture", "--k", "2",
                 "--kind", "human", "--json", "--db", str(copy)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["types"]) == 2
    assert set(out["raters"]) == {"annotator1", "annotator2", "annotator3"}
    for probs in out["raters"].values():
        assert sum(probs) == pytest.approx(1.0)


def test_unknown_model_and_empty_project(db, capsys):
    store.create_project(db, "empty", "pairwise")
    with pytest.raises(InvalidInput, match="^project .empty. has no judgments to fit$"):
        fitting.fit_project(db, "empty")
    with pytest.raises(InvalidInput, match="bt"):
        fitting.fit_project(db, "empty", model="elo")


def test_a_fit_without_a_finite_mle_falls_back_to_a_weak_prior_only_when_asked(db):
    from prefstore.errors import NotConverged

    project = store.create_project(db, "sparse", "pairwise", {})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{k}", "prompt": "p",
         "responses": [{"text": "a", "system": "winner"}, {"text": "b", "system": "loser"}]}
        for k in range(2)])
    ann = store.create_rater(db, "ann")[0]
    for k, item in enumerate(store.iter_items(db, project["id"])):
        store.submit_judgment(db, item_id=item["id"], rater_id=ann["id"],
                              submission_id=f"s{k}", choice=0)
    # "winner" never lost: the MLE runs off to infinity.
    with pytest.raises(NotConverged, match="winner never lost"):
        fitting.fit_project(db, "sparse", model="bt")
    out = fitting.fit_project(db, "sparse", model="bt",
                              fallback_alpha=fitting.FALLBACK_ALPHA)
    assert out["scores"]["winner"] > 0 > out["scores"]["loser"]
    assert out["notes"] == [
        "No maximum-likelihood fit yet (the maximum-likelihood estimate diverges: winner never "
        "lost to the other items (2 strongly connected components: {loser}; {winner}). Set "
        "alpha > 0 for a finite estimate); these scores use a weak prior, alpha = 0.01, until "
        "more comparisons arrive."]
    stored = store.latest_fit(db, project["id"], model="bt", level="system", kind="all")
    assert stored["params"]["alpha"] == fitting.FALLBACK_ALPHA
    # An explicit alpha is never replaced.
    with pytest.raises(NotConverged):
        fitting.fit_project(db, "sparse", model="bt", alpha=0.0,
                            fallback_alpha=fitting.FALLBACK_ALPHA)
