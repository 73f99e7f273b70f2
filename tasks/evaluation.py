from __future__ import annotations

from prefect.artifacts import create_table_artifact

from lrpath_core.segment import Branch
from lrpath_core.storage import Store
from tasks.retry import storage_task, store_unreachable_is_store_error


@storage_task("evaluate", "evaluate-v{released.version}")
def evaluate(store_url: str, released: Branch, record: bool = True) -> dict[str, float]:
    """Perplexity of a branch on every version's held-out data; a table artifact, one column per data version."""
    from lrpath_core.pipeline import evaluate_release, record_branch  # torch: not at the flow's import

    store = Store(store_url)
    version = released.version
    with store_unreachable_is_store_error(store_url, f"evaluating v{version}"):
        ppl = evaluate_release(store, released)
        if record:
            record_branch(store, released, ppl)
    row = {"release": f"v{version} ({released.decay}, α={released.alpha:g})"}
    row |= {f"v{v}": round(p, 3) for v, p in ppl.per_version.items()}
    row["all (token-weighted)"] = round(ppl.overall, 3)
    create_table_artifact(
        [row], key=f"ppl-v{version}", description=f"Perplexity of release v{version} on each data version"
    )
    return ppl.as_metrics()
