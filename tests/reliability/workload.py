"""Workloads shared by the reliability tests and ``benchmarks/bench_soak.py``.

Everything here goes through the API the rating page uses:
:func:`prefstore.assignment.next_item` to claim, :func:`prefstore.assignment.submit`
(which is :func:`prefstore.store.submit_judgment` with ``assignment_id``) to
store. A "double click" sends the same claim twice, from two threads with
their own connections, at the same moment.

Run as a module it is the crash-test writer::

    python -m tests.reliability.workload DB_PATH SEED

which prints ``ready`` and then one line ``<rater_id> <submission_id>`` per
committed submission, flushed, until it runs out of items or is killed.
"""

from __future__ import annotations

import json
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, field

from prefstore import assignment, store

PROJECT = "soak"
DOUBLE_CLICK_RATE = 0.05
# Some claims are skipped instead: a skip and a submit that fills the same item race
# on the raters' progress counters.
SKIP_RATE = 0.05
# A writer that has not connected by then is stuck (a CI run once hung here
# until its job was killed); it fails the soak instead, with its stack.
START_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 600.0


def make_store(path, *, n_items: int, n_raters: int, raters_per_item: int,
               filler_chars: int = 0) -> dict:
    """Create the soak project with ``n_items`` pairs and ``n_raters`` raters named r0, r1, ...

    ``filler_chars`` pads each response, to make the file large (backup test).
    Returns ``{"project_id", "rater_ids"}``.
    """
    db = store.connect(path)
    project = store.create_project(db, PROJECT, "pairwise",
                                     {"raters_per_item": raters_per_item, "gold_rate": 0.0})
    pad = "x" * filler_chars
    for start in range(0, n_items, 2000):
        store.insert_items(db, project["id"], [
            {"external_id": f"i{k}", "prompt": f"prompt {k}",
             "responses": [{"text": f"response {k}.{r} {pad}", "system": f"s{r}"}
                           for r in range(2)]}
            for k in range(start, min(n_items, start + 2000))])
    rater_ids = [store.create_rater(db, f"r{k}", with_token=False)[0]["id"]
                 for k in range(n_raters)]
    db.close()
    return {"project_id": project["id"], "rater_ids": rater_ids}


class DoubleClicker:
    """A second thread, with its own connection, that re-sends a submission in step."""

    def __init__(self, path: str):
        self._jobs: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._barrier = threading.Barrier(2)
        self._path = path
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = store.connect(self._path)
        except BaseException:
            self._barrier.abort()  # the next submit_twice raises instead of waiting forever
            raise
        while True:
            job = self._jobs.get()
            if job is None:
                db.close()
                return
            self._barrier.wait(timeout=60)
            try:
                self._results.put(assignment.submit(db, *job))
            except BaseException as exc:  # handed to the main thread, which records it
                self._results.put(exc)

    def submit_twice(self, db, claim: dict, rater_id: int, label: dict) -> list:
        """Submit from this thread and the helper at once; return both results."""
        self._jobs.put((claim, rater_id, label))
        self._barrier.wait(timeout=60)
        mine = assignment.submit(db, claim, rater_id, label)
        theirs = self._results.get(timeout=60)
        if isinstance(theirs, BaseException):
            raise theirs
        return [mine, theirs]

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)


@dataclass
class Tally:
    """What one process did, and every error it saw (the tests want none)."""

    created: int = 0
    skips: int = 0
    duplicates: int = 0
    double_created: int = 0
    starved: bool = False
    locked_errors: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    acked: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0


def random_label(rng: random.Random) -> dict:
    roll = rng.random()
    if roll < 0.1:
        return {"outcome": "tie", "choice": None, "strength": 0}
    return {"outcome": "choice", "choice": rng.randrange(2), "strength": 1 + rng.randrange(3)}


def submit_one(db, clicker: DoubleClicker, claim: dict, rater_id: int, rng: random.Random,
               tally: Tally) -> tuple[int, str]:
    """Submit a random label for ``claim`` (sometimes twice at once) and count the outcome."""
    label = random_label(rng)
    if rng.random() < DOUBLE_CLICK_RATE:
        results = clicker.submit_twice(db, claim, rater_id, label)
    else:
        results = [assignment.submit(db, claim, rater_id, label)]
    created = sum(1 for _, c in results if c)
    tally.created += created
    tally.duplicates += len(results) - created
    if created != 1 or len({jid for jid, _ in results}) != 1:
        tally.double_created += 1
    return rater_id, assignment.submission_id(claim)


def soak_worker(path: str, project_id: int, rater_ids: list[int], n: int, seed: int,
                barrier, out) -> None:
    """Claim and submit ``n`` judgments, rotating over ``rater_ids``; put a Tally on ``out``."""
    import faulthandler

    tally = Tally()
    rng = random.Random(seed)
    # Print where this writer is if it is still setting up when the parent gives up.
    faulthandler.dump_traceback_later(START_TIMEOUT_S - 10, exit=False)
    try:
        db = store.connect(path)
        clicker = DoubleClicker(path)
    except BaseException as exc:
        tally.other_errors.append(f"setup: {exc!r}")
        faulthandler.cancel_dump_traceback_later()
        barrier.wait(timeout=START_TIMEOUT_S)
        out.put(tally)
        return
    barrier.wait(timeout=START_TIMEOUT_S)
    faulthandler.cancel_dump_traceback_later()
    t0 = time.perf_counter()
    k = 0
    idle = 0
    while len(tally.acked) < n and idle < len(rater_ids):
        rater_id = rater_ids[k % len(rater_ids)]
        k += 1
        try:
            claim = assignment.next_item(db, project_id, rater_id, rng=rng)
            if claim is None:
                idle += 1
                continue
            idle = 0
            if rng.random() < SKIP_RATE:
                store.release_assignment(db, claim["id"], rater_id, status="skipped")
                tally.skips += 1
                continue
            tally.acked.append(submit_one(db, clicker, claim, rater_id, rng, tally))
        except Exception as exc:
            # "database is locked" on SQLite; a deadlock or serialization failure on PostgreSQL
            errors = tally.locked_errors if store.connection.is_retryable(exc) or (
                type(exc).__name__ == "OperationalError") else tally.other_errors
            errors.append(f"{type(exc).__name__}: {exc}")
        if len(tally.locked_errors) + len(tally.other_errors) > 20:
            break
    tally.starved = len(tally.acked) < n
    tally.seconds = time.perf_counter() - t0
    clicker.close()
    db.close()
    out.put(tally)


def run_soak(path, *, processes: int, per_process: int, raters_per_item: int = 3,
             raters_per_process: int = 4, seed: int = 0) -> dict:
    """Run ``processes`` soak workers against a fresh store at ``path``; return the figures.

    The project has 10% more item slots than submissions, so every worker can
    finish while most items still fill up to ``raters_per_item``.
    """
    import multiprocessing as mp

    total = processes * per_process
    n_raters = processes * raters_per_process
    n_items = int(total * 1.1 / raters_per_item) + n_raters
    setup = make_store(path, n_items=n_items, n_raters=n_raters,
                       raters_per_item=raters_per_item)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = []
    for p in range(processes):
        mine = setup["rater_ids"][p * raters_per_process:(p + 1) * raters_per_process]
        # Daemons: a parent that fails or is interrupted never waits on them at exit.
        procs.append(ctx.Process(target=soak_worker, daemon=True, args=(
            str(path), setup["project_id"], mine, per_process, seed * 1000 + p, barrier, out)))
    try:
        for proc in procs:
            proc.start()
        try:
            barrier.wait(timeout=START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"soak writers did not all start within {START_TIMEOUT_S:.0f} s: "
                               + _describe(procs)) from None
        t0 = time.perf_counter()
        tallies = _collect(procs, out, time.perf_counter() + RUN_TIMEOUT_S)
        seconds = time.perf_counter() - t0
        for proc in procs:
            proc.join(timeout=60)
    finally:
        _stop(procs)
    acked = [a for t in tallies for a in t.acked]
    return {
        "processes": processes, "per_process": per_process, "raters_per_item": raters_per_item,
        "project_id": setup["project_id"], "items": n_items,
        "submissions": len(acked), "distinct_submissions": len(set(acked)), "acked": acked,
        "created": sum(t.created for t in tallies),
        "skips": sum(t.skips for t in tallies),
        "duplicates_rejected": sum(t.duplicates for t in tallies),
        "double_created": sum(t.double_created for t in tallies),
        "starved": sum(t.starved for t in tallies),
        "locked_errors": [e for t in tallies for e in t.locked_errors],
        "other_errors": [e for t in tallies for e in t.other_errors],
        "exit_codes": [proc.exitcode for proc in procs],
        "seconds": seconds,
    }


def _describe(procs) -> str:
    return ", ".join(f"writer {k}: " + ("running" if p.is_alive() else f"exit {p.exitcode}")
                     for k, p in enumerate(procs))


def _collect(procs, out, deadline: float) -> list[Tally]:
    """One Tally per writer; fail at once when a writer dies without one, or at ``deadline``."""
    tallies: list[Tally] = []
    while len(tallies) < len(procs):
        try:
            tallies.append(out.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        dead = sum(1 for p in procs if p.exitcode is not None)
        if dead > len(tallies) and out.empty():
            time.sleep(2.0)  # a tally put just before exiting may still be in the pipe
            if out.empty():
                raise RuntimeError("a soak writer died without reporting: " + _describe(procs))
        if time.perf_counter() > deadline:
            raise RuntimeError(f"soak writers still running after {RUN_TIMEOUT_S:.0f} s: "
                               + _describe(procs))
    return tallies


def _stop(procs) -> None:
    """End every writer still running: SIGTERM, then SIGKILL."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        if proc.pid is None:  # never started
            continue
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)


# --------------------------------------------------------------------------
# Checking a store after the fact


def check_store(db, project_id: int, raters_per_item: int) -> dict:
    """Return every consistency violation found, by kind; a sound store gives only empties.

    - ``integrity``: ``PRAGMA integrity_check`` (``"ok"``), ``foreign_keys``: FK violations;
    - ``over_cap``: items with more distinct human raters than allowed;
    - ``repeat_rater``: (item, rater) pairs judged twice;
    - ``n_human``: items whose counter differs from their human judgment count;
    - ``not_done``: human judgments whose assignment is missing or not 'done';
    - ``partial``: judgments with a NULL required field or unparseable JSON;
    - ``open_items``: (kept, counted) when the project's open-item counter differs from
      a count of its open items;
    - ``progress``: (kept, counted) when the raters' progress counters differ from a
      count of their rows.
    """
    q = db.execute
    partial = []
    for row in q("SELECT id, item_id, rater_id, kind, outcome, submission_id, created_at, "
                 "display_order, metadata, choice, strength FROM judgments "
                 "WHERE item_id IN (SELECT id FROM items WHERE project_id = ?)", [project_id]):
        jid, item_id, rater_id, kind, outcome, sub, created, order, meta, choice, strength = row
        problems = [name for name, v in (("item_id", item_id), ("rater_id", rater_id),
                                         ("kind", kind), ("outcome", outcome),
                                         ("submission_id", sub), ("created_at", created),
                                         ("display_order", order), ("metadata", meta))
                    if v is None]
        try:
            if sorted(json.loads(order)) != [0, 1]:
                problems.append("display_order value")
            if not isinstance(json.loads(meta), dict):
                problems.append("metadata value")
        except (TypeError, ValueError):
            problems.append("json")
        if (outcome == "choice") != (choice in (0, 1)) or strength not in (0, 1, 2, 3):
            problems.append("label")
        if problems:
            partial.append((jid, problems))
    # PostgreSQL enforces its foreign keys on every write; SQLite is asked.
    foreign_keys = (q("PRAGMA foreign_key_check").fetchall() if db.dialect == "sqlite" else [])
    progress = (progress_kept(db, project_id), progress_counted(db, project_id))
    return {
        "integrity": store.integrity_check(db),
        "foreign_keys": foreign_keys,
        "over_cap": [tuple(r) for r in q(
            "SELECT j.item_id, COUNT(DISTINCT j.rater_id) FROM judgments j "
            "JOIN items i ON i.id = j.item_id WHERE i.project_id = ? AND j.kind = 'human' "
            "GROUP BY j.item_id HAVING COUNT(DISTINCT j.rater_id) > ?",
            [project_id, raters_per_item]).fetchall()],
        "repeat_rater": [tuple(r) for r in q(
            "SELECT j.item_id, j.rater_id, COUNT(*) FROM judgments j "
            "JOIN items i ON i.id = j.item_id WHERE i.project_id = ? "
            "GROUP BY j.item_id, j.rater_id HAVING COUNT(*) > 1", [project_id]).fetchall()],
        "n_human": [tuple(r) for r in q(
            "SELECT id, n_human, n FROM (SELECT i.id, i.n_human, (SELECT COUNT(*) FROM "
            "judgments j WHERE j.item_id = i.id AND j.kind = 'human') AS n FROM items i "
            "WHERE i.project_id = ?) counted WHERE n_human != n ORDER BY id",
            [project_id]).fetchall()],
        "not_done": [tuple(r) for r in q(
            "SELECT j.id, a.status FROM judgments j JOIN items i ON i.id = j.item_id "
            "LEFT JOIN assignments a ON a.item_id = j.item_id AND a.rater_id = j.rater_id "
            "WHERE i.project_id = ? AND j.kind = 'human' AND a.status IS DISTINCT FROM 'done'",
            [project_id]).fetchall()],
        "partial": partial,
        "open_items": [tuple(r) for r in q(
            "SELECT p.open_items, (SELECT COUNT(*) FROM items i WHERE i.project_id = p.id "
            "AND i.queue_rank < 2 AND i.n_human < ? AND i.excluded_at IS NULL) FROM projects p "
            "WHERE p.id = ?", [raters_per_item, project_id]).fetchall() if r[0] != r[1]],
        "progress": [] if progress[0] == progress[1] else [progress],
    }


def progress_counted(db, project_id: int) -> list[tuple]:
    """Every rater's progress from their rows: (rater, done, skipped, open items touched)."""
    cap = store.get_project(db, project_id)["settings"].raters_per_item
    items = {item_id: rank < 2 and n_human < cap for item_id, rank, n_human in db.execute(
        "SELECT id, queue_rank, n_human FROM items WHERE project_id = ? "
        "AND excluded_at IS NULL", [project_id]).fetchall()}
    touched: dict[tuple, list] = {}
    for rater_id, item_id in db.execute("SELECT rater_id, item_id FROM judgments").fetchall():
        if item_id in items:
            touched.setdefault((rater_id, item_id), [False, False])[0] = True
    for rater_id, item_id in db.execute("SELECT rater_id, item_id FROM assignments "
                                        "WHERE status IN ('skipped', 'flagged')").fetchall():
        if item_id in items:
            touched.setdefault((rater_id, item_id), [False, False])[1] = True
    out: dict[int, list] = {}
    for (rater_id, item_id), (judged, skipped) in touched.items():
        row = out.setdefault(rater_id, [0, 0, 0])
        row[0] += judged
        row[1] += skipped
        row[2] += items[item_id]
    return sorted((r, *v) for r, v in out.items())


def progress_kept(db, project_id: int) -> list[tuple]:
    """The raters' progress counters kept by the writes, in the same form."""
    return sorted(tuple(r) for r in db.execute(
        "SELECT rater_id, done, skipped, open_mine FROM rater_counts WHERE project_id = ? "
        "AND (done > 0 OR skipped > 0 OR open_mine <> 0)", [project_id]).fetchall())


SOUND = {"integrity": "ok", "foreign_keys": [], "over_cap": [], "repeat_rater": [],
         "n_human": [], "not_done": [], "partial": [], "open_items": [], "progress": []}


def stored_submissions(db, project_id: int) -> set[tuple[int, str]]:
    return {(r, s) for r, s in db.execute(
        "SELECT j.rater_id, j.submission_id FROM judgments j JOIN items i ON i.id = j.item_id "
        "WHERE i.project_id = ?", [project_id])}


# --------------------------------------------------------------------------
# The crash-test writer process


def crash_writer(path: str, seed: int) -> None:
    """Submit forever, printing each committed submission; see the module docstring."""
    rng = random.Random(seed)
    db = store.connect(path)
    project_id = store.get_project(db, PROJECT)["id"]
    rater_ids = [r["id"] for r in store.list_raters(db)]
    clicker = DoubleClicker(path)
    tally = Tally()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    idle = 0
    while idle < len(rater_ids):
        rater_id = rng.choice(rater_ids)
        claim = assignment.next_item(db, project_id, rater_id, rng=rng)
        if claim is None:
            idle += 1
            continue
        idle = 0
        if rng.random() < SKIP_RATE:
            store.release_assignment(db, claim["id"], rater_id, status="skipped")
            continue
        rater, sub = submit_one(db, clicker, claim, rater_id, rng, tally)
        # One write per line: a pipe write this short is atomic, so a kill
        # leaves at most a missing line, never half of one.
        out.write(f"{rater} {sub}\n")
        out.flush()
    out.write("exhausted\n")
    out.flush()


if __name__ == "__main__":
    crash_writer(sys.argv[1], int(sys.argv[2]))


# --------------------------------------------------------------------------
# Kill the writer, check, restart: the crash loop


def _read_acks(stdout) -> tuple[list[tuple[int, str]], bool]:
    """Read ``<rater_id> <submission_id>`` lines to EOF; a line without its newline is dropped."""
    acks, exhausted = [], False
    for line in stdout:
        if not line.endswith("\n"):
            break
        text = line.strip()
        if text == "exhausted":
            exhausted = True
        elif text != "ready":
            rater, sub = text.split(" ")
            acks.append((int(rater), sub))
    return acks, exhausted


def start_writer(path, seed: int):
    """Start the crash writer process and wait for its ``ready`` line."""
    import os
    import subprocess
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.workload", str(path),
                             str(seed)], stdout=subprocess.PIPE, text=True, cwd=root, env=env)
    first = proc.stdout.readline()
    if first != "ready\n":
        proc.kill()
        raise RuntimeError(f"crash writer did not start: {first!r}")
    return proc


def run_crash(path, *, rounds: int, raters: int = 8, n_items: int = 4000,
              raters_per_item: int = 3, seed: int = 0, min_acks: int = 20,
              max_acks: int = 400) -> dict:
    """SIGKILL a streaming writer ``rounds`` times; after each kill, check the store.

    Each round the writer is killed after a random number of acknowledged
    submissions (``min_acks``..``max_acks``) plus a random sub-millisecond to
    10 ms delay, so kills land inside transactions as well as between them.
    Returns the figures and, per round, the violations found (empty when sound).
    """
    import signal

    rng = random.Random(seed)
    setup = make_store(path, n_items=n_items, n_raters=raters, raters_per_item=raters_per_item)
    acked: set[tuple[int, str]] = set()
    failures = []
    kills = 0
    for r in range(rounds):
        proc = start_writer(path, seed * 1000 + r)
        target = rng.randint(min_acks, max_acks)
        seen = []
        for line in proc.stdout:
            if line.strip() == "exhausted":
                break
            rater, sub = line.split()
            seen.append((int(rater), sub))
            if len(seen) >= target:
                break
        time.sleep(rng.random() * 0.01)
        proc.send_signal(signal.SIGKILL)
        rest, _ = _read_acks(proc.stdout)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        acked.update(seen + rest)
        db = store.connect(path)
        try:
            report = check_store(db, setup["project_id"], raters_per_item)
            stored = stored_submissions(db, setup["project_id"])
        finally:
            db.close()
        missing = sorted(acked - stored)
        # At most one submission per kill can be committed but not yet acknowledged.
        unacked = len(stored - acked)
        if report != SOUND or missing or unacked > r + 1:
            failures.append({"round": r, "report": report, "missing": missing[:10],
                             "unacked": unacked})
    db = store.connect(path)
    judgments = store.count_judgments(db, setup["project_id"])
    db.close()
    return {"rounds": rounds, "kills": kills, "acked": len(acked), "judgments": judgments,
            "unacked_committed": judgments - len(acked), "failures": failures}
