"""SQLite and PostgreSQL side by side: copy-db both ways, and identical results from both.

The PandaLM test set is imported into each backend; stats, fits, agreement and
every export must then give the same JSON (timings aside), and a copy of the
store from one backend to the other and back must keep every judgment.
"""

from __future__ import annotations

import io
import json

import pytest

from prefstore import agreement, export, fitting, importing, store
from prefstore.cli import main
from prefstore.store.copy import CACHES, TABLES, copy_database, judgments_checksum
from tests import pandalm
from tests.conftest import drop_pg_database, new_pg_database

TIMINGS = {"seconds", "created_at", "fit_id", "took_s"}


@pytest.fixture
def pg_url(pg_server):
    url = new_pg_database(pg_server)
    yield url
    drop_pg_database(pg_server, url)


@pytest.fixture(scope="module")
def pandalm_files(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("pandalm-files")
    return (pandalm.write_jsonl(folder / "items.jsonl", pandalm.item_rows()),
            pandalm.write_jsonl(folder / "gpt.jsonl", pandalm.gpt_judgment_rows()))


def load_pandalm(db, files) -> None:
    items, judge = files
    importing.import_items(db, items, "pandalm")
    importing.import_judgments(db, judge, "pandalm", skip_invalid_judgments=True)


def without_timings(value):
    """Drop run-time fields and compare JSON values (jsonb may order keys differently)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def exports(db) -> dict[str, list]:
    fitting.fit_project(db, "pandalm", model="bt", level="response", kind="all", alpha=0.1)
    out = {}
    for fmt, aggregate in [("pairs", "none"), ("pairs", "majority"), ("judgments", "none"),
                           ("kto", "none"), ("edits", "none"), ("pairs", "model")]:
        buffer = io.StringIO()
        # Real names: pseudonyms are salted per project, randomly on each side.
        export.export(db, "pandalm", buffer, format=fmt, aggregate=aggregate,
                      real_rater_names=True)
        out[f"{fmt}/{aggregate}"] = [without_timings(json.loads(line))
                                      for line in buffer.getvalue().splitlines()]
    return out


def results(db) -> dict:
    project = store.get_project(db, "pandalm")
    fits = {f"{m}/{level}": without_timings(fitting.fit_project(
        db, "pandalm", model=m, level=level, kind="human", alpha=alpha))
        for m, level, alpha in [("bt", "system", None), ("davidson", "system", None),
                                ("bt", "response", 0.1)]}
    return {"stats": store.project_stats(db, project["id"]),
            "fits": fits,
            "agreement": without_timings(agreement.project_agreement(db, "pandalm", n_boot=50)),
            "exports": exports(db)}


def test_pandalm_gives_identical_results_on_both_backends(tmp_path, pg_url, pandalm_files):
    lite = store.connect(tmp_path / "lite.db")
    pg = store.connect(pg_url)
    load_pandalm(lite, pandalm_files)
    load_pandalm(pg, pandalm_files)
    expected = results(lite)
    assert expected["stats"]["judgments"] == {"human": 2997, "llm": 974}
    assert results(pg) == expected


def test_copy_db_sqlite_to_postgres_and_back(tmp_path, pg_url, pandalm_files, capsys):
    lite = store.connect(tmp_path / "a.db")
    load_pandalm(lite, pandalm_files)
    rater, token = store.create_rater(lite, "ann")
    fitting.fit_project(lite, "pandalm", model="bt")
    checksum = judgments_checksum(lite)

    assert main(["copy-db", str(tmp_path / "a.db"), pg_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("copied ") and "judgments 3,971" in out and "verified" in out
    pg = store.connect(pg_url)
    assert judgments_checksum(pg) == checksum
    assert store.rater_for_token(pg, token)["id"] == rater["id"]  # links keep working
    # New rows continue after the copied ids (the identity sequences were moved on).
    assert store.create_rater(pg, "bob")[0]["id"] == rater["id"] + 1
    # The running pair counts come along with their watermark: no refold needed.
    assert store.pair_count_totals(pg, 1) == store.pair_count_totals(lite, 1)
    assert (store.stored_pair_counts(pg, 1).to_dict("records")
            == store.stored_pair_counts(lite, 1).to_dict("records") != [])

    back = store.connect(tmp_path / "b.db")
    summary = copy_database(pg, back)
    assert summary["judgments_checksum"] == checksum
    assert summary["tables"] == {t: store.copy.count(pg, t) for t in TABLES}
    assert results(back)["exports"] == results(lite)["exports"]


def test_copy_db_refuses_a_target_with_data(tmp_path, pg_url, capsys):
    src = store.connect(tmp_path / "a.db")
    store.create_project(src, "p")
    dst = store.connect(pg_url)
    store.create_project(dst, "q")
    assert main(["copy-db", str(tmp_path / "a.db"), pg_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: copy target {pg_url} is not empty (projects has rows); copy into "
                   "a new database"]


def test_copy_covers_every_table(tmp_path):
    db = store.connect(tmp_path / "a.db")
    tables = {t for t in db.table_names() if not t.startswith("_sqlite")}
    assert tables == set(TABLES) | set(CACHES)


def test_a_held_migration_lock_gives_one_line_not_a_hung_start(pg_server, monkeypatch):
    """A replica that cannot get the migration lock fails with a clear error in bounded time."""
    import psycopg

    from prefstore.store import schema
    from prefstore.store.connection import UnusableDatabase

    url = new_pg_database(pg_server)
    monkeypatch.setattr(schema, "PG_MIGRATION_WAIT_S", 1)
    store.connection._migrated.discard(store.connection.canonical(url))
    try:
        with psycopg.connect(url) as holder:  # a session wedged inside a migration
            holder.execute("SELECT pg_advisory_xact_lock(%s)", [schema.PG_MIGRATION_LOCK])
            with pytest.raises(UnusableDatabase, match=r"waited more than 1 s for a lock to "
                               r"check or upgrade its schema"):
                store.connect(url)
        store.connect(url).close()  # and once the lock is free, it opens
    finally:
        drop_pg_database(pg_server, url)
