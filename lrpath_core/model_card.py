"""The model card (``README.md``) of a published revision, in Hugging Face's format."""

from __future__ import annotations

import re
from typing import Any

from lrpath_core.lineage import LINEAGE, Lineage
from lrpath_core.published import CHECKSUMS

CARD = "README.md"


def model_card(lineage: Lineage, url: str) -> str:
    """The ``README.md`` of a published revision (a Hugging Face model card)."""
    v, main, branch = lineage.version, lineage.main_lr_path, lineage.branch_lr_path
    versions = "version 1" if v == 1 else f"versions 1–{v}"
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        "- lrpath",
        "- learning-rate-path-switching",
        "---",
        "",
        f"# lrpath v{v} (revision {lineage.revision})",
        "",
        f"Version {v} of a causal language model updated with learning-rate path switching: one main path "
        f"at a constant learning rate and, for this release, a branch that decays it. It has seen the data "
        f"of {versions} exactly once, in order.",
        "",
        "## Data",
        "",
        "| version | name | tokens | shards | data sha256 | manifest |",
        "|---|---|---|---|---|---|",
    ]
    for d in lineage.data:
        lines.append(
            f"| {d.version} | {d.name} | {d.tokens:,} | {d.shards} | `{d.data_sha256[:16]}…` | `{d.manifest}` |"
        )
    warmup = (
        f"linear warm-up 0 → η_max = {main.lr_max:g} over {main.warmup_steps} steps, then constant η_max"
        if main.warmup_steps
        else f"constant η_max = {main.lr_max:g}"
    )
    lines += [
        "",
        "## Steps and learning-rate path",
        "",
        f"- Steps: {lineage.cumulative_steps} optimizer steps in all (S_{v}); the branch is the last "
        f"B = {lineage.branch_steps} of them (decay ratio α = {lineage.alpha:g}).",
        f"- Main path: {warmup} up to the fork step {lineage.fork_step}.",
        f"- Branch: {lineage.decay} decay from η_max = {branch.lr_max:g} to η_min = {branch.lr_min:g} over "
        f"B = {lineage.branch_steps} steps, from the fork step {lineage.fork_step} to step "
        f"{lineage.fork_step + lineage.branch_steps}.",
        f"- Fork checkpoint: `{lineage.fork_checkpoint.url}` (manifest sha256 "
        f"`{lineage.fork_checkpoint.manifest_sha256[:16]}…`).",
        f"- Branch checkpoint: `{lineage.branch_checkpoint.url}`.",
        f"- Training configuration hash `{lineage.config_hash}`, code `{lineage.code_version}`.",
        "",
        "## Metrics",
        "",
    ]
    metric_rows = _metric_rows(lineage.metrics, v)
    if metric_rows:
        lines += ["| metric | value |", "|---|---|", *metric_rows]
    else:
        lines.append("No metrics were recorded for this release.")
    cost = _relative_cost_line(lineage.extra.get("relative_cost"))
    if cost:
        lines += ["", cost]
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{_local_hint(url, v, lineage.revision)}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{_local_hint(url, v, lineage.revision)}")',
        "```",
        "",
    ]
    if "://" in url:
        # cards already published name this import path: lrpath_core.publish re-exports it
        lines += [
            f"`{url}` is on an object store: copy it first, checksums verified, with",
            f'`lrpath_core.published.download_published(Store("<store url>"), {v}, {lineage.revision}, '
            f'"{_local_hint(url, v, lineage.revision)}")`.',
            "",
        ]
    lines += [
        f"`{CHECKSUMS}` lists the sha256 of every other file (`sha256sum -c {CHECKSUMS}`); `{LINEAGE}` "
        "records the checkpoints, data manifests, configuration and code this model comes from.",
        "",
    ]
    return "\n".join(lines)


def _relative_cost_line(cost: Any) -> str | None:
    """``relative_cost`` from the lineage extras: one number, or one per paradigm."""
    what = "Relative cost (optimizer steps run / PTFS's steps for the same versions)"
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return f"{what}: {cost:.3f}."
    if isinstance(cost, dict):
        parts = [f"{k} {v:.3f}" for k, v in cost.items() if isinstance(v, int | float)]
        return f"{what}: {', '.join(parts)}." if parts else None
    return None


def _metric_rows(metrics: dict[str, float], version: int) -> list[str]:
    rows = []
    if "ppl" in metrics:
        scope = "version 1" if version == 1 else f"versions 1–{version}"
        rows.append(f"| perplexity, token-weighted over {scope} (held-out) | {metrics['ppl']:.3f} |")
    per_version = sorted(
        (int(k[len("ppl_v") :]), value) for k, value in metrics.items() if re.fullmatch(r"ppl_v\d+", k)
    )
    rows += [f"| perplexity on version {n}'s held-out split | {value:.3f} |" for n, value in per_version]
    rows += [
        f"| {k} | {value:.6g} |"
        for k, value in sorted(metrics.items())
        if k != "ppl" and not re.fullmatch(r"ppl_v\d+", k)
    ]
    return rows


def _local_hint(url: str, version: int, revision: int) -> str:
    return url if "://" not in url else f"lrpath-v{version}-r{revision}"
