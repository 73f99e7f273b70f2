"""Shards of a version folder: list them, and read each one in a single pass over its bytes.

:func:`read_shard` opens a shard once and, while the bytes stream in, hashes them, checks them
(size, encoding, structure, line lengths) and cuts its documents into a local
:class:`~lrpath_core.spool.DocumentSpool`: memory holds a read chunk and one document, never the
file. The shards are parsed here with pyarrow (``ParquetFile.iter_batches``) and plain line
splitting rather than with ``datasets``: ``datasets`` cannot hash the bytes it parses, and it
builds whole Arrow tables (plus a cache folder) for every file. The documents are exactly what
its ``text`` (``sample_by="paragraph"``), ``json`` and ``parquet`` builders returned, so token ids
and blocks do not change.

Whatever goes wrong inside a file ends as a :class:`ShardError` naming it (the drop is held and
the file quarantined); a source that cannot be read at all (network, permissions) is a
:class:`ShardReadError`, which quarantines nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from fsspec.core import url_to_fs
from pydantic import BaseModel, ConfigDict

from lrpath_core.errors import LrpathError
from lrpath_core.shard_text import JsonLines, Paragraphs, TextScan
from lrpath_core.spool import DocumentSpool
from lrpath_core.storage import StoreError, join, storage_options_for

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_DOCUMENT_CHARS = MAX_LINE_BYTES
"""A document (a paragraph, a JSON line's text, a Parquet value) is encoded whole: this bounds its memory."""
READ_CHUNK = 1 << 20
PARQUET_SPOOL_BYTES = 16 << 20
"""A Parquet shard is spooled while it is hashed (its footer comes last); larger ones go to a temp file."""
PARQUET_BATCH_ROWS = 1024
IGNORED_NAMES = ("manifest.json",)


class ShardError(LrpathError):
    """A shard cannot be ingested; the message names the file, the problem and the fix."""


class ShardReadError(StoreError):
    """A shard's source could not be read (network, permissions): nothing is wrong with the file itself."""


class ShardCheck(BaseModel):
    """What reading a shard learns about the file itself."""

    name: str
    url: str
    size_bytes: int
    sha256: str


class Shard(ShardCheck):
    """A validated shard and its documents, in file order, spooled to a local temporary file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    documents: DocumentSpool

    def close(self) -> None:
        """Remove the spooled documents (also done when the shard is garbage-collected)."""
        self.documents.close()


def list_shards(source_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Shard URLs directly in a version folder, sorted by name (see :func:`list_shard_sizes`)."""
    return [url for url, _ in list_shard_sizes(source_url, storage_options)]


def list_shard_sizes(
    source_url: str, storage_options: dict[str, Any] | None = None
) -> list[tuple[str, int | None]]:
    """``(url, size in bytes or None)`` of the shards directly in a version folder, sorted by name.

    Markers and metadata (names starting with ``_`` or ``.``, ``manifest.json``) and sub-folders
    are skipped; any other file is returned, so an unsupported one fails validation loudly.
    """
    fs, path = url_to_fs(source_url, **storage_options_for(source_url, storage_options))
    fs.invalidate_cache(path)  # object stores cache listings; a watcher must see new shards
    if fs.isfile(path):
        raise ShardError(
            f"{source_url}: is a file, not a version folder; pass the folder that holds the shards"
        )
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        entries = []
    if not entries and not fs.isdir(path):
        raise ShardError(f"{source_url}: the version folder does not exist; check the URL")
    files = {
        posixpath.basename(e["name"].rstrip("/")): e.get("size") for e in entries if e.get("type") == "file"
    }
    shards = [
        (join(source_url, n), files[n] if isinstance(files[n], int) else None)
        for n in sorted(files)
        if not n.startswith(("_", ".")) and n not in IGNORED_NAMES
    ]
    if not shards:
        raise ShardError(
            f"{source_url}: the folder holds no shard files; put {', '.join(SUPPORTED_SUFFIXES)} files in it"
        )
    return shards


def read_shard(
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    max_bytes: int | None = None,
    size: int | None = None,
) -> Shard:
    """Open a shard once: check it completely, hash its bytes and spool its documents.

    Documents: the paragraphs of a .txt (split on blank lines, stripped), the ``text`` field of
    each .jsonl line, the ``text`` column of a .parquet; empty, whitespace-only and null ones are
    dropped, and a shard left with none is refused. A UTF-8 BOM opening a .txt/.jsonl is not text.
    ``max_bytes`` (``data.max_shard_bytes``) refuses a bigger file: from ``size`` (the listing's)
    before it is opened, else as soon as the stream passes it.
    """
    name = posixpath.basename(url.rstrip("/"))
    suffix = _suffix(name)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ShardError(
            f"{url}: unknown shard type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)} or move the file out of the version folder"
        )
    if max_bytes is not None and size is not None and size > max_bytes:
        raise _too_big(url, f"is {size} bytes", max_bytes)
    spool = DocumentSpool()
    try:
        chunks = _capped(url, _chunks(url, storage_options), max_bytes)
        if suffix == ".parquet":
            size, sha256 = _read_parquet(url, chunks, spool)
        else:
            size, sha256 = _read_text(url, suffix, chunks, spool)
        if not spool.count:
            raise ShardError(
                f"{url}: holds no documents (every text is empty, whitespace or null); "
                "remove it or write its documents again"
            )
    except LrpathError:
        spool.close()
        raise
    except Exception as exc:  # noqa: BLE001 - any failure inside a file is that file's problem
        spool.close()
        raise ShardError(
            f"{url}: could not be read as a {suffix} shard ({type(exc).__name__}: {_short(exc)}); "
            "check the file and write it again"
        ) from exc
    return Shard(name=name, url=url, size_bytes=size, sha256=sha256, documents=spool)


def data_sha256(shard_sha256s: Iterable[str]) -> str:
    """The content hash of a version: sha256 of its shards' sha256s, sorted and joined."""
    return hashlib.sha256("".join(sorted(shard_sha256s)).encode()).hexdigest()


def drop_sha256(source_url: str, storage_options: dict[str, Any] | None = None) -> str:
    """:func:`data_sha256` of a version folder, from its bytes alone (nothing is parsed or checked)."""
    digests = []
    for url in list_shards(source_url, storage_options):
        digest = hashlib.sha256()
        for chunk in _chunks(url, storage_options):
            digest.update(chunk)
        digests.append(digest.hexdigest())
    return data_sha256(digests)


def _suffix(name: str) -> str:
    base = posixpath.basename(name.rstrip("/"))
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else ""


def _chunks(url: str, storage_options: dict[str, Any] | None) -> Iterator[bytes]:
    """The bytes of ``url``, opened once and read in :data:`READ_CHUNK` pieces."""
    try:
        fs, path = url_to_fs(url, **storage_options_for(url, storage_options))
        with fs.open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                yield chunk
    except FileNotFoundError as exc:
        raise ShardError(
            f"{url}: the file does not exist (it was listed, then removed?); list the folder again"
        ) from exc
    except IsADirectoryError as exc:
        raise ShardError(f"{url}: is a folder, not a shard file; move it out of the version folder") from exc
    except Exception as exc:  # noqa: BLE001 - network stacks raise many types
        raise ShardReadError(
            f"{url}: could not be read ({type(exc).__name__}: {_short(exc)}); check the store or folder "
            "and run the ingest again (the file is not quarantined)"
        ) from exc


def _capped(url: str, chunks: Iterator[bytes], max_bytes: int | None) -> Iterator[bytes]:
    """``chunks``, refused as soon as more than ``max_bytes`` came in."""
    seen = 0
    with contextlib.closing(chunks):
        for chunk in chunks:
            seen += len(chunk)
            if max_bytes is not None and seen > max_bytes:
                raise _too_big(url, f"holds more than {max_bytes} bytes (read {seen} so far)", max_bytes)
            yield chunk


def _too_big(url: str, what: str, max_bytes: int) -> ShardError:
    return ShardError(
        f"{url}: {what}, over data.max_shard_bytes = {max_bytes} ({max_bytes / 2**30:.2f} GiB); "
        "split it into smaller shards, or raise data.max_shard_bytes"
    )


def _empty(url: str) -> ShardError:
    return ShardError(f"{url}: the file is empty (0 bytes); remove it or write its documents again")


def _read_text(url: str, suffix: str, chunks: Iterator[bytes], spool: DocumentSpool) -> tuple[int, str]:
    cut = JsonLines(spool, MAX_LINE_BYTES) if suffix == ".jsonl" else Paragraphs(spool, MAX_DOCUMENT_CHARS)
    scan = TextScan(cut.feed)
    with contextlib.closing(chunks):
        for chunk in chunks:
            scan.feed(chunk)
            if scan.nul >= 0:
                break  # the file is refused whatever follows
    if scan.size == 0:
        raise _empty(url)
    if scan.nul >= 0:
        raise ShardError(
            f"{url}: contains NUL bytes (first at byte offset {scan.nul}), so it looks binary; "
            f"shards must be UTF-8 text: check that the right file was uploaded"
        )
    scan.finish()
    if scan.utf8_error is not None:
        offset, reason = scan.utf8_error
        raise ShardError(
            f"{url}: is not valid UTF-8 at byte offset {offset} ({reason}); "
            f"re-encode it as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"
        )
    limit = MAX_LINE_BYTES
    if scan.longest > limit:
        raise ShardError(
            f"{url}: line {scan.longest_line} is {scan.longest} bytes long, over the {limit}-byte limit; "
            f"break it into lines or paragraphs (a document may span many lines)"
        )
    if not scan.nonblank:
        raise ShardError(
            f"{url}: holds only whitespace, no documents; remove it or write its documents again"
        )
    cut.finish()
    if cut.problem is not None:
        raise ShardError(f"{url}: {cut.problem}")
    return scan.size, scan.sha256.hexdigest()


def _read_parquet(url: str, chunks: Iterator[bytes], spool: DocumentSpool) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=PARQUET_SPOOL_BYTES, prefix="lrpath-shard-") as raw:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            raw.write(chunk)
        if size == 0:
            raise _empty(url)
        raw.seek(0)
        _parquet_documents(url, raw, spool)
    return size, digest.hexdigest()


def _parquet_documents(url: str, source: IO[bytes], spool: DocumentSpool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source, buffer_size=READ_CHUNK)
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(
            f"{url}: is not a readable Parquet file ({_short(exc)}); write it again with pyarrow or pandas"
        ) from exc
    schema = parquet.schema_arrow
    if "text" not in schema.names:
        raise ShardError(
            f"{url}: has no 'text' column (its columns: {', '.join(schema.names) or 'none'}); "
            f"rename the column that holds the documents to 'text'"
        )
    kind = schema.field("text").type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise ShardError(
            f"{url}: column 'text' has type {kind}, expected string; store the documents as strings"
        )
    if parquet.metadata.num_rows == 0:
        raise ShardError(f"{url}: has no rows; remove it or write its documents again")
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=["text"]):
            for text in batch.column(0).to_pylist():
                row += 1
                if text and text.strip():
                    if len(text) > MAX_DOCUMENT_CHARS:
                        raise ShardError(
                            f"{url}: row {row} holds more than {MAX_DOCUMENT_CHARS} characters of text; "
                            "split it into several documents"
                        )
                    spool.append(text)
    except UnicodeDecodeError as exc:
        raise ShardError(
            f"{url}: column 'text' is not valid UTF-8 near row {row + 1} ({exc.reason}); "
            "store the documents as UTF-8 strings"
        ) from exc
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(
            f"{url}: is not a readable Parquet file ({_short(exc)}); write it again with pyarrow or pandas"
        ) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
