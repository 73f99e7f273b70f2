"""Validation is held out by document before packing, and the tokenizer never sees it.

Every document carries a unique marker (``<0042>``); decoding a side's blocks shows which
documents it holds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lrpath_core import ingest as ingest_module
from lrpath_core import layout
from lrpath_core.ingest import ingest_data
from lrpath_core.packing import IngestError, is_validation_document, load_blocks, pack_version
from lrpath_core.shards import list_shards, read_shard
from lrpath_core.storage import Store
from lrpath_core.synthetic import synthetic_documents
from lrpath_core.tokenizer import train_tokenizer

SEQ = 16
FRACTION = 0.2
MARKER = re.compile(r"<(\d{4})>")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(synthetic_documents(1, 150, seed=0), vocab_size=320)


def marked_documents(n: int) -> list[str]:
    return [f"<{i:04d}> {text}" for i, text in enumerate(synthetic_documents(1, n, seed=5))]


def write_shards(folder: Path, parts: dict[str, list[str]]) -> str:
    """``.txt`` shards hold blank-line separated paragraphs, ``.jsonl`` shards one record each."""
    folder.mkdir(parents=True)
    for name, docs in parts.items():
        if name.endswith(".jsonl"):
            (folder / name).write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        else:
            (folder / name).write_text("\n\n".join(docs) + "\n")
    return str(folder)


def pack(store: Store, folder: str, tok, version: int = 1, fraction: float = FRACTION):
    shards = [read_shard(u) for u in list_shards(folder)]
    return pack_version(store, version, shards, tok, SEQ, fraction, 0, None, folder)


def side_markers(store: Store, tok, version: int = 1) -> dict[str, set[str]]:
    """The markers whose text is in each side's blocks (decoded in order, as they were packed)."""
    found = {}
    for split in ("train", "val"):
        text = tok.decode(load_blocks(store, version, split).ravel().tolist())
        found[split] = set(MARKER.findall(text))
    return found


def expected_val(docs: list[str], fraction: float = FRACTION) -> set[str]:
    return {MARKER.match(d).group(1) for d in docs if is_validation_document(d, fraction)}


def test_the_held_out_share_follows_val_fraction_and_grows_with_it() -> None:
    texts = [f"document number {i}" for i in range(20_000)]
    for fraction in (0.05, 0.2):
        share = sum(is_validation_document(t, fraction) for t in texts) / len(texts)
        assert share == pytest.approx(fraction, abs=0.01), fraction
    assert all(is_validation_document(t, 0.2) for t in texts if is_validation_document(t, 0.05))


def test_a_document_is_never_on_both_sides(tmp_path, tok) -> None:
    docs = marked_documents(60)
    folder = write_shards(tmp_path / "v1", {"a.txt": docs[:30], "b.jsonl": docs[30:]})
    store = Store(str(tmp_path / "store"))
    manifest = pack(store, folder, tok)
    held = expected_val(docs)
    assert 0 < len(held) < 60 and manifest.val_documents == len(held)
    found = side_markers(store, tok)
    assert not found["train"] & found["val"], "a document's text is on both sides"
    assert found["val"] <= held and not found["train"] & held
    # each side only loses the text of its last, partial block
    assert (
        len(held - found["val"]) <= 1 and len(set(MARKER.findall("".join(docs))) - held - found["train"]) <= 1
    )


def test_the_split_depends_on_the_text_only_not_on_runs_shards_order_or_version(tmp_path, tok) -> None:
    docs = marked_documents(60)
    one = write_shards(tmp_path / "one", {"a.txt": docs})
    # the same documents in three shards whose name order reverses the documents' order
    reordered = write_shards(
        tmp_path / "three",
        {"a.jsonl": docs[40:][::-1], "b.txt": docs[20:40], "c.txt": docs[:20][::-1]},
    )
    stores = {label: Store(str(tmp_path / label)) for label in ("run1", "run2", "shards", "as-v3")}
    pack(stores["run1"], one, tok)
    pack(stores["run2"], one, tok)
    pack(stores["shards"], reordered, tok)
    pack(stores["as-v3"], one, tok, version=3)
    for split in ("train.npy", "val.npy"):
        assert stores["run1"].read_bytes(f"data/v1/{split}") == stores["run2"].read_bytes(f"data/v1/{split}")
    held = expected_val(docs)
    full = {label: side_markers(s, tok, 3 if label == "as-v3" else 1) for label, s in stores.items()}
    for label, found in full.items():
        assert found["val"] <= held and not found["train"] & held, label
    assert full["run1"] == full["as-v3"]
    # another order cuts other partial blocks: whole documents are compared, not the last one of a side
    assert len(full["shards"]["val"] ^ full["run1"]["val"]) <= 2


def test_a_version_too_small_to_split_is_refused_before_anything_is_written(tmp_path, tok) -> None:
    docs = marked_documents(200)
    kept = [d for d in docs if not is_validation_document(d, FRACTION)][:40]
    store = Store(str(tmp_path / "store"))
    folder = write_shards(tmp_path / "v2", {"a.txt": kept})
    with pytest.raises(IngestError, match=r"version 2 holds out 0 of its 40 documents for validation"):
        pack(store, folder, tok, version=2)
    held = [d for d in docs if is_validation_document(d, FRACTION)][:30]
    folder = write_shards(tmp_path / "v3", {"a.txt": held})
    with pytest.raises(IngestError, match=r"version 3 has 0 training blocks"):
        pack(store, folder, tok, version=3)
    assert list(store.walk_files("data")) == []


def test_the_tokenizer_is_trained_on_version_1s_training_documents_only(tmp_path, make_config, monkeypatch):
    cfg = make_config(str(tmp_path / "store"))
    fraction = cfg.data.val_fraction
    # a rare word, repeated: a merge of its own if the tokenizer saw this document
    rare = next(
        doc
        for k in range(1000)
        if is_validation_document(doc := f"<9999> {k} " + " ".join(["qzvxj"] * 300), fraction)
    )
    docs = [*marked_documents(150), rare]
    folder = write_shards(tmp_path / "v1", {"a.txt": docs})
    seen: list[str] = []
    real = ingest_module.train_tokenizer

    def recording(texts, vocab_size):
        return real((seen.append(t) or t for t in texts), vocab_size)

    monkeypatch.setattr(ingest_module, "train_tokenizer", recording)
    store = Store(cfg.store)
    manifest = ingest_data(store, cfg, 1, folder)
    assert store.exists(layout.TOKENIZER_JSON)
    assert seen == [d for d in docs if not is_validation_document(d, fraction)]
    assert rare not in seen and manifest.val_documents == len(docs) - len(seen)

    from lrpath_core.timeline_store import load_project_tokenizer

    project = load_project_tokenizer(store)
    everything = real(docs, cfg.data.vocab_size)
    assert len(everything.encode(" qzvxj", add_special_tokens=False)) == 1, "the control learns the word"
    assert len(project.encode(" qzvxj", add_special_tokens=False)) > 1


def test_a_new_version_on_a_store_split_the_old_way_is_ingested_with_a_warning(
    ingested_store, tmp_path, caplog
) -> None:
    from lrpath_core.ingest import add_version

    store, cfg = ingested_store
    manifest = json.loads(store.read_bytes(layout.data_manifest(1)))
    assert manifest.pop("split_format") == 2
    store.write_bytes(layout.data_manifest(1), json.dumps(manifest).encode())
    folder = write_shards(tmp_path / "v3", {"a.txt": marked_documents(150)})
    with caplog.at_level("WARNING", logger="lrpath_core.ingest"):
        record = add_version(store, cfg, folder)
    assert record.version == 3
    assert "version 1 was split with split format 1" in caplog.text and "Start a new store" in caplog.text
