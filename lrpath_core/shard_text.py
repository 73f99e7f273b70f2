"""One streaming pass over a .txt or .jsonl shard: the byte checks, and its documents cut as they arrive.

:class:`TextScan` sees the raw bytes (hash, size, NUL, UTF-8, line lengths) and hands the
decoded text on; :class:`Paragraphs` and :class:`JsonLines` cut it into documents and append
them to a :class:`~lrpath_core.spool.DocumentSpool`. Only a read chunk and the document being
cut are in memory. A problem found in the content is kept as :attr:`problem` and reported by the
caller after the byte checks, so the message is the one a check of the whole file gives.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Callable

from lrpath_core.spool import DocumentSpool

BOM = "\ufeff"


class TextScan:
    """What one pass over a .txt/.jsonl learns: hash, first NUL, UTF-8 errors, longest line.

    The problems are reported after the whole file was seen, in the order a whole-file check
    reports them (NUL bytes, then UTF-8, then line length), so the message does not depend on
    where a read chunk happens to end. The decoded text goes to ``on_text`` (a leading BOM
    removed) until the first UTF-8 error.
    """

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.nul = -1
        self.utf8_error: tuple[int, str] | None = None
        self.nonblank = False
        self.longest = -1
        self.longest_line = 0
        self._on_text = on_text
        self._started = False
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
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            self.utf8_error = (offset - buffered + exc.start, exc.reason)
            return
        if not self._started and text:
            self._started = True
            text = text.removeprefix(BOM)
        if not self.nonblank and text.strip():
            self.nonblank = True
        self._on_text(text)

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


class Paragraphs:
    """Paragraphs as ``datasets``' text builder (``sample_by="paragraph"``) cut them, stripped.

    It reads in universal-newline mode (``\\r\\n`` and a lone ``\\r`` become ``\\n``) and splits
    on ``"\\n\\n"``; cut while the text streams in, the pieces are those of one split of the
    whole text (a ``\\r`` at the end of a piece waits for the next one). A paragraph longer than
    ``max_chars`` is refused: it would be one document, encoded whole.
    """

    def __init__(self, spool: DocumentSpool, max_chars: int) -> None:
        self.spool = spool
        self.max_chars = max_chars
        self.problem: str | None = None
        self._carry = ""
        self._cr = False
        self._line = 1

    def feed(self, text: str) -> None:
        if self.problem is not None:
            return
        if self._cr:
            text, self._cr = "\r" + text, False
        if text.endswith("\r"):
            text, self._cr = text[:-1], True
        parts = (self._carry + text.replace("\r\n", "\n").replace("\r", "\n")).split("\n\n")
        self._carry = parts.pop()
        for part in parts:
            self._emit(part)
            self._line += part.count("\n") + 2
        if len(self._carry) > self.max_chars:
            self._too_long()

    def finish(self) -> None:
        if self._cr:
            self._carry += "\n"
        self._emit(self._carry)

    def _emit(self, part: str) -> None:
        if self.problem is not None:
            return
        if len(part) > self.max_chars:
            self._too_long()
        elif document := part.strip():
            self.spool.append(document)

    def _too_long(self) -> None:
        self.problem = (
            f"the paragraph from line {self._line} holds more than {self.max_chars} characters; "
            "separate its paragraphs with a blank line"
        )
        self._carry = ""


class JsonLines:
    """The ``text`` field of each line (lines split on ``\\n`` only); null or blank texts are no document."""

    def __init__(self, spool: DocumentSpool, max_chars: int) -> None:
        self.spool = spool
        self.max_chars = max_chars
        self.problem: str | None = None
        self._carry = ""
        self._number = 0
        self._stopped = False

    def feed(self, text: str) -> None:
        if self.problem is not None or self._stopped:
            return
        lines = (self._carry + text).split("\n")
        self._carry = lines.pop()
        for line in lines:
            self._parse(line)
        if len(self._carry) > self.max_chars:
            self._stopped, self._carry = True, ""  # over the line limit: the byte check refuses the file

    def finish(self) -> None:
        if not self._stopped:
            self._parse(self._carry)

    def _parse(self, line: str) -> None:
        self._number += 1
        if self.problem is not None or not line.strip():
            return
        number = self._number
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            self.problem = f"line {number} is not valid JSON ({reason}); each line must be one JSON object"
            return
        text = row.get("text") if isinstance(row, dict) else None
        if text is None and isinstance(row, dict) and "text" in row:
            return  # {"text": null}: no document, as a null in a Parquet column
        if not isinstance(text, str):
            self.problem = f'line {number} has no string "text" field ({_what(row)}); each line must be an object like {{"text": "..."}}'
            return
        if not text.strip():
            return
        try:
            self.spool.append(text)
        except UnicodeEncodeError as exc:
            self.problem = (
                f'line {number}: its "text" holds a lone surrogate ({text[exc.start]!r} at character '
                f"{exc.start}), which is not Unicode text; write the characters themselves, not \\ud800-style escapes"
            )


def _what(row: object) -> str:
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}"
    if "text" in row:
        return f'its "text" is a JSON {type(row["text"]).__name__}'
    return f"keys {sorted(row)}"
