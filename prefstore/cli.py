"""The ``prefstore`` command line: parse, call the library, translate errors.

Exit codes: 0 on success; 2 with a one-line message (``error: ...``) on bad
input, any other PrefstoreError, a database that cannot be used, or a file
that cannot be read or written; 130 on Ctrl-C. An import that finds several
bad lines lists them, one line each (up to 20). A closed pipe on stdout
(``prefstore export - ... | head``) ends quietly with 0, as Unix tools do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefstore import store
from prefstore.errors import InvalidInput, PrefstoreError
from prefstore.importing import ImportFailed, check_record, loads_strict, text_problem

EXIT_BAD_INPUT = 2
#: The one word text output uses for a missing value.
MISSING = "n/a"
SEED_MAX = 2**32 - 1
MAX_N_BOOT = 1_000_000
#: Worker times in seconds: above a week a lease is a mistake (and overflows dates).
MAX_SECONDS = 7 * 24 * 3600
MODEL_NAMES = ("bt", "davidson", "pl", "mixture")
EXPORT_FORMATS = ("pairs", "edits", "slates", "judgments", "kto")
OUTPUT_FORMATS = ("jsonl", "parquet", "csv")

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------
# Output helpers


def _finite(value: Any) -> Any:
    """Return ``value`` with NaN and infinities as None, so JSON output stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _print_json(value: object) -> None:
    print(json.dumps(_finite(value), indent=2, ensure_ascii=False, allow_nan=False, default=str))


def num(value: Any, *, sign: bool = False) -> str:
    """Format a number for text output: 4 significant digits, integers exact, "n/a" if missing."""
    if value is None or isinstance(value, bool):
        return MISSING if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:+,}" if sign else f"{value:,}"
    value = float(value)
    if not math.isfinite(value):
        return MISSING
    rounded = float(f"{value:.4g}")
    if abs(rounded) >= 10_000:  # 123456.7 -> 123,500, not 1.235e+05
        return f"{rounded:+,.0f}" if sign else f"{rounded:,.0f}"
    return f"{value:+.4g}" if sign else f"{value:.4g}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 item``, ``2 items``, ``1,998 responses``."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _lines(wheres: list[str]) -> str:
    """``lines 3, 9, 12`` for places that are all lines, else the places as given."""
    if wheres and all(w.startswith("line ") for w in wheres):
        shown = ", ".join(w[5:] for w in wheres[:20])
        return ("line " if len(wheres) == 1 else "lines ") + shown + (
            f", … and {len(wheres) - 20} more" if len(wheres) > 20 else "")
    return ", ".join(wheres[:20]) + (f", … and {len(wheres) - 20} more"
                                     if len(wheres) > 20 else "")


def _note(message: str) -> None:
    print(message, file=sys.stderr)


# --------------------------------------------------------------------------
# Argument types: refuse bad values while parsing, with one clear line


def _type(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a checker raising ValueError into an argparse type with its message."""
    def check(value: str) -> Any:
        try:
            return fn(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = fn.__name__
    return check


def _argv_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        # Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
        raise ValueError(f"must be valid UTF-8 text, got {value!r}")
    return value


@_type
def text(value: str) -> str:
    """Any text argument: valid UTF-8 (names, values)."""
    return _argv_text(value)


@_type
def name(value: str) -> str:
    """A project, rater or judge name: valid UTF-8, not blank."""
    _argv_text(value)
    if not value.strip():
        raise ValueError("must not be empty")
    return value


@_type
def path(value: str) -> str:
    """A database or backup path: SQLite takes file names as UTF-8 text."""
    _argv_text(value)
    if not value:
        raise ValueError("must not be empty")
    return value


def int_in(lo: int, hi: int, what: str = "an integer") -> Callable[[str], int]:
    @_type
    def integer(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"must be {what} from {lo} to {hi}, got {value!r}") from None
        if not lo <= number <= hi:
            raise ValueError(f"must be {what} from {lo} to {hi}, got {value}")
        return number

    return integer


def float_in(lo: float, hi: float, *, open_low: bool = False, what: str = "a number"
             ) -> Callable[[str], float]:
    low = f"above {lo:g}" if open_low else f"from {lo:g}"

    @_type
    def number(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"must be {what} {low} to {hi:g}, got {value!r}") from None
        if not math.isfinite(x) or x < lo or (open_low and x == lo) or x > hi:
            raise ValueError(f"must be {what} {low} to {hi:g}, got {value}")
        return x

    return number


seed = int_in(0, SEED_MAX, "an integer seed")
positive_seconds = float_in(0, MAX_SECONDS, open_low=True, what="a number of seconds")


@_type
def budgets(value: str) -> tuple[float | int, ...]:
    """``0.1,0.25,50``: fractions of the items in [0, 1], or whole counts of items."""
    out: list[float | int] = []
    for part in value.split(","):
        try:
            x = float(part)
        except ValueError:
            raise ValueError(f"must be comma-separated numbers, got {part.strip()!r} in "
                             f"{value!r}") from None
        if not math.isfinite(x) or x < 0 or (x > 1 and not x.is_integer()):
            raise ValueError(f"each budget must be a fraction in [0, 1] or a whole count of "
                             f"items, got {part.strip()}")
        out.append(x if x <= 1 else int(x))
    return tuple(out)


@_type
def key_value(value: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses, else as a string."""
    _argv_text(value)
    key, sep, raw = value.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"must look like key=value, got {value!r}")
    try:
        parsed = loads_strict(raw)
        check_record(parsed, key)  # NaN stays the text "NaN", which validation then names
    except (ValueError, RecursionError, InvalidInput):
        parsed = raw
    return key.strip(), parsed


# --------------------------------------------------------------------------
# Commands


def _target(args: argparse.Namespace) -> str:
    return str(getattr(args, "db", None) or store.default_db())


def _open(args: argparse.Namespace):
    return store.connect(args.db)


@command("init")
def cmd_init(args: argparse.Namespace) -> int:
    db = _open(args)
    if args.demo:
        from prefstore import demo

        demo.ensure_demo(db)
    print(f"initialized {args.db or store.default_db()}")
    return 0


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    from prefstore import importing

    data, file_name = importing.read_source(args.file)  # an unreadable file creates no database
    db = _open(args)
    report = importing.import_items(
        db, data, args.project, kind=args.kind, fmt=args.format, name=file_name,
        skip_invalid_judgments=args.skip_invalid_judgments, skip_existing=args.skip_existing,
        coerce_text=args.coerce_text)
    _report_skipped(report["skipped"])
    if report["coerced"]:
        _note(f"coerced {plural(len(report['coerced']), 'non-text response')} to text: "
              f"{_lines(report['coerced'])}")
    extra = []
    if report["existing"]:
        extra.append(f"skipped {plural(report['existing'], 'item')} already in the project")
    if report["duplicates"]:
        extra.append(f"{plural(report['duplicates'], 'judgment')} already present")
    print(f"imported {plural(report['items'], 'item')} "
          f"({plural(report['responses'], 'response')}) and "
          f"{plural(report['judgments'], 'judgment')} into {report['kind']} project "
          f"{args.project!r}" + (" (new)" if report["created_project"] else "")
          + "".join(f"; {e}" for e in extra))
    return 0


@command("import-judgments")
def cmd_import_judgments(args: argparse.Namespace) -> int:
    from prefstore import importing

    data, file_name = importing.read_source(args.file)
    db = _open(args)
    report = importing.import_judgments(
        db, data, args.project, fmt=args.format, name=file_name,
        skip_invalid_judgments=args.skip_invalid_judgments)
    _report_skipped(report["skipped"])
    print(f"imported {plural(report['judgments'], 'judgment')} into {args.project!r}; "
          f"{report['duplicates']:,} already present, {len(report['skipped']):,} skipped")
    return 0


def _report_skipped(skipped: list[dict]) -> None:
    if not skipped:
        return
    _note(f"skipped {plural(len(skipped), 'invalid judgment')}:")
    for entry in skipped[:20]:
        _note(f"  {entry['reason']}")
    if len(skipped) > 20:
        _note(f"  … and {len(skipped) - 20:,} more")


@command("stats")
def cmd_stats(args: argparse.Namespace) -> int:
    db = _open(args)
    project = store.get_project(db, args.project)
    stats = store.project_stats(db, project["id"])
    stats = {"project": project["name"], "kind": project["kind"], **stats}
    if args.json:
        stats["judge"] = store.judge_usage(db, project["id"], _configured_judge(project))
        _print_json(stats)
    else:
        j, r = stats["judgments"], stats["raters"]
        # Judgments are effective ones; rows a change replaced are counted apart.
        replaced = (f"; {plural(stats['superseded'], 'superseded row')} kept for the audit"
                    if stats["superseded"] else "")
        print(f"{project['name']} ({project['kind']}): {plural(stats['items'], 'item')}, "
              f"{plural(stats['responses'], 'response')}; judgments: {j['human']:,} human, "
              f"{j['llm']:,} llm{replaced}; raters: {r['human']:,} human, {r['llm']:,} llm")
    return 0


@command("projects")
def cmd_projects(args: argparse.Namespace) -> int:
    db = _open(args)
    rows = []
    for project in store.list_projects(db):
        stats = store.project_stats(db, project["id"])
        rows.append({"name": project["name"], "kind": project["kind"],
                     "created_at": project["created_at"], "archived_at": project["archived_at"],
                     "items": stats["items"], "judgments": stats["judgments"]})
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no projects yet; create one with `prefstore import FILE --project NAME`")
    else:
        names = [r["name"] + (" (archived)" if r["archived_at"] else "") for r in rows]
        width = max(map(len, names))
        for shown, r in zip(names, rows):
            j = r["judgments"]
            print(f"{shown:{width}}  {r['kind']:8}  {plural(r['items'], 'item')}, "
                  f"{plural(j['human'] + j['llm'], 'judgment')} ({j['human']:,} human, "
                  f"{j['llm']:,} llm)")
    return 0


@command("raters")
def cmd_raters(args: argparse.Namespace) -> int:
    db = _open(args)
    counts = None
    if args.project:
        project = store.get_project(db, args.project)
        counts = {r["id"]: r["judgments"] for r in store.project_rater_summary(db, project["id"])}
    rows = []
    for r in store.list_raters(db):
        row = {"name": r["name"], "kind": r["kind"], "role": r["role"],
               "active": bool(r["active"]), "created_at": r["created_at"]}
        if counts is not None:
            row["judgments"] = counts.get(r["id"], 0)
        rows.append(row)
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no raters yet; add one with `prefstore add-rater NAME`")
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            line = (f"{r['name']:{width}}  {r['kind']:5}  {r['role']:6}  "
                    f"{'active' if r['active'] else 'inactive':8}")
            if counts is not None:
                line += f"  {plural(r['judgments'], 'judgment')} in {args.project!r}"
            print(line.rstrip())
    return 0


@command("settings")
def cmd_settings(args: argparse.Namespace) -> int:
    db = _open(args)
    project = store.get_project(db, args.project)
    changes = dict(args.set or [])
    if changes:
        before = project["settings"]
        project = store.update_project_settings(db, project["id"], changes, actor="cli")
        diff = before.changes(project["settings"])
        if not args.json:
            for key, change in diff.items():
                print(f"changed {key}: {json.dumps(change['old'], ensure_ascii=False)} → "
                      f"{json.dumps(change['new'], ensure_ascii=False)}")
            if not diff:
                print("no change: the settings already had these values")
            return 0
    values = project["settings"].to_dict()
    if args.json:
        _print_json(values)
    else:
        width = max(map(len, values))
        for key, value in values.items():
            print(f"{key:{width}}  {json.dumps(value, ensure_ascii=False)}")
    return 0


def _configured_judge(project: dict) -> list[str]:
    """Return the rater name of the project's judge setting (none when it has none)."""
    from prefstore.judges.base import config_rater_name

    judge = project["settings"].judge
    return [config_rater_name(judge)] if judge else []


def _read_judge_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise InvalidInput(f"--judge-config {path}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--judge-config {path}: line {exc.lineno}: not valid JSON "
                           f"({exc.msg})") from exc
    if not isinstance(config, dict):
        raise InvalidInput(f"--judge-config {path}: must hold a JSON object (the judge "
                           f"settings), got {type(config).__name__}")
    return config


@command("annotate")
def cmd_annotate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from prefstore import judges
    from prefstore.worker import annotate_project

    if args.save and not args.judge_config:
        raise InvalidInput("--save stores the judge of --judge-config FILE.json; give both")
    if args.limit is not None and args.limit < 1:
        raise InvalidInput(f"--limit must be at least 1, got {args.limit}")
    db = _open(args)
    project = store.get_project(db, args.project)
    config = _read_judge_config(args.judge_config) if args.judge_config else None
    if config is not None:
        project["settings"].replace(judge=config)  # every check of a stored judge setting
    config = config or project["settings"].judge
    if config and config.get("backend") == "openai":
        # Before any work: names the setting to fix (base_url, model or api_key_env).
        judges.check_connection(config)
    if args.save:
        project = store.update_project_settings(db, project["id"], {"judge": config},
                                                 actor="cli")
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"annotate {project['name']}", unit="item",
                       file=sys.stderr, disable=None)
        bar.total = max(bar.total, done)
        bar.update(done - bar.n)

    try:
        result = annotate_project(db, project, config, limit=args.limit,
                                  retry_failed=args.retry_failed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    summary = {key: result[key] for key in ("labelled", "failed", "cached", "seconds", "tokens")}
    if args.json:
        _print_json(summary)
    else:
        print(f"judge {result['judge']}: labelled {summary['labelled']}, failed "
              f"{summary['failed']} ({summary['cached']} from the cache) in "
              f"{summary['seconds']:.1f} s; tokens {summary['tokens']['prompt']} prompt, "
              f"{summary['tokens']['completion']} completion")
    return 0


@command("agreement")
def cmd_agreement(args: argparse.Namespace) -> int:
    from prefstore import agreement

    db = _open(args)
    report = agreement.project_agreement(db, args.project, kind=args.kind, seed=args.seed,
                                         n_boot=args.n_boot)
    if args.json:
        _print_json(report)
    else:
        alpha = report["krippendorff_alpha"]["nominal"]
        lo, hi = (report.get("krippendorff_alpha_ci95") or {}).get("nominal") or (None, None)
        interval = "" if lo is None or hi is None else f" [{num(lo)}, {num(hi)}]"
        print(f"{report['project']}: Krippendorff alpha (nominal) {num(alpha)}{interval}, "
              f"percent agreement {num(report['percent_agreement'])}, "
              f"{plural(report.get('n_judgments', 0), 'judgment')} on "
              f"{plural(report.get('n_items', 0), 'item')}")
        for judge in report["judges"]:
            print(f"judge {judge['rater']}: accuracy vs human majority "
                  f"{num(judge['accuracy_vs_human_majority'])}")
    return 0


@command("route")
def cmd_route(args: argparse.Namespace) -> int:
    from prefstore import routing

    db = _open(args)
    summary = routing.refresh_routing(db, args.project, judge=args.judge, active=args.active,
                                      use_embeddings=args.embeddings, seed=args.seed)
    if args.json:
        _print_json(summary)
    else:
        print(f"routed {plural(summary['items'], 'item')}: {summary['human']:,} human, "
              f"{summary['both']:,} both, {summary['llm']:,} llm "
              f"(judge: {summary['judge'] or MISSING})")
    return 0


@command("evaluate-routing")
def cmd_evaluate_routing(args: argparse.Namespace) -> int:
    from prefstore import routing

    db = _open(args)
    result = routing.evaluate_routing(db, args.project, judge=args.judge, budgets=args.budgets,
                                      seed=args.seed, folds=args.folds,
                                      use_embeddings=args.embeddings)
    if args.json:
        _print_json(result)
    else:
        print(f"accuracy of the final labels against the human majority, on "
              f"{plural(result['n_items'], 'item')} ({result['folds']}-fold cross-fitted "
              f"router, seed {result['seed']}):")
        print(f"  llm only: {num(result['llm_only_accuracy'])}")
        for b, r, x in zip(result["budgets"], result["router_accuracy"],
                           result["random_accuracy"]):
            what = f"{b:g} of the items" if isinstance(b, float) else plural(b, "item")
            print(f"  human budget {what}: router {num(r)}, random {num(x)}")
    return 0


@command("fit")
def cmd_fit(args: argparse.Namespace) -> int:
    from prefstore import fitting

    db = _open(args)
    result = fitting.fit_project(db, args.project, model=args.model, level=args.level,
                                 kind=args.kind, k=args.k, alpha=args.alpha, ci=args.ci,
                                 n_boot=args.n_boot, seed=args.seed,
                                 style_control=args.style_control,
                                 style_features=args.style_features,
                                 style_alpha=args.style_alpha, hybrid_judge=args.hybrid_judge,
                                 ppi_lambda=args.ppi_lambda)
    if args.json:
        _print_json(result)
    else:
        ranked = sorted(result["scores"].items(), key=lambda kv: -kv[1])
        print(f"{result['model']} at {result['level']} level: "
              f"{plural(result['n_comparisons'], 'comparison')}, log-likelihood "
              f"{num(result['log_likelihood'])}, {num(result['seconds'])} s")
        if "lambda" in result:
            print(f"  lambda {num(result['lambda'])}: "
                  f"{plural(result['n_human_items'], 'human-labelled item')}, "
                  f"{plural(result['n_llm_items'], 'item')} judged by the LLM")
        width = max([30, *(len(str(n)) for n, _ in ranked)])
        for name_, score in ranked:
            lo, hi = result["ci95"][name_]
            interval = (f"  [{num(lo, sign=True)}, {num(hi, sign=True)}]"
                        if lo is not None else "")
            print(f"  {name_:{width}} {num(score, sign=True)}{interval}")
        for feature, coef in (result.get("style_coefficients") or {}).items():
            lo, hi = result["style_ci95"][feature] or (None, None)
            shown = "left out" if coef is None else num(coef, sign=True)
            interval = (f"  [{num(lo, sign=True)}, {num(hi, sign=True)}]"
                        if lo is not None else "")
            print(f"  style {feature:{width - 6}} {shown}{interval}")
    return 0


@command("evaluate-hybrid")
def cmd_evaluate_hybrid(args: argparse.Namespace) -> int:
    from prefstore import fitting

    db = _open(args)
    result = fitting.evaluate_hybrid_project(db, args.project, judge=args.judge,
                                             fractions=args.fractions, reps=args.reps,
                                             seed=args.seed)
    if args.json:
        _print_json(result)
    else:
        print(f"{result['n_items']} items, {result['n_systems']} systems, judge "
              f"{result['judge']!r}, {result['reps']} draws per fraction")
        for row in result["results"]:
            for fit in ("human_only", "llm_only", "hybrid"):
                r = row[fit]
                print(f"  {row['fraction']:g} {fit:10s} coverage {r['coverage']:.3f}, "
                      f"mean CI width {r['mean_ci_width']:.3f}, Kendall tau "
                      f"{r['kendall_tau']:.3f}")
    return 0


@_type
def _fractions(value: str) -> tuple[float, ...]:
    """``0.1,0.25``: shares of the items labelled by humans, each strictly in (0, 1)."""
    try:
        values = tuple(float(v) for v in value.split(","))
    except ValueError:
        values = ()
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise ValueError(f"must be comma-separated numbers strictly between 0 and 1, "
                         f"got {value!r}")
    return values


_reps = int_in(1, 100_000, "a number of draws")


@command("worker")
def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from prefstore.worker import HEARTBEAT_S, Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # A heartbeat well inside the lease, however short the lease is.
    worker = Worker(args.db, lease_s=args.lease, poll_s=args.poll,
                    heartbeat_s=min(HEARTBEAT_S, args.lease / 3), parent_pid=args.parent_pid)
    worker.install_signal_handlers()
    processed = worker.run(once=args.once)
    print(f"worker {worker.id} stopped after {plural(processed, 'job')}")
    return 0


def _output_format(args: argparse.Namespace) -> str:
    if args.output_format:
        return args.output_format
    suffix = Path(args.out).suffix.lower() if args.out != "-" else ""
    return {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(suffix, "jsonl")


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from prefstore import export

    db = _open(args)
    if args.out != "-" and store.canonical(args.out) == store.canonical(_target(args)):
        raise InvalidInput(f"output {args.out} is the database itself; give another file name")
    summary = export.export(
        db, args.project, args.out, format=args.format, aggregate=args.aggregate,
        kind=args.kind, min_agreement=args.min_agreement, conversational=args.conversational,
        real_rater_names=args.real_rater_names, slate_pairs=args.slate_pairs,
        include_original_pair=args.include_original_pair,
        include_superseded=args.include_superseded, output_format=_output_format(args),
        progress=True)
    sys.stdout.flush()  # a closed pipe shows here, before the summary
    _note(export.format_summary(summary))
    return 0


@command("backup")
def cmd_backup(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        store.backup(db, args.out)
    except store.driver_errors() as exc:
        # The failure is the copy's (a full disk, say): name the backup, not the database.
        raise store.translate_error(exc, f"backup {args.out}") from exc
    print(f"backed up to {args.out}")
    return 0


@command("copy-db")
def cmd_copy_db(args: argparse.Namespace) -> int:
    from prefstore.store.copy import copy_database

    src = store.connect(args.src)
    dst = store.connect(args.dst)
    summary = copy_database(src, dst, progress=lambda table, n: print(
        f"  {table}: {n:,} rows", file=sys.stderr))
    if args.json:
        _print_json(summary)
    else:
        total = sum(summary["tables"].values())
        print(f"copied {total:,} rows from {store.describe(args.src)} to "
              f"{store.describe(args.dst)}: " + ", ".join(
                  f"{t} {n:,}" for t, n in summary["tables"].items() if n)
              + f"; judgments verified (sha256 {summary['judgments_checksum'][:16]}…)")
    return 0


@command("check")
def cmd_check(args: argparse.Namespace) -> int:
    target = _target(args)
    if not store.is_postgres(target) and target != ":memory:" and not Path(target).exists():
        raise InvalidInput(f"database {target} does not exist")
    try:
        db = store.connect(target, migrate=False)
        problems = store.integrity_check(db)
    except store.UnusableDatabase as exc:
        raise store.UnusableDatabase(str(exc).replace(", and see `prefstore check`", "")
                                     ) from exc
    except store.driver_errors() as exc:  # too damaged for the check itself to finish
        problems = str(exc)
    if problems != "ok":
        shown = "; ".join(problems.split("; ")[:5])
        raise store.UnusableDatabase(f"database {store.describe(target)} is damaged: {shown}; "
                                     "restore it from a backup")
    print("ok")
    return 0


@command("add-rater")
def cmd_add_rater(args: argparse.Namespace) -> int:
    from prefstore import admin

    db = _open(args)
    projects = [store.get_project(db, name) for name in args.project or []]
    rater, token = store.create_rater(db, args.name, role=args.role, actor="cli")
    for project in projects:
        store.assign_rater(db, rater["id"], project["id"], actor="cli")
    base = admin.base_url(None, {admin.BASE_URL_ENV: args.base_url or ""} if args.base_url
                          else os.environ)
    print(f"created {rater['role']} {rater['name']!r}; this link is shown once:")
    for project in projects or [None]:
        print(admin.rater_link(base, token, project["name"] if project else None))
    return 0


@command("assign")
def cmd_assign(args: argparse.Namespace) -> int:
    db = _open(args)
    rater = store.get_rater(db, args.name)
    for name in args.project:
        project = store.get_project(db, name)
        if args.remove:
            changed = store.unassign_rater(db, rater["id"], project["id"], actor="cli")
            print(f"{rater['name']!r} " + ("can no longer rate" if changed else
                                           "was not assigned to") + f" {project['name']!r}")
        else:
            changed = store.assign_rater(db, rater["id"], project["id"], actor="cli")
            print(f"{rater['name']!r} " + ("can now rate" if changed else "could already rate")
                  + f" {project['name']!r}")
    return 0


@command("rotate-token")
def cmd_rotate_token(args: argparse.Namespace) -> int:
    from prefstore import admin

    db = _open(args)
    rater = store.get_rater(db, args.name)
    token = store.rotate_token(db, rater["id"], actor="cli")
    base = admin.base_url(None, {admin.BASE_URL_ENV: args.base_url or ""} if args.base_url
                          else os.environ)
    print(f"new link for {rater['name']!r}; the old one no longer works. Shown once:")
    names = [store.get_project(db, pid)["name"] for pid in store.rater_project_ids(db,
                                                                                   rater["id"])]
    for name in names or [None]:
        print(admin.rater_link(base, token, name))
    return 0


@command("set-active")
def cmd_set_active(args: argparse.Namespace) -> int:
    db = _open(args)
    rater = store.get_rater(db, args.name)
    store.set_rater_active(db, rater["id"], args.state == "on", actor="cli")
    print(f"rater {rater['name']!r} is now {'active' if args.state == 'on' else 'deactivated'}")
    return 0


@command("review")
def cmd_review(args: argparse.Namespace) -> int:
    db = _open(args)
    project = store.get_project(db, args.project)
    rows = store.review_queue(db, project["id"])
    if args.json:
        _print_json([{k: v for k, v in r.items() if k != "assignment_id"} for r in rows])
        return 0
    if not rows:
        print(f"nothing to review in {project['name']!r}: no skips or flags")
        return 0
    counts = store.review_counts(db, project["id"])
    print(f"{project['name']!r}: {counts['open']:,} open, {counts['resolved']:,} resolved")
    # repr() for names and reasons: a rater's text must not drive the terminal.
    for r in rows:
        state = ("open" if r["resolution"] is None
                 else f"{r['resolution']} by {r['resolved_by']!r} at {r['resolved_at']}")
        reason = f" reason {r['reason']!r}" if r["reason"] else ""
        print(f"{r['item']!r} {r['status']} by {r['rater']!r} at {r['at']}{reason}: {state}")
    return 0


@command("resolve")
def cmd_resolve(args: argparse.Namespace) -> int:
    db = _open(args)
    project = store.get_project(db, args.project)
    row = store.resolve_review(db, project["id"], args.item, args.rater, args.action,
                               actor="cli")
    print(f"resolved item {row['item']!r} of {row['rater']!r}: {args.action}")
    return 0


@command("project")
def cmd_project(args: argparse.Namespace) -> int:
    db = _open(args)
    project = store.get_project(db, args.project)
    if args.rename is not None:
        renamed = store.rename_project(db, project["id"], args.rename, actor="cli")
        print(f"project {project['name']!r} is now called {renamed['name']!r}")
    else:
        store.set_project_archived(db, project["id"], args.archive, actor="cli")
        print(f"project {project['name']!r} is "
              + ("archived: hidden from raters, its data kept" if args.archive
                 else "no longer archived"))
    return 0


# --------------------------------------------------------------------------
# The parser


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit 2), like the commands' errors."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("prefstore")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="prefstore", description="Collect human preference data on LLM outputs.",
        epilog="Run `prefstore COMMAND --help` for a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"prefstore {_version()}",
                        help="print prefstore's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below")

    def add(name_: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name_, help=help_text, description=help_text[0].upper()
                           + help_text[1:] + ".", epilog="example:\n  " + example,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--db", type=path, default=None,
                       help="database: a SQLite path or a postgresql:// URL (default: "
                            "$PREFSTORE_DB, else prefstore.db)")
        return p

    def project(p: argparse.ArgumentParser, required: bool = True, what: str = "project"
                ) -> None:
        p.add_argument("--project", type=name, required=required, help=f"the {what}'s name")

    def as_json(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true",
                       help="print JSON (full precision, null for missing values)")

    def seed_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seed", type=seed, default=0,
                       help=f"random seed, 0 to {SEED_MAX} (default: 0)")

    kinds = "human, llm or all"

    p = add("init", "create the database (and optionally the demo project)",
            "prefstore init --demo --db prefstore.db")
    p.add_argument("--demo", action="store_true", help="also load the demo project")

    p = add("import", "import items (JSONL, JSON or CSV) into a project",
            "prefstore import items.jsonl --project chat --skip-existing")
    p.add_argument("file", help="the item file: .jsonl, .json or .csv (see the README)")
    project(p, what="project (created when it does not exist)")
    p.add_argument("--kind", choices=store.TASK_KINDS,
                   help="task kind of a new project: pairwise or slate (default: pairwise "
                        "when every item has 2 responses)")
    p.add_argument("--format", choices=("jsonl", "json", "csv"),
                   help="file format: jsonl, json or csv (default: from the file name)")
    p.add_argument("--skip-invalid-judgments", action="store_true",
                   help="leave out judgments whose label is invalid and list them, instead "
                        "of failing")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip items whose id is already in the project, so a grown file can "
                        "be imported again")
    p.add_argument("--coerce-text", action="store_true",
                   help="take responses that are JSON true/false/numbers as their text "
                        "(\"true\") instead of failing")

    p = add("import-judgments", "import judgments for existing items",
            "prefstore import-judgments gpt4-labels.jsonl --project chat")
    p.add_argument("file", help="the judgment file: one {\"item\", \"rater\", \"choice\"} "
                                "per line")
    project(p)
    p.add_argument("--format", choices=("jsonl", "json", "csv"),
                   help="file format: jsonl, json or csv (default: from the file name)")
    p.add_argument("--skip-invalid-judgments", action="store_true",
                   help="leave out judgments whose label is invalid and list them, instead "
                        "of failing")

    p = add("stats", "print a project's counts", "prefstore stats --project chat --json")
    project(p)
    as_json(p)

    p = add("annotate", "run the project's LLM judge now, in the foreground",
            "prefstore annotate --project chat --judge-config judge.json --save --json")
    project(p)
    p.add_argument("--judge-config", type=path, metavar="FILE.json",
                   help="judge settings to run instead of the project's (a JSON object)")
    p.add_argument("--save", action="store_true",
                   help="also store --judge-config as the project's judge setting")
    p.add_argument("--limit", type=int_in(1, 10**9), default=None,
                   help="judge at most this many items")
    p.add_argument("--retry-failed", action="store_true",
                   help="ask again about the items whose answer failed")
    as_json(p)

    p = add("projects", "list the projects with their item and judgment counts",
            "prefstore projects --json")
    as_json(p)

    p = add("raters", "list the raters (never their tokens), with their judgments in a project",
            "prefstore raters --project chat")
    project(p, required=False, what="project whose judgments are counted (optional)")
    as_json(p)

    p = add("settings", "show or change a project's settings",
            "prefstore settings --project chat --set raters_per_item=5 "
            "--set 'reason_tags=[\"wrong\", \"unsafe\"]'")
    project(p)
    p.add_argument("--set", type=key_value, action="append", metavar="KEY=VALUE",
                   help="change a setting; VALUE is read as JSON when it parses (5, true, "
                        "[\"a\"], null), else as text; repeat for several")
    as_json(p)

    p = add("agreement", "rater agreement, bias and judge-vs-human metrics",
            "prefstore agreement --project chat --kind human --n-boot 200")
    project(p)
    p.add_argument("--kind", choices=("human", "llm", "all"), default="human",
                   help=f"whose judgments: {kinds} (default: human)")
    seed_option(p)
    p.add_argument("--n-boot", type=int_in(1, MAX_N_BOOT), default=1000,
                   help="bootstrap replicates for the CIs (default: 1000)")
    as_json(p)

    p = add("route", "refresh the human / llm / both routing decisions of a project",
            "prefstore route --project chat --judge gpt-4 --active")
    project(p)
    p.add_argument("--judge", type=name,
                   help="llm rater whose labels are the judge (default: most active)")
    p.add_argument("--active", action="store_true",
                   help="order human items by expected information for the leaderboard")
    p.add_argument("--embeddings", action="store_true",
                   help="add sentence-embedding similarity (needs the llm extra)")
    seed_option(p)
    as_json(p)

    p = add("evaluate-routing",
            "simulate the router against random routing (accuracy vs the human majority)",
            "prefstore evaluate-routing --project chat --judge gpt-4 --budgets 0.1,0.25,0.5")
    project(p)
    p.add_argument("--judge", type=name, required=True,
                   help="llm rater whose labels are the judge")
    p.add_argument("--budgets", type=budgets, default=(0.1, 0.25, 0.5),
                   help="comma-separated human budgets: fractions of the items in [0, 1] or "
                        "whole counts (default: 0.1,0.25,0.5)")
    seed_option(p)
    p.add_argument("--folds", type=int_in(2, 100), default=5,
                   help="cross-fitting folds, 2 to 100 (default: 5)")
    p.add_argument("--embeddings", action="store_true",
                   help="add sentence-embedding similarity (needs the llm extra)")
    as_json(p)

    p = add("fit", "fit a preference model to a project's judgments",
            "prefstore fit --project chat --model davidson --level system --ci bootstrap")
    project(p)
    p.add_argument("--model", choices=MODEL_NAMES, default="bt",
                   help="bt (Bradley-Terry), davidson (with ties), pl (Plackett-Luce) or "
                        "mixture (rater types) (default: bt)")
    p.add_argument("--level", choices=("system", "response"), default="system",
                   help="score systems or single responses: system or response "
                        "(default: system)")
    p.add_argument("--kind", choices=("human", "llm", "all"), default="all",
                   help=f"whose judgments: {kinds} (default: all)")
    p.add_argument("--k", type=int_in(1, 50), default=None,
                   help="mixture types, 1 to 50 (default: chosen by BIC)")
    p.add_argument("--alpha", type=float_in(0, 1e6), default=None,
                   help="L2 prior strength, 0 or more (default: the model's own)")
    p.add_argument("--ci", choices=("hessian", "bootstrap"), default="hessian",
                   help="95%% intervals: hessian or bootstrap (default: hessian)")
    p.add_argument("--n-boot", type=int_in(1, MAX_N_BOOT), default=200,
                   help="bootstrap replicates with --ci bootstrap (default: 200)")
    seed_option(p)
    p.add_argument("--style-control", action="store_true",
                   help="bt at system level: scores controlled for response style "
                        "(length, markdown), plus the style coefficients")
    p.add_argument("--style-features", default=None,
                   help="comma-separated subset of length,headers,lists,bold (default: all)")
    p.add_argument("--style-alpha", type=float_in(0, 1e6), default=None,
                   help="L2 prior on the style coefficients (default: FastChat's 0.25)")
    p.add_argument("--hybrid-judge", type=name, default=None,
                   help="bt at system level: human scores made more precise by this LLM "
                        "judge (prediction-powered inference, PPI++)")
    p.add_argument("--ppi-lambda", default="auto",
                   help="auto (power-tuned, default) or a number in [0, 1]; 0 is human-only")
    as_json(p)

    p = add("evaluate-hybrid", "simulate human budgets: human-only, LLM-only and hybrid fits",
            "prefstore evaluate-hybrid --project chat --judge gpt-4 --fractions 0.1,0.25 "
            "--reps 200")
    project(p)
    p.add_argument("--judge", type=name, required=True,
                   help="the LLM rater whose labels are the judge")
    p.add_argument("--fractions", type=_fractions, default="0.1,0.25,0.5",
                   help="shares of the items labelled by humans, each in (0, 1) "
                        "(default: 0.1,0.25,0.5)")
    p.add_argument("--reps", type=_reps, default=200, help="draws per fraction, 1 or more "
                                                          "(default: 200)")
    seed_option(p)
    as_json(p)

    p = add("worker", "run the background worker (refits, LLM labels, routing)",
            "prefstore worker --once")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--lease", type=positive_seconds, default=60.0,
                   help=f"job lease in seconds, above 0 up to {MAX_SECONDS} (default: 60)")
    p.add_argument("--poll", type=positive_seconds, default=2.0,
                   help=f"seconds between queue polls, above 0 up to {MAX_SECONDS} "
                        "(default: 2)")
    p.add_argument("--parent-pid", type=int_in(1, 2**31 - 1), default=None,
                   help="exit when the process with this id ends (the app starts its worker so)")

    # No argparse choices for --format etc.: the library's one-line InvalidInput names them.
    p = add("export", "write a project's judgments as training data (JSONL, Parquet or CSV)",
            "prefstore export pairs.jsonl --project chat --format pairs --aggregate majority")
    p.add_argument("out", help="output file (.jsonl, .parquet or .csv), or - for stdout")
    project(p)
    p.add_argument("--format", required=True, metavar="FORMAT",
                   help=f"rows to write: {', '.join(EXPORT_FORMATS)}")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS,
                   help="file format: jsonl, parquet or csv (default: from the file's suffix, "
                        "else jsonl); csv writes nested values as JSON text")
    p.add_argument("--aggregate", default="none",
                   help="none (a row per judgment), majority or model (default: none)")
    p.add_argument("--kind", default="all", help=f"whose judgments: {kinds} (default: all)")
    p.add_argument("--min-agreement", type=float_in(0, 1), default=None,
                   help="drop aggregated rows whose agreement is below this, 0 to 1")
    p.add_argument("--conversational", action="store_true",
                   help="prompts and completions as chat messages")
    p.add_argument("--real-rater-names", action="store_true",
                   help="write rater names instead of per-project pseudonyms")
    p.add_argument("--slate-pairs", default="best",
                   help="best (best over each other, default) or all (every ranked pair)")
    p.add_argument("--include-original-pair", action="store_true",
                   help="edits: also the original chosen response over the others")
    p.add_argument("--include-superseded", action="store_true",
                   help="judgments (audit): also the rows a rater's change replaced, each "
                        "change naming its predecessor in supersedes")

    p = add("backup", "copy the live database (SQLite's online backup API; pg_dump on "
                      "PostgreSQL)", "prefstore backup backups/prefstore-2026-01-31.db")
    p.add_argument("out", type=path, help="the new backup file (must not exist)")

    p = add("copy-db", "copy a whole database between backends (SQLite and PostgreSQL), "
                       "verified by counts and a checksum of the judgments",
            "prefstore copy-db prefstore.db postgresql://user@host:5432/prefstore")
    p.add_argument("src", type=path, help="the database to copy: a SQLite path or a "
                                          "postgresql:// URL")
    p.add_argument("dst", type=path, help="a new or empty database: a SQLite path or a "
                                          "postgresql:// URL")
    as_json(p)

    add("check", "check a database: integrity and schema version; prints ok or what is wrong",
        "prefstore check --db prefstore.db")

    p = add("add-rater", "create a rater (or admin) and print their link once",
            "prefstore add-rater alice --project chat --base-url https://prefs.example.org")
    p.add_argument("name", type=name, help="the rater's name (unique, case-insensitively)")
    p.add_argument("--role", choices=store.ROLES, default="rater",
                   help="rater (the Rate page) or admin (every page) (default: rater)")
    p.add_argument("--project", type=name, action="append", metavar="P",
                   help="a project the rater may rate (repeat for several); the link opens it")
    p.add_argument("--base-url", type=text, default=None,
                   help="the app's address for the link (default: $PREFSTORE_BASE_URL, else "
                        "http://localhost:8501)")

    p = add("assign", "let a rater rate in projects (or, with --remove, no longer)",
            "prefstore assign alice --project chat --project code")
    p.add_argument("name", type=name, help="the rater's name")
    p.add_argument("--project", type=name, action="append", metavar="P", required=True,
                   help="a project (repeat for several)")
    p.add_argument("--remove", action="store_true",
                   help="take the projects away instead (their judgments stay)")

    p = add("rotate-token", "give a rater a new link token; the old one stops working",
            "prefstore rotate-token alice")
    p.add_argument("name", type=name, help="the rater's name")
    p.add_argument("--base-url", type=text, default=None,
                   help="the app's address for the link (default: $PREFSTORE_BASE_URL, else "
                        "http://localhost:8501)")

    p = add("set-active", "deactivate (off) or reactivate (on) a rater",
            "prefstore set-active alice off")
    p.add_argument("name", type=name, help="the rater's name")
    p.add_argument("state", choices=("on", "off"), help="on (active) or off (deactivated)")

    p = add("review", "list a project's skips and flags: the open ones first, then the "
            "resolved", "prefstore review --project chat --json")
    project(p)
    as_json(p)

    p = add("resolve", "resolve a rater's skip or flag of an item: dismiss it, exclude the "
            "item from the project, or requeue it for that rater",
            "prefstore resolve --project chat --item q17 --rater alice --action requeue")
    project(p)
    p.add_argument("--item", type=name, required=True, help="the item's id (as imported)")
    p.add_argument("--rater", type=name, required=True,
                   help="the name of the rater who skipped or flagged it")
    p.add_argument("--action", choices=store.RESOLUTIONS, required=True,
                   help="dismiss (record only), exclude (never served or counted again) or "
                        "requeue (the rater gets the item again)")

    p = add("project", "rename a project, or archive it (hidden from raters, data kept) "
            "or unarchive it", "prefstore project --project chat --rename chat-2024")
    project(p)
    change = p.add_mutually_exclusive_group(required=True)
    change.add_argument("--rename", type=name, metavar="NEW",
                        help="the project's new name (unique)")
    change.add_argument("--archive", action="store_true", default=None,
                        help="hide the project from raters; nothing is deleted")
    change.add_argument("--unarchive", dest="archive", action="store_false",
                        help="show an archived project to its raters again")

    return parser


# --------------------------------------------------------------------------
# The edge: every expected failure becomes one line and exit 2


def _error(message: str) -> int:
    print("error: " + " ".join(message.split("\n")), file=sys.stderr)
    return EXIT_BAD_INPUT


def _os_error(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {what}"
    return what if not str(exc) else str(exc)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The database driver's error behind ``exc``, if any (pandas wraps sqlite3's, say)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, store.driver_errors()):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _damage(args: argparse.Namespace) -> str | None:
    """After an unexpected error: if the SQLite database is damaged, say so; else None."""
    target = _target(args)
    if store.is_postgres(target) or target == ":memory:" or not Path(target).is_file():
        return None
    try:
        db = store.connect(target, migrate=False)
        problems = store.integrity_check(db)
    except PrefstoreError as exc:
        return str(exc)
    except store.driver_errors() as exc:
        return str(store.translate_error(exc, target))
    if problems == "ok":
        return None
    shown = "; ".join(problems.split("; ")[:3])
    return (f"database {target} is damaged ({shown}); restore it from a backup, and see "
            "`prefstore check`")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail on the pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        _silence_stdout()
        return 0
    except ImportFailed as exc:
        for message in exc.errors:
            _error(message)
        if exc.total > len(exc.errors):
            _error(f"… and {exc.total - len(exc.errors):,} more; nothing was written")
        return EXIT_BAD_INPUT
    except PrefstoreError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        driver = _driver_error(exc)
        if driver is not None:
            return _error(str(store.translate_error(driver, _target(args))))
        if isinstance(exc, OSError):
            return _error(_os_error(exc))
        damage = _damage(args)
        if damage is None:
            raise  # a bug: show the traceback
        return _error(damage)


if __name__ == "__main__":
    sys.exit(main())
