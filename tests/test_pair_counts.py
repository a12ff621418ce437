"""The running pair counts: pinned against a recount from scratch and against the frame path."""

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from prefstore import fitting, store
from prefstore.errors import Conflict, InvalidInput
from prefstore.models.adapter import pair_count_deltas

pytestmark = pytest.mark.both_backends

# Mixed case and a non-ASCII name: both paths must order names the same way.
SYSTEMS = ["alpha", "Beta", "gamma", "delta", "Émile"]
# Fits of the two paths agree to this (they are equal in practice: same sums, same order).
ATOL = 1e-10
COUNT_COLUMNS = ["level", "kind", "lo", "hi", "n_lo", "n_hi", "n_tie", "w_lo", "w_hi", "w_tie"]


def recount(db, project_id: int) -> tuple[pd.DataFrame, dict]:
    """The counts from scratch: every effective judgment read again, signed +1."""
    judgments = store.judgments_frame(db, project_id, columns="model").assign(sign=1)
    responses = store.responses_frame(db, project_id, with_text=False)
    deltas, totals = pair_count_deltas(judgments, responses)
    frame = pd.concat([d.assign(level=level) for level, d in deltas.items()], ignore_index=True)
    return _sorted(frame), totals


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[COUNT_COLUMNS].sort_values(["level", "kind", "lo", "hi"], ignore_index=True)
    return frame.astype({c: "int64" for c in ("n_lo", "n_hi", "n_tie")}
                        | {c: "float64" for c in ("w_lo", "w_hi", "w_tie")}
                        | {c: object for c in ("level", "kind", "lo", "hi")})


def assert_counts_equal_recount(db, project_id: int) -> None:
    expected, totals = recount(db, project_id)
    pd.testing.assert_frame_equal(_sorted(store.stored_pair_counts(db, project_id)), expected)
    for kind in ("human", "llm"):
        got = store.pair_count_totals(db, project_id, kind=kind)
        assert (got["n_judgments"], got["n_no_system"]) == (
            totals[kind]["n"], totals[kind]["n_no_system"]), kind


def _fit_or_error(db, project, from_counts: bool, **options):
    try:
        out = fitting.fit_project(db, project, save=False, from_counts=from_counts, **options)
    except InvalidInput as exc:
        return f"InvalidInput: {exc}"
    except Exception as exc:  # noqa: BLE001 - the two paths must fail alike
        return f"{type(exc).__name__}: {exc}"
    return out


def assert_fits_equal_frame_path(db, project: str, models=("bt", "davidson"),
                                 response_ci: str | None = "hessian") -> int:
    """Fit every (model, level, kind) both ways; return how many fits succeeded."""
    fitted = 0
    for model in models:
        for level in ("system", "response"):
            for kind in ("all", "human", "llm"):
                options = {"model": model, "level": level, "kind": kind,
                           "alpha": 0.01 if level == "response" else None,
                           "ci": response_ci if level == "response" else "hessian",
                           "fallback_alpha": fitting.FALLBACK_ALPHA}
                counted = _fit_or_error(db, project, True, **options)
                framed = _fit_or_error(db, project, False, **options)
                where = (model, level, kind)
                if isinstance(framed, str):
                    assert counted == framed, where
                    continue
                assert not isinstance(counted, str), (where, counted)
                fitted += 1
                assert list(counted["scores"]) == list(framed["scores"]), where
                for name, score in framed["scores"].items():
                    assert counted["scores"][name] == pytest.approx(score, abs=ATOL), where
                    assert counted["ci95"][name] == pytest.approx(framed["ci95"][name],
                                                                  abs=ATOL, nan_ok=True), where
                assert counted["log_likelihood"] == pytest.approx(framed["log_likelihood"],
                                                                  abs=ATOL), where
                assert counted["n_comparisons"] == framed["n_comparisons"], where
                assert counted.get("notes") == framed.get("notes"), where
                assert counted["params"].keys() == framed["params"].keys(), where
                for key, value in framed["params"].items():
                    assert counted["params"][key] == (
                        value if isinstance(value, str) or value is None
                        else pytest.approx(value, abs=ATOL, nan_ok=True)), (where, key)
    return fitted


# --------------------------------------------------------------------------
# Building realistic stores


def make_pairwise(db, name: str = "pc", n_items: int = 40, seed: int = 0) -> int:
    rng = random.Random(seed)
    project = store.create_project(db, name, "pairwise", {})
    # Some items compare a system with itself: no information at the system level.
    store.insert_items(db, project["id"], [
        {"external_id": f"q{k}", "prompt": f"prompt {k}",
         "responses": [{"text": f"a{k}", "system": rng.choice(SYSTEMS)},
                       {"text": f"b{k}", "system": rng.choice(SYSTEMS)}]}
        for k in range(n_items)])
    return project["id"]


def make_raters(db, prefix: str = "") -> list[dict]:
    humans = [store.create_rater(db, f"{prefix}human{k}")[0] for k in range(3)]
    llms = [store.get_or_create_rater(db, f"{prefix}judge{k}", "llm") for k in range(2)]
    return humans + llms


def random_label(rng: random.Random, n_responses: int) -> dict:
    pick = rng.random()
    if pick < 0.15:
        return {"choice": "tie", "strength": rng.choice([None, 0])}
    if pick < 0.22:
        return {"choice": "both_bad"}
    if n_responses > 2 and pick < 0.45:
        ranking = list(range(n_responses))
        rng.shuffle(ranking)
        return {"ranking": ranking, "strength": rng.choice([None, 1, 2, 3])}
    return {"choice": rng.randrange(n_responses), "strength": rng.choice([None, 1, 2, 3])}


def judge_some(db, project_id: int, raters: list[dict], rng: random.Random, n: int,
               tag: str) -> list[tuple[int, dict]]:
    items = [it for it in store.iter_items(db, project_id) if it.get("excluded_at") is None]
    made = []
    for k in range(n):
        item = rng.choice(items)
        rater = rng.choice(raters)
        jid, created = store.submit_judgment(
            db, item_id=item["id"], rater_id=rater["id"], submission_id=f"{tag}-{k}",
            **random_label(rng, len(item["responses"])))
        if created:
            made.append((jid, rater))
    return made


def change_some(db, made: list[tuple[int, dict]], rng: random.Random, n: int, tag: str,
                n_responses: int = 2) -> list[tuple[int, dict]]:
    """Change ``n`` human judgments (an undo or a new answer); return the new rows."""
    open_ = [(jid, r) for jid, r in made if r["kind"] == "human"]
    changed = []
    for k, (jid, rater) in enumerate(rng.sample(open_, min(n, len(open_)))):
        try:
            new, _ = store.change_judgment(db, judgment_id=jid, rater_id=rater["id"],
                                           submission_id=f"{tag}-{k}",
                                           **random_label(rng, n_responses))
        except (Conflict, InvalidInput):  # already changed, or on an excluded item
            continue
        changed.append((new, rater))
    return changed


# --------------------------------------------------------------------------
# Exact values


def test_a_tiny_store_folds_to_exact_counts(db):
    project = store.create_project(db, "tiny", "pairwise", {})
    store.insert_items(db, project["id"], [
        {"external_id": "q1", "prompt": "p", "responses": [{"text": "x", "system": "A"},
                                                           {"text": "y", "system": "B"}]},
        {"external_id": "q2", "prompt": "p", "responses": [{"text": "x", "system": "B"},
                                                           {"text": "y", "system": "A"}]}])
    ann = store.create_rater(db, "ann")[0]
    judge = store.get_or_create_rater(db, "judge", "llm")
    q1, q2 = (it["id"] for it in store.iter_items(db, project["id"]))
    r = {it["id"]: [x["id"] for x in it["responses"]] for it in store.iter_items(db, project["id"])}
    first, _ = store.submit_judgment(db, item_id=q1, rater_id=ann["id"], submission_id="1",
                                     choice=0, strength=3)            # A beats B, weight 2
    store.submit_judgment(db, item_id=q2, rater_id=ann["id"], submission_id="2",
                          choice=1)                                   # A beats B, weight 1
    store.submit_judgment(db, item_id=q2, rater_id=judge["id"], submission_id="3",
                          choice="tie")                               # tie, weight 1
    assert store.pair_count_totals(db, project["id"]) == {
        "last_judgment_id": 0, "n_judgments": 0, "n_no_system": 0}
    assert fitting.refresh_pair_counts(db, "tiny") == {
        "last_judgment_id": 3, "judgments": 3, "items_excluded": 0, "items_included": 0,
        "steps": 1}
    rows = store.stored_pair_counts(db, project["id"]).to_dict("records")
    resp = lambda item, k: str(r[item][k])  # noqa: E731
    assert rows == [
        {"level": "response", "kind": "human", "lo": resp(q1, 0), "hi": resp(q1, 1),
         "n_lo": 1, "n_hi": 0, "n_tie": 0, "w_lo": 2.0, "w_hi": 0.0, "w_tie": 0.0},
        {"level": "response", "kind": "human", "lo": resp(q2, 0), "hi": resp(q2, 1),
         "n_lo": 0, "n_hi": 1, "n_tie": 0, "w_lo": 0.0, "w_hi": 1.0, "w_tie": 0.0},
        {"level": "response", "kind": "llm", "lo": resp(q2, 0), "hi": resp(q2, 1),
         "n_lo": 0, "n_hi": 0, "n_tie": 1, "w_lo": 0.0, "w_hi": 0.0, "w_tie": 1.0},
        {"level": "system", "kind": "human", "lo": "A", "hi": "B",
         "n_lo": 2, "n_hi": 0, "n_tie": 0, "w_lo": 3.0, "w_hi": 0.0, "w_tie": 0.0},
        {"level": "system", "kind": "llm", "lo": "A", "hi": "B",
         "n_lo": 0, "n_hi": 0, "n_tie": 1, "w_lo": 0.0, "w_hi": 0.0, "w_tie": 1.0}]
    # Ann changes her mind on q1: B wins, plainly. The old row comes out.
    store.change_judgment(db, judgment_id=first, rater_id=ann["id"], submission_id="4",
                          choice=1)
    assert fitting.refresh_pair_counts(db, "tiny")["judgments"] == 2
    system = store.pair_counts_frame(db, project["id"], level="system", kind="human")
    assert system.to_dict("records") == [{"lo": "A", "hi": "B", "n_lo": 1, "n_hi": 1,
                                          "n_tie": 0, "w_lo": 1.0, "w_hi": 1.0, "w_tie": 0.0}]
    # kind "all": a row per kind, for the adapter to sum.
    assert len(store.pair_counts_frame(db, project["id"], level="system")) == 2
    # Excluding q2 takes its two judgments out; the empty pairs are gone.
    store.set_item_excluded(db, project["id"], "q2", True, actor="admin")
    assert fitting.refresh_pair_counts(db, "tiny")["items_excluded"] == 1
    assert store.pair_counts_frame(db, project["id"], level="system").to_dict("records") == [
        {"lo": "A", "hi": "B", "n_lo": 0, "n_hi": 1, "n_tie": 0,
         "w_lo": 0.0, "w_hi": 1.0, "w_tie": 0.0}]
    # Response ids come back as integers (the fit sorts them as numbers).
    response = store.pair_counts_frame(db, project["id"], level="response")
    assert response.to_dict("records") == [
        {"lo": int(resp(q1, 0)), "hi": int(resp(q1, 1)), "n_lo": 0, "n_hi": 1, "n_tie": 0,
         "w_lo": 0.0, "w_hi": 1.0, "w_tie": 0.0}]
    assert response.dtypes.astype(str).tolist() == ["int64"] * 5 + ["float64"] * 3
    assert store.pair_count_totals(db, project["id"]) == {
        "last_judgment_id": 4, "n_judgments": 1, "n_no_system": 0}
    # Included again: back as it was.
    store.set_item_excluded(db, project["id"], "q2", False, actor="admin")
    assert fitting.refresh_pair_counts(db, "tiny")["items_included"] == 1
    pd.testing.assert_frame_equal(
        store.pair_counts_frame(db, project["id"], level="system", kind="human"), system)
    # Nothing new: the fold is a no-op.
    assert fitting.refresh_pair_counts(db, "tiny") == {
        "last_judgment_id": 4, "judgments": 0, "items_excluded": 0, "items_included": 0,
        "steps": 0}
    assert_counts_equal_recount(db, project["id"])


def test_a_fold_of_same_system_pairs_only_adds_no_system_rows(db):
    """Regression: a fold whose judgments made no system-level rows failed to read its labels."""
    project = store.create_project(db, "same", "pairwise", {})
    store.insert_items(db, project["id"], [
        {"external_id": "q1", "prompt": "p", "responses": [{"text": "x", "system": "A"},
                                                           {"text": "y", "system": "A"}]}])
    ann = store.create_rater(db, "ann")[0]
    item = next(store.iter_items(db, project["id"]))
    store.submit_judgment(db, item_id=item["id"], rater_id=ann["id"], submission_id="1",
                          choice=1)
    assert fitting.refresh_pair_counts(db, "same")["judgments"] == 1
    rows = store.stored_pair_counts(db, project["id"])
    assert rows[["level", "kind", "n_lo", "n_hi", "n_tie"]].to_dict("records") == [
        {"level": "response", "kind": "human", "n_lo": 0, "n_hi": 1, "n_tie": 0}]
    assert_counts_equal_recount(db, project["id"])
    # Only Bradley-Terry at response level fits (kinds all and human); the rest fail alike.
    assert assert_fits_equal_frame_path(db, "same") == 2


@pytest.mark.sqlite_only("SQLite's one write lock")
def test_a_fit_on_current_counts_takes_no_write_lock(db, db_path):
    project = store.create_project(db, "lock", "pairwise", {})
    store.insert_items(db, project["id"], [
        {"external_id": "q1", "prompt": "p", "responses": [{"text": "x", "system": "A"},
                                                           {"text": "y", "system": "B"}]}])
    ann = store.create_rater(db, "ann")[0]
    item = next(store.iter_items(db, project["id"]))["id"]
    for k, choice in enumerate([0, 1, "tie"]):
        store.submit_judgment(db, item_id=item, rater_id=ann["id"], submission_id=str(k),
                              choice=choice)
    fitting.refresh_pair_counts(db, "lock")
    writer = store.connect(db_path)
    with store.write(writer):  # another process's long write transaction, say
        start = time.perf_counter()
        out = fitting.fit_project(db, "lock", save=False)
        assert time.perf_counter() - start < 5  # the busy timeout is 30 s
    writer.close()
    assert out["n_comparisons"] == 3


# --------------------------------------------------------------------------
# Realistic data, folded in stages


def test_counts_follow_judgments_changes_and_exclusions(db):
    rng = random.Random(7)
    project_id = make_pairwise(db, n_items=40)
    raters = make_raters(db)
    made = judge_some(db, project_id, raters, rng, 150, "a")
    # The first fold starts from watermark 0: a store from before the counts is backfilled.
    assert store.pair_count_totals(db, project_id)["last_judgment_id"] == 0
    assert assert_fits_equal_frame_path(db, "pc") >= 10
    assert_counts_equal_recount(db, project_id)
    stages = 0
    for stage in range(4):
        made += judge_some(db, project_id, raters, rng, 40, f"b{stage}")
        made += change_some(db, made, rng, 8, f"c{stage}")
        # A change of a change: chains longer than one.
        made += change_some(db, made[-8:], rng, 3, f"cc{stage}")
        excluded = [f"q{k}" for k in rng.sample(range(40), 3)]
        for external in excluded:
            store.set_item_excluded(db, project_id, external, True, actor="admin")
        if stage % 2:  # fold with some exclusions pending and some included again
            fitting.refresh_pair_counts(db, project_id)
        else:  # a catch-up in small steps, one transaction each
            assert store.fold_pair_counts(db, project_id, pair_count_deltas,
                                          window=9)["steps"] >= 5
        for external in excluded[:2]:
            store.set_item_excluded(db, project_id, external, False, actor="admin")
        made += change_some(db, made, rng, 4, f"d{stage}")
        assert assert_fits_equal_frame_path(db, "pc") >= 10
        assert_counts_equal_recount(db, project_id)
        stages += 1
    assert stages == 4
    # The counts hold changes and exclusions, or the test proved nothing.
    assert db.execute("SELECT COUNT(*) FROM judgments WHERE supersedes IS NOT NULL"
                      ).fetchone()[0] >= 20
    assert db.execute("SELECT COUNT(*) FROM pair_count_excluded").fetchone()[0] >= 4


def _table_rows(db, project_id: int, kind: str) -> pd.DataFrame:
    """The response-level rows as the table holds them, as pair_counts_frame names them."""
    rows = store.stored_pair_counts(db, project_id)
    rows = rows[(rows["level"] == "response") & ((rows["kind"] == kind) | (kind == "all"))]
    return _by_pair(rows.astype({"lo": "int64", "hi": "int64"}))


def _by_pair(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["lo", "hi", "n_lo", "n_hi", "n_tie", "w_lo", "w_hi", "w_tie"]
    return frame[columns].sort_values(columns, ignore_index=True)


def test_a_handles_copy_of_the_response_counts_equals_the_table(db, db_path, monkeypatch):
    """Response-level counts come from the handle's copy (issue 17); it equals the table.

    After folds through the handle (in small steps too), folds through another
    handle, changes, exclusions and items included again, and a fold rolled back
    with an outer transaction.
    """
    from prefstore.store import pair_counts

    rng = random.Random(11)
    project_id = make_pairwise(db, n_items=40)
    raters = make_raters(db)
    made = judge_some(db, project_id, raters, rng, 120, "a")
    other = store.connect(db_path)
    copied, built = 0, []
    init = pair_counts._Copy.__init__
    monkeypatch.setattr(pair_counts._Copy, "__init__",
                        lambda self, *a: built.append(1) or init(self, *a))
    for stage in range(6):
        made += judge_some(db, project_id, raters, rng, 30, f"b{stage}")
        made += change_some(db, made, rng, 6, f"c{stage}")
        excluded = [f"q{k}" for k in rng.sample(range(40), 2)]
        for external in excluded:
            store.set_item_excluded(db, project_id, external, True, actor="admin")
        if stage == 3:  # rolled back: the copy must not keep what the fold added
            with pytest.raises(RuntimeError), store.write(db):
                fitting.refresh_pair_counts(db, project_id)
                raise RuntimeError("roll back")
        if stage % 3 == 1:
            fitting.refresh_pair_counts(other, project_id)
        else:
            store.fold_pair_counts(db, project_id, pair_count_deltas,
                                   window=7 if stage % 3 else pair_counts.FOLD_WINDOW)
        store.set_item_excluded(db, project_id, excluded[0], False, actor="admin")
        for kind in ("all", "human", "llm"):
            got = store.pair_counts_frame(db, project_id, level="response", kind=kind)
            assert got.dtypes.astype(str).tolist() == ["int64"] * 5 + ["float64"] * 3
            pd.testing.assert_frame_equal(_by_pair(got), _table_rows(db, project_id, kind))
        copy = pair_counts._COPIES.get(db, {}).get(project_id)
        copied += copy is not None and copy.state == pair_counts._fold_state(db, project_id)
    assert copied == 6
    # Read again after the first fold, the other handle's folds and the rollback; moved
    # on by the handle's own folds (stages 2 and 5).
    assert len(built) == 4
    fitting.refresh_pair_counts(db, project_id)  # the inclusion of the last stage
    got = store.pair_counts_frame(db, project_id, level="response")
    pd.testing.assert_frame_equal(_by_pair(got), _table_rows(db, project_id, "all"))
    assert_counts_equal_recount(db, project_id)
    assert_fits_equal_frame_path(db, "pc", models=("bt",), response_ci=None)
    # Inside a transaction the table is read, not the copy.
    with store.write(db):
        pd.testing.assert_frame_equal(
            _by_pair(store.pair_counts_frame(db, project_id, level="response")),
            _table_rows(db, project_id, "all"))
    other.close()


def test_a_slate_project_folds_choices_rankings_and_ties(db):
    rng = random.Random(3)
    project = store.create_project(db, "slate", "slate", {})
    store.insert_items(db, project["id"], [
        {"external_id": f"s{k}", "prompt": "p",
         "responses": [{"text": f"r{k}.{i}", "system": rng.choice(SYSTEMS)}
                       for i in range(rng.choice([3, 4]))]}
        for k in range(25)])
    raters = make_raters(db)
    made = judge_some(db, project["id"], raters, rng, 120, "a")
    fitting.refresh_pair_counts(db, "slate")
    made += change_some(db, made, rng, 10, "c", n_responses=3)
    store.set_item_excluded(db, project["id"], "s4", True, actor="admin")
    made += judge_some(db, project["id"], raters, rng, 40, "b")
    assert assert_fits_equal_frame_path(db, "slate") >= 10
    assert_counts_equal_recount(db, project["id"])
    # Reset, the counts are rebuilt from watermark 0 to the same rows.
    kept = store.stored_pair_counts(db, project["id"])
    store.reset_pair_counts(db, project["id"])
    assert store.stored_pair_counts(db, project["id"]).empty
    assert store.pair_count_totals(db, project["id"])["last_judgment_id"] == 0
    fitting.refresh_pair_counts(db, "slate")
    pd.testing.assert_frame_equal(store.stored_pair_counts(db, project["id"]), kept)


def test_a_response_without_a_system_fails_the_system_fit_as_the_judgments_do(db):
    project = store.create_project(db, "nosys", "pairwise", {})
    store.insert_items(db, project["id"], [
        {"external_id": "q1", "prompt": "p", "responses": [{"text": "x", "system": "A"},
                                                           {"text": "y", "system": "B"}]},
        {"external_id": "q2", "prompt": "p", "responses": [{"text": "x", "system": "A"},
                                                           {"text": "y"}]}])
    ann = store.create_rater(db, "ann")[0]
    q1, q2 = (it["id"] for it in store.iter_items(db, project["id"]))
    for k, (item, choice) in enumerate([(q1, 0), (q1, 1), (q2, 0), (q2, "tie")]):
        store.submit_judgment(db, item_id=item, rater_id=ann["id"], submission_id=str(k),
                              choice=choice)
    with pytest.raises(InvalidInput, match=f"item {q2}: response 1 has no system"):
        fitting.fit_project(db, "nosys", save=False)
    assert store.pair_count_totals(db, project["id"]) == {
        "last_judgment_id": 4, "n_judgments": 4, "n_no_system": 2}
    assert assert_fits_equal_frame_path(db, "nosys") >= 2
    # Excluded, the item no longer blocks the system fit, which reads the counts again.
    store.set_item_excluded(db, project["id"], "q2", True, actor="admin")
    out = fitting.fit_project(db, "nosys", save=False)
    assert (out["n_comparisons"], sorted(out["scores"])) == (2, ["A", "B"])
    assert store.pair_count_totals(db, project["id"])["n_no_system"] == 0
    assert_counts_equal_recount(db, project["id"])


def test_a_bootstrap_or_another_model_reads_the_judgments(db, monkeypatch):
    rng = random.Random(1)
    project_id = make_pairwise(db, n_items=20)
    judge_some(db, project_id, make_raters(db), rng, 80, "a")
    calls = []
    real = store.judgments_frame
    monkeypatch.setattr(store, "judgments_frame",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    fitting.fit_project(db, "pc", save=False, alpha=0.01)
    fitting.fit_project(db, "pc", model="davidson", level="response", alpha=0.01, ci=None,
                        save=False)
    assert calls == []
    fitting.fit_project(db, "pc", save=False, alpha=0.01, ci="bootstrap", n_boot=5)
    fitting.fit_project(db, "pc", model="mixture", k=1, save=False)
    fitting.fit_project(db, "pc", save=False, alpha=0.01, from_counts=False)
    assert calls == [1, 1, 1]


def test_a_saved_fit_records_the_same_judgment_count_either_way(db):
    rng = random.Random(2)
    project_id = make_pairwise(db, n_items=20)
    made = judge_some(db, project_id, make_raters(db), rng, 80, "a")
    change_some(db, made, rng, 5, "c")
    store.set_item_excluded(db, project_id, "q1", True, actor="admin")
    fitting.fit_project(db, "pc", alpha=0.01)
    counted = store.latest_fit(db, project_id, model="bt", level="system", kind="all")
    fitting.fit_project(db, "pc", alpha=0.01, from_counts=False)
    framed = store.latest_fit(db, project_id, model="bt", level="system", kind="all")
    assert counted["n_judgments"] == framed["n_judgments"] == store.count_judgments(
        db, project_id)
    assert counted["result"]["n_comparisons"] == framed["result"]["n_comparisons"]


# --------------------------------------------------------------------------
# Concurrency and crashes


def _submitter(db_path: str, project_id: int, rater_ids: list[int], seed: int, n: int,
               barrier) -> None:
    db = store.connect(db_path)
    rng = random.Random(seed)
    items = [it["id"] for it in store.iter_items(db, project_id)]
    barrier.wait()
    mine = []
    for k in range(n):
        rater_id = rng.choice(rater_ids)
        jid, _ = store.submit_judgment(db, item_id=rng.choice(items), rater_id=rater_id,
                                       submission_id=f"w{seed}-{k}",
                                       **random_label(rng, 2))
        mine.append((jid, rater_id))
        if k % 5 == 4:  # change one of this process's judgments now and then
            old, owner = mine[rng.randrange(len(mine))]
            try:
                store.change_judgment(db, judgment_id=old, rater_id=owner,
                                      submission_id=f"w{seed}-c{k}", **random_label(rng, 2))
            except (Conflict, InvalidInput):  # already changed, or its item excluded
                pass
    db.close()


def _folder(db_path: str, project_id: int, stop, barrier, out) -> None:
    db = store.connect(db_path)
    barrier.wait()
    folds = 0
    while not stop.is_set():
        fitting.refresh_pair_counts(db, project_id)
        folds += 1
    db.close()
    out.put(folds)


def test_counts_stay_exact_under_concurrent_submits_and_folds(db, db_path):
    project_id = make_pairwise(db, n_items=30)
    # Only humans: an LLM judgment cannot be changed.
    humans = [store.create_rater(db, f"h{k}")[0]["id"] for k in range(4)]
    ctx = mp.get_context("spawn")
    n_submitters, n_folders = 3, 2
    barrier = ctx.Barrier(n_submitters + n_folders + 1)
    stop, out = ctx.Event(), ctx.Queue()
    submitters = [ctx.Process(target=_submitter,
                              args=(str(db_path), project_id, humans, seed, 60, barrier))
                  for seed in range(n_submitters)]
    folders = [ctx.Process(target=_folder, args=(str(db_path), project_id, stop, barrier, out))
               for _ in range(n_folders)]
    for proc in submitters + folders:
        proc.start()
    barrier.wait(timeout=120)
    # The admin excludes and includes items while it all runs.
    for k in range(6):
        store.set_item_excluded(db, project_id, f"q{k}", True, actor="admin")
        time.sleep(0.05)
        if k % 2:
            store.set_item_excluded(db, project_id, f"q{k}", False, actor="admin")
    for proc in submitters:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    stop.set()
    folds = [out.get(timeout=120) for _ in folders]
    for proc in folders:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert min(folds) >= 1
    assert store.count_judgments(db, project_id) > 100
    fitting.refresh_pair_counts(db, project_id)
    assert_counts_equal_recount(db, project_id)
    assert_fits_equal_frame_path(db, "pc", models=("bt",))


_STALL_IN_FOLD = """
import sys, time
import prefstore.store.pair_counts as pair_counts
from prefstore import fitting, store

def stall():  # called after the count rows are written, before the watermark moves
    print("folding", flush=True)
    time.sleep(300)

pair_counts.now_iso = stall
fitting.refresh_pair_counts(store.connect(sys.argv[1]), int(sys.argv[2]))
"""


def test_a_fold_killed_half_way_leaves_the_counts_as_they_were(db, db_path):
    rng = random.Random(5)
    project_id = make_pairwise(db, n_items=30)
    raters = make_raters(db)
    made = judge_some(db, project_id, raters, rng, 100, "a")
    fitting.refresh_pair_counts(db, project_id)
    before = store.stored_pair_counts(db, project_id)
    mark = store.pair_count_totals(db, project_id)
    made += judge_some(db, project_id, raters, rng, 60, "b")
    change_some(db, made, rng, 10, "c")
    store.set_item_excluded(db, project_id, "q2", True, actor="admin")
    child = subprocess.Popen([sys.executable, "-c", _STALL_IN_FOLD, str(db_path),
                              str(project_id)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert child.stdout.readline().strip() == "folding"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(store.stored_pair_counts(db, project_id), before)
    assert store.pair_count_totals(db, project_id) == mark
    # The next fold does the whole step again.
    fitting.refresh_pair_counts(db, project_id)
    assert_counts_equal_recount(db, project_id)
    assert_fits_equal_frame_path(db, "pc", models=("bt",))


def test_an_import_leaves_the_pair_counts_current(db):
    """The import folds its judgments: the refit after it reads counts, not a million rows."""
    from prefstore import importing

    rng = random.Random(11)
    pairs = [rng.sample(SYSTEMS, 2) for _ in range(30)]
    items = [{"id": f"q{k}", "prompt": "p",
              "responses": [{"text": f"r{k}.{i}", "system": s} for i, s in enumerate(pair)],
              "judgments": [{"rater": f"ann{r}", "kind": "human", "choice": rng.choice([0, 1]),
                             "strength": rng.choice([1, 2, 3])} for r in range(k % 3)]}
             for k, pair in enumerate(pairs)]
    report = importing.import_items(db, "\n".join(map(json.dumps, items)).encode(), "imp",
                                    fmt="jsonl")
    assert report["judgments"] == 30  # 0 + 1 + 2 per three items
    project_id = store.get_project(db, "imp")["id"]
    last = db.execute("SELECT MAX(id) FROM judgments").fetchone()[0]
    assert store.pair_count_totals(db, project_id)["last_judgment_id"] == last
    assert_counts_equal_recount(db, project_id)

    more = [{"item": f"q{k}", "rater": "judge", "kind": "llm", "choice": "tie"}
            for k in range(0, 30, 2)] + [{"item": "q1", "rater": "ann9", "kind": "human",
                                          "choice": 1}]
    report = importing.import_judgments(db, "\n".join(map(json.dumps, more)).encode(), "imp",
                                        fmt="jsonl")
    assert report["judgments"] == 16
    last = db.execute("SELECT MAX(id) FROM judgments").fetchone()[0]
    assert store.pair_count_totals(db, project_id)["last_judgment_id"] == last
    assert_counts_equal_recount(db, project_id)
    assert store.pair_count_totals(db, project_id, kind="llm")["n_judgments"] == 15


def test_an_import_whose_fold_fails_is_still_a_committed_import(db, monkeypatch, caplog):
    """The fold runs after the commit: a busy database then leaves the counts behind, not
    an import reported as failed whose rows a second run would find."""
    import sqlite3

    from prefstore import importing

    def busy(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "fold_pair_counts", busy)
    items = [{"id": f"q{k}", "prompt": "p",
              "responses": [{"text": "a", "system": "alpha"}, {"text": "b", "system": "Beta"}],
              "judgments": [{"rater": "ann", "kind": "human", "choice": k % 2}]}
             for k in range(4)]
    report = importing.import_items(db, "\n".join(map(json.dumps, items)).encode(), "busy",
                                    fmt="jsonl")
    assert (report["items"], report["judgments"]) == (4, 4)
    assert "folding them into the pair counts failed (database is locked)" in caplog.text
    monkeypatch.undo()
    project_id = store.get_project(db, "busy")["id"]
    assert store.pair_count_totals(db, project_id)["last_judgment_id"] == 0
    fitting.refresh_pair_counts(db, "busy")
    assert store.pair_count_totals(db, project_id)["last_judgment_id"] == 4
    assert_counts_equal_recount(db, project_id)
