"""Reading published revisions back: every file checked against the checksums the index pins.

The index pins a revision's ``checksums.sha256`` by its sha256, and that file lists the sha256 of
every other file of the revision (``sha256sum -c`` format), so one trusted hash covers them all.
"""

from __future__ import annotations

import hashlib
import os
import uuid

from lrpath_core import layout
from lrpath_core.checkpoint import MODEL_FILE
from lrpath_core.model_index import PublishedRevision, read_index
from lrpath_core.publish_error import PublishError
from lrpath_core.storage import Store, StoreError, sha256_file

CHECKSUMS = "checksums.sha256"


def verify_published(store: Store, version: int, revision: int) -> None:
    """Re-hash every file of a published revision; the error names each file that fails."""
    entry = read_index(store).get(version, revision)
    expected = trusted_checksums(store, entry)
    present = set(store.walk_files(entry.path)) - {CHECKSUMS}
    problems = [f"{name} is missing" for name in sorted(set(expected) - present)]
    problems += [f"{name} is not listed in {CHECKSUMS}" for name in sorted(present - set(expected))]
    for name in sorted(set(expected) & present):
        got = store.sha256(f"{entry.path}/{name}")
        if got != expected[name]:
            problems.append(
                f"{name} fails its sha256 check (expected {expected[name][:12]}…, got {got[:12]}…)"
            )
    if problems:
        raise PublishError(
            f"published v{version} r{revision} at {entry.url} is corrupt: {'; '.join(problems)}; "
            "restore the files or publish a new revision"
        )


def verify_all(store: Store, version: int | None = None) -> list[tuple[int, int, str | None]]:
    """``(version, revision, problem or None)`` for every published revision (of ``version``)."""
    index = read_index(store)
    versions = sorted(index.versions) if version is None else [version]
    if version is not None and not index.revisions(version):
        raise PublishError(
            f"version {version} has no published revision in {store.url_of(layout.MODEL_INDEX)}"
        )
    found: list[tuple[int, int, str | None]] = []
    for number in versions:
        for entry in index.revisions(number):
            try:
                verify_published(store, number, entry.revision)
                found.append((number, entry.revision, None))
            except (PublishError, StoreError) as exc:
                found.append((number, entry.revision, str(exc)))
    return found


def download_published(store: Store, version: int, revision: int, local_dir: str | os.PathLike[str]) -> str:
    """Copy a published revision to ``local_dir`` (for ``from_pretrained``), every file verified."""
    entry = read_index(store).get(version, revision)
    expected = trusted_checksums(store, entry)
    target = os.path.abspath(local_dir)
    os.makedirs(target, exist_ok=True)
    for name, want in sorted(expected.items()):
        part = os.path.join(target, f".{name}.part-{uuid.uuid4().hex[:8]}")
        try:
            store.get_file(f"{entry.path}/{name}", part)
            got = sha256_file(part)
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


def trusted_checksums(store: Store, entry: PublishedRevision) -> dict[str, str]:
    """The file hashes of a revision, once its checksums file matches what the index pins."""
    raw = store.read_bytes(f"{entry.path}/{CHECKSUMS}")
    got = hashlib.sha256(raw).hexdigest()
    if got != entry.checksums_sha256:
        raise PublishError(
            f"{entry.url}/{CHECKSUMS} fails its sha256 check against {layout.MODEL_INDEX} "
            f"(expected {entry.checksums_sha256[:12]}…, got {got[:12]}…): the revision was modified"
        )
    hashes = parse_checksums(raw.decode("utf-8"))
    if hashes.get(MODEL_FILE) != entry.sha256:
        raise PublishError(
            f"{entry.url}/{CHECKSUMS} lists another {MODEL_FILE} than {layout.MODEL_INDEX} does"
        )
    return hashes
