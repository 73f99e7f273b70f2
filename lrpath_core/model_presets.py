"""Model size presets.

Plain frozen dataclasses: configs validate without importing torch, and the GPU bench, whose image
has no pydantic, imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelShape:
    """The sizes that make a Llama model; everything else about it is fixed in ``lrpath_core.model``."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})"
            )


def parameter_count(shape: ModelShape, vocab_size: int) -> int:
    """Every parameter of the Llama model ``lrpath_core.model`` builds (untied head, MHA, RMSNorm)."""
    d, ff = shape.hidden_size, shape.intermediate_size
    per_layer = 4 * d * d + 3 * d * ff + 2 * d
    return 2 * vocab_size * d + shape.num_layers * per_layer + d


CHECKPOINT_BYTES_PER_PARAMETER = 12
"""fp32 weights plus AdamW's two fp32 moments: what a main-path checkpoint stores per parameter."""


@dataclass(frozen=True)
class ModelPreset:
    sizes: ModelShape
    vocab_size: int
    seq_len: int
    note: str

    def shape(self, **overrides: int | None) -> ModelShape:
        """The preset's sizes with ``overrides`` (``hidden_size=…``; ``None`` keeps the preset's)."""
        return replace(self.sizes, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        ModelShape(128, 4, 4, 384), 4096, 128, "~1.9M params with vocab 4096: the CPU demo and the tests"
    ),
    "small": ModelPreset(ModelShape(384, 8, 6, 1024), 8192, 512, "~20M params with vocab 8192"),
    "base": ModelPreset(
        ModelShape(768, 12, 12, 2048), 32000, 1024, "~134M params with vocab 32000 (untied head)"
    ),
    "large": ModelPreset(
        ModelShape(1024, 24, 16, 2560), 32000, 1024, "~355M params with vocab 32000 (untied head)"
    ),
}
"""``ModelShape(hidden_size, num_layers, num_heads, intermediate_size)``, vocab, seq_len, note."""
