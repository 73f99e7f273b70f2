from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from publish_support import publish  # noqa: E402

from lrpath_core.publish_error import PublishError  # noqa: E402
from lrpath_core.published import CHECKSUMS, download_published, verify_published  # noqa: E402


def test_flipped_byte_is_named(store, tiny_run, tmp_path):
    publish(store, tiny_run)
    rel = "models/v1/r1/model.safetensors"
    original = store.read_bytes(rel)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    store.write_bytes(rel, bytes(flipped))
    with pytest.raises(PublishError, match=r"model\.safetensors fails its sha256 check") as info:
        verify_published(store, 1, 1)
    assert "README.md" not in str(info.value)
    with pytest.raises(PublishError, match=r"model\.safetensors fails its sha256 check"):
        download_published(store, 1, 1, tmp_path / "download")
    store.write_bytes(rel, original)
    verify_published(store, 1, 1)

    store.write_text("models/v1/r1/extra.txt", "x")
    with pytest.raises(PublishError, match=r"extra\.txt is not listed"):
        verify_published(store, 1, 1)
    store.remove("models/v1/r1/extra.txt")
    store.write_bytes(f"models/v1/r1/{CHECKSUMS}", store.read_bytes(f"models/v1/r1/{CHECKSUMS}") + b"\n")
    with pytest.raises(PublishError, match=r"checksums\.sha256 fails its sha256 check against models/index"):
        verify_published(store, 1, 1)
