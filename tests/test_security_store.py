"""Store-level security: hostile names stay data, SQL is never built from strings,
tokens exist only as hashes, and every refused token reads the same."""

import ast
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from prefstore import access, importing, store
from prefstore.cli import main
from prefstore.errors import AccessDenied

PACKAGE = Path(__file__).resolve().parents[1] / "prefstore"
TABLES = {"projects", "items", "responses", "raters", "assignments", "judgments", "fits",
          "jobs", "routing", "workers", "audit_log"}
HOSTILE = ["'; DROP TABLE judgments; --", 'a"b', "back\\slash", "100%", "_", "%_%",
           "x' OR '1'='1", "Robert'); DELETE FROM raters; --", "[items]", "`tick`"]


def test_hostile_names_are_stored_verbatim(db):
    for k, name in enumerate(HOSTILE):
        project = store.create_project(db, name, "pairwise", {"gold_rate": 0.0})
        rater, _ = store.create_rater(db, "rater " + name)
        ids = store.insert_items(db, project["id"], [
            {"external_id": name, "prompt": name, "responses": [{"text": name, "system": name},
                                                                {"text": "b", "system": "s"}]}])
        claim = store.claim_next(db, project["id"], rater["id"])
        store.submit_judgment(db, item_id=claim["item_id"], rater_id=rater["id"],
                                submission_id=name, choice=k % 2, rationale=name,
                                assignment_id=claim["id"])
        assert store.get_project(db, name)["id"] == project["id"]
        assert store.get_rater(db, "rater " + name)["id"] == rater["id"]
        assert store.item_ids_by_external(db, project["id"]) == {name: (ids[0], 2)}
        item = store.get_item(db, ids[0])
        assert (item["external_id"], item["prompt"], item["responses"][0]["text"],
                item["responses"][0]["system"]) == (name, name, name, name)
        [j] = store.list_judgments(db, project_id=project["id"])
        assert (j["submission_id"], j["rationale"]) == (name, name)
    # Wildcards match only themselves: "%" and "_" find their own projects and nothing else.
    assert [p["name"] for p in store.list_projects(db)] == HOSTILE
    assert store.count_items_missing_judgment(db, store.get_project(db, "%_%")["id"],
                                                "rater %") == 1
    assert TABLES <= set(db.table_names())
    assert store.count_judgments(db) == len(HOSTILE)
    assert store.integrity_check(db) == "ok"


def test_hostile_names_through_the_importer(db):
    rows = b"".join(
        b'{"id": %s, "prompt": "q", "responses": ["a", "b"], "judgments": '
        b'[{"rater": %s, "choice": 1}]}\n' % (
            ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"').encode(),
            ('"r' + n.replace("\\", "\\\\").replace('"', '\\"') + '"').encode())
        for n in HOSTILE)
    importing.import_items(db, rows, HOSTILE[0], fmt="jsonl")
    project = store.get_project(db, HOSTILE[0])
    assert sorted(store.item_ids_by_external(db, project["id"])) == sorted(HOSTILE)
    assert sorted(r["name"] for r in store.list_raters(db)) == sorted("r" + n for n in HOSTILE)
    assert TABLES <= set(db.table_names())


# --------------------------------------------------------------------------
# No string-built SQL anywhere in prefstore/

# Upper-case keywords anywhere, or lower-case ones in a statement's shape (so that a
# message like "select another project" is not SQL).
SQL_UPPER = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP)\b")
SQL_ANY = re.compile(r"\b(select\s+\S.*?\bfrom|insert\s+(or\s+\w+\s+)?into|update\s+\w+\s+set|"
                     r"delete\s+from|(create|drop)\s+(table|index|trigger|view))\b",
                     re.IGNORECASE | re.DOTALL)


def _constant_text(node) -> str:
    """The literal text of a string node, with each interpolated value shown as X."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_constant_text(v) if isinstance(v, ast.Constant) else "X"
                       for v in node.values)
    if isinstance(node, ast.BinOp):
        return _constant_text(node.left) + "X" + _constant_text(node.right)
    return ""


def _is_plain_string(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def formatted_sql(source: str) -> list[tuple[int, str]]:
    """Return (line, kind) for every f-string, % format, .format() call or + concatenation
    of a non-constant whose literal text contains SQL."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and any(
                isinstance(v, ast.FormattedValue) for v in node.values):
            kind = "f-string"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and (
                _is_plain_string(node.left)):
            kind = "% format"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("format", "format_map")
              and _is_plain_string(node.func.value)):
            kind = ".format()"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and not (
                _is_plain_string(node.left) and _is_plain_string(node.right)):
            kind = "concatenation"
        else:
            continue
        if kind == "concatenation":
            text = _constant_text(node)
        else:
            text = _constant_text(node.func.value if kind == ".format()" else node)
        if SQL_UPPER.search(text) or SQL_ANY.search(text):
            found.append((node.lineno, kind))
    return sorted(set(found))


def test_the_scanner_finds_each_kind_of_formatted_sql():
    source = '''
q1 = f"SELECT * FROM t WHERE name = '{name}'"
q2 = "DELETE FROM t WHERE id = %s" % ident
q3 = "UPDATE t SET a = {}".format(value)
q4 = "INSERT INTO t VALUES (" + value + ")"
q5 = f"select x from {table}"
q6 = f"SELECT {columns} FROM t"
q7 = ("SELECT id "
      + where_clause)
ok1 = "SELECT * FROM t WHERE name = ?"
ok2 = f"project {name!r} does not exist; select another"
ok3 = "SELECT a " "FROM t"
ok4 = "line %d" % n
'''
    assert formatted_sql(source) == [(2, "f-string"), (3, "% format"), (4, ".format()"),
                                     (5, "concatenation"), (6, "f-string"), (7, "f-string"),
                                     (8, "concatenation")]


def test_no_string_formatted_sql_in_prefstore():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    found = {str(f.relative_to(PACKAGE)): hits for f in files
             if (hits := formatted_sql(f.read_text(encoding="utf-8")))}
    assert found == {}


# --------------------------------------------------------------------------
# Tokens


def _raw_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                    if p.exists())


def test_tokens_exist_only_as_hashes(tmp_path, capsys):
    path = tmp_path / "tokens.db"
    db = store.connect(path)
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    store.insert_items(db, project["id"], [
        {"external_id": f"i{k}", "prompt": "q", "responses": [{"text": "a"}, {"text": "b"}]}
        for k in range(3)])
    tokens = []
    for k in range(3):
        rater, token = store.create_rater(db, f"ann{k}", role="admin" if k == 2 else "rater")
        tokens.append(token)
        claim = store.claim_next(db, project["id"], rater["id"])
        store.submit_judgment(db, item_id=claim["item_id"], rater_id=rater["id"],
                                submission_id="s", choice=0, assignment_id=claim["id"])
    tokens.append(store.rotate_token(db, store.get_rater(db, "ann0")["id"]))
    assert main(["add-rater", "cli-admin", "--role", "admin", "--db", str(path)]) == 0
    link = capsys.readouterr().out.splitlines()[-1]
    tokens.append(parse_qs(urlsplit(link).query)["token"][0])
    assert Path(f"{path}-wal").stat().st_size > 0
    hashes = [store.hash_token(t) for t in tokens[1:]]

    def check(raw: bytes) -> None:
        for token in tokens:
            assert token.encode() not in raw
        for digest in hashes:  # the scan sees the data: the hashes are there
            assert digest.encode() in raw

    check(_raw_bytes(path))  # while open: the rows sit in the WAL
    db.close()
    check(_raw_bytes(path))  # after the last close checkpointed them into the file


def test_every_refusal_reads_the_same(db):
    rater, token = store.create_rater(db, "ann")
    gone, gone_token = store.create_rater(db, "bob")
    store.set_rater_active(db, gone["id"], False)
    old = token
    new = store.rotate_token(db, rater["id"])
    messages = set()
    for attempt in (None, "", "wrong", old, gone_token, "x" * 500, token.upper(), new + " "):
        with pytest.raises(AccessDenied) as info:
            store.rater_for_token(db, attempt)
        messages.add(str(info.value))
        with pytest.raises(AccessDenied) as info:
            access.resolve(db, attempt, admin_token="the-admin-token")
        messages.add(str(info.value))
    assert messages == {access.DENIED_MESSAGE}
    assert store.rater_for_token(db, new)["name"] == "ann"


def test_a_deactivated_token_is_refused_until_reactivated(db):
    rater, token = store.create_rater(db, "ann")
    assert store.rater_for_token(db, token)["id"] == rater["id"]
    store.set_rater_active(db, rater["id"], False)
    with pytest.raises(AccessDenied, match="not valid"):
        store.rater_for_token(db, token)
    with pytest.raises(AccessDenied):
        access.resolve(db, token, admin_token="the-admin-token")
    store.set_rater_active(db, rater["id"], True)
    assert access.resolve(db, token, admin_token="the-admin-token").rater["id"] == rater["id"]


def test_token_hash_column_holds_sha256_hex_only(db):
    for k in range(3):
        store.create_rater(db, f"r{k}")
    store.create_rater(db, "no-link", with_token=False)
    stored = [r[0] for r in db.execute("SELECT token_hash FROM raters ORDER BY id")]
    assert [bool(h and re.fullmatch(r"[0-9a-f]{64}", h)) for h in stored] == [
        True, True, True, False]
