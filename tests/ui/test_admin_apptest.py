"""AppTest flows through the admin page: fill widgets by key, then compare the stored rows."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager

from prefstore import assignment, store
from prefstore.settings import ProjectSettings
from tests.ui.conftest import REPO, app_test, rendered
from ui.common import Keys

ADMIN_TOKEN = "admin-secret"
DENIED_LINK = "Access denied: this link is not valid; ask your project admin for a new one."
F = Keys.project_form


def seed_project(db, name="p", n_items=2, **settings):
    project = store.create_project(db, name, "pairwise",
                                     {"gold_rate": 0.0, "strength_scale": False, **settings})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"response {i}.{k}", "system": f"sys{k}"} for k in range(2)]}
        for i in range(n_items)])
    return project


def open_admin(monkeypatch):
    """Run app.py as the admin (admin token) and switch to the admin page."""
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    at = app_test(token=ADMIN_TOKEN).run()
    at.switch_page("pages/admin.py").run()
    assert not at.exception and errors(at) == []
    return at


def errors(at) -> list[str]:
    return [rendered(e.value) for e in at.error]


def counts(db) -> dict[str, int]:
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in ("projects", "items", "responses", "judgments", "raters", "audit_log")}


def last_audit(db) -> dict:
    row = store.audit_log(db, limit=1)[0]
    return {k: row[k] for k in ("project_id", "actor", "action", "details")}


def test_create_project(app_db, monkeypatch):
    seed_project(app_db)  # an empty app_db would load the demo projects
    at = open_admin(monkeypatch)
    at.selectbox(key=Keys.ADMIN_PROJECT).set_value(0).run()  # "New project…"
    at.text_input(key=F(Keys.PF_NAME, None)).input("helpful")
    at.selectbox(key=F(Keys.PF_KIND, None)).set_value("pairwise")
    at.number_input(key=F(Keys.PF_RATERS_PER_ITEM, None)).set_value(2)
    at.toggle(key=F(Keys.PF_STRENGTH_SCALE, None)).set_value(False)
    at.text_area(key=F(Keys.PF_ASPECTS, None)).input("helpfulness\n correctness \n")
    at.toggle(key=F(Keys.PF_RATIONALE_REQUIRED, None)).set_value(True)
    at.number_input(key=F(Keys.PF_RATIONALE_MIN_CHARS, None)).set_value(15)
    at.text_area(key=F(Keys.PF_REASON_TAGS, None)).input("clearer\nsafer")
    at.toggle(key=F(Keys.PF_EDITS_ALLOWED, None)).set_value(False)
    at.number_input(key=F(Keys.PF_GOLD_RATE, None)).set_value(0.1)
    at.radio(key=F(Keys.PF_BUDGET_MODE, None)).set_value("count").run()
    at.number_input(key=F(Keys.PF_BUDGET, None)).set_value(40.0)
    at.text_area(key=F(Keys.PF_GUIDELINES, None)).input("Prefer **correct** answers.").run()
    assert [m.value for m in at.markdown if "correct" in m.value] == [
        "Prefer **correct** answers."]  # the preview
    at.button(key=F(Keys.PF_SAVE, None)).click().run()

    assert not at.exception and errors(at) == []
    settings = {**ProjectSettings().to_dict(), "raters_per_item": 2, "strength_scale": False,
                "aspects": ["helpfulness", "correctness"], "rationale_required": True,
                "rationale_min_chars": 15, "reason_tags": ["clearer", "safer"],
                "edits_allowed": False, "gold_rate": 0.1, "human_budget": 40,
                "guidelines": "Prefer **correct** answers."}
    rows = list(app_db.query("SELECT id, name, kind, settings FROM projects WHERE name = ?",
                            ["helpful"]))
    assert [{**r, "settings": json.loads(r["settings"])} for r in rows] == [
        {"id": 2, "name": "helpful", "kind": "pairwise", "settings": settings}]
    assert last_audit(app_db) == {"project_id": 2, "actor": "admin", "action": "create_project",
                                 "details": {"name": "helpful", "kind": "pairwise",
                                             "settings": settings}}
    assert at.selectbox(key=Keys.ADMIN_PROJECT).value == 2  # the new project is selected
    assert [t.value for t in at.toast] == ["Created project helpful"]


def test_edit_settings_refuses_invalid_values_and_logs_the_change(app_db, monkeypatch):
    project = seed_project(app_db, aspects=["helpfulness"])
    at = open_admin(monkeypatch)
    pid = project["id"]
    assert at.text_area(key=F(Keys.PF_ASPECTS, pid)).value == "helpfulness"  # prefilled
    before = counts(app_db)
    at.text_area(key=F(Keys.PF_ASPECTS, pid)).input("helpfulness\nhelpfulness")
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert errors(at) == ["Not saved: settings: 'aspects' must be a list without duplicates, "
                          "got ['helpfulness', 'helpfulness']."]
    at.text_area(key=F(Keys.PF_ASPECTS, pid)).input("helpfulness")
    at.radio(key=F(Keys.PF_BUDGET_MODE, pid)).set_value("fraction").run()
    at.number_input(key=F(Keys.PF_BUDGET, pid)).set_value(2.5)
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert errors(at) == ["Not saved: settings: 'human_budget' as a fraction of the items must "
                          "be in [0, 1], got 2.5."]
    assert counts(app_db) == before
    assert store.get_project(app_db, pid)["settings"] == project["settings"]

    at.number_input(key=F(Keys.PF_BUDGET, pid)).set_value(0.25)
    at.number_input(key=F(Keys.PF_RATERS_PER_ITEM, pid)).set_value(5)
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert errors(at) == []
    assert store.get_project(app_db, pid)["settings"] == project["settings"].replace(
        human_budget=0.25, raters_per_item=5)
    assert last_audit(app_db) == {"project_id": pid, "actor": "admin", "action": "update_settings",
                                 "details": {"human_budget": {"old": None, "new": 0.25},
                                             "raters_per_item": {"old": 3, "new": 5}}}
    assert [t.value for t in at.toast] == ["Saved: human_budget, raters_per_item"]
    log = at.dataframe[0].value  # the recent changes, newest first
    assert list(log.loc[0, ["who", "project", "action"]]) == ["admin", "p", "update_settings"]


BAD_FILE = b"\n".join([
    b'{"id": "a", "prompt": "hi", "responses": ["x", "y"]}',
    b'{"id": "b", "prompt": "hi", "responses": ["only one"]}',
    b'{"id": "c", "responses": ["x", "y"]}',
])
GOOD_FILE = b"\n".join([
    b'{"id": "a", "prompt": "hi", "responses": ["x", "y"]}',
    b'{"id": "b", "prompt": "yo", "responses": ["u", "v"], "category": "chat"}',
])


def test_import_shows_every_error_then_imports_the_fixed_file(app_db, monkeypatch):
    project = seed_project(app_db, n_items=0)
    at = open_admin(monkeypatch)
    before = counts(app_db)
    at.file_uploader(key=f"{Keys.ADMIN_UPLOAD}:0").upload("items.jsonl", BAD_FILE).run()
    assert not at.exception
    assert errors(at) == [
        "The file is not valid, so nothing was imported. Fix these lines and upload it again."]
    assert [c.value for c in at.code] == [
        'line 2: "responses" must have at least 2 entries, got 1\n'
        'line 3: "prompt" (or "messages") is missing']
    [preview] = [d.value for d in at.dataframe if "where" in d.value.columns]
    assert preview["where"].tolist() == ["line 1", "line 2", "line 3"]
    assert preview["responses"].tolist() == ['["x", "y"]', '["only one"]', '["x", "y"]']
    assert not [b for b in at.button if b.key == Keys.ADMIN_IMPORT]
    assert counts(app_db) == before

    at.file_uploader(key=f"{Keys.ADMIN_UPLOAD}:0").set_value(
        ("items.jsonl", GOOD_FILE, "application/jsonl")).run()
    assert errors(at) == []
    assert counts(app_db) == before  # valid, but not confirmed yet
    at.button(key=Keys.ADMIN_IMPORT).click().run()
    assert not at.exception and errors(at) == []
    items = list(app_db.query("SELECT project_id, external_id, prompt, category FROM items "
                             "ORDER BY id"))
    assert items == [
        {"project_id": project["id"], "external_id": "a", "prompt": "hi", "category": None},
        {"project_id": project["id"], "external_id": "b", "prompt": "yo", "category": "chat"}]
    assert [r["text"] for r in app_db.query("SELECT text FROM responses ORDER BY id")] == [
        "x", "y", "u", "v"]
    assert last_audit(app_db) == {"project_id": project["id"], "actor": "admin",
                                 "action": "import_items",
                                 "details": {"items": 2, "judgments": 0, "skipped": 0}}
    assert [t.value for t in at.toast] == ["Imported 2 item(s) and 0 judgment(s) into p"]
    assert at.file_uploader(key=f"{Keys.ADMIN_UPLOAD}:1").value is None  # emptied


def test_upload_over_the_size_limit_is_refused(app_db, monkeypatch):
    seed_project(app_db, n_items=0)
    at = open_admin(monkeypatch)
    before = counts(app_db)
    big = GOOD_FILE + b"\n" * (1024 * 1024)
    get_option = st.get_option
    monkeypatch.setattr(st, "get_option", lambda name: 1 if name == "server.maxUploadSize"
                        else get_option(name))
    at.file_uploader(key=f"{Keys.ADMIN_UPLOAD}:0").upload("items.jsonl", big).run()
    assert errors(at) == ["Not imported: the file is 1.0 MB; uploads are limited to 1 MB "
                          "(server.maxUploadSize): split it, or import it with "
                          "`prefstore import`."]
    assert counts(app_db) == before


def add_rater(at, name: str) -> str:
    """Add a rater on the admin page; return the token of the link shown."""
    at.text_input(key=Keys.ADMIN_RATER_NAME).input(name)
    at.button(key=Keys.ADMIN_RATER_ADD).click().run()
    assert not at.exception and errors(at) == []
    [code] = at.code
    url = urlsplit(code.value)
    assert url._replace(query="").geturl() == "http://localhost:8501/"
    return parse_qs(url.query)["token"][0]


def test_added_rater_link_rates_on_the_rate_page(app_db, monkeypatch):
    project = seed_project(app_db)
    at = open_admin(monkeypatch)
    token = add_rater(at, "bob")
    bob = store.get_rater(app_db, "bob")
    assert store.rater_for_token(app_db, token)["id"] == bob["id"]
    assert token not in repr(at.session_state)  # the link is never kept
    at.run()  # the next run no longer shows the link
    assert not at.code

    rate = app_test(token=token).run()
    claim = assignment.next_item(app_db, project["id"], bob["id"])
    rate.button(key=Keys.item(Keys.CHOOSE_A, claim["id"])).click().run()
    assert not rate.exception
    rows = list(app_db.query("SELECT item_id, rater_id, kind, outcome, choice FROM judgments"))
    assert rows == [{"item_id": claim["item_id"], "rater_id": bob["id"], "kind": "human",
                     "outcome": "choice", "choice": claim["display_order"][0]}]


def test_deactivate_refuses_the_link_and_a_new_link_replaces_the_old(app_db, monkeypatch):
    seed_project(app_db)
    at = open_admin(monkeypatch)
    token = add_rater(at, "carol")
    carol = store.get_rater(app_db, "carol")
    at.selectbox(key=Keys.ADMIN_RATER).set_value(carol["id"]).run()
    at.button(key=Keys.ADMIN_RATER_ACTIVE).click().run()
    assert store.get_rater(app_db, carol["id"])["active"] == 0
    assert last_audit(app_db)["details"] == {"rater_id": carol["id"], "active": False}
    assert errors(app_test(token=token).run()) == [DENIED_LINK]

    at.button(key=Keys.ADMIN_RATER_ACTIVE).click().run()  # now labelled Reactivate
    assert store.get_rater(app_db, carol["id"])["active"] == 1
    at.button(key=Keys.ADMIN_RATER_ROTATE).click().run()
    new_token = parse_qs(urlsplit(at.code[0].value).query)["token"][0]
    assert errors(app_test(token=token).run()) == [DENIED_LINK]
    assert errors(app_test(token=new_token).run()) == []


def test_the_page_script_run_on_its_own_gives_a_rater_the_rate_page(app_db):
    # A deep link on a fresh server runs pages/admin.py without app.py; it runs
    # app.py around itself, whose navigation has no Admin page for a rater.
    seed_project(app_db)
    _, token = store.create_rater(app_db, "dave")
    page = app_test(str(REPO / "pages" / "admin.py"), token=token).run()
    assert not page.exception and errors(page) == []
    assert [t.value for t in page.title] == ["Rate"]
    assert [i.value for i in page.info] == [
        "No projects for you yet: ask your project admin to add you to one."]
    assert not page.button and not page.text_input


def test_progress_and_jobs(app_db, monkeypatch):
    project = seed_project(app_db)
    at = open_admin(monkeypatch)
    assert [m.value for m in at.metric][:4] == ["2", "0", "0", "0"]
    at.button(key=Keys.ADMIN_REFIT).click().run()
    at.button(key=Keys.ADMIN_REFIT).click().run()  # already queued: no second job
    assert [(j["project_id"], j["type"], j["status"]) for j in store.recent_jobs(app_db)] == [
        (project["id"], "refit", "queued")]
    assert "A refit job is already queued." in [i.value for i in at.info]


@pytest.fixture
def downloads(monkeypatch):
    """Record the callables the page hands to deferred download buttons, by file name."""
    seen: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return seen


def test_export_pairs(app_db, monkeypatch, downloads):
    project = seed_project(app_db, n_items=3)
    ann, _ = store.create_rater(app_db, "ann")
    items = [i["id"] for i in store.iter_items(app_db, project["id"])]
    store.submit_judgment(app_db, item_id=items[0], rater_id=ann["id"], submission_id="s1",
                            choice=1, rationale="B is right")
    store.submit_judgment(app_db, item_id=items[1], rater_id=ann["id"], submission_id="s2",
                            outcome="tie")
    at = open_admin(monkeypatch)
    assert at.segmented_control(key=Keys.ADMIN_EXPORT_FORMAT).value == "pairs"
    at.checkbox(key=Keys.ADMIN_EXPORT_REAL_NAMES).check().run()
    at.button(key=Keys.ADMIN_EXPORT_PREPARE).click().run()
    assert not at.exception and errors(at) == []
    assert "Export ready: wrote 1 rows from 2 judgments; skipped: tie 1." in [
        s.value for s in at.success]
    [button] = at.get("download_button")
    assert button.proto.label == "Download p-pairs.jsonl"
    data = downloads["p-pairs.jsonl"]()
    judgment_id = store.list_judgments(app_db, rater_id=ann["id"])[0]["id"]
    assert [json.loads(line) for line in data.decode("utf-8").splitlines()] == [
        {"prompt": "prompt 0", "chosen": "response 0.1", "rejected": "response 0.0",
         "metadata": {"item": "q0", "judgment_id": judgment_id, "rater": "ann",
                      "kind": "human", "strength": None, "rationale": "B is right",
                      "reason_tags": None, "systems": {"chosen": "sys1", "rejected": "sys0"}}}]

    # Changing an option withdraws the prepared file until it is prepared again.
    at.checkbox(key=Keys.ADMIN_EXPORT_REAL_NAMES).uncheck().run()
    assert not at.get("download_button")


def test_an_empty_export_says_so_instead_of_offering_an_empty_file(app_db, monkeypatch):
    project = seed_project(app_db, n_items=2)
    ann, _ = store.create_rater(app_db, "ann")
    item = next(store.iter_items(app_db, project["id"]))["id"]
    store.submit_judgment(app_db, item_id=item, rater_id=ann["id"], submission_id="s1",
                          outcome="tie")
    at = open_admin(monkeypatch)
    at.button(key=Keys.ADMIN_EXPORT_PREPARE).click().run()
    assert not at.exception
    assert [w.value for w in at.warning if w.value.startswith("Nothing")] == [
        "Nothing to export with these options: wrote 0 rows from 1 judgments; skipped: tie 1."]
    assert not at.get("download_button")


def test_export_refuses_an_unsupported_combination(app_db, monkeypatch):
    seed_project(app_db)
    at = open_admin(monkeypatch)
    at.segmented_control(key=Keys.ADMIN_EXPORT_FORMAT).set_value("slates")
    at.selectbox(key=Keys.ADMIN_EXPORT_AGGREGATE).set_value("majority").run()
    assert errors(at) == ['Cannot export: aggregate "majority" works with format "pairs" or '
                          '"kto", got format \'slates\'.']
    assert not [b for b in at.button if b.key == Keys.ADMIN_EXPORT_PREPARE]


def test_configure_the_llm_judge_and_routing(app_db, monkeypatch):
    project = seed_project(app_db)
    at = open_admin(monkeypatch)
    pid = project["id"]
    at.text_input(key=F(Keys.PF_JUDGE_MODEL, pid)).input("/models/judge-7b")
    at.selectbox(key=F(Keys.PF_JUDGE_BACKEND, pid)).set_value("reward")
    at.number_input(key=F(Keys.PF_JUDGE_BATCH, pid)).set_value(4)
    at.toggle(key=F(Keys.PF_JUDGE_TIE, pid)).set_value(True)
    at.number_input(key=F(Keys.PF_CALIBRATION, pid)).set_value(0.2)
    at.toggle(key=F(Keys.PF_ACTIVE, pid)).set_value(True)
    at.number_input(key=F(Keys.PF_REFIT_N, pid)).set_value(200)
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()

    assert not at.exception and errors(at) == []
    settings = store.get_project(app_db, pid)["settings"]
    assert settings.judge == {"model": "/models/judge-7b", "backend": "reward",
                                 "batch_size": 4, "allow_tie": True}
    assert (settings.calibration_fraction, settings.active_selection,
            settings.refit_every_judgments) == (0.2, True, 200)
    audit = last_audit(app_db)
    assert (audit["action"], audit["details"]["judge"]) == (
        "update_settings", {"old": None, "new": settings.judge})
    # A blank model removes the judge again.
    at.text_input(key=F(Keys.PF_JUDGE_MODEL, pid)).input("")
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert store.get_project(app_db, pid)["settings"].judge is None


def test_the_admin_page_opens_on_the_project_its_link_names(app_db, monkeypatch):
    monkeypatch.setenv("PREFSTORE_ADMIN_TOKEN", ADMIN_TOKEN)
    seed_project(app_db, "a")
    b = seed_project(app_db, "b")
    store.rename_project(app_db, b["id"], "b2", actor="admin")
    for name in ("b2", "b"):  # its name, or the name a link made before the rename holds
        at = app_test(token=ADMIN_TOKEN)
        at.query_params["project"] = name
        at.run()
        at.switch_page("pages/admin.py").run()
        assert not at.exception and errors(at) == []
        assert at.selectbox(key=Keys.ADMIN_PROJECT).value == b["id"]
        assert at.query_params["project"] == "b2"
    at.selectbox(key=Keys.ADMIN_PROJECT).select(b["id"] - 1).run()  # project a
    assert at.query_params["project"] == "a"  # the dashboards open on it too
