"""Model size presets, kept free of torch so configs validate without importing it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ModelPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    seq_len: int
    note: str


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        intermediate_size=384,
        vocab_size=4096,
        seq_len=128,
        note="~1.9M params with vocab 4096: the CPU demo and the tests",
    ),
    "small": ModelPreset(
        hidden_size=384,
        num_layers=8,
        num_heads=6,
        intermediate_size=1024,
        vocab_size=8192,
        seq_len=512,
        note="~20M params with vocab 8192",
    ),
    "base": ModelPreset(
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=2048,
        vocab_size=32000,
        seq_len=1024,
        note="~134M params with vocab 32000 (untied head)",
    ),
    "large": ModelPreset(
        hidden_size=1024,
        num_layers=24,
        num_heads=16,
        intermediate_size=2560,
        vocab_size=32000,
        seq_len=1024,
        note="~355M params with vocab 32000 (untied head)",
    ),
}
