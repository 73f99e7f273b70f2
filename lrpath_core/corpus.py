"""Ordered data versions from the GNU Collaborative International Dictionary of English (GCIDE).

The dictionary is split by headword into contiguous alphabetical ranges of roughly equal text
size (``A-D``, ``E-K``, ``L-R``, ``S-Z`` for four versions): each version brings words the
earlier ones never saw. A version folder holds ``shard-00000.txt`` … (entries separated by a
blank line, so each entry is one paragraph document) and ``_READY``, written last, a small JSON
saying what the folder holds.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from lrpath_core.errors import LrpathError
from lrpath_core.storage import Store

GCIDE_PATH = "/usr/share/dictd/gcide.dict.dz"
INSTALL_HINT = "apt-get install -y dict-gcide"
SHARD_BYTES = 4_000_000
READY = "_READY"


class CorpusError(LrpathError):
    """The corpus source is missing or cannot be split as asked."""


def write_version(
    store: Store,
    rel: str,
    documents: Iterable[str],
    info: dict[str, Any] | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> str:
    """Write documents as ``rel/shard-NNNNN.txt`` (blank-line separated) and ``rel/_READY`` last.

    A folder written before is replaced: its marker goes first and shards the new run does not
    write are removed, so a reader never mixes two runs.
    """
    store.remove(f"{rel}/{READY}")
    written: list[str] = []
    chunk: list[str] = []
    size = 0
    documents_n = 0
    chars = 0

    def flush() -> None:
        nonlocal chunk, size
        name = f"shard-{len(written):05d}.txt"
        store.write_text(f"{rel}/{name}", "\n\n".join(chunk) + "\n")
        written.append(name)
        chunk, size = [], 0

    for doc in documents:
        doc = doc.strip()
        if not doc:
            continue
        if "\n\n" in doc:
            raise CorpusError(
                f"document {documents_n} contains a blank line; it would split into two documents"
            )
        chunk.append(doc)
        size += len(doc.encode("utf-8")) + 2
        documents_n += 1
        chars += len(doc)
        if size >= shard_bytes:
            flush()
    if chunk:
        flush()
    if not written:
        raise CorpusError(f"no documents to write to {store.url_of(rel)}")
    for stale in store.ls(rel):
        if stale.startswith("shard-") and stale not in written:
            store.remove(f"{rel}/{stale}")
    ready = {"shards": written, "documents": documents_n, "chars": chars, **(info or {})}
    store.write_text(f"{rel}/{READY}", json.dumps(ready, indent=2, sort_keys=True) + "\n")
    return store.url_of(rel)


def gcide_versions(
    out_dir: str,
    versions: int,
    source: str = GCIDE_PATH,
    max_chars_per_version: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Split GCIDE into ``versions`` alphabetical ranges and write ``out_dir/v1`` … ``out_dir/vN``."""
    if versions < 1:
        raise CorpusError(f"versions must be >= 1, got {versions}")
    if max_chars_per_version is not None and max_chars_per_version < 1:
        raise CorpusError(f"max_chars_per_version must be >= 1, got {max_chars_per_version}")
    entries = read_gcide_entries(source)
    by_letter: dict[str, list[tuple[str, str]]] = {}
    for headword, raw in entries:
        by_letter.setdefault(_letter(headword), []).append((headword, raw))
    if "#" in by_letter:  # numbers and symbols go with the first letter range
        first = min(k for k in by_letter if k != "#") if len(by_letter) > 1 else "A"
        by_letter[first] = by_letter.pop("#") + by_letter.get(first, [])
    letters = sorted(by_letter)
    if versions > len(letters):
        raise CorpusError(
            f"{source} has headwords under {len(letters)} letters; cannot make {versions} versions"
        )
    sizes = [sum(len(raw) for _, raw in by_letter[k]) for k in letters]
    groups = split_evenly(sizes, versions)

    store = Store(out_dir, storage_options)
    urls = []
    for number, (lo, hi) in enumerate(groups, start=1):
        span = letters[lo:hi]
        items = sorted((e for k in span for e in by_letter[k]), key=lambda e: _sort_key(e[0]))
        docs = _limited((clean_entry(raw) for _, raw in items), max_chars_per_version)
        label = span[0] if len(span) == 1 else f"{span[0]}-{span[-1]}"
        info = {"source": "gcide", "letters": label, "version": number}
        urls.append(write_version(store, f"v{number}", docs, info))
    return urls


def read_gcide_entries(source: str = GCIDE_PATH) -> list[tuple[str, str]]:
    """``(headword, raw entry text)`` in file order; the licence header and database notes are skipped."""
    if not os.path.exists(source):
        raise CorpusError(
            f"GCIDE not found at {source}: install it with `{INSTALL_HINT}` "
            f"(Debian/Ubuntu package dict-gcide, which provides {GCIDE_PATH}), "
            f"or pass the path of a gcide.dict.dz"
        )
    opener = gzip.open if source.endswith(".dz") or source.endswith(".gz") else open
    with opener(source, "rb") as f:
        data = f.read()
    text = _decode(data)
    entries: list[list[str]] = []
    for chunk in re.split(r"\n\n(?=\S)", text):
        m = _HEADLINE.match(chunk)
        if m:
            entries.append([m.group(1).strip(), chunk])
        elif entries:  # a stray "[1913 Webster]" or wrapped text belongs to the entry before
            entries[-1][1] += "\n\n" + chunk
    if not entries:
        raise CorpusError(f"{source} holds no dictionary entries (is it a dictd .dict file?)")
    return [(h, raw) for h, raw in entries]


def split_evenly(sizes: list[int], parts: int) -> list[tuple[int, int]]:
    """Cut ``sizes`` into ``parts`` contiguous non-empty ranges ``[lo, hi)`` of roughly equal sums.

    Minimises the squared distance of each range's sum from the mean (exact dynamic programme;
    the inputs are at most a few dozen letters).
    """
    n = len(sizes)
    if not 1 <= parts <= n:
        raise CorpusError(f"cannot cut {n} groups into {parts} parts")
    target = sum(sizes) / parts
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(parts + 1)]
    back = [[0] * (n + 1) for _ in range(parts + 1)]
    cost[0][0] = 0.0
    for p in range(1, parts + 1):
        for end in range(p, n - (parts - p) + 1):
            for start in range(p - 1, end):
                c = cost[p - 1][start] + (prefix[end] - prefix[start] - target) ** 2
                if c < cost[p][end]:
                    cost[p][end], back[p][end] = c, start
    cuts, end = [], n
    for p in range(parts, 0, -1):
        start = back[p][end]
        cuts.append((start, end))
        end = start
    return cuts[::-1]


_HEADLINE = re.compile(r"^(\S[^\\\n]*?)\s*\\")
_PRONUNCIATION = re.compile(r"\\[^\\\n]*\\(?:\s*\([^()]{0,200}\))?")
_SOURCE_TAG = re.compile(
    r"\[(?:[^\[\]]*(?:1913 Webster|Webster 1913|WordNet \d|PJC|RHUD|RDH|Century Dict)[^\[\]]*)\]"
)
_SENSE = re.compile(r"\s+(?:\d{1,2}\.|\([a-z]\))\s")
_BRACES = re.compile(r"\{([^{}]*)\}")
_HYPHENATION = re.compile(r"(?<=\w)[*\"`'](?=\w)")
_CODE = re.compile(r"\[([=\-'`\"^~.,]?)([A-Za-z]{1,2})([\^]?)\]")
_MARKS = {
    "=": "\u0304",
    "-": "\u0304",
    "'": "\u0301",
    "`": "\u0300",
    '"': "\u0308",
    "~": "\u0303",
    ".": "\u0307",
    ",": "\u0327",
}
_NAMED = {
    "imac": "ī",
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "eth": "ð",
    "thorn": "þ",
    "root": "√",
    "deg": "°",
    "sect": "§",
    "ng": "ŋ",
    "yogh": "ȝ",
    "aum": "ä",
    "udd": "ü",
    "th": "th",
    "pounds": "£",
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "Delta": "Δ",
    "pi": "π",
    "phi": "φ",
}
_NAMED_RE = re.compile(r"\[(" + "|".join(sorted(_NAMED, key=len, reverse=True)) + r")\]")


def clean_entry(raw: str) -> str:
    """Plain text for one entry: markup dropped, lines unwrapped, senses one per line, no blank lines."""
    text = _SOURCE_TAG.sub("", raw)
    text = _PRONUNCIATION.sub("", text)
    text = _BRACES.sub(lambda m: _HYPHENATION.sub("", m.group(1)), text)
    text = _NAMED_RE.sub(lambda m: _NAMED[m.group(1)], text)
    text = _CODE.sub(_code, text)
    lines: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        current: list[str] = []
        for raw_line in block.split("\n"):
            if current and _SENSE.match(raw_line):
                lines.append(" ".join(current))
                current = []
            current += raw_line.split()
        if current:
            lines.append(" ".join(current))
    return "\n".join(line.replace(" ,", ",") for line in lines)


def _code(m: re.Match[str]) -> str:
    before, letters, after = m.groups()
    if not (before or after):
        return m.group(0)  # e.g. "[He]": an editorial insertion, not a character code
    if before == "^":
        return unicodedata.normalize("NFC", letters + "\u0302")
    mark = _MARKS.get(before, "") + ("\u0306" if after else "")
    return unicodedata.normalize("NFC", letters + mark)


def _decode(data: bytes) -> str:
    """UTF-8, with the few stray Windows-1252 bytes GCIDE carries (e.g. 0x92 for ’) mapped too."""
    text = data.decode("utf-8", errors="surrogateescape")
    return re.sub(
        r"[\udc80-\udcff]",
        lambda m: bytes([ord(m.group(0)) - 0xDC00]).decode("cp1252", errors="replace"),
        text,
    )


def _letter(headword: str) -> str:
    for ch in unicodedata.normalize("NFKD", headword):
        if "a" <= ch.lower() <= "z":
            return ch.upper()
        if ch.isalnum():
            return "#"
    return "#"


def _sort_key(headword: str) -> tuple[str, str]:
    """Dictionary order: accents, case and punctuation ignored ("'Neath" sorts with "neath")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", headword) if c.isalnum())
    return folded.casefold(), headword


def _limited(docs: Iterable[str], max_chars: int | None) -> Iterable[str]:
    total = 0
    for doc in docs:
        if not doc:
            continue
        if max_chars is not None and total and total + len(doc) > max_chars:
            return
        total += len(doc)
        yield doc
        if max_chars is not None and total >= max_chars:
            return
