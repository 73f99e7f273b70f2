"""One training segment: from a checkpoint (or a seeded init), run steps ``a → b`` with an LR path.

The segment is the unit every flow uses: the main path to a fork, the main tail, a branch, a
PTFS or CPT run are all segments that differ only in their :class:`LRPath`, data order and
start. It resumes by itself from the newest complete checkpoint in its run folder, so a killed
segment started again produces the same numbers as one that was never interrupted.

Runs in-process on CPU or one GPU, or under ``torchrun`` (DDP, or FSDP with ``parallel="fsdp"``):
``torchrun --nproc-per-node 2 -m lrpath_core.train --store URL --spec spec.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, Field, model_validator
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from lrpath_core.checkpoint import (
    CheckpointState,
    list_checkpoints,
    read_checkpoint,
    remove_incomplete,
    restore_rng,
    step_dir,
    write_checkpoint,
)
from lrpath_core.config import ModelConfig, OptimizerConfig
from lrpath_core.data import BlockStream, load_blocks, load_manifest
from lrpath_core.errors import LrpathError
from lrpath_core.model import build_model, llama_config
from lrpath_core.schedules import LRPath, lr_scheduler
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef

ProgressFn = Callable[[int, int, float, float], None]
"""``(steps_done, end_step, loss, lr)`` after every optimizer step (rank 0 only)."""


class SegmentError(LrpathError):
    """A segment cannot run as specified; the message says what is inconsistent."""


class DataSpec(BaseModel):
    versions: list[int] = Field(min_length=1, description="store versions whose train blocks form the stream")
    order: Literal["within_version", "global"] = "within_version"
    batch_size: int = Field(ge=1)
    seed: int = 0


class SegmentSpec(BaseModel):
    run: str = Field(description="store-relative folder for this segment's checkpoints")
    init: str | None = Field(None, description="store-relative checkpoint to start from; None: seeded init")
    init_optimizer: bool = Field(True, description="also take the optimizer moments from `init`")
    start_step: int = Field(ge=0)
    end_step: int = Field(ge=1)
    lr_path: LRPath
    save_at: list[int] = Field(default_factory=list, description="steps-done at which checkpoints are kept")
    checkpoint_every: int = Field(50, ge=1, description="resume checkpoints every this many steps")
    data: DataSpec
    model: ModelConfig
    optimizer: OptimizerConfig
    vocab_size: int = Field(ge=2)
    config_hash: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool | None = Field(None, description="torch.compile; default on for CUDA, off for CPU")
    parallel: Literal["ddp", "fsdp"] = "ddp"
    progress_bar: bool = False

    @model_validator(mode="after")
    def _steps(self) -> SegmentSpec:
        if self.end_step <= self.start_step:
            raise ValueError(f"end_step ({self.end_step}) must be after start_step ({self.start_step})")
        bad = [s for s in self.save_at if not self.start_step < s <= self.end_step]
        if bad:
            raise ValueError(f"save_at steps {bad} are outside ({self.start_step}, {self.end_step}]")
        return self


class SegmentResult(BaseModel):
    run: str
    start_step: int
    end_step: int
    resumed_from: int | None = None
    steps_run: int
    checkpoints: dict[int, CheckpointRef]
    losses: list[tuple[int, float, float]] = Field(
        description="(step, loss, lr) for every step of the segment"
    )
    tokens: int
    seconds: float


@contextlib.contextmanager
def cpu_threads_shared_by(segments: int):
    """Split torch's CPU threads between ``segments`` segments that run side by side in threads.

    Two segments with the default thread count each oversubscribe the cores and run many times
    slower; on CUDA this changes nothing that matters.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, before // segments))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def data_hash(store: Store, spec: DataSpec) -> str:
    manifests = [load_manifest(store, v).data_sha256 for v in spec.versions]
    payload = json.dumps({"spec": spec.model_dump(), "data": manifests}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_stream(store: Store, spec: DataSpec) -> BlockStream:
    return BlockStream(
        [load_blocks(store, v, "train") for v in spec.versions], spec.batch_size, spec.seed, spec.order
    )


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _pick_device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SegmentError("device 'cuda' was asked for but no CUDA device is visible")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def make_optimizer(model: torch.nn.Module, cfg: OptimizerConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; fused kernels on CUDA."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups, lr=cfg.lr_max, betas=(cfg.beta1, cfg.beta2), eps=1e-8, fused=device.type == "cuda"
    )


def _full() -> StateDictOptions:
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


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


def _read_losses(store: Store, run: str, upto: int) -> list[tuple[int, float, float]]:
    if not store.exists(f"{run}/losses.json"):
        return []
    return [tuple(row) for row in store.read_json(f"{run}/losses.json") if row[0] < upto]  # type: ignore[misc]


def run_segment(store: Store, spec: SegmentSpec, progress: ProgressFn | None = None) -> SegmentResult:
    """Run (or resume, or find already done) one segment; see the module docstring."""
    rank, world, local_rank = _dist_info()
    device = _pick_device(spec.device, local_rank)
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
    d_hash = data_hash(store, spec.data)
    tokenizer_vocab = spec.vocab_size
    hf_config = llama_config(spec.model, tokenizer_vocab, stream.seq_len)

    if rank == 0:
        remove_incomplete(store, spec.run)
    if world > 1:
        dist.barrier()
    done_steps = [s for s in list_checkpoints(store, spec.run) if spec.start_step < s <= spec.end_step]
    resume_step = done_steps[-1] if done_steps else None
    source = f"{spec.run}/{step_dir(resume_step)}" if resume_step is not None else spec.init

    model = build_model(hf_config, spec.optimizer.seed).to(device)
    optimizer_state = None
    if source is not None:
        state, model_tensors, optimizer_state, rng = read_checkpoint(store, source)
        expected = resume_step if resume_step is not None else spec.start_step
        if state.step != expected:
            raise SegmentError(
                f"checkpoint {store.url_of(source)} is at step {state.step}, but segment {spec.run} "
                f"needs step {expected}"
            )
        if resume_step is not None and state.data_hash != d_hash:
            raise SegmentError(
                f"checkpoint {store.url_of(source)} was trained on other data (data hash {state.data_hash}, "
                f"now {d_hash}); remove {store.url_of(spec.run)} to start this segment again"
            )
        model.load_state_dict(model_tensors)
        restore_rng(rng)
        if resume_step is None and not spec.init_optimizer:
            optimizer_state = None
    else:
        torch.manual_seed(spec.optimizer.seed)

    wrapped = _wrap(model, spec, device, world)
    optimizer = make_optimizer(wrapped, spec.optimizer, device)
    if optimizer_state is not None:
        set_optimizer_state_dict(
            wrapped,
            optimizer,
            optim_state_dict=optimizer_state,
            options=StateDictOptions(full_state_dict=True),
        )
    first = resume_step if resume_step is not None else spec.start_step
    scheduler = lr_scheduler(optimizer, spec.lr_path.lr, first)
    use_compile = spec.compile if spec.compile is not None else device.type == "cuda"
    forward = torch.compile(wrapped) if use_compile else wrapped
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # the run folder's log keeps earlier segments of the same run (the main path) and drops
    # anything past this segment's restart point
    losses = _read_losses(store, spec.run, first)
    checkpoints: dict[int, CheckpointRef] = {}
    keep = set(spec.save_at) | {spec.end_step}
    per_rank = spec.data.batch_size // world
    micro = per_rank // spec.optimizer.grad_accum
    started = time.perf_counter()
    bar = _progress_bar(spec, first, rank)
    wrapped.train()
    for step in range(first, spec.end_step):
        batch = torch.from_numpy(stream.batch(step)[rank * per_rank : (rank + 1) * per_rank])
        lr = optimizer.param_groups[0]["lr"]
        total = torch.zeros((), device=device)
        for index in range(spec.optimizer.grad_accum):
            ids = batch[index * micro : (index + 1) * micro].to(device, non_blocking=True)
            sync = index == spec.optimizer.grad_accum - 1
            ctx = (
                wrapped.no_sync()
                if (world > 1 and not sync and hasattr(wrapped, "no_sync"))
                else contextlib.nullcontext()
            )
            with ctx, autocast:
                loss = forward(input_ids=ids, labels=ids).loss / spec.optimizer.grad_accum
            with ctx:
                loss.backward()
            total += loss.detach()
        if spec.optimizer.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(wrapped.parameters(), spec.optimizer.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if world > 1:
            dist.all_reduce(total, op=dist.ReduceOp.AVG if device.type == "cuda" else dist.ReduceOp.SUM)
            if device.type != "cuda":
                total /= world
        loss_value = float(total)
        if not math.isfinite(loss_value):
            raise SegmentError(
                f"loss became {loss_value} at step {step} of {spec.run}; lower lr_max or check the data"
            )
        losses.append((step, loss_value, lr))
        done = step + 1
        if rank == 0 and progress is not None:
            progress(done, spec.end_step, loss_value, lr)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        if done in keep or done % spec.checkpoint_every == 0:
            ref = _save(store, spec, wrapped, optimizer, done, loss_value, d_hash, losses, rank, world)
            if ref is not None:
                checkpoints[done] = ref
            if rank == 0:
                _prune(store, spec, done, keep)
    if bar is not None:
        bar.close()
    if rank == 0:
        for step in spec.save_at + [spec.end_step]:
            if step not in checkpoints:
                path = f"{spec.run}/{step_dir(step)}"
                from lrpath_core.checkpoint import read_manifest

                found = read_manifest(store, path, verify=False)
                checkpoints[step] = CheckpointRef(
                    url=store.url_of(path), step=step, sha256=found[1] if found else None
                )
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
        tokens=steps_run * spec.data.batch_size * stream.seq_len,
        seconds=time.perf_counter() - started,
    )


def _save(
    store: Store,
    spec: SegmentSpec,
    wrapped: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    done: int,
    loss: float,
    d_hash: str,
    losses: list[tuple[int, float, float]],
    rank: int,
    world: int,
) -> CheckpointRef | None:
    model_state = get_model_state_dict(wrapped, options=_full())
    optim_state = get_optimizer_state_dict(wrapped, optimizer, options=_full())
    ref = None
    if rank == 0:
        hf_model = wrapped.module if hasattr(wrapped, "module") else wrapped
        state = CheckpointState(
            step=done,
            data_position=done,
            lr_path=spec.lr_path,
            data_hash=d_hash,
            config_hash=spec.config_hash,
            param_groups=[],
            loss=loss,
        )
        store.write_json(f"{spec.run}/losses.json", [list(row) for row in losses])
        ref = write_checkpoint(
            store, f"{spec.run}/{step_dir(done)}", hf_model, model_state, optim_state, state
        )
    if world > 1:
        dist.barrier()
    return ref


def _prune(store: Store, spec: SegmentSpec, done: int, keep: set[int]) -> None:
    """Drop this segment's older resume-only checkpoints; kept steps, the newest and other segments' stay."""
    for step in list_checkpoints(store, spec.run):
        if spec.start_step < step < done and step not in keep:
            store.remove(f"{spec.run}/{step_dir(step)}", recursive=True)


def _progress_bar(spec: SegmentSpec, first: int, rank: int):
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.spec) as f:
        spec = SegmentSpec.model_validate_json(f.read())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if torch.cuda.is_available() and spec.device != "cpu" else "gloo"
        dist.init_process_group(backend=backend)
    try:
        result = run_segment(Store(args.store), spec)
        if args.result and _dist_info()[0] == 0:
            with open(args.result, "w") as f:
                f.write(result.model_dump_json())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
