"""Shards of a version folder: list them, and read each one in a single pass over its bytes.

:func:`read_shard` opens a shard once and, while the bytes stream in, hashes them, checks them
(encoding, structure, line lengths) and parses its documents. The shards are parsed here with
pyarrow (``ParquetFile.iter_batches``) and plain line splitting rather than with ``datasets``:
``datasets`` cannot hash the bytes it parses, so a shard had to be read once to validate and hash
it and again to get its documents, and it builds whole Arrow tables (plus a cache folder) for
every file. The documents are exactly what its ``text`` (``sample_by="paragraph"``), ``json``
and ``parquet`` builders returned, so token ids and blocks do not change.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import posixpath
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from fsspec.core import url_to_fs
from pydantic import BaseModel

from lrpath_core.errors import LrpathError
from lrpath_core.storage import join, storage_options_for

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
MAX_LINE_BYTES = 8 * 1024 * 1024
READ_CHUNK = 1 << 20
PARQUET_SPOOL_BYTES = 64 << 20
"""A Parquet shard is spooled while it is hashed (its footer comes last); larger ones go to a temp file."""
IGNORED_NAMES = ("manifest.json",)


class ShardError(LrpathError):
    """A shard cannot be ingested; the message names the file, the problem and the fix."""


class ShardCheck(BaseModel):
    """What reading a shard learns about the file itself."""

    name: str
    url: str
    size_bytes: int
    sha256: str


class Shard(ShardCheck):
    """A validated shard and its documents, in file order."""

    documents: list[str]


def list_shards(source_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Shard URLs directly in a version folder, sorted by name.

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
    names = sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "file")
    shards = [join(source_url, n) for n in names if not n.startswith(("_", ".")) and n not in IGNORED_NAMES]
    if not shards:
        raise ShardError(
            f"{source_url}: the folder holds no shard files; put {', '.join(SUPPORTED_SUFFIXES)} files in it"
        )
    return shards


def read_shard(url: str, storage_options: dict[str, Any] | None = None) -> Shard:
    """Open a shard once: check it completely, hash its bytes and return its documents.

    Documents: the paragraphs of a .txt (split on blank lines, stripped), the ``text`` field of
    each .jsonl line, the ``text`` column of a .parquet; empty and whitespace-only ones are dropped.
    """
    name = posixpath.basename(url.rstrip("/"))
    suffix = _suffix(name)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ShardError(
            f"{url}: unknown shard type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)} or move the file out of the version folder"
        )
    if suffix == ".parquet":
        size, sha256, documents = _read_parquet(url, storage_options)
    else:
        size, sha256, documents = _read_text(url, suffix, storage_options)
    return Shard(name=name, url=url, size_bytes=size, sha256=sha256, documents=documents)


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
    fs, path = url_to_fs(url, **storage_options_for(url, storage_options))
    try:
        with fs.open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                yield chunk
    except FileNotFoundError as exc:
        raise ShardError(
            f"{url}: the file does not exist (it was listed, then removed?); list the folder again"
        ) from exc
    except IsADirectoryError as exc:
        raise ShardError(f"{url}: is a folder, not a shard file; move it out of the version folder") from exc


def _empty(url: str) -> ShardError:
    return ShardError(f"{url}: the file is empty (0 bytes); remove it or write its documents again")


class _TextScan:
    """What one pass over a .txt/.jsonl learns: hash, first NUL, UTF-8 text, longest line.

    The problems are reported after the whole file was seen, in the order a whole-file check
    reports them (NUL bytes, then UTF-8, then line length), so the message does not depend on
    where a read chunk happens to end.
    """

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.nul = -1
        self.utf8_error: tuple[int, str] | None = None
        self.pieces: list[str] = []
        self.longest = -1
        self.longest_line = 0
        self._line = 1
        self._line_bytes = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes) -> None:
        offset = self.size
        self.sha256.update(chunk)
        self.size += len(chunk)
        nul = chunk.find(b"\x00")
        if nul >= 0:
            self.nul = offset + nul
            return
        self._measure_lines(chunk)
        self._decode(chunk, offset, final=False)

    def finish(self) -> None:
        self._end_line(self._line_bytes)
        self._decode(b"", self.size, final=True)

    def _decode(self, chunk: bytes, offset: int, final: bool) -> None:
        if self.utf8_error is not None:
            return
        buffered = len(self._decoder.getstate()[0])
        try:
            self.pieces.append(self._decoder.decode(chunk, final))
        except UnicodeDecodeError as exc:
            self.utf8_error = (offset - buffered + exc.start, exc.reason)
            self.pieces = []

    def _measure_lines(self, chunk: bytes) -> None:
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            self._line_bytes += len(chunk)
            return
        self._end_line(self._line_bytes + len(parts[0]))
        inner = [len(p) for p in parts[1:-1]]
        if inner:
            longest = max(inner)
            if longest > self.longest:
                self.longest, self.longest_line = longest, self._line + inner.index(longest)
            self._line += len(inner)
        self._line_bytes = len(parts[-1])

    def _end_line(self, length: int) -> None:
        if length > self.longest:
            self.longest, self.longest_line = length, self._line
        self._line += 1


def _read_text(url: str, suffix: str, storage_options: dict[str, Any] | None) -> tuple[int, str, list[str]]:
    scan = _TextScan()
    with contextlib.closing(_chunks(url, storage_options)) as chunks:
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
    text = "".join(scan.pieces)
    scan.pieces = []
    if not text.strip():
        raise ShardError(
            f"{url}: holds only whitespace, no documents; remove it or write its documents again"
        )
    documents = _jsonl_documents(url, text) if suffix == ".jsonl" else _paragraphs(text)
    return scan.size, scan.sha256.hexdigest(), documents


def _paragraphs(text: str) -> list[str]:
    """Paragraphs as ``datasets``' text builder (``sample_by="paragraph"``) cut them, stripped.

    It reads in universal-newline mode (``\\r\\n`` and a lone ``\\r`` become ``\\n``) and splits
    on ``"\\n\\n"``; its chunked reading gives the same pieces as one split of the whole text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _jsonl_documents(url: str, text: str) -> list[str]:
    documents = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ShardError(
                f"{url}: line {number} is not valid JSON ({exc.msg}); each line must be one JSON object"
            ) from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            what = f"keys {sorted(row)}" if isinstance(row, dict) else f"a JSON {type(row).__name__}"
            raise ShardError(
                f'{url}: line {number} has no string "text" field ({what}); '
                f'each line must be an object like {{"text": "..."}}'
            )
        if row["text"].strip():
            documents.append(row["text"])
    return documents


def _read_parquet(url: str, storage_options: dict[str, Any] | None) -> tuple[int, str, list[str]]:
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=PARQUET_SPOOL_BYTES, prefix="lrpath-shard-") as spool:
        for chunk in _chunks(url, storage_options):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        if size == 0:
            raise _empty(url)
        spool.seek(0)
        documents = _parquet_documents(url, spool)
    return size, digest.hexdigest(), documents


def _parquet_documents(url: str, source: IO[bytes]) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(
            f"{url}: is not a readable Parquet file ({exc}); write it again with pyarrow or pandas"
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
    documents: list[str] = []
    try:
        for batch in parquet.iter_batches(columns=["text"]):
            documents.extend(t for t in batch.column(0).to_pylist() if t and t.strip())
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(
            f"{url}: is not a readable Parquet file ({exc}); write it again with pyarrow or pandas"
        ) from exc
    return documents
