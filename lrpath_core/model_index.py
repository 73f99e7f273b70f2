"""``models/index.json``: the published revisions a reader trusts, and how a publish numbers them.

A revision folder that is not in the index is the leftover of a dead publish: readers never
trust it, and a later publish removes it once it is stale. Revisions are immutable: the same
weights with the same decay and α return the existing revision; anything else becomes revision
``max + 1``.

On a local store one publish at a time holds the index lock from start to end. Object stores
have no lock: the index update is generation-checked (and retried on a concurrent update of
another version), and leftovers count as stale only after :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from lrpath_core import layout
from lrpath_core.config import DecayShape
from lrpath_core.publish_error import PublishError
from lrpath_core.storage import StaleStateError, Store
from lrpath_core.timeline import Release

STALE_AFTER_S = 3600.0
"""On object stores, staging or revision leftovers younger than this may belong to a live publish."""

_REVISION_DIR = re.compile(r"^r(\d+)$")
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

    def find(self, version: int, sha256: str, decay: str, alpha: float) -> PublishedRevision | None:
        for entry in self.revisions(version):
            if entry.sha256 == sha256 and entry.decay == decay and entry.alpha == alpha:
                return entry
        return None


def read_index(store: Store) -> ModelIndex:
    raw, _ = store.read_json_generation(layout.MODEL_INDEX)
    return ModelIndex.model_validate(raw) if raw is not None else ModelIndex()


def is_stale(store: Store, rel: str) -> bool:
    """Whether a leftover (staging or unregistered revision folder) can be removed."""
    # a local publish holds the index lock throughout, so any leftover it sees is from a dead run
    return store.is_local or store.age_s(rel) >= STALE_AFTER_S


def next_revision(store: Store, version: int) -> int:
    """max + 1 over the index; stale leftover folders are removed, fresh ones (object stores) skipped."""
    taken = {r.revision for r in read_index(store).revisions(version)}
    folder = layout.version_models(version)
    for name in store.ls(folder):
        match = _REVISION_DIR.match(name)
        if not match or int(match.group(1)) in taken:
            continue
        rel = f"{folder}/{name}"
        if is_stale(store, rel):
            store.remove(rel, recursive=True)
        else:
            taken.add(int(match.group(1)))
    return max(taken, default=0) + 1


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
