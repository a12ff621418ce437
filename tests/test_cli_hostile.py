"""Hostile input to the command line: one line on stderr, exit 2, and the database unchanged.

Every case of the class table below ran into a traceback (exit 1) once. Each
is pinned to its exact message. Most cases run ``main()`` in this process
(fast, and an escaping exception fails the test); the ones that need a real
process (argv bytes, dropped privileges) run the CLI as a subprocess.

Conditions that root would not feel are made so that root feels them:

- read-only and unwritable: ``chattr +i`` (an immutable file or directory
  refuses writes even from root) and a tmpfs remounted read-only;
- unreadable: the CLI runs as root without CAP_DAC_OVERRIDE and
  CAP_DAC_READ_SEARCH (``setpriv --bounding-set``), so file modes apply;
- a full disk: a tmpfs of a few hundred kilobytes.

A case skips, saying why, only where this machine cannot make its condition
(no ``mount`` or ``chattr`` rights, no ``setpriv``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prefstore import admin, importing, store
from prefstore.cli import main
from prefstore.settings import ProjectSettings

ROOT = Path(__file__).resolve().parents[1]
SURROGATE_MESSAGE = "contains a lone surrogate {} at character {}, which is not valid Unicode text"
D800, DBFF = r"\ud800", r"\udbff"  # as messages show them
NAN = "JSON numbers must be finite (RFC 8259 has no NaN or Infinity)"


def jsonl(*rows) -> bytes:
    """JSON lines as ``json.dumps`` writes them: lone surrogates become \\ud800 escapes."""
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def item(**extra):
    return {"id": "x1", "prompt": "q", "responses": ["one", "two"], **extra}


def judged(**fields):
    return item(judgments=[{"rater": "zoe", "choice": 0, **fields}])


def surrogate(char: str, at: int) -> str:
    return SURROGATE_MESSAGE.format(char, at)


# --------------------------------------------------------------------------
# The environment of one case


@dataclass
class Env:
    tmp: Path
    db: Path
    undo: list = field(default_factory=list)

    def file(self, name: str, content: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def immutable(self, path: Path) -> None:
        """Make ``path`` refuse writes even from root (chattr +i), or skip."""
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not possible here: {done.stderr.strip()}")
        self.undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))

    def tmpfs(self, name: str, size: str) -> Path:
        """Mount a tmpfs of ``size`` at ``tmp/name``, or skip."""
        where = self.tmp / name
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.undo.append(lambda: subprocess.run(["umount", "-l", str(where)], check=True))
        return where

    def read_only_mount(self) -> Path:
        """A tmpfs holding a copy of the database, remounted read-only."""
        where = self.tmpfs("ro", "4m")
        shutil.copy(self.db, where / "x.db")
        done = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
        return where / "x.db"


def drop_dac() -> list[str]:
    """The command prefix that makes file permissions apply to this user, or skip."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@dataclass
class Case:
    argv: list[str]
    message: str
    prefix: list[str] | None = None  # run as a subprocess with this command prefix
    db: Path | None = None  # the database whose state must not change (default: env.db)


CASES: dict[str, object] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


#: The item files of the table: (case, content, file name, message), for the Admin upload.
ITEM_FILES: list[tuple[str, bytes, str, str]] = []


def importing_case(name: str, content: bytes, message: str, *, command: str = "import",
                   file: str = "in.jsonl"):
    if command == "import":
        ITEM_FILES.append((name, content, file, message))
    CASES[name] = lambda env: Case(
        [command, env.file(file, content), "--project", "p", "--db", str(env.db)], message)


# --------------------------------------------------------------------------
# Text: unstorable strings anywhere in a file

for name_, row, where, char, at in [
        ("prompt", item(prompt="\ud800"), '"prompt"', r"\ud800", 1),
        ("response", item(responses=["a\udfff", "b"]), "responses[0]", r"\udfff", 2),
        ("system", item(responses=[{"text": "a", "system": "s\ud800"}, "b"]),
         "responses[0].system", r"\ud800", 2),
        ("message", {"id": "x1", "messages": [{"role": "user", "content": "\udc80"}],
                     "responses": ["a", "b"]}, "messages[0].content", r"\udc80", 1),
        ("id", item(id="\ud800"), '"id"', r"\ud800", 1),
        ("metadata-value", item(metadata={"k": ["ok", "\ud800"]}), "metadata.k[1]", r"\ud800", 1),
        ("category", item(category="c\ud800"), '"category"', r"\ud800", 2),
        ("rater", judged(rater="\ud800"), "judgments[0].rater", r"\ud800", 1),
        ("reason-tag", judged(reason_tags=["ok", "\ud800"]), "judgments[0].reason_tags[1]",
         r"\ud800", 1),
        ("rationale", judged(rationale="why\ud800"), "judgments[0].rationale", r"\ud800", 4),
        ("edited", judged(edited="\ud800"), "judgments[0].edited", r"\ud800", 1),
        ("submission-id", judged(submission_id="\ud800"), "judgments[0].submission_id",
         r"\ud800", 1)]:
    importing_case(f"surrogate-{name_}", jsonl(row),
                   f"line 1: {where} {surrogate(char, at)}")

importing_case("surrogate-metadata-key", jsonl(item(), item(id="x2", metadata={"\ud800": 1})),
               f'line 2: the key metadata["{D800}"] {surrogate(D800, 1)}')
importing_case("surrogate-aspect-name", jsonl(judged(aspects={"\ud800": 3})),
               f'line 1: the key judgments[0].aspects["{D800}"] {surrogate(D800, 1)}')
importing_case("surrogate-judgment-file-rater",
               jsonl({"item": "b", "rater": "x\ud800", "choice": 0}),
               f'line 1: "rater" {surrogate(D800, 2)}', command="import-judgments")
importing_case("surrogate-judgment-file-metadata",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "metadata": {"a": "\udbff"}}),
               f"line 1: metadata.a {surrogate(DBFF, 1)}", command="import-judgments")
importing_case("nul-metadata-value", jsonl(item(metadata={"k": "a\x00b"})),
               "line 1: metadata.k contains a NUL character")
importing_case("nul-metadata-key", jsonl(item(metadata={"a\x00": 1})),
               'line 1: the key metadata["a\\u0000"] contains a NUL character')
importing_case("nul-reason-tag", jsonl(judged(reason_tags=["\x00"])),
               "line 1: judgments[0].reason_tags[0] contains a NUL character")
importing_case("nul-judgment-file-rationale",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "rationale": "\x00"}),
               'line 1: "rationale" contains a NUL character', command="import-judgments")
importing_case("nul-csv-prompt", b"id,prompt,response_1,response_2\nx1,a\x00b,c,d\n",
               'line 2: "prompt" contains a NUL character', file="in.csv")

# --------------------------------------------------------------------------
# Numbers and types

importing_case("time-ms-2**63", jsonl(judged(time_ms=2**63)),
               'line 1: judgments[0]: "time_ms" must be an integer from 0 to '
               "9223372036854775807, got 9223372036854775808")
importing_case("time-ms-2**63-judgment-file",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "time_ms": 2**63}),
               'line 1: "time_ms" must be an integer from 0 to 9223372036854775807, got '
               "9223372036854775808", command="import-judgments")
importing_case("time-ms-negative-judgment-file",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "time_ms": -1}),
               'line 1: "time_ms" must be an integer from 0 to 9223372036854775807, got -1',
               command="import-judgments")
importing_case("time-ms-huge-digits", b'{"item": "b", "rater": "bob", "choice": 0, "time_ms": '
               + b"9" * 200 + b"}\n",
               'line 1: "time_ms" must be an integer from 0 to 9223372036854775807, got '
               + "9" * 59 + "…", command="import-judgments")
importing_case("display-order-string", jsonl(judged(display_order=[0, "1"])),
               'line 1: judgments[0]: "display_order" must be a permutation of 0..1, got '
               "[0, '1']")
importing_case("display-order-booleans",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "display_order": [False, True]}),
               'line 1: "display_order" must be a permutation of 0..1, got [False, True]',
               command="import-judgments")
importing_case("nan-metadata", b'{"id": "x1", "prompt": "q", "responses": ["a", "b"], '
               b'"metadata": {"score": NaN}}\n', f"line 1: metadata.score is NaN; {NAN}")
importing_case("infinity-aspect", b'{"item": "b", "rater": "bob", "choice": 0, "aspects": '
               b'{"help": Infinity}}\n', f"line 1: aspects.help is Infinity; {NAN}",
               command="import-judgments")
importing_case("minus-infinity-strength", b'{"item": "b", "rater": "bob", "choice": 0, '
               b'"strength": -Infinity}\n', f'line 1: "strength" is -Infinity; {NAN}',
               command="import-judgments")
importing_case("overflowing-float", b'{"id": "x1", "prompt": "q", "responses": ["a", "b"], '
               b'"metadata": {"big": 1e999}}\n', f"line 1: metadata.big is 1e999; {NAN}")
importing_case("nan-csv-metadata", b'id,prompt,response_1,response_2,metadata\n'
               b'x1,q,a,b,"{""m"": NaN}"\n', f"line 2: metadata.m is NaN; {NAN}", file="in.csv")
importing_case("nan-json-list", b'[{"id": "x1", "prompt": "q", "responses": ["a", "b"], '
               b'"metadata": {"m": [NaN]}}]', f"item 1: metadata.m[0] is NaN; {NAN}",
               file="in.json")

# --------------------------------------------------------------------------
# One rater, one judgment per item; submission ids are not reused

importing_case("second-judgment-in-file",
               jsonl({"item": "b", "rater": "bob", "choice": 0},
                     {"item": "c", "rater": "bob", "choice": 0},
                     {"item": "b", "rater": "bob", "choice": 1}),
               "line 3: rater 'bob' has a second judgment on item 'b' (the first is on line 1); "
               "a rater judges an item once", command="import-judgments")
importing_case("second-judgment-in-item",
               jsonl(item(judgments=[{"rater": "bob", "choice": 0},
                                     {"rater": "bob", "choice": 1}])),
               "line 1: judgments[1]: rater 'bob' has a second judgment on this item (the first "
               "is on line 1: judgments[0]); a rater judges an item once")
importing_case("judgment-already-stored",
               jsonl({"item": "a", "rater": "ann", "choice": 1}),
               "line 1: rater 'ann' already has a judgment on item 'a' in the project "
               "(judgment 1); a rater judges an item once", command="import-judgments")
importing_case("submission-id-reused-in-file",
               jsonl({"item": "b", "rater": "bob", "choice": 0, "submission_id": "s1"},
                     {"item": "c", "rater": "bob", "choice": 0, "submission_id": "s1"}),
               "line 2: \"submission_id\" 's1' of rater 'bob' is already used on line 1",
               command="import-judgments")
importing_case("submission-id-already-stored",
               jsonl({"item": "b", "rater": "ann", "choice": 0, "submission_id": "web-1"}),
               "line 1: \"submission_id\" 'web-1' of rater 'ann' is already stored for a "
               "different judgment (judgment 1 on item 'a'); give a new submission_id",
               command="import-judgments")

# --------------------------------------------------------------------------
# Options


def option_case(name: str, argv: list[str], message: str) -> None:
    CASES[name] = lambda env: Case([*argv, "--db", str(env.db)], message)


for command_ in ("agreement", "route", "evaluate-routing"):
    extra = ["--judge", "gpt"] if command_ == "evaluate-routing" else []
    for value in ("-1", "4294967296"):
        option_case(f"{command_}-seed-{value}", [command_, "--project", "p", *extra, "--seed",
                                                  value],
                    f"error: argument --seed: must be an integer seed from 0 to 4294967295, "
                    f"got {value} (see prefstore {command_} --help)")
option_case("agreement-seed-text", ["agreement", "--project", "p", "--seed", "x"],
            "error: argument --seed: must be an integer seed from 0 to 4294967295, got 'x' "
            "(see prefstore agreement --help)")
option_case("budgets-nan", ["evaluate-routing", "--project", "p", "--judge", "gpt",
                            "--budgets", "nan"],
            "error: argument --budgets: each budget must be a fraction in [0, 1] or a whole "
            "count of items, got nan (see prefstore evaluate-routing --help)")
option_case("budgets-empty-entry", ["evaluate-routing", "--project", "p", "--judge", "gpt",
                                    "--budgets", "0.1,,0.5"],
            "error: argument --budgets: must be comma-separated numbers, got '' in '0.1,,0.5' "
            "(see prefstore evaluate-routing --help)")
option_case("budgets-fractional-count", ["evaluate-routing", "--project", "p", "--judge",
                                         "gpt", "--budgets", "1.5"],
            "error: argument --budgets: each budget must be a fraction in [0, 1] or a whole "
            "count of items, got 1.5 (see prefstore evaluate-routing --help)")
for value in ("0", "1", "-1"):
    option_case(f"folds-{value}", ["evaluate-routing", "--project", "p", "--judge", "gpt",
                                   "--folds", value],
                f"error: argument --folds: must be an integer from 2 to 100, got {value} "
                "(see prefstore evaluate-routing --help)")
for option, value in (("--lease", "nan"), ("--lease", "0"), ("--lease", "-1"),
                      ("--poll", "nan"), ("--poll", "inf"), ("--lease", "1e300")):
    option_case(f"worker{option}-{value}", ["worker", "--once", option, value],
                f"error: argument {option}: must be a number of seconds above 0 to 604800, got "
                f"{value} (see prefstore worker --help)")
option_case("n-boot-0", ["agreement", "--project", "p", "--n-boot", "0"],
            "error: argument --n-boot: must be an integer from 1 to 1000000, got 0 "
            "(see prefstore agreement --help)")
option_case("fit-alpha-nan", ["fit", "--project", "p", "--alpha", "nan"],
            "error: argument --alpha: must be a number from 0 to 1e+06, got nan "
            "(see prefstore fit --help)")
option_case("fit-k-0", ["fit", "--project", "p", "--model", "mixture", "--k", "0"],
            "error: argument --k: must be an integer from 1 to 50, got 0 (see prefstore fit "
            "--help)")
option_case("fit-model-unknown", ["fit", "--project", "p", "--model", "elo"],
            "error: argument --model: invalid choice: 'elo' (choose from 'bt', 'davidson', "
            "'pl', 'mixture') (see prefstore fit --help)")
option_case("export-min-agreement-nan",
            ["export", "-", "--project", "p", "--format", "pairs", "--aggregate", "majority",
             "--min-agreement", "nan"],
            "error: argument --min-agreement: must be a number from 0 to 1, got nan "
            "(see prefstore export --help)")
option_case("project-undecodable", ["stats", "--project", "p\udcff"],
            "error: argument --project: must be valid UTF-8 text, got 'p\\udcff' "
            "(see prefstore stats --help)")
option_case("add-rater-undecodable", ["add-rater", "bob\udcff"],
            "error: argument name: must be valid UTF-8 text, got 'bob\\udcff' "
            "(see prefstore add-rater --help)")
option_case("add-rater-blank", ["add-rater", "  "],
            "error: argument name: must not be empty (see prefstore add-rater --help)")
option_case("settings-out-of-range", ["settings", "--project", "p", "--set",
                                      "raters_per_item=0"],
            "error: settings: 'raters_per_item' must be an integer from 1 to 1000, got 0")
option_case("settings-unknown-key", ["settings", "--project", "p", "--set", "colour=red"],
            "error: settings: unknown key(s) colour; valid keys are "
            + ", ".join(sorted(ProjectSettings.keys())))
option_case("settings-nan", ["settings", "--project", "p", "--set", "gold_rate=NaN"],
            "error: settings: 'gold_rate' must be a number in [0, 1], got 'NaN'")
option_case("settings-no-equals", ["settings", "--project", "p", "--set", "gold_rate"],
            "error: argument --set: must look like key=value, got 'gold_rate' "
            "(see prefstore settings --help)")
option_case("unknown-project", ["stats", "--project", "nope"],
            "error: project 'nope' does not exist")
CASES["no-command"] = lambda env: Case([], "error: the following arguments are required: "
                                           "COMMAND (see prefstore --help)")


@case("add-rater-undecodable-argv-bytes")
def _(env):
    # The real thing: bytes that are not UTF-8 on the command line of a real process.
    return Case(["add-rater", b"bob\xff", "--db", str(env.db)],
                "error: argument name: must be valid UTF-8 text, got 'bob\\udcff' "
                "(see prefstore add-rater --help)", prefix=[])


@case("db-path-undecodable")
def _(env):
    return Case(["stats", "--project", "p", "--db", str(env.tmp / "x\udcff.db")],
                f"error: argument --db: must be valid UTF-8 text, got "
                f"'{env.tmp}/x\\udcff.db' (see prefstore stats --help)")


# --------------------------------------------------------------------------
# Outputs


def export_argv(env, out) -> list[str]:
    return ["export", str(out), "--project", "p", "--format", "pairs", "--db", str(env.db)]


@case("export-into-a-directory")
def _(env):
    return Case(export_argv(env, env.tmp), f"error: output '{env.tmp}' is a directory; give a "
                f"file name, such as '{env.tmp}/export.jsonl'")


@case("export-into-a-missing-directory")
def _(env):
    out = env.tmp / "nope" / "x.jsonl"
    return Case(export_argv(env, out), f"error: output '{out}': directory '{out.parent}' does "
                "not exist")


@case("export-into-an-unwritable-directory")
def _(env):
    out_dir = env.tmp / "out"
    out_dir.mkdir()
    env.immutable(out_dir)
    return Case(export_argv(env, out_dir / "x.jsonl"),
                f"error: output '{out_dir}/x.jsonl': directory '{out_dir}' is not writable")


@case("export-over-a-read-only-file")
def _(env):
    out = Path(env.file("old.jsonl", b"{}\n"))
    env.immutable(out)
    return Case(export_argv(env, out), f"error: output '{out}' is read-only")


@case("export-over-the-database")
def _(env):
    return Case(export_argv(env, env.db), f"error: output {env.db} is the database itself; "
                "give another file name")


@case("export-parquet-to-stdout")
def _(env):
    return Case([*export_argv(env, "-"), "--output-format", "parquet"],
                "error: parquet output needs a file: give a path ending in .parquet, not -")


@case("export-to-a-full-disk")
def _(env):
    small = env.tmpfs("small", "64k")
    return Case([*export_argv(env, small / "big.jsonl")[:-2], "--db", str(env.big_db())],
                f"error: {small}/big.jsonl: No space left on device; nothing was written")


@case("backup-into-an-unwritable-directory")
def _(env):
    out_dir = env.tmp / "out"
    out_dir.mkdir()
    env.immutable(out_dir)
    return Case(["backup", str(out_dir / "b.db"), "--db", str(env.db)],
                f"error: backup target {out_dir}/b.db: directory is not writable")


@case("backup-over-an-existing-file")
def _(env):
    out = env.file("b.db", b"keep me")
    return Case(["backup", out, "--db", str(env.db)],
                f"error: backup target {out} already exists; choose a new path")


@case("backup-to-a-full-disk")
def _(env):
    small = env.tmpfs("small", "64k")
    return Case(["backup", str(small / "b.db"), "--db", str(env.big_db())],
                f"error: backup {small}/b.db: the disk is full; nothing was written. Free some "
                "space and try again")


# --------------------------------------------------------------------------
# The database file


def stats(db) -> list[str]:
    return ["stats", "--project", "p", "--db", str(db)]


@case("db-is-a-directory")
def _(env):
    return Case(stats(env.tmp), f"error: database {env.tmp} is a directory; give the path of a "
                "database file")


@case("db-is-a-text-file")
def _(env):
    path = env.file("notes.txt", "hello\n")
    return Case(stats(path), f"error: database {path} is not a SQLite database; give a "
                "prefstore database, or a new file name to create one", db=Path(path))


@case("db-truncated-to-half")
def _(env):
    path = env.tmp / "half.db"
    data = env.big_db().read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return Case(stats(path), f"error: database {path} is damaged (database disk image is "
                "malformed); restore it from a backup, and see `prefstore check`", db=path)


@case("db-truncated-inside-the-header")
def _(env):
    path = env.tmp / "stub.db"
    path.write_bytes(env.db.read_bytes()[:50])
    return Case(stats(path), f"error: database {path} is damaged (database disk image is "
                "malformed); restore it from a backup, and see `prefstore check`", db=path)


@case("db-foreign-sqlite")
def _(env):
    path = env.tmp / "other.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE customers (id INTEGER); CREATE TABLE orders (id INTEGER);")
    conn.close()
    return Case(stats(path), f"error: database {path} is not a prefstore database (it has "
                "tables customers, orders); give another --db", db=path)


@case("db-newer-schema")
def _(env):
    conn = sqlite3.connect(env.db)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('prefstore', 'm999_future', '2099-01-01')")
    conn.commit()
    conn.close()
    return Case(stats(env.db), f"error: database {env.db} was written by a newer prefstore "
                "(schema m999_future); upgrade prefstore to open it")


@case("db-read-only-file")
def _(env):
    env.immutable(env.db)
    return Case(stats(env.db), f"error: database {env.db} is read-only; make it writable, or "
                "copy it somewhere writable (prefstore needs to write its journal)")


@case("db-read-only-mount")
def _(env):
    path = env.read_only_mount()
    return Case(stats(path), f"error: database {path} is read-only; make it writable, or copy "
                "it somewhere writable (prefstore needs to write its journal)", db=path)


@case("db-in-an-unwritable-directory")
def _(env):
    env.immutable(env.db.parent)
    return Case(stats(env.db), f"error: database {env.db}: directory {env.db.parent} is not "
                "writable; prefstore keeps its write-ahead log beside the database")


@case("db-new-in-an-unwritable-directory")
def _(env):
    env.immutable(env.db.parent)
    new = env.db.parent / "new.db"
    return Case(["init", "--db", str(new)], f"error: database {new}: directory {env.db.parent} "
                "is not writable; prefstore keeps its write-ahead log beside the database")


@case("db-directory-missing")
def _(env):
    path = env.tmp / "nope" / "x.db"
    return Case(stats(path), f"error: --db {path}: directory {path.parent} does not exist")


@case("db-unreadable")
def _(env):
    prefix = drop_dac()
    env.db.chmod(0)
    return Case(stats(env.db), f"error: database {env.db} cannot be read (permission denied); "
                "check its permissions", prefix=prefix)


@case("db-on-a-full-disk")
def _(env):
    small = env.tmpfs("small", "512k")
    path = small / "x.db"
    shutil.copy(env.db, path)
    rows = [item(id=f"n{i}", prompt="p" * 2000, responses=["r" * 3000, "s" * 3000])
            for i in range(100)]
    return Case(["import", env.file("big.jsonl", jsonl(*rows)), "--project", "p", "--db",
                 str(path)], f"error: database {path}: the disk is full; nothing was written. "
                "Free some space and try again", db=path)


for command_ in (["stats", "--project", "p"], ["export", "-", "--project", "p", "--format",
                                                "judgments"],
                 ["export", "-", "--project", "p", "--format", "pairs"],
                 ["agreement", "--project", "p", "--n-boot", "5"], ["projects"],
                 ["raters", "--project", "p"]):
    def damaged(env, command_=command_):
        path = env.damaged_db()
        return Case([*command_, "--db", str(path)], f"error: database {path} is damaged "
                    "(database disk image is malformed); restore it from a backup, and see "
                    "`prefstore check`", db=path)

    CASES[f"db-random-bytes-{command_[0]}-{command_[-1]}"] = damaged


# Damage in data pages only: the database opens and `stats` works, but what reads the
# damaged rows must fail with the same one line, and `check` must find it.
for command_ in (["export", "-", "--project", "p", "--format", "judgments"],
                 ["export", "-", "--project", "p", "--format", "pairs"],
                 ["agreement", "--project", "p", "--n-boot", "5"]):
    def data_damaged(env, command_=command_):
        path = env.damaged_db(data_pages_only=True)
        return Case([*command_, "--db", str(path)], f"error: database {path} is damaged (database "
                    "disk image is malformed); restore it from a backup, and see "
                    "`prefstore check`", db=path)

    CASES[f"db-data-pages-damaged-{command_[0]}-{command_[-1]}"] = data_damaged


@case("check-on-a-damaged-database")
def _(env):
    path = env.damaged_db()
    return Case(["check", "--db", str(path)], f"error: database {path} is damaged: database "
                "disk image is malformed; restore it from a backup", db=path)


@case("check-finds-damaged-data-pages")
def _(env):
    path = env.damaged_db(data_pages_only=True)
    return Case(["check", "--db", str(path)], f"error: database {path} is damaged: database "
                "disk image is malformed; restore it from a backup", db=path)


@case("check-newer-schema")
def _(env):
    conn = sqlite3.connect(env.db)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('prefstore', 'm999_future', '2099-01-01')")
    conn.commit()
    conn.close()
    return Case(["check", "--db", str(env.db)], f"error: database {env.db} was written by a "
                "newer prefstore (schema m999_future); upgrade prefstore to open it")


@case("check-missing-database")
def _(env):
    path = env.tmp / "none.db"
    return Case(["check", "--db", str(path)], f"error: database {path} does not exist")


# --------------------------------------------------------------------------
# Other files


@case("input-missing")
def _(env):
    path = env.tmp / "nope.jsonl"
    return Case(["import", str(path), "--project", "p", "--db", str(env.db)],
                f"error: {path}: no such file")


@case("input-is-a-directory")
def _(env):
    return Case(["import", str(env.tmp), "--project", "p", "--db", str(env.db)],
                f"error: {env.tmp} is a directory; give the path of a file")


@case("input-unreadable")
def _(env):
    prefix = drop_dac()
    path = Path(env.file("secret.jsonl", jsonl(item())))
    path.chmod(0)
    return Case(["import-judgments", str(path), "--project", "p", "--db", str(env.db)],
                f"error: {path} cannot be read: permission denied", prefix=prefix)


# --------------------------------------------------------------------------
# Running the table


def state(path: Path) -> tuple:
    """What must not change: the file's bytes, and its dump when SQLite can read it."""
    if not path.exists() or path.is_dir():
        return ("absent",)
    try:
        data = hashlib.sha256(path.read_bytes()).hexdigest()
    except PermissionError:  # unreadable on purpose
        return ("unreadable", path.stat().st_mtime_ns, path.stat().st_size)
    dump = None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
        finally:
            conn.close()
    except sqlite3.Error:
        pass
    # A WAL database's committed changes may sit in the -wal file: the dump sees them.
    return (data if dump is None else None, dump)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small database: pairwise project "p" with items a, b, c; ann judged a, gpt all three."""
    path = tmp_path_factory.mktemp("template") / "seed.db"
    db = store.connect(path)
    rows = [{"id": x, "prompt": f"q {x}", "responses": ["one", "two"]} for x in "abc"]
    rows[0]["judgments"] = [{"rater": "ann", "choice": 0, "submission_id": "web-1"}]
    importing.import_items(db, jsonl(*rows), "p")
    importing.import_judgments(db, jsonl(*({"item": x, "rater": "gpt", "kind": "llm",
                                            "choice": 1} for x in "abc")), "p")
    db.close()
    big = path.parent / "big.db"
    db = store.connect(big)
    rows = [{"id": f"i{i}", "prompt": f"question {i} " + "q" * 300,
             "responses": ["a" * 400, "b" * 400],
             "judgments": [{"rater": f"r{k}", "choice": (i + k) % 2} for k in range(3)]}
            for i in range(300)]
    importing.import_items(db, jsonl(*rows), "p")
    db.close()
    return path, big


@pytest.fixture
def env(tmp_path, template):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(template[0], data / "x.db")
    environment = Env(tmp_path, data / "x.db")

    def big_db() -> Path:
        path = tmp_path / "big.db"
        if not path.exists():
            shutil.copy(template[1], path)
        return path

    def damaged_db(data_pages_only: bool = False) -> Path:
        # Random bytes over 5 whole pages (not page 1, the header): what a failing
        # disk or a stray write leaves behind. Over the judgments' leaf pages they
        # hit rows only, and the database still opens.
        path = tmp_path / "damaged.db"
        shutil.copy(template[1], path)
        rng = random.Random(2 if data_pages_only else 5)
        n = path.stat().st_size // 4096
        if data_pages_only:
            # Leaf pages of the judgments table: rows only, wherever the schema's
            # growth put them, and every command below reads them.
            with sqlite3.connect(path) as conn:
                leaves = [page - 1 for (page,) in conn.execute(
                    "SELECT pageno FROM dbstat WHERE name = 'judgments' AND pagetype = 'leaf'")]
            conn.close()
            pages = rng.sample(leaves, min(5, len(leaves)))
        else:
            pages = rng.sample(range(1, n), 5)
            # And the root pages of the tables every command reads, so the damage is
            # met wherever the schema's growth moved the other pages.
            with sqlite3.connect(path) as conn:
                pages += [root - 1 for (root,) in conn.execute(
                    "SELECT rootpage FROM sqlite_master WHERE name IN "
                    "('projects', 'items', 'raters', 'judgments')")]
            conn.close()
        with open(path, "r+b") as f:
            for page in pages:
                f.seek(page * 4096)
                f.write(rng.randbytes(4096))
        return path

    environment.big_db = big_db
    environment.damaged_db = damaged_db
    yield environment
    for undo in reversed(environment.undo):
        undo()
    for path in tmp_path.rglob("*"):  # chmod 0 files, so pytest can clean up
        if not path.is_symlink():
            path.chmod(0o700)


def run_cli(argv: list, prefix: list[str]) -> tuple[int, str, str]:
    done = subprocess.run([*prefix, sys.executable, "-m", "prefstore.cli", *argv],
                          capture_output=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return (done.returncode, done.stdout.decode(errors="backslashreplace"),
            done.stderr.decode(errors="backslashreplace"))


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name, env, capsys):
    made = CASES[name](env)
    watched = made.db or env.db
    before = state(watched), state(env.db)
    if made.prefix is not None:
        code, out, err = run_cli(made.argv, made.prefix)
    else:
        try:
            code = main(made.argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
    assert "Traceback" not in err
    expected = made.message if made.message.startswith("error: ") else f"error: {made.message}"
    assert (code, err) == (2, expected + "\n")
    assert len(err.splitlines()) == 1
    assert (state(watched), state(env.db)) == before


# --------------------------------------------------------------------------
# The Admin page's upload check shows the same messages, and never raises


@pytest.mark.parametrize(("content", "file", "message"), [f[1:] for f in ITEM_FILES],
                         ids=[f[0] for f in ITEM_FILES])
def test_admin_upload_lists_the_same_errors(content, file, message, template, tmp_path):
    shutil.copy(template[0], tmp_path / "x.db")
    db = store.connect(tmp_path / "x.db")
    before = state(tmp_path / "x.db")
    check = admin.check_upload(db, store.get_project(db, "p"), content, file)
    assert (check.ok, check.errors, check.total_errors) == (False, [message], 1)
    assert state(tmp_path / "x.db") == before


def test_admin_upload_never_raises_on_garbage(template, tmp_path):
    shutil.copy(template[0], tmp_path / "x.db")
    db = store.connect(tmp_path / "x.db")
    project = store.get_project(db, "p")
    rng = random.Random(11)
    pieces = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"\n", b"\\", b"\\u0000", b"\\ud800",
              b"\xff", b'"prompt"', b'"responses"', b'"id"', b"1e999", b"NaN", b"-Infinity",
              b"9" * 30, b'"judgments"', b'"display_order"', b'"time_ms"', b"true", b" ",
              b'"metadata"', b"[" * 200]
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        for name in ("f.jsonl", "f.json", "f.csv"):
            check = admin.check_upload(db, project, data, name)
            assert check.ok or check.errors


def test_damaged_data_pages_are_named_as_damage(env, capsys):
    """The case that once slipped through (stats passed, export and agreement crashed):
    reading the damaged rows now ends in one line that says what happened."""
    path = env.damaged_db(data_pages_only=True)
    assert main(["stats", "--project", "p", "--db", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: database {path} is damaged (database disk image is malformed); restore it "
        "from a backup, and see `prefstore check`\n")
