"""Label a list of items with any judge, yielding each outcome as it is done.

This is the one loop the CLI's ``prefstore annotate`` and the worker's annotate
job call. It takes items (already filtered to the ones not yet done, which makes
a run resumable) and hands back each item's outcome as soon as it exists, through
``on_outcome`` or by iterating ``iter_outcomes``, so a caller that stores each
one right away loses at most the items in flight when it is killed.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefstore.errors import PrefstoreError
from prefstore.judges.base import Judge, JudgeConfig, Progress, validate_items
from prefstore.judges.outcome import ItemOutcome

# Items per judge_items call for the local judges, in units of their batch size.
LOCAL_CHUNK_BATCHES = 4


@dataclass
class AnnotateReport:
    """Every outcome of a run (in completion order) and its totals.

    ``stats`` is ``{"labelled", "failed", "cached", "requests", "seconds",
    "tokens": {"prompt", "completion"}, "stopped"}``: ``cached`` counts items
    answered from the cache alone, ``requests`` and ``tokens`` what was sent to the
    server in this run, ``stopped`` whether ``should_stop`` ended the run early.
    """

    outcomes: list[ItemOutcome] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=lambda: new_stats())


def new_stats() -> dict[str, Any]:
    """Return the totals of a run that has done nothing yet."""
    return {"labelled": 0, "failed": 0, "cached": 0, "requests": 0, "seconds": 0.0,
            "tokens": {"prompt": 0, "completion": 0}, "stopped": False}


def add_outcome(stats: dict[str, Any], outcome: ItemOutcome) -> None:
    """Count one outcome into a run's totals."""
    stats["labelled" if outcome.ok else "failed"] += 1
    stats["cached"] += outcome.requests == 0 and outcome.cached > 0
    stats["requests"] += outcome.requests
    stats["tokens"]["prompt"] += outcome.usage["prompt_tokens"]
    stats["tokens"]["completion"] += outcome.usage["completion_tokens"]


def iter_outcomes(
    judge: Judge,
    items: Sequence[dict],
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ItemOutcome]:
    """Yield one ItemOutcome per item as it is done (``index`` is its position in ``items``).

    A server judge yields in completion order with requests in flight; a local
    judge runs chunks of ``4 x batch_size`` items and yields them in order.
    ``progress(done, total)`` counts items.
    """
    if hasattr(judge, "iter_outcomes"):
        yield from judge.iter_outcomes(items, progress=progress, should_stop=should_stop)
        return
    validate_items(items)
    size = max(judge.config.batch_size * LOCAL_CHUNK_BATCHES, 1)
    for start in range(0, len(items), size):
        if should_stop is not None and should_stop():
            return
        results = judge.judge_items(items[start : start + size])
        for offset, result in enumerate(results):
            if progress is not None:
                progress(start + offset + 1, len(items))
            yield ItemOutcome(start + offset, result=result)


def annotate_items(
    judge: Judge | JudgeConfig | dict,
    items: Sequence[dict],
    on_outcome: Callable[[ItemOutcome], None] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache=None,
) -> AnnotateReport:
    """Judge items, calling ``on_outcome`` with each outcome as soon as it is done.

    Parameters
    ----------
    judge : a loaded judge, or a config to load one with (``load_judge``).
    items : dicts with ``prompt`` or ``messages``, plus ``responses``; pass only
        the items not yet done to resume a run.
    on_outcome : called in the caller's thread with each ItemOutcome, e.g. to
        store it at once.
    progress : ``progress(done, total)`` in items.
    should_stop : polled between outcomes; once true the run ends after the
        requests in flight, with ``stats["stopped"]`` set.
    cache : a ResponseCache for a server judge loaded from a config.

    Returns
    -------
    AnnotateReport with every outcome and the run's totals.

    Raises
    ------
    ServerUnavailable, LogprobsUnavailable, ...
        any PrefstoreError of the judge, carrying the report so far as ``error.report``
        (its outcomes were already passed to ``on_outcome``).
    """
    from prefstore.judges import load_judge

    if isinstance(judge, JudgeConfig | dict):
        judge = load_judge(judge, cache=cache)
    report = AnnotateReport()
    start = time.perf_counter()
    stop_asked = False

    def stopping():
        nonlocal stop_asked
        stop_asked = stop_asked or bool(should_stop is not None and should_stop())
        return stop_asked

    try:
        for outcome in iter_outcomes(judge, items, progress=progress, should_stop=stopping):
            add_outcome(report.stats, outcome)
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    except PrefstoreError as e:
        report.stats["seconds"] = round(time.perf_counter() - start, 3)
        e.report = report
        raise
    report.stats["seconds"] = round(time.perf_counter() - start, 3)
    report.stats["stopped"] = stop_asked and len(report.outcomes) < len(items)
    return report
