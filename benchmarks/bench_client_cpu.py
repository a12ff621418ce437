"""CPU of one submit on the rate page, per process: chromium's renderer, GPU, browser; the server.

One headless chromium page (the same chromium and flags as bench_server_load.py)
rates on a real server (benchmarks/app_server.py) over a small store (the
builder of bench_rate_page.py: 2k pairwise items, 20k judgments), exactly as a
bench_server_load.py rater does: press 1 ("A is better"), wait for the next
item ready. After ``--warmup`` untimed submits, ``--submits`` submits are
measured one after another (N = 1: no other rater competes for the page's CPU):

* CPU seconds (user + system, psutil) of each process over the window, by
  chromium's process type (renderer, gpu-process, utility, browser) and of the
  server, divided by the submits;
* the renderer main thread's own accounting from CDP ``Performance.getMetrics``
  (TaskDuration, ScriptDuration, LayoutDuration, RecalcStyleDuration) per submit;
* the elements in the page after a submit (``[data-testid]`` nodes, all DOM nodes).

``--run-delay S`` makes every script run of the servers wait S seconds
before it serves the next item (a sleep, no CPU), as a loaded server answers:
at N = 10 the next item came 0.7 s after a press (p50). The page then stays in
its running state that long, as it does under load, with what that costs the
browser (Streamlit starts fading stale elements out 0.5 s into a run).

CPU time per submit is steadier under load than wall time (also printed, p50),
but other work on the machine still moves it by 20% or more. ``--baseline DIR``
(another checkout, e.g. ``git archive HEAD~1 | tar -x -C /tmp/base``; it must
open a store this checkout builds, so not one from before a schema change) runs a
second server from it and alternates windows between the two, so both see the
same load; the medians over the windows are compared at the end.

    python benchmarks/bench_client_cpu.py [--submits 60]
        [--warmup 10] [--repeat 3] [--baseline DIR] [--run-delay 0.7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from benchmarks.app_server import app_server  # noqa: E402
from benchmarks.bench_rate_page import build  # noqa: E402
from benchmarks.bench_server_load import Rater, add_raters  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
COUNT_NODES = """() => ({testids: document.querySelectorAll('[data-testid]').length,
                         nodes: document.getElementsByTagName('*').length})"""


def process_cpu(port: str) -> dict[str, float]:
    """CPU seconds so far of this script's children, by kind (the server on ``port``;
    chromium by type); another server is left out."""
    out: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
            times = proc.cpu_times()
        except psutil.Error:
            continue
        line = " ".join(cmd)
        if "streamlit" in line:
            if f"--server.port {port}" not in line:
                continue
            kind = "server"
        elif "chrom" in line:
            kind = next((a.split("=", 1)[1] for a in cmd if a.startswith("--type=")), "browser")
        else:
            kind = "other (playwright driver)"
        out[kind] = out.get(kind, 0.0) + times.user + times.system
    return out


async def measure(url: str, rater: dict, path: Path, submits: int, warmup: int) -> dict:
    from playwright.async_api import async_playwright

    port = url.rsplit(":", 1)[1]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1366, "height": 768})
            page = await context.new_page()
            cdp = await context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            person = Rater(page, rater, path)
            await person.open(url)
            for _ in range(warmup):
                await person.submit()

            async def metrics() -> dict[str, float]:
                got = (await cdp.send("Performance.getMetrics"))["metrics"]
                return {m["name"]: m["value"] for m in got if m["name"] in METRICS}

            m0, c0 = await metrics(), process_cpu(port)
            walls = [await person.submit() for _ in range(submits)]
            m1, c1 = await metrics(), process_cpu(port)
            nodes = await page.evaluate(COUNT_NODES)
        finally:
            await browser.close()
    return {"walls": walls, "metrics": {k: (m1[k] - m0[k]) / submits for k in METRICS},
            "cpu": {k: (c1[k] - c0.get(k, 0.0)) / submits for k in c1}, "nodes": nodes}


# Loaded first by the server's Python (a sitecustomize on its PYTHONPATH): a sleep before
# each next_item, so a submit's script run lasts as long as under load.
DELAY = """
import os, time
from prefstore import assignment

_next_item = assignment.next_item


def _slow_next_item(*args, **kwargs):
    time.sleep(float(os.environ["PREFSTORE_BENCH_RUN_DELAY"]))
    return _next_item(*args, **kwargs)


assignment.next_item = _slow_next_item
"""


def delayed(app_dir: Path, tmp: Path, seconds: float) -> dict[str, str]:
    """The server environment that makes every script run wait ``seconds`` (DELAY)."""
    if not seconds:
        return {}
    folder = tmp / f"delay-{app_dir.name}"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(DELAY)
    return {"PYTHONPATH": os.pathsep.join((str(folder), str(app_dir))),
            "PREFSTORE_BENCH_RUN_DELAY": str(seconds)}


def window(label: str, url: str, path: Path, k: int, args) -> dict:
    rater = add_raters(path, 1, f"client-{label}-{k}")[0]
    start = time.perf_counter()
    r = asyncio.run(measure(url, rater, path, args.submits, args.warmup))
    print(f"{label} window {k + 1}: {args.submits} submits in "
          f"{time.perf_counter() - start:.1f} s (with opening), wall p50 "
          f"{statistics.median(r['walls']) * 1000:.0f} ms, load {os.getloadavg()[0]:.2f}")
    print("  CPU ms per submit: " + ", ".join(
        f"{kind} {ms * 1000:.1f}" for kind, ms in sorted(r["cpu"].items())))
    print("  renderer main thread (CDP) ms per submit: " + ", ".join(
        f"{k.removesuffix('Duration')} {v * 1000:.1f}" for k, v in r["metrics"].items()))
    print(f"  page after a submit: {r['nodes']['testids']} [data-testid] nodes, "
          f"{r['nodes']['nodes']} elements", flush=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="windows, each on a fresh browser")
    parser.add_argument("--baseline", type=Path, help="another checkout to alternate with")
    parser.add_argument("--run-delay", type=float, default=0.0,
                        help="seconds every script run waits before serving (as under load)")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        path = Path(tmp) / "client.db"
        build(path, 2_000, 20_000, 0)
        servers = {"this": stack.enter_context(app_server(
            path, delayed(REPO, Path(tmp), args.run_delay)))}
        if args.baseline:
            servers["baseline"] = stack.enter_context(app_server(
                path, delayed(args.baseline, Path(tmp), args.run_delay), app_dir=args.baseline))
        for k in range(args.repeat):
            for label, url in servers.items():
                runs.setdefault(label, []).append(window(label, url, path, k, args))
    print("\nmedian over the windows, ms per submit:")
    for label, rs in runs.items():
        kinds = sorted({kind for r in rs for kind in r["cpu"]} - {"zygote"})
        cpu = {kind: statistics.median(r["cpu"].get(kind, 0.0) for r in rs) for kind in kinds}
        task = statistics.median(r["metrics"]["TaskDuration"] for r in rs)
        print(f"  {label:8} " + ", ".join(f"{kind} {ms * 1000:.1f}" for kind, ms in cpu.items())
              + f"; renderer main thread (CDP Task) {task * 1000:.1f}")


if __name__ == "__main__":
    main()
