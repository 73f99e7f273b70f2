"""Hugging Face ``LlamaForCausalLM`` built from a :class:`ModelShape`; no hub download ever.

Imports only torch and transformers (no pydantic): ``bench/throughput.py`` runs it on the GPU image.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lrpath_core.model_presets import ModelShape


def llama_config(shape: ModelShape, vocab_size: int, seq_len: int) -> LlamaConfig:
    """The project's Llama: untied head, no bias, EOS id 0, no KV cache; only ``shape`` and sizes vary."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=seq_len,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=None,
        use_cache=False,
    )


def build_model(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model; the same seed gives the same weights on every machine."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def matmul_params(config: LlamaConfig) -> int:
    """N in DESIGN.md §4: parameters that take part in matrix products (no input embedding table)."""
    d, layers = config.hidden_size, config.num_hidden_layers
    head_dim = d // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    attn = d * d * 2 + d * kv * 2
    mlp = 3 * d * config.intermediate_size
    return layers * (attn + mlp) + d * config.vocab_size


def flops_per_token(config: LlamaConfig, seq_len: int) -> int:
    """6·N + 12·L·d·T (PaLM's convention, attention not halved for the causal mask)."""
    return 6 * matmul_params(config) + 12 * config.num_hidden_layers * config.hidden_size * seq_len
