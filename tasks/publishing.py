from __future__ import annotations

from prefect.artifacts import create_link_artifact, create_markdown_artifact

from lrpath_core.segment import Branch
from lrpath_core.storage import Store
from lrpath_core.timeline import Release
from tasks.retry import storage_task, store_unreachable_is_store_error


@storage_task("publish", "publish-v{released.version}")
def publish(store_url: str, released: Branch, metrics: dict[str, float]) -> Release:
    """Publish a branch end as a versioned model (visible only when complete) and record it."""
    from lrpath_core.pipeline import publish_release  # torch: not at the flow's import

    version = released.version
    with store_unreachable_is_store_error(store_url, f"publishing v{version}"):
        release = publish_release(Store(store_url), released, metrics)
    if "://" in release.url:
        create_link_artifact(
            release.url, link_text=f"v{version} r{release.revision}", key=f"model-v{version}"
        )
    else:
        create_markdown_artifact(
            f"**v{version} revision {release.revision}** published at `{release.url}`\n\n"
            f"```python\nAutoModelForCausalLM.from_pretrained({release.url!r})\n```",
            key=f"model-v{version}",
        )
    return release
