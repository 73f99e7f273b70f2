"""Publishing a released version in Hugging Face layout, visible only once complete.

```
models/
  index.json                      # what a reader trusts: version → revisions (url, sha256, decay, metrics)
  v2/r1/                          # AutoModelForCausalLM / AutoTokenizer.from_pretrained read a copy of it
    config.json  generation_config.json  model.safetensors
    tokenizer.json  tokenizer_config.json  special_tokens_map.json
    README.md                     # model card: data, steps, LR path, metrics, how to load
    lineage.json                  # fork/branch checkpoints, data manifests, config hash, code version
    checksums.sha256              # `sha256sum -c` format over every other file; written last
  .staging/v2-r1-<uuid>/          # where a publish assembles and verifies its files first
```

A publish copies and writes every file under ``.staging/``, re-hashes the staged copies (the
checkpoint's against its manifest), moves them into ``v{i}/r{n}/`` with ``checksums.sha256``
last, and only then adds the revision to ``index.json``. A revision folder that is not in the
index is the leftover of a dead publish: readers never trust it, and a later publish removes it
once it is stale. Revisions are immutable: the same weights with the same decay and α return
the existing revision; anything else becomes revision ``max + 1``.

On a local store one publish at a time holds the index lock from start to end. Object stores
have no lock: the index update is generation-checked (and retried on a concurrent update of
another version), and leftovers count as stale only after :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lrpath_core.checkpoint import MODEL_FILE, STATE, CheckpointError, CheckpointState, read_manifest
from lrpath_core.config import DecayShape
from lrpath_core.data import load_manifest
from lrpath_core.errors import LrpathError
from lrpath_core.schedules import LRPath
from lrpath_core.storage import StaleStateError, Store, StoreError
from lrpath_core.timeline import Release
from lrpath_core.tokenizer import TOKENIZER_FILES

MODELS = "models"
INDEX = f"{MODELS}/index.json"
STAGING = f"{MODELS}/.staging"
CHECKSUMS = "checksums.sha256"
CARD = "README.md"
LINEAGE = "lineage.json"
CHECKPOINT_FILES = ("config.json", "generation_config.json", MODEL_FILE)
STALE_AFTER_S = 3600.0
"""On object stores, staging or revision leftovers younger than this may belong to a live publish."""

_REVISION_DIR = re.compile(r"^r(\d+)$")
_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential", re.IGNORECASE)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_INDEX_RETRIES = 5


class PublishError(LrpathError):
    """A version cannot be published as asked, or a published revision is missing or corrupt.

    Not a :class:`StoreError`: retrying cannot fix it. Transient trouble (a failed copy, a
    concurrent publish) raises ``StoreError`` / ``StaleStateError`` instead.
    """


class PublishedRevision(BaseModel):
    revision: int = Field(ge=1)
    path: str = Field(description="store-relative folder, e.g. models/v2/r1")
    url: str
    created_at: str
    sha256: str = Field(description="sha256 of model.safetensors")
    checksums_sha256: str = Field(description="sha256 of checksums.sha256, which pins every other file")
    decay: DecayShape
    alpha: float
    fork_step: int
    branch_steps: int
    metrics: dict[str, float] = Field(default_factory=dict)

    def release(self) -> Release:
        return Release(
            revision=self.revision,
            url=self.url,
            decay=self.decay,
            alpha=self.alpha,
            fork_step=self.fork_step,
            branch_steps=self.branch_steps,
            metrics=self.metrics,
            created_at=self.created_at,
        )


class ModelIndex(BaseModel):
    """``models/index.json``: the published versions; a revision folder counts only if listed here."""

    generation: int = 0
    versions: dict[int, list[PublishedRevision]] = Field(default_factory=dict)

    def revisions(self, version: int) -> list[PublishedRevision]:
        return sorted(self.versions.get(version, []), key=lambda r: r.revision)

    def latest(self, version: int) -> PublishedRevision | None:
        found = self.revisions(version)
        return found[-1] if found else None

    def get(self, version: int, revision: int) -> PublishedRevision:
        for entry in self.versions.get(version, []):
            if entry.revision == revision:
                return entry
        known = ", ".join(f"r{r.revision}" for r in self.revisions(version)) or "none"
        raise PublishError(
            f"version {version} revision {revision} is not published (not in {INDEX}; "
            f"published revisions of v{version}: {known})"
        )

    def find(self, version: int, sha256: str, decay: str, alpha: float) -> PublishedRevision | None:
        for entry in self.revisions(version):
            if entry.sha256 == sha256 and entry.decay == decay and entry.alpha == alpha:
                return entry
        return None


class CheckpointLineage(BaseModel):
    url: str
    step: int
    manifest_sha256: str


class DataLineage(BaseModel):
    version: int
    name: str
    manifest: str
    manifest_sha256: str
    data_sha256: str
    tokens: int
    shards: int


class Lineage(BaseModel):
    """``lineage.json``: where a published model comes from, enough to reproduce or audit it."""

    version: int
    revision: int
    model_sha256: str
    fork_checkpoint: CheckpointLineage
    branch_checkpoint: CheckpointLineage
    data: list[DataLineage]
    tokenizer_sha256: str
    config_hash: str
    code_version: str
    decay: DecayShape
    alpha: float
    fork_step: int
    branch_steps: int
    cumulative_steps: int
    main_lr_path: LRPath
    branch_lr_path: LRPath
    metrics: dict[str, float]
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: str


def read_index(store: Store) -> ModelIndex:
    raw, _ = store.read_json_generation(INDEX)
    return ModelIndex.model_validate(raw) if raw is not None else ModelIndex()


def revision_dir(version: int, revision: int) -> str:
    return f"{MODELS}/v{version}/r{revision}"


@functools.lru_cache(maxsize=1)
def current_code_version() -> str:
    """``git describe`` of the source checkout when there is one, else the installed package version."""
    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), "describe", "--tags", "--always"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
            if out.stdout.strip():
                return f"git:{out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return f"lrpath=={importlib.metadata.version('lrpath')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def publish_version(
    store: Store,
    version: int,
    checkpoint_url: str,
    *,
    decay: DecayShape,
    alpha: float,
    fork_step: int,
    branch_steps: int,
    metrics: dict[str, float],
    lineage_extra: dict[str, Any] | None = None,
    code_version: str | None = None,
) -> Release:
    """Publish the branch-end checkpoint of ``version`` as a new (or the identical existing) revision."""
    from lrpath_core.pipeline import TOKENIZER, main_checkpoint_rel  # runner may import this module

    ckpt_rel = _store_rel(store, checkpoint_url)
    ckpt_files, ckpt_manifest_sha = read_manifest(store, ckpt_rel, verify=False)
    missing = [name for name in ("config.json", MODEL_FILE) if name not in ckpt_files]
    if missing:
        raise PublishError(f"checkpoint {store.url_of(ckpt_rel)} has no {', '.join(missing)} to publish")
    state = CheckpointState.model_validate_json(store.read_bytes(f"{ckpt_rel}/{STATE}"))
    _check_branch_state(state, store.url_of(ckpt_rel), decay, fork_step, branch_steps)
    fork_rel = main_checkpoint_rel(fork_step)
    fork = read_manifest(store, fork_rel, verify=False, missing_ok=True)
    if fork is None:
        raise PublishError(
            f"fork checkpoint {store.url_of(fork_rel)} is missing: the lineage of version {version} needs it"
        )
    fork_state = CheckpointState.model_validate_json(store.read_bytes(f"{fork_rel}/{STATE}"))
    data = [_data_lineage(store, v) for v in range(1, version + 1)]
    tokenizer_names = [n for n in TOKENIZER_FILES if store.exists(f"{TOKENIZER}/{n}")]
    if "tokenizer.json" not in tokenizer_names:
        raise PublishError(f"no tokenizer at {store.url_of(TOKENIZER)}: a published model needs it")
    model_sha = ckpt_files[MODEL_FILE]

    with store.lock(INDEX):
        same = read_index(store).find(version, model_sha, decay, alpha)
        if same is not None:
            return same.release()
        revision = _next_revision(store, version)
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        lineage = Lineage(
            version=version,
            revision=revision,
            model_sha256=model_sha,
            fork_checkpoint=CheckpointLineage(
                url=store.url_of(fork_rel), step=fork_step, manifest_sha256=fork[1]
            ),
            branch_checkpoint=CheckpointLineage(
                url=store.url_of(ckpt_rel), step=state.step, manifest_sha256=ckpt_manifest_sha
            ),
            data=data,
            tokenizer_sha256=load_manifest(store, version).tokenizer_sha256,
            config_hash=state.config_hash,
            code_version=code_version or current_code_version(),
            decay=decay,
            alpha=alpha,
            fork_step=fork_step,
            branch_steps=branch_steps,
            cumulative_steps=state.step,
            main_lr_path=fork_state.lr_path,
            branch_lr_path=state.lr_path,
            metrics=metrics,
            extra=lineage_extra or {},
            created_at=created_at,
        )
        generated = {
            LINEAGE: (lineage.model_dump_json(indent=2) + "\n").encode(),
            CARD: model_card(lineage, store.url_of(revision_dir(version, revision))).encode(),
        }
        _refuse_secrets(store, generated)

        copied = {name: f"{ckpt_rel}/{name}" for name in CHECKPOINT_FILES if name in ckpt_files}
        copied.update({name: f"{TOKENIZER}/{name}" for name in tokenizer_names})
        staging = f"{STAGING}/v{version}-r{revision}-{uuid.uuid4().hex}"
        final = revision_dir(version, revision)
        try:
            checksums = _write_revision(store, staging, final, copied, ckpt_files, generated)
            entry = PublishedRevision(
                revision=revision,
                path=final,
                url=store.url_of(final),
                created_at=created_at,
                sha256=model_sha,
                checksums_sha256=hashlib.sha256(checksums).hexdigest(),
                decay=decay,
                alpha=alpha,
                fork_step=fork_step,
                branch_steps=branch_steps,
                metrics=metrics,
            )
            _add_to_index(store, version, entry)
        finally:
            # never hide the first error; a leftover is removed by the next publish of this revision
            with contextlib.suppress(Exception):
                store.remove(staging, recursive=True)
        _remove_stale_staging(store, registered=f"v{version}-r{revision}-")
    return entry.release()


def verify_published(store: Store, version: int, revision: int) -> None:
    """Re-hash every file of a published revision; the error names each file that fails."""
    entry = read_index(store).get(version, revision)
    expected = _trusted_checksums(store, entry)
    present = set(store.walk_files(entry.path)) - {CHECKSUMS}
    problems = [f"{name} is missing" for name in sorted(set(expected) - present)]
    problems += [f"{name} is not listed in {CHECKSUMS}" for name in sorted(present - set(expected))]
    for name in sorted(set(expected) & present):
        got = _hash_object(store, f"{entry.path}/{name}")
        if got != expected[name]:
            problems.append(
                f"{name} fails its sha256 check (expected {expected[name][:12]}…, got {got[:12]}…)"
            )
    if problems:
        raise PublishError(
            f"published v{version} r{revision} at {entry.url} is corrupt: {'; '.join(problems)}; "
            "restore the files or publish a new revision"
        )


def download_published(store: Store, version: int, revision: int, local_dir: str | os.PathLike[str]) -> str:
    """Copy a published revision to ``local_dir`` (for ``from_pretrained``), every file verified."""
    entry = read_index(store).get(version, revision)
    expected = _trusted_checksums(store, entry)
    target = os.path.abspath(local_dir)
    os.makedirs(target, exist_ok=True)
    for name, want in sorted(expected.items()):
        part = os.path.join(target, f".{name}.part-{uuid.uuid4().hex[:8]}")
        try:
            store.get_file(f"{entry.path}/{name}", part)
            got = _hash_local(part)
            if got != want:
                raise PublishError(
                    f"{entry.url}/{name} fails its sha256 check (expected {want[:12]}…, got {got[:12]}…): "
                    f"published v{version} r{revision} is corrupt"
                )
            os.replace(part, os.path.join(target, name))
        finally:
            if os.path.exists(part):
                os.remove(part)
    with open(os.path.join(target, CHECKSUMS), "w", encoding="utf-8") as f:
        f.write(format_checksums(expected))
    return target


def format_checksums(hashes: dict[str, str]) -> str:
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(hashes.items()))


def parse_checksums(text: str) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            sha, name = line.split(None, 1)
            hashes[name.lstrip("*")] = sha
    return hashes


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
        lines += [
            f"`{url}` is on an object store: copy it first, checksums verified, with",
            f'`lrpath_core.publish.download_published(Store("<store url>"), {v}, {lineage.revision}, '
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


def _store_rel(store: Store, url: str) -> str:
    if url == store.url or url.startswith(store.url.rstrip("/") + "/"):
        return url[len(store.url) :].strip("/")
    if "://" in url or os.path.isabs(url):
        raise PublishError(
            f"checkpoint {url} is not in the store {store.url}; publish from the store it lives in"
        )
    return url.strip("/")


def _check_branch_state(
    state: CheckpointState, url: str, decay: str, fork_step: int, branch_steps: int
) -> None:
    """The checkpoint must be the end of exactly the branch the card and lineage will describe."""
    path = state.lr_path
    wanted = (
        ("LR path", path.kind, "branch"),
        ("decay shape", path.shape, decay),
        ("fork step", path.start_step, fork_step),
        ("branch steps", path.length, branch_steps),
        ("step", state.step, fork_step + branch_steps),
    )
    wrong = [f"{what} is {got!r}, not {want!r}" for what, got, want in wanted if got != want]
    if wrong:
        raise PublishError(
            f"checkpoint {url} is not the end of a {decay} branch forked at step {fork_step} over "
            f"{branch_steps} steps: {'; '.join(wrong)}"
        )


def _data_lineage(store: Store, version: int) -> DataLineage:
    rel = f"data/v{version}/manifest.json"
    raw = store.read_bytes(rel)
    manifest = load_manifest(store, version)
    return DataLineage(
        version=version,
        name=manifest.name,
        manifest=store.url_of(rel),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        data_sha256=manifest.data_sha256,
        tokens=manifest.tokens,
        shards=len(manifest.shards),
    )


def _secret_values(store: Store) -> set[str]:
    values: set[str] = set()

    def collect(obj: Any, key: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                collect(v, str(k))
        elif isinstance(obj, list | tuple):
            for v in obj:
                collect(v, key)
        elif isinstance(obj, str) and _SECRET_KEY.search(key):
            values.add(obj)

    collect(store.storage_options, "")
    values.update(os.environ.get(name, "") for name in _SECRET_ENV)
    # short values (moto's "testing") would match ordinary words; real credentials are long
    return {v for v in values if len(v) >= 8}


def _refuse_secrets(store: Store, generated: dict[str, bytes]) -> None:
    secrets = _secret_values(store)
    for name, content in generated.items():
        text = content.decode("utf-8", errors="replace")
        if any(secret in text for secret in secrets):
            raise PublishError(
                f"{name} would contain a credential from the storage options or the environment; "
                "refusing to publish (check lineage_extra and the store URL)"
            )


def _hash_object(store: Store, rel: str) -> str:
    digest = hashlib.sha256()
    try:
        with store.open_read(rel) as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise StoreError(f"{store.url_of(rel)} does not exist") from exc
    return digest.hexdigest()


def _hash_local(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_revision(
    store: Store,
    staging: str,
    final: str,
    copied: dict[str, str],
    ckpt_files: dict[str, str],
    generated: dict[str, bytes],
) -> bytes:
    """Stage and verify every file, then move them into ``final`` with the checksums last."""
    for name, src in copied.items():
        _copy_object(store, src, f"{staging}/{name}")
    for name, content in generated.items():
        store.write_bytes(f"{staging}/{name}", content)
    hashes = _verify_staged(store, staging, copied, ckpt_files, generated)
    checksums = format_checksums(hashes).encode()
    store.write_bytes(f"{staging}/{CHECKSUMS}", checksums)
    for name in sorted(hashes):
        _place_file(store, f"{staging}/{name}", f"{final}/{name}")
    _place_file(store, f"{staging}/{CHECKSUMS}", f"{final}/{CHECKSUMS}")
    _check_placed(store, final, hashes, checksums)
    return checksums


def _copy_object(store: Store, src_rel: str, dst_rel: str) -> None:
    """Copy inside the store: a streamed file copy locally, a server-side copy on object stores."""
    src, dst = store._path(src_rel), store._path(dst_rel)
    if store.is_local:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    else:
        store.fs.copy(src, dst)


def _place_file(store: Store, staged_rel: str, final_rel: str) -> None:
    """Move one staged file into the revision folder (a rename locally, a server-side copy on S3)."""
    if store.is_local:
        dst = store._path(final_rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(store._path(staged_rel), dst)
    else:
        store.fs.copy(store._path(staged_rel), store._path(final_rel))


def _verify_staged(
    store: Store,
    staging: str,
    copied: dict[str, str],
    ckpt_files: dict[str, str],
    generated: dict[str, bytes],
) -> dict[str, str]:
    """sha256 of every staged file, read back from the store; checkpoint files must match their manifest."""
    hashes: dict[str, str] = {}
    for name, src in sorted(copied.items()):
        got = _hash_object(store, f"{staging}/{name}")
        want = ckpt_files.get(name) if name in CHECKPOINT_FILES else None
        if want is not None and got != want:
            checkpoint = store.url_of(src.rsplit("/", 1)[0])
            if _hash_object(store, src) != want:
                raise CheckpointError(
                    f"checkpoint file {checkpoint}/{name} fails its sha256 check (expected {want[:12]}…): "
                    "it is corrupt; restore it or re-run the branch"
                )
            raise StoreError(f"the staged copy of {checkpoint}/{name} differs from its source: retry")
        hashes[name] = got
    for name, content in generated.items():
        want = hashlib.sha256(content).hexdigest()
        got = _hash_object(store, f"{staging}/{name}")
        if got != want:
            raise StoreError(f"staged {name} reads back with another sha256 than was written: retry")
        hashes[name] = got
    return hashes


def _check_placed(store: Store, final: str, hashes: dict[str, str], checksums: bytes) -> None:
    """Cheap check that the revision folder holds this publish's files (sizes and the checksums file)."""
    present = set(store.walk_files(final))
    lost = sorted((set(hashes) | {CHECKSUMS}) - present)
    if lost or store.read_bytes(f"{final}/{CHECKSUMS}") != checksums:
        raise StaleStateError(
            f"{store.url_of(final)} does not hold what this publish wrote"
            + (f" (missing {', '.join(lost)})" if lost else " (another publish wrote there)")
        )


def _trusted_checksums(store: Store, entry: PublishedRevision) -> dict[str, str]:
    raw = store.read_bytes(f"{entry.path}/{CHECKSUMS}")
    got = hashlib.sha256(raw).hexdigest()
    if got != entry.checksums_sha256:
        raise PublishError(
            f"{entry.url}/{CHECKSUMS} fails its sha256 check against {INDEX} "
            f"(expected {entry.checksums_sha256[:12]}…, got {got[:12]}…): the revision was modified"
        )
    hashes = parse_checksums(raw.decode("utf-8"))
    if hashes.get(MODEL_FILE) != entry.sha256:
        raise PublishError(f"{entry.url}/{CHECKSUMS} lists another {MODEL_FILE} than {INDEX} does")
    return hashes


def _age_s(store: Store, rel: str) -> float:
    """Seconds since the newest object under ``rel`` was written (inf when nothing is there)."""
    try:
        found = store.fs.find(store._path(rel), detail=True)
    except FileNotFoundError:
        return float("inf")
    newest = 0.0
    for info in found.values():
        stamp = info.get("mtime", info.get("LastModified"))
        if isinstance(stamp, datetime):
            stamp = stamp.timestamp()
        if stamp is not None:
            newest = max(newest, float(stamp))
    return time.time() - newest if newest else float("inf")


def _is_stale(store: Store, rel: str) -> bool:
    # a local publish holds the index lock throughout, so any leftover it sees is from a dead run
    return store.is_local or _age_s(store, rel) >= STALE_AFTER_S


def _next_revision(store: Store, version: int) -> int:
    """max + 1 over the index; stale leftover folders are removed, fresh ones (object stores) skipped."""
    taken = {r.revision for r in read_index(store).revisions(version)}
    for name in store.ls(f"{MODELS}/v{version}"):
        match = _REVISION_DIR.match(name)
        if not match or int(match.group(1)) in taken:
            continue
        rel = f"{MODELS}/v{version}/{name}"
        if _is_stale(store, rel):
            store.remove(rel, recursive=True)
        else:
            taken.add(int(match.group(1)))
    return max(taken, default=0) + 1


def _add_to_index(store: Store, version: int, entry: PublishedRevision) -> None:
    """Generation-checked read-modify-write; retried when another version's publish got there first."""
    for attempt in range(_INDEX_RETRIES):
        index = read_index(store)
        if any(r.revision == entry.revision for r in index.revisions(version)):
            raise StaleStateError(
                f"another publish registered v{version} r{entry.revision} meanwhile; "
                f"publish again to get a new revision"
            )
        index.versions.setdefault(version, []).append(entry)
        index.versions[version].sort(key=lambda r: r.revision)
        try:
            store.write_json_checked(
                INDEX, index.model_dump(mode="json", exclude={"generation"}), index.generation
            )
            return
        except StaleStateError:
            if attempt == _INDEX_RETRIES - 1:
                raise


def _remove_stale_staging(store: Store, registered: str = "") -> None:
    """Stale staging leftovers, and those of earlier tries of the revision just ``registered``
    (their cleanup may have failed with the store unreachable; any publish still staging that
    revision can only fail now, since the index lists it)."""
    for name in store.ls(STAGING):
        if (registered and name.startswith(registered)) or _is_stale(store, f"{STAGING}/{name}"):
            store.remove(f"{STAGING}/{name}", recursive=True)
    if store.is_local:
        try:
            os.rmdir(store._path(STAGING))
        except OSError:
            pass
