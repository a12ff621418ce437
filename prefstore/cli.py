"""The ``prefstore`` command line: parse, call the library, translate errors.

Exit codes: 0 on success, 2 with a one-line message on bad input or any
other PrefstoreError.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from prefstore import store
from prefstore.errors import InvalidInput, PrefstoreError

EXIT_BAD_INPUT = 2

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


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

    db = _open(args)
    report = importing.import_items(
        db, args.file, args.project, kind=args.kind, fmt=args.format,
        skip_invalid_judgments=args.skip_invalid_judgments)
    _report_skipped(report["skipped"])
    print(f"imported {report['items']} items ({report['responses']} responses) and "
          f"{report['judgments']} judgments into {report['kind']} project "
          f"{args.project!r}" + (" (new)" if report["created_project"] else ""))
    return 0


@command("import-judgments")
def cmd_import_judgments(args: argparse.Namespace) -> int:
    from prefstore import importing

    db = _open(args)
    report = importing.import_judgments(
        db, args.file, args.project, fmt=args.format,
        skip_invalid_judgments=args.skip_invalid_judgments)
    _report_skipped(report["skipped"])
    print(f"imported {report['judgments']} judgments into {args.project!r}; "
          f"{report['duplicates']} already present, {len(report['skipped'])} skipped")
    return 0


def _report_skipped(skipped: list[dict]) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} invalid judgment(s):", file=sys.stderr)
    for entry in skipped[:20]:
        print(f"  {entry['reason']}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more", file=sys.stderr)


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
        print(f"{project['name']} ({project['kind']}): {stats['items']} items, "
              f"{stats['responses']} responses, judgments human {stats['judgments']['human']} "
              f"/ llm {stats['judgments']['llm']}, raters human {stats['raters']['human']} "
              f"/ llm {stats['raters']['llm']}")
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
        print(f"{report['project']}: Krippendorff alpha (nominal) "
              f"{'n/a' if alpha is None else f'{alpha:.3f}'}, percent agreement "
              f"{report['percent_agreement']}")
        for judge in report["judges"]:
            print(f"judge {judge['rater']}: accuracy vs human majority "
                  f"{judge['accuracy_vs_human_majority']}")
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
        print(f"routed {summary['items']} items: {summary['human']} human, "
              f"{summary['both']} both, {summary['llm']} llm (judge: {summary['judge']})")
    return 0


@command("evaluate-routing")
def cmd_evaluate_routing(args: argparse.Namespace) -> int:
    from prefstore import routing

    try:
        budgets = tuple(float(b) for b in args.budgets.split(","))
    except ValueError as exc:
        raise InvalidInput(f"--budgets must be comma-separated numbers, got {args.budgets!r}"
                           ) from exc
    db = _open(args)
    result = routing.evaluate_routing(db, args.project, judge=args.judge, budgets=budgets,
                                      seed=args.seed, folds=args.folds,
                                      use_embeddings=args.embeddings)
    if args.json:
        _print_json(result)
    else:
        print(f"llm only: {result['llm_only_accuracy']:.4f} on {result['n_items']} items")
        for b, r, x in zip(result["budgets"], result["router_accuracy"],
                           result["random_accuracy"]):
            print(f"budget {b:g}: router {r:.4f}, random {x:.4f}")
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
        print(f"{result['model']} at {result['level']} level: {result['n_comparisons']} "
              f"comparisons, log-likelihood {result['log_likelihood']:.3f}, "
              f"{result['seconds']:.3f} s")
        if "lambda" in result:
            print(f"  lambda {result['lambda']:.3f}: {result['n_human_items']} human-labelled "
                  f"items, {result['n_llm_items']} judged by the LLM")
        for name, score in ranked:
            lo, hi = result["ci95"][name]
            interval = "" if lo is None else f"  [{lo:+.3f}, {hi:+.3f}]"
            print(f"  {name:30s} {score:+.3f}{interval}")
        for name, coef in (result.get("style_coefficients") or {}).items():
            lo, hi = result["style_ci95"][name] or (None, None)
            shown = "left out" if coef is None else f"{coef:+.3f}"
            interval = "" if lo is None else f"  [{lo:+.3f}, {hi:+.3f}]"
            print(f"  style {name:24s} {shown}{interval}")
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


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Report a command's usage errors on one line with exit 2, as the library's errors."""

    def error(message: str):
        parser.exit(EXIT_BAD_INPUT, f"error: {message}\n")

    parser.error = error
    return parser


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers strictly between 0 and 1, got {text!r}")
    return values


def _reps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, 2^32), got {text!r}")
    return value


@command("worker")
def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from prefstore.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(args.db, lease_s=args.lease, poll_s=args.poll, parent_pid=args.parent_pid)
    worker.install_signal_handlers()
    processed = worker.run(once=args.once)
    print(f"worker {worker.id} stopped after {processed} job(s)")
    return 0


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from prefstore import export

    db = _open(args)
    summary = export.export(
        db, args.project, args.out, format=args.format, aggregate=args.aggregate,
        kind=args.kind, min_agreement=args.min_agreement, conversational=args.conversational,
        real_rater_names=args.real_rater_names, slate_pairs=args.slate_pairs,
        include_original_pair=args.include_original_pair, progress=True)
    print(export.format_summary(summary), file=sys.stderr)
    return 0


@command("backup")
def cmd_backup(args: argparse.Namespace) -> int:
    db = _open(args)
    store.backup(db, args.out)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefstore", description="Collect human preference data on LLM outputs.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--db", default=None,
                       help="database path (default: $PREFSTORE_DB or prefstore.db)")
        return p

    p = add("init", "create the database (and optionally the demo project)")
    p.add_argument("--demo", action="store_true", help="also load the demo project")

    p = add("import", "import items (JSONL, JSON or CSV) into a project")
    p.add_argument("file")
    p.add_argument("--project", required=True)
    p.add_argument("--kind", choices=store.TASK_KINDS)
    p.add_argument("--format", choices=("jsonl", "json", "csv"))
    p.add_argument("--skip-invalid-judgments", action="store_true")

    p = add("import-judgments", "import judgments for existing items")
    p.add_argument("file")
    p.add_argument("--project", required=True)
    p.add_argument("--format", choices=("jsonl", "json", "csv"))
    p.add_argument("--skip-invalid-judgments", action="store_true")

    p = add("stats", "print a project's counts")
    p.add_argument("--project", required=True)
    p.add_argument("--json", action="store_true")

    p = add("annotate", "run the project's LLM judge now, in the foreground")
    p.add_argument("--project", required=True)
    p.add_argument("--judge-config", metavar="FILE.json",
                   help="judge settings to run instead of the project's (a JSON object)")
    p.add_argument("--save", action="store_true",
                   help="also store --judge-config as the project's judge setting")
    p.add_argument("--limit", type=int, default=None, help="judge at most this many items")
    p.add_argument("--retry-failed", action="store_true",
                   help="ask again about the items whose answer failed")
    p.add_argument("--json", action="store_true")

    p = add("agreement", "rater agreement, bias and judge-vs-human metrics")
    p.add_argument("--project", required=True)
    p.add_argument("--kind", choices=("human", "llm", "all"), default="human")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the CIs")
    p.add_argument("--json", action="store_true")

    p = add("route", "refresh the human / llm / both routing decisions of a project")
    p.add_argument("--project", required=True)
    p.add_argument("--judge", help="llm rater whose labels are the judge (default: most active)")
    p.add_argument("--active", action="store_true",
                   help="order human items by expected information for the leaderboard")
    p.add_argument("--embeddings", action="store_true",
                   help="add sentence-embedding similarity (needs the llm extra)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")

    p = add("evaluate-routing", "simulate the router against random routing")
    p.add_argument("--project", required=True)
    p.add_argument("--judge", required=True)
    p.add_argument("--budgets", default="0.1,0.25,0.5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--embeddings", action="store_true")
    p.add_argument("--json", action="store_true")

    p = add("fit", "fit a preference model to a project's judgments")
    p.add_argument("--project", required=True)
    p.add_argument("--model", default="bt", help="bt, davidson, pl or mixture")
    p.add_argument("--level", choices=("system", "response"), default="system")
    p.add_argument("--kind", choices=("human", "llm", "all"), default="all")
    p.add_argument("--k", type=int, default=None, help="mixture types (default: by BIC)")
    p.add_argument("--alpha", type=float, default=None,
                   help="L2 prior strength (default: the model's own)")
    p.add_argument("--ci", choices=("hessian", "bootstrap"), default="hessian")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style-control", action="store_true",
                   help="bt at system level: scores controlled for response style "
                        "(length, markdown), plus the style coefficients")
    p.add_argument("--style-features", default=None,
                   help="comma-separated subset of length,headers,lists,bold (default: all)")
    p.add_argument("--style-alpha", type=float, default=None,
                   help="L2 prior on the style coefficients (default: FastChat's 0.25)")
    p.add_argument("--hybrid-judge", default=None,
                   help="bt at system level: human scores made more precise by this LLM "
                        "judge (prediction-powered inference, PPI++)")
    p.add_argument("--ppi-lambda", default="auto",
                   help="auto (power-tuned, default) or a number in [0, 1]; 0 is human-only")
    p.add_argument("--json", action="store_true")

    p = _one_line_errors(add("evaluate-hybrid",
                             "simulate human budgets: human-only, LLM-only and hybrid fits"))
    p.add_argument("--project", required=True)
    p.add_argument("--judge", required=True, help="the LLM rater whose labels are the judge")
    p.add_argument("--fractions", type=_fractions, default="0.1,0.25,0.5",
                   help="shares of the items labelled by humans, each in (0, 1)")
    p.add_argument("--reps", type=_reps, default=200, help="draws per fraction (>= 1)")
    p.add_argument("--seed", type=_seed, default=0, help="in [0, 2^32)")
    p.add_argument("--json", action="store_true")

    p = add("worker", "run the background worker (refits, LLM labels, routing)")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--lease", type=float, default=60.0, help="job lease in seconds")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between queue polls")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when the process with this id ends (the app starts its worker so)")

    # No argparse choices: the library's one-line InvalidInput names the bad value.
    p = add("export", "write a project's judgments as JSONL training data")
    p.add_argument("out", help="output .jsonl path, or - for stdout")
    p.add_argument("--project", required=True)
    p.add_argument("--format", required=True, help="pairs, edits, slates, judgments or kto")
    p.add_argument("--aggregate", default="none",
                   help="none (a row per judgment), majority or model (default: none)")
    p.add_argument("--kind", default="all", help="human, llm or all (default: all)")
    p.add_argument("--min-agreement", type=float, default=None,
                   help="drop aggregated rows whose agreement is below this")
    p.add_argument("--conversational", action="store_true",
                   help="prompts and completions as chat messages")
    p.add_argument("--real-rater-names", action="store_true",
                   help="write rater names instead of per-project pseudonyms")
    p.add_argument("--slate-pairs", default="best",
                   help="best (best over each other, default) or all (every ranked pair)")
    p.add_argument("--include-original-pair", action="store_true",
                   help="edits: also the original chosen response over the others")

    p = add("backup", "copy the live database (SQLite's online backup API; pg_dump on "
                      "PostgreSQL)")
    p.add_argument("out")

    p = sub.add_parser("copy-db", help="copy a whole database between backends (SQLite ⇄ "
                                       "PostgreSQL), verified by counts and checksums",
                       epilog="example: prefstore copy-db prefstore.db "
                              "postgresql://user@host:5432/prefstore")
    p.add_argument("src", help="the database to copy: a SQLite path or a postgresql:// URL")
    p.add_argument("dst", help="an empty or new database: a SQLite path or a postgresql:// URL")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add("add-rater", "create a rater (or admin) and print their link once")
    p.add_argument("name", help="the rater's name (unique, case-insensitively)")
    p.add_argument("--role", choices=store.ROLES, default="rater",
                   help="rater (the Rate page) or admin (every page); default: rater")
    p.add_argument("--project", action="append", metavar="P",
                   help="a project the rater may rate (repeat for several); the link opens it")
    p.add_argument("--base-url", default=None,
                   help="the app's address for the link (default: $PREFSTORE_BASE_URL, else "
                        "http://localhost:8501)")

    p = add("assign", "let a rater rate in projects (or, with --remove, no longer)")
    p.add_argument("name", help="the rater's name")
    p.add_argument("--project", action="append", metavar="P", required=True,
                   help="a project (repeat for several)")
    p.add_argument("--remove", action="store_true",
                   help="take the projects away instead (their judgments stay)")

    p = add("rotate-token", "give a rater a new link token; the old one stops working")
    p.add_argument("name", help="the rater's name")
    p.add_argument("--base-url", default=None,
                   help="the app's address for the link (default: $PREFSTORE_BASE_URL, else "
                        "http://localhost:8501)")

    p = add("set-active", "deactivate (off) or reactivate (on) a rater")
    p.add_argument("name")
    p.add_argument("state", choices=("on", "off"))

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PrefstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
