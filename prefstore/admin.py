"""What the admin page needs beyond the store: rater links, uploads, exports.

Pure library code (no streamlit): the page passes in what the widgets hold
and shows what these functions return.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import pandas as pd

from prefstore import export, importing, store
from prefstore.errors import InvalidInput

BASE_URL_ENV = "PREFSTORE_BASE_URL"
DEFAULT_BASE_URL = "http://localhost:8501/"
PREVIEW_ROWS = 5
PREVIEW_CHARS = 80
IMPORT_ERRORS_LISTED = 20
EXPORT_DIR = Path(tempfile.gettempdir()) / "prefstore-exports"
EXPORT_MAX_AGE_S = 24 * 3600
LOCAL_ACTOR = "local admin"


# --------------------------------------------------------------------------
# Rater links


def base_url(context_url: str | None, env: Mapping[str, str], base_path: str = "") -> str:
    """Return the app's root URL, ending in "/": $PREFSTORE_BASE_URL, else the browser's origin.

    Never a page's own path (``…/admin/``): a link must open the app's entry
    point, which routes the rater to the Rate page. ``base_path`` is Streamlit's
    ``server.baseUrlPath``. Query and fragment are dropped: the admin's own URL
    may carry the admin token, which must never end up in a rater's link.
    """
    configured = (env.get(BASE_URL_ENV) or "").strip()
    if configured:
        parts = urlsplit(configured)
        if parts.scheme in ("http", "https") and parts.netloc:
            path = parts.path if parts.path.endswith("/") else parts.path + "/"
            return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    if context_url and context_url.strip():
        parts = urlsplit(context_url.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            root = "/" + "/".join(filter(None, (base_path or "").split("/")))
            return urlunsplit((parts.scheme, parts.netloc,
                               root if root.endswith("/") else root + "/", "", ""))
    return DEFAULT_BASE_URL


def rater_link(base: str, token: str, project: str | None = None) -> str:
    """Return the personal link ``<base>?token=<token>[&project=<name>]``."""
    query = {"token": token} | ({"project": project} if project is not None else {})
    return f"{base}?{urlencode(query, quote_via=quote, safe='')}"


def actor_name(identity: Any) -> str:
    """Return the name the audit log records for this admin."""
    return identity.name or LOCAL_ACTOR


# --------------------------------------------------------------------------
# Uploads


@dataclass
class UploadCheck:
    """The outcome of validating an upload without writing anything."""

    preview: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    items: int = 0
    judgments: int = 0
    #: Every error found, also those past the ones listed in ``errors``.
    total_errors: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def check_upload_size(n_bytes: int, limit_mb: float) -> None:
    """Raise InvalidInput if an upload is over ``limit_mb`` megabytes (server.maxUploadSize)."""
    if n_bytes > limit_mb * 1024 * 1024:
        raise InvalidInput(f"the file is {n_bytes / 1024 / 1024:.1f} MB; uploads are limited "
                           f"to {limit_mb:g} MB (server.maxUploadSize): split it, or import it "
                           "with `prefstore import`")


def _short(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # the validation names the problem
        text = "…"
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def preview_records(data: bytes, name: str, n: int = PREVIEW_ROWS) -> list[dict]:
    """Return the file's first ``n`` records as short text fields, for a table.

    Stops quietly at the first unreadable record: the validation lists it.
    """
    rows: list[dict] = []
    try:
        for record in importing.read_records(data, name=name):
            if record.error is not None:
                break
            fields = record.data if isinstance(record.data, dict) else {"value": record.data}
            rows.append({"where": record.where, **{k: _short(v) for k, v in fields.items()}})
            if len(rows) >= n:
                break
    except InvalidInput:
        pass
    return rows


def check_upload(db, project: dict, data: bytes, name: str) -> UploadCheck:
    """Validate an item file against ``project`` without writing; list up to 20 errors.

    Every file that ``prefstore import`` refuses gives the same line-numbered
    messages here, and no file makes this raise.
    """
    check = UploadCheck(preview=preview_records(data, name))
    try:
        parsed = importing.parse_items(
            data, name=name, task_kind=project["kind"],
            existing_ids=store.existing_external_ids(db, project["id"]),
            max_errors=IMPORT_ERRORS_LISTED)
    except importing.ImportFailed as exc:
        check.errors, check.total_errors = list(exc.errors), exc.total
    except InvalidInput as exc:
        check.errors, check.total_errors = [str(exc)], 1
    else:
        check.items, check.judgments = len(parsed.items), len(parsed.judgments)
    return check


# --------------------------------------------------------------------------
# Tables and charts


def audit_rows(entries: list[dict], project_names: Mapping[int, str]) -> list[dict]:
    """Return audit-log entries as table rows: when, who, project, action, what."""
    return [{"when": e["created_at"], "who": e["actor"],
             "project": project_names.get(e["project_id"], "") if e["project_id"] else "",
             "action": e["action"],
             "what": json.dumps(e["details"], ensure_ascii=False, sort_keys=True)}
            for e in entries]


def coverage_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """Return items by number of human judgments, in that order, for a bar chart."""
    coverage = stats["items_by_human_judgments"]
    keys = sorted(coverage, key=int)
    return pd.DataFrame({"human judgments": keys, "items": [coverage[k] for k in keys]})


def target_progress(stats: Mapping[str, Any], raters_per_item: int) -> tuple[int, int]:
    """Return (human judgments that count toward the target, the target).

    The target is items x raters_per_item; judgments beyond an item's quota
    (imported, or from gold checks) do not count toward it.
    """
    coverage = stats["items_by_human_judgments"]
    done = sum(min(int(k), raters_per_item) * n for k, n in coverage.items())
    return done, stats["items"] * raters_per_item


def heartbeat_age(heartbeat_at: str, now: dt.datetime | None = None) -> str:
    """Return how long ago a worker's heartbeat was: "12 s ago", "3 min ago"."""
    seconds = max(0, int(((now or dt.datetime.now(dt.UTC))
                          - store.parse_iso(heartbeat_at)).total_seconds()))
    return f"{seconds // 60} min ago" if seconds >= 120 else f"{seconds} s ago"


# --------------------------------------------------------------------------
# Exports


def export_file_name(project_name: str, format: str, aggregate: str) -> str:
    """Return the download's file name, e.g. ``demo-pairs-majority.jsonl``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in project_name)
    return f"{safe}-{format}" + ("" if aggregate == "none" else f"-{aggregate}") + ".jsonl"


def sweep_exports(directory: Path = EXPORT_DIR, max_age_s: float = EXPORT_MAX_AGE_S) -> int:
    """Delete prepared exports older than ``max_age_s``; return how many went."""
    if not directory.is_dir():
        return 0
    cutoff, removed = time.time() - max_age_s, 0
    for path in directory.glob("*.jsonl"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # another session swept it first
    return removed


def discard_export(path: str | os.PathLike | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def prepare_export(db, project: str | int, *, directory: Path = EXPORT_DIR,
                   **options: Any) -> dict:
    """Stream an export to a new file under ``directory``; return its path and summary.

    The rows go straight to disk (constant memory), so the page holds only a
    path until the download is clicked. ``options`` are those of
    :func:`prefstore.export.export`. On an error nothing is left behind.

    Returns
    -------
    dict
        ``{"path", "file_name", "summary", "text"}``; ``text`` is the one-line
        summary of :func:`prefstore.export.format_summary`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sweep_exports(directory)
    name = store.get_project(db, project)["name"]
    fd, path = tempfile.mkstemp(prefix="export-", suffix=".jsonl", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            summary = export.export(db, project, f, **options)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return {"path": path,
            "file_name": export_file_name(name, options["format"],
                                          options.get("aggregate", "none")),
            "summary": summary, "text": export.format_summary(summary)}


def skipped_rows(summary: Mapping[str, Any]) -> list[dict]:
    """Return the summary's non-zero skips as table rows: reason, judgments or items."""
    return [{"reason": reason, "skipped": n} for reason, n in summary["skipped"].items() if n]


# --------------------------------------------------------------------------
# The item browser

#: Characters of a rationale or an edit shown in a judgments table cell.
CELL_CHARS = 500


def parse_ranking(text: str) -> list[int]:
    """Read a ranking typed as response indices, best first: ``"2, 0, 1"`` -> ``[2, 0, 1]``.

    Commas and spaces separate the indices. Raises InvalidInput naming the
    first entry that is not a whole number, or when nothing is typed.
    """
    parts = [p for p in str(text).replace(",", " ").split() if p]
    if not parts:
        raise InvalidInput("type the ranking as response numbers, best first, e.g. 2, 0, 1")
    ranking = []
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            raise InvalidInput(f"the ranking must list response numbers, got {part[:20]!r}")
        ranking.append(int(part))
    return ranking


def label_text(outcome: str, choice: int | None, ranking: list[int] | None = None) -> str:
    """Say a judgment's label in a few words: ``"response 1"``, ``"2 > 0 > 1"``, ``"tie"``."""
    if ranking:
        return " > ".join(map(str, ranking))
    if outcome == "choice":
        return f"response {choice}"
    return "both bad" if outcome == "both_bad" else outcome


def _cell(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"


def judgment_rows(judgments: list[dict]) -> list[dict]:
    """Return an item's human judgments (from :func:`store.item_detail`) as table rows."""
    return [{
        "rater": j["rater"],
        "choice": label_text(j["outcome"], j["choice"], j["ranking"]),
        "strength": j["strength"],
        "aspects": ", ".join(f"{k}: {v}" for k, v in (j["aspects"] or {}).items()) or None,
        "rationale": _cell(j["rationale"]),
        "edit": _cell(j["edited"]),
        "seconds": None if j["time_ms"] is None else j["time_ms"] / 1000,
        "at": j["created_at"],
    } for j in judgments]


def verdict_rows(verdicts: list[dict]) -> list[dict]:
    """Return an item's LLM verdicts (from :func:`store.item_detail`) as table rows."""
    return [{
        "llm judge": v["rater"],
        "choice": label_text(v["outcome"], v["choice"], v["ranking"]),
        "confidence": v["confidence"],
        "swap consistent": v["swap_consistent"],
        "rationale": _cell(v["rationale"]),
        "at": v["created_at"],
    } for v in verdicts]
