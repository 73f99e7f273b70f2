"""``models/index.json``: the published revisions a reader trusts, and how a publish numbers them.

Revisions are immutable: the same weights with the same decay and α return the existing
revision; anything else becomes revision ``max + 1``. A publish holds its version's lease
(``locks/publish-v{N}``, on every store kind) from choosing the number to registering it, and
claims the number first with a create-only ``models/v{N}/r{K}.claim`` naming what it publishes. A
revision folder that is not in the index is therefore the leftover of a dead publish: the same
publish, run again, resumes it under the same number; another publish removes it and takes the
number (no number is skipped). Readers trust the index only.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from lrpath_core import layout
from lrpath_core.config import DecayShape
from lrpath_core.publish_error import PublishError
from lrpath_core.storage import StaleStateError, Store
from lrpath_core.timeline import Release

_REVISION = re.compile(r"^r(\d+)(?:\.claim)?$")
_INDEX_RETRIES = 5


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
        return Release(**self.model_dump(include=set(Release.model_fields)))


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
            f"version {version} revision {revision} is not published (not in {layout.MODEL_INDEX}; "
            f"published revisions of v{version}: {known})"
        )

    def find_all(self, version: int, sha256: str, decay: str, alpha: float) -> list[PublishedRevision]:
        """Revisions of exactly these weights, decay and α (normally one)."""
        return [r for r in self.revisions(version) if (r.sha256, r.decay, r.alpha) == (sha256, decay, alpha)]


def read_index(store: Store) -> ModelIndex:
    raw, _ = store.read_json_generation(layout.MODEL_INDEX)
    return ModelIndex.model_validate(raw) if raw is not None else ModelIndex()


class RevisionClaim(BaseModel):
    """``_CLAIM`` of a revision folder: what the publish that took the number publishes."""

    sha256: str
    decay: str
    alpha: float


def claim_revision(store: Store, version: int, claim: RevisionClaim) -> int:
    """The revision number for ``claim``, claimed in the store; call it holding the version's lease.

    An unregistered number claimed by the same publish is resumed; any other unregistered folder
    or claim is a dead publish's leftover and is removed, its number free again.
    """
    taken = {r.revision for r in read_index(store).revisions(version)}
    found = {int(m.group(1)) for n in store.ls(layout.version_models(version)) if (m := _REVISION.match(n))}
    for number in sorted(found - taken):
        marker = layout.revision_claim(version, number)
        if store.exists(marker) and RevisionClaim.model_validate_json(store.read_bytes(marker)) == claim:
            return number
        store.remove(layout.revision_dir(version, number), recursive=True)
        store.remove(marker)
    revision = max(taken, default=0) + 1
    marker = layout.revision_claim(version, revision)
    if not store.create(marker, claim.model_dump_json().encode()):
        raise StaleStateError(
            f"{store.url_of(marker)} was claimed by another publish meanwhile: publish again"
        )
    return revision


def add_to_index(store: Store, version: int, entry: PublishedRevision) -> None:
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
                layout.MODEL_INDEX, index.model_dump(mode="json", exclude={"generation"}), index.generation
            )
            return
        except StaleStateError:
            if attempt == _INDEX_RETRIES - 1:
                raise
