"""The demo's data: GCIDE (or generated text) split into ordered versions, sized by ``DemoSettings``.

The demo trains with ``ProjectConfig``'s defaults, which are sized from DESIGN.md §4's CPU
figures (2 cores, ~16k tokens/s for the tiny preset).
"""

from __future__ import annotations

from lrpath_core.config import DemoSettings
from lrpath_core.corpus import gcide_versions
from lrpath_core.synthetic import write_synthetic_versions


def demo_versions(data_dir: str, versions: int, quick: bool, synthetic: bool) -> list[str]:
    """The demo's version folders ``data_dir/v1 … vN``, made once and reused."""
    settings = DemoSettings()
    if synthetic:
        return write_synthetic_versions(
            data_dir, versions=versions, docs_per_version=settings.synthetic_docs(quick)
        )
    return gcide_versions(data_dir, versions=versions, max_chars_per_version=settings.chars(quick))
