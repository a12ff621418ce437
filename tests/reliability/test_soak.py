"""Soak: many processes claim and submit at once, with double clicks; nothing is lost or doubled.

The CI variant runs 4 processes x 150 judgments. ``PREFSTORE_SOAK_FULL=1`` runs
the full 16 x 2,000 (also ``python benchmarks/bench_soak.py``, which prints figures).
"""

import os

import pytest

from prefstore import store
from tests.conftest import BACKENDS, drop_pg_database, new_pg_database
from tests.reliability import workload

FULL = os.environ.get("PREFSTORE_SOAK_FULL") == "1"
PROCESSES, PER_PROCESS = (16, 2000) if FULL else (4, 150)
RATERS_PER_ITEM = 3


@pytest.fixture(scope="module", params=BACKENDS)
def soak(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("soak") / "soak.db"
    else:
        server = request.getfixturevalue("pg_server")
        path = new_pg_database(server)
        request.addfinalizer(lambda: drop_pg_database(server, path))
    result = workload.run_soak(path, processes=PROCESSES, per_process=PER_PROCESS,
                               raters_per_item=RATERS_PER_ITEM, seed=1)
    db = store.connect(path)
    yield result, db
    db.close()


@pytest.mark.timeout(900 if FULL else 60)
def test_no_worker_saw_an_error(soak):
    result, _ = soak
    assert result["locked_errors"] == []  # "database is locked" and other OperationalErrors
    assert result["other_errors"] == []
    assert result["exit_codes"] == [0] * PROCESSES
    assert result["starved"] == 0
    assert result["submissions"] == PROCESSES * PER_PROCESS


def test_every_submission_stored_exactly_once(soak):
    result, db = soak
    # A double click stores one row: one of the two sends creates, the other is told so.
    assert result["double_created"] == 0
    assert result["duplicates_rejected"] > 0 and result["skips"] > 0
    assert result["distinct_submissions"] == result["submissions"]
    assert result["created"] == result["distinct_submissions"]
    assert store.count_judgments(db, result["project_id"]) == result["distinct_submissions"]
    assert workload.stored_submissions(db, result["project_id"]) == set(result["acked"])


def test_caps_counters_and_assignments_hold(soak):
    result, db = soak
    assert workload.check_store(db, result["project_id"], RATERS_PER_ITEM) == workload.SOUND
    # The cap was reached, so it was tested: most items are full.
    full = db.execute("SELECT COUNT(*) FROM items WHERE n_human = ?",
                      [RATERS_PER_ITEM]).fetchone()[0]
    assert full >= 0.5 * result["submissions"] / RATERS_PER_ITEM
