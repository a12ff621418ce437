"""Bulk synthetic data for the benchmarks: items, responses and human judgments."""

from __future__ import annotations

import random

from prefstore.store.connection import now_iso, write
from prefstore.store.progress import lock_project_counts
from prefstore.store.projects import bump_queue_epoch, recount_queue_counts


def seed_synthetic(db, project_id: int, *, n_items: int, n_judgments: int,
                   n_raters: int = 100, seed: int = 0, batch: int = 50_000,
                   n_systems: int = 2) -> None:
    """Bulk-fill a project with synthetic pairwise items and human judgments.

    Judgments go to items round-robin from the first item, ``n_judgments //
    n_items`` (+1) per item, each by a different synthetic rater, with
    ``n_human`` kept in step. Everything is written with ``executemany``.
    Item ``i`` compares systems ``s0`` and ``s1``, or with ``n_systems`` > 2 the
    ordered pair ``i mod n (n - 1)`` of ``s0 .. s{n-1}``, so every pair is met.
    """
    rng = random.Random(seed)
    created = now_iso()
    with write(db):
        lock_project_counts(db, project_id, exclusive=True)
        raters = [db.execute(
            "INSERT INTO raters (name, kind, role, active, created_at) "
            "VALUES (?, 'human', 'rater', 1, ?) RETURNING id",
            [f"synthetic-{project_id}-{k}", created]).fetchone()[0] for k in range(n_raters)]
        per_item = [n_judgments // n_items + (1 if i < n_judgments % n_items else 0)
                    for i in range(n_items)]
        item_ids: list[int] = []
        for start in range(0, n_items, batch):
            chunk = range(start, min(start + batch, n_items))
            first = len(item_ids)
            for i in chunk:
                item_ids.append(db.execute(
                    "INSERT INTO items (project_id, external_id, prompt, metadata, is_gold, "
                    "queue_rank, n_human, created_at) VALUES (?, ?, ?, '{}', 0, 1, ?, ?) "
                    "RETURNING id",
                    [project_id, f"s{i}", f"synthetic prompt {i}", per_item[i],
                     created]).fetchone()[0])
            db.executemany(
                "INSERT INTO responses (item_id, idx, text, system) VALUES (?, ?, ?, ?)",
                [(item_ids[first + (i - start)], k, f"synthetic response {i}.{k}", system)
                 for i in chunk for k, system in enumerate(_systems(i, n_systems))])
        rows = []
        for i in range(n_items):
            for n in range(per_item[i]):
                choice = rng.randrange(2)
                rows.append((item_ids[i], raters[(i + n) % n_raters], "[0, 1]", choice,
                             1 + rng.randrange(3), f"seed-{item_ids[i]}-{n}", created))
                if len(rows) >= batch:
                    _insert_judgments(db, rows)
                    rows = []
        _insert_judgments(db, rows)
        bump_queue_epoch(db, project_id)
        recount_queue_counts(db, project_id)


def _systems(i: int, n_systems: int) -> tuple[str, str]:
    if n_systems <= 2:
        return "s0", "s1"
    pair = i % (n_systems * (n_systems - 1))
    first, second = divmod(pair, n_systems - 1)
    return f"s{first}", f"s{second + (second >= first)}"


def _insert_judgments(db, rows: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, "
        "strength, metadata, time_ms, submission_id, created_at) "
        "VALUES (?, ?, 'human', ?, 'choice', ?, ?, '{}', 1000, ?, ?)", rows)
