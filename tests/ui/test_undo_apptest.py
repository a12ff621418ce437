"""Undo through the rate page: change a previous judgment, then back to the open item."""

from __future__ import annotations

import re

from prefstore import export, fitting, store
from tests.ui.conftest import app_test, notices, open_box, open_page, rendered
from tests.ui.test_rate_apptest import make_project, rater_with_token, served
from ui.common import Keys

K = Keys.item
ROW = ("id", "item_id", "outcome", "choice", "ranking", "strength", "display_order",
       "rationale", "submission_id", "supersedes")


def open_previous(at, project):
    return open_box(at, K(Keys.UNDO_OPEN, project["id"]))


def pickers(at, key: str) -> list:
    return [s for s in at.selectbox if s.key == key]


def rows(db, rater):
    return [{k: row[k] for k in ROW} for row in store.list_judgments(db, rater_id=rater["id"])]


def errors(at) -> list[str]:
    return [rendered(e.value) for e in at.error]


def test_change_a_pairwise_judgment_on_the_scale(app_db):
    project = make_project(app_db, strength_scale=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    order = first["display_order"]
    at.button(key=K(Keys.STRENGTH_STEP, first["id"], 1)).click().run()  # A clearly better
    at.button(key=K(Keys.SUBMIT, first["id"])).click().run()
    second = served(app_db, project, rater)
    (before,) = rows(app_db, rater)
    pick = K(Keys.UNDO_PICK, project["id"])
    # The box is closed, and its judgments are read only once it is opened.
    assert not pickers(at, pick)
    open_previous(at, project)
    assert at.selectbox(key=pick).options == ["q0 · prompt 0 · A clearly better"]

    at.selectbox(key=pick).select(before["id"]).run()
    assert not at.exception
    label = at.radio(key=K(Keys.UNDO_LABEL, before["id"]))
    assert label.value == "A clearly better"  # the current label, preselected
    # The open item waits: its widgets are not on the page while changing.
    assert not [b for b in at.button if b.key == K(Keys.SUBMIT, second["id"])]
    label.set_value("B much better")
    at.text_area(key=K(Keys.UNDO_RATIONALE, before["id"])).input("B has the source")
    at.button(key=K(Keys.UNDO_SAVE, before["id"])).click().run()

    assert not at.exception and errors(at) == []
    old, new = rows(app_db, rater)
    assert old == before  # untouched: the store is append-only
    assert new == {
        "id": new["id"], "item_id": first["item_id"], "outcome": "choice", "choice": order[1],
        "ranking": None, "strength": 3, "display_order": order, "rationale": "B has the source",
        "submission_id": f"c{before['id']}", "supersedes": before["id"]}
    assert notices(at) == [":material/check: Changed q0: A clearly better → B much better"]
    # Back to the open item, the same claim as before, and the picker is empty.
    assert served(app_db, project, rater)["id"] == second["id"]
    assert at.button(key=K(Keys.SUBMIT, second["id"]))
    assert not pickers(at, pick)  # the box closed
    open_previous(at, project)
    assert at.selectbox(key=pick).value is None
    assert at.selectbox(key=pick).options == ["q0 · prompt 0 · B much better"]
    # Every reader counts the changed judgment once, with its new label.
    stats = store.project_stats(app_db, project["id"])
    assert (stats["judgments"], stats["superseded"]) == ({"human": 1, "llm": 0}, 1)
    assert store.get_item(app_db, first["item_id"])["n_human"] == 1
    assert store.rater_progress(app_db, project["id"], rater["id"])["done"] == 1
    fit = fitting.fit_project(app_db, "p", alpha=1.0, ci=None, save=False)
    assert fit["n_comparisons"] == 1
    assert fit["scores"][f"sys{order[1]}"] > fit["scores"][f"sys{order[0]}"]
    (pair,) = export.iter_rows(app_db, "p", format="pairs")
    assert (pair["chosen"], pair["rejected"]) == (f"response 0.{order[1]}",
                                                  f"response 0.{order[0]}")


def test_change_then_change_again_and_back_without_saving(app_db):
    project = make_project(app_db, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    at.button(key=K(Keys.TIE, first["id"])).click().run()
    (a,) = rows(app_db, rater)
    pick = K(Keys.UNDO_PICK, project["id"])
    open_previous(at, project).selectbox(key=pick).select(a["id"]).run()
    at.radio(key=K(Keys.UNDO_LABEL, a["id"])).set_value("Both bad")
    at.button(key=K(Keys.UNDO_SAVE, a["id"])).click().run()
    b = rows(app_db, rater)[1]
    open_previous(at, project).selectbox(key=pick).select(b["id"]).run()
    assert at.radio(key=K(Keys.UNDO_LABEL, b["id"])).value == "Both bad"
    at.radio(key=K(Keys.UNDO_LABEL, b["id"])).set_value("B is better")
    at.button(key=K(Keys.UNDO_SAVE, b["id"])).click().run()
    c = rows(app_db, rater)[2]
    assert [(r["outcome"], r["choice"], r["supersedes"]) for r in rows(app_db, rater)] == [
        ("tie", None, None), ("both_bad", None, a["id"]),
        ("choice", first["display_order"][1], b["id"])]
    assert store.count_judgments(app_db, project["id"]) == 1
    # Opening the form and going back stores nothing.
    open_previous(at, project).selectbox(key=pick).select(c["id"]).run()
    at.button(key=K(Keys.UNDO_BACK, c["id"])).click().run()
    assert len(rows(app_db, rater)) == 3
    assert not pickers(at, pick)
    assert open_previous(at, project).selectbox(key=pick).value is None


def test_change_refused_when_the_rationale_is_required(app_db):
    project = make_project(app_db, strength_scale=False, rationale_required=True)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    at.text_area(key=K(Keys.RATIONALE, first["id"])).input("A is right")
    at.button(key=K(Keys.CHOOSE_A, first["id"])).click().run()
    (a,) = rows(app_db, rater)
    open_previous(at, project).selectbox(key=K(Keys.UNDO_PICK, project["id"])).select(
        a["id"]).run()
    assert at.text_area(key=K(Keys.UNDO_RATIONALE, a["id"])).value == "A is right"
    at.text_area(key=K(Keys.UNDO_RATIONALE, a["id"])).input("  ")
    at.radio(key=K(Keys.UNDO_LABEL, a["id"])).set_value("B is better")
    at.button(key=K(Keys.UNDO_SAVE, a["id"])).click().run()
    assert errors(at) == ["Not changed: a rationale is required: say briefly why."]
    assert len(rows(app_db, rater)) == 1


def test_change_a_slate_ranking(app_db):
    project = make_project(app_db, kind="slate", n_responses=3, ranking_mode="full")
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    order = first["display_order"]
    at.toggle(key=Keys.DRAG).set_value(False).run()
    for p, rank in enumerate((1, 2, 3)):
        at.selectbox(key=K(Keys.RANK, first["id"], p)).select(rank)
    at.button(key=K(Keys.SUBMIT, first["id"])).click().run()
    (a,) = rows(app_db, rater)
    assert a["ranking"] == order
    pick = K(Keys.UNDO_PICK, project["id"])
    assert open_previous(at, project).selectbox(key=pick).options == [
        "q0 · prompt 0 · Ranking 1 > 2 > 3"]
    at.selectbox(key=pick).select(a["id"]).run()
    assert [at.selectbox(key=K(Keys.UNDO_RANK, a["id"], p)).value for p in range(3)] == [1, 2, 3]
    for p, rank in enumerate((3, 1, 2)):
        at.selectbox(key=K(Keys.UNDO_RANK, a["id"], p)).select(rank)
    at.button(key=K(Keys.UNDO_SAVE, a["id"])).click().run()
    assert not at.exception and errors(at) == []
    new = rows(app_db, rater)[1]
    assert (new["outcome"], new["choice"], new["ranking"], new["supersedes"]) == (
        "choice", order[1], [order[1], order[2], order[0]], a["id"])
    assert notices(at) == [":material/check: Changed q0: Ranking 1 > 2 > 3 → Ranking 2 > 3 > 1"]


def test_hostile_item_text_stays_plain_in_the_picker(app_db):
    project = store.create_project(app_db, "h", "pairwise", {"gold_rate": 0.0,
                                                          "strength_scale": False})
    hostile = "![x](http://203.0.113.9/p.png) <b>bold</b> **big**\n# head"
    store.insert_items(app_db, project["id"], [
        {"external_id": "*id*", "prompt": hostile + "x" * 200,
         "responses": [{"text": "a"}, {"text": "b"}]}])
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    claim = served(app_db, project, rater)
    at.button(key=K(Keys.CHOOSE_B, claim["id"])).click().run()
    (a,) = rows(app_db, rater)
    (option,) = open_previous(at, project).selectbox(key=K(Keys.UNDO_PICK, project["id"])).options
    # One plain line: no image, no tag, no heading; markdown marks dropped.
    assert option == "id · x <b bold</b big head" + "x" * 38 + "… · Response B"
    at.selectbox(key=K(Keys.UNDO_PICK, project["id"])).select(a["id"]).run()
    assert not at.exception
    assert [rendered(s.value) for s in at.subheader] == ["Change your judgment on *id*"]


def test_the_leaderboard_follows_a_change_without_a_refit(app_db):
    # A change keeps the judgment count, which is what a stored fit is compared with: the
    # time of the last change tells the dashboard that its fit leaves the change out.
    project = make_project(app_db, n_items=1, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    at.button(key=K(Keys.CHOOSE_A, first["id"])).click().run()
    (judgment,) = rows(app_db, rater)
    winner, loser = (f"sys{k}" for k in first["display_order"])

    def latest_fit():
        return store.latest_fit(app_db, project["id"], model="bt", level="system",
                                kind="human")

    board = open_page("pages/leaderboard.py")
    assert not board.exception and errors(board) == []
    before = latest_fit()
    assert before["n_judgments"] == 1
    assert before["result"]["scores"][winner] > before["result"]["scores"][loser]
    assert store.last_change_at(app_db, project["id"]) is None

    store.change_judgment(app_db, judgment_id=judgment["id"], rater_id=rater["id"],
                          submission_id="c1", outcome="choice",
                          choice=first["display_order"][1])
    changed_at = store.last_change_at(app_db, project["id"])
    assert changed_at == store.list_judgments(app_db, rater_id=rater["id"])[-1]["created_at"]

    board = open_page("pages/leaderboard.py")  # another admin session, no Refit
    assert not board.exception and errors(board) == []
    after = latest_fit()
    assert after["id"] != before["id"] and after["created_at"] >= changed_at
    assert after["n_judgments"] == 1  # the same count, now with the changed label
    assert after["result"]["scores"][loser] > after["result"]["scores"][winner]
    # Opened again, the page keeps the fit it just made.
    open_page("pages/leaderboard.py")
    assert latest_fit()["id"] == after["id"]


def test_a_large_project_warns_that_its_fit_predates_a_change(app_db, monkeypatch):
    import ui.dashboard

    monkeypatch.setattr(ui.dashboard, "RECOMPUTE_ON_OPEN", 0)  # every project counts as large
    project = make_project(app_db, n_items=1, strength_scale=False)
    rater, token = rater_with_token(app_db)
    at = app_test(token=token).run()
    first = served(app_db, project, rater)
    at.button(key=K(Keys.CHOOSE_A, first["id"])).click().run()
    fitting.fit_project(app_db, "p", model="bt", kind="human", alpha=fitting.FALLBACK_ALPHA)
    (judgment,) = rows(app_db, rater)
    board = open_page("pages/leaderboard.py")
    assert not [w for w in board.warning if "changed since" in w.value]
    store.change_judgment(app_db, judgment_id=judgment["id"], rater_id=rater["id"],
                          submission_id="c1", outcome="tie")
    board = open_page("pages/leaderboard.py")
    (warning,) = [w.value for w in board.warning if "changed since" in w.value]
    assert re.fullmatch(r"Bradley-Terry \(ties = half a win\) fit stored \d+ s ago from 1 "
                        r"judgments \(took \d+\.\d s\)\. A judgment was changed since: refit to "
                        r"use the change\.", warning), warning
