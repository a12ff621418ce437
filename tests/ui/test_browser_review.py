"""The review queue and project archive in real chromium: the admin resolves rows and
archives a project, a rater's link then says the project is archived, and the hostile
flag note stays text (the browser never asks its address for anything)."""

from __future__ import annotations

import pytest

from prefstore import assignment, store
from tests.ui.conftest import wait_app_idle

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "admin-secret-for-review-test"
BEACON = "http://203.0.113.9/beacon.png"  # TEST-NET-3: never routable
HOSTILE = f"other: ![pixel]({BEACON}) <img src='{BEACON}'> **bold**"


def settle(page) -> None:
    """Let the rerun a click started begin, then wait for it to end."""
    page.wait_for_timeout(350)
    wait_app_idle(page)


def click(page, tab: str, button: str) -> None:
    page.get_by_role("tab", name=tab, exact=True).click()
    page.get_by_role("button", name=button, exact=True).first.click()
    settle(page)


def rows(db_path) -> list[tuple]:
    db = store.connect(db_path)
    try:
        return [tuple(r) for r in db.execute(
            "SELECT i.external_id, r.name, a.status, a.resolution, a.resolved_by, "
            "i.excluded_at IS NOT NULL FROM assignments a JOIN items i ON i.id = a.item_id "
            "JOIN raters r ON r.id = a.rater_id WHERE r.name != 'admin' ORDER BY a.id")]
    finally:
        db.close()


def test_resolve_the_queue_and_archive_the_project(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "review.db"
    db = store.connect(db_path)
    project = store.create_project(db, "p", settings={"gold_rate": 0.0, "raters_per_item": 2})
    store.insert_items(db, project["id"], [
        {"external_id": f"q{i}", "prompt": f"prompt {i}",
         "responses": [{"text": "a"}, {"text": "b"}]} for i in range(3)])
    ann, ann_token = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    for rater in (ann, bob):
        store.assign_rater(db, rater["id"], project["id"])
    assignment.skip(db, store.claim_next(db, project["id"], ann["id"]), ann["id"], "later")
    claim = store.claim_next(db, project["id"], bob["id"])
    store.release_assignment(db, claim["id"], bob["id"], status="flagged", reason=HOSTILE)
    db.close()
    url = streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN_TOKEN})
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{url}/admin?token={ADMIN_TOKEN}")
    wait_app_idle(page)
    page.get_by_role("tab", name="Review", exact=True).click()
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("2 open, 0 resolved", exact=False).wait_for(state="visible")
    assert f"Reason: {HOSTILE}" in main.inner_text()  # the note as text

    click(page, "Review", "Dismiss")  # the first open row: ann's skip of q0
    assert rows(db_path) == [("q0", "ann", "skipped", "dismiss", "admin", 0),
                             ("q0", "bob", "flagged", None, None, 0)]
    click(page, "Review", "Exclude item")  # now the first open row: bob's flag
    assert rows(db_path) == [("q0", "ann", "skipped", "dismiss", "admin", 1),  # one item
                             ("q0", "bob", "flagged", "exclude", "admin", 1)]
    page.get_by_role("tab", name="Review", exact=True).click()
    text = main.inner_text()
    assert "Dismissed by admin at " in text and "Item excluded by admin at " in text
    assert "0 open, 2 resolved" in text

    click(page, "Project", "Archive (hide from raters; nothing is deleted)")
    check = store.connect(db_path)
    assert check.execute("SELECT archived_at IS NOT NULL FROM projects WHERE name = 'p'"
                         ).fetchone()[0] == 1
    assert [(r["actor"], r["action"]) for r in store.audit_log(check, project["id"], limit=3)
            ] == [("admin", "archive_project"), ("admin", "resolve_review"),
                  ("admin", "resolve_review")]
    check.close()

    page.goto(f"{url}/?token={ann_token}&project=p")
    wait_app_idle(page)
    main.get_by_text("Project p is archived: it takes no more ratings.").wait_for(
        state="visible")
    assert "Rating as" not in main.inner_text()
    assert not [u for u in requested if "203.0.113.9" in u]
