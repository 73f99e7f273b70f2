"""int32 ``.npy`` files written and read in pieces, byte-identical to ``np.save`` of the whole array.

Ingest writes token ids and blocks to local files a batch at a time and reads them back in
chunks (plain reads, not memory maps: mapped pages would count in the process's memory), so
arrays of any size pass through a bounded amount of memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from lrpath_core.storage import StoreError

DTYPE = np.dtype(np.int32)
READ_TOKENS = 1 << 18


def header(shape: tuple[int, ...]) -> bytes:
    """The header ``np.save`` writes for a C-ordered int32 array of ``shape`` (format 1.0: the
    shapes of ingest are far from needing 2.0)."""
    buf = io.BytesIO()
    descr = npy_format.dtype_to_descr(DTYPE)
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


class TokenFile:
    """A 1-D int32 ``.npy`` whose length is known only at the end: ids are appended, the header is
    rewritten on :meth:`close` (``np.save`` pads the header so its length does not depend on it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(header((0,)))

    def append(self, ids: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(ids, dtype=DTYPE).tobytes())
        self.size += int(ids.size)

    def close(self) -> None:
        final = header((self.size,))
        if len(final) != len(header((0,))):
            raise RuntimeError(f"the .npy header of {self.size} ids does not fit in place")
        self._file.seek(0)
        self._file.write(final)
        self._file.close()


def read_chunks(path: str, tokens: int = READ_TOKENS) -> Iterator[np.ndarray]:
    """The ids of a 1-D int32 ``.npy``, ``tokens`` at a time."""
    with open(path, "rb") as f:
        length = _open_1d(f, path)
        left = length
        while left:
            chunk = np.fromfile(f, dtype=DTYPE, count=min(tokens, left))
            if chunk.size == 0:
                raise StoreError(f"{path} is cut short: its header says {length} ids")
            left -= chunk.size
            yield chunk


def length(path: str) -> int:
    """The number of ids in a 1-D int32 ``.npy``, from its header."""
    with open(path, "rb") as f:
        return _open_1d(f, path)


def _open_1d(f: BinaryIO, path: str) -> int:
    try:
        version = npy_format.read_magic(f)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except ValueError as exc:
        raise StoreError(f"{path} is not a .npy file ({exc})") from exc
    if len(shape) != 1 or dtype != DTYPE or fortran:
        raise StoreError(f"{path} holds {dtype} of shape {shape}, expected 1-D int32 token ids")
    return shape[0]
