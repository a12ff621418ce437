"""Store benchmarks on SQLite and PostgreSQL side by side: writers, claim latency, export.

    python benchmarks/bench_storage.py                       # both backends, full sizes
    python benchmarks/bench_storage.py --backends sqlite     # SQLite only
    python benchmarks/bench_storage.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/bench_storage.py --items 2000 --judgments 20000 --per-writer 200  # quick

Without ``--pg-url`` a throwaway PostgreSQL cluster is started (``tests.pgcluster``:
fsync and synchronous_commit off) and stopped at the end. Every case gets a fresh
database (a new file, or ``CREATE DATABASE`` on the server), dropped afterwards.

Cases, per backend:

- writers: ``--writers`` processes (16) each call ``store.submit_judgment``
  ``--per-writer`` times (2,000) on a 2,000-item project, each writer starting
  at a different item; committed/submitted, lost, errors, judgments/s; CPU per
  judgment of the writers' submit loops and of the database server (the
  throwaway cluster's postmaster and its processes, live and ended; with
  ``--pg-url``, every postgres process on this machine).
- claim: ``store.claim_next`` (each claim followed by a submit, as a rater does)
  on one store of ``--items`` items (100k) and ``--judgments`` judgments (1M):
  90% of the items hold ``q`` judgments (11 at full size), the other 10% one.
  Each judgment has the ``done`` claim that rating through the app leaves
  (``--imported``: none, as after an import). The same ``--samples`` timed
  claims (300, after ``--warmup`` untimed ones) per case:

  (a) fresh raters, every item open (``raters_per_item`` = q + 2): the first
      item of the queue fits, the easiest case;
  (b) one rater with a long history (``--history`` judged items, 10,000),
      placed adversarially: they are the items that come first in the queue,
      so every claim steps over all of them before it finds an item;
  (c) fresh raters, 90% of the items at their quota (``raters_per_item`` = q).
      Full items sort after every open one in ``items_queue`` (``n_human`` is
      one of its keys), so the claim never reads them: it measures like (a).
- export: ``prefstore.export.export(db, project, file, format="pairs")`` of
  the claim store (1M judgments, all choices: one row each; short texts).

Prints a table with one column per backend; benchmarks/README.md records it.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prefstore import store  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
GOALS = {"writers_per_s": 2_000, "claim_p50_ms": 5.0, "export_rows_per_s": 100_000}


# --------------------------------------------------------------------------
# Databases: a fresh one per case


class Databases:
    """Hand out fresh store targets for one backend, and remove them all at the end."""

    _names = itertools.count()

    def __init__(self, backend: str, tmp: Path, server_url: str | None):
        self.backend, self.tmp, self.server_url = backend, tmp, server_url
        self.made: list[str] = []

    def new(self, label: str) -> str:
        name = f"bench_{label}_{os.getpid()}_{next(self._names)}"
        if self.backend == "sqlite":
            target = str(self.tmp / f"{name}.db")
        else:
            import psycopg

            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            target = self.server_url.rsplit("/", 1)[0] + "/" + name
        self.made.append(target)
        return target

    def drop(self, target: str) -> None:
        if target not in self.made:
            return
        self.made.remove(target)
        if self.backend == "sqlite":
            for path in Path(target).parent.glob(Path(target).name + "*"):
                path.unlink()
            return
        import psycopg

        store.close_pool(target)
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)')

    def drop_all(self) -> None:
        for target in list(self.made):
            try:
                self.drop(target)
            except Exception as exc:  # keep dropping the others
                print(f"could not drop {target}: {exc}", file=sys.stderr)


def analyze(db) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL: and the visibility map)."""
    db.execute("VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE")


# --------------------------------------------------------------------------
# Building


def seed(db, n_items: int, n_responses: int = 2, raters_per_item: int = 3,
         name: str = "bench") -> dict:
    project = store.create_project(db, name, "pairwise",
                                   {"raters_per_item": raters_per_item, "gold_rate": 0.0})
    batch = 5000
    for start in range(0, n_items, batch):
        store.insert_items(db, project["id"], [
            {"external_id": f"i{k}", "prompt": f"prompt {k}",
             "responses": [{"text": f"response {k}.{r}", "system": f"sys{(k + r) % 20}"}
                           for r in range(n_responses)]}
            for k in range(start, min(n_items, start + batch))])
    return project


def layout(n_items: int, n_judgments: int) -> tuple[int, int]:
    """Return (items with one judgment, judgments on each other item): 10% and q."""
    n_low = max(1, n_items // 10)
    per_full = max(2, (n_judgments - n_low) // max(1, n_items - n_low))
    return n_low, per_full


_BULK_JUDGMENT = (
    "INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice, strength, "
    "metadata, time_ms, submission_id, created_at) "
    "VALUES (?, ?, 'human', '[0, 1]', 'choice', ?, ?, '{}', 1000, ?, ?)")
_DONE_CLAIM = (
    "INSERT INTO assignments (item_id, rater_id, claimed_at, expires_at, status, display_order, "
    "updated_at) VALUES (?, ?, ?, ?, 'done', '[0, 1]', ?)")


def bulk_judgments(db, project_id: int, n_items: int, n_judgments: int, history_rater: int,
                   history: int, *, claims: bool, n_raters: int = 100,
                   batch: int = 50_000) -> dict:
    """Fill the project with judgments; return the layout and the build times.

    The first 10% of the items get one judgment each, the rest ``q`` each from
    distinct raters. The history rater's ``history`` judgments take the place
    of the low items' single judgment first (those items lead the queue), then
    of one judgment on each following item; they go through
    ``store.insert_judgments`` (the import path). The others are written with
    ``executemany`` (as ``store.seed_synthetic`` does), with ``n_human`` kept
    in step. With ``claims``, every judgment also gets the ``done`` assignment
    that rating through the app leaves behind.
    """
    raters = [store.get_or_create_rater(db, f"bulk{r}")["id"] for r in range(n_raters)]
    ids = [r[0] for r in db.execute("SELECT id FROM items WHERE project_id = ? ORDER BY id",
                                    [project_id]).fetchall()]
    n_low, per_full = layout(n_items, n_judgments)
    created = store.now_iso()
    mine: list[dict] = []
    rows: list[tuple] = []
    done: list[tuple] = []
    t_bulk = 0.0

    def flush() -> None:
        nonlocal rows, done, t_bulk
        t = time.perf_counter()
        counts: dict[int, int] = {}
        for row in rows:
            counts[row[0]] = counts.get(row[0], 0) + 1
        with store.write(db):
            db.executemany(_BULK_JUDGMENT, rows)
            db.executemany("UPDATE items SET n_human = n_human + ? WHERE id = ?",
                           [(n, item) for item, n in counts.items()])
            if claims:
                db.executemany(_DONE_CLAIM, done)
        t_bulk += time.perf_counter() - t
        rows, done = [], []

    for k, item_id in enumerate(ids):
        for j in range(1 if k < n_low else per_full):
            if j == 0 and k < history:
                mine.append({"item_id": item_id, "rater_id": history_rater, "kind": "human",
                             "outcome": "choice", "choice": (k + j) % 2,
                             "strength": 1 + (k + j) % 3, "display_order": [0, 1],
                             "time_ms": 1000, "submission_id": f"hist-{k}"})
                continue
            rater = raters[(k + j) % n_raters]
            rows.append((item_id, rater, (k + j) % 2, 1 + (k + j) % 3, f"bulk-{k}-{j}",
                         created))
            if claims:
                done.append((item_id, rater, created, created, created))
        if len(rows) >= batch:
            flush()
    if rows:
        flush()
    t = time.perf_counter()
    for start in range(0, len(mine), batch):
        store.insert_judgments(db, mine[start:start + batch])
    if claims and mine:
        with store.write(db):
            db.executemany(_DONE_CLAIM, [(r["item_id"], history_rater, created, created,
                                          created) for r in mine])
    t_history = time.perf_counter() - t
    return {"low_items": n_low, "per_full_item": per_full, "history": len(mine),
            "bulk_s": t_bulk, "history_s": t_history}


# --------------------------------------------------------------------------
# Concurrent writers


def _writer(target: str, rater: str, offset: int, n: int, start_barrier, out) -> None:
    db = store.connect(target)
    rater_id = store.get_rater(db, rater)["id"]
    items = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id").fetchall()]
    start_barrier.wait(timeout=300)
    t0, cpu0 = time.perf_counter(), time.process_time()
    errors = 0
    for k in range(n):
        try:
            store.submit_judgment(db, item_id=items[(offset + k) % len(items)],
                                  rater_id=rater_id, submission_id=f"{rater}-{k}",
                                  choice=k % 2, strength=1, display_order=[0, 1], time_ms=1000)
        except Exception as exc:  # counted: the goal is zero
            errors += 1
            print(f"{rater}: {exc}", file=sys.stderr)
    out.put((rater, n, errors, time.perf_counter() - t0, time.process_time() - cpu0))


def _server_cpu_s(postmaster: int | None) -> float:
    """CPU seconds so far of the benchmark's PostgreSQL cluster.

    With the cluster's postmaster known: it, its live processes, and the ones it
    has already reaped (a writer's backend ends with its connection, before the
    window is summed). Without (``--pg-url``): every postgres process on this
    machine, which counts other clusters too.
    """
    import psutil

    if postmaster is not None:
        main = psutil.Process(postmaster)
        times = main.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for proc in main.children():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:  # ended meanwhile: counted in the reaped ones next time
                continue
        return total
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres":
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:  # ended meanwhile
            continue
    return total


def bench_writers(dbs: Databases, writers: int, per_writer: int, n_items: int = 2000,
                  postmaster: int | None = None) -> dict:
    target = dbs.new("writers")
    procs: list = []
    db = None
    try:
        db = store.connect(target)
        seed(db, n_items)
        for w in range(writers):
            store.create_rater(db, f"w{w}", with_token=False)
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
        # Each writer starts at its own item: on PostgreSQL two writers on one
        # item wait for each other's row lock (n_human), which a rater never
        # meets at this rate (at most raters_per_item raters share an item).
        procs = [ctx.Process(target=_writer, args=(target, f"w{w}", w * n_items // writers,
                                                   per_writer, barrier, out))
                 for w in range(writers)]
        for p in procs:
            p.start()
        barrier.wait(timeout=300)
        # PostgreSQL's own processes; a SQLite run has no server (a cluster that is up
        # for the other backend must not count).
        postgres = store.is_postgres(target)
        t0, server0 = time.perf_counter(), _server_cpu_s(postmaster) if postgres else 0.0
        results = []
        deadline = time.monotonic() + 3600
        while len(results) < writers:
            try:
                results.append(out.get(timeout=5))
            except queue.Empty:  # check that the writers are alive
                if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                    raise RuntimeError(
                        f"only {len(results)} of {writers} writers reported") from None
        elapsed = time.perf_counter() - t0
        server_s = _server_cpu_s(postmaster) - server0 if postgres else 0.0
        for p in procs:
            p.join(timeout=60)
        committed = store.count_judgments(db)
        expected = writers * per_writer
        return {"writers": writers, "submitted": expected, "committed": committed,
                "lost": expected - committed, "errors": sum(r[2] for r in results),
                "seconds": elapsed, "judgments_per_s": committed / elapsed,
                # The writer processes' CPU in their submit loops, per submitted judgment.
                "client_cpu_ms": sum(r[4] for r in results) * 1000 / expected,
                # PostgreSQL's backends, WAL writer, ...: 0 on SQLite.
                "server_cpu_ms": server_s * 1000 / expected}
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        if db is not None:
            db.close()
        dbs.drop(target)


# --------------------------------------------------------------------------
# Claim latency and export on the large store


def percentiles(times: list[float]) -> dict:
    return {"n": len(times), "p50_ms": statistics.median(times),
            "p95_ms": statistics.quantiles(times, n=20, method="inclusive")[18]
            if len(times) > 1 else times[0], "max_ms": max(times)}


def time_claims(db, project_id: int, raters: list[int], samples: int, warmup: int,
                label: str) -> dict:
    """Time ``warmup + samples`` claims, each followed by a submit; keep the last ``samples``.

    ``raters`` has one id per claim (fresh raters) or one id for all (one rater).
    After each submit the rater's progress is read too, as the rate page does on
    its next rerun: ``progress`` times that call, ``claim_progress`` the two calls
    of one rerun together.
    """
    times, progress, both = [], [], []
    for k in range(warmup + samples):
        rater = raters[k % len(raters)]
        t = time.perf_counter()
        claim = store.claim_next(db, project_id, rater)
        elapsed = (time.perf_counter() - t) * 1000
        if claim is None:
            raise RuntimeError(f"{label}: nothing left to claim after {k} claims")
        _, created = store.submit_judgment(db, item_id=claim["item_id"], rater_id=rater,
                                           submission_id=f"claim-{label}-{k}", choice=0,
                                           assignment_id=claim["id"])
        if not created:  # the claim would stay open and the next one would only resume it
            raise RuntimeError(f"{label}: submit {k} stored nothing")
        t = time.perf_counter()
        store.rater_progress(db, project_id, rater)
        read = (time.perf_counter() - t) * 1000
        if k >= warmup:
            times.append(elapsed)
            progress.append(read)
            both.append(elapsed + read)
    return {**percentiles(times), "progress": percentiles(progress),
            "claim_progress": percentiles(both)}


def set_cap(db, project_id: int, cap: int) -> None:
    store.update_project_settings(db, project_id, {"raters_per_item": cap}, actor="bench")


def bench_big_store(dbs: Databases, n_items: int, n_judgments: int, history: int,
                    samples: int, warmup: int, tmp: Path, claims: bool) -> dict:
    from prefstore import export

    target = dbs.new("claim")
    db = None
    try:
        db = store.connect(target)
        n_low, per_full = layout(n_items, n_judgments)
        t0 = time.perf_counter()
        project = seed(db, n_items, raters_per_item=per_full + 2)
        t_items = time.perf_counter() - t0
        history_rater = store.create_rater(db, "history", with_token=False)[0]["id"]
        shape = bulk_judgments(db, project["id"], n_items, n_judgments, history_rater, history,
                               claims=claims)
        t2 = time.perf_counter()
        analyze(db)
        t_analyze = time.perf_counter() - t2
        result = {"items": n_items, "judgments": store.count_judgments(db), **shape,
                  "build_items_s": t_items, "analyze_s": t_analyze,
                  "history_rows_per_s": shape["history"] / max(shape["history_s"], 1e-9)}
        print(f"  built: {n_items:,} items in {t_items:.1f} s (insert_items); "
              f"{result['judgments'] - shape['history']:,} judgments"
              f"{' and their done claims' if claims else ''} in {shape['bulk_s']:.1f} s "
              f"(executemany); {shape['history']:,} history judgments in "
              f"{shape['history_s']:.1f} s (insert_judgments); "
              f"{'VACUUM ANALYZE' if db.dialect == 'postgres' else 'ANALYZE'} "
              f"{t_analyze:.1f} s", flush=True)

        # Export first, of exactly the built judgments.
        out = tmp / f"export_{os.getpid()}.jsonl"
        t = time.perf_counter()
        summary = export.export(db, project["id"], out, format="pairs")
        seconds = time.perf_counter() - t
        result["export"] = {"rows": summary["written"], "seconds": seconds,
                            "rows_per_s": summary["written"] / seconds,
                            "mb": out.stat().st_size / 1e6}
        out.unlink()
        print(f"  export: {summary['written']:,} rows in {seconds:.1f} s", flush=True)

        # (b) first, while the history rater's items still lead the queue untouched.
        result["claim_history"] = time_claims(db, project["id"], [history_rater], samples,
                                              warmup, "hist")
        print(f"  claim (b) history: {result['claim_history']}", flush=True)
        fresh = [store.create_rater(db, f"fresh{k}", with_token=False)[0]["id"]
                 for k in range(warmup + samples)]
        result["claim_fresh"] = time_claims(db, project["id"], fresh, samples, warmup, "fresh")
        print(f"  claim (a) fresh: {result['claim_fresh']}", flush=True)
        set_cap(db, project["id"], per_full)
        full = db.execute("SELECT COUNT(*) FROM items WHERE project_id = ? AND n_human >= ?",
                          [project["id"], per_full]).fetchone()[0]
        result["full_share"] = full / n_items
        fresh = [store.create_rater(db, f"quota{k}", with_token=False)[0]["id"]
                 for k in range(warmup + samples)]
        result["claim_quota"] = time_claims(db, project["id"], fresh, samples, warmup, "quota")
        print(f"  claim (c) {full / n_items:.0%} at quota: {result['claim_quota']}", flush=True)
        return result
    finally:
        if db is not None:
            db.close()
        dbs.drop(target)


# --------------------------------------------------------------------------
# Report


def table(results: dict, args) -> str:
    names = list(results)
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fmt) -> None:
        cells = []
        for name in names:
            try:
                cells.append(fmt(results[name]))
            except (KeyError, TypeError):
                cells.append("-")
        rows.append((label, cells))

    add(f"writers: {args.writers} processes x {args.per_writer:,}, committed/submitted",
        lambda r: f"{r['writers']['committed']:,}/{r['writers']['submitted']:,}")
    add("writers: lost / errors", lambda r: f"{r['writers']['lost']} / {r['writers']['errors']}")
    add("writers: judgments/s", lambda r: f"{r['writers']['judgments_per_s']:,.0f}")
    add("writers: client CPU ms per judgment (the writers' submit loops)",
        lambda r: f"{r['writers']['client_cpu_ms']:.2f}")
    add("writers: database server CPU ms per judgment (the cluster's processes)",
        lambda r: f"{r['writers']['server_cpu_ms']:.2f}")
    add("large store: items / judgments",
        lambda r: f"{r['big']['items']:,} / {r['big']['judgments']:,}")
    add("build s: items; bulk judgments" + (" + claims" if not args.imported else "")
        + "; history (insert_judgments); analyze",
        lambda r: f"{r['big']['build_items_s']:.0f}; {r['big']['bulk_s']:.0f}; "
                  f"{r['big']['history_s']:.0f}; {r['big']['analyze_s']:.0f}")
    add("import path (insert_judgments) rows/s",
        lambda r: f"{r['big']['history_rows_per_s']:,.0f}")
    n = args.samples
    for key, label in (
            ("claim_fresh", f"claim (a) fresh raters, all items open, {n} claims"),
            ("claim_history", "claim (b) one rater, {history:,} judged items leading the queue, "
                              f"{n} claims"),
            ("claim_quota", "claim (c) fresh raters, {share:.0%} of items at quota, "
                            f"{n} claims")):
        some = next((r["big"] for r in results.values() if "big" in r), {})
        label = label.format(history=some.get("history", args.history),
                             share=some.get("full_share", 0.9))
        add(f"{label}: p50 / p95 / max ms",
            lambda r, key=key: f"{r['big'][key]['p50_ms']:.2f} / {r['big'][key]['p95_ms']:.2f}"
                               f" / {r['big'][key]['max_ms']:.1f}")
        for part in ("progress", "claim_progress"):
            add(f"  {part.replace('_', ' + ')} after each of those claims: p50 / p95 ms",
                lambda r, key=key, part=part: f"{r['big'][key][part]['p50_ms']:.2f} / "
                                              f"{r['big'][key][part]['p95_ms']:.2f}")
    add("export pairs: rows, seconds",
        lambda r: f"{r['big']['export']['rows']:,}, {r['big']['export']['seconds']:.1f}")
    add("export pairs: rows/s", lambda r: f"{r['big']['export']['rows_per_s']:,.0f}")
    add("load average (1 min) after the backend's run", lambda r: r["load"])
    width = max(len(label) for label, _ in rows)
    cols = [max(len(name), *(len(cells[i]) for _, cells in rows)) for i, name in enumerate(names)]
    lines = [f"{'case':<{width}} | " + " | ".join(f"{n:>{c}}" for n, c in zip(names, cols))]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(f"{label:<{width}} | " + " | ".join(f"{v:>{c}}" for v, c in zip(cells, cols)))
    return "\n".join(lines)


def goals(results: dict) -> list[str]:
    out = []
    pg = results.get("postgresql")
    if pg is None:
        return ["(goals are on PostgreSQL; it was not run)"]
    checks = [
        ("PostgreSQL writers >= 2,000 judgments/s, 0 lost, 0 errors",
         pg.get("writers") and pg["writers"]["judgments_per_s"] >= GOALS["writers_per_s"]
         and pg["writers"]["lost"] == 0 and pg["writers"]["errors"] == 0),
        *((f"PostgreSQL claim {case} p50 < 5 ms",
           pg.get("big") and pg["big"][key]["p50_ms"] < GOALS["claim_p50_ms"])
          for case, key in (("(a)", "claim_fresh"), ("(b)", "claim_history"),
                            ("(c)", "claim_quota"))),
        ("PostgreSQL export pairs >= 100k rows/s",
         pg.get("big") and pg["big"]["export"]["rows_per_s"] >= GOALS["export_rows_per_s"]),
    ]
    for label, ok in checks:
        out.append(f"goal {label}: {'met' if ok else 'NOT met'}")
    return out


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated: sqlite, postgresql (default both)")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL (a database to connect to "
                        "for CREATE DATABASE); default: start a throwaway cluster")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--per-writer", type=int, default=2000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--imported", action="store_true",
                        help="judgments only, as an import leaves them: no done claims")
    parser.add_argument("--skip", default="", help="comma-separated: writers, big")
    args = parser.parse_args()
    aliases = {"postgres": "postgresql", "pg": "postgresql"}
    backends = [aliases.get(b.strip(), b.strip()) for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    # A SIGTERM runs the finally blocks below (writers, databases, cluster).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = None
    tmp = Path(tempfile.mkdtemp(prefix="bench_storage_"))
    results: dict[str, dict] = {}
    try:
        server_url = args.pg_url
        if "postgresql" in backends and not server_url:
            from tests import pgcluster

            cluster = pgcluster.Cluster().start()
            server_url = cluster.url()
            print(f"started a throwaway PostgreSQL cluster at {server_url}", flush=True)
        postmaster = None if cluster is None else cluster.postmaster_pid()
        for backend in backends:
            print(f"== {backend} (load average {load()})", flush=True)
            dbs = Databases(backend, tmp, server_url)
            r: dict = {}
            try:
                if "writers" not in skip:
                    r["writers"] = bench_writers(dbs, args.writers, args.per_writer,
                                                 postmaster=postmaster)
                    w = r["writers"]
                    print(f"  writers: {w['committed']:,}/{w['submitted']:,} committed, lost "
                          f"{w['lost']}, errors {w['errors']}, {w['seconds']:.2f} s, "
                          f"{w['judgments_per_s']:,.0f} judgments/s; writers' CPU "
                          f"{w['client_cpu_ms']:.2f} ms per judgment, database server's "
                          f"{w['server_cpu_ms']:.2f} ms", flush=True)
                if "big" not in skip:
                    r["big"] = bench_big_store(dbs, args.items, args.judgments, args.history,
                                               args.samples, args.warmup, tmp,
                                               claims=not args.imported)
            finally:
                dbs.drop_all()
                store.close_pools()
            r["load"] = load()
            results[backend] = r
        print()
        print(table(results, args))
        print()
        print("\n".join(goals(results)))
    finally:
        store.close_pools()
        if cluster is not None:
            cluster.stop()
            print("stopped the PostgreSQL cluster", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
