"""The dashboard in real chromium: markup in any stored text stays text, and screenshots.

A project whose prompt, responses, systems, metadata, rater names, rationales
and edits all carry script, image, javascript-link and markdown-embedded HTML
payloads is opened on the rate page (as a rater) and on every dashboard page
(as the admin), including the style-controlled and hybrid leaderboards and the
judges' style comparison. No dialog may open, and the DOM may hold no element or
link built from a payload.
"""

from __future__ import annotations

import pytest

from prefstore import fitting, routing, store
from tests.ui.conftest import wait_app_idle

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "browser-admin-token"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
JS_LINK = "[x](javascript:alert(1))"
MD_HTML = "**bold** <b onmouseover=alert(1)>b</b> <a href=\"javascript:alert(1)\">a</a>"
PAYLOADS = (SCRIPT, IMG, JS_LINK, MD_HTML)
URL_PATHS = ("dashboard", "agreement", "leaderboard", "rater-types", "judges", "edits",
             "routing")
N_ITEMS = 24


def seed_payloads(path):
    """One project where every text an admin or rater can see holds the payloads."""
    db = store.connect(path)
    everything = " ".join(PAYLOADS)
    project = store.create_project(db, "xss", "pairwise", {
        "raters_per_item": 5, "gold_rate": 0.0, "guidelines": everything})
    store.create_project(db, IMG, "pairwise")  # a payload in the project picker too
    ids = store.insert_items(db, project["id"], [{
        "external_id": f"{IMG}{i}", "prompt": f"Prompt {i} {everything}",
        "metadata": {"note": everything}, "category": SCRIPT,
        "responses": [{"text": f"{SCRIPT} left {i}", "system": f"{IMG} sys-a"},
                      {"text": f"{JS_LINK} right {i}", "system": f"{SCRIPT} sys-b"}]}
        for i in range(N_ITEMS)])
    humans = [store.create_rater(db, name)[0] for name in (SCRIPT, IMG, JS_LINK)]
    judge = store.get_or_create_rater(db, MD_HTML, "llm")
    n = 0
    for k, item in enumerate(ids):
        for r, rater in enumerate(humans):
            n += 1
            choice = (k + (r == 2 and k % 4 == 0)) % 2
            store.submit_judgment(
                db, item_id=item, rater_id=rater["id"], submission_id=f"s{n}",
                outcome="choice", choice=choice, strength=1 + (k % 3), display_order=[0, 1],
                rationale=everything, time_ms=4000 + 100 * k,
                edited=f"{everything}\n{SCRIPT} edited {k}" if r == 0 else None)
        n += 1
        store.submit_judgment(db, item_id=item, rater_id=judge["id"], submission_id=f"s{n}",
                                kind="llm", outcome="choice", choice=k % 2,
                                display_order=[0, 1], rationale=everything,
                                metadata={"confidence": 0.5 + k / 100, "note": everything})
    fitting.refit_all(db, project["id"])
    routing.refresh_routing(db, project["id"])
    rater, token = store.create_rater(db, "browser-rater")
    store.assign_rater(db, rater["id"], project["id"])
    db.close()
    return token


def watch(page) -> tuple[list, list, list]:
    """Record dialogs, script errors and every URL the page requested."""
    dialogs, errors, requests = [], [], []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(msg):
        # Resource failures are network noise offline (the Google-hosted page icon,
        # Streamlit probing /<page>/_stcore/health); the requests themselves are
        # checked instead, so an <img src=x> from a payload would still show.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requests.append(request.url))
    return dialogs, errors, requests


def assert_no_payload_requests(requests: list[str]) -> None:
    assert not [u for u in requests if u.rstrip("/").endswith("/x") or "javascript:" in u]


def assert_inert(page, where: str) -> None:
    assert page.locator("img[src='x']").count() == 0, where
    assert page.locator("[onerror], [onmouseover]").count() == 0, where
    assert page.locator("a[href^='javascript:' i]").count() == 0, where
    scripts = page.locator("script").evaluate_all("els => els.map(e => e.textContent)")
    assert not any("alert(1)" in s for s in scripts), where
    assert page.locator("[data-testid='stException']").count() == 0, where


def open_page(page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for(state="visible")
    wait_app_idle(page)


def test_payloads_stay_text_everywhere(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "xss.db"
    token = seed_payloads(db_path)
    url = streamlit_server(db_path, env={"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN})
    page = browser_page
    dialogs, errors, requests = watch(page)

    page.goto(f"{url}/?token={token}&project=xss")
    page.get_by_text("Prompt", exact=False).first.wait_for(state="visible")
    wait_app_idle(page)
    assert_inert(page, "rate")
    assert page.get_by_text(SCRIPT, exact=False).count() >= 1  # shown as text

    titles = ("Dashboard", "Agreement", "Leaderboard", "Rater types", "Judges", "Edits",
              "Routing")
    for path, title in zip(URL_PATHS, titles):
        open_page(page, f"{url}/{path}?token={ADMIN_TOKEN}&project=xss", title)
        if page.locator(".js-plotly-plot").count():
            page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached")
        assert_inert(page, path)
    # Style control and the hybrid leaderboard show the same names and texts.
    open_page(page, f"{url}/leaderboard?token={ADMIN_TOKEN}&project=xss", "Leaderboard")
    page.get_by_text("Control for style").click()
    page.get_by_role("heading", name="Controlled for style").wait_for(state="visible")
    wait_app_idle(page)
    assert_inert(page, "leaderboard, style control")
    page.get_by_text("Hybrid (human-corrected)", exact=True).click()
    page.get_by_text("Judge: ", exact=False).first.wait_for(state="visible")
    wait_app_idle(page)
    assert_inert(page, "leaderboard, hybrid")
    assert page.get_by_text(f"Judge: {MD_HTML}", exact=True).count() == 1
    open_page(page, f"{url}/judges?token={ADMIN_TOKEN}&project=xss", "Judges")
    page.get_by_role("heading", name="Style: what this judge rewards").wait_for(state="visible")
    assert_inert(page, "judges, style")
    # The edit diffs and the judge's name are on screen as text.
    open_page(page, f"{url}/edits?token={ADMIN_TOKEN}&project=xss", "Edits")
    assert page.locator("[data-testid='stCode']").first.inner_text().count(SCRIPT) >= 1
    assert dialogs == []
    assert errors == [], sorted(set(errors))
    assert_no_payload_requests(requests)


def test_screenshots_on_pandalm(pandalm_db_path, tmp_path, streamlit_server, browser_page,
                                screenshots):
    path = tmp_path / "pandalm.db"
    source = store.connect(pandalm_db_path)
    store.backup(source, path)
    source.close()
    url = streamlit_server(path, env={"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN})
    page = browser_page
    dialogs, errors, requests = watch(page)
    page.set_viewport_size({"width": 1280, "height": 1500})
    # A deep link as the fresh server's first visit: the page, and no "Page not found".
    for path_, title, name in (("agreement", "Agreement", "dashboard-agreement.png"),
                               ("leaderboard", "Leaderboard", "dashboard-leaderboard.png")):
        open_page(page, f"{url}/{path_}?token={ADMIN_TOKEN}", title)
        page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached")
        assert_inert(page, path_)
        page.screenshot(path=str(screenshots / name), full_page=True)
        assert (screenshots / name).stat().st_size > 20_000
        assert "Page not found" not in page.locator("body").inner_text()
    # Style control side by side, and the judge's style preferences beside the raters'.
    page.get_by_text("Control for style").click()
    page.get_by_role("heading", name="Style coefficients").wait_for(state="visible")
    wait_app_idle(page)
    page.screenshot(path=str(screenshots / "dashboard-leaderboard-style.png"), full_page=True)
    open_page(page, f"{url}/judges?token={ADMIN_TOKEN}", "Judges")
    page.get_by_role("heading", name="Style: what this judge rewards").wait_for(state="visible")
    page.locator(".js-plotly-plot .main-svg").last.wait_for(state="attached")
    assert_inert(page, "judges")
    page.screenshot(path=str(screenshots / "dashboard-judges-style.png"), full_page=True)
    assert dialogs == [] and errors == []
    assert_no_payload_requests(requests)
