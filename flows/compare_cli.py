"""``lrpath compare``: PTFS vs CPT vs path switching on the same data, straight through the core.

The command needs no Prefect (the ``compare-paradigms`` flow is for the deployment). Until
``flows/cli.py`` lists :func:`add_compare` in ``COMMANDS``, ``python -m flows.compare_cli compare …``
runs it with the same one-line error handling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lrpath_core.config import DECAY_SHAPES


def cmd_compare(args: argparse.Namespace) -> int:
    from flows.cli import UsageError
    from lrpath_core.compare import compare_config, compare_paradigms, format_table

    if args.versions is not None and args.versions < 1:
        raise UsageError(f"--versions must be at least 1, got {args.versions}")
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be strictly between 0 and 1, got {args.alpha}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    config = compare_config(
        args.out,
        model=args.model,
        quick=args.quick,
        alpha=args.alpha,
        decay=args.decay,
        seed=args.seed,
        config_path=args.config,
    )
    result = compare_paradigms(
        args.data,
        args.out,
        config,
        versions=args.versions,
        progress_bar=not args.json and sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(result.model_dump(mode="json")))
        return 0
    print(format_table(result))
    print(
        f"\nwrote results.json, results.txt, lr_paths.png, ppl_per_version.png, cost_vs_appl.png to {args.out}"
    )
    return 0


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="PTFS vs CPT vs path switching on the same data: PPL per version, APPL, cost"
    )
    p.add_argument("--data", required=True, help="folder or fsspec URL holding v1/, v2/, ... (shards)")
    p.add_argument("--out", required=True, help="folder or fsspec URL for the runs, results.json and plots")
    p.add_argument("--versions", type=int, help="use the first N versions (default: all)")
    p.add_argument("--model", default="tiny", help="model preset: tiny | small | base | large (default tiny)")
    p.add_argument(
        "--alpha", type=float, help="decay ratio of the branches, B_i = ceil(alpha*S_i) (default 0.18)"
    )
    p.add_argument("--decay", choices=list(DECAY_SHAPES), help="branch decay shape (default cosine)")
    p.add_argument("--seed", type=int, help="seed of init, data order and validation split (default 1234)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CPU sizes whatever the preset: vocab 4096, seq 128, batch 16 (tiny's own sizes)",
    )
    p.add_argument(
        "--config", help="lrpath.yaml to start from (its sizes are kept; the options above override)"
    )
    p.add_argument("--json", action="store_true", help="print exactly one JSON object: results.json")
    p.set_defaults(func=cmd_compare)


def main(argv: Sequence[str] | None = None) -> int:
    from flows import cli

    if all(getattr(add, "__name__", "") != "add_compare" for add in cli.COMMANDS):
        cli.COMMANDS.append(add_compare)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
