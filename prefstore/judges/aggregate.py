"""Turn per-display-order label probabilities into one verdict: shared by the generative
and the server judge.

Each display order of an item gives the probabilities of its labels (the letters
shown, and "tie" when allowed). A pair is judged in both orders and the two are
averaged, which cancels position bias (Zheng et al. 2023, "Judging LLM-as-a-judge");
a slate either judges every pair (a Bradley–Terry fit of the soft wins, Bradley &
Terry 1952, Hunter 2004) or asks for the best over seeded shuffles. ``scored`` is a
list of ``(request, probs)`` where ``request`` has ``order`` (``order[j]`` is the
response shown at position ``j``) and ``truncated``.
"""

import math
import random
from collections.abc import Sequence

from prefstore.errors import NotConverged
from prefstore.judges.base import TIE_LABEL, JudgeResult, margin


def listwise_orders(k: int, shuffles: int, seed: int) -> list[list[int]]:
    """Return ``shuffles`` distinct seeded display orders of ``k`` responses.

    Uses ``random.Random(seed)``, so every item with ``k`` responses sees the same
    orders, whatever else is in the batch.
    """
    rng = random.Random(seed)
    wanted = min(shuffles, math.factorial(k))
    orders = []
    while len(orders) < wanted:
        order = list(range(k))
        rng.shuffle(order)
        if order not in orders:
            orders.append(order)
    return orders


def _to_response_space(order, display_probs, k):
    """Map label probabilities (display positions) to response indices."""
    probs = [0.0] * k
    for pos, response in enumerate(order):
        probs[response] = display_probs[pos]
    return probs


def _verdict(probs, p_tie=None):
    """Return the argmax response index, or "tie" when the tie probability is highest."""
    best = max(range(len(probs)), key=lambda i: (probs[i], -i))
    if p_tie is not None and p_tie > probs[best]:
        return TIE_LABEL
    return best


def aggregate_pair(scored, allow_tie: bool) -> JudgeResult:
    """Average a pair's two display orders into one verdict (with P(tie) when allowed)."""
    per_order = []
    verdicts = []
    for request, display in scored:
        response = _to_response_space(request.order, display, 2)
        tie = display[2] if allow_tie else None
        per_order.append((response, tie))
        verdicts.append(_verdict(response, tie))
    probs = [sum(r[i] for r, _ in per_order) / len(per_order) for i in range(2)]
    p_tie = sum(t for _, t in per_order) / len(per_order) if allow_tie else None
    return JudgeResult(
        probs=probs,
        choice=_verdict(probs, p_tie),
        ranking=None,
        confidence=margin(probs + ([p_tie] if allow_tie else [])),
        swap_consistent=len(set(verdicts)) == 1,
        truncated=any(r.truncated for r, _ in scored),
        orders=[list(r.order) for r, _ in scored],
        per_order_probs=[list(p) for _, p in scored],
        p_tie=p_tie,
    )


def aggregate_pairs_slate(scored, k: int, allow_tie: bool) -> JudgeResult:
    """Turn every pair's averaged verdict into a ranking and a probability of being best.

    A tie counts half a win each. The ranking orders responses by summed win
    probability (a soft Copeland score); the probabilities come from a
    Bradley–Terry fit of the soft wins (Bradley & Terry 1952, MM of Hunter 2004),
    whose order agrees with summed wins in a full round robin.
    """
    wins = [[0.0] * k for _ in range(k)]
    verdicts = {}
    for request, display in scored:
        a, b = request.order
        tie = display[2] if allow_tie else 0.0
        # Each unordered pair is seen twice, so each order contributes half.
        wins[a][b] += (display[0] + tie / 2) / 2
        wins[b][a] += (display[1] + tie / 2) / 2
        pair = (min(a, b), max(a, b))
        response = _to_response_space([0, 1] if a < b else [1, 0], display, 2)
        verdicts.setdefault(pair, set()).add(_verdict(response, tie if allow_tie else None))
    summed = [sum(row) for row in wins]
    strengths = bradley_terry_soft(wins)
    total = sum(strengths)
    probs = [s / total for s in strengths]
    ranking = sorted(range(k), key=lambda i: (-summed[i], i))
    logs = [math.log(s) for s in strengths]
    mean_log = sum(logs) / k
    return JudgeResult(
        probs=probs,
        choice=ranking[0],
        ranking=ranking,
        confidence=margin(probs),
        swap_consistent=all(len(v) == 1 for v in verdicts.values()),
        truncated=any(r.truncated for r, _ in scored),
        orders=[list(r.order) for r, _ in scored],
        per_order_probs=[list(p) for _, p in scored],
        scores=[x - mean_log for x in logs],
    )


def bradley_terry_soft(
    wins: Sequence[Sequence[float]], tol: float = 1e-10, max_iter: int = 10_000
) -> list[float]:
    """Fit Bradley–Terry strengths to a round robin of soft (fractional) wins.

    ``wins[i][j]`` is the share of the i-vs-j comparison won by ``i``
    (``wins[i][j] + wins[j][i] == 1``). Uses Hunter's (2004) MM updates and returns
    strengths summing to 1.

    Raises
    ------
    NotConverged
        when the updates do not settle within ``max_iter`` iterations.
    """
    k = len(wins)
    # Clip so a certain loss never pins a strength at 0 (the MLE would not exist).
    eps = 1e-9
    w = [
        [min(max(wins[i][j], eps), 1 - eps) if i != j else 0.0 for j in range(k)] for i in range(k)
    ]
    won = [sum(row) for row in w]
    pi = [1.0 / k] * k
    for _ in range(max_iter):
        new = [won[i] / sum(1.0 / (pi[i] + pi[j]) for j in range(k) if j != i) for i in range(k)]
        total = sum(new)
        new = [x / total for x in new]
        if max(abs(a - b) for a, b in zip(new, pi, strict=True)) < tol:
            return new
        pi = new
    raise NotConverged(f"Bradley–Terry fit of {k} responses did not converge in {max_iter} steps")


def aggregate_listwise(scored, k: int) -> JudgeResult:
    """Average the best-of-k probabilities of every shuffle, mapped back to the responses."""
    per_order = [_to_response_space(r.order, display, k) for r, display in scored]
    probs = [sum(p[i] for p in per_order) / len(per_order) for i in range(k)]
    ranking = sorted(range(k), key=lambda i: (-probs[i], i))
    winners = {_verdict(p) for p in per_order}
    return JudgeResult(
        probs=probs,
        choice=ranking[0],
        ranking=ranking,
        confidence=margin(probs),
        swap_consistent=(len(winners) == 1) if len(per_order) > 1 else None,
        truncated=any(r.truncated for r, _ in scored),
        orders=[list(r.order) for r, _ in scored],
        per_order_probs=[list(p) for _, p in scored],
    )
