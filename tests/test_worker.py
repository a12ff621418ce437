import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from prefstore import importing, store, worker
from tests import pandalm

pytestmark = pytest.mark.both_backends

pytest_plugins = ["tests.tiny_models"]


def wait_for(predicate, timeout=60.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    raise AssertionError("condition not met in time")


SYSTEMS = ("alpha", "beta", "gamma", "delta", "epsilon")


def item_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` synthetic pairwise items over five systems, each with 3 human labels, no ties."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = SYSTEMS[i % 5], SYSTEMS[(i + 1 + i // 5) % 5]
        if a == b:
            b = SYSTEMS[(i + 2) % 5]
        rows.append({"id": str(i), "prompt": f"question {i}: explain topic {rng.random():.6f}",
                     "responses": [{"text": f"{a} says {' '.join(['word'] * rng.randint(3, 40))}",
                                    "system": a},
                                   {"text": f"{b} answers {rng.random():.6f}", "system": b}],
                     "judgments": [{"rater": f"annotator{k}", "choice": rng.randrange(2)}
                                   for k in (1, 2, 3)]})
    return rows


def seed_items(db, tmp_path, n=60, **settings):
    rows = item_rows(n)
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "i.jsonl", rows), "p",
                           settings=settings or None)
    return store.get_project(db, "p")


_spawned: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test():
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def spawn_worker(db_path, *args):
    proc = subprocess.Popen([sys.executable, "-m", "prefstore.cli", "worker", "--db",
                             str(db_path), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _spawned.append(proc)
    return proc


def test_refit_job_is_claimed_run_and_stored(db, db_path, tmp_path):
    project = seed_items(db, tmp_path)
    processed = worker.Worker(db_path, poll_s=0.1).run(once=True)
    assert processed == 1
    jobs = store.recent_jobs(db)
    assert [(j["type"], j["status"], j["attempts"]) for j in jobs] == [("refit", "done", 1)]
    fits = list(db.query("SELECT model, level, kind FROM fits ORDER BY id"))
    assert fits == [{"model": "bt", "level": "system", "kind": "all"},
                    {"model": "bt", "level": "response", "kind": "all"}]
    result = store.get_job(db, jobs[0]["id"])["result"]
    assert result["fitted"] == ["bt/system", "bt/response"]
    # The items hold no tie, so Davidson fails; that is recorded, not fatal.
    assert result["failed"] == {
        "davidson/system": "the Davidson model needs at least one tie, got none; use 'bt'"}
    assert store.latest_fit(db, project["id"], model="bt")["n_judgments"] == 180
    report = store.latest_report(db, project["id"], name="agreement", kind="human")
    assert (report["n_judgments"], report["result"]["n_raters"]) == (180, 3)
    assert result["agreement_reports"] == {"human": report["id"], "all": report["id"] + 1}
    # Nothing new: a second pass queues nothing and exits at once.
    assert worker.Worker(db_path).run(once=True) == 0


def test_once_exits_and_sigterm_stops_cleanly(db_path, tmp_path):
    db = store.connect(db_path)
    seed_items(db, tmp_path, n=10)
    done = subprocess.run([sys.executable, "-m", "prefstore.cli", "worker", "--db",
                           str(db_path), "--once"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped after 1 job\n" in done.stdout
    proc = spawn_worker(db_path, "--poll", "0.2")
    wait_for(lambda: store.live_workers(db))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    statuses = [w["status"] for w in db.query("SELECT status FROM workers")]
    assert statuses == ["stopped", "stopped"]


def test_annotate_job_stores_llm_judgments(db_path, tmp_path, tiny_causal_lm_path):
    db = store.connect(db_path)
    judge = {"model": str(tiny_causal_lm_path), "batch_size": 8, "max_length": 256}
    seed_items(db, tmp_path, n=12, judge=judge, human_budget=0.5)
    worker.Worker(str(db_path), poll_s=0.1).run(once=True)
    types = [(j["type"], j["status"]) for j in reversed(store.recent_jobs(db))]
    assert ("annotate", "done") in types and ("route", "done") in types
    rows = list(db.query("SELECT r.name, j.kind, j.submission_id, j.metadata FROM judgments j "
                         "JOIN raters r ON r.id = j.rater_id WHERE j.kind = 'llm' ORDER BY j.id"))
    assert len(rows) == 12
    assert {r["name"] for r in rows} == {tiny_causal_lm_path.name}
    assert [r["submission_id"] for r in rows] == [f"judge:{i}" for i in range(1, 13)]
    meta = json.loads(rows[0]["metadata"])
    assert meta["orders"] == [[0, 1], [1, 0]]
    assert abs(sum(meta["probs"]) - 1) < 1e-6
    assert isinstance(meta["swap_consistent"], bool) and 0 <= meta["confidence"] <= 1
    decisions = store.routing_frame(db, 1)["decision"].value_counts().to_dict()
    assert sum(v for k, v in decisions.items() if k != "llm") == 6


def test_killed_worker_lease_expires_and_another_finishes(db_path, tmp_path,
                                                           tiny_causal_lm_path):
    db = store.connect(db_path)
    judge = {"model": str(tiny_causal_lm_path), "batch_size": 4, "max_length": 512}
    project = seed_items(db, tmp_path, n=200, judge=judge)
    store.enqueue_job(db, "annotate", project_id=project["id"])
    proc = spawn_worker(db_path, "--lease", "2", "--poll", "0.1")
    # Kill it mid-annotation: some but not all labels are written.
    wait_for(lambda: 0 < store.count_judgments(db) - 600, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = store.count_judgments(db) - 600
    assert 0 < partial < 200
    job = next(j for j in store.recent_jobs(db) if j["type"] == "annotate")
    assert job["status"] == "running"
    # Before the lease lapses nobody may take the job; afterwards another worker does.
    time.sleep(2.5)
    second = worker.Worker(str(db_path), poll_s=0.1, schedule=False)
    second.run(once=True)
    job = store.get_job(db, job["id"])
    assert (job["status"], job["attempts"], job["lease_owner"]) == ("done", 2, second.id)
    counts = db.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM judgments "
                        "WHERE kind = 'llm'").fetchone()
    assert counts == (200, 200)


def test_ensure_worker_starts_one(db_path, tmp_path):
    db = store.connect(db_path)
    seed_items(db, tmp_path, n=5)
    pid = worker.ensure_worker(db_path)
    try:
        assert pid is not None
        assert worker.ensure_worker(db_path) is None
        assert len(store.live_workers(db)) == 1
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


APP_STANDIN = """
import sys, time
from prefstore import worker
print(worker.ensure_worker(sys.argv[1]), flush=True)
time.sleep(600)
"""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_autostarted_worker_ends_with_the_app(db, db_path, tmp_path, how):
    """Regression: an autostarted worker ran on for 23 minutes after the app was killed."""
    seed_items(db, tmp_path, n=5)
    app = subprocess.Popen([sys.executable, "-c", APP_STANDIN, str(db_path)],
                           stdout=subprocess.PIPE, text=True)
    worker_pid = int(app.stdout.readline())
    try:
        assert pid_alive(worker_pid)
        app.send_signal(how)
        app.wait(timeout=10)
        gone = time.monotonic()
        wait_for(lambda: not pid_alive(worker_pid), timeout=10, step=0.1)
        assert time.monotonic() - gone < 10
    finally:
        app.kill()
        if pid_alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


@pytest.mark.sqlite_only("a database file that is deleted")
def test_worker_stops_when_its_database_file_is_deleted(db, db_path, tmp_path):
    seed_items(db, tmp_path, n=5)
    proc = spawn_worker(db_path, "--poll", "0.2")
    try:
        wait_for(lambda: store.live_workers(db), timeout=30)
        db.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{db_path}{suffix}")
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_a_worker_started_by_hand_outlives_its_shell(db, db_path, tmp_path):
    """Without --parent-pid (a supervisor's worker), the parent's end changes nothing."""
    seed_items(db, tmp_path, n=5)
    shell = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, "
         "'-m', 'prefstore.cli', 'worker', '--db', sys.argv[1], '--poll', '0.2'], "
         "start_new_session=True); print(p.pid, flush=True)", str(db_path)],
        stdout=subprocess.PIPE, text=True)
    worker_pid = int(shell.stdout.readline())
    try:
        shell.wait(timeout=10)
        time.sleep(3)
        assert pid_alive(worker_pid)
    finally:
        os.kill(worker_pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(worker_pid), timeout=15, step=0.1)


# ---------------------------------------------------------------- annotate jobs with a server judge


def judge_project(db, base_url, n=6, **judge):
    """A project whose judge is behind ``base_url``, with ``n`` pairwise items."""
    project = store.create_project(db, "p", settings={"judge": {
        "backend": "openai", "base_url": base_url, "model": "scripted-judge", **judge}})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"Question {i}?",
         "responses": [{"text": f"yes {i}", "system": "a"}, {"text": f"no {i}", "system": "b"}]}
        for i in range(n)])
    return store.get_project(db, "p")


def scripted_answers(event_at=None, event=None):
    """Answer "A" with logprobs; set ``event`` when request number ``event_at`` arrives."""
    from tests.judge_server import Reply, fixture

    def respond(body, n):
        if n == event_at:
            event.set()
        return Reply(fixture("logprobs_answer_a.json"))

    return respond


def judged_items(db, project_id):
    rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM judgments j "
                      "JOIN items i ON i.id = j.item_id WHERE i.project_id = ?",
                      [project_id]).fetchone()
    assert rows[0] == rows[1], "an item was judged twice"
    return rows[0]


@pytest.mark.llm
def test_annotate_job_with_a_server_judge_stores_what_the_cli_does(db, db_path, served):
    from tests.judge_server import ANSWERING_MODEL

    config = {"backend": "openai", "base_url": served.base_url,
              "model": served.model(ANSWERING_MODEL), "concurrency": 2}
    project = store.create_project(db, "p", settings={"judge": config})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"Explain topic {i}.",
         "responses": [{"text": f"Topic {i} is ...", "system": "a"},
                       {"text": "I don't know.", "system": "b"}]} for i in range(6)])
    [job] = worker.schedule_due_jobs(db)
    worker.Worker(db_path, poll_s=0.1, schedule=False).run(once=True)
    done = store.get_job(db, job)
    assert (done["type"], done["status"]) == ("annotate", "done")
    result = done["result"]
    assert (result["judge"], result["labelled"], result["failed"], result["cached"],
            result["written"], result["complete"]) == (ANSWERING_MODEL, 6, 0, 0, 6, True)
    items = [i["id"] for i in store.iter_items(db, project["id"])]
    rows = sorted((j["item_id"], j["submission_id"], j["outcome"], j["choice"],
                   j["metadata"]["probs"], j["metadata"]["answer_mode"])
                  for j in store.list_judgments(db, project_id=project["id"]))
    assert rows == [(i, f"judge:{i}", "choice", 0, [0.5, 0.5], "text") for i in items]
    usage = store.judge_usage(db, project["id"])[ANSWERING_MODEL]
    assert (usage["calls"], usage["labelled"], usage["pending"]) == (12, 6, 0)
    assert usage["tokens"] == result["tokens"]
    assert ("route", "done") in [(j["type"], j["status"]) for j in store.recent_jobs(db)]
    # Nothing pending: the scheduler queues no second annotation.
    assert "annotate" not in [store.get_job(db, j)["type"]
                              for j in worker.schedule_due_jobs(db)]


def test_annotate_job_stops_on_shutdown_and_another_run_finishes(db, db_path):
    from tests.judge_server import ScriptedServer

    first = worker.Worker(db_path, poll_s=0.1, schedule=False)
    # Request 4 is item 2's first display order: shut down while it is in flight.
    with ScriptedServer(scripted_answers(4, first.stop_event)) as server:
        project = judge_project(db, server.base_url, concurrency=1)
        job = store.enqueue_job(db, "annotate", project_id=project["id"])
        first.run(once=True)
        stopped = store.get_job(db, job)
        assert (stopped["status"], stopped["attempts"]) == ("queued", 1)
        assert judged_items(db, project["id"]) in (2, 3)
        states = [s["status"] for s in store.judge_states(db, project["id"])]
        assert states[:2] == ["done", "done"] and set(states[3:]) == {"pending"}

        worker.Worker(db_path, poll_s=0.1, schedule=False).run(once=True)
        requests = len(server.requests)
    finished = store.get_job(db, job)
    assert (finished["status"], finished["attempts"]) == ("done", 2)
    assert judged_items(db, project["id"]) == 6
    # Every answer was paid for once: the one in flight came from the database.
    assert requests == 12
    assert {s["status"] for s in store.judge_states(db, project["id"])} == {"done"}


def test_annotate_job_writes_nothing_once_its_lease_is_lost(db, db_path, monkeypatch):
    from tests.judge_server import ScriptedServer

    lost = worker.Worker(db_path, poll_s=0.1, schedule=False)
    writes = []
    save = store.save_judge_verdict

    def recorded(*args, **kwargs):
        writes.append(lost.lease_lost.is_set())
        return save(*args, **kwargs)

    monkeypatch.setattr(store, "save_judge_verdict", recorded)
    # Request 4 is item 2's first display order: the lease is lost while it is in flight.
    with ScriptedServer(scripted_answers(4, lost.lease_lost)) as server:
        project = judge_project(db, server.base_url, concurrency=1)
        job = store.enqueue_job(db, "annotate", project_id=project["id"])
        lost.run_job(db, store.claim_job(db, lost.id))
        assert len(server.requests) <= 6
    # Item 0 was stored; item 1 too unless the lease went while it was being stored.
    assert writes in ([False], [False, False])
    assert judged_items(db, project["id"]) == len(writes)
    running = store.get_job(db, job)
    assert (running["status"], running["lease_owner"]) == ("running", lost.id)


def test_schedule_queues_annotation_only_for_pending_items(db):
    project = store.create_project(db, "p", settings={"judge": {"model": "org/judge"}})
    ids = store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": "q", "responses": [{"text": "a"}, {"text": "b"}]}
        for i in range(2)])
    judge = store.get_or_create_rater(db, "org/judge", "llm")
    for item_id in ids:
        store.save_judge_failure(db, project_id=project["id"], rater_id=judge["id"],
                                 item_id=item_id, kind="unparseable", reason="no label",
                                 raw="hmm", attempts=2)
    assert worker.schedule_due_jobs(db) == []
    store.insert_items(db, project["id"], [
        {"external_id": "new", "prompt": "q", "responses": [{"text": "a"}, {"text": "b"}]}])
    [job] = worker.schedule_due_jobs(db)
    assert store.get_job(db, job)["type"] == "annotate"


def test_a_failed_annotate_job_is_not_queued_again_at_once(db):
    import datetime as dt

    project = store.create_project(db, "p", settings={"judge": {"model": "org/judge"}})
    store.insert_items(db, project["id"], [
        {"external_id": "q", "prompt": "q", "responses": [{"text": "a"}, {"text": "b"}]}])
    [job] = worker.schedule_due_jobs(db)
    store.claim_job(db, "w")
    store.finish_job(db, job, "w", error="ServerUnavailable: the judge server stopped answering")
    now = dt.datetime.now(dt.UTC)
    assert worker.schedule_due_jobs(db, now=now) == []
    later = now + dt.timedelta(seconds=worker.ANNOTATE_RETRY_S + 1)
    [again] = worker.schedule_due_jobs(db, now=later)
    assert store.get_job(db, again)["type"] == "annotate"
