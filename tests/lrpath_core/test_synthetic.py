from __future__ import annotations

import json
import math
import os
from collections import Counter

import pytest

from lrpath_core.shards import list_shards, read_shard
from lrpath_core.synthetic import synthetic_documents, topic, write_synthetic_versions


def _words(docs: list[str]) -> list[str]:
    return [w for d in docs for w in ["<s>", *d.split()]]


def _bigram_bits_per_word(train: list[str], test: list[str]) -> float:
    """Cross-entropy of an add-0.1 smoothed word bigram model fitted on ``train``, on ``test``."""
    vocab = set(train) | set(test)
    pairs = Counter(zip(train, train[1:], strict=False))
    firsts = Counter(train[:-1])
    k, v = 0.1, len(vocab)
    bits = [
        -math.log2((pairs[(a, b)] + k) / (firsts[a] + k * v)) for a, b in zip(test, test[1:], strict=False)
    ]
    return sum(bits) / len(bits)


def test_same_seed_same_documents_other_seed_other_documents() -> None:
    assert synthetic_documents(2, 30, seed=7) == synthetic_documents(2, 30, seed=7)
    assert synthetic_documents(2, 30, seed=7) != synthetic_documents(2, 30, seed=8)
    assert synthetic_documents(1, 30, seed=7) != synthetic_documents(2, 30, seed=7)
    assert synthetic_documents(1, 0, seed=0) == []
    with pytest.raises(ValueError):
        topic(0)


def test_each_version_brings_its_own_words() -> None:
    worlds = [topic(v).words() for v in (1, 2, 3, 4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not worlds[i] & worlds[j]
    v2_text = set(_words(synthetic_documents(2, 50, seed=0)))
    assert v2_text & worlds[1]
    assert not v2_text & worlds[0]


def test_facts_are_consistent_within_a_version() -> None:
    world = topic(3)
    for doc in synthetic_documents(3, 200, seed=1):
        for sentence in doc.replace("\n", " ").split(" . "):
            words = sentence.split()
            if words[:1] == ["the"] and len(words) == 4 and words[2] == "is":
                assert world.adjective_of[words[1]] == words[3]


def test_text_is_learnable_and_later_versions_are_new() -> None:
    train = _words(synthetic_documents(1, 400, seed=0))
    same = _bigram_bits_per_word(train, _words(synthetic_documents(1, 100, seed=1)))
    new = _bigram_bits_per_word(train, _words(synthetic_documents(2, 100, seed=1)))
    uniform = math.log2(len(set(train)))
    assert same < 0.5 * uniform
    assert new > same + 2.0


def test_written_versions_read_back_as_the_same_documents(tmp_path) -> None:
    urls = write_synthetic_versions(
        str(tmp_path), versions=3, docs_per_version=120, seed=5, shard_bytes=8_000
    )
    assert urls == [str(tmp_path / f"v{v}") for v in (1, 2, 3)]
    for v, url in enumerate(urls, start=1):
        ready = json.loads((tmp_path / f"v{v}" / "_READY").read_text())
        assert ready["source"] == "synthetic" and ready["seed"] == 5 and ready["documents"] == 120
        shards = list_shards(url)
        assert len(shards) > 1 and [os.path.basename(s) for s in shards] == ready["shards"]
        documents = [d for s in shards for d in read_shard(s).documents]
        assert documents == synthetic_documents(v, 120, seed=5)
