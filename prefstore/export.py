"""Streaming exports of a project's judgments as training data: JSONL, Parquet or CSV.

Formats (one JSON object per line):

``pairs``
    ``{"prompt", "chosen", "rejected", "metadata"}``, TRL's preference format
    (DPOTrainer, RewardTrainer). A "choice" on a pair gives one row. A slate
    expands into pairs: the best response over each other one
    (``slate_pairs="best"``, the default, which uses only what every slate
    judgment has), or every ordered pair of a ranking (``slate_pairs="all"``;
    a judgment with a best choice but no ranking still gives best-over-others).
    Ties and both-bad judgments give no pair and are counted as skipped.
``edits``
    For every judgment with an edit: ``{"prompt", "chosen": edited text,
    "rejected": the response it was edited from}``, with the character
    Levenshtein distance (:func:`prefstore.agreement.levenshtein`) in
    ``metadata.edit_distance``. For a tie or both-bad judgment, whose starting
    point is unknown, the closest response is taken (as in
    :func:`prefstore.agreement.edit_stats`). ``include_original_pair`` adds the
    original chosen response over the others, expanded as in ``pairs``.
``slates``
    ``{"prompt", "responses", "ranking", "best", "metadata"}`` per judgment with
    a choice; ``ranking`` (best first, response indices) is null when the rater
    only picked the best.
``judgments``
    Every stored column of every judgment, JSON columns parsed, plus ``item``
    (the external id) and ``rater``: an audit and re-analysis dump. A changed
    judgment's row names the row it replaced in ``supersedes``;
    ``include_superseded`` also writes the replaced rows, so every chain of
    changes can be audited.
``kto``
    Unpaired ``{"prompt", "completion", "label"}``: the chosen response is
    true, every other response of the item false; both-bad makes all of them
    false; a tie gives nothing.

Prompts. By default ``prompt`` is a string: an item's plain prompt as stored,
or for an item stored as chat ``messages``, the single user turn's text when
the conversation is just that, else every turn as ``"<Role>: <content>"``
joined by blank lines (e.g. ``"System: ...\\n\\nUser: ..."``). With
``conversational=True`` the prompt is a list of ``{"role", "content"}``
messages (a plain prompt becomes one user message) and every completion a
one-message list ``[{"role": "assistant", "content": ...}]``, TRL's
conversational format; use it for multi-turn items so the trainer applies the
chat template.

Aggregation (``pairs`` and ``kto``):

- ``"none"``: one output per judgment.
- ``"majority"``: one output per item from the strict majority (more than half)
  of the item's selected judgments, each voting its best response, "tie" or
  "both_bad". ``metadata.agreement`` is the majority's share of the votes. An
  item without a strict majority is skipped as ``no_majority``; a tie majority
  as ``tie``, a both-bad majority as ``both_bad`` (pairs; in kto it makes every
  response false).
- ``"model"`` (pairs only): the latest stored Bradley-Terry fit at level
  "response" for the same ``kind`` orders each judged item's responses (Bradley
  & Terry 1952). ``margin`` is the fit's P(chosen beats rejected) =
  sigmoid(s_chosen - s_rejected); it is written both in ``metadata`` and at the
  top level, where TRL's RewardTrainer reads a ``margin`` column (it subtracts
  the margin from the reward difference, so a probability margin asks for a
  larger gap on confident pairs; ``metadata.log_odds`` holds s_chosen -
  s_rejected if a logit margin suits better). ``agreement`` is the share of the
  item's judgments whose best response is the model's chosen one. The fit is
  refitted first when judgments came after it (:func:`current_response_fit`).

``min_agreement`` drops aggregated rows whose agreement is below it
(``below_min_agreement``); it is checked after ties and both-bad.

Every format reads effective judgments only: the last row of each chain of
changes (see :func:`prefstore.store.change_judgment`), on items that are not
excluded. ``include_superseded`` (format ``judgments`` only) is the exception.

Rater names become stable per-project pseudonyms,
``"rater-" + sha256(salt + name)[:10]`` with the project's secret
``pseudonym_salt``, unless ``real_rater_names`` is set. The ``judgments``
format then also leaves out ``rater_id``, which would link a rater across
projects.

Rows stream with constant memory: judgments are read in id-ordered batches
(item-ordered batches when aggregating) and each batch's responses in one query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import groupby, islice
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from prefstore import store
from prefstore.errors import InvalidInput, NotFound

FORMATS = ("pairs", "edits", "slates", "judgments", "kto")
AGGREGATES = ("none", "majority", "model")
KINDS = ("all", "human", "llm")
SLATE_PAIRS = ("best", "all")
#: Every reason a judgment or item can produce no row, in the summary's order.
SKIP_REASONS = ("tie", "both_bad", "no_majority", "below_min_agreement", "not_in_fit",
                "no_edit", "edit_unchanged")
#: Judgments per batch read from the store (and per responses query).
BATCH = 2000
#: Items per batch when aggregating by item.
ITEM_BATCH = 500

# Columns iter_judgment_rows joins in that are not judgment columns.
_JOINED = ("rater", "external_id", "prompt", "messages", "gold", "category")


def pseudonym(salt: str, name: str) -> str:
    """Return the stable pseudonym of rater ``name`` under a project's salt."""
    return "rater-" + hashlib.sha256((salt + name).encode("utf-8")).hexdigest()[:10]


def prompt_text(prompt: str | None, messages: list[dict] | None) -> str:
    """Return an item's prompt as one string (see the module docstring)."""
    if messages is None:
        return prompt or ""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def prompt_messages(prompt: str | None, messages: list[dict] | None) -> list[dict]:
    """Return an item's prompt as chat messages; a plain prompt is one user turn."""
    if messages is None:
        return [{"role": "user", "content": prompt or ""}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def check_options(*, format: str, aggregate: str = "none", kind: str = "all",
                  min_agreement: float | None = None, conversational: bool = False,
                  slate_pairs: str = "best", include_original_pair: bool = False,
                  include_superseded: bool = False) -> None:
    """Raise InvalidInput naming the option when a value or a combination is not supported."""
    for name, value, allowed in (("format", format, FORMATS), ("aggregate", aggregate, AGGREGATES),
                                 ("kind", kind, KINDS), ("slate_pairs", slate_pairs, SLATE_PAIRS)):
        if value not in allowed:
            raise InvalidInput(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if aggregate == "majority" and format not in ("pairs", "kto"):
        raise InvalidInput(f'aggregate "majority" works with format "pairs" or "kto", '
                           f"got format {format!r}")
    if aggregate == "model" and format != "pairs":
        raise InvalidInput(f'aggregate "model" works with format "pairs" only, got format '
                           f"{format!r}")
    if aggregate == "majority" and slate_pairs == "all":
        raise InvalidInput('slate_pairs "all" needs rankings, which a majority vote does not '
                           'give; use aggregate "none" or "model"')
    if min_agreement is not None:
        if aggregate == "none":
            raise InvalidInput('min_agreement needs aggregate "majority" or "model", got '
                               'aggregate "none"')
        if (isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float))
                or not 0 <= min_agreement <= 1):
            raise InvalidInput(f"min_agreement must be a number in [0, 1], got {min_agreement!r}")
    if conversational and format == "judgments":
        raise InvalidInput('conversational does not apply to format "judgments", which keeps '
                           "the stored fields")
    if include_original_pair and format != "edits":
        raise InvalidInput(f'include_original_pair works with format "edits" only, got format '
                           f"{format!r}")
    # Training data must never hold a label its rater took back.
    if include_superseded and format != "judgments":
        raise InvalidInput(f'include_superseded works with format "judgments" only (the audit '
                           f"export), got format {format!r}")


class _Writer:
    """Builds the output rows of one export and counts what it skips."""

    def __init__(self, project: dict, summary: dict, *, format: str, aggregate: str, kind: str,
                 min_agreement: float | None, conversational: bool, real_rater_names: bool,
                 slate_pairs: str, include_original_pair: bool, fit: dict | None,
                 include_superseded: bool = False):
        self.format = format
        self.include_superseded = include_superseded
        self.aggregate = aggregate
        self.kind = kind
        self.min_agreement = min_agreement
        self.conversational = conversational
        self.real_rater_names = real_rater_names
        self.slate_pairs = slate_pairs
        self.include_original_pair = include_original_pair
        self.salt = project["pseudonym_salt"]
        self.fit = fit
        self.scores = fit["result"]["scores"] if fit else None
        self.summary = summary
        self.skipped = summary["skipped"]
        self._names: dict[str, str] = {}
        self._prompts: tuple[int, Any] = (-1, None)

    # Pieces shared by the formats

    def rater(self, name: str) -> str:
        if self.real_rater_names:
            return name
        alias = self._names.get(name)
        if alias is None:
            alias = self._names[name] = pseudonym(self.salt, name)
        return alias

    def prompt(self, row: dict) -> Any:
        # Consecutive rows often share an item; render its prompt once.
        if self._prompts[0] != row["item_id"]:
            render = prompt_messages if self.conversational else prompt_text
            self._prompts = (row["item_id"], render(row["prompt"], row["messages"]))
        return self._prompts[1]

    def completion(self, text: str) -> Any:
        return [{"role": "assistant", "content": text}] if self.conversational else text

    def prepare(self, responses: dict[int, list[dict]]) -> dict[int, list[dict]]:
        """Render each response's completion once per batch, under the key "out"."""
        for item_responses in responses.values():
            for r in item_responses:
                r["out"] = self.completion(r["text"])
        return responses

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def judgment_meta(self, j: dict) -> dict:
        return {"item": j["external_id"], "judgment_id": j["id"], "rater": self.rater(j["rater"]),
                "kind": j["kind"], "strength": j["strength"], "rationale": j["rationale"],
                "reason_tags": j["reason_tags"]}

    def ordered_pairs(self, best: int, ranking: list[int] | None, responses: list[dict]
                      ) -> list[tuple[int, int]]:
        """(winner, loser) index pairs of one judgment, expanded as slate_pairs says."""
        if self.slate_pairs == "all" and ranking:
            return [(a, b) for k, a in enumerate(ranking) for b in ranking[k + 1:]]
        return [(best, r["idx"]) for r in responses if r["idx"] != best]

    def pair(self, prompt: Any, chosen: dict, rejected: dict, meta: dict) -> dict:
        return {"prompt": prompt, "chosen": chosen["out"], "rejected": rejected["out"],
                "metadata": {**meta, "systems": {"chosen": chosen["system"],
                                                 "rejected": rejected["system"]}}}

    # One judgment (aggregate "none")

    # A response's idx is its position in the item's list: indices are 0..K-1
    # (store.insert_items) and responses_for_items returns them in idx order.

    def rows_for_judgment(self, j: dict, responses: list[dict]) -> list[dict]:
        fmt = self.format
        if fmt == "judgments":
            return [self.judgment_row(j)]
        if fmt == "edits":
            return self.edit_rows(j, responses)
        outcome = j["outcome"]
        if outcome == "tie" or (outcome == "both_bad" and fmt != "kto"):
            self.skip(outcome)
            return []
        prompt = self.prompt(j)
        if fmt == "pairs" and len(responses) == 2:
            # The common case, spelled out: an export of a million pairs spends
            # most of its time in per-row overhead.
            chosen, rejected = responses[j["choice"]], responses[1 - j["choice"]]
            return [{"prompt": prompt, "chosen": chosen["out"], "rejected": rejected["out"],
                     "metadata": {"item": j["external_id"], "judgment_id": j["id"],
                                  "rater": self.rater(j["rater"]), "kind": j["kind"],
                                  "strength": j["strength"], "rationale": j["rationale"],
                                  "reason_tags": j["reason_tags"],
                                  "systems": {"chosen": chosen["system"],
                                              "rejected": rejected["system"]}}}]
        meta = self.judgment_meta(j)
        if fmt == "kto":
            best = j["choice"] if outcome == "choice" else None
            return [self.kto_row(prompt, r, r["idx"] == best, meta) for r in responses]
        if fmt == "slates":
            return [{"prompt": prompt, "responses": [r["out"] for r in responses],
                     "ranking": j["ranking"], "best": j["choice"],
                     "metadata": {**meta, "systems": [r["system"] for r in responses]}}]
        return [self.pair(prompt, responses[a], responses[b], meta)
                for a, b in self.ordered_pairs(j["choice"], j["ranking"], responses)]

    def kto_row(self, prompt: Any, response: dict, label: bool, meta: dict) -> dict:
        return {"prompt": prompt, "completion": response["out"],
                "label": label, "metadata": {**meta, "system": response["system"]}}

    def edit_rows(self, j: dict, responses: list[dict]) -> list[dict]:
        edited = j["edited"]
        if edited is None:
            self.skip("no_edit")
            return []
        # Imported here: agreement pulls in numpy, which the other formats do not need.
        from prefstore.agreement import levenshtein

        if j["outcome"] == "choice":
            base = next(r for r in responses if r["idx"] == j["choice"])
            distance = levenshtein(edited, base["text"])
        else:
            distance, _, base = min((levenshtein(edited, r["text"]), r["idx"], r)
                                    for r in responses)
        if distance == 0:
            self.skip("edit_unchanged")
            return []
        prompt = self.prompt(j)
        meta = self.judgment_meta(j)
        rows = [{"prompt": prompt, "chosen": self.completion(edited),
                 "rejected": base["out"],
                 "metadata": {**meta, "source": "edit", "edit_distance": distance,
                              "systems": {"chosen": None, "rejected": base["system"]}}}]
        if self.include_original_pair and j["outcome"] == "choice":
            rows.extend(self.pair(prompt, responses[a], responses[b],
                                  {**meta, "source": "original", "edit_distance": None})
                        for a, b in self.ordered_pairs(j["choice"], j["ranking"], responses))
        return rows

    def judgment_row(self, j: dict) -> dict:
        row = {k: v for k, v in j.items() if k not in _JOINED}
        if not self.real_rater_names:
            del row["rater_id"]
        row["item"] = j["external_id"]
        row["rater"] = self.rater(j["rater"])
        return row

    # One item (aggregate "majority" or "model")

    def rows_for_item(self, group: list[dict], responses: list[dict]) -> list[dict]:
        first = group[0]
        votes = Counter(j["choice"] if j["outcome"] == "choice" else j["outcome"] for j in group)
        meta = {"item": first["external_id"], "kind": self.kind, "n_judgments": len(group)}
        if self.aggregate == "model":
            return self.model_rows(first, group, votes, responses, meta)
        top, count = votes.most_common(1)[0]
        if 2 * count <= len(group):
            self.skip("no_majority")
            return []
        if top == "tie" or (top == "both_bad" and self.format != "kto"):
            self.skip(top)
            return []
        agreement = count / len(group)
        if self.min_agreement is not None and agreement < self.min_agreement:
            self.skip("below_min_agreement")
            return []
        meta["agreement"] = agreement
        prompt = self.prompt(first)
        if self.format == "kto":
            return [self.kto_row(prompt, r, r["idx"] == top, meta) for r in responses]
        return [self.pair(prompt, responses[a], responses[b], meta)
                for a, b in self.ordered_pairs(top, None, responses)]

    def model_rows(self, first: dict, group: list[dict], votes: Counter,
                   responses: list[dict], meta: dict) -> list[dict]:
        scores = self.scores
        if any(str(r["id"]) not in scores for r in responses):
            self.skip("not_in_fit")
            return []
        ordered = sorted(responses, key=lambda r: (-scores[str(r["id"])], r["idx"]))
        best = ordered[0]
        agreement = votes.get(best["idx"], 0) / len(group)
        if scores[str(best["id"])] == scores[str(ordered[1]["id"])]:
            self.skip("tie")
            return []
        if self.min_agreement is not None and agreement < self.min_agreement:
            self.skip("below_min_agreement")
            return []
        prompt = self.prompt(first)
        ranking = [r["idx"] for r in ordered]
        rows = []
        for a, b in self.ordered_pairs(best["idx"], ranking, responses):
            chosen, rejected = responses[a], responses[b]
            log_odds = scores[str(chosen["id"])] - scores[str(rejected["id"])]
            if log_odds == 0:
                self.skip("tie")
                continue
            margin = _sigmoid(log_odds)
            row = self.pair(prompt, chosen, rejected,
                            {**meta, "agreement": agreement, "margin": margin,
                             "log_odds": log_odds, "fit_id": self.fit["id"]})
            row["margin"] = margin
            rows.append(row)
        return rows


def _sigmoid(x: float) -> float:
    # Written two ways so that exp never overflows: a fit can give log-odds of -800.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _chunks(iterable: Iterable, n: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, n)):
        yield chunk


def current_response_fit(db, proj: dict, kind: str, summary: dict | None = None) -> dict:
    """Return the response-level Bradley-Terry fit that aggregate "model" ranks by.

    A stored fit made from every current judgment of ``kind``, with no judgment
    stored or changed since, is used as it is;
    otherwise the responses are refitted now (with the weak prior
    ``fitting.RESPONSE_ALPHA``, since most responses are compared only once) and
    the fit stored, so an export never ranks by a fit that misses judgments.
    ``summary["refitted"]`` says which happened.
    """
    from prefstore import fitting

    judged = store.dashboard_counts(db, proj["id"], 1)["judgments"]
    n = judged["total" if kind == "all" else kind]
    fit = store.latest_fit(db, proj["id"], model="bt", level="response", kind=kind)
    # A changed judgment leaves the count as it was, so rows stored after the
    # fit (changes included) make it stale too.
    if (fit is not None and fit["n_judgments"] == n
            and isinstance(fit["result"].get("scores"), dict)
            and store.judgments_since(db, proj["id"], fit["created_at"]) == 0):
        if summary is not None:
            summary["refitted"] = False
        return fit
    if n == 0:
        which = "" if kind == "all" else f"{kind} "
        raise NotFound(f"project {proj['name']!r} has no {which}judgments to rank responses by")
    fitting.fit_project(db, proj["id"], model="bt", level="response", kind=kind,
                        alpha=fitting.RESPONSE_ALPHA, ci=None)
    if summary is not None:
        summary["refitted"] = True
    return store.latest_fit(db, proj["id"], model="bt", level="response", kind=kind)


def iter_rows(db, project: str | int, *, format: str, aggregate: str = "none",
              kind: str = "all", min_agreement: float | None = None,
              conversational: bool = False, real_rater_names: bool = False,
              slate_pairs: str = "best", include_original_pair: bool = False,
              include_superseded: bool = False, progress: bool = False,
              summary: dict | None = None, batch: int = BATCH) -> Iterator[dict]:
    """Stream the export rows of ``project`` as dicts, one JSONL line each.

    Options are checked, and the model fit looked up, when this is called;
    rows are read lazily as the iterator is consumed. Pass a ``summary`` dict to
    have it filled with ``{"written", "judgments", "skipped": {reason: n}}`` as
    rows go out. See the module docstring for the formats and options. Rows
    of one item share their prompt and completion objects: copy a row before
    mutating it.

    Raises
    ------
    InvalidInput
        On an unknown option value or an unsupported combination.
    NotFound
        If the project does not exist, or aggregate "model" finds no stored fit.
    """
    check_options(format=format, aggregate=aggregate, kind=kind, min_agreement=min_agreement,
                  conversational=conversational, slate_pairs=slate_pairs,
                  include_original_pair=include_original_pair,
                  include_superseded=include_superseded)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidInput(f"batch must be a positive integer, got {batch!r}")
    proj = store.get_project(db, project)
    if summary is None:
        summary = {}
    fit = current_response_fit(db, proj, kind, summary) if aggregate == "model" else None
    summary.update({"written": 0, "judgments": 0, "skipped": dict.fromkeys(SKIP_REASONS, 0)})
    writer = _Writer(proj, summary, format=format, aggregate=aggregate, kind=kind,
                     min_agreement=min_agreement, conversational=conversational,
                     real_rater_names=real_rater_names, slate_pairs=slate_pairs,
                     include_original_pair=include_original_pair, fit=fit,
                     include_superseded=include_superseded)
    return _stream(db, proj["id"], writer, batch, progress)


def _stream(db, project_id: int, writer: _Writer, batch: int, progress: bool
            ) -> Iterator[dict]:
    summary = writer.summary
    total = (store.count_judgment_rows(db, project_id, kind=writer.kind,
                                       include_superseded=writer.include_superseded)
             if progress else None)
    # disable=None hides the bar when stderr is not a terminal.
    bar = tqdm(total=total, desc=f"export {writer.format}", unit="judgment", file=sys.stderr,
               disable=None if progress else True)
    need_responses = writer.format != "judgments"
    try:
        if writer.aggregate == "none":
            rows = store.iter_judgment_rows(db, project_id, kind=writer.kind, batch=batch,
                                            include_superseded=writer.include_superseded)
            for chunk in _chunks(rows, batch):
                responses = (writer.prepare(store.responses_for_items(
                    db, sorted({j["item_id"] for j in chunk}))) if need_responses else {})
                for j in chunk:
                    out = writer.rows_for_judgment(j, responses.get(j["item_id"], []))
                    summary["judgments"] += 1
                    summary["written"] += len(out)
                    yield from out
                bar.update(len(chunk))
        else:
            rows = store.iter_judgment_rows_by_item(db, project_id, kind=writer.kind,
                                                      batch=ITEM_BATCH)
            groups = ((item_id, list(g)) for item_id, g in groupby(rows, lambda j: j["item_id"]))
            for chunk in _chunks(groups, ITEM_BATCH):
                responses = writer.prepare(
                    store.responses_for_items(db, [item_id for item_id, _ in chunk]))
                for item_id, group in chunk:
                    out = writer.rows_for_item(group, responses[item_id])
                    summary["judgments"] += len(group)
                    summary["written"] += len(out)
                    yield from out
                    bar.update(len(group))
    finally:
        bar.close()


def dumps(row: dict) -> str:
    """Return one JSONL line (without the newline): compact, UTF-8 kept as is, strict JSON."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def iter_jsonl(db, project: str | int, **options: Any) -> Iterator[str]:
    """Stream the export as JSONL text lines (newline included), e.g. for a download."""
    return (dumps(row) + "\n" for row in iter_rows(db, project, **options))


def export(db, project: str | int, out: str | os.PathLike | TextIO, *, format: str,
           aggregate: str = "none", kind: str = "all", min_agreement: float | None = None,
           conversational: bool = False, real_rater_names: bool = False,
           slate_pairs: str = "best", include_original_pair: bool = False,
           include_superseded: bool = False, output_format: str = "jsonl",
           progress: bool = False, batch: int = BATCH) -> dict:
    """Write ``project``'s judgments to ``out`` in ``format``; return the summary.

    Parameters
    ----------
    out : path, ``"-"`` or file
        A path is written through a temporary file renamed into place at the
        end, so a failed export leaves no partial file. ``"-"`` is stdout.
    format, aggregate, kind, min_agreement, conversational, real_rater_names,
    slate_pairs, include_original_pair, include_superseded
        See the module docstring.
    output_format : "jsonl", "parquet" or "csv"
        JSONL streams line by line (strict JSON: no NaN). Parquet and CSV have
        one column per top-level field, written in batches of
        :data:`TABLE_BATCH` rows (Parquet row groups): chat messages, lists and
        numbers keep their types in Parquet, objects such as ``metadata`` are
        JSON text; CSV writes every nested value as JSON text. Parquet needs a
        path or a binary file.
    progress : bool
        Show a tqdm bar on stderr (hidden when stderr is not a terminal).

    Returns
    -------
    dict
        ``{"written": rows, "judgments": judgments read, "skipped": {reason: n}}``.

    Raises
    ------
    InvalidInput, NotFound
        As :func:`iter_rows`, and for an output path that cannot be written
        (a directory, a missing or read-only directory), before anything is written.
    OSError
        When writing fails midway (a full disk); ``filename`` is ``out``.
    """
    if output_format not in OUTPUT_FORMATS:
        raise InvalidInput(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got "
                           f"{output_format!r}")
    if output_format == "parquet" and str(out) == "-":
        raise InvalidInput("parquet output needs a file: give a path ending in .parquet, not -")
    _check_output(out)
    summary: dict = {}
    proj = store.get_project(db, project)
    if output_format != "jsonl":
        rows = iter_rows(db, project, format=format, aggregate=aggregate, kind=kind,
                         min_agreement=min_agreement, conversational=conversational,
                         real_rater_names=real_rater_names, slate_pairs=slate_pairs,
                         include_original_pair=include_original_pair,
                         include_superseded=include_superseded, progress=progress,
                         summary=summary, batch=batch)
        columns = _columns(format, aggregate)
        write = _write_parquet if output_format == "parquet" else _write_csv
        _write_file(out, lambda f: write(f, rows, columns, conversational),
                    binary=output_format == "parquet")
        return summary
    if format == "pairs" and aggregate == "none" and proj["kind"] == "pairwise":
        check_options(format=format, aggregate=aggregate, kind=kind,
                      min_agreement=min_agreement, conversational=conversational,
                      slate_pairs=slate_pairs, include_original_pair=include_original_pair,
                      include_superseded=include_superseded)
        lines = _fast_pair_lines(db, proj, summary, kind=kind, conversational=conversational,
                                 real_rater_names=real_rater_names, progress=progress)
        return _write_to(out, lines, summary)
    rows = iter_rows(db, project, format=format, aggregate=aggregate, kind=kind,
                     min_agreement=min_agreement, conversational=conversational,
                     real_rater_names=real_rater_names, slate_pairs=slate_pairs,
                     include_original_pair=include_original_pair,
                     include_superseded=include_superseded, progress=progress,
                     summary=summary, batch=batch)
    encode = _line_encoder()
    return _write_to(out, (encode(row) + "\n" for row in rows), summary)


def _check_output(out: str | os.PathLike | TextIO) -> None:
    """Refuse an output path that cannot be written, naming it, before any row is read."""
    if hasattr(out, "write") or str(out) == "-":
        return
    path = Path(out)
    if path.is_dir():
        raise InvalidInput(f"output {str(path)!r} is a directory; give a file name, such as "
                           f"{str(path / 'export.jsonl')!r}")
    if not path.parent.is_dir():
        raise InvalidInput(f"output {str(path)!r}: directory {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise InvalidInput(f"output {str(path)!r}: directory {str(path.parent)!r} is not "
                           "writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInput(f"output {str(path)!r} is read-only")


def _write_to(out: str | os.PathLike | TextIO, lines: Iterator[str], summary: dict) -> dict:
    if hasattr(out, "write"):
        out.writelines(lines)
        return summary
    if str(out) == "-":
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return summary
    _write_file(out, lambda f: f.writelines(lines), binary=False)
    return summary


def _write_file(out: str | os.PathLike | TextIO, write: Any, *, binary: bool) -> None:
    """Run ``write(file)`` on ``out``: stdout, an open file, or a path written all or nothing."""
    if hasattr(out, "write"):
        write(out)
        return
    if str(out) == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    path = Path(out)
    _check_output(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if binary:
            with open(tmp, "wb") as f:
                write(f)
        else:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                write(f)
        os.replace(tmp, path)
    except OSError as exc:
        # Name the output, not the temporary file (a full disk, say).
        raise OSError(exc.errno, f"{exc.strerror or exc}; nothing was written", str(path)
                      ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------
# Parquet and CSV

#: Rows per Parquet row group and per CSV write.
TABLE_BATCH = 10_000
OUTPUT_FORMATS = ("jsonl", "parquet", "csv")
#: The columns of each format, for an export with no rows (judgments: unknown until read).
_FORMAT_COLUMNS = {"pairs": ("prompt", "chosen", "rejected", "metadata"),
                   "edits": ("prompt", "chosen", "rejected", "metadata"),
                   "slates": ("prompt", "responses", "ranking", "best", "metadata"),
                   "kto": ("prompt", "completion", "label", "metadata")}
_INT_COLUMNS = {"id", "item_id", "rater_id", "choice", "best", "strength", "time_ms"}
_TEXT_COLUMNS = {"kind", "outcome", "rationale", "edited", "submission_id", "created_at",
                 "item", "rater"}


def _columns(format: str, aggregate: str) -> tuple[str, ...] | None:
    columns = _FORMAT_COLUMNS.get(format)
    if columns and format == "pairs" and aggregate == "model":
        columns += ("margin",)
    return columns


def _arrow_types(columns: Iterable[str], conversational: bool) -> tuple[Any, set[str]]:
    """Return the Arrow schema of ``columns`` and the columns written as JSON text."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    completion = message if conversational else pa.string()
    known = {"prompt": message if conversational else pa.string(), "chosen": completion,
             "rejected": completion, "completion": completion,
             "responses": pa.list_(completion), "ranking": pa.list_(pa.int64()),
             "display_order": pa.list_(pa.int64()), "reason_tags": pa.list_(pa.string()),
             "margin": pa.float64(), "label": pa.bool_(),
             **dict.fromkeys(_INT_COLUMNS, pa.int64()),
             **dict.fromkeys(_TEXT_COLUMNS, pa.string())}
    json_text = {c for c in columns if c not in known}  # metadata, aspects, ...
    return pa.schema([(c, known.get(c, pa.string())) for c in columns]), json_text


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, allow_nan=False)


def _write_parquet(f: Any, rows: Iterator[dict], columns: tuple[str, ...] | None,
                   conversational: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for chunk in _chunks(rows, TABLE_BATCH):
            if writer is None:
                schema, json_text = _arrow_types(list(chunk[0]), conversational)
                writer = pq.ParquetWriter(f, schema)
            cells = [{c: _json_text(row.get(c)) if c in json_text else row.get(c)
                      for c in schema.names} for row in chunk]
            writer.write_table(pa.Table.from_pylist(cells, schema=schema))
        if writer is None:  # no rows: an empty table with the format's columns
            schema, _ = _arrow_types(columns or (), conversational)
            pq.write_table(schema.empty_table(), f)
    finally:
        if writer is not None:
            writer.close()


def _write_csv(f: Any, rows: Iterator[dict], columns: tuple[str, ...] | None,
               conversational: bool) -> None:
    import pandas as pd

    header: list[str] | None = None
    for chunk in _chunks(rows, TABLE_BATCH):
        first = header is None
        header = header or list(chunk[0])
        cells = [[_json_text(v) if isinstance(v, (dict, list)) else v
                  for v in (row.get(c) for c in header)] for row in chunk]
        # dtype object: an integer column with gaps stays 2, not 2.0.
        pd.DataFrame(cells, columns=header, dtype=object).to_csv(
            f, header=first, index=False, lineterminator="\n")
    if header is None and columns:
        pd.DataFrame(columns=list(columns)).to_csv(f, index=False, lineterminator="\n")


def _fast_pair_lines(db, proj: dict, summary: dict, *, kind: str,
                     conversational: bool, real_rater_names: bool, progress: bool
                     ) -> Iterator[str]:
    """Yield the ``pairs`` lines of a pairwise project without building row dicts.

    A million-row export spends most of its time in per-row overhead, so this
    path writes each line from the joined SQL tuple with the C string encoder.
    Its output is byte-for-byte that of :func:`iter_jsonl` (tested).
    """
    from json.encoder import encode_basestring as enc

    summary.update({"written": 0, "judgments": 0, "skipped": dict.fromkeys(SKIP_REASONS, 0)})
    skipped = summary["skipped"]
    salt = proj["pseudonym_salt"]
    aliases: dict[str, str] = {}
    encode = _line_encoder()
    prompt_item, prompt_json = -1, ""
    total = store.count_judgment_rows(db, proj["id"], kind=kind) if progress else None
    bar = tqdm(total=total, desc="export pairs", unit="judgment", file=sys.stderr,
               disable=None if progress else True)

    def opt(value: str | None) -> str:
        return "null" if value is None else enc(value)

    try:
        for n, (jid, ext, rater, jkind, outcome, strength, rationale, tags, item_id, prompt,
                messages, ctext, csys, rtext, rsys) in enumerate(
                    store.iter_pair_export_rows(db, proj["id"], kind=kind), start=1):
            if n % 10_000 == 0:
                bar.update(10_000)
            summary["judgments"] += 1
            if outcome != "choice":
                skipped[outcome] += 1
                continue
            if item_id != prompt_item:
                msgs = json.loads(messages) if messages is not None else None
                prompt_json = encode(prompt_messages(prompt, msgs) if conversational
                                     else prompt_text(prompt, msgs))
                prompt_item = item_id
            alias = aliases.get(rater)
            if alias is None:
                alias = aliases[rater] = rater if real_rater_names else pseudonym(salt, rater)
            if conversational:
                chosen = '[{"role":"assistant","content":' + enc(ctext) + "}]"
                rejected = '[{"role":"assistant","content":' + enc(rtext) + "}]"
            else:
                chosen, rejected = enc(ctext), enc(rtext)
            summary["written"] += 1
            yield "".join((
                '{"prompt":', prompt_json, ',"chosen":', chosen, ',"rejected":', rejected,
                ',"metadata":{"item":', enc(ext), ',"judgment_id":', str(jid),
                ',"rater":', enc(alias), ',"kind":', enc(jkind),
                ',"strength":', "null" if strength is None else str(strength),
                ',"rationale":', opt(rationale),
                ',"reason_tags":', "null" if tags is None else encode(json.loads(tags)),
                ',"systems":{"chosen":', opt(csys), ',"rejected":', opt(rsys), "}}}\n"))
        bar.update(summary["judgments"] % 10_000)
    finally:
        bar.close()


def _line_encoder() -> Any:
    """Return a function encoding a row exactly as :func:`dumps` does, faster.

    ``JSONEncoder.encode`` builds a new C encoder on every call, a third of an
    export's encoding time; this builds it once (without the circular-reference
    check, which export rows never need).
    """
    from json import encoder as json_encoder

    make = json_encoder.c_make_encoder
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def fail(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    # allow_nan False: RFC 8259 has no NaN or Infinity, and trainers' parsers refuse them.
    iterencode = make(None, fail, json_encoder.encode_basestring, None, ":", ",", False, False,
                      False)
    join = "".join
    return lambda row: join(iterencode(row, 0))


def format_summary(summary: dict) -> str:
    """Return a one-line human summary: rows written and skips by reason."""
    skipped = ", ".join(f"{reason} {n}" for reason, n in summary["skipped"].items() if n)
    return (f"wrote {summary['written']} rows from {summary['judgments']} judgments"
            + (f"; skipped: {skipped}" if skipped else "; nothing skipped")
            + ("; the responses were refitted first, on every judgment"
               if summary.get("refitted") else ""))
