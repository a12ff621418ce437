"""The server judge ("backend": "openai") against a scripted server and a real one.

The scripted server (stdlib ``http.server``) replays chat-completion bodies from
``tests/fixtures/openai/`` and scripted errors, so the exact probabilities,
attempts and delays can be pinned. The real one is ``transformers serve`` with
the tiny local models (``tests/judge_server.py``), driven by the real ``openai``
client: end to end, parse failures, the cache, concurrency and a restart.
"""

import json
import logging
import math
import os
import subprocess
import sys
import threading
import time

import openai
import pytest

from prefstore.errors import InvalidInput, MissingDependency
from prefstore.judges import (
    JUDGE_BACKENDS,
    JudgeConfig,
    JudgeFailure,
    JudgeServerError,
    LogprobsUnavailable,
    MemoryCache,
    ServerJudge,
    ServerUnavailable,
    annotate_items,
    check_connection,
    load_judge,
)
from prefstore.judges import server as server_module
from prefstore.judges.answers import label_probs_from_logprobs, parse_answer
from prefstore.judges.base import listwise_instruction, pairwise_instruction
from prefstore.judges.cache import cache_key
from prefstore.judges.ratelimit import RateLimiter
from tests.judge_server import (
    ANSWERING_MODEL,
    FIXTURES,
    RANDOM_MODEL,
    Reply,
    ScriptedServer,
    fixture,
    free_port,
    serving_available,
)

# The fixtures' logprobs are logs of round numbers to 8 decimals.
ATOL = 1e-7
# Slack for thread wake-ups on a loaded 2-core machine.
TIMING_SLACK = 0.5
MODEL = "scripted-judge"

ITEM = {"prompt": "What is the capital of France?", "responses": ["Paris.", "Lyon, I think."]}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    # Backoff without a Retry-After is exercised for its count, not its length.
    monkeypatch.setattr(server_module, "INITIAL_RETRY_DELAY", 0.01)
    monkeypatch.setattr(server_module, "MAX_RETRY_DELAY", 0.02)


def config(base_url, **settings):
    settings.setdefault("model", MODEL)
    return JudgeConfig(backend="openai", base_url=base_url, **settings)


def judge_for(server, cache=None, http_client=None, **settings):
    return ServerJudge(config(server.base_url, **settings), cache=cache, http_client=http_client)


def by_shown_first(replies):
    """Answer with ``replies[text]`` when ``text`` is the response shown as A."""

    def respond(body, n):
        content = body["messages"][0]["content"]
        for text, reply in replies.items():
            if f"[Response A]\n{text}\n" in content:
                return reply
        raise AssertionError(content)

    return respond


def always(reply):
    return lambda body, n: reply


def text_reply(content, usage=(100, 1)):
    body = fixture("text_answer_b.json")
    body["choices"][0]["message"]["content"] = content
    body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                     "total_tokens": sum(usage)}
    return Reply(body)


P_A = [0.81 / 0.96, 0.15 / 0.96]  # logprobs_answer_a: A 0.8 + " A" 0.01, B 0.15
P_B = [0.05 / 0.95, 0.90 / 0.95]  # logprobs_answer_b: A 0.05, B 0.9


def assert_rows(got, want):
    assert len(got) == len(want)
    for row, expected in zip(got, want):
        assert row == pytest.approx(expected, abs=ATOL)


class RequestLog:
    """Counts chat requests through an httpx event hook on the judge's own client."""

    def __init__(self):
        self.bodies = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def client(self):
        return openai.DefaultHttpxClient(
            event_hooks={"request": [self._request], "response": [self._response]})

    def _request(self, request):
        if request.url.path.endswith("/chat/completions"):
            with self._lock:
                self.bodies.append(json.loads(request.content))
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _response(self, response):
        if response.request.url.path.endswith("/chat/completions"):
            with self._lock:
                self.in_flight -= 1


# ---------------------------------------------------------------- config


BRIEF_CONFIG = {
    "backend": "openai", "base_url": "http://gpu-box:8000/v1",
    "model": "meta-llama/Llama-3.1-70B-Instruct", "api_key_env": "PREFSTORE_JUDGE_API_KEY",
    "concurrency": 8, "requests_per_minute": 600, "timeout_s": 120, "max_retries": 5,
    "temperature": 0, "max_tokens": 16, "logprobs": "auto", "samples": 1, "allow_tie": False,
}


def test_config_round_trips():
    config = JudgeConfig.from_dict(BRIEF_CONFIG)
    assert config.base_url == "http://gpu-box:8000/v1" and config.concurrency == 8
    assert JudgeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_url": None}, '"base_url" is required for the "openai" backend'),
        ({"base_url": "gpu-box:8000/v1"}, '"base_url" must be an http(s) URL'),
        ({"base_url": "ftp://gpu-box/v1"}, '"base_url" must be an http(s) URL'),
        ({"api_key_env": "sk-live-123"}, '"api_key_env" must be the name of an environment'),
        ({"api_key_env": ""}, '"api_key_env" must be the name'),
        ({"concurrency": 0}, '"concurrency" must be an integer >= 1, got 0'),
        ({"concurrency": 1000}, '"concurrency" must be an integer <= 256, got 1000'),
        ({"requests_per_minute": 0}, '"requests_per_minute" must be a number > 0, got 0'),
        ({"requests_per_minute": "fast"}, '"requests_per_minute" must be a number > 0'),
        ({"timeout_s": -1}, '"timeout_s" must be a number > 0, got -1'),
        ({"timeout_s": True}, '"timeout_s" must be a number > 0, got True'),
        ({"max_retries": -1}, '"max_retries" must be an integer >= 0, got -1'),
        ({"temperature": 3}, '"temperature" must be a number >= 0 and <= 2, got 3'),
        ({"max_tokens": 0}, '"max_tokens" must be an integer >= 1, got 0'),
        ({"logprobs": "yes"}, '"logprobs" must be "auto", true or false, got \'yes\''),
        ({"logprobs": 1}, '"logprobs" must be "auto", true or false, got 1'),
        ({"samples": 0}, '"samples" must be an integer >= 1, got 0'),
        ({"samples": 3}, '"samples" of 3 needs "temperature" > 0'),
        ({"samples": 3, "temperature": 1.0, "logprobs": True}, '"samples" > 1 applies to text'),
        ({"rationale": True}, '"rationale" is not supported by the "openai" backend'),
        ({"api_base": "x"}, 'unknown field "api_base"'),
        ({"backend": "api"}, '"backend" must be one of generative, reward, openai, got \'api\''),
    ],
)
def test_config_names_the_bad_field(change, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        JudgeConfig.from_dict({**BRIEF_CONFIG, **change})


def test_a_pasted_key_is_not_echoed_in_the_error():
    with pytest.raises(InvalidInput) as info:
        JudgeConfig.from_dict({**BRIEF_CONFIG, "api_key_env": "sk-proj-SECRET-value"})
    assert "SECRET" not in str(info.value)


def test_registry_has_the_server_backend():
    assert JUDGE_BACKENDS["openai"] is ServerJudge


def test_config_and_package_import_without_torch_transformers_or_openai():
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'openai', 'httpx', 'httpx2'):\n"
        "    sys.modules[m] = None\n"
        "import prefstore.judges as j\n"
        "from prefstore.errors import MissingDependency\n"
        f"c = j.JudgeConfig.from_dict({BRIEF_CONFIG!r})\n"
        "assert j.JudgeConfig.from_dict(c.to_dict()) == c\n"
        "try:\n"
        "    j.load_judge(c)\n"
        "except MissingDependency as e:\n"
        "    assert \"pip install 'prefstore[serve]'\" in str(e), e\n"
        "else:\n"
        "    raise AssertionError('no MissingDependency')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_missing_openai_raises_missing_dependency(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependency, match=r"pip install 'prefstore\[serve\]'"):
        load_judge(BRIEF_CONFIG)


def test_a_cache_is_refused_by_local_judges():
    with pytest.raises(InvalidInput, match='a response cache applies to the "openai" backend'):
        load_judge({"model": "m"}, cache=MemoryCache())


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("A", ("A", "B"), "A"),
        (" B.\n", ("A", "B"), "B"),
        ("B!", ("A", "B"), "B"),
        ("Tie", ("A", "B", "tie"), "tie"),
        ("tie.", ("A", "B", "tie"), "tie"),
        ("tie", ("A", "B"), None),
        ("C", ("A", "B", "C"), "C"),
        ("C", ("A", "B"), None),
        ("a", ("A", "B"), None),
        ("A or B", ("A", "B"), None),
        ("Response A", ("A", "B"), None),
        ("**A**", ("A", "B"), None),
        ("A..", ("A", "B"), None),
        ("", ("A", "B"), None),
        (None, ("A", "B"), None),
    ],
)
def test_text_answers_parse_strictly(text, labels, expected):
    assert parse_answer(text, labels) == expected


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        ("logprobs_answer_a.json", ("A", "B"), P_A),
        ("logprobs_answer_b.json", ("A", "B"), P_B),
        # The leading newline is skipped; the answer position is the second token.
        ("logprobs_newline_first.json", ("A", "B"), [0.6, 0.4]),
        # "tie" and " Tie" are summed; "a" is not A.
        ("logprobs_tie.json", ("A", "B", "tie"), [0.15 / 0.98, 0.03 / 0.98, 0.8 / 0.98]),
        ("logprobs_no_label.json", ("A", "B"), None),
        ("text_answer_b.json", ("A", "B"), None),
    ],
)
def test_label_probabilities_from_top_logprobs(name, labels, expected):
    probs = label_probs_from_logprobs(fixture(name), labels)
    if expected is None:
        assert probs is None
    else:
        assert probs == pytest.approx(expected, abs=ATOL)


def test_fixtures_parse_as_openai_chat_completions():
    from openai.types.chat import ChatCompletion

    for path in sorted(FIXTURES.glob("*.json")):
        if not path.name.startswith("error_"):
            ChatCompletion.model_validate(json.loads(path.read_text()))


def test_cache_key_covers_every_setting_that_changes_the_answer():
    messages = [{"role": "user", "content": "q"}]
    base = dict(temperature=0.0, max_tokens=16, logprobs=True, top_logprobs=20, sample=0, seed=0)
    key = cache_key("m", messages, [0, 1], **base)
    assert key == cache_key("m", [dict(messages[0])], [0, 1], **base)
    changed = [
        cache_key("m2", messages, [0, 1], **base),
        cache_key("m", [{"role": "user", "content": "q2"}], [0, 1], **base),
        cache_key("m", messages, [1, 0], **base),
    ] + [
        cache_key("m", messages, [0, 1], **{**base, name: value})
        for name, value in [("temperature", 0.5), ("max_tokens", 8), ("logprobs", False),
                            ("sample", 1), ("seed", 7)]
    ]
    assert len({key, *changed}) == len(changed) + 1


def test_rate_limiter_spaces_requests_and_defer_pauses_everyone():
    limiter = RateLimiter(per_minute=1200)  # one every 50 ms
    start = time.monotonic()
    for _ in range(5):
        limiter.acquire()
    assert 0.2 - 0.01 <= time.monotonic() - start < 0.2 + TIMING_SLACK
    limiter = RateLimiter(per_minute=None)
    limiter.defer(0.3)
    start = time.monotonic()
    limiter.acquire()
    assert 0.3 - 0.01 <= time.monotonic() - start < 0.3 + TIMING_SLACK
    stop = threading.Event()
    stop.set()
    limiter.defer(5)
    assert limiter.acquire(stop) is False


# ---------------------------------------------------------------- connection check


def test_check_connection_lists_the_served_models():
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        info = check_connection({"backend": "openai", "base_url": server.base_url,
                                 "model": MODEL})
    assert info["served"] == [MODEL] and info["model"] == MODEL
    assert info["base_url"] == server.base_url and info["latency_ms"] > 0


def test_a_model_not_served_names_model_and_lists_what_is():
    models = [f"org/model-{i}" for i in range(12)]
    with ScriptedServer(always(Reply({})), models=models) as server:
        with pytest.raises(JudgeServerError) as info:
            check_connection(config(server.base_url, model="org/other"))
    assert str(info.value) == (
        f"\"model\": 'org/other' is not served by {server.base_url}; it serves "
        + ", ".join(models[:10]) + " (+2 more)"
    )


def test_an_unreachable_server_names_base_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(JudgeServerError, match=f'^"base_url": cannot reach {url} '):
        check_connection(config(url))


def test_a_url_without_v1_says_so():
    with ScriptedServer(always(Reply({}))) as server:
        url = server.base_url.removesuffix("/v1")
        with pytest.raises(JudgeServerError, match=r"has no /models \(HTTP 404\); the URL usually"):
            check_connection(config(url))


def test_a_missing_key_variable_names_api_key_env(monkeypatch):
    monkeypatch.delenv("PREFSTORE_TEST_KEY", raising=False)
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(JudgeServerError,
                       match='^"api_key_env": the environment variable PREFSTORE_TEST_KEY is not set$'):
        load_judge(config(url, api_key_env="PREFSTORE_TEST_KEY"))


def test_a_refused_key_names_api_key_env(monkeypatch):
    monkeypatch.setenv("PREFSTORE_TEST_KEY", "sk-wrong")
    with ScriptedServer(always(Reply({})), api_key="sk-right") as server:
        with pytest.raises(JudgeServerError, match='^"api_key_env": .* refused the key in '
                                                   "PREFSTORE_TEST_KEY"):
            check_connection(config(server.base_url, api_key_env="PREFSTORE_TEST_KEY"))
        with pytest.raises(JudgeServerError, match="needs an API key"):
            check_connection(config(server.base_url))


def test_the_key_is_sent_but_never_shown_or_logged(monkeypatch, caplog):
    secret = "sk-test-7d41c0ffee"
    monkeypatch.setenv("PREFSTORE_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json"))),
                        api_key=secret) as server:
        judge = judge_for(server, api_key_env="PREFSTORE_TEST_KEY")
        result = judge.judge_items([ITEM])[0]
    assert result.choice == 0
    assert all(headers["authorization"] == f"Bearer {secret}"
               for _, _, headers in server.requests)
    shown = [repr(judge), repr(judge.config), str(judge.config.to_dict()), caplog.text,
             json.dumps(result.to_judgment())]
    assert not any(secret in text for text in shown)


def test_requests_carry_no_client_telemetry_headers():
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        judge_for(server, concurrency=1).judge_items([ITEM])
    assert len(server.requests) == 2
    assert sorted(server.requests[0][2]) == [
        "accept", "accept-encoding", "authorization", "connection", "content-length",
        "content-type", "host", "user-agent", "x-stainless-read-timeout",
        "x-stainless-retry-count"]


# ---------------------------------------------------------------- verdicts from logprobs


def test_a_pair_is_judged_in_both_orders_from_logprobs():
    replies = {"Paris.": Reply(fixture("logprobs_answer_a.json")),
               "Lyon, I think.": Reply(fixture("logprobs_answer_b.json"))}
    # Keys other than prompt/messages/responses, like system names, never reach the server.
    item = {**ITEM, "systems": ["secret-system-x", "secret-system-y"]}
    with ScriptedServer(by_shown_first(replies)) as server:
        result = judge_for(server).judge_items([item])[0]
    prompt, (a, b) = ITEM["prompt"], ITEM["responses"]
    # The two orders are sent concurrently, so they may arrive in either order.
    assert sorted(server.bodies(), key=json.dumps) == sorted([
        {"model": MODEL, "messages": [{"role": "user", "content": pairwise_instruction(prompt, *shown)}],
         "temperature": 0.0, "max_tokens": 16, "seed": 0, "logprobs": True, "top_logprobs": 20}
        for shown in [(a, b), (b, a)]
    ], key=json.dumps)
    assert "secret-system" not in json.dumps(server.bodies())
    assert result.orders == [[0, 1], [1, 0]]
    assert_rows(result.per_order_probs, [P_A, P_B])
    expected = [(P_A[0] + P_B[1]) / 2, (P_A[1] + P_B[0]) / 2]
    assert result.probs == pytest.approx(expected, abs=ATOL)
    assert result.choice == 0
    assert result.confidence == pytest.approx(expected[0] - expected[1], abs=ATOL)
    assert result.swap_consistent is True
    assert result.answer_mode == "logprobs"
    assert result.usage == {"prompt_tokens": 224, "completion_tokens": 2, "requests": 2,
                            "cached": 0}
    metadata = result.to_judgment()["metadata"]
    assert metadata["usage"] == result.usage and metadata["answer_mode"] == "logprobs"


def test_tie_probability_comes_from_tie_tokens():
    with ScriptedServer(always(Reply(fixture("logprobs_tie.json")))) as server:
        result = judge_for(server, allow_tie=True).judge_items([ITEM])[0]
    assert "or tie if they are equally good" in server.bodies()[0]["messages"][0]["content"]
    per_order = [0.15 / 0.98, 0.03 / 0.98, 0.8 / 0.98]
    assert_rows(result.per_order_probs, [per_order, per_order])
    assert result.probs == pytest.approx([0.09 / 0.98, 0.09 / 0.98], abs=ATOL)
    assert result.p_tie == pytest.approx(0.8 / 0.98, abs=ATOL)
    assert result.choice == "tie"
    assert result.to_judgment()["outcome"] == "tie"


def test_a_slate_is_judged_as_every_pair_in_both_orders():
    item = {"prompt": "Name a city.", "responses": ["Paris.", "Lyon, I think.", "Nice."]}
    replies = {"Paris.": Reply(fixture("logprobs_answer_a.json")),
               "Lyon, I think.": Reply(fixture("logprobs_answer_b.json")),
               "Nice.": Reply(fixture("logprobs_answer_b.json"))}
    with ScriptedServer(by_shown_first(replies)) as server:
        result = judge_for(server).judge_items([item])[0]
    assert result.orders == [[0, 1], [1, 0], [0, 2], [2, 0], [1, 2], [2, 1]]
    assert len(server.requests) == 6
    assert result.ranking[0] == 0 and result.choice == 0
    assert math.isclose(sum(result.probs), 1.0, abs_tol=1e-9)


def test_listwise_slates_ask_for_one_letter():
    item = {"prompt": "Name a city.", "responses": ["Paris.", "Lyon, I think.", "Nice."]}
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        result = judge_for(server, slate_mode="listwise", listwise_shuffles=2).judge_items([item])[0]
    assert len(result.orders) == 2
    asked = sorted(b["messages"][0]["content"] for b in server.bodies())
    assert asked == sorted(listwise_instruction("Name a city.", [item["responses"][j] for j in o])
                           for o in result.orders)
    # A: 0.81, B: 0.15, C absent from top_logprobs: 0.
    assert result.per_order_probs[0] == pytest.approx([0.81 / 0.96, 0.15 / 0.96, 0.0], abs=ATOL)


# ---------------------------------------------------------------- verdicts from text


def test_without_logprobs_auto_parses_the_text():
    with ScriptedServer(always(Reply(fixture("text_answer_b.json")))) as server:
        result = judge_for(server).judge_items([ITEM])[0]
    # "B." in both orders: position bias, caught as an inconsistent swap.
    assert result.answer_mode == "text"
    assert result.per_order_probs == [[0.0, 1.0], [0.0, 1.0]]
    assert result.probs == [0.5, 0.5]
    assert (result.choice, result.confidence, result.swap_consistent) == (0, 0.0, False)


def test_samples_vote_and_the_shares_are_the_probabilities():
    def respond(body, n):
        content = body["messages"][0]["content"]
        paris_first = "[Response A]\nParis.\n" in content
        answer = ("A" if body["seed"] < 2 else "B") if paris_first else "B"
        return text_reply(answer)

    with ScriptedServer(respond) as server:
        judge = judge_for(server, samples=3, temperature=0.7, logprobs=False)
        result = judge.judge_items([ITEM])[0]
    assert sorted((b["seed"], "logprobs" in b) for b in server.bodies()) == [
        (0, False), (0, False), (1, False), (1, False), (2, False), (2, False)]
    assert_rows(result.per_order_probs, [[2 / 3, 1 / 3], [0.0, 1.0]])
    assert result.probs == pytest.approx([5 / 6, 1 / 6], abs=1e-12)
    assert result.confidence == pytest.approx(2 / 3, abs=1e-12)
    assert result.swap_consistent is True


def test_an_unparseable_answer_fails_the_item_with_its_raw_text():
    with ScriptedServer(always(Reply(fixture("logprobs_no_label.json")))) as server:
        failure = judge_for(server).judge_items([ITEM])[0]
    assert isinstance(failure, JudgeFailure)
    assert failure.to_record() == {
        "status": "failed", "kind": "unparseable",
        "reason": "unparseable answer 'The first response is better.' (expected exactly one "
                  "of A, B)",
        "raw": "The first response is better.", "attempts": 2,
        "usage": {"prompt_tokens": 224, "completion_tokens": 12},
    }


def test_forced_logprobs_without_an_answer_token_is_a_failure():
    with ScriptedServer(always(Reply(fixture("logprobs_no_label.json")))) as server:
        failure = judge_for(server, logprobs=True).judge_items([ITEM])[0]
    assert failure.kind == "no_answer_token" and failure.raw == "The first response is better."


def test_forced_logprobs_from_a_server_without_them_stops_the_run():
    with ScriptedServer(always(Reply(fixture("text_answer_b.json")))) as server:
        with pytest.raises(LogprobsUnavailable, match='"logprobs" is true but .* returns no'):
            judge_for(server, logprobs=True).judge_items([ITEM])


def test_a_server_refusing_logprobs_is_asked_again_without_them():
    def respond(body, n):
        if body.get("logprobs"):
            return Reply(fixture("error_400_logprobs.json"), status=400)
        return text_reply("A")

    with ScriptedServer(respond) as server:
        judge = judge_for(server, concurrency=1)
        outcomes = list(judge.iter_outcomes([ITEM, {**ITEM, "prompt": "And of Italy?"}]))
    assert [("logprobs" in b) for b in server.bodies()] == [True, False, False, False, False]
    assert [o.requests for o in outcomes] == [3, 2]
    assert all(o.ok and o.result.answer_mode == "text" for o in outcomes)


TGI_TOP_N_TOKENS = {"error": "Input validation error: `top_n_tokens` must be >= 0 and <= 5. "
                               "Given: 20", "error_type": "validation"}


def test_tgi_capping_top_logprobs_is_asked_again_without_them():
    """Regression: TGI's 422 for top_logprobs > --max-top-n-tokens failed every item."""
    def respond(body, n):
        if body.get("logprobs"):
            return Reply(TGI_TOP_N_TOKENS, status=422)
        return text_reply("A")

    with ScriptedServer(respond) as server:
        outcome = next(judge_for(server, concurrency=1).iter_outcomes([ITEM]))
    assert outcome.ok and outcome.result.answer_mode == "text"
    assert [("logprobs" in b) for b in server.bodies()] == [True, False, False]


def test_tgi_error_bodies_keep_their_message():
    with ScriptedServer(always(Reply(TGI_TOP_N_TOKENS, status=422))) as server:
        outcome = next(judge_for(server, logprobs=True).iter_outcomes([ITEM]))
    assert outcome.failure.kind == "http_error"
    assert outcome.failure.raw == TGI_TOP_N_TOKENS["error"]
    assert outcome.failure.reason.startswith("HTTP 422: Input validation error: `top_n_tokens`")


# ---------------------------------------------------------------- HTTP errors and retries


@pytest.mark.parametrize(("headers", "delay"), [({"Retry-After": "1"}, 1.0),
                                                ({"retry-after-ms": "300"}, 0.3)])
def test_429_waits_as_long_as_retry_after_says(headers, delay):
    def respond(body, n):
        if n == 0:
            return Reply(fixture("error_429.json"), status=429, headers=headers)
        return Reply(fixture("logprobs_answer_a.json"))

    with ScriptedServer(respond) as server:
        outcome = next(judge_for(server, concurrency=1).iter_outcomes([ITEM]))
    assert outcome.ok and outcome.requests == 3
    gap = server.requests[1][0] - server.requests[0][0]
    assert delay - 0.01 <= gap < delay + TIMING_SLACK


def test_a_500_is_retried():
    def respond(body, n):
        if n == 0:
            return Reply(fixture("error_500.json"), status=500)
        return Reply(fixture("logprobs_answer_a.json"))

    with ScriptedServer(respond) as server:
        outcome = next(judge_for(server, concurrency=1).iter_outcomes([ITEM]))
    assert outcome.ok and outcome.requests == 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_500_after_every_retry_fails_the_item(concurrency):
    with ScriptedServer(always(Reply(fixture("error_500.json"), status=500))) as server:
        judge = judge_for(server, max_retries=2, concurrency=concurrency)
        outcome = next(judge.iter_outcomes([ITEM]))
    assert outcome.failure.kind == "http_error"
    assert outcome.failure.reason == "HTTP 500: Internal server error (3 attempts)"
    assert outcome.failure.raw == "Internal server error"
    assert outcome.failure.attempts == outcome.requests == 6 == len(server.requests)


def test_a_timeout_is_retried_and_the_item_fails_when_every_try_times_out():
    def respond(body, n):
        return Reply(fixture("logprobs_answer_a.json"), delay=1.0 if n == 0 else 0.0)

    with ScriptedServer(respond) as server:
        outcome = next(judge_for(server, concurrency=1, timeout_s=0.3).iter_outcomes([ITEM]))
    assert outcome.ok and outcome.requests == 3

    slow = always(Reply(fixture("logprobs_answer_a.json"), delay=1.0))
    with ScriptedServer(slow) as server:
        start = time.monotonic()
        outcome = next(judge_for(server, timeout_s=0.3, max_retries=1).iter_outcomes([ITEM]))
        elapsed = time.monotonic() - start
    assert outcome.failure.kind == "timeout"
    assert outcome.failure.reason == "timed out after 0.3 s (2 attempts)"
    assert outcome.failure.attempts == 4
    # Two orders in parallel, two tries of 0.3 s each.
    assert 0.6 - 0.01 <= elapsed < 0.6 + TIMING_SLACK + 0.3


@pytest.mark.parametrize(("content", "content_type", "raw"), [
    (b"<html>502 Bad Gateway</html>", "text/html", "<html>502 Bad Gateway</html>"),
    (b'{"choices": [', "application/json", '{"choices": ['),
    (b"[1, 2]", "application/json", "[1, 2]"),
])
def test_an_answer_that_is_not_a_json_object_fails_the_item(content, content_type, raw):
    """Regression: a body that claimed JSON but did not parse raised out of the run."""
    reply = Reply(content, content_type=content_type)
    with ScriptedServer(always(reply)) as server:
        outcome = next(judge_for(server).iter_outcomes([ITEM]))
    assert outcome.failure.to_record() == {
        "status": "failed", "kind": "http_error",
        "reason": "the server's answer is not a JSON object", "raw": raw, "attempts": 2,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
    }


def test_a_refused_request_is_not_retried():
    with ScriptedServer(always(Reply(fixture("error_400_context.json"), status=400))) as server:
        outcome = next(judge_for(server).iter_outcomes([ITEM]))
    assert outcome.failure.kind == "http_error" and outcome.failure.attempts == 2
    assert outcome.failure.reason.startswith("HTTP 400: This model's maximum context length is")
    assert outcome.failure.raw == fixture("error_400_context.json")["message"]


# ---------------------------------------------------------------- orchestration


def test_concurrency_limit_is_reached_and_respected():
    items = [ITEM] * 6
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json"))), latency=0.15) as server:
        report = annotate_items(judge_for(server, concurrency=3), items)
    assert report.stats["labelled"] == 6
    assert server.max_in_flight == 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_per_minute_spaces_every_request(concurrency):
    asked, granted = [], []
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        judge = judge_for(server, concurrency=concurrency, requests_per_minute=1200)
        acquire = judge._limiter.acquire

        def recorded(stop=None):
            asked.append(time.monotonic())
            ok = acquire(stop)
            granted.append(time.monotonic())
            return ok

        judge._limiter.acquire = recorded
        # Distinct items: at concurrency 1 a repeated item would come from the cache.
        annotate_items(judge, [{**ITEM, "prompt": f"Question {i}?"} for i in range(4)])
    assert len(granted) == len(server.requests) == 8
    # One every 50 ms from the first ask: a wait may end late under load, never early.
    for i, t in enumerate(sorted(granted)):
        assert t - min(asked) >= i * 0.05 - 0.001


@pytest.mark.parametrize("concurrency", [1, 4])
def test_annotate_reports_each_outcome_and_totals_then_answers_from_the_cache(concurrency):
    items = [ITEM, {**ITEM, "prompt": "And of Italy?"}, {**ITEM, "prompt": "Of Spain?"}]
    seen, progress = [], []
    cache = MemoryCache()
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        judge = judge_for(server, cache=cache, concurrency=concurrency)
        report = annotate_items(judge, items, on_outcome=seen.append,
                                progress=lambda done, total: progress.append((done, total)))
        again = annotate_items(judge, items)
    assert seen == report.outcomes and sorted(o.index for o in seen) == [0, 1, 2]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    stats = dict(report.stats, seconds=None)
    assert stats == {"labelled": 3, "failed": 0, "cached": 0, "requests": 6, "seconds": None,
                     "tokens": {"prompt": 672, "completion": 6}, "stopped": False}
    assert len(server.requests) == 6 and len(cache) == 6
    assert dict(again.stats, seconds=None) == {
        "labelled": 3, "failed": 0, "cached": 3, "requests": 0, "seconds": None,
        "tokens": {"prompt": 0, "completion": 0}, "stopped": False}
    first = {o.index: o.result.probs for o in report.outcomes}
    assert {o.index: o.result.probs for o in again.outcomes} == first


def test_failed_answers_are_not_cached():
    cache = MemoryCache()
    with ScriptedServer(always(Reply(fixture("logprobs_no_label.json")))) as server:
        judge = judge_for(server, cache=cache)
        judge.judge_items([ITEM])
        judge.judge_items([ITEM])
    assert len(cache) == 0 and len(server.requests) == 4


def test_concurrency_1_sends_from_the_callers_thread_and_2_from_a_pool():
    """Issue 14: at concurrency 1 no thread hand-off per request (it cost ~1 ms each)."""
    threads = {1: [], 2: []}
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        for concurrency, seen in threads.items():
            hook = {"request": [lambda request, seen=seen: seen.append(threading.current_thread())]}
            judge = judge_for(server, concurrency=concurrency,
                              http_client=openai.DefaultHttpxClient(event_hooks=hook))
            assert all(o.ok for o in judge.iter_outcomes([ITEM, {**ITEM, "prompt": "Italy?"}]))
    # The first request of each judge is the connection check's GET /models.
    assert threads[1] == [threading.current_thread()] * 5
    assert len(threads[2]) == 5 and threading.current_thread() not in threads[2][1:]


def test_concurrency_1_gives_what_the_pool_gives():
    items = [ITEM,
             {"prompt": "Name a city.", "responses": ["Paris.", "Lyon, I think.", "Nice."]},
             {"prompt": "Say why.", "responses": ["Rambling.", "Lyon, I think."]},
             {**ITEM, "prompt": "And of Italy?"}]
    replies = {"Paris.": Reply(fixture("logprobs_answer_a.json")),
               "Lyon, I think.": Reply(fixture("logprobs_answer_b.json")),
               "Nice.": Reply(fixture("logprobs_answer_b.json")),
               "Rambling.": Reply(fixture("logprobs_no_label.json"))}
    runs = {}
    for concurrency in (1, 4):
        with ScriptedServer(by_shown_first(replies)) as server:
            outcomes = sorted(judge_for(server, concurrency=concurrency).iter_outcomes(items),
                              key=lambda o: o.index)
        runs[concurrency] = [
            (o.index, o.requests, o.cached, o.usage,
             o.result.to_judgment() if o.ok else o.failure.to_record()) for o in outcomes]
    assert runs[1] == runs[4]
    assert [(index, requests) for index, requests, *_ in runs[1]] == [(0, 2), (1, 6), (2, 2),
                                                                      (3, 2)]
    assert runs[1][2][4]["kind"] == "unparseable"


@pytest.mark.parametrize("concurrency", [1, 2])
def test_should_stop_ends_a_long_retry_after_wait(concurrency):
    reply = Reply(fixture("error_429.json"), status=429, headers={"Retry-After": "30"})
    with ScriptedServer(always(reply)) as server:
        judge = judge_for(server, concurrency=concurrency)
        start = time.monotonic()
        stopped_at = []

        def should_stop() -> bool:
            # Stop once every worker is in its 30 s wait (on a loaded machine the
            # second one may take a while to send), or give up after 10 s.
            if not stopped_at and (len(server.requests) >= concurrency
                                   or time.monotonic() - start > 10):
                stopped_at.append(time.monotonic())
            return bool(stopped_at)

        report = annotate_items(judge, [ITEM] * 3, should_stop=should_stop)
        elapsed = time.monotonic() - stopped_at[0]
    assert report.stats["stopped"] is True and report.outcomes == []
    assert len(server.requests) == concurrency
    assert elapsed < server_module.STOP_POLL_S + TIMING_SLACK


def test_should_stop_ends_the_run_after_the_requests_in_flight():
    seen = []
    with ScriptedServer(always(Reply(fixture("logprobs_answer_a.json")))) as server:
        report = annotate_items(judge_for(server, concurrency=1), [ITEM] * 10,
                                on_outcome=seen.append, should_stop=lambda: len(seen) >= 2)
    assert report.stats["stopped"] is True
    assert 2 <= report.stats["labelled"] <= 3 and len(server.requests) <= 8


# ---------------------------------------------------------------- a real server


@pytest.fixture(scope="module", autouse=True)
def _launch_early(request):
    # Start the servers before the scripted tests, so their imports overlap them.
    if serving_available() and not request.config.getoption("keyword"):
        request.getfixturevalue("served_processes")


def real_judge(served, name, http_client=None, **settings):
    return ServerJudge(config(served.base_url, model=served.model(name), **settings),
                       http_client=http_client)


REAL_ITEMS = [
    {"prompt": "What is the capital of France?", "responses": ["Paris.", "Lyon."]},
    {"prompt": "Explain why the sky is blue.", "responses": ["Rayleigh scattering.", "No idea"]},
    {"messages": [{"role": "user", "content": "Write a short poem about the sea."},
                  {"role": "assistant", "content": "The sea is blue and wide."},
                  {"role": "user", "content": "Make it longer."}],
     "responses": ["The sea is blue and wide, it rolls with every tide.", "Waves."]},
    {"prompt": "Say something.", "responses": ["The quick brown fox.", "The lazy dog."]},
]


@pytest.mark.llm
def test_real_server_check_connection(served):
    info = check_connection(config(served.base_url, model=served.model(ANSWERING_MODEL)))
    assert served.model(RANDOM_MODEL) in info["served"]
    with pytest.raises(JudgeServerError, match=f'"model": .* is not served by {served.base_url}; '
                                               f"it serves .*{ANSWERING_MODEL}"):
        check_connection(config(served.base_url, model="org/not-served"))


@pytest.mark.llm
def test_real_server_end_to_end(served):
    log = RequestLog()
    judge = real_judge(served, ANSWERING_MODEL, http_client=log.client(), concurrency=2)
    report = annotate_items(judge, REAL_ITEMS)
    assert report.stats["labelled"] == 4 and report.stats["failed"] == 0
    assert report.stats["requests"] == len(log.bodies) == 8
    # transformers serve ignores logprobs: the "A" of every answer is parsed as text,
    # so both orders name the first response shown and the swap is inconsistent.
    for outcome in report.outcomes:
        result = outcome.result
        assert result.answer_mode == "text"
        assert result.per_order_probs == [[1.0, 0.0], [1.0, 0.0]]
        assert (result.probs, result.choice, result.swap_consistent) == ([0.5, 0.5], 0, False)
        assert result.usage["prompt_tokens"] > 0 and result.usage["completion_tokens"] >= 2
    tokens = report.stats["tokens"]
    assert tokens["prompt"] == sum(o.result.usage["prompt_tokens"] for o in report.outcomes)
    assert tokens["completion"] == sum(o.result.usage["completion_tokens"]
                                       for o in report.outcomes)


@pytest.mark.llm
def test_real_server_gibberish_is_a_failure_not_a_verdict(served):
    report = annotate_items(real_judge(served, RANDOM_MODEL), REAL_ITEMS[:3])
    assert report.stats["labelled"] == 0 and report.stats["failed"] == 3
    for outcome in report.outcomes:
        failure = outcome.failure
        assert failure.kind == "unparseable" and failure.attempts == 2
        assert failure.raw and parse_answer(failure.raw, ("A", "B")) is None
        assert failure.reason.startswith("unparseable answer ")


@pytest.mark.llm
def test_real_server_second_run_is_served_from_the_cache(served):
    log = RequestLog()
    judge = real_judge(served, ANSWERING_MODEL, http_client=log.client())
    first = annotate_items(judge, REAL_ITEMS)
    assert len(log.bodies) == 8
    second = annotate_items(judge, REAL_ITEMS)
    assert len(log.bodies) == 8
    assert second.stats["requests"] == 0 and second.stats["cached"] == 4
    by_index = {o.index: o.result.probs for o in first.outcomes}
    assert {o.index: o.result.probs for o in second.outcomes} == by_index


@pytest.mark.llm
def test_real_server_requests_overlap_up_to_the_limit(served):
    log = RequestLog()
    judge = real_judge(served, ANSWERING_MODEL, http_client=log.client(), concurrency=3)
    items = [{**REAL_ITEMS[0], "prompt": f"Question {i}?"} for i in range(8)]
    report = annotate_items(judge, items)
    assert report.stats["labelled"] == 8
    assert 1 < log.max_in_flight <= 3


@pytest.mark.llm
def test_real_server_resume_after_a_restart(served):
    items = [{**REAL_ITEMS[1], "prompt": f"Why is the sky blue, take {i}?"} for i in range(8)]
    done = {}

    def store(outcome):
        done[outcome.index] = outcome
        if len(done) == 3:
            served.kill()

    judge = real_judge(served, ANSWERING_MODEL, concurrency=2, max_retries=1)
    with pytest.raises(ServerUnavailable, match="stopped answering") as info:
        annotate_items(judge, items, on_outcome=store)
    assert 3 <= len(done) < len(items) and all(o.ok for o in done.values())
    assert info.value.report.stats["labelled"] == len(done)

    served.restart()
    rest = [i for i in range(len(items)) if i not in done]
    log = RequestLog()
    # A new judge, as after a new process: nothing in its cache.
    resumed = real_judge(served, ANSWERING_MODEL, http_client=log.client(), concurrency=2)
    report = annotate_items(resumed, [items[i] for i in rest])
    assert report.stats["labelled"] == len(rest) and report.stats["failed"] == 0
    assert len(log.bodies) == 2 * len(rest)
    asked = {b["messages"][0]["content"] for b in log.bodies}
    for i in done:
        assert not any(items[i]["prompt"] in content for content in asked)
