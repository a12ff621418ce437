"""The worker's job queue (leases, heartbeats) and the workers' own heartbeats."""

from __future__ import annotations

import datetime as dt

from prefstore.errors import NotFound
from prefstore.store.connection import dumps, loads, now_iso, write

# Which queued job a worker leases next. PostgreSQL skips jobs another worker
# is leasing this instant instead of waiting for it.
_NEXT_JOB = {
    "sqlite": "SELECT id FROM jobs WHERE status = 'queued' "
              "OR (status = 'running' AND lease_expires_at < ?) ORDER BY id LIMIT 1",
    "postgres": "SELECT id FROM jobs WHERE status = 'queued' "
                "OR (status = 'running' AND lease_expires_at < ?) ORDER BY id LIMIT 1 "
                "FOR UPDATE SKIP LOCKED",
}
# One queued job per (type, project): a second enqueue is a no-op, also when
# two workers schedule the same refit at once.
_QUEUED = {
    "sqlite": "SELECT id FROM jobs WHERE type = ? AND project_id IS ? AND status = 'queued'",
    "postgres": "SELECT id FROM jobs WHERE type = ? AND project_id IS NOT DISTINCT FROM ? "
                "AND status = 'queued'",
}
_LOCK_QUEUE = {
    "sqlite": None,  # BEGIN IMMEDIATE already serializes writers
    "postgres": "SELECT pg_advisory_xact_lock(?)",
}
_QUEUE_LOCK_KEY = 0x6A6F6273


def enqueue_job(db, job_type: str, *, project_id: int | None = None,
                payload: dict | None = None, unique: bool = True) -> int | None:
    """Queue a job; with ``unique`` an identical queued job makes this a no-op."""
    with write(db):
        if unique:
            if _LOCK_QUEUE[db.dialect]:
                db.execute(_LOCK_QUEUE[db.dialect], [_QUEUE_LOCK_KEY])
            if db.execute(_QUEUED[db.dialect], [job_type, project_id]).fetchone():
                return None
        return db.execute(
            "INSERT INTO jobs (project_id, type, payload, status, created_at) "
            "VALUES (?, ?, ?, 'queued', ?) RETURNING id",
            [project_id, job_type, dumps(payload or {}), now_iso()]).fetchone()[0]


def claim_job(db, worker_id: str, *, lease_s: float = 60,
              now: dt.datetime | None = None) -> dict | None:
    """Lease the oldest queued job, or a running one whose lease expired."""
    now = now or dt.datetime.now(dt.UTC)
    now_s = now_iso(now)
    with write(db):
        row = db.execute(_NEXT_JOB[db.dialect], [now_s]).fetchone()
        if row is None:
            return None
        db.execute(
            "UPDATE jobs SET status = 'running', lease_owner = ?, lease_expires_at = ?, "
            "attempts = attempts + 1, started_at = ? WHERE id = ?",
            [worker_id, now_iso(now + dt.timedelta(seconds=lease_s)), now_s, row[0]])
    return get_job(db, row[0])


def get_job(db, job_id: int) -> dict:
    rows = list(db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    if not rows:
        raise NotFound(f"job {job_id!r} does not exist")
    job = rows[0]
    job["payload"] = loads(job["payload"], {})
    job["result"] = loads(job["result"])
    return job


def heartbeat_job(db, job_id: int, worker_id: str, *, lease_s: float = 60,
                  progress: str | None = None) -> bool:
    """Extend a job's lease; False if another worker has taken it over."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET lease_expires_at = ?, progress = COALESCE(?, progress) "
            "WHERE id = ? AND lease_owner = ? AND status = 'running'",
            [now_iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lease_s)), progress,
             job_id, worker_id])
    return cur.rowcount == 1


def finish_job(db, job_id: int, worker_id: str, *, result: dict | None = None,
               error: str | None = None) -> bool:
    """Mark a job done or failed; False if this worker no longer holds the lease."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, "
            "lease_expires_at = NULL WHERE id = ? AND lease_owner = ? AND status = 'running'",
            ["failed" if error else "done", dumps(result), error, now_iso(), job_id, worker_id])
    return cur.rowcount == 1


def release_job(db, job_id: int, worker_id: str) -> bool:
    """Put a leased job back in the queue (a worker that stops mid-job)."""
    with write(db):
        cur = db.execute(
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ? AND lease_owner = ? AND status = 'running'", [job_id, worker_id])
    return cur.rowcount == 1


def recent_jobs(db, limit: int = 20, project_id: int | None = None) -> list[dict]:
    """Return the latest jobs, newest first; of one project when ``project_id`` is given."""
    return list(db.query(
        "SELECT id, project_id, type, status, lease_owner, attempts, progress, error, "
        "created_at, started_at, finished_at FROM jobs WHERE (? IS NULL OR project_id = ?) "
        "ORDER BY id DESC LIMIT ?", [project_id, project_id, limit]))


def register_worker(db, worker_id: str, pid: int, host: str) -> None:
    now = now_iso()
    with write(db):
        db.execute(
            "INSERT INTO workers (id, pid, host, started_at, heartbeat_at, status) "
            "VALUES (?, ?, ?, ?, ?, 'running') ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, status = 'running'",
            [worker_id, pid, host, now, now])


def worker_heartbeat(db, worker_id: str, status: str = "running") -> None:
    with write(db):
        db.execute("UPDATE workers SET heartbeat_at = ?, status = ? WHERE id = ?",
                   [now_iso(), status, worker_id])


def live_workers(db, *, within_s: float = 30) -> list[dict]:
    cutoff = now_iso(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=within_s))
    return list(db.query(
        "SELECT * FROM workers WHERE status = 'running' AND heartbeat_at > ? ORDER BY id",
        [cutoff]))
