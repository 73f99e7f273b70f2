"""The ``lrpath`` command: thin wrappers over core functions and flows, same parameter names.

User errors (bad arguments, bad data, missing pieces) end with one ``lrpath: error: …`` line and
exit code 2, never a traceback. Heavy imports (torch, Prefect) happen inside the commands that
need them so ``lrpath plan`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from flows.compare_cli import add_compare
from lrpath_core.config import DECAY_SHAPES, DEFAULT_STORE

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError, PermissionError)


class UsageError(Exception):
    """A command-line problem to report as one line."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from lrpath_core.storage import StoreError

    return (*USER_ERRORS, StoreError, UsageError)


def _parse_steps(args: argparse.Namespace) -> list[int]:
    if args.steps:
        try:
            steps = [int(s) for s in args.steps.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--steps takes whole numbers separated by commas, got {args.steps!r}") from None
        if not steps:
            raise UsageError("--steps is empty: give at least one version's steps")
        return steps
    if args.versions is None or args.steps_per_version is None:
        raise UsageError("give --versions N --steps-per-version K, or --steps K1,K2,...")
    if args.versions < 1:
        raise UsageError(f"--versions must be at least 1, got {args.versions}")
    if args.steps_per_version < 1:
        raise UsageError(f"--steps-per-version must be at least 1, got {args.steps_per_version}")
    return [args.steps_per_version] * args.versions


def cmd_plan(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from lrpath_core.config import format_validation_error
    from lrpath_core.planner import PlanRequest, make_plan

    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be strictly between 0 and 1, got {args.alpha}")
    if args.lr_min > args.lr_max:
        raise UsageError(f"--lr-min ({args.lr_min}) must not exceed --lr-max ({args.lr_max})")
    try:
        request = PlanRequest(
            delta_steps=_parse_steps(args),
            alpha=args.alpha,
            warmup_steps=args.warmup,
            decay=args.decay,
            lr_max=args.lr_max,
            lr_min=args.lr_min,
        )
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc)) from None
    report = make_plan(request)
    if args.lr_csv:
        rows = report.write_lr_csv(args.lr_csv)
        if not args.json:
            print(f"wrote {rows} LR rows to {args.lr_csv}")
    if args.plot:
        from lrpath_core.plots import plot_lr_paths

        plot_lr_paths(
            report.lr_paths(),
            args.plot,
            title=f"{len(report.versions)} versions, alpha={request.alpha}, decay={request.decay}",
        )
        if not args.json:
            print(f"wrote {args.plot}")
    if args.json:
        print(json.dumps(report.to_json_dict()))
    else:
        print(report.table())
    return 0


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="versions, fork steps and the cost of each paradigm")
    p.add_argument("--versions", type=int, help="number of versions (with --steps-per-version)")
    p.add_argument("--steps-per-version", type=int, help="new-data steps of every version")
    p.add_argument("--steps", help="uneven versions: new-data steps per version, e.g. 800,1200,1000")
    p.add_argument(
        "--alpha", type=float, default=0.18, help="decay ratio: B_i = ceil(alpha*S_i) (default 0.18)"
    )
    p.add_argument("--warmup", type=int, default=20, help="warm-up steps W (default 20)")
    p.add_argument("--decay", choices=[s for s in DECAY_SHAPES], default="cosine", help="branch decay shape")
    p.add_argument("--lr-max", type=float, default=3e-3)
    p.add_argument("--lr-min", type=float, default=3e-4)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.add_argument("--lr-csv", help="write every step's LR of every path to this CSV")
    p.add_argument("--plot", help="draw the three paradigms' LR paths to this PNG")
    p.set_defaults(func=cmd_plan)


def add_store_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        default=os.environ.get("LRPATH_STORE", DEFAULT_STORE),
        help=f"fsspec URL of the store: a local path or s3://bucket/prefix (default $LRPATH_STORE or {DEFAULT_STORE})",
    )


def _store(args: argparse.Namespace):
    from lrpath_core.storage import Store

    return Store(args.store)


def _config_for(args: argparse.Namespace, store):
    """The store's saved config; else ``--config`` (or defaults) for a new timeline."""
    from lrpath_core.config import load_config
    from lrpath_core.pipeline import store_config

    fallback = load_config(args.config) if getattr(args, "config", None) else None
    return store_config(store, fallback)


def cmd_data_gcide(args: argparse.Namespace) -> int:
    from lrpath_core.corpus import gcide_versions

    folders = gcide_versions(args.out, versions=args.versions, max_chars_per_version=args.max_chars)
    for folder in folders:
        print(folder)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from lrpath_core.incoming import stage_incoming
    from lrpath_core.pipeline import save_config

    store = _store(args)
    store.check_reachable()
    save_config(store, _config_for(args, store))
    url = stage_incoming(store, args.path, args.name)
    print(f"staged {args.path} as {url}")
    if args.now:
        return cmd_update(args)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from flows.version_update import version_update
    from lrpath_core.pipeline import save_config

    store = _store(args)
    store.check_reachable()
    save_config(store, _config_for(args, store))
    version_update(store=store.url)
    return cmd_status(argparse.Namespace(store=store.url, json=False))


def status_dict(store) -> dict:
    from lrpath_core.pipeline import require_timeline, timeline_appl
    from lrpath_core.report import timeline_rows

    timeline = require_timeline(store)
    costs = timeline.costs()
    return {
        "store": store.url,
        "versions": timeline_rows(timeline),
        "appl": timeline_appl(timeline),
        "steps_run": timeline.steps_run.model_dump(),
        "paradigms": {name: cost.model_dump() for name, cost in costs.items()},
        "relative_cost": costs["path_switching"].relative_cost if costs else None,
    }


def cmd_status(args: argparse.Namespace) -> int:
    status = status_dict(_store(args))
    if args.json:
        print(json.dumps(status))
        return 0
    print(f"store {status['store']}")
    header = f"{'ver':>3}  {'name':<10} {'status':<9} {'ΔT_i':>6} {'S_i':>6} {'fork':>6} {'B_i':>5} {'PPL':>9}  {'rev':>3}  published"
    print(header)
    for row in status["versions"]:
        ppl = f"{row['ppl']:.3f}" if row["ppl"] is not None else "-"
        print(
            f"{row['version']:>3}  {row['name'][:10]:<10} {row['status']:<9} {row['delta_steps']:>6} "
            f"{row['cumulative_steps']:>6} {row['fork_step']:>6} {row['branch_steps']:>5} {ppl:>9}  "
            f"{row['revision'] or '-':>3}  {row['published_url'] or '-'}"
        )
    if status["appl"] is not None:
        print(f"APPL {status['appl']:.3f}")
    for name, cost in status["paradigms"].items():
        print(f"{name:<15} {cost['total_steps']:>8} steps  relative cost {cost['relative_cost']:.3f}")
    print(f"steps run so far: main {status['steps_run']['main']}, branches {status['steps_run']['branch']}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from lrpath_core.incoming import release_hold

    release_hold(_store(args), args.name)
    print(f"released the hold on {args.name}: the next update ingests the files now in incoming/{args.name}/")
    return 0


def cmd_rerun_branch(args: argparse.Namespace) -> int:
    from flows.rerun_branch import rerun_branch
    from lrpath_core.pipeline import branch_plan

    store = _store(args)
    branch_plan(
        store, args.version, args.alpha
    )  # user errors surface here as one line, before Prefect starts
    release = rerun_branch(version=args.version, store=store.url, decay=args.decay, alpha=args.alpha)
    print(f"published v{args.version} revision {release.revision} at {release.url}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lrpath_core.corpus import gcide_versions
    from lrpath_core.demo import demo_chars_per_version, demo_config
    from lrpath_core.incoming import stage_incoming
    from lrpath_core.pipeline import save_config
    from lrpath_core.synthetic import write_synthetic_versions

    store = _store(args)
    store.check_reachable()
    config = _config_for(args, store) if store.exists("config.json") else demo_config(args.quick, store.url)
    save_config(store, config)
    data_dir = os.path.abspath(args.data_dir)
    if args.synthetic:
        folders = write_synthetic_versions(
            data_dir, versions=args.versions, docs_per_version=3000 if args.quick else 6000
        )
    else:
        folders = gcide_versions(
            data_dir, versions=args.versions, max_chars_per_version=demo_chars_per_version(args.quick)
        )
    from flows.version_update import version_update

    for folder in folders:
        url = stage_incoming(store, folder)
        print(f"lrpath demo: new data arrived: {url}")
        version_update(store=store.url)
    return cmd_status(argparse.Namespace(store=store.url, json=False))


def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare corpora")
    data_sub = data.add_subparsers(dest="corpus", required=True, parser_class=_Parser)
    g = data_sub.add_parser("gcide", help="split GCIDE (Debian dict-gcide) into ordered versions")
    g.add_argument("--out", required=True, help="folder (or fsspec URL) for v1/, v2/, ...")
    g.add_argument("--versions", type=int, default=4)
    g.add_argument(
        "--max-chars", type=int, default=None, help="truncate each version to this many characters"
    )
    g.set_defaults(func=cmd_data_gcide)

    p = sub.add_parser("ingest", help="add a version's shards to the store's incoming/ folder")
    p.add_argument("path", help="local folder of .txt/.jsonl/.parquet shards")
    p.add_argument("--name", help="version name (default: the folder's name)")
    p.add_argument("--now", action="store_true", help="run the version update right away")
    p.add_argument("--config", help="lrpath.yaml for a new store")
    add_store_argument(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "update", help="run the version-update flow: ingest, main path, branch, evaluate, publish"
    )
    p.add_argument("--config", help="lrpath.yaml for a new store")
    add_store_argument(p)
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("status", help="the timeline: versions, PPL, published URLs, cost")
    p.add_argument("--json", action="store_true")
    add_store_argument(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("release", help="lift the hold on a data drop that had bad files (after fixing them)")
    p.add_argument("name", help="the drop's folder name under incoming/")
    add_store_argument(p)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("rerun-branch", help="one version's branch again from its fork checkpoint")
    p.add_argument("version", type=int)
    p.add_argument("--decay", choices=list(DECAY_SHAPES))
    p.add_argument("--alpha", type=float)
    add_store_argument(p)
    p.set_defaults(func=cmd_rerun_branch)

    p = sub.add_parser("demo", help="the whole 4-version timeline on GCIDE through the flows")
    p.add_argument("--quick", action="store_true", help="a minute-scale configuration")
    p.add_argument("--versions", type=int, default=4)
    p.add_argument("--synthetic", action="store_true", help="generated text instead of GCIDE")
    p.add_argument(
        "--data-dir", default="./lrpath-data", help="where the demo's version folders are prepared"
    )
    p.add_argument("--config", help="lrpath.yaml (default: the demo configuration)")
    add_store_argument(p)
    p.set_defaults(func=cmd_demo)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_plan, _add_pipeline, add_compare]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"lrpath: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lrpath", description="Learning-rate path switching for version updates of LMs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_error_types() as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError):
            message = message.strip("'\"")
        print(f"lrpath: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lrpath: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
