"""The admin's item browser (search, filters, every judgment, gold marking) and rater quality.

Item text, names and metadata are untrusted: text shows as inert markdown,
labels are escaped, and tables hold plain strings.
"""

from __future__ import annotations

import math

import streamlit as st

from prefstore import admin, quality, store
from prefstore import text as inert
from prefstore.errors import InvalidInput, NotFound
from ui import common
from ui.common import Keys

PAGE_SIZE = 20
ROUTING_LABELS = {None: "Any", "human": "Humans", "llm": "LLM only", "both": "Both",
                  "none": "Not routed yet"}
YES_NO_LABELS = {None: "Any", True: "Yes", False: "No"}
ORDER_LABELS = {"id": "Import order", "disagreement": "Most disagreed first"}
OUTCOME_LABELS = {"tie": "Tie", "both_bad": "Both bad"}
#: Above this many judgments the quality table waits to be asked for: it reads every
#: human judgment (200k take seconds), and the admin page reruns on every click.
QUALITY_AUTO_MAX_JUDGMENTS = 20_000


def first_page() -> None:
    """Go back to page 1 when a filter changes (a callback: it runs before the widgets)."""
    st.session_state[Keys.ITEMS_PAGE] = 1


def item_browser(db, project: dict, actor: str) -> None:
    """Search and filter the project's items, one expander each, a page at a time."""
    st.subheader(f"Items of {inert.escape_markdown(project['name'])}")
    reset = {"on_change": first_page}
    search = st.text_input("Search the prompts and responses", key=Keys.ITEMS_SEARCH,
                           max_chars=store.MAX_FILTER_CHARS, **reset)
    left, right = st.columns(2)
    meta_key = left.text_input("Metadata key", key=Keys.ITEMS_META_KEY, placeholder="category",
                               max_chars=store.MAX_FILTER_CHARS, **reset)
    meta_value = right.text_input("Metadata value", key=Keys.ITEMS_META_VALUE,
                                  max_chars=store.MAX_FILTER_CHARS, **reset)
    cols = st.columns(5)
    routing = cols[0].selectbox("Routing", list(ROUTING_LABELS), key=Keys.ITEMS_ROUTING,
                                format_func=ROUTING_LABELS.get, **reset)
    gold = cols[1].selectbox("Gold", list(YES_NO_LABELS), key=Keys.ITEMS_GOLD,
                             format_func=YES_NO_LABELS.get, **reset)
    flagged = cols[2].selectbox("Flagged or skipped", list(YES_NO_LABELS),
                                key=Keys.ITEMS_FLAGGED, format_func=YES_NO_LABELS.get, **reset)
    order = cols[3].selectbox("Order", store.ITEM_ORDERS, key=Keys.ITEMS_ORDER,
                              format_func=ORDER_LABELS.get, **reset)
    page = cols[4].number_input("Page", min_value=1, step=1, key=Keys.ITEMS_PAGE)
    try:
        found = store.search_items(
            db, project["id"], text=search, metadata_key=meta_key, metadata_value=meta_value,
            routing=routing, gold=gold, flagged=flagged, order=order, limit=PAGE_SIZE,
            offset=(int(page) - 1) * PAGE_SIZE)
    except InvalidInput as exc:
        st.error(f"Cannot search: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    total = found["total"]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if not found["items"]:
        st.info("No items match." if page == 1 or not total
                else f"Page {page} is past the last page ({pages}).")
        return
    first = (int(page) - 1) * PAGE_SIZE + 1
    st.caption(f"Items {first:,}–{first + len(found['items']) - 1:,} of {total:,} "
               f"(page {page} of {pages}).")
    for row in found["items"]:
        with st.expander(item_label(row)):
            item_body(db, project, row["id"], actor)


def item_label(row: dict) -> str:
    """The expander's one line: external id, the prompt's start, and what marks the item."""
    marks = []
    if row["is_gold"]:
        marks.append("gold")
    if row["flags"]:
        marks.append(f"{row['flags']} flagged or skipped")
    if row["disagreement"] is not None:
        marks.append(f"{row['n_human']} human, {row['disagreement']:.0%} disagree")
    line = f"{row['external_id']}: {inert.plain_line(row['prompt'], 80)}"
    return inert.escape_markdown(line + (f" ({'; '.join(marks)})" if marks else ""))


def show_text(text: str | None, key: str) -> None:
    """Show untrusted text as inert markdown; past the first screen, plain text on request."""
    first, rest = inert.split_long(text or "")
    st.markdown(inert.inert_markdown(first))
    if rest and st.toggle(f"Show the other {len(rest):,} characters", key=key):
        st.text(rest)  # plain text: nothing in it is interpreted


def item_body(db, project: dict, item_id: int, actor: str) -> None:
    """One item: prompt, responses, judgments, LLM verdicts, flags, and its gold answer."""
    try:
        item = store.item_detail(db, project["id"], item_id)
    except (NotFound, ValueError) as exc:  # ValueError: stored JSON that does not parse
        st.error(f"Cannot show this item: {inert.escape_markdown(exc)}.",
                 icon=":material/error:")
        return
    routing = item["routing"] or "not routed yet"
    category = f"; category {inert.escape_markdown(item['category'])}" if item["category"] else ""
    st.caption(f"Item {item['id']}; routing: {routing}{category}")
    if item["metadata"]:
        st.json(item["metadata"], expanded=False)
    st.markdown("**Prompt**")
    if item["prompt"] is not None:
        show_text(item["prompt"], Keys.browser_item(Keys.ITEM_SHOW_REST, item_id, "prompt"))
    else:
        st.json(item["messages"], expanded=False)
    for response in item["responses"]:
        system = f" ({inert.escape_markdown(response['system'])})" if response["system"] else ""
        st.markdown(f"**Response {response['idx']}**{system}")
        show_text(response["text"],
                  Keys.browser_item(Keys.ITEM_SHOW_REST, item_id, response["idx"]))
    st.markdown(f"**Human judgments** ({len(item['judgments'])})")
    if item["judgments"]:
        st.dataframe(admin.judgment_rows(item["judgments"]), hide_index=True)
    if item["verdicts"]:
        st.markdown("**LLM verdicts**")
        st.dataframe(admin.verdict_rows(item["verdicts"]), hide_index=True)
    if item["flags"]:
        st.markdown("**Flags and skips**")
        st.dataframe(item["flags"], hide_index=True)
    gold_form(db, project, item, actor)


def gold_form(db, project: dict, item: dict, actor: str) -> None:
    """Mark the item gold with its expected answer, change that answer, or unmark it."""
    item_id, gold = item["id"], item["gold"] if item["is_gold"] else None
    n = len(item["responses"])
    if project["kind"] == "pairwise":
        options = [*range(n), "tie", "both_bad"]
        current = gold.get("choice") if gold else None
        answer = st.selectbox(
            "Expected answer", options,
            index=options.index(current) if current in options else 0,
            format_func=lambda o: OUTCOME_LABELS.get(o, f"Response {o}"),
            key=Keys.browser_item(Keys.ITEM_GOLD_ANSWER, item_id))
        fields = {"choice": answer}
    else:
        typed = st.text_input(
            "Expected ranking: response numbers, best first (e.g. 2, 0, 1)",
            value=", ".join(map(str, gold.get("ranking") or [])) if gold else "",
            key=Keys.browser_item(Keys.ITEM_GOLD_ANSWER, item_id), max_chars=200)
        fields = {"ranking": typed}
    left, right = st.columns(2)
    save = left.button("Save the gold answer" if gold else "Mark as gold",
                       key=Keys.browser_item(Keys.ITEM_GOLD_SAVE, item_id))
    clear = gold is not None and right.button(
        "Unmark gold", key=Keys.browser_item(Keys.ITEM_GOLD_CLEAR, item_id))
    if not (save or clear):
        return
    name = inert.escape_markdown(item["external_id"])
    try:
        if clear:
            store.set_item_gold(db, project["id"], item_id, actor=actor)
            common.flash(f"{name} is no longer gold")
        else:
            if "ranking" in fields:
                fields["ranking"] = admin.parse_ranking(fields["ranking"])
            stored = store.set_item_gold(db, project["id"], item_id, actor=actor, **fields)
            answer = admin.label_text("choice" if isinstance(stored["choice"], int)
                                      else stored["choice"], stored["choice"],
                                      stored.get("ranking"))
            common.flash(f"{name} is gold: {inert.escape_markdown(answer)}")
    except (InvalidInput, NotFound) as exc:
        st.error(f"Not saved: {inert.escape_markdown(exc)}.", icon=":material/error:")
        return
    st.rerun()


def quality_table(db, project: dict) -> None:
    """The per-rater quality table of the project (human raters)."""
    st.subheader(f"Rater quality in {inert.escape_markdown(project['name'])}")
    n = store.count_judgments(db, project["id"])
    if n > QUALITY_AUTO_MAX_JUDGMENTS and not st.toggle(
            f"Compute it from all {n:,} judgments (takes a few seconds)",
            key=Keys.RATER_QUALITY_SHOW):
        return
    table = quality.rater_quality(db, project["id"])
    if table.empty:
        st.caption("No human judgments yet.")
        return
    st.caption("Gold accuracy uses each item's current gold answer. Agreement compares a "
               "rater with the majority of the other raters on the same item; items where "
               "they tie are left out. Position bias is the share of choices of the response "
               "shown first (0.5 is none, in pairwise projects).")
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(table, hide_index=True, column_config={
        "median_seconds": st.column_config.NumberColumn("median seconds", format="%.1f"),
        "gold_accuracy": percent, "majority_agreement": percent, "position_bias": percent})
