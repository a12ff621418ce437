"""The columnar copy of the judgments (store/columns.py) against a from-scratch read.

After every change (new judgments, undos, exclusions, a merge of chunks, a row that
commits late on PostgreSQL) the copy must give what ``judgments_frame`` reads from
scratch, and the reports built on it must equal the reports built on that read.
"""

import numpy as np
import pandas as pd
import pytest

from prefstore import agreement, leaderboard, store
from prefstore.models import pairwise_from_frames
from prefstore.store import columns as cols
from tests.test_agreement_report_oracle import assert_same

pytestmark = pytest.mark.both_backends

COMPARED = ("id", "item_id", "rater", "kind", "outcome", "choice", "strength", "first_shown",
            "time_ms", "ranking", "aspects")


def make_project(db, n_items=12):
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    items = [{"external_id": f"q{i}", "prompt": f"prompt {i}",
              "responses": [{"text": f"r{i}.{k}" * (k + 1), "system": f"s{k}"}
                            for k in range(2)]} for i in range(n_items)]
    store.insert_items(db, project["id"], items)
    ids = [row[0] for row in db.execute(
        "SELECT id FROM items WHERE project_id = ? ORDER BY id", [project["id"]])]
    raters = [store.create_rater(db, f"ann{k}")[0] for k in range(3)]
    judge = store.get_or_create_rater(db, "judge-x", "llm")
    return project, ids, raters, judge


def judge_items(db, items, raters, judge, rng, tag):
    """Label every item by every rater, with strengths, orders, aspects and swap flags."""
    made = []
    for item in items:
        for rater in raters:
            u = rng.random()
            label = ({"choice": int(rng.integers(2)), "strength": int(rng.integers(1, 4))}
                     if u < 0.7 else {"outcome": "tie"} if u < 0.9 else {"outcome": "both_bad"})
            jid, _ = store.submit_judgment(
                db, item_id=item, rater_id=rater["id"], submission_id=f"{tag}-{item}-{rater['id']}",
                display_order=[int(k) for k in rng.permutation(2)],
                aspects={"clarity": int(rng.integers(1, 6))} if rng.random() < 0.5 else None,
                time_ms=int(rng.integers(500, 9000)), **label)
            made.append(jid)
        store.submit_judgment(
            db, item_id=item, rater_id=judge["id"], kind="llm", submission_id=f"{tag}-{item}-j",
            choice=int(rng.integers(2)), display_order=[0, 1],
            metadata={"swap_consistent": bool(rng.random() < 0.7), "raw": "A"})
    return made


def assert_matches_a_fresh_read(db, project_id):
    frame = store.report_frame(db, project_id)
    fresh = store.judgments_frame(db, project_id, columns="report")
    assert len(frame) == len(fresh)
    for name in COMPARED:
        got, want = frame[name].tolist(), fresh[name].tolist()
        assert [None if v is pd.NA else v for v in got] == [
            None if v is pd.NA else v for v in want], name
    assert frame["created_at"].tolist() == pd.to_datetime(
        fresh["created_at"], utc=True, format="ISO8601").tolist()
    assert [m.get("swap_consistent") for m in frame["metadata"]] == [
        m.get("swap_consistent") for m in fresh["metadata"]]
    # The chunks kept so far hold what one read of every row gives.
    kept = cols.judgment_columns(db, project_id)
    db.execute("DELETE FROM judgment_columns WHERE project_id = ?", [project_id])
    scratch = cols.judgment_columns(db, project_id)
    assert sorted(kept) == sorted(scratch)
    for name in kept:
        assert np.array_equal(kept[name], scratch[name]), name
    # And the reports built on the copy are the reports built on the whole frame, with the
    # lean items frame the worker reads.
    responses = store.responses_frame(db, project_id, with_text=False)
    items = store.items_frame(db, project_id)
    whole = store.judgments_frame(db, project_id)
    assert_same(agreement.agreement_reports(frame, responses,
                                            store.items_report_frame(db, project_id),
                                            kinds=("human", "all"), n_boot=50, min_shared=3,
                                            over_time="D"),
                agreement.agreement_reports(whole, responses, items, kinds=("human", "all"),
                                            n_boot=50, min_shared=3, over_time="D"))
    assert_same(leaderboard.project_win_rates(db, project_id, frames=(frame, responses)),
                leaderboard.project_win_rates(db, project_id))
    return frame


def chunk_rows(db, project_id):
    return [tuple(r) for r in db.execute(
        "SELECT first_id, last_id, n_rows FROM judgment_columns WHERE project_id = ? "
        "ORDER BY first_id", [project_id]).fetchall()]


def test_copy_follows_new_judgments_undos_and_exclusions(db):
    rng = np.random.default_rng(0)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    assert len(store.report_frame(db, pid)) == 0 and chunk_rows(db, pid) == []
    first = judge_items(db, items[:6], raters, judge, rng, "a")
    store.set_item_gold(db, pid, items[2], choice=1, actor="admin")
    store.set_item_gold(db, pid, items[4], choice="tie", actor="admin")
    frame = assert_matches_a_fresh_read(db, pid)
    assert len(frame) == 6 * 4
    assert chunk_rows(db, pid) == [(min(frame["id"]), max(frame["id"]), 24)]

    judge_items(db, items[6:], raters[:2], judge, rng, "b")
    assert len(assert_matches_a_fresh_read(db, pid)) == 24 + 6 * 3
    # An undo supersedes an old row: it drops out without rewriting the copy.
    changed, _ = store.change_judgment(db, judgment_id=first[0], rater_id=raters[0]["id"],
                                       submission_id="undo-1", outcome="tie")
    frame = assert_matches_a_fresh_read(db, pid)
    assert first[0] not in set(frame["id"]) and changed in set(frame["id"])
    # An excluded item's judgments leave; included again, they come back.
    store.set_item_excluded(db, pid, "q1", True, actor="admin")
    frame = assert_matches_a_fresh_read(db, pid)
    assert items[1] not in set(frame["item_id"])
    store.set_item_excluded(db, pid, "q1", False, actor="admin")
    assert items[1] in set(assert_matches_a_fresh_read(db, pid)["item_id"])
    # A read with nothing new stores nothing.
    before = chunk_rows(db, pid)
    store.report_frame(db, pid)
    assert chunk_rows(db, pid) == before


def test_chunks_merge_past_the_limit(db, monkeypatch):
    monkeypatch.setattr(cols, "MAX_CHUNKS", 3)
    rng = np.random.default_rng(1)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    for k in range(3):
        judge_items(db, items[k:k + 1], raters, judge, rng, f"c{k}")
        store.report_frame(db, pid)
    assert len(chunk_rows(db, pid)) == 3
    judge_items(db, items[3:4], raters, judge, rng, "c3")
    frame = assert_matches_a_fresh_read(db, pid)
    assert chunk_rows(db, pid) == [(min(frame["id"]), max(frame["id"]), 16)]


def test_a_row_that_commits_below_the_watermark_rebuilds_the_copy(db, backend):
    """PostgreSQL can commit a smaller id after a larger one was read; SQLite cannot."""
    if backend != "postgres":
        pytest.skip("SQLite commits one writer at a time: ids are visible in order")
    rng = np.random.default_rng(2)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    judge_items(db, items[:2], raters, judge, rng, "d")
    late = db.execute("SELECT nextval(pg_get_serial_sequence('judgments', 'id'))").fetchone()[0]
    judge_items(db, items[2:3], raters, judge, rng, "e")
    assert len(store.report_frame(db, pid)) == 12
    with store.write(db):
        db.execute(
            "INSERT INTO judgments (id, item_id, rater_id, kind, outcome, choice, metadata, "
            "submission_id, created_at) VALUES (?, ?, ?, 'human', 'choice', 1, '{}', 'late', ?)",
            [late, items[5], raters[0]["id"], store.now_iso()])
    frame = store.report_frame(db, pid)  # the count differs: the copy is rebuilt
    assert late in set(frame["id"]) and len(frame) == 13
    # The rebuilt copy was stored: the next read finds it whole and extends it.
    assert chunk_rows(db, pid) == [(min(frame["id"]), max(frame["id"]), 13)]
    assert_matches_a_fresh_read(db, pid)
    judge_items(db, items[3:4], raters[:1], judge, rng, "h")
    store.report_frame(db, pid)
    assert [r[2] for r in chunk_rows(db, pid)] == [13, 2]
    assert len(assert_matches_a_fresh_read(db, pid)) == 15


def test_the_refit_stores_the_reports_the_previous_code_computed(db):
    """What refit_cycle stores equals the previous implementation on a whole frame read."""
    from prefstore import worker
    from tests import agreement_reference as reference

    rng = np.random.default_rng(3)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    judge_items(db, items, raters, judge, rng, "f")
    store.set_item_gold(db, pid, items[3], choice=0, actor="admin")
    store.report_frame(db, pid)  # a copy exists: the refit extends it
    judge_items(db, items[:5], raters[:1], judge, rng, "g")
    result = worker.refit_cycle(db, pid)
    whole = store.judgments_frame(db, pid)
    responses = store.responses_frame(db, pid, with_text=False)
    frame_items = store.items_frame(db, pid)
    bias = agreement.project_style_bias(db, pid, whole)
    for kind in ("human", "all"):
        stored = store.latest_report(db, pid, name="agreement", kind=kind)
        assert stored["id"] == result["agreement_reports"][kind]
        want = reference.agreement_report(whole, responses, frame_items, kind=kind)
        want = {"project": "p", **agreement.with_style_bias(want, bias),
                "over_time": reference.agreement_over_time(
                    whole, kind="human" if kind == "all" else kind)}
        assert_same(stored["result"], want, kind)
        assert stored["n_judgments"] == len(whole)
    for kind in ("human", "llm", "all"):
        rates = store.latest_report(db, pid, name="win_rate", kind=kind)["result"]
        data = pairwise_from_frames(whole, store.responses_frame(db, pid, with_text=False),
                                    level="system", kind=kind, strength_weights=None)
        n = len(whole) if kind == "all" else int((whole["kind"] == kind).sum())
        assert rates == {**leaderboard.win_rate_pairwise(data), "n_judgments": n}
    assert set(result["seconds"]) == {"fits", "read", "win_rates", "agreement", "edits",
                                      "routing"}


def test_chunks_store_narrow_integers_and_read_the_older_int64_chunks(db):
    """Integer columns are stored narrow (the type's minimum for missing); a chunk stored
    all int64, as before, reads the same."""
    import io

    rng = np.random.default_rng(4)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    judge_items(db, items[:4], raters, judge, rng, "n")
    frame = assert_matches_a_fresh_read(db, pid)
    [data] = [r[0] for r in db.execute(
        "SELECT data FROM judgment_columns WHERE project_id = ?", [pid]).fetchall()]
    with np.load(io.BytesIO(bytes(data))) as stored:
        assert stored["choice"].dtype == np.int8  # 0, 1 and missing (ties)
        assert stored["supersedes"].dtype == np.int8  # all missing
        assert stored["created_ns"].dtype == np.int64
        assert (stored["choice"] == np.iinfo(np.int8).min).sum() == int(
            frame["choice"].isna().sum())
    wide = cols.judgment_columns(db, pid)
    assert all(wide[name].dtype == np.int64 for name in cols._INT_COLUMNS)
    buffer = io.BytesIO()
    np.savez(buffer, **wide)
    with store.write(db):
        db.execute("UPDATE judgment_columns SET data = ? WHERE project_id = ?",
                   [buffer.getvalue(), pid])
    old = store.report_frame(db, pid)
    for name in COMPARED:
        assert [None if v is pd.NA else v for v in old[name].tolist()] == [
            None if v is pd.NA else v for v in frame[name].tolist()], name
    assert old["created_at"].tolist() == frame["created_at"].tolist()


def test_blocks_the_text_parse_does_not_take_read_as_before(db, backend, monkeypatch):
    """The copy reads a block of ids as one row of text columns (columns._BLOCK_SQL);
    timestamps of another shape than now_iso's go through pandas, and a value that is
    not an integer sends its block through the row read: the copy still equals a fresh
    read, with blocks of every kind in one read."""
    monkeypatch.setattr(cols, "READ_BATCH", 7)
    row_reads = []
    encode = cols._encode
    monkeypatch.setattr(cols, "_encode", lambda rows: row_reads.append(len(rows)) or encode(rows))
    rng = np.random.default_rng(5)
    project, items, raters, judge = make_project(db)
    pid = project["id"]
    judge_items(db, items[:6], raters, judge, rng, "o")
    odd = [("2026-01-02T03:04:05+00:00", "[0, 1]"), ("2026-01-02T03:04:05.123456Z", "[1, 0]")]
    if backend == "sqlite":  # a JSON number that is not an integer; PostgreSQL's cast refuses it
        odd.append(("2026-01-02T03:04:06.000Z", "[1.0, 0]"))
    with store.write(db):
        for k, (stamp, order) in enumerate(odd):
            db.execute(
                "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, "
                "choice, metadata, submission_id, created_at) "
                "VALUES (?, ?, 'human', ?, 'choice', 1, '{}', ?, ?)",
                [items[7 + k], raters[0]["id"], order, f"odd-{k}", stamp])
    frame = store.report_frame(db, pid)
    ids = frame["id"].to_numpy()
    blocks = np.unique((ids - 1) // 7)
    # Only the block with the non-integer was read row by row, and the others were not.
    assert len(blocks) > 3
    assert row_reads == ([int(((ids - 1) // 7 == (ids[-1] - 1) // 7).sum())]
                         if backend == "sqlite" else [])
    assert frame["created_at"].iloc[-len(odd):].tolist() == [
        pd.Timestamp("2026-01-02T03:04:05", tz="UTC"),
        pd.Timestamp("2026-01-02T03:04:05.123456", tz="UTC"),
        pd.Timestamp("2026-01-02T03:04:06", tz="UTC")][:len(odd)]
    assert frame["first_shown"].iloc[-len(odd):].tolist() == [0, 1, 1][:len(odd)]
    assert_matches_a_fresh_read(db, pid)


def test_block_codes_follow_kinds_and_outcomes():
    """_BLOCK_SQL's CASEs give each kind and outcome its index in KINDS and OUTCOMES."""
    for sql in cols._BLOCK_SQL.values():
        assert ("CASE j.kind " + " ".join(f"WHEN '{k}' THEN {n}" for n, k in enumerate(cols.KINDS))
                + " END") in sql
        assert ("CASE j.outcome " + " ".join(
            f"WHEN '{k}' THEN {n}" for n, k in enumerate(cols.OUTCOMES)) + " END") in sql


def test_the_block_parse_takes_only_whole_lists_of_integers():
    """What _parse_ints refuses goes to the row read, which says what is wrong with it."""
    assert cols._parse_ints("1,-22,3", 3).tolist() == [1, -22, 3]
    assert cols._parse_ints("-9223372036854775808,7", 2).tolist() == [cols.NULL, 7]
    for text, n in [("1,2", 3), ("1,2,3", 2), ("1,2x", 2), ("1,2.5,3", 3), ("1-2,3", 2),
                    ("-", 1), ("1,-", 2), ("--1", 1), ("1,,2", 3), ("1,2,", 3), (" 1,2", 2),
                    ("1e3", 1)]:
        assert cols._parse_ints(text, n) is None, text


def test_a_block_in_any_order_is_stored_in_id_order():
    """The aggregates of a block agree on the order of its rows, not on id order: the
    columns are put in id order, the rare rows found by their id."""
    null = str(cols.NULL)
    row = (3, "12,10,11", "5,3,4", "7,7,8", f"1,{null},0", f"2,{null},3", "0,1,1",
           f"900,{null},1200", "0,3,4",
           "2026-01-02T03:04:05.123Z,2026-01-02T03:04:05.000Z,2026-01-02T03:04:06.500Z",
           '[[11, 4, null, "[1, 0]", null], '
           '[10, null, "{\\"swap_consistent\\": false}", null, "{\\"clarity\\": 2}"]]')
    block = cols._encode_block(row)
    assert block["id"].tolist() == [10, 11, 12]
    assert block["item_id"].tolist() == [3, 4, 5]
    assert block["rater_id"].tolist() == [7, 8, 7]
    assert block["choice"].tolist() == [cols.NULL, 0, 1]
    assert block["strength"].tolist() == [cols.NULL, 3, 2]
    assert block["first_shown"].tolist() == [1, 1, 0]
    assert block["time_ms"].tolist() == [cols.NULL, 1200, 900]
    assert block["kind"].tolist() == [1, 0, 0]  # 3 = llm + 2 * tie, 4 = human + 2 * both_bad
    assert block["outcome"].tolist() == [1, 2, 0]
    assert block["created_ns"].tolist() == [
        pd.Timestamp(t).value for t in ("2026-01-02T03:04:05", "2026-01-02T03:04:06.5",
                                        "2026-01-02T03:04:05.123")]
    assert block["supersedes"].tolist() == [cols.NULL, 4, cols.NULL]
    assert block["swap"].tolist() == [0, -1, -1]
    assert block["ranking_rows"].tolist() == [1]
    assert block["ranking_text"].tobytes() == b"[1, 0]"
    assert block["aspects_rows"].tolist() == [0]
    assert block["aspects_text"].tobytes() == b'{"clarity": 2}'
