"""The app on a real Streamlit server, for the browser benchmarks; stopped on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def app_server(db_path: str | os.PathLike, env: dict[str, str] | None = None,
               app_dir: Path = REPO) -> Iterator[str]:
    """Run ``app.py`` on a free port with no worker; yield its URL; kill its process group.

    ``app_dir``: the checkout whose app runs (another one: an A/B comparison; it
    is also put first on the server's PYTHONPATH, so its own modules are imported).

    The server's output goes to a temporary log, whose tail is printed when the
    benchmark fails inside the block (an app error shows on the page redacted).
    """
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="prefstore-app-", suffix=".log", delete=False)
    full_env = {**os.environ, "PREFSTORE_DB": str(db_path), "PREFSTORE_AUTOSTART_WORKER": "0",
                **({"PYTHONPATH": str(app_dir)} if app_dir != REPO else {}), **(env or {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=app_dir, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start on {url}") from None
                time.sleep(0.1)  # polling interval
        yield url
    except BaseException:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-30000:]
        print(f"--- the app server's log ({log.name}), its end:\n{tail}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
        Path(log.name).unlink(missing_ok=True)
