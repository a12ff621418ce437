"""A team's project from start to finish, in a real browser, with no step done behind the UI.

The admin creates a pairwise project and two slate projects (pick the best,
rank them all) on the Admin page, imports their items from files, and adds two
raters with their projects. Each rater opens their own link in their own
browser context and rates everything: strength, aspects, a rationale and an
edit on the pairs; the best response and full rankings on the slates. After
every submit the progress line equals the database. The dashboards then show
the library's own numbers without a refit, the export has one row per
judgment, and when the server stops its worker goes too. Every request any
page makes goes to the app's own origin, hostile item text included.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from prefstore import agreement, export, fitting, leaderboard, store
from tests.ui.conftest import open_select, wait_app_idle

pytestmark = pytest.mark.browser

ADMIN = "team-admin-token"
SCREENSHOT_ON_FAILURE = Path("/tmp/prefstore-team-failure.png")
BEACON = "http://203.0.113.9/beacon.png"  # TEST-NET-3: never routable
HOSTILE = (f"![pixel]({BEACON}) <img src='{BEACON}'> <script>window.__xss = 1</script> "
           "**bold** [link](javascript:alert(1))")
PAIRS = [
    {"id": f"pair-{k}", "prompt": f"Pair question {k}? {HOSTILE}",
     "responses": [f"Alpha answer {k}. {HOSTILE}", f"Beta answer {k}."],
     "systems": ["alpha", "beta"]}
    for k in range(3)]
BEST = [
    {"id": f"best-{k}", "prompt": f"Best-of question {k}?",
     "responses": [f"Gamma says {k}", f"Delta says {k}", f"Epsilon says {k}"],
     "systems": ["gamma", "delta", "epsilon"]}
    for k in range(2)]
FULL = [
    {"id": f"full-{k}", "prompt": f"Ranking question {k}?",
     "responses": [f"Zeta ranks {k}", f"Eta ranks {k}", f"Theta ranks {k}"],
     "systems": ["zeta", "eta", "theta"]}
    for k in range(2)]


# --------------------------------------------------------------------------
# Driving Streamlit widgets


def settle(page) -> None:
    """Let the rerun an interaction started begin, then wait for it to end."""
    page.wait_for_timeout(350)
    wait_app_idle(page)


def main(page):
    return page.locator("[data-testid='stMain']")


def choose(page, label: str, option: str) -> None:
    open_select(page, main(page).get_by_label(label, exact=True).first)
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def type_into(page, label: str, text: str) -> None:
    field = main(page).get_by_label(label, exact=True).first
    field.fill(text)
    field.press("Tab")  # Streamlit takes a text value when the field loses focus
    settle(page)


def toggle(page, label: str) -> None:
    main(page).get_by_text(label, exact=True).first.click()
    settle(page)


def click(page, name: str) -> None:
    # A button's text may end with its keyboard shortcut ("Submit" then "S").
    pattern = re.compile(rf"^{re.escape(name)}\s*\S?$")
    main(page).locator("button").filter(has_text=pattern).first.click()
    settle(page)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    settle(page)


def wait_text(page, text: str) -> None:
    main(page).get_by_text(text, exact=False).first.wait_for(state="visible")


# --------------------------------------------------------------------------
# The admin's steps


def create_project(page, name: str, kind: str, *, ranking: str | None = None,
                   pairwise_extras: bool = False) -> None:
    choose(page, "Project", "New project…")
    type_into(page, "Name", name)
    if kind == "slate":
        choose(page, "Kind", "Slate (K responses)")
        choose(page, "Ranking", ranking)
    type_into(page, "Raters per item", "2")
    if pairwise_extras:  # the strength scale and edits are on by default
        type_into(page, "Aspects scored 1-5 (one per line)", "helpfulness")
    else:
        toggle(page, "Raters may improve the chosen response")  # off for the slates
    type_into(page, "Gold rate (share of served items that are gold checks)", "0")
    click(page, "Create project")
    page.get_by_text(f"Created project {name}").first.wait_for(state="visible")


def import_items(page, path: Path, n: int) -> None:
    open_tab(page, "Import")
    main(page).locator("input[type='file']").set_input_files(str(path))
    wait_text(page, f"The file is valid: {n} item(s)")
    click(page, f"Import {n} item(s)")
    page.get_by_text(f"Imported {n} item(s)").first.wait_for(state="visible")
    open_tab(page, "Project")


def add_rater(page, name: str, projects: list[str]) -> str:
    open_tab(page, "Raters")
    form = main(page).locator("[data-testid='stForm']").first
    form.get_by_label("Name", exact=True).fill(name)
    chooser = form.get_by_label("Projects they rate in", exact=True)
    for project in projects:
        chooser.click()
        page.get_by_role("option", name=project, exact=True).click()
    page.keyboard.press("Escape")
    # Close the options list for sure: a click while it is open only closes it.
    main(page).get_by_role("heading", name="Add a rater").click()
    page.get_by_role("listbox").wait_for(state="detached")
    form.get_by_role("button", name="Add rater and make a link").click()
    try:
        wait_text(page, f"Personal link for {name}")
    except PlaywrightTimeout:
        page.screenshot(path=str(SCREENSHOT_ON_FAILURE))
        raise AssertionError(f"no link for {name}; the page says: "
                             f"{main(page).inner_text()[:2000]}") from None
    link = main(page).locator("[data-testid='stCode'] code").last.inner_text().strip()
    return link


# --------------------------------------------------------------------------
# The raters' steps


def progress_text(page) -> str:
    return main(page).get_by_text(re.compile(r"^\d+ of \d+ done$")).first.inner_text()


def assert_progress(page, db, project: dict, rater: dict) -> None:
    expected = store.rater_progress(db, project["id"], rater["id"])
    want = f"{expected['k']} of {expected['n']} done"
    main(page).get_by_text(want, exact=True).first.wait_for(state="visible")
    assert progress_text(page) == want


def rate_project(page, db, project: dict, rater: dict, n: int, rate_one) -> None:
    base = page.url.split("&project=")[0].split("?")[0]
    token = re.search(r"token=([^&]+)", page.url).group(1)
    page.goto(f"{base}?token={token}&project={project['name']}")
    wait_app_idle(page)
    assert_progress(page, db, project, rater)
    for k in range(n):
        rate_one(page, k)
        assert_progress(page, db, project, rater)
    wait_text(page, "All done, thank you!")
    assert progress_text(page) == f"{n} of {n} done"


def rate_pair(page, k: int) -> None:
    prompt = main(page).get_by_text(re.compile(r"Pair question \d")).first.inner_text()
    click(page, "A clearly better" if k % 2 == 0 else "B slightly better")
    main(page).get_by_role("radio", name=str(4 - k % 2), exact=True).first.click()
    settle(page)
    type_into(page, "Why? (optional)", f"reason {k}")
    if k == 0:
        main(page).get_by_text("Improve the chosen response (optional)").first.click()
        box = main(page).get_by_label(re.compile("^Improve Response")).first
        box.fill("An improved answer")
        box.press("Tab")
        settle(page)
    click(page, "Submit")
    main(page).get_by_text(prompt, exact=True).first.wait_for(state="detached")


def rate_best(page, k: int) -> None:
    prompt = main(page).get_by_text(re.compile(r"Best-of question \d")).first.inner_text()
    click(page, f"{k % 3 + 1} is best")
    main(page).get_by_text(prompt, exact=True).first.wait_for(state="detached")


def rate_full(page, k: int) -> None:
    prompt = main(page).get_by_text(re.compile(r"Ranking question \d")).first.inner_text()
    # Untouched, the order shown is not a ranking: Submit stores nothing.
    click(page, "Submit ranking")
    wait_text(page, "Not saved: drag the responses into your order first")
    if k == 0:
        toggle(page, "Keep this order: it is my ranking")
    else:
        toggle(page, "Drag to rank")
        for p, rank in enumerate((3, 1, 2)):
            choose(page, f"Rank of Response {p + 1}", str(rank))
    click(page, "Submit ranking")
    main(page).get_by_text(prompt, exact=True).first.wait_for(state="detached")


# --------------------------------------------------------------------------


def worker_pids(db_path: Path) -> list[int]:
    """Processes running `prefstore ... worker` on this database."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and str(db_path).encode() in argv:
            pids.append(int(entry.name))
    return pids


def request_origin(url: str) -> str:
    """Where a request goes: a ``blob:`` URL is an object the page made, at its own origin."""
    if url.startswith("blob:"):
        url = url[len("blob:"):]
    return urlsplit(url).netloc


def metric(page, label: str) -> str:
    card = main(page).locator("[data-testid='stMetric']").filter(
        has=page.get_by_text(label, exact=True))
    return card.locator("[data-testid='stMetricValue']").first.inner_text()


@pytest.mark.timeout(600)
def test_a_team_runs_a_project_end_to_end(tmp_path, streamlit_server, browser_page):
    db_path = tmp_path / "team.db"
    # The app starts its own worker, as it does for a team (the suite turns that off).
    url = streamlit_server(db_path, {"PREFSTORE_ADMIN_TOKEN": ADMIN,
                                     "PREFSTORE_AUTOSTART_WORKER": "1"})
    origin = urlsplit(url).netloc
    files = {}
    for name, items in (("pairs", PAIRS), ("best", BEST), ("full", FULL)):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(i) + "\n" for i in items))

    foreign: list[str] = []

    def watch(page) -> None:
        page.on("request", lambda req: foreign.append(req.url)
                if request_origin(req.url) != origin else None)

    # --- the admin sets up three projects and two raters in the browser
    admin_page = browser_page
    watch(admin_page)
    admin_page.goto(f"{url}/admin?token={ADMIN}")
    admin_page.get_by_role("heading", name="Admin").first.wait_for(state="visible")
    settle(admin_page)
    create_project(admin_page, "team-pairs", "pairwise", pairwise_extras=True)
    import_items(admin_page, files["pairs"], len(PAIRS))
    create_project(admin_page, "team-best", "slate", ranking="Pick the best")
    import_items(admin_page, files["best"], len(BEST))
    create_project(admin_page, "team-full", "slate", ranking="Rank them all")
    import_items(admin_page, files["full"], len(FULL))
    everything = ["team-pairs", "team-best"]  # team-full is the default: the current project
    links = {name: add_rater(admin_page, name, everything) for name in ("ann", "ben")}

    db = store.connect(db_path)
    projects = {name: store.get_project(db, name) for name in ("team-pairs", "team-best",
                                                               "team-full")}
    assert [(p["settings"].strength_scale, p["settings"].edits_allowed,
             p["settings"].raters_per_item, p["settings"].gold_rate)
            for p in projects.values()] == [(True, True, 2, 0.0), (True, False, 2, 0.0),
                                            (True, False, 2, 0.0)]
    assert list(projects["team-pairs"]["settings"].aspects) == ["helpfulness"]
    assert (projects["team-best"]["settings"].ranking_mode,
            projects["team-full"]["settings"].ranking_mode) == ("best", "full")
    raters = {name: store.get_rater(db, name) for name in links}
    for name, link in links.items():
        parts = urlsplit(link)
        # The link opens the app's root (not /admin/) and names the first project.
        assert (parts.netloc, parts.path) == (origin, "/")
        assert parts.query.endswith("&project=team-full")  # the one the admin has open
        assert sorted(store.rater_project_ids(db, raters[name]["id"])) == sorted(
            p["id"] for p in projects.values())

    # --- each rater rates everything through their own link, in their own browser context
    browser = admin_page.context.browser

    @contextlib.contextmanager
    def rater_context(link: str):
        """A rater's own browser context, opened on their link; closed on the way out."""
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            watch(page)
            page.goto(link)
            yield page
        finally:
            context.close()

    def pairs_link(name: str) -> str:
        return links[name].replace("project=team-full", "project=team-pairs")

    for name, link in links.items():
        with rater_context(link) as page:
            wait_text(page, f"Rating as {name}")
            rate_project(page, db, projects["team-pairs"], raters[name], len(PAIRS), rate_pair)
            rate_project(page, db, projects["team-best"], raters[name], len(BEST), rate_best)
            rate_project(page, db, projects["team-full"], raters[name], len(FULL), rate_full)
            assert page.evaluate("window.__xss === undefined")

    # Exactly what the raters did, and nothing else, is stored.
    rows = {p: store.list_judgments(db, project_id=projects[p]["id"]) for p in projects}
    assert {p: len(r) for p, r in rows.items()} == {"team-pairs": 6, "team-best": 4,
                                                    "team-full": 4}
    pairs = rows["team-pairs"]
    assert sorted((r["strength"], r["aspects"]["helpfulness"], r["rationale"]) for r in pairs) \
        == sorted([(2, 4, "reason 0"), (1, 3, "reason 1"), (2, 4, "reason 2")] * 2)
    assert [r["edited"] for r in pairs if r["edited"]] == ["An improved answer"] * 2
    full = rows["team-full"]
    assert sorted(r["metadata"]["ranking_input"] for r in full) == [
        "kept", "kept", "select", "select"]
    for r in full:
        if r["metadata"]["ranking_input"] == "kept":
            assert r["ranking"] == r["display_order"]
        else:  # ranks 3, 1, 2 of the responses shown
            order = r["display_order"]
            assert r["ranking"] == [order[1], order[2], order[0]]
    for rater in raters.values():  # "1 is best" on the first slate, "2 is best" on the second
        picked = [r["display_order"].index(r["choice"]) for r in rows["team-best"]
                  if r["rater_id"] == rater["id"]]
        assert picked == [0, 1]

    # --- the dashboards show every judgment, with the library's numbers, no Refit pressed
    page = admin_page
    page.goto(f"{url}/dashboard?token={ADMIN}&project=team-pairs")
    wait_app_idle(page)
    wait_text(page, "Agreement between human raters")
    assert metric(page, "Human judgments") == "6"
    assert metric(page, "Items") == "3"
    report = store.latest_report(db, projects["team-pairs"]["id"], name="agreement",
                                 kind="human")
    assert report["n_judgments"] == 6
    expected = agreement.agreement_report(
        *_frames(db, projects["team-pairs"]["id"]), kind="human")
    assert metric(page, "Percent agreement") == f"{expected['percent_agreement']:.3f}"
    for name in ("team-best", "team-full"):
        page.goto(f"{url}/leaderboard?token={ADMIN}&project={name}")
        # The first opening fits, on a loaded machine in tens of seconds.
        try:
            main(page).get_by_text("from 4 judgments").first.wait_for(state="visible",
                                                                       timeout=120_000)
        except PlaywrightTimeout:
            page.screenshot(path=str(SCREENSHOT_ON_FAILURE), full_page=True)
            raise AssertionError(f"{name}: the leaderboard says: "
                                 f"{main(page).inner_text()[:3000]}") from None
        wait_app_idle(page)
        assert main(page).get_by_text("This app has encountered an error").count() == 0
        fit = store.latest_fit(db, projects[name]["id"], model="bt", level="system",
                               kind="human")
        assert fit["n_judgments"] == 4
        library = fitting.fit_project(db, name, model="bt", level="system", kind="human",
                                      fallback_alpha=fitting.FALLBACK_ALPHA, save=False)
        assert fit["result"]["scores"] == pytest.approx(library["scores"], abs=1e-9)
        rates = store.latest_report(db, projects[name]["id"], name=leaderboard.REPORT, kind="human")
        assert rates["n_judgments"] == 4 and len(rates["result"]["names"]) == 3

    # --- each export has one row per expected judgment: every judgment, the pairs, the
    # two edits, and the slates (best-of and full rankings)
    for name, format_, n in (("team-pairs", "judgments", 6), ("team-full", "judgments", 4),
                             ("team-pairs", "pairs", 6), ("team-pairs", "edits", 2),
                             ("team-best", "slates", 4), ("team-full", "slates", 4)):
        out = tmp_path / f"{name}-{format_}.jsonl"
        with out.open("w", encoding="utf-8") as f:
            summary = export.export(db, name, f, format=format_)
        assert (name, format_, summary["written"]) == (name, format_, n)
        assert len(out.read_text().splitlines()) == n

    # --- ann goes back to a pairwise judgment from her link and changes it to a tie: the
    # store keeps both rows, and every reader uses the new label
    pairs_id = projects["team-pairs"]["id"]
    before = {r["id"]: r for r in store.list_judgments(db, project_id=pairs_id)}
    with rater_context(pairs_link("ann")) as page:
        wait_text(page, "Rating as ann")
        main(page).locator("[data-testid='stExpander'] summary").filter(
            has_text="Previous judgments").click()
        settle(page)
        open_select(page, main(page).locator(
            "input[aria-label='Change one of your previous judgments']"))
        page.locator("[role='option']").filter(has_text="pair-0 · ").first.click()
        wait_text(page, "Change your judgment on pair-0")
        main(page).locator("[data-testid='stRadio'] label").filter(has_text="Tie").click()
        settle(page)
        click(page, "Save the change")
        # The line under the progress bar: a check icon, then what changed.
        main(page).locator("[data-testid='stCaptionContainer']").filter(
            has_text=re.compile(r"^check Changed pair-0: .+ → Tie$")).wait_for(state="visible")
        assert page.evaluate("window.__xss === undefined")
    (new,) = [r for r in store.list_judgments(db, project_id=pairs_id) if r["id"] not in before]
    old = before[new["supersedes"]]
    assert (old["rater_id"], store.get_item(db, old["item_id"])["external_id"]) == (
        raters["ann"]["id"], "pair-0")
    assert (new["rater_id"], new["item_id"], new["outcome"], new["choice"]) == (
        old["rater_id"], old["item_id"], "tie", None)
    assert store.project_stats(db, pairs_id)["superseded"] == 1
    # Overview counts effective judgments; the pairs export drops the tie; the audit keeps all
    page = admin_page
    page.goto(f"{url}/dashboard?token={ADMIN}&project=team-pairs")
    wait_text(page, "Agreement between human raters")
    wait_app_idle(page)
    assert metric(page, "Human judgments") == "6"
    for format_, options_, n in (("judgments", {}, 6), ("pairs", {}, 5),
                                 ("judgments", {"include_superseded": True}, 7)):
        out = tmp_path / f"changed-{format_}-{len(options_)}.jsonl"
        with out.open("w", encoding="utf-8") as f:
            summary = export.export(db, "team-pairs", f, format=format_, **options_)
        assert (format_, options_, summary["written"]) == (format_, options_, n)

    # --- the admin finds the item in the item browser, with its two effective judgments;
    # the Admin page opens on the project its link names
    page.goto(f"{url}/admin?token={ADMIN}&project=team-pairs")
    page.get_by_role("heading", name="Admin").first.wait_for(state="visible")
    settle(page)
    open_tab(page, "Items")
    type_into(page, "Search the prompts and responses", "Pair question 0")
    summaries = main(page).locator("[data-testid='stExpander'] summary")
    summaries.filter(has_text="pair-0").first.click()
    wait_text(page, "Human judgments (2)")
    assert page.evaluate("window.__xss === undefined")

    # --- a new item comes in; ann flags it from her link, with a hostile note; the admin
    # excludes it from the review queue, so ben is never served it
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": "pair-3", "prompt": "Pair question 3? broken",
                                 "responses": ["Alpha answer 3.", "Beta answer 3."],
                                 "systems": ["alpha", "beta"]}) + "\n")
    import_items(page, extra, 1)
    with rater_context(pairs_link("ann")) as rater_page:
        wait_text(rater_page, "Pair question 3? broken")
        assert progress_text(rater_page) == "3 of 4 done"
        main(rater_page).locator("[data-testid='stExpander'] summary").filter(
            has_text="Skip or flag this item").click()
        settle(rater_page)
        choose(rater_page, "What is wrong with it?", "other")
        type_into(rater_page, "What is wrong?", HOSTILE)
        click(rater_page, "Flag")
        wait_text(rater_page, "All done, thank you!")
        assert progress_text(rater_page) == "4 of 4 done"
        assert rater_page.evaluate("window.__xss === undefined")

    page.goto(f"{url}/admin?token={ADMIN}&project=team-pairs")
    page.get_by_role("heading", name="Admin").first.wait_for(state="visible")
    settle(page)
    open_tab(page, "Review")
    wait_text(page, "1 open, 0 resolved")
    assert f"Reason: other: {HOSTILE}"[:60] in main(page).inner_text()  # the note, as text
    click(page, "Exclude item")
    open_tab(page, "Review")
    wait_text(page, "0 open, 1 resolved")
    assert [(r["item"], r["rater"], r["status"], r["resolution"], r["resolved_by"],
             r["item_excluded_at"] is not None) for r in store.review_queue(db, pairs_id)
            ] == [("pair-3", "ann", "flagged", "exclude", "admin", True)]
    with rater_context(pairs_link("ben")) as rater_page:
        wait_text(rater_page, "All done, thank you!")
        assert progress_text(rater_page) == "3 of 3 done"
    # Nothing the raters judged changed: 6 effective judgments on 3 items, 1 excluded.
    stats = store.project_stats(db, pairs_id)
    assert (stats["items"], stats["excluded"], stats["judgments"]["human"], stats["flags"]) == (
        3, 1, 6, 1)

    assert foreign == [], f"requests to other origins: {foreign[:5]}"

    # --- the worker ends with the server, even one killed with SIGKILL
    assert worker_pids(db_path), "the app started no worker"
    streamlit_server.kill(url)  # kill -9: no chance to clean up
    deadline = time.monotonic() + 10
    while worker_pids(db_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_pids(db_path) == []
    db.close()


def _frames(db, project_id: int):
    judgments = store.judgments_frame(db, project_id)
    responses = store.responses_frame(db, project_id, with_text=False)
    items = store.items_frame(db, project_id)
    return judgments, responses, items

