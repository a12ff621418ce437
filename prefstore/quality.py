"""Per-rater quality: speed, gold accuracy, agreement with the others, position bias.

Pure functions over the frame of :func:`prefstore.store.rater_judgments_frame`,
plus one adapter that reads it.
"""

from __future__ import annotations

import statistics
from collections import Counter

import pandas as pd

from prefstore import store
from prefstore.assignment import gold_correct

QUALITY_COLUMNS = ("rater", "judgments", "median_seconds", "gold_n", "gold_accuracy",
                   "majority_n", "majority_agreement", "position_n", "position_bias",
                   "last_active")


def _label(outcome: str, choice: int | None) -> int | str:
    """A judgment's label: the chosen (or best-ranked) response index, "tie" or "both_bad"."""
    return choice if outcome == "choice" else outcome


def _int_or_none(value) -> int | None:
    """An integer column's value: None for NULL, NA or NaN."""
    return None if value is None or value is pd.NA or value != value else int(value)


def _share(hits: int, n: int) -> float:
    return hits / n if n else float("nan")


def quality_judgments(judgments: pd.DataFrame) -> pd.DataFrame:
    """Return one row per rater, by name, from their human judgments.

    Parameters
    ----------
    judgments : rows with rater, item_id, outcome, choice, display_order,
        time_ms, created_at and gold (the item's gold or None).

    Returns
    -------
    A frame with :data:`QUALITY_COLUMNS`:

    - ``judgments``: the rater's judgments.
    - ``median_seconds``: median ``time_ms`` / 1000 over the judgments that have one.
    - ``gold_accuracy``: the share of their judgments on gold items that match
      the item's current gold (:func:`prefstore.assignment.gold_correct`), over
      ``gold_n`` such judgments.
    - ``majority_agreement``: leave-one-out majority. A label is the chosen
      response (a slate's best), tie or both bad. For each item the rater
      judged, the other raters' labels (each rater's latest) are counted; when
      one label has strictly more votes than any other it is the majority and
      the rater agrees if their own latest label equals it. Items without
      other raters, or whose other raters tie for the most votes, do not
      count. ``majority_n`` is the number of items counted.
    - ``position_bias``: the share of their choices (outcome "choice" with a
      display order) that picked the response shown first, over ``position_n``;
      0.5 is no bias in a pairwise project.
    - ``last_active``: their latest judgment's ``created_at``.

    A share (and the median) is NaN when it counts nothing.
    """
    if judgments.empty:
        return pd.DataFrame(columns=list(QUALITY_COLUMNS))
    # Plain lists: a Python loop over pandas Series (Int64 above all) is many times slower.
    choices = [_int_or_none(c) for c in judgments["choice"].tolist()]
    times = [_int_or_none(t) for t in judgments["time_ms"].tolist()]
    stats: dict[str, dict] = {}
    latest: dict[int, dict[str, int | str]] = {}  # item -> rater -> latest label (id order)
    for rater, item, outcome, choice, order, time_ms, created, gold in zip(
            judgments["rater"].tolist(), judgments["item_id"].tolist(),
            judgments["outcome"].tolist(), choices, judgments["display_order"].tolist(), times,
            judgments["created_at"].tolist(), judgments["gold"].tolist()):
        s = stats.setdefault(rater, {"n": 0, "seconds": [], "gold": [], "first": [],
                                     "agree": 0, "counted": 0, "last": created})
        s["n"] += 1
        s["last"] = max(s["last"], created)
        if time_ms is not None:
            s["seconds"].append(time_ms / 1000)
        hit = gold_correct(gold, {"outcome": outcome, "choice": choice}) if gold else None
        if hit is not None:
            s["gold"].append(hit)
        if outcome == "choice" and isinstance(order, list) and order:
            s["first"].append(choice == order[0])
        latest.setdefault(int(item), {})[rater] = _label(outcome, choice)
    for by_rater in latest.values():
        counts = Counter(by_rater.values())
        for rater, label in by_rater.items():
            counts[label] -= 1  # leave the rater out
            best, best_n, runner_up_n = None, 0, 0
            for other, n in counts.items():
                if n > best_n:
                    best, best_n, runner_up_n = other, n, best_n
                elif n > runner_up_n:
                    runner_up_n = n
            counts[label] += 1
            if best_n == 0 or best_n == runner_up_n:
                continue  # no other rater, or the others tie
            stats[rater]["counted"] += 1
            stats[rater]["agree"] += int(label == best)
    rows = [{
        "rater": rater,
        "judgments": s["n"],
        "median_seconds": statistics.median(s["seconds"]) if s["seconds"] else float("nan"),
        "gold_n": len(s["gold"]),
        "gold_accuracy": _share(sum(s["gold"]), len(s["gold"])),
        "majority_n": s["counted"],
        "majority_agreement": _share(s["agree"], s["counted"]),
        "position_n": len(s["first"]),
        "position_bias": _share(sum(s["first"]), len(s["first"])),
        "last_active": s["last"],
    } for rater, s in sorted(stats.items())]
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))


def rater_quality(db, project_id: int) -> pd.DataFrame:
    """Return the per-rater quality table of a project (see :func:`quality_judgments`)."""
    return quality_judgments(store.rater_judgments_frame(db, project_id))
