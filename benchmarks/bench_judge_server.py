"""Throughput of the server judge ("backend": "openai") and the client's overhead.

1. Items per second through a real ``transformers serve`` (the tiny local GPT-2
   that answers "A", tests/judge_server.py) at concurrency 1, 4 and 8, against the
   local generative backend on the same items and weights.
2. The client's overhead per request: the judge against a scripted server that
   answers at once, minus a bare keep-alive ``http.client`` loop sending the same
   requests to the same server (the server runs in its own process, so it does
   not share the GIL with the client).
3. Throughput at concurrency 8 over 1 against a scripted server with 50 ms latency.

Every figure is the median of ``--repeat`` runs, with a NullCache so every
request reaches the server. Every process started here is ended on the way out.

    python benchmarks/bench_judge_server.py [--items 24] [--repeat 3]
    python benchmarks/bench_judge_server.py --only-overhead [--repeat 9]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from prefstore.judges import JudgeConfig, NullCache, ServerJudge, load_judge  # noqa: E402
from prefstore.judges.server import CHAT_PATH  # noqa: E402
from tests.judge_server import (  # noqa: E402
    ANSWERING_MODEL,
    Reply,
    ScriptedServer,
    TransformersServer,
    fixture,
    free_port,
)

GOAL_OVERHEAD_MS = 2.0
GOAL_SPEEDUP = 3.0


def make_items(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}: which city is the capital of France?",
             "responses": [f"Paris, answer {i}.", f"Lyon, I think ({i})."]} for i in range(n)]


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(fn) -> tuple[float, float]:
    """Return the wall and the CPU seconds (this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def server_judge(base_url: str, model: str, concurrency: int) -> ServerJudge:
    config = JudgeConfig(backend="openai", base_url=base_url, model=model,
                         concurrency=concurrency, max_retries=0)
    return ServerJudge(config, cache=NullCache())


def run_judge(judge, items) -> None:
    results = judge.judge_items(items)
    failed = [r for r in results if not hasattr(r, "probs")]
    if failed:
        raise SystemExit(f"{len(failed)} items failed, e.g. {failed[0]}")


# ---------------------------------------------------------------- scripted server in a process


def _serve_scripted(latency: float, conn) -> None:
    reply = Reply(fixture("logprobs_answer_a.json"))
    with ScriptedServer(lambda body, n: reply, latency=latency) as server:
        conn.send(server.base_url)
        conn.recv()  # until the parent says stop (or dies: EOFError)


class ScriptedProcess:
    """A ScriptedServer in a child process (no GIL shared with the client measured)."""

    def __init__(self, latency: float = 0.0):
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve_scripted, args=(latency, child), daemon=True)

    def __enter__(self) -> str:
        self.proc.start()
        return self._conn.recv()

    def __exit__(self, *exc) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def raw_requests(base_url: str, bodies: list[dict]) -> None:
    """Send each body over one keep-alive connection with no client library at all."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    try:
        for body in bodies:
            data = json.dumps(body).encode()
            conn.request("POST", parts.path + "/chat/completions", body=data,
                         headers={"Content-Type": "application/json"})
            json.loads(conn.getresponse().read())
    finally:
        conn.close()


# ---------------------------------------------------------------- the three measurements


def bench_transformers_serve(n_items: int, repeat: int) -> dict:
    items = make_items(n_items)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-judge-server-") as tmp:
        server = TransformersServer(Path(tmp) / "models", free_port(), Path(tmp) / "serve.log",
                                    build=True)
        try:
            server.start()
            server.wait_ready()
            model = server.model_path(ANSWERING_MODEL)
            for concurrency in (1, 4, 8):
                judge = server_judge(server.base_url, model, concurrency)
                run_judge(judge, items[:4])  # warm the connections
                seconds = median_seconds(lambda j=judge: run_judge(j, items), repeat)
                out[f"server_c{concurrency}"] = n_items / seconds
                judge.close()
        finally:
            server.stop()
        # The same weights, loaded in this process: one forward pass per display order.
        local = load_judge(JudgeConfig(model=model, batch_size=8, device="cpu"))
        local.judge_items(items[:4])
        out["local_generative"] = n_items / median_seconds(lambda: local.judge_items(items),
                                                             repeat)
    return out


def bench_overhead(n_items: int, repeat: int) -> dict:
    """Per-request time of the judge, of the bare openai call it makes, and of http.client.

    The three loops send the same requests and are interleaved in each repeat, so a
    neighbour's load hits them alike; the overhead is the median of the per-repeat
    differences. CPU time (this process) is given too: on a shared machine the wall
    time of CPU-bound code also counts the time spent waiting for a core.
    """
    items = make_items(n_items)
    with ScriptedProcess(latency=0.0) as base_url:
        judge = server_judge(base_url, "scripted-judge", concurrency=1)
        bodies = [judge.build_request(spec, True, 0)
                  for i, item in enumerate(items) for spec in judge._orders_for(i, item)]

        def client_only():
            # The judge's own call (ServerJudge._send), parse included.
            for body in bodies:
                json.loads(judge._client.post(CHAT_PATH, body=body, cast_to=str))

        loops = {"judge": lambda: run_judge(judge, items), "client": client_only,
                 "raw": lambda: raw_requests(base_url, bodies)}
        for loop in loops.values():
            loop()  # warm up connections and code paths
        times = {name: [] for name in loops}
        cpu = {name: [] for name in loops}
        for _ in range(repeat):
            for name, loop in loops.items():
                wall, used = timed(loop)
                times[name].append(wall)
                cpu[name].append(used)
        judge.close()
    n = len(bodies)
    out = {"requests": n}
    for label, series in (("", times), ("cpu_", cpu)):
        for name, values in series.items():
            out[f"{label}{name}_ms"] = statistics.median(values) / n * 1000
        for a, b in [("judge", "raw"), ("judge", "client"), ("client", "raw")]:
            diffs = [x - y for x, y in zip(series[a], series[b])]
            out[f"{label}{a}_minus_{b}"] = statistics.median(diffs) / n * 1000
    return out


def bench_latency(n_items: int, repeat: int) -> dict:
    items = make_items(n_items)
    out = {}
    with ScriptedProcess(latency=0.05) as base_url:
        for concurrency in (1, 8):
            judge = server_judge(base_url, "scripted-judge", concurrency)
            run_judge(judge, items[:8])
            out[f"c{concurrency}"] = n_items / median_seconds(lambda j=judge: run_judge(j, items),
                                                              repeat)
            judge.close()
    out["speedup"] = out["c8"] / out["c1"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=24, help="items per transformers-serve run")
    parser.add_argument("--overhead-items", type=int, default=200)
    parser.add_argument("--latency-items", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only-overhead", action="store_true",
                        help="measure the client overhead only (no transformers serve, "
                             "no 50 ms latency case)")
    args = parser.parse_args()

    if not args.only_overhead:
        print(f"transformers serve, tiny GPT-2, {args.items} pairs (2 requests each), "
              f"median of {args.repeat}:")
        serve = bench_transformers_serve(args.items, args.repeat)
        for concurrency in (1, 4, 8):
            rate = serve[f"server_c{concurrency}"]
            print(f"  server judge, concurrency {concurrency}: {rate:7.1f} items/s "
                  f"(x{rate / serve['server_c1']:.2f} over concurrency 1)")
        print(f"  local generative judge, same weights: {serve['local_generative']:7.1f} items/s")

    load = os.getloadavg()
    overhead = bench_overhead(args.overhead_items, max(args.repeat, 5))
    load = [max(a, b) for a, b in zip(load, os.getloadavg())]
    met = "met" if overhead["judge_minus_raw"] < GOAL_OVERHEAD_MS else "NOT met"
    print(f"client overhead, instant scripted server in another process, "
          f"{overhead['requests']} requests at concurrency 1, median of {max(args.repeat, 5)}:")
    print(f"  per request: judge {overhead['judge_ms']:.3f} ms, its openai call alone "
          f"{overhead['client_ms']:.3f} ms, bare http.client {overhead['raw_ms']:.3f} ms")
    print(f"  overhead over bare HTTP {overhead['judge_minus_raw']:.3f} ms "
          f"(goal < {GOAL_OVERHEAD_MS} ms: {met}); of which the openai client + httpx "
          f"{overhead['client_minus_raw']:.3f} ms, the judge's own code "
          f"{overhead['judge_minus_client']:.3f} ms")
    print(f"  CPU per request: judge {overhead['cpu_judge_ms']:.3f} ms, openai call alone "
          f"{overhead['cpu_client_ms']:.3f} ms, bare http.client {overhead['cpu_raw_ms']:.3f} ms;"
          f" overhead {overhead['cpu_judge_minus_raw']:.3f} ms (openai + httpx "
          f"{overhead['cpu_client_minus_raw']:.3f} ms, judge "
          f"{overhead['cpu_judge_minus_client']:.3f} ms)")
    print(f"  load average (1, 5, 15 min; the higher of before and after): "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.only_overhead:
        return

    latency = bench_latency(args.latency_items, args.repeat)
    met = "met" if latency["speedup"] >= GOAL_SPEEDUP else "NOT met"
    print(f"scripted server with 50 ms latency, {args.latency_items} pairs, "
          f"median of {args.repeat}:")
    print(f"  concurrency 1: {latency['c1']:.1f} items/s, concurrency 8: {latency['c8']:.1f} "
          f"items/s -> x{latency['speedup']:.2f} (goal >= x{GOAL_SPEEDUP:.0f}: {met})")


if __name__ == "__main__":
    main()
