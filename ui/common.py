"""What every page shares: the per-thread store, state keys, and the identity gate."""

from __future__ import annotations

import contextvars
import os
import runpy
import threading
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from prefstore import access, demo, store
from prefstore import text as inert
from prefstore.errors import AccessDenied, Conflict, InvalidInput

APP_DIR = Path(__file__).resolve().parent.parent

_local = threading.local()


class Keys:
    """Every session-state key, widget key and query parameter, in one place.

    Widgets that belong to one served item get a per-item key from
    :meth:`item`, so a stale click on an item already submitted cannot land
    on the next one, and each item starts with empty fields.
    """

    # session state
    DEMO_CHECKED = "demo_checked"
    TOKEN = "token"
    LOCAL_NAME = "local_name"
    FLASH = "flash"
    # query parameters
    QP_TOKEN = "token"
    QP_PROJECT = "project"
    QP_NAME = "name"
    # widgets outside an item
    PROJECT = "project"
    LOCAL_NAME_INPUT = "local_name_input"
    LOCAL_NAME_GO = "local_name_go"
    # widgets of a served item (use Keys.item)
    CHOOSE_A = "choose_a"
    CHOOSE_B = "choose_b"
    TIE = "tie"
    BOTH_BAD = "both_bad"
    STRENGTH = "strength"
    STRENGTH_STEP = "strength_step"
    FLAG_NOTE = "flag_note"
    LOCAL_NAME_FORM = "local_name_form"
    SUBMIT = "submit"
    NOT_SAVED = "not_saved"  # session state: why a click's answer was not stored
    ASPECT = "aspect"
    RATIONALE = "rationale"
    TAG = "tag"
    EDIT_TARGET = "edit_target"
    EDIT = "edit"
    EDIT_OPEN = "edit_open"  # the improve box's open state (one key: see BOXES_ITEM)
    EDIT_DRAFT = "edit_draft"  # session state: the box's fields, kept while it is closed
    BEST = "best"
    DRAG = "drag"
    SORT = "sort"
    KEEP = "keep_order"
    SHOW_REST = "show_rest"
    RANK = "rank"
    SKIP_OPEN = "skip_open"  # the "Skip or flag" box's open state (one key: see BOXES_ITEM)
    BOXES_ITEM = "boxes_item"  # session state: the claim the two boxes' open state is for
    SKIP_DRAFT = "skip_draft"  # session state: the box's fields, kept while it is closed
    SKIP_REASON = "skip_reason"
    SKIP = "skip"
    FLAG_REASON = "flag_reason"
    FLAG = "flag"
    # undo: changing a previous judgment (use Keys.item with the project's id for
    # the picker, with the judgment's id for the change form)
    UNDO_OPEN = "undo_open"  # the "Previous judgments" box's open state
    UNDO_PICK = "undo_pick"
    UNDO_RESET = "undo_reset"  # session state: empty the picker on the next run
    UNDO_LABEL = "undo_label"
    UNDO_RANK = "undo_rank"
    UNDO_ALL_BAD = "undo_all_bad"
    UNDO_RATIONALE = "undo_rationale"
    UNDO_SAVE = "undo_save"
    UNDO_BACK = "undo_back"

    # ---- admin page (pages/admin.py) ------------------------------------
    # session state
    ADMIN_SELECT_NEXT = "admin_select_next"  # project to select on the next run
    ADMIN_UPLOAD_ROUND = "admin_upload_round"  # bumped to empty the uploader after an import
    ADMIN_EXPORT = "admin_export"  # the prepared export: path, summary, options
    # widgets outside a project form
    ADMIN_PROJECT = "admin_project"
    ADMIN_UPLOAD = "admin_upload"
    ADMIN_IMPORT = "admin_import"
    ADMIN_RATER_FORM = "admin_rater_form"
    ADMIN_RATER_NAME = "admin_rater_name"
    ADMIN_RATER_ROLE = "admin_rater_role"
    ADMIN_RATER_ADD = "admin_rater_add"
    ADMIN_RATER = "admin_rater"
    ADMIN_RATER_ACTIVE = "admin_rater_active"
    ADMIN_RATER_ROTATE = "admin_rater_rotate"
    ADMIN_RATER_PROJECTS = "admin_rater_projects"
    ADMIN_RATER_ASSIGN_FORM = "admin_rater_assign_form"
    ADMIN_RATER_ASSIGN = "admin_rater_assign"
    ADMIN_RATER_ASSIGN_SAVE = "admin_rater_assign_save"
    ADMIN_REFIT = "admin_refit"
    ADMIN_ROUTE = "admin_route"
    ADMIN_EXPORT_FORMAT = "admin_export_format"
    ADMIN_EXPORT_AGGREGATE = "admin_export_aggregate"
    ADMIN_EXPORT_KIND = "admin_export_kind"
    ADMIN_EXPORT_MIN_AGREEMENT = "admin_export_min_agreement"
    ADMIN_EXPORT_CONVERSATIONAL = "admin_export_conversational"
    ADMIN_EXPORT_REAL_NAMES = "admin_export_real_names"
    ADMIN_EXPORT_SLATE_PAIRS = "admin_export_slate_pairs"
    ADMIN_EXPORT_ORIGINAL_PAIR = "admin_export_original_pair"
    ADMIN_EXPORT_PREPARE = "admin_export_prepare"
    ADMIN_EXPORT_DOWNLOAD = "admin_export_download"
    ADMIN_RENAME = "admin_rename"  # per project: Keys.project_form(ADMIN_RENAME, id)
    ADMIN_RENAME_SAVE = "admin_rename_save"
    ADMIN_ARCHIVE = "admin_archive"
    ADMIN_REVIEW_DISMISS = "admin_review_dismiss"  # per row: Keys.item(base, assignment id)
    ADMIN_REVIEW_EXCLUDE = "admin_review_exclude"
    ADMIN_REVIEW_REQUEUE = "admin_review_requeue"
    ADMIN_INCLUDE = "admin_include"  # per item: f"{ADMIN_INCLUDE}:{project id}:{external id}"
    # widgets of the project form (use Keys.project_form: one set per project, so
    # choosing another project shows its own settings)
    PF_NAME = "pf_name"
    PF_KIND = "pf_kind"
    PF_RATERS_PER_ITEM = "pf_raters_per_item"
    PF_STRENGTH_SCALE = "pf_strength_scale"
    PF_RANKING_MODE = "pf_ranking_mode"
    PF_ASPECTS = "pf_aspects"
    PF_RATIONALE_REQUIRED = "pf_rationale_required"
    PF_RATIONALE_MIN_CHARS = "pf_rationale_min_chars"
    PF_REASON_TAGS = "pf_reason_tags"
    PF_EDITS_ALLOWED = "pf_edits_allowed"
    PF_GOLD_RATE = "pf_gold_rate"
    PF_GOLD_FEEDBACK = "pf_gold_feedback"
    PF_BUDGET_MODE = "pf_budget_mode"
    PF_BUDGET = "pf_budget"
    PF_GUIDELINES = "pf_guidelines"
    PF_JUDGE_MODEL = "pf_judge_model"
    PF_JUDGE_BACKEND = "pf_judge_backend"
    PF_JUDGE_BATCH = "pf_judge_batch"
    PF_JUDGE_MAX_LENGTH = "pf_judge_max_length"
    PF_JUDGE_DEVICE = "pf_judge_device"
    PF_JUDGE_DTYPE = "pf_judge_dtype"
    PF_JUDGE_TIE = "pf_judge_tie"
    PF_JUDGE_RATIONALE = "pf_judge_rationale"
    PF_JUDGE_BASE_URL = "pf_judge_base_url"
    PF_JUDGE_API_KEY_ENV = "pf_judge_api_key_env"
    PF_JUDGE_CONCURRENCY = "pf_judge_concurrency"
    PF_JUDGE_RPM = "pf_judge_rpm"
    PF_JUDGE_TIMEOUT = "pf_judge_timeout"
    PF_JUDGE_RETRIES = "pf_judge_retries"
    PF_JUDGE_TEMPERATURE = "pf_judge_temperature"
    PF_JUDGE_MAX_TOKENS = "pf_judge_max_tokens"
    PF_JUDGE_LOGPROBS = "pf_judge_logprobs"
    PF_JUDGE_SAMPLES = "pf_judge_samples"
    PF_JUDGE_TEST = "pf_judge_test"
    PF_CALIBRATION = "pf_calibration"
    PF_ACTIVE = "pf_active"
    PF_REFIT_N = "pf_refit_n"
    PF_REFIT_MINUTES = "pf_refit_minutes"
    PF_CLAIM_TTL = "pf_claim_ttl"
    PF_SAVE = "pf_save"

    # widgets of the item browser (ui/item_browser.py); per item: Keys.browser_item
    ITEMS_SEARCH = "items_search"
    ITEMS_META_KEY = "items_meta_key"
    ITEMS_META_VALUE = "items_meta_value"
    ITEMS_ROUTING = "items_routing"
    ITEMS_GOLD = "items_gold"
    ITEMS_FLAGGED = "items_flagged"
    ITEMS_ORDER = "items_order"
    ITEMS_PAGE = "items_page"
    ITEM_GOLD_ANSWER = "item_gold_answer"
    ITEM_GOLD_SAVE = "item_gold_save"
    ITEM_GOLD_CLEAR = "item_gold_clear"
    ITEM_SHOW_REST = "item_show_rest"
    RATER_QUALITY_SHOW = "rater_quality_show"

    @staticmethod
    def browser_item(base: str, item_id: int, *parts: object) -> str:
        """Return the key of item-browser widget ``base`` for item ``item_id``."""
        return ":".join([base, str(item_id), *map(str, parts)])

    @staticmethod
    def project_form(base: str, project_id: int | None) -> str:
        """Return the key of project-form widget ``base`` for a project (None: a new one)."""
        return f"{base}:{'new' if project_id is None else project_id}"
    # ---- end of the admin block -----------------------------------------

    @staticmethod
    def item(base: str, assignment_id: int, *parts: object) -> str:
        """Return the key of widget ``base`` for the item served as ``assignment_id``."""
        return ":".join([base, str(assignment_id), *map(str, parts)])


def get_db():
    """Return this thread's store handle.

    Streamlit runs each rerun on a script thread of its own, and a sqlite3
    connection must stay on the thread that opened it, so handles are never
    shared through st.cache_resource.
    """
    db = getattr(_local, "db", None)
    path = store.default_db()
    if db is None or getattr(_local, "path", None) != path:
        db = store.connect(path)
        _local.db, _local.path = db, path
    return db


def close_db() -> None:
    """Close this thread's store handle; app.py calls it as each script run ends.

    A handle sits in a reference cycle: left to the cyclic collector, the connection
    of every rerun (a new thread each time) stays open, two file descriptors, until a
    full collection, and Streamlit's collection after each run is off
    (.streamlit/config.toml).
    """
    db = getattr(_local, "db", None)
    _local.db = _local.path = None
    if db is not None:
        db.close()


def ensure_demo_once(db) -> None:
    """Load the demo projects into an empty store, once per session."""
    if st.session_state.get(Keys.DEMO_CHECKED):
        return
    try:
        demo.ensure_demo(db)
    except Conflict:
        pass  # another session loaded them first
    st.session_state[Keys.DEMO_CHECKED] = True


@st.cache_resource(show_spinner=False)
def _worker_started(db_path: str) -> int | None:
    from prefstore import worker

    return worker.ensure_worker(db_path)


def ensure_worker_once() -> None:
    """Start the background worker unless one is alive (PREFSTORE_AUTOSTART_WORKER=0: off).

    Once per server process: st.cache_resource remembers it. Deployments that
    run ``prefstore worker`` under a supervisor turn this off.
    """
    if os.environ.get("PREFSTORE_AUTOSTART_WORKER", "1").lower() in ("0", "false", "no"):
        return
    _worker_started(store.canonical())


def admin_token() -> str | None:
    """Return the configured admin token (environment first, then secrets.toml)."""
    from_env = access.configured_admin_token(os.environ)
    if from_env is not None:  # st.secrets looks for its files on every call: skip it
        return from_env
    try:
        secrets = dict(st.secrets) if access.ADMIN_TOKEN_SECRET in st.secrets else {}
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        secrets = {}  # no secrets file: fine, the environment or local mode decides
    return access.configured_admin_token(os.environ, secrets)


def _url_token() -> str | None:
    """Return the link token, kept in session state and in the URL across reruns and pages."""
    from_url = st.query_params.get(Keys.QP_TOKEN)
    if from_url:
        st.session_state[Keys.TOKEN] = from_url
    token = st.session_state.get(Keys.TOKEN)
    # Page switches drop query parameters; put the token back so a refresh keeps the rater.
    if token and from_url != token:
        st.query_params[Keys.QP_TOKEN] = token
    return token


def identity(db) -> access.Identity:
    """Resolve who is asking. Raises AccessDenied for a bad or missing link."""
    found = access.resolve(db, _url_token(), admin_token=admin_token())
    if found.mode != "local":
        return found
    name = st.session_state.get(Keys.LOCAL_NAME) or st.query_params.get(Keys.QP_NAME)
    if not name:
        return found
    try:
        found = access.local_rater(db, found, name)
    except (InvalidInput, AccessDenied):
        st.session_state.pop(Keys.LOCAL_NAME, None)
        return found
    st.session_state[Keys.LOCAL_NAME] = found.name
    if st.query_params.get(Keys.QP_NAME) != found.name:
        st.query_params[Keys.QP_NAME] = found.name
    return found


def linked_project(projects: list[dict]) -> dict | None:
    """The one of ``projects`` that ``?project=`` names, by its name or a former one."""
    wanted = st.query_params.get(Keys.QP_PROJECT)
    if wanted is None:
        return None
    found = next((p for p in projects if p["name"] == wanted), None)
    if found is None:  # a link made before a rename
        renamed = store.project_formerly_named(get_db(), wanted)
        found = next((p for p in projects if renamed and p["id"] == renamed["id"]), None)
    return found


def pick_project(projects: list[dict], key: str) -> dict:
    """Return the chosen project; the choice follows ``?project=`` across pages."""
    if len(projects) == 1:
        return projects[0]
    names = [p["name"] for p in projects]
    linked = linked_project(projects)
    name = st.selectbox("Project", names, key=key,
                        index=0 if linked is None else names.index(linked["name"]))
    if st.query_params.get(Keys.QP_PROJECT) != name:
        st.query_params[Keys.QP_PROJECT] = name
    return projects[names.index(name)]


# Set while app.py runs the page st.navigation chose; a page script that runs
# without it was started by something else (see ``require_app_entry``).
_ENTERED_THROUGH_APP: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "prefstore_entered_through_app", default=False)


def run_page(page) -> None:
    """Run ``page`` (what ``st.navigation`` returned) as entered through app.py."""
    token = _ENTERED_THROUGH_APP.set(True)
    try:
        page.run()
    finally:
        _ENTERED_THROUGH_APP.reset(token)


def require_app_entry() -> None:
    """Run app.py around a page script that started without it, then end the stray run.

    Streamlit starts a fresh server in its legacy ``pages/``-directory mode (a
    ``pages/`` folder sits beside app.py), where a deep link runs that file
    alone, until some session calls ``st.navigation`` (documented: that call
    ends the mode for every session). AppTest runs every page in that mode.
    app.py, run here, makes the call, opens the gate and runs the page through
    its own navigation, in this same run: no widget event is lost, and no page
    body ever runs outside app.py, however many first visits overlap.
    """
    if _ENTERED_THROUGH_APP.get():
        return
    runpy.run_path(str(APP_DIR / "app.py"), run_name="prefstore_app")
    st.stop()


def gate(db) -> access.Identity:
    """Return the identity, or show the refusal and stop the page."""
    try:
        return identity(db)
    except AccessDenied as exc:
        st.error(f"Access denied: {inert.escape_markdown(exc)}.", icon=":material/lock:")
        st.stop()


def require_admin(db) -> access.Identity:
    """Return the identity if it is an admin's; otherwise refuse and stop the page.

    Every admin-only page calls this first, so a rater who types the page's
    URL gets the refusal, not the page.
    """
    found = gate(db)
    try:
        return access.require_admin(found)
    except AccessDenied:
        st.error("Access denied: this page is for project admins.", icon=":material/lock:")
        st.stop()


def local_mode_banner(found: access.Identity) -> None:
    if found.mode == "local":
        st.info("Local mode: no admin token is configured, so whoever opens this app can rate "
                "and see every page. Set `PREFSTORE_ADMIN_TOKEN` to require personal links.",
                icon=":material/home:")


FLASH_ICON = ":material/check:"


def flash(message: str) -> None:
    """Show ``message`` on the next rerun (a toast; the rate page: a line, ``flash_line``)."""
    st.session_state[Keys.FLASH] = message


def show_flash() -> None:
    message = st.session_state.pop(Keys.FLASH, None)
    if message:
        st.toast(message, icon=FLASH_ICON)


def take_flash() -> str | None:
    """Pop the message queued by :func:`flash`, to show it inline."""
    return st.session_state.pop(Keys.FLASH, None) or None


def flash_line(message: str | None) -> None:
    """Show a message from :func:`flash` as one caption line.

    The rate page's choice: a toast costs the rater's browser about 20 ms of CPU on
    every submit (its stack re-renders and animates), a caption a fraction of that.
    """
    if message:
        st.caption(f"{FLASH_ICON} {message}")
