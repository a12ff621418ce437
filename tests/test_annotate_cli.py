"""``prefstore annotate`` end to end: a real ``transformers serve`` (and a scripted server), on
SQLite and PostgreSQL.

The served ``answer-a`` model answers "A" to everything and returns no logprobs,
so every verdict is parsed from the text: both display orders name the first
response shown, giving probabilities [0.5, 0.5], choice 0 and an inconsistent
swap. ``random-chat`` answers gibberish, which must be stored as failures.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prefstore import cli, store, worker
from tests.judge_server import (
    ANSWERING_MODEL,
    RANDOM_MODEL,
    Reply,
    ScriptedServer,
    fixture,
    free_port,
    serving_available,
)

pytestmark = pytest.mark.both_backends

pytest_plugins = ["tests.tiny_models"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = ["labelled", "failed", "cached", "seconds", "tokens"]


@pytest.fixture(scope="module", autouse=True)
def _launch_early(request):
    # Start the server first: it imports for ~20 s while the scripted tests run.
    if serving_available() and not request.config.getoption("keyword"):
        request.getfixturevalue("served_processes")


_spawned: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def seed(db, name="p", n=6, **settings):
    project = store.create_project(db, name, settings=settings or None)
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"Question {i}: why is the sky blue?",
         "responses": [{"text": f"Rayleigh scattering, take {i}.", "system": "secret-a"},
                       {"text": f"No idea ({i}).", "system": "secret-b"}]}
        for i in range(n)])
    return store.get_project(db, project["id"])


def write_config(tmp_path, config, name="judge.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def served_config(served, model=ANSWERING_MODEL, **settings):
    return {"backend": "openai", "base_url": served.base_url, "model": served.model(model),
            **settings}


def annotate(capsys, db_path, *args):
    """Run ``prefstore annotate ... --json`` here; return (exit code, summary or None, stderr)."""
    code = cli.main(["annotate", "--db", str(db_path), "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def stats_judge(capsys, db_path, project="p"):
    assert cli.main(["stats", "--db", str(db_path), "--project", project, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["judge"]


def llm_rows(db, project_id):
    """The project's LLM judgments by item (a server judge stores them as they complete)."""
    return sorted((j["item_id"], j["submission_id"], j["outcome"], j["choice"],
                   j["metadata"]["probs"], j["metadata"]["swap_consistent"],
                   j["metadata"]["answer_mode"])
                  for j in store.list_judgments(db, project_id=project_id) if j["kind"] == "llm")


def expected_rows(db, project_id):
    """What the answer-a judge stores for every item of a project."""
    items = [i["id"] for i in store.iter_items(db, project_id)]
    return [(i, f"judge:{i}", "choice", 0, [0.5, 0.5], False, "text") for i in items]


def state_rows(db, project_id):
    return [(s["item_id"], s["status"], s["kind"], s["attempts"])
            for s in store.judge_states(db, project_id)]


# ---------------------------------------------------------------- before any work


@pytest.mark.parametrize(("case", "message"), [
    ("unreachable", 'error: "base_url": cannot reach http://127.0.0.1:{port}/v1 '),
    ("not served", "error: \"model\": 'org/not-served' is not served by {url}; it serves "
                   "scripted-judge"),
    ("key missing", 'error: "api_key_env": the environment variable '
                    "PREFSTORE_TEST_MISSING_KEY is not set"),
    ("no base_url", "error: settings: 'judge': \"base_url\" is required for the \"openai\" "
                    "backend"),
])
def test_a_judge_that_cannot_run_stops_before_any_work(db, db_path, tmp_path, capsys,
                                                        monkeypatch, case, message):
    monkeypatch.delenv("PREFSTORE_TEST_MISSING_KEY", raising=False)
    project = seed(db, n=2)
    port = free_port()
    with ScriptedServer(lambda body, n: Reply(fixture("logprobs_answer_a.json"))) as server:
        config = {"unreachable": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m"},
                  "not served": {"base_url": server.base_url, "model": "org/not-served"},
                  "key missing": {"base_url": server.base_url, "model": "scripted-judge",
                                  "api_key_env": "PREFSTORE_TEST_MISSING_KEY"},
                  "no base_url": {"model": "scripted-judge"}}[case]
        path = write_config(tmp_path, {"backend": "openai", **config})
        code, summary, err = annotate(capsys, db_path, "--project", "p", "--judge-config", path,
                                      "--save")
        assert server.requests == []
    assert (code, summary) == (2, None)
    assert err.splitlines() == [err.rstrip("\n")]  # one line
    assert err.startswith(message.format(port=port, url=server.base_url))
    assert store.get_project(db, "p")["settings"] == project["settings"]
    assert store.list_raters(db) == [] and store.judge_states(db, project["id"]) == []


def test_without_a_judge_the_message_says_so(db, db_path, capsys):
    seed(db, n=1)
    code, _, err = annotate(capsys, db_path, "--project", "p")
    assert (code, err) == (2, "error: project 'p' has no judge configured (settings.judge)\n")
    code, _, err = annotate(capsys, db_path, "--project", "p", "--save")
    assert err == "error: --save stores the judge of --judge-config FILE.json; give both\n"


# ---------------------------------------------------------------- failures, then a retry


def test_a_failed_item_keeps_its_raw_answer_until_a_parseable_retry(db, db_path, tmp_path,
                                                                    capsys):
    project = seed(db, n=3)
    items = [i["id"] for i in store.iter_items(db, project["id"])]
    asked = []

    def respond(body, n):
        content = body["messages"][0]["content"]
        asked.append(content)
        hedging = "Question 1:" in content and sum("Question 1:" in c for c in asked) <= 2
        body = fixture("text_answer_b.json")
        body["choices"][0]["message"]["content"] = "Maybe A?" if hedging else "A"
        return Reply(body)

    with ScriptedServer(respond) as server:
        path = write_config(tmp_path, {"backend": "openai", "base_url": server.base_url,
                                       "model": "scripted-judge", "logprobs": False})
        code, first, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
        assert (code, first["labelled"], first["failed"], first["cached"]) == (0, 2, 1, 0)
        state = store.judge_states(db, project["id"])[1]
        assert (state["status"], state["kind"], state["raw"], state["attempts"]) == (
            "failed", "unparseable", "Maybe A?", 2)
        assert state["reason"] == "unparseable answer 'Maybe A?' (expected exactly one of A, B)"
        # Stored in completion order, which concurrent requests do not fix.
        assert sorted(j["item_id"] for j in store.list_judgments(db, project_id=project["id"])
                      ) == [items[0], items[2]]
        # Without --retry-failed a failed item is left alone.
        _, again, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
        assert (again["labelled"], again["failed"], len(server.requests)) == (0, 0, 6)
        _, retried, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path,
                                 "--retry-failed")
    assert (retried["labelled"], retried["failed"], retried["cached"]) == (1, 0, 0)
    assert state_rows(db, project["id"]) == [(items[0], "done", None, 2),
                                             (items[1], "done", None, 4),
                                             (items[2], "done", None, 2)]
    assert store.judge_states(db, project["id"])[1]["raw"] is None
    assert len(store.list_judgments(db, project_id=project["id"])) == 3
    # The systems' names never reach the server.
    assert not any("secret-" in content for content in asked)


def test_a_server_that_stops_answering_ends_the_run_and_the_rest_resumes(db, db_path, tmp_path,
                                                                        capsys, monkeypatch):
    from prefstore.judges import server as server_module

    monkeypatch.setattr(server_module, "INITIAL_RETRY_DELAY", 0.01)
    project = seed(db, n=4)
    down = {"from": 4}  # requests 0-3 (items 0 and 1) are answered, then the server is gone

    def respond(body, n):
        if n >= down["from"]:
            raise ConnectionAbortedError("the server went away")  # closes the connection
        return Reply(fixture("logprobs_answer_a.json"))

    with ScriptedServer(respond) as server:
        path = write_config(tmp_path, {"backend": "openai", "base_url": server.base_url,
                                       "model": "scripted-judge", "concurrency": 1,
                                       "max_retries": 1})
        code, summary, err = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
        assert (code, summary) == (2, None)
        assert [line for line in err.splitlines() if line.startswith("error:")] == [
            f"error: the judge server at {server.base_url} stopped answering (Server "
            "disconnected without sending a response.); the items not yet judged can be "
            "resumed"]
        assert [s["status"] for s in store.judge_states(db, project["id"])] == [
            "done", "done", "pending", "pending"]
        down["from"] = 10**9
        code, summary, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
    assert (code, summary["labelled"], summary["failed"]) == (0, 2, 0)
    assert {s["status"] for s in store.judge_states(db, project["id"])} == {"done"}
    assert len(store.list_judgments(db, project_id=project["id"])) == 4


# ---------------------------------------------------------------- a real server


@pytest.mark.llm
def test_annotate_stores_verdicts_and_usage_then_reruns_from_the_cache(db, db_path, tmp_path,
                                                                      capsys, served):
    project = seed(db)
    config = served_config(served, concurrency=2)
    path = write_config(tmp_path, config)
    code, summary, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path,
                                "--save")
    assert code == 0 and list(summary) == SUMMARY_KEYS
    assert (summary["labelled"], summary["failed"], summary["cached"]) == (6, 0, 0)
    assert llm_rows(db, project["id"]) == expected_rows(db, project["id"])
    judgments = store.list_judgments(db, project_id=project["id"])
    usages = [j["metadata"]["usage"] for j in judgments]
    assert all(u["requests"] == 2 and u["cached"] == 0 for u in usages)
    assert summary["tokens"] == {"prompt": sum(u["prompt_tokens"] for u in usages),
                                 "completion": sum(u["completion_tokens"] for u in usages)}
    assert summary["tokens"]["prompt"] > 0 and summary["tokens"]["completion"] >= 12
    assert {s["status"] for s in store.judge_states(db, project["id"])} == {"done"}
    # --save stored the judge setting, validated and logged.
    assert store.get_project(db, "p")["settings"].judge == config
    audit = store.audit_log(db, project["id"], limit=1)[0]
    assert (audit["actor"], audit["action"], audit["details"]) == (
        "cli", "update_settings", {"judge": {"old": None, "new": config}})
    name = ANSWERING_MODEL
    assert stats_judge(capsys, db_path) == {name: {
        "calls": 12, "tokens": summary["tokens"], "labelled": 6, "failed": 0, "pending": 0}}

    # The same items in another project: every answer comes from the database.
    other = seed(db, name="p2")
    code, again, _ = annotate(capsys, db_path, "--project", "p2", "--judge-config", path)
    assert (code, again["labelled"], again["cached"], again["tokens"]) == (
        0, 6, 6, {"prompt": 0, "completion": 0})
    assert llm_rows(db, other["id"]) == expected_rows(db, other["id"])
    assert stats_judge(capsys, db_path, "p2")[name]["calls"] == 0
    # Nothing left to do: nothing is asked.
    _, nothing, _ = annotate(capsys, db_path, "--project", "p")
    assert (nothing["labelled"], nothing["failed"], nothing["cached"]) == (0, 0, 0)


@pytest.mark.llm
def test_gibberish_is_stored_as_failures_and_retried_on_request(db, db_path, tmp_path, capsys,
                                                                served):
    project = seed(db, n=3)
    path = write_config(tmp_path, served_config(served, RANDOM_MODEL))
    code, summary, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path,
                                "--save")
    assert (code, summary["labelled"], summary["failed"]) == (0, 0, 3)
    assert store.list_judgments(db, project_id=project["id"]) == []
    for state in store.judge_states(db, project["id"]):
        assert (state["status"], state["kind"], state["attempts"]) == ("failed", "unparseable", 2)
        assert state["raw"] and state["reason"].startswith("unparseable answer ")
    usage = stats_judge(capsys, db_path)[RANDOM_MODEL]
    assert (usage["calls"], usage["labelled"], usage["failed"], usage["pending"]) == (6, 0, 3, 0)
    assert usage["tokens"] == summary["tokens"]
    # Failed items are not pending: the worker queues no annotation for them.
    assert store.has_judge_todo(db, project["id"], RANDOM_MODEL) is False
    assert [j for j in worker.schedule_due_jobs(db)] == []
    _, retried, _ = annotate(capsys, db_path, "--project", "p", "--retry-failed")
    assert (retried["labelled"], retried["failed"], retried["cached"]) == (0, 3, 0)
    assert [s["attempts"] for s in store.judge_states(db, project["id"])] == [4, 4, 4]


@pytest.mark.llm
def test_a_killed_run_resumes_without_duplicates(db, db_path, tmp_path, capsys, served):
    n = 16
    project = seed(db, n=n)
    path = write_config(tmp_path, served_config(served, concurrency=2))
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefstore.cli", "annotate", "--db", str(db_path), "--project",
         "p", "--judge-config", path, "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _spawned.append(proc)
    deadline = time.monotonic() + 120
    while store.count_judgments(db, project["id"]) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no judgment was stored in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = {j["item_id"]: j["id"] for j in store.list_judgments(db, project_id=project["id"])}
    assert 3 <= len(first) < n
    statuses = [s["status"] for s in store.judge_states(db, project["id"])]
    assert statuses.count("done") == len(first) and "pending" in statuses

    code, summary, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
    assert (code, summary["labelled"], summary["failed"]) == (0, n - len(first), 0)
    rows = llm_rows(db, project["id"])
    assert rows == expected_rows(db, project["id"])  # one judgment per item, no duplicate
    after = {j["item_id"]: j["id"] for j in store.list_judgments(db, project_id=project["id"])}
    assert {i: after[i] for i in first} == first  # the first run's judgments are untouched
    assert {s["status"] for s in store.judge_states(db, project["id"])} == {"done"}


# ---------------------------------------------------------------- a local judge


@pytest.mark.llm
def test_annotate_runs_a_local_judge(db, db_path, tmp_path, capsys, tiny_causal_lm_path):
    project = seed(db, n=3)
    path = write_config(tmp_path, {"model": str(tiny_causal_lm_path), "max_length": 256})
    code, summary, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path,
                                "--limit", "2")
    assert (code, summary["labelled"], summary["failed"], summary["cached"],
            summary["tokens"]) == (0, 2, 0, 0, {"prompt": 0, "completion": 0})
    _, rest, _ = annotate(capsys, db_path, "--project", "p", "--judge-config", path)
    assert rest["labelled"] == 1
    judgments = store.list_judgments(db, project_id=project["id"])
    assert [j["submission_id"] for j in judgments] == [
        f"judge:{i['id']}" for i in store.iter_items(db, project["id"])]
    assert all(abs(sum(j["metadata"]["probs"]) - 1) < 1e-6 for j in judgments)
    assert stats_judge(capsys, db_path) == {tiny_causal_lm_path.name: {
        "calls": 0, "tokens": {"prompt": 0, "completion": 0}, "labelled": 3, "failed": 0,
        "pending": 0}}
    assert [s["attempts"] for s in store.judge_states(db, project["id"])] == [0, 0, 0]
