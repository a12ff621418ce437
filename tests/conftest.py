"""Shared fixtures: a store on either backend, the PostgreSQL server, and the real data sets.

Store-level test modules mark themselves ``pytestmark = pytest.mark.both_backends``;
their tests that use ``db`` or ``db_path`` then run once on SQLite and once on
PostgreSQL (a fresh database per test, copied from a migrated template).
``db_path`` is the store's target either way: a file path or a URL.

Skips that CI must not allow: PostgreSQL (``PREFSTORE_REQUIRE_POSTGRES=1``) and
the data sets in ``../shared/data`` (``PREFSTORE_REQUIRE_DATA=1``) turn a
missing dependency into a failure, as ``PREFSTORE_REQUIRE_BROWSER=1`` does for
chromium.
"""

import contextlib
import itertools
import os

import pytest

from prefstore import store
from tests import pandalm, pgcluster

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests start workers themselves; the app must not spawn one per test.
os.environ["PREFSTORE_AUTOSTART_WORKER"] = "0"

BACKENDS = ("sqlite", "postgres")
PG_URL_ENV = "PREFSTORE_TEST_PG_URL"
TEMPLATE = f"prefstore_template_{os.getpid()}"
_databases = itertools.count()


def require(env: str) -> bool:
    return os.environ.get(env, "").lower() in ("1", "true", "yes")


def missing(what: str, env: str) -> None:
    """Skip for ``what`` being absent, or fail when ``env`` says it must be there."""
    if require(env):
        pytest.fail(f"{what} ({env}=1 requires it)")
    pytest.skip(what)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "both_backends: run the module's store tests on SQLite and on PostgreSQL")
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a test of SQLite's own behaviour (WAL files, pages)")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_backends") and (
            {"db", "db_path"} & set(metafunc.fixturenames)):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests():
    """At the very end, end any process the tests left behind, and name it.

    A leftover child (a soak writer, a worker, a server) would keep pytest, or a
    pipe it writes to, open after the summary: CI would hang instead of failing.
    """
    import psutil

    yield
    me = psutil.Process()
    left = [p for p in me.children(recursive=True)
            if "multiprocessing.resource_tracker" not in " ".join(_cmdline(p))]
    if not left:
        return
    names = "; ".join(f"{p.pid} {' '.join(_cmdline(p))[:120]}" for p in left)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=10)
    _leftovers.append(f"killed {len(left)} process(es) the tests left running: {names}")


@pytest.fixture(autouse=True)
def main_module_restored():
    """Put back the ``__main__`` module an AppTest replaces with the app script it ran.

    Streamlit's script runner installs each script as ``sys.modules["__main__"]``
    and leaves it there. A later ``spawn`` child then re-runs that script as
    ``__mp_main__`` before its target: in CI, soak writers ran app.py in bare
    mode and two of sixteen died before they started.
    """
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


_leftovers: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in _leftovers:
        terminalreporter.write_line(f"prefstore tests: {line}", yellow=True, bold=True)


def _cmdline(proc) -> list[str]:
    import psutil

    try:
        return proc.cmdline()
    except psutil.Error:
        return ["?"]


@pytest.fixture
def backend(request):
    name = getattr(request, "param", "sqlite")
    marker = request.node.get_closest_marker("sqlite_only")
    if name == "postgres" and marker:
        pytest.skip(f"SQLite-specific: {marker.args[0] if marker.args else 'see the test'}")
    return name


# --------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture(scope="session")
def pg_server():
    """The admin URL of a PostgreSQL server: ``$PREFSTORE_TEST_PG_URL``, or a throwaway cluster."""
    import psycopg

    url = os.environ.get(PG_URL_ENV)
    cluster = None
    if not url:
        if not pgcluster.available():
            missing("PostgreSQL's initdb and pg_ctl are not installed", "PREFSTORE_REQUIRE_POSTGRES")
        cluster = pgcluster.Cluster().start()
        url = cluster.url()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        template_url = url.rsplit("/", 1)[0] + "/" + TEMPLATE
        store.connect(template_url).close()
        store.close_pool(template_url)
        yield url
    finally:
        store.close_pools()
        if cluster is not None:
            cluster.stop()


def new_pg_database(server_url: str) -> str:
    """Create a fresh, migrated database from the template; return its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(server_url: str, url: str) -> None:
    import psycopg

    store.close_pool(url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def db_path(backend, tmp_path, request):
    """The test store's target: a SQLite file path, or the URL of a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield tmp_path / "test.db"
        return
    server = request.getfixturevalue("pg_server")
    url = new_pg_database(server)
    yield url
    drop_pg_database(server, url)


@pytest.fixture
def db(db_path):
    handle = store.connect(db_path)
    yield handle
    handle.close()


# --------------------------------------------------------------------------
# A real judge server: `transformers serve` on the tiny local models


@pytest.fixture(scope="session")
def served_processes(tmp_path_factory):
    """Start ``transformers serve`` and its standby (both import for ~20 s meanwhile).

    Session-wide, so every module that judges against a real server shares one.
    """
    from tests.judge_server import Served, TransformersServer, free_port, serving_available

    if not serving_available():
        pytest.skip("transformers serve needs torch, transformers, fastapi and uvicorn "
                    "(pip install 'transformers[serving]')")
    root = tmp_path_factory.mktemp("transformers-serve")
    port = free_port()
    primary = TransformersServer(root / "models", port, root / "primary.log", build=True)
    standby = TransformersServer(root / "models", port, root / "standby.log", standby=True)
    try:
        primary.start()
        standby.start()
        yield Served(primary, standby)
    finally:
        primary.stop()
        standby.stop()


@pytest.fixture(scope="session")
def served(served_processes):
    """The running ``transformers serve`` (a ``tests.judge_server.Served``), ready."""
    served_processes.current.wait_ready()
    return served_processes


# --------------------------------------------------------------------------
# Real data sets (../shared/data, or $PREFSTORE_TEST_DATA)


@pytest.fixture(scope="session")
def shared_data():
    """The directory of the real data sets; skips (or fails under CI) when they are absent."""
    if not (pandalm.PANDALM / "testset-v1.json").exists() or not pandalm.NASCAR.exists():
        missing(f"the real data sets are not at {pandalm.DATA} (set {pandalm.DATA_ENV}; "
                "see ../shared/data/README.md for their sources)", "PREFSTORE_REQUIRE_DATA")
    return pandalm.DATA


@pytest.fixture(scope="session")
def pandalm_db_path(tmp_path_factory, shared_data):
    """A database holding the imported PandaLM test set plus GPT-3.5's labels (read-only)."""
    from prefstore import importing

    path = tmp_path_factory.mktemp("pandalm") / "pandalm.db"
    db = store.connect(path)
    items = pandalm.write_jsonl(path.parent / "items.jsonl", pandalm.item_rows())
    judge = pandalm.write_jsonl(path.parent / "gpt.jsonl", pandalm.gpt_judgment_rows())
    importing.import_items(db, items, "pandalm")
    importing.import_judgments(db, judge, "pandalm", skip_invalid_judgments=True)
    db.close()
    return path
