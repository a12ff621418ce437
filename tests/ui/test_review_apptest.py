"""AppTest flows through the admin page's Review tab and the project's rename and archive."""

from __future__ import annotations

from prefstore import assignment, store
from tests.ui.conftest import app_test, rendered
from tests.ui.test_admin_apptest import errors, open_admin, seed_project
from ui.common import Keys

HOSTILE = "other: ![x](http://203.0.113.9/p.png) <img src=x onerror=alert(1)> **bold**"


def resolutions(db) -> list[tuple]:
    return [tuple(r) for r in db.execute(
        "SELECT i.external_id, r.name, a.status, a.resolution, a.resolved_by, "
        "a.resolved_at IS NOT NULL FROM assignments a JOIN items i ON i.id = a.item_id "
        "JOIN raters r ON r.id = a.rater_id ORDER BY a.id")]


def audit_rows(db, project_id, n) -> list[tuple]:
    return [(r["actor"], r["action"], r["details"])
            for r in reversed(store.audit_log(db, project_id, limit=n))]


def seed_queue(db):
    project = seed_project(db, n_items=3, raters_per_item=2)
    ann, _ = store.create_rater(db, "ann")
    bob, _ = store.create_rater(db, "bob")
    first = store.claim_next(db, project["id"], ann["id"])
    assignment.skip(db, first, ann["id"], "later")
    second = store.claim_next(db, project["id"], ann["id"])
    assignment.flag(db, second, ann["id"], "broken")
    third = store.claim_next(db, project["id"], bob["id"])
    store.release_assignment(db, third["id"], bob["id"], status="flagged", reason=HOSTILE)
    return project, (first, second, third)


def test_resolve_queue_rows_on_the_review_tab(app_db, monkeypatch):
    project, (skip, flag, hostile) = seed_queue(app_db)
    at = open_admin(monkeypatch)
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert "**q0** skipped by ann at " + skip["claimed_at"][:10] in " ".join(texts)
    # The hostile note is escaped text: no image, no HTML, no emphasis.
    [note] = [t for t in texts if "onerror" in t]
    assert note.startswith("Reason: other\\: \\!\\[x\\]\\(http\\:")
    assert rendered(note) == f"Reason: {HOSTILE}"

    at.button(key=Keys.item(Keys.ADMIN_REVIEW_DISMISS, flag["id"])).click().run()
    assert not at.exception and errors(at) == []
    at.button(key=Keys.item(Keys.ADMIN_REVIEW_EXCLUDE, hostile["id"])).click().run()
    at.button(key=Keys.item(Keys.ADMIN_REVIEW_REQUEUE, skip["id"])).click().run()
    assert not at.exception and errors(at) == []
    assert resolutions(app_db) == [
        ("q0", "ann", "claimed", "requeue", "admin", 1),
        ("q1", "ann", "flagged", "dismiss", "admin", 1),
        ("q0", "bob", "flagged", "exclude", "admin", 1),
        ("q0", "admin", "claimed", None, None, 0)]  # app.py opens on the rate page
    [excluded] = list(app_db.query("SELECT external_id, excluded_at FROM items "
                                   "WHERE excluded_at IS NOT NULL"))
    assert excluded["external_id"] == "q0"
    assert audit_rows(app_db, project["id"], 3) == [
        ("admin", "resolve_review", {"item": "q1", "rater": "ann", "status": "flagged",
                                     "reason": "broken", "resolution": "dismiss"}),
        ("admin", "resolve_review", {"item": "q0", "rater": "bob", "status": "flagged",
                                     "reason": HOSTILE, "resolution": "exclude"}),
        ("admin", "resolve_review", {"item": "q0", "rater": "ann", "status": "skipped",
                                     "reason": "later", "resolution": "requeue"})]
    # Resolved rows say who resolved them and how, and have no buttons left.
    captions = [c.value for c in at.caption]
    assert sum(c.startswith("Dismissed by admin at ") for c in captions) == 1
    assert sum(c.startswith("Item excluded by admin at ") for c in captions) == 1
    assert sum(c.startswith("Requeued by admin at ") for c in captions) == 1
    assert not [b for b in at.button if b.key and b.key.startswith("admin_review_")]

    include = f"{Keys.ADMIN_INCLUDE}:{project['id']}:q0"
    at.button(key=include).click().run()
    assert not at.exception
    assert app_db.execute("SELECT COUNT(*) FROM items WHERE excluded_at IS NOT NULL"
                          ).fetchone()[0] == 0
    assert audit_rows(app_db, project["id"], 1) == [("admin", "include_item", {"item": "q0"})]


def test_archive_and_rename_on_the_project_tab(app_db, monkeypatch):
    project = seed_project(app_db)
    store.create_project(app_db, "other")
    ann, token = store.create_rater(app_db, "ann")
    store.assign_rater(app_db, ann["id"], project["id"])
    at = open_admin(monkeypatch)
    at.selectbox(key=Keys.ADMIN_PROJECT).set_value(project["id"]).run()

    at.button(key=Keys.ADMIN_ARCHIVE).click().run()
    assert not at.exception and errors(at) == []
    archived_at = store.get_project(app_db, project["id"])["archived_at"]
    assert archived_at is not None
    assert audit_rows(app_db, project["id"], 1) == [("admin", "archive_project", {"name": "p"})]
    chooser = at.selectbox(key=Keys.ADMIN_PROJECT)
    assert chooser.options[:2] == ["p (archived)", "other"]
    assert at.button(key=Keys.ADMIN_ARCHIVE).label == "Unarchive"

    # The rater's link to it says so, in one line.
    rate = app_test(token=token)
    rate.query_params["project"] = "p"
    rate.run()
    assert not rate.exception and errors(rate) == []
    assert [i.value for i in rate.info] == ["Project p is archived: it takes no more ratings."]
    assert not rate.button

    key = Keys.project_form(Keys.ADMIN_RENAME, project["id"])
    at.text_input(key=key).input("other")
    at.button(key=Keys.ADMIN_RENAME_SAVE).click().run()
    assert errors(at) == ["Not renamed: project 'other' already exists."]
    at.text_input(key=key).input("![x](http://203.0.113.9/p.png)")
    at.button(key=Keys.ADMIN_RENAME_SAVE).click().run()
    assert not at.exception and errors(at) == []
    assert store.get_project(app_db, project["id"])["name"] == "![x](http://203.0.113.9/p.png)"
    assert audit_rows(app_db, project["id"], 1) == [
        ("admin", "rename_project", {"from": "p", "to": "![x](http://203.0.113.9/p.png)"})]
    assert at.selectbox(key=Keys.ADMIN_PROJECT).options[0] == (
        "![x](http://203.0.113.9/p.png) (archived)")
    assert "Settings of \\!\\[x\\]\\(http\\://203\\.0\\.113\\.9/p\\.png\\)" in [
        s.value for s in at.subheader]

    at.button(key=Keys.ADMIN_ARCHIVE).click().run()
    assert store.get_project(app_db, project["id"])["archived_at"] is None
    assert audit_rows(app_db, project["id"], 1) == [
        ("admin", "unarchive_project", {"name": "![x](http://203.0.113.9/p.png)"})]
    rate = app_test(token=token).run()
    assert not rate.info and errors(rate) == []
    assert rate.title[0].value == "\\!\\[x\\]\\(http\\://203\\.0\\.113\\.9/p\\.png\\)"


def test_a_link_made_before_a_rename_opens_the_renamed_project(app_db):
    from tests.ui.test_rate_apptest import make_project, rater_with_token

    make_project(app_db, "first")
    project = make_project(app_db, "p")
    _, token = rater_with_token(app_db)  # assigned to both
    store.rename_project(app_db, project["id"], "p renamed", actor="admin")
    at = app_test(token=token)
    at.query_params["project"] = "p"  # the link the rater was given
    at.run()
    assert not at.exception and errors(at) == []
    assert at.selectbox(key=Keys.PROJECT).value == "p renamed"
    assert [t.value for t in at.title] == ["p renamed"]
    assert at.query_params["project"] == "p renamed"  # the address bar follows
