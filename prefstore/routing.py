"""Route each item to humans, to the LLM judge, or to both, under a human budget.

A logistic-regression predictor of "the judge agrees with the human
consensus" is trained on items that have both labels, using only features
that exist before any human sees an item: the judge's verdict, confidence and
swap consistency, response lengths, response similarity, prompt length and
category. Items with the lowest predicted agreement go to humans first, up to
the budget; a calibration share of the budget goes to ``both`` so agreement
keeps being measured.

The judge must label an item before it can be routed (its verdict is a
feature), so the worker annotates every item with the judge and routing then
decides whose label is final.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from prefstore.errors import InvalidInput, NotFound

TIE = -1
MIN_TRAINING_ITEMS = 20
MAX_CATEGORIES = 10
N_RANDOM_SEEDS = 20
BASE_FEATURES = (
    "judge_tie",
    "judge_confidence",
    "judge_confidence_missing",
    "judge_swap_consistent",
    "judge_chose_longer",
    "length_diff_rel",
    "log_length_ratio",
    "jaccard_max",
    "ratio_max",
    "prompt_log_length",
)


# --------------------------------------------------------------------------
# Labels


def judgment_labels(judgments: pd.DataFrame) -> pd.Series:
    """Return each judgment's label: the chosen response index, or TIE (tie, both-bad)."""
    choice = judgments["choice"]
    is_choice = judgments["outcome"].eq("choice") & choice.notna()
    return pd.Series(np.where(is_choice, choice.fillna(TIE).astype(int), TIE),
                     index=judgments.index, dtype=int)


def human_majority(judgments: pd.DataFrame) -> pd.Series:
    """Return the strict-majority label per item over human judgments (TIE if none).

    A rater's latest judgment of an item counts once.
    """
    humans = judgments[judgments["kind"] == "human"]
    if humans.empty:
        return pd.Series(dtype=int)
    latest = humans.sort_values("id").drop_duplicates(["item_id", "rater"], keep="last")
    labels = judgment_labels(latest)
    counts = pd.crosstab(latest["item_id"], labels)
    top = counts.max(axis=1)
    best = counts.idxmax(axis=1)
    n = counts.sum(axis=1)
    return pd.Series(np.where(top * 2 > n, best, TIE), index=counts.index, dtype=int)


def judge_frame(judgments: pd.DataFrame, judge: str) -> pd.DataFrame:
    """Return the judge's latest label per item with its confidence and swap consistency."""
    rows = judgments[judgments["rater"] == judge].sort_values("id")
    rows = rows.drop_duplicates("item_id", keep="last")
    meta = rows["metadata"].tolist()
    confidence = [m.get("confidence") if isinstance(m, dict) else None for m in meta]
    swap = [m.get("swap_consistent") if isinstance(m, dict) else None for m in meta]
    return pd.DataFrame({
        "label": judgment_labels(rows).to_numpy(),
        "confidence": pd.to_numeric(pd.Series(confidence, dtype=object), errors="coerce")
        .to_numpy(dtype=float),
        "swap_consistent": [np.nan if s is None else float(bool(s)) for s in swap],
    }, index=pd.Index(rows["item_id"].to_numpy(), name="item_id"))


def default_judge(judgments: pd.DataFrame) -> str | None:
    """Return the LLM rater with the most judgments, or None when there is none."""
    llm = judgments[judgments["kind"] == "llm"]
    if llm.empty:
        return None
    counts = llm.groupby("rater").size()
    return str(counts.sort_values(ascending=False, kind="stable").index[0])


# --------------------------------------------------------------------------
# Features


def item_features(items: pd.DataFrame, responses: pd.DataFrame, judge: pd.DataFrame, *,
                  use_embeddings: bool = False) -> pd.DataFrame:
    """Return the pre-human feature matrix, one row per item (index item_id).

    ``responses`` needs ``item_id, idx, text``; ``items`` needs
    ``item_id, category, prompt_length``; ``judge`` is :func:`judge_frame`.
    Slate items use their two longest-apart responses for the length features
    and all pairs for similarity.
    """
    from prefstore.similarity import embedding_similarity, lexical_similarity

    texts = responses.sort_values(["item_id", "idx"]).groupby("item_id")["text"].apply(list)
    rows = []
    pairs = []
    for item_id, category, prompt_length in zip(items["item_id"], items["category"],
                                                items["prompt_length"]):
        resp = texts.get(item_id, [])
        if len(resp) < 2:
            raise InvalidInput(f"item {item_id}: needs at least 2 responses to be routed")
        lengths = np.array([len(t) for t in resp], dtype=float)
        lo, hi = lengths.min(), lengths.max()
        verdict = judge.loc[item_id] if item_id in judge.index else None
        label = int(verdict["label"]) if verdict is not None else None
        if label is None or label == TIE:
            chose_longer = 0.5
        else:
            chose_longer = float(lengths[label] == hi) if hi > lo else 0.5
        confidence = verdict["confidence"] if verdict is not None else np.nan
        swap = verdict["swap_consistent"] if verdict is not None else np.nan
        jaccard = max(lexical_similarity(a, b) for k, a in enumerate(resp) for b in resp[k + 1:])
        ratio = max(lexical_similarity(a[:4000], b[:4000], method="ratio")
                    for k, a in enumerate(resp) for b in resp[k + 1:])
        if use_embeddings:
            pairs.append((resp[int(lengths.argmax())], resp[int(lengths.argmin())]))
        rows.append({
            "item_id": item_id,
            "judge_tie": float(label == TIE),
            "judge_confidence": 0.5 if math.isnan(confidence) else float(confidence),
            "judge_confidence_missing": float(math.isnan(confidence)),
            "judge_swap_consistent": 0.5 if math.isnan(swap) else float(swap),
            "judge_chose_longer": chose_longer,
            "length_diff_rel": float((hi - lo) / max(hi + lo, 1.0)),
            "log_length_ratio": float(math.log((hi + 1) / (lo + 1))),
            "jaccard_max": jaccard,
            "ratio_max": ratio,
            "prompt_log_length": math.log1p(float(prompt_length or 0)),
            "category": category if isinstance(category, str) else "",
        })
    frame = pd.DataFrame(rows).set_index("item_id")
    if use_embeddings and pairs:
        sims = embedding_similarity(pairs)
        if sims is not None:
            frame["embedding_similarity"] = sims
    top = frame["category"].value_counts().head(MAX_CATEGORIES).index
    for name in sorted(c for c in top if c):
        frame[f"category={name}"] = (frame["category"] == name).astype(float)
    return frame.drop(columns=["category"])


# --------------------------------------------------------------------------
# The agreement predictor and the budget


def fit_agreement_model(features: pd.DataFrame, agrees: np.ndarray, *, seed: int = 0):
    """Fit P(judge agrees with humans) by L2-regularized logistic regression.

    Returns a fitted scikit-learn pipeline, or None when the target has one
    class only (nothing to learn; callers fall back to the judge's confidence).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    agrees = np.asarray(agrees, dtype=int)
    if len(agrees) < MIN_TRAINING_ITEMS or len(np.unique(agrees)) < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000,
                                                               random_state=seed))
    model.fit(features.to_numpy(dtype=float), agrees)
    return model


def predict_agreement(model, features: pd.DataFrame) -> np.ndarray:
    """Return predicted agreement per row; without a model, a confidence heuristic."""
    if model is not None:
        return model.predict_proba(features.to_numpy(dtype=float))[:, 1]
    # A judge that hedges (low confidence, a tie, flips with order) is less trustworthy.
    return (features["judge_confidence"].to_numpy() * 0.5
            + features["judge_swap_consistent"].to_numpy() * 0.25
            + (1 - features["judge_tie"].to_numpy()) * 0.25)


def budget_count(budget: float | int | None, n_items: int) -> int:
    """Return the number of items humans label: a float in [0, 1] is a fraction, an int a count.

    ``None`` means no budget: every item goes to humans.
    """
    if budget is None:
        return n_items
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
        raise InvalidInput(f"human budget must be a fraction in [0, 1] or a count, got {budget!r}")
    if isinstance(budget, float):
        if budget > 1:
            if not budget.is_integer():
                raise InvalidInput(f"human budget {budget!r} is neither a fraction in [0, 1] "
                                   "nor a whole count")
            return min(int(budget), n_items)
        return int(round(budget * n_items))
    return min(budget, n_items)


def route(predicted: np.ndarray, n_human: int, *, calibration_fraction: float = 0.0,
          seed: int = 0) -> np.ndarray:
    """Return a decision per item: lowest predicted agreement to humans, up to ``n_human``.

    ``round(calibration_fraction * n_human)`` of the budget goes to ``both``:
    random items the judge is trusted on, so its agreement keeps being
    measured. Exactly ``n_human`` items get a human label.
    """
    predicted = np.asarray(predicted, dtype=float)
    n = len(predicted)
    if not 0 <= n_human <= n:
        raise InvalidInput(f"n_human must be in 0..{n}, got {n_human}")
    n_both = int(round(calibration_fraction * n_human))
    order = np.argsort(predicted, kind="stable")
    decisions = np.full(n, "llm", dtype=object)
    decisions[order[: n_human - n_both]] = "human"
    rest = order[n_human - n_both:]
    if n_both:
        rng = np.random.default_rng(seed)
        decisions[rng.choice(rest, size=n_both, replace=False)] = "both"
    return decisions


def information_priority(p_win: np.ndarray) -> np.ndarray:
    """Return the expected information of a comparison, p(1 - p) (max 0.25 at p = 0.5)."""
    p_win = np.asarray(p_win, dtype=float)
    return p_win * (1 - p_win)


# --------------------------------------------------------------------------
# Store adapters


def _frames(db, project: str | int):
    from prefstore import store

    proj = store.get_project(db, project)
    return (proj, store.judgments_frame(db, proj["id"]),
            store.responses_frame(db, proj["id"], with_text=True),
            store.items_frame(db, proj["id"]))


def _system_win_probability(db, project_id: int, responses: pd.DataFrame,
                            item_ids: list[int]) -> np.ndarray | None:
    """P(response 0 beats response 1) from the latest system-level BT fit, if any."""
    from prefstore import store

    fit = store.latest_fit(db, project_id, model="bt", level="system", kind="all")
    if fit is None:
        return None
    scores = fit["result"].get("scores", {})
    systems = responses.sort_values(["item_id", "idx"]).groupby("item_id")["system"].apply(list)
    out = []
    for item_id in item_ids:
        names = systems.get(item_id, [])
        if len(names) < 2 or names[0] not in scores or names[1] not in scores:
            out.append(0.5)
            continue
        out.append(1 / (1 + math.exp(scores[names[1]] - scores[names[0]])))
    return np.array(out)


def refresh_routing(db, project: str | int, *, judge: str | None = None,
                    active: bool = False, use_embeddings: bool = False, seed: int = 0) -> dict:
    """Recompute and store the routing decisions of a project; return a summary.

    With no judge labels yet, every item goes to humans. With ``active``, the
    human items are ordered by the expected information of their comparison
    under the latest system-level Bradley-Terry fit.
    """
    from prefstore import store

    proj, judgments, responses, items = _frames(db, project)
    judge = judge or default_judge(judgments)
    settings = proj["settings"]
    n = len(items)
    if judge is None:
        decisions = [{"item_id": int(i), "decision": "human", "predicted_agreement": None,
                      "priority": 0.0, "features": {}} for i in items["item_id"]]
        store.save_routing(db, proj["id"], decisions)
        return {"project": proj["name"], "judge": None, "items": n, "human": n, "llm": 0,
                "both": 0, "trained_on": 0, "reason": "no judge labels yet"}
    if judge not in set(judgments.loc[judgments["kind"] == "llm", "rater"]):
        raise NotFound(f"judge {judge!r} has no llm judgments in project {proj['name']!r}")
    verdicts = judge_frame(judgments, judge)
    features = item_features(items, responses, verdicts, use_embeddings=use_embeddings)
    majority = human_majority(judgments)
    trained = [i for i in features.index if i in majority.index and i in verdicts.index]
    agrees = (verdicts.loc[trained, "label"].to_numpy() == majority.loc[trained].to_numpy())
    model = fit_agreement_model(features.loc[trained], agrees, seed=seed)
    predicted = predict_agreement(model, features)
    # An item the judge has not labelled cannot be left to the judge.
    unlabelled = ~features.index.isin(verdicts.index)
    predicted = np.where(unlabelled, -1.0, predicted)
    n_human = budget_count(settings.human_budget, n)
    decided = route(predicted, n_human, calibration_fraction=settings.calibration_fraction,
                    seed=seed)
    priority = 1 - predicted
    if active:
        p_win = _system_win_probability(db, proj["id"], responses, list(features.index))
        if p_win is not None:
            priority = information_priority(p_win)
    columns = list(features.columns)
    values = features.to_numpy(dtype=float)
    rows = [{"item_id": int(item_id), "decision": str(decision),
             "predicted_agreement": float(p) if p >= 0 else None,
             "priority": float(pr), "features": dict(zip(columns, map(float, v)))}
            for item_id, decision, p, pr, v in zip(features.index, decided, predicted,
                                                  priority, values)]
    store.save_routing(db, proj["id"], rows)
    counts = pd.Series(decided).value_counts()
    return {"project": proj["name"], "judge": judge, "items": n,
            "human": int(counts.get("human", 0)), "llm": int(counts.get("llm", 0)),
            "both": int(counts.get("both", 0)), "trained_on": len(trained),
            "model": "logistic" if model is not None else "confidence-heuristic"}


def evaluate_routing(db, project: str | int, *, judge: str,
                     budgets: tuple[float, ...] = (0.1, 0.25, 0.5), seed: int = 0,
                     folds: int = 5, use_embeddings: bool = False) -> dict[str, Any]:
    """Simulate labelling with the router against random routing.

    The gold label of an item is its human strict majority. At each budget,
    the router, cross-fitted so it never trains on the items it routes, picks
    which items keep their human label; the rest take the judge's label.
    ``random_accuracy`` averages :data:`N_RANDOM_SEEDS` random picks.
    """
    from sklearn.model_selection import StratifiedKFold

    proj, judgments, responses, items = _frames(db, project)
    if judge not in set(judgments.loc[judgments["kind"] == "llm", "rater"]):
        raise NotFound(f"judge {judge!r} has no llm judgments in project {proj['name']!r}")
    verdicts = judge_frame(judgments, judge)
    majority = human_majority(judgments)
    both = sorted(set(verdicts.index) & set(majority.index))
    if len(both) < folds * 2:
        raise InvalidInput(f"evaluate-routing needs items with both human and judge labels; "
                           f"project {proj['name']!r} has {len(both)}")
    items = items[items["item_id"].isin(both)]
    features = item_features(items, responses, verdicts, use_embeddings=use_embeddings)
    gold = majority.loc[features.index].to_numpy()
    correct = verdicts.loc[features.index, "label"].to_numpy() == gold
    predicted = np.zeros(len(features))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, correct):
        model = fit_agreement_model(features.iloc[train], correct[train], seed=seed)
        predicted[test] = predict_agreement(model, features.iloc[test])
    n = len(features)
    router, random_acc = [], []
    for budget in budgets:
        k = budget_count(budget, n)
        human = np.argsort(predicted, kind="stable")[:k]
        router.append(float((correct.sum() + (~correct[human]).sum()) / n))
        accs = []
        for s in range(N_RANDOM_SEEDS):
            pick = np.random.default_rng(seed + s).choice(n, size=k, replace=False)
            accs.append((correct.sum() + (~correct[pick]).sum()) / n)
        random_acc.append(float(np.mean(accs)))
    return {"project": proj["name"], "judge": judge, "budgets": list(budgets),
            "router_accuracy": router, "random_accuracy": random_acc,
            "llm_only_accuracy": float(correct.mean()), "n_items": n, "folds": folds,
            "seed": seed, "features": list(features.columns)}


# --------------------------------------------------------------------------
# Calibration of the predicted agreement (the Routing dashboard)

CALIBRATION_BINS = 10
REPORT = "routing"


def realized_agreement(judgments: pd.DataFrame, judge: str) -> pd.Series:
    """Return, per item with both labels, whether the judge matched the human strict majority.

    Index ``item_id``; values 1.0 (agrees) or 0.0. Tie and both-bad count as TIE
    on both sides, as in :func:`human_majority`.
    """
    majority = human_majority(judgments)
    verdicts = judge_frame(judgments, judge)["label"]
    both = majority.index.intersection(verdicts.index)
    return (verdicts.loc[both] == majority.loc[both]).astype(float).sort_index()


def calibration_bins(predicted: Any, realized: Any, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """Bin predicted agreement into equal-width bins on [0, 1] and compare with the realized rate.

    Parameters
    ----------
    predicted : array_like of float
        Predicted probability that the judge agrees with humans, per item.
    realized : array_like of float
        1.0 where it did, 0.0 where it did not; same length.
    n_bins : int
        Number of bins; a prediction of exactly 1 falls in the last bin.

    Returns
    -------
    list of dict
        One ``{"bin_low", "bin_high", "n", "mean_predicted", "realized"}`` per
        non-empty bin, in order.
    """
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(realized, dtype=float)
    if p.shape != y.shape:
        raise InvalidInput(f'"predicted" and "realized" must have the same length, got '
                           f"{p.size} and {y.size}")
    if int(n_bins) < 1:
        raise InvalidInput(f'"n_bins" must be at least 1, got {n_bins}')
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    which = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            out.append({"bin_low": b / n_bins, "bin_high": (b + 1) / n_bins, "n": int(mask.sum()),
                        "mean_predicted": float(p[mask].mean()),
                        "realized": float(y[mask].mean())})
    return out


def routing_report(db, project: str | int, *, judge: str | None = None,
                   n_bins: int = CALIBRATION_BINS) -> dict:
    """Return the decisions' counts, the realized agreement per item and the calibration bins.

    ``realized`` maps item id (as text) to 1.0/0.0 for items with both labels;
    ``bins`` come from :func:`calibration_bins` over those of them that have a
    predicted agreement. The predictor was trained on such items, so the
    curve shows in-sample calibration.
    """
    from prefstore import store

    proj = store.get_project(db, project)
    decisions = store.routing_frame(db, proj["id"])
    judgments = store.judgments_frame(db, proj["id"])
    judge = judge or default_judge(judgments)
    realized = realized_agreement(judgments, judge) if judge else pd.Series(dtype=float)
    predicted = decisions.set_index("item_id")["predicted_agreement"]
    both = predicted.dropna().index.intersection(realized.index)
    y, p = realized.loc[both].to_numpy(), predicted.loc[both].to_numpy(dtype=float)
    return {
        "project": proj["name"],
        "judge": judge,
        "n_decisions": int(len(decisions)),
        "decisions": {str(k): int(v) for k, v in decisions["decision"].value_counts().items()},
        "n_realized": int(len(realized)),
        "realized": {str(int(k)): float(v) for k, v in realized.items()},
        "bins": calibration_bins(p, y, n_bins),
        "brier": float(np.mean((p - y) ** 2)) if len(both) else None,
        "n_calibration": int(len(both)),
    }


def refresh_routing_report(db, project: str | int, *, judge: str | None = None) -> int:
    """Compute and store :func:`routing_report` (``name="routing"``); return its id."""
    import time

    from prefstore import store

    proj = store.get_project(db, project)
    start = time.perf_counter()
    report = routing_report(db, proj["id"], judge=judge)
    return store.save_report(db, proj["id"], name=REPORT, kind="all", result=report,
                               n_judgments=store.count_judgments(db, proj["id"]),
                               seconds=time.perf_counter() - start)


def decisions_table(decisions: pd.DataFrame, realized: dict[str, float]) -> pd.DataFrame:
    """Return the decisions with a ``realized_agreement`` column (NaN where unknown)."""
    columns = ["item_id", "external_id", "decision", "predicted_agreement", "priority"]
    out = decisions[[c for c in columns if c in decisions]].copy()
    out["realized_agreement"] = [realized.get(str(int(i)), np.nan) for i in out["item_id"]]
    return out
