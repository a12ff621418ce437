"""The fold's pair rows and frames, pinned against the groupby and from_records they replaced."""

import numpy as np
import pandas as pd
import pytest

from prefstore.errors import InvalidInput
from prefstore.models.adapter import (
    PAIR_COUNT_COLUMNS,
    _signed_pair_rows,
    pair_count_deltas,
    pairwise_from_frames,
)
from prefstore.models.base import PairwiseData

LABELS = ["human 1", "human -1", "llm 1", "llm -1"]
# judgment_frames: the item with a response without a system.
NO_SYSTEM_ITEMS = [40]


def groupby_rows(data: PairwiseData) -> pd.DataFrame:
    """The straightforward pandas version: a groupby over the names' strings."""
    if len(data) == 0:
        return pd.DataFrame(columns=["kind", *PAIR_COUNT_COLUMNS])
    names = np.array(data.names, dtype=object)
    kind = np.array([lb.split(" ")[0] for lb in data.rater_names], dtype=object)[data.raters]
    sign = np.array([int(lb.split(" ")[1]) for lb in data.rater_names],
                    dtype=np.int64)[data.raters]
    win, lose = names[data.winners], names[data.losers]
    swap = (win > lose).astype(bool)
    lo, hi = np.where(swap, lose, win), np.where(swap, win, lose)
    tie = data.ties
    lo_won, hi_won = ~tie & ~swap, ~tie & swap
    w = data.weights * sign
    frame = pd.DataFrame({
        "kind": kind, "lo": lo, "hi": hi,
        "n_lo": sign * lo_won, "n_hi": sign * hi_won, "n_tie": sign * tie,
        "w_lo": w * lo_won, "w_hi": w * hi_won, "w_tie": w * tie,
    })
    out = frame.groupby(["kind", "lo", "hi"], sort=True, as_index=False).sum()
    changed = (out[list(PAIR_COUNT_COLUMNS[2:])] != 0).any(axis=1)
    return out[changed].reset_index(drop=True)


def random_data(rng: np.random.Generator, m: int, names: list[str],
                weights: tuple[float, ...]) -> PairwiseData:
    """Random rows with ties, take-backs, and rows that cancel their own pair exactly."""
    n = len(names)
    winners = rng.integers(0, n, m)
    losers = (winners + rng.integers(1, n, m)) % n
    ties = rng.random(m) < 0.2
    w = rng.choice(weights, m)
    raters = rng.integers(0, len(LABELS), m)
    # Every third row taken back, and every row of the pair (0, 1): the same row
    # again, its label's sign flipped.
    back = np.flatnonzero((np.arange(m) % 3 == 0) | (np.minimum(winners, losers) == 0)
                          & (np.maximum(winners, losers) == 1))
    flipped = raters[back] ^ 1
    return PairwiseData(
        winners=np.concatenate([winners, winners[back]]),
        losers=np.concatenate([losers, losers[back]]),
        n_items=n,
        ties=np.concatenate([ties, ties[back]]),
        weights=np.concatenate([w, w[back]]),
        raters=np.concatenate([raters, flipped]),
        names=names,
        rater_names=LABELS,
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weights", [(0.5, 1.0, 1.5, 2.0), (0.1, 0.7, 1.3, 2.9)],
                         ids=["dyadic", "inexact"])
@pytest.mark.parametrize("names", [
    # Response ids indexed as numbers: "10" < "9" < "99" as strings.
    [str(k) for k in (7, 9, 10, 11, 99, 100, 101, 1000)],
    # System names: mixed case and a non-ASCII one, sorted by code point.
    sorted(["alpha", "Beta", "gamma", "Émile", "delta"]),
], ids=["response", "system"])
def test_signed_pair_rows_equal_the_string_groupby(seed, weights, names):
    rng = np.random.default_rng(seed)
    data = random_data(rng, 400, names, weights)
    expected = groupby_rows(data)
    got = _signed_pair_rows(data)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    if weights[0] == 0.5:  # sums of halves are exact: the emptied pair is gone
        pair = sorted(names[:2])
        assert not ((got["lo"] == pair[0]) & (got["hi"] == pair[1])).any()
    assert (got["lo"].to_numpy(dtype=object) < got["hi"].to_numpy(dtype=object)).all()


def test_a_pair_whose_rows_all_cancel_is_left_out():
    data = PairwiseData(winners=[0, 0, 1], losers=[1, 1, 2], n_items=3,
                        ties=[False, False, True], weights=[1.5, 1.5, 1.0],
                        raters=[0, 1, 2], names=["10", "9", "8"],
                        rater_names=["human 1", "human -1", "llm 1"])
    got = _signed_pair_rows(data)
    pd.testing.assert_frame_equal(got, groupby_rows(data), check_exact=True)
    assert got[["kind", "lo", "hi"]].values.tolist() == [["llm", "8", "9"]]


def test_no_rows_give_an_empty_frame():
    data = PairwiseData(winners=[], losers=[], n_items=0)
    pd.testing.assert_frame_equal(_signed_pair_rows(data), groupby_rows(data))


def judgment_frames(rng: np.random.Generator, n: int):
    """Items of two responses and slates of three, from response ids 5..; signed judgments."""
    items, responses = [], []
    rid = 5
    for item in range(1, 41):
        size = 2 if item <= 30 else 3
        for idx in range(size):
            # Item 40 has a response without a system: it counts at the response level only.
            system = None if (item, idx) == (40, 2) else f"s{rng.integers(0, 12)}"
            responses.append((item, idx, system, rid))
            rid += 1
        items.append((item, size))
    rows = []
    for jid in range(1, n + 1):
        item, size = items[rng.integers(0, len(items))]
        pick = rng.random()
        choice, ranking = None, None
        if pick < 0.15:
            outcome = "tie"
        elif pick < 0.2:
            outcome = "both_bad"
        else:
            outcome = "choice"
            if size > 2 and pick < 0.5:
                ranking = [int(v) for v in rng.permutation(size)]
            else:
                choice = int(rng.integers(0, size))
        strength = None if rng.random() < 0.3 else int(rng.integers(0, 4))
        rows.append((jid, item, rng.choice(["human", "llm"]), outcome, choice,
                     None if ranking is None else str(ranking), strength, None,
                     int(rng.choice([1, -1]))))
    judgments = pd.DataFrame.from_records(rows, columns=[
        "id", "item_id", "kind", "outcome", "choice", "ranking", "strength", "supersedes",
        "sign"])
    return judgments, pd.DataFrame.from_records(
        responses, columns=["item_id", "idx", "system", "response_id"])


def reference_deltas(judgments: pd.DataFrame, responses: pd.DataFrame) -> dict:
    """Each level read on its own, as pair_count_deltas did: the system level first."""
    labelled = judgments.assign(rater=[f"{k} {1 if s > 0 else -1}" for k, s in
                                       zip(judgments["kind"], judgments["sign"])])
    no_system = judgments["item_id"].isin(NO_SYSTEM_ITEMS)
    deltas = {}
    for level in ("system", "response"):
        rows = labelled[~no_system] if level == "system" else labelled
        if rows.empty:
            deltas[level] = pd.DataFrame(columns=["kind", *PAIR_COUNT_COLUMNS])
            continue
        deltas[level] = groupby_rows(pairwise_from_frames(rows, responses, level=level))
    return deltas


def error_of(fn, *args):
    try:
        fn(*args)
    except InvalidInput as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("slates", [False, True], ids=["pairs", "slates"])
def test_pair_count_deltas_equal_each_level_read_on_its_own(seed, slates):
    rng = np.random.default_rng(seed)
    judgments, responses = judgment_frames(rng, 600)
    if not slates:  # the vectorized path of pairwise_from_frames
        judgments = judgments[judgments["item_id"] <= 30]
    deltas, totals = pair_count_deltas(judgments, responses)
    expected = reference_deltas(judgments, responses)
    for level in ("system", "response"):
        pd.testing.assert_frame_equal(deltas[level], expected[level], check_exact=True)
    no_system = judgments["item_id"].isin(NO_SYSTEM_ITEMS)
    for kind in ("human", "llm"):
        mine = judgments["kind"] == kind
        assert totals[kind] == {"n": int(judgments.loc[mine, "sign"].sum()),
                                "n_no_system": int(judgments.loc[mine & no_system, "sign"].sum())}


@pytest.mark.parametrize("which", ["no_system_only", "same_system_only", "none"])
def test_pair_count_deltas_of_judgments_with_no_system_rows(which):
    judgments, responses = judgment_frames(np.random.default_rng(5), 200)
    if which == "no_system_only":
        judgments = judgments[judgments["item_id"].isin(NO_SYSTEM_ITEMS)]
    elif which == "same_system_only":
        responses = responses.assign(system="same")
    else:
        judgments = judgments.iloc[:0]
    deltas, _ = pair_count_deltas(judgments, responses)
    expected = reference_deltas(judgments, responses)
    for level in ("system", "response"):
        pd.testing.assert_frame_equal(deltas[level], expected[level], check_exact=True)


@pytest.mark.parametrize("bad", [
    # (judgment id, column, value): the first is on the item without a system.
    [(3, "choice", 7), (9, "choice", 5)],
    [(3, "outcome", "maybe"), (9, "strength", 9)],
    [(3, "choice", 7)],
    [(9, "outcome", "maybe")],
], ids=["both", "outcome-strength", "no-system-item-only", "other-item-only"])
def test_pair_count_deltas_fail_as_each_level_read_on_its_own(bad):
    judgments, responses = judgment_frames(np.random.default_rng(6), 40)
    judgments = judgments.copy()
    judgments.loc[judgments["id"] == 3, ["item_id", "outcome", "ranking"]] = [40, "choice", None]
    judgments.loc[judgments["id"] == 9, ["item_id", "outcome", "ranking"]] = [12, "choice", None]
    judgments["choice"] = judgments["choice"].astype(object)
    judgments["outcome"] = judgments["outcome"].astype(object)
    for jid, column, value in bad:
        judgments.loc[judgments["id"] == jid, column] = value
    expected = error_of(reference_deltas, judgments, responses)
    assert expected is not None
    assert error_of(pair_count_deltas, judgments, responses) == expected


class _Fetched:
    """A query result as the store's handles give it: only ``fetchall`` is read."""

    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return list(self.rows)


@pytest.mark.parametrize("rows", [
    # Ties without a choice, a change (supersedes), SQLite's JSON text, no strength at all.
    [(1, 10, "human", "choice", 1, None, 2, None), (2, 10, "llm", "tie", None, None, None, 1),
     (3, 11, "human", "choice", None, "[2, 0, 1]", None, None)],
    # PostgreSQL's JSONB ranking comes back as a list; equal lists must stay lists.
    [(4, 12, "human", "choice", None, [1, 0], 3, None), (5, 12, "llm", "both_bad", None,
                                                         None, 0, 4),
     (6, 13, "human", "choice", None, [0, 1], 1, None)],
    [(7, 14, "llm", "choice", 0, None, 1, None)],
    [],
], ids=["sqlite", "postgres", "one", "none"])
def test_judgment_frames_hold_the_values_from_records_gives(rows):
    from prefstore.store.pair_counts import _FRAME_COLUMNS, _judgment_frame

    got = _judgment_frame(_Fetched(rows), -1)
    expected = pd.DataFrame.from_records(rows, columns=_FRAME_COLUMNS).assign(sign=-1)
    assert list(got.columns) == [*_FRAME_COLUMNS, "sign"]
    assert len(got) == len(expected)
    for column in got.columns:
        for a, b in zip(got[column], expected[column]):
            if isinstance(b, list) or not pd.isna(b):
                assert a == b and type(a) is type(b), (column, a, b)
            else:  # missing: None or NaN, both read as missing by the adapter
                assert pd.isna(a), (column, a, b)
        # Text stays Python objects; numbers keep from_records' dtypes.
        if column not in ("kind", "outcome", "ranking"):
            assert got[column].dtype == expected[column].dtype, column
