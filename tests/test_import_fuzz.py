"""Bad input to the importer: every bad file fails whole, names its line, changes nothing.

Hypothesis drives two properties. A file with one bad line among good ones
raises InvalidInput starting ``line N:`` for that line and leaves the database
byte-for-byte as it was. A valid file round-trips through import and export
(prefstore.export, "judgments" and "slates") and store.iter_items unchanged.
"""

import hashlib
import io
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefstore import export, importing, store
from prefstore.cli import main
from prefstore.errors import InvalidInput

# Locally every run explores new inputs; CI replays a fixed sequence so that a
# submission's result is reproducible (bugs found locally become regression tests).
DERANDOMIZE = bool(os.environ.get("CI"))
FUZZ = settings(max_examples=100, deadline=None, derandomize=DERANDOMIZE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND_TRIP = settings(max_examples=50, deadline=None, derandomize=DERANDOMIZE,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HUGE = 10_000_000


# --------------------------------------------------------------------------
# Helpers


def good_item(k, n=2):
    return {"id": f"g{k}", "prompt": f"prompt {k}",
            "responses": [{"text": f"answer {k}.{r}", "system": f"s{r}"} for r in range(n)]}


def seeded_db(path=":memory:"):
    """A store that already holds a project "p" with items a, b, c and one judgment."""
    db = store.connect(path)
    lines = [{"id": x, "prompt": f"q {x}", "responses": ["one", "two"]} for x in "abc"]
    lines[0]["judgments"] = [{"rater": "ann", "choice": 0, "strength": 2}]
    importing.import_items(db, jsonl(lines), "p")
    return db


def strict_loads(text):
    """json.loads refusing NaN and Infinity, which RFC 8259 does not have."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def jsonl(rows, ascii_only=False):
    return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows).encode()


def snapshot(db):
    """A hash of the full SQL dump plus the table counts."""
    dump = "\n".join(db.conn.iterdump())
    counts = {t: db.execute(f"SELECT COUNT(*) FROM [{t}]").fetchone()[0]  # noqa: S608
              for t in db.table_names()}
    return hashlib.sha256(dump.encode()).hexdigest(), counts


def assert_refused(db, data, lineno, *, judgments=False, project="p"):
    before = snapshot(db)
    with pytest.raises(InvalidInput) as info:
        # fmt pinned: an unnamed upload whose first byte is "[" is read as one JSON list.
        if judgments:
            importing.import_judgments(db, data, project, fmt="jsonl")
        else:
            importing.import_items(db, data, project, fmt="jsonl")
    assert str(info.value).startswith(f"line {lineno}: "), str(info.value)[:300]
    assert snapshot(db) == before
    return str(info.value)


def place(bad_line: bytes, good_before: int, blanks: int) -> tuple[bytes, int]:
    """Return a file with ``good_before`` good lines, ``blanks`` blank lines, the bad line and
    two good lines after it; and the bad line's number."""
    before = jsonl([good_item(k) for k in range(good_before)])
    after = jsonl([good_item(k) for k in range(100, 102)])
    return before + b"\n" * blanks + bad_line + b"\n" + after, good_before + blanks + 1


# --------------------------------------------------------------------------
# Strategies for bad item lines

wrong_type = st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                            st.integers(),
                                                                            max_size=2))
not_a_permutation = st.one_of(
    st.lists(st.integers(-2, 4), max_size=5).filter(lambda r: sorted(r) != [0, 1]),
    st.lists(st.sampled_from([0.0, 1.0, "0", "1", True, None]), min_size=2, max_size=2))
bad_choice = st.one_of(st.integers().filter(lambda c: c not in (0, 1)),
                       st.sampled_from([1.0, "0", "1", True, False, [0], {"c": 0}, "maybe"]))


@st.composite
def bad_item_lines(draw):
    """One bad item line (bytes) and a fragment its error must contain."""
    item = good_item(7)
    kind = draw(st.sampled_from([
        "truncated", "garbage", "wrong_type", "missing", "utf8", "nul", "raw_control",
        "duplicate", "choice", "ranking", "gold", "judgment_field", "not_object", "surrogate",
        "non_finite"]))
    if kind == "truncated":
        line = json.dumps(item).encode()
        return line[:draw(st.integers(1, len(line) - 1))], "invalid JSON"
    if kind == "garbage":
        text = draw(st.text(min_size=1, max_size=40).filter(
            lambda s: s.strip() and "\n" not in s))
        return text.encode(), ""
    if kind == "not_object":
        value = draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text()))
        return json.dumps(value).encode(), "each item must be a JSON object"
    if kind == "wrong_type":
        key = draw(st.sampled_from(["prompt", "responses", "metadata", "gold", "id",
                                    "judgments", "messages", "systems"]))
        value = draw(wrong_type)
        if key == "prompt" and isinstance(value, list) and not value:
            value = 5
        if key in ("metadata", "gold") and isinstance(value, dict):
            value = [value]
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = 1.5
        if key == "judgments" and isinstance(value, list):
            value = value or 5
            value = value if not isinstance(value, list) else [value]
        item[key] = value
        return json.dumps(item).encode(), ""
    if kind == "missing":
        del item[draw(st.sampled_from(["prompt", "responses"]))]
        return json.dumps(item).encode(), "is missing"
    if kind == "utf8":
        line = json.dumps(item).encode()
        at = draw(st.integers(0, len(line)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80",
                                     b"\xf4\x90\x80\x80", b"\xe2\x82"]))
        return line[:at] + junk + line[at:], "invalid UTF-8"
    if kind == "nul":
        field = draw(st.sampled_from(["prompt", "response", "system", "category", "rater",
                                      "rationale", "id"]))
        text = draw(st.text(max_size=5)) + "\x00" + draw(st.text(max_size=5))
        if field == "response":
            item["responses"][1]["text"] = text
        elif field == "system":
            item["responses"][0]["system"] = "s" + text
        elif field in ("rater", "rationale"):
            item["judgments"] = [{"rater": "ann", "choice": 0, field: "x" + text}]
        elif field == "id":
            item["id"] = "x" + text
        else:
            item[field] = "x" + text
        return json.dumps(item).encode(), "contains a NUL character"
    if kind == "surrogate":
        # JSON can spell a lone surrogate (\ud800), which no UTF-8 text can hold.
        char = draw(st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))
        field = draw(st.sampled_from(["prompt", "response", "system", "category", "rater",
                                      "rationale", "reason_tag", "id", "metadata_key",
                                      "metadata_value", "message"]))
        text = draw(st.text(max_size=3)) + char
        if field == "response":
            item["responses"][1]["text"] = text
        elif field == "system":
            item["responses"][0]["system"] = "s" + text
        elif field in ("rater", "rationale"):
            item["judgments"] = [{"rater": "ann", "choice": 0, field: "x" + text}]
        elif field == "reason_tag":
            item["judgments"] = [{"rater": "ann", "choice": 0, "reason_tags": [text]}]
        elif field == "metadata_key":
            item["metadata"] = {text: 1}
        elif field == "metadata_value":
            item["metadata"] = {"k": [1, {"deep": text}]}
        elif field == "message":
            del item["prompt"]
            item["messages"] = [{"role": "user", "content": text}]
        else:
            item[field] = "x" + text
        return json.dumps(item).encode(), "contains a lone surrogate"
    if kind == "non_finite":
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]))
        where = draw(st.sampled_from(["metadata", "aspects", "strength"]))
        if where == "metadata":
            line = json.dumps({**item, "metadata": {"m": "@"}})
        else:
            judgment = {"rater": "ann", "choice": 0, where: {"a": "@"} if where == "aspects"
                        else "@"}
            line = json.dumps({**item, "judgments": [judgment]})
        return line.replace('"@"', token).encode(), "JSON numbers must be finite"
    if kind == "raw_control":
        # A raw (unescaped) control character is not valid JSON; escaped, it is data.
        char = draw(st.sampled_from(["\x00", "\x01", "\x1b", "\t", "\r"]))
        line = json.dumps(item).replace("prompt 7", f"prompt{char}7")
        return line.encode(), "invalid JSON"
    if kind == "duplicate":  # the test picks the id it repeats
        item["id"] = "__DUP__"
        return json.dumps(item).encode(), '"id"'
    if kind == "choice":
        item["judgments"] = [{"rater": "ann", "choice": draw(bad_choice)}]
        return json.dumps(item).encode(), '"choice"'
    if kind == "ranking":
        item["judgments"] = [{"rater": "ann", "ranking": draw(not_a_permutation)}]
        return json.dumps(item).encode(), '"ranking"'
    if kind == "gold":
        item["gold"] = draw(st.one_of(st.builds(lambda c: {"choice": c}, bad_choice),
                                      st.builds(lambda r: {"ranking": r}, not_a_permutation)))
        return json.dumps(item).encode(), "gold"
    key, value = draw(st.sampled_from([
        ("strength", 5), ("strength", -1), ("strength", "2"), ("strength", 1.5),
        ("strength", True), ("kind", "robot"), ("time_ms", -1), ("time_ms", "5"),
        ("display_order", [0, 0]), ("display_order", [1]), ("aspects", {"x": "good"}),
        ("aspects", [1]), ("reason_tags", "tag"), ("reason_tags", [1]),
        ("created_at", "yesterday"), ("surprise", 1), ("rater", ""), ("rater", 5),
        ("metadata", [1]), ("rationale", 7), ("submission_id", ""), ("time_ms", 2**63),
        ("time_ms", 2**64 + 5), ("display_order", [False, True]), ("display_order", [0, "1"]),
        ("display_order", [0.0, 1])]))
    judgment = {"rater": "ann", "choice": 1, "strength": 1, key: value}
    return json.dumps({**item, "judgments": [judgment]}).encode(), "judgments[0]"


@FUZZ
@given(bad=bad_item_lines(), good_before=st.integers(0, 3), blanks=st.integers(0, 2),
       new_project=st.booleans())
def test_a_bad_item_line_is_named_and_changes_nothing(bad, good_before, blanks, new_project):
    line, fragment = bad
    db = seeded_db()
    if b"__DUP__" in line:  # repeat an earlier line's id, or one already stored in "p"
        if new_project or good_before:
            good_before = max(good_before, 1)
        target = b"g0" if good_before else b"a"
        line = line.replace(b"__DUP__", target)
    data, lineno = place(line, good_before, blanks)
    message = assert_refused(db, data, lineno, project="new" if new_project else "p")
    assert fragment in message
    assert store.find_project(db, "new") is None


@st.composite
def bad_judgment_lines(draw):
    judgment = {"item": "b", "rater": "bob", "choice": 1, "strength": 2}
    kind = draw(st.sampled_from(["choice", "ranking", "item", "field", "truncated", "utf8"]))
    if kind == "choice":
        judgment["choice"] = draw(bad_choice)
    elif kind == "ranking":
        del judgment["choice"]
        judgment["ranking"] = draw(not_a_permutation)
    elif kind == "item":
        judgment["item"] = draw(st.one_of(st.just("zzz"), st.none(), st.floats(), st.lists(
            st.integers(), max_size=1)))
    elif kind == "field":
        judgment.update([draw(st.sampled_from([
            ("rater", None), ("rater", "x\x00"), ("kind", "cat"), ("strength", 0),
            ("time_ms", 1.5), ("rationale", "r" * (importing.MAX_TEXT_CHARS + 1)),
            ("rater", "x\ud800"), ("metadata", {"\ud800": 1}), ("time_ms", 2**63),
            ("display_order", [True, False]), ("reason_tags", ["\x00"])]))])
    line = json.dumps(judgment).encode()
    if kind == "truncated":
        line = line[:draw(st.integers(1, len(line) - 1))]
    elif kind == "utf8":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + b"\xfe" + line[at:]
    return line


@FUZZ
@given(line=bad_judgment_lines(), good_before=st.integers(0, 3), blanks=st.integers(0, 1))
def test_a_bad_judgment_line_is_named_and_changes_nothing(line, good_before, blanks):
    db = seeded_db()
    good = jsonl([{"item": "abc"[k % 3], "rater": f"r{k}", "choice": k % 2}
                  for k in range(good_before)])
    data = good + b"\n" * blanks + line + b"\n" + jsonl([{"item": "c", "rater": "z", "choice": 0}])
    assert_refused(db, data, good_before + blanks + 1, judgments=True)


# --------------------------------------------------------------------------
# Pinned cases: the exact messages


@pytest.mark.parametrize(("line", "message"), [
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"]', "line 2: invalid JSON (Expecting ',' "
     "delimiter at column 51)"),
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"], "extra": 1}',
     "line 2: unknown field(s) 'extra'"),
    (b'{"id": "x", "prompt": 5, "responses": ["a", "b"]}',
     'line 2: "prompt" must be a string, got integer'),
    (b'{"id": "x", "responses": ["a", "b"]}', 'line 2: "prompt" (or "messages") is missing'),
    (b'{"id": "x", "prompt": "q", "responses": ["a"]}',
     'line 2: "responses" must have at least 2 entries, got 1'),
    (b'{"id": "x", "prompt": "q\\u0000", "responses": ["a", "b"]}',
     'line 2: "prompt" contains a NUL character'),
    (b'{"id": "x", "prompt": "q\xff", "responses": ["a", "b"]}',
     "line 2: invalid UTF-8 at byte 24 of the line"),
    (b'{"id": "g0", "prompt": "q", "responses": ["a", "b"]}',
     "line 2: \"id\" 'g0' repeats the id on line 1"),
    (b'{"id": "a", "prompt": "q", "responses": ["a", "b"]}',
     "line 2: \"id\" 'a' already exists in the project"),
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"], "judgments": [{"rater": "r", '
     b'"choice": 2}]}', 'line 2: judgments[0]: "choice" must be a response index 0..1, "tie" '
     "or \"both_bad\", got 2"),
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"], "judgments": [{"rater": "r", '
     b'"ranking": [0, 0]}]}',
     'line 2: judgments[0]: "ranking" must be a permutation of 0..1, got [0, 0]'),
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b", "c"]}',
     'line 2: "responses" must have exactly 2 entries in a pairwise project, got 3'),
    # Regressions: these escaped as ValueError / RecursionError (a traceback, exit 1).
    (b'{"id": ' + b"1" * 5000 + b', "prompt": "q", "responses": ["a", "b"]}',
     "line 2: invalid JSON (an integer has more than 4,300 digits)"),
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"], "metadata": {"m": '
     + b"[" * 100_000 + b"]" * 100_000 + b"}}", "line 2: invalid JSON (nested too deeply)"),
    # Regression: a rater's kind clash did not name the line.
    (b'{"id": "x", "prompt": "q", "responses": ["a", "b"], "judgments": [{"rater": "ann", '
     b'"kind": "llm", "choice": 0}]}',
     "line 2: judgments[0]: rater 'ann' is a human rater; an LLM judge needs another name"),
], ids=lambda v: None if isinstance(v, bytes) else v[:40])
def test_pinned_messages(line, message):
    db = seeded_db()
    data = jsonl([good_item(0)]) + line + b"\n" + jsonl([good_item(1)])
    full = assert_refused(db, data, 2)
    assert full == message


def test_judgment_file_rater_kind_clash_names_the_line():
    """Regression: the message was "rater 'h' appears with kinds ..." with no line."""
    db = seeded_db()
    data = jsonl([{"item": "a", "rater": "h", "choice": 1},
                  {"item": "b", "rater": "h", "kind": "llm", "choice": 1}])
    assert assert_refused(db, data, 2, judgments=True) == (
        "line 2: rater 'h' appears with kinds 'human' and 'llm'")


def test_jsonl_with_a_byte_order_mark_imports():
    """Regression: a BOM (as Windows editors write) made line 1 "invalid JSON"."""
    db = seeded_db()
    report = importing.import_items(db, b"\xef\xbb\xbf" + jsonl([good_item(0)]), "p")
    assert report["items"] == 1
    assert store.get_item(db, report_item_id(db, "g0"))["prompt"] == "prompt 0"


def report_item_id(db, ext):
    return db.execute("SELECT id FROM items WHERE external_id = ?", [ext]).fetchone()[0]


@pytest.mark.parametrize("where", ["prompt", "response", "system", "metadata", "rationale",
                                   "message"])
def test_ten_megabyte_strings_are_refused_clearly(where):
    db = seeded_db()
    big = "x" * HUGE
    item = good_item(5)
    name = {"prompt": '"prompt"', "response": "responses[1].text", "system":
            "responses[0].system", "metadata": '"metadata"', "rationale": '"rationale"',
            "message": "messages[0].content"}[where]
    if where == "prompt":
        item["prompt"] = big
    elif where == "response":
        item["responses"][1]["text"] = big
    elif where == "system":
        item["responses"][0]["system"] = big
    elif where == "metadata":
        item["metadata"] = {"note": big}
    elif where == "message":
        del item["prompt"]
        item["messages"] = [{"role": "user", "content": big}]
    else:
        item["judgments"] = [{"rater": "ann", "choice": 0, "rationale": big}]
        name = 'judgments[0]: "rationale"'
    data = jsonl([good_item(0), good_item(1), item, good_item(2)])
    length = HUGE + (len('{"note": ""}') if where == "metadata" else 0)
    message = assert_refused(db, data, 3)
    assert message == f"line 3: {name} is {length:,} characters long; the limit is 1,000,000"


def test_a_line_of_exactly_the_limit_is_accepted():
    db = seeded_db()
    item = good_item(5)
    item["prompt"] = "y" * importing.MAX_TEXT_CHARS
    importing.import_items(db, jsonl([item]), "p")
    assert len(store.get_item(db, report_item_id(db, "g5"))["prompt"]) == 1_000_000


# --------------------------------------------------------------------------
# The CLI: exit 2, one line naming the line, nothing written


@pytest.mark.parametrize(("command", "content", "message"), [
    ("import", jsonl([good_item(0)]) + b'{"id": "x", "prompt": "q"}\n',
     'line 2: "responses" is missing (or use response_a/response_b, chosen/rejected)'),
    ("import", jsonl([good_item(0)]) + b"\n" + b'{"id": "x", "prompt": "q", "responses": ["a"'
     b', "b"], "metadata": "' + b"z" * HUGE + b'"}\n',
     'line 3: "metadata" must be an object, got string'),
    ("import", b'{"id": "x", "prompt": "\xc3(", "responses": ["a", "b"]}\n',
     "line 1: invalid UTF-8 at byte 23 of the line"),
    ("import", b'{"id": ' + b"9" * 4400 + b"}\n",
     "line 1: invalid JSON (an integer has more than 4,300 digits)"),
    ("import-judgments", b'{"item": "a", "rater": "r", "choice": 0}\n'
     b'{"item": "b", "rater": "r", "ranking": [1, 1]}\n',
     'line 2: "ranking" must be a permutation of 0..1, got [1, 1]'),
    ("import-judgments", b'{"item": "nope", "rater": "r", "choice": 0}\n',
     "line 1: \"item\" 'nope' is not in the project"),
], ids=lambda v: v if v in ("import", "import-judgments") else None)
def test_cli_exits_2_and_writes_nothing(tmp_path, capsys, command, content, message):
    path = tmp_path / "cli.db"
    db = seeded_db(path)
    before = snapshot(db)
    file = tmp_path / "in.jsonl"
    file.write_bytes(content)
    assert main([command, str(file), "--project", "p", "--db", str(path)]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {message}\n")
    assert snapshot(db) == before


# --------------------------------------------------------------------------
# Valid input round-trips

# Control characters other than NUL are data and must survive; so must quotes,
# backslashes, SQL wildcards and any non-surrogate code point.
chars = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
tricky = st.text(alphabet="\x01\x07\t\r\n\x1b\x7f\u0085\u2028\ufeff'\"\\%_;-é漢🙂 ab",
                 max_size=12)
any_text = st.one_of(st.text(alphabet=chars, max_size=30), tricky)
visible = any_text.filter(lambda s: s.strip())
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
              st.floats(allow_nan=False, allow_infinity=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=8)
metadata = st.dictionaries(any_text.filter(lambda k: k != "category"), json_value, max_size=4)
RATERS = ["ann", "o'brien", "'; DROP TABLE judgments; --", "50%_off", "back\\slash", "gpt"]


@st.composite
def label(draw, n):
    if draw(st.integers(0, 5)) == 0:
        return {"choice": draw(st.sampled_from(["tie", "both_bad"])),
                "strength": draw(st.sampled_from([None, 0]))}
    if n > 2 and draw(st.booleans()):
        ranking = draw(st.permutations(list(range(n))))
        return {"ranking": ranking, "strength": draw(st.sampled_from([None, 1, 2, 3]))}
    return {"choice": draw(st.integers(0, n - 1)),
            "strength": draw(st.sampled_from([None, 1, 2, 3]))}


@st.composite
def judgment(draw, n, rater):
    j = {"rater": rater, "kind": "llm" if rater == "gpt" else "human", **draw(label(n))}
    for key, strategy in (
            ("rationale", visible), ("edited", any_text), ("metadata", metadata),
            ("aspects", st.dictionaries(visible, st.integers(1, 5), min_size=1, max_size=2)),
            ("reason_tags", st.lists(visible, min_size=1, max_size=2)),
            ("time_ms", st.integers(0, 10**9)),
            ("display_order", st.permutations(list(range(n)))),
            ("created_at", st.sampled_from(["2026-01-31T12:00:00.000Z",
                                            "2025-06-01T00:00:00.123Z"]))):
        if draw(st.booleans()):
            j[key] = draw(strategy)
    return {k: v for k, v in j.items() if v is not None}


@st.composite
def valid_items(draw):
    n = draw(st.sampled_from([2, 3]))
    ids = draw(st.lists(visible, min_size=1, max_size=4, unique=True))
    items = []
    for ext in ids:
        item = {"id": ext}
        if draw(st.booleans()):
            item["prompt"] = draw(visible)
        else:
            item["messages"] = draw(st.lists(st.fixed_dictionaries({
                "role": st.sampled_from(["system", "user", "assistant"]),
                "content": any_text}), min_size=1, max_size=3))
        item["responses"] = [{"text": draw(any_text), "system": draw(st.one_of(st.none(),
                                                                                visible))}
                             for _ in range(n)]
        for key, strategy in (("metadata", metadata), ("category", any_text)):
            if draw(st.booleans()):
                item[key] = draw(strategy)
        if draw(st.booleans()):
            gold = draw(label(n))
            gold.pop("strength")
            if "ranking" in gold:
                gold["choice"] = gold["ranking"][0]
            item["gold"] = gold
        raters = draw(st.lists(st.sampled_from(RATERS), unique=True, max_size=3))
        item["judgments"] = [draw(judgment(n, r)) for r in raters]
        items.append(item)
    return n, items


def expected_judgment(j, ext):
    out = {"item": ext, "rater": j["rater"], "kind": j["kind"],
           "outcome": "choice" if isinstance(j.get("choice", 0), int) else j["choice"],
           "choice": j.get("choice"), "ranking": j.get("ranking"),
           "strength": j.get("strength"), "rationale": j.get("rationale"),
           "edited": j.get("edited"), "metadata": j.get("metadata", {}),
           "aspects": j.get("aspects"), "reason_tags": j.get("reason_tags"),
           "time_ms": j.get("time_ms"), "display_order": j.get("display_order")}
    if out["outcome"] != "choice":
        out["choice"] = None
    elif out["ranking"]:
        out["choice"] = out["ranking"][0]
    return out


@ROUND_TRIP
@given(case=valid_items(), ascii_only=st.booleans(), separate=st.booleans())
def test_valid_files_round_trip(case, ascii_only, separate):
    n, items = case
    db = store.connect(":memory:")
    if separate:  # items first, then the same judgments through import_judgments
        bare = [{k: v for k, v in i.items() if k != "judgments"} for i in items]
        importing.import_items(db, jsonl(bare, ascii_only), "rt")
        rows = [{"item": i["id"], **j} for i in items for j in i["judgments"]]
        if rows:
            importing.import_judgments(db, jsonl(rows, ascii_only), "rt")
    else:
        importing.import_items(db, jsonl(items, ascii_only), "rt")
    project = store.get_project(db, "rt")
    assert project["kind"] == ("pairwise" if n == 2 else "slate")

    # Items, through the store's reader (item fields are not in the exports).
    stored = list(store.iter_items(db, project["id"]))
    assert [(s["external_id"], s["prompt"], s["messages"], s["metadata"], s["category"],
             s["gold"], [(r["text"], r["system"]) for r in s["responses"]]) for s in stored] == [
        (i["id"], i.get("prompt"), i.get("messages"), i.get("metadata", {}),
         i.get("category", i.get("metadata", {}).get("category")), i.get("gold"),
         [(r["text"], r["system"]) for r in i["responses"]]) for i in items]

    # Judgments, through the "judgments" export.
    out = io.StringIO()
    export.export(db, "rt", out, format="judgments", real_rater_names=True)
    got = [strict_loads(line) for line in out.getvalue().split("\n") if line]
    keys = list(expected_judgment({"rater": "", "kind": ""}, "").keys())
    want = [expected_judgment(j, i["id"]) for i in items for j in i["judgments"]]
    assert sorted(([g[k] for k in keys] for g in got), key=repr) == sorted(
        ([w[k] for k in keys] for w in want), key=repr)
    for g in got:
        store.parse_iso(g["created_at"])
    given_times = sorted(j["created_at"] for i in items for j in i["judgments"]
                         if "created_at" in j)
    assert [t for t in sorted(g["created_at"] for g in got) if t in given_times] == given_times

    # Prompts and response texts, through the "slates" export (choice judgments only).
    out = io.StringIO()
    export.export(db, "rt", out, format="slates", conversational=True, real_rater_names=True)
    by_id = {i["id"]: i for i in items}
    for row in map(strict_loads, filter(None, out.getvalue().split("\n"))):
        item = by_id[row["metadata"]["item"]]
        assert row["prompt"] == (item.get("messages")
                                 or [{"role": "user", "content": item.get("prompt")}])
        assert row["responses"] == [[{"role": "assistant", "content": r["text"]}]
                                    for r in item["responses"]]
        assert row["metadata"]["systems"] == [r["system"] for r in item["responses"]]

    # Importing the same judgments again adds nothing.
    before = snapshot(db)
    rows = [{"item": i["id"], **j} for i in items for j in i["judgments"]]
    if rows:
        report = importing.import_judgments(db, jsonl(rows), "rt")
        assert (report["judgments"], report["duplicates"]) == (0, len(rows))
        # only the audit log grows
        assert snapshot(db)[1] == {**before[1], "audit_log": before[1]["audit_log"] + 1}


def test_control_characters_round_trip_exactly():
    """Every C0 control except NUL, DEL and C1 controls are data; pinned, not just fuzzed."""
    text = "".join(chr(c) for c in [*range(1, 32), 127, *range(0x80, 0xA0)])
    db = store.connect(":memory:")
    item = {"id": "ctl" + text, "prompt": "p" + text, "responses": [text, "b" + text],
            "metadata": {text: text}, "category": text,
            "judgments": [{"rater": "r" + text, "choice": 1, "rationale": text, "edited": text}]}
    importing.import_items(db, jsonl([item]), "ctl")
    got = store.get_item(db, report_item_id(db, "ctl" + text))
    assert (got["prompt"], [r["text"] for r in got["responses"]], got["metadata"],
            got["category"]) == ("p" + text, [text, "b" + text], {text: text}, text)
    j = store.list_judgments(db)[0]
    # Rater names are identities, shown in every table: controls are stripped from them.
    assert (store.get_rater(db, j["rater_id"])["name"], j["rationale"], j["edited"]) == (
        "r", text, text)


def test_seeded_random_garbage_files_never_escape_as_other_errors():
    """Random byte soup: always InvalidInput (or a clean import), never another exception."""
    rng = random.Random(5)
    pieces = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"\n", b"\\", b"\x00", b"\xff",
              b'"prompt"', b'"responses"', b'"id"', b"1e999", b"-0", b"NaN", b"9" * 5000,
              b'"judgments"', b'"choice"', b"null", b"true", b" "]
    db = seeded_db()
    before = snapshot(db)
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        for judgments in (False, True):
            try:
                (importing.import_judgments if judgments else importing.import_items)(
                    db, data, "p")
            except InvalidInput:
                pass
    assert snapshot(db) == before


@FUZZ
@given(bad=st.lists(bad_item_lines().filter(lambda b: b"__DUP__" not in b[0]), min_size=2,
                    max_size=6), spacing=st.integers(0, 2))
def test_every_bad_line_of_a_file_is_listed(bad, spacing):
    """Regression: an import stopped at the first bad line; now it lists them all (up to 20)."""
    db = seeded_db()
    before = snapshot(db)
    data, lines, n = b"", [], 0
    for k, (line, _) in enumerate(bad):
        good = jsonl([good_item(100 + 10 * k + i) for i in range(spacing)])
        data += good + line + b"\n"
        n += spacing + 1
        lines.append(n)
    with pytest.raises(importing.ImportFailed) as info:
        importing.import_items(db, data, "p", fmt="jsonl")
    assert [e.split(":")[0] for e in info.value.errors] == [f"line {n}" for n in lines]
    assert snapshot(db) == before
