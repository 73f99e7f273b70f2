"""The segment specs the trainer and checkpoint tests run on the ingested tiny store.

Test files import this as ``segment_support`` after putting ``tests/`` on ``sys.path`` (like
``servers`` and ``publish_support``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lrpath_core.config import ProjectConfig
from lrpath_core.pipeline import main_lr_path, vocab_size
from lrpath_core.segment import DataSpec, SegmentSpec
from lrpath_core.storage import Store
from lrpath_core.train import ProgressFn


def main_spec(store: Store, cfg: ProjectConfig, run: str, end: int, **kw) -> SegmentSpec:
    """A main-path segment on versions 1 and 2, on CPU; ``start``, ``save_at``, ``checkpoint_every`` and
    any other SegmentSpec field may be given."""
    return SegmentSpec(
        run=run,
        start_step=kw.pop("start", 0),
        end_step=end,
        lr_path=main_lr_path(cfg),
        save_at=kw.pop("save_at", [end]),
        checkpoint_every=kw.pop("checkpoint_every", 5),
        data=DataSpec(versions=[1, 2], batch_size=cfg.optimizer.batch_size, seed=cfg.optimizer.seed),
        model=cfg.model,
        optimizer=cfg.optimizer,
        vocab_size=vocab_size(store),
        device="cpu",
        **kw,
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Interrupted(Exception):
    """Raised by :func:`interrupt_at` to stop a segment in-process, as a crash would."""


def interrupt_at(step: int) -> ProgressFn:
    """A progress callback that stops the segment once ``step`` steps are done, before any checkpoint of that step."""

    def progress(done: int, end: int, loss: float, lr: float) -> None:
        if done == step:
            raise Interrupted(f"stopped after {step} steps")

    return progress
