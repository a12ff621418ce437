"""Admin: create and configure projects, import items, manage raters, watch progress, export.

Admins only: a rater who opens /admin directly gets the refusal. Rater links
carry a secret token, shown once when it is made and never kept in session
state: it is rendered in the run that created it, from a local variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from prefstore import admin, export, importing, store
from prefstore import text as inert
from prefstore.errors import Conflict, InvalidInput, NotFound
from prefstore.settings import BUDGET_MODES, ProjectSettings
from ui import common, item_browser, review
from ui.common import Keys

common.require_app_entry()  # a page runs only inside app.py's navigation

NEW_PROJECT = 0  # not a project id: SQLite ids start at 1
BUDGET_LABELS = {"none": "No limit", "fraction": "Fraction of items", "count": "Number of items"}


def choose_project(projects: list[dict]) -> dict | None:
    """Pick the project to work on, or None to create a new one."""
    by_id = {p["id"]: p for p in projects}
    pending = st.session_state.pop(Keys.ADMIN_SELECT_NEXT, None)
    if pending in by_id:
        st.session_state[Keys.ADMIN_PROJECT] = pending  # before the widget exists
    elif Keys.ADMIN_PROJECT not in st.session_state:  # a first visit follows ?project=
        linked = common.linked_project(projects)
        if linked is not None:
            st.session_state[Keys.ADMIN_PROJECT] = linked["id"]
    chosen = st.selectbox("Project", [*by_id, NEW_PROJECT], key=Keys.ADMIN_PROJECT,
                          format_func=lambda pid: review.project_label(by_id[pid])
                          if pid in by_id else "New project…")
    if chosen in by_id and st.query_params.get(Keys.QP_PROJECT) != by_id[chosen]["name"]:
        st.query_params[Keys.QP_PROJECT] = by_id[chosen]["name"]  # the dashboards follow it
    return by_id.get(chosen)


def project_form(db, project: dict | None, actor: str) -> None:
    pid = None if project is None else project["id"]

    def key(base: str) -> str:
        return Keys.project_form(base, pid)

    start = (project["settings"] if project else ProjectSettings()).form_values()
    values: dict = {}
    if project is None:
        st.subheader("Create a project")
        name = st.text_input("Name", key=key(Keys.PF_NAME), max_chars=100)
        kind = st.selectbox("Kind", store.TASK_KINDS, key=key(Keys.PF_KIND),
                            format_func={"pairwise": "Pairwise (A vs B)",
                                         "slate": "Slate (K responses)"}.get)
    else:
        st.subheader(f"Settings of {inert.escape_markdown(project['name'])}")
        name, kind = project["name"], project["kind"]
        st.caption(f"Kind: {kind} (fixed once the project exists).")
    left, right = st.columns(2)
    with left:
        values["raters_per_item"] = st.number_input(
            "Raters per item", min_value=1, step=1, value=start["raters_per_item"],
            key=key(Keys.PF_RATERS_PER_ITEM))
        if kind == "pairwise":
            values["strength_scale"] = st.toggle(
                "Strength scale (how much better, instead of A / B buttons)",
                value=start["strength_scale"], key=key(Keys.PF_STRENGTH_SCALE))
        else:
            values["ranking_mode"] = st.selectbox(
                "Ranking", ("best", "full"), index=("best", "full").index(start["ranking_mode"]),
                format_func={"best": "Pick the best", "full": "Rank them all"}.get,
                key=key(Keys.PF_RANKING_MODE))
        values["aspects"] = st.text_area("Aspects scored 1-5 (one per line)",
                                         value=start["aspects"], key=key(Keys.PF_ASPECTS))
        values["reason_tags"] = st.text_area("Reason tags (one per line)",
                                             value=start["reason_tags"],
                                             key=key(Keys.PF_REASON_TAGS))
    with right:
        values["rationale_required"] = st.toggle("Rationale required",
                                                 value=start["rationale_required"],
                                                 key=key(Keys.PF_RATIONALE_REQUIRED))
        values["rationale_min_chars"] = st.number_input(
            "Rationale minimum characters", min_value=0, step=1,
            value=start["rationale_min_chars"], key=key(Keys.PF_RATIONALE_MIN_CHARS))
        values["edits_allowed"] = st.toggle("Raters may improve the chosen response",
                                            value=start["edits_allowed"],
                                            key=key(Keys.PF_EDITS_ALLOWED))
        values["gold_rate"] = st.number_input(
            "Gold rate (share of served items that are gold checks)", min_value=0.0,
            max_value=1.0, step=0.01, value=start["gold_rate"], key=key(Keys.PF_GOLD_RATE))
        values["gold_feedback"] = st.toggle(
            "After a gold item, tell the rater the expected answer",
            value=start["gold_feedback"], key=key(Keys.PF_GOLD_FEEDBACK))
        values["budget_mode"] = st.radio(
            "Human budget", BUDGET_MODES, index=BUDGET_MODES.index(
                start["budget_mode"]), format_func=BUDGET_LABELS.get, horizontal=True,
            key=key(Keys.PF_BUDGET_MODE))
        values["budget"] = st.number_input(
            "Budget (a fraction in [0, 1] or a number of items)", min_value=0.0,
            value=start["budget"], disabled=values["budget_mode"] == "none",
            key=key(Keys.PF_BUDGET))
    automation_fields(values, start, key)
    values["guidelines"] = st.text_area("Guidelines (markdown, shown to raters)",
                                        value=start["guidelines"], height=160,
                                        key=key(Keys.PF_GUIDELINES))
    if values["guidelines"].strip():
        with st.expander("Guidelines preview", expanded=True):
            st.markdown(values["guidelines"])  # admin-authored; still never unsafe HTML
    label = "Create project" if project is None else "Save settings"
    if not st.button(label, key=key(Keys.PF_SAVE), type="primary"):
        return
    try:
        settings = ProjectSettings.form_changes(values)
        if project is None:
            created = store.create_project(db, name.strip(), kind, settings, actor=actor)
            st.session_state[Keys.ADMIN_SELECT_NEXT] = created["id"]
            common.flash(f"Created project {inert.escape_markdown(created['name'])}")
        else:
            updated = store.update_project_settings(db, project["id"], settings, actor=actor)
            changed = sorted(project["settings"].changes(updated["settings"]))
            common.flash(f"Saved: {', '.join(changed)}" if changed else "No settings changed")
    except (InvalidInput, Conflict) as exc:
        st.error(f"Not saved: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    st.rerun()


JUDGE_BACKEND_LABELS = {
    "generative": "Generative (reads the A/B answer tokens)",
    "reward": "Reward model (scores each response)",
    "openai": "Server (an OpenAI-compatible API: vLLM, TGI, OpenAI, ...)",
}
LOGPROBS_LABELS = {"auto": "Auto (when the server returns them, else the text)",
                   True: "On (the server must return them)", False: "Off (parse the text)"}


def automation_fields(values: dict, start: dict, key) -> None:
    """The worker's settings: the LLM judge, routing and refits (stored in settings)."""
    from prefstore.judges.base import ALL_BACKENDS, SERVER_BACKENDS
    from prefstore.settings import JUDGE_FORM_FIELDS

    with st.expander("LLM judge, routing and refits"):
        st.caption("The background worker labels every item with this judge: a local model (a "
                   "Hugging Face id or a path; `pip install 'prefstore[llm]'`) or one served "
                   "over the OpenAI-compatible API (`pip install 'prefstore[serve]'`). It also "
                   "routes items to humans or the judge under the human budget, and refits "
                   "the models. Leave the model empty for no judge.")
        left, right = st.columns(2)
        with left:
            values["judge_model"] = st.text_input("Judge model", value=start["judge_model"],
                                                  key=key(Keys.PF_JUDGE_MODEL))
            values["judge_backend"] = st.selectbox(
                "Judge backend", ALL_BACKENDS, index=ALL_BACKENDS.index(start["judge_backend"]),
                format_func=JUDGE_BACKEND_LABELS.get, key=key(Keys.PF_JUDGE_BACKEND))
            values["judge_allow_tie"] = st.toggle("The judge may answer tie",
                                                  value=start["judge_allow_tie"],
                                                  key=key(Keys.PF_JUDGE_TIE))
            if values["judge_backend"] in SERVER_BACKENDS:
                server_judge_fields(values, start, key)
            else:
                local_judge_fields(values, start, key)
            # Settings the form does not show (slate_mode, seed, ...) keep their values.
            for name in start:
                if (name.startswith("judge_")
                        and name.removeprefix("judge_") not in JUDGE_FORM_FIELDS):
                    values[name] = start[name]
        with right:
            values["calibration_fraction"] = st.number_input(
                "Calibration share of the human budget (items both label)", min_value=0.0,
                max_value=1.0, step=0.05, value=start["calibration_fraction"],
                key=key(Keys.PF_CALIBRATION))
            values["active_selection"] = st.toggle(
                "Order human items by expected information for the leaderboard",
                value=start["active_selection"], key=key(Keys.PF_ACTIVE))
            values["refit_every_judgments"] = st.number_input(
                "Refit after this many new judgments", min_value=1, step=10,
                value=start["refit_every_judgments"], key=key(Keys.PF_REFIT_N))
            values["refit_every_minutes"] = st.number_input(
                "…or after this many minutes with new judgments", min_value=0.5, step=1.0,
                value=start["refit_every_minutes"], key=key(Keys.PF_REFIT_MINUTES))
            values["claim_ttl_seconds"] = st.number_input(
                "A served item returns to the pool after (seconds)", min_value=10, step=60,
                value=start["claim_ttl_seconds"], key=key(Keys.PF_CLAIM_TTL))


def local_judge_fields(values: dict, start: dict, key) -> None:
    """The settings of a judge run here with transformers (generative or reward)."""
    from prefstore.judges.base import DEVICES, DTYPES

    values["judge_batch_size"] = st.number_input(
        "Batch size", min_value=1, step=1, value=start["judge_batch_size"],
        key=key(Keys.PF_JUDGE_BATCH))
    values["judge_max_length"] = st.number_input(
        "Max length (tokens; longer prompts are truncated and recorded)", min_value=16,
        step=64, value=start["judge_max_length"], key=key(Keys.PF_JUDGE_MAX_LENGTH))
    values["judge_device"] = st.selectbox(
        "Device", DEVICES, index=DEVICES.index(start["judge_device"]),
        key=key(Keys.PF_JUDGE_DEVICE))
    values["judge_dtype"] = st.selectbox(
        "Dtype", DTYPES, index=DTYPES.index(start["judge_dtype"]), key=key(Keys.PF_JUDGE_DTYPE))
    values["judge_rationale"] = st.toggle("The judge writes a short rationale",
                                          value=start["judge_rationale"],
                                          key=key(Keys.PF_JUDGE_RATIONALE))


def server_judge_fields(values: dict, start: dict, key) -> None:
    """The settings of a judge behind an OpenAI-compatible server, and a connection test."""
    from prefstore.judges.base import LOGPROBS_MODES, MAX_CONCURRENCY, MAX_SAMPLES

    values["judge_base_url"] = st.text_input(
        "Server URL (the API root, usually ending in /v1)", value=start["judge_base_url"],
        placeholder="http://gpu-box:8000/v1", key=key(Keys.PF_JUDGE_BASE_URL))
    values["judge_api_key_env"] = st.text_input(
        "API key: the name of the environment variable that holds it (never the key)",
        value=start["judge_api_key_env"], placeholder="none: the server needs no key",
        key=key(Keys.PF_JUDGE_API_KEY_ENV))
    values["judge_concurrency"] = st.number_input(
        "Requests in flight at once", min_value=1, max_value=MAX_CONCURRENCY, step=1,
        value=start["judge_concurrency"], key=key(Keys.PF_JUDGE_CONCURRENCY))
    values["judge_requests_per_minute"] = st.number_input(
        "Requests per minute", min_value=0.1, step=10.0, value=start["judge_requests_per_minute"],
        placeholder="no limit", key=key(Keys.PF_JUDGE_RPM))
    values["judge_timeout_s"] = st.number_input(
        "Timeout per request (seconds)", min_value=0.1, step=10.0, value=start["judge_timeout_s"],
        key=key(Keys.PF_JUDGE_TIMEOUT))
    values["judge_max_retries"] = st.number_input(
        "Retries after 429, 5xx, timeouts and lost connections", min_value=0, max_value=100,
        step=1, value=start["judge_max_retries"], key=key(Keys.PF_JUDGE_RETRIES))
    values["judge_temperature"] = st.number_input(
        "Temperature", min_value=0.0, max_value=2.0, step=0.1, value=start["judge_temperature"],
        key=key(Keys.PF_JUDGE_TEMPERATURE))
    values["judge_max_tokens"] = st.number_input(
        "Max tokens per answer", min_value=1, step=1, value=start["judge_max_tokens"],
        key=key(Keys.PF_JUDGE_MAX_TOKENS))
    values["judge_logprobs"] = st.selectbox(
        "Answer probabilities (logprobs)", LOGPROBS_MODES,
        index=LOGPROBS_MODES.index(start["judge_logprobs"]), format_func=LOGPROBS_LABELS.get,
        key=key(Keys.PF_JUDGE_LOGPROBS))
    values["judge_samples"] = st.number_input(
        "Answers per display order when reading text (needs temperature > 0)", min_value=1,
        max_value=MAX_SAMPLES, step=1, value=start["judge_samples"],
        key=key(Keys.PF_JUDGE_SAMPLES))
    if st.button("Test connection", key=key(Keys.PF_JUDGE_TEST)):
        show_connection(values)


def show_connection(values: dict) -> None:
    """Check the judge server the form describes: its models and latency, or what to fix."""
    from prefstore.errors import PrefstoreError
    from prefstore.judges import check_connection
    from prefstore.settings import judge_from_form

    try:
        judge = judge_from_form(values)
        if judge is None:
            raise InvalidInput("give the judge model first")
        with st.spinner("Asking the server for its models…"):
            info = check_connection(judge)
    except PrefstoreError as exc:
        st.error(f"Connection failed: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    st.success(f"Connected: {info['base_url']} serves {info['model']} "
               f"({info['latency_ms']:.0f} ms).", icon=":material/check:")
    st.caption("Served models: " + ", ".join(info["served"]))


def audit_section(db, project_names: dict[int, str]) -> None:
    st.subheader("Recent changes")
    rows = admin.audit_rows(store.audit_log(db, limit=50), project_names)
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("Nothing logged yet.")


def import_section(db, project: dict, actor: str) -> None:
    st.subheader(f"Import items into {inert.escape_markdown(project['name'])}")
    st.caption("JSONL, JSON or CSV: one item per line with `prompt` (or `messages`) and "
               "`responses` (or `response_a` / `response_b`). Nothing is written until you "
               "confirm, and only if the whole file is valid.")
    round_ = st.session_state.get(Keys.ADMIN_UPLOAD_ROUND, 0)
    upload = st.file_uploader("Item file", type=["jsonl", "ndjson", "json", "csv"],
                              key=f"{Keys.ADMIN_UPLOAD}:{round_}")
    if upload is None:
        return
    try:
        # AppTest (and a misconfigured proxy) bypass the server's own limit.
        admin.check_upload_size(upload.size, st.get_option("server.maxUploadSize"))
    except InvalidInput as exc:
        st.error(f"Not imported: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    data = upload.getvalue()
    check = admin.check_upload(db, project, data, upload.name)
    if check.preview:
        st.caption("First rows of the file")
        st.dataframe(check.preview, hide_index=True)
    if not check.ok:
        more = (f" The first {len(check.errors)} of {check.total_errors} errors are listed."
                if check.total_errors > len(check.errors) else "")
        st.error("The file is not valid, so nothing was imported. Fix these lines and upload "
                 f"it again.{more}", icon=":material/error:")
        show_errors(check.errors)
        return
    st.success(f"The file is valid: {check.items} item(s) and {check.judgments} judgment(s).",
               icon=":material/check:")
    if st.button(f"Import {check.items} item(s)", key=Keys.ADMIN_IMPORT, type="primary"):
        try:
            report = importing.import_items(db, data, project["name"], name=upload.name,
                                            actor=actor)
        except InvalidInput as exc:
            st.error("Not imported: nothing was written.", icon=":material/error:")
            show_errors(getattr(exc, "errors", [str(exc)]))
            return
        st.session_state[Keys.ADMIN_UPLOAD_ROUND] = round_ + 1  # empty the uploader
        common.flash(f"Imported {report['items']} item(s) and {report['judgments']} "
                     f"judgment(s) into {inert.escape_markdown(project['name'])}")
        st.rerun()


def show_errors(errors: list[str]) -> None:
    # A code block, not markdown: the messages quote the file's own text.
    st.code("\n".join(errors), language=None, wrap_lines=True)


def show_link(name: str, link: str, what: str) -> None:
    st.success(f"{what} for {inert.escape_markdown(name)}. Copy it now: it is shown only once.",
               icon=":material/link:")
    st.code(link, language=None)


def landing_project(project: dict | None, chosen: list[int], names: dict) -> str | None:
    """The project a new link opens: the one chosen above if the rater has it, else their first."""
    if project is not None and project["id"] in chosen:
        return project["name"]
    return names[min(chosen)] if chosen else None


def raters_section(db, project: dict | None, identity, actor: str) -> None:
    projects = store.list_projects(db)
    names = {p["id"]: p["name"] for p in projects}
    st.subheader("Add a rater")
    with st.form(Keys.ADMIN_RATER_FORM, clear_on_submit=True, border=False):
        name = st.text_input("Name", key=Keys.ADMIN_RATER_NAME, max_chars=60)
        role = st.selectbox("Role", store.ROLES, key=Keys.ADMIN_RATER_ROLE,
                            format_func={"rater": "Rater", "admin": "Admin (all pages)"}.get)
        chosen_projects = st.multiselect(
            "Projects they rate in", list(names), format_func=names.get,
            default=[project["id"]] if project else [],
            # Keyed per project: the default follows the project chosen above.
            key=f"{Keys.ADMIN_RATER_PROJECTS}:{project['id'] if project else 0}")
        added = st.form_submit_button("Add rater and make a link", key=Keys.ADMIN_RATER_ADD)
    base = admin.base_url(st.context.url, os.environ)
    if added:
        try:
            rater, token = store.create_rater(db, " ".join(name.split()), role=role,
                                                actor=actor)
        except (InvalidInput, Conflict) as exc:
            st.error(f"Not added: {inert.escape_markdown(exc)}.", icon=":material/error:")
        else:
            for project_id in chosen_projects:
                store.assign_rater(db, rater["id"], project_id, actor=actor)
            show_link(rater["name"], admin.rater_link(
                base, token, landing_project(project, chosen_projects, names)), "Personal link")

    raters = store.list_raters(db, kind="human")
    if not raters:
        st.info("No human raters yet.")
        return
    st.subheader("Manage a rater")
    by_id = {r["id"]: r for r in raters}
    rid = st.selectbox("Rater", list(by_id), key=Keys.ADMIN_RATER,
                       format_func=lambda i: by_id[i]["name"] + ("" if by_id[i]["active"]
                                                                 else " (deactivated)"))
    chosen = by_id[rid]
    assigned = store.rater_project_ids(db, rid)
    with st.form(Keys.ADMIN_RATER_ASSIGN_FORM, border=False):
        # Keyed per rater: choosing another rater shows their own projects.
        wanted = st.multiselect("Projects they rate in", list(names), format_func=names.get,
                                default=assigned, key=f"{Keys.ADMIN_RATER_ASSIGN}:{rid}")
        save = st.form_submit_button("Save projects", key=Keys.ADMIN_RATER_ASSIGN_SAVE)
    if save:
        for project_id in set(wanted) - set(assigned):
            store.assign_rater(db, rid, project_id, actor=actor)
        for project_id in set(assigned) - set(wanted):
            store.unassign_rater(db, rid, project_id, actor=actor)
        common.flash(f"Saved the projects of {inert.escape_markdown(chosen['name'])}")
        st.rerun()
    left, right = st.columns(2)
    toggle = left.button("Deactivate" if chosen["active"] else "Reactivate",
                         key=Keys.ADMIN_RATER_ACTIVE)
    rotate = right.button("Make a new link (the old one stops working)",
                          key=Keys.ADMIN_RATER_ROTATE)
    if toggle:
        if chosen["active"] and identity.rater and identity.rater["id"] == rid:
            st.error("Not changed: you cannot deactivate yourself.", icon=":material/error:")
        else:
            store.set_rater_active(db, rid, not chosen["active"], actor=actor)
            # Rerun so the button's label follows: a stale "Deactivate" must not reactivate.
            common.flash(f"{inert.escape_markdown(chosen['name'])} is " + (
                "deactivated: no new items, and the link no longer works" if chosen["active"]
                else "active again"))
            st.rerun()
    if rotate:
        try:
            token = store.rotate_token(db, rid, actor=actor)
        except NotFound as exc:
            st.error(f"Not changed: {inert.escape_markdown(exc)}.", icon=":material/error:")
        else:
            show_link(chosen["name"], admin.rater_link(
                base, token, landing_project(project, assigned, names)), "New personal link")

    if project is None:
        st.dataframe(store.list_raters(db), hide_index=True)
        return
    st.subheader(f"Progress in {inert.escape_markdown(project['name'])}")
    st.dataframe(store.project_rater_summary(db, project["id"]), hide_index=True,
                 column_config={"active": st.column_config.CheckboxColumn("active")})


def progress_section(db, project: dict) -> None:
    stats = store.project_stats(db, project["id"])
    cols = st.columns(4)
    cols[0].metric("Items", stats["items"])
    cols[1].metric("Human judgments", stats["judgments"]["human"])
    cols[2].metric("LLM judgments", stats["judgments"]["llm"])
    cols[3].metric("Flagged", stats["flags"])
    done, target = admin.target_progress(stats, project["settings"].raters_per_item)
    st.progress(done / target if target else 0.0,
                text=f"{done:,} of {target:,} human judgments toward the target (items × "
                     f"raters per item): {done / target if target else 0:.0%}")
    st.subheader("Items by number of human judgments")
    if stats["items"]:
        st.bar_chart(admin.coverage_frame(stats), x="human judgments", y="items", sort=False)
    else:
        st.info("No items yet: import some first.")
    st.subheader("Routing")
    counts = store.routing_counts(db, project["id"])
    if any(counts.values()):
        cols = st.columns(len(counts))
        for col, (route, n) in zip(cols, counts.items()):
            col.metric(f"To {route}", n)
    else:
        st.caption("No routing decisions yet: every item goes to humans.")
    judge_usage_section(db, project)
    st.subheader("Worker")
    workers = store.live_workers(db)
    if workers:
        st.success("Worker running: " + ", ".join(
            f"{inert.escape_markdown(w['id'])} (heartbeat {admin.heartbeat_age(w['heartbeat_at'])})"
            for w in workers), icon=":material/sync:")
    else:
        st.warning("No worker is running: queued jobs wait until one starts "
                   "(`prefstore worker`).", icon=":material/sync_problem:")
    left, right = st.columns(2)
    for col, label, job_type, key in ((left, "Queue a refit", "refit", Keys.ADMIN_REFIT),
                                      (right, "Queue a routing refresh", "route",
                                       Keys.ADMIN_ROUTE)):
        if col.button(label, key=key):
            job = store.enqueue_job(db, job_type, project_id=project["id"])
            col.info(f"Queued {job_type} job {job}." if job
                     else f"A {job_type} job is already queued.")
    st.caption(f"Jobs of {inert.escape_markdown(project['name'])}")
    jobs = store.recent_jobs(db, project_id=project["id"])
    if jobs:
        st.dataframe(jobs, hide_index=True)
    else:
        st.caption("No jobs yet.")


def judge_usage_section(db, project: dict) -> None:
    """Each LLM judge's progress and what its server requests cost."""
    from prefstore.judges.base import config_rater_name

    st.subheader("Judge usage")
    judge = project["settings"].judge
    usage = store.judge_usage(db, project["id"], [config_rater_name(judge)] if judge else [])
    if not usage:
        st.caption("No LLM judge yet: configure one in the project's settings.")
        return
    st.dataframe([{"judge": name, "labelled": u["labelled"], "failed": u["failed"],
                   "pending": u["pending"], "calls": u["calls"],
                   "prompt tokens": u["tokens"]["prompt"],
                   "completion tokens": u["tokens"]["completion"]}
                  for name, u in usage.items()], hide_index=True)


def export_section(db, project: dict) -> None:
    st.subheader(f"Export {inert.escape_markdown(project['name'])}")
    fmt = st.segmented_control("Format", export.FORMATS, default="pairs", required=True,
                               key=Keys.ADMIN_EXPORT_FORMAT)
    cols = st.columns(3)
    options = {
        "format": fmt,
        "aggregate": cols[0].selectbox("Aggregate", export.AGGREGATES,
                                       key=Keys.ADMIN_EXPORT_AGGREGATE),
        "kind": cols[1].selectbox("Judgments", export.KINDS, key=Keys.ADMIN_EXPORT_KIND),
        "min_agreement": cols[2].number_input(
            "Minimum agreement (aggregated only)", min_value=0.0, max_value=1.0, value=None,
            step=0.05, placeholder="off", key=Keys.ADMIN_EXPORT_MIN_AGREEMENT),
        "conversational": st.checkbox("Conversational (chat messages)",
                                      key=Keys.ADMIN_EXPORT_CONVERSATIONAL),
        "real_rater_names": st.checkbox("Real rater names (else per-project pseudonyms)",
                                        key=Keys.ADMIN_EXPORT_REAL_NAMES),
    }
    if project["kind"] == "slate":
        options["slate_pairs"] = st.selectbox(
            "Slate pairs", export.SLATE_PAIRS, key=Keys.ADMIN_EXPORT_SLATE_PAIRS,
            format_func={"best": "Best over each other", "all": "Every ranked pair"}.get)
    if fmt == "edits":
        options["include_original_pair"] = st.checkbox(
            "Also the original chosen response over the others",
            key=Keys.ADMIN_EXPORT_ORIGINAL_PAIR)
    try:
        export.check_options(**{k: v for k, v in options.items() if k != "real_rater_names"})
    except InvalidInput as exc:
        st.error(f"Cannot export: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    wanted = {"project_id": project["id"], **options}
    prepared = st.session_state.get(Keys.ADMIN_EXPORT)
    if st.button(f"Prepare the {fmt} export", key=Keys.ADMIN_EXPORT_PREPARE, type="primary"):
        admin.discard_export(prepared and prepared["path"])
        st.session_state.pop(Keys.ADMIN_EXPORT, None)
        try:
            with st.spinner(f"Writing the {fmt} export…"):
                ready = admin.prepare_export(db, project["id"], **options)
        except (InvalidInput, NotFound) as exc:
            st.error(f"Cannot export: {inert.escape_markdown(exc)}.", icon=":material/error:")
            return
        prepared = st.session_state[Keys.ADMIN_EXPORT] = {**ready, "options": wanted}
    if prepared and prepared["options"] != wanted:
        admin.discard_export(prepared["path"])  # options changed: that file is stale
        st.session_state.pop(Keys.ADMIN_EXPORT, None)
        prepared = None
    if not prepared or not Path(prepared["path"]).exists():
        st.caption("Choose the options, then prepare the file: it is written to disk row by "
                   "row, and sent when you click Download.")
        return
    skipped = admin.skipped_rows(prepared["summary"])
    if prepared["summary"]["written"] == 0:
        # No empty file to download: say why there is nothing.
        st.warning(f"Nothing to export with these options: {prepared['text']}.",
                   icon=":material/info:")
        if skipped:
            st.dataframe(skipped, hide_index=True)
        return
    st.success(f"Export ready: {prepared['text']}.", icon=":material/check:")
    if skipped:
        st.dataframe(skipped, hide_index=True)
    path = prepared["path"]
    # A callable: Streamlit reads the file only when the button is clicked.
    st.download_button(f"Download {prepared['file_name']}", data=lambda: Path(path).read_bytes(),
                       file_name=prepared["file_name"], mime="application/jsonl",
                       key=Keys.ADMIN_EXPORT_DOWNLOAD, icon=":material/download:")


db = common.get_db()
identity = common.require_admin(db)
actor = admin.actor_name(identity)
common.show_flash()
st.title("Admin")
projects = store.list_projects(db)
project_names = {p["id"]: p["name"] for p in projects}
project = choose_project(projects)
project_tab, import_tab, raters_tab, progress_tab, items_tab, review_tab, export_tab = st.tabs(
    ["Project", "Import", "Raters", "Progress", "Items", "Review", "Export"])
with project_tab:
    project_form(db, project, actor)
    if project is not None:
        review.project_state_section(db, project, actor)
    audit_section(db, project_names)
with raters_tab:
    raters_section(db, project, identity, actor)
    if project is not None:
        item_browser.quality_table(db, project)
if project is None:
    for tab in (import_tab, progress_tab, items_tab, review_tab, export_tab):
        tab.info("Create a project first, or choose one above.")
else:
    with import_tab:
        import_section(db, project, actor)
    with progress_tab:
        progress_section(db, project)
    with items_tab:
        item_browser.item_browser(db, project, actor)
    with review_tab:
        review.review_section(db, project, actor)
    with export_tab:
        export_section(db, project)
