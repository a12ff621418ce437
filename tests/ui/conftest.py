"""Fixtures for the UI tests: a temp store for AppTest, a live server and a browser.

``streamlit_server`` and ``browser_page`` are shared by every browser test
(rating, dashboard, XSS). Browser tests skip only when chromium is missing,
and ``PREFSTORE_REQUIRE_BROWSER=1`` (set by .ci/run) turns that skip into a
failure.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from prefstore import store
from ui.common import FLASH_ICON

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
CHROMIUM = os.environ.get("PREFSTORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT_S = 60
APPTEST_TIMEOUT_S = 30


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    """A fresh store that the app under AppTest opens too (local mode unless a test sets a token)."""
    path = tmp_path / "ui.db"
    monkeypatch.setenv("PREFSTORE_DB", str(path))
    monkeypatch.delenv("PREFSTORE_ADMIN_TOKEN", raising=False)
    db = store.connect(path)
    yield db
    db.close()


def app_test(script: str = APP, *, token: str | None = None):
    """Return an AppTest of ``script`` opened with the link ``?token=...``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(script, default_timeout=APPTEST_TIMEOUT_S)
    if token is not None:
        at.query_params["token"] = token
    return at


def open_page(page_path: str, *, token: str | None = None):
    """Run app.py with ``?token=``, then go to ``page_path`` (a file in pages/) as a visitor would.

    Pages run only inside app.py's navigation; a page script started on its own
    runs app.py around itself and lands on app.py's default page.
    """
    at = app_test(token=token).run()
    at.switch_page(page_path).run()
    return at


# --------------------------------------------------------------------------
# Real browser


def open_box(at, key: str):
    """Open the state-tracked expander ``key`` and rerun (AppTest cannot click one open)."""
    at.session_state[key] = True
    return at.run()


def notices(at) -> list[str]:
    """The rate page's line for what the last click did (common.flash_line), as shown."""
    return [c.value for c in at.caption if c.value.startswith(FLASH_ICON + " ")]


def rendered(markdown: str) -> str:
    """What a reader sees of markdown that escapes names: the backslashes dropped."""
    return re.sub(r"\\(.)", r"\1", markdown)


def huge_hostile_text(n_chars: int = 1_100_000) -> str:
    """About ``n_chars`` of what slows a browser most: emoji, combining marks, bidi overrides,
    zero-width characters, and markdown (images, emphasis) on every line."""
    line = ("Z\u0351\u0352\u0353\u0354 \U0001F469\u200D\U0001F4BB \u202Ereversed\u202C "
            "\u200B\u200C\u200D **bold** _it_ ![x](http://203.0.113.9/p.png) "
            "\u05e9\u05dc\u05d5\u05dd \U0001F1FA\U0001F1F3\n")
    return (line * (n_chars // len(line) + 1))[:n_chars]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # polling interval, not a readiness guess
    raise TimeoutError(f"{url}/_stcore/health did not answer within {SERVER_START_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture
def streamlit_server(tmp_path):
    """Return ``start(db_path, env=None) -> base URL``: run app.py on its own port.

    Each server runs in its own process group, killed at teardown.
    """
    procs: list[subprocess.Popen] = []
    logs = []

    def start(db_path, env: dict[str, str] | None = None) -> str:
        port = _free_port()
        full_env = {**os.environ, "PREFSTORE_DB": str(db_path), **(env or {})}
        if env is None or "PREFSTORE_ADMIN_TOKEN" not in env:
            full_env.pop("PREFSTORE_ADMIN_TOKEN", None)
        log = open(tmp_path / f"streamlit-{port}.log", "wb")
        logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        by_url[url] = proc
        _wait_healthy(url, proc, time.monotonic() + SERVER_START_TIMEOUT_S)
        return url

    by_url: dict[str, subprocess.Popen] = {}

    def kill(url: str) -> None:
        """SIGKILL the server process alone: what it started must notice by itself."""
        by_url[url].kill()
        by_url[url].wait(timeout=10)

    start.kill = kill
    yield start
    for proc in procs:
        _stop(proc)
    for log in logs:
        log.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where the browser tests save their screenshots: docs/screenshots with
    ``PREFSTORE_UPDATE_SCREENSHOTS=1``, else a temporary folder, so a test run
    leaves the checkout as it was."""
    if os.environ.get("PREFSTORE_UPDATE_SCREENSHOTS") == "1":
        folder = REPO / "docs" / "screenshots"
    else:
        folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_app_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished running the script for the page shown."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=timeout_ms)


def open_select(page, field) -> None:
    """Click the select ``field`` until its list shows.

    A click that lands while Streamlit redraws the page, or while an expander
    still opens, opens nothing; a rater would click again, and so does this.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        field.click()
        try:
            page.locator("[role='option']").first.wait_for(state="visible", timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            wait_app_idle(page)
    raise AssertionError("the select's list did not open in 5 clicks")


@pytest.fixture
def browser_page():
    """A Playwright page in Debian's chromium; skips only when chromium is missing."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("PREFSTORE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PREFSTORE_REQUIRE_BROWSER=1 but {CHROMIUM} does not exist")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
