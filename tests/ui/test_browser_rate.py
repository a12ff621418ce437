"""A rater opens their link in real chromium, rates three items, and the rows are checked."""

from __future__ import annotations

import pytest

from prefstore import demo, store
from tests.ui.conftest import REPO, wait_app_idle

pytestmark = pytest.mark.browser

SCREENSHOT = REPO / "docs" / "screenshots" / "rate-pairwise.png"
PROBE_PROMPT = 'Probe <b id="xss-bold">bold</b> <img src="x" onerror="window.__xss = 1">'


def seed(path):
    """The demo projects, plus an item full of HTML that the rater is served first."""
    db = store.connect(path)
    demo.ensure_demo(db)
    project = store.get_project(db, "demo")
    [probe] = store.insert_items(db, project["id"], [{
        "external_id": "probe", "prompt": PROBE_PROMPT,
        "responses": [{"text": "<script>window.__xss = 2</script>plain A"},
                      {"text": "```html\n<i id='xss-code'>code</i>\n```"}]}])
    store.save_routing(db, project["id"], [{"item_id": probe, "decision": "human"}])
    rater, token = store.create_rater(db, "browser-rater")
    store.assign_rater(db, rater["id"], project["id"])
    db.close()
    return project, rater, token


def wait_for_prompt(page, prompt: str) -> None:
    page.get_by_text(prompt).first.wait_for(state="visible")
    wait_app_idle(page)


def save_screenshot(page) -> None:
    toasts = page.locator("[data-testid='stToast'] button")
    for i in range(toasts.count()):
        toasts.nth(i).click()
    page.locator("[data-testid='stToast']").first.wait_for(state="detached")
    page.set_viewport_size({"width": 1280, "height": 1350})
    page.get_by_text("Rating as browser-rater").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT))
    page.set_viewport_size({"width": 1280, "height": 1000})


def test_rater_link_rates_three_items(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "browser.db"
    project, rater, token = seed(db_path)
    url = streamlit_server(db_path)
    page = browser_page

    page.goto(f"{url}/?token={token}")
    page.get_by_text("Probe", exact=False).first.wait_for(state="visible")
    wait_app_idle(page)
    # Item text is shown as text: no element or script from it reaches the DOM.
    assert page.locator("#xss-bold, #xss-code").count() == 0
    assert page.evaluate("window.__xss === undefined")
    assert page.get_by_text('<b id="xss-bold">bold</b>', exact=False).count() >= 1

    # A refresh returns the rater to the same item: the token stays in the URL.
    page.reload()
    page.get_by_text("Probe", exact=False).first.wait_for(state="visible")
    wait_app_idle(page)
    assert f"token={token}" in page.url

    # Item 1: mouse only.
    page.get_by_role("radio", name="A clearly better").click()
    wait_for_prompt(page, "Improve the chosen response")  # the box follows the scale
    page.get_by_role("button", name="Submit").click()
    wait_for_prompt(page, "returns the n-th Fibonacci number")

    # Item 2: the scale with the mouse, Submit with its shortcut S.
    page.get_by_role("radio", name="B slightly better").click()
    wait_for_prompt(page, "Improve the chosen response")
    save_screenshot(page)
    page.keyboard.press("s")
    wait_for_prompt(page, "reverse a list in Python without modifying")

    # Item 3: Both bad with its shortcut 4.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("4")
    wait_for_prompt(page, "git rebase -i HEAD~3")
    assert f"token={token}" in page.url

    db = store.connect(db_path)
    try:
        rows = store.list_judgments(db, rater_id=rater["id"])
        items = [store.get_item(db, r["item_id"])["external_id"] for r in rows]
        assert items == ["probe", "code-1", "code-2"]
        assert [(r["outcome"], r["choice"], r["strength"]) for r in rows] == [
            ("choice", rows[0]["display_order"][0], 2),
            ("choice", rows[1]["display_order"][1], 1),
            ("both_bad", None, 0)]
        assert all(r["time_ms"] > 0 for r in rows)
        assert [r["submission_id"] for r in rows] == [f"a{a}" for a in sorted(
            int(r["submission_id"][1:]) for r in rows)]
    finally:
        db.close()
    assert SCREENSHOT.stat().st_size > 10_000
