"""Crash: SIGKILL a writer mid-stream, again and again; the store stays whole.

After every kill: ``PRAGMA integrity_check`` is "ok", every acknowledged
submission is stored, no judgment row is partial, and each judgment's
n_human increment and assignment status change committed with it.
"""

import os

import pytest

from prefstore import store
from tests.reliability import workload

pytestmark = pytest.mark.both_backends

FULL = os.environ.get("PREFSTORE_SOAK_FULL") == "1"
ROUNDS = 50 if FULL else 5


@pytest.mark.timeout(900 if FULL else 60)
def test_sigkill_loses_nothing_acknowledged(db_path):
    result = workload.run_crash(db_path, rounds=ROUNDS, seed=2)
    assert result["failures"] == []
    assert result["kills"] == ROUNDS
    assert result["acked"] >= ROUNDS * 20
    assert 0 <= result["unacked_committed"] <= ROUNDS


def test_check_store_sees_a_broken_counter(db_path):
    """The checker is not vacuous: a counter out of step with the rows is reported."""
    setup = workload.make_store(db_path, n_items=3, n_raters=1, raters_per_item=3)
    db = store.connect(db_path)
    db.execute("UPDATE items SET n_human = 1 WHERE external_id = 'i0'")
    report = workload.check_store(db, setup["project_id"], 3)
    assert report == {**workload.SOUND, "n_human": [(1, 1, 0)]}
    db.execute("UPDATE projects SET open_items = 7 WHERE id = ?", [setup["project_id"]])
    report = workload.check_store(db, setup["project_id"], 3)
    assert report == {**workload.SOUND, "n_human": [(1, 1, 0)], "open_items": [(7, 3)]}
    rater = setup["rater_ids"][0]
    db.execute("INSERT INTO rater_counts (rater_id, project_id, done, skipped, open_mine) "
               "VALUES (?, ?, 1, 0, 0)", [rater, setup["project_id"]])
    report = workload.check_store(db, setup["project_id"], 3)
    assert report["progress"] == [([(rater, 1, 0, 0)], [])]
