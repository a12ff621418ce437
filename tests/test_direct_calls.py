"""The submit's statement through libpq directly (PostgreSQL), and text no backend stores.

``PostgresDatabase.execute_direct`` sends parameters as text and returns the
server's text; whatever has no plain text form goes back to psycopg. A judgment's
text with a NUL or a lone surrogate is refused on both backends alike.
"""

import json

import psycopg
import pytest

from prefstore import store
from prefstore.errors import InvalidInput
from prefstore.store import judging
from prefstore.store.connection import _numbered, direct, prepared

pytestmark = pytest.mark.both_backends

ECHO = direct(prepared(
    "SELECT CAST(? AS BIGINT), CAST(? AS BOOLEAN), CAST(? AS DOUBLE PRECISION), "
    "CAST(? AS TEXT), CAST(? AS TEXT), '100%' || CAST(? AS TEXT)"))
FAILS = direct("SELECT 1 / CAST(? AS INTEGER)")


def postgres_only(db):
    if db.dialect != "postgres":
        pytest.skip("PostgreSQL-specific: libpq's direct calls")


def test_placeholders_are_numbered_and_literal_percents_kept():
    assert _numbered(ECHO) == (
        "SELECT CAST($1 AS BIGINT), CAST($2 AS BOOLEAN), CAST($3 AS DOUBLE PRECISION), "
        "CAST($4 AS TEXT), CAST($5 AS TEXT), '100%' || CAST($6 AS TEXT)")
    assert _numbered("SELECT '?', ?, '%s'") == "SELECT '?', $1, '%s'"


def test_values_go_and_come_back_as_the_servers_text(db):
    postgres_only(db)
    rows = db.execute_direct(ECHO, [-(2 ** 62), True, 0.1, "é ✓ 'quoted' \\ x", None, "!"])
    assert rows == [(str(-(2 ** 62)).encode(), b"t", b"0.1",
                     "é ✓ 'quoted' \\ x".encode(), None, b"100%!")]
    assert db.execute_direct(ECHO, [0, False, 1e300, "", "", ""]) == [
        (b"0", b"f", b"1e+300", b"", b"", b"100%")]
    # The same answer through psycopg's cursor.
    assert db.execute(ECHO, [0, False, 1e300, "", "", ""]).fetchall() == [
        (0, False, 1e300, "", "", "100%")]


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", float("nan"), float("inf"), [1], 2 ** 0.5j])
def test_a_value_without_plain_text_form_goes_back_to_psycopg(db, value):
    postgres_only(db)
    assert db.execute_direct(ECHO, [1, True, 1.0, value, None, ""]) is None
    assert db.execute_direct(ECHO, [1, True, value, "x", None, ""]) is None


def test_errors_are_psycopgs_and_leave_the_connection_usable(db):
    postgres_only(db)
    with pytest.raises(psycopg.errors.DivisionByZero):
        db.execute_direct(FAILS, [0])
    assert db.execute_direct(FAILS, [1]) == [(b"1",)]
    # Inside a transaction the error aborts it, as any statement's would.
    with pytest.raises(psycopg.errors.DivisionByZero), store.write(db):
        db.execute("INSERT INTO raters (name, name_key, kind, created_at) "
                   "VALUES ('x', 'x', 'human', '2026-01-01T00:00:00Z')")
        db.execute_direct(FAILS, [0])
    assert db.execute("SELECT COUNT(*) FROM raters WHERE name = 'x'").fetchone()[0] == 0


def test_a_statement_dropped_on_the_server_is_prepared_again(db):
    postgres_only(db)
    assert db.execute_direct(FAILS, [2]) == [(b"0",)]
    db.execute("DEALLOCATE ALL")  # as a pooler's reset would
    assert db.execute_direct(FAILS, [2]) == [(b"0",)]


def project_with_item(db) -> tuple[int, int, int]:
    project = store.create_project(db, "p", "pairwise", {"raters_per_item": 2, "gold_rate": 0.0})
    store.insert_items(db, project["id"], [{"external_id": "x", "prompt": "p", "responses": [
        {"text": "a", "system": "s1"}, {"text": "b", "system": "s2"}]}])
    item = db.execute("SELECT id FROM items").fetchone()[0]
    rater = store.create_rater(db, "ann", with_token=False)[0]["id"]
    return project["id"], item, rater


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rationale", "a\x00b", "judgment: rationale contains a NUL character"),
    ("edited", "\x00", "judgment: edited contains a NUL character"),
    ("reason_tags", ["ok", "b\x00"], "judgment: reason_tags contains a NUL character"),
    ("metadata", {"k\x00": 1}, "judgment: metadata contains a NUL character"),
    ("aspects", {"clarity": "\ud800"}, "judgment: aspects contains a lone surrogate \\ud800 at "
     "character 1, which is not valid Unicode text"),
    ("submission_id", "s\x00", "judgment: submission_id contains a NUL character"),
])
def test_unstorable_text_is_refused_alike_and_nothing_is_written(db, field, value, message):
    _, item, rater = project_with_item(db)
    kwargs = {"item_id": item, "rater_id": rater, "submission_id": "s1", "choice": 0,
              field: value}
    with pytest.raises(InvalidInput) as refused:
        store.submit_judgment(db, **kwargs)
    assert str(refused.value) == message
    assert store.count_judgments(db) == 0
    assert db.execute("SELECT n_human FROM items").fetchone()[0] == 0


def test_a_judges_unstorable_text_is_stored_cleaned(db):
    project, item, _ = project_with_item(db)
    judge = store.create_rater(db, "judge", kind="llm", with_token=False)[0]["id"]
    judging.save_judge_verdict(db, project_id=project, rater_id=judge, item_id=item, judgment={
        "outcome": "choice", "choice": 0, "ranking": None, "display_order": [0, 1],
        "rationale": "a\x00b\ud800", "metadata": {"raw\x00": ["x\x00"], "n": 1}})
    row = db.execute("SELECT rationale, metadata FROM judgments").fetchone()
    assert row[0] == "a\ufffdb?"
    assert json.loads(row[1]) == {"raw\ufffd": ["x\ufffd"], "n": 1}
