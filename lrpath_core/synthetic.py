"""Generated, learnable text for tests and quick runs; no external data.

Each version is a small world of its own: made-up nouns, verbs, adjectives and places that no
other version uses, and fixed facts about them (each noun has one colour-like adjective, one
habit and one home). Documents tell those facts through templates shared by every version, so a
tiny model's perplexity falls as it learns the grammar, and falls again on a new version only
once it has learned that version's words and facts. The vocabulary depends on the version
alone; ``seed`` picks which documents are drawn.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrpath_core.corpus import SHARD_BYTES, write_version
from lrpath_core.storage import Store

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_SIZES = {"nouns": 40, "verbs": 12, "adjectives": 12, "places": 8}

_TEMPLATES = [
    "the {n} is {a} .",
    "a {a} {n} {v} in the {p} .",
    "every morning the {n} {v} near the {n2} .",
    "when the {n} {v} , the {n2} {v2} too .",
    "people say that the {n} lives in the {p} .",
    "no {n} is ever {a2} , because every {n} is {a} .",
    "the {n2} and the {n} walk to the {p} together .",
    "if you look in the {p} , you will see a {a} {n} .",
]


@dataclass(frozen=True)
class Topic:
    """One version's world: its words and the fixed facts about each noun."""

    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]
    places: tuple[str, ...]
    adjective_of: dict[str, str]
    verb_of: dict[str, str]
    place_of: dict[str, str]

    def words(self) -> set[str]:
        return set(self.nouns) | set(self.verbs) | set(self.adjectives) | set(self.places)


@functools.lru_cache(maxsize=64)
def topic(version: int) -> Topic:
    """The vocabulary of ``version`` (1-based); disjoint from every earlier version's."""
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    taken: set[str] = set().union(*(topic(v).words() for v in range(1, version)))
    taken |= {w for t in _TEMPLATES for w in t.split()} | set(_NUMBERS)
    rng = np.random.default_rng((0x5EED, version))
    drawn: dict[str, list[str]] = {}
    for kind, size in _SIZES.items():
        words: list[str] = []
        while len(words) < size:
            word = _pseudo_word(rng)
            if word not in taken:
                taken.add(word)
                words.append(word)
        drawn[kind] = words
    nouns = drawn["nouns"]
    return Topic(
        nouns=tuple(nouns),
        verbs=tuple(drawn["verbs"]),
        adjectives=tuple(drawn["adjectives"]),
        places=tuple(drawn["places"]),
        adjective_of={n: drawn["adjectives"][int(rng.integers(_SIZES["adjectives"]))] for n in nouns},
        verb_of={n: drawn["verbs"][int(rng.integers(_SIZES["verbs"]))] for n in nouns},
        place_of={n: drawn["places"][int(rng.integers(_SIZES["places"]))] for n in nouns},
    )


def synthetic_documents(version: int, n: int, seed: int) -> list[str]:
    """``n`` documents of ``version``'s world; the same arguments always give the same documents."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    world = topic(version)
    rng = np.random.default_rng((seed, version))
    return [_document(world, rng) for _ in range(n)]


def write_synthetic_versions(
    out_dir: str,
    versions: int,
    docs_per_version: int,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> list[str]:
    """Write ``out_dir/v1`` … ``out_dir/v{versions}`` (shards + ``_READY``); returns the folder URLs."""
    if versions < 1 or docs_per_version < 1:
        raise ValueError(
            f"need versions >= 1 and docs_per_version >= 1, got {versions} and {docs_per_version}"
        )
    store = Store(out_dir, storage_options)
    return [
        write_version(
            store,
            f"v{v}",
            synthetic_documents(v, docs_per_version, seed),
            info={"source": "synthetic", "version": v, "seed": seed},
            shard_bytes=shard_bytes,
        )
        for v in range(1, versions + 1)
    ]


def _pseudo_word(rng: np.random.Generator) -> str:
    syllables = int(rng.integers(2, 4))
    return "".join(
        _CONSONANTS[int(rng.integers(len(_CONSONANTS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
        for _ in range(syllables)
    )


def _document(world: Topic, rng: np.random.Generator) -> str:
    def pick(seq: tuple[str, ...]) -> str:
        return seq[int(rng.integers(len(seq)))]

    subject = pick(world.nouns)
    lines = [f"about the {subject} ."]
    for _ in range(int(rng.integers(4, 10))):
        if rng.random() < 0.15:
            a, b = int(rng.integers(0, 6)), int(rng.integers(0, 5))
            lines.append(f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[a + b]} .")
            continue
        n = subject if rng.random() < 0.6 else pick(world.nouns)
        n2 = pick(world.nouns)
        other_adjectives = tuple(x for x in world.adjectives if x != world.adjective_of[n])
        template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        lines.append(
            template.format(
                n=n,
                n2=n2,
                a=world.adjective_of[n],
                a2=pick(other_adjectives),
                v=world.verb_of[n],
                v2=world.verb_of[n2],
                p=world.place_of[n],
            )
        )
    return lines[0] + "\n" + " ".join(lines[1:])
