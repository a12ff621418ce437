"""Time how long a rater's browser takes to show a 1.1M-character item.

A real Streamlit server and Debian's chromium. The item is 1.1M characters of
emoji, combining marks, bidi overrides, zero-width characters and markdown, in
the prompt and in response A (inside the import limit). Goal: its first screen
in < 2 s (it took 89 s per load). Three ways a rater meets it, alternated, the
same number of repeats each, the clock stopped when the item is shown and the
script has finished:

- ``cold``: the rater's link opened in a fresh browser context, nothing cached
  (the worst case: the first visit of a rater's browser);
- ``warm``: the link opened again in a new tab of a browser that has loaded the
  app before (its static files cached, as on every later visit);
- ``next``: the item served after the rater submits the one before it (a rerun,
  no page load: how a rater meets every item after the first).

The same run times a 1,000-character item in each way: the page's own cost.

    python benchmarks/bench_huge_item.py [--repeats 7] [--chars 1100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.app_server import app_server  # noqa: E402
from prefstore import store  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, huge_hostile_text  # noqa: E402

GOAL_S = 2.0
WAYS = ("cold", "warm", "next")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
VIEWPORT = {"width": 1280, "height": 1000}


def item(name: str, n_chars: int) -> dict:
    text = huge_hostile_text(n_chars)
    return {"external_id": name, "prompt": f"{name} item " + text,
            "responses": [{"text": text}, {"text": "short answer"}]}


def seed(path: Path, sizes: dict[str, int], repeats: int) -> dict:
    """One rater and project per size for the page loads; for ``next``, per size and repeat,
    a rater and a project whose first item is a small one and whose second is the timed one."""
    db = store.connect(path)
    settings = {"gold_rate": 0.0, "raters_per_item": 100, "strength_scale": False}
    tokens: dict = {"load": {}, "next": {}}
    for name, n_chars in sizes.items():
        project = store.create_project(db, name, "pairwise", settings)
        store.insert_items(db, project["id"], [item(name, n_chars)])
        rater, tokens["load"][name] = store.create_rater(db, f"reader-{name}")
        store.assign_rater(db, rater["id"], project["id"])
        for k in range(repeats + 1):
            project = store.create_project(db, f"next-{name}-{k}", "pairwise", settings)
            store.insert_items(db, project["id"], [
                {"external_id": "first", "prompt": "A first, small item",
                 "responses": [{"text": "one"}, {"text": "two"}]}, item(name, n_chars)])
            rater, token = store.create_rater(db, f"next-{name}-{k}")
            store.assign_rater(db, rater["id"], project["id"])
            tokens["next"][name, k] = (project["name"], token)
    db.close()
    return tokens


def shown(page) -> None:
    page.get_by_text("short answer").first.wait_for(state="visible", timeout=300_000)
    page.wait_for_selector(IDLE, timeout=300_000)


def time_load(context, url: str) -> float:
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(url)
        shown(page)
        return time.perf_counter() - start
    finally:
        page.close()


def time_next(context, url: str) -> float:
    page = context.new_page()
    try:
        page.goto(url)
        page.get_by_text("A first, small item").first.wait_for(state="visible")
        page.wait_for_selector(IDLE)
        tie = page.locator("[data-testid='stMain'] button").filter(has_text="Tie").first
        start = time.perf_counter()
        tie.click()  # the next item is served by the rerun
        try:
            shown(page)
        except Exception:
            page.screenshot(path="/tmp/bench_next.png")
            raise
        return time.perf_counter() - start
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chars", type=int, default=1_100_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    sizes = {"huge": args.chars, "small": 1_000}
    times = {(way, name): [] for way in WAYS for name in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "huge.db"
        tokens = seed(db_path, sizes, args.repeats)
        with app_server(db_path, {"PREFSTORE_ADMIN_TOKEN": "bench-admin"}) as url, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            warm = browser.new_context(viewport=VIEWPORT)
            try:
                # Round k = 0 warms the server and the warm context up and is not counted.
                for k in range(args.repeats + 1):
                    for name in sizes:
                        link = f"{url}/?token={tokens['load'][name]}&project={name}"
                        cold = browser.new_context(viewport=VIEWPORT)
                        try:
                            got = {"cold": time_load(cold, link)}
                        finally:
                            cold.close()
                        got["warm"] = time_load(warm, link)
                        project, token = tokens["next"][name, k]
                        got["next"] = time_next(warm, f"{url}/?token={token}&project={project}")
                        if k:
                            for way, seconds in got.items():
                                times[way, name].append(seconds)
            finally:
                warm.close()
                browser.close()
    print(f"{'way':<5} {'item':>21} {'n':>2} {'median s':>9} {'min':>6} {'max':>6}")
    for (way, name), got in times.items():
        print(f"{way:<5} {sizes[name]:>11,} characters {len(got):>2} "
              f"{statistics.median(got):>9.2f} {min(got):>6.2f} {max(got):>6.2f}")
    for way in WAYS:
        median = statistics.median(times[way, "huge"])
        print(f"goal ({way}): the huge item's first screen < {GOAL_S:.0f} s: "
              f"{'met' if median < GOAL_S else 'NOT met'} ({median:.2f} s; a small item "
              f"{statistics.median(times[way, 'small']):.2f} s)")


if __name__ == "__main__":
    main()
