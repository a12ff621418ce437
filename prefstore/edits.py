"""Raters' edits of responses: a stored summary for the dashboard and plain-text diffs.

:func:`refresh_edit_report` stores :func:`prefstore.agreement.edit_stats` of
the edited judgments only (``name="edits"``), so the dashboard never reads
the whole judgments table; :func:`unified_diff` gives text for ``st.code``.
"""

from __future__ import annotations

import difflib
import time

import pandas as pd

from prefstore.agreement import edit_stats, levenshtein

REPORT = "edits"
N_EXAMPLES = 5


def unified_diff(before: str, after: str, *, context: int = 3) -> str:
    """Return the line diff from ``before`` to ``after`` in unified format (plain text)."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile="response", tofile="edited", n=context)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def edit_base(outcome: str, choice: int | None, edited: str, texts: dict[int, str]) -> int | None:
    """Return the index of the response an edit started from, as edit_stats defines it.

    The chosen response for a choice; otherwise the closest response by
    Levenshtein distance (the lowest index among equals). None without responses.
    """
    if outcome == "choice" and choice is not None and int(choice) in texts:
        return int(choice)
    if not texts:
        return None
    return min(sorted(texts), key=lambda k: levenshtein(edited, texts[k]))


def example_ids(per_judgment: list[dict], k: int = N_EXAMPLES) -> list[int]:
    """Pick up to ``k`` edited judgments spread evenly over the distance range (ids)."""
    ordered = sorted(per_judgment, key=lambda p: (p["distance"], p["id"]))
    if len(ordered) <= k:
        return [p["id"] for p in ordered]
    step = (len(ordered) - 1) / (k - 1)
    return [ordered[round(i * step)]["id"] for i in range(k)]


def project_edit_report(db, project: str | int, *, n_judgments: int | None = None) -> dict:
    """Return edit_stats over a project's edited judgments plus counts and example ids.

    ``n_judgments`` is the project's count of effective judgments when the caller
    knows it already (the worker's refit); counted here otherwise.
    """
    from prefstore import store

    proj = store.get_project(db, project)
    edited = store.edited_judgments_frame(db, proj["id"])
    item_ids = sorted(set(edited["item_id"].tolist()))
    texts = store.responses_for_items(db, item_ids)
    responses = pd.DataFrame(
        [{"item_id": r["item_id"], "idx": r["idx"], "text": r["text"]}
         for rows in texts.values() for r in rows], columns=["item_id", "idx", "text"])
    stats = edit_stats(edited, responses)
    total = store.count_judgments(db, proj["id"]) if n_judgments is None else n_judgments
    stats.update(n_judgments=total,
                 share_edited=stats["n_edited"] / total if total else None,
                 examples=example_ids(stats["per_judgment"]))
    return stats


def refresh_edit_report(db, project: str | int, *, n_judgments: int | None = None) -> int:
    """Compute and store the edit report of a project; return its id.

    ``n_judgments``: see :func:`project_edit_report`.
    """
    from prefstore import store

    proj = store.get_project(db, project)
    start = time.perf_counter()
    report = project_edit_report(db, proj["id"], n_judgments=n_judgments)
    return store.save_report(db, proj["id"], name=REPORT, kind="all", result=report,
                               n_judgments=report["n_judgments"],
                               seconds=time.perf_counter() - start)


def edit_examples(db, judgment_ids: list[int]) -> list[dict]:
    """Return ``{"id", "rater", "item", "response", "diff"}`` for each edited judgment."""
    from prefstore import store

    rows = store.judgments_by_id(db, judgment_ids)
    texts = store.responses_for_items(db, sorted({r["item_id"] for r in rows}))
    out = []
    for row in rows:
        options = {r["idx"]: r["text"] for r in texts.get(row["item_id"], [])}
        base = edit_base(row["outcome"], row["choice"], row["edited"], options)
        before = options.get(base, "") if base is not None else ""
        out.append({"id": row["id"], "rater": row["rater"], "item": row["external_id"],
                    "response": base, "diff": unified_diff(before, row["edited"])})
    return out
