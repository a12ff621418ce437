"""A cache of server responses, so a judging request is never paid for twice.

The key covers everything that decides the answer: the model, the messages (and
so the display order), the sampling settings and the sample index with its seed.
The server's address is left out on purpose: the same model behind another URL
gives the same answers. Values are response dicts in the chat-completions format.

``ResponseCache`` is the interface; ``MemoryCache`` keeps responses for the life
of a judge, and ``prefstore.store.JudgeCache`` in the database, for every run and
process (``prefstore annotate`` and the worker use it). The judge calls ``get``
and ``put`` from the thread that drives it, never from its request threads, so a
cache may hold a connection that is bound to one thread.
"""

import hashlib
import json
import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class ResponseCache(Protocol):
    """Where a judge keeps the responses it was given."""

    def get(self, key: str) -> dict | None:
        """Return the response stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, response: dict) -> None:
        """Store a response under ``key`` (replacing any earlier one)."""
        ...


class MemoryCache:
    """A ResponseCache in a dict, for the life of the process."""

    def __init__(self):
        self._data: dict[str, dict] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, response: dict) -> None:
        with self._lock:
            self._data[key] = response

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class NullCache:
    """A ResponseCache that keeps nothing (every request goes to the server)."""

    def get(self, key: str) -> dict | None:
        return None

    def put(self, key: str, response: dict) -> None:
        return None


def cache_key(
    model: str,
    messages: list[dict],
    order: list[int],
    *,
    temperature: float,
    max_tokens: int,
    logprobs: bool,
    top_logprobs: int | None,
    sample: int,
    seed: int,
) -> str:
    """Return the cache key of one request: a SHA-256 of its canonical JSON."""
    payload = {
        "model": model,
        "messages": messages,
        "order": list(order),
        "temperature": float(temperature),
        "max_tokens": max_tokens,
        "logprobs": logprobs,
        "top_logprobs": top_logprobs if logprobs else None,
        "sample": sample,
        "seed": seed,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
