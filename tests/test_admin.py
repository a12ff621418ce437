"""prefstore.admin: rater links, upload checks and prepared exports."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from prefstore import admin, store
from prefstore.errors import InvalidInput, NotFound


def seed(db, name="p", n_items=2):
    project = store.create_project(db, name, "pairwise", {"gold_rate": 0.0})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"r{i}.{k}", "system": f"s{k}"} for k in range(2)]}
        for i in range(n_items)])
    return project


@pytest.mark.parametrize(("context_url", "env", "base_path", "expected"), [
    ("https://prefs.example.org/", {}, "", "https://prefs.example.org/"),
    # Regression: a link made on the Admin page pointed at /admin/ ("Page not found").
    ("https://prefs.example.org/admin/", {}, "", "https://prefs.example.org/"),
    ("http://host:8501/dashboard?token=admin-secret#x", {}, "", "http://host:8501/"),
    ("https://h/prefs/admin", {}, "prefs", "https://h/prefs/"),
    ("https://h/admin", {"PREFSTORE_BASE_URL": "https://team.example.org/prefs"}, "",
     "https://team.example.org/prefs/"),
    ("", {"PREFSTORE_BASE_URL": "  "}, "", "http://localhost:8501/"),
    ("not a url", {}, "", "http://localhost:8501/"),
])
def test_base_url_is_the_apps_root(context_url, env, base_path, expected):
    assert admin.base_url(context_url, env, base_path) == expected


def test_rater_link_quotes_the_token_and_names_the_project():
    assert admin.rater_link("http://h/", "a-b_c") == "http://h/?token=a-b_c"
    assert admin.rater_link("http://h/", "a+b/c", "p & q") == (
        "http://h/?token=a%2Bb%2Fc&project=p%20%26%20q")


def test_check_upload_size():
    admin.check_upload_size(50 * 1024 * 1024, 50)
    with pytest.raises(InvalidInput) as exc:
        admin.check_upload_size(50 * 1024 * 1024 + 1, 50)
    assert str(exc.value) == ("the file is 50.0 MB; uploads are limited to 50 MB "
                              "(server.maxUploadSize): split it, or import it with "
                              "`prefstore import`")


def test_check_upload_lists_errors_with_line_numbers_and_writes_nothing(db):
    project = seed(db)
    data = b"\n".join([
        b'{"id": "q0", "prompt": "dup", "responses": ["x", "y"]}',
        b'{"id": "n1", "prompt": "ok", "responses": ["x", "y"]}',
        b'{"id": "n2", "prompt": "three", "responses": ["x", "y", "z"]}',
        b'{"id": "n3", "prompt": "ok", "responses": ["x", "y"], "extra": 1}',
    ])
    before = store.count_judgments(db), list(db.query("SELECT id FROM items"))
    check = admin.check_upload(db, project, data, "items.jsonl")
    assert check.errors == [
        "line 1: \"id\" 'q0' already exists in the project",
        'line 3: "responses" must have exactly 2 entries in a pairwise project, got 3',
        "line 4: unknown field(s) 'extra'"]
    assert not check.ok and check.items == 0
    assert [r["where"] for r in check.preview] == ["line 1", "line 2", "line 3", "line 4"]
    assert check.preview[2]["responses"] == '["x", "y", "z"]'
    assert (store.count_judgments(db), list(db.query("SELECT id FROM items"))) == before


def test_check_upload_of_a_valid_csv_and_an_unreadable_file(db):
    project = seed(db)
    check = admin.check_upload(db, project, b"id,prompt,response_1,response_2\nz,hi,a,b\n",
                               "items.csv")
    assert (check.ok, check.items, check.judgments) == (True, 1, 0)
    assert check.preview == [{"where": "line 2", "id": "z", "prompt": "hi",
                              "responses": '["a", "b"]'}]
    bad = admin.check_upload(db, project, b'{"prompt": "a", "responses": ["x", "y"]}\n{oops',
                             "items.jsonl")
    assert bad.errors == ["line 2: invalid JSON (Expecting property name enclosed in double "
                          "quotes at column 2)"]
    assert len(bad.preview) == 1


def test_preview_truncates_long_text():
    data = json.dumps({"prompt": "x" * 200, "responses": ["a", "b"]}).encode()
    [row] = admin.preview_records(data, "f.jsonl")
    assert row["prompt"] == "x" * (admin.PREVIEW_CHARS - 1) + "…"


def test_coverage_frame_orders_counts_numerically():
    frame = admin.coverage_frame({"items_by_human_judgments": {"10": 1, "2": 5, "0": 7}})
    assert frame.to_dict("records") == [{"human judgments": "0", "items": 7},
                                        {"human judgments": "2", "items": 5},
                                        {"human judgments": "10", "items": 1}]


def test_audit_rows():
    entries = [{"created_at": "t", "actor": "admin", "project_id": 1, "action": "x",
                "details": {"b": 1, "a": "é"}},
               {"created_at": "u", "actor": "cli", "project_id": None, "action": "y",
                "details": {}}]
    assert admin.audit_rows(entries, {1: "p"}) == [
        {"when": "t", "who": "admin", "project": "p", "action": "x", "what": '{"a": "é", "b": 1}'},
        {"when": "u", "who": "cli", "project": "", "action": "y", "what": "{}"}]


def test_routing_counts(db):
    project = seed(db)
    assert store.routing_counts(db, project["id"]) == {"human": 0, "llm": 0, "both": 0}
    items = [i["id"] for i in store.iter_items(db, project["id"])]
    store.save_routing(db, project["id"], [{"item_id": items[0], "decision": "llm"},
                                             {"item_id": items[1], "decision": "llm"}])
    assert store.routing_counts(db, project["id"]) == {"human": 0, "llm": 2, "both": 0}


def test_prepare_export_writes_the_file_and_the_summary(db, tmp_path):
    project = seed(db, name="my project/1")
    rater, _ = store.create_rater(db, "ann")
    items = [i["id"] for i in store.iter_items(db, project["id"])]
    store.submit_judgment(db, item_id=items[0], rater_id=rater["id"], submission_id="1",
                            choice=0)
    store.submit_judgment(db, item_id=items[1], rater_id=rater["id"], submission_id="2",
                            outcome="both_bad")
    out = tmp_path / "exports"
    ready = admin.prepare_export(db, project["id"], directory=out, format="pairs",
                                 real_rater_names=True)
    assert ready["file_name"] == "my_project_1-pairs.jsonl"
    assert ready["text"] == "wrote 1 rows from 2 judgments; skipped: both_bad 1"
    assert admin.skipped_rows(ready["summary"]) == [{"reason": "both_bad", "skipped": 1}]
    rows = [json.loads(line) for line in open(ready["path"], encoding="utf-8")]
    assert [(r["chosen"], r["rejected"], r["metadata"]["rater"]) for r in rows] == [
        ("r0.0", "r0.1", "ann")]
    admin.discard_export(ready["path"])
    assert list(out.iterdir()) == []


def test_prepare_export_leaves_nothing_on_error(db, tmp_path):
    project = seed(db)
    with pytest.raises(NotFound, match="has no judgments to rank responses by"):
        admin.prepare_export(db, project["id"], directory=tmp_path / "exports",
                             format="pairs", aggregate="model")
    assert list((tmp_path / "exports").iterdir()) == []


def test_sweep_exports(tmp_path):
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    old.write_text("{}\n")
    new.write_text("{}\n")
    past = time.time() - admin.EXPORT_MAX_AGE_S - 60
    os.utime(old, (past, past))
    assert admin.sweep_exports(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["new.jsonl"]


def test_target_progress_counts_each_item_up_to_its_quota():
    stats = {"items": 4, "items_by_human_judgments": {"0": 1, "1": 1, "3": 1, "5": 1}}
    # 0 + 1 + 3 + 3 (5 judgments, quota 3) of 4 x 3
    assert admin.target_progress(stats, 3) == (7, 12)
    assert admin.target_progress({"items": 0, "items_by_human_judgments": {}}, 3) == (0, 0)


def test_heartbeat_age_reads_as_seconds_then_minutes():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert admin.heartbeat_age("2026-01-01T11:59:48.000Z", now) == "12 s ago"
    assert admin.heartbeat_age("2026-01-01T11:55:00.000Z", now) == "5 min ago"
    assert admin.heartbeat_age("2026-01-01T12:00:05.000Z", now) == "0 s ago"  # clock skew


def test_parse_ranking():
    assert admin.parse_ranking("2, 0, 1") == [2, 0, 1]
    assert admin.parse_ranking(" 1 0,2 ") == [1, 0, 2]
    with pytest.raises(InvalidInput) as caught:
        admin.parse_ranking("2, -1")
    assert str(caught.value) == "the ranking must list response numbers, got '-1'"
    with pytest.raises(InvalidInput) as caught:
        admin.parse_ranking("٣")  # a digit, but not one we read
    assert str(caught.value) == "the ranking must list response numbers, got '٣'"
    with pytest.raises(InvalidInput) as caught:
        admin.parse_ranking("  ")
    assert str(caught.value) == ("type the ranking as response numbers, best first, "
                                 "e.g. 2, 0, 1")


def test_label_text_and_judgment_rows():
    assert [admin.label_text(*args) for args in (
        ("choice", 1, None), ("tie", None, None), ("both_bad", None, None),
        ("choice", 2, [2, 0, 1]))] == ["response 1", "tie", "both bad", "2 > 0 > 1"]
    long = "x" * 600
    assert admin.judgment_rows([{
        "rater": "ann", "outcome": "choice", "choice": 0, "ranking": None, "strength": 3,
        "aspects": {"helpful": 4, "safe": 5}, "rationale": long, "edited": None,
        "time_ms": 1500, "created_at": "t"}]) == [{
            "rater": "ann", "choice": "response 0", "strength": 3,
            "aspects": "helpful: 4, safe: 5", "rationale": "x" * 499 + "…", "edit": None,
            "seconds": 1.5, "at": "t"}]
