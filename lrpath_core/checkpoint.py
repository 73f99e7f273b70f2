"""Training checkpoints: a folder of plainly named files, complete only once ``manifest.json`` exists.

```
step-00000820/
  config.json, generation_config.json, model.safetensors   # AutoModelForCausalLM.from_pretrained works
  optimizer.safetensors                                     # AdamW moments, keyed "<param fqn>::<name>"
  rng.safetensors                                           # torch CPU (and CUDA) generator states
  state.json                                                # step (= data position), LR path, param groups, hashes
  manifest.json                                             # sha256 of every file above; written last
```

Nothing is ever unpickled: tensors come from safetensors, the rest is JSON. On a local store the
folder is assembled under a temporary name, every file and the folder fsynced, then renamed into
place and the parent fsynced (a power cut leaves the folder whole or absent); on an object store
the manifest is the last object written, and a folder without a verifying manifest is not a
checkpoint. A folder that fails its manifest check is moved aside (:func:`move_aside`) to
``step-00000820.corrupt-<time>``, which nothing lists, loads or deletes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging

from lrpath_core import layout
from lrpath_core.checkpoint_error import CheckpointError
from lrpath_core.schedules import LRPath
from lrpath_core.storage import Store, StoreError, fsync_dir, sha256_file
from lrpath_core.timeline import CheckpointRef

hf_logging.disable_progress_bar()

MANIFEST = "manifest.json"
STATE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STEP_DIR = re.compile(r"^step-(\d{8})$")  # the folder names layout.step_dir gives
CORRUPT_MARK = ".corrupt-"  # in the name of a folder moved aside by move_aside


class CheckpointState(BaseModel):
    step: int = Field(
        ge=0,
        description=(
            "optimizer steps done, which is also the data position: step s trains on batch s of the "
            "stream, so the next step to run and the next batch to read are both this number"
        ),
    )
    lr_path: LRPath
    data_hash: str
    config_hash: str
    param_groups: list[dict[str, Any]]
    loss: float | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def _optimizer_tensors(optim_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors: dict[str, torch.Tensor] = {}
    for fqn, slots in optim_state["state"].items():
        for name, value in slots.items():
            tensors[f"{fqn}::{name}"] = (
                (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu().contiguous()
            )
    groups = []
    for group in optim_state["param_groups"]:
        # the LR lives in the LR path, not here: the scheduler's bookkeeping keys are left out
        clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "initial_lr"}
        groups.append(clean)
    return tensors, groups


def _optimizer_state_from(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        fqn, name = key.rsplit("::", 1)
        state.setdefault(fqn, {})[name] = value
    restored = []
    for group in groups:
        g = dict(group)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        restored.append(g)
    return {"state": state, "param_groups": restored}


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{index}"] = state
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def write_checkpoint(
    store: Store,
    rel: str,
    hf_model: Any,
    model_state: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
    state: CheckpointState,
) -> CheckpointRef:
    """Write a checkpoint folder at ``rel`` (store-relative); the manifest makes it visible.

    It is durable when this returns: on a local store every file, the folder and the rename are
    fsynced; on an object store the manifest is the last PUT.
    """
    existing = read_manifest(store, rel, verify=False, missing_ok=True)
    if existing is not None:
        return CheckpointRef(url=store.url_of(rel), step=state.step, sha256=existing[1])

    def write(folder: str) -> bytes:
        return _write_files(folder, hf_model, model_state, optim_state, state, rel)

    if store.is_local:
        manifest_sha = _place_local(store, rel, write)
    else:
        with tempfile.TemporaryDirectory(prefix="lrpath-ckpt-") as tmp:
            manifest = write(tmp)
            for name in sorted(os.listdir(tmp)):
                store.put_file(os.path.join(tmp, name), f"{rel}/{name}")
            store.write_bytes(f"{rel}/{MANIFEST}", manifest)
        manifest_sha = hashlib.sha256(manifest).hexdigest()
    return CheckpointRef(url=store.url_of(rel), step=state.step, sha256=manifest_sha)


def _write_files(
    folder: str,
    hf_model: Any,
    model_state: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
    state: CheckpointState,
    rel: str,
) -> bytes:
    """Every file but the manifest into ``folder``; returns the manifest's bytes."""
    hf_model.save_pretrained(folder, state_dict=model_state)
    if not os.path.exists(os.path.join(folder, MODEL_FILE)):
        raise CheckpointError(f"save_pretrained wrote no {MODEL_FILE} for {rel}")
    optim_tensors, groups = _optimizer_tensors(optim_state)
    save_file(optim_tensors, os.path.join(folder, OPTIMIZER_FILE))
    save_file(rng_tensors(), os.path.join(folder, RNG_FILE))
    state = state.model_copy(update={"param_groups": groups})
    with open(os.path.join(folder, STATE), "w") as f:
        f.write(state.model_dump_json(indent=2))
    files = {name: sha256_file(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}
    return json.dumps({"files": files, "step": state.step}, indent=2, sort_keys=True).encode()


def _place_local(store: Store, rel: str, write: Callable[[str], bytes]) -> str:
    """Assemble the folder beside ``rel`` under a temporary name and rename it into place; the manifest's sha256.

    The parent is fsynced after the rename (and everything in the folder before it), so that after
    a power cut the folder is either absent or whole.
    """
    final = store.local_path(rel)
    parent = os.path.dirname(final)
    _makedirs_durable(parent)
    staging = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
    manifest = _stage(staging, write)
    try:
        os.rename(staging, final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        found = read_manifest(store, rel, verify=False, missing_ok=True)
        if found is None:
            raise
        return found[1]  # another writer placed this checkpoint first
    fsync_dir(parent)
    return hashlib.sha256(manifest).hexdigest()


def _stage(staging: str, write: Callable[[str], bytes]) -> bytes:
    """Write the files into ``staging``, fsync each, then the manifest, then the folder itself."""
    os.mkdir(staging)
    try:
        manifest = write(staging)
        for name in sorted(os.listdir(staging)):
            _fsync_file(os.path.join(staging, name))
        _write_durable(os.path.join(staging, MANIFEST), manifest)
        fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _makedirs_durable(path: str) -> None:
    """``os.makedirs`` that also fsyncs the parent of every folder it creates."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.makedirs(folder, exist_ok=True)
        fsync_dir(os.path.dirname(folder))


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_durable(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(
    store: Store, rel: str, verify: bool = True, missing_ok: bool = False
) -> tuple[dict[str, str], str] | None:
    """``(files → sha256, manifest sha256)``; with ``verify`` every file is re-hashed."""
    if not store.exists(f"{rel}/{MANIFEST}"):
        if missing_ok:
            return None
        raise CheckpointError(
            f"checkpoint {store.url_of(rel)} is missing or incomplete (no {MANIFEST}); "
            "re-run the step that writes it"
        )
    raw = store.read_bytes(f"{rel}/{MANIFEST}")
    try:
        files: dict[str, str] = dict(json.loads(raw)["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {store.url_of(rel)}/{MANIFEST} is unreadable ({type(exc).__name__}: {exc}): "
            "it is corrupt; restore it or re-run the step"
        ) from exc
    if verify:
        for name, want in files.items():
            _verify_file(store, f"{rel}/{name}", want)
    return files, hashlib.sha256(raw).hexdigest()


def _verify_file(store: Store, rel: str, want: str) -> None:
    try:
        got = store.sha256(rel)
    except StoreError as exc:
        raise CheckpointError(
            f"checkpoint file {store.url_of(rel)} is missing: restore it or re-run the step"
        ) from exc
    _check_sha(store.url_of(rel), got, want)


def _check_sha(url: str, got: str, want: str) -> None:
    if got != want:
        raise CheckpointError(
            f"checkpoint file {url} fails its sha256 check "
            f"(expected {want[:12]}…, got {got[:12]}…): it is corrupt; restore it or re-run the step"
        )


def read_checkpoint(
    store: Store, rel: str
) -> tuple[CheckpointState, dict[str, torch.Tensor], dict[str, Any], dict]:
    """Verified ``(state, model tensors, optimizer state, rng tensors)`` of a checkpoint folder.

    The tensor files are read from the store once: their local copies are checked against the
    manifest before they are loaded; the small files are checked in the store.
    """
    files, _ = read_manifest(store, rel, verify=False)
    tensors = (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)
    for name, want in files.items():
        if name not in tensors:
            _verify_file(store, f"{rel}/{name}", want)
    with tempfile.TemporaryDirectory(prefix="lrpath-load-") as tmp:
        for name in tensors:
            local = os.path.join(tmp, name)
            try:
                store.get_file(f"{rel}/{name}", local)
            except StoreError as exc:
                raise CheckpointError(
                    f"checkpoint file {store.url_of(rel)}/{name} is missing: restore it or re-run the step"
                ) from exc
            _check_sha(store.url_of(f"{rel}/{name}"), sha256_file(local), files.get(name, ""))
        model_tensors = load_file(os.path.join(tmp, MODEL_FILE))
        optim_tensors = load_file(os.path.join(tmp, OPTIMIZER_FILE))
        rng = load_file(os.path.join(tmp, RNG_FILE))
    state = CheckpointState.model_validate_json(store.read_bytes(f"{rel}/{STATE}"))
    return state, model_tensors, _optimizer_state_from(optim_tensors, state.param_groups), rng


def list_checkpoints(store: Store, run_rel: str) -> list[int]:
    """Steps of the complete (manifest present) checkpoints under a run folder, ascending."""
    steps = []
    for name in store.ls(run_rel):
        match = STEP_DIR.match(name)
        if match and store.exists(f"{layout.checkpoint(run_rel, int(match.group(1)))}/{MANIFEST}"):
            steps.append(int(match.group(1)))
    return sorted(steps)


def remove_incomplete(store: Store, run_rel: str) -> list[str]:
    """Delete leftovers of interrupted writes (staging folders, folders without a manifest).

    Folders moved aside as corrupt (:func:`move_aside`) are kept for inspection.
    """
    removed = []
    for name in store.ls(run_rel):
        complete = STEP_DIR.match(name) and store.exists(f"{run_rel}/{name}/{MANIFEST}")
        if CORRUPT_MARK in name or complete:
            continue
        if name.startswith("step-") or ".tmp-" in name:
            store.remove(f"{run_rel}/{name}", recursive=True)
            removed.append(name)
    return removed


def remove_checkpoint(store: Store, rel: str) -> None:
    """Delete a checkpoint manifest first, so that a removal cut short leaves no "complete" folder with missing files."""
    store.remove(f"{rel}/{MANIFEST}")
    if store.is_local and os.path.isdir(store.local_path(rel)):
        fsync_dir(store.local_path(rel))
    store.remove(rel, recursive=True)


def aside_name(rel: str, when: datetime) -> str:
    """Where a corrupt checkpoint folder goes: a sibling no listing takes for a checkpoint or a leftover."""
    return f"{rel}{CORRUPT_MARK}{when.strftime('%Y%m%dT%H%M%S%fZ')}"


def move_aside(store: Store, rel: str) -> str:
    """Move a checkpoint folder that fails its manifest check out of the way (never deleted); its new path."""
    aside = aside_name(rel, datetime.now(UTC))
    if store.is_local:
        os.rename(store.local_path(rel), store.local_path(aside))
        fsync_dir(os.path.dirname(store.local_path(rel)))
        return aside
    names = list(store.walk_files(rel))
    for name in names:
        store.copy(f"{rel}/{name}", f"{aside}/{name}")
    store.remove(f"{rel}/{MANIFEST}")  # no longer a checkpoint from here on, even if cut short
    store.remove(rel, recursive=True)
    return aside
