"""``train_step`` is the trainer's optimizer step, moved out of ``run_segment`` without changing a bit.

``tests/golden/tiny_main_losses.json`` (checked in test_train.py) pins the losses the trainer
produces through it; here it is compared with the loop it replaced, weights included.
"""

import contextlib

import pytest
import torch

from lrpath_core.model import build_model, llama_config
from lrpath_core.model_presets import ModelShape
from lrpath_core.optimizer import make_optimizer
from lrpath_core.schedules import LRPath, lr_scheduler
from lrpath_core.train_step import train_step

SHAPE = ModelShape(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
VOCAB, SEQ, BATCH, STEPS = 128, 16, 8, 6
PATH = LRPath(kind="main", lr_max=3e-3, lr_min=3e-4, warmup_steps=2)


def _setup():
    model = build_model(llama_config(SHAPE, VOCAB, SEQ), seed=1234)
    optimizer = make_optimizer(model, 3e-3, 0.1, (0.9, 0.95), fused=False)
    return model, optimizer, lr_scheduler(optimizer, PATH.lr, 0)


def _batches() -> list[torch.Tensor]:
    """Two random batches taken in turn: few enough for the model to learn them within STEPS."""
    generator = torch.Generator().manual_seed(0)
    two = [torch.randint(0, VOCAB, (BATCH, SEQ), generator=generator) for _ in range(2)]
    return [two[step % 2] for step in range(STEPS)]


def _step_before_the_split(model, optimizer, scheduler, batch, grad_accum: int, grad_clip: float) -> float:
    """The body of run_segment's loop before train_step existed (one process, CPU), verbatim."""
    device = torch.device("cpu")
    autocast = contextlib.nullcontext()
    micro = len(batch) // grad_accum
    total = torch.zeros((), device=device)
    for index in range(grad_accum):
        ids = batch[index * micro : (index + 1) * micro].to(device, non_blocking=True)
        ctx = contextlib.nullcontext()
        with ctx, autocast:
            loss = model(input_ids=ids, labels=ids).loss / grad_accum
        with ctx:
            loss.backward()
        total += loss.detach()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return float(total)


@pytest.mark.parametrize("grad_accum,grad_clip", [(1, 1.0), (2, 1.0), (4, 0.0)])
def test_same_losses_and_weights_as_the_loop_it_replaced(grad_accum, grad_clip):
    old_model, old_opt, old_sched = _setup()
    new_model, new_opt, new_sched = _setup()
    old_losses, new_losses, lrs = [], [], []
    for batch in _batches():
        lrs.append(new_opt.param_groups[0]["lr"])
        old_losses.append(_step_before_the_split(old_model, old_opt, old_sched, batch, grad_accum, grad_clip))
        new_losses.append(
            train_step(
                new_model,
                new_opt,
                batch,
                device=torch.device("cpu"),
                grad_accum=grad_accum,
                grad_clip=grad_clip,
                scheduler=new_sched,
            )
        )
    assert new_losses == old_losses
    assert new_losses[-2] < new_losses[0] and new_losses[-1] < new_losses[1]  # it learns both batches
    assert lrs == pytest.approx([PATH.lr(s) for s in range(STEPS)])
    for (name, old), new in zip(old_model.state_dict().items(), new_model.state_dict().values(), strict=True):
        assert torch.equal(old, new), name


def test_forward_is_called_and_model_is_clipped():
    """``forward`` (a compiled model) runs the batches; clipping and the optimizer act on ``model``."""
    model, optimizer, _ = _setup()
    calls = []

    def forward(**kw):
        calls.append(kw["input_ids"].shape)
        return model(**kw)

    loss = train_step(
        model, optimizer, _batches()[0], device=torch.device("cpu"), grad_accum=2, forward=forward
    )
    assert calls == [torch.Size([BATCH // 2, SEQ])] * 2
    assert isinstance(loss, float) and loss > 0
    assert all(p.grad is None for p in model.parameters())  # zero_grad(set_to_none=True)


def test_optimizer_decays_matrices_only():
    model, optimizer, _ = _setup()
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert decay["betas"] == (0.9, 0.95) and decay["eps"] == 1e-8


def test_compiled_forward_is_accepted():
    """``torch.compile``'s wrapper raises on ``bool()`` (it forwards ``len()``), as on CUDA where the
    trainer compiles by default; ``backend="eager"`` gives the same wrapper without a C compiler."""
    model, optimizer, _ = _setup()
    compiled = torch.compile(model, backend="eager")
    loss = train_step(model, optimizer, _batches()[0], device=torch.device("cpu"), forward=compiled)
    assert isinstance(loss, float) and loss > 0
