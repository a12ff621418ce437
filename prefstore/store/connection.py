"""Opening a store, transactions, and the little that differs between SQLite and PostgreSQL.

A store handle is what every store function takes first. It is either

- a :class:`SqliteDatabase` (a sqlite-utils ``Database``: WAL, busy timeout,
  ``BEGIN IMMEDIATE`` writes), the embedded default, or
- a :class:`PostgresDatabase` over a psycopg 3 connection pool, for many app
  replicas sharing one server.

Both offer the same small API: ``execute(sql, params)`` (a cursor-like result
with ``fetchone``, ``fetchall``, ``rowcount``, ``description``),
``executemany``, ``query`` (rows as dicts), ``stream`` (batches of tuples from
one consistent snapshot) and ``close``; :func:`write` runs a block as one
transaction. SQL is written once in SQLite's spelling (``?`` and ``:name``
placeholders); :func:`pg_sql` rewrites the placeholders for psycopg. The few
statements that really differ sit side by side in dicts keyed by
``db.dialect``.

A handle belongs to the thread that opened it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import pandas as pd
from sqlite_utils import Database

from prefstore.errors import Conflict, InvalidInput, PrefstoreError

DEFAULT_DB = "prefstore.db"
DB_ENV = "PREFSTORE_DB"
BUSY_TIMEOUT_MS = 30_000
POOL_MAX_ENV = "PREFSTORE_PG_POOL_MAX"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_HEADER = b"SQLite format 3\x00"


class UnusableDatabase(PrefstoreError):
    """The database file or server cannot be used: not a database, damaged, read-only, full."""


def default_db() -> str:
    """Return the database to open: ``$PREFSTORE_DB`` (a path or a URL), else ``prefstore.db``."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def is_postgres(target: str | os.PathLike | None) -> bool:
    return str(target or "").startswith(POSTGRES_SCHEMES)


def canonical(target: str | os.PathLike | None = None) -> str:
    """Return the target as a stable key: an absolute path, or the URL as given."""
    target = str(target or default_db())
    if is_postgres(target) or target == ":memory:":
        return target
    return str(Path(target).resolve())


def describe(target: str | os.PathLike) -> str:
    """Return a database target fit for a message: a path, or a URL without its password."""
    text = str(target)
    if is_postgres(text) and "@" in text:
        scheme, rest = text.split("://", 1)
        userinfo, host = rest.rsplit("@", 1)
        return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}"
    return text


# --------------------------------------------------------------------------
# SQLite


class SqliteDatabase(Database):
    """A sqlite-utils database with the store's small common API."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, target: str):
        super().__init__(conn, execute_plugins=False)
        self.target = target

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def stream(self, sql: str, params: Any = (), batch: int = 5000) -> Iterator[tuple]:
        for rows in self.batches(sql, params, batch):
            yield from rows

    def batches(self, sql: str, params: Any = (), size: int = 5000) -> Iterator[list[tuple]]:
        """Yield the rows in lists of up to ``size``: no per-row step for bulk readers."""
        # One statement is one read snapshot in WAL mode: writers go on meanwhile.
        cur = self.conn.execute(sql, params)
        while rows := cur.fetchmany(size):
            yield rows

    def frame(self, sql: str, params: Any = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.conn, params=params)


def _check_sqlite_file(path: Path) -> None:
    """Refuse, with one line naming the file, what SQLite would fail on later and less clearly.

    Only ``stat`` and ``access``: the file is never opened here. Closing any
    descriptor of a database file releases every POSIX lock this process holds
    on it, including those of its open SQLite connections, which lets another
    process write at the same time and corrupts the database (SQLite's "How To
    Corrupt", section 2.2). What the contents are, SQLite itself says.
    """
    where = f"database {path}"
    if path.is_dir():
        raise UnusableDatabase(f"{where} is a directory; give the path of a database file")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InvalidInput(f"--db {path}: directory {parent} does not exist")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise UnusableDatabase(f"{where} cannot be read (permission denied); check its "
                                   "permissions")
        if not os.access(path, os.W_OK):
            raise UnusableDatabase(f"{where} is read-only; make it writable, or copy it "
                                   "somewhere writable (prefstore needs to write its journal)")
    if not os.access(parent, os.W_OK):
        raise UnusableDatabase(f"{where}: directory {parent} is not writable; prefstore "
                               "keeps its write-ahead log beside the database")


def _open_sqlite(target: str) -> SqliteDatabase:
    memory = target == ":memory:"
    if not memory:
        _check_sqlite_file(Path(target))
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, and sqlite-utils
    # nests its own atomic() blocks inside as savepoints.
    try:
        conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate_error(exc, target) from exc
    db = SqliteDatabase(conn, target)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not memory:
            from prefstore.store import schema

            # Before WAL mode, which would rewrite the header of somebody else's file.
            schema.check(db)
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise translate_error(exc, target) from exc
    except BaseException:
        conn.close()
        raise
    return db


# --------------------------------------------------------------------------
# PostgreSQL


@functools.lru_cache(maxsize=4096)
def pg_sql(sql: str) -> str:
    """Rewrite SQLite-style SQL for psycopg: ``?`` → ``%s``, ``:name`` → ``%(name)s``.

    Literal ``%`` becomes ``%%``; quoted strings and identifiers, and ``::``
    casts, are left alone. ``CROSS JOIN ... ON``, SQLite's way of fixing the
    join order, is a plain ``JOIN`` in PostgreSQL.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[i + 1:end]})s")
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out).replace("CROSS JOIN", "JOIN")


class Result:
    """A fully fetched result: what ``execute`` returns on PostgreSQL.

    ``description`` holds the column names (as ``d[0]``), built on first use from the
    server's result: psycopg builds a Column object per column on every access,
    0.1-0.2 ms for a wide row, and most callers never look.
    """

    def __init__(self, rows: list[tuple], pgresult, encoding: str, rowcount: int):
        self._rows = rows
        self._pos = 0
        self._pgresult = pgresult  # None: the statement returned no rows
        self._encoding = encoding
        self._description = None
        self.rowcount = rowcount

    @property
    def description(self) -> list[tuple] | None:
        if self._pgresult is None:
            return None
        if self._description is None:
            res = self._pgresult
            self._description = [(res.fname(i).decode(self._encoding), res.ftype(i), None,
                                   None, None, None, None) for i in range(res.nfields)]
        return self._description

    def fetchone(self):
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[tuple]:
        rest = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rest

    def fetchmany(self, size: int) -> list[tuple]:
        rows = self._rows[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row


# Statements bound on the server and prepared once per connection (PostgreSQL).
# Everything else is bound on the client: one parse and plan per call, but any
# parameter may stand where PostgreSQL could not infer its type (``? IS NULL``).
_PREPARED: set[str] = set()


def prepared(sql: str) -> str:
    """Mark a hot statement to be prepared on PostgreSQL; return it unchanged.

    Planning the submit's first read took 1.1 of its 1.5 ms; prepared, the
    plan is kept per connection. Its parameters must have types PostgreSQL can
    infer from where they stand (a column they are compared with, a ``CAST``).
    """
    _PREPARED.add(sql)
    return sql


# Statements run through libpq itself on PostgreSQL, each under its own name.
_DIRECT: dict[str, bytes] = {}
# The names prepared on each pooled connection so far.
_direct_ready: WeakKeyDictionary = WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%%|%s")
_UNDEFINED_STATEMENT = b"26000"  # a DEALLOCATE or DISCARD dropped it


def direct(sql: str) -> str:
    """Mark the hottest statement to run through libpq directly; return it unchanged.

    psycopg's cursor (adapting the parameters, loading the row) took 90 of the
    200 µs of client CPU of a submit; with 16 writers on 2 cores that CPU is
    what bounds the judgments per second. Only ``?`` placeholders; parameters
    go as text and the rows come back as text (see :meth:`PostgresDatabase.execute_direct`).
    """
    _DIRECT.setdefault(sql, f"prefstore_direct_{len(_DIRECT)}".encode())
    return sql


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's own ``$1``, ``$2``, ..."""
    number = iter(range(1, sql.count("?") + 1))
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(number)}",
                            pg_sql(sql))


def _as_text(values: Sequence[Any], encoding: str) -> list[bytes | None] | None:
    """Parameters as PostgreSQL's text input, or None for one that has no plain text
    form (a NUL, a lone surrogate, a non-finite float, another type)."""
    out: list[bytes | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif value is True or value is False:
            out.append(b"t" if value else b"f")
        elif type(value) is int:
            out.append(str(value).encode())
        elif type(value) is float and math.isfinite(value):
            out.append(repr(value).encode())
        elif type(value) is str and "\x00" not in value:
            try:
                out.append(value.encode(encoding))
            except UnicodeEncodeError:
                return None
        else:
            return None
    return out


_pools: dict[str, Any] = {}
_TUPLES_OK = 2  # psycopg.pq.ExecStatus.TUPLES_OK, without importing psycopg for SQLite
_pools_lock = threading.Lock()


def _configure(conn) -> None:
    from psycopg.types.string import TextLoader

    # JSON comes back as text on both backends, so one parser serves both.
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    # The store's statements are short index walks whose LIMIT the cost model
    # ignores: a claim estimated at 340k took 62 ms to JIT-compile, 0.2 ms to run.
    conn.execute("SET jit = off")


def _pool(url: str):
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            try:
                import psycopg
                from psycopg_pool import ConnectionPool
            except ImportError as exc:
                from prefstore.errors import MissingDependency

                raise MissingDependency(
                    "PostgreSQL needs psycopg 3 and its pool: pip install 'prefstore[postgres]'"
                ) from exc
            pool = ConnectionPool(
                url, min_size=1, max_size=int(os.environ.get(POOL_MAX_ENV, "8")),
                kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor},
                configure=_configure, open=False, name="prefstore")
            try:
                pool.open(wait=True, timeout=15)
            except Exception as exc:
                pool.close()
                raise UnusableDatabase(
                    f"cannot connect to PostgreSQL at {describe(url)}: "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
            _pools[url] = pool
        return pool


def close_pool(url: str) -> None:
    """Close the connection pool of ``url`` (before dropping its database, say)."""
    with _pools_lock:
        pool = _pools.pop(url, None)
    if pool is not None:
        pool.close()
    _migrated.discard(url)


def close_pools() -> None:
    """Close every connection pool of this process (tests, and before a fork)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PostgresDatabase:
    """A store handle over a psycopg 3 connection pool.

    Outside :func:`write` each statement borrows a pooled connection in
    autocommit mode; inside, every statement runs on the transaction's one
    connection.
    """

    dialect = "postgres"

    def __init__(self, url: str):
        self.target = url
        self._pool = _pool(url)
        self._conn = None  # the connection of the open transaction, if any
        self._depth = 0

    @contextlib.contextmanager
    def _connection(self):
        if self._conn is not None:
            yield self._conn
        else:
            with self._pool.connection() as conn:
                yield conn

    def execute(self, sql: str, params: Any = None) -> Result:
        with self._connection() as conn:
            if sql in _PREPARED:
                import psycopg

                cur = psycopg.Cursor(conn).execute(pg_sql(sql), params, prepare=True)
            else:
                cur = conn.execute(pg_sql(sql), params if params is not None else None)
            res = cur.pgresult
            if res is not None and (res.nfields or res.status == _TUPLES_OK):
                return Result(cur.fetchall(), res, conn.info.encoding, cur.rowcount)
            return Result([], None, "", cur.rowcount)

    def execute_direct(self, sql: str, params: Sequence[Any]) -> list[tuple] | None:
        """Run a :func:`direct` statement through libpq: its rows, each value the
        server's text (bytes, None for NULL).

        None if a parameter has no plain text form: the caller then runs the same
        statement through :meth:`execute`, which adapts or refuses it as usual.
        Errors are psycopg's, as from :meth:`execute`.
        """
        import psycopg

        name = _DIRECT[sql]
        with self._connection() as conn:
            values = _as_text(params, conn.info.encoding)
            if values is None:
                return None
            pgconn, ready = conn.pgconn, _direct_ready.setdefault(conn, set())
            for attempt in (1, 2):
                if name not in ready:
                    self._check(pgconn.prepare(name, _numbered(sql).encode()), conn)
                    ready.add(name)
                # libpq waits for the answer with the GIL released.
                res = pgconn.exec_prepared(name, values)
                if (attempt == 1 and res.status == psycopg.pq.ExecStatus.FATAL_ERROR
                        and res.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
                        == _UNDEFINED_STATEMENT):
                    ready.discard(name)
                    continue
                self._check(res, conn)
                return [tuple(res.get_value(r, c) for c in range(res.nfields))
                        for r in range(res.ntuples)]
        raise AssertionError("unreachable")

    @staticmethod
    def _check(res, conn) -> None:
        import psycopg

        if res.status not in (psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK):
            raise psycopg.errors.error_from_result(res, encoding=conn.info.encoding)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._connection() as conn, conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        result = self.execute(sql, params)
        cols = [d[0] for d in result.description or ()]
        for row in result:
            yield dict(zip(cols, row))

    def stream(self, sql: str, params: Any = None, batch: int = 5000) -> Iterator[tuple]:
        """Yield rows in one REPEATABLE READ snapshot, as the server sends them.

        libpq 17's chunked rows: the server computes the next rows while the
        caller works on these, where a server-side cursor's fetches would take
        turns with it (a 1M-row export: 12.6 -> 7 s on 2 cores). Older libpq
        reads through the cursor of :meth:`batches`.
        """
        from psycopg import pq

        if pq.version() < 170000:
            for rows in self.batches(sql, params, batch):
                yield from rows
            return
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                # Left early, psycopg cancels the query and drains what was sent.
                yield from conn.cursor().stream(pg_sql(sql), params, size=batch)

    def batches(self, sql: str, params: Any = None, size: int = 5000
                ) -> Iterator[list[tuple]]:
        """Yield the rows as :meth:`stream` does, in lists of up to ``size``."""
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                with conn.cursor(name=f"stream_{id(self)}_{time.monotonic_ns()}") as cur:
                    cur.itersize = size
                    cur.execute(pg_sql(sql), params)
                    while rows := cur.fetchmany(size):
                        yield rows

    def frame(self, sql: str, params: Any = None) -> pd.DataFrame:
        result = self.execute(sql, params)
        cols = [d[0] for d in result.description]
        return pd.DataFrame.from_records(result.fetchall(), columns=cols)

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None

    def table_names(self) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]

    def close(self) -> None:
        """Release the handle; the pool stays open for the process's other handles."""
        self._conn = None


# --------------------------------------------------------------------------
# Opening


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def connect(target: str | os.PathLike | None = None, *, migrate: bool = True):
    """Open the store at ``target``: a SQLite path (default ``$PREFSTORE_DB`` or
    ``prefstore.db``) or a ``postgresql://`` URL.

    New databases get the schema; existing ones are checked to be prefstore
    databases of a schema this version knows, and migrated. Migrations run once
    per target and process.

    Raises
    ------
    UnusableDatabase
        For a file that is not a (prefstore) database, is damaged, read-only or
        in a directory that cannot be written, a server that cannot be reached,
        or a schema written by a newer prefstore. The message names the
        database and what to do.
    """
    from prefstore.store import schema

    target = str(target or default_db())
    db = PostgresDatabase(target) if is_postgres(target) else _open_sqlite(target)
    try:
        key = canonical(target)
        if migrate and (key == ":memory:" or key not in _migrated):
            with _migrate_lock:
                schema.migrate(db)
                _migrated.add(key)
        elif not migrate:
            schema.check(db)
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise translate_error(exc, target) from exc
        raise
    return db


def translate_error(exc: BaseException, target: str | os.PathLike | None = None
                    ) -> PrefstoreError:
    """Turn a database driver error into one line that names the database and what to do."""
    where = f"database {describe(target)}" if target else "the database"
    if str(target or "").startswith("backup "):
        where = str(target)
    text = str(exc)
    low = text.lower()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "disk is full" in low or "no space" in low:
        return UnusableDatabase(f"{where}: the disk is full; nothing was written. Free some "
                                "space and try again")
    if "readonly" in low or "read-only" in low:
        return UnusableDatabase(f"{where} is read-only; make it writable, or copy it somewhere "
                                "writable")
    if "file is not a database" in low:
        return UnusableDatabase(f"{where} is not a SQLite database; give a prefstore "
                                "database, or a new file name to create one")
    if ("malformed" in low or "not a database" in low or "file is encrypted" in low
            or "could not decode to utf-8" in low):
        shown = first if len(first) <= 80 else first[:79] + "…"
        return UnusableDatabase(f"{where} is damaged ({ascii(shown)[1:-1]}); restore it from a "
                                "backup, and see `prefstore check`")
    if "unable to open" in low:
        return UnusableDatabase(f"{where} cannot be opened ({text}); check the path and its "
                                "permissions")
    if "locked" in low or "busy" in low:
        return UnusableDatabase(f"{where} is locked by another process, which held it for more "
                                f"than {BUSY_TIMEOUT_MS // 1000} s; try again")
    if "disk i/o error" in low:
        return UnusableDatabase(f"{where}: disk I/O error; check that the disk is present, not "
                                "full, and healthy")
    return UnusableDatabase(f"{where}: {first}")


def driver_errors() -> tuple[type[BaseException], ...]:
    """The exception classes of the database drivers that are installed."""
    errors: list[type[BaseException]] = [sqlite3.Error]
    with contextlib.suppress(ImportError):
        import psycopg

        errors.append(psycopg.Error)
    return tuple(errors)


def is_integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    with contextlib.suppress(ImportError):
        import psycopg

        return isinstance(exc, psycopg.errors.IntegrityError)
    return False


def is_retryable(exc: BaseException) -> bool:
    """True for a lock or serialization conflict that a retry of the transaction resolves."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    with contextlib.suppress(ImportError):
        import psycopg

        return isinstance(exc, (psycopg.errors.SerializationFailure,
                                psycopg.errors.DeadlockDetected))
    return False


# --------------------------------------------------------------------------
# Transactions


@contextlib.contextmanager
def write(db, *, deadline_s: float = BUSY_TIMEOUT_MS / 1000) -> Iterator[Any]:
    """Run the block in one write transaction; nested calls become savepoints.

    SQLite takes the write lock up front (``BEGIN IMMEDIATE``), so a
    read-then-write inside cannot be invalidated by another writer. PostgreSQL
    runs READ COMMITTED; the statements that need more lock rows explicitly
    (``FOR UPDATE``).
    """
    if db.dialect == "postgres":
        if db._conn is not None:
            with db._conn.transaction():
                yield db
            return
        with db._pool.connection() as conn:
            db._conn = conn
            try:
                with conn.transaction():
                    yield db
            finally:
                db._conn = None
        return
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            # busy_timeout already waited; retry a little more in case the
            # handler gave up early (it can under checkpoint contention).
            if not is_retryable(exc) or time.monotonic() - start > deadline_s:
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.2)
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise


def retrying(fn, *, attempts: int = 8):
    """Call ``fn()`` (one whole transaction), again on a lock or serialization conflict."""
    delay = 0.01
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Values


def now_iso(at: dt.datetime | None = None) -> str:
    """Return a UTC timestamp that sorts as text (ISO 8601, milliseconds)."""
    at = at or dt.datetime.now(dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def dumps(value: Any) -> str | None:
    """Serialize a JSON column value: strict JSON (no NaN), keys sorted; None stays NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


def loads(value: str | None, default: Any = None) -> Any:
    return default if value is None else json.loads(value)


def check_kind(kind: str) -> str:
    if kind not in ("all", "human", "llm"):
        raise InvalidInput(f'kind must be "human", "llm" or "all", got {kind!r}')
    return kind


# --------------------------------------------------------------------------
# Maintenance


def integrity_check(db) -> str:
    """Return "ok", or what SQLite's ``PRAGMA integrity_check`` found (PostgreSQL: "ok")."""
    if db.dialect == "postgres":
        return "ok"  # the server checks its own pages; see pg_amcheck
    return "; ".join(r[0] for r in db.execute("PRAGMA integrity_check").fetchall())


def backup(db, out_path: str | os.PathLike) -> None:
    """Copy the live database to ``out_path``.

    SQLite: the online backup API, one step, into a temp file renamed at the
    end, so a failed backup leaves nothing. PostgreSQL: ``pg_dump`` in its
    custom format, when it is installed.
    """
    out_path = Path(out_path)
    if out_path.exists():
        raise Conflict(f"backup target {out_path} already exists; choose a new path")
    if not out_path.resolve().parent.is_dir():
        raise InvalidInput(f"backup target {out_path}: directory does not exist")
    if not os.access(out_path.resolve().parent, os.W_OK):
        raise InvalidInput(f"backup target {out_path}: directory is not writable")
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        if db.dialect == "postgres":
            _pg_dump(db.target, tmp)
        else:
            dest = sqlite3.connect(str(tmp))
            try:
                # One step: a commit from another connection between steps restarts
                # the copy, so a stepwise backup need never finish under steady
                # writes. In WAL mode the step's read snapshot does not block writers.
                db.conn.backup(dest, pages=-1)
            finally:
                dest.close()
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def pg_tool(name: str) -> str | None:
    """Return the path of a PostgreSQL client tool (pg_dump, ...): on PATH, else Debian's."""
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def _pg_dump(url: str, out: Path) -> None:
    import subprocess

    pg_dump = pg_tool("pg_dump")
    if pg_dump is None:
        raise InvalidInput("backup of a PostgreSQL database needs pg_dump, which is not "
                           "installed here; run `pg_dump --format=custom` against "
                           f"{describe(url)} yourself")
    done = subprocess.run([pg_dump, "--format=custom", "--file", str(out), url],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise UnusableDatabase(f"pg_dump of {describe(url)} failed: "
                               f"{done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
