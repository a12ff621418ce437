"""The store: every SQL statement prefstore runs, organised by what is stored.

Functions take the store handle first and return plain dicts (or frames), in
the manner of sqlite-utils. SQLite through sqlite-utils is the embedded
default; a ``postgresql://`` URL selects PostgreSQL (``pip install
'prefstore[postgres]'``) with the same guarantees: append-only judgments,
idempotent submits, all-or-nothing imports, claims that never over-serve, and
worker leases.

Modules: :mod:`~prefstore.store.connection` (opening, transactions, backup),
:mod:`~prefstore.store.schema` (migrations for both backends),
:mod:`~prefstore.store.projects`, :mod:`~prefstore.store.raters`,
:mod:`~prefstore.store.items`, :mod:`~prefstore.store.claims`,
:mod:`~prefstore.store.judgments`, :mod:`~prefstore.store.judging` (the LLM
judges' per-item state and response cache), :mod:`~prefstore.store.jobs`,
:mod:`~prefstore.store.reports`, :mod:`~prefstore.store.pair_counts` (the
pairwise models' running counts), :mod:`~prefstore.store.review` (the admin's
review of skips and flags), :mod:`~prefstore.store.columns` (a columnar copy of
the judgments for the worker's reports), :mod:`~prefstore.store.routing` and
:mod:`~prefstore.store.synthetic` (benchmark data). Their functions are
re-exported here, so callers write ``store.claim_next(db, ...)``.
"""

from prefstore.store.claims import (
    claim_next,
    get_assignment,
    release_assignment,
)
from prefstore.store.columns import judgment_columns, report_frame
from prefstore.store.connection import (
    BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    UnusableDatabase,
    backup,
    canonical,
    close_pool,
    close_pools,
    connect,
    default_db,
    describe,
    driver_errors,
    integrity_check,
    is_postgres,
    now_iso,
    parse_iso,
    translate_error,
    write,
)
from prefstore.store.items import (
    ITEM_ORDERS,
    MAX_FILTER_CHARS,
    ROUTING_FILTERS,
    count_items_missing_judgment,
    excluded_items,
    existing_external_ids,
    get_item,
    insert_items,
    item_by_external,
    item_detail,
    item_ids_by_external,
    items_frame,
    items_missing_judgment,
    items_report_frame,
    iter_items,
    open_item_count,
    responses_for_items,
    responses_frame,
    search_items,
    set_item_excluded,
    set_item_gold,
)
from prefstore.store.jobs import (
    claim_job,
    enqueue_job,
    finish_job,
    get_job,
    heartbeat_job,
    live_workers,
    recent_jobs,
    register_worker,
    release_job,
    worker_heartbeat,
)
from prefstore.store.judging import (
    RAW_MAX_CHARS,
    JudgeCache,
    count_judge_todo,
    has_judge_todo,
    judge_states,
    judge_submission_id,
    judge_todo,
    judge_usage,
    last_annotate_job,
    mark_judge_pending,
    save_judge_failure,
    save_judge_verdict,
)
from prefstore.store.judgments import (
    OUTCOMES,
    change_judgment,
    count_judgment_rows,
    count_judgments,
    dashboard_counts,
    data_version,
    edited_judgments_frame,
    gold_judgments,
    has_llm_judgments,
    insert_judgments,
    iter_judgment_rows,
    iter_judgment_rows_by_item,
    iter_pair_export_rows,
    judgments_by_id,
    judgments_frame,
    judgments_since,
    last_change_at,
    list_judgments,
    llm_judge_names,
    normalize_judgment,
    project_rater_summary,
    project_stats,
    recent_judgments,
    submit_judgment,
)
from prefstore.store.pair_counts import (
    fold_pair_counts,
    pair_count_totals,
    pair_counts_frame,
    reset_pair_counts,
    stored_pair_counts,
)
from prefstore.store.progress import rater_progress
from prefstore.store.projects import (
    TASK_KINDS,
    audit_log,
    create_project,
    ensure_project,
    find_project,
    get_project,
    list_projects,
    log_action,
    project_formerly_named,
    rename_project,
    set_project_archived,
    update_project_settings,
)
from prefstore.store.raters import (
    ADMIN_NAME,
    RATER_KINDS,
    ROLES,
    admin_rater,
    assign_rater,
    create_rater,
    get_or_create_rater,
    get_rater,
    hash_token,
    list_raters,
    name_key,
    normalize_name,
    project_rater_ids,
    rater_for_token,
    rater_judgments_frame,
    rater_project_ids,
    rotate_token,
    set_rater_active,
    unassign_rater,
)
from prefstore.store.reports import (
    last_fit_time,
    latest_fit,
    latest_report,
    save_fit,
    save_report,
)
from prefstore.store.review import RESOLUTIONS, resolve_review, review_counts, review_queue
from prefstore.store.routing import ROUTES, routing_counts, routing_frame, save_routing
from prefstore.store.synthetic import seed_synthetic

__all__ = [name for name in dir() if not name.startswith("_") and name not in (
    "claims", "connection", "items", "jobs", "judging", "judgments", "pair_counts", "progress",
    "projects", "raters", "reports", "review", "routing", "schema", "synthetic")]
