"""Turn the store's judgment and response frames into model data.

This is the only place where database ids become the integer indices
``0..n-1`` the models use.

Rules (see :func:`pairwise_from_frames` and :func:`rankings_from_frames`):

- outcome "choice" on a pair: the chosen response beats the other one,
  weighted by the judgment's strength (``STRENGTH_WEIGHTS``);
- outcome "choice" on a slate of K > 2 responses: the chosen response beats
  each of the others (pairwise level), or is a top-1 choice among all of the
  item's responses (Plackett-Luce);
- a ``ranking`` (best first) expands to every ordered pair (pairwise level),
  or is a full Plackett-Luce ranking;
- "tie" is a tie between every pair of the item's responses; "both_bad" is
  treated as a tie too (neither response was preferred, which is what a tie
  says), unless ``both_bad="drop"``; Plackett-Luce has no ties, so both are left
  out of rankings;
- at level "system", responses are replaced by their system: a pair of
  responses from the same system carries no information about systems and is
  dropped, and a response without a system is an error naming its item.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput
from prefstore.models.base import PairwiseData, RankingData

#: Weight of a "choice" judgment by its strength 0..3 (missing strength: 1.0).
#: A strength-3 judgment counts as two plain ones and a strength-0 one as half:
#: a weighted (composite) Bradley-Terry likelihood, chosen over an ordinal
#: model because it keeps every model and the mixture unchanged. Hessian
#: intervals treat the weights as counts, so they are approximate when the
#: weights are not all 1; the bootstrap resamples whole judgments.
STRENGTH_WEIGHTS: dict[int, float] = {0: 0.5, 1: 1.0, 2: 1.5, 3: 2.0}

LEVELS = ("system", "response")
KINDS = ("all", "human", "llm")
TIE_POLICIES = ("keep", "drop")
BOTH_BAD_POLICIES = ("tie", "drop")

_JUDGMENT_COLUMNS = ("id", "item_id", "rater", "kind", "outcome", "choice", "ranking", "strength")
_RESPONSE_COLUMNS = ("item_id", "idx", "system", "response_id")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f'"{name}" must be one of {list(allowed)}, got {value!r}')


def _check_columns(frame: pd.DataFrame, what: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f'"{what}" is missing columns {missing}')


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value)) or value is pd.NA
    except TypeError:
        return False


def _as_ranking(value: Any, jid: Any) -> list[int] | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput(f"judgment {jid}: ranking {value!r} is not a JSON list") from None
        if value is None:
            return None
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise InvalidInput(
            f"judgment {jid}: ranking must be a list of ints, got {value!r}"
        ) from None
    return out or None


class _Nodes:
    """The map from (item_id, idx) to model items at one level."""

    def __init__(self, responses: pd.DataFrame, level: str):
        _check_columns(responses, "responses", _RESPONSE_COLUMNS)
        self.level = level
        self.key: dict[tuple[int, int], str] = {}
        self.order: dict[str, Any] = {}
        self.by_item: dict[int, list[int]] = {}
        for item_id, idx, system, rid in zip(
            responses["item_id"], responses["idx"], responses["system"], responses["response_id"]
        ):
            item_id, idx = int(item_id), int(idx)
            if level == "system":
                name = None if _missing(system) or system == "" else str(system)
                sort_key: Any = (0, name)
            else:
                name = str(int(rid))
                sort_key = (int(rid),)
            self.key[(item_id, idx)] = name
            self.order[name] = sort_key
            self.by_item.setdefault(item_id, []).append(idx)
        for idxs in self.by_item.values():
            idxs.sort()

    def name(self, item_id: int, idx: int, jid: Any) -> str:
        try:
            name = self.key[(item_id, idx)]
        except KeyError:
            raise InvalidInput(
                f"judgment {jid}: item {item_id} has no response with index {idx}"
            ) from None
        if name is None:
            raise InvalidInput(
                f"item {item_id}: response {idx} has no system; use level='response' "
                f"or fill in the system"
            )
        return name

    def responses_of(self, item_id: int, jid: Any) -> list[int]:
        try:
            return self.by_item[item_id]
        except KeyError:
            raise InvalidInput(f"judgment {jid}: item {item_id} has no responses") from None


def _filtered(judgments: pd.DataFrame, kind: str) -> pd.DataFrame:
    _check_columns(judgments, "judgments", _JUDGMENT_COLUMNS)
    if kind != "all":
        judgments = judgments[judgments["kind"] == kind]
    return judgments.sort_values("id", kind="stable")


def _strength_weight(strength: Any, weights: dict[int, float] | None, jid: Any) -> float:
    if weights is None or _missing(strength):
        return 1.0
    try:
        return float(weights[int(strength)])
    except (KeyError, ValueError, TypeError):
        raise InvalidInput(
            f"judgment {jid}: strength must be one of {sorted(weights)}, got {strength!r}"
        ) from None


def _index(names: set[str], nodes: _Nodes) -> list[str]:
    return sorted(names, key=lambda n: nodes.order[n])


def pairwise_from_frames(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    level: str = "system",
    kind: str = "all",
    tie_policy: str = "keep",
    both_bad: str = "tie",
    strength_weights: dict[int, float] | None = STRENGTH_WEIGHTS,
) -> PairwiseData:
    """Build pairwise data from the store's frames.

    Parameters
    ----------
    judgments : DataFrame
        Columns ``id, item_id, rater, kind, outcome, choice, ranking, strength``.
    responses : DataFrame
        Columns ``item_id, idx, system, response_id``.
    level : {"system", "response"}
        Compare systems (names are system names) or single responses (names are
        ``str(response_id)``).
    kind : {"all", "human", "llm"}
        Which judgments to use.
    tie_policy : {"keep", "drop"}
        Keep ties as tie rows (Bradley-Terry counts them as half wins, Davidson
        models them) or drop them.
    both_bad : {"tie", "drop"}
        "both_bad" judgments count as ties by default.
    strength_weights : dict, optional
        Weight of a choice by its strength; None weighs every judgment 1.

    Returns
    -------
    PairwiseData
        Items ``0..n-1`` named in ``names`` (sorted), raters indexed into
        ``rater_names`` (sorted), ``level`` set.

    Raises
    ------
    InvalidInput
        On an unknown option, missing columns, a choice or ranking that points
        to no response, or (level "system") a response without a system.
    """
    _check_choice("level", level, LEVELS)
    _check_choice("kind", kind, KINDS)
    _check_choice("tie_policy", tie_policy, TIE_POLICIES)
    _check_choice("both_bad", both_bad, BOTH_BAD_POLICIES)
    fast = _pairwise_vectorized(judgments, responses, level, kind, tie_policy, both_bad,
                                strength_weights)
    if fast is not None:
        return fast
    nodes = _Nodes(responses, level)
    rows: list[tuple[str, str, bool, float, str]] = []
    for jid, item_id, rater, outcome, choice, ranking, strength in zip(
        *(
            _filtered(judgments, kind)[c]
            for c in ("id", "item_id", "rater", "outcome", "choice", "ranking", "strength")
        )
    ):
        item_id, rater = int(item_id), str(rater)
        order = _as_ranking(ranking, jid)
        if outcome == "choice" and order is not None:
            w = _strength_weight(strength, strength_weights, jid)
            names = [nodes.name(item_id, i, jid) for i in order]
            rows.extend(
                (a, b, False, w, rater) for k, a in enumerate(names) for b in names[k + 1 :]
            )
        elif outcome == "choice":
            if _missing(choice):
                raise InvalidInput(f"judgment {jid}: outcome 'choice' without a choice or ranking")
            w = _strength_weight(strength, strength_weights, jid)
            win = nodes.name(item_id, int(choice), jid)
            rows.extend(
                (win, nodes.name(item_id, i, jid), False, w, rater)
                for i in nodes.responses_of(item_id, jid)
                if i != int(choice)
            )
        elif outcome in ("tie", "both_bad"):
            if tie_policy == "drop" or (outcome == "both_bad" and both_bad == "drop"):
                continue
            names = [nodes.name(item_id, i, jid) for i in nodes.responses_of(item_id, jid)]
            rows.extend(
                (a, b, True, 1.0, rater) for k, a in enumerate(names) for b in names[k + 1 :]
            )
        else:
            raise InvalidInput(
                f"judgment {jid}: outcome must be 'choice', 'tie' or 'both_bad', got {outcome!r}"
            )
    # Same-system pairs say nothing about systems (see the module docstring).
    rows = [r for r in rows if r[0] != r[1]]
    names = _index({r[0] for r in rows} | {r[1] for r in rows}, nodes)
    raters = sorted({r[4] for r in rows})
    pos = {n: i for i, n in enumerate(names)}
    rpos = {n: i for i, n in enumerate(raters)}
    return PairwiseData(
        winners=np.array([pos[r[0]] for r in rows], dtype=np.intp),
        losers=np.array([pos[r[1]] for r in rows], dtype=np.intp),
        n_items=len(names),
        ties=np.array([r[2] for r in rows], dtype=bool),
        weights=np.array([r[3] for r in rows], dtype=float),
        raters=np.array([rpos[r[4]] for r in rows], dtype=np.intp),
        names=names,
        rater_names=raters or None,
        level=level,
    )


def _pairwise_vectorized(judgments: pd.DataFrame, responses: pd.DataFrame, level: str,
                         kind: str, tie_policy: str, both_bad: str,
                         strength_weights: dict[int, float] | None) -> PairwiseData | None:
    """The loop of :func:`pairwise_from_frames` in numpy, for the common case.

    Applies when every judged item has exactly two responses (indices 0 and
    1) and no judgment carries a ranking; returns None otherwise, and the
    general loop runs. The output is identical, row for row (tested).
    """
    _check_columns(responses, "responses", _RESPONSE_COLUMNS)
    j = _filtered(judgments, kind)
    if j["ranking"].notna().any():
        return None
    resp = responses.sort_values(["item_id", "idx"], kind="stable")
    counts = resp.groupby("item_id")["idx"].agg(["size", "min", "max"])
    pair_items = counts.index[(counts["size"] == 2) & (counts["min"] == 0) & (counts["max"] == 1)]
    item_ids = j["item_id"].to_numpy(dtype=np.int64)
    if not np.isin(item_ids, pair_items.to_numpy()).all():
        return None
    # Unjudged items of other sizes (a slate project's) would duplicate the index below.
    resp = resp[resp["item_id"].isin(pair_items)]
    if level == "system":
        if resp["system"].isna().any() or (resp["system"] == "").any():
            return None  # the loop names the offending item
        node_names = resp["system"].astype(str).to_numpy(dtype=object)
    else:
        node_names = resp["response_id"].astype(np.int64).astype(str).to_numpy(dtype=object)
    # Integer node codes throughout; names come back only for the used nodes.
    node_codes, uniques = pd.factorize(node_names)
    is0 = (resp["idx"] == 0).to_numpy()
    code0 = pd.Series(node_codes[is0], index=resp["item_id"].to_numpy()[is0])
    code1 = pd.Series(node_codes[~is0], index=resp["item_id"].to_numpy()[~is0])
    a = code0.reindex(item_ids).to_numpy()
    b = code1.reindex(item_ids).to_numpy()
    outcome = j["outcome"].to_numpy(dtype=object)
    bad = ~np.isin(outcome, ("choice", "tie", "both_bad"))
    if bad.any():
        jid = j["id"].to_numpy()[bad.argmax()]
        raise InvalidInput(f"judgment {jid}: outcome must be 'choice', 'tie' or 'both_bad', "
                           f"got {outcome[bad.argmax()]!r}")
    is_choice = outcome == "choice"
    choice = pd.to_numeric(j["choice"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = is_choice & np.isnan(choice)
    if missing.any():
        jid = j["id"].to_numpy()[missing.argmax()]
        raise InvalidInput(f"judgment {jid}: outcome 'choice' without a choice or ranking")
    wrong = is_choice & ~np.isin(choice, (0.0, 1.0))
    if wrong.any():
        k = wrong.argmax()
        raise InvalidInput(f"judgment {j['id'].to_numpy()[k]}: item {item_ids[k]} has no "
                           f"response with index {int(choice[k])}")
    keep = is_choice.copy()
    if tie_policy == "keep":
        keep |= outcome == "tie"
        if both_bad == "tie":
            keep |= outcome == "both_bad"
    second_won = is_choice & (choice == 1.0)
    winner = np.where(second_won, b, a)
    loser = np.where(second_won, a, b)
    strength = pd.to_numeric(j["strength"], errors="coerce").to_numpy(dtype=float,
                                                                      na_value=np.nan)
    weight = np.ones(len(j))
    if strength_weights is not None:
        has = is_choice & ~np.isnan(strength)
        table = {float(k): v for k, v in strength_weights.items()}
        unknown = has & ~np.isin(strength, list(table))
        if unknown.any():
            k = unknown.argmax()
            raise InvalidInput(f"judgment {j['id'].to_numpy()[k]}: strength must be one of "
                               f"{sorted(strength_weights)}, got {strength[k]!r}")
        for value, w in table.items():
            weight[has & (strength == value)] = w
    # Same-system pairs say nothing about systems (see the module docstring).
    keep &= winner != loser
    winner, loser = winner[keep], loser[keep]
    used = np.unique(np.concatenate([winner, loser]))
    sort_key = (lambda c: uniques[c]) if level == "system" else (lambda c: int(uniques[c]))
    ordered = sorted(used.tolist(), key=sort_key)
    remap = np.full(len(uniques), -1, dtype=np.intp)
    remap[ordered] = np.arange(len(ordered))
    rater_codes, rater_uniques = pd.factorize(j["rater"].astype(str).to_numpy(dtype=object)[keep])
    rater_order = np.argsort(np.asarray(rater_uniques, dtype=object), kind="stable")
    rater_remap = np.empty(len(rater_uniques), dtype=np.intp)
    rater_remap[rater_order] = np.arange(len(rater_uniques))
    raters = [str(rater_uniques[k]) for k in rater_order]
    return PairwiseData(
        winners=remap[winner],
        losers=remap[loser],
        n_items=len(ordered),
        ties=~is_choice[keep],
        weights=weight[keep],
        raters=rater_remap[rater_codes],
        names=[str(uniques[c]) for c in ordered],
        rater_names=raters or None,
        level=level,
    )


#: Columns of a pair-count table: node names ``lo < hi`` (as strings), pairwise rows
#: won by ``lo``, won by ``hi`` and tied, and the same rows' summed strength weights.
PAIR_COUNT_COLUMNS = ("lo", "hi", "n_lo", "n_hi", "n_tie", "w_lo", "w_hi", "w_tie")


def _no_system_items(responses: pd.DataFrame) -> np.ndarray:
    system = responses["system"]
    missing = system.isna().to_numpy() | (system.astype(object) == "").to_numpy()
    return np.unique(responses["item_id"].to_numpy(dtype=np.int64)[missing])


def pair_count_deltas(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    strength_weights: dict[int, float] | None = STRENGTH_WEIGHTS,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    """Sum signed judgments into pair counts at both levels, per judgment kind.

    A judgment contributes the rows :func:`pairwise_from_frames` makes of it (ties and
    "both_bad" as ties, same-system pairs dropped), times its ``sign``: +1 adds it to
    running counts, -1 takes it back out (a superseded or newly excluded judgment).
    At level "system" a judgment on an item with a response without a system has no
    rows: it is counted in ``n_no_system`` instead, so a fit can refuse as the
    frame path does.

    Parameters
    ----------
    judgments : DataFrame
        Columns ``id, item_id, kind, outcome, choice, ranking, strength, sign``.
    responses : DataFrame
        Columns ``item_id, idx, system, response_id``, for every judged item.
    strength_weights : dict, optional
        As in :func:`pairwise_from_frames`.

    Returns
    -------
    deltas : dict
        Level ("system", "response") to a DataFrame with ``kind`` and
        :data:`PAIR_COUNT_COLUMNS`, one row per (kind, pair) whose counts change;
        ``lo < hi`` as strings.
    totals : dict
        Kind ("human", "llm") to ``{"n": signed judgments, "n_no_system": those on
        items with a response without a system}``.

    Raises
    ------
    InvalidInput
        As :func:`pairwise_from_frames`.
    """
    _check_columns(judgments, "judgments", ("id", "item_id", "kind", "outcome", "choice",
                                            "ranking", "strength", "sign"))
    sign = judgments["sign"].to_numpy(dtype=np.int64)
    # The few kinds as codes: per-row strings cost more than the rest of a 1M-row fold.
    kind_codes, kind_uniques = pd.factorize(judgments["kind"], use_na_sentinel=False)
    kind_names = np.array([str(k) for k in kind_uniques], dtype=object)
    kinds = kind_names[kind_codes]
    no_system_items = _no_system_items(responses)
    no_system = np.isin(judgments["item_id"].to_numpy(dtype=np.int64), no_system_items)
    totals = {k: {"n": int(sign[kinds == k].sum()),
                  "n_no_system": int(sign[(kinds == k) & no_system].sum())}
              for k in ("human", "llm")}
    # The adapter keeps each row's rater: the label carries the judgment's kind and sign.
    # Taken from pandas' own strings: no per-row conversion, none on reading them back.
    labels = pd.array([f"{k}{s}" for k in kind_names for s in (" 1", " -1")], dtype="str")
    labelled = judgments.assign(rater=labels.take(2 * kind_codes + (sign <= 0)))
    if labelled.empty:
        return {level: pd.DataFrame(columns=["kind", *PAIR_COUNT_COLUMNS])
                for level in LEVELS}, totals
    try:
        by_response = pairwise_from_frames(labelled, responses, level="response",
                                           strength_weights=strength_weights)
    except InvalidInput:
        # The system level was read first: its error, where it has one, is the one raised.
        if not no_system.all():
            pairwise_from_frames(labelled[~no_system], responses, level="system",
                                 strength_weights=strength_weights)
        raise
    # One read of the judgments: the system-level rows are the response-level ones
    # mapped to systems (as pairwise_style_from_frames builds them).
    by_system = _system_rows(by_response, responses, no_system_items)
    return {"system": _signed_pair_rows(by_system),
            "response": _signed_pair_rows(by_response)}, totals


def _system_rows(by_response: PairwiseData, responses: pd.DataFrame,
                 no_system_items: np.ndarray) -> PairwiseData:
    """The rows ``pairwise_from_frames(..., level="system")`` makes of the judgments on
    items not in ``no_system_items``, from their response-level rows, in the same order.

    Same-system pairs are dropped; the system names are indexed in code point order.
    """
    ids = np.array(by_response.names, dtype=object).astype(np.int64)
    at = pd.Index(responses["response_id"].to_numpy(dtype=np.int64)).get_indexer(ids)
    item = responses["item_id"].to_numpy(dtype=np.int64)[at]
    system = responses["system"].to_numpy(dtype=object)[at]
    # A judgment's rows all lie on its item: the winner's item is the row's.
    keep = ~np.isin(item[by_response.winners], no_system_items)
    winners, losers = by_response.winners[keep], by_response.losers[keep]
    # Kept rows never meet a missing system (code -1): those items are dropped.
    codes, systems = pd.factorize(system, sort=True)
    win, lose = codes[winners], codes[losers]
    keep[keep] = win != lose
    winners, losers = by_response.winners[keep], by_response.losers[keep]
    return PairwiseData(
        winners=codes[winners], losers=codes[losers], n_items=len(systems),
        ties=by_response.ties[keep], weights=by_response.weights[keep],
        raters=by_response.raters[keep], names=[str(s) for s in systems],
        rater_names=by_response.rater_names, level="system")


def _signed_pair_rows(data: PairwiseData) -> pd.DataFrame:
    """Sum the signed pairwise rows per (kind, lo, hi), sorted so, unchanged pairs left out.

    Aggregates on integer codes: a groupby over the node names' strings took most of
    a 1M-judgment fold. ``lo < hi`` and the order compare the names as strings.
    """
    if len(data) == 0:  # e.g. only same-system pairs: no labels to read back either
        return pd.DataFrame(columns=["kind", *PAIR_COUNT_COLUMNS])
    names = np.array(data.names, dtype=object)
    # Response names are indexed as numbers ("9" before "10"): rank them as strings.
    by_text = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[by_text] = np.arange(len(names))
    # A handful of labels ("human 1", "llm -1", ...): split those, then index.
    kind_of = [label.split(" ")[0] for label in data.rater_names]
    kind_names = sorted(set(kind_of))
    kind = np.array([kind_names.index(k) for k in kind_of], dtype=np.int64)[data.raters]
    sign = np.array([int(label.split(" ")[1]) for label in data.rater_names],
                    dtype=np.int64)[data.raters]
    win, lose = rank[data.winners], rank[data.losers]
    swap = win > lose
    lo, hi = np.where(swap, lose, win), np.where(swap, win, lose)
    tie = data.ties
    lo_won = ~tie & ~swap
    hi_won = ~tie & swap
    w = data.weights * sign
    # One int64 per (kind, lo, hi), ordered as the triple (ValueError if it cannot be).
    key = np.ravel_multi_index((kind, lo, hi), (len(kind_names), len(names), len(names)))
    # pandas' group sums on the key, as the string groupby summed: the same float sums.
    out = pd.DataFrame({
        "n_lo": sign * lo_won, "n_hi": sign * hi_won, "n_tie": sign * tie,
        "w_lo": w * lo_won, "w_hi": w * hi_won, "w_tie": w * tie,
    }).groupby(key, sort=True).sum()
    # A change can keep the row counts and move only the weights: both are checked.
    out = out[(out.to_numpy() != 0).any(axis=1)]
    kind, lo, hi = np.unravel_index(out.index.to_numpy(dtype=np.int64),
                                    (len(kind_names), len(names), len(names)))
    by_rank = names[by_text]
    return pd.DataFrame({
        "kind": np.array(kind_names, dtype=object)[kind], "lo": by_rank[lo], "hi": by_rank[hi],
        **{c: out[c].to_numpy() for c in PAIR_COUNT_COLUMNS[2:]}})


def pairwise_from_counts(counts: pd.DataFrame, level: str) -> tuple[PairwiseData, int]:
    """Build pairwise data from stored pair counts (:data:`PAIR_COUNT_COLUMNS`).

    One row per (pair, outcome) carrying the outcome's summed weight: the models
    aggregate judgments to exactly these sums first, so a fit on this data equals
    the fit on :func:`pairwise_from_frames` of the same judgments (names sorted the
    same way). Only the bootstrap, which resamples single judgments, needs the frames.

    Parameters
    ----------
    counts : DataFrame
        Columns :data:`PAIR_COUNT_COLUMNS`; a pair may repeat (e.g. once per kind).
    level : {"system", "response"}
        Node names are systems, or response ids (integers or their text; named as
        text, sorted as numbers).

    Returns
    -------
    data : PairwiseData
    n_comparisons : int
        The number of pairwise rows the counts stand for (``len`` of the frame-path data).
    """
    _check_choice("level", level, LEVELS)
    _check_columns(counts, "counts", PAIR_COUNT_COLUMNS)
    counts = counts[(counts[["n_lo", "n_hi", "n_tie"]].to_numpy() != 0).any(axis=1)]
    m = len(counts)
    # Names sort as pairwise_from_frames sorts them: by code point, response ids as numbers.
    if level == "system":
        codes, uniques = pd.factorize(np.concatenate([counts["lo"].to_numpy(dtype=object),
                                                      counts["hi"].to_numpy(dtype=object)]))
        keys = np.asarray(uniques, dtype=object).astype(str)
        order = np.argsort(keys, kind="stable")
        rank = np.empty(len(keys), dtype=np.intp)
        rank[order] = np.arange(len(keys))
        a, b = rank[codes[:m]], rank[codes[m:]]
        names = keys[order].tolist()
    else:
        ids = np.concatenate([counts["lo"].to_numpy(), counts["hi"].to_numpy()])
        ids, ranks = np.unique(ids.astype(np.int64), return_inverse=True)
        a, b = ranks[:m], ranks[m:]
        names = list(map(str, ids.tolist()))
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    w_lo = counts["w_lo"].to_numpy(dtype=float)
    w_hi = counts["w_hi"].to_numpy(dtype=float)
    w_tie = counts["w_tie"].to_numpy(dtype=float)
    w_lo, w_hi = np.where(swap, w_hi, w_lo), np.where(swap, w_lo, w_hi)
    cells = [(lo, hi, False, w_lo), (hi, lo, False, w_hi), (lo, hi, True, w_tie)]
    keep = [w > 0 for *_, w in cells]
    data = PairwiseData(
        winners=np.concatenate([c[0][k] for c, k in zip(cells, keep)]),
        losers=np.concatenate([c[1][k] for c, k in zip(cells, keep)]),
        n_items=len(names),
        ties=np.concatenate([np.full(int(k.sum()), c[2]) for c, k in zip(cells, keep)]),
        weights=np.concatenate([c[3][k] for c, k in zip(cells, keep)]),
        names=names,
        level=level,
    )
    n_comparisons = int(counts[["n_lo", "n_hi", "n_tie"]].to_numpy().sum())
    return data, n_comparisons


def rankings_from_frames(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    level: str = "system",
    kind: str = "all",
    strength_weights: dict[int, float] | None = STRENGTH_WEIGHTS,
) -> RankingData:
    """Build Plackett-Luce data from the store's frames.

    A ``ranking`` is a full ranking (depth ``L - 1``); a choice without a ranking
    is a top-1 choice among all of the item's responses (depth 1), the others in
    index order. Ties and "both_bad" are left out: Plackett-Luce has no ties. At
    level "system" a system listed twice keeps its best-ranked place, and a row
    with fewer than two distinct systems is dropped.

    Parameters
    ----------
    judgments, responses, level, kind, strength_weights
        As in :func:`pairwise_from_frames`.

    Returns
    -------
    RankingData

    Raises
    ------
    InvalidInput
        As :func:`pairwise_from_frames`.
    """
    _check_choice("level", level, LEVELS)
    _check_choice("kind", kind, KINDS)
    nodes = _Nodes(responses, level)
    rows: list[tuple[list[str], int, float, str]] = []
    for jid, item_id, rater, outcome, choice, ranking, strength in zip(
        *(
            _filtered(judgments, kind)[c]
            for c in ("id", "item_id", "rater", "outcome", "choice", "ranking", "strength")
        )
    ):
        if outcome in ("tie", "both_bad"):
            continue
        if outcome != "choice":
            raise InvalidInput(
                f"judgment {jid}: outcome must be 'choice', 'tie' or 'both_bad', got {outcome!r}"
            )
        item_id = int(item_id)
        order = _as_ranking(ranking, jid)
        if order is not None:
            top1 = False
        elif _missing(choice):
            raise InvalidInput(f"judgment {jid}: outcome 'choice' without a choice or ranking")
        else:
            top1 = True
            order = [int(choice)] + [i for i in nodes.responses_of(item_id, jid) if i != choice]
        names = list(dict.fromkeys(nodes.name(item_id, i, jid) for i in order))
        if len(names) < 2:
            continue
        w = _strength_weight(strength, strength_weights, jid)
        rows.append((names, 1 if top1 else len(names) - 1, w, str(rater)))
    names = _index({n for r in rows for n in r[0]}, nodes)
    raters = sorted({r[3] for r in rows})
    pos = {n: i for i, n in enumerate(names)}
    rpos = {n: i for i, n in enumerate(raters)}
    return RankingData(
        rankings=[[pos[n] for n in r[0]] for r in rows] if rows else np.zeros((0, 0), np.intp),
        n_items=len(names),
        depth=np.array([r[1] for r in rows], dtype=np.intp),
        weights=np.array([r[2] for r in rows], dtype=float),
        raters=np.array([rpos[r[3]] for r in rows], dtype=np.intp),
        names=names,
        rater_names=raters or None,
        level=level,
    )


def pairwise_style_from_frames(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    level: str = "system",
    kind: str = "all",
    tie_policy: str = "keep",
    both_bad: str = "tie",
    strength_weights: dict[int, float] | None = STRENGTH_WEIGHTS,
    features: tuple[str, ...] | list[str] | None = None,
) -> tuple[PairwiseData, np.ndarray]:
    """Build pairwise data plus the style covariates of each comparison.

    The rows are exactly those of :func:`pairwise_from_frames` with the same
    options (slates and rankings expanded to pairs, ties and "both_bad" as set,
    same-system pairs dropped at level "system"), in the same order, and row ``j``
    of the covariates is :func:`prefstore.models.style.style_covariates` of the
    winner's and the loser's :func:`prefstore.models.style.style_features`
    (``data.winners[j]`` first). Each response's features are counted once from its
    ``text``; the texts compared are the responses as stored (for a multi-turn item
    the final assistant turn).

    Parameters
    ----------
    judgments, responses, level, kind, tie_policy, both_bad, strength_weights
        As in :func:`pairwise_from_frames`; ``responses`` also needs a ``text`` column.
    features : sequence of str, optional
        Which of :data:`prefstore.models.style.STYLE_FEATURES` to build (default all,
        in that order).

    Returns
    -------
    data : PairwiseData
        Identical to ``pairwise_from_frames(judgments, responses, ...)``.
    covariates : ndarray, shape (len(data), len(features))
        Unstandardised, winner minus loser.

    Raises
    ------
    InvalidInput
        As :func:`pairwise_from_frames`, or on an unknown feature or a missing
        ``text`` column.
    """
    from prefstore.models.style import STYLE_FEATURES, style_covariates, style_features

    _check_choice("level", level, LEVELS)
    features = tuple(STYLE_FEATURES if features is None else features)
    unknown = [f for f in features if f not in STYLE_FEATURES]
    if unknown or not features:
        raise InvalidInput(
            f'"features" must be a non-empty subset of {list(STYLE_FEATURES)}, got {list(features)}'
        )
    _check_columns(responses, "responses", (*_RESPONSE_COLUMNS, "text"))
    # Response level first: its rows are the system-level rows before same-system
    # pairs are dropped, in the same order, and its names are the response ids.
    by_response = pairwise_from_frames(
        judgments, responses, "response", kind, tie_policy, both_bad, strength_weights
    )
    cols = [STYLE_FEATURES.index(f) for f in features]
    used = np.array([int(n) for n in by_response.names], dtype=np.int64)
    ids = pd.Index(responses["response_id"].astype(np.int64))
    if not ids.is_unique:
        raise InvalidInput('"responses" must have unique response_id values')
    pos = ids.get_indexer(used)
    feats = style_features(responses["text"].to_numpy(dtype=object)[pos])[:, cols]
    covariates = style_covariates(feats[by_response.winners], feats[by_response.losers])
    if level == "response":
        return by_response, covariates
    system = responses["system"].to_numpy(dtype=object)[pos]
    missing = np.array([_missing(s) or s == "" for s in system], dtype=bool)
    if missing.any():
        k = int(np.flatnonzero(missing)[0])
        row = responses.iloc[pos[k]]
        raise InvalidInput(
            f"item {int(row['item_id'])}: response {int(row['idx'])} has no system; "
            f"use level='response' or fill in the system"
        )
    system = np.array([str(s) for s in system], dtype=object)
    sw, sl = system[by_response.winners], system[by_response.losers]
    # Same-system pairs say nothing about systems (see the module docstring).
    keep = sw != sl
    sw, sl = sw[keep], sl[keep]
    names = sorted(set(sw) | set(sl))
    rater_all = np.array(by_response.rater_names, dtype=object)[by_response.raters[keep]]
    raters = sorted(set(rater_all.tolist()))
    data = PairwiseData(
        winners=pd.Categorical(sw, categories=names).codes.astype(np.intp),
        losers=pd.Categorical(sl, categories=names).codes.astype(np.intp),
        n_items=len(names),
        ties=by_response.ties[keep],
        weights=by_response.weights[keep],
        raters=pd.Categorical(rater_all, categories=raters).codes.astype(np.intp),
        names=names,
        rater_names=raters or None,
        level="system",
    )
    return data, covariates[keep]


def hybrid_items_from_frames(
    judgments: pd.DataFrame,
    responses: pd.DataFrame,
    judge: str,
    both_bad: str = "tie",
):
    """Build the per-item labels of a hybrid (PPI++) leaderboard at the system level.

    One row per item of the frames with exactly two responses from two different
    systems (the others are left out), judged or not: the items are the population
    the judge was run on. Per item: the share of "response 0 won" averaged over the item's
    human judgments (choice 0: 1, choice 1: 0, tie: 0.5, a ranking by its first
    entry; "both_bad" as a tie unless ``both_bad="drop"``), and the same for the
    judgments of the LLM rater ``judge``. Strength weights are not used: the item is
    the unit. An item the judge has no stored judgment for (e.g. its output could
    not be parsed) has a missing judge label (NaN).

    Parameters
    ----------
    judgments, responses : DataFrame
        As in :func:`pairwise_from_frames`.
    judge : str
        Rater name of the LLM judge (``kind == "llm"``).
    both_bad : {"tie", "drop"}

    Returns
    -------
    prefstore.models.hybrid.HybridItems

    Raises
    ------
    InvalidInput
        If the judge has no judgment, on an unknown outcome, or bad frames.
    """
    from prefstore.models.hybrid import HybridItems

    _check_choice("both_bad", both_bad, BOTH_BAD_POLICIES)
    _check_columns(judgments, "judgments", _JUDGMENT_COLUMNS)
    _check_columns(responses, "responses", _RESPONSE_COLUMNS)
    resp = responses.sort_values(["item_id", "idx"], kind="stable")
    stats = resp.groupby("item_id")["idx"].agg(["size", "min", "max"])
    pairs = stats.index[(stats["size"] == 2) & (stats["min"] == 0) & (stats["max"] == 1)]
    resp = resp[resp["item_id"].isin(pairs)]
    system = resp["system"].astype(object).where(resp["system"].notna(), None)
    first = pd.Series(system[(resp["idx"] == 0).to_numpy()].to_numpy(),
                      index=resp.loc[resp["idx"] == 0, "item_id"].to_numpy())
    second = pd.Series(system[(resp["idx"] == 1).to_numpy()].to_numpy(),
                       index=resp.loc[resp["idx"] == 1, "item_id"].to_numpy())
    ok = first.notna() & second.reindex(first.index).notna()
    ok &= first != second.reindex(first.index)
    item_ids = first.index[ok.to_numpy()]

    j = judgments[judgments["item_id"].isin(item_ids)]
    outcome = j["outcome"].to_numpy(dtype=object)
    bad = ~np.isin(outcome, ("choice", "tie", "both_bad"))
    if bad.any():
        raise InvalidInput(f"judgment {j['id'].to_numpy()[bad.argmax()]}: outcome must be "
                           f"'choice', 'tie' or 'both_bad', got {outcome[bad.argmax()]!r}")
    choice = pd.to_numeric(j["choice"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    top = np.array([(r[0] if isinstance(r, (list, tuple)) and r else np.nan)
                    for r in (_as_ranking(v, jid) for v, jid in zip(j["ranking"], j["id"]))],
                   dtype=float) if j["ranking"].notna().any() else np.full(len(j), np.nan)
    pick = np.where(np.isnan(choice), top, choice)
    label = np.where(outcome == "choice", np.where(pick == 0, 1.0, np.where(pick == 1, 0.0,
                                                                                 np.nan)), 0.5)
    if both_bad == "drop":
        label = np.where(outcome == "both_bad", np.nan, label)
    frame = pd.DataFrame({"item_id": j["item_id"].to_numpy(), "label": label,
                          "human": (j["kind"] == "human").to_numpy(),
                          "judge": ((j["kind"] == "llm") & (j["rater"].astype(str) == str(judge)))
                          .to_numpy()})
    if not frame["judge"].any():
        raise InvalidInput(f'"judge" {judge!r} has no judgment on a two-response item')
    human = frame[frame["human"]].groupby("item_id")["label"].agg(["mean", "count"])
    judged = frame[frame["judge"]].groupby("item_id")["label"].mean()
    names = sorted(set(first[item_ids]) | set(second[item_ids]))
    return HybridItems(
        first=pd.Categorical(first[item_ids], categories=names).codes,
        second=pd.Categorical(second[item_ids], categories=names).codes,
        human=human["mean"].reindex(item_ids).to_numpy(dtype=float),
        judge=judged.reindex(item_ids).to_numpy(dtype=float),
        n_systems=len(names),
        names=names,
        n_human=human["count"].reindex(item_ids).fillna(0).to_numpy(dtype=np.intp),
        item_ids=np.asarray(item_ids),
    )


__all__ = [
    "PAIR_COUNT_COLUMNS",
    "STRENGTH_WEIGHTS",
    "hybrid_items_from_frames",
    "pair_count_deltas",
    "pairwise_from_counts",
    "pairwise_from_frames",
    "pairwise_style_from_frames",
    "rankings_from_frames",
]
