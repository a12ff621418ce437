"""Rate: one served item at a time, pairwise (A vs B) or a slate of K responses.

Keyboard: 1 / 2 / 3 / 4 pick A / B / Tie / Both bad; on a project with the
graded scale the scale is the choice and S submits it (Enter would also
activate whichever scale button has the focus); on a slate 1..K pick the
best, and S submits a full ranking. Streamlit ignores these keys while the
cursor is in a text field, so typing a rationale never submits.
"""

from __future__ import annotations

import streamlit as st
from streamlit_sortables import sort_items

from pages import common
from pages.common import Keys
from prefstore import access, assignment, store
from prefstore.errors import AccessDenied, InvalidInput

SUBMIT_SHORTCUT = "S"


def rating_rater(db, identity) -> dict:
    """Return the rater to rate as; in local mode, ask for a name first."""
    if identity.rater is not None:
        return identity.rater
    st.title("Rate")
    st.write("Type your name to start rating. Your judgments are stored under it.")
    name = st.text_input("Your name", key=Keys.LOCAL_NAME_INPUT, max_chars=60)
    if st.button("Start rating", key=Keys.LOCAL_NAME_GO, type="primary"):
        try:
            found = access.local_rater(db, identity, name)
        except (InvalidInput, AccessDenied) as exc:
            st.error(str(exc))
        else:
            st.session_state[Keys.LOCAL_NAME] = found.name
            st.rerun()
    st.stop()


def show_item(item: dict) -> None:
    # st.markdown escapes HTML (no unsafe_allow_html anywhere), so item text
    # cannot inject markup; code fences render as code blocks.
    if item["messages"]:
        for turn in item["messages"]:
            avatar = ":material/settings:" if turn["role"] == "system" else None
            with st.chat_message(turn["role"], avatar=avatar):
                st.markdown(turn["content"])
    else:
        with st.chat_message("user"):
            st.markdown(item["prompt"] or "")


def show_responses(claim: dict) -> list[str]:
    """Show the responses in the claim's display order; return their texts in that order."""
    texts = {r["idx"]: r["text"] for r in claim["item"]["responses"]}
    shown = [texts[i] for i in claim["display_order"]]
    k = len(shown)
    per_row = 2 if k in (2, 4) else 3
    for start in range(0, k, per_row):
        cols = st.columns(per_row)
        for col, position in zip(cols, range(start, min(start + per_row, k))):
            with col:
                st.markdown(f"**Response {assignment.position_label(k, position)}**")
                with st.container(border=True):
                    st.markdown(shown[position])
    return shown


def answer_fields(settings: dict, aid: int) -> dict:
    """Aspect scores, rationale and reason tags, keyed to the served item."""
    fields: dict = {"aspects": {}, "reason_tags": []}
    if settings.aspects:
        st.markdown("**Score the better response on each aspect** (1 = poor, 5 = excellent)")
        cols = st.columns(len(settings.aspects))
        for col, aspect in zip(cols, settings.aspects):
            fields["aspects"][aspect] = col.segmented_control(
                aspect, assignment.LIKERT, key=Keys.item(Keys.ASPECT, aid, aspect))
    minimum = settings.rationale_min_chars
    label = "Why?" + (" (required" if settings.rationale_required else " (optional")
    label += f", at least {minimum} characters)" if minimum else ")"
    fields["rationale"] = st.text_area(label, key=Keys.item(Keys.RATIONALE, aid), height=90)
    if settings.reason_tags:
        cols = st.columns(len(settings.reason_tags))
        fields["reason_tags"] = [
            tag for i, (col, tag) in enumerate(zip(cols, settings.reason_tags))
            if col.checkbox(tag, key=Keys.item(Keys.TAG, aid, i))]
    return fields


def edit_box(settings: dict, aid: int, shown: list[str], position: int | None = None
             ) -> tuple[int | None, str | None]:
    """Offer to improve a response; return (displayed position edited, text) or (None, None).

    With ``position`` known (the graded scale's winner) the box edits that
    response; otherwise the rater picks which response to improve, and only
    an edit of the response they then choose is accepted.
    """
    if not settings.edits_allowed:
        return None, None
    k = len(shown)
    with st.expander("Improve the chosen response (optional)"):
        if position is None:
            labels = [assignment.position_label(k, p) for p in range(k)]
            picked = st.segmented_control("Response to improve", labels,
                                          key=Keys.item(Keys.EDIT_TARGET, aid))
            position = labels.index(picked) if picked is not None else None
        if position is None:
            st.caption("Pick the response you prefer, then improve its text here.")
            return None, None
        text = st.text_area(f"Improve Response {assignment.position_label(k, position)}",
                            value=shown[position], height=200,
                            key=Keys.item(Keys.EDIT, aid, position))
    return position, text


def save(db, claim: dict, rater: dict, settings: dict, label: dict, fields: dict,
         edit: tuple[int | None, str | None], message_slot, metadata: dict | None = None) -> None:
    """Store the judgment and move on, or say inline what is missing and store nothing."""
    try:
        edited = assignment.resolve_edit(claim, label, *edit)
        assignment.submit(db, claim, rater["id"], label, settings=settings,
                          aspects=fields["aspects"], rationale=fields["rationale"],
                          reason_tags=fields["reason_tags"], edited=edited, metadata=metadata)
    except InvalidInput as exc:
        message_slot.error(f"Not saved: {exc}.", icon=":material/error:")
        return
    common.flash(f"Saved: {assignment.describe_label(label, claim['display_order'])}")
    st.rerun()


def pairwise(db, claim: dict, rater: dict, settings: dict) -> None:
    aid, order = claim["id"], claim["display_order"]
    shown = show_responses(claim)
    scale = None
    if settings.strength_scale:
        scale = st.segmented_control("Which response is better?", assignment.STRENGTH_LABELS,
                                     key=Keys.item(Keys.STRENGTH, aid))
    fields = answer_fields(settings, aid)
    winner = None
    if scale is not None:
        label = assignment.label_for_strength(order, scale)
        winner = order.index(label["choice"]) if label["outcome"] == "choice" else None
    if not settings.strength_scale:
        edit = edit_box(settings, aid, shown)
    elif winner is not None:
        edit = edit_box(settings, aid, shown, winner)
    else:
        edit = (None, None)  # the box follows the scale: it opens once A or B wins
    message_slot = st.container()
    cols = st.columns(2 if settings.strength_scale else 4)
    if settings.strength_scale:
        submit = cols[0].button("Submit", key=Keys.item(Keys.SUBMIT, aid), type="primary",
                                shortcut=SUBMIT_SHORTCUT, width="stretch")
        both_bad = cols[1].button("Both bad", key=Keys.item(Keys.BOTH_BAD, aid),
                                  shortcut="4", width="stretch")
        if submit:
            if scale is None:
                message_slot.error("Not saved: pick how much better one response is "
                                   "(or Tie) first.", icon=":material/error:")
            else:
                save(db, claim, rater, settings, assignment.label_for_strength(order, scale),
                     fields, edit, message_slot)
        if both_bad:
            save(db, claim, rater, settings, assignment.label_for_outcome(
                "both_bad", strength_scale=True), fields, edit, message_slot)
        return
    buttons = [("A is better", Keys.CHOOSE_A), ("B is better", Keys.CHOOSE_B),
               ("Tie", Keys.TIE), ("Both bad", Keys.BOTH_BAD)]
    clicked = [col.button(text, key=Keys.item(key, aid), shortcut=str(i + 1), width="stretch",
                          type="primary" if i < 2 else "secondary")
               for i, (col, (text, key)) in enumerate(zip(cols, buttons))]
    if clicked[0] or clicked[1]:
        label = assignment.label_for_position(order, 0 if clicked[0] else 1)
    elif clicked[2] or clicked[3]:
        label = assignment.label_for_outcome("tie" if clicked[2] else "both_bad")
    else:
        return
    save(db, claim, rater, settings, label, fields, edit, message_slot)


def slate(db, claim: dict, rater: dict, settings: dict) -> None:
    aid, order = claim["id"], claim["display_order"]
    k = len(order)
    shown = show_responses(claim)
    ranks = positions = None
    if settings.ranking_mode == "full":
        st.markdown("**Rank the responses, best first**")
        # The drag-and-drop list is a custom component that AppTest cannot drive;
        # the rank selectors do the same job and are the path the tests use.
        if st.toggle("Drag to rank", value=True, key=Keys.item(Keys.DRAG, aid)):
            items = [f"Response {p + 1}: {shown[p][:60]}" for p in range(k)]
            result = sort_items(items, direction="vertical", key=Keys.item(Keys.SORT, aid))
            positions = [items.index(x) for x in result]
        else:
            cols = st.columns(k)
            ranks = [col.selectbox(f"Rank of Response {p + 1}", list(range(1, k + 1)),
                                   index=None, key=Keys.item(Keys.RANK, aid, p))
                     for p, col in enumerate(cols)]
    fields = answer_fields(settings, aid)
    edit = edit_box(settings, aid, shown)
    message_slot = st.container()
    if settings.ranking_mode == "full":
        cols = st.columns(2)
        submit = cols[0].button("Submit ranking", key=Keys.item(Keys.SUBMIT, aid),
                                type="primary", shortcut=SUBMIT_SHORTCUT, width="stretch")
        all_bad = cols[1].button("All bad", key=Keys.item(Keys.BOTH_BAD, aid), width="stretch")
        if submit:
            try:
                ranking = (assignment.ranking_from_positions(order, positions)
                           if positions is not None else assignment.ranking_from_ranks(order, ranks))
            except InvalidInput as exc:
                message_slot.error(f"Not saved: {exc}.", icon=":material/error:")
                return
            save(db, claim, rater, settings, {"outcome": "choice", "ranking": ranking}, fields,
                 edit, message_slot,
                 metadata={"ranking_input": "drag" if positions is not None else "select"})
    else:
        cols = st.columns(k + 1)
        best = [col.button(f"{p + 1} is best", key=Keys.item(Keys.BEST, aid, p),
                           shortcut=str((p + 1) % 10), width="stretch")
                for p, col in enumerate(cols[:k])]
        all_bad = cols[k].button("All bad", key=Keys.item(Keys.BOTH_BAD, aid), width="stretch")
        if any(best):
            save(db, claim, rater, settings, assignment.label_for_position(order, best.index(True)),
                 fields, edit, message_slot)
    if all_bad:
        save(db, claim, rater, settings, assignment.label_for_outcome("both_bad"), fields, edit,
             message_slot)


def skip_or_flag(db, claim: dict, rater: dict) -> None:
    aid = claim["id"]
    with st.expander("Skip or flag this item"):
        left, right = st.columns(2)
        reason = left.text_input("Why skip? (optional)", key=Keys.item(Keys.SKIP_REASON, aid))
        if left.button("Skip", key=Keys.item(Keys.SKIP, aid)):
            assignment.skip(db, claim, rater["id"], reason)
            common.flash("Skipped")
            st.rerun()
        problem = right.selectbox("What is wrong with it?", assignment.FLAG_REASONS, index=None,
                                  key=Keys.item(Keys.FLAG_REASON, aid))
        if right.button("Flag", key=Keys.item(Keys.FLAG, aid)):
            if problem is None:
                right.error("Choose what is wrong with the item first.")
            else:
                assignment.flag(db, claim, rater["id"], problem)
                common.flash(f"Flagged as {problem}")
                st.rerun()


db = common.get_db()
rater = rating_rater(db, common.gate(db))
common.show_flash()
projects = store.list_projects(db)
if not projects:
    st.info("No projects yet: an admin imports items first.")
    st.stop()
project = common.pick_project(projects, Keys.PROJECT)
settings = project["settings"]
try:
    claim = assignment.next_item(db, project["id"], rater["id"])
except AccessDenied as exc:
    st.error(f"Access denied: {exc}.", icon=":material/lock:")
    st.stop()
progress = store.rater_progress(db, project["id"], rater["id"], open_all=common.open_item_count(
    store.default_db(), project["id"], settings.raters_per_item))

st.title(project["name"])
done, available = progress["done"], progress["available"]
st.progress(done / available if available else 1.0,
            text=f"{rater['name']}: {done} of {available} done")
if claim is None:
    st.success(f"All done, thank you! You judged {done} item{'s' * (done != 1)} in "
               f"{project['name']} and skipped or flagged {progress['skipped']}.",
               icon=":material/celebration:")
    st.stop()
if settings.guidelines:
    with st.expander("Guidelines"):
        st.markdown(settings.guidelines)
show_item(claim["item"])
if project["kind"] == "pairwise":
    pairwise(db, claim, rater, settings)
else:
    slate(db, claim, rater, settings)
skip_or_flag(db, claim, rater)
