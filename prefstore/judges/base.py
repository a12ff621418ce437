"""What every judge backend shares: settings, results, the interface and the prompts.

A judge scores text and stores nothing. It sees a prompt (or a conversation) and
2..10 responses, never the names of the systems that wrote them.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from prefstore.errors import InvalidInput, MissingDependency, PrefstoreError

# Local backends (pages/admin.py offers ALL_BACKENDS).
BACKENDS = ("generative", "reward")
# Backends that call a server (JUDGE_BACKENDS has them all).
SERVER_BACKENDS = ("openai",)
ALL_BACKENDS = BACKENDS + SERVER_BACKENDS
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SLATE_MODES = ("pairs", "listwise")
MIN_RESPONSES = 2
MAX_RESPONSES = 10
LABELS = "ABCDEFGHIJ"
TIE_LABEL = "tie"
LLM_EXTRA_HINT = "pip install 'prefstore[llm]'"
SERVE_EXTRA_HINT = "pip install 'prefstore[serve]'"
LOGPROBS_MODES = ("auto", True, False)
MAX_CONCURRENCY = 256
MAX_SAMPLES = 100
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Progress = Callable[[int, int], None]


class ModelLoadError(InvalidInput):
    """A judge model or its tokenizer could not be loaded from the given id or path."""


@dataclass(frozen=True)
class JudgeConfig:
    """Settings for one LLM judge.

    Parameters
    ----------
    model : Hugging Face hub id or local directory.
    backend : ``"generative"`` (next-token probabilities of a causal LM) or
        ``"reward"`` (a sequence-classification reward model).
    batch_size : sequences per forward pass.
    max_length : token budget per sequence; longer inputs lose the left of the
        conversation first and are flagged ``truncated``.
    device : ``"auto"`` (cuda when available), ``"cpu"`` or ``"cuda"``.
    dtype : ``"auto"`` (float32 on cpu, bfloat16 or float16 on cuda) or an explicit dtype.
    allow_tie : let the generative judge answer "tie" for pairs.
    rationale : also generate a short greedy rationale (``rationale_tokens`` new tokens).
    slate_mode : for 3+ responses, ``"pairs"`` judges every pair, ``"listwise"``
        asks for the best of all, over ``listwise_shuffles`` seeded display orders.
    seed : seed of the listwise display orders; the ``"openai"`` backend also sends
        ``seed + sample`` with each request.

    The ``"openai"`` backend (any OpenAI-compatible server) uses these instead of
    ``batch_size``, ``max_length``, ``device`` and ``dtype``:

    base_url : the server's API root, e.g. ``http://gpu-box:8000/v1`` (required).
    api_key_env : name of the environment variable holding the API key, read when
        the judge is loaded and never stored; ``None`` for servers without keys.
    concurrency : requests in flight at once.
    requests_per_minute : client-side rate limit shared by all requests, or ``None``.
    timeout_s : per-request timeout in seconds.
    max_retries : retries of a request after 429, 408, 5xx, a timeout or a
        connection error (so at most ``max_retries + 1`` attempts).
    temperature, max_tokens : sampling settings of every request.
    logprobs : ``"auto"`` reads the answer tokens' ``top_logprobs`` when the server
        returns them and falls back to parsing the text; ``true`` or ``false`` force one.
    samples : answers per display order when parsing text (needs ``temperature`` > 0);
        the vote shares become the probabilities.
    """

    model: str
    backend: str = "generative"
    batch_size: int = 8
    max_length: int = 2048
    device: str = "auto"
    dtype: str = "auto"
    allow_tie: bool = False
    rationale: bool = False
    rationale_tokens: int = 32
    slate_mode: str = "pairs"
    listwise_shuffles: int = 3
    seed: int = 0
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 4
    requests_per_minute: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    temperature: float = 0.0
    max_tokens: int = 16
    logprobs: str | bool = "auto"
    samples: int = 1

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInput(f'"model" must be a non-empty string, got {self.model!r}')
        _check_choice("backend", self.backend, ALL_BACKENDS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("slate_mode", self.slate_mode, SLATE_MODES)
        _check_int("batch_size", self.batch_size, 1)
        # Room for the instructions plus a little of each response.
        _check_int("max_length", self.max_length, 16)
        _check_int("rationale_tokens", self.rationale_tokens, 1)
        _check_int("listwise_shuffles", self.listwise_shuffles, 1)
        _check_int("seed", self.seed, 0)
        for name in ("allow_tie", "rationale"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f'"{name}" must be true or false, got {getattr(self, name)!r}')
        self._check_server_fields()

    def _check_server_fields(self):
        """Validate the ``"openai"`` backend's settings (checked for every backend)."""
        if self.base_url is not None:
            _check_url("base_url", self.base_url)
        elif self.backend == "openai":
            raise InvalidInput('"base_url" is required for the "openai" backend '
                               "(e.g. http://localhost:8000/v1)")
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not _ENV_NAME.fullmatch(self.api_key_env)
        ):
            # Never echo the value: a pasted key would end up in a log or on a page.
            raise InvalidInput('"api_key_env" must be the name of an environment variable '
                               "(letters, digits and _), not the key itself")
        _check_int("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        if self.requests_per_minute is not None:
            _check_number("requests_per_minute", self.requests_per_minute, 0, open_low=True)
        _check_number("timeout_s", self.timeout_s, 0, open_low=True)
        _check_int("max_retries", self.max_retries, 0, 100)
        _check_number("temperature", self.temperature, 0, 2)
        _check_int("max_tokens", self.max_tokens, 1)
        # "is": 1 and 0 equal True and False but are not valid settings.
        if not any(self.logprobs is m for m in (True, False)) and self.logprobs != "auto":
            raise InvalidInput(f'"logprobs" must be "auto", true or false, got {self.logprobs!r}')
        _check_int("samples", self.samples, 1, MAX_SAMPLES)
        if self.samples > 1 and self.temperature == 0:
            raise InvalidInput(f'"samples" of {self.samples} needs "temperature" > 0: '
                               "greedy answers would all agree")
        if self.samples > 1 and self.logprobs is True:
            raise InvalidInput('"samples" > 1 applies to text answers only; '
                               'set "logprobs" to "auto" or false')
        if self.backend == "openai" and self.rationale:
            raise InvalidInput('"rationale" is not supported by the "openai" backend')

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JudgeConfig":
        """Build a config from a plain dict (a form, a JSON file), validating every field.

        Raises
        ------
        InvalidInput
            naming the field, for unknown keys, a missing ``model`` or a bad value.
        """
        if not isinstance(d, dict):
            raise InvalidInput(f"judge config must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInput(
                f'judge config: unknown field "{unknown[0]}" (known: {", ".join(sorted(known))})'
            )
        if "model" not in d:
            raise InvalidInput('judge config: "model" is required')
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (the inverse of ``from_dict``)."""
        return asdict(self)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise InvalidInput(f'"{name}" must be one of {", ".join(allowed)}, got {value!r}')


def _check_int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f'"{name}" must be an integer >= {minimum}, got {value!r}')
    if maximum is not None and value > maximum:
        raise InvalidInput(f'"{name}" must be an integer <= {maximum}, got {value!r}')


def _check_number(name, value, low, high=None, open_low=False):
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"> {low}" if open_low else f">= {low}"
        bound += f" and <= {high}" if high is not None else ""
        raise InvalidInput(f'"{name}" must be a number {bound}, got {value!r}')


def _check_url(name, value):
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f'"{name}" must be an http(s) URL like http://localhost:8000/v1, '
                           f"got {value!r}")


@dataclass
class JudgeResult:
    """A judge's verdict on one item.

    ``probs[i]`` is the probability that response ``i`` is best; with a tie
    option ``p_tie`` holds the rest, so ``sum(probs) + (p_tie or 0) == 1``.

    ``orders`` lists the display orders evaluated (``orders[k][j]`` is the response
    shown at position ``j``) and ``per_order_probs[k][j]`` the probability given to
    that position's label, with P(tie) appended when ties are allowed. ``scores``
    holds raw rewards (reward backend) or Bradley–Terry log-strengths (pairs mode).
    Server judges also record the token ``usage`` of the item's requests and the
    ``answer_mode`` their verdict came from (``"logprobs"``, ``"text"`` or ``"mixed"``).
    """

    probs: list[float]
    choice: int | str
    ranking: list[int] | None = None
    confidence: float = 0.0
    swap_consistent: bool | None = None
    truncated: bool = False
    rationale: str | None = None
    orders: list[list[int]] = field(default_factory=list)
    per_order_probs: list[list[float]] = field(default_factory=list)
    p_tie: float | None = None
    scores: list[float] | None = None
    usage: dict[str, int] | None = None
    answer_mode: str | None = None

    def to_judgment(self) -> dict[str, Any]:
        """Return the verdict as a judgment dict ready for store."""
        is_tie = self.choice == TIE_LABEL
        metadata = {
            "confidence": self.confidence,
            "swap_consistent": self.swap_consistent,
            "probs": list(self.probs),
            "truncated": self.truncated,
            "orders": [list(o) for o in self.orders],
        }
        if self.p_tie is not None:
            metadata["p_tie"] = self.p_tie
        if self.scores is not None:
            metadata["scores"] = list(self.scores)
        if self.usage is not None:
            metadata["usage"] = dict(self.usage)
        if self.answer_mode is not None:
            metadata["answer_mode"] = self.answer_mode
        return {
            "outcome": "tie" if is_tie else "choice",
            "choice": None if is_tie else int(self.choice),
            "ranking": None if self.ranking is None else list(self.ranking),
            "strength": None,
            # Every display order was averaged away, so the stored order is the identity.
            "display_order": list(range(len(self.probs))),
            "rationale": self.rationale,
            "metadata": metadata,
        }


@runtime_checkable
class Judge(Protocol):
    """The interface every judge backend implements."""

    config: JudgeConfig

    @property
    def name(self) -> str:
        """The rater name for judgments: the model's hub id or its directory name."""
        ...

    def judge_items(
        self, items: Sequence[dict], progress: Progress | None = None
    ) -> list[JudgeResult]:
        """Judge each item (``prompt`` or ``messages``, plus ``responses``).

        ``progress(done, total)`` is called after each batch of forward passes
        (after each item for a server judge). A server judge returns a JudgeFailure
        (``prefstore.judges.outcome``) instead of a JudgeResult for an item it could
        not judge.
        """
        ...


def rater_name(model: str) -> str:
    """Return the rater name for a model: a local directory's name, else the hub id."""
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve().name
    return model.strip().rstrip("/")


def config_rater_name(config: JudgeConfig | dict) -> str:
    """Return the rater name a judge configuration's labels are stored under."""
    if isinstance(config, dict):
        config = JudgeConfig.from_dict(config)
    return rater_name(config.model)


# ---------------------------------------------------------------- items


def validate_items(items: Sequence[dict]) -> None:
    """Check every item has ``prompt`` xor ``messages`` and 2..10 string responses.

    Raises
    ------
    InvalidInput
        naming the item index and the field, e.g.
        ``item 3: "responses" must have at least 2 entries, got 1``.
    """
    if isinstance(items, dict) or not isinstance(items, Sequence):
        raise InvalidInput(f"items must be a list of dicts, got {type(items).__name__}")
    for i, item in enumerate(items):
        _validate_item(i, item)


def _validate_item(i, item):
    where = f"item {i}"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: must be a dict, got {type(item).__name__}")
    has_prompt = item.get("prompt") is not None
    has_messages = item.get("messages") is not None
    if has_prompt == has_messages:
        raise InvalidInput(f'{where}: give exactly one of "prompt" or "messages"')
    if has_prompt and not isinstance(item["prompt"], str):
        raise InvalidInput(
            f'{where}: "prompt" must be a string, got {type(item["prompt"]).__name__}'
        )
    if has_messages:
        messages = item["messages"]
        if not isinstance(messages, list) or not messages:
            raise InvalidInput(f'{where}: "messages" must be a non-empty list')
        for j, m in enumerate(messages):
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("role"), str)
                or not isinstance(m.get("content"), str)
            ):
                raise InvalidInput(
                    f'{where}: "messages"[{j}] must be a dict with string "role" and "content"'
                )
    responses = item.get("responses")
    if not isinstance(responses, list):
        raise InvalidInput(f'{where}: "responses" must be a list of strings')
    if not MIN_RESPONSES <= len(responses) <= MAX_RESPONSES:
        bound = "at least 2" if len(responses) < MIN_RESPONSES else "at most 10"
        raise InvalidInput(f'{where}: "responses" must have {bound} entries, got {len(responses)}')
    for j, r in enumerate(responses):
        if not isinstance(r, str):
            raise InvalidInput(
                f'{where}: "responses"[{j}] must be a string, got {type(r).__name__}'
            )


def conversation_messages(item: dict) -> list[dict]:
    """Return the item's conversation as messages (a bare prompt becomes one user turn)."""
    if item.get("messages") is not None:
        return [{"role": m["role"], "content": m["content"]} for m in item["messages"]]
    return [{"role": "user", "content": item["prompt"]}]


def render_conversation(item: dict) -> str:
    """Render the item's prompt or conversation as plain text for a judging prompt.

    A bare prompt is shown as is; messages become ``Role: content`` blocks, so the
    latest user question comes last and survives left truncation.
    """
    if item.get("messages") is None:
        return item["prompt"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in item["messages"])


# ---------------------------------------------------------------- judging prompts


def pairwise_instruction(
    conversation: str, response_a: str, response_b: str, allow_tie: bool = False
) -> str:
    """Return the instruction asking which of two responses is better."""
    tie = ", or tie if they are equally good" if allow_tie else ""
    return (
        "You are comparing two responses to the same conversation. "
        "Judge which response is more helpful, correct and clear.\n\n"
        f"[Conversation]\n{conversation}\n\n"
        f"[Response A]\n{response_a}\n\n"
        f"[Response B]\n{response_b}\n\n"
        f"Which response is better? Answer with A or B{tie}."
    )


def listwise_instruction(conversation: str, responses: Sequence[str]) -> str:
    """Return the instruction asking for the best of 3..10 lettered responses."""
    labels = LABELS[: len(responses)]
    shown = "".join(
        f"[Response {label}]\n{text}\n\n" for label, text in zip(labels, responses, strict=True)
    )
    return (
        f"You are comparing {len(responses)} responses to the same conversation. "
        "Judge which response is most helpful, correct and clear.\n\n"
        f"[Conversation]\n{conversation}\n\n"
        f"{shown}"
        f"Which response is best? Answer with one letter: {', '.join(labels)}."
    )


def wrap_prompt(tokenizer, instruction: str) -> str:
    """Wrap an instruction for the model, ending where the answer's first token goes.

    Uses the tokenizer's chat template (one user turn plus the generation prompt)
    when it has one, else a plain ``...\\nAnswer:`` template.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}],
            tokenize=False,
            add_generation_prompt=True,
        )
    return f"{instruction}\nAnswer:"


def uses_chat_template(tokenizer) -> bool:
    """Return whether prompts for this tokenizer go through its chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def fit_to_length(
    tokenizer,
    render: Callable[[str, list[str]], str],
    conversation: str,
    responses: list[str],
    max_length: int,
) -> tuple[str, bool]:
    """Render a prompt within ``max_length`` tokens, cutting the conversation's left first.

    The conversation is trimmed from the left, so the latest question and all the
    responses stay. Only if the responses alone do not fit are they cut from the
    right, each to an equal share. Returns the text and whether anything was cut.
    """
    add_special = not uses_chat_template(tokenizer)

    def count(text):
        return len(tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def tail(text, n):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if n <= 0:
            return ""
        return text if len(ids) <= n else "[...] " + tokenizer.decode(ids[-n:])

    def head(text, n):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= n else tokenizer.decode(ids[: max(n, 0)]) + " [...]"

    text = render(conversation, responses)
    excess = count(text) - max_length
    if excess <= 0:
        return text, False

    conv_len = len(tokenizer(conversation, add_special_tokens=False)["input_ids"])
    # Token counts are not exactly additive across the template, so shrink until it fits.
    keep = conv_len - excess
    while keep > 0:
        text = render(tail(conversation, keep), responses)
        excess = count(text) - max_length
        if excess <= 0:
            return text, True
        keep -= max(excess, 1)

    # The responses alone are too long: keep the end of the question and the start of each.
    question = tail(conversation, min(conv_len, max(max_length // 8, 8)))
    fixed = count(render(question, ["" for _ in responses]))
    share = (max_length - fixed) // len(responses)
    while share > 0:
        text = render(question, [head(r, share) for r in responses])
        excess = count(text) - max_length
        if excess <= 0:
            return text, True
        share -= max(math.ceil(excess / len(responses)), 1)
    raise InvalidInput(
        f'"max_length" of {max_length} tokens is too small for the judging prompt '
        f"({fixed} tokens before any response text)"
    )


# ---------------------------------------------------------------- dependencies


def require_llm(what: str = "the LLM judge"):
    """Import and return ``(torch, transformers)`` or raise MissingDependency."""
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependency(
            f"{what} needs torch and transformers: {LLM_EXTRA_HINT} ({e})"
        ) from e
    return torch, transformers


def resolve_device(torch, device: str) -> str:
    """Return the torch device name for a config's ``device``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput('"device" is "cuda" but torch sees no CUDA device')
    return device


def resolve_dtype(torch, dtype: str, device: str):
    """Return the torch dtype for a config's ``dtype`` on ``device``."""
    if dtype == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, dtype)


def dtype_kwargs(transformers, dtype) -> dict:
    """Return the ``from_pretrained`` keyword for a dtype (``torch_dtype`` before 4.56)."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def load_pretrained(loader, model: str, what: str, **kwargs):
    """Call ``loader.from_pretrained(model, ...)``, turning failures into ModelLoadError."""
    path = Path(model).expanduser()
    looks_local = path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1
    if looks_local and not path.exists():
        raise ModelLoadError(f'judge model "{model}": no such directory')
    try:
        return loader.from_pretrained(model, **kwargs)
    except PrefstoreError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f'judge model "{model}": cannot load {what}: {reason}') from e


def load_model_and_tokenizer(config, auto_class: str, what: str, judge: str):
    """Load a judge's tokenizer and ``transformers.<auto_class>`` model.

    Returns ``(torch, device, tokenizer, model)``; the model is not yet moved
    to the device. ``what`` names the model in errors, ``judge`` the backend
    in the missing-extra message.
    """
    torch, transformers = require_llm(judge)
    device = resolve_device(torch, config.device)
    dtype = resolve_dtype(torch, config.dtype, device)
    tokenizer = load_pretrained(transformers.AutoTokenizer, config.model, "the tokenizer")
    tokenizer = prepare_tokenizer(tokenizer, config.model)
    model = load_pretrained(getattr(transformers, auto_class), config.model, what,
                            **dtype_kwargs(transformers, dtype))
    return torch, device, tokenizer, model


def prepare_tokenizer(tokenizer, model: str):
    """Set left padding and a pad token, so batched last positions are real tokens."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f'judge model "{model}": the tokenizer has no pad or eos token')
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def length_sorted_batches(torch, tokenizer, texts: Sequence[str], size: int, device: str,
                          pass_positions: bool = True):
    """Yield ``(indices, inputs)`` over ``texts`` in batches of ``size``, longest first.

    Sorting by length keeps left padding, and so wasted compute, small.
    """
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    for start in range(0, len(order), size):
        batch = order[start : start + size]
        inputs = batched_inputs(torch, tokenizer, [texts[i] for i in batch], device)
        if not pass_positions:
            inputs.pop("position_ids")
        yield batch, inputs


def batched_inputs(torch, tokenizer, texts: list[str], device: str) -> dict:
    """Tokenize texts with left padding and explicit position ids.

    Position ids count from the first real token: without them a left-padded
    GPT-2 would give different logits batched than alone.
    """
    enc = tokenizer(
        texts,
        padding=True,
        return_tensors="pt",
        add_special_tokens=not uses_chat_template(tokenizer),
    )
    mask = enc["attention_mask"]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": enc["input_ids"].to(device),
        "attention_mask": mask.to(device),
        "position_ids": position_ids.to(device),
    }


def margin(probs: Sequence[float]) -> float:
    """Return the top probability minus the second."""
    top = sorted(probs, reverse=True)
    return float(top[0] - top[1]) if len(top) > 1 else float(top[0])
