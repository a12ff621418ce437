"""The demo projects that load on first run, so a newcomer lands on a working page."""

from __future__ import annotations

from importlib import resources

from prefstore import importing, store

DEMO_GUIDELINES = """\
**Which response is better for the person asking?**

- Prefer answers that are *correct* first, then *helpful*, then *well written*.
- A confident wrong answer is worse than a short right one.
- Refusing a harmful request is the right answer.
- Use **Tie** when neither is better, and **Both bad** when neither is acceptable.
"""

DEMO_PROJECTS = (
    ("demo", "demo_pairwise.jsonl", "pairwise", {
        "raters_per_item": 3,
        "strength_scale": True,
        "aspects": ["helpfulness", "correctness"],
        "reason_tags": ["more accurate", "more complete", "clearer", "safer"],
        "edits_allowed": True,
        "guidelines": DEMO_GUIDELINES,
        "gold_rate": 0.05,
    }),
    ("demo-slate", "demo_slate.jsonl", "slate", {
        "raters_per_item": 3,
        "ranking_mode": "full",
        "guidelines": DEMO_GUIDELINES,
        "gold_rate": 0.0,
    }),
)


def ensure_demo(db) -> list[str]:
    """Load the demo projects into an empty store; return the names created."""
    if store.list_projects(db):
        return []
    created = []
    for name, filename, kind, settings in DEMO_PROJECTS:
        data = resources.files("prefstore.data").joinpath(filename).read_bytes()
        importing.import_items(db, data, name, kind=kind, fmt="jsonl", settings=settings,
                               actor="demo")
        created.append(name)
    return created
