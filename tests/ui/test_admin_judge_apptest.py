"""AppTest of the Admin page's judge settings: a server judge, its connection test, its usage."""

from __future__ import annotations

import pytest

from prefstore import store
from tests.judge_server import Reply, ScriptedServer, fixture, free_port
from tests.ui.conftest import app_test
from tests.ui.test_admin_apptest import ADMIN_TOKEN, errors, last_audit, open_admin, seed_project
from ui.common import Keys

F = Keys.project_form
LOCAL_KEYS = (Keys.PF_JUDGE_BATCH, Keys.PF_JUDGE_MAX_LENGTH, Keys.PF_JUDGE_DEVICE,
              Keys.PF_JUDGE_DTYPE, Keys.PF_JUDGE_RATIONALE)
SERVER_KEYS = (Keys.PF_JUDGE_BASE_URL, Keys.PF_JUDGE_API_KEY_ENV, Keys.PF_JUDGE_CONCURRENCY,
               Keys.PF_JUDGE_RPM, Keys.PF_JUDGE_TIMEOUT, Keys.PF_JUDGE_RETRIES,
               Keys.PF_JUDGE_TEMPERATURE, Keys.PF_JUDGE_MAX_TOKENS, Keys.PF_JUDGE_LOGPROBS,
               Keys.PF_JUDGE_SAMPLES, Keys.PF_JUDGE_TEST)
MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def shown_keys(at, pid) -> set[str]:
    """The judge widgets on the page, by their base key."""
    keys = {w.key for kind in ("text_input", "number_input", "selectbox", "toggle", "button")
            for w in getattr(at, kind)}
    return {base for base in LOCAL_KEYS + SERVER_KEYS if F(base, pid) in keys}


def choose_server_backend(at, pid, model=MODEL):
    at.text_input(key=F(Keys.PF_JUDGE_MODEL, pid)).input(model)
    at.selectbox(key=F(Keys.PF_JUDGE_BACKEND, pid)).set_value("openai").run()
    assert not at.exception and errors(at) == []


def test_configure_a_server_judge(app_db, monkeypatch):
    project = seed_project(app_db)
    pid = project["id"]
    at = open_admin(monkeypatch)
    assert shown_keys(at, pid) == set(LOCAL_KEYS)
    choose_server_backend(at, pid)
    assert shown_keys(at, pid) == set(SERVER_KEYS)
    at.text_input(key=F(Keys.PF_JUDGE_BASE_URL, pid)).input("http://gpu-box:8000/v1")
    at.text_input(key=F(Keys.PF_JUDGE_API_KEY_ENV, pid)).input("PREFSTORE_JUDGE_API_KEY")
    at.number_input(key=F(Keys.PF_JUDGE_CONCURRENCY, pid)).set_value(8)
    at.number_input(key=F(Keys.PF_JUDGE_RPM, pid)).set_value(600.0)
    at.number_input(key=F(Keys.PF_JUDGE_TIMEOUT, pid)).set_value(60.0)
    at.number_input(key=F(Keys.PF_JUDGE_RETRIES, pid)).set_value(3)
    at.number_input(key=F(Keys.PF_JUDGE_TEMPERATURE, pid)).set_value(0.7)
    at.number_input(key=F(Keys.PF_JUDGE_MAX_TOKENS, pid)).set_value(8)
    at.selectbox(key=F(Keys.PF_JUDGE_LOGPROBS, pid)).set_value(False)
    at.number_input(key=F(Keys.PF_JUDGE_SAMPLES, pid)).set_value(5)
    at.toggle(key=F(Keys.PF_JUDGE_TIE, pid)).set_value(True)
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()

    assert not at.exception and errors(at) == []
    judge = {"model": MODEL, "backend": "openai", "allow_tie": True,
             "base_url": "http://gpu-box:8000/v1", "api_key_env": "PREFSTORE_JUDGE_API_KEY",
             "concurrency": 8, "requests_per_minute": 600, "timeout_s": 60, "max_retries": 3,
             "temperature": 0.7, "max_tokens": 8, "logprobs": False, "samples": 5}
    assert store.get_project(app_db, pid)["settings"].judge == judge
    assert last_audit(app_db) == {"project_id": pid, "actor": "admin",
                                  "action": "update_settings",
                                  "details": {"judge": {"old": None, "new": judge}}}

    # A fresh page shows what was stored.
    again = app_test(token=ADMIN_TOKEN).run()
    again.switch_page("pages/admin.py").run()
    assert again.text_input(key=F(Keys.PF_JUDGE_BASE_URL, pid)).value == "http://gpu-box:8000/v1"
    assert again.number_input(key=F(Keys.PF_JUDGE_RPM, pid)).value == 600.0
    assert again.selectbox(key=F(Keys.PF_JUDGE_LOGPROBS, pid)).value is False

    # Back to a local backend: the server's fields go, the local ones come back.
    again.selectbox(key=F(Keys.PF_JUDGE_BACKEND, pid)).set_value("generative").run()
    assert shown_keys(again, pid) == set(LOCAL_KEYS)
    again.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert store.get_project(app_db, pid)["settings"].judge == {"model": MODEL,
                                                                "allow_tie": True}


def test_a_pasted_key_is_refused_and_not_shown(app_db, monkeypatch):
    project = seed_project(app_db)
    pid = project["id"]
    at = open_admin(monkeypatch)
    choose_server_backend(at, pid)
    at.text_input(key=F(Keys.PF_JUDGE_BASE_URL, pid)).input("https://api.openai.com/v1")
    at.text_input(key=F(Keys.PF_JUDGE_API_KEY_ENV, pid)).input("sk-proj-SECRET-123")
    at.button(key=F(Keys.PF_SAVE, pid)).click().run()
    assert errors(at) == ["Not saved: settings: 'judge': \"api_key_env\" must be the name of an "
                          "environment variable (letters, digits and _), not the key itself."]
    assert store.get_project(app_db, pid)["settings"].judge is None


def test_test_connection_shows_the_served_models_or_what_to_fix(app_db, monkeypatch):
    project = seed_project(app_db)
    pid = project["id"]
    at = open_admin(monkeypatch)
    models = ("scripted-judge", "other-model")
    with ScriptedServer(lambda body, n: Reply(fixture("logprobs_answer_a.json")),
                        models=models) as server:
        choose_server_backend(at, pid, model="scripted-judge")
        at.text_input(key=F(Keys.PF_JUDGE_BASE_URL, pid)).input(server.base_url)
        at.button(key=F(Keys.PF_JUDGE_TEST, pid)).click().run()
        assert not at.exception and errors(at) == []
        [success] = [s.value for s in at.success if s.value.startswith("Connected")]
        assert success.startswith(f"Connected: {server.base_url} serves scripted-judge (")
        assert success.endswith(" ms).")
        assert "Served models: scripted-judge, other-model" in [c.value for c in at.caption]

        at.text_input(key=F(Keys.PF_JUDGE_MODEL, pid)).input("org/not-served")
        at.button(key=F(Keys.PF_JUDGE_TEST, pid)).click().run()
        assert errors(at) == [f"Connection failed: \"model\": 'org/not-served' is not served by "
                              f"{server.base_url}; it serves scripted-judge, other-model."]
        assert server.requests == []  # a connection test sends no judging request

    url = f"http://127.0.0.1:{free_port()}/v1"
    at.text_input(key=F(Keys.PF_JUDGE_BASE_URL, pid)).input(url)
    at.button(key=F(Keys.PF_JUDGE_TEST, pid)).click().run()
    [error] = errors(at)
    assert error.startswith(f'Connection failed: "base_url": cannot reach {url} (')
    # Testing saves nothing.
    assert store.get_project(app_db, pid)["settings"] == project["settings"]


@pytest.mark.parametrize("configured", [False, True])
def test_progress_shows_judge_usage(app_db, monkeypatch, configured):
    settings = {"judge": {"model": "org/judge"}} if configured else {}
    project = seed_project(app_db, n_items=3, **settings)
    items = [i["id"] for i in store.iter_items(app_db, project["id"])]
    server = store.get_or_create_rater(app_db, "server-judge", "llm")
    store.save_judge_verdict(
        app_db, project_id=project["id"], rater_id=server["id"], item_id=items[0],
        judgment={"outcome": "choice", "choice": 0, "ranking": None, "display_order": [0, 1],
                  "rationale": None, "metadata": {}},
        attempts=2, usage={"prompt_tokens": 300, "completion_tokens": 4})
    store.save_judge_failure(app_db, project_id=project["id"], rater_id=server["id"],
                             item_id=items[1], kind="unparseable", reason="no label", raw="hm",
                             attempts=3, usage={"prompt_tokens": 450, "completion_tokens": 30})
    at = open_admin(monkeypatch)
    [usage] = [d.value for d in at.dataframe if "judge" in d.value.columns]
    rows = usage.to_dict("records")
    expected = [{"judge": "server-judge", "labelled": 1, "failed": 1, "pending": 1, "calls": 5,
                 "prompt tokens": 750, "completion tokens": 34}]
    if configured:
        expected.insert(0, {"judge": "org/judge", "labelled": 0, "failed": 0, "pending": 3,
                            "calls": 0, "prompt tokens": 0, "completion tokens": 0})
    assert rows == expected
