"""``rerun-branch``: one version's branch again from its stored fork checkpoint; main path untouched."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from lrpath_core.announce import default_store, read_timeline
from lrpath_core.config import DecayShape
from lrpath_core.storage import Store
from lrpath_core.timeline import Release
from lrpath_core.timeline_store import require_timeline, store_config
from tasks.evaluation import evaluate
from tasks.publishing import publish
from tasks.report import loss_report
from tasks.torchrun import stop_torchrun_on_sigterm
from tasks.training import branch_decay


def rerun_run_name() -> str:
    """``v{N}-branch-{decay}-a{alpha}``; a decay or α left out is the timeline's."""
    params = flow_run.parameters
    decay, alpha = params.get("decay"), params.get("alpha")
    if decay is None or alpha is None:
        try:
            timeline = read_timeline(Store(params.get("store") or default_store()))
        except Exception:  # noqa: BLE001 - only a name: the flow itself reports a bad store
            timeline = None
        decay = decay or (timeline.decay if timeline else "default")
        alpha = alpha if alpha is not None else (timeline.alpha if timeline else None)
    return f"v{params.get('version')}-branch-{decay}-a{'default' if alpha is None else f'{alpha:g}'}"


@flow(name="rerun-branch", flow_run_name=rerun_run_name, log_prints=True)
def rerun_branch(
    version: int, store: str | None = None, decay: DecayShape | None = None, alpha: float | None = None
) -> Release:
    """Decay version ``version``'s branch again (optionally another shape or α) and publish a revision.

    Another α moves the fork; if the main path kept no checkpoint there the run is refused with a
    clear message (the main path is never re-trained for a re-run).
    """
    store_obj = Store(store or default_store())
    config = store_config(store_obj)
    require_timeline(store_obj).version(version)
    with stop_torchrun_on_sigterm():
        released = branch_decay(store_obj.url, config, version, decay, alpha)
    metrics = evaluate(store_obj.url, released, record=False)
    release = publish(store_obj.url, released, metrics)
    loss_report(store_obj.url, version, released)
    return release
