"""The admin's item browser in real chromium: search, a filter, and marking an item gold."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from prefstore import store
from tests.ui.conftest import wait_app_idle
from tests.ui.test_browser_team import choose, main, open_tab, settle, type_into

pytestmark = pytest.mark.browser

ADMIN = "items-admin-token"
BEACON = "http://203.0.113.9/beacon.png"  # TEST-NET-3: never routable
HOSTILE = f"![pixel]({BEACON}) <img src='{BEACON}'> <script>window.__xss = 1</script>"


def item_summaries(page) -> list[str]:
    """The visible item expanders' labels, in page order."""
    texts = main(page).locator("[data-testid='stExpander'] summary").all_inner_texts()
    # A summary's text also holds its icon's name, on a line of its own.
    return [line.strip() for text in texts for line in text.split("\n")
            if re.match(r"q\d: ", line.strip())]


def test_search_filter_and_mark_gold(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "items.db"
    db = store.connect(db_path)
    project = store.create_project(db, "p", "pairwise", {"gold_rate": 0.0})
    ids = store.insert_items(db, project["id"], [
        {"external_id": "q0", "prompt": "Rate 100% sure",
         "responses": [{"text": f"first {HOSTILE}"}, {"text": "second"}]},
        {"external_id": "q1", "prompt": "Rate 100 sure",
         "responses": [{"text": "third"}, {"text": "fourth"}]},
        {"external_id": "q2", "prompt": "plain", "metadata": {"category": "math"},
         "responses": [{"text": "fifth"}, {"text": "sixth"}]}])
    db.close()
    url = streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN})
    origin = urlsplit(url).netloc
    page = browser_page
    foreign: list[str] = []
    page.on("request", lambda req: foreign.append(req.url)
            if urlsplit(req.url).netloc != origin else None)
    page.goto(f"{url}/admin?token={ADMIN}")
    wait_app_idle(page)
    open_tab(page, "Items")
    assert item_summaries(page) == ["q0: Rate 100% sure", "q1: Rate 100 sure", "q2: plain"]

    type_into(page, "Search the prompts and responses", "100%")
    assert item_summaries(page) == ["q0: Rate 100% sure"]
    main(page).locator("[data-testid='stExpander'] summary").filter(
        has_text="q0: Rate 100% sure").click()
    main(page).get_by_text("first !").first.wait_for(state="visible")  # the image, as text
    assert page.evaluate("window.__xss") is None
    type_into(page, "Search the prompts and responses", "")
    type_into(page, "Metadata key", "category")
    type_into(page, "Metadata value", "math")
    assert item_summaries(page) == ["q2: plain"]

    main(page).locator("[data-testid='stExpander'] summary").filter(has_text="q2: plain").click()
    settle(page)
    choose(page, "Expected answer", "Response 1")
    main(page).get_by_role("button", name="Mark as gold", exact=True).click()
    page.get_by_text("q2 is gold: response 1").first.wait_for(state="visible")
    wait_app_idle(page)
    db = store.connect(db_path)
    try:
        item = store.get_item(db, ids[2])
        assert (item["is_gold"], item["gold"]) == (1, {"choice": 1})
        entry = store.audit_log(db, project["id"], limit=1)[0]
        assert (entry["actor"], entry["action"], entry["details"]) == (
            "admin", "mark_gold", {"item_id": ids[2], "external_id": "q2",
                                   "gold": {"choice": 1}})
    finally:
        db.close()
    type_into(page, "Metadata key", "")
    type_into(page, "Metadata value", "")
    choose(page, "Gold", "Yes")
    assert item_summaries(page) == ["q2: plain (gold)"]
    assert foreign == [], f"requests to other origins: {foreign[:5]}"
