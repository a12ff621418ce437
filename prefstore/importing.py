"""Parse and validate item and judgment files, then write them in one transaction.

Accepted formats are JSONL, a JSON list (or ``{"items": [...]}``) and CSV.
Every line is validated before anything is written, so a bad line leaves the
database unchanged. Errors name the line and the field::

    line 17: "responses" must have at least 2 entries, got 1
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from prefstore import store
from prefstore.errors import Conflict, InvalidInput

MAX_TEXT_CHARS = 1_000_000
MAX_RESPONSES = 10
MAX_ERRORS_LISTED = 20
PROGRESS_MIN_LINES = 5_000
ROLES = ("system", "user", "assistant")
ITEM_KEYS = {"id", "prompt", "messages", "responses", "response_a", "response_b", "chosen",
             "rejected", "metadata", "category", "gold", "judgments", "systems"}
JUDGMENT_KEYS = {"rater", "kind", "choice", "ranking", "strength", "rationale", "aspects",
                 "edited", "metadata", "reason_tags", "time_ms", "display_order",
                 "submission_id", "created_at"}


class ImportFailed(InvalidInput):
    """A file failed validation; ``errors`` lists every problem found (up to a cap)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)


@dataclass
class Record:
    """One parsed input record and where it came from."""

    where: str
    data: Any


@dataclass
class ParsedItems:
    """Items and their judgments, validated and ready to write."""

    items: list[dict] = field(default_factory=list)
    judgments: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def kind(self) -> str:
        """The task kind implied by the items: pairwise iff every item has 2 responses."""
        return "pairwise" if all(len(i["responses"]) == 2 for i in self.items) else "slate"


# --------------------------------------------------------------------------
# Reading records


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "upload"
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    return path.read_bytes(), path.name


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


def read_records(source: str | os.PathLike | bytes, fmt: str | None = None,
                 name: str | None = None) -> Iterator[Record]:
    """Yield each record of a JSONL, JSON or CSV file with its line label.

    Raises InvalidInput naming the line for undecodable or malformed input.
    """
    data, default_name = _read_bytes(source)
    fmt = _detect_format(data, name or default_name, fmt)
    if fmt == "jsonl":
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            try:
                # utf-8-sig on the first line: editors on Windows start files with a BOM.
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"line {lineno}: invalid UTF-8 at byte {exc.start} of the line"
                                   ) from exc
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"line {lineno}: invalid JSON ({exc.msg} at column "
                                   f"{exc.colno})") from exc
            except (ValueError, RecursionError) as exc:
                # An integer over 4,300 digits, or nesting deeper than the recursion limit.
                raise InvalidInput(f"line {lineno}: invalid JSON ({_json_limit(exc)})") from exc
            yield Record(f"line {lineno}", value)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidInput(f"line {line}: invalid UTF-8 at byte {exc.start}") from exc
    if fmt == "json":
        try:
            value = json.loads(text)
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
            yield Record(f"item {i}", entry)
        return
    # The csv module's default field limit (131,072) is below our text limit.
    csv.field_size_limit(MAX_TEXT_CHARS + 1)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise InvalidInput("line 1: the CSV file has no header row")
    try:
        for row in reader:
            yield Record(f"line {reader.line_num}", _csv_row(row, f"line {reader.line_num}"))
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
                out[key] = json.loads(value)
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
    if "\x00" in value:
        raise InvalidInput(f"{where}: {name} contains a NUL character")
    return value


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
                               f"got {role!r}")
        content = _check_text(message.get("content"), where, f"messages[{i}].content")
        out.append({"role": role, "content": content})
    return out


def _responses(data: dict, where: str) -> list[dict]:
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
        if isinstance(entry, dict):
            text = _check_text(entry.get("text"), where, f"responses[{i}].text")
            system = entry.get("system")
        else:
            text = _check_text(entry, where, f"responses[{i}]")
            system = systems[i] if systems else None
        if system is not None:
            system = _check_text(system, where, f"responses[{i}].system", allow_empty=False)
        out.append({"text": text, "system": system})
    return out


def _dpo_text(value: Any, where: str, name: str) -> Any:
    # TRL's conversational format keeps the reply as [{"role": "assistant", ...}].
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    if value is None:
        raise InvalidInput(f'{where}: "{name}" is missing')
    return value


def validate_item(data: Any, where: str, *, task_kind: str | None = None) -> dict:
    """Return a normalized item from one input record, or raise InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: each item must be a JSON object, got {_type_name(data)}")
    unknown = sorted(set(data) - ITEM_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    item: dict[str, Any] = {}
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
    item["responses"] = _responses(data, where)
    n = len(item["responses"])
    if task_kind == "pairwise" and n != 2:
        raise InvalidInput(f'{where}: "responses" must have exactly 2 entries in a pairwise '
                           f"project, got {n}")
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f'{where}: "metadata" must be an object, got {_type_name(metadata)}')
    _check_text(json.dumps(metadata, ensure_ascii=False), where, '"metadata"')
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
    return item


def validate_judgment(data: Any, where: str, n_responses: int) -> dict:
    """Return a normalized judgment (without ids), or raise InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a judgment must be an object, got {_type_name(data)}")
    unknown = sorted(set(data) - JUDGMENT_KEYS - {"item"})
    if unknown:
        raise InvalidInput(f"{where}: unknown judgment field(s) {', '.join(map(repr, unknown))}")
    rater = data.get("rater")
    _check_text(rater, where, '"rater"', allow_empty=False)
    kind = data.get("kind", "human")
    if kind not in store.RATER_KINDS:
        raise InvalidInput(f'{where}: "kind" must be "human" or "llm", got {kind!r}')
    label = store.normalize_judgment(
        n_responses, choice=data.get("choice"), ranking=data.get("ranking"),
        strength=data.get("strength"), where=where)
    out = {"rater": rater, "kind": kind, **label}
    for key in ("rationale", "edited"):
        if data.get(key) is not None:
            out[key] = _check_text(data[key], where, f'"{key}"')
    for key in ("aspects", "metadata"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f'{where}: "{key}" must be an object, got {_type_name(value)}')
        out[key] = value
    if data.get("aspects"):
        for name, score in data["aspects"].items():
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise InvalidInput(f'{where}: aspects["{name}"] must be a number, got '
                                   f"{_type_name(score)}")
    tags = data.get("reason_tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str)
                                                                  for t in tags)):
        raise InvalidInput(f'{where}: "reason_tags" must be a list of strings')
    out["reason_tags"] = tags
    order = data.get("display_order")
    if order is not None and (not isinstance(order, list)
                              or sorted(order) != list(range(n_responses))):
        raise InvalidInput(f'{where}: "display_order" must be a permutation of '
                           f"0..{n_responses - 1}, got {order!r}")
    out["display_order"] = order
    time_ms = data.get("time_ms")
    if time_ms is not None and (isinstance(time_ms, bool) or not isinstance(time_ms, int)
                                or time_ms < 0):
        raise InvalidInput(f'{where}: "time_ms" must be a non-negative integer, got {time_ms!r}')
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
                               f"got {created!r}") from exc
    out["created_at"] = created
    return out


def _submission_id(item_key: str, judgment: dict) -> str:
    """A stable id for an imported judgment, so importing a file twice adds nothing."""
    body = json.dumps({k: v for k, v in judgment.items() if k != "submission_id"},
                      sort_keys=True, ensure_ascii=False)
    return "import:" + hashlib.sha256(f"{item_key}\x1f{body}".encode()).hexdigest()[:32]


def _progress(records: Iterator[Record], total_hint: int, desc: str) -> Iterator[Record]:
    if total_hint < PROGRESS_MIN_LINES:
        return records
    return tqdm(records, total=total_hint, desc=desc, unit="line", file=sys.stderr,
                disable=None)


def parse_items(source: str | os.PathLike | bytes, *, fmt: str | None = None,
                name: str | None = None, task_kind: str | None = None,
                skip_invalid_judgments: bool = False, existing_ids: set[str] | None = None,
                max_errors: int = 1) -> ParsedItems:
    """Read and validate an item file without touching the database.

    Parameters
    ----------
    source : path or bytes
    task_kind : "pairwise", "slate" or None (decide from the items)
    skip_invalid_judgments : bool
        Skip judgments whose label is not a valid choice, recording them in
        ``skipped``, instead of failing.
    existing_ids : set of str
        External ids already in the project; reusing one is an error.
    max_errors : int
        Collect up to this many errors before raising ImportFailed.
    """
    parsed = ParsedItems()
    errors: list[str] = []
    seen: dict[str, str] = {}
    existing_ids = existing_ids or set()
    data, default_name = _read_bytes(source)
    records = read_records(data, fmt, name or default_name)
    next_number = 1
    try:
        for record in _progress(records, data.count(b"\n"), "validating"):
            try:
                item = validate_item(record.data, record.where, task_kind=task_kind)
                if "external_id" not in item:
                    while str(next_number) in seen or str(next_number) in existing_ids:
                        next_number += 1
                    item["external_id"] = str(next_number)
                ext = item["external_id"]
                if ext in seen:
                    raise InvalidInput(f'{record.where}: "id" {ext!r} repeats the id on '
                                       f"{seen[ext]}")
                if ext in existing_ids:
                    raise InvalidInput(f'{record.where}: "id" {ext!r} already exists in the '
                                       "project")
                seen[ext] = record.where
                raw_judgments = record.data.get("judgments")
                if raw_judgments is None:
                    raw_judgments = []
                # Not "or []": a falsy non-list such as 0 or "" must be refused.
                if not isinstance(raw_judgments, list):
                    raise InvalidInput(f'{record.where}: "judgments" must be a list, got '
                                       f"{_type_name(raw_judgments)}")
                for k, raw in enumerate(raw_judgments):
                    where = f"{record.where}: judgments[{k}]"
                    try:
                        judgment = validate_judgment(raw, where, len(item["responses"]))
                    except InvalidInput as exc:
                        if skip_invalid_judgments and isinstance(raw, dict) and isinstance(
                                raw.get("rater"), str):
                            parsed.skipped.append({"where": where, "reason": str(exc)})
                            continue
                        raise
                    judgment["item"] = ext
                    judgment["where"] = where
                    parsed.judgments.append(judgment)
                parsed.items.append(item)
            except InvalidInput as exc:
                errors.append(str(exc))
                if len(errors) >= max_errors:
                    break
    except InvalidInput as exc:  # unreadable input stops the scan
        errors.append(str(exc))
    if errors:
        raise ImportFailed(errors)
    if not parsed.items:
        raise InvalidInput("the file holds no items")
    return parsed


def parse_judgments(source: str | os.PathLike | bytes, items: dict[str, tuple[int, int]], *,
                    fmt: str | None = None, name: str | None = None,
                    skip_invalid_judgments: bool = False, max_errors: int = 1
                    ) -> tuple[list[dict], list[dict]]:
    """Validate a judgments file against a project's items.

    ``items`` maps external id to ``(item id, number of responses)``. Returns
    ``(judgments, skipped)``.
    """
    judgments: list[dict] = []
    skipped: list[dict] = []
    errors: list[str] = []
    data, default_name = _read_bytes(source)
    try:
        for record in _progress(read_records(data, fmt, name or default_name),
                                data.count(b"\n"), "validating"):
            try:
                raw = record.data
                if not isinstance(raw, dict):
                    raise InvalidInput(f"{record.where}: a judgment must be an object, got "
                                       f"{_type_name(raw)}")
                ext = raw.get("item")
                if isinstance(ext, int) and not isinstance(ext, bool):
                    ext = str(ext)
                if not isinstance(ext, str):
                    raise InvalidInput(f'{record.where}: "item" must be an item id, got '
                                       f"{_type_name(raw.get('item'))}")
                if ext not in items:
                    raise InvalidInput(f'{record.where}: "item" {ext!r} is not in the project')
                item_id, n_responses = items[ext]
                try:
                    judgment = validate_judgment(raw, record.where, n_responses)
                except InvalidInput as exc:
                    if skip_invalid_judgments and isinstance(raw.get("rater"), str):
                        skipped.append({"where": record.where, "reason": str(exc)})
                        continue
                    raise
                judgment["item"] = ext
                judgment["where"] = record.where
                judgments.append(judgment)
            except InvalidInput as exc:
                errors.append(str(exc))
                if len(errors) >= max_errors:
                    break
    except InvalidInput as exc:
        errors.append(str(exc))
    if errors:
        raise ImportFailed(errors)
    return judgments, skipped


# --------------------------------------------------------------------------
# Writing


def _write_judgments(db, judgments: list[dict], item_ids: dict[str, int]) -> int:
    raters: dict[str, dict] = {}
    rows = []
    for judgment in judgments:
        judgment = dict(judgment)
        where = judgment.pop("where", "judgment")  # not part of the submission id hash
        name = judgment["rater"]
        if name not in raters:
            try:
                raters[name] = store.get_or_create_rater(db, name, judgment["kind"])
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc}") from exc
        elif raters[name]["kind"] != judgment["kind"]:
            raise InvalidInput(f"{where}: rater {name!r} appears with kinds "
                               f"{raters[name]['kind']!r} and {judgment['kind']!r}")
        row = {k: v for k, v in judgment.items() if k not in ("rater", "item")}
        row["item_id"] = item_ids[judgment["item"]]
        row["rater_id"] = raters[name]["id"]
        row["submission_id"] = judgment["submission_id"] or _submission_id(
            judgment["item"], judgment)
        rows.append(row)
    return store.insert_judgments(db, rows)


def import_items(db, source: str | os.PathLike | bytes, project: str, *,
                 kind: str | None = None, fmt: str | None = None, name: str | None = None,
                 skip_invalid_judgments: bool = False, settings: dict | None = None,
                 actor: str = "cli") -> dict:
    """Import items (and any judgments they carry) into ``project``, all or nothing.

    Creates the project when it does not exist: ``kind`` decides its task
    kind, else it is pairwise when every item has exactly 2 responses.
    Returns a report with counts and the skipped judgments.
    """
    existing = store.find_project(db, project)
    if existing and kind and kind != existing["kind"]:
        raise InvalidInput(f"--kind {kind}: project {project!r} is a {existing['kind']} project")
    task_kind = existing["kind"] if existing else kind
    if task_kind is not None and task_kind not in store.TASK_KINDS:
        raise InvalidInput(f"--kind must be pairwise or slate, got {task_kind!r}")
    parsed = parse_items(
        source, fmt=fmt, name=name, task_kind=task_kind,
        skip_invalid_judgments=skip_invalid_judgments,
        existing_ids=store.existing_external_ids(db, existing["id"]) if existing else set())
    with store.write(db):
        if existing is None:
            existing = store.create_project(db, project, task_kind or parsed.kind(),
                                              settings, actor=actor)
            created_project = True
        else:
            created_project = False
        try:
            ids = store.insert_items(db, existing["id"], parsed.items)
        except Conflict as exc:
            raise InvalidInput(str(exc)) from exc
        item_ids = {item["external_id"]: i for item, i in zip(parsed.items, ids)}
        n_judgments = _write_judgments(db, parsed.judgments, item_ids)
        store.log_action(db, existing["id"], actor, "import_items",
                       {"items": len(ids), "judgments": n_judgments,
                        "skipped": len(parsed.skipped)})
    return {"project": project, "created_project": created_project,
            "kind": existing["kind"], "items": len(ids),
            "responses": sum(len(i["responses"]) for i in parsed.items),
            "judgments": n_judgments, "skipped": parsed.skipped}


def import_judgments(db, source: str | os.PathLike | bytes, project: str, *,
                     fmt: str | None = None, name: str | None = None,
                     skip_invalid_judgments: bool = False, actor: str = "cli") -> dict:
    """Import judgments for items already in ``project``, all or nothing."""
    existing = store.get_project(db, project)
    items = store.item_ids_by_external(db, existing["id"])
    judgments, skipped = parse_judgments(source, items, fmt=fmt, name=name,
                                         skip_invalid_judgments=skip_invalid_judgments)
    with store.write(db):
        n = _write_judgments(db, judgments, {ext: v[0] for ext, v in items.items()})
        store.log_action(db, existing["id"], actor, "import_judgments",
                       {"judgments": n, "skipped": len(skipped)})
    return {"project": project, "judgments": n, "duplicates": len(judgments) - n,
            "skipped": skipped}
