"""Which checkpoint a segment resumes from, and which of its resume checkpoints may go.

A segment keeps its two newest checkpoints while it runs: if the newest turns out corrupt (a
power cut can leave a manifest naming files that never reached the disk), it is moved aside with
a warning and the one before it is used, so the run still ends with the same bytes.
"""

from __future__ import annotations

import logging

from lrpath_core import layout
from lrpath_core.checkpoint import (
    CheckpointError,
    list_checkpoints,
    move_aside,
    read_manifest,
    remove_checkpoint,
)
from lrpath_core.storage import Store

log = logging.getLogger(__name__)


def newest_sound(store: Store, run: str, start: int, end: int) -> int | None:
    """The newest complete checkpoint of ``run`` in ``(start, end]`` whose files pass their manifest check.

    Each newer one that fails is moved aside; ``None`` when none is left (the segment starts from its init).
    """
    steps = [s for s in list_checkpoints(store, run) if start < s <= end]
    for step in reversed(steps):
        rel = layout.checkpoint(run, step)
        try:
            read_manifest(store, rel, verify=True)
        except CheckpointError as exc:
            aside = move_aside(store, rel)
            log.warning(
                "checkpoint %s fails its manifest check (%s); moved it to %s and resuming from the one before it "
                "(or the segment's start when none is left)",
                store.url_of(rel),
                exc,
                store.url_of(aside),
            )
            continue
        return step
    return None


def stale_steps(steps: list[int], start: int, end: int, done: int, keep: set[int]) -> list[int]:
    """The resume-only checkpoints of segment ``(start, end]`` that may go once ``done`` is durable.

    Mid-segment the newest two stay (the one before is the fallback); once the end is written the
    segment is finished and only its kept steps stay, so that no resume checkpoint is later taken
    for a kept one (a fork point).
    """
    mine = [s for s in steps if start < s <= done]
    fallback = set(mine[-2:]) if done < end else {done}
    return [s for s in mine if s not in keep and s not in fallback]


def prune(store: Store, run: str, start: int, end: int, done: int, keep: set[int]) -> None:
    """Remove the :func:`stale_steps` of a segment; call only after checkpoint ``done`` is durable."""
    for step in stale_steps(list_checkpoints(store, run), start, end, done, keep):
        remove_checkpoint(store, layout.checkpoint(run, step))
