"""One training segment: from a checkpoint (or a seeded init), run steps ``a → b`` with an LR path.

The segment is the unit every flow uses: the main path to a fork, the main tail, a branch, a
PTFS or CPT run are all segments that differ only in their :class:`LRPath`, data order and
start. It resumes by itself from the newest complete checkpoint in its run folder, so a killed
segment started again produces the same numbers as one that was never interrupted.

Runs in-process on CPU or one GPU (the slot :func:`lrpath_core.devices.bound_device` names), or under ``torchrun``
(DDP, or FSDP with ``parallel="fsdp"``):
``torchrun --standalone --nproc-per-node 2 -m lrpath_core.train --store URL --spec spec.json``
(``tasks/torchrun.py`` starts it so from a training task).
Spec and result types: :mod:`lrpath_core.segment`; one optimizer step: :mod:`lrpath_core.train_step`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from lrpath_core import layout
from lrpath_core.block_stream import BlockStream
from lrpath_core.checkpoint import (
    CheckpointState,
    list_checkpoints,
    read_checkpoint,
    read_manifest,
    remove_incomplete,
    restore_rng,
    write_checkpoint,
)
from lrpath_core.config import OptimizerConfig
from lrpath_core.devices import pick_device
from lrpath_core.model import build_model, llama_config
from lrpath_core.optimizer import make_optimizer
from lrpath_core.packing import load_blocks, load_manifest
from lrpath_core.rank_watch import PROGRESS_PREFIX, exit_when_gone, print_progress
from lrpath_core.resume import newest_sound, prune
from lrpath_core.schedules import lr_scheduler
from lrpath_core.segment import DataSpec, ProgressFn, SegmentError, SegmentResult, SegmentSpec
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef
from lrpath_core.train_step import train_step

Losses = list[tuple[int, float, float]]


def data_hash(store: Store, spec: DataSpec) -> str:
    manifests = [load_manifest(store, v).data_sha256 for v in spec.versions]
    payload = json.dumps({"spec": spec.model_dump(), "data": manifests}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_stream(store: Store, spec: DataSpec) -> BlockStream:
    return BlockStream(
        [load_blocks(store, v, "train") for v in spec.versions], spec.batch_size, spec.seed, spec.order
    )


@dataclass
class _Run:
    """What every step of one ``run_segment`` call shares: the spec, where it runs, its data."""

    store: Store
    spec: SegmentSpec
    rank: int
    world: int
    device: torch.device
    stream: BlockStream
    data_hash: str

    def checkpoint(self, step: int) -> str:
        return layout.checkpoint(self.spec.run, step)


@dataclass
class _Trainer:
    wrapped: torch.nn.Module
    forward: Callable[..., Any]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def run_segment(store: Store, spec: SegmentSpec, progress: ProgressFn | None = None) -> SegmentResult:
    """Run (or resume, or find already done) one segment; see the module docstring."""
    run = _open(store, spec)
    resume_step = _resume_step(run)
    first = resume_step if resume_step is not None else spec.start_step
    model, optimizer_state = _initial_model(run, resume_step)
    trainer = _trainer(run, model, optimizer_state, first)
    # the run's log keeps its earlier segments (the main path) and drops steps past this restart point
    losses = _read_losses(store, spec.run, first)
    started = time.perf_counter()
    checkpoints = _train(run, trainer, first, losses, progress)
    if run.rank == 0:
        _add_kept_checkpoints(run, checkpoints)
        if resume_step is not None and first == spec.end_step:
            losses = _read_losses(store, spec.run, spec.end_step + 1)
    steps_run = spec.end_step - first
    return SegmentResult(
        run=spec.run,
        start_step=spec.start_step,
        end_step=spec.end_step,
        resumed_from=resume_step,
        steps_run=steps_run,
        checkpoints=checkpoints,
        losses=[row for row in losses if spec.start_step <= row[0] < spec.end_step],
        tokens=steps_run * spec.data.batch_size * run.stream.seq_len,
        seconds=time.perf_counter() - started,
    )


def _open(store: Store, spec: SegmentSpec) -> _Run:
    """Where the segment runs and its data stream, once the spec is known to fit both."""
    rank, world, local_rank = _dist_info()
    device = pick_device(spec.device, local_rank)
    if spec.data.batch_size % (world * spec.optimizer.grad_accum):
        raise SegmentError(
            f"batch_size {spec.data.batch_size} must split evenly over {world} rank(s) x "
            f"{spec.optimizer.grad_accum} micro-batches"
        )
    stream = build_stream(store, spec.data)
    if spec.end_step > stream.total_steps:
        raise SegmentError(
            f"segment {spec.run} wants steps up to {spec.end_step} but the data of versions "
            f"{spec.data.versions} fill only {stream.total_steps} steps"
        )
    return _Run(store, spec, rank, world, device, stream, data_hash(store, spec.data))


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _resume_step(run: _Run) -> int | None:
    """The newest sound checkpoint of this segment, after clearing half-written ones and moving corrupt ones aside."""
    spec = run.spec
    if run.rank == 0:
        remove_incomplete(run.store, spec.run)
        newest_sound(run.store, spec.run, spec.start_step, spec.end_step)
    if run.world > 1:
        dist.barrier()
    done = [s for s in list_checkpoints(run.store, spec.run) if spec.start_step < s <= spec.end_step]
    return done[-1] if done else None


def _initial_model(run: _Run, resume_step: int | None) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """The model at the segment's restart point, and the optimizer state to restore (if any)."""
    spec = run.spec
    hf_config = llama_config(spec.model.shape(), spec.vocab_size, run.stream.seq_len)
    model = build_model(hf_config, spec.optimizer.seed).to(run.device)
    source = run.checkpoint(resume_step) if resume_step is not None else spec.init
    if source is None:
        torch.manual_seed(spec.optimizer.seed)
        return model, None
    state, model_tensors, optimizer_state, rng = read_checkpoint(run.store, source)
    _check_source(run, source, state, resume_step)
    model.load_state_dict(model_tensors)
    restore_rng(rng)
    if resume_step is None and not spec.init_optimizer:
        return model, None
    return model, optimizer_state


def _check_source(run: _Run, source: str, state: CheckpointState, resume_step: int | None) -> None:
    expected = resume_step if resume_step is not None else run.spec.start_step
    url = run.store.url_of(source)
    if state.step != expected:
        raise SegmentError(
            f"checkpoint {url} is at step {state.step}, but segment {run.spec.run} needs step {expected}"
        )
    if resume_step is not None and state.data_hash != run.data_hash:
        raise SegmentError(
            f"checkpoint {url} was trained on other data (data hash {state.data_hash}, "
            f"now {run.data_hash}); remove {run.store.url_of(run.spec.run)} to start this segment again"
        )


def _trainer(
    run: _Run, model: torch.nn.Module, optimizer_state: dict[str, Any] | None, first: int
) -> _Trainer:
    """Wrap the model for its ranks and build the optimizer, LR schedule and (compiled) forward."""
    wrapped = _wrap(model, run.spec, run.device, run.world)
    optimizer = _make_optimizer(wrapped, run.spec.optimizer, run.device)
    if optimizer_state is not None:
        full = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(wrapped, optimizer, optim_state_dict=optimizer_state, options=full)
    scheduler = lr_scheduler(optimizer, run.spec.lr_path.lr, first)
    use_compile = run.spec.compile if run.spec.compile is not None else run.device.type == "cuda"
    forward = torch.compile(wrapped) if use_compile else wrapped
    if run.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return _Trainer(wrapped, forward, optimizer, scheduler)


def _make_optimizer(model: torch.nn.Module, cfg: OptimizerConfig, device: torch.device) -> torch.optim.AdamW:
    """The project configuration's AdamW; fused kernels on CUDA."""
    betas = (cfg.beta1, cfg.beta2)
    return make_optimizer(model, cfg.lr_max, cfg.weight_decay, betas, fused=device.type == "cuda")


def _wrap(model: torch.nn.Module, spec: SegmentSpec, device: torch.device, world: int) -> torch.nn.Module:
    if world == 1:
        return model
    if spec.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _read_losses(store: Store, run: str, upto: int) -> Losses:
    if not store.exists(layout.losses(run)):
        return []
    return [tuple(row) for row in store.read_json(layout.losses(run)) if row[0] < upto]  # type: ignore[misc]


def _train(
    run: _Run, trainer: _Trainer, first: int, losses: Losses, progress: ProgressFn | None
) -> dict[int, CheckpointRef]:
    """Steps ``first .. end_step - 1``, appending to ``losses``; the checkpoints this rank wrote."""
    spec, opt = run.spec, run.spec.optimizer
    per_rank = spec.data.batch_size // run.world
    checkpoints: dict[int, CheckpointRef] = {}
    bar = _progress_bar(spec, first, run.rank)
    trainer.wrapped.train()
    for step in range(first, spec.end_step):
        rows = run.stream.batch(step)[run.rank * per_rank : (run.rank + 1) * per_rank]
        lr = trainer.optimizer.param_groups[0]["lr"]
        loss = train_step(
            trainer.wrapped,
            trainer.optimizer,
            torch.from_numpy(rows),
            device=run.device,
            grad_accum=opt.grad_accum,
            grad_clip=opt.grad_clip,
            scheduler=trainer.scheduler,
            forward=trainer.forward,
        )
        if not math.isfinite(loss):
            raise SegmentError(
                f"loss became {loss} at step {step} of {spec.run}; lower lr_max or check the data"
            )
        losses.append((step, loss, lr))
        _report(run, bar, progress, step + 1, loss, lr)
        ref = _checkpoint_if_due(run, trainer, step + 1, loss, losses)
        if ref is not None:
            checkpoints[step + 1] = ref
    if bar is not None:
        bar.close()
    return checkpoints


def _report(run: _Run, bar: Any, progress: ProgressFn | None, done: int, loss: float, lr: float) -> None:
    if run.rank == 0 and progress is not None:
        progress(done, run.spec.end_step, loss, lr)
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")


def _checkpoint_if_due(
    run: _Run, trainer: _Trainer, done: int, loss: float, losses: Losses
) -> CheckpointRef | None:
    """Save after ``done`` steps when it is a kept step or a resume point (all ranks take part)."""
    keep = set(run.spec.save_at) | {run.spec.end_step}
    if done not in keep and done % run.spec.checkpoint_every:
        return None
    ref = _save(run, trainer, done, loss, losses)
    if run.rank == 0:
        prune(run.store, run.spec.run, run.spec.start_step, run.spec.end_step, done, keep)
    return ref


def _save(run: _Run, trainer: _Trainer, done: int, loss: float, losses: Losses) -> CheckpointRef | None:
    """Gather the full state on every rank; rank 0 writes the loss log and the checkpoint."""
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(trainer.wrapped, options=full)
    optim_state = get_optimizer_state_dict(trainer.wrapped, trainer.optimizer, options=full)
    ref = None
    if run.rank == 0:
        hf_model = getattr(trainer.wrapped, "module", trainer.wrapped)  # DDP keeps the model in .module
        state = CheckpointState(
            step=done,
            lr_path=run.spec.lr_path,
            data_hash=run.data_hash,
            config_hash=run.spec.config_hash,
            param_groups=[],
            loss=loss,
        )
        run.store.write_json(layout.losses(run.spec.run), [list(row) for row in losses])
        ref = write_checkpoint(run.store, run.checkpoint(done), hf_model, model_state, optim_state, state)
    if run.world > 1:
        dist.barrier()
    return ref


def _add_kept_checkpoints(run: _Run, checkpoints: dict[int, CheckpointRef]) -> None:
    """Refs of the kept checkpoints an earlier, interrupted or finished, run of this segment wrote."""
    for step in run.spec.save_at + [run.spec.end_step]:
        if step not in checkpoints:
            path = run.checkpoint(step)
            found = read_manifest(run.store, path, verify=False)
            checkpoints[step] = CheckpointRef(
                url=run.store.url_of(path), step=step, sha256=found[1] if found else None
            )


def _progress_bar(spec: SegmentSpec, first: int, rank: int) -> Any:
    if not spec.progress_bar or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=spec.end_step, initial=first, desc=spec.run, unit="step", leave=False, dynamic_ncols=True
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m lrpath_core.train`` and ``torchrun -m lrpath_core.train``."""
    parser = argparse.ArgumentParser(prog="python -m lrpath_core.train")
    parser.add_argument("--store", required=True, help="store URL")
    parser.add_argument("--spec", required=True, help="path of a SegmentSpec JSON file")
    parser.add_argument("--result", help="write the SegmentResult JSON here (rank 0)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--progress-lines", action="store_true", help=f"rank 0 prints {PROGRESS_PREFIX} lines"
    )
    parser.add_argument(
        "--watch-pid", type=int, default=0, help="exit when this process (the launcher) is gone"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.watch_pid:
        exit_when_gone(args.watch_pid)
    with open(args.spec) as f:
        spec = SegmentSpec.model_validate_json(f.read())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if torch.cuda.is_available() and spec.device != "cpu" else "gloo"
        dist.init_process_group(backend=backend)
    rank, world, local_rank = _dist_info()
    where = spec.device if spec.device == "cpu" else f"{spec.device} (local rank {local_rank})"
    print(
        f"lrpath_core.train rank {rank}/{world} on {where}, {torch.get_num_threads()} torch threads",
        flush=True,
    )
    result = run_segment(Store(args.store), spec, print_progress if args.progress_lines else None)
    if args.result and rank == 0:
        with open(args.result, "w") as f:
            f.write(result.model_dump_json())
    if dist.is_initialized():
        # Every rank tears gloo/NCCL down together: a rank that left while rank 0 still pruned
        # and wrote its result was once killed by SIGABRT in CI. After a failure there is no
        # teardown: a collective one can hang on a peer stuck in a collective; torchrun reaps them.
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
