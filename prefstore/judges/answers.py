"""Read a judge's answer from a chat-completion response: its logprobs, else its text.

Both readers work on the response as a plain dict (the OpenAI chat-completions
format), so a fresh response and one from the cache take the same path.

Logprobs. The answer position is the first generated token that is not blank
(a leading newline is skipped). A ``top_logprobs`` entry counts for a label when
the token, stripped of whitespace, is the label: ``"A"`` and ``" A"`` both count
for A, and are summed. Letters are matched exactly (``"a"`` is an English word),
``tie`` in any case. The probabilities are renormalised over the labels found,
as the local generative judge restricts its softmax to the labels; a label absent
from ``top_logprobs`` gets 0 (its probability is below the smallest one listed).

Text. The grammar is strict, so a rambling or hedged answer is never read as a
verdict::

    answer := blank* label ("." | "!")? blank*
    label  := one of the letters shown ("A", "B", ...), upper case
            | "tie" in any case, when ties are allowed

so ``"A"``, ``" B.\\n"`` and ``"Tie"`` parse; ``"a"``, ``"A or B"``,
``"Response A"`` and ``"**A**"`` do not.
"""

import math
import re
from collections.abc import Sequence

from prefstore.judges.base import TIE_LABEL


def answer_text(response: dict) -> str | None:
    """Return the text of the response's first choice (``None`` when it has none)."""
    choices = response.get("choices") or []
    if not choices:
        return None
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else None


def parse_answer(text: str | None, labels: Sequence[str]) -> str | None:
    """Return the label a text answer names, or ``None`` when it is not exactly one label.

    See the module docstring for the grammar.
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\w+)[.!]?\s*", text)
    if match is None:
        return None
    return _label_of(match.group(1), labels)


def has_logprobs(response: dict) -> bool:
    """Return whether the response carries per-token logprobs for its first choice."""
    return bool(_logprob_content(response))


def label_probs_from_logprobs(response: dict, labels: Sequence[str]) -> list[float] | None:
    """Return the labels' probabilities at the answer position, renormalised.

    Returns ``None`` when the response has no logprobs, or when none of the labels
    is among the answer position's ``top_logprobs``.
    """
    content = _logprob_content(response)
    position = next((p for p in content if str(p.get("token", "")).strip()), None)
    if position is None:
        return None
    candidates = position.get("top_logprobs") or [position]
    mass = [0.0] * len(labels)
    for entry in candidates:
        label = _label_of(str(entry.get("token", "")).strip(), labels)
        logprob = entry.get("logprob")
        if label is not None and isinstance(logprob, int | float):
            mass[labels.index(label)] += math.exp(logprob)
    total = sum(mass)
    if total <= 0:
        return None
    return [m / total for m in mass]


def _logprob_content(response: dict) -> list[dict]:
    choices = response.get("choices") or []
    if not choices:
        return []
    logprobs = choices[0].get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) else []


def _label_of(token: str, labels: Sequence[str]) -> str | None:
    if token in labels and token != TIE_LABEL:
        return token
    if TIE_LABEL in labels and token.lower() == TIE_LABEL:
        return TIE_LABEL
    return None
