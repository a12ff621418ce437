"""prefstore.store.judging: the judges' per-item state, their usage sums and the response cache."""

import pytest

from prefstore import store

pytestmark = pytest.mark.both_backends

VERDICT = {"outcome": "choice", "choice": 1, "ranking": None, "strength": None,
           "display_order": [0, 1], "rationale": None,
           "metadata": {"probs": [0.25, 0.75], "usage": {"prompt_tokens": 200,
                                                         "completion_tokens": 2}}}
STATE_COLUMNS = ("item_id", "status", "kind", "reason", "raw", "attempts", "prompt_tokens",
                 "completion_tokens", "judgment_id")


def seed(db, n=3, name="p"):
    project = store.create_project(db, name)
    ids = store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": f"answer {i}.{k}", "system": f"sys{k}"} for k in range(2)]}
        for i in range(n)])
    return project, ids


def states(db, project_id):
    return [tuple(row[c] for c in STATE_COLUMNS) for row in store.judge_states(db, project_id)]


def fail(db, project, rater, item_id, raw="Maybe A?", attempts=2, usage=(100, 6)):
    return store.save_judge_failure(
        db, project_id=project["id"], rater_id=rater["id"], item_id=item_id,
        kind="unparseable", reason=f"unparseable answer {raw!r}", raw=raw, attempts=attempts,
        usage={"prompt_tokens": usage[0], "completion_tokens": usage[1]})


def verdict(db, project, rater, item_id, attempts=2, usage=(200, 2)):
    return store.save_judge_verdict(
        db, project_id=project["id"], rater_id=rater["id"], item_id=item_id, judgment=VERDICT,
        attempts=attempts, usage={"prompt_tokens": usage[0], "completion_tokens": usage[1]})


def test_todo_items_carry_their_texts_but_no_system_names(db):
    project, ids = seed(db, n=3)
    judge = store.get_or_create_rater(db, "judge", "llm")
    todo = store.judge_todo(db, project["id"], judge["id"], limit=2)
    assert [(i["id"], i["external_id"], i["prompt"], i["messages"]) for i in todo] == [
        (ids[0], "q0", "prompt 0", None), (ids[1], "q1", "prompt 1", None)]
    assert [r["text"] for r in todo[1]["responses"]] == ["answer 1.0", "answer 1.1"]
    assert [i["id"] for i in store.judge_todo(db, project["id"], judge["id"], after=ids[1])] == [
        ids[2]]
    assert store.count_judge_todo(db, project["id"], "judge") == 3
    # A judge that never ran has every item to do.
    assert store.count_judge_todo(db, project["id"], "nobody") == 3
    assert store.has_judge_todo(db, project["id"], "nobody") is True


def test_state_moves_pending_failed_retried_done(db):
    project, (a, b, c) = seed(db, n=3)
    judge = store.get_or_create_rater(db, "judge", "llm")
    store.mark_judge_pending(db, project["id"], judge["id"], [a, b])
    assert states(db, project["id"]) == [(a, "pending", None, None, None, 0, 0, 0, None),
                                         (b, "pending", None, None, None, 0, 0, 0, None)]

    assert fail(db, project, judge, a) is True
    judgment_id, created = verdict(db, project, judge, b)
    assert created is True
    assert states(db, project["id"]) == [
        (a, "failed", "unparseable", "unparseable answer 'Maybe A?'", "Maybe A?", 2, 100, 6, None),
        (b, "done", None, None, None, 2, 200, 2, judgment_id)]
    # Unparseable answers never become judgments.
    assert [(j["item_id"], j["submission_id"], j["kind"]) for j in
            store.list_judgments(db, project_id=project["id"])] == [(b, f"judge:{b}", "llm")]

    # Failed items wait for --retry-failed; done ones are never asked again.
    todo = store.judge_todo(db, project["id"], judge["id"])
    assert [i["id"] for i in todo] == [c]
    retry = store.judge_todo(db, project["id"], judge["id"], retry_failed=True)
    assert [i["id"] for i in retry] == [a, c]
    assert store.count_judge_todo(db, project["id"], "judge") == 1
    assert store.count_judge_todo(db, project["id"], "judge", retry_failed=True) == 2

    # A retry that fails again keeps the newest raw answer and adds the attempts.
    store.mark_judge_pending(db, project["id"], judge["id"], [a])
    assert states(db, project["id"])[0][:2] == (a, "pending")
    fail(db, project, judge, a, raw="A or B", attempts=2, usage=(100, 4))
    assert states(db, project["id"])[0] == (
        a, "failed", "unparseable", "unparseable answer 'A or B'", "A or B", 4, 200, 10, None)
    # A parseable retry turns it into a verdict.
    retried_id, _ = verdict(db, project, judge, a, attempts=2, usage=(200, 2))
    assert states(db, project["id"])[0] == (a, "done", None, None, None, 6, 400, 12, retried_id)


def test_a_verdict_is_stored_once_and_a_late_failure_does_not_undo_it(db):
    project, (a,) = seed(db, n=1)
    judge = store.get_or_create_rater(db, "judge", "llm")
    first, created = verdict(db, project, judge, a)
    again, created_again = verdict(db, project, judge, a, attempts=0, usage=(0, 0))
    assert (again, created, created_again) == (first, True, False)
    assert fail(db, project, judge, a) is False
    assert states(db, project["id"]) == [(a, "done", None, None, None, 2, 200, 2, first)]
    assert store.count_judgments(db, project["id"]) == 1
    assert store.has_judge_todo(db, project["id"], "judge") is False


def test_the_raw_answer_is_bounded_and_storable(db):
    project, (a, b) = seed(db, n=2)
    judge = store.get_or_create_rater(db, "judge", "llm")
    long = "x" * (store.RAW_MAX_CHARS + 500)
    fail(db, project, judge, a, raw=long)
    fail(db, project, judge, b, raw="nul\x00 and a lone surrogate \ud800")
    raws = [row["raw"] for row in store.judge_states(db, project["id"])]
    assert raws == ["x" * store.RAW_MAX_CHARS, "nul\ufffd and a lone surrogate ?"]


def test_failed_items_are_not_pending(db):
    project, (a, b) = seed(db, n=2)
    judge = store.get_or_create_rater(db, "judge", "llm")
    fail(db, project, judge, a)
    assert store.has_judge_todo(db, project["id"], "judge") is True
    verdict(db, project, judge, b)
    assert store.has_judge_todo(db, project["id"], "judge") is False
    assert store.count_judge_todo(db, project["id"], "judge", retry_failed=True) == 1


def test_usage_sums_calls_and_tokens_per_judge(db):
    project, (a, b, c, d) = seed(db, n=4)
    other, _ = seed(db, n=1, name="other")
    server = store.get_or_create_rater(db, "server-judge", "llm")
    local = store.get_or_create_rater(db, "local-judge", "llm")
    verdict(db, project, server, a, attempts=2, usage=(200, 2))
    verdict(db, project, server, b, attempts=0, usage=(0, 0))  # answered from the cache
    fail(db, project, server, c, attempts=4, usage=(400, 30))
    store.mark_judge_pending(db, project["id"], server["id"], [d])
    verdict(db, project, local, a, attempts=0, usage=(0, 0))  # a local judge
    verdict(db, other, server, store.judge_todo(db, other["id"], server["id"])[0]["id"])
    assert store.judge_usage(db, project["id"], ["configured-judge", "server-judge"]) == {
        "configured-judge": {"calls": 0, "tokens": {"prompt": 0, "completion": 0},
                             "labelled": 0, "failed": 0, "pending": 4},
        "local-judge": {"calls": 0, "tokens": {"prompt": 0, "completion": 0},
                        "labelled": 1, "failed": 0, "pending": 3},
        "server-judge": {"calls": 6, "tokens": {"prompt": 600, "completion": 32},
                         "labelled": 2, "failed": 1, "pending": 1},
    }
    assert store.judge_usage(db, project["id"] + 100) == {}


def test_the_response_cache_is_shared_across_connections(db, db_path):
    cache = store.JudgeCache(db)
    response = {"model": "m", "choices": [{"message": {"content": "A\x00"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    assert cache.get("k1") is None
    cache.put("k1", response)
    cache.put("k2", {"choices": []})
    cache.put("k2", {"choices": [], "replaced": True})
    other = store.connect(db_path)
    try:
        again = store.JudgeCache(other)
        assert again.get("k1") == response
        assert again.get("k2") == {"choices": [], "replaced": True}
        assert len(again) == 2
    finally:
        other.close()
    assert list(db.query("SELECT key, model FROM judge_cache ORDER BY key")) == [
        {"key": "k1", "model": "m"}, {"key": "k2", "model": None}]


def test_last_annotate_job(db):
    project, _ = seed(db, n=1)
    assert store.last_annotate_job(db, project["id"]) is None
    job = store.enqueue_job(db, "annotate", project_id=project["id"])
    store.enqueue_job(db, "refit", project_id=project["id"])
    assert store.last_annotate_job(db, project["id"]) == {"id": job, "status": "queued",
                                                          "finished_at": None}
