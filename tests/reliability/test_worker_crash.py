"""A worker killed during a fit: its lease lapses and another worker finishes the job."""

import os
import signal
import subprocess
import sys
import time

import pytest

from prefstore import store, worker
from prefstore.store.copy import copy_database

pytestmark = pytest.mark.both_backends


def test_worker_killed_during_fit_is_taken_over(pandalm_db_path, db_path):
    path = db_path
    db = store.connect(path)
    copy_database(store.connect(pandalm_db_path), db)
    job_id = store.enqueue_job(db, "refit", project_id=1)
    proc = subprocess.Popen([sys.executable, "-m", "prefstore.cli", "worker", "--db", str(path),
                             "--lease", "2", "--poll", "0.05"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while store.get_job(db, job_id)["status"] != "running":
        assert time.monotonic() < deadline, "the worker never started the job"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = store.get_job(db, job_id)
    assert (killed["status"], killed["result"], killed["attempts"]) == ("running", None, 1)
    fits_before = db.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
    assert fits_before < 3  # killed mid-job: the three fits were not all written
    # While the lease holds, nobody else may take the job.
    assert store.claim_job(db, "intruder", lease_s=1) is None
    time.sleep(2.2)
    second = worker.Worker(str(path), poll_s=0.05, schedule=False)
    second.run(once=True)
    done = store.get_job(db, job_id)
    assert (done["status"], done["attempts"], done["lease_owner"]) == ("done", 2, second.id)
    assert done["result"]["fitted"] == ["bt/system", "davidson/system", "bt/response"]
    for model, level in (("bt", "system"), ("davidson", "system"), ("bt", "response")):
        assert store.latest_fit(db, 1, model=model, level=level) is not None
    assert store.latest_report(db, 1, name="agreement", kind="human") is not None
    assert store.integrity_check(db) == "ok"
