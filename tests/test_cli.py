import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from prefstore.cli import main
from tests import pandalm


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "prefstore.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_import_and_stats_json(tmp_path, capsys, shared_data):
    db = str(tmp_path / "x.db")
    items = pandalm.write_jsonl(tmp_path / "i.jsonl", pandalm.item_rows())
    judge = pandalm.write_jsonl(tmp_path / "j.jsonl", pandalm.gpt_judgment_rows())
    assert main(["import", str(items), "--project", "pl", "--db", db]) == 0
    assert main(["import-judgments", str(judge), "--project", "pl", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: line ") and "got 'garbage'" in err
    assert (
        main(
            [
                "import-judgments",
                str(judge),
                "--project",
                "pl",
                "--db",
                db,
                "--skip-invalid-judgments",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "imported 974 judgments" in captured.out
    assert "skipped 25 invalid judgments:" in captured.err
    assert main(["stats", "--project", "pl", "--db", db, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["items"], stats["responses"], stats["judgments"], stats["raters"]) == (
        999,
        1998,
        {"human": 2997, "llm": 974},
        {"human": 3, "llm": 1},
    )


def test_bad_line_exits_2_with_one_line_and_unchanged_db(tmp_path):
    db = tmp_path / "x.db"
    rows = [{"id": str(i), "prompt": "p", "responses": ["a", "b"]} for i in range(6)]
    rows[3]["responses"] = ["a"]
    path = pandalm.write_jsonl(tmp_path / "bad.jsonl", rows)
    result = run("import", str(path), "--project", "p", "--db", str(db))
    assert result.returncode == 2
    assert result.stderr == 'error: line 4: "responses" must have at least 2 entries, got 1\n'
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 0


def test_db_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PREFSTORE_DB", str(tmp_path / "env.db"))
    assert main(["init", "--demo"]) == 0
    assert (tmp_path / "env.db").exists()
    assert main(["stats", "--project", "demo", "--json"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out[out.index("{") :])
    assert (stats["items"], stats["kind"]) == (24, "pairwise")


def test_unknown_project_exits_2(tmp_path, capsys):
    assert main(["stats", "--project", "nope", "--db", str(tmp_path / "x.db")]) == 2
    assert capsys.readouterr().err == "error: project 'nope' does not exist\n"


def test_backup_command(tmp_path):
    db = str(tmp_path / "x.db")
    assert run("init", "--demo", "--db", db).returncode == 0
    result = run("backup", str(tmp_path / "b.db"), "--db", db)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(tmp_path / "b.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 30


def link_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def test_add_rater_prints_links_that_name_their_projects(tmp_path, capsys, monkeypatch):
    """Regression: links were built from the admin page's own address and named no project."""
    from prefstore import store

    db_path = str(tmp_path / "x.db")
    db = store.connect(db_path)
    for name in ("p one", "q"):
        store.create_project(db, name)
    monkeypatch.delenv("PREFSTORE_BASE_URL", raising=False)
    assert main(["add-rater", "ann", "--project", "p one", "--project", "q",
                 "--db", db_path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    token = link_token(lines[-1])
    assert lines == ["created rater 'ann'; this link is shown once:",
                     f"http://localhost:8501/?token={token}&project=p%20one",
                     f"http://localhost:8501/?token={token}&project=q"]
    ann = store.get_rater(db, "ann")
    assert store.rater_project_ids(db, ann["id"]) == [1, 2]
    monkeypatch.setenv("PREFSTORE_BASE_URL", "https://prefs.example.org/team")
    assert main(["add-rater", "bob", "--project", "q", "--db", db_path]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "https://prefs.example.org/team/?token=")
    assert main(["add-rater", "cy", "--base-url", "http://10.0.0.5:8501", "--db", db_path]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("http://10.0.0.5:8501/?token=")
    # A project that does not exist: nothing is created.
    assert main(["add-rater", "dee", "--project", "nope", "--db", db_path]) == 2
    assert capsys.readouterr().err == "error: project 'nope' does not exist\n"
    assert [r["name"] for r in store.list_raters(db)] == ["ann", "bob", "cy"]


def test_assign_and_remove(tmp_path, capsys):
    from prefstore import store

    db_path = str(tmp_path / "x.db")
    db = store.connect(db_path)
    store.create_project(db, "p")
    store.create_rater(db, "ann")
    assert main(["assign", "ann", "--project", "p", "--db", db_path]) == 0
    assert main(["assign", "ann", "--project", "p", "--db", db_path]) == 0
    assert main(["assign", "ann", "--project", "p", "--remove", "--db", db_path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "'ann' can now rate 'p'", "'ann' could already rate 'p'", "'ann' can no longer rate 'p'"]
    assert store.rater_project_ids(db, 1) == []


def test_rotate_token_and_set_active(tmp_path, capsys):
    from prefstore import store
    from prefstore.errors import AccessDenied

    db_path = str(tmp_path / "x.db")
    assert main(["add-rater", "ann", "--db", db_path]) == 0
    old = link_token(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["rotate-token", "ann", "--db", db_path]) == 0
    new = link_token(capsys.readouterr().out.strip().splitlines()[-1])
    db = store.connect(db_path)
    assert new != old and store.rater_for_token(db, new)["name"] == "ann"
    with pytest.raises(AccessDenied):
        store.rater_for_token(db, old)
    assert main(["set-active", "ann", "off", "--db", db_path]) == 0
    with pytest.raises(AccessDenied):
        store.rater_for_token(db, new)
    assert main(["set-active", "ann", "on", "--db", db_path]) == 0
    assert store.rater_for_token(db, new)["name"] == "ann"
    assert main(["rotate-token", "nobody", "--db", db_path]) == 2
    assert capsys.readouterr().err == "error: rater 'nobody' does not exist\n"


# --------------------------------------------------------------------------
# A friendly command line


def subcommands():
    from prefstore.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


def test_every_option_of_every_command_has_help_and_every_command_an_example():
    parser, commands = subcommands()
    assert all(a.help for a in parser._actions)
    for name, sub in commands.items():
        assert sub.epilog.startswith(f"example:\n  prefstore {name}"), name
        for action in sub._actions:
            assert action.help and action.help.strip(), (name, action.dest)
            if action.choices and not isinstance(action.choices, dict):
                # The help names every choice.
                text = action.help.replace("%%", "%")
                assert all(str(c) in text for c in action.choices), (name, action.dest)


def test_model_choices_are_the_model_registry():
    from prefstore.cli import MODEL_NAMES
    from prefstore.models import MODELS

    assert set(MODEL_NAMES) == {m.name for m in MODELS}


def test_version(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    try:
        version = metadata.version("prefstore")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    assert capsys.readouterr().out == f"prefstore {version}\n"


@pytest.mark.parametrize(("value", "sign", "text"), [
    (None, False, "n/a"), (float("nan"), False, "n/a"), (float("inf"), True, "n/a"),
    (0.715567, False, "0.7156"), (0.1, True, "+0.1"), (-1234.567, False, "-1235"),
    (-123456.7, False, "-123,500"), (0.000012345, False, "1.234e-05"), (2997, False, "2,997"),
    (3, True, "+3"), (True, False, "true")])
def test_numbers_in_text_output(value, sign, text):
    from prefstore.cli import num

    assert num(value, sign=sign) == text


def test_plurals():
    from prefstore.cli import plural

    assert [plural(n, "item") for n in (0, 1, 2, 1998)] == [
        "0 items", "1 item", "2 items", "1,998 items"]
    assert plural(1, "reply", "replies") == "1 reply"


def small_project(tmp_path):
    db = str(tmp_path / "x.db")
    rows = [{"id": x, "prompt": f"q {x}", "responses": ["one", "two"],
             "judgments": [{"rater": "ann", "choice": 0}]} for x in "ab"]
    rows.append({"id": "c", "prompt": "q c", "responses": ["one", "two"]})
    path = pandalm.write_jsonl(tmp_path / "i.jsonl", rows)
    assert main(["import", str(path), "--project", "p", "--db", db]) == 0
    return db, path


def test_import_report_and_skip_existing(tmp_path, capsys):
    db, path = small_project(tmp_path)
    assert capsys.readouterr() == (
        "imported 3 items (6 responses) and 2 judgments into pairwise project 'p' (new)\n", "")
    # A grown file: two new items, a new judgment on an old item.
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["judgments"] = [{"rater": "bob", "choice": 1}]
    rows += [{"id": x, "prompt": f"q {x}", "responses": ["one", "two"]} for x in "de"]
    grown = pandalm.write_jsonl(tmp_path / "grown.jsonl", rows)
    assert main(["import", str(grown), "--project", "p", "--db", db]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: line {n}: \"id\" '{x}' already exists in the project"
        for n, x in ((1, "a"), (2, "b"), (3, "c"))]
    assert main(["import", str(grown), "--project", "p", "--db", db, "--skip-existing"]) == 0
    assert capsys.readouterr() == (
        "imported 2 items (4 responses) and 1 judgment into pairwise project 'p'; skipped "
        "3 items already in the project; 2 judgments already present\n", "")
    assert main(["import", str(grown), "--project", "p", "--db", db, "--skip-existing"]) == 0
    assert capsys.readouterr().out == (
        "imported 0 items (0 responses) and 0 judgments into pairwise project 'p'; skipped "
        "5 items already in the project; 3 judgments already present\n")


def test_errors_listed_up_to_20_then_how_many_more(tmp_path, capsys):
    rows = [{"id": f"q{i}", "prompt": "p", "responses": ["only one"]} for i in range(25)]
    path = pandalm.write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["import", str(path), "--project", "p", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f'error: line {n}: "responses" must have at least 2 entries, got 1'
                   for n in range(1, 21)] + ["error: … and 5 more; nothing was written"]


def test_projects_raters_and_stats_text(tmp_path, capsys):
    db, _ = small_project(tmp_path)
    assert main(["add-rater", "zed", "--role", "admin", "--db", db]) == 0
    capsys.readouterr()
    assert main(["projects", "--db", db]) == 0
    assert capsys.readouterr().out == "p  pairwise  3 items, 2 judgments (2 human, 0 llm)\n"
    assert main(["projects", "--db", db, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert {k: row[k] for k in ("name", "kind", "items", "judgments")} == {
        "name": "p", "kind": "pairwise", "items": 3, "judgments": {"human": 2, "llm": 0}}
    assert main(["raters", "--db", db, "--project", "p"]) == 0
    assert capsys.readouterr().out == ("ann  human  rater   active    2 judgments in 'p'\n"
                                       "zed  human  admin   active    0 judgments in 'p'\n")
    assert main(["raters", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [{k: r[k] for k in ("name", "kind", "role", "active")} for r in rows] == [
        {"name": "ann", "kind": "human", "role": "rater", "active": True},
        {"name": "zed", "kind": "human", "role": "admin", "active": True}]
    assert not any("token" in key for r in rows for key in r)
    assert main(["stats", "--project", "p", "--db", db]) == 0
    assert capsys.readouterr().out == ("p (pairwise): 3 items, 6 responses; judgments: 2 human, "
                                       "0 llm; raters: 1 human, 0 llm\n")


def test_settings_show_change_and_audit(tmp_path, capsys):
    from prefstore import store
    from prefstore.settings import ProjectSettings

    db, _ = small_project(tmp_path)
    capsys.readouterr()
    assert main(["settings", "--project", "p", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ProjectSettings().to_dict()
    assert main(["settings", "--project", "p", "--db", db, "--set", "raters_per_item=5",
                 "--set", 'reason_tags=["wrong", "unsafe"]', "--set", "guidelines=Be kind",
                 "--set", "human_budget=0.5"]) == 0
    assert capsys.readouterr().out == (
        "changed raters_per_item: 3 → 5\n"
        'changed reason_tags: [] → ["wrong", "unsafe"]\n'
        'changed guidelines: "" → "Be kind"\n'
        "changed human_budget: null → 0.5\n")
    handle = store.connect(db)
    settings = store.get_project(handle, "p")["settings"]
    assert (settings.raters_per_item, settings.reason_tags, settings.guidelines,
            settings.human_budget) == (5, ("wrong", "unsafe"), "Be kind", 0.5)
    [entry] = [e for e in store.audit_log(handle) if e["action"] == "update_settings"]
    assert entry["actor"] == "cli" and entry["details"]["raters_per_item"] == {"old": 3, "new": 5}
    assert main(["settings", "--project", "p", "--db", db, "--set", "raters_per_item=5"]) == 0
    assert capsys.readouterr().out == "no change: the settings already had these values\n"
    assert main(["settings", "--project", "p", "--db", db]) == 0
    assert "raters_per_item        5\n" in capsys.readouterr().out


def test_check_prints_ok(tmp_path, capsys):
    db, _ = small_project(tmp_path)
    capsys.readouterr()
    assert main(["check", "--db", db]) == 0
    assert capsys.readouterr() == ("ok\n", "")


def test_evaluate_routing_says_what_it_measures(tmp_path, capsys, monkeypatch):
    from prefstore import routing

    db, _ = small_project(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(routing, "evaluate_routing", lambda *a, **k: {
        "project": "p", "judge": "gpt", "budgets": [0.1, 50], "router_accuracy": [0.81234, 0.9],
        "random_accuracy": [0.7, float("nan")], "llm_only_accuracy": 0.7156, "n_items": 999,
        "folds": 5, "seed": 0, "features": []})
    assert main(["evaluate-routing", "--project", "p", "--judge", "gpt", "--budgets", "0.1,50",
                 "--db", db]) == 0
    assert capsys.readouterr().out == (
        "accuracy of the final labels against the human majority, on 999 items (5-fold "
        "cross-fitted router, seed 0):\n"
        "  llm only: 0.7156\n"
        "  human budget 0.1 of the items: router 0.8123, random 0.7\n"
        "  human budget 50 items: router 0.9, random n/a\n")
    assert main(["evaluate-routing", "--project", "p", "--judge", "gpt", "--db", db,
                 "--json"]) == 0
    # --json is strict JSON: NaN becomes null.
    assert json.loads(capsys.readouterr().out)["random_accuracy"] == [0.7, None]


def test_export_into_a_closed_pipe_ends_quietly(tmp_path):
    from prefstore import importing, store

    db_path = tmp_path / "big.db"
    db = store.connect(db_path)
    rows = [{"id": f"i{i}", "prompt": "q" * 200, "responses": ["a" * 500, "b" * 500],
             "judgments": [{"rater": "ann", "choice": i % 2}]} for i in range(400)]
    importing.import_items(db, "".join(json.dumps(r) + "\n" for r in rows).encode(), "p")
    db.close()
    export = subprocess.Popen(
        [sys.executable, "-m", "prefstore.cli", "export", "-", "--project", "p", "--format",
         "pairs", "--db", str(db_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1])
    try:
        head = subprocess.run(["head", "-n", "1"], stdin=export.stdout, capture_output=True,
                              timeout=120)
        export.stdout.close()
        err = export.stderr.read()
        assert export.wait(timeout=120) == 0
    finally:
        if export.poll() is None:  # no process outlives the test
            export.kill()
            export.wait()
    assert err == b""
    assert json.loads(head.stdout)["chosen"] in ("a" * 500, "b" * 500)
