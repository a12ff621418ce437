"""AppTest of the style-control toggle, the hybrid leaderboard source and the judges' style bias.

The project is tests/style_hybrid_data.py: the human rater rewards length a
little and the judge a lot, so style control reorders the human leaderboard and
the judge is flagged. Figures are those of tests/test_fitting_style_hybrid.py.
"""

from __future__ import annotations

import math

import pytest

from prefstore import fitting, store
from tests import style_hybrid_data as synthetic
from tests.ui.conftest import open_page
from ui.dashboard import Keys

LEADERBOARD = "pages/leaderboard.py"
JUDGES = "pages/judges.py"


def r3(values) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 3)
            for v in values]


@pytest.fixture
def project(app_db):
    return synthetic.build(app_db)


def test_style_toggle_shows_both_rankings_and_the_coefficients(app_db, project):
    at = open_page(LEADERBOARD)
    assert not at.exception
    assert not at.toggle(key=Keys.STYLE_CONTROL).value
    assert list(at.dataframe[0].value["name"]) == ["gamma", "alpha", "beta", "delta"]
    at.toggle(key=Keys.STYLE_CONTROL).set_value(True).run()
    assert not at.exception
    assert [s.value for s in at.subheader][:3] == [
        "Without style control", "Controlled for style", "Style coefficients"]
    plain, styled, coef = (at.dataframe[i].value for i in range(3))
    assert list(plain["name"]) == ["gamma", "alpha", "beta", "delta"]
    assert list(styled["rank"]) == [1, 2, 3, 4]
    assert list(styled["name"]) == ["alpha", "beta", "gamma", "delta"]
    assert list(styled["change"]) == ["▲1", "▲1", "▼2", "="]
    assert r3(styled["score"]) == [0.669, 0.126, 0.037, -0.831]
    assert list(coef["feature"]) == ["length", "headers", "lists", "bold"]
    assert r3(coef["coefficient"]) == [1.318, -0.088, 0.019, None]
    assert r3(coef["ci_low"]) == [0.928, -0.331, -0.224, None]
    assert r3(coef["ci_high"]) == [1.707, 0.155, 0.263, None]
    assert coef["counts"][0].startswith("words of the response")
    assert [t.value for t in at.text] == [
        "bold: left out, its covariate is zero over all fitted comparisons (the feature does "
        "not vary between the compared responses)"]
    # computed on open and stored beside the plain fit
    assert store.latest_fit(app_db, project["id"], model=fitting.STYLE_MODEL,
                            kind="human") is not None
    # style control is a Bradley-Terry fit: other models turn the toggle off
    at.selectbox(key=Keys.MODEL).set_value("davidson").run()
    assert not at.exception
    assert at.toggle(key=Keys.STYLE_CONTROL).disabled
    assert "Controlled for style" not in [s.value for s in at.subheader]


def test_hybrid_source_beside_human_and_llm(app_db, project):
    at = open_page(LEADERBOARD)
    source = at.segmented_control(key=Keys.JUDGMENT_KIND)
    assert source.options == ["Human", "LLM", "All", "Hybrid (human-corrected)"]
    source.set_value("hybrid").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["gamma", "alpha", "beta", "delta"]
    assert r3(table["score"]) == [0.802, 0.568, -0.635, -0.735]
    assert [t.value for t in at.text] == ["Judge: judge-x"]
    captions = [c.value for c in at.caption]
    assert captions[0].startswith("Hybrid (human-corrected): the LLM judge's labels on every "
                                  "item narrow the intervals")
    assert ("λ = 0.26 (0: human-only, 1: the judge's labels at full weight); 400 "
            "human-labelled items, 400 labelled by the judge.") in captions
    assert at.selectbox(key=Keys.MODEL).disabled
    assert not [t for t in at.toggle if t.key == Keys.STYLE_CONTROL]
    stored = store.latest_fit(app_db, project["id"], model="bt+hybrid:judge-x", kind="all")
    assert stored["result"]["lambda"] == pytest.approx(0.2599650721, abs=1e-6)


def test_no_hybrid_without_llm_judgments(app_db):
    synthetic.build(app_db, "humans", n_items=40, judge=False)
    at = open_page(LEADERBOARD)
    assert not at.exception
    assert at.segmented_control(key=Keys.JUDGMENT_KIND).options == ["Human", "LLM", "All"]
    assert ("Hybrid (human-corrected) leaderboards need both human and LLM judgments; this "
            "project has no LLM judgments yet.") in [c.value for c in at.caption]


def test_no_hybrid_for_a_slate_project(app_db):
    project = store.create_project(app_db, "slates", "slate", {"gold_rate": 0.0})
    [item] = store.insert_items(app_db, project["id"], [{
        "external_id": "s", "prompt": "p", "responses": [
            {"text": t, "system": t} for t in ("one", "two words", "three more words")]}])
    human, _ = store.create_rater(app_db, "ann")
    judge = store.get_or_create_rater(app_db, "judge-x", "llm")
    for n, rater in enumerate((human, judge)):
        store.submit_judgment(app_db, item_id=item, rater_id=rater["id"], submission_id=str(n),
                              kind=rater["kind"], outcome="choice", choice=n)
    at = open_page(LEADERBOARD)
    assert not at.exception
    assert at.segmented_control(key=Keys.JUDGMENT_KIND).options == ["Human", "LLM", "All"]
    assert ("Hybrid (human-corrected) leaderboards compare two responses per item; this is a "
            "slate project.") in [c.value for c in at.caption]


def test_judges_style_section(app_db, project):
    at = open_page(JUDGES)
    assert not at.exception
    assert "Style: what this judge rewards" in [s.value for s in at.subheader]
    assert [w.value for w in at.warning] == [
        "This judge rewards length 2.5x more than your raters."]
    rows = at.dataframe[0].value
    assert list(rows["feature"]) == ["length", "headers", "lists", "bold"]
    assert list(rows["differs"]) == ["yes", "no", "no", ""]
    assert r3(rows["judge"]) == [3.323, 0.239, 0.032, None]
    assert r3(rows["humans"]) == [1.317, -0.088, 0.019, None]
    assert r3(rows["z"]) == [4.739, 1.489, 0.058, None]
    assert all(lo < mid < hi for lo, mid, hi in zip(
        rows["judge_ci_low"][:3], rows["judge"][:3], rows["judge_ci_high"][:3]))
    assert len(at.get("plotly_chart")) >= 2  # confusion matrix and the style bars
    assert list(at.dataframe[-1].value["style_summary"]) == [
        "This judge rewards length 2.5x more than your raters."]


def test_judges_page_refreshes_a_report_without_style(app_db, project):
    store.save_report(app_db, project["id"], name="agreement", kind="human",
                      result={"judges": []}, n_judgments=800, seconds=0.1)
    at = open_page(JUDGES)
    assert not at.exception
    report = store.latest_report(app_db, project["id"], name="agreement", kind="human")
    assert "humans_style_coefficients" in report["result"]
    assert [w.value for w in at.warning] == [
        "This judge rewards length 2.5x more than your raters."]
