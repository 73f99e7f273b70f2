"""``lrpath`` commands over a store's timeline: data, ingest, update, status, release, rerun-branch, demo.

Heavy imports (torch, Prefect) happen inside the commands that need them, so ``lrpath plan`` and
``--help`` stay instant.
"""

from __future__ import annotations

import json
import os

import typer

from flows.cli_options import config_file_option, config_option, store_option
from lrpath_core.config import DecayShape, DemoSettings, ProjectConfig, load_config
from lrpath_core.storage import Store


def _config_for(store: Store, config_path: str | None) -> ProjectConfig:
    """The store's saved config; else ``--config`` (or the defaults) for a new timeline."""
    from lrpath_core.timeline_store import store_config

    return store_config(store, load_config(config_path) if config_path else None)


def _open_store(url: str, config_path: str | None, save: bool = True) -> tuple[Store, ProjectConfig]:
    """A reachable store and its config (a new store takes ``--config`` or the defaults, saved
    unless ``save`` is off); a bad or different ``--config`` is refused before anything is written."""
    from lrpath_core.timeline_store import save_config

    store = Store(url)
    store.check_reachable()
    project = _config_for(store, config_path)
    if save:
        save_config(store, project)
    return store, project


def data_gcide(
    out: str = typer.Option(..., help="folder (or fsspec URL) for v1/, v2/, ..."),
    versions: int = config_option("versions", model=DemoSettings),
    max_chars: int | None = typer.Option(None, min=1, help="truncate each version to this many characters"),
) -> None:
    """Split GCIDE (Debian's dict-gcide) into ordered versions."""
    from lrpath_core.corpus import gcide_versions

    for folder in gcide_versions(out, versions=versions, max_chars_per_version=max_chars):
        print(folder)


def ingest(
    path: str = typer.Argument(..., help="local folder of .txt/.jsonl/.parquet shards"),
    name: str | None = typer.Option(None, help="version name (default: the folder's name)"),
    now: bool = typer.Option(False, "--now", help="run the version update right away"),
    config: str | None = config_file_option(),
    store: str = store_option(),
) -> None:
    """Add a version's shards to the store's incoming/ folder."""
    from lrpath_core.incoming import stage_incoming
    from lrpath_core.timeline_store import save_config

    opened, project = _open_store(store, config, save=False)
    drop = stage_incoming(opened, path, name)
    save_config(opened, project)
    done = "already staged" if drop.already_staged else "staged"
    print(f"{done} {path} as {drop.url} ({len(drop.shards)} shard(s), data sha256 {drop.data_sha256[:16]}…)")
    for line in drop.skipped + drop.duplicates:
        print(f"  not staged: {line}")
    if now:
        update(config=config, store=opened.url)


def _on_server(local: bool) -> bool:
    from prefect.settings import PREFECT_API_URL

    return not local and bool(PREFECT_API_URL.value())


def _run_on_server(deployment: str, parameters: dict) -> None:
    """Run a deployment of prefect.yaml and follow it; a run that does not complete exits 1."""
    import sys

    from deployments.remote import failure_line, run_and_follow

    run = run_and_follow(deployment, {k: v for k, v in parameters.items() if v is not None})
    problem = failure_line(run)
    if problem:
        print(f"lrpath: error: {problem}", file=sys.stderr)
        raise typer.Exit(1)


def update(
    config: str | None = config_file_option(),
    local: bool = typer.Option(False, "--local", help="run in this process even when PREFECT_API_URL is set"),
    store: str = store_option(),
) -> None:
    """Run the version-update flow: ingest, main path, branch, evaluate, publish.

    With ``PREFECT_API_URL`` set it runs as the server's ``version-update`` deployment (a worker
    runs it) and follows the run; ``--local`` runs it here.
    """
    opened, _ = _open_store(store, config)
    if _on_server(local):
        _run_on_server("version-update/version-update", {"store": opened.url})
    else:
        from flows.version_update import version_update

        version_update(store=opened.url)
    status(json_out=False, store=opened.url)


def status_dict(store: Store) -> dict:
    """The status of a store's timeline; each version's row and APPL use its current (newest)
    revision, and ``steps_run`` counts re-run branches apart from the plan's steps."""
    from lrpath_core.report import steps_count, timeline_appl, timeline_rows
    from lrpath_core.timeline_store import require_timeline

    timeline = require_timeline(store)
    costs = timeline.costs()
    ps = costs.get("path_switching")
    return {
        "store": store.url,
        "versions": timeline_rows(timeline),
        "appl": timeline_appl(timeline),
        "steps_run": steps_count(timeline).as_dict(),
        "paradigms": {name: cost.model_dump() for name, cost in costs.items()},
        "relative_cost": ps.relative_cost if ps else None,
        "relative_cost_without_final_tail": ps.relative_cost_without_final_tail if ps else None,
    }


def status(
    json_out: bool = typer.Option(False, "--json", help="print exactly one JSON object"),
    store: str = store_option(),
) -> None:
    """The timeline: versions, each one's current revision and its PPL, APPL, cost and steps run."""
    found = status_dict(Store(store))
    if json_out:
        print(json.dumps(found))
        return
    print(f"store {found['store']}")
    print(
        f"{'ver':>3}  {'name':<10} {'status':<9} {'ΔT_i':>6} {'S_i':>6} {'fork':>6} {'B_i':>5} {'PPL':>9}  "
        f"{'rev':>3}  {'decay':<8} published"
    )
    for row in found["versions"]:
        ppl = f"{row['ppl']:.3f}" if row["ppl"] is not None else "-"
        print(
            f"{row['version']:>3}  {row['name'][:10]:<10} {row['status']:<9} {row['delta_steps']:>6} "
            f"{row['cumulative_steps']:>6} {row['fork_step']:>6} {row['branch_steps']:>5} {ppl:>9}  "
            f"{row['revision'] or '-':>3}  {row['revision_decay'] or '-':<8} {row['published_url'] or '-'}"
        )
    if found["appl"] is not None:
        print(f"APPL {found['appl']:.3f} (each version's current revision)")
    for name, cost in found["paradigms"].items():
        without = cost.get("relative_cost_without_final_tail")
        extra = (
            f"; {without:.3f} without the last version's main tail ({cost['total_steps_without_final_tail']} "
            "steps), which no release uses"
            if without is not None
            else ""
        )
        print(f"{name:<15} {cost['total_steps']:>8} steps  relative cost {cost['relative_cost']:.3f}{extra}")
    run = found["steps_run"]
    print(
        f"steps run so far: main {run['main']}, branches {run['branch']}"
        f" (+ {run['rerun']} in re-run branches, not in the plan's cost; {run['total']} in all)"
    )


def release(
    name: str = typer.Argument(..., help="the drop's folder name under incoming/"),
    store: str = store_option(),
) -> None:
    """Lift the hold on a data drop that had bad files (after fixing them)."""
    from lrpath_core.incoming import release_hold

    release_hold(Store(store), name)
    print(f"released the hold on {name}: the next update ingests the files now in incoming/{name}/")


def verify(
    version: int | None = typer.Option(None, min=1, help="check this version only (default: every version)"),
    store: str = store_option(),
) -> None:
    """Check every published revision's files against its checksums and the index; exit 1 on any mismatch."""
    from lrpath_core.published import verify_all

    found = verify_all(Store(store), version)
    for number, revision, problem in found:
        print(f"v{number} r{revision}: {'ok' if problem is None else problem}")
    failed = sum(problem is not None for _, _, problem in found)
    print(f"{len(found) - failed} of {len(found)} published revision(s) verified")
    if failed:
        raise typer.Exit(1)


def rerun_branch(
    version: int = typer.Argument(..., min=1, help="the version whose branch runs again"),
    decay: DecayShape | None = typer.Option(None, help="branch decay shape (default: the timeline's)"),
    alpha: float | None = typer.Option(None, help="decay ratio of this branch (default: the timeline's)"),
    local: bool = typer.Option(False, "--local", help="run in this process even when PREFECT_API_URL is set"),
    store: str = store_option(),
) -> None:
    """One version's branch again from its fork checkpoint: a new revision, main path untouched.

    With ``PREFECT_API_URL`` set it runs as the server's ``rerun-branch`` deployment.
    """
    from lrpath_core.pipeline import branch_plan

    opened = Store(store)
    branch_plan(opened, version, alpha)  # user errors surface here as one line, before Prefect starts
    if _on_server(local):
        parameters = {"version": version, "store": opened.url, "decay": decay, "alpha": alpha}
        _run_on_server("rerun-branch/rerun-branch", parameters)
        print(f"published a new revision of v{version}: see `lrpath status --store {opened.url}`")
        return
    from flows.rerun_branch import rerun_branch as rerun_branch_flow

    published = rerun_branch_flow(version=version, store=opened.url, decay=decay, alpha=alpha)
    print(f"published v{version} revision {published.revision} at {published.url}")


def demo(
    quick: bool = config_option("quick", "--quick", model=DemoSettings),
    versions: int = config_option("versions", model=DemoSettings),
    synthetic: bool = typer.Option(False, "--synthetic", help="generated text instead of GCIDE"),
    data_dir: str = config_option("data_dir", model=DemoSettings),
    config: str | None = config_file_option(),
    store: str = store_option(),
) -> None:
    """The whole multi-version timeline on GCIDE through the flows."""
    from flows.version_update import version_update
    from lrpath_core.demo import demo_versions
    from lrpath_core.incoming import stage_incoming

    opened, _ = _open_store(store, config)
    for folder in demo_versions(os.path.abspath(data_dir), versions, quick, synthetic):
        print(f"lrpath demo: new data arrived: {stage_incoming(opened, folder).url}")
        version_update(store=opened.url)
    status(json_out=False, store=opened.url)
