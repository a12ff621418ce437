"""What judging one item ends in: a verdict, or a failure with its reason.

A server judge can fail on an item: the answer is not one of the labels, the
request is refused, or it keeps timing out. That is recorded as a JudgeFailure
with the raw text and the number of attempts, never turned into a verdict.
"""

from dataclasses import dataclass, field
from typing import Any

from prefstore.judges.base import JudgeResult

# JudgeFailure.kind values.
UNPARSEABLE = "unparseable"  # the answer is not exactly one label
NO_ANSWER_TOKEN = "no_answer_token"  # logprobs forced, but no label among top_logprobs
HTTP_ERROR = "http_error"  # a refused request (4xx), or 429/5xx after every retry
TIMEOUT = "timeout"  # every attempt timed out


def zero_usage() -> dict[str, int]:
    """Return an empty token count."""
    return {"prompt_tokens": 0, "completion_tokens": 0}


@dataclass
class JudgeFailure:
    """Why an item got no verdict.

    ``reason`` is one line for people; ``kind`` is one of ``unparseable``,
    ``no_answer_token``, ``http_error`` or ``timeout``; ``raw`` is the answer text
    (or the server's error message); ``attempts`` counts the requests sent for the
    item in this run, retries included.
    """

    reason: str
    kind: str
    raw: str | None = None
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=zero_usage)

    def to_record(self) -> dict[str, Any]:
        """Return the failure as a plain dict ready for storage."""
        return {
            "status": "failed",
            "kind": self.kind,
            "reason": self.reason,
            "raw": self.raw,
            "attempts": self.attempts,
            "usage": dict(self.usage),
        }


@dataclass
class ItemOutcome:
    """The outcome of one item: exactly one of ``result`` and ``failure`` is set.

    ``index`` is the item's position in the list that was judged. ``requests`` counts
    the requests sent for it in this run (0 when every response came from the
    cache), ``cached`` the responses the cache supplied, and ``usage`` the tokens of
    the requests actually sent.
    """

    index: int
    result: JudgeResult | None = None
    failure: JudgeFailure | None = None
    requests: int = 0
    cached: int = 0
    usage: dict[str, int] = field(default_factory=zero_usage)

    @property
    def ok(self) -> bool:
        """Whether the item got a verdict."""
        return self.result is not None
