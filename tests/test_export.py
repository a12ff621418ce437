import hashlib
import json
import math
from collections import Counter

import pandas as pd
import pytest

from prefstore import export, fitting, importing, store
from prefstore.cli import main
from prefstore.errors import InvalidInput, NotFound
from tests import pandalm

pytestmark = pytest.mark.both_backends

CREATED = "2026-01-31T12:00:00.000Z"
SIGMOID_1 = 1 / (1 + math.exp(-1))


def _j(sub, rater, choice, kind="human", **extra):
    return {"rater": rater, "kind": kind, "choice": choice, "submission_id": sub,
            "created_at": CREATED, **extra}


PAIR_ITEMS = [
    {"id": "a", "prompt": "Say hi", "systems": ["sysA", "sysB"], "responses": ["Hi!", "Go away."],
     "judgments": [
         _j("s1", "alice", 0, strength=2, rationale="polite", reason_tags=["tone"],
            aspects={"helpfulness": 4}, display_order=[1, 0], time_ms=1200,
            metadata={"ui": "v1"}),
         _j("s2", "bob", 0, edited="Hi there!"),
         _j("s3", "carol", 1),
         _j("s4", "judge", 1, kind="llm"),
     ]},
    {"id": "b", "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "2+2?"}],
     "systems": ["sysA", "sysB"], "responses": ["4", "5"],
     "judgments": [_j("s5", "alice", "tie"), _j("s6", "bob", "both_bad", edited="Four."),
                   _j("s7", "carol", 0)]},
    {"id": "c", "prompt": "Name a color", "systems": ["sysA", "sysB"], "responses": ["Red", "Blue"],
     "judgments": [_j("s8", "alice", 0, edited="Red"), _j("s9", "bob", 1),
                   _j("s10", "carol", "tie")]},
    {"id": "d", "prompt": "Tell a joke", "systems": ["sysA", "sysB"],
     "responses": ["Knock knock", "No."],
     "judgments": [_j("s11", "alice", "tie"), _j("s12", "bob", "tie"), _j("s13", "carol", 0)]},
]

SLATE_ITEMS = [
    {"id": "s1", "prompt": "Rank", "systems": ["m1", "m2", "m3"], "responses": ["x", "y", "z"],
     "judgments": [_j("t1", "alice", None, ranking=[2, 0, 1]), _j("t2", "bob", 1),
                   _j("t3", "carol", "both_bad")]},
]


def _build(db, tmp_path, name, items, kind=None):
    path = pandalm.write_jsonl(tmp_path / f"{name}.jsonl", items)
    importing.import_items(db, path, name, kind=kind)
    return store.get_project(db, name)


@pytest.fixture
def project(db, tmp_path):
    return _build(db, tmp_path, "p", PAIR_ITEMS)


@pytest.fixture
def slate_project(db, tmp_path):
    return _build(db, tmp_path, "s", SLATE_ITEMS, kind="slate")


def _alias(project, name):
    # Computed here from the documented recipe, not through export.pseudonym.
    digest = hashlib.sha256((project["pseudonym_salt"] + name).encode()).hexdigest()
    return "rater-" + digest[:10]


def strict_loads(text):
    """json.loads as RFC 8259 has it: NaN, Infinity and -Infinity are errors."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _read(path):
    return [strict_loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(db, tmp_path, project, fmt="pairs", **options):
    out = tmp_path / f"{fmt}.jsonl"
    summary = export.export(db, project, out, format=fmt, **options)
    return out, summary


def _skips(**counts):
    return {**dict.fromkeys(export.SKIP_REASONS, 0), **counts}


def _load_dataset(path, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    return ds.to_list()


def _pair_meta(project, item, jid, rater, kind="human", strength=None, rationale=None,
               reason_tags=None, chosen="sysA", rejected="sysB"):
    return {"item": item, "judgment_id": jid, "rater": _alias(project, rater), "kind": kind,
            "strength": strength, "rationale": rationale, "reason_tags": reason_tags,
            "systems": {"chosen": chosen, "rejected": rejected}}


# --------------------------------------------------------------------------
# Formats


def test_pairs_exact_rows_and_round_trip(db, tmp_path, project):
    out, summary = _run(db, tmp_path, "p")
    p = project
    expected = [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.",
         "metadata": _pair_meta(p, "a", 1, "alice", strength=2, rationale="polite",
                                reason_tags=["tone"])},
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.",
         "metadata": _pair_meta(p, "a", 2, "bob")},
        {"prompt": "Say hi", "chosen": "Go away.", "rejected": "Hi!",
         "metadata": _pair_meta(p, "a", 3, "carol", chosen="sysB", rejected="sysA")},
        {"prompt": "Say hi", "chosen": "Go away.", "rejected": "Hi!",
         "metadata": {**_pair_meta(p, "a", 4, "judge", kind="llm", chosen="sysB",
                                   rejected="sysA"), "rater": _alias(p, "judge")}},
        {"prompt": "System: Be brief.\n\nUser: 2+2?", "chosen": "4", "rejected": "5",
         "metadata": _pair_meta(p, "b", 7, "carol")},
        {"prompt": "Name a color", "chosen": "Red", "rejected": "Blue",
         "metadata": _pair_meta(p, "c", 8, "alice")},
        {"prompt": "Name a color", "chosen": "Blue", "rejected": "Red",
         "metadata": _pair_meta(p, "c", 9, "bob", chosen="sysB", rejected="sysA")},
        {"prompt": "Tell a joke", "chosen": "Knock knock", "rejected": "No.",
         "metadata": _pair_meta(p, "d", 13, "carol")},
    ]
    assert _read(out) == expected
    assert summary == {"written": 8, "judgments": 13, "skipped": _skips(tie=4, both_bad=1)}
    frame = pd.read_json(out, lines=True)
    # TRL's DPOTrainer (standard format) wants string prompt/chosen/rejected columns.
    assert list(frame.columns) == ["prompt", "chosen", "rejected", "metadata"]
    for col in ("prompt", "chosen", "rejected"):
        assert all(isinstance(v, str) for v in frame[col])
    assert frame["chosen"].tolist() == [r["chosen"] for r in expected]
    assert _load_dataset(out, tmp_path) == expected


def test_pairs_conversational_schema(db, tmp_path, project):
    out, _ = _run(db, tmp_path, "p", kind="human", conversational=True)
    rows = _read(out)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Say hi"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "Hi!"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "Go away."}]
    assert rows[3]["prompt"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "2+2?"}]
    # TRL's conversational format: lists of {"role", "content"} with string values.
    for row in _load_dataset(out, tmp_path):
        for col in ("prompt", "chosen", "rejected"):
            assert isinstance(row[col], list) and row[col]
            assert all(set(m) == {"role", "content"} and isinstance(m["content"], str)
                       for m in row[col])
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    frame = pd.read_json(out, lines=True)
    assert frame["chosen"].tolist() == [r["chosen"] for r in rows]


def test_pairs_majority_rows(db, tmp_path, project):
    out, summary = _run(db, tmp_path, "p", kind="human", aggregate="majority")
    # a: 0,0,1 -> 0 with 2/3; b: tie/both_bad/0 and c: 0/1/tie have no majority; d: a tie.
    assert _read(out) == [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.",
         "metadata": {"item": "a", "kind": "human", "n_judgments": 3, "agreement": 2 / 3,
                      "systems": {"chosen": "sysA", "rejected": "sysB"}}},
    ]
    assert summary == {"written": 1, "judgments": 12,
                       "skipped": _skips(no_majority=2, tie=1)}
    _, summary = _run(db, tmp_path, "p", kind="human", aggregate="majority", min_agreement=0.7)
    assert summary["written"] == 0
    assert summary["skipped"] == _skips(no_majority=2, tie=1, below_min_agreement=1)


def test_pairs_model_margin(db, tmp_path, project):
    store.create_project(db, "empty", "pairwise", {})
    with pytest.raises(NotFound, match="'empty' has no human judgments to rank responses by"):
        export.iter_rows(db, "empty", format="pairs", aggregate="model", kind="human")
    rid = {(item["external_id"], r["idx"]): str(r["id"])
           for item in store.iter_items(db, project["id"]) for r in item["responses"]}
    scores = {rid["a", 0]: 1.0, rid["a", 1]: 0.0, rid["b", 0]: -0.5, rid["b", 1]: 0.5,
              rid["d", 0]: 0.25, rid["d", 1]: 0.25}
    fit_id = store.save_fit(db, project["id"], model="bt", level="response", kind="human",
                              params={}, result={"scores": scores}, n_judgments=12, seconds=0.1)
    out, summary = _run(db, tmp_path, "p", kind="human", aggregate="model")
    rows = _read(out)
    assert rows == [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.", "margin": SIGMOID_1,
         "metadata": {"item": "a", "kind": "human", "n_judgments": 3, "agreement": 2 / 3,
                      "margin": SIGMOID_1, "log_odds": 1.0, "fit_id": fit_id,
                      "systems": {"chosen": "sysA", "rejected": "sysB"}}},
        {"prompt": "System: Be brief.\n\nUser: 2+2?", "chosen": "5", "rejected": "4",
         "margin": SIGMOID_1,
         "metadata": {"item": "b", "kind": "human", "n_judgments": 3, "agreement": 0.0,
                      "margin": SIGMOID_1, "log_odds": 1.0, "fit_id": fit_id,
                      "systems": {"chosen": "sysB", "rejected": "sysA"}}},
    ]
    assert summary["skipped"] == _skips(not_in_fit=1, tie=1)
    assert pd.read_json(out, lines=True, precise_float=True)["margin"].tolist() == [
        SIGMOID_1, SIGMOID_1]
    _, summary = _run(db, tmp_path, "p", kind="human", aggregate="model", min_agreement=0.5)
    assert (summary["written"], summary["skipped"]["below_min_agreement"]) == (1, 1)


def test_model_export_refits_when_judgments_came_after_the_fit(db, tmp_path, project):
    # No fit yet: the export fits the responses itself and says so.
    _, summary = _run(db, tmp_path, "p", kind="human", aggregate="model")
    first = store.latest_fit(db, project["id"], model="bt", level="response", kind="human")
    assert (summary["refitted"], first["n_judgments"]) == (True, 12)
    assert first["params"]["alpha"] == fitting.RESPONSE_ALPHA
    # Up to date: used as it is.
    _, summary = _run(db, tmp_path, "p", kind="human", aggregate="model")
    assert summary["refitted"] is False
    assert store.latest_fit(db, project["id"], model="bt", level="response",
                            kind="human")["id"] == first["id"]
    # A stale fit (made from 1 judgment, as in the report) is never used.
    store.save_fit(db, project["id"], model="bt", level="response", kind="human", params={},
                   result={"scores": {}}, n_judgments=1, seconds=0.1)
    _, summary = _run(db, tmp_path, "p", kind="human", aggregate="model")
    latest = store.latest_fit(db, project["id"], model="bt", level="response", kind="human")
    assert (summary["refitted"], latest["n_judgments"]) == (True, 12)
    assert summary["skipped"]["not_in_fit"] == 0
    assert "refitted" in export.format_summary(summary)


def test_slate_pairs_best_and_all(db, tmp_path, slate_project):
    out, summary = _run(db, tmp_path, "s")
    got = [(r["chosen"], r["rejected"], r["metadata"]["rater"]) for r in _read(out)]
    alice, bob = _alias(slate_project, "alice"), _alias(slate_project, "bob")
    assert got == [("z", "x", alice), ("z", "y", alice), ("y", "x", bob), ("y", "z", bob)]
    assert summary["skipped"] == _skips(both_bad=1)
    out, _ = _run(db, tmp_path, "s", slate_pairs="all")
    got = [(r["chosen"], r["rejected"], r["metadata"]["rater"]) for r in _read(out)]
    # Bob picked only a best response, so "all" still gives best-over-others for him.
    assert got == [("z", "x", alice), ("z", "y", alice), ("x", "y", alice),
                   ("y", "x", bob), ("y", "z", bob)]
    assert _read(out)[2]["metadata"]["systems"] == {"chosen": "m1", "rejected": "m2"}


def test_slates_exact_rows(db, tmp_path, slate_project):
    out, summary = _run(db, tmp_path, "s", "slates")
    meta = {"item": "s1", "kind": "human", "strength": None, "rationale": None,
            "reason_tags": None, "systems": ["m1", "m2", "m3"]}
    expected = [
        {"prompt": "Rank", "responses": ["x", "y", "z"], "ranking": [2, 0, 1], "best": 2,
         "metadata": {**meta, "judgment_id": 1, "rater": _alias(slate_project, "alice")}},
        {"prompt": "Rank", "responses": ["x", "y", "z"], "ranking": None, "best": 1,
         "metadata": {**meta, "judgment_id": 2, "rater": _alias(slate_project, "bob")}},
    ]
    assert _read(out) == expected
    assert summary == {"written": 2, "judgments": 3, "skipped": _skips(both_bad=1)}
    assert list(pd.read_json(out, lines=True).columns) == [
        "prompt", "responses", "ranking", "best", "metadata"]
    assert _load_dataset(out, tmp_path) == expected


def test_kto_exact_rows(db, tmp_path, slate_project):
    out, summary = _run(db, tmp_path, "s", "kto")
    got = [(r["completion"], r["label"], r["metadata"]["judgment_id"], r["metadata"]["system"])
           for r in _read(out)]
    assert got == [("x", False, 1, "m1"), ("y", False, 1, "m2"), ("z", True, 1, "m3"),
                   ("x", False, 2, "m1"), ("y", True, 2, "m2"), ("z", False, 2, "m3"),
                   ("x", False, 3, "m1"), ("y", False, 3, "m2"), ("z", False, 3, "m3")]
    assert summary["written"] == 9 and summary["skipped"] == _skips()
    frame = pd.read_json(out, lines=True)
    assert list(frame.columns) == ["prompt", "completion", "label", "metadata"]
    assert frame["label"].dtype == bool
    rows = _load_dataset(out, tmp_path)
    assert [r["label"] for r in rows] == [g[1] for g in got]


def test_kto_pairwise_ties_skipped(db, tmp_path, project):
    _, summary = _run(db, tmp_path, "p", "kto", kind="human")
    # 12 human judgments: 4 ties give nothing, 1 both-bad gives 2 false rows.
    assert summary == {"written": 2 * 8, "judgments": 12, "skipped": _skips(tie=4)}
    out, summary = _run(db, tmp_path, "p", "kto", kind="human", aggregate="majority")
    assert [(r["completion"], r["label"]) for r in _read(out)] == [("Hi!", True),
                                                                  ("Go away.", False)]


def test_edits_exact_rows(db, tmp_path, project):
    out, summary = _run(db, tmp_path, "p", "edits")
    base = {"kind": "human", "strength": None, "rationale": None, "reason_tags": None}
    bob = _alias(project, "bob")
    edit_a = {"prompt": "Say hi", "chosen": "Hi there!", "rejected": "Hi!",
              "metadata": {"item": "a", "judgment_id": 2, "rater": bob, **base,
                           "source": "edit", "edit_distance": 6,
                           "systems": {"chosen": None, "rejected": "sysA"}}}
    # Both-bad: the edit's starting point is the closest response ("4" and "5" are 5 away).
    edit_b = {"prompt": "System: Be brief.\n\nUser: 2+2?", "chosen": "Four.", "rejected": "4",
              "metadata": {"item": "b", "judgment_id": 6, "rater": bob, **base,
                           "source": "edit", "edit_distance": 5,
                           "systems": {"chosen": None, "rejected": "sysA"}}}
    assert _read(out) == [edit_a, edit_b]
    assert summary == {"written": 2, "judgments": 13,
                       "skipped": _skips(no_edit=10, edit_unchanged=1)}
    assert _load_dataset(out, tmp_path) == [edit_a, edit_b]
    out, summary = _run(db, tmp_path, "p", "edits", include_original_pair=True)
    original = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.",
                "metadata": {"item": "a", "judgment_id": 2, "rater": bob, **base,
                             "source": "original", "edit_distance": None,
                             "systems": {"chosen": "sysA", "rejected": "sysB"}}}
    assert _read(out) == [edit_a, original, edit_b]
    assert list(pd.read_json(out, lines=True).columns) == ["prompt", "chosen", "rejected",
                                                           "metadata"]


def test_judgments_every_field(db, tmp_path, project):
    out, summary = _run(db, tmp_path, "p", "judgments", kind="human")
    rows = _read(out)
    assert summary["written"] == len(rows) == 12
    assert rows[0] == {
        "id": 1, "item_id": rows[0]["item_id"], "kind": "human", "display_order": [1, 0],
        "outcome": "choice", "choice": 0, "ranking": None, "strength": 2,
        "aspects": {"helpfulness": 4}, "rationale": "polite", "reason_tags": ["tone"],
        "edited": None, "metadata": {"ui": "v1"}, "time_ms": 1200, "submission_id": "s1",
        "created_at": CREATED, "supersedes": None, "item": "a",
        "rater": _alias(project, "alice"),
    }
    stored = store.list_judgments(db, project_id=project["id"])
    # Every judgments column but rater_id (it links raters across projects) is kept.
    assert set(rows[0]) == (set(stored[0]) - {"rater_id"}) | {"item", "rater"}
    assert [r["outcome"] for r in rows] == [s["outcome"] for s in stored if s["kind"] == "human"]
    frame = pd.read_json(out, lines=True)
    assert frame["submission_id"].tolist() == [r["submission_id"] for r in rows]
    assert [r["id"] for r in _load_dataset(out, tmp_path)] == [r["id"] for r in rows]
    out, _ = _run(db, tmp_path, "p", "judgments", real_rater_names=True)
    first = _read(out)[0]
    assert (first["rater"], first["rater_id"]) == ("alice", stored[0]["rater_id"])


# --------------------------------------------------------------------------
# Options


@pytest.mark.parametrize(("options", "message"), [
    ({"format": "edits", "aggregate": "model"}, 'aggregate "model" works with format "pairs"'),
    ({"format": "slates", "aggregate": "majority"}, 'aggregate "majority" works with format'),
    ({"format": "pairs", "min_agreement": 0.5}, "min_agreement needs aggregate"),
    ({"format": "pairs", "aggregate": "majority", "min_agreement": 2},
     r"min_agreement must be a number in \[0, 1\], got 2"),
    ({"format": "pairs", "aggregate": "majority", "slate_pairs": "all"}, "needs rankings"),
    ({"format": "judgments", "conversational": True}, "conversational does not apply"),
    ({"format": "pairs", "include_original_pair": True}, "include_original_pair works"),
    ({"format": "csv"}, "format must be one of pairs, edits, slates, judgments, kto, got 'csv'"),
    ({"format": "pairs", "kind": "robot"}, "kind must be one of all, human, llm"),
])
def test_bad_options_raise_before_writing(db, tmp_path, project, options, message):
    out = tmp_path / "bad.jsonl"
    with pytest.raises(InvalidInput, match=message):
        export.export(db, "p", out, **options)
    assert not out.exists()


def test_unknown_project(db, tmp_path):
    with pytest.raises(NotFound, match="project 'nope' does not exist"):
        export.export(db, "nope", tmp_path / "x.jsonl", format="pairs")


def test_prompt_rendering():
    assert export.prompt_text("Hi", None) == "Hi"
    assert export.prompt_text(None, [{"role": "user", "content": "Hi"}]) == "Hi"
    assert export.prompt_text(None, [{"role": "user", "content": "Hi"},
                                     {"role": "assistant", "content": "Yo"},
                                     {"role": "user", "content": "Bye"}]) == (
        "User: Hi\n\nAssistant: Yo\n\nUser: Bye")
    assert export.prompt_messages("Hi", None) == [{"role": "user", "content": "Hi"}]


# --------------------------------------------------------------------------
# Pseudonyms


def test_pseudonyms_stable_per_project_and_salt_never_written(db, tmp_path, project):
    # Submission ids are unique per rater across projects: give q's copies their own.
    copies = [{**item, "judgments": [{**j, "submission_id": "q-" + j["submission_id"]}
                                     for j in item["judgments"]]} for item in PAIR_ITEMS]
    other = _build(db, tmp_path, "q", copies)
    outputs = {}
    for name in ("p", "q"):
        for fmt in export.FORMATS:
            out = tmp_path / f"{name}-{fmt}.jsonl"
            export.export(db, name, out, format=fmt)
            outputs[name, fmt] = out.read_text(encoding="utf-8")
    again = tmp_path / "again.jsonl"
    export.export(db, "p", again, format="judgments")
    assert again.read_text(encoding="utf-8") == outputs["p", "judgments"]

    def raters(text):
        return [json.loads(line)["rater"] for line in text.splitlines()]

    p_raters, q_raters = raters(outputs["p", "judgments"]), raters(outputs["q", "judgments"])
    assert p_raters[:4] == [_alias(project, n) for n in ("alice", "bob", "carol", "judge")]
    assert q_raters[:4] == [_alias(other, n) for n in ("alice", "bob", "carol", "judge")]
    assert not set(p_raters) & set(q_raters)
    for text in outputs.values():
        for secret in (project["pseudonym_salt"], other["pseudonym_salt"]):
            assert secret not in text
        for name in ("alice", "bob", "carol", '"judge"'):
            assert name not in text
    real = tmp_path / "real.jsonl"
    export.export(db, "p", real, format="judgments", real_rater_names=True)
    assert raters(real.read_text())[:4] == ["alice", "bob", "carol", "judge"]


# --------------------------------------------------------------------------
# Streaming


def _count_judgment_queries(db):
    seen = []
    db.conn.set_trace_callback(lambda sql: seen.append(sql) if "FROM judgments" in sql else None)
    return seen


@pytest.mark.sqlite_only("counts statements with SQLite's trace callback")
def test_rows_stream_batch_by_batch(db, tmp_path):
    items = [{"id": f"i{k}", "prompt": f"p{k}", "responses": [f"a{k}", f"b{k}"],
              "judgments": [_j(f"s{k}-{n}", f"r{n}", n % 2) for n in range(3)]}
             for k in range(20)]
    _build(db, tmp_path, "big", items)
    summary = {}
    rows = export.iter_rows(db, "big", format="pairs", batch=10, summary=summary)
    queries = _count_judgment_queries(db)
    first = next(rows)
    # One batch of 10 judgments has been read, not the project's 60.
    assert len(queries) == 1 and summary["judgments"] == 1
    assert first["chosen"] == "a0"
    rest = list(rows)
    assert 1 + len(rest) == summary["written"] == 60
    assert len(queries) == 7  # 6 full batches, then the empty one that ends the scan
    db.conn.set_trace_callback(None)


@pytest.mark.sqlite_only("counts statements with SQLite's trace callback")
def test_majority_streams_item_batches(db, tmp_path, monkeypatch):
    items = [{"id": f"i{k}", "prompt": f"p{k}", "responses": [f"a{k}", f"b{k}"],
              "judgments": [_j(f"s{k}-{n}", f"r{n}", int(n == 2)) for n in range(3)]}
             for k in range(20)]
    _build(db, tmp_path, "big", items)
    # Item-ordered: a late judgment on item 0 must still join item 0's group.
    store.insert_judgments(db, [{"item_id": store.item_ids_by_external(
        db, store.get_project(db, "big")["id"])["i0"][0], "rater_id": store.get_or_create_rater(
        db, "late")["id"], "kind": "human", "outcome": "choice", "choice": 1,
        "submission_id": "late-1"}])
    monkeypatch.setattr(export, "ITEM_BATCH", 4)
    summary = {}
    rows = export.iter_rows(db, "big", format="pairs", aggregate="majority", summary=summary)
    queries = _count_judgment_queries(db)
    first = next(rows)
    # Item 0 is 2-2 after the late vote: no majority; the others are 2-1 for response 0.
    assert (first["chosen"], first["metadata"]["item"], first["metadata"]["agreement"]) == (
        "a1", "i1", 2 / 3)
    # Closing the 4th item's group peeks at the next batch: 2 queries of 5, 7 of 61 judgments.
    assert len(queries) == 2 and summary["judgments"] == 7
    rest = list(rows)
    db.conn.set_trace_callback(None)
    assert len(rest) == 18 and summary["skipped"]["no_majority"] == 1
    assert summary["judgments"] == 61
    assert len(queries) == 5  # 20 items in batches of 4


# --------------------------------------------------------------------------
# PandaLM


def test_pandalm_majority_one_row_per_non_tie_majority(pandalm_db_path, tmp_path):
    expected = {}
    for rec in pandalm.load_testset():
        label, count = Counter(rec[a] for a in pandalm.ANNOTATORS).most_common(1)[0]
        if 2 * count > len(pandalm.ANNOTATORS) and pandalm.LABELS[label] != "tie":
            winner = pandalm.LABELS[label]
            expected[str(rec["idx"])] = (pandalm._text(rec[f"response{winner + 1}"], True),
                                         count / 3)
    db = store.connect(pandalm_db_path)
    try:
        out = tmp_path / "pandalm.jsonl"
        summary = export.export(db, "pandalm", out, format="pairs", aggregate="majority",
                                kind="human")
    finally:
        db.close()
    rows = _read(out)
    assert len(rows) == summary["written"] == len(expected)
    got = {r["metadata"]["item"]: (r["chosen"], r["metadata"]["agreement"]) for r in rows}
    assert len(got) == len(rows)
    assert got == expected
    assert summary["judgments"] == 2997
    assert summary["skipped"]["tie"] + summary["skipped"]["no_majority"] == 999 - len(expected)


# --------------------------------------------------------------------------
# CLI


def test_cli_export(db_path, db, tmp_path, project, capsys):
    out = tmp_path / "cli.jsonl"
    code = main(["export", str(out), "--project", "p", "--format", "pairs", "--kind", "human",
                 "--aggregate", "majority", "--db", str(db_path)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.strip().splitlines()[-1] == (
        "wrote 1 rows from 12 judgments; skipped: tie 1, no_majority 2")
    assert len(_read(out)) == 1
    assert main(["export", "-", "--project", "p", "--format", "slates", "--conversational",
                 "--real-rater-names", "--db", str(db_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    assert json.loads(lines[0])["metadata"]["rater"] == "alice"


def test_model_export_reads_a_real_response_fit(db, tmp_path, project):
    from prefstore import fitting

    fit = fitting.fit_project(db, "p", model="bt", level="response", kind="human", alpha=0.01)
    out, summary = _run(db, tmp_path, "p", kind="human", aggregate="model")
    rows = _read(out)
    assert summary["written"] == len(rows) > 0
    rid = {(item["external_id"], r["text"]): str(r["id"])
           for item in store.iter_items(db, project["id"]) for r in item["responses"]}
    for row in rows:
        item = row["metadata"]["item"]
        chosen, rejected = fit["scores"][rid[item, row["chosen"]]], fit["scores"][
            rid[item, row["rejected"]]]
        assert row["metadata"]["fit_id"] == fit["fit_id"]
        assert row["margin"] == pytest.approx(1 / (1 + math.exp(rejected - chosen)))
        assert row["margin"] > 0.5


def test_cli_bad_combination_one_line(db_path, db, tmp_path, project, capsys):
    code = main(["export", str(tmp_path / "x.jsonl"), "--project", "p", "--format", "edits",
                 "--aggregate", "model", "--db", str(db_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        'error: aggregate "model" works with format "pairs" only, got format \'edits\'']
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("conversational", [False, True])
def test_file_lines_match_iter_jsonl(db, tmp_path, project, fmt, conversational):
    # export() writes through a faster encoder; it must match dumps() byte for byte.
    if fmt == "judgments" and conversational:
        return
    out, _ = _run(db, tmp_path, "p", fmt, conversational=conversational)
    text = "".join(export.iter_jsonl(db, "p", format=fmt, conversational=conversational))
    assert out.read_text(encoding="utf-8") == text
    assert text.count("\n") == len(_read(out))


@pytest.mark.parametrize("options", [
    {"kind": "human"}, {"kind": "llm"}, {"real_rater_names": True},
    {"conversational": True, "kind": "human", "real_rater_names": True}])
def test_fast_pairs_path_matches_general_path(db, tmp_path, project, options):
    # export() takes a tuple-based fast path for pairs on pairwise projects; the
    # general dict path (iter_jsonl) is the reference, summary included.
    out = tmp_path / "fast.jsonl"
    summary = export.export(db, "p", out, format="pairs", **options)
    reference: dict = {}
    text = "".join(export.dumps(row) + "\n" for row in export.iter_rows(
        db, "p", format="pairs", summary=reference, **options))
    assert out.read_text(encoding="utf-8") == text
    assert summary == reference


# --------------------------------------------------------------------------
# Strict JSON, Parquet and CSV


def test_strict_loads_refuses_nan():
    with pytest.raises(ValueError, match="not JSON: NaN"):
        strict_loads('{"x": NaN}')


@pytest.mark.parametrize(("fmt", "options"), [
    ("pairs", {}), ("pairs", {"conversational": True}), ("edits", {}), ("kto", {}),
    ("judgments", {"real_rater_names": True}), ("pairs", {"aggregate": "majority", "kind": "human"})])
def test_every_format_is_strict_json(db, tmp_path, project, fmt, options):
    out, summary = _run(db, tmp_path, "p", fmt, **options)
    assert len(_read(out)) == summary["written"] > 0


def test_non_finite_numbers_are_never_written(db, tmp_path, project):
    # A row holding NaN (from a future bug, say) fails the export instead of writing "NaN".
    with pytest.raises(ValueError, match="Out of range float"):
        export._line_encoder()({"margin": math.nan})
    with pytest.raises(ValueError):
        export.dumps({"margin": math.inf})


def test_margin_of_extreme_log_odds_does_not_overflow():
    assert export._sigmoid(-800.0) == 0.0
    assert export._sigmoid(800.0) == 1.0
    assert export._sigmoid(1.0) == pytest.approx(SIGMOID_1, rel=1e-15)


def _frame_rows(frame):
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


@pytest.mark.parametrize(("fmt", "options"), [
    ("pairs", {}), ("pairs", {"conversational": True}), ("slates", {"conversational": True}),
    ("kto", {}), ("edits", {}), ("judgments", {"real_rater_names": True}),
    ("pairs", {"aggregate": "majority", "kind": "human"})])
def test_parquet_round_trip(db, tmp_path, project, slate_project, fmt, options):
    name = "s" if fmt == "slates" else "p"
    jsonl, _ = _run(db, tmp_path, name, fmt, **options)
    want = _read(jsonl)
    out = tmp_path / "out.parquet"
    summary = export.export(db, name, out, format=fmt, output_format="parquet", batch=2,
                            **options)
    assert summary["written"] == len(want)
    got = _frame_rows(pd.read_parquet(out))

    def plain(value):  # Arrow lists come back as numpy arrays
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    objects = {"metadata", "aspects"}
    assert [{k: (json.loads(v) if k in objects and v is not None else plain(v))
             for k, v in row.items()} for row in got] == want


@pytest.mark.parametrize(("fmt", "options"), [
    ("pairs", {}), ("pairs", {"conversational": True}), ("kto", {}),
    ("judgments", {"real_rater_names": True})])
def test_csv_round_trip(db, tmp_path, project, fmt, options):
    jsonl, _ = _run(db, tmp_path, "p", fmt, **options)
    want = _read(jsonl)
    out = tmp_path / "out.csv"
    export.export(db, "p", out, format=fmt, output_format="csv", **options)
    got = _frame_rows(pd.read_csv(out, dtype=str, keep_default_na=False, na_values=[""]))

    def cell(value):  # what a CSV cell holds: nested values as JSON text
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return str(value)

    assert got == [{k: cell(v) for k, v in row.items()} for row in want]


def test_empty_exports_have_the_format_columns(db, tmp_path):
    importing.import_items(db, b'{"id": "a", "prompt": "q", "responses": ["x", "y"]}\n', "e")
    export.export(db, "e", tmp_path / "e.parquet", format="pairs", output_format="parquet")
    assert list(pd.read_parquet(tmp_path / "e.parquet").columns) == [
        "prompt", "chosen", "rejected", "metadata"]
    export.export(db, "e", tmp_path / "e.csv", format="kto", output_format="csv")
    assert (tmp_path / "e.csv").read_text() == "prompt,completion,label,metadata\n"


def test_cli_output_format_follows_the_suffix(db_path, db, tmp_path, project, capsys):
    for name in ("x.parquet", "x.csv", "x.jsonl", "x.txt"):
        assert main(["export", str(tmp_path / name), "--project", "p", "--format", "pairs",
                     "--db", str(db_path)]) == 0
    assert len(pd.read_parquet(tmp_path / "x.parquet")) == 8
    assert len(pd.read_csv(tmp_path / "x.csv")) == 8
    assert len(_read(tmp_path / "x.jsonl")) == len(_read(tmp_path / "x.txt")) == 8
    assert main(["export", str(tmp_path / "y.dat"), "--project", "p", "--format", "pairs",
                 "--output-format", "csv", "--db", str(db_path)]) == 0
    assert len(pd.read_csv(tmp_path / "y.dat")) == 8
