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


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_plan]


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
