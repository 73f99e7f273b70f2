"""Every path inside a store, defined once.

A store is an fsspec URL (a local folder or ``s3://bucket/prefix``); everything in it lives at
one of the store-relative paths below. No other module builds a store path by formatting
strings: it calls these functions. File names *inside* a folder of a known format (a
checkpoint's ``manifest.json``, a published revision's ``checksums.sha256``) belong to the
module that defines that format.

```
config.json                          the settings the timeline was started with
timeline.json                        versions, steps, checkpoints, releases (single source of truth)
tokenizer/                           trained once on version 1
cache/tokens/{tok}/{shard}.npy       token ids of one shard, per tokenizer
data/v{N}/                           train.npy, val.npy, manifest.json (written last)
checkpoints/main/step-{S:08d}/       main-path checkpoints (fork points, version ends, resume)
checkpoints/branches/v{N}-{decay}-a{alpha}/step-{S:08d}/
models/index.json                    the published revisions a reader trusts
models/v{N}/r{K}/                    a published revision (Hugging Face layout)
models/.staging/                     where a publish assembles its files first
incoming/{name}/                     data drops waiting to be ingested (_READY marks complete)
quarantine/{name}/                   bad files of a held drop, each with a .reason.txt
locks/                               lock objects
reports/                             plots of the timeline
```

A comparison folder (``lrpath compare --out``) holds ``compare.json``, ``results.*``, its plots,
and one folder per seed (``seed-{s}/``) holding its own ``compare.json``, a shared data store
under ``data/`` and one store per paradigm run (``ptfs/{decay}/``, ``cpt/{keep|reset}/{decay}/``,
``cpt_replay/{keep|reset}-r{fraction}/{decay}/``, ``wsd_s/alpha-{alpha}/{decay}/``,
``infinite/alpha-{alpha}-plateau-{ratio}-cooldown-{fraction}/``, ``path_switching/alpha-{alpha}/``).
"""

from __future__ import annotations

import re

from lrpath_core.errors import LrpathError

NAME_PATTERN = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$")
"""Drop and version names: letters, digits, ``._-``; no ``/``; not ``.`` or ``..``."""


class BadNameError(LrpathError):
    """A drop, version or file name that could escape its folder or never be found again."""


def checked_name(name: str, what: str = "drop name") -> str:
    """``name`` if it is a safe drop/version name; else a clear error (before anything is written)."""
    if not NAME_PATTERN.match(name):
        raise BadNameError(
            f"{what} {name!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-' (no '/', not '.' or '..')"
        )
    return name


def checked_filename(filename: str) -> str:
    """A file name inside a drop: any characters but a path separator or NUL, and not ``.``/``..``."""
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename or "\0" in filename:
        raise BadNameError(f"file name {filename!r} is not allowed inside a data drop")
    return filename


CONFIG = "config.json"
TIMELINE = "timeline.json"
TOKENIZER = "tokenizer"
TOKENIZER_JSON = f"{TOKENIZER}/tokenizer.json"
MAIN_RUN = "checkpoints/main"
BRANCHES = "checkpoints/branches"
MODELS = "models"
MODEL_INDEX = f"{MODELS}/index.json"
MODEL_STAGING = f"{MODELS}/.staging"
INCOMING = "incoming"
QUARANTINE = "quarantine"
UPDATE_LOCK = "locks/version-update"
INGEST_LOCK = "locks/ingest"
LOCKS_CLOCK = "locks/.clock"
"""Probe objects that read an object store's clock and test its conditional writes."""
LR_PLOT = "reports/lr_paths.png"

READY_MARKER = "_READY"
HELD_MARKER = "_HELD"
SEGMENT_LOSSES = "losses.json"


def step_dir(step: int) -> str:
    """Name of a checkpoint folder inside a run: ``step-00000820``."""
    return f"step-{step:08d}"


def checkpoint(run: str, step: int) -> str:
    """The checkpoint of ``run`` (a store-relative run folder) after ``step`` optimizer steps."""
    return f"{run}/{step_dir(step)}"


def main_checkpoint(step: int) -> str:
    return checkpoint(MAIN_RUN, step)


def branch_run(version: int, decay: str, alpha: float) -> str:
    """The run folder of one branch of ``version``: a decay shape and α give another branch."""
    return f"{BRANCHES}/v{version}-{decay}-a{alpha:g}"


def losses(run: str) -> str:
    """A run folder's loss log: ``[step, loss, lr]`` for every optimizer step run in it."""
    return f"{run}/{SEGMENT_LOSSES}"


# one small function per path: alike in shape, each names a different place (merging would hide which)
def publish_lock(version: int) -> str:
    return f"locks/publish-v{version}"


def branch_lock(version: int, decay: str, alpha: float) -> str:
    return f"locks/branch-v{version}-{decay}-a{alpha:g}"


def data_dir(version: int) -> str:
    return f"data/v{version}"


def data_manifest(version: int) -> str:
    return f"{data_dir(version)}/manifest.json"


def data_blocks(version: int, split: str) -> str:
    return f"{data_dir(version)}/{split}.npy"


TOKEN_CACHE_DIR = "cache/tokens"


def token_cache(tokenizer_sha256: str, shard_sha256: str) -> str:
    return f"{TOKEN_CACHE_DIR}/{tokenizer_sha256[:16]}/{shard_sha256}.npy"


def revision_dir(version: int, revision: int) -> str:
    return f"{MODELS}/v{version}/r{revision}"


def revision_claim(version: int, revision: int) -> str:
    """Beside a revision folder: which publish (model sha256, decay, α) claimed that number."""
    return f"{revision_dir(version, revision)}.claim"


def version_models(version: int) -> str:
    """The folder holding every revision of one version."""
    return f"{MODELS}/v{version}"


def staging_dir(version: int, revision: int, attempt: str) -> str:
    return f"{MODEL_STAGING}/{staging_prefix(version, revision)}{attempt}"


def staging_prefix(version: int, revision: int) -> str:
    return f"v{version}-r{revision}-"


def incoming_dir(name: str) -> str:
    return f"{INCOMING}/{checked_name(name)}"


def incoming_file(name: str, filename: str) -> str:
    return f"{incoming_dir(name)}/{checked_filename(filename)}"


def quarantine_dir(name: str) -> str:
    return f"{QUARANTINE}/{checked_name(name)}"


def quarantine_file(name: str, filename: str) -> str:
    return f"{quarantine_dir(name)}/{checked_filename(filename)}"


COMPARE_GUARD = "compare.json"
COMPARE_DATA = "data"
COMPARE_RESULTS = "results.json"
COMPARE_TABLE = "results.txt"
COMPARE_PLOTS = ("lr_paths.png", "ppl_per_version.png", "cost_vs_appl.png")
RUN_RECORD = "run.json"
EVAL_CACHE = "eval.json"


def compare_seed(seed: int) -> str:
    """One seed's comparison inside a comparison folder: its data store, compare.json and runs."""
    return f"seed-{seed}"


def compare_baseline(paradigm: str, decay: str, variant: str | None = None) -> str:
    """A baseline's own store inside a seed's folder, keyed by its decay shape (``ptfs/cosine``,
    ``cpt/keep/1-sqrt``, ``cpt_replay/keep-r0.05/cosine``): another shape is another run."""
    return f"{paradigm}/{variant}/{decay}" if variant else f"{paradigm}/{decay}"


def compare_path_switching(alpha: float) -> str:
    return f"path_switching/alpha-{alpha:g}"


def compare_wsd_s(alpha: float, decay: str) -> str:
    """WSD-S's one trajectory: every decay lies on it, so α and the shape each give another run."""
    return f"wsd_s/alpha-{alpha:g}/{decay}"


def compare_infinite(alpha: float, plateau_ratio: float, cooldown: float) -> str:
    """The infinite schedule's store: its main path (plateau, cool-down) and its anneals (one run per
    shape, :func:`branch_run`), as path switching's store holds its branches."""
    return f"infinite/alpha-{alpha:g}-plateau-{plateau_ratio:g}-cooldown-{cooldown:g}"


def compare_eval_run(run: str, version: int) -> str:
    """Where the release of ``version`` from a run folder that holds several releases (WSD-S's
    trajectory) keeps its evaluation cache (:func:`eval_cache`)."""
    return f"evals/{run}/v{version}"


def compare_study(study: str, setting: str | None = None) -> str:
    """A stage study's folder in a comparison folder, or one setting's comparison folder in it."""
    return f"studies/{study}/{setting}" if setting else f"studies/{study}"


def compare_study_file(study: str, suffix: str) -> str:
    """A study's summary (``.json``) or plot (``.png``) next to its folder."""
    return f"studies/{study}{suffix}"


TRAJECTORY_RUN = "trajectory"
"""WSD-S's one run folder inside its store: every version's segment and release checkpoint."""
REPLAY_RECORD = "replay.json"


def replay_record(version: int) -> str:
    """In a CPT-with-replay store: how ``data/v{N}/train.npy`` was mixed (written after it)."""
    return f"{data_dir(version)}/{REPLAY_RECORD}"


def baseline_run(version: int) -> str:
    """The run folder of a baseline's release of ``version`` inside its store."""
    return f"v{version}"


def eval_cache(run: str) -> str:
    return f"{run}/{EVAL_CACHE}"


def run_record(decay: str | None = None) -> str:
    """Where a paradigm run's summary is kept in its store (one per branch shape for path switching)."""
    return RUN_RECORD if decay is None else f"run-{decay}.json"


ANNOUNCED_MARKER = "_ANNOUNCED"
"""In a drop's folder: the watcher or relay that created it announced the drop (once)."""
CLAIMED_MARKER = "_CLAIMED"
"""In a drop's folder: the id of the version-update run that ingests the drop."""
RECOVERED = f"{INCOMING}/_recovered"
"""Markers of re-announced versions (a name starting with ``_`` is never a drop)."""


def announced_marker(name: str) -> str:
    return incoming_file(name, ANNOUNCED_MARKER)


def claimed_marker(name: str) -> str:
    return incoming_file(name, CLAIMED_MARKER)


def recovery_marker(version: int, run_id: str) -> str:
    """Version ``version`` was announced again after run ``run_id`` crashed or failed."""
    return f"{RECOVERED}/v{version}-{checked_filename(run_id)}"
