"""A throwaway PostgreSQL cluster from Debian's binaries, for tests and benchmarks.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root the cluster runs as
the ``postgres`` user (``runuser``); otherwise as the current user. The server
listens on 127.0.0.1 on a free port, with trust authentication, and is stopped
(``pg_ctl stop -m immediate``) by :meth:`Cluster.stop`, which the fixtures call
in their finalizers.

    python -m tests.pgcluster     # start one by hand; prints its URL, stops on Enter
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SEARCH = ["/usr/lib/postgresql/*/bin"]


def find_bin(name: str) -> str | None:
    """Return the path of a PostgreSQL server binary (initdb, pg_ctl, ...), or None."""
    for pattern in SEARCH:
        for directory in sorted(glob.glob(pattern), reverse=True):
            path = Path(directory) / name
            if path.exists():
                return str(path)
    return shutil.which(name)


def available() -> bool:
    return find_bin("initdb") is not None and find_bin("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One running PostgreSQL server in a temporary directory."""

    def __init__(self, base: str | os.PathLike | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="prefstore-pg-", dir=base))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else os.environ.get("USER", "postgres")
        self.started = False

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    def start(self) -> Cluster:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(find_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=256MB")
        self._run(find_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "start")
        self.started = True
        return self

    def postmaster_pid(self) -> int:
        """The server's main process (the first line of its ``postmaster.pid``)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(find_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                          "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def wait_ready(url: str, timeout_s: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    cluster = Cluster().start()
    try:
        print(cluster.url(), flush=True)
        input("running; press Enter to stop\n")
    finally:
        cluster.stop()
