"""The model, its presets and sizes: plain dataclasses and torch, importable without pydantic."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from lrpath_core.config import ConfigError, ModelConfig, load_config
from lrpath_core.model import build_model, flops_per_token, llama_config, matmul_params
from lrpath_core.model_presets import PRESETS, ModelPreset, ModelShape

ROOT = Path(__file__).resolve().parents[2]


def test_imports_without_pydantic():
    """bench/throughput.py runs these on a GPU image that has torch and transformers only."""
    modules = [
        "lrpath_core.model",
        "lrpath_core.model_presets",
        "lrpath_core.optimizer",
        "lrpath_core.train_step",
    ]
    code = (
        "import sys; sys.modules['pydantic'] = None\n"
        + "".join(f"import {m}\n" for m in modules)
        + "assert 'lrpath_core.config' not in sys.modules, 'lrpath_core.config needs pydantic'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_presets_are_frozen_dataclasses():
    tiny = PRESETS["tiny"]
    assert isinstance(tiny, ModelPreset) and dataclasses.is_dataclass(tiny)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.vocab_size = 1  # type: ignore[misc]


def test_shape_is_the_preset_with_overrides():
    assert ModelConfig(preset="small").shape() == ModelShape(384, 8, 6, 1024)
    assert ModelConfig(preset="tiny", num_layers=2, hidden_size=64).shape() == ModelShape(64, 2, 4, 384)


def test_llama_config_and_flops_of_the_tiny_preset():
    config = llama_config(PRESETS["tiny"].shape(), vocab_size=4096, seq_len=128)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (128, 4, 4)
    assert config.num_key_value_heads == 4 and config.intermediate_size == 384
    assert config.max_position_embeddings == 128 and not config.tie_word_embeddings
    # docs/BENCHMARKS.md: 1.90M params, N = 1.38M, 9,043,968 FLOPs per token (6N + 12·L·d·T)
    assert matmul_params(config) == 1_376_256
    assert flops_per_token(config, 128) == 6 * 1_376_256 + 12 * 4 * 128 * 128 == 9_043_968
    model = build_model(config, seed=1234)
    assert sum(p.numel() for p in model.parameters()) == 1_901_696


def test_build_model_is_seeded():
    config = llama_config(ModelShape(32, 2, 2, 64), vocab_size=64, seq_len=8)
    a, b = build_model(config, 1), build_model(config, 1)
    assert all((x == y).all() for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_hidden_size_not_a_multiple_of_num_heads_is_refused():
    with pytest.raises(ValueError, match=r"hidden_size \(130\) must be a multiple of num_heads \(4\)"):
        ModelShape(130, 2, 4, 64)
    with pytest.raises(ConfigError, match=r"hidden_size \(130\) must be a multiple of num_heads \(4\)"):
        load_config(None, **{"model.hidden_size": 130})
    with pytest.raises(ConfigError, match=r"hidden_size \(128\) must be a multiple of num_heads \(3\)"):
        load_config(None, **{"model.num_heads": 3})
