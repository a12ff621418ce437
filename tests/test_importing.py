import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefstore import importing, store
from prefstore.errors import InvalidInput
from tests import pandalm

pytestmark = pytest.mark.both_backends

RAW_TRUE_ITEMS = {"157", "158", "159", "161", "162", "164"}


def table_counts(path):
    db = store.connect(path)
    try:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in ("projects", "items", "responses", "raters", "judgments")
        }
    finally:
        db.close()


def test_pandalm_import_counts(pandalm_db_path):
    db = store.connect(pandalm_db_path)
    project = store.get_project(db, "pandalm")
    stats = store.project_stats(db, project["id"])
    assert project["kind"] == "pairwise"
    assert stats["items"] == 999
    assert stats["responses"] == 1998
    assert stats["judgments"] == {"human": 2997, "llm": 974}
    assert stats["raters"] == {"human": 3, "llm": 1}
    assert [r["name"] for r in store.list_raters(db)] == [
        "annotator1",
        "annotator2",
        "annotator3",
        "gpt-3.5-turbo",
    ]


def test_pandalm_garbage_labels_are_reported_as_skipped(tmp_path, db, shared_data):
    items = pandalm.write_jsonl(tmp_path / "items.jsonl", pandalm.item_rows())
    judge = pandalm.write_jsonl(tmp_path / "gpt.jsonl", pandalm.gpt_judgment_rows())
    importing.import_items(db, items, "p")
    report = importing.import_judgments(db, judge, "p", skip_invalid_judgments=True)
    assert report["judgments"] == 974
    assert len(report["skipped"]) == 25
    garbage_lines = [
        i + 1 for i, r in enumerate(pandalm.gpt_judgment_rows()) if r["choice"] == "garbage"
    ]
    assert [s["where"] for s in report["skipped"]] == [f"line {n}" for n in garbage_lines]
    assert "got 'garbage'" in report["skipped"][0]["reason"]


def test_pandalm_garbage_without_flag_fails_and_writes_nothing(tmp_path, db, db_path, shared_data):
    items = pandalm.write_jsonl(tmp_path / "items.jsonl", pandalm.item_rows())
    judge = pandalm.write_jsonl(tmp_path / "gpt.jsonl", pandalm.gpt_judgment_rows())
    importing.import_items(db, items, "p")
    before = table_counts(db_path)
    first = next(
        i + 1 for i, r in enumerate(pandalm.gpt_judgment_rows()) if r["choice"] == "garbage"
    )
    with pytest.raises(InvalidInput) as err:
        importing.import_judgments(db, judge, "p")
    assert str(err.value).startswith(f'line {first}: "choice" must be a response index 0..1')
    assert table_counts(db_path) == before


def test_pandalm_raw_true_values_fail_with_line_and_field(tmp_path, db, db_path, shared_data):
    rows = pandalm.item_rows(convert=False)
    bad = [(i + 1, k) for i, r in enumerate(rows) if r["id"] in RAW_TRUE_ITEMS
           for k, resp in enumerate(r["responses"]) if resp["text"] is True]
    assert len(bad) == 6
    path = pandalm.write_jsonl(tmp_path / "raw.jsonl", rows)
    with pytest.raises(importing.ImportFailed) as err:
        importing.import_items(db, path, "raw")
    # Every bad line is listed, not only the first.
    assert err.value.errors == [
        f"line {n}: responses[{k}].text must be a string, got boolean" for n, k in bad]
    assert str(err.value) == err.value.errors[0] + " (and 5 more error(s))"
    assert table_counts(db_path)["items"] == 0
    # --coerce-text takes them as text, and says where.
    report = importing.import_items(db, path, "raw", coerce_text=True)
    assert report["items"] == 999
    assert report["coerced"] == [f"line {n}" for n, _ in bad]
    item = store.get_item(db, store.item_ids_by_external(db, 1)["157"][0])
    assert "true" in [r["text"] for r in item["responses"]]


def test_coerce_text_through_the_cli(tmp_path, capsys, shared_data):
    from prefstore.cli import main

    rows = pandalm.item_rows(convert=False)
    lines = [i + 1 for i, r in enumerate(rows) if r["id"] in RAW_TRUE_ITEMS]
    path = pandalm.write_jsonl(tmp_path / "raw.jsonl", rows)
    db = str(tmp_path / "c.db")
    assert main(["import", str(path), "--project", "raw", "--db", db]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(":")[1] for e in err] == [f" line {n}" for n in lines]
    assert main(["import", str(path), "--project", "raw", "--db", db, "--coerce-text"]) == 0
    out, err = capsys.readouterr()
    assert err == ("coerced 6 non-text responses to text: lines "
                   + ", ".join(map(str, lines)) + "\n")
    assert out == ("imported 999 items (1,998 responses) and 2,997 judgments into pairwise "
                   "project 'raw' (new)\n")


def test_plain_string_true_response_names_the_field(tmp_path, db):
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps({"prompt": "p", "responses": ["a", "b"]})
        + "\n"
        + json.dumps({"prompt": "p", "responses": [True, "b"]})
        + "\n"
    )
    with pytest.raises(
        InvalidInput,
        match=r"^line 2: responses\[0\] must be a string, "
        r"got boolean$",
    ):
        importing.import_items(db, path, "p")


def test_bad_line_in_the_middle_leaves_database_unchanged(tmp_path, db, db_path):
    good = [{"id": f"q{i}", "prompt": "p", "responses": ["a", "b"]} for i in range(10)]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "a.jsonl", good[:2]), "p")
    before = table_counts(db_path)
    rows = good[2:] + [{"id": "bad", "prompt": "p", "responses": ["only one"]}] + good[:0]
    path = pandalm.write_jsonl(tmp_path / "b.jsonl", rows[:4] + [rows[-1]] + rows[4:-1])
    with pytest.raises(InvalidInput) as err:
        importing.import_items(db, path, "p")
    assert str(err.value) == 'line 5: "responses" must have at least 2 entries, got 1'
    assert table_counts(db_path) == before


def test_new_project_kind_is_inferred(tmp_path, db):
    pair = pandalm.write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "responses": ["a", "b"]}])
    slate = pandalm.write_jsonl(
        tmp_path / "s.jsonl",
        [{"prompt": "p", "responses": ["a", "b"]}, {"prompt": "q", "responses": ["a", "b", "c"]}],
    )
    assert importing.import_items(db, pair, "pp")["kind"] == "pairwise"
    assert importing.import_items(db, slate, "ss")["kind"] == "slate"
    with pytest.raises(InvalidInput, match="exactly 2 entries"):
        importing.import_items(db, slate, "pp")


def test_aliases_messages_and_generated_ids(tmp_path, db):
    rows = [
        {"prompt": "p1", "response_a": "A", "response_b": "B"},
        {"id": "dpo", "prompt": "p2", "chosen": "good", "rejected": "bad"},
        {
            "messages": [{"role": "user", "content": "hi"}],
            "responses": [{"text": "x", "system": "m1"}, {"text": "y", "system": "m2"}],
            "metadata": {"category": "chat"},
            "gold": {"choice": 1},
        },
    ]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "a.jsonl", rows), "p")
    items = list(store.iter_items(db, 1))
    assert [i["external_id"] for i in items] == ["1", "dpo", "2"]
    assert [[r["text"] for r in i["responses"]] for i in items] == [
        ["A", "B"],
        ["good", "bad"],
        ["x", "y"],
    ]
    assert items[2]["messages"] == [{"role": "user", "content": "hi"}]
    assert items[2]["prompt"] is None
    assert items[2]["category"] == "chat"
    assert items[2]["gold"] == {"choice": 1}
    assert items[2]["is_gold"] == 1
    assert [r["system"] for r in items[2]["responses"]] == ["m1", "m2"]


def test_csv_import(tmp_path, db):
    path = tmp_path / "items.csv"
    path.write_text(
        "id,prompt,response_1,response_2,category\n"
        'a,"Say, hi",hello,hey,chat\n'
        'b,Count,1 2 3,"1, 2, 3",math\n'
    )
    report = importing.import_items(db, path, "csv")
    assert report["items"] == 2
    item = store.get_item(db, 2)
    assert (item["prompt"], [r["text"] for r in item["responses"]], item["category"]) == (
        "Count",
        ["1 2 3", "1, 2, 3"],
        "math",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("id,prompt,response_1\nc,p,only\n")
    with pytest.raises(InvalidInput, match=r'^line 2: "responses" must have at least 2 entries'):
        importing.import_items(db, bad, "csv")


def test_judgments_with_items_keep_every_field(tmp_path, db):
    rows = [
        {
            "id": "q1",
            "prompt": "p",
            "responses": ["a", "b", "c"],
            "judgments": [
                {
                    "rater": "ann",
                    "kind": "human",
                    "ranking": [2, 0, 1],
                    "rationale": "why",
                    "aspects": {"helpfulness": 4},
                    "edited": "c2",
                    "reason_tags": ["clearer"],
                    "metadata": {"confidence": 0.8, "swap_consistent": False},
                },
                {"rater": "gpt", "kind": "llm", "choice": "both_bad", "strength": 0},
            ],
        }
    ]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "a.jsonl", rows), "s")
    got = [
        {
            k: j[k]
            for k in (
                "rater_id",
                "kind",
                "outcome",
                "choice",
                "ranking",
                "strength",
                "rationale",
                "aspects",
                "edited",
                "reason_tags",
                "metadata",
            )
        }
        for j in store.list_judgments(db, project_id=1)
    ]
    assert got == [
        {
            "rater_id": 1,
            "kind": "human",
            "outcome": "choice",
            "choice": 2,
            "ranking": [2, 0, 1],
            "strength": None,
            "rationale": "why",
            "aspects": {"helpfulness": 4},
            "edited": "c2",
            "reason_tags": ["clearer"],
            "metadata": {"confidence": 0.8, "swap_consistent": False},
        },
        {
            "rater_id": 2,
            "kind": "llm",
            "outcome": "both_bad",
            "choice": None,
            "ranking": None,
            "strength": 0,
            "rationale": None,
            "aspects": None,
            "edited": None,
            "reason_tags": None,
            "metadata": {},
        },
    ]
    assert store.get_item(db, 1)["n_human"] == 1


def test_reimporting_judgments_adds_nothing(tmp_path, db):
    importing.import_items(
        db,
        pandalm.write_jsonl(
            tmp_path / "i.jsonl", [{"id": "q1", "prompt": "p", "responses": ["a", "b"]}]
        ),
        "p",
    )
    path = pandalm.write_jsonl(
        tmp_path / "j.jsonl", [{"item": "q1", "rater": "gpt-4", "kind": "llm", "choice": 1}]
    )
    assert importing.import_judgments(db, path, "p")["judgments"] == 1
    again = importing.import_judgments(db, path, "p")
    assert (again["judgments"], again["duplicates"]) == (0, 1)
    assert store.count_judgments(db) == 1


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p", "responses": ["a", "b"]', "line 1: invalid JSON"),
        (
            '{"prompt": "p", "responses": ["a", "b"], "gold": {"choice": 2}}',
            'line 1: gold: "choice" must be a response index 0..1',
        ),
        ('{"prompt": "", "responses": ["a", "b"]}', 'line 1: "prompt" must not be empty'),
        ('{"prompt": "p", "responses": "ab"}', 'line 1: "responses" must be a list, got string'),
        (
            '{"prompt": "p", "responses": ["a", "b"], "extra": 1}',
            "line 1: unknown field(s) 'extra'",
        ),
        (
            '{"prompt": "p", "responses": ["a", "b"], "judgments": [{"rater": "x", "ranking": [0, 0]}]}',
            'line 1: judgments[0]: "ranking" must be a permutation of 0..1',
        ),
        (
            '{"prompt": "p", "responses": ["a", "b"], "judgments": [{"rater": "x", "choice": 0, '
            '"strength": 4}]}',
            'line 1: judgments[0]: "strength" must be an integer 0..3, got 4',
        ),
        ("[1, 2]", "line 1: each item must be a JSON object, got list"),
        # Found by the fuzzer: a falsy non-list was taken for "no judgments".
        (
            '{"prompt": "p", "responses": ["a", "b"], "judgments": 0}',
            'line 1: "judgments" must be a list, got integer',
        ),
        ('{"prompt": "p\\u0000", "responses": ["a", "b"]}', 'line 1: "prompt" contains a NUL'),
    ],
)
def test_error_messages_name_line_and_field(tmp_path, db, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InvalidInput) as err:
        importing.import_items(db, path, "p")
    assert str(err.value).startswith(message)


def test_invalid_utf8_and_duplicate_ids(tmp_path, db):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "p", "responses": ["a", "b"]}\n{"prompt": "\xff"}\n')
    with pytest.raises(InvalidInput, match="^line 2: invalid UTF-8 at byte 12 of the line$"):
        importing.import_items(db, path, "p")
    dup = pandalm.write_jsonl(
        tmp_path / "dup.jsonl",
        [
            {"id": "x", "prompt": "p", "responses": ["a", "b"]},
            {"id": "x", "prompt": "q", "responses": ["a", "b"]},
        ],
    )
    with pytest.raises(InvalidInput, match="^line 2: \"id\" 'x' repeats the id on line 1"):
        importing.import_items(db, dup, "p")


def test_huge_string_is_refused(tmp_path, db):
    path = pandalm.write_jsonl(
        tmp_path / "big.jsonl",
        [{"prompt": "x" * (importing.MAX_TEXT_CHARS + 1), "responses": ["a", "b"]}],
    )
    with pytest.raises(InvalidInput, match='^line 1: "prompt" is 1,000,001 characters long'):
        importing.import_items(db, path, "p")


# --------------------------------------------------------------------------
# One rater, one judgment per item; submission ids are never silently dropped


def judgments_file(tmp_path, *rows, name="j.jsonl"):
    return pandalm.write_jsonl(tmp_path / name, list(rows))


def three_items(tmp_path, db):
    rows = [{"id": x, "prompt": f"q {x}", "responses": ["a", "b"]} for x in ("q1", "q2", "q3")]
    importing.import_items(db, pandalm.write_jsonl(tmp_path / "i.jsonl", rows), "p")


def test_identical_reimport_is_a_no_op_and_a_changed_one_is_refused(tmp_path, db, db_path):
    three_items(tmp_path, db)
    first = {"item": "q1", "rater": "ann", "choice": 0, "submission_id": "web-7"}
    path = judgments_file(tmp_path, first, {"item": "q2", "rater": "ann", "choice": 1})
    assert importing.import_judgments(db, path, "p")["judgments"] == 2
    again = importing.import_judgments(db, path, "p")
    assert (again["judgments"], again["duplicates"]) == (0, 2)
    before = table_counts(db_path)
    changed = judgments_file(tmp_path, {**first, "choice": 1}, {"item": "q2", "rater": "ann",
                                                                 "choice": 0}, name="c.jsonl")
    with pytest.raises(importing.ImportFailed) as err:
        importing.import_judgments(db, changed, "p")
    assert err.value.errors == [
        "line 1: \"submission_id\" 'web-7' of rater 'ann' is already stored for a different "
        "judgment (judgment 1 on item 'q1'); give a new submission_id",
        "line 2: rater 'ann' already has a judgment on item 'q2' in the project (judgment 2); "
        "a rater judges an item once"]
    moved = judgments_file(tmp_path, {**first, "item": "q3"}, name="m.jsonl")
    with pytest.raises(InvalidInput, match="^line 1: \"submission_id\" 'web-7' of rater 'ann' "
                       r"is already stored for a different judgment \(judgment 1 on item "
                       "'q1'\\)"):
        importing.import_judgments(db, moved, "p")
    assert table_counts(db_path) == before


def test_two_judgments_of_one_rater_on_one_item_name_both_lines(tmp_path, db, db_path):
    three_items(tmp_path, db)
    before = table_counts(db_path)
    path = judgments_file(tmp_path, {"item": "q1", "rater": "ann", "choice": 0},
                          {"item": "q2", "rater": "ann", "choice": 0},
                          {"item": "q1", "rater": "ann", "choice": 0},
                          {"item": "q3", "rater": "bob", "choice": 0, "submission_id": "s"},
                          {"item": "q2", "rater": "bob", "choice": 0, "submission_id": "s"})
    with pytest.raises(importing.ImportFailed) as err:
        importing.import_judgments(db, path, "p")
    assert err.value.errors == [
        "line 3: rater 'ann' has a second judgment on item 'q1' (the first is on line 1); a "
        "rater judges an item once",
        "line 5: \"submission_id\" 's' of rater 'bob' is already used on line 4"]
    assert table_counts(db_path) == before


def test_concurrent_imports_into_one_new_project_all_succeed(tmp_path):
    """Four processes import into the same new project at once; each creates or joins it."""
    db_path = tmp_path / "c.db"
    store.connect(db_path).close()
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from prefstore import importing, store\n"
        "db = store.connect(sys.argv[1])\n"
        "go = pathlib.Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "report = importing.import_items(db, sys.argv[2], 'new')\n"
        "print(report['items'], report['created_project'])\n")
    procs = []
    for k in range(4):
        # Explicit ids of its own, plus two items without ids (numbered inside the lock).
        rows = [{"id": f"p{k}-{i}", "prompt": "q", "responses": ["a", "b"],
                 "judgments": [{"rater": f"r{k}", "choice": i % 2}]} for i in range(20)]
        rows += [{"prompt": "no id", "responses": ["a", "b"]} for _ in range(2)]
        path = pandalm.write_jsonl(tmp_path / f"f{k}.jsonl", rows)
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(db_path), str(path),
                                       str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=Path(__file__).resolve().parents[1]))
    try:
        time.sleep(0.5)
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:  # no process outlives the test
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in results]
    assert sorted(out for out, _ in results) == ["22 False\n"] * 3 + ["22 True\n"]
    db = store.connect(db_path)
    project = store.get_project(db, "new")
    ids = store.existing_external_ids(db, project["id"])
    assert len(ids) == 88
    assert {i for i in ids if "-" not in i} == {str(n) for n in range(1, 9)}
    assert store.project_stats(db, project["id"])["judgments"]["human"] == 80


SYSTEMS_BASE = {"id": "g7", "prompt": "p",
                "responses": [{"text": "a", "system": "s0"}, {"text": "b"}]}


@pytest.mark.parametrize(("systems", "expected"), [
    # Found by the fuzz test: "systems" beside responses that name their own system was
    # not read at all, so [0, 0] passed.
    ([0, 0], "line 1: systems[0] must be a string, got integer"),
    (["s0", ""], "line 1: systems[1] must not be empty"),
    (["x", "s1"], "line 1: responses[0].system 's0' and systems[0] 'x' disagree"),
    (["s0", "s1"], ["s0", "s1"]),  # the same name twice, and the list fills a missing one
    ([None, "s1"], ["s0", "s1"]),
])
def test_systems_beside_response_objects_are_checked(systems, expected):
    data = {**SYSTEMS_BASE, "systems": systems}
    if isinstance(expected, str):
        with pytest.raises(InvalidInput) as err:
            importing.validate_item(data, "line 1")
        assert str(err.value) == expected
    else:
        item = importing.validate_item(data, "line 1")
        assert [r["system"] for r in item["responses"]] == expected
