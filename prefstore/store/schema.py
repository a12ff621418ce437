"""The schema: one list of migrations, each in SQLite's and PostgreSQL's dialect side by side.

SQLite applies them through sqlite-utils ``Migrations`` (the set is called
"prefstore", recorded in ``_sqlite_migrations``, as it always was);
PostgreSQL through the same names recorded in ``prefstore_migrations``, under
an advisory lock so that replicas starting together migrate once.

Differences, all here: integer keys are ``INTEGER PRIMARY KEY`` in SQLite and
identity ``BIGINT`` keys in PostgreSQL; JSON columns are TEXT in SQLite and
``jsonb`` in PostgreSQL; names sort bytewise (``COLLATE "C"``) as in SQLite;
the append-only rule on judgments is a trigger in both, written twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Migrations

from prefstore.store.connection import UnusableDatabase, describe, write

MIGRATION_SET = "prefstore"
PG_MIGRATIONS_TABLE = "prefstore_migrations"
# An advisory lock key only prefstore uses: replicas starting at once migrate in turn.
PG_MIGRATION_LOCK = 0x70726566
PG_MIGRATION_WAIT_S = 120


@dataclass(frozen=True)
class Migration:
    """One schema step: DDL per dialect, then an optional Python step for both (data fixes)."""

    name: str
    sqlite: str
    postgres: str
    python: Callable[[Any], None] | None = None


def _rater_name_keys(db) -> None:
    """Fill ``raters.name_key``; a legacy clash (Alice / alice) keeps the later name apart."""
    from prefstore.store.raters import name_key

    seen: set[str] = set()
    for rater_id, name in db.execute("SELECT id, name FROM raters ORDER BY id").fetchall():
        try:
            key = name_key(name, check=False)
        except Exception:  # noqa: BLE001 - a legacy name that no longer validates
            key = name
        if key in seen:
            key = f"{key}#{rater_id}"
        seen.add(key)
        db.execute("UPDATE raters SET name_key = ? WHERE id = ?", [key, rater_id])
    db.execute("CREATE UNIQUE INDEX raters_by_name_key ON raters (name_key)")


def _count_open_items_and_served(db) -> None:
    from prefstore.store.projects import recount_open_items, recount_served

    for (project_id,) in db.execute("SELECT id FROM projects").fetchall():
        recount_open_items(db, project_id)
        recount_served(db, project_id)


def _count_rater_progress(db) -> None:
    from prefstore.store.progress import recount_rater_counts
    from prefstore.store.projects import get_project

    for (project_id,) in db.execute("SELECT id FROM projects").fetchall():
        recount_rater_counts(db, project_id, get_project(db, project_id)["settings"]
                             .raters_per_item)


MIGRATIONS: list[Migration] = [
    Migration(
        "m001_initial",
        sqlite="""
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('pairwise', 'slate')),
            settings TEXT NOT NULL DEFAULT '{}',
            pseudonym_salt TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            external_id TEXT NOT NULL,
            prompt TEXT,
            messages TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            category TEXT,
            gold TEXT,
            is_gold INTEGER NOT NULL DEFAULT 0,
            -- 0 = routed to humans, 1 = not routed yet, 2 = routed to the LLM only
            queue_rank INTEGER NOT NULL DEFAULT 1,
            -- expected information of one more human label (active selection)
            priority REAL NOT NULL DEFAULT 0,
            n_human INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, external_id)
        );
        CREATE INDEX items_queue ON items (project_id, is_gold, queue_rank, n_human, priority DESC, id);
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            system TEXT,
            UNIQUE (item_id, idx)
        );
        CREATE TABLE raters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            role TEXT NOT NULL DEFAULT 'rater' CHECK (role IN ('rater', 'admin')),
            token_hash TEXT UNIQUE,
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        );
        CREATE TABLE assignments (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            claimed_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'claimed'
                CHECK (status IN ('claimed', 'done', 'skipped', 'flagged')),
            reason TEXT,
            display_order TEXT,
            updated_at TEXT,
            UNIQUE (item_id, rater_id)
        );
        CREATE INDEX assignments_active ON assignments (item_id, status, expires_at);
        CREATE INDEX assignments_rater ON assignments (rater_id, status);
        CREATE TABLE judgments (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            display_order TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('choice', 'tie', 'both_bad')),
            choice INTEGER,
            ranking TEXT,
            strength INTEGER CHECK (strength IS NULL OR strength BETWEEN 0 AND 3),
            aspects TEXT,
            rationale TEXT,
            reason_tags TEXT,
            edited TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            time_ms INTEGER,
            submission_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (rater_id, submission_id)
        );
        CREATE INDEX judgments_item ON judgments (item_id, rater_id);
        CREATE INDEX judgments_rater_item ON judgments (rater_id, item_id);
        -- Judgments are append-only: a bug elsewhere must not rewrite paid labels.
        CREATE TRIGGER judgments_no_update BEFORE UPDATE ON judgments
        BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END;
        CREATE TRIGGER judgments_no_delete BEFORE DELETE ON judgments
        BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END;
        CREATE TABLE fits (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            model TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL,
            n_judgments INTEGER NOT NULL DEFAULT 0,
            seconds REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX fits_latest ON fits (project_id, model, level, kind, id);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id),
            type TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
            lease_owner TEXT,
            lease_expires_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            progress TEXT,
            result TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        );
        CREATE INDEX jobs_queue ON jobs (status, lease_expires_at, id);
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            pid INTEGER,
            host TEXT,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE routing (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            decision TEXT NOT NULL CHECK (decision IN ('human', 'llm', 'both')),
            predicted_agreement REAL,
            priority REAL,
            features TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (project_id, item_id)
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id),
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        """,
        postgres="""
        CREATE TABLE projects (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('pairwise', 'slate')),
            settings JSONB NOT NULL DEFAULT '{}',
            pseudonym_salt TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE items (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT NOT NULL REFERENCES projects(id),
            external_id TEXT COLLATE "C" NOT NULL,
            prompt TEXT,
            messages JSONB,
            metadata JSONB NOT NULL DEFAULT '{}',
            category TEXT COLLATE "C",
            gold JSONB,
            is_gold INTEGER NOT NULL DEFAULT 0,
            queue_rank INTEGER NOT NULL DEFAULT 1,
            priority DOUBLE PRECISION NOT NULL DEFAULT 0,
            n_human INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (project_id, external_id)
        );
        CREATE INDEX items_queue ON items (project_id, is_gold, queue_rank, n_human, priority DESC, id);
        CREATE TABLE responses (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            item_id BIGINT NOT NULL REFERENCES items(id),
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            system TEXT COLLATE "C",
            UNIQUE (item_id, idx)
        );
        CREATE TABLE raters (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            name TEXT COLLATE "C" NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            role TEXT NOT NULL DEFAULT 'rater' CHECK (role IN ('rater', 'admin')),
            token_hash TEXT UNIQUE,
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        );
        CREATE TABLE assignments (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            item_id BIGINT NOT NULL REFERENCES items(id),
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            claimed_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'claimed'
                CHECK (status IN ('claimed', 'done', 'skipped', 'flagged')),
            reason TEXT,
            display_order JSONB,
            updated_at TEXT,
            UNIQUE (item_id, rater_id)
        );
        CREATE INDEX assignments_active ON assignments (item_id, status, expires_at);
        CREATE INDEX assignments_rater ON assignments (rater_id, status);
        CREATE TABLE judgments (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            item_id BIGINT NOT NULL REFERENCES items(id),
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            display_order JSONB,
            outcome TEXT NOT NULL CHECK (outcome IN ('choice', 'tie', 'both_bad')),
            choice INTEGER,
            ranking JSONB,
            strength INTEGER CHECK (strength IS NULL OR strength BETWEEN 0 AND 3),
            aspects JSONB,
            rationale TEXT,
            reason_tags JSONB,
            edited TEXT,
            metadata JSONB NOT NULL DEFAULT '{}',
            time_ms BIGINT,
            submission_id TEXT COLLATE "C" NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (rater_id, submission_id)
        );
        CREATE INDEX judgments_item ON judgments (item_id, rater_id);
        CREATE INDEX judgments_rater_item ON judgments (rater_id, item_id);
        CREATE FUNCTION prefstore_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'judgments are append-only'; END $$;
        CREATE TRIGGER judgments_no_update BEFORE UPDATE ON judgments
            FOR EACH ROW EXECUTE FUNCTION prefstore_append_only();
        CREATE TRIGGER judgments_no_delete BEFORE DELETE ON judgments
            FOR EACH ROW EXECUTE FUNCTION prefstore_append_only();
        CREATE TRIGGER judgments_no_truncate BEFORE TRUNCATE ON judgments
            FOR EACH STATEMENT EXECUTE FUNCTION prefstore_append_only();
        CREATE TABLE fits (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT NOT NULL REFERENCES projects(id),
            model TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            params JSONB NOT NULL DEFAULT '{}',
            result TEXT NOT NULL,
            n_judgments BIGINT NOT NULL DEFAULT 0,
            seconds DOUBLE PRECISION,
            created_at TEXT NOT NULL
        );
        CREATE INDEX fits_latest ON fits (project_id, model, level, kind, id);
        CREATE TABLE jobs (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT REFERENCES projects(id),
            type TEXT NOT NULL,
            payload JSONB NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
            lease_owner TEXT,
            lease_expires_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            progress TEXT,
            result JSONB,
            error TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        );
        CREATE INDEX jobs_queue ON jobs (status, lease_expires_at, id);
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            pid BIGINT,
            host TEXT,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE routing (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT NOT NULL REFERENCES projects(id),
            item_id BIGINT NOT NULL REFERENCES items(id),
            decision TEXT NOT NULL CHECK (decision IN ('human', 'llm', 'both')),
            predicted_agreement DOUBLE PRECISION,
            priority DOUBLE PRECISION,
            features JSONB NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (project_id, item_id)
        );
        CREATE TABLE audit_log (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT REFERENCES projects(id),
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            details JSONB NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        """,
    ),
    Migration(
        "m002_reports",
        # Derived reports (agreement, routing evaluation) cached by the worker, so a
        # dashboard over a million judgments reads one row instead of recomputing.
        sqlite="""
        CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            result TEXT NOT NULL,
            n_judgments INTEGER NOT NULL DEFAULT 0,
            seconds REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX reports_latest ON reports (project_id, name, kind, id);
        """,
        postgres="""
        CREATE TABLE reports (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            result TEXT NOT NULL,
            n_judgments BIGINT NOT NULL DEFAULT 0,
            seconds DOUBLE PRECISION,
            created_at TEXT NOT NULL
        );
        CREATE INDEX reports_latest ON reports (project_id, name, kind, id);
        """,
    ),
    Migration(
        "m003_raters_and_projects",
        # Raters belong to projects; names clash case-insensitively (name_key).
        # Existing raters keep the projects they already have judgments or claims in.
        sqlite="""
        CREATE TABLE rater_projects (
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (rater_id, project_id)
        );
        CREATE INDEX rater_projects_project ON rater_projects (project_id, rater_id);
        INSERT INTO rater_projects (rater_id, project_id, created_at)
            SELECT DISTINCT j.rater_id, i.project_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
            FROM judgments j JOIN items i ON i.id = j.item_id
            UNION SELECT DISTINCT a.rater_id, i.project_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
            FROM assignments a JOIN items i ON i.id = a.item_id;
        ALTER TABLE raters ADD COLUMN name_key TEXT;
        """,
        postgres="""
        CREATE TABLE rater_projects (
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            project_id BIGINT NOT NULL REFERENCES projects(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (rater_id, project_id)
        );
        CREATE INDEX rater_projects_project ON rater_projects (project_id, rater_id);
        INSERT INTO rater_projects (rater_id, project_id, created_at)
            SELECT DISTINCT j.rater_id, i.project_id, to_char(now() AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            FROM judgments j JOIN items i ON i.id = j.item_id
            UNION SELECT DISTINCT a.rater_id, i.project_id, to_char(now() AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            FROM assignments a JOIN items i ON i.id = a.item_id;
        ALTER TABLE raters ADD COLUMN name_key TEXT COLLATE "C";
        """,
        python=_rater_name_keys,
    ),
    Migration(
        "m004_judge_requests",
        # The LLM judges' ledger (prefstore.store.judging): each item's state per judge
        # (a run killed mid-way resumes from it; an unparseable answer is kept here,
        # never as a judgment) with the requests and tokens it cost; and the judge
        # server's responses, so a request is never paid for twice. The responses stay
        # TEXT on PostgreSQL: read whole, and jsonb refuses the \u0000 a model may emit.
        sqlite="""
        CREATE TABLE judge_state (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
            kind TEXT,
            reason TEXT,
            raw TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            judgment_id INTEGER REFERENCES judgments(id),
            updated_at TEXT NOT NULL,
            UNIQUE (rater_id, item_id)
        );
        CREATE INDEX judge_state_project ON judge_state (project_id, rater_id, status);
        CREATE TABLE judge_cache (
            key TEXT PRIMARY KEY,
            model TEXT,
            response TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """,
        postgres="""
        CREATE TABLE judge_state (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            project_id BIGINT NOT NULL REFERENCES projects(id),
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            item_id BIGINT NOT NULL REFERENCES items(id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
            kind TEXT,
            reason TEXT,
            raw TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            judgment_id BIGINT REFERENCES judgments(id),
            updated_at TEXT NOT NULL,
            UNIQUE (rater_id, item_id)
        );
        CREATE INDEX judge_state_project ON judge_state (project_id, rater_id, status);
        CREATE TABLE judge_cache (
            key TEXT COLLATE "C" PRIMARY KEY,
            model TEXT,
            response TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """,
    ),
    Migration(
        "m005_undo_review_archive",
        # Undo: a changed judgment is a new row naming the row it replaces
        # (judgments stay append-only); only the last row of a chain counts.
        # Review: the admin's resolution of a skip or flag. Archive and exclusion
        # are states, so nothing is ever deleted.
        sqlite="""
        ALTER TABLE judgments ADD COLUMN supersedes INTEGER REFERENCES judgments(id);
        CREATE UNIQUE INDEX judgments_supersedes ON judgments (supersedes)
            WHERE supersedes IS NOT NULL;
        ALTER TABLE projects ADD COLUMN archived_at TEXT;
        ALTER TABLE items ADD COLUMN excluded_at TEXT;
        -- Few items are excluded: counts of open items subtract them through this index.
        CREATE INDEX items_excluded ON items (project_id, id) WHERE excluded_at IS NOT NULL;
        ALTER TABLE assignments ADD COLUMN resolution TEXT;
        ALTER TABLE assignments ADD COLUMN resolved_at TEXT;
        ALTER TABLE assignments ADD COLUMN resolved_by TEXT;
        """,
        postgres="""
        ALTER TABLE judgments ADD COLUMN supersedes BIGINT REFERENCES judgments(id);
        CREATE UNIQUE INDEX judgments_supersedes ON judgments (supersedes)
            WHERE supersedes IS NOT NULL;
        ALTER TABLE projects ADD COLUMN archived_at TEXT;
        ALTER TABLE items ADD COLUMN excluded_at TEXT;
        -- Few items are excluded: counts of open items subtract them through this index.
        CREATE INDEX items_excluded ON items (project_id, id) WHERE excluded_at IS NOT NULL;
        ALTER TABLE assignments ADD COLUMN resolution TEXT;
        ALTER TABLE assignments ADD COLUMN resolved_at TEXT;
        ALTER TABLE assignments ADD COLUMN resolved_by TEXT;
        """,
    ),
    Migration(
        "m006_claim_cursors_open_items",
        # Where each rater's last claim stood in each queue, so the next claim
        # starts there instead of stepping over everything they have judged.
        # queue_epoch moves with every change that can reopen an item before a
        # cursor; the partial index finds claims that expired since a cursor.
        # judgments_rater_latest reads a rater's latest judgments in order.
        # open_items counts the items a rater could still be served (progress
        # reads it instead of counting 100,000 items on every rerun); served_counts
        # how many items, and gold items, each rater was served (gold scheduling).
        sqlite="""
        ALTER TABLE projects ADD COLUMN queue_epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE projects ADD COLUMN open_items INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE claim_cursors (
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            is_gold INTEGER NOT NULL,
            queue_rank INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            claimed_at TEXT NOT NULL,
            n_human INTEGER NOT NULL,
            priority REAL NOT NULL,
            item_id INTEGER NOT NULL,
            PRIMARY KEY (rater_id, project_id, is_gold, queue_rank)
        );
        CREATE TABLE served_counts (
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            served INTEGER NOT NULL,
            served_gold INTEGER NOT NULL,
            PRIMARY KEY (rater_id, project_id)
        );
        CREATE INDEX assignments_expiry ON assignments (expires_at) WHERE status = 'claimed';
        -- A rater's latest judgments (the rate page's undo list) without sorting them all.
        CREATE INDEX judgments_rater_latest ON judgments (rater_id, id);
        """,
        postgres="""
        ALTER TABLE projects ADD COLUMN queue_epoch BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE projects ADD COLUMN open_items BIGINT NOT NULL DEFAULT 0;
        CREATE TABLE claim_cursors (
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            project_id BIGINT NOT NULL REFERENCES projects(id),
            is_gold INTEGER NOT NULL,
            queue_rank INTEGER NOT NULL,
            epoch BIGINT NOT NULL,
            claimed_at TEXT NOT NULL,
            n_human INTEGER NOT NULL,
            priority DOUBLE PRECISION NOT NULL,
            item_id BIGINT NOT NULL,
            PRIMARY KEY (rater_id, project_id, is_gold, queue_rank)
        );
        CREATE TABLE served_counts (
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            project_id BIGINT NOT NULL REFERENCES projects(id),
            served BIGINT NOT NULL,
            served_gold BIGINT NOT NULL,
            PRIMARY KEY (rater_id, project_id)
        );
        CREATE INDEX assignments_expiry ON assignments (expires_at) WHERE status = 'claimed';
        -- A rater's latest judgments (the rate page's undo list) without sorting them all.
        CREATE INDEX judgments_rater_latest ON judgments (rater_id, id);
        """,
        python=_count_open_items_and_served,
    ),
    Migration(
        "m007_pair_counts",
        # The pairwise models' sufficient statistics (prefstore.store.pair_counts), kept
        # from a watermark over judgment ids that a fit advances, so a refit reads
        # O(pairs) rows (issue 17). lo < hi are node names (a system, or a response id
        # as text); n_* count pairwise rows, w_* sum their strength weights. A store
        # made before this migration starts at watermark 0: its first fold is the backfill.
        sqlite="""
        CREATE TABLE pair_counts (
            project_id INTEGER NOT NULL REFERENCES projects(id),
            level TEXT NOT NULL CHECK (level IN ('system', 'response')),
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            lo TEXT NOT NULL,
            hi TEXT NOT NULL,
            n_lo INTEGER NOT NULL,
            n_hi INTEGER NOT NULL,
            n_tie INTEGER NOT NULL,
            w_lo REAL NOT NULL,
            w_hi REAL NOT NULL,
            w_tie REAL NOT NULL,
            PRIMARY KEY (project_id, level, kind, lo, hi)
        );
        CREATE TABLE pair_count_marks (
            project_id INTEGER PRIMARY KEY REFERENCES projects(id),
            last_judgment_id INTEGER NOT NULL DEFAULT 0,
            n_human INTEGER NOT NULL DEFAULT 0,
            n_llm INTEGER NOT NULL DEFAULT 0,
            n_human_no_system INTEGER NOT NULL DEFAULT 0,
            n_llm_no_system INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT
        );
        CREATE TABLE pair_count_excluded (
            project_id INTEGER NOT NULL REFERENCES projects(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            PRIMARY KEY (project_id, item_id)
        );
        """,
        postgres="""
        CREATE TABLE pair_counts (
            project_id BIGINT NOT NULL REFERENCES projects(id),
            level TEXT NOT NULL CHECK (level IN ('system', 'response')),
            kind TEXT NOT NULL CHECK (kind IN ('human', 'llm')),
            lo TEXT COLLATE "C" NOT NULL,
            hi TEXT COLLATE "C" NOT NULL,
            n_lo BIGINT NOT NULL,
            n_hi BIGINT NOT NULL,
            n_tie BIGINT NOT NULL,
            w_lo DOUBLE PRECISION NOT NULL,
            w_hi DOUBLE PRECISION NOT NULL,
            w_tie DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (project_id, level, kind, lo, hi)
        );
        CREATE TABLE pair_count_marks (
            project_id BIGINT PRIMARY KEY REFERENCES projects(id),
            last_judgment_id BIGINT NOT NULL DEFAULT 0,
            n_human BIGINT NOT NULL DEFAULT 0,
            n_llm BIGINT NOT NULL DEFAULT 0,
            n_human_no_system BIGINT NOT NULL DEFAULT 0,
            n_llm_no_system BIGINT NOT NULL DEFAULT 0,
            updated_at TEXT
        );
        CREATE TABLE pair_count_excluded (
            project_id BIGINT NOT NULL REFERENCES projects(id),
            item_id BIGINT NOT NULL REFERENCES items(id),
            PRIMARY KEY (project_id, item_id)
        );
        """,
    ),
    Migration(
        "m008_judgment_columns",
        # Issue 17: a columnar copy of each project's judgment rows for the worker's
        # reports, in chunks up to a watermark (prefstore/store/columns.py). A cache:
        # dropping its rows only makes the next refit read everything again.
        sqlite="""
        CREATE TABLE judgment_columns (
            project_id INTEGER NOT NULL REFERENCES projects(id),
            first_id INTEGER NOT NULL,
            last_id INTEGER NOT NULL,
            n_rows INTEGER NOT NULL,
            data BLOB NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (project_id, first_id)
        );
        -- Whether a project has LLM judgments (the refit's routing check, the style
        -- bias) was a scan of every human judgment; this index holds the LLM ones only.
        CREATE INDEX judgments_llm ON judgments (item_id) WHERE kind = 'llm';
        """,
        postgres="""
        CREATE TABLE judgment_columns (
            project_id BIGINT NOT NULL REFERENCES projects(id),
            first_id BIGINT NOT NULL,
            last_id BIGINT NOT NULL,
            n_rows BIGINT NOT NULL,
            data BYTEA NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (project_id, first_id)
        );
        CREATE INDEX judgments_llm ON judgments (item_id) WHERE kind = 'llm';
        """,
    ),
    Migration(
        "m009_rater_counts",
        # Issue 17: each rater's progress kept by the writes (prefstore/store/progress.py),
        # so the rate page reads one row whatever the rater's history. On PostgreSQL a
        # submit is one function call: its statements take fresh snapshots in turn,
        # so after it locks the item it sees every committed touch of it.
        sqlite="""
        CREATE TABLE rater_counts (
            rater_id INTEGER NOT NULL REFERENCES raters(id),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            done INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            open_mine INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (rater_id, project_id)
        );
        """,
        postgres="""
        CREATE TABLE rater_counts (
            rater_id BIGINT NOT NULL REFERENCES raters(id),
            project_id BIGINT NOT NULL REFERENCES projects(id),
            done BIGINT NOT NULL DEFAULT 0,
            skipped BIGINT NOT NULL DEFAULT 0,
            open_mine BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (rater_id, project_id)
        );
        CREATE FUNCTION prefstore_submit(
            p_item BIGINT, p_rater BIGINT, p_kind TEXT, p_display_order TEXT, p_outcome TEXT,
            p_choice INTEGER, p_ranking TEXT, p_strength INTEGER, p_aspects TEXT,
            p_rationale TEXT, p_reason_tags TEXT, p_edited TEXT, p_metadata TEXT,
            p_time_ms BIGINT, p_submission_id TEXT, p_created_at TEXT, p_project BIGINT,
            p_default_cap INTEGER, p_lock_key INTEGER) RETURNS BIGINT LANGUAGE plpgsql AS $$
        DECLARE
            new_id BIGINT;
            cap INTEGER;
            human INTEGER := CASE WHEN p_kind = 'human' THEN 1 ELSE 0 END;
            item_project BIGINT;
            item_n INTEGER;
            item_rank INTEGER;
            item_excluded TEXT;
            first_judgment BOOLEAN;
            touched BOOLEAN;
            open_before BOOLEAN;
            open_after BOOLEAN;
        BEGIN
            -- Shared: a recount of the project's counters waits for this write.
            PERFORM pg_advisory_xact_lock_shared(p_lock_key, CAST(p_project AS INTEGER));
            -- The cap as it is now: a settings change commits under the exclusive lock.
            SELECT COALESCE(CAST(settings ->> 'raters_per_item' AS INTEGER), p_default_cap)
                INTO cap FROM projects WHERE id = p_project;
            INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice,
                ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms,
                submission_id, created_at)
            VALUES (p_item, p_rater, p_kind, CAST(p_display_order AS JSONB), p_outcome,
                p_choice, CAST(p_ranking AS JSONB), p_strength, CAST(p_aspects AS JSONB),
                p_rationale, CAST(p_reason_tags AS JSONB), p_edited,
                CAST(p_metadata AS JSONB), p_time_ms, p_submission_id, p_created_at)
            ON CONFLICT (rater_id, submission_id) DO NOTHING RETURNING id INTO new_id;
            IF new_id IS NULL THEN
                RETURN NULL;  -- a double submit: the first one is kept
            END IF;
            -- The item's row lock: of two submits racing for its last slot exactly one
            -- sees it fill, and the statements below see every committed touch of it.
            UPDATE items SET n_human = n_human + human WHERE id = p_item
                RETURNING project_id, n_human, queue_rank, excluded_at
                INTO item_project, item_n, item_rank, item_excluded;
            IF human = 1 THEN
                UPDATE assignments SET status = 'done', updated_at = p_created_at
                    WHERE item_id = p_item AND rater_id = p_rater AND status = 'claimed';
            END IF;
            IF item_excluded IS NOT NULL THEN
                RETURN new_id;  -- excluded items count nowhere
            END IF;
            open_after := item_rank < 2 AND item_n < cap;
            open_before := item_rank < 2 AND item_n - human < cap;
            first_judgment := NOT EXISTS (SELECT 1 FROM judgments j WHERE j.rater_id = p_rater
                AND j.item_id = p_item AND j.id <> new_id);
            touched := NOT first_judgment OR EXISTS (SELECT 1 FROM assignments a
                WHERE a.rater_id = p_rater AND a.item_id = p_item
                AND a.status IN ('skipped', 'flagged'));
            INSERT INTO rater_counts (rater_id, project_id) VALUES (p_rater, item_project)
                ON CONFLICT (rater_id, project_id) DO NOTHING;
            IF open_before AND NOT open_after THEN
                -- Counter rows locked in rater order: two closing submits never wait
                -- on each other in a cycle.
                PERFORM 1 FROM rater_counts c WHERE c.project_id = item_project
                    AND c.rater_id IN (SELECT j.rater_id FROM judgments j
                        WHERE j.item_id = p_item AND j.id <> new_id
                        UNION SELECT a.rater_id FROM assignments a WHERE a.item_id = p_item
                        AND a.status IN ('skipped', 'flagged') UNION SELECT p_rater)
                    ORDER BY c.rater_id FOR UPDATE;
                UPDATE rater_counts SET open_mine = open_mine - 1
                    WHERE project_id = item_project AND rater_id IN (
                        SELECT j.rater_id FROM judgments j WHERE j.item_id = p_item
                        AND j.id <> new_id UNION SELECT a.rater_id FROM assignments a
                        WHERE a.item_id = p_item AND a.status IN ('skipped', 'flagged'));
                UPDATE projects SET open_items = open_items - 1 WHERE id = item_project;
            END IF;
            UPDATE rater_counts SET done = done + CAST(first_judgment AS INTEGER),
                open_mine = open_mine + CAST(NOT touched AND open_after AS INTEGER)
                WHERE rater_id = p_rater AND project_id = item_project;
            RETURN new_id;
        END $$;
        """,
        python=_count_rater_progress,
    ),
    Migration(
        "m010_claim_function",
        # Issue 17: a PostgreSQL claim in one round trip instead of seven: the same
        # statements as claims._claim, each with a fresh snapshot, then the item and
        # its responses. It answers 'fallback' (having written nothing) for what the
        # Python path handles: errors, items to wait for, slates beyond the order keys;
        # 'settings' when the caller parsed another settings text than the stored one.
        sqlite="",
        postgres="""
        CREATE FUNCTION prefstore_claim(
            p_project BIGINT, p_rater BIGINT, p_now TEXT, p_expires TEXT, p_settings TEXT,
            p_cap INTEGER, p_gold_rate DOUBLE PRECISION, p_order_keys DOUBLE PRECISION[])
        RETURNS TABLE (
            o_outcome TEXT, o_settings TEXT, o_resumed BOOLEAN,
            a_id BIGINT, a_item_id BIGINT, a_rater_id BIGINT, a_claimed_at TEXT,
            a_expires_at TEXT, a_status TEXT, a_reason TEXT, a_display_order TEXT,
            a_updated_at TEXT, a_resolution TEXT, a_resolved_at TEXT, a_resolved_by TEXT,
            i_id BIGINT, i_project_id BIGINT, i_external_id TEXT, i_prompt TEXT,
            i_messages TEXT, i_metadata TEXT, i_category TEXT, i_gold TEXT, i_is_gold INTEGER,
            i_queue_rank INTEGER, i_priority DOUBLE PRECISION, i_n_human INTEGER,
            i_created_at TEXT, i_excluded_at TEXT,
            r_ids BIGINT[], r_idx INTEGER[], r_texts TEXT[], r_systems TEXT[])
        LANGUAGE plpgsql AS $$
        DECLARE
            v_active INTEGER;
            v_open_claim BIGINT;
            v_project BIGINT;
            v_settings TEXT;
            v_archived TEXT;
            v_epoch BIGINT;
            v_routed BOOLEAN[];
            v_served BIGINT;
            v_served_gold BIGINT;
            v_golds INTEGER[];
            v_gold INTEGER;
            v_rank INTEGER;
            v_level INTEGER;
            v_priority DOUBLE PRECISION;
            v_cursor_item BIGINT;
            v_first_mode INTEGER;
            v_item BIGINT;
            v_n_responses INTEGER;
            v_item_level INTEGER;
            v_item_priority DOUBLE PRECISION;
            v_order JSONB;
            v_claim BIGINT;
            v_inserted BOOLEAN;
            v_resumed BOOLEAN := FALSE;
        BEGIN
            -- As _RATER_AND_CURSORS: the rater row lock serializes their claims.
            SELECT r.active, (SELECT a.id FROM assignments a JOIN items i ON i.id = a.item_id
                    WHERE a.rater_id = r.id AND i.project_id = p_project
                    AND a.status = 'claimed' AND a.expires_at > p_now
                    AND i.excluded_at IS NULL ORDER BY a.id LIMIT 1),
                p.id, CAST(p.settings AS TEXT), p.archived_at, p.queue_epoch,
                ARRAY[EXISTS (SELECT 1 FROM items q WHERE q.project_id = p_project
                        AND q.is_gold = 0 AND q.queue_rank = 0),
                    EXISTS (SELECT 1 FROM items q WHERE q.project_id = p_project
                        AND q.is_gold = 1 AND q.queue_rank = 0)],
                s.served, s.served_gold
            INTO v_active, v_open_claim, v_project, v_settings, v_archived, v_epoch,
                v_routed, v_served, v_served_gold
            FROM raters r LEFT JOIN projects p ON p.id = p_project
            LEFT JOIN served_counts s ON s.rater_id = r.id AND s.project_id = p_project
            WHERE r.id = p_rater FOR UPDATE OF r;
            IF NOT FOUND OR v_project IS NULL OR v_archived IS NOT NULL
                    OR COALESCE(v_active, 0) = 0 THEN
                o_outcome := 'fallback';  -- the Python path says what is wrong
                RETURN NEXT;
                RETURN;
            END IF;
            IF v_settings IS DISTINCT FROM p_settings THEN
                o_outcome := 'settings';
                o_settings := v_settings;
                RETURN NEXT;
                RETURN;
            END IF;
            IF v_open_claim IS NOT NULL THEN
                v_claim := v_open_claim;
                v_resumed := TRUE;
            ELSE
                -- The queues in claims._claim's order: gold at the gold rate first,
                -- then plain items, then gold when it was not first; each queue rank 0
                -- (routed to humans) when any item is, then rank 1.
                IF p_gold_rate > 0 AND floor((COALESCE(v_served, 0) + 1) * p_gold_rate)
                        > COALESCE(v_served_gold, 0) THEN
                    v_golds := ARRAY[1, 0];
                ELSIF p_gold_rate > 0 THEN
                    v_golds := ARRAY[0, 1];
                ELSE
                    v_golds := ARRAY[0];
                END IF;
                <<queues>>
                FOREACH v_gold IN ARRAY v_golds LOOP
                    FOR v_rank IN 0..1 LOOP
                        CONTINUE WHEN v_rank = 0 AND NOT v_routed[v_gold + 1];
                        -- The cursor, if still valid (see _claim).
                        SELECT c.n_human, c.priority, c.item_id
                            INTO v_level, v_priority, v_cursor_item
                        FROM claim_cursors c WHERE c.rater_id = p_rater
                            AND c.project_id = p_project AND c.is_gold = v_gold
                            AND c.queue_rank = v_rank AND c.epoch = v_epoch
                            AND c.claimed_at <= p_now
                            AND NOT EXISTS (SELECT 1 FROM assignments x
                                WHERE x.status = 'claimed' AND x.expires_at > c.claimed_at
                                AND x.expires_at <= p_now);
                        v_first_mode := CASE WHEN FOUND THEN 1 ELSE 4 END;
                        -- Modes: 1 the rest of the cursor's priority, 2 the rest of its
                        -- level, 3 the levels above it, 4 the whole queue.
                        FOR v_mode IN v_first_mode..4 LOOP
                            LOOP
                                IF v_mode = 1 THEN
                                    SELECT i.id, (SELECT COUNT(*) FROM responses r
                                            WHERE r.item_id = i.id), i.n_human, i.priority
                                        INTO v_item, v_n_responses, v_item_level, v_item_priority
                                    FROM items i
                                    WHERE i.project_id = p_project AND i.is_gold = v_gold
                                    AND i.queue_rank = v_rank AND i.n_human = v_level
                                    AND i.priority = v_priority AND i.id > v_cursor_item
                                    AND i.n_human < p_cap AND i.excluded_at IS NULL
                                    AND i.n_human + (SELECT COUNT(*) FROM assignments a
                                        WHERE a.item_id = i.id AND a.status = 'claimed'
                                        AND a.expires_at > p_now) < p_cap
                                    AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id
                                        AND x.rater_id = p_rater AND (x.status != 'claimed'
                                        OR x.expires_at > p_now) LIMIT 1) IS NULL
                                    AND (SELECT 1 FROM judgments j WHERE j.rater_id = p_rater
                                        AND j.item_id = i.id LIMIT 1) IS NULL
                                    ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1
                                    FOR UPDATE OF i SKIP LOCKED;
                                ELSIF v_mode = 2 THEN
                                    SELECT i.id, (SELECT COUNT(*) FROM responses r
                                            WHERE r.item_id = i.id), i.n_human, i.priority
                                        INTO v_item, v_n_responses, v_item_level, v_item_priority
                                    FROM items i
                                    WHERE i.project_id = p_project AND i.is_gold = v_gold
                                    AND i.queue_rank = v_rank AND i.n_human = v_level
                                    AND i.priority < v_priority
                                    AND i.n_human < p_cap AND i.excluded_at IS NULL
                                    AND i.n_human + (SELECT COUNT(*) FROM assignments a
                                        WHERE a.item_id = i.id AND a.status = 'claimed'
                                        AND a.expires_at > p_now) < p_cap
                                    AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id
                                        AND x.rater_id = p_rater AND (x.status != 'claimed'
                                        OR x.expires_at > p_now) LIMIT 1) IS NULL
                                    AND (SELECT 1 FROM judgments j WHERE j.rater_id = p_rater
                                        AND j.item_id = i.id LIMIT 1) IS NULL
                                    ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1
                                    FOR UPDATE OF i SKIP LOCKED;
                                ELSE
                                    SELECT i.id, (SELECT COUNT(*) FROM responses r
                                            WHERE r.item_id = i.id), i.n_human, i.priority
                                        INTO v_item, v_n_responses, v_item_level, v_item_priority
                                    FROM items i
                                    WHERE i.project_id = p_project AND i.is_gold = v_gold
                                    AND i.queue_rank = v_rank
                                    AND i.n_human > CASE WHEN v_mode = 3 THEN v_level ELSE -1 END
                                    AND i.n_human < p_cap AND i.excluded_at IS NULL
                                    AND i.n_human + (SELECT COUNT(*) FROM assignments a
                                        WHERE a.item_id = i.id AND a.status = 'claimed'
                                        AND a.expires_at > p_now) < p_cap
                                    AND (SELECT 1 FROM assignments x WHERE x.item_id = i.id
                                        AND x.rater_id = p_rater AND (x.status != 'claimed'
                                        OR x.expires_at > p_now) LIMIT 1) IS NULL
                                    AND (SELECT 1 FROM judgments j WHERE j.rater_id = p_rater
                                        AND j.item_id = i.id LIMIT 1) IS NULL
                                    ORDER BY i.n_human, i.priority DESC, i.id LIMIT 1
                                    FOR UPDATE OF i SKIP LOCKED;
                                END IF;
                                EXIT WHEN NOT FOUND;
                                IF v_n_responses > COALESCE(array_length(p_order_keys, 1), 0)
                                        THEN
                                    o_outcome := 'fallback';  -- nothing written yet
                                    RETURN NEXT;
                                    RETURN;
                                END IF;
                                -- The display order: the responses sorted by the caller's
                                -- random keys, a uniformly random permutation.
                                v_order := COALESCE((SELECT jsonb_agg(k.pos - 1
                                        ORDER BY k.key, k.pos)
                                    FROM unnest(p_order_keys[1:v_n_responses])
                                        WITH ORDINALITY AS k(key, pos)), '[]');
                                -- As _CLAIM: a new statement, so a claim committed
                                -- meanwhile counts in the quota recheck.
                                INSERT INTO assignments (item_id, rater_id, claimed_at,
                                    expires_at, status, display_order, updated_at)
                                SELECT v_item, p_rater, p_now, p_expires, 'claimed', v_order,
                                    p_now
                                WHERE (SELECT i.n_human + (SELECT COUNT(*) FROM assignments a
                                    WHERE a.item_id = i.id AND a.status = 'claimed'
                                    AND a.expires_at > p_now) FROM items i
                                    WHERE i.id = v_item) < p_cap
                                ON CONFLICT (item_id, rater_id) DO UPDATE SET
                                    claimed_at = excluded.claimed_at,
                                    expires_at = excluded.expires_at,
                                    display_order = excluded.display_order,
                                    updated_at = excluded.updated_at
                                RETURNING id, xmax = 0 INTO v_claim, v_inserted;
                                IF v_claim IS NOT NULL THEN
                                    INSERT INTO claim_cursors (rater_id, project_id, is_gold,
                                        queue_rank, epoch, claimed_at, n_human, priority,
                                        item_id)
                                    VALUES (p_rater, p_project, v_gold, v_rank, v_epoch, p_now,
                                        v_item_level, v_item_priority, v_item)
                                    ON CONFLICT (rater_id, project_id, is_gold, queue_rank)
                                    DO UPDATE SET epoch = excluded.epoch,
                                        claimed_at = excluded.claimed_at,
                                        n_human = excluded.n_human,
                                        priority = excluded.priority,
                                        item_id = excluded.item_id;
                                    IF v_inserted THEN
                                        INSERT INTO served_counts (rater_id, project_id, served,
                                            served_gold)
                                        VALUES (p_rater, p_project, 1, v_gold)
                                        ON CONFLICT (rater_id, project_id) DO UPDATE SET
                                            served = served_counts.served + 1,
                                            served_gold = served_counts.served_gold
                                                + excluded.served_gold;
                                    END IF;
                                    EXIT queues;
                                END IF;
                            END LOOP;
                            -- None free in the whole queue: if one is only held by a claim
                            -- or submit in flight, the Python path waits for it.
                            IF v_mode = 4 AND EXISTS (SELECT 1 FROM items i
                                    WHERE i.project_id = p_project AND i.is_gold = v_gold
                                    AND i.queue_rank = v_rank AND i.n_human < p_cap
                                    AND i.excluded_at IS NULL
                                    AND i.n_human + (SELECT COUNT(*) FROM assignments a
                                        WHERE a.item_id = i.id AND a.status = 'claimed'
                                        AND a.expires_at > p_now) < p_cap
                                    AND NOT EXISTS (SELECT 1 FROM assignments x
                                        WHERE x.item_id = i.id AND x.rater_id = p_rater
                                        AND (x.status != 'claimed' OR x.expires_at > p_now))
                                    AND NOT EXISTS (SELECT 1 FROM judgments j
                                        WHERE j.rater_id = p_rater AND j.item_id = i.id)) THEN
                                o_outcome := 'fallback';
                                RETURN NEXT;
                                RETURN;
                            END IF;
                        END LOOP;
                    END LOOP;
                END LOOP;
                IF v_claim IS NULL THEN
                    o_outcome := 'none';
                    RETURN NEXT;
                    RETURN;
                END IF;
            END IF;
            -- The claim, its item and responses (as get_item), read after the writes.
            RETURN QUERY SELECT 'claimed', CAST(NULL AS TEXT), v_resumed,
                a.id, a.item_id, a.rater_id, a.claimed_at, a.expires_at, a.status, a.reason,
                CAST(a.display_order AS TEXT), a.updated_at, a.resolution, a.resolved_at,
                a.resolved_by,
                i.id, i.project_id, i.external_id, i.prompt, CAST(i.messages AS TEXT),
                CAST(i.metadata AS TEXT), i.category, CAST(i.gold AS TEXT), i.is_gold,
                i.queue_rank, i.priority, i.n_human, i.created_at, i.excluded_at,
                rs.ids, rs.idx, rs.texts, rs.systems
            FROM assignments a JOIN items i ON i.id = a.item_id
            LEFT JOIN LATERAL (SELECT array_agg(r.id ORDER BY r.idx) AS ids,
                    array_agg(r.idx ORDER BY r.idx) AS idx,
                    array_agg(r.text ORDER BY r.idx) AS texts,
                    array_agg(r.system ORDER BY r.idx) AS systems
                FROM responses r WHERE r.item_id = i.id) rs ON TRUE
            WHERE a.id = v_claim;
        END $$;
        """,
    ),
    Migration(
        "m011_submit_in_one_call",
        # Issue 15: a PostgreSQL submit in one round trip instead of two: the reads
        # of judgments._SUBMIT_CONTEXT, then prefstore_submit (replaced here with one
        # statement changed: its first-judgment probe goes by the item). The caller checked the
        # label against its own guess of the item's response count (p_min_n, p_rank_n,
        # p_order_n); anything else than the plain case (no such rater or item, another
        # count, not this rater's claim, a claim's order that does not fit) answers
        # NULL, NULL having written nothing, and the caller takes the checked path.
        sqlite="",
        postgres="""
        CREATE OR REPLACE FUNCTION prefstore_submit(
            p_item BIGINT, p_rater BIGINT, p_kind TEXT, p_display_order TEXT, p_outcome TEXT,
            p_choice INTEGER, p_ranking TEXT, p_strength INTEGER, p_aspects TEXT,
            p_rationale TEXT, p_reason_tags TEXT, p_edited TEXT, p_metadata TEXT,
            p_time_ms BIGINT, p_submission_id TEXT, p_created_at TEXT, p_project BIGINT,
            p_default_cap INTEGER, p_lock_key INTEGER) RETURNS BIGINT LANGUAGE plpgsql AS $$
        DECLARE
            new_id BIGINT;
            cap INTEGER;
            human INTEGER := CASE WHEN p_kind = 'human' THEN 1 ELSE 0 END;
            item_project BIGINT;
            item_n INTEGER;
            item_rank INTEGER;
            item_excluded TEXT;
            first_judgment BOOLEAN;
            touched BOOLEAN;
            open_before BOOLEAN;
            open_after BOOLEAN;
        BEGIN
            -- Shared: a recount of the project's counters waits for this write.
            PERFORM pg_advisory_xact_lock_shared(p_lock_key, CAST(p_project AS INTEGER));
            -- The cap as it is now: a settings change commits under the exclusive lock.
            SELECT COALESCE(CAST(settings ->> 'raters_per_item' AS INTEGER), p_default_cap)
                INTO cap FROM projects WHERE id = p_project;
            INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice,
                ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms,
                submission_id, created_at)
            VALUES (p_item, p_rater, p_kind, CAST(p_display_order AS JSONB), p_outcome,
                p_choice, CAST(p_ranking AS JSONB), p_strength, CAST(p_aspects AS JSONB),
                p_rationale, CAST(p_reason_tags AS JSONB), p_edited,
                CAST(p_metadata AS JSONB), p_time_ms, p_submission_id, p_created_at)
            ON CONFLICT (rater_id, submission_id) DO NOTHING RETURNING id INTO new_id;
            IF new_id IS NULL THEN
                RETURN NULL;  -- a double submit: the first one is kept
            END IF;
            -- The item's row lock: of two submits racing for its last slot exactly one
            -- sees it fill, and the statements below see every committed touch of it.
            UPDATE items SET n_human = n_human + human WHERE id = p_item
                RETURNING project_id, n_human, queue_rank, excluded_at
                INTO item_project, item_n, item_rank, item_excluded;
            IF human = 1 THEN
                UPDATE assignments SET status = 'done', updated_at = p_created_at
                    WHERE item_id = p_item AND rater_id = p_rater AND status = 'claimed';
            END IF;
            IF item_excluded IS NOT NULL THEN
                RETURN new_id;  -- excluded items count nowhere
            END IF;
            open_after := item_rank < 2 AND item_n < cap;
            open_before := item_rank < 2 AND item_n - human < cap;
            -- By the item's few judgments: "rater_id + 0" keeps the planner off the
            -- rater's indexes, which a plan cached before the first ANALYZE (a new
            -- database) walked row by row through the rater's whole history.
            first_judgment := NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = p_item
                AND j.rater_id + 0 = p_rater AND j.id <> new_id);
            touched := NOT first_judgment OR EXISTS (SELECT 1 FROM assignments a
                WHERE a.rater_id = p_rater AND a.item_id = p_item
                AND a.status IN ('skipped', 'flagged'));
            INSERT INTO rater_counts (rater_id, project_id) VALUES (p_rater, item_project)
                ON CONFLICT (rater_id, project_id) DO NOTHING;
            IF open_before AND NOT open_after THEN
                -- Counter rows locked in rater order: two closing submits never wait
                -- on each other in a cycle.
                PERFORM 1 FROM rater_counts c WHERE c.project_id = item_project
                    AND c.rater_id IN (SELECT j.rater_id FROM judgments j
                        WHERE j.item_id = p_item AND j.id <> new_id
                        UNION SELECT a.rater_id FROM assignments a WHERE a.item_id = p_item
                        AND a.status IN ('skipped', 'flagged') UNION SELECT p_rater)
                    ORDER BY c.rater_id FOR UPDATE;
                UPDATE rater_counts SET open_mine = open_mine - 1
                    WHERE project_id = item_project AND rater_id IN (
                        SELECT j.rater_id FROM judgments j WHERE j.item_id = p_item
                        AND j.id <> new_id UNION SELECT a.rater_id FROM assignments a
                        WHERE a.item_id = p_item AND a.status IN ('skipped', 'flagged'));
                UPDATE projects SET open_items = open_items - 1 WHERE id = item_project;
            END IF;
            UPDATE rater_counts SET done = done + CAST(first_judgment AS INTEGER),
                open_mine = open_mine + CAST(NOT touched AND open_after AS INTEGER)
                WHERE rater_id = p_rater AND project_id = item_project;
            RETURN new_id;
        END $$;
        CREATE FUNCTION prefstore_submit_one(
            p_item BIGINT, p_rater BIGINT, p_submission_id TEXT, p_kind TEXT,
            p_display_order TEXT, p_outcome TEXT, p_choice INTEGER, p_ranking TEXT,
            p_strength INTEGER, p_aspects TEXT, p_rationale TEXT, p_reason_tags TEXT,
            p_edited TEXT, p_metadata TEXT, p_time_ms BIGINT, p_created_at TEXT,
            p_now_ms DOUBLE PRECISION, p_assignment BIGINT, p_min_n INTEGER,
            p_rank_n INTEGER, p_order_n INTEGER, p_default_cap INTEGER, p_lock_key INTEGER)
        RETURNS TABLE (o_id BIGINT, o_created BOOLEAN) LANGUAGE plpgsql AS $$
        DECLARE
            v_id BIGINT;
            v_kind TEXT;
            v_n INTEGER;
            v_project BIGINT;
            v_claim_item BIGINT;
            v_claimed_at TEXT;
            v_claim_order TEXT;
            v_order TEXT := p_display_order;
            v_time BIGINT := p_time_ms;
        BEGIN
            -- A double submit is found by the insert's ON CONFLICT, through the unique
            -- index, or answers NULL, NULL below if its label does not fit.
            SELECT kind INTO v_kind FROM raters WHERE id = p_rater;
            SELECT COUNT(*) INTO v_n FROM responses WHERE item_id = p_item;
            SELECT project_id INTO v_project FROM items WHERE id = p_item;
            IF v_kind IS NULL OR v_n = 0 OR v_project IS NULL OR v_n < p_min_n
                    OR v_n <> COALESCE(p_rank_n, v_n) OR v_n <> COALESCE(p_order_n, v_n) THEN
                RETURN QUERY SELECT CAST(NULL AS BIGINT), CAST(NULL AS BOOLEAN);
                RETURN;
            END IF;
            IF p_assignment IS NOT NULL THEN
                SELECT item_id, claimed_at, CAST(display_order AS TEXT)
                    INTO v_claim_item, v_claimed_at, v_claim_order
                    FROM assignments WHERE id = p_assignment AND rater_id = p_rater;
                IF v_claim_item IS DISTINCT FROM p_item THEN
                    RETURN QUERY SELECT CAST(NULL AS BIGINT), CAST(NULL AS BOOLEAN);
                    RETURN;
                END IF;
                IF v_time IS NULL THEN
                    -- As the checked path: whole milliseconds since the claim, at least 1.
                    v_time := GREATEST(1, CAST(trunc(p_now_ms - 1000 * EXTRACT(EPOCH FROM
                        CAST(v_claimed_at AS TIMESTAMPTZ))) AS BIGINT));
                END IF;
                IF v_order IS NULL THEN
                    v_order := v_claim_order;
                    -- The checked path refuses an order that is no permutation of 0..n-1.
                    IF v_order IS NOT NULL AND (jsonb_typeof(CAST(v_order AS JSONB)) <> 'array'
                            OR jsonb_array_length(CAST(v_order AS JSONB)) <> v_n
                            OR (SELECT COUNT(DISTINCT e) FROM jsonb_array_elements(
                                CAST(v_order AS JSONB)) e WHERE e IN (SELECT to_jsonb(g)
                                FROM generate_series(0, v_n - 1) g)) <> v_n) THEN
                        RETURN QUERY SELECT CAST(NULL AS BIGINT), CAST(NULL AS BOOLEAN);
                        RETURN;
                    END IF;
                END IF;
            END IF;
            v_id := prefstore_submit(p_item, p_rater, COALESCE(p_kind, v_kind), v_order,
                p_outcome, p_choice, p_ranking, p_strength, p_aspects, p_rationale,
                p_reason_tags, p_edited, p_metadata, v_time, p_submission_id, p_created_at,
                v_project, p_default_cap, p_lock_key);
            IF v_id IS NULL THEN  -- a racing double submit committed first
                SELECT id INTO v_id FROM judgments
                    WHERE rater_id = p_rater AND submission_id = p_submission_id;
                RETURN QUERY SELECT v_id, FALSE;
                RETURN;
            END IF;
            RETURN QUERY SELECT v_id, TRUE;
        END $$;
        """,
    ),    Migration(
        "m012_submit_inline",
        # Issue 15: prefstore_submit_one with prefstore_submit's writes inline and its
        # statements merged (the three reads in one, the cap read with the item's
        # update, the counter row made and moved in one upsert): 7 statements instead
        # of 13 and no nested call, 16% less server time per submit in an A/B run.
        # It returns OUT parameters (a row, not a set), so it is dropped and made
        # again in this transaction. The checked path calls it too; prefstore_submit
        # stays for app replicas of the previous version during a rolling upgrade.
        sqlite="",
        postgres="""
        DROP FUNCTION prefstore_submit_one(BIGINT, BIGINT, TEXT, TEXT, TEXT, TEXT, INTEGER,
            TEXT, INTEGER, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, TEXT, DOUBLE PRECISION,
            BIGINT, INTEGER, INTEGER, INTEGER, INTEGER, INTEGER);
        CREATE FUNCTION prefstore_submit_one(
            p_item BIGINT, p_rater BIGINT, p_submission_id TEXT, p_kind TEXT,
            p_display_order TEXT, p_outcome TEXT, p_choice INTEGER, p_ranking TEXT,
            p_strength INTEGER, p_aspects TEXT, p_rationale TEXT, p_reason_tags TEXT,
            p_edited TEXT, p_metadata TEXT, p_time_ms BIGINT, p_created_at TEXT,
            p_now_ms DOUBLE PRECISION, p_assignment BIGINT, p_min_n INTEGER,
            p_rank_n INTEGER, p_order_n INTEGER, p_default_cap INTEGER, p_lock_key INTEGER,
            OUT o_id BIGINT, OUT o_created BOOLEAN) LANGUAGE plpgsql AS $$
        DECLARE
            v_kind TEXT;
            v_n INTEGER;
            v_project BIGINT;
            v_claim_item BIGINT;
            v_claimed_at TEXT;
            v_claim_order TEXT;
            v_order TEXT := p_display_order;
            v_time BIGINT := p_time_ms;
            cap INTEGER;
            human INTEGER;
            item_n INTEGER;
            item_rank INTEGER;
            item_excluded TEXT;
            first_judgment BOOLEAN;
            touched BOOLEAN;
            open_before BOOLEAN;
            open_after BOOLEAN;
        BEGIN
            -- A double submit is found by the insert's ON CONFLICT, through the unique
            -- index, or answers NULL, NULL below if its label does not fit.
            SELECT i.project_id, r.kind, (SELECT COUNT(*) FROM responses WHERE item_id = p_item)
                INTO v_project, v_kind, v_n
                FROM items i LEFT JOIN raters r ON r.id = p_rater WHERE i.id = p_item;
            IF v_kind IS NULL OR v_n = 0 OR v_project IS NULL OR v_n < p_min_n
                    OR v_n <> COALESCE(p_rank_n, v_n) OR v_n <> COALESCE(p_order_n, v_n) THEN
                RETURN;
            END IF;
            IF p_assignment IS NOT NULL THEN
                SELECT item_id, claimed_at, CAST(display_order AS TEXT)
                    INTO v_claim_item, v_claimed_at, v_claim_order
                    FROM assignments WHERE id = p_assignment AND rater_id = p_rater;
                IF v_claim_item IS DISTINCT FROM p_item THEN
                    RETURN;
                END IF;
                IF v_time IS NULL THEN
                    -- As the checked path: whole milliseconds since the claim, at least 1.
                    v_time := GREATEST(1, CAST(trunc(p_now_ms - 1000 * EXTRACT(EPOCH FROM
                        CAST(v_claimed_at AS TIMESTAMPTZ))) AS BIGINT));
                END IF;
                IF v_order IS NULL THEN
                    v_order := v_claim_order;
                    -- The checked path refuses an order that is no permutation of 0..n-1.
                    IF v_order IS NOT NULL AND (jsonb_typeof(CAST(v_order AS JSONB)) <> 'array'
                            OR jsonb_array_length(CAST(v_order AS JSONB)) <> v_n
                            OR (SELECT COUNT(DISTINCT e) FROM jsonb_array_elements(
                                CAST(v_order AS JSONB)) e WHERE e IN (SELECT to_jsonb(g)
                                FROM generate_series(0, v_n - 1) g)) <> v_n) THEN
                        RETURN;
                    END IF;
                END IF;
            END IF;
            v_kind := COALESCE(p_kind, v_kind);
            human := CASE WHEN v_kind = 'human' THEN 1 ELSE 0 END;
            -- Shared: a recount of the project's counters waits for this write.
            PERFORM pg_advisory_xact_lock_shared(p_lock_key, CAST(v_project AS INTEGER));
            INSERT INTO judgments (item_id, rater_id, kind, display_order, outcome, choice,
                ranking, strength, aspects, rationale, reason_tags, edited, metadata, time_ms,
                submission_id, created_at)
            VALUES (p_item, p_rater, v_kind, CAST(v_order AS JSONB), p_outcome,
                p_choice, CAST(p_ranking AS JSONB), p_strength, CAST(p_aspects AS JSONB),
                p_rationale, CAST(p_reason_tags AS JSONB), p_edited,
                CAST(p_metadata AS JSONB), v_time, p_submission_id, p_created_at)
            ON CONFLICT (rater_id, submission_id) DO NOTHING RETURNING id INTO o_id;
            IF o_id IS NULL THEN  -- a double submit: the first one is kept
                SELECT id INTO o_id FROM judgments
                    WHERE rater_id = p_rater AND submission_id = p_submission_id;
                o_created := FALSE;
                RETURN;
            END IF;
            o_created := TRUE;
            -- The item's row lock: of two submits racing for its last slot exactly one
            -- sees it fill, and the statements below see every committed touch of it.
            -- The cap as it is now, read after the lock: a settings change commits
            -- under the exclusive one.
            UPDATE items SET n_human = n_human + human FROM projects p
                WHERE items.id = p_item AND p.id = items.project_id
                RETURNING items.n_human, items.queue_rank, items.excluded_at,
                    COALESCE(CAST(p.settings ->> 'raters_per_item' AS INTEGER), p_default_cap)
                INTO item_n, item_rank, item_excluded, cap;
            IF human = 1 THEN
                UPDATE assignments SET status = 'done', updated_at = p_created_at
                    WHERE item_id = p_item AND rater_id = p_rater AND status = 'claimed';
            END IF;
            IF item_excluded IS NOT NULL THEN
                RETURN;  -- excluded items count nowhere
            END IF;
            open_after := item_rank < 2 AND item_n < cap;
            open_before := item_rank < 2 AND item_n - human < cap;
            -- By the item's few judgments: "rater_id + 0" keeps the planner off the
            -- rater's indexes, which a plan cached before the first ANALYZE (a new
            -- database) walked row by row through the rater's whole history.
            SELECT NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = p_item
                    AND j.rater_id + 0 = p_rater AND j.id <> o_id),
                EXISTS (SELECT 1 FROM assignments a WHERE a.rater_id = p_rater
                    AND a.item_id = p_item AND a.status IN ('skipped', 'flagged'))
                INTO first_judgment, touched;
            touched := touched OR NOT first_judgment;
            IF open_before AND NOT open_after THEN
                INSERT INTO rater_counts (rater_id, project_id) VALUES (p_rater, v_project)
                    ON CONFLICT (rater_id, project_id) DO NOTHING;
                -- Counter rows locked in rater order: two closing submits never wait
                -- on each other in a cycle.
                PERFORM 1 FROM rater_counts c WHERE c.project_id = v_project
                    AND c.rater_id IN (SELECT j.rater_id FROM judgments j
                        WHERE j.item_id = p_item AND j.id <> o_id
                        UNION SELECT a.rater_id FROM assignments a WHERE a.item_id = p_item
                        AND a.status IN ('skipped', 'flagged') UNION SELECT p_rater)
                    ORDER BY c.rater_id FOR UPDATE;
                UPDATE rater_counts SET open_mine = open_mine - 1
                    WHERE project_id = v_project AND rater_id IN (
                        SELECT j.rater_id FROM judgments j WHERE j.item_id = p_item
                        AND j.id <> o_id UNION SELECT a.rater_id FROM assignments a
                        WHERE a.item_id = p_item AND a.status IN ('skipped', 'flagged'));
                UPDATE projects SET open_items = open_items - 1 WHERE id = v_project;
            END IF;
            INSERT INTO rater_counts AS c (rater_id, project_id, done, open_mine)
                VALUES (p_rater, v_project, CAST(first_judgment AS INTEGER),
                        CAST(NOT touched AND open_after AS INTEGER))
                ON CONFLICT (rater_id, project_id) DO UPDATE
                SET done = c.done + excluded.done, open_mine = c.open_mine + excluded.open_mine;
        END $$;
        """,
    ),
]

# Big JSON results (fits, reports) stay TEXT on PostgreSQL too: they are written
# and read whole, never queried inside, and jsonb would reorder their keys.

def _statements(script: str) -> list[str]:
    """Split a script into complete statements (a trigger body's ``;`` stays inside)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _apply_sqlite(db, migration: Migration) -> None:
    # Statement by statement: executescript() would COMMIT the migration's
    # transaction first, and a failed migration must leave nothing behind.
    for statement in _statements(migration.sqlite):
        db.execute(statement)
    if migration.python is not None:
        migration.python(db)


_sqlite_migrations = Migrations(MIGRATION_SET)
for _migration in MIGRATIONS:
    _sqlite_migrations(name=_migration.name)(
        lambda db, migration=_migration: _apply_sqlite(db, migration))

KNOWN = [m.name for m in MIGRATIONS]


def _applied(db) -> list[str] | None:
    """Return the names of the applied migrations, or None if prefstore never ran here."""
    if db.dialect == "sqlite":
        if not db["_sqlite_migrations"].exists():
            return None
        return [m.name for m in _sqlite_migrations.applied(db)]
    exists = db.execute("SELECT to_regclass(?) IS NOT NULL", [PG_MIGRATIONS_TABLE]).fetchone()[0]
    if not exists:
        return None
    return [r[0] for r in db.execute(
        "SELECT name FROM prefstore_migrations ORDER BY id")]


def check(db) -> list[str]:
    """Refuse a database that is not prefstore's, or that a newer prefstore wrote.

    Returns the applied migrations (empty for a new, empty database).
    """
    applied = _applied(db)
    where = f"database {describe(db.target)}"
    if not applied:
        foreign = [t for t in db.table_names()
                   if not t.startswith(("_sqlite_", "sqlite_")) and t != PG_MIGRATIONS_TABLE]
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (", …" if len(foreign) > 5 else "")
            raise UnusableDatabase(f"{where} is not a prefstore database (it has tables "
                                   f"{shown}); give another --db")
        return []
    newer = [name for name in applied if name not in KNOWN]
    if newer:
        raise UnusableDatabase(f"{where} was written by a newer prefstore (schema "
                               f"{newer[-1]}); upgrade prefstore to open it")
    return applied


def migrate(db) -> None:
    """Create or upgrade the schema (after :func:`check`)."""
    if db.dialect == "sqlite":
        check(db)
        if _sqlite_migrations.pending(db) or not db["_sqlite_migrations"].exists():
            with write(db):
                # Re-read inside the write lock: another process may have migrated.
                check(db)
                _sqlite_migrations.apply(db)
        return
    import psycopg

    try:
        with write(db):
            # Waits for another replica's migration, but not forever: a wedged
            # session must give an error that names it, not a hung start.
            db.execute(f"SET LOCAL lock_timeout = '{PG_MIGRATION_WAIT_S}s'")
            db.execute("SELECT pg_advisory_xact_lock(?)", [PG_MIGRATION_LOCK])
            db.execute(
                "CREATE TABLE IF NOT EXISTS prefstore_migrations (id BIGINT GENERATED BY DEFAULT "
                "AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)")
            done = set(check(db))
            for migration in MIGRATIONS:
                if migration.name not in done:
                    db._conn.execute(migration.postgres)
                    if migration.python is not None:
                        migration.python(db)
                    db.execute("INSERT INTO prefstore_migrations (name, applied_at) "
                               "VALUES (?, now()::text)", [migration.name])
    except psycopg.errors.LockNotAvailable as exc:
        raise UnusableDatabase(
            f"database {describe(db.target)}: waited more than {PG_MIGRATION_WAIT_S} s for a "
            "lock to check or upgrade its schema (another prefstore process is migrating it, "
            "or a session holds it); try again, or look in pg_stat_activity") from exc
