"""AppTest runs of every dashboard page on the imported PandaLM test set, and the refusals."""

from __future__ import annotations

import pytest

from prefstore import fitting, leaderboard, routing, store
from tests.ui.conftest import REPO, app_test, open_page
from ui.dashboard import Keys

ADMIN_TOKEN = "admin-secret-token"
DASHBOARD = {
    "overview": "pages/dashboard.py",
    "agreement": "pages/agreement.py",
    "leaderboard": "pages/leaderboard.py",
    "rater_types": "pages/rater-types.py",
    "judges": "pages/judges.py",
    "edits": "pages/edits.py",
    "routing": "pages/routing.py",
}


@pytest.fixture(scope="module")
def pandalm_copy(pandalm_db_path, tmp_path_factory):
    """A copy of the PandaLM app_db with what the worker would have stored.

    The agreement reports are left out: the pages must compute and app_db them once.
    """
    path = tmp_path_factory.mktemp("dash") / "pandalm.db"
    source = store.connect(pandalm_db_path)
    store.backup(source, path)
    source.close()
    db = store.connect(path)
    fitting.fit_project(db, "pandalm", model="bt", level="system", kind="all")
    routing.refresh_routing(db, "pandalm")
    db.close()
    return path


@pytest.fixture
def pandalm(pandalm_copy, monkeypatch):
    monkeypatch.setenv("PREFSTORE_DB", str(pandalm_copy))
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    return pandalm_copy


def page(name: str, token: str = ADMIN_TOKEN):
    return open_page(DASHBOARD[name], token=token)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_headline_numbers(pandalm):
    at = page("overview")
    assert not at.exception
    shown = metrics(at)
    assert shown["Items"] == "999"
    assert shown["Human judgments"] == "2,997"
    assert shown["LLM judgments"] == "974"
    assert shown["Human raters"] == "3"
    assert shown["Krippendorff α (label)"] == "0.864"
    alpha = next(m for m in at.metric if m.label == "Krippendorff α (label)")
    assert alpha.delta.startswith("95% CI 0.8")
    assert shown["Percent agreement"] == "0.920"
    assert at.progress[0].value == 100  # percent
    # The missing agreement reports were computed once and stored.
    db = store.connect(pandalm)
    assert store.latest_report(db, 1, name="agreement", kind="human") is not None
    db.close()


def test_agreement_kappa_table_and_raters(pandalm):
    at = page("agreement")
    assert not at.exception
    pairs = at.dataframe[0].value
    assert [round(k, 3) for k in pairs["kappa"]] == [0.852, 0.879, 0.862]
    assert list(pairs["rater A"]) == ["annotator1", "annotator1", "annotator2"]
    raters = at.dataframe[1].value
    assert list(raters["rater"]) == ["annotator1", "annotator2", "annotator3"]
    assert list(raters["flags"]) == ["", "", ""]
    # A stricter consensus threshold flags them, and the filter keeps the flagged ones.
    at.number_input(key=Keys.MIN_CONSENSUS).set_value(0.96).run()
    at.toggle(key=Keys.FLAGGED_ONLY).set_value(True).run()
    assert list(at.dataframe[1].value["rater"]) == ["annotator1", "annotator2"]
    assert list(at.dataframe[1].value["flags"]) == ["low consensus", "low consensus"]
    at.text_input(key=Keys.RATER_FILTER).input("TOR2").run()
    assert list(at.dataframe[1].value["rater"]) == ["annotator2"]


def test_leaderboard_bt_human_ranks_llama_first(pandalm):
    at = page("leaderboard")
    assert not at.exception
    assert at.selectbox(key=Keys.MODEL).value == "bt"
    table = at.dataframe[0].value
    assert table["name"].iloc[0] == "llama-7b"
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    # Every registered model is offered by the selectbox, none by name in the page.
    assert at.selectbox(key=Keys.MODEL).options == [m.label for m in fitting.MODELS]
    at.selectbox(key=Keys.MODEL).set_value("davidson").run()
    assert not at.exception
    assert at.dataframe[0].value["name"].iloc[0] == "llama-7b"
    db = store.connect(pandalm)
    assert store.latest_fit(db, 1, model="davidson", kind="human") is not None
    assert store.latest_report(db, 1, name=leaderboard.REPORT, kind="llm") is not None
    db.close()


def test_rater_types_lists_every_rater(pandalm):
    at = page("rater_types")
    assert not at.exception
    assert metrics(at)["Types"] == "1"
    assert list(at.dataframe[-1].value["rater"]) == ["annotator1", "annotator2", "annotator3"]
    assert list(at.dataframe[-1].value["type 1"]) == [1.0, 1.0, 1.0]


def test_judges_gpt35_accuracy(pandalm):
    at = page("judges")
    assert not at.exception
    assert metrics(at)["Accuracy vs human majority"] == "0.7156"
    assert list(at.dataframe[-1].value["rater"]) == ["gpt-3.5-turbo"]  # "All judges"


def test_edits_empty_state_on_pandalm(pandalm):
    at = page("edits")
    assert not at.exception
    assert [i.value for i in at.info][0].startswith("No edits yet")


def test_routing_calibration(pandalm):
    at = page("routing")
    assert not at.exception
    shown = metrics(at)
    assert shown["To human"] == "899" and shown["To humans and the judge"] == "100"
    assert shown["Items with both labels"] == "974"
    table = at.dataframe[0].value
    assert len(table) == 999
    assert table["realized_agreement"].notna().sum() == 974
    assert table["realized_agreement"].mean() == pytest.approx(0.715605749486653)


def test_refit_now_stores_a_new_report(pandalm):
    at = page("agreement")
    db = store.connect(pandalm)
    before = store.latest_report(db, 1, name="agreement", kind="human")["id"]
    at.button(key=f"{Keys.REFIT}:agreement").click().run()
    assert not at.exception
    assert store.latest_report(db, 1, name="agreement", kind="human")["id"] > before
    db.close()


def test_edits_histogram_and_diff(app_db):
    project = store.create_project(app_db, "e", "pairwise", {"gold_rate": 0.0})
    [item] = store.insert_items(app_db, project["id"], [{
        "external_id": "q", "prompt": "p",
        "responses": [{"text": "line one\nline two\n", "system": "a"},
                      {"text": "other", "system": "b"}]}])
    rater, _ = store.create_rater(app_db, "ann")
    store.submit_judgment(app_db, item_id=item, rater_id=rater["id"], submission_id="s1",
                            outcome="choice", choice=0, edited="line one\nline 2\n")
    at = open_page(DASHBOARD["edits"])
    assert not at.exception
    assert metrics(at)["Edited judgments"] == "1"
    assert at.code[0].value == ("--- response\n+++ edited\n@@ -1,2 +1,2 @@\n line one\n"
                                "-line two\n+line 2")


def test_empty_project_is_friendly(app_db):
    store.create_project(app_db, "fresh", "pairwise")
    for name in DASHBOARD:
        at = open_page(DASHBOARD[name])
        assert not at.exception, name
        assert any(i.value.startswith("No judgments yet") for i in at.info), name


@pytest.mark.parametrize("name", list(DASHBOARD))
def test_a_dashboard_script_run_on_its_own_gives_a_rater_the_rate_page(app_db, monkeypatch,
                                                                       name):
    # What a deep link does on a fresh server: the page file runs without app.py.
    # It runs app.py around itself, whose navigation has no dashboard for a rater.
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    _, token = store.create_rater(app_db, "ann")
    at = app_test(str(REPO / DASHBOARD[name]), token=token).run()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["Rate"]
    assert [i.value for i in at.info] == [
        "No projects for you yet: ask your project admin to add you to one."]
    assert not at.metric and not at.dataframe


def test_rater_navigation_lacks_the_dashboard(app_db, monkeypatch):
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    _, token = store.create_rater(app_db, "ann")
    at = app_test(token=token).run()
    for path in DASHBOARD.values():
        with pytest.raises(ValueError):
            at.switch_page(path)
    admin = app_test(token=ADMIN_TOKEN).run()
    admin.switch_page(DASHBOARD["agreement"]).run()
    assert not admin.exception
    assert admin.title[0].value == "Agreement"


def judge_all(db, project, raters, choice_of):
    """Every rater judges every item of ``project``; choice_of(item_index, rater_index)."""
    items = [row["id"] for row in db.query(
        "SELECT id FROM items WHERE project_id = ? ORDER BY id", [project["id"]])]
    for k, item in enumerate(items):
        for r, rater in enumerate(raters):
            store.submit_judgment(db, item_id=item, rater_id=rater["id"],
                                  submission_id=f"{rater['name']}-{item}", outcome="choice",
                                  choice=choice_of(k, r), display_order=[0, 1])


def test_small_project_numbers_follow_every_judgment_without_a_refit(app_db, monkeypatch):
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    project = store.create_project(app_db, "fresh", "pairwise", {"raters_per_item": 2,
                                                                  "strength_scale": False})
    store.insert_items(app_db, project["id"], [
        {"external_id": f"q{k}", "prompt": f"question {k}",
         "responses": [{"text": "a", "system": f"s{k % 4 + 1}"},  # a cycle: one component
                       {"text": "b", "system": f"s{(k + 1) % 4 + 1}"}]} for k in range(8)])
    ann, bob = (store.create_rater(app_db, name)[0] for name in ("ann", "bob"))
    judge_all(app_db, project, [ann], lambda k, r: 0)
    assert metrics(page("overview"))["Human judgments"] == "8"
    first = store.latest_report(app_db, project["id"], name="agreement", kind="human")
    assert first["n_judgments"] == 8

    # Bob agrees on 6 of the 8 items: the next opening shows it, no Refit pressed.
    judge_all(app_db, project, [bob], lambda k, r: int(k >= 6))
    shown = metrics(page("overview"))
    assert shown["Human judgments"] == "16"
    assert shown["Percent agreement"] == "0.750"
    # No strength scale, so no strength tiles.
    assert [label for label in shown if "α" in label] == ["Krippendorff α (label)"]
    assert store.latest_report(app_db, project["id"], name="agreement",
                               kind="human")["n_judgments"] == 16
    board = page("leaderboard")
    assert not board.exception
    fit = store.latest_fit(app_db, project["id"], model="bt", level="system", kind="human")
    assert (fit["n_judgments"], sorted(fit["result"]["scores"])) == (16, ["s1", "s2", "s3", "s4"])
    rates = store.latest_report(app_db, project["id"], name=leaderboard.REPORT, kind="human")
    assert (rates["n_judgments"], sorted(rates["result"]["names"])) == (
        16, ["s1", "s2", "s3", "s4"])
    # Fresh results carry no staleness warning.
    assert [w.value for w in board.warning] == []


def test_large_project_says_plainly_how_stale_a_result_is(app_db, monkeypatch):
    from ui import dashboard as dashboard_common
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    project = store.create_project(app_db, "big", "pairwise", {"raters_per_item": 2})
    store.insert_items(app_db, project["id"], [
        {"external_id": f"q{k}", "prompt": f"question {k}",
         "responses": [{"text": "a", "system": "s1"}, {"text": "b", "system": "s2"}]}
        for k in range(4)])
    ann, bob = (store.create_rater(app_db, name)[0] for name in ("ann", "bob"))
    judge_all(app_db, project, [ann], lambda k, r: k % 2)
    fitting.fit_project(app_db, project["id"], model="bt", level="system", kind="human")
    judge_all(app_db, project, [bob], lambda k, r: 1)
    monkeypatch.setattr(dashboard_common, "RECOMPUTE_ON_OPEN", 5)
    at = page("leaderboard")
    fit = store.latest_fit(app_db, project["id"], model="bt", level="system", kind="human")
    assert fit["n_judgments"] == 4  # left for the worker or the button
    assert any("from 4 judgments; 4 new since" in w.value and "Refit" in w.value
               for w in at.warning)
