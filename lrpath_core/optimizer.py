"""The trainer's AdamW; imports only torch, so the GPU bench builds the very same optimizer."""

from __future__ import annotations

import torch


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    fused: bool,
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms); ``fused`` kernels need CUDA."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, fused=fused)
