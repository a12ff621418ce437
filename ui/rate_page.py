"""Rate: one served item at a time, pairwise (A vs B) or a slate of K responses.

Keyboard: every choice has a key, shown on its control. Without the graded
scale 1 / 2 / 3 / 4 pick A / B / Tie / Both bad. With it, 1-7 pick the steps
from "A much better" to "B much better", 0 is Both bad and S submits. On a
slate 1..9 and 0 pick the best response, S submits a full ranking and X is All
bad. Streamlit ignores these keys while the cursor is in a text field, so
typing a rationale never submits.

Previous judgments: the rater's last ten judgments in the project can be
changed from the expander at the top. A change is stored as a new row that
supersedes the old one (the store stays append-only); the open item waits.

Untrusted text stays inert: item text is markdown with its images turned
into plain links (:func:`prefstore.text.inert_markdown`), and names never go
through markdown at all.
"""

from __future__ import annotations

import contextlib

import streamlit as st
from streamlit_sortables import sort_items

from prefstore import access, assignment, store
from prefstore import text as inert
from prefstore.errors import AccessDenied, InvalidInput, PrefstoreError
from ui import common
from ui.common import Keys
from ui.keyboard import rating_keys

RECENT_LIMIT = 10  # previous judgments a rater can go back to
SUBMIT_SHORTCUT = "S"
BOTH_BAD_ON_SCALE = "0"  # 1-7 are the scale's steps
ALL_BAD_SHORTCUT = "X"  # a slate's digits pick responses 1-10


def rating_rater(db, identity) -> dict:
    """Return the rater to rate as; in local mode, ask for a name first."""
    if identity.rater is not None:
        return identity.rater
    st.title("Rate")
    st.write("Type your name to start rating. Your judgments are stored under it.")
    with st.form(Keys.LOCAL_NAME_FORM, border=False):  # Enter in the field starts rating
        name = st.text_input("Your name", key=Keys.LOCAL_NAME_INPUT,
                             max_chars=store.raters.MAX_NAME_CHARS)
        go = st.form_submit_button("Start rating", key=Keys.LOCAL_NAME_GO, type="primary")
    if go:
        try:
            found = access.local_rater(db, identity, name)
        except (InvalidInput, AccessDenied) as exc:
            st.error(f"Not started: {inert.escape_markdown(exc)}")
        else:
            st.session_state[Keys.LOCAL_NAME] = found.name
            st.rerun()
    st.stop()


def show_text(text: str | None, key: str, heading: str = "") -> None:
    """Show untrusted markdown, inert; a long text shows its first screen and a control.

    ``heading``: the app's own markdown line above the text, in the same element.
    """
    first, rest = inert.split_long(text or "")
    st.markdown(f"{heading}\n\n{inert.inert_markdown(first)}" if heading
                else inert.inert_markdown(first))
    if rest and st.toggle(f"Show the rest ({len(rest):,} more characters)", key=key):
        st.text(rest)  # plain text: nothing in it is interpreted


def show_item(item: dict, aid: int) -> None:
    if item["messages"]:
        for k, turn in enumerate(item["messages"]):
            avatar = ":material/settings:" if turn["role"] == "system" else None
            with st.chat_message(turn["role"], avatar=avatar):
                show_text(turn["content"], Keys.item(Keys.SHOW_REST, aid, "m", k))
    else:
        with st.chat_message("user"):
            show_text(item["prompt"], Keys.item(Keys.SHOW_REST, aid, "prompt"))


def show_responses(claim: dict) -> list[str]:
    """Show the responses in the claim's display order; return their texts in that order."""
    texts = {r["idx"]: r["text"] for r in claim["item"]["responses"]}
    shown = [texts[i] for i in claim["display_order"]]
    k = len(shown)
    per_row = 2 if k in (2, 4) else 3
    # Every element costs each rerun in the browser: a response is one markdown (its
    # heading and text) in a bordered column, or a bordered box where a row is not full.
    full_rows = k % per_row == 0
    for start in range(0, k, per_row):
        cols = st.columns(per_row, border=full_rows)
        for col, position in zip(cols, range(start, min(start + per_row, k))):
            with col, (contextlib.nullcontext() if full_rows else st.container(border=True)):
                show_text(shown[position], Keys.item(Keys.SHOW_REST, claim["id"], position),
                          heading=f"**Response {assignment.position_label(k, position)}**")
    return shown


def answer_fields(settings, aid: int, *, aspects: bool = True) -> dict:
    """Aspect scores, rationale and reason tags, keyed to the served item."""
    if settings.aspects and aspects:
        st.markdown("**Score the better response on each aspect** (1 = poor, 5 = excellent)")
        cols = st.columns(len(settings.aspects))
        for col, aspect in zip(cols, settings.aspects):
            col.segmented_control(inert.escape_markdown(aspect), assignment.LIKERT,
                                  key=Keys.item(Keys.ASPECT, aid, aspect))
    minimum = settings.rationale_min_chars
    label = "Why?" + (" (required" if settings.rationale_required else " (optional")
    label += f", at least {minimum} characters)" if minimum else ")"
    st.text_area(label, key=Keys.item(Keys.RATIONALE, aid), height=90)
    if settings.reason_tags:
        cols = st.columns(len(settings.reason_tags))
        for i, (col, tag) in enumerate(zip(cols, settings.reason_tags)):
            col.checkbox(inert.escape_markdown(tag), key=Keys.item(Keys.TAG, aid, i))
    return answer_state(settings, aid, aspects=aspects)


def answer_state(settings, aid: int, *, aspects: bool = True) -> dict:
    """The answer fields as the rater left them: what a click's callback stores."""
    state = st.session_state
    return {
        "aspects": ({aspect: state.get(Keys.item(Keys.ASPECT, aid, aspect))
                     for aspect in settings.aspects} if aspects else {}),
        "rationale": state.get(Keys.item(Keys.RATIONALE, aid), ""),
        "reason_tags": [tag for i, tag in enumerate(settings.reason_tags)
                        if state.get(Keys.item(Keys.TAG, aid, i))],
    }


def box_drafts(draft_key: str, widget_keys) -> dict:
    """A box's fields as last seen, by widget key; kept while the box is closed.

    The rate page's boxes build their widgets only while open, and Streamlit
    forgets the state of a widget a run did not build: what the rater typed before
    folding a box would be lost without this.
    """
    state = st.session_state
    drafts = state.setdefault(draft_key, {})
    for key in widget_keys:
        if key in state:
            drafts[key] = state[key]
    return drafts


def edit_drafts(aid: int, k: int) -> dict:
    """The improve box's fields (:func:`box_drafts`)."""
    return box_drafts(Keys.item(Keys.EDIT_DRAFT, aid),
                      [Keys.item(Keys.EDIT_TARGET, aid),
                       *(Keys.item(Keys.EDIT, aid, p) for p in range(k))])


def edit_state(settings, aid: int, k: int, position: int | None
               ) -> tuple[int | None, str | None]:
    """The improve box as the rater left it: (displayed position edited, text) or (None, None)."""
    if not settings.edits_allowed:
        return None, None
    drafts = edit_drafts(aid, k)
    if position is None:
        labels = [assignment.position_label(k, p) for p in range(k)]
        picked = drafts.get(Keys.item(Keys.EDIT_TARGET, aid))
        position = labels.index(picked) if picked in labels else None
    if position is None:
        return None, None
    return position, drafts.get(Keys.item(Keys.EDIT, aid, position))


def edit_box(settings, aid: int, shown: list[str], position: int | None = None
             ) -> tuple[int | None, str | None]:
    """Offer to improve a response; return (displayed position edited, text) or (None, None).

    With ``position`` known (the graded scale's winner, a full ranking's
    first) the box edits that response; otherwise the rater picks which response to improve, and only
    an edit of the response they then choose is accepted.
    """
    if not settings.edits_allowed:
        return None, None
    k = len(shown)
    # Built only while open, like "Skip or flag"; its fields outlive a fold (edit_drafts).
    box = st.expander("Improve the chosen response (optional)",
                      key=Keys.EDIT_OPEN, on_change="rerun")
    if not box.open:
        return edit_state(settings, aid, k, position)
    drafts = edit_drafts(aid, k)
    with box:
        if position is None:
            labels = [assignment.position_label(k, p) for p in range(k)]
            target_key = Keys.item(Keys.EDIT_TARGET, aid)
            picked = st.segmented_control("Response to improve", labels,
                                          default=drafts.get(target_key), key=target_key)
            position = labels.index(picked) if picked is not None else None
        if position is None:
            st.caption("Pick the response you prefer, then improve its text here.")
            return None, None
        edit_key = Keys.item(Keys.EDIT, aid, position)
        text = st.text_area(f"Improve Response {assignment.position_label(k, position)}",
                            value=drafts.get(edit_key, shown[position]), height=200,
                            key=edit_key)
        if text != shown[position]:
            st.caption("Preview of your version")
            with st.container(border=True):
                st.markdown(inert.inert_markdown(text))
    return position, text


def store_answer(db, claim: dict, rater: dict, settings, label: dict, fields: dict,
                 edit: tuple[int | None, str | None], metadata: dict | None = None
                 ) -> str | None:
    """Store the judgment and queue the "Saved" line; return why not, storing nothing."""
    try:
        edited = assignment.resolve_edit(claim, label, *edit)
        assignment.submit(db, claim, rater["id"], label, settings=settings,
                          aspects=fields["aspects"], rationale=fields["rationale"],
                          reason_tags=fields["reason_tags"], edited=edited, metadata=metadata)
    except PrefstoreError as exc:  # the item was removed, the claim moved on, a field missing
        return str(exc)
    saved = f"Saved: {assignment.describe_saved(label, claim['display_order'])}"
    feedback = (assignment.gold_feedback(claim["item"].get("gold"), label,
                                         claim["display_order"])
                if settings.gold_feedback else None)
    common.flash(saved + (f". {feedback}" if feedback else ""))
    return None


def answer_on_click(claim: dict, rater: dict, settings, action: str, pairwise: bool) -> None:
    """A rating button's callback: store the answer before the page reruns.

    Stored here, the click's own run already serves the next item: one script
    run per submit instead of two (storing, then ``st.rerun``). ``action`` is
    "submit" (the graded scale), "a", "b", "tie", "both_bad", or "best:<p>" on a
    slate. The fields are read from the session state their widgets keep.
    """
    aid, order = claim["id"], claim["display_order"]
    k = len(order)
    graded = pairwise and settings.strength_scale
    scale = st.session_state.get(Keys.item(Keys.STRENGTH, aid)) if graded else None
    if action == "submit" and scale is None:
        problem = "pick how much better one response is (or Tie) first"
    else:
        if action == "submit":
            label = assignment.label_for_strength(order, scale)
        elif action in ("a", "b"):
            label = assignment.label_for_position(order, 0 if action == "a" else 1)
        elif action.startswith("best:"):
            label = assignment.label_for_position(order, int(action.removeprefix("best:")))
        else:
            label = assignment.label_for_outcome(action, strength_scale=graded)
        winner = order.index(label["choice"]) if label["outcome"] == "choice" else None
        # On the graded scale the improve box follows the winner; elsewhere the rater picks.
        if not graded:
            edit = edit_state(settings, aid, k, None)
        elif winner is not None:
            edit = edit_state(settings, aid, k, winner)
        else:
            edit = (None, None)
        fields = answer_state(settings, aid, aspects=pairwise and scale != "Tie")
        # This thread's handle: a connection belongs to the thread that opened it.
        problem = store_answer(common.get_db(), claim, rater, settings, label, fields, edit)
    if problem is not None:
        st.session_state[Keys.item(Keys.NOT_SAVED, aid)] = problem


def not_saved_message(message_slot, aid: int) -> None:
    """Say inline why the last click stored nothing."""
    problem = st.session_state.pop(Keys.item(Keys.NOT_SAVED, aid), None)
    if problem is not None:
        message_slot.error(f"Not saved: {inert.inert_markdown(problem)}.",
                           icon=":material/error:")


def button_row():
    """One row of buttons: a horizontal container, one element where columns take one per
    button (every element costs each rerun in the rater's browser)."""
    return st.container(horizontal=True)


def strength_scale(aid: int) -> str | None:
    """The 7-step scale as buttons on keys 1-7; return the step picked (None: not yet)."""
    chosen_key = Keys.item(Keys.STRENGTH, aid)

    def pick(label: str) -> None:
        st.session_state[chosen_key] = label

    st.markdown("**Which response is better?** Keys 1-7 pick a step, S submits, 0 is both "
                "bad.")
    chosen = st.session_state.get(chosen_key)
    row = button_row()
    for step, label in enumerate(assignment.STRENGTH_LABELS):
        row.button(label, key=Keys.item(Keys.STRENGTH_STEP, aid, step), shortcut=str(step + 1),
                   type="primary" if label == chosen else "secondary", width="stretch",
                   on_click=pick, args=(label,))
    return chosen


def pairwise(db, claim: dict, rater: dict, settings) -> None:
    aid, order = claim["id"], claim["display_order"]
    shown = show_responses(claim)
    scale = strength_scale(aid) if settings.strength_scale else None
    # Scoring "the better response" makes no sense on a tie.
    answer_fields(settings, aid, aspects=scale != "Tie")
    if not settings.strength_scale:
        edit_box(settings, aid, shown)
    elif scale is not None:
        label = assignment.label_for_strength(order, scale)
        if label["outcome"] == "choice":  # the box follows the scale: it opens once A or B wins
            edit_box(settings, aid, shown, order.index(label["choice"]))
    not_saved_message(st, aid)  # no empty slot: a container costs every rerun
    row = button_row()
    if settings.strength_scale:
        row.button("Submit", key=Keys.item(Keys.SUBMIT, aid), type="primary",
                   shortcut=SUBMIT_SHORTCUT, width="stretch",
                   on_click=answer_on_click, args=(claim, rater, settings, "submit", True))
        row.button("Both bad", key=Keys.item(Keys.BOTH_BAD, aid),
                   shortcut=BOTH_BAD_ON_SCALE, width="stretch",
                   on_click=answer_on_click, args=(claim, rater, settings, "both_bad", True))
        return
    buttons = [("A is better", Keys.CHOOSE_A, "a"), ("B is better", Keys.CHOOSE_B, "b"),
               ("Tie", Keys.TIE, "tie"), ("Both bad", Keys.BOTH_BAD, "both_bad")]
    for i, (text, key, action) in enumerate(buttons):
        row.button(text, key=Keys.item(key, aid), shortcut=str(i + 1), width="stretch",
                   type="primary" if i < 2 else "secondary",
                   on_click=answer_on_click, args=(claim, rater, settings, action, True))


def full_ranking(order: list[int], shown: list[str], aid: int) -> tuple[dict | None, str | None]:
    """Ask for a full ranking; return ``(label, how)`` or ``(None, why not yet)``.

    A ranking is something the rater did: a drag that changed the order, a rank
    for every response, or an explicit "keep this order". The order as shown,
    untouched, is not a ranking (``ranking_input`` records which it was).
    """
    k = len(order)
    st.markdown("**Rank the responses, best first**")
    # The drag-and-drop list is a custom component that AppTest cannot drive;
    # the rank selectors do the same job and are the path the tests use.
    # One setting for the session: a rater who prefers the selectors keeps them.
    if st.toggle("Drag to rank", value=True, key=Keys.DRAG):
        items = [f"Response {p + 1}: {inert.plain_line(shown[p])}" for p in range(k)]
        result = sort_items(items, direction="vertical", key=Keys.item(Keys.SORT, aid))
        positions = [items.index(x) for x in result]
        moved = positions != list(range(k))
        keep = st.checkbox("Keep this order: it is my ranking", key=Keys.item(Keys.KEEP, aid),
                           disabled=moved)
        if not moved and not keep:
            return None, ("drag the responses into your order first, or tick \"Keep this "
                          "order\" if the order shown is your ranking")
        ranking = assignment.ranking_from_positions(order, positions)
        return {"outcome": "choice", "ranking": ranking}, "drag" if moved else "kept"
    cols = st.columns(k)
    ranks = [col.selectbox(f"Rank of Response {p + 1}", list(range(1, k + 1)), index=None,
                           key=Keys.item(Keys.RANK, aid, p))
             for p, col in enumerate(cols)]
    try:
        return {"outcome": "choice",
                "ranking": assignment.ranking_from_ranks(order, ranks)}, "select"
    except InvalidInput as exc:
        return None, str(exc)


def slate(db, claim: dict, rater: dict, settings) -> None:
    aid, order = claim["id"], claim["display_order"]
    k = len(order)
    shown = show_responses(claim)
    ranked = None
    if settings.ranking_mode == "full":
        ranked = full_ranking(order, shown, aid)
    # Aspects score "the better response": a pairwise notion.
    fields = answer_fields(settings, aid, aspects=False)
    # On a full ranking the box improves whichever response is ranked first.
    top = None
    if ranked is not None and ranked[0] is not None:
        top = order.index(ranked[0]["ranking"][0])
    edit = edit_box(settings, aid, shown, top)
    if settings.ranking_mode != "full":
        not_saved_message(st, aid)
        row = button_row()
        for p in range(k):
            row.button(f"{p + 1} is best", key=Keys.item(Keys.BEST, aid, p),
                       shortcut=str((p + 1) % 10), width="stretch", on_click=answer_on_click,
                       args=(claim, rater, settings, f"best:{p}", False))
        row.button("All bad", key=Keys.item(Keys.BOTH_BAD, aid), shortcut=ALL_BAD_SHORTCUT,
                   width="stretch", on_click=answer_on_click,
                   args=(claim, rater, settings, "both_bad", False))
        return
    # A full ranking is stored in the run: the drag list's order exists only there.
    message_slot = st.container()
    row = button_row()
    submit = row.button("Submit ranking", key=Keys.item(Keys.SUBMIT, aid),
                        type="primary", shortcut=SUBMIT_SHORTCUT, width="stretch")
    all_bad = row.button("All bad", key=Keys.item(Keys.BOTH_BAD, aid),
                         shortcut=ALL_BAD_SHORTCUT, width="stretch")
    if submit:
        label, how = ranked
        if label is None:
            problem = how
        else:
            problem = store_answer(db, claim, rater, settings, label, fields, edit,
                                   metadata={"ranking_input": how})
    elif all_bad:
        problem = store_answer(db, claim, rater, settings,
                               assignment.label_for_outcome("both_bad"), fields, edit)
    else:
        return
    if problem is not None:
        message_slot.error(f"Not saved: {inert.inert_markdown(problem)}.",
                           icon=":material/error:")
        return
    st.rerun()


def close_boxes_for(aid: int) -> None:
    """A new item's "Improve" and "Skip or flag" boxes start closed.

    Their open state has one key for all items, so the browser updates the two boxes
    in place on a submit: a key per item would remount both (their label, icon and
    styles) in the rater's browser every time. Buttons and fields keep per-item keys.
    """
    state = st.session_state
    if state.get(Keys.BOXES_ITEM) != aid:
        state[Keys.BOXES_ITEM] = aid
        state[Keys.EDIT_OPEN] = state[Keys.SKIP_OPEN] = False


def skip_or_flag(db, claim: dict, rater: dict) -> None:
    aid = claim["id"]
    # Built only while open: every rerun of the page pays for a closed box's widgets
    # in the server and in the browser, and most items are never skipped.
    box = st.expander("Skip or flag this item", key=Keys.SKIP_OPEN,
                      on_change="rerun")
    reason_key, problem_key, note_key = (Keys.item(name, aid) for name in (
        Keys.SKIP_REASON, Keys.FLAG_REASON, Keys.FLAG_NOTE))
    drafts = box_drafts(Keys.item(Keys.SKIP_DRAFT, aid), (reason_key, problem_key, note_key))
    if not box.open:
        return
    with box:
        left, right = st.columns(2)
        reason = left.text_input("Why skip? (optional)", value=drafts.get(reason_key, ""),
                                 key=reason_key)
        if left.button("Skip", key=Keys.item(Keys.SKIP, aid)):
            assignment.skip(db, claim, rater["id"], reason)
            common.flash("Skipped")
            st.rerun()
        drafted = drafts.get(problem_key)
        problem = right.selectbox(
            "What is wrong with it?", assignment.FLAG_REASONS, key=problem_key,
            index=(assignment.FLAG_REASONS.index(drafted)
                   if drafted in assignment.FLAG_REASONS else None))
        note = (right.text_input("What is wrong?", value=drafts.get(note_key, ""),
                                 key=note_key, max_chars=assignment.MAX_FLAG_NOTE_CHARS)
                if problem == "other" else None)
        if right.button("Flag", key=Keys.item(Keys.FLAG, aid)):
            if problem is None:
                right.error("Choose what is wrong with the item first.")
                return
            try:
                assignment.flag(db, claim, rater["id"], problem, note)
            except InvalidInput as exc:
                right.error(f"Not flagged: {inert.escape_markdown(exc)}.")
                return
            common.flash(f"Flagged as {problem}")
            st.rerun()


def judgment_order(judgment: dict) -> list[int]:
    """The order the judgment's item was shown in (identity for an imported judgment)."""
    return judgment["display_order"] or list(range(judgment["n_responses"]))


def describe_judgment(judgment: dict) -> str:
    """One plain-text line for the picker: the item's id, its prompt's start, the label."""
    prompt = judgment["prompt"]
    if prompt is None:  # a chat item: its last user turn says what it is about
        users = [m["content"] for m in judgment["messages"] or [] if m["role"] == "user"]
        prompt = users[-1] if users else ""
    label = assignment.describe_saved(judgment, judgment_order(judgment))
    return (f"{inert.plain_line(judgment['external_id'], 40)} · "
            f"{inert.plain_line(prompt, 60)} · {label}")


def pick_previous(db, project: dict, rater: dict, judged: int) -> dict | None:
    """The "Previous judgments" expander; return the judgment picked for a change, if any.

    ``judged`` is the rater's count of judged items here (their progress): the
    judgments themselves are read only while the box is open.
    """
    pick_key = Keys.item(Keys.UNDO_PICK, project["id"])
    open_key = Keys.item(Keys.UNDO_OPEN, project["id"])
    if st.session_state.pop(Keys.UNDO_RESET, False):
        st.session_state[pick_key] = None
        st.session_state[open_key] = False
    if not judged:
        return None
    box = st.expander(f"Previous judgments (your last {min(judged, RECENT_LIMIT)})",
                      key=open_key, on_change="rerun")
    if not box.open:
        return None
    recent = store.recent_judgments(db, project["id"], rater["id"], limit=RECENT_LIMIT)
    by_id = {j["id"]: j for j in recent}
    with box:
        if not recent:  # excluded since the counters were read
            st.caption("None of your judgments here can be changed now.")
            return None
        # Options are plain text: ids, prompts and names are never markdown here.
        choice = st.selectbox("Change one of your previous judgments", list(by_id),
                              index=None, format_func=lambda jid: describe_judgment(by_id[jid]),
                              placeholder="Choose a judgment to change", key=pick_key)
    return by_id.get(choice)


def change_previous(db, project: dict, rater: dict, settings, judgment: dict) -> None:
    """Show a previous judgment's item with its label preselected; store a changed label."""
    jid, order = judgment["id"], judgment_order(judgment)
    item = store.get_item(db, judgment["item_id"])
    key_id = f"u{jid}"  # the change form's widgets never share keys with a served item
    st.subheader(f"Change your judgment on {inert.escape_markdown(judgment['external_id'])}")
    st.caption(f"Now: {assignment.describe_saved(judgment, order)}. Your current item "
               "waits for you.")
    show_item(item, key_id)
    show_responses({"id": key_id, "item": item, "display_order": order})
    full = project["kind"] != "pairwise" and settings.ranking_mode == "full"
    scale = settings.strength_scale and len(order) == 2
    message_slot = st.container()
    if full:
        all_bad = st.checkbox("All bad", value=judgment["outcome"] == "both_bad",
                              key=Keys.item(Keys.UNDO_ALL_BAD, jid))
        ranks_now = ([judgment["ranking"].index(i) + 1 for i in order]
                     if judgment["ranking"] else [None] * len(order))
        cols = st.columns(len(order))
        ranks = [col.selectbox(f"Rank of Response {p + 1}", list(range(1, len(order) + 1)),
                               index=None if ranks_now[p] is None else ranks_now[p] - 1,
                               key=Keys.item(Keys.UNDO_RANK, jid, p), disabled=all_bad)
                 for p, col in enumerate(cols)]
    else:
        choices = assignment.label_choices(len(order), strength_scale=scale)
        now = assignment.choice_for_label(judgment, order, strength_scale=scale)
        answer = st.radio("Your judgment", choices, horizontal=True,
                          index=None if now is None else choices.index(now),
                          key=Keys.item(Keys.UNDO_LABEL, jid))
    minimum = settings.rationale_min_chars
    why = "Why?" + (" (required" if settings.rationale_required else " (optional")
    why += f", at least {minimum} characters)" if minimum else ")"
    rationale = st.text_area(why, value=judgment["rationale"] or "", height=90,
                             key=Keys.item(Keys.UNDO_RATIONALE, jid))
    left, right = st.columns(2)
    save = left.button("Save the change", key=Keys.item(Keys.UNDO_SAVE, jid), type="primary",
                       width="stretch")
    if right.button("Back to rating", key=Keys.item(Keys.UNDO_BACK, jid), width="stretch"):
        st.session_state[Keys.UNDO_RESET] = True
        st.rerun()
    if not save:
        return
    try:
        if full and all_bad:
            label = assignment.label_for_outcome("both_bad")
        elif full:
            label = {"outcome": "choice", "ranking": assignment.ranking_from_ranks(order, ranks)}
        elif answer is None:
            raise InvalidInput("pick your judgment first")
        else:
            label = assignment.label_from_choice(order, answer, strength_scale=scale)
        assignment.change(db, judgment, rater["id"], label, settings=settings,
                          rationale=rationale)
    except PrefstoreError as exc:
        message_slot.error(f"Not changed: {inert.inert_markdown(str(exc))}.",
                           icon=":material/error:")
        return
    common.flash(f"Changed {inert.escape_markdown(judgment['external_id'])}: "
                 f"{assignment.describe_saved(judgment, order)} → "
                 f"{assignment.describe_saved(label, order)}")
    st.session_state[Keys.UNDO_RESET] = True
    st.rerun()


def finished(project: dict, progress: dict) -> None:
    """Say why nothing is served, in words that agree with the bar."""
    k, n = progress["k"], progress["n"]
    if n == 0:
        st.info("Nothing left to rate here: every item has all the judgments it needs.",
                icon=":material/task_alt:")
    elif k >= n:
        st.success(f"All done, thank you! You judged {progress['done']} "
                   f"item{'s' * (progress['done'] != 1)} and skipped or flagged "
                   f"{progress['skipped']}.", icon=":material/celebration:")
    else:
        st.info(f"Nothing to rate right now: the other {n - k} item{'s' * (n - k != 1)} "
                "open to you are being rated by others. Come back in a few minutes.",
                icon=":material/hourglass_top:")


def show() -> None:
    """The page: the identity gate, the project, the served item and its controls."""
    db = common.get_db()
    identity = common.gate(db)
    rater = rating_rater(db, identity)
    notice = common.take_flash()  # what the last click did: a line under the progress bar
    projects = access.visible_projects(db, identity)
    archived = access.archived_project(db, identity, st.query_params.get(Keys.QP_PROJECT))
    if archived is not None:  # a link to a project archived since: say so, in one line
        st.info(f"Project {inert.escape_markdown(archived['name'])} is archived: it takes no "
                "more ratings.", icon=":material/inventory_2:")
    if not projects:
        if archived is None:
            st.title("Rate")
            st.info("No projects for you yet: ask your project admin to add you to one."
                    if identity.mode == "token" and not identity.is_admin
                    else "No projects yet: an admin imports items first.")
        common.flash_line(notice)  # a click's outcome still shows when the page stops here
        st.stop()
    project = common.pick_project(projects, Keys.PROJECT)
    settings = project["settings"]
    try:
        assigned_only = identity.mode == "token" and not identity.is_admin
        claim = assignment.next_item(db, project["id"], rater["id"], assigned_only=assigned_only)
    except AccessDenied as exc:
        st.error(f"Access denied: {inert.inert_markdown(str(exc))}.", icon=":material/lock:")
        common.flash_line(notice)
        st.stop()
    progress = store.rater_progress(db, project["id"], rater["id"])

    st.title(inert.escape_markdown(project["name"]))
    st.caption(f"Rating as {inert.escape_markdown(rater['name'])}")
    st.progress(progress["k"] / progress["n"] if progress["n"] else 1.0,
                text=f"{progress['k']} of {progress['n']} done")
    common.flash_line(notice)
    previous = pick_previous(db, project, rater, progress["done"])
    if previous is not None:
        change_previous(db, project, rater, settings, previous)
        st.stop()
    if claim is None:
        finished(project, progress)
        st.stop()
    if settings.guidelines:
        with st.expander("Guidelines"):
            st.markdown(inert.inert_markdown(settings.guidelines))
    close_boxes_for(claim["id"])
    try:
        show_item(claim["item"], claim["id"])
        if project["kind"] == "pairwise":
            pairwise(db, claim, rater, settings)
        else:
            slate(db, claim, rater, settings)
        skip_or_flag(db, claim, rater)
    except Exception as exc:  # noqa: BLE001 - any failure to show one item must not block the rater
        assignment.flag_unshowable(db, claim, rater["id"], exc)
        common.flash("That item could not be shown, so it was flagged for the admin; here is the "
                     "next one")
        st.rerun()
    # Esc leaves a text box, a new item starts at the top, and 0 is Both bad on the 1-4 keys too.
    rating_keys(claim["id"], zero_is_both_bad=project["kind"] == "pairwise"
                and not settings.strength_scale)
