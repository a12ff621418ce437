"""The background worker: leased jobs with heartbeats, so a crashed worker's job is redone.

Jobs live in the ``jobs`` table. A worker leases one job at a time; a
heartbeat thread extends the lease while the job runs. If the worker dies,
the lease lapses and another worker takes the job over. Jobs are written to
be safe to redo: fits are appended, routing is replaced, and LLM judgments
carry a submission id per (judge, item), so a redone annotation adds no
duplicate.

Job types: ``refit`` (the project's models), ``annotate`` (the project's LLM
judge on items it has not labelled, through :func:`annotate_project`, which
``prefstore annotate`` runs too), ``route`` (routing decisions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from prefstore import store
from prefstore.errors import InvalidInput, PrefstoreError

log = logging.getLogger("prefstore.worker")

LEASE_S = 60.0
HEARTBEAT_S = 10.0
POLL_S = 2.0
WORKER_LIVE_S = 30.0
WATCHDOG_S = 1.0
ORPHAN_GRACE_S = 5.0
ANNOTATE_BATCH = 32
# A server judge takes items in batches of this many per request slot, so its
# concurrency stays busy between batches.
SERVER_BATCH_PER_SLOT = 8
# After a failed annotate job, the scheduler waits this long before queueing another.
ANNOTATE_RETRY_S = 300.0
PROGRESS_EVERY_S = 2.0


class LeaseLost(PrefstoreError):
    """Another worker took this job over; stop without writing more."""


class JobContext:
    """What a job handler gets: its own store handle, the job, and a progress hook."""

    def __init__(self, db, job: dict, worker: Worker):
        self.db = db
        self.job = job
        self._worker = worker

    def progress(self, message: str) -> None:
        """Record progress; raises LeaseLost if the lease moved, or on shutdown."""
        log.info("job %s (%s): %s", self.job["id"], self.job["type"], message)
        self._worker._progress = message
        if self._worker.lease_lost.is_set():
            raise LeaseLost(f"job {self.job['id']} was taken over by another worker")

    @property
    def stopping(self) -> bool:
        return self._worker.stop_event.is_set()


def refit_cycle(db, project_id: int, progress: Callable[[str], None] | None = None) -> dict:
    """Refit the models, then the reports the dashboards read; time each stage.

    The reports (agreement, win rates, edits) share one read of the project's
    frames, and the judgments come from their columnar copy, which reads only
    the rows stored since the last cycle (issue 17: each report used to read the
    whole judgments table itself).

    Returns
    -------
    dict
        ``fitting.refit_all``'s result plus ``agreement_reports``,
        ``win_rate_reports``, ``edit_report`` (report ids) and ``seconds``: wall
        seconds per stage (``fits``, ``read``, ``agreement``, ``win_rates``,
        ``edits``, ``routing``).
    """
    from prefstore import agreement, edits, fitting, leaderboard
    from prefstore.memory import release_freed_memory

    progress = progress or (lambda message: None)
    seconds = {}
    start = time.perf_counter()
    result = fitting.refit_all(db, project_id, progress=progress)
    seconds["fits"] = time.perf_counter() - start
    release_freed_memory()
    start = time.perf_counter()
    judgments = store.report_frame(db, project_id)
    responses = store.responses_frame(db, project_id, with_text=False)
    items = store.items_report_frame(db, project_id)
    seconds["read"] = time.perf_counter() - start
    release_freed_memory()
    start = time.perf_counter()
    result["win_rate_reports"] = leaderboard.refresh_win_rates(db, project_id,
                                                               frames=(judgments, responses))
    seconds["win_rates"] = time.perf_counter() - start
    release_freed_memory()
    n_judgments = len(judgments)
    start = time.perf_counter()
    # Handed over in a list: the agreement report frees the judgments once it has its rows.
    frames = [judgments, responses, items]
    del judgments
    result["agreement_reports"] = agreement.refresh_agreement(db, project_id, frames=frames)
    seconds["agreement"] = time.perf_counter() - start
    progress("agreement and win-rate reports stored")
    start = time.perf_counter()
    result["edit_report"] = edits.refresh_edit_report(db, project_id, n_judgments=n_judgments)
    seconds["edits"] = time.perf_counter() - start
    progress("edit report stored")
    del frames, responses, items
    start = time.perf_counter()
    _enqueue_route_if_judged(db, project_id)
    seconds["routing"] = time.perf_counter() - start
    result["seconds"] = {stage: round(s, 3) for stage, s in seconds.items()}
    return result


def run_refit(ctx: JobContext) -> dict:
    """Refit the models, then the reports the dashboards read (:func:`refit_cycle`)."""
    return refit_cycle(ctx.db, ctx.job["project_id"], progress=ctx.progress)


def run_route(ctx: JobContext) -> dict:
    from prefstore import routing

    project = store.get_project(ctx.db, ctx.job["project_id"])
    judge = ctx.job["payload"].get("judge")
    active = ctx.job["payload"].get("active", project["settings"].active_selection)
    summary = routing.refresh_routing(ctx.db, project["id"], judge=judge, active=bool(active))
    if summary["judge"] is not None:
        summary["report"] = routing.refresh_routing_report(ctx.db, project["id"],
                                                           judge=summary["judge"])
    return summary


def judge_input(item: dict) -> dict:
    """Return what a judge sees of a stored item: the prompt or messages, and response texts.

    Never the system names.
    """
    shown = {"responses": [r["text"] for r in item["responses"]]}
    if item.get("messages") is not None:
        shown["messages"] = item["messages"]
    else:
        shown["prompt"] = item["prompt"]
    return shown


def annotate_project(
    db,
    project: dict | str | int,
    config: dict | None = None,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    before_write: Callable[[], None] | None = None,
) -> dict:
    """Label a project's items with an LLM judge, storing each outcome as soon as it is done.

    The one annotation path of ``prefstore annotate`` and the worker's annotate
    job. Items the judge has labelled, or failed on (unless ``retry_failed``),
    are skipped, so a run that was killed resumes where it stopped and adds no
    duplicate. A verdict is stored as a judgment and its item marked done in one
    transaction; an answer that does not parse marks the item failed with its raw
    text. A server judge keeps its responses in the database (``judge_cache``), so
    a rerun sends no request that was answered before.

    Parameters
    ----------
    project : the project (a row, a name or an id).
    config : the judge configuration (default: the project's ``judge`` setting).
    limit : judge at most this many items.
    retry_failed : ask again about the items whose answer failed.
    progress : ``progress(done, total)`` in items, first with ``done=0``.
    should_stop : polled between outcomes; once true, the run ends after the
        requests in flight, with ``"stopped": True``.
    before_write : called before each outcome is written; raise to stop writing.

    Returns
    -------
    ``{"judge", "labelled", "failed", "cached", "requests", "seconds", "tokens":
    {"prompt", "completion"}, "written", "truncated", "stopped"}``: ``cached``
    counts the items answered from the cache alone, ``written`` the judgments
    created, ``requests`` and ``tokens`` what this run sent to a server.

    Raises
    ------
    InvalidInput
        when the project has no judge and none is given, or the configuration is bad.
    JudgeServerError, ServerUnavailable, ModelLoadError, MissingDependency
        from the judge; the outcomes stored before stay stored.
    """
    from prefstore import judges
    from prefstore.judges.annotate import add_outcome, new_stats
    from prefstore.judges.base import SERVER_BACKENDS, JudgeConfig, rater_name

    if not isinstance(project, dict):
        project = store.get_project(db, project)
    config = config or project["settings"].judge
    if not config:
        raise InvalidInput(f"project {project['name']!r} has no judge configured "
                           "(settings.judge)")
    config = JudgeConfig.from_dict(config) if isinstance(config, dict) else config
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")
    started = time.perf_counter()
    totals = {**new_stats(), "judge": rater_name(config.model), "written": 0, "truncated": 0}
    total = store.count_judge_todo(db, project["id"], totals["judge"],
                                   retry_failed=retry_failed)
    total = total if limit is None else min(total, limit)
    if progress is not None:
        progress(0, total)
    if total == 0:
        return totals
    cache = store.JudgeCache(db) if config.backend in SERVER_BACKENDS else None
    judge = judges.load_judge(config, cache=cache)
    stopped = False
    try:
        rater = store.get_or_create_rater(db, judge.name, "llm")
        totals["judge"] = judge.name
        batch = ANNOTATE_BATCH
        if config.backend in SERVER_BACKENDS:
            batch = max(batch, SERVER_BATCH_PER_SLOT * config.concurrency)
        done = taken = after = 0
        while limit is None or taken < limit:
            if should_stop is not None and should_stop():
                stopped = True
                break
            size = batch if limit is None else min(batch, limit - taken)
            items = store.judge_todo(db, project["id"], rater["id"], after=after, limit=size,
                                     retry_failed=retry_failed)
            if not items:
                break
            after, taken = items[-1]["id"], taken + len(items)
            store.mark_judge_pending(db, project["id"], rater["id"], [i["id"] for i in items])

            def store_outcome(outcome, items=items):
                nonlocal done
                if before_write is not None:
                    before_write()
                item = items[outcome.index]
                if outcome.ok:
                    _, created = store.save_judge_verdict(
                        db, project_id=project["id"], rater_id=rater["id"], item_id=item["id"],
                        judgment=outcome.result.to_judgment(), attempts=outcome.requests,
                        usage=outcome.usage)
                    totals["written"] += created
                    totals["truncated"] += bool(outcome.result.truncated)
                else:
                    failure = outcome.failure
                    store.save_judge_failure(
                        db, project_id=project["id"], rater_id=rater["id"], item_id=item["id"],
                        kind=failure.kind, reason=failure.reason, raw=failure.raw,
                        attempts=outcome.requests, usage=outcome.usage)
                add_outcome(totals, outcome)
                done += 1
                if progress is not None:
                    progress(done, max(total, done))

            report = judges.annotate_items(judge, [judge_input(i) for i in items],
                                           on_outcome=store_outcome, should_stop=should_stop)
            if report.stats["stopped"]:
                stopped = True
                break
    finally:
        totals["seconds"] = round(time.perf_counter() - started, 3)
        close = getattr(judge, "close", None)
        if close is not None:
            close()
    totals["stopped"] = stopped
    return totals


def run_annotate(ctx: JobContext) -> dict:
    """Label the project's items with its LLM judge (``annotate_project``), lease-safe.

    Progress is reported at most every PROGRESS_EVERY_S; once the lease is lost no
    outcome is written, and on shutdown the run ends after the requests in flight
    and the job goes back to the queue.
    """
    worker = ctx._worker
    last_report = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last_report
        now = time.monotonic()
        if done in (0, total) or now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            ctx.progress(f"judged {done} of {total} items")

    def lease_held() -> None:
        if worker.lease_lost.is_set():
            raise LeaseLost(f"job {ctx.job['id']} was taken over by another worker")

    payload = ctx.job["payload"]
    result = annotate_project(
        ctx.db, ctx.job["project_id"], payload.get("judge"),
        retry_failed=bool(payload.get("retry_failed")), progress=progress,
        should_stop=lambda: ctx.stopping or worker.lease_lost.is_set(),
        before_write=lease_held)
    # A run the lost lease stopped leaves the job to its new owner, neither released nor
    # finished, however the stop fell between the writes.
    lease_held()
    result["complete"] = not result.pop("stopped")
    if result["complete"]:
        _enqueue_route_if_judged(ctx.db, ctx.job["project_id"])
    return result


JOB_HANDLERS: dict[str, Callable[[JobContext], dict]] = {
    "refit": run_refit,
    "annotate": run_annotate,
    "route": run_route,
}


def _enqueue_route_if_judged(db, project_id: int) -> None:
    if store.has_llm_judgments(db, project_id):
        store.enqueue_job(db, "route", project_id=project_id)


def schedule_due_jobs(db, now: dt.datetime | None = None) -> list[int]:
    """Queue refits that are due (N new judgments or T minutes) and pending annotations."""
    now = now or dt.datetime.now(dt.UTC)
    queued = []
    # Archived projects take no new judgments, so nothing there falls due.
    for project in store.list_projects(db, include_archived=False):
        settings = project["settings"]
        last = store.last_fit_time(db, project["id"])
        new = store.judgments_since(db, project["id"], last)
        minutes = (now - store.parse_iso(last)).total_seconds() / 60 if last else None
        due = new >= settings.refit_every_judgments or (
            new > 0 and (minutes is None or minutes >= settings.refit_every_minutes))
        if due and (job := store.enqueue_job(db, "refit", project_id=project["id"])):
            queued.append(job)
        if settings.judge:
            from prefstore.judges.base import config_rater_name

            name = config_rater_name(settings.judge)
            if (store.has_judge_todo(db, project["id"], name)
                    and not _annotate_failed_recently(db, project["id"], now)
                    and (job := store.enqueue_job(db, "annotate", project_id=project["id"]))):
                queued.append(job)
    return queued


def _annotate_failed_recently(db, project_id: int, now: dt.datetime) -> bool:
    """Whether the project's last annotate job failed less than ANNOTATE_RETRY_S ago.

    A judge server that is down fails each job at once; without this pause the
    scheduler would queue (and fail) another one on every poll.
    """
    last = store.last_annotate_job(db, project_id)
    if last is None or last["status"] != "failed" or not last["finished_at"]:
        return False
    return (now - store.parse_iso(last["finished_at"])).total_seconds() < ANNOTATE_RETRY_S


class Worker:
    """A job loop over one database. Stops cleanly on SIGTERM or :meth:`stop`."""

    def __init__(self, db_path: str | os.PathLike | None = None, *, worker_id: str | None = None,
                 lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S,
                 poll_s: float = POLL_S, schedule: bool = True, parent_pid: int | None = None):
        self.db_path = str(db_path or store.default_db())
        # An autostarted worker lives only as long as the app that started it.
        self.parent_pid = parent_pid
        self._db_identity: tuple[int, int] | None = None
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s, self.heartbeat_s, self.poll_s = lease_s, heartbeat_s, poll_s
        self.schedule = schedule
        self.stop_event = threading.Event()
        self.lease_lost = threading.Event()
        self._progress: str | None = None

    def stop(self, *_args) -> None:
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def orphaned(self) -> str | None:
        """Return why this worker has no reason to live any more, or None.

        Its parent app ended (however it ended: the worker is re-parented), or
        its SQLite file was deleted or replaced.
        """
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            return f"the app that started it (pid {self.parent_pid}) has ended"
        if self._db_identity is not None:
            try:
                st = os.stat(self.db_path)
            except FileNotFoundError:
                return f"its database {self.db_path} no longer exists"
            if (st.st_dev, st.st_ino) != self._db_identity:
                return f"its database {self.db_path} was replaced"
        return None

    def _watchdog(self) -> None:
        while not self.stop_event.wait(WATCHDOG_S):
            reason = self.orphaned()
            if reason is None:
                continue
            log.warning("worker %s stops: %s", self.id, reason)
            self.stop_event.set()
            # A job mid-fit does not look at stop_event; its lease makes an abrupt
            # exit safe (another worker redoes the job), so do not wait long.
            time.sleep(ORPHAN_GRACE_S)
            os._exit(0)

    def run(self, *, once: bool = False) -> int:
        """Process jobs until stopped; with ``once``, until the queue is empty. Returns count."""
        db = store.connect(self.db_path)
        self._db_identity = None
        if not store.is_postgres(self.db_path) and self.db_path != ":memory:":
            st = os.stat(self.db_path)
            self._db_identity = (st.st_dev, st.st_ino)
        if not once:
            threading.Thread(target=self._watchdog, daemon=True, name="watchdog").start()
        store.register_worker(db, self.id, os.getpid(), socket.gethostname())
        processed = 0
        try:
            while not self.stop_event.is_set():
                store.worker_heartbeat(db, self.id)
                if self.schedule:
                    schedule_due_jobs(db)
                job = store.claim_job(db, self.id, lease_s=self.lease_s)
                if job is None:
                    if once:
                        break
                    self.stop_event.wait(self.poll_s)
                    continue
                self.run_job(db, job)
                processed += 1
        finally:
            store.worker_heartbeat(db, self.id, status="stopped")
            db.close()
        return processed

    def run_job(self, db, job: dict) -> None:
        handler = JOB_HANDLERS.get(job["type"])
        self.lease_lost.clear()
        beat = threading.Thread(target=self._heartbeat, args=(job["id"],), daemon=True)
        done = threading.Event()
        self._beat_done = done
        beat.start()
        log.info("worker %s: job %s (%s) started", self.id, job["id"], job["type"])
        try:
            if handler is None:
                raise InvalidInput(f"unknown job type {job['type']!r}")
            result = handler(JobContext(db, job, self))
        except LeaseLost as exc:
            log.warning("%s", exc)
            return
        except Exception as exc:  # a failed job is recorded; the worker goes on
            log.exception("job %s failed", job["id"])
            store.finish_job(db, job["id"], self.id, error=f"{type(exc).__name__}: {exc}")
            return
        finally:
            done.set()
            beat.join()
        if result.get("complete") is False:
            # Stopped mid-way: hand the rest back to the queue for the next worker.
            store.release_job(db, job["id"], self.id)
            return
        store.finish_job(db, job["id"], self.id, result=result)
        log.info("worker %s: job %s done", self.id, job["id"])

    def _heartbeat(self, job_id: int) -> None:
        db = store.connect(self.db_path)  # its own connection: threads never share one
        try:
            while not self._beat_done.wait(self.heartbeat_s):
                if not store.heartbeat_job(db, job_id, self.id, lease_s=self.lease_s,
                                             progress=self._progress):
                    self.lease_lost.set()
                    return
                store.worker_heartbeat(db, self.id)
        finally:
            db.close()


def side_file(db_path: str, suffix: str) -> str:
    """Return the path of a worker side file (lock, log): beside a SQLite file, else in /tmp."""
    if store.is_postgres(db_path):
        digest = hashlib.sha256(db_path.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"prefstore-{digest}{suffix}")
    return db_path + suffix


def ensure_worker(db_path: str | os.PathLike, *, log_path: str | os.PathLike | None = None
                  ) -> int | None:
    """Start a worker process for ``db_path`` unless one has a live heartbeat.

    The worker is tied to this process: it exits within seconds after this
    process ends, however it ends. Returns the new process id, or None when a
    worker is already alive. A lock file keeps two app processes from starting
    two workers at once.
    """
    import fcntl

    db_path = store.canonical(db_path)
    with open(side_file(db_path, ".worker.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        db = store.connect(db_path)
        try:
            if store.live_workers(db, within_s=WORKER_LIVE_S):
                return None
            out = open(log_path or side_file(db_path, ".worker.log"), "a")  # noqa: SIM115
            # The app may run from a checkout that is not pip-installed: make the
            # package importable in the child the same way it is here.
            env = dict(os.environ)
            package_root = str(Path(__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root,
                                                              env.get("PYTHONPATH")]))
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefstore.cli", "worker", "--db", db_path,
                 "--parent-pid", str(os.getpid())],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env)
            # Wait briefly for its first heartbeat, so the next check sees it alive.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                if store.live_workers(db, within_s=WORKER_LIVE_S):
                    break
                time.sleep(0.1)
            return proc.pid
        finally:
            db.close()
