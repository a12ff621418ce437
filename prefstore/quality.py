"""Per-rater quality: speed, gold accuracy, agreement with the others, position bias.

Pure functions over the frame of :func:`prefstore.store.rater_judgments_frame`,
plus one adapter that reads it.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from prefstore import store
from prefstore.assignment import gold_correct

QUALITY_COLUMNS = ("rater", "judgments", "median_seconds", "gold_n", "gold_accuracy",
                   "majority_n", "majority_agreement", "position_n", "position_bias",
                   "last_active")


def _label(outcome: str, choice) -> int | str:
    """A judgment's label: the chosen (or best-ranked) response index, "tie" or "both_bad"."""
    return int(choice) if outcome == "choice" else outcome


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
    - ``majority_agreement``: leave-one-out majority. For each item the rater
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
    labels = [_label(o, c) for o, c in zip(judgments["outcome"], judgments["choice"])]
    # Each rater's latest label per item (rows come in id order).
    latest: dict[int, dict[str, int | str]] = {}
    for rater, item, label in zip(judgments["rater"], judgments["item_id"], labels):
        latest.setdefault(int(item), {})[rater] = label
    rows = []
    for rater, group in judgments.groupby("rater", sort=True):
        seconds = group["time_ms"].dropna().astype(float) / 1000
        gold_hits = [gold_correct(g, {"outcome": o, "choice": None if pd.isna(c) else int(c)})
                     for g, o, c in zip(group["gold"], group["outcome"], group["choice"])]
        gold_hits = [hit for hit in gold_hits if hit is not None]
        agree = counted = 0
        for item in dict.fromkeys(int(i) for i in group["item_id"]):
            others = Counter(label for name, label in latest[item].items() if name != rater)
            top = others.most_common(2)
            if not top or (len(top) == 2 and top[0][1] == top[1][1]):
                continue
            counted += 1
            agree += int(latest[item][rater] == top[0][0])
        first = [int(c) == order[0] for o, c, order in zip(
            group["outcome"], group["choice"], group["display_order"])
            if o == "choice" and isinstance(order, list) and order]
        rows.append({
            "rater": rater,
            "judgments": len(group),
            "median_seconds": float(seconds.median()) if len(seconds) else float("nan"),
            "gold_n": len(gold_hits),
            "gold_accuracy": _share(sum(gold_hits), len(gold_hits)),
            "majority_n": counted,
            "majority_agreement": _share(agree, counted),
            "position_n": len(first),
            "position_bias": _share(sum(first), len(first)),
            "last_active": group["created_at"].max(),
        })
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))


def rater_quality(db, project_id: int) -> pd.DataFrame:
    """Return the per-rater quality table of a project (see :func:`quality_judgments`)."""
    return quality_judgments(store.rater_judgments_frame(db, project_id))
