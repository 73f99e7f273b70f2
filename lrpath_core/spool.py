"""A shard's documents in a local temporary file, so that no shard is ever held whole in memory.

Reading a shard appends its documents here; the tokenizer is trained from them and they are
encoded from them, each time streamed back in file order. A record is the UTF-8 length (4 bytes,
little-endian) followed by the UTF-8 bytes. The file is anonymous: it disappears when the spool
is closed or garbage-collected, whatever happens to the process.
"""

from __future__ import annotations

import os
import struct
import tempfile
import weakref
from collections.abc import Iterator

from lrpath_core.storage import StoreError

_LENGTH = struct.Struct("<I")
READ_CHUNK = 1 << 20


class SpoolError(StoreError):
    """The local temporary folder cannot hold a shard's documents (full disk, no permission)."""


class DocumentSpool:
    """Documents appended once, then iterated any number of times (each iteration re-reads the file)."""

    def __init__(self) -> None:
        try:
            self._file = tempfile.TemporaryFile(prefix="lrpath-docs-")
        except OSError as exc:
            raise _spool_error(exc) from exc
        self._close = weakref.finalize(self, self._file.close)
        self.count = 0
        self.size = 0

    def append(self, document: str) -> None:
        """Add one document. A ``str`` that is not valid Unicode (a lone surrogate) raises
        :class:`UnicodeEncodeError`: the caller knows where it came from and names it."""
        data = document.encode("utf-8")
        try:
            self._file.write(_LENGTH.pack(len(data)))
            self._file.write(data)
        except OSError as exc:
            raise _spool_error(exc) from exc
        self.count += 1
        self.size += _LENGTH.size + len(data)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        """A generator that keeps the spool (and so its file) alive while it runs."""
        try:
            self._file.flush()
        except OSError as exc:
            raise _spool_error(exc) from exc
        yield from _records(self._file.fileno(), self.size)

    def close(self) -> None:
        self._close()


def _records(fd: int, end: int) -> Iterator[str]:
    reader = _Reader(fd, end)
    while (head := reader.take(_LENGTH.size)) is not None:
        (length,) = _LENGTH.unpack(head)
        data = reader.take(length)
        if data is None:
            raise SpoolError(
                "a temporary document file was cut short (was it removed?); run the ingest again"
            )
        yield data.decode("utf-8")


class _Reader:
    """Bytes of ``fd`` up to ``end``, read with ``pread``: iterations do not share a file position."""

    def __init__(self, fd: int, end: int) -> None:
        self.fd, self.end, self.offset = fd, end, 0
        self.buffer, self.pos = b"", 0

    def take(self, n: int) -> bytes | None:
        """The next ``n`` bytes; None at the end of the records."""
        if len(self.buffer) - self.pos < n:
            parts = [self.buffer[self.pos :]]
            have = len(parts[0])
            while have < n and self.offset < self.end:
                want = min(max(n - have, READ_CHUNK), self.end - self.offset)
                data = os.pread(self.fd, want, self.offset)
                if not data:
                    break
                parts.append(data)
                have += len(data)
                self.offset += len(data)
            self.buffer, self.pos = b"".join(parts), 0
            if have < n:
                return None
        data = self.buffer[self.pos : self.pos + n]
        self.pos += n
        return data


def _spool_error(exc: OSError) -> SpoolError:
    return SpoolError(
        f"cannot write documents to the temporary folder {tempfile.gettempdir()} ({exc}); "
        "free space there or point TMPDIR at a larger disk"
    )
