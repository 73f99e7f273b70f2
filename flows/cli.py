"""The ``lrpath`` command: thin wrappers over core functions and flows, same parameter names.

Built with typer (already a dependency of Prefect and transformers): each option's default,
help and range come from the pydantic config (:mod:`flows.cli_options`). A user error (any
:class:`~lrpath_core.errors.LrpathError`, or arguments the parser refuses) ends with one
``lrpath: error: …`` line and exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import typer

from flows import cli_compare, cli_server, cli_timeline, relay
from flows.cli_options import UsageError, config_option
from lrpath_core.config import DecayShape
from lrpath_core.errors import LrpathError

app = typer.Typer(
    name="lrpath",
    help="Learning-rate path switching for version updates of language models.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare corpora.", no_args_is_help=True, rich_markup_mode=None)


def _parse_steps(steps: str | None, versions: int | None, steps_per_version: int | None) -> list[int]:
    if steps:
        try:
            parsed = [int(s) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--steps takes whole numbers separated by commas, got {steps!r}") from None
        if not parsed or min(parsed) < 1:
            raise UsageError(f"--steps needs at least one version, each of at least 1 step, got {steps!r}")
        return parsed
    if versions is None or steps_per_version is None:
        raise UsageError("give --versions N --steps-per-version K, or --steps K1,K2,...")
    return [steps_per_version] * versions


@app.command()
def plan(
    versions: int | None = typer.Option(None, min=1, help="number of versions (with --steps-per-version)"),
    steps_per_version: int | None = typer.Option(None, min=1, help="new-data steps of every version"),
    steps: str | None = typer.Option(None, help="uneven versions: new-data steps per version, e.g. 800,1200"),
    alpha: float = config_option("paradigm.alpha"),
    warmup: int = config_option("optimizer.warmup_steps", "--warmup"),
    decay: DecayShape = config_option("paradigm.decay"),
    lr_max: float = config_option("optimizer.lr_max"),
    lr_min: float = config_option("optimizer.lr_min"),
    retain_every: int = config_option("paradigm.retain_every"),
    model: str = config_option("model.preset", "--model"),
    vocab: int = config_option("data.vocab_size", "--vocab"),
    json_out: bool = typer.Option(False, "--json", help="print exactly one JSON object"),
    lr_csv: str | None = typer.Option(None, help="write every step's LR of every path to this CSV"),
    plot: str | None = typer.Option(None, help="draw the three paradigms' LR paths to this PNG"),
) -> None:
    """Versions, fork steps and the cost of each paradigm."""
    from lrpath_core.planner import PlanRequest, make_plan

    if lr_min > lr_max:
        raise UsageError(f"--lr-min ({lr_min}) must not exceed --lr-max ({lr_max})")
    # one keyword per option, alike in shape to other constructors: each names a field of the plan
    request = PlanRequest(
        delta_steps=_parse_steps(steps, versions, steps_per_version),
        alpha=alpha,
        warmup_steps=warmup,
        decay=decay,
        lr_max=lr_max,
        lr_min=lr_min,
        retain_every=retain_every,
        model_preset=model,
        vocab_size=vocab,
    )
    report = make_plan(request)
    if lr_csv:
        rows = report.write_lr_csv(lr_csv)
        if not json_out:
            print(f"wrote {rows} LR rows to {lr_csv}")
    if plot:
        from lrpath_core.plots import plot_lr_paths

        title = f"{len(report.versions)} versions, alpha={request.alpha}, decay={request.decay}"
        plot_lr_paths(report.lr_paths(), plot, title=title)
        if not json_out:
            print(f"wrote {plot}")
    print(json.dumps(report.to_json_dict()) if json_out else report.table())


app.add_typer(data_app, name="data")
app.add_typer(cli_server.server_app, name="server")
data_app.command("gcide")(cli_timeline.data_gcide)
for command in (
    cli_timeline.ingest,
    cli_timeline.update,
    cli_timeline.status,
    cli_timeline.release,
    cli_timeline.rerun_branch,
    cli_timeline.verify,
    cli_timeline.demo,
    cli_compare.compare,
    relay.relay,
):
    app.command(command.__name__.replace("_", "-"))(command)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = typer.main.get_command(app)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        code = command.main(args=args or ["--help"], prog_name="lrpath", standalone_mode=False)
    except (typer.TyperException, LrpathError) as exc:
        text = exc.format_message() if isinstance(exc, typer.TyperException) else str(exc)
        text = " ".join(text.replace("Value error, ", "").split())
        print(f"lrpath: error: {text or type(exc).__name__}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        print("lrpath: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as done:
        return done.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
