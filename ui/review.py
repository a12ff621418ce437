"""The admin's review queue, excluded items, and a project's name and archive state.

Called from pages/admin.py. Item ids, rater names and reasons are untrusted:
they are shown escaped (:func:`prefstore.text.escape_markdown`), never as
markdown of their own.
"""

from __future__ import annotations

import streamlit as st

from prefstore import store
from prefstore import text as inert
from prefstore.errors import Conflict, InvalidInput, NotFound
from ui import common
from ui.common import Keys

#: Rows shown at once; the CLI (`prefstore review --json`) lists them all.
MAX_ROWS = 100
#: Characters of a reason shown in a row.
MAX_REASON_CHARS = 300
ACTIONS = (  # (resolution, button label, widget key base)
    ("dismiss", "Dismiss", Keys.ADMIN_REVIEW_DISMISS),
    ("exclude", "Exclude item", Keys.ADMIN_REVIEW_EXCLUDE),
    ("requeue", "Requeue", Keys.ADMIN_REVIEW_REQUEUE),
)
DONE = {"dismiss": "Dismissed", "exclude": "Item excluded", "requeue": "Requeued"}


def project_label(project: dict) -> str:
    """A project's name as the admin's project chooser shows it (plain text)."""
    return project["name"] + (" (archived)" if project["archived_at"] is not None else "")


def short(text: str | None, limit: int = MAX_REASON_CHARS) -> str:
    """Return untrusted text escaped for markdown, cut at ``limit`` characters."""
    text = text or ""
    return inert.escape_markdown(text if len(text) <= limit else text[:limit - 1] + "…")


def review_section(db, project: dict, actor: str) -> None:
    """The skips and flags of ``project``, each with its resolve buttons or its resolution."""
    st.subheader(f"Review queue of {inert.escape_markdown(project['name'])}")
    counts = store.review_counts(db, project["id"])
    if not counts["open"] and not counts["resolved"]:
        st.caption("Nothing to review: no rater has skipped or flagged an item.")
    else:
        st.caption(f"{counts['open']:,} open, {counts['resolved']:,} resolved. Dismiss keeps "
                   "the item from that rater; Exclude item takes it out of the project (its "
                   "data is kept); Requeue serves it to that rater again.")
        rows = store.review_queue(db, project["id"], limit=MAX_ROWS)
        for row in rows:
            review_row(db, project, row, actor)
        if counts["open"] + counts["resolved"] > len(rows):
            st.caption(f"The first {len(rows)} are shown; `prefstore review` lists them all.")
    excluded_section(db, project, actor)


def review_row(db, project: dict, row: dict, actor: str) -> None:
    with st.container(border=True):
        kind = row["status"] if row["status"] in ("skipped", "flagged") else "requeued"
        st.markdown(f"**{inert.escape_markdown(row['item'])}** {kind} by "
                    f"{inert.escape_markdown(row['rater'])} at {row['at']}")
        if row["reason"]:
            st.caption(f"Reason: {short(row['reason'])}")
        if row["resolution"] is not None:
            st.caption(f"{DONE[row['resolution']]} by {inert.escape_markdown(row['resolved_by'])}"
                       f" at {row['resolved_at']}")
            return
        for col, (action, label, key) in zip(st.columns(len(ACTIONS)), ACTIONS):
            if col.button(label, key=Keys.item(key, row["assignment_id"])):
                resolve(db, project, row, action, actor)


def resolve(db, project: dict, row: dict, action: str, actor: str) -> None:
    try:
        store.resolve_review(db, project["id"], row["item"], row["rater"], action, actor=actor)
    except (InvalidInput, NotFound, Conflict) as exc:
        st.error(f"Not resolved: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    common.flash(f"{DONE[action]}: {inert.escape_markdown(row['item'])} of "
                 f"{inert.escape_markdown(row['rater'])}")
    st.rerun()


def excluded_section(db, project: dict, actor: str) -> None:
    """The project's excluded items, each with a button to include it again."""
    excluded = store.excluded_items(db, project["id"])
    if not excluded:
        return
    st.subheader("Excluded items")
    st.caption("Never served and left out of the counts; their judgments are kept.")
    for item in excluded[:MAX_ROWS]:
        left, right = st.columns([3, 1])
        left.markdown(f"**{inert.escape_markdown(item['external_id'])}** excluded at "
                      f"{item['excluded_at']}")
        if right.button("Include again",
                        key=f"{Keys.ADMIN_INCLUDE}:{project['id']}:{item['external_id']}"):
            store.set_item_excluded(db, project["id"], item["external_id"], False, actor=actor)
            common.flash(f"Included again: {inert.escape_markdown(item['external_id'])}")
            st.rerun()


def project_state_section(db, project: dict, actor: str) -> None:
    """Rename the project, and archive it (hidden from raters, data kept) or bring it back."""
    st.subheader("Name and archive")
    archived = project["archived_at"] is not None
    if archived:
        st.info(f"Archived at {project['archived_at']}: hidden from raters, its data kept.",
                icon=":material/inventory_2:")
    # Keyed per project: choosing another project shows its own name.
    new_name = st.text_input("New name", value=project["name"],
                             max_chars=store.projects.MAX_NAME_CHARS,
                             key=Keys.project_form(Keys.ADMIN_RENAME, project["id"]))
    if st.button("Rename", key=Keys.ADMIN_RENAME_SAVE):
        try:
            renamed = store.rename_project(db, project["id"], new_name.strip(), actor=actor)
        except (InvalidInput, Conflict) as exc:
            st.error(f"Not renamed: {inert.escape_markdown(exc)}.", icon=":material/error:")
        else:
            common.flash(f"Renamed to {inert.escape_markdown(renamed['name'])}")
            st.rerun()
    label = "Unarchive" if archived else "Archive (hide from raters; nothing is deleted)"
    if st.button(label, key=Keys.ADMIN_ARCHIVE):
        store.set_project_archived(db, project["id"], not archived, actor=actor)
        common.flash(f"{inert.escape_markdown(project['name'])} is "
                     + ("no longer archived" if archived else "archived"))
        st.rerun()
