"""One optimizer step, exactly as the trainer takes it; imports only torch (the GPU bench runs it too)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, full fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    *,
    device: torch.device,
    grad_accum: int = 1,
    grad_clip: float = 0.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    forward: Callable[..., Any] | None = None,
) -> float:
    """Train on ``batch`` (this rank's rows, token ids) in ``grad_accum`` micro-batches; the mean loss.

    ``model`` is the (DDP/FSDP-wrapped) module whose gradients are clipped and synchronised;
    ``forward`` is its ``torch.compile`` form, if any. Under DDP only the last micro-batch syncs
    gradients. The loss is averaged over the ranks and read back to the host: one sync per step.
    """
    forward = model if forward is None else forward  # a compiled module has no truth value
    world = _world_size()
    micro = len(batch) // grad_accum
    total = torch.zeros((), device=device)
    for index in range(grad_accum):
        ids = batch[index * micro : (index + 1) * micro].to(device, non_blocking=True)
        skip_sync = world > 1 and index < grad_accum - 1 and hasattr(model, "no_sync")
        with model.no_sync() if skip_sync else contextlib.nullcontext():
            with mixed_precision(device):
                loss = forward(input_ids=ids, labels=ids).loss / grad_accum
            loss.backward()
        total += loss.detach()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    if world > 1:
        _average_over_ranks(total, device)
    return float(total)


def _average_over_ranks(total: torch.Tensor, device: torch.device) -> None:
    """In place; gloo (CPU) has no AVG reduction, so it sums and divides."""
    if device.type == "cuda":
        dist.all_reduce(total, op=dist.ReduceOp.AVG)
    else:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        total /= _world_size()
