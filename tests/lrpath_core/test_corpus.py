from __future__ import annotations

import gzip
import json
import os
import string

import pytest

from lrpath_core.corpus import (
    GCIDE_PATH,
    CorpusError,
    clean_entry,
    gcide_versions,
    read_gcide_entries,
    split_evenly,
    write_version,
)
from lrpath_core.storage import Store

HEADER = """00-database-url
   ftp://ftp.gnu.org/gnu/gcide

This file is part of the GNU version of the dictionary.
"""


def _fake_gcide(path: str, per_letter: dict[str, int]) -> str:
    """A tiny dictd-format GCIDE: ``n`` entries per letter, bodies padded to control the size."""
    chunks = [HEADER.strip()]
    for letter, n in per_letter.items():
        for k in range(n):
            word = f"{letter}word{k:02d}"
            chunks.append(
                f'{word} \\{word[0]}*word"{k}\\ ({letter.lower()}[=a]rd), n. [L. {{{letter}ex*am*ple}}]\n'
                f"   1. The {k}th sense of {word}; a thing of the letter {letter}.\n"
                f"      [1913 Webster]\n\n"
                f"   2. A second sense, wrapped over\n      two lines. --Shak.\n      [1913 Webster]"
            )
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n\n".join(chunks) + "\n")
    return path


def _documents(folder: str) -> list[str]:
    docs: list[str] = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("shard-"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                docs += [d for d in f.read().split("\n\n") if d.strip()]
    return docs


def test_split_evenly_cuts_contiguous_ranges_of_similar_size() -> None:
    assert split_evenly([5, 5, 5, 5], 2) == [(0, 2), (2, 4)]
    assert split_evenly([10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 11)]
    ranges = split_evenly([3, 1, 4, 1, 5, 9, 2, 6], 3)
    assert ranges[0][0] == 0 and ranges[-1][1] == 8
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(ranges, ranges[1:], strict=False))
    with pytest.raises(CorpusError):
        split_evenly([1, 2], 3)


def test_clean_entry_keeps_plain_text_and_no_blank_lines() -> None:
    raw = (
        'Abandon \\A*ban"don\\ ([.a]*b[a^]n"d[u^]n), v. t. [OF. {abandoner}; see {Ban}.]\n'
        "   1. To cast or drive out; to banish;\n      to expel. [Obs.]\n      [1913 Webster]\n\n"
        "            That he might abandon them. --Udall.\n      [1913 Webster]\n\n"
        "   Syn: To give up; yield; q[=y]vas; f[ae]ces.\n        [WordNet 1.5 +PJC]\n"
    )
    text = clean_entry(raw)
    assert text.splitlines() == [
        "Abandon, v. t. [OF. abandoner; see Ban.]",
        "1. To cast or drive out; to banish; to expel. [Obs.]",
        "That he might abandon them. --Udall.",
        "Syn: To give up; yield; qȳvas; fæces.",
    ]


def test_versions_are_ordered_alphabetical_ranges(tmp_path) -> None:
    sizes = {letter: 3 for letter in string.ascii_uppercase}
    sizes.update({"A": 9, "S": 9})
    source = _fake_gcide(str(tmp_path / "gcide.dict.dz"), sizes)
    urls = gcide_versions(str(tmp_path / "out"), versions=4, source=source)
    assert urls == [str(tmp_path / "out" / f"v{i}") for i in (1, 2, 3, 4)]

    previous_last = ""
    total = 0
    for number, url in enumerate(urls, start=1):
        ready = json.loads((tmp_path / "out" / f"v{number}" / "_READY").read_text())
        docs = _documents(url)
        heads = [d.split(",", 1)[0] for d in docs]
        assert heads == sorted(heads), "entries inside a version are in dictionary order"
        assert heads[0] > previous_last, "each version starts after the previous one ends"
        first, last = ready["letters"].split("-")
        assert all(first <= h[0] <= last for h in heads)
        assert ready["documents"] == len(docs) and ready["shards"] == ["shard-00000.txt"]
        assert all("\\" not in d and "{" not in d and "Webster" not in d for d in docs)
        previous_last = heads[-1]
        total += len(docs)
    assert total == sum(sizes.values())
    # The big letters sit in different versions: A in v1, S in v4.
    assert json.loads((tmp_path / "out" / "v1" / "_READY").read_text())["letters"].startswith("A")
    assert json.loads((tmp_path / "out" / "v4" / "_READY").read_text())["letters"].endswith("Z")


def test_max_chars_truncates_each_version(tmp_path) -> None:
    source = _fake_gcide(str(tmp_path / "gcide.dict.dz"), {letter: 20 for letter in "ABCD"})
    urls = gcide_versions(str(tmp_path / "out"), versions=2, source=source, max_chars_per_version=500)
    for url in urls:
        docs = _documents(url)
        assert 1 <= len(docs) < 20
        assert sum(len(d) for d in docs) <= 500


def test_missing_source_says_how_to_install(tmp_path) -> None:
    missing = str(tmp_path / "nope" / "gcide.dict.dz")
    with pytest.raises(CorpusError) as info:
        gcide_versions(str(tmp_path / "out"), versions=4, source=missing)
    assert "apt-get install -y dict-gcide" in str(info.value)
    assert missing in str(info.value)
    assert not (tmp_path / "out").exists()


def test_more_versions_than_letters_is_refused(tmp_path) -> None:
    source = _fake_gcide(str(tmp_path / "gcide.dict.dz"), {"A": 2, "B": 2})
    with pytest.raises(CorpusError, match="2 letters"):
        gcide_versions(str(tmp_path / "out"), versions=3, source=source)


def test_rewriting_a_version_removes_stale_shards(tmp_path) -> None:
    store = Store(str(tmp_path))
    write_version(store, "v1", [f"document {i} " + "x" * 50 for i in range(20)], shard_bytes=200)
    assert len([n for n in store.ls("v1") if n.startswith("shard-")]) > 3
    write_version(store, "v1", ["only one"], shard_bytes=200)
    assert store.ls("v1") == ["_READY", "shard-00000.txt"]
    assert store.read_text("v1/shard-00000.txt") == "only one\n"
    with pytest.raises(CorpusError, match="blank line"):
        write_version(store, "v2", ["a\n\nb"])


@pytest.mark.skipif(not os.path.exists(GCIDE_PATH), reason="dict-gcide is not installed")
def test_real_gcide_small_run(tmp_path) -> None:
    entries = read_gcide_entries()
    assert len(entries) > 100_000
    urls = gcide_versions(str(tmp_path / "gcide"), versions=4, max_chars_per_version=20_000)
    letters = []
    for number, url in enumerate(urls, start=1):
        assert sorted(os.listdir(url)) == ["_READY", "shard-00000.txt"]
        ready = json.loads(open(os.path.join(url, "_READY")).read())
        assert ready["version"] == number and 0 < ready["chars"] <= 20_000
        letters.append(ready["letters"])
        docs = _documents(url)
        assert len(docs) == ready["documents"] > 10
    assert letters[0].startswith("A") and letters[-1].endswith("Z")
    bounds = [tuple(label.split("-")) for label in letters]
    assert all(a[1] < b[0] for a, b in zip(bounds, bounds[1:], strict=False))
