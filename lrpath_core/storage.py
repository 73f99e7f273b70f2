"""Every location is an fsspec URL: a local path (default) or ``s3://bucket/prefix`` through s3fs.

Credentials and the S3 endpoint come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` / ``LRPATH_S3_ENDPOINT``) or from explicit
``storage_options``; they are never written into a URL, a log line or a stored file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from lrpath_core.conditional_put import put_create
from lrpath_core.store_sync import StaleStateError, StoreError, StoreSync

__all__ = ["StaleStateError", "Store", "StoreError", "join", "sha256_file", "storage_options_for"]

HASH_CHUNK = 1 << 22


def s3_options_from_env() -> dict[str, Any]:
    """s3fs options from the environment: endpoint only; keys are read by botocore itself."""
    endpoint = os.environ.get("LRPATH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def storage_options_for(url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = s3_options_from_env() if url.startswith(("s3://", "s3a://")) else {}
    options.update(extra or {})
    return options


def join(base: str, *parts: str) -> str:
    """Join URL parts with '/', keeping the protocol of ``base``."""
    cleaned = [p.strip("/") for p in parts if p]
    if not cleaned:
        return base
    return base.rstrip("/") + "/" + "/".join(cleaned)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a local file, read in chunks."""
    with open(path, "rb") as f:
        return _sha256_stream(f)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a local folder, so that the entries created, renamed or removed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_stream(f: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


class Store(StoreSync):
    """A root URL plus the fsspec filesystem behind it.

    Paths given to methods are relative to the root unless they already carry a protocol or
    are absolute local paths.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        if not url:
            raise StoreError("store URL is empty: pass --store URL or set LRPATH_STORE")
        self.url = url.rstrip("/") if url not in ("/",) else url
        self.storage_options = storage_options_for(url, storage_options)
        try:
            self.fs, self.root = url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"store URL {self.url!r} is not usable: {exc}") from exc
        self.is_local = "file" in _protocols(self.fs)
        self._held_locks: set[str] = set()
        if self.is_local:
            self.root = os.path.abspath(self.root)
            self.url = self.root

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def url_of(self, *parts: str) -> str:
        return join(self.url, *parts)

    def _path(self, rel: str) -> str:
        if "://" in rel:
            return url_to_fs(rel, **self.storage_options)[1]
        if self.is_local and os.path.isabs(rel):
            return rel
        return posixpath.join(self.root, rel.lstrip("/")) if rel else self.root

    def relative(self, url: str) -> str:
        """The store-relative path of ``url`` (a URL inside this store, or already relative).

        Raises :class:`StoreError` for a URL or absolute path outside the store.
        """
        root = self.url.rstrip("/")
        if url == root or url.startswith(root + "/"):
            return url[len(root) :].strip("/")
        if "://" in url or os.path.isabs(url):
            raise StoreError(f"{url} is not inside the store {self.url}")
        return url.strip("/")

    def local_path(self, rel: str) -> str:
        """The filesystem path of ``rel`` in a local store (for renames and fsync)."""
        if not self.is_local:
            raise StoreError(f"{self.url} is not a local store: {rel} has no local path")
        return self._path(rel)

    def check_reachable(self) -> None:
        """Fail early with a clear message when the store cannot be reached."""
        try:
            if self.is_local:
                self.fs.makedirs(self.root, exist_ok=True)
            else:
                bucket = self.root.split("/", 1)[0]
                self.fs.ls(bucket, refresh=True)
        except FileNotFoundError as exc:
            raise StoreError(f"store {self.url} does not exist (create the bucket first): {exc}") from exc
        except PermissionError as exc:
            raise StoreError(
                f"store {self.url} refused access: check the credentials ({_short(exc)})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - network stacks raise many types
            raise StoreError(
                f"store {self.url} is unreachable: {_short(exc)}; check the URL, endpoint and network"
            ) from exc

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._path(rel))

    def ls(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under ``rel``; empty when it does not exist."""
        path = self._path(rel)
        try:
            entries = (
                self.fs.ls(path, detail=False, refresh=True)
                if not self.is_local
                else self.fs.ls(path, detail=False)
            )
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e.rstrip("/")) for e in entries if e.rstrip("/") != path.rstrip("/"))

    def read_bytes(self, rel: str) -> bytes:
        """One object, whole. On S3 a single GET: an object replaced meanwhile (``timeline.json``)
        is read old or new, never refused half-way as a buffered ETag-pinned reader would."""
        try:
            return self.fs.cat_file(self._path(rel))
        except FileNotFoundError as exc:
            raise StoreError(f"{self.url_of(rel) if '://' not in rel else rel} does not exist") from exc

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write one object so that readers see either nothing/the old bytes or all new bytes.

        Local: write a temp file in the same folder, fsync, ``os.replace``. S3: one PUT, which
        is atomic per object.
        """
        path = self._path(rel)
        if self.is_local:
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
        else:
            self.fs.pipe_file(path, data)

    def create(self, rel: str, data: bytes) -> bool:
        """Write ``rel`` only if it does not exist yet (an exclusive create locally, a create-only
        PUT on S3); False when it already exists."""
        if not self.is_local:
            return put_create(self.fs, self._path(rel), data)
        path = self._path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            return False
        return True

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def put_file(self, local_path: str, rel: str) -> None:
        """Upload a local file, streamed: locally a copy beside the target, fsynced, then renamed."""
        if not self.is_local:
            self.fs.put_file(local_path, self._path(rel))
            return
        target = self._path(rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
        try:
            shutil.copyfile(local_path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

    def get_file(self, rel: str, local_path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        try:
            self.fs.get_file(self._path(rel), local_path)
        except FileNotFoundError as exc:
            raise StoreError(f"{self.url_of(rel)} does not exist") from exc

    def open_read(self, rel: str) -> io.BufferedIOBase:
        return self.fs.open(self._path(rel), "rb")

    def sha256(self, rel: str) -> str:
        """sha256 of one object, streamed."""
        try:
            with self.open_read(rel) as f:
                return _sha256_stream(f)
        except FileNotFoundError as exc:
            raise StoreError(f"{self.url_of(rel)} does not exist") from exc

    def copy(self, src_rel: str, dst_rel: str) -> None:
        """Copy one object inside the store: a streamed file copy locally, server-side on S3."""
        src, dst = self._path(src_rel), self._path(dst_rel)
        if self.is_local:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            self.fs.copy(src, dst)

    def place(self, staged_rel: str, final_rel: str) -> None:
        """Move a staged object to its final name: an atomic rename locally, a server-side copy on S3
        (the staged copy stays until its folder is removed)."""
        if self.is_local:
            dst = self._path(final_rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(self._path(staged_rel), dst)
        else:
            self.fs.copy(self._path(staged_rel), self._path(final_rel))

    def remove_if_empty(self, rel: str) -> None:
        """Remove an empty local folder (object stores have no folders to remove)."""
        if self.is_local:
            with contextlib.suppress(OSError):
                os.rmdir(self._path(rel))

    def sign(self, rel: str, expiration_s: int) -> str:
        """A presigned URL of one object (object stores only)."""
        return self.fs.sign(self._path(rel), expiration=expiration_s)

    def move(self, src_rel: str, dst_rel: str) -> None:
        """Move one object within the store (a rename locally; copy then delete on S3)."""
        dst = self._path(dst_rel)
        if self.is_local:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        self.fs.mv(self._path(src_rel), dst)

    def remove(self, rel: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(rel), recursive=recursive)

    def remove_temporaries(self, rel: str) -> list[str]:
        """Remove the temporary files (``.name.tmp-…``) that a killed local write left below ``rel``;
        the caller must be the only writer there (S3 writes are single PUTs and leave none)."""
        if not self.is_local:
            return []
        left = [name for name in self.walk_files(rel) if ".tmp-" in posixpath.basename(name)]
        for name in left:
            self.remove(posixpath.join(rel, name))
        return left

    def walk_files(self, rel: str) -> Iterator[str]:
        """Every file below ``rel``, as a path relative to ``rel``."""
        base = self._path(rel).rstrip("/")
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        for full in sorted(found):
            yield full[len(base) :].lstrip("/")


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
