"""Load one app server with N raters rating at once: judgments/s and submit -> next item ready.

A real Streamlit server (``benchmarks/app_server.py``: the app on a free port,
no worker) on a SQLite store of 100k pairwise items and 1M human judgments
(the builder of ``bench_rate_page.py``, ``strength_scale`` off, ``gold_rate``
0). One headless chromium (Debian's, driven by Playwright's async API), one
context and page per rater: N raters each open their own link
(``/?token=...&project=bench``) and rate with no think time, pressing 1 ("A is
better", which submits at once) as soon as the next item is ready. Fresh raters
for every N.

Timed per submit: from the key press to the next item being ready (another
item's prompt in the page and ``[data-testid='stApp']`` in script state
``notRunning``). Per N, after every rater has opened the page and made
``--warmup`` untimed submits, all raters rate for ``--seconds`` of wall clock
(nobody starts a submit after that; the window ends when the last one in flight
is answered). judgments/s = the judgments the raters' rows gained in the
database over the window / the window. Reported: p50, p95 (inclusive), max; the
server's CPU over the window (its process, in cores) and the client's
(chromium and Playwright's driver, which share the same 2 cores); the load
average. No loss: every rater's stored judgments must equal the submits they
saw answered. A key press that starts no script run within 15 s is pressed
again (counted and printed; the clock runs from the first press).

``--profile`` adds two profiles of the server side:

1. one more ``--profile-n`` window on a fresh server that samples itself: a
   ``sitecustomize`` on its PYTHONPATH starts a thread that takes every
   thread's Python stack every 5 ms (stdlib only; py-spy is not installed).
   Reported per judgment: the busy wall time of each kind of thread (a thread
   waiting for the GIL counts as busy where it stands, so this is not CPU),
   the parts of the script runs, and the top functions;
2. AppTest reruns of a click on "A is better", in this process under cProfile
   around Streamlit's ``ScriptRunner._run_script`` (the script thread: the
   button's callback, app.py and the rate page, building the elements; not the
   websocket, the protobuf serialization or the browser), with one script cache
   shared across runs as the server has.

Goal: p95 < 1 s at N = 10 on this 2-core machine.

    python benchmarks/bench_server_load.py [--ns 1,5,10,20] [--seconds 30]
        [--items 100000] [--judgments 1000000] [--profile [--profile-n 10]]
    python benchmarks/bench_server_load.py --quick      # 2k items / 20k judgments, N = 1, 3, 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from benchmarks.app_server import app_server  # noqa: E402
from benchmarks.bench_rate_page import build  # noqa: E402  (also turns the worker off)
from prefstore import store  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

GOAL_N = 10
GOAL_P95_S = 1.0
PROJECT = "bench"  # the project bench_rate_page.build creates
SUBMIT_KEY = "1"  # "A is better" without the strength scale: stores at once
SUBMIT_TIMEOUT_MS = 120_000
OPENING = 4  # raters opening their page at the same time (not timed)
SETTLE_S = 2.0  # a fresh page's first script run may rerun once; not timed
# True once another item than ``old`` is on screen and Streamlit's script run is over.
NEXT_READY = """(old) => {
    const app = document.querySelector("[data-testid='stApp']");
    if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
    const m = document.querySelector("[data-testid='stChatMessage']");
    const found = m && m.textContent.match(/synthetic prompt (\\d+)/);
    return found !== null && found !== undefined && found[1] !== old;
}"""
# Before a press, in one round trip: blur any field, count the script runs that start from
# now on (the app root's state turning "running"), wait two frames (Streamlit binds a
# button's shortcut in a React effect after the render: a press before it goes nowhere;
# no person is that fast), and return the item on screen.
PREPARE = """() => {
    if (document.activeElement) document.activeElement.blur();
    const app = document.querySelector("[data-testid='stApp']");
    window.__benchRuns = 0;
    if (window.__benchObserver) window.__benchObserver.disconnect();
    window.__benchObserver = new MutationObserver(() => {
        if (app.getAttribute("data-test-script-state") === "running") window.__benchRuns += 1;
    });
    window.__benchObserver.observe(app, {attributes: true,
                                         attributeFilter: ["data-test-script-state"]});
    const m = document.querySelector("[data-testid='stChatMessage']");
    const found = m && m.textContent.match(/synthetic prompt (\\d+)/);
    return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(
        () => r(found ? found[1] : null))));
}"""
# Resolves true as soon as NEXT_READY holds (false after ``ms``): checked on every change
# to the app's DOM, not polled, so ten waiting pages cost the machine nothing between
# changes and the moment is exact.
WAIT_NEXT = """([old, ms]) => new Promise((resolve) => {
    const ready = """ + NEXT_READY + """;
    if (ready(old)) { resolve(true); return; }
    const app = document.querySelector("[data-testid='stApp']");
    const observer = new MutationObserver(() => {
        if (ready(old)) { observer.disconnect(); clearTimeout(timer); resolve(true); }
    });
    const timer = setTimeout(() => { observer.disconnect(); resolve(false); }, ms);
    observer.observe(app, {attributes: true, childList: true, characterData: true,
                           subtree: true});
})"""
LOST_AFTER_MS = 15_000  # no script run this long after a press: taken as lost, pressed again
NO_RUN_SINCE_ARMED = """() => window.__benchRuns === 0 && document.querySelector(
    "[data-testid='stApp']").getAttribute("data-test-script-state") === 'notRunning'"""
# What a stuck page shows, for the error message.
PAGE_STATE = """() => ({
    script: document.querySelector("[data-testid='stApp']")?.getAttribute("data-test-script-state"),
    served: document.querySelector("[data-testid='stChatMessage']")?.textContent,
    alerts: [...document.querySelectorAll("[data-testid='stAlert'], [data-testid='stToast'], "
        + "[data-testid='stException']")].map((e) => e.textContent),
    focus: document.activeElement?.tagName,
    buttons: [...document.querySelectorAll("[data-testid='stMain'] button")].map(
        (b) => b.textContent).slice(0, 8),
})"""
POLL_MS = 10  # NEXT_READY's polling interval in each page


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def add_raters(path: Path, n: int, tag: str) -> list[dict]:
    """``n`` fresh raters with tokens, assigned to the bench project."""
    db = store.connect(path)
    project = store.list_projects(db)[0]
    raters = []
    for k in range(n):
        rater, token = store.create_rater(db, f"load-{tag}-{k}")
        store.assign_rater(db, rater["id"], project["id"])
        raters.append({"id": rater["id"], "token": token})
    db.close()
    return raters


def stored(path: Path, rater_ids: list[int]) -> dict[int, int]:
    """Judgments stored per rater."""
    db = store.connect(path)
    counts = {r: db.execute("SELECT COUNT(*) FROM judgments WHERE rater_id = ?",
                            [r]).fetchone()[0] for r in rater_ids}
    db.close()
    return counts


def server_footprint() -> tuple[float, int]:
    """The server process's resident memory (MB) and open file descriptors now."""
    import psutil

    for proc in psutil.Process().children(recursive=True):
        try:
            if "streamlit" in " ".join(proc.cmdline()):
                return proc.memory_info().rss / 2**20, proc.num_fds()
        except psutil.Error:
            continue
    return float("nan"), -1


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of the server process and of everything else this script started."""
    import psutil

    server = client = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            times = proc.cpu_times()
            is_server = "streamlit" in " ".join(proc.cmdline())
        except psutil.Error:  # a process that ended meanwhile
            continue
        used = times.user + times.system + times.children_user + times.children_system
        if is_server:
            server += used
        else:
            client += used
    return server, client


class Rater:
    """One rater's page and what they saw."""

    def __init__(self, page, rater: dict, path: Path) -> None:
        self.page, self.id, self.token, self.path = page, rater["id"], rater["token"], path
        self.answered = 0  # submits answered by the next item, warm-up included
        self.repressed = 0  # key presses that started no script run, pressed again
        self.times: list[float] = []

    async def open(self, url: str) -> None:
        await self.page.goto(f"{url}/?token={self.token}&project={PROJECT}")
        await self.page.wait_for_function(NEXT_READY, arg="", polling=POLL_MS)
        await asyncio.sleep(SETTLE_S)
        await self.page.wait_for_function(NEXT_READY, arg="", polling=POLL_MS)

    async def submit(self) -> float:
        """Press the submit key; wait until the next item is ready; return the seconds."""
        old = await self.page.evaluate(PREPARE)
        start = time.perf_counter()
        await self.page.keyboard.press(SUBMIT_KEY)
        try:
            while not await self.page.evaluate(WAIT_NEXT, [old, LOST_AFTER_MS]):
                if time.perf_counter() - start > SUBMIT_TIMEOUT_MS / 1000:
                    raise PlaywrightTimeout(f"no next item in {SUBMIT_TIMEOUT_MS} ms")
                if await self.page.evaluate(NO_RUN_SINCE_ARMED):
                    # The press started no script run: press again, the clock runs on.
                    self.repressed += 1
                    await self.page.keyboard.press(SUBMIT_KEY)
        except PlaywrightTimeout as exc:
            db = store.connect(self.path)
            rows = [dict(r) for r in db.query(
                "SELECT a.id, a.item_id, a.status, a.claimed_at, a.expires_at, "
                "(SELECT COUNT(*) FROM judgments j WHERE j.item_id = a.item_id AND "
                "j.rater_id = a.rater_id) AS judged FROM assignments a WHERE a.rater_id = ? "
                "ORDER BY a.id", [self.id])]
            db.close()
            raise RuntimeError(f"rater {self.id}: no next item {SUBMIT_TIMEOUT_MS / 1000:.0f} s "
                               f"after a submit on item {old}; the page: "
                               f"{await self.page.evaluate(PAGE_STATE)}; their claims: "
                               f"{rows}") from exc
        self.answered += 1
        return time.perf_counter() - start

    async def rate_until(self, deadline: float) -> float:
        while time.perf_counter() < deadline:
            self.times.append(await self.submit())
        return time.perf_counter()


async def run_n(browser, url: str, path: Path, raters: list[dict], seconds: float,
                warmup: int, samples: Path | None = None) -> dict:
    """N raters at once: open, warm up, then rate for ``seconds``; the figures."""
    contexts = []
    try:
        people = []
        for rater in raters:
            context = await browser.new_context(viewport={"width": 1366, "height": 768})
            contexts.append(context)
            page = await context.new_page()
            page.set_default_timeout(SUBMIT_TIMEOUT_MS)
            people.append(Rater(page, rater, path))
        # Opened OPENING at a time: 20 first visits at once take the server minutes.
        opening = asyncio.Semaphore(OPENING)

        async def arrive(person: Rater) -> None:
            async with opening:
                await person.open(url)

        await asyncio.gather(*(arrive(p) for p in people))

        async def warm(person: Rater) -> None:
            for _ in range(warmup):
                await person.submit()

        await asyncio.gather(*(warm(p) for p in people))
        ids = [p.id for p in people]
        before = sum(stored(path, ids).values())
        sampled_before = read_samples(samples)
        cpu_before = cpu_seconds()
        load_before = load()
        start = time.perf_counter()
        ends = await asyncio.gather(*(p.rate_until(start + seconds) for p in people))
        window = max(ends) - start
        cpu_after = cpu_seconds()
        rss_mb, fds = server_footprint()
        after = stored(path, ids)
        sampled_after = read_samples(samples)
    finally:
        for context in contexts:
            await context.close()
    lost = {p.id: (p.answered, after[p.id]) for p in people if p.answered != after[p.id]}
    times = [t for p in people for t in p.times]
    repressed = sum(p.repressed for p in people)
    return {"repressed": repressed, "n": len(raters), "window": window, "judgments": sum(after.values()) - before,
            "submits": len(times), "times": times, "lost": lost,
            "server_cpu": (cpu_after[0] - cpu_before[0]) / window,
            "client_cpu": (cpu_after[1] - cpu_before[1]) / window,
            "server_rss_mb": rss_mb, "server_fds": fds,
            "load": f"{load_before} -> {load()}", "samples": (sampled_before, sampled_after)}


async def drive(url: str, path: Path, ns: list[int], seconds: float, warmup: int,
                samples: Path | None = None) -> list[dict]:
    from playwright.async_api import async_playwright

    results = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for k, n in enumerate(ns):
                raters = add_raters(path, n, f"{'profiled-' if samples else ''}{k}-n{n}")
                result = await run_n(browser, url, path, raters, seconds, warmup, samples)
                p50, p95 = percentiles(result["times"])
                print(f"N = {n}: {result['judgments']} judgments in {result['window']:.1f} s, "
                      f"p50 {p50:.3f} s, p95 {p95:.3f} s, {result['repressed']} lost key presses "
                      f"pressed again (load {result['load']})", flush=True)
                results.append(result)
        finally:
            await browser.close()
    return results


def percentiles(times: list[float]) -> tuple[float, float]:
    """True median, and the 95th percentile (inclusive method)."""
    if len(times) < 2:
        return (times[0], times[0]) if times else (float("nan"), float("nan"))
    return statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[18]


# The parts of one rerun: the functions that do them (cumulative time; parts nest).
PARTS = (
    ("the page script (exec of app.py + pages/rate.py)",
     (("exec_code.py", "exec_func_with_error_handling"),)),
    ("submit (the button's callback, before the script)", (("rate_page.py", "answer_on_click"),)),
    ("claim_next", (("assignment.py", "next_item"),)),
    ("rater_progress", (("claims.py", "rater_progress"),)),
    ("recent_judgments (Previous judgments)", (("judgments.py", "recent_judgments"),)),
    ("identity gate (token lookup)", (("common.py", "gate"),)),
    ("visible_projects", (("access.py", "visible_projects"),)),
    ("show_item + show_responses (markdown)",
     (("rate_page.py", "show_item"), ("rate_page.py", "show_responses"))),
    ("keyboard component", (("keyboard.py", "rating_keys"),)),
    ("st.* commands (building elements and widgets)", (("metrics_util.py", "wrapped_func"),)),
    ("  of which queueing their messages (_enqueue)",
     (("delta_generator.py", "_enqueue"), ("delta_generator.py", "_enqueue_add_block"))),
    ("compiling scripts (AppTest: runpy of app.py each run)",
     (("script_cache.py", "get_bytecode"), ("runpy", "_get_code_from_file"))),
)


# The server-side sampler: written as sitecustomize.py into a folder put first on the
# server's PYTHONPATH, so the real server samples itself (stdlib only; no py-spy here).
# Every SAMPLE_S it takes every thread's Python stack; a thread whose innermost frame is
# a wait is idle. Counts are cumulative and written to $PREFSTORE_BENCH_SAMPLES once a
# second, so the benchmark diffs two snapshots around a window.
SAMPLER = r"""
import json, os, sys, threading, time

SAMPLE_S = 0.005
WRITE_S = 0.5
IDLE = {("selectors.py", "select"), ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"), ("queue.py", "get"),
        ("thread.py", "_worker"), ("inotify_buffer.py", "run"), ("inotify_c.py", "read_events"),
        ("polling.py", "run"), ("threading.py", "_bootstrap_inner"),
        ("polling_path_watcher.py", "task")}


def _sample(out):
    me = threading.get_ident()
    names = {}
    counts = {"ticks": 0, "threads": {}, "inclusive": {}, "leaf": {}}
    last_write = time.monotonic()
    while True:
        time.sleep(SAMPLE_S)
        counts["ticks"] += 1
        frames = sys._current_frames()
        if any(ident not in names for ident in frames):  # a script run starts a new thread
            names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in frames.items():
            if ident == me:
                continue
            leaf = (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)
            if leaf in IDLE:
                continue
            stack = []
            f = frame
            while f is not None:
                stack.append((f.f_code.co_filename, f.f_code.co_name))
                f = f.f_back
            # Script runs go to worker threads whose names vary (tornado, AnyIO).
            if any(name == "_run_script" for _, name in stack):
                kind = "script"
            else:
                kind = names.get(ident, "?").split("-")[0]
            counts["threads"][kind] = counts["threads"].get(kind, 0) + 1
            for key in {f"{kind}|{filename}|{name}" for filename, name in stack}:
                counts["inclusive"][key] = counts["inclusive"].get(key, 0) + 1
            key = f"{kind}|{frame.f_code.co_filename}|{frame.f_code.co_name}"
            counts["leaf"][key] = counts["leaf"].get(key, 0) + 1
        # Hold no frame over the sleep: a frame object that outlives its function keeps
        # that function's locals alive, such as a cursor whose statement then stays in
        # progress, and the app's next SAVEPOINT or COMMIT on that connection fails.
        frames = frame = f = None
        if time.monotonic() - last_write > WRITE_S:
            last_write = time.monotonic()
            with open(out + ".tmp", "w") as f:
                json.dump(counts, f)
            os.replace(out + ".tmp", out)


if os.environ.get("PREFSTORE_BENCH_SAMPLES"):
    threading.Thread(target=_sample, args=(os.environ["PREFSTORE_BENCH_SAMPLES"],),
                     name="bench-sampler", daemon=True).start()
"""
SAMPLE_S = 0.005


def read_samples(path: Path | None) -> dict | None:
    """The sampler's latest counts (waiting for a fresh write), or None without a sampler."""
    if path is None:
        return None
    deadline = time.monotonic() + 30
    seen = path.stat().st_mtime_ns if path.exists() else None
    while time.monotonic() < deadline:  # a write newer than the call: at most WRITE_S old
        time.sleep(0.05)
        if path.exists() and path.stat().st_mtime_ns != seen:
            return json.loads(path.read_text())
    raise RuntimeError(f"the server's sampler wrote nothing to {path}")


def diff(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def print_samples(result: dict, top: int) -> None:
    """The server's own samples over one window: busy threads, the rerun's parts, top calls."""
    before, after = result["samples"]
    ticks = after["ticks"] - before["ticks"]
    tick_s = result["window"] / ticks  # the real interval (the sampler's sleep overshoots)
    per_j = tick_s * 1000 / max(result["judgments"], 1)  # ms per judgment per sample
    threads = diff(after["threads"], before["threads"])
    inclusive = diff(after["inclusive"], before["inclusive"])
    leaf = diff(after["leaf"], before["leaf"])
    print(f"\nserver samples over the profiled N = {result['n']} window ({result['window']:.1f} s, "
          f"{result['judgments']} judgments; every {tick_s * 1000:.1f} ms each thread's stack, "
          "wait frames dropped; a thread waiting for the GIL counts as busy where it stands):")
    print(f"{'busy thread (wall, GIL waits in)':32} {'ms/judgment':>11} {'threads busy':>12}")
    for kind, n in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"{kind:32} {n * per_j:11.1f} {n / ticks:12.2f}")
    script = threads.get("script", 0)
    if script:
        print(f"\n{'part of the script runs (script threads)':52} {'ms/judg.':>9} {'share':>6}")
        for label, functions in PARTS:
            n = sum(c for key, c in inclusive.items()
                    if key.startswith("script|") and any(
                        key.split("|")[1].endswith(f) and key.split("|")[2] == func
                        for f, func in functions))
            print(f"{label:52} {n * per_j:9.1f} {n / script:6.0%}")
    for kind in sorted(threads, key=lambda k: -threads[k])[:2]:
        for name, counts in (("inclusive", inclusive), ("innermost", leaf)):
            # The thread's entry frames (in every sample) say nothing: skipped.
            rows = sorted(((c, key) for key, c in counts.items()
                           if key.startswith(kind + "|") and c < threads[kind]),
                          reverse=True)[:top]
            print(f"\n{kind} threads, top {top} functions ({name}), ms/judgment:")
            for c, key in rows:
                _, filename, func = key.split("|")
                print(f"  {c * per_j:8.1f}  {short(filename)}:{func}")


def short(filename: str) -> str:
    """A file's path from site-packages or the repo."""
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profiled_window(path: Path, n: int, seconds: float, warmup: int) -> dict:
    """One more N window on a fresh server that samples itself (SAMPLER)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(SAMPLER)
        samples = Path(tmp) / "samples.json"
        env = {"PYTHONPATH": os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH"))
                                             if p),
               "PREFSTORE_BENCH_SAMPLES": str(samples)}
        with app_server(path, env) as url:
            return asyncio.run(drive(url, path, [n], seconds, warmup, samples))[0]


def profile_rerun(path: Path, reruns: int, top: int) -> None:
    """cProfile the script thread of ``reruns`` AppTest reruns of a click on "A is better"."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    from streamlit.testing.v1 import AppTest, app_test, local_script_runner

    os.environ["PREFSTORE_DB"] = str(path)
    rater = add_raters(path, 1, "profile")[0]
    profiler = cProfile.Profile()
    profiling = {"on": False}
    original = ScriptRunner._run_script

    def run_script(self, rerun_data):
        if not profiling["on"]:
            return original(self, rerun_data)
        profiler.enable()
        try:
            return original(self, rerun_data)
        finally:
            profiler.disable()

    # AppTest builds a new script cache per run, so every rerun would compile and
    # magic-transform the scripts again; the server keeps one for its life. Share one.
    shared = ScriptCache()
    ScriptRunner._run_script = run_script
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.query_params["token"] = rater["token"]
        at.query_params["project"] = PROJECT
        at.run()
        walls = []
        for k in range(reruns + 2):
            assert not at.exception, at.exception
            button = next(b for b in at.button if b.label == "A is better")
            profiling["on"] = k >= 2  # two warm-up reruns
            start = time.perf_counter()
            button.click().run()
            if k >= 2:
                walls.append(time.perf_counter() - start)
        profiling["on"] = False
        assert not at.exception, at.exception
    finally:
        ScriptRunner._run_script = original
        app_test.ScriptCache = local_script_runner.ScriptCache = ScriptCache
    stats = pstats.Stats(profiler)
    total = sum(t[3] for key, t in stats.stats.items()
                if key[2] == "_run_script")  # the patched method's own cumulative time
    print(f"\nprofile: {reruns} reruns of the rate page after a click on \"A is better\", "
          f"server side only (the script thread under cProfile; AppTest in-process, same "
          f"store, fresh rater). Rerun wall p50 {statistics.median(walls) * 1000:.1f} ms "
          f"(cProfile on); profiled {total / reruns * 1000:.1f} ms per rerun.")
    print(f"\n{'part of one rerun':52} {'ms/rerun':>9} {'share':>6}")
    for label, functions in PARTS:
        cum = sum(t[3] for key, t in stats.stats.items()
                  if any(key[0].endswith(f) and key[2] == func for f, func in functions))
        print(f"{label:52} {cum / reruns * 1000:9.1f} {cum / total:6.0%}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\ntop {top} functions by cumulative time (all reruns):")
    print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))


def report(results: list[dict]) -> None:
    """The table per N, the loss check and the goal line."""
    print(f"\n{'N':>3} {'window s':>8} {'judgments':>9} {'judg/s':>7} {'p50 s':>6} "
          f"{'p95 s':>6} {'max s':>6} {'server cores':>12} {'server ms/j':>11} "
          f"{'client cores':>12} {'server MB':>9} {'fds':>4}  load average (1, 5, 15 min) "
          "before -> after")
    for r in results:
        p50, p95 = percentiles(r["times"])
        print(f"{r['n']:3d} {r['window']:8.1f} {r['judgments']:9d} "
              f"{r['judgments'] / r['window']:7.2f} {p50:6.3f} {p95:6.3f} "
              f"{max(r['times']):6.3f} {r['server_cpu']:12.2f} "
              f"{r['server_cpu'] * r['window'] * 1000 / max(r['judgments'], 1):11.1f} "
              f"{r['client_cpu']:12.2f} {r['server_rss_mb']:9.0f} {r['server_fds']:4d}  "
              f"{r['load']}")
    lost = {r["n"]: r["lost"] for r in results if r["lost"]}
    print("no loss: every rater's stored judgments equal the submits they saw answered"
          if not lost else "MISMATCH (rater: answered, stored; more stored = a press taken as "
          f"lost was only slow, and the second press stored one more): {lost}")
    print("key presses that started no script run in "
          f"{LOST_AFTER_MS / 1000:.0f} s, pressed again (the clock runs on): "
          + ", ".join(f"N={r['n']}: {r['repressed']}" for r in results))
    if any(r["judgments"] != r["submits"] for r in results):
        print("note: window judgments differ from timed submits: "
              + ", ".join(f"N={r['n']}: {r['judgments']} vs {r['submits']}" for r in results))
    at_goal = [r for r in results if r["n"] == GOAL_N]
    if at_goal:
        p95 = percentiles(at_goal[0]["times"])[1]
        print(f"goal: p95 < {GOAL_P95_S:g} s at N = {GOAL_N}: "
              f"{'met' if p95 < GOAL_P95_S else 'NOT met'} ({p95:.3f} s)")
    else:
        print(f"goal: p95 < {GOAL_P95_S:g} s at N = {GOAL_N}: not measured (N = {GOAL_N} not "
              "in --ns)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1,5,10,20", help="raters at once, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed window per N")
    parser.add_argument("--warmup", type=int, default=2, help="untimed submits per rater")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true",
                        help="then one more window on a server sampling itself, and AppTest "
                             "reruns under cProfile")
    parser.add_argument("--profile-n", type=int, default=GOAL_N,
                        help="raters in the profiled window")
    parser.add_argument("--profile-reruns", type=int, default=30,
                        help="AppTest reruns under cProfile")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 items / 20,000 judgments, N = 1, 3, 10 s windows")
    args = parser.parse_args()
    if args.quick:
        args.items, args.judgments, args.ns, args.seconds = 2_000, 20_000, "1,3", 10.0
    ns = [int(n) for n in args.ns.split(",")]

    print(f"load average at start: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.db"
        seconds, _ = build(path, args.items, args.judgments, 0)
        print(f"store: {args.items:,} items, {args.judgments:,} judgments, built in "
              f"{seconds:.1f} s", flush=True)
        with app_server(path) as url:
            results = asyncio.run(drive(url, path, ns, args.seconds, args.warmup))
        report(results)
        if args.profile:
            print(f"\nprofile 1: one more N = {args.profile_n} window on a fresh server that "
                  "samples itself", flush=True)
            profiled = profiled_window(path, args.profile_n, args.seconds, args.warmup)
            p50, p95 = percentiles(profiled["times"])
            print(f"profiled window (sampler on): "
                  f"{profiled['judgments'] / profiled['window']:.2f} judgments/s, p50 "
                  f"{p50:.3f} s, p95 {p95:.3f} s, server {profiled['server_cpu']:.2f} cores, "
                  f"client {profiled['client_cpu']:.2f} cores, load {profiled['load']}; "
                  + ("no loss" if not profiled["lost"] else f"MISMATCH {profiled['lost']}"))
            print_samples(profiled, args.top)
            print("\nprofile 2: AppTest reruns in this process under cProfile", flush=True)
            profile_rerun(path, args.profile_reruns, args.top)
    print(f"\nload average at end: {load()}")


if __name__ == "__main__":
    main()
