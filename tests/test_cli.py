import json
import sqlite3
import subprocess
import sys

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


def test_rotate_token_and_set_active(tmp_path, capsys):
    from prefstore import store
    from prefstore.errors import AccessDenied

    db_path = str(tmp_path / "x.db")
    assert main(["add-rater", "ann", "--db", db_path]) == 0
    old = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["rotate-token", "ann", "--db", db_path]) == 0
    new = capsys.readouterr().out.strip().splitlines()[-1]
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
