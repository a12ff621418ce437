"""Which item a rater gets next, and turning a rater's answer into a stored judgment.

The queue itself is :func:`prefstore.store.claim_next` (raters per item, no
repeats, expiring claims, gold at the project's rate, items routed to humans
first, then the fewest judgments). This module adds what the rating page
needs on top: labels built from what the rater saw (display positions, not
response indices), the project's required fields, one submission id per
served item, and each judgment's correctness on gold items.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from typing import Any

from prefstore import store
from prefstore.errors import AccessDenied, InvalidInput
from prefstore.settings import ProjectSettings

FLAG_REASONS = ("harmful", "broken", "unclear", "other")
MAX_FLAG_NOTE_CHARS = 500
#: The flag reason recorded when an item cannot be shown (the rater moves on).
RENDER_ERROR = store.claims.UNREADABLE

# The graded pairwise scale, in display order: (position of the winner, strength).
# Position 0 is "Response A", 1 is "Response B"; strength 1..3, 0 for a tie.
STRENGTH_SCALE: tuple[tuple[str, int | None, int], ...] = (
    ("A much better", 0, 3),
    ("A clearly better", 0, 2),
    ("A slightly better", 0, 1),
    ("Tie", None, 0),
    ("B slightly better", 1, 1),
    ("B clearly better", 1, 2),
    ("B much better", 1, 3),
)
STRENGTH_LABELS = tuple(label for label, _, _ in STRENGTH_SCALE)
LIKERT = (1, 2, 3, 4, 5)


def next_item(db, project_id: int, rater_id: int, *, assigned_only: bool = False,
              now: dt.datetime | None = None, rng: random.Random | None = None) -> dict | None:
    """Claim the rater's next item (or resume their open claim); None when nothing is left.

    The claim carries ``display_order`` (response indices in the order shown)
    and ``item`` with its responses. Gold items look like any other item. With
    ``assigned_only`` (a rater's link) a project the rater is not assigned to
    raises AccessDenied.
    """
    if assigned_only and project_id not in store.rater_project_ids(db, rater_id):
        raise AccessDenied("you are not assigned to this project; ask your project admin")
    return store.claim_next(db, project_id, rater_id, now=now, rng=rng)


def submission_id(claim: dict) -> str:
    """Return the submission id of a served item: a rerun or double click reuses it."""
    return f"a{claim['id']}"


def position_label(n: int, position: int) -> str:
    """Return what the rater calls a display position: A/B for pairs, 1..K for slates."""
    return "AB"[position] if n == 2 else str(position + 1)


# --------------------------------------------------------------------------
# Labels from what the rater saw


def label_for_position(display_order: list[int], position: int, *,
                       strength: int | None = None) -> dict:
    """Return the label for "the response shown at ``position`` is better"."""
    if not 0 <= position < len(display_order):
        raise InvalidInput(f"position must be 0..{len(display_order) - 1}, got {position!r}")
    return {"outcome": "choice", "choice": display_order[position], "strength": strength}


def label_for_outcome(outcome: str, *, strength_scale: bool = False) -> dict:
    """Return the label for a tie or a both-bad verdict."""
    if outcome not in ("tie", "both_bad"):
        raise InvalidInput(f'outcome must be "tie" or "both_bad", got {outcome!r}')
    return {"outcome": outcome, "choice": None, "strength": 0 if strength_scale else None}


def label_for_strength(display_order: list[int], scale_label: str) -> dict:
    """Return the label for one step of the graded scale, e.g. "B slightly better"."""
    for label, position, strength in STRENGTH_SCALE:
        if label == scale_label:
            if position is None:
                return label_for_outcome("tie", strength_scale=True)
            return label_for_position(display_order, position, strength=strength)
    raise InvalidInput(f"strength must be one of {', '.join(STRENGTH_LABELS)}, "
                       f"got {scale_label!r}")


PAIR_CHOICES = ("A is better", "B is better", "Tie", "Both bad")


def label_choices(n_responses: int, *, strength_scale: bool = False) -> tuple[str, ...]:
    """Return the answers a rater can pick from when changing a judgment, in order.

    Pairs: the graded scale and "Both bad", or A / B / Tie / Both bad. Slates:
    "1 is best" .. "K is best" and "All bad".
    """
    if n_responses == 2:
        return (*STRENGTH_LABELS, "Both bad") if strength_scale else PAIR_CHOICES
    return (*(f"{p + 1} is best" for p in range(n_responses)), "All bad")


def label_from_choice(display_order: list[int], answer: str, *,
                      strength_scale: bool = False) -> dict:
    """Return the label for one of :func:`label_choices`' answers."""
    choices = label_choices(len(display_order), strength_scale=strength_scale)
    if answer not in choices:
        raise InvalidInput(f"answer must be one of {', '.join(choices)}, got {answer!r}")
    if answer in ("Both bad", "All bad"):
        return label_for_outcome("both_bad", strength_scale=strength_scale)
    if answer in STRENGTH_LABELS and strength_scale:
        return label_for_strength(display_order, answer)
    if answer == "Tie":
        return label_for_outcome("tie")
    return label_for_position(display_order, choices.index(answer))


def choice_for_label(label: dict[str, Any], display_order: list[int], *,
                     strength_scale: bool = False) -> str | None:
    """Return the answer of :func:`label_choices` that a stored label was, or None.

    None when the label has no such answer, e.g. a choice without a strength
    on the graded scale.
    """
    k = len(display_order)
    if label["outcome"] == "both_bad":
        return "Both bad" if k == 2 else "All bad"
    if label["outcome"] == "tie":
        return "Tie" if k == 2 else None
    best = label["choice"] if label.get("choice") is not None else label["ranking"][0]
    position = display_order.index(best)
    if k != 2:
        return f"{position + 1} is best"
    if not strength_scale:
        return PAIR_CHOICES[position]
    for text, pos, strength in STRENGTH_SCALE:
        if (pos, strength) == (position, label.get("strength")):
            return text
    return None


def ranking_from_ranks(display_order: list[int], ranks: list[int | None]) -> list[int]:
    """Turn the rank given to each displayed response into response indices, best first.

    ``ranks[p]`` is the rank (1 = best) of the response shown at position p.
    Raises InvalidInput, naming the repeated and missing ranks, unless the
    ranks are a permutation of 1..K.
    """
    k = len(display_order)
    if len(ranks) != k:
        raise InvalidInput(f"ranks must have {k} entries, got {len(ranks)}")
    unranked = [position_label(k, p) for p, r in enumerate(ranks) if r is None]
    if unranked:
        raise InvalidInput(f"give every response a rank; missing for response "
                           f"{', '.join(unranked)}")
    counts = Counter(ranks)
    repeated = sorted(r for r, n in counts.items() if n > 1)
    missing = sorted(set(range(1, k + 1)) - set(counts))
    if repeated or missing or set(counts) != set(range(1, k + 1)):
        raise InvalidInput(
            f"each rank 1..{k} must be used exactly once; repeated: "
            f"{', '.join(map(str, repeated)) or 'none'}; unused: "
            f"{', '.join(map(str, missing)) or 'none'}")
    by_rank = sorted(range(k), key=lambda p: ranks[p])
    return [display_order[p] for p in by_rank]


def ranking_from_positions(display_order: list[int], positions: list[int]) -> list[int]:
    """Turn displayed positions, best first (a drag-and-drop result), into response indices."""
    if sorted(positions) != list(range(len(display_order))):
        raise InvalidInput(f"positions must be a permutation of 0..{len(display_order) - 1}, "
                           f"got {positions!r}")
    return [display_order[p] for p in positions]


def edited_text(original: str, text: str | None) -> str | None:
    """Return the rater's edit if it changed the response (beyond whitespace), else None."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n")
    return text if text.strip() != original.replace("\r\n", "\n").strip() else None


def resolve_edit(claim: dict, label: dict, position: int | None,
                 text: str | None) -> str | None:
    """Return the edit to store with ``label``, or None when the text is unchanged.

    ``position`` is the displayed position of the response the rater edited.
    Raises InvalidInput when a changed text is not the chosen response's.
    """
    if position is None or text is None:
        return None
    order = claim["display_order"]
    originals = {r["idx"]: r["text"] for r in claim["item"]["responses"]}
    edited = edited_text(originals[order[position]], text)
    if edited is None:
        return None
    k = len(order)
    if label["outcome"] != "choice":
        raise InvalidInput(f"you improved Response {position_label(k, position)} but chose "
                           f"{describe_label(label, order)}; undo the edit or choose a response")
    chosen = label["choice"] if label.get("choice") is not None else label["ranking"][0]
    if order[position] != chosen:
        raise InvalidInput(f"you improved Response {position_label(k, position)} but chose "
                           f"{describe_label(label, order)}; improve the chosen response "
                           "instead")
    return edited


def check_form(settings: ProjectSettings, *, rationale: str | None = None,
               aspects: dict[str, int | None] | None = None) -> list[str]:
    """Return what is missing or wrong in a rater's answer under the project's settings.

    An empty list means the answer can be stored.
    """
    problems = []
    text = (rationale or "").strip()
    minimum = settings.rationale_min_chars
    if settings.rationale_required and not text:
        problems.append("a rationale is required: say briefly why"
                        + (f" (at least {minimum} characters)" if minimum else ""))
    elif minimum and text and len(text) < minimum:
        problems.append(f"the rationale must have at least {minimum} characters, "
                        f"it has {len(text)}")
    for name, score in (aspects or {}).items():
        if score is not None and score not in LIKERT:
            problems.append(f'aspect "{name}" must be scored 1..5, got {score!r}')
    return problems


# --------------------------------------------------------------------------
# Storing the answer


def gold_correct(gold: dict | None, label: dict) -> bool | None:
    """Return whether a label matches an item's gold answer, or None for a non-gold item.

    Gold is ``{"choice": k}`` with k a response index, "tie" or "both_bad";
    a gold ``ranking`` is judged on its first entry (the best response).
    """
    if not gold:
        return None
    expected = gold.get("choice")
    if expected is None and gold.get("ranking"):
        expected = gold["ranking"][0]
    if expected is None:
        return None
    if isinstance(expected, str):
        return label["outcome"] == expected
    choice = label.get("choice")
    if choice is None and label.get("ranking"):
        choice = label["ranking"][0]
    return label["outcome"] == "choice" and choice == expected


def submit(db, claim: dict, rater_id: int, label: dict, *,
           settings: ProjectSettings | None = None, aspects: dict[str, int | None] | None = None,
           rationale: str | None = None, reason_tags: list[str] | None = None,
           edited: str | None = None, metadata: dict | None = None) -> tuple[int, bool]:
    """Store the rater's judgment on a claimed item; return ``(judgment id, created)``.

    ``label`` holds ``outcome`` and ``choice``/``ranking``/``strength`` as
    response indices. The submission id comes from the claim, so a double
    click or a rerun stores one row. The display order and the time on task
    are taken from the claim by the store. On a gold item the judgment's
    metadata records ``gold_correct``.

    Raises InvalidInput when the project's required fields are missing.
    """
    problems = check_form(settings or ProjectSettings(), rationale=rationale, aspects=aspects)
    if problems:
        raise InvalidInput("; ".join(problems))
    meta = dict(metadata or {})
    correct = gold_correct(claim["item"].get("gold"), label)
    if correct is not None:
        meta["gold_correct"] = correct
    scores = {k: v for k, v in (aspects or {}).items() if v is not None}
    return store.submit_judgment(
        db, item_id=claim["item_id"], rater_id=rater_id, submission_id=submission_id(claim),
        outcome=label["outcome"], choice=label.get("choice"), ranking=label.get("ranking"),
        strength=label.get("strength"), aspects=scores or None,
        rationale=(rationale or "").strip() or None, reason_tags=list(reason_tags or []) or None,
        edited=edited, metadata=meta, assignment_id=claim["id"])


def change_submission_id(judgment_id: int) -> str:
    """Return the submission id of a change to ``judgment_id``: a double click stores one row."""
    return f"c{judgment_id}"


def change(db, judgment: dict, rater_id: int, label: dict, *,
           settings: ProjectSettings | None = None,
           rationale: str | None = None) -> tuple[int, bool]:
    """Store the rater's changed label for one of their judgments; return ``(id, created)``.

    ``judgment`` is a row of :func:`prefstore.store.recent_judgments`. The new
    row keeps the judgment's display order, aspects and reason tags, takes the
    new ``label`` and ``rationale``, and records ``gold_correct`` again on a
    gold item. An edit of a response is not carried over: it belonged to the
    old choice.

    Raises InvalidInput when the project's required fields are missing, and
    what :func:`prefstore.store.change_judgment` raises.
    """
    problems = check_form(settings or ProjectSettings(), rationale=rationale)
    if problems:
        raise InvalidInput("; ".join(problems))
    meta = {}
    correct = gold_correct(store.get_item(db, judgment["item_id"]).get("gold"), label)
    if correct is not None:
        meta["gold_correct"] = correct
    return store.change_judgment(
        db, judgment_id=judgment["id"], rater_id=rater_id,
        submission_id=change_submission_id(judgment["id"]), outcome=label["outcome"],
        choice=label.get("choice"), ranking=label.get("ranking"),
        strength=label.get("strength"), aspects=judgment.get("aspects"),
        rationale=(rationale or "").strip() or None, reason_tags=judgment.get("reason_tags"),
        metadata=meta)


def skip(db, claim: dict, rater_id: int, reason: str | None = None) -> None:
    """Record that the rater skipped the item (with an optional reason)."""
    store.release_assignment(db, claim["id"], rater_id, status="skipped",
                               reason=(reason or "").strip() or None)


def flag(db, claim: dict, rater_id: int, reason: str, note: str | None = None) -> None:
    """Record that the rater flagged the item as harmful, broken, unclear or "other".

    "other" needs a ``note`` saying what is wrong; a note is stored as
    ``"<reason>: <note>"`` (at most MAX_FLAG_NOTE_CHARS characters).
    """
    if reason not in FLAG_REASONS:
        raise InvalidInput(f"flag reason must be one of {', '.join(FLAG_REASONS)}, "
                           f"got {reason!r}")
    note = " ".join((note or "").split())
    if reason == "other" and not note:
        raise InvalidInput('say what is wrong with the item when you choose "other"')
    if len(note) > MAX_FLAG_NOTE_CHARS:
        raise InvalidInput(f"the note must have at most {MAX_FLAG_NOTE_CHARS} characters, "
                           f"it has {len(note)}")
    store.release_assignment(db, claim["id"], rater_id, status="flagged",
                             reason=f"{reason}: {note}" if note else reason)


def flag_unshowable(db, claim: dict, rater_id: int, error: BaseException) -> None:
    """Flag an item the page failed to show, naming the error, so the rater moves on."""
    store.release_assignment(db, claim["id"], rater_id, status="flagged",
                             reason=f"{RENDER_ERROR}: {type(error).__name__}")


# --------------------------------------------------------------------------
# Gold accuracy


def gold_accuracy(db, project_id: int) -> dict[str, float]:
    """Return each rater's accuracy on the project's gold items: ``{rater name: accuracy}``.

    Uses the ``gold_correct`` recorded at submit time, and recomputes it from
    the item's gold for judgments stored without it (imports). Raters with no
    judgment on a gold item are absent.
    """
    return {name: stats["correct"] / stats["n"]
            for name, stats in gold_counts(db, project_id).items()}


def gold_counts(db, project_id: int) -> dict[str, dict[str, int]]:
    """Return ``{rater name: {"n": judged gold items, "correct": right answers}}``."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "correct": 0})
    for row in store.gold_judgments(db, project_id):
        correct = row["metadata"].get("gold_correct")
        if not isinstance(correct, bool):
            correct = gold_correct(row["gold"], row)
        if correct is None:
            continue
        out[row["rater"]]["n"] += 1
        out[row["rater"]]["correct"] += int(correct)
    return dict(out)


def describe_saved(label: dict[str, Any], display_order: list[int]) -> str:
    """Return what a toast says was saved: "B clearly better", "Ranking 2 > 3 > 1", "Tie"."""
    k = len(display_order)
    if label["outcome"] == "choice" and label.get("ranking"):
        return "Ranking " + " > ".join(position_label(k, display_order.index(i))
                                       for i in label["ranking"])
    if label["outcome"] == "choice" and k == 2 and label.get("strength") in (1, 2, 3):
        for text, position, strength in STRENGTH_SCALE:
            if (position, strength) == (display_order.index(label["choice"]),
                                        label["strength"]):
                return text
    return describe_label(label, display_order)


def gold_feedback(gold: dict | None, label: dict[str, Any], display_order: list[int]
                  ) -> str | None:
    """Return what a rater is told after answering a gold item, or None for other items.

    "Gold item: you matched the expected answer (Response B)." or "Gold item: the
    expected answer was Tie; you chose Response A." The expected answer is named
    as the rater saw the item (its display order).
    """
    correct = gold_correct(gold, label)
    if correct is None:
        return None
    expected = gold.get("choice")
    if expected is None:
        expected = gold["ranking"][0]
    expected_label = ({"outcome": expected, "choice": None} if isinstance(expected, str)
                      else {"outcome": "choice", "choice": expected})
    shown = describe_label(expected_label, display_order)
    if correct:
        return f"Gold item: you matched the expected answer ({shown})."
    return (f"Gold item: the expected answer was {shown}; you chose "
            f"{describe_label(label, display_order)}.")


def describe_label(label: dict[str, Any], display_order: list[int]) -> str:
    """Return the label as the rater saw it, e.g. "Response B" or "Tie"."""
    if label["outcome"] == "tie":
        return "Tie"
    if label["outcome"] == "both_bad":
        return "Both bad" if len(display_order) == 2 else "All bad"
    best = label["choice"] if label.get("choice") is not None else label["ranking"][0]
    return f"Response {position_label(len(display_order), display_order.index(best))}"
