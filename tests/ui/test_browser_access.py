"""Access in real chromium: a rater link cannot open admin or dashboard pages by URL path."""

from __future__ import annotations

import pytest

from prefstore import demo, store
from tests.ui.conftest import wait_app_idle

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "admin-secret-for-browser-test"
ADMIN_PATHS = ("admin", "dashboard", "agreement", "leaderboard", "rater-types", "judges",
               "edits", "routing")


def sidebar_links(page) -> list[str]:
    nav = page.locator("[data-testid='stSidebarNav'] a")
    # Each link's text is its icon name and its title on separate lines.
    return sorted(nav.nth(i).inner_text().strip().split("\n")[-1] for i in range(nav.count()))


def fresh_server(tmp_path, streamlit_server) -> tuple[str, str]:
    """A server that has served nobody yet, on a demo store with rater bob; (url, bob's token)."""
    db_path = tmp_path / "fresh.db"
    db = store.connect(db_path)
    demo.ensure_demo(db)
    bob, token = store.create_rater(db, "bob")
    store.assign_rater(db, bob["id"], store.get_project(db, "demo")["id"])
    db.close()
    return streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN}), token


def went_through_app_py(tab, expected: str) -> None:
    """``expected`` is shown, and the sidebar is app.py's navigation, not the pages/ files."""
    tab.get_by_text(expected).first.wait_for(state="visible")
    wait_app_idle(tab)
    body = tab.locator("[data-testid='stMain']").inner_text()
    assert "Access denied" not in body and "Traceback" not in body
    links = set(sidebar_links(tab))
    if expected == "Rating as bob":
        assert links <= {"Rate"} and "Create a project" not in body
    else:  # the admin's navigation: app.py's titles, none of the file names in pages/
        assert {"Rate", "Overview", "Agreement", "Admin"} <= links
        assert not links & {"admin", "dashboard agreement", "dashboard", "rate"}


@pytest.mark.parametrize("path", ["admin", "agreement", "rate", ""])
def test_first_visit_of_a_fresh_server_goes_through_app_py(tmp_path, streamlit_server,
                                                           browser_page, path):
    # Streamlit runs the first visits of a server in its legacy pages-directory
    # mode, where a deep link runs pages/<path>.py without app.py and the sidebar
    # lists every file in pages/. Every page sends such a visitor through app.py.
    url, token = fresh_server(tmp_path, streamlit_server)
    browser_page.goto(f"{url}/{path}?token={token}")
    went_through_app_py(browser_page, "Rating as bob")


@pytest.mark.parametrize(("path", "title"), [("agreement", "Agreement"),
                                           ("rater-types", "Rater types")])
def test_an_admin_deep_link_on_a_fresh_server_opens_its_page_with_no_page_not_found(
        tmp_path, streamlit_server, browser_page, path, title):
    # The legacy mode resolves the URL against the files in pages/: a file named
    # otherwise left a "Page not found" dialog over the page it then showed.
    url, _ = fresh_server(tmp_path, streamlit_server)
    browser_page.goto(f"{url}/{path}?token={ADMIN_TOKEN}")
    went_through_app_py(browser_page, title)
    assert browser_page.locator("[data-testid='stMain'] h1").first.inner_text() == title
    assert "Page not found" not in browser_page.locator("body").inner_text()


def test_three_tabs_opened_at_once_on_a_fresh_server_all_go_through_app_py(
        tmp_path, streamlit_server, browser_page):
    url, token = fresh_server(tmp_path, streamlit_server)
    tabs = {f"/admin?token={ADMIN_TOKEN}": "Review",  # a tab of the Admin page
            f"/agreement?token={token}": "Rating as bob",
            f"/agreement?token={ADMIN_TOKEN}": "Agreement"}
    pages = [browser_page] + [browser_page.context.new_page() for _ in range(len(tabs) - 1)]
    # Each goto returns once the document is committed, before its script runs:
    # the three first runs of the server overlap.
    for tab, path in zip(pages, tabs):
        tab.set_default_timeout(30_000)
        tab.goto(url + path, wait_until="commit")
    for tab, expected in zip(pages, tabs.values()):
        went_through_app_py(tab, expected)


def test_rater_link_cannot_open_admin_pages_by_url(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "access.db"
    db = store.connect(db_path)
    demo.ensure_demo(db)
    alice, token = store.create_rater(db, "alice")
    store.assign_rater(db, alice["id"], store.get_project(db, "demo")["id"])
    db.close()
    url = streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN})
    page = browser_page

    page.goto(f"{url}/?token={token}")
    wait_app_idle(page)
    page.get_by_text("Rating as alice").first.wait_for(state="visible")
    assert page.locator("[data-testid='stSidebarNav'] a").count() <= 1  # Rate only, if shown
    for path in ADMIN_PATHS:
        page.goto(f"{url}/{path}?token={token}")
        # Streamlit falls back to the rater's own page: wait for their progress line.
        page.get_by_text("Rating as alice").first.wait_for(state="visible")
        wait_app_idle(page)
        body = page.locator("[data-testid='stMain']").inner_text()
        for admin_text in ("Create a project", "Krippendorff", "Win rates", "Import",
                           "Rater links", "Cohen"):
            assert admin_text not in body, (path, admin_text)

    # A wrong token is refused with the same words as a missing one.
    page.goto(f"{url}/?token=not-a-real-token")
    wait_app_idle(page)
    wrong = page.locator("[data-testid='stMain']").inner_text()
    page.goto(f"{url}/")
    wait_app_idle(page)
    missing = page.locator("[data-testid='stMain']").inner_text()
    assert "alice" not in wrong
    assert wrong == missing


def test_admin_token_opens_admin_pages(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "admin.db"
    db = store.connect(db_path)
    demo.ensure_demo(db)
    db.close()
    url = streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN})
    page = browser_page
    page.goto(f"{url}/admin?token={ADMIN_TOKEN}")
    wait_app_idle(page)
    page.get_by_text("Import", exact=True).first.wait_for(state="visible")
    assert {"Admin", "Agreement", "Leaderboard", "Rate"} <= set(sidebar_links(page))
    for path in ("agreement", "leaderboard"):
        page.goto(f"{url}/{path}?token={ADMIN_TOKEN}")
        wait_app_idle(page)
    # Secrets stay out of the logs: neither the admin token nor a pseudonym salt.
    salts = [p["pseudonym_salt"] for p in store.list_projects(store.connect(db_path))]
    logs = b"".join(path.read_bytes() for path in tmp_path.glob("*.log"))
    assert logs, "the server log was not captured"
    for secret in (ADMIN_TOKEN, *salts):
        assert secret.encode() not in logs
    # The admin token is not stored either (the salts are, by design).
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("admin.db*"))
    assert ADMIN_TOKEN.encode() not in stored
