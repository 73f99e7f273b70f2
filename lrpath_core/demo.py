"""The demo's configuration, sized from DESIGN.md §4's CPU figures (2 cores, ~16k tokens/s for tiny)."""

from __future__ import annotations

from lrpath_core.config import ProjectConfig, load_config

QUICK_CHARS = 400_000
FULL_CHARS = 1_600_000


def demo_chars_per_version(quick: bool) -> int:
    return QUICK_CHARS if quick else FULL_CHARS


def demo_config(quick: bool, store: str) -> ProjectConfig:
    return load_config(
        None,
        store=store,
        **{
            "model.preset": "tiny",
            "data.vocab_size": 4096,
            "optimizer.seq_len": 128,
            "optimizer.batch_size": 16,
            "optimizer.warmup_steps": 20,
            "optimizer.lr_max": 3e-3,
            "optimizer.lr_min": 3e-4,
            "checkpoint_every": 50,
        },
    )
