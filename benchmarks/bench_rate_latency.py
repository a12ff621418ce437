"""Time a rater's browser from one item's submit to the next item being ready to answer.

A real Streamlit server and Debian's chromium. The rater opens their link and
rates items with the keyboard, as people who rate all day do:

- pairwise (the default settings, strength scale on): a step key (2, "A clearly
  better"), then S submits;
- slate (pick the best of 3): the key 1 ("1 is best") submits at once.

The clock starts at the submitting key press and stops when the next item's
prompt is visible and Streamlit has finished the script run (the buttons
answer from then on). Each case: one warm-up item, then ``--items`` timed ones;
the median is reported with the min and max. Goal: median < 0.5 s on a quiet
machine. The load average is printed with the figures.

    python benchmarks/bench_rate_latency.py [--items 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.app_server import app_server  # noqa: E402
from prefstore import store  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

GOAL_S = 0.5
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def seed(path: Path, n_items: int) -> str:
    """A pairwise and a 3-response slate project of ``n_items`` each; one rater's token."""
    db = store.connect(path)
    rater, token = store.create_rater(db, "latency")
    for name, kind, k in (("pairs", "pairwise", 2), ("slates", "slate", 3)):
        settings = {"gold_rate": 0.0, "raters_per_item": 1}
        settings.update({"ranking_mode": "best"} if kind == "slate" else {"strength_scale": True})
        project = store.create_project(db, name, kind, settings)
        store.insert_items(db, project["id"], [{
            "external_id": f"{name}-{n}", "prompt": f"Latency {name} question {n:03d}",
            "responses": [{"text": f"Answer {r} to question {n}. " * 20, "system": f"s{r}"}
                          for r in range(k)]} for n in range(n_items)])
        store.assign_rater(db, rater["id"], project["id"])
    db.close()
    return token


def served_number(page, name: str) -> int:
    """The number of the question on screen."""
    text = page.get_by_text(f"Latency {name} question").first.inner_text()
    return int(text.rsplit(" ", 1)[-1])


def rate(page, url: str, token: str, name: str, n_timed: int) -> list[float]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{url}/?token={token}&project={name}")
    page.get_by_text(f"Latency {name} question").first.wait_for(state="visible")
    page.wait_for_selector(IDLE)
    time.sleep(2.0)  # a fresh page's first script run may rerun once; not timed
    times = []
    for k in range(n_timed + 1):
        current = served_number(page, name)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        if name == "pairs":
            chosen = page.locator("[data-testid='stBaseButton-primary']").filter(
                has_text="A clearly better")
            for _ in range(5):  # not timed: the step is chosen before the clock starts
                page.keyboard.press("2")
                try:
                    chosen.wait_for(state="visible", timeout=3_000)
                    break
                except PlaywrightTimeout:
                    page.evaluate("document.activeElement && document.activeElement.blur()")
            page.wait_for_selector(IDLE)
            submit_key = "s"
        else:
            submit_key = "1"
        start = time.perf_counter()
        page.keyboard.press(submit_key)
        page.get_by_text(f"Latency {name} question {current + 1:03d}", exact=True).first \
            .wait_for(state="visible")
        page.wait_for_selector(IDLE)
        if k:  # the first is a warm-up
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30, help="timed items per case")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "latency.db"
        token = seed(db_path, args.items + 2)
        with app_server(db_path) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.set_default_timeout(60_000)
                for name in ("pairs", "slates"):
                    results[name] = rate(page, url, token, name, args.items)
            finally:
                browser.close()
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, label in (("pairs", "pairwise, step key then S"), ("slates", "slate, 1 is best")):
        got = results[name]
        median = statistics.median(got)
        print(f"{label}: {len(got)} items, submit -> next item ready: median {median:.3f} s "
              f"(min {min(got):.3f}, max {max(got):.3f}); goal < {GOAL_S} s: "
              f"{'met' if median < GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
