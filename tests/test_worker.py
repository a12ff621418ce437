import json
import os
import signal
import subprocess
import sys
import time

from prefstore import importing, store, worker
from tests import pandalm

pytest_plugins = ["tests.tiny_models"]


def wait_for(predicate, timeout=60.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    raise AssertionError("condition not met in time")


def seed_pandalm(db, tmp_path, n=60, **settings):
    rows = pandalm.item_rows()[:n]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "i.jsonl", rows), "p",
                           settings=settings or None)
    return store.get_project(db, "p")


def spawn_worker(db_path, *args):
    return subprocess.Popen([sys.executable, "-m", "prefstore.cli", "worker", "--db",
                             str(db_path), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_refit_job_is_claimed_run_and_stored(db, db_path, tmp_path):
    project = seed_pandalm(db, tmp_path)
    processed = worker.Worker(db_path, poll_s=0.1).run(once=True)
    assert processed == 1
    jobs = store.recent_jobs(db)
    assert [(j["type"], j["status"], j["attempts"]) for j in jobs] == [("refit", "done", 1)]
    fits = list(db.query("SELECT model, level, kind FROM fits ORDER BY id"))
    assert fits == [{"model": "bt", "level": "system", "kind": "all"},
                    {"model": "bt", "level": "response", "kind": "all"}]
    result = store.get_job(db, jobs[0]["id"])["result"]
    assert result["fitted"] == ["bt/system", "bt/response"]
    # The first 60 PandaLM items hold no tie, so Davidson fails; that is recorded, not fatal.
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
    seed_pandalm(db, tmp_path, n=10)
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
    seed_pandalm(db, tmp_path, n=12, judge=judge, human_budget=0.5)
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
    project = seed_pandalm(db, tmp_path, n=200, judge=judge)
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
    seed_pandalm(db, tmp_path, n=5)
    pid = worker.ensure_worker(db_path)
    try:
        assert pid is not None
        assert worker.ensure_worker(db_path) is None
        assert len(store.live_workers(db)) == 1
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
