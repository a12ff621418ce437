"""A judge behind an OpenAI-compatible server (vLLM, TGI, SGLang, Ollama, OpenAI,
``transformers serve``), spoken to with the official ``openai`` client.

It judges like the local generative judge: the same instructions (one user turn,
the server applies its own chat template), every pair in both display orders and
the two averaged, the same aggregation for slates, and the system names are never
shown. When the server returns ``top_logprobs`` the answer tokens' probabilities
give the verdict; otherwise the answer text is parsed strictly, with ``samples``
answers per display order voting (see ``prefstore.judges.answers``). An answer
that does not parse fails the item, with its raw text; it is never a verdict.

Requests run on a thread pool with the synchronous client: the callers (the CLI,
the worker, a Streamlit script, a notebook that already runs an event loop) are
synchronous, the work is waiting on sockets, which releases the GIL, and results
come back to the calling thread, so a caller may write them with a database
connection bound to that thread. The cache is read and written from that thread too.
At ``concurrency`` 1 there is no pool: the calling thread sends the requests itself,
one at a time, since handing each one to a thread and back cost more than the
``openai`` client itself against a server that answers at once (issue 14).

Retries are ours, not the client's (it is built with ``max_retries=0``): every
attempt must take a token from the shared rate limiter, a 429's ``Retry-After``
must pause every thread rather than one, the attempts of each item must be
counted, and an unreachable server must stop the run instead of failing every
remaining item one by one. The delays follow the client's own policy: the server's
``retry-after-ms`` or ``Retry-After`` when given (up to two minutes), else 0.5 s
doubling up to 8 s with up to 25% jitter.
"""

import email.utils
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from prefstore.errors import InvalidInput, MissingDependency, PrefstoreError
from prefstore.judges.aggregate import (
    aggregate_listwise,
    aggregate_pair,
    aggregate_pairs_slate,
    listwise_orders,
)
from prefstore.judges.answers import (
    answer_text,
    has_logprobs,
    label_probs_from_logprobs,
    parse_answer,
)
from prefstore.judges.base import (
    LABELS,
    SERVE_EXTRA_HINT,
    TIE_LABEL,
    JudgeConfig,
    JudgeResult,
    Progress,
    listwise_instruction,
    pairwise_instruction,
    rater_name,
    render_conversation,
    validate_items,
)
from prefstore.judges.cache import MemoryCache, ResponseCache, cache_key
from prefstore.judges.outcome import (
    HTTP_ERROR,
    NO_ANSWER_TOKEN,
    TIMEOUT,
    UNPARSEABLE,
    ItemOutcome,
    JudgeFailure,
    zero_usage,
)
from prefstore.judges.ratelimit import RateLimiter

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# A longer Retry-After is not waited for: the attempt fails (as the openai client does).
MAX_RETRY_AFTER = 120.0
# The most OpenAI and vLLM (its default max_logprobs) allow.
TOP_LOGPROBS = 20
CHECK_TIMEOUT_S = 10.0
SHOWN_MODELS = 10
CHAT_PATH = "/chat/completions"
# How often a run polls should_stop while it waits (for a completion, a backoff, the rate).
STOP_POLL_S = 0.25
# Servers without keys still get a bearer token: the client insists on one.
NO_KEY = "EMPTY"
# The client's telemetry headers (its version, the OS, the Python runtime): no
# OpenAI-compatible server needs them, and each header is handled again by the
# client, httpx and h11 on every request; dropping these 7 of 16 saves ~0.2 ms of CPU
# per request, a tenth of the overhead goal (issue 14).
TELEMETRY_HEADERS = (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
    "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async",
)


class JudgeServerError(InvalidInput):
    """The judge server cannot be used as configured; the message names the setting."""


class LogprobsUnavailable(InvalidInput):
    """``"logprobs": true`` but the server returns no logprobs."""


class ServerUnavailable(PrefstoreError):
    """The judge server stopped answering during a run; unjudged items can be resumed."""


class _Stopped(Exception):
    """The run was stopped while this request waited."""


class _LogprobsRejected(Exception):
    """The server refused the logprobs parameters (in "auto" mode, ask without them)."""


class _PolledStop:
    """The stop signal of a run at concurrency 1, where no other thread polls ``should_stop``.

    Duck-types the ``threading.Event`` the requests check: ``is_set`` asks
    ``should_stop`` (so nothing new is sent once it is true) and ``wait`` polls it
    every STOP_POLL_S, so a long ``Retry-After`` or rate-limit wait still ends on a stop.
    """

    def __init__(self, should_stop: Callable[[], bool] | None):
        self._should_stop = should_stop
        self._set = False

    def is_set(self) -> bool:
        if not self._set and self._should_stop is not None and self._should_stop():
            self._set = True
        return self._set

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, STOP_POLL_S))
        return True


def require_openai():
    """Import and return the ``openai`` package or raise MissingDependency."""
    try:
        import openai
    except ImportError as e:
        raise MissingDependency(
            f'the "openai" judge backend needs the openai package: {SERVE_EXTRA_HINT} ({e})'
        ) from e
    return openai


def resolve_api_key(config: JudgeConfig) -> str | None:
    """Return the API key from the environment variable ``api_key_env`` names.

    Raises
    ------
    JudgeServerError
        naming ``api_key_env`` when the variable is not set or empty.
    """
    import os

    if config.api_key_env is None:
        return None
    key = os.environ.get(config.api_key_env)
    if not key:
        raise JudgeServerError(
            f'"api_key_env": the environment variable {config.api_key_env} is not set'
        )
    return key


def make_client(config: JudgeConfig, http_client=None, timeout: float | None = None):
    """Return an ``openai.OpenAI`` client for the config, with the client's retries off.

    Its telemetry headers (TELEMETRY_HEADERS) are left out with ``openai.Omit``.
    """
    openai = require_openai()
    return openai.OpenAI(
        base_url=config.base_url,
        api_key=resolve_api_key(config) or NO_KEY,
        timeout=config.timeout_s if timeout is None else timeout,
        max_retries=0,
        default_headers=dict.fromkeys(TELEMETRY_HEADERS, openai.Omit()),
        http_client=http_client,
    )


def check_connection(config: JudgeConfig | dict, http_client=None) -> dict[str, Any]:
    """Check that the server answers and serves the model, before any judging.

    Returns ``{"base_url", "model", "served", "latency_ms"}``: the model ids the
    server lists at ``GET /models`` and the time that request took.

    Raises
    ------
    JudgeServerError
        one line naming the setting to fix: ``base_url`` (unreachable, not an
        OpenAI-compatible API), ``model`` (not served; lists what is) or
        ``api_key_env`` (variable missing, key refused).
    MissingDependency
        when the ``openai`` package is not installed.
    """
    config = _as_config(config)
    timeout = min(config.timeout_s, CHECK_TIMEOUT_S)
    return _check(make_client(config, http_client=http_client, timeout=timeout), config, timeout)


def _as_config(config):
    if isinstance(config, dict):
        config = JudgeConfig.from_dict(config)
    if not isinstance(config, JudgeConfig):
        raise InvalidInput(f"config must be a JudgeConfig or a dict, got {type(config).__name__}")
    if config.base_url is None:
        raise InvalidInput('"base_url" is required for the "openai" backend')
    return config


def _check(client, config, timeout):
    openai = require_openai()
    url = config.base_url
    start = time.perf_counter()
    try:
        served = [m.id for m in client.models.list().data]
    except openai.APITimeoutError:
        raise JudgeServerError(f'"base_url": {url} did not answer within {timeout:g} s') from None
    except openai.APIConnectionError as e:
        raise JudgeServerError(f'"base_url": cannot reach {url} ({_cause(e)})') from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        if config.api_key_env:
            raise JudgeServerError(
                f'"api_key_env": {url} refused the key in {config.api_key_env} '
                f"(HTTP {e.status_code})"
            ) from None
        raise JudgeServerError(
            f'"api_key_env": {url} needs an API key (HTTP {e.status_code}); '
            "name the environment variable that holds it"
        ) from None
    except openai.NotFoundError:
        raise JudgeServerError(
            f'"base_url": {url} has no /models (HTTP 404); the URL usually ends with /v1'
        ) from None
    except openai.APIStatusError as e:
        raise JudgeServerError(
            f'"base_url": {url}/models answered HTTP {e.status_code}: {_error_message(e)}'
        ) from None
    except (openai.OpenAIError, AttributeError, TypeError, ValueError) as e:
        raise JudgeServerError(
            f'"base_url": {url}/models did not answer like an OpenAI-compatible server '
            f"({type(e).__name__})"
        ) from None
    latency = (time.perf_counter() - start) * 1000
    if config.model not in served:
        shown = ", ".join(served[:SHOWN_MODELS]) or "nothing"
        more = f" (+{len(served) - SHOWN_MODELS} more)" if len(served) > SHOWN_MODELS else ""
        raise JudgeServerError(
            f'"model": {config.model!r} is not served by {url}; it serves {shown}{more}'
        )
    return {"base_url": url, "model": config.model, "served": served,
            "latency_ms": round(latency, 1)}


def _cause(error) -> str:
    cause = error.__cause__ or error.__context__
    return _one_line(str(cause) if cause is not None and str(cause) else str(error))


def _error_message(error) -> str:
    """Return the server's own message from an APIStatusError, on one line."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _one_line(body["message"], 500)
    # TGI answers {"error": "<message>", "error_type": ...}; the client hands over the string.
    if isinstance(body, str) and body.strip():
        return _one_line(body, 500)
    return _one_line(re.sub(r"^Error code: \d+ - ", "", str(error.message)), 500)


def _one_line(text, limit=200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuses_logprobs(message: str) -> bool:
    """Whether an HTTP 400/422 message is about the logprobs parameters.

    TGI calls ``top_logprobs`` ``top_n_tokens`` and caps it (``--max-top-n-tokens``,
    5 by default) below the 20 asked for.
    """
    low = message.lower()
    return "logprobs" in low or "top_n_tokens" in low


def retry_after_seconds(headers) -> float | None:
    """Return the delay a response asks for (``retry-after-ms``, then ``Retry-After``)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def backoff_seconds(retry: int) -> float:
    """Return the delay before retry number ``retry`` (1-based) when the server gave none."""
    delay = min(INITIAL_RETRY_DELAY * 2.0 ** (retry - 1), MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


@dataclass
class _Order:
    """One display order of one item: the prompt asked and the labels it may answer."""

    item: int
    position: int
    order: list[int]
    labels: tuple[str, ...]
    messages: list[dict]
    # Read by the shared aggregation; the server sees the whole prompt.
    truncated: bool = False
    # Cache keys by (logprobs, sample): each is hashed once, for the lookup and the put.
    keys: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass
class _Answer:
    """What the requests for one display order gave."""

    spec: _Order
    probs: list[float] | None = None
    mode: str | None = None
    failure: JudgeFailure | None = None
    requests: int = 0
    cached: int = 0
    fresh_usage: dict = field(default_factory=zero_usage)
    usage: dict = field(default_factory=zero_usage)
    # (cache key, response dict) of fresh responses whose answer could be read.
    usable: list = field(default_factory=list)


class ServerJudge:
    """Judge responses with a model behind an OpenAI-compatible server.

    Parameters
    ----------
    config : a JudgeConfig with ``backend="openai"``.
    cache : where responses are kept (default: a fresh MemoryCache).
    http_client : an ``openai.DefaultHttpxClient`` to send requests with (tests
        use it for event hooks); by default the client makes its own.
    check : run ``check_connection`` first (default), so a wrong ``base_url``,
        ``model`` or key fails here rather than on every item.

    Raises
    ------
    MissingDependency
        when the ``openai`` package is not installed.
    JudgeServerError
        naming the setting to fix, from the connection check.
    """

    def __init__(self, config: JudgeConfig, cache: ResponseCache | None = None,
                 http_client=None, check: bool = True):
        if config.backend != "openai":
            raise InvalidInput(f'ServerJudge needs "backend": "openai", got {config.backend!r}')
        self.config = config
        self.cache = MemoryCache() if cache is None else cache
        self._openai = require_openai()
        self._client = make_client(config, http_client=http_client)
        self._limiter = RateLimiter(config.requests_per_minute)
        self._logprobs_rejected = False
        self.server_info = None
        if check:
            timeout = min(config.timeout_s, CHECK_TIMEOUT_S)
            try:
                self.server_info = _check(self._client.with_options(timeout=timeout), config,
                                          timeout)
            except PrefstoreError:
                self._client.close()
                raise

    def __repr__(self) -> str:
        return f"ServerJudge(model={self.config.model!r}, base_url={self.config.base_url!r})"

    @property
    def name(self) -> str:
        """The rater name: the served model id (a local directory's name if it is one)."""
        return rater_name(self.config.model)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # ------------------------------------------------------------ the Judge interface

    def judge_items(
        self, items: Sequence[dict], progress: Progress | None = None
    ) -> list[JudgeResult | JudgeFailure]:
        """Judge each item; return, in item order, a JudgeResult or a JudgeFailure.

        ``progress(done, total)`` is called after each item.

        Raises
        ------
        ServerUnavailable
            when the server stops answering (connection errors after every retry).
        LogprobsUnavailable
            when ``"logprobs": true`` and the server returns none.
        """
        out: list[Any] = [None] * len(items)
        for outcome in self.iter_outcomes(items, progress=progress):
            out[outcome.index] = outcome.result if outcome.ok else outcome.failure
        return out

    def iter_outcomes(
        self,
        items: Sequence[dict],
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[ItemOutcome]:
        """Yield an ItemOutcome per item as soon as the item is done, in the caller's thread.

        At most ``concurrency`` requests are in flight, and only items whose display
        orders have started are held, so stopping loses the items in flight only.
        ``should_stop()`` is polled between completions (at concurrency 1, before
        each item and each request, and during waits): once true, nothing new is
        sent and the generator ends after the requests in flight.

        Raises
        ------
        ServerUnavailable, LogprobsUnavailable
            after yielding every item finished before the failure.
        """
        validate_items(items)
        concurrency = self.config.concurrency
        if concurrency == 1:
            yield from self._iter_inline(items, progress, should_stop)
            return
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="prefstore-judge")
        futures: dict = {}
        left: dict[int, int] = {}
        answers: dict[int, list[_Answer]] = {}
        pending_items = iter(enumerate(items))
        done = 0
        fatal = None
        try:
            while True:
                if should_stop is not None and not stop.is_set() and should_stop():
                    stop.set()
                # Keep the pool busy, holding few unfinished items.
                while not stop.is_set() and len(futures) < 2 * concurrency:
                    nxt = next(pending_items, None)
                    if nxt is None:
                        break
                    i, item = nxt
                    specs = self._orders_for(i, item)
                    left[i], answers[i] = len(specs), []
                    for spec in specs:
                        future = pool.submit(self._judge_order, spec, self._lookup(spec), stop)
                        futures[future] = spec
                if not futures:
                    break
                finished, _ = wait(list(futures), timeout=STOP_POLL_S,
                                   return_when=FIRST_COMPLETED)
                for future in finished:
                    spec = futures.pop(future)
                    try:
                        answer = future.result()
                    except _Stopped:
                        continue
                    except (ServerUnavailable, LogprobsUnavailable) as e:
                        fatal = fatal or e
                        stop.set()
                        continue
                    for key, response in answer.usable:
                        self.cache.put(key, response)
                    answers[spec.item].append(answer)
                    left[spec.item] -= 1
                    if left[spec.item] == 0:
                        outcome = self._outcome(items[spec.item], spec.item, answers.pop(spec.item))
                        done += 1
                        if progress is not None:
                            progress(done, len(items))
                        yield outcome
        finally:
            stop.set()
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
        if fatal is not None:
            raise fatal

    def _iter_inline(self, items, progress, should_stop) -> Iterator[ItemOutcome]:
        """Judge one request at a time in the caller's thread (``concurrency`` 1).

        The same steps as the pool's, in the same order per item: look the display
        order up in the cache, send what is missing, keep what is usable.
        """
        stop = _PolledStop(should_stop)
        for i, item in enumerate(items):
            # Polled between items too: an item the cache answers sends nothing.
            if stop.is_set():
                return
            answers = []
            for spec in self._orders_for(i, item):
                try:
                    answer = self._judge_order(spec, self._lookup(spec), stop)
                except _Stopped:
                    return
                for key, response in answer.usable:
                    self.cache.put(key, response)
                answers.append(answer)
            outcome = self._outcome(item, i, answers)
            if progress is not None:
                progress(i + 1, len(items))
            yield outcome

    # ------------------------------------------------------------ prompts

    def _orders_for(self, i: int, item: dict) -> list[_Order]:
        k = len(item["responses"])
        conversation = render_conversation(item)
        responses = item["responses"]
        if k == 2 or self.config.slate_mode == "pairs":
            allow_tie = self.config.allow_tie
            labels = ("A", "B", TIE_LABEL) if allow_tie else ("A", "B")
            orders = []
            for a, b in itertools.combinations(range(k), 2):
                orders += [[a, b], [b, a]]
            texts = [pairwise_instruction(conversation, responses[a], responses[b], allow_tie)
                     for a, b in orders]
        else:
            labels = tuple(LABELS[:k])
            orders = listwise_orders(k, self.config.listwise_shuffles, self.config.seed)
            texts = [listwise_instruction(conversation, [responses[j] for j in order])
                     for order in orders]
        return [
            _Order(i, n, order, labels, [{"role": "user", "content": text}])
            for n, (order, text) in enumerate(zip(orders, texts, strict=True))
        ]

    def build_request(self, spec: _Order, logprobs: bool, sample: int) -> dict:
        """Return the chat-completions request for one display order and sample."""
        config = self.config
        body = {
            "model": config.model,
            "messages": spec.messages,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "seed": config.seed + sample,
        }
        if logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = TOP_LOGPROBS
        return body

    def _key(self, spec: _Order, logprobs: bool, sample: int) -> str:
        key = spec.keys.get((logprobs, sample))
        if key is None:
            config = self.config
            key = spec.keys[logprobs, sample] = cache_key(
                config.model, spec.messages, spec.order, temperature=config.temperature,
                max_tokens=config.max_tokens, logprobs=logprobs, top_logprobs=TOP_LOGPROBS,
                sample=sample, seed=config.seed + sample,
            )
        return key

    def _logprob_flags(self) -> list[bool]:
        """Whether to ask for logprobs, in order of preference (auto: yes, then no)."""
        mode = self.config.logprobs
        if mode == "auto":
            return [False] if self._logprobs_rejected else [True, False]
        return [bool(mode)]

    def _lookup(self, spec: _Order) -> dict[tuple[bool, int], dict]:
        """Return the cached responses of a display order (read in the caller's thread)."""
        found = {}
        for flag in self._logprob_flags():
            for sample in range(self.config.samples):
                response = self.cache.get(self._key(spec, flag, sample))
                if response is not None:
                    found[(flag, sample)] = response
        return found

    # ------------------------------------------------------------ requests
    # (pool threads, or the caller's thread at concurrency 1)

    def _judge_order(
        self, spec: _Order, cached: dict, stop: threading.Event | _PolledStop
    ) -> _Answer:
        answer = _Answer(spec)
        labels = spec.labels
        flags = self._logprob_flags()
        flag = next((f for f in flags if (f, 0) in cached), flags[0])
        try:
            first = self._fetch(answer, spec, flag, 0, cached, stop)
        except _LogprobsRejected:
            flag = False
            first = self._fetch(answer, spec, flag, 0, cached, stop)
        if first is None:
            return answer
        probs = label_probs_from_logprobs(first, labels) if flag else None
        if probs is not None:
            answer.probs, answer.mode = probs, "logprobs"
            self._mark_usable(answer, spec, flag, 0, first, cached)
            return answer
        if self.config.logprobs is True:
            if not has_logprobs(first):
                raise LogprobsUnavailable(
                    f'"logprobs" is true but {self.config.base_url} returns no logprobs; '
                    'set "logprobs" to "auto" or false'
                )
            text = answer_text(first)
            answer.failure = JudgeFailure(
                f"no answer token ({', '.join(labels)}) among the top_logprobs of the "
                f"answer {_one_line(text, 60)!r}", NO_ANSWER_TOKEN, raw=text)
            return answer
        votes = [0] * len(labels)
        for sample in range(self.config.samples):
            response = first if sample == 0 else self._fetch(answer, spec, flag, sample,
                                                              cached, stop)
            if response is None:
                return answer
            text = answer_text(response)
            label = parse_answer(text, labels)
            if label is None:
                shown = "no text" if text is None else repr(_one_line(text, 60))
                answer.failure = JudgeFailure(
                    f"unparseable answer {shown} (expected exactly one of {', '.join(labels)})",
                    UNPARSEABLE, raw=text)
                return answer
            votes[labels.index(label)] += 1
            self._mark_usable(answer, spec, flag, sample, response, cached)
        answer.probs = [v / self.config.samples for v in votes]
        answer.mode = "text"
        return answer

    def _mark_usable(self, answer, spec, flag, sample, response, cached):
        if (flag, sample) not in cached:
            answer.usable.append((self._key(spec, flag, sample), response))

    def _fetch(self, answer, spec, flag, sample, cached, stop) -> dict | None:
        """Return the response for one request, from the cache or the server."""
        response = cached.get((flag, sample))
        if response is not None:
            answer.cached += 1
        else:
            response = self._send(answer, self.build_request(spec, flag, sample), stop)
            if response is None:
                return None
            _add_usage(answer.fresh_usage, response)
        _add_usage(answer.usage, response)
        return response

    def _send(
        self, answer: _Answer, body: dict, stop: threading.Event | _PolledStop
    ) -> dict | None:
        """Send one request with retries; return the response dict, or None on failure.

        A failure is recorded on ``answer``; an unreachable server raises
        ServerUnavailable, a refusal of the logprobs parameters _LogprobsRejected.
        """
        openai = self._openai
        attempt = 0
        while True:
            if stop.is_set() or not self._limiter.acquire(stop):
                raise _Stopped
            attempt += 1
            answer.requests += 1
            delay = None
            try:
                # The client's untyped call (its documented way to send any parameters):
                # the typed chat.completions.create spends ~10 ms of CPU per request
                # transforming and validating, 5x the goal for the whole overhead. The
                # body comes back as text (cast_to=str, in every openai 1.x), parsed here
                # whatever its Content-Type says, so a broken body fails the item only.
                text = self._client.post(CHAT_PATH, body=body, cast_to=str)
            except openai.APITimeoutError:
                kind, detail = TIMEOUT, f"timed out after {self.config.timeout_s:g} s"
                error_text = None
            except openai.APIConnectionError as e:
                kind, detail, error_text = "connection", _cause(e), None
            except openai.APIStatusError as e:
                status, error_text = e.status_code, _error_message(e)
                if (status in (400, 422) and body.get("logprobs")
                        and self.config.logprobs == "auto" and _refuses_logprobs(error_text)):
                    self._logprobs_rejected = True
                    raise _LogprobsRejected from None
                kind, detail = HTTP_ERROR, f"HTTP {status}: {_one_line(error_text, 120)}"
                delay = retry_after_seconds(e.response.headers)
                if not _retryable(status):
                    answer.failure = JudgeFailure(detail, kind, raw=error_text)
                    return None
                if delay is not None and delay > MAX_RETRY_AFTER:
                    answer.failure = JudgeFailure(
                        f"{detail} (asked to retry after {delay:g} s)", kind, raw=error_text)
                    return None
                if status == 429 and delay is not None:
                    self._limiter.defer(delay)
            else:
                return _json_object(answer, text)
            if attempt > self.config.max_retries:
                if kind == "connection":
                    raise ServerUnavailable(
                        f"the judge server at {self.config.base_url} stopped answering "
                        f"({detail}); the items not yet judged can be resumed"
                    )
                tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                answer.failure = JudgeFailure(f"{detail} ({tries})", kind, raw=error_text)
                return None
            if stop.wait(backoff_seconds(attempt) if delay is None else delay):
                raise _Stopped

    # ------------------------------------------------------------ aggregation

    def _outcome(self, item: dict, i: int, answers: list[_Answer]) -> ItemOutcome:
        answers.sort(key=lambda a: a.spec.position)
        requests = sum(a.requests for a in answers)
        cached = sum(a.cached for a in answers)
        fresh, usage = zero_usage(), zero_usage()
        for a in answers:
            _merge_usage(fresh, a.fresh_usage)
            _merge_usage(usage, a.usage)
        failed = [a.failure for a in answers if a.failure is not None]
        if failed:
            failure = failed[0]
            failure.attempts, failure.usage = requests, usage
            return ItemOutcome(i, failure=failure, requests=requests, cached=cached,
                               usage=fresh)
        scored = [(a.spec, a.probs) for a in answers]
        k = len(item["responses"])
        allow_tie = self.config.allow_tie
        if k == 2:
            result = aggregate_pair(scored, allow_tie)
        elif self.config.slate_mode == "pairs":
            result = aggregate_pairs_slate(scored, k, allow_tie)
        else:
            result = aggregate_listwise(scored, k)
        modes = {a.mode for a in answers}
        result.answer_mode = modes.pop() if len(modes) == 1 else "mixed"
        result.usage = {**usage, "requests": requests, "cached": cached}
        return ItemOutcome(i, result=result, requests=requests, cached=cached, usage=fresh)


def _json_object(answer: _Answer, text: str) -> dict | None:
    """Return a response body parsed as a JSON object, or None with the failure recorded."""
    try:
        response = json.loads(text)
    except ValueError:
        response = text
    if isinstance(response, dict):
        return response
    answer.failure = JudgeFailure("the server's answer is not a JSON object", HTTP_ERROR,
                                  raw=_one_line(response, 500))
    return None


def _add_usage(total: dict, response: dict) -> None:
    usage = response.get("usage") or {}
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        if isinstance(value, int):
            total[name] += value


def _merge_usage(total: dict, part: dict) -> None:
    for name in ("prompt_tokens", "completion_tokens"):
        total[name] += part[name]
