"""Parse and validate item and judgment files, then write them in one transaction.

Accepted formats are JSONL, a JSON list (or ``{"items": [...]}``) and CSV.
Every line is validated before anything is written, so a bad line leaves the
database unchanged, and every error of a file is listed (up to
:data:`MAX_ERRORS_LISTED`), not one per run. Errors name the line and the
field::

    line 17: "responses" must have at least 2 entries, got 1

Text is untrusted and stays inert: every string of a record, keys included,
must be valid Unicode (no lone surrogate, which a JSON ``\\ud800`` escape can
produce) without NUL characters (PostgreSQL cannot store them); numbers must
be finite (JSON has no NaN or Infinity, RFC 8259) and integers that the
database stores as integers must fit in 64 bits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from prefstore import store
from prefstore.errors import InvalidInput, PrefstoreError
from prefstore.text import text_problem

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1_000_000
MAX_RESPONSES = 10
MAX_ERRORS_LISTED = 20
#: Deepest nesting of lists and objects a record may have.
MAX_DEPTH = 100
#: SQLite stores integers as signed 64-bit numbers.
INT64_MAX = 2**63 - 1
PROGRESS_MIN_LINES = 5_000
ROLES = ("system", "user", "assistant")
ITEM_KEYS = {"id", "prompt", "messages", "responses", "response_a", "response_b", "chosen",
             "rejected", "metadata", "category", "gold", "judgments", "systems"}
JUDGMENT_KEYS = {"rater", "kind", "choice", "ranking", "strength", "rationale", "aspects",
                 "edited", "metadata", "reason_tags", "time_ms", "display_order",
                 "submission_id", "created_at"}


class ImportFailed(InvalidInput):
    """A file failed validation; ``errors`` lists the problems found (up to a cap).

    ``total`` counts every problem, also those past the cap.
    """

    def __init__(self, errors: list[str], total: int | None = None):
        self.errors = errors
        self.total = max(total or 0, len(errors))
        more = f" (and {self.total - 1} more error(s))" if self.total > 1 else ""
        super().__init__(errors[0] + more)


class _Errors:
    """Collects error messages up to a cap, counting the rest."""

    def __init__(self, cap: int):
        self.cap = max(1, cap)
        self.listed: list[str] = []
        self.total = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self.listed) < self.cap:
            self.listed.append(message)

    @property
    def full(self) -> bool:
        return self.total >= self.cap

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportFailed(self.listed, self.total)


@dataclass
class Record:
    """One parsed input record and where it came from; ``error`` if it could not be read."""

    where: str
    data: Any
    error: str | None = None


@dataclass
class ParsedItems:
    """Items and their judgments, validated and ready to write.

    ``existing`` lists the items skipped because their id is already in the
    project (``skip_existing``); ``coerced`` where a non-text response was taken
    as text (``coerce_text``); ``skipped`` the invalid judgments left out
    (``skip_invalid_judgments``).
    """

    items: list[dict] = field(default_factory=list)
    judgments: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    existing: list[dict] = field(default_factory=list)
    coerced: list[str] = field(default_factory=list)

    def kind(self) -> str:
        """The task kind implied by the items: pairwise iff every item has 2 responses."""
        items = self.items + self.existing
        return "pairwise" if all(len(i["responses"]) == 2 for i in items) else "slate"


# --------------------------------------------------------------------------
# Strict JSON and inert text


class NonFinite:
    """Stands in for a NaN, Infinity or overflowing number until the record check names it."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    def __repr__(self) -> str:
        return self.token


def _parse_float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def loads_strict(text: str | bytes) -> Any:
    """Parse JSON as RFC 8259 has it: ``NaN``, ``Infinity`` and ``1e999`` become
    :class:`NonFinite` markers, which :func:`check_record` refuses with their place."""
    return json.loads(text, parse_constant=NonFinite, parse_float=_parse_float)


def field_name(path: tuple) -> str:
    """Name a place in a record: ``"prompt"``, ``responses[1].text``, ``metadata["a b"]``."""
    if not path:
        return "the record"
    if len(path) == 1 and isinstance(path[0], str):
        return json.dumps(path[0])
    out = []
    for k, seg in enumerate(path):
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif seg.isascii() and seg.isidentifier():
            out.append(seg if k == 0 else "." + seg)
        else:
            out.append(f"[{json.dumps(seg)}]")
    return "".join(out)


def check_record(value: Any, where: str) -> None:
    """Refuse a record holding a NaN/Infinity, unstorable text or too deep a nesting.

    Walks every value and key without recursion (a hostile file can nest deeply).
    Raises InvalidInput naming the record and the field.
    """
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise InvalidInput(f"{where}: {field_name(path)} {problem}")
        elif isinstance(node, NonFinite):
            raise InvalidInput(f"{where}: {field_name(path)} is {node.token}; JSON numbers must "
                               "be finite (RFC 8259 has no NaN or Infinity)")
        elif isinstance(node, (dict, list)):
            if len(path) >= MAX_DEPTH:
                raise InvalidInput(f"{where}: {field_name(path)} is nested more than "
                                   f"{MAX_DEPTH} levels deep")
            if isinstance(node, dict):
                children = []
                for key, child in node.items():
                    problem = text_problem(key)
                    if problem:
                        raise InvalidInput(f"{where}: the key {field_name(path + (key,))} "
                                           f"{problem}")
                    children.append((child, path + (key,)))
            else:
                children = [(child, path + (i,)) for i, child in enumerate(node)]
            stack.extend(reversed(children))


# --------------------------------------------------------------------------
# Reading records


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "object", type(None): "null", NonFinite: "number"}.get(
        type(value), type(value).__name__)


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, cut short: a hostile integer has 4,300 digits."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def read_source(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    """Return a file's bytes and name (``"upload"`` for bytes), or raise InvalidInput naming it."""
    return _read_bytes(source)


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "upload"
    path = Path(source)
    try:
        if path.is_dir():
            raise InvalidInput(f"{path} is a directory; give the path of a file")
        return path.read_bytes(), path.name
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise InvalidInput(f"{path} cannot be read: permission denied") from exc
    except OSError as exc:
        raise InvalidInput(f"{path} cannot be read: {exc.strerror or exc}") from exc


def _detect_format(data: bytes, name: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("jsonl", "json", "csv"):
            raise InvalidInput(f'format must be "jsonl", "json" or "csv", got {fmt!r}')
        return fmt
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "csv":
        return "csv"
    if suffix == "json":
        return "json"
    head = data.lstrip()[:1]
    return "json" if head == b"[" else "jsonl"


def _checked(where: str, value: Any) -> Record:
    try:
        check_record(value, where)
    except InvalidInput as exc:
        return Record(where, None, str(exc))
    return Record(where, value)


def read_records(source: str | os.PathLike | bytes, fmt: str | None = None,
                 name: str | None = None) -> Iterator[Record]:
    """Yield each record of a JSONL, JSON or CSV file with its line label.

    A record that cannot be read (invalid UTF-8 or JSON on a JSONL line, a bad
    JSON cell, a NaN, unstorable text) comes with ``error`` set, and the scan
    goes on. Raises InvalidInput, naming the line, when the rest of the file
    cannot be read (a malformed JSON list or CSV).
    """
    data, default_name = _read_bytes(source)
    fmt = _detect_format(data, name or default_name, fmt)
    if fmt == "jsonl":
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            where = f"line {lineno}"
            try:
                # utf-8-sig on the first line: editors on Windows start files with a BOM.
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield Record(where, None, f"{where}: invalid UTF-8 at byte {exc.start} of the line")
                continue
            if not line.strip():
                continue
            try:
                value = loads_strict(line)
            except json.JSONDecodeError as exc:
                yield Record(where, None, f"{where}: invalid JSON ({exc.msg} at column "
                                          f"{exc.colno})")
                continue
            except (ValueError, RecursionError) as exc:
                # An integer over 4,300 digits, or nesting deeper than the recursion limit.
                yield Record(where, None, f"{where}: invalid JSON ({_json_limit(exc)})")
                continue
            yield _checked(where, value)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidInput(f"line {line}: invalid UTF-8 at byte {exc.start}") from exc
    if fmt == "json":
        try:
            value = loads_strict(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {exc.lineno}: invalid JSON ({exc.msg} at column "
                               f"{exc.colno})") from exc
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"invalid JSON ({_json_limit(exc)})") from exc
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            value = value["items"]
        if not isinstance(value, list):
            raise InvalidInput(f"JSON file must hold a list of objects, got {_type_name(value)}")
        for i, entry in enumerate(value, start=1):
            yield _checked(f"item {i}", entry)
        return
    # The csv module's default field limit (131,072) is below our text limit.
    csv.field_size_limit(MAX_TEXT_CHARS + 1)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            raise InvalidInput("line 1: the CSV file has no header row")
        for row in reader:
            where = f"line {reader.line_num}"
            try:
                value = _csv_row(row, where)
            except InvalidInput as exc:
                yield Record(where, None, str(exc))
                continue
            yield _checked(where, value)
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: malformed CSV ({exc})") from exc


def _json_limit(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "an integer has more than 4,300 digits" if "digits" in str(exc) else str(exc)


def _csv_row(row: dict, where: str) -> dict:
    """Map a CSV row onto the JSON schema: response_1..K, JSON-encoded metadata."""
    if None in row:
        raise InvalidInput(f"{where}: more fields than the header has")
    out: dict[str, Any] = {}
    responses = []
    for key, value in row.items():
        if value is None:
            continue
        if key.startswith("response_") and key[9:].isdigit():
            responses.append((int(key[9:]), value))
        elif key in ("metadata", "gold", "messages", "judgments", "responses") and value:
            try:
                out[key] = loads_strict(value)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f'{where}: "{key}" must be JSON text ({exc.msg})') from exc
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f'{where}: "{key}" must be JSON text ({_json_limit(exc)})'
                                   ) from exc
        elif value != "":
            out[key] = value
    if responses:
        out["responses"] = [v for _, v in sorted(responses)]
    return out


# --------------------------------------------------------------------------
# Validating items


def _check_text(value: Any, where: str, name: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: {name} must be a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{where}: {name} must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"{where}: {name} is {len(value):,} characters long; the limit is "
                           f"{MAX_TEXT_CHARS:,}")
    problem = text_problem(value)
    if problem:
        raise InvalidInput(f"{where}: {name} {problem}")
    return value


def _check_json(value: Any, where: str, name: str) -> None:
    """Check a free-form JSON value (metadata, aspects): inert text, finite, not too big."""
    check_record(value, f"{where}: {name}")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"{where}: {name} is not plain JSON ({exc})") from exc
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"{where}: {name} is {len(text):,} characters long; the limit is "
                           f"{MAX_TEXT_CHARS:,}")


def _check_messages(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f'{where}: "messages" must be a non-empty list, got '
                           f"{_type_name(value)}")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise InvalidInput(f"{where}: messages[{i}] must be an object, got "
                               f"{_type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInput(f'{where}: messages[{i}].role must be one of {", ".join(ROLES)}, '
                               f"got {_shown(role)}")
        content = _check_text(message.get("content"), where, f"messages[{i}].content")
        out.append({"role": role, "content": content})
    return out


def _response_text(value: Any, where: str, name: str, coerced: list[str] | None) -> str:
    # --coerce-text: a JSON scalar such as PandaLM's six `true` responses becomes its JSON text.
    if coerced is not None and isinstance(value, (bool, int, float)):
        coerced.append(where)
        value = json.dumps(value)
    return _check_text(value, where, name)


def _responses(data: dict, where: str, coerced: list[str] | None = None) -> list[dict]:
    if "responses" in data:
        raw = data["responses"]
        if not isinstance(raw, list):
            raise InvalidInput(f'{where}: "responses" must be a list, got {_type_name(raw)}')
    elif "response_a" in data or "response_b" in data:
        raw = [data.get("response_a"), data.get("response_b")]
    elif "chosen" in data or "rejected" in data:
        # A DPO row loaded for re-rating: chosen is response 0, with no label kept.
        raw = [_dpo_text(data.get("chosen"), where, "chosen"),
               _dpo_text(data.get("rejected"), where, "rejected")]
    else:
        raise InvalidInput(f'{where}: "responses" is missing (or use response_a/response_b, '
                           "chosen/rejected)")
    if len(raw) < 2:
        raise InvalidInput(f'{where}: "responses" must have at least 2 entries, got {len(raw)}')
    if len(raw) > MAX_RESPONSES:
        raise InvalidInput(f'{where}: "responses" must have at most {MAX_RESPONSES} entries, '
                           f"got {len(raw)}")
    systems = data.get("systems")
    if systems is not None and (not isinstance(systems, list) or len(systems) != len(raw)):
        raise InvalidInput(f'{where}: "systems" must be a list with one name per response')
    out = []
    for i, entry in enumerate(raw):
        listed = systems[i] if systems else None
        if listed is not None:
            listed = _check_text(listed, where, f"systems[{i}]", allow_empty=False)
        if isinstance(entry, dict):
            text = _response_text(entry.get("text"), where, f"responses[{i}].text", coerced)
            system = entry.get("system")
            if system is not None:
                system = _check_text(system, where, f"responses[{i}].system",
                                     allow_empty=False)
            # Named twice: both must say the same, or which one counts is a guess.
            if system is not None and listed is not None and system != listed:
                raise InvalidInput(f"{where}: responses[{i}].system {system!r} and "
                                   f"systems[{i}] {listed!r} disagree")
            system = listed if system is None else system
        else:
            text = _response_text(entry, where, f"responses[{i}]", coerced)
            system = listed
        out.append({"text": text, "system": system})
    return out


def _dpo_text(value: Any, where: str, name: str) -> Any:
    # TRL's conversational format keeps the reply as [{"role": "assistant", ...}].
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    if value is None:
        raise InvalidInput(f'{where}: "{name}" is missing')
    return value


def validate_item(data: Any, where: str, *, task_kind: str | None = None,
                  coerced: list[str] | None = None) -> dict:
    """Return a normalized item from one input record, or raise InvalidInput.

    An item without an ``"id"`` gets ``external_id`` None (numbered when written).
    Pass a ``coerced`` list to take non-text responses (``true``, ``3``) as their
    JSON text; ``where`` is appended to it for each one.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: each item must be a JSON object, got {_type_name(data)}")
    check_record(data, where)
    unknown = sorted(set(data) - ITEM_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    item: dict[str, Any] = {"external_id": None}
    if "id" in data and data["id"] is not None:
        ext = data["id"]
        if isinstance(ext, bool) or not isinstance(ext, (str, int)):
            raise InvalidInput(f'{where}: "id" must be a string or an integer, got '
                               f"{_type_name(ext)}")
        item["external_id"] = _check_text(str(ext), where, '"id"', allow_empty=False)
    prompt, messages = data.get("prompt"), data.get("messages")
    if messages is not None:
        if prompt is not None:
            raise InvalidInput(f'{where}: give "prompt" or "messages", not both')
        item["messages"] = _check_messages(messages, where)
        item["prompt"] = None
    elif isinstance(prompt, list):
        item["messages"] = _check_messages(prompt, where)
        item["prompt"] = None
    elif prompt is not None:
        item["prompt"] = _check_text(prompt, where, '"prompt"', allow_empty=False)
    else:
        raise InvalidInput(f'{where}: "prompt" (or "messages") is missing')
    item["responses"] = _responses(data, where, coerced)
    n = len(item["responses"])
    if task_kind == "pairwise" and n != 2:
        raise InvalidInput(f'{where}: "responses" must have exactly 2 entries in a pairwise '
                           f"project, got {n}")
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f'{where}: "metadata" must be an object, got {_type_name(metadata)}')
    _check_json(metadata, where, '"metadata"')
    item["metadata"] = metadata
    category = data.get("category", metadata.get("category"))
    if category is not None:
        category = _check_text(str(category) if isinstance(category, (int, float)) else category,
                               where, '"category"')
    item["category"] = category
    gold = data.get("gold")
    if gold is not None:
        if not isinstance(gold, dict):
            raise InvalidInput(f'{where}: "gold" must be an object like {{"choice": 0}}, got '
                               f"{_type_name(gold)}")
        label = store.normalize_judgment(n, choice=gold.get("choice"),
                                         ranking=gold.get("ranking"), where=f"{where}: gold")
        item["gold"] = {k: v for k, v in (("choice", label["choice"] if label["outcome"] ==
                                           "choice" else label["outcome"]),
                                          ("ranking", label["ranking"])) if v is not None}
    else:
        item["gold"] = None
    item["where"] = where
    return item


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_judgment(data: Any, where: str, n_responses: int) -> dict:
    """Return a normalized judgment (without ids), or raise InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a judgment must be an object, got {_type_name(data)}")
    check_record(data, where)
    unknown = sorted(set(data) - JUDGMENT_KEYS - {"item"})
    if unknown:
        raise InvalidInput(f"{where}: unknown judgment field(s) {', '.join(map(repr, unknown))}")
    rater = data.get("rater")
    _check_text(rater, where, '"rater"', allow_empty=False)
    kind = data.get("kind", "human")
    if kind not in store.RATER_KINDS:
        raise InvalidInput(f'{where}: "kind" must be "human" or "llm", got {_shown(kind)}')
    label = store.normalize_judgment(
        n_responses, choice=data.get("choice"), ranking=data.get("ranking"),
        strength=data.get("strength"), where=where)
    out = {"rater": rater, "kind": kind, **label}
    for key in ("rationale", "edited"):
        if data.get(key) is not None:
            out[key] = _check_text(data[key], where, f'"{key}"')
    for key in ("aspects", "metadata"):
        value = data.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise InvalidInput(f'{where}: "{key}" must be an object, got {_type_name(value)}')
            _check_json(value, where, f'"{key}"')
        out[key] = value
    if data.get("aspects"):
        for name, score in data["aspects"].items():
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not (
                    math.isfinite(score)):
                raise InvalidInput(f'{where}: aspects[{json.dumps(name)}] must be a number, got '
                                   f"{_type_name(score)}")
    tags = data.get("reason_tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput(f'{where}: "reason_tags" must be a list of strings')
        for i, tag in enumerate(tags):
            _check_text(tag, where, f"reason_tags[{i}]")
    out["reason_tags"] = tags
    order = data.get("display_order")
    # Booleans are not indices, though Python sorts them as 0 and 1.
    if order is not None and (not isinstance(order, list) or not all(map(_is_int, order))
                              or sorted(order) != list(range(n_responses))):
        raise InvalidInput(f'{where}: "display_order" must be a permutation of '
                           f"0..{n_responses - 1}, got {_shown(order)}")
    out["display_order"] = order
    time_ms = data.get("time_ms")
    if time_ms is not None and (not _is_int(time_ms) or not 0 <= time_ms <= INT64_MAX):
        raise InvalidInput(f'{where}: "time_ms" must be an integer from 0 to {INT64_MAX}, got '
                           f"{_shown(time_ms)}")
    out["time_ms"] = time_ms
    sub = data.get("submission_id")
    if sub is not None:
        _check_text(sub, where, '"submission_id"', allow_empty=False)
    out["submission_id"] = sub
    created = data.get("created_at")
    if created is not None:
        _check_text(created, where, '"created_at"', allow_empty=False)
        try:
            store.parse_iso(created)
        except ValueError as exc:
            raise InvalidInput(f'{where}: "created_at" must look like 2026-01-31T12:00:00.000Z, '
                               f"got {_shown(created)}") from exc
    out["created_at"] = created
    return out


def _label(judgment: dict) -> tuple:
    ranking = judgment.get("ranking")
    return (judgment["outcome"], judgment.get("choice"),
            tuple(ranking) if ranking is not None else None, judgment.get("strength"))


class _SeenJudgments:
    """Refuses, within one file, a rater's second judgment on an item and a reused submission id."""

    def __init__(self):
        self.by_item: dict[tuple, str] = {}
        self.by_submission: dict[tuple, str] = {}

    def check(self, judgment: dict, item_key: Any, item_name: str, where: str) -> None:
        rater = judgment["rater"]
        first = self.by_item.get((rater, item_key))
        if first is not None:
            raise InvalidInput(f"{where}: rater {_shown(rater)} has a second judgment on "
                               f"{item_name} (the first is on {first}); a rater judges an item "
                               "once")
        sub = judgment["submission_id"]
        if sub is not None:
            first = self.by_submission.get((rater, sub))
            if first is not None:
                raise InvalidInput(f'{where}: "submission_id" {_shown(sub)} of rater '
                                   f"{_shown(rater)} is already used on {first}")
            self.by_submission[(rater, sub)] = where
        self.by_item[(rater, item_key)] = where


def _submission_id(item_key: str, judgment: dict) -> str:
    """A stable id for an imported judgment, so importing a file twice adds nothing."""
    body = json.dumps({k: v for k, v in judgment.items()
                       if k not in ("submission_id", "where", "item_index")},
                      sort_keys=True, ensure_ascii=False)
    return "import:" + hashlib.sha256(f"{item_key}\x1f{body}".encode()).hexdigest()[:32]


def _progress(records: Iterator[Record], total_hint: int, desc: str) -> Iterator[Record]:
    if total_hint < PROGRESS_MIN_LINES:
        return records
    return tqdm(records, total=total_hint, desc=desc, unit="line", file=sys.stderr,
                disable=None)


def _assign_ids(items: list[dict], taken: set[str]) -> None:
    """Number the items that came without an id "1", "2", ..., skipping ids in use."""
    used = set(taken) | {i["external_id"] for i in items if not i.get("auto_id")}
    number = 1
    for item in items:
        if item.get("auto_id"):
            while str(number) in used:
                number += 1
            item["external_id"] = str(number)
            used.add(item["external_id"])


def parse_items(source: str | os.PathLike | bytes, *, fmt: str | None = None,
                name: str | None = None, task_kind: str | None = None,
                skip_invalid_judgments: bool = False, existing_ids: set[str] | None = None,
                skip_existing: bool = False, coerce_text: bool = False,
                max_errors: int = MAX_ERRORS_LISTED) -> ParsedItems:
    """Read and validate an item file without touching the database.

    Parameters
    ----------
    source : path or bytes
    task_kind : "pairwise", "slate" or None (decide from the items)
    skip_invalid_judgments : bool
        Skip judgments whose label is not a valid choice, recording them in
        ``skipped``, instead of failing.
    existing_ids : set of str
        External ids already in the project; reusing one is an error, unless
        ``skip_existing`` moves such items to ``existing``.
    coerce_text : bool
        Take responses that are JSON scalars (``true``, ``3``) as their JSON
        text, listing where in ``coerced``, instead of failing.
    max_errors : int
        List up to this many errors in the ImportFailed raised (all are counted).
    """
    parsed = ParsedItems()
    errors = _Errors(max_errors)
    seen: dict[str, str] = {}
    seen_judgments = _SeenJudgments()
    existing_ids = existing_ids or set()
    data, default_name = _read_bytes(source)
    records = read_records(data, fmt, name or default_name)
    try:
        for record in _progress(records, data.count(b"\n"), "validating"):
            if record.error is not None:
                errors.add(record.error)
                continue
            try:
                coerced: list[str] | None = [] if coerce_text else None
                item = validate_item(record.data, record.where, task_kind=task_kind,
                                     coerced=coerced)
                ext = item["external_id"]
                is_existing = False
                if ext is None:
                    item["auto_id"] = True
                else:
                    if ext in seen:
                        raise InvalidInput(f'{record.where}: "id" {_shown(ext)} repeats the id '
                                           f"on {seen[ext]}")
                    if ext in existing_ids:
                        if not skip_existing:
                            raise InvalidInput(f'{record.where}: "id" {_shown(ext)} already '
                                               "exists in the project")
                        is_existing = True
                    seen[ext] = record.where
                raw_judgments = record.data.get("judgments")
                if raw_judgments is None:
                    raw_judgments = []
                # Not "or []": a falsy non-list such as 0 or "" must be refused.
                if not isinstance(raw_judgments, list):
                    raise InvalidInput(f'{record.where}: "judgments" must be a list, got '
                                       f"{_type_name(raw_judgments)}")
                index = len(parsed.items) + len(parsed.existing)
                item_judgments = []
                for k, raw in enumerate(raw_judgments):
                    where = f"{record.where}: judgments[{k}]"
                    try:
                        judgment = validate_judgment(raw, where, len(item["responses"]))
                    except InvalidInput as exc:
                        if skip_invalid_judgments and isinstance(raw, dict) and isinstance(
                                raw.get("rater"), str) and not text_problem(raw["rater"]):
                            parsed.skipped.append({"where": where, "reason": str(exc)})
                            continue
                        raise
                    seen_judgments.check(judgment, index, "this item", where)
                    judgment["item_index"] = index
                    judgment["where"] = where
                    item_judgments.append(judgment)
                (parsed.existing if is_existing else parsed.items).append(item)
                item["index"] = index
                parsed.judgments.extend(item_judgments)
                if coerced:
                    parsed.coerced.extend(coerced)
            except InvalidInput as exc:
                errors.add(str(exc))
                if errors.full and max_errors <= 1:
                    break
    except InvalidInput as exc:  # unreadable input stops the scan
        errors.add(str(exc))
    errors.raise_if_any()
    if not parsed.items and not parsed.existing:
        raise InvalidInput("the file holds no items")
    _assign_ids(parsed.items, existing_ids)
    return parsed


def parse_judgments(source: str | os.PathLike | bytes, items: dict[str, tuple[int, int]], *,
                    fmt: str | None = None, name: str | None = None,
                    skip_invalid_judgments: bool = False, max_errors: int = MAX_ERRORS_LISTED
                    ) -> tuple[list[dict], list[dict]]:
    """Validate a judgments file against a project's items.

    ``items`` maps external id to ``(item id, number of responses)``. Returns
    ``(judgments, skipped)``.
    """
    judgments: list[dict] = []
    skipped: list[dict] = []
    errors = _Errors(max_errors)
    seen = _SeenJudgments()
    data, default_name = _read_bytes(source)
    try:
        for record in _progress(read_records(data, fmt, name or default_name),
                                data.count(b"\n"), "validating"):
            if record.error is not None:
                errors.add(record.error)
                continue
            try:
                raw = record.data
                if not isinstance(raw, dict):
                    raise InvalidInput(f"{record.where}: a judgment must be an object, got "
                                       f"{_type_name(raw)}")
                ext = raw.get("item")
                if _is_int(ext):
                    ext = str(ext)
                if not isinstance(ext, str):
                    raise InvalidInput(f'{record.where}: "item" must be an item id, got '
                                       f"{_type_name(raw.get('item'))}")
                if ext not in items:
                    raise InvalidInput(f'{record.where}: "item" {_shown(ext)} is not in the '
                                       "project")
                item_id, n_responses = items[ext]
                try:
                    judgment = validate_judgment(raw, record.where, n_responses)
                except InvalidInput as exc:
                    if skip_invalid_judgments and isinstance(raw.get("rater"), str) and not (
                            text_problem(raw["rater"])):
                        skipped.append({"where": record.where, "reason": str(exc)})
                        continue
                    raise
                seen.check(judgment, ext, f"item {_shown(ext)}", record.where)
                judgment["item"] = ext
                judgment["where"] = record.where
                judgments.append(judgment)
            except InvalidInput as exc:
                errors.add(str(exc))
                if errors.full and max_errors <= 1:
                    break
    except InvalidInput as exc:
        errors.add(str(exc))
    errors.raise_if_any()
    return judgments, skipped


# --------------------------------------------------------------------------
# Writing


def _stored_judgments(db, rater: dict, project_id: int) -> tuple[dict, dict]:
    """A rater's judgments in the project: by item id, and by submission id."""
    by_item: dict[int, dict] = {}
    by_submission: dict[str, dict] = {}
    for j in store.list_judgments(db, rater_id=rater["id"], project_id=project_id):
        by_item.setdefault(j["item_id"], j)
        by_submission[j["submission_id"]] = j
    return by_item, by_submission


def _write_judgments(db, project_id: int, judgments: list[dict], item_ids: dict[str, int],
                     max_errors: int = MAX_ERRORS_LISTED) -> int:
    """Insert the judgments; return how many were new.

    A line identical to a stored judgment (same rater and submission id, item and
    label) adds nothing. A rater's second judgment on an item, or a submission id
    already stored for another judgment, is an error naming the line: it must
    never be lost as "already present".
    """
    raters: dict[str, dict] = {}
    stored: dict[str, tuple[dict, dict]] = {}
    names = {v: k for k, v in item_ids.items()}
    errors = _Errors(max_errors)
    rows = []
    for judgment in judgments:
        judgment = dict(judgment)
        where = judgment.pop("where", "judgment")  # not part of the submission id hash
        judgment.pop("item_index", None)
        name = judgment["rater"]
        try:
            if name not in raters:
                try:
                    raters[name] = store.get_or_create_rater(db, name, judgment["kind"])
                except InvalidInput as exc:
                    raise InvalidInput(f"{where}: {exc}") from exc
                stored[name] = _stored_judgments(db, raters[name], project_id)
            elif raters[name]["kind"] != judgment["kind"]:
                raise InvalidInput(f"{where}: rater {_shown(name)} appears with kinds "
                                   f"{raters[name]['kind']!r} and {judgment['kind']!r}")
            item_id = item_ids[judgment["item"]]
            submission = judgment["submission_id"] or _submission_id(judgment["item"], judgment)
            by_item, by_submission = stored[name]
            earlier = by_submission.get(submission)
            if earlier is not None:
                if earlier["item_id"] == item_id and _label(earlier) == _label(judgment):
                    continue  # the same judgment again: nothing to add
                raise InvalidInput(
                    f'{where}: "submission_id" {_shown(submission)} of rater {_shown(name)} is '
                    f"already stored for a different judgment (judgment {earlier['id']} on item "
                    f"{_shown(names.get(earlier['item_id'], earlier['item_id']))}); give a new "
                    "submission_id")
            if item_id in by_item:
                raise InvalidInput(
                    f"{where}: rater {_shown(name)} already has a judgment on item "
                    f"{_shown(judgment['item'])} in the project (judgment "
                    f"{by_item[item_id]['id']}); a rater judges an item once")
        except InvalidInput as exc:
            errors.add(str(exc))
            continue
        row = {k: v for k, v in judgment.items() if k not in ("rater", "item")}
        row["item_id"] = item_id
        row["rater_id"] = raters[name]["id"]
        row["submission_id"] = submission
        rows.append(row)
    errors.raise_if_any()
    return store.insert_judgments(db, rows)


def _fold_pair_counts(db, project_id: int) -> None:
    """Fold the imported judgments into the pair counts now, not in the next refit.

    A bulk import is the one write that adds a million judgments at once; its
    fold (about 5 s per million) belongs to it, so the worker's refit after it
    reads counts that are current. After the import's commit: a fold cut short
    leaves its watermark behind, and the next fit folds on from there.
    """
    from prefstore import fitting  # numpy, pandas and the models: on use only

    try:
        fitting.refresh_pair_counts(db, project_id)
    except InvalidInput:
        pass  # a judgment the models cannot read: the fit reads the judgments and names it
    except (PrefstoreError, *store.driver_errors()) as exc:
        # The import has committed: a busy or lost database here must not report it
        # as failed (a second run would then find its rows). The next fit folds them.
        log.warning("the import's judgments are stored; folding them into the pair "
                    "counts failed (%s), the next fit does it", exc)


def import_items(db, source: str | os.PathLike | bytes, project: str, *,
                 kind: str | None = None, fmt: str | None = None, name: str | None = None,
                 skip_invalid_judgments: bool = False, skip_existing: bool = False,
                 coerce_text: bool = False, settings: dict | None = None, actor: str = "cli",
                 max_errors: int = MAX_ERRORS_LISTED) -> dict:
    """Import items (and any judgments they carry) into ``project``, all or nothing.

    Creates the project when it does not exist: ``kind`` decides its task
    kind, else it is pairwise when every item has exactly 2 responses. Two
    imports into the same new project may run at once: one creates it, and
    both import. With ``skip_existing``, items whose id is already in the
    project are skipped (their judgments are still imported; those already
    stored add nothing), so a grown file can be imported again.

    Returns a report with counts, the skipped judgments and the coerced responses.
    """
    existing = store.find_project(db, project)
    if existing and kind and kind != existing["kind"]:
        raise InvalidInput(f"--kind {kind}: project {project!r} is a {existing['kind']} project")
    task_kind = existing["kind"] if existing else kind
    if task_kind is not None and task_kind not in store.TASK_KINDS:
        raise InvalidInput(f"--kind must be pairwise or slate, got {task_kind!r}")
    parsed = parse_items(
        source, fmt=fmt, name=name, task_kind=task_kind,
        skip_invalid_judgments=skip_invalid_judgments, skip_existing=skip_existing,
        coerce_text=coerce_text, max_errors=max_errors,
        existing_ids=store.existing_external_ids(db, existing["id"]) if existing else set())
    with store.write(db):
        proj, created_project = store.ensure_project(db, project, task_kind or parsed.kind(),
                                                     settings, actor=actor)
        # Checked again inside the write lock: another import may have created the
        # project, or added items, since the file was parsed.
        if kind and kind != proj["kind"]:
            raise InvalidInput(f"--kind {kind}: project {project!r} is a {proj['kind']} project")
        current = store.item_ids_by_external(db, proj["id"])
        errors = _Errors(max_errors)
        new, skipped_items = [], list(parsed.existing)
        for item in parsed.items:
            n = len(item["responses"])
            if proj["kind"] == "pairwise" and n != 2:
                errors.add(f'{item["where"]}: "responses" must have exactly 2 entries in a '
                           f"pairwise project, got {n}")
            elif not item.get("auto_id") and item["external_id"] in current:
                if skip_existing:
                    skipped_items.append(item)
                else:
                    errors.add(f'{item["where"]}: "id" {_shown(item["external_id"])} already '
                               "exists in the project")
            else:
                new.append(item)
        for item in skipped_items:
            n_stored = current[item["external_id"]][1]
            if n_stored != len(item["responses"]):
                errors.add(f'{item["where"]}: item {_shown(item["external_id"])} is in the '
                           f"project with {n_stored} responses, the file gives "
                           f"{len(item['responses'])}")
        errors.raise_if_any()
        _assign_ids(new, set(current))
        ids = store.insert_items(db, proj["id"], new)
        by_index = {item["index"]: item["external_id"] for item in new + skipped_items}
        item_ids = {ext: v[0] for ext, v in current.items()}
        item_ids.update({item["external_id"]: i for item, i in zip(new, ids)})
        judgments = [{**j, "item": by_index[j["item_index"]]} for j in parsed.judgments]
        n_judgments = _write_judgments(db, proj["id"], judgments, item_ids, max_errors)
        details = {"items": len(ids), "judgments": n_judgments, "skipped": len(parsed.skipped)}
        if skipped_items:
            details["existing"] = len(skipped_items)
        store.log_action(db, proj["id"], actor, "import_items", details)
    if n_judgments:
        _fold_pair_counts(db, proj["id"])
    return {"project": project, "created_project": created_project,
            "kind": proj["kind"], "items": len(ids),
            "responses": sum(len(i["responses"]) for i in new),
            "judgments": n_judgments, "duplicates": len(judgments) - n_judgments,
            "skipped": parsed.skipped, "existing": len(skipped_items),
            "coerced": parsed.coerced}


def import_judgments(db, source: str | os.PathLike | bytes, project: str, *,
                     fmt: str | None = None, name: str | None = None,
                     skip_invalid_judgments: bool = False, actor: str = "cli",
                     max_errors: int = MAX_ERRORS_LISTED) -> dict:
    """Import judgments for items already in ``project``, all or nothing.

    A judgment identical to a stored one adds nothing (``duplicates`` counts
    them); a rater's second judgment on an item, or a reused submission id, is
    an error naming both places.
    """
    existing = store.get_project(db, project)
    items = store.item_ids_by_external(db, existing["id"])
    judgments, skipped = parse_judgments(source, items, fmt=fmt, name=name,
                                         skip_invalid_judgments=skip_invalid_judgments,
                                         max_errors=max_errors)
    with store.write(db):
        n = _write_judgments(db, existing["id"], judgments,
                             {ext: v[0] for ext, v in items.items()}, max_errors)
        store.log_action(db, existing["id"], actor, "import_judgments",
                         {"judgments": n, "skipped": len(skipped)})
    if n:
        _fold_pair_counts(db, existing["id"])
    return {"project": project, "judgments": n, "duplicates": len(judgments) - n,
            "skipped": skipped}
