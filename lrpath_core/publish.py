"""Publishing a released version in Hugging Face layout, visible only once complete.

```
models/
  index.json                      # what a reader trusts (lrpath_core.model_index)
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
last, and only then adds the revision to ``index.json``. It holds its version's lease
(``locks/publish-v{N}``) throughout, on every store kind, so two publishes of one version (a
``rerun-branch`` beside a deployed update, two CLI users, two workers) run one after the other.
How revisions are numbered and claimed is :mod:`lrpath_core.model_index`'s business; reading a
published revision back is :mod:`lrpath_core.published`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from lrpath_core import layout
from lrpath_core.checkpoint import MODEL_FILE, STATE, CheckpointError, CheckpointState, read_manifest
from lrpath_core.config import DecayShape
from lrpath_core.lineage import LINEAGE, CheckpointLineage, Lineage, current_code_version, data_lineage
from lrpath_core.model_card import CARD, model_card
from lrpath_core.model_index import PublishedRevision, RevisionClaim, add_to_index, claim_revision, read_index
from lrpath_core.packing import load_manifest
from lrpath_core.publish_error import PublishError
from lrpath_core.published import CHECKSUMS, format_checksums, verify_published
from lrpath_core.secret_scan import refuse_secrets
from lrpath_core.storage import StaleStateError, Store, StoreError
from lrpath_core.timeline import Release
from lrpath_core.tokenizer import TOKENIZER_FILES

log = logging.getLogger(__name__)
CHECKPOINT_FILES = ("config.json", "generation_config.json", MODEL_FILE)


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
    ckpt_rel = _checkpoint_rel(store, checkpoint_url)
    ckpt_files, ckpt_manifest_sha = read_manifest(store, ckpt_rel, verify=False)
    missing = [name for name in ("config.json", MODEL_FILE) if name not in ckpt_files]
    if missing:
        raise PublishError(f"checkpoint {store.url_of(ckpt_rel)} has no {', '.join(missing)} to publish")
    state = CheckpointState.model_validate_json(store.read_bytes(f"{ckpt_rel}/{STATE}"))
    _check_branch_state(state, store.url_of(ckpt_rel), decay, fork_step, branch_steps)
    fork_rel = layout.main_checkpoint(fork_step)
    fork = read_manifest(store, fork_rel, verify=False, missing_ok=True)
    if fork is None:
        raise PublishError(
            f"fork checkpoint {store.url_of(fork_rel)} is missing: the lineage of version {version} needs it"
        )
    fork_state = CheckpointState.model_validate_json(store.read_bytes(f"{fork_rel}/{STATE}"))
    data = [data_lineage(store, v) for v in range(1, version + 1)]
    tokenizer_names = [n for n in TOKENIZER_FILES if store.exists(f"{layout.TOKENIZER}/{n}")]
    if "tokenizer.json" not in tokenizer_names:
        raise PublishError(f"no tokenizer at {store.url_of(layout.TOKENIZER)}: a published model needs it")
    model_sha = ckpt_files[MODEL_FILE]

    def waiting(holder: str) -> None:
        log.info(
            "another publish of v%d holds %s (%s): waiting", version, layout.publish_lock(version), holder
        )

    with store.lease(layout.publish_lock(version), on_wait=waiting):
        same = _verified_same(store, version, model_sha, decay, alpha)
        if same is not None:
            return same.release()
        _remove_staging_leftovers(store, version)
        revision = claim_revision(store, version, RevisionClaim(sha256=model_sha, decay=decay, alpha=alpha))
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
        final = layout.revision_dir(version, revision)
        generated = {
            LINEAGE: (lineage.model_dump_json(indent=2) + "\n").encode(),
            CARD: model_card(lineage, store.url_of(final)).encode(),
        }
        copied = {name: f"{ckpt_rel}/{name}" for name in CHECKPOINT_FILES if name in ckpt_files}
        copied.update({name: f"{layout.TOKENIZER}/{name}" for name in tokenizer_names})
        staging = layout.staging_dir(version, revision, uuid.uuid4().hex)
        try:
            refuse_secrets(store, generated)
            checksums = _write_revision(store, staging, final, copied, ckpt_files, generated)
        except (PublishError, CheckpointError):
            # refused (not interrupted): nothing of it stays, and its number is free again
            store.remove(final, recursive=True)
            store.remove(layout.revision_claim(version, revision))
            raise
        finally:
            # never hide the first error; a leftover is removed by the next publish of this version
            with contextlib.suppress(Exception):
                store.remove(staging, recursive=True)
            store.remove_if_empty(layout.MODEL_STAGING)
        add_to_index(
            store,
            version,
            PublishedRevision(
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
            ),
        )
    return read_index(store).get(version, revision).release()


def _verified_same(
    store: Store, version: int, model_sha: str, decay: str, alpha: float
) -> PublishedRevision | None:
    """An existing revision of exactly this model, decay and α whose files still verify."""
    for entry in read_index(store).find_all(version, model_sha, decay, alpha):
        try:
            verify_published(store, version, entry.revision)
        except PublishError as exc:
            log.warning("%s: publishing a new revision instead", exc)
            continue
        return entry
    return None


def _checkpoint_rel(store: Store, url: str) -> str:
    try:
        return store.relative(url)
    except StoreError:
        raise PublishError(
            f"checkpoint {url} is not in the store {store.url}; publish from the store it lives in"
        ) from None


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
        store.copy(src, f"{staging}/{name}")
    for name, content in generated.items():
        store.write_bytes(f"{staging}/{name}", content)
    hashes = _verify_staged(store, staging, copied, ckpt_files, generated)
    checksums = format_checksums(hashes).encode()
    store.write_bytes(f"{staging}/{CHECKSUMS}", checksums)
    for name in sorted(hashes):
        store.place(f"{staging}/{name}", f"{final}/{name}")
    store.place(f"{staging}/{CHECKSUMS}", f"{final}/{CHECKSUMS}")
    _check_placed(store, final, hashes, checksums)
    return checksums


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
        got = store.sha256(f"{staging}/{name}")
        want = ckpt_files.get(name) if name in CHECKPOINT_FILES else None
        if want is not None and got != want:
            checkpoint = store.url_of(src.rsplit("/", 1)[0])
            if store.sha256(src) != want:
                raise CheckpointError(
                    f"checkpoint file {checkpoint}/{name} fails its sha256 check (expected {want[:12]}…): "
                    "it is corrupt; restore it or re-run the branch"
                )
            raise StoreError(f"the staged copy of {checkpoint}/{name} differs from its source: retry")
        hashes[name] = got
    for name, content in generated.items():
        want = hashlib.sha256(content).hexdigest()
        got = store.sha256(f"{staging}/{name}")
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


def _remove_staging_leftovers(store: Store, version: int) -> None:
    """Staging folders of this version are a dead publish's: this one holds the version's lease."""
    for name in store.ls(layout.MODEL_STAGING):
        if name.startswith(f"v{version}-"):
            store.remove(f"{layout.MODEL_STAGING}/{name}", recursive=True)
