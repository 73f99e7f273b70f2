"""Perplexity of a checkpoint on each version's held-out blocks, token-weighted overall, and APPL."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import torch
from pydantic import BaseModel
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from lrpath_core.checkpoint import MODEL_FILE, read_manifest
from lrpath_core.packing import load_blocks
from lrpath_core.storage import Store

hf_logging.disable_progress_bar()


class Perplexity(BaseModel):
    per_version: dict[int, float]
    overall: float
    tokens: int

    def as_metrics(self) -> dict[str, float]:
        return {"ppl": self.overall, **{f"ppl_v{v}": p for v, p in self.per_version.items()}}


def load_model(store: Store, checkpoint_rel: str, device: torch.device | str = "cpu"):
    """A checkpoint (or published version) as a plain ``transformers`` model, checksums verified."""
    files, _ = read_manifest(store, checkpoint_rel, verify=True)
    with tempfile.TemporaryDirectory(prefix="lrpath-eval-") as tmp:
        for name in ("config.json", MODEL_FILE):
            store.get_file(f"{checkpoint_rel}/{name}", os.path.join(tmp, name))
        model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    return model.to(device).eval()


@torch.no_grad()
def nll_sum(
    model: torch.nn.Module, blocks: np.ndarray, batch_size: int, device: torch.device
) -> tuple[float, int]:
    """Summed next-token NLL over every block and the number of predicted tokens."""
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        ids = torch.from_numpy(blocks[start : start + batch_size].astype(np.int64)).to(device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        targets = ids[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"
        )
        total += float(loss)
        count += targets.numel()
    return total, count


def evaluate_checkpoint(
    store: Store, checkpoint_rel: str, versions: list[int], batch_size: int = 16, device: str = "auto"
) -> Perplexity:
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    model = load_model(store, checkpoint_rel, dev)
    per_version: dict[int, float] = {}
    all_nll, all_tokens = 0.0, 0
    for version in versions:
        nll, tokens = nll_sum(model, load_blocks(store, version, "val"), batch_size, dev)
        per_version[version] = math.exp(nll / tokens)
        all_nll += nll
        all_tokens += tokens
    return Perplexity(per_version=per_version, overall=math.exp(all_nll / all_tokens), tokens=all_tokens)


def appl(overall_ppls: list[float]) -> float:
    """APPL: the mean over versions of each released version's perplexity (paper, Figure 2)."""
    if not overall_ppls:
        raise ValueError("APPL needs at least one evaluated version")
    return float(sum(overall_ppls) / len(overall_ppls))
