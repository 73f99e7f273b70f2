"""The project's fixed tokenizer: byte-level BPE, trained once at bootstrap on version 1's training
documents (never on the held-out ones: :func:`lrpath_core.packing.training_documents`).

Byte-level means every string is encodable (no unknown token). ``<|endoftext|>`` has id 0 and
ends every document. The stored form is what ``AutoTokenizer.from_pretrained(folder)`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from lrpath_core.storage import Store, StoreError

if TYPE_CHECKING:  # transformers (~1 s) is imported by the functions that build a tokenizer
    from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
EOS_ID = 0
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MIN_VOCAB = 257  # 256 byte symbols + the end-of-document token
ENCODE_BATCH_CHARS = 1 << 20


class TokenizerError(StoreError):
    """The stored tokenizer is missing or unreadable."""


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be >= {MIN_VOCAB} (256 bytes + {EOS_TOKEN}), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.token_to_id(EOS_TOKEN) != EOS_ID:
        raise RuntimeError(f"{EOS_TOKEN} did not get id {EOS_ID}")
    special = dict.fromkeys(("eos_token", "bos_token", "unk_token", "pad_token"), EOS_TOKEN)  # one id for all
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False, **special)


def save_tokenizer(tok: PreTrainedTokenizerFast, store: Store, rel: str) -> str:
    """Upload ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` under ``rel``."""
    with tempfile.TemporaryDirectory(prefix="lrpath-tok-") as tmp:
        tok.save_pretrained(tmp)
        config_path = os.path.join(tmp, "tokenizer_config.json")
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        # The generic class name loads with transformers 4.x as well as 5.x.
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        special = {k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)}
        with open(os.path.join(tmp, "special_tokens_map.json"), "w", encoding="utf-8") as f:
            json.dump(special, f, indent=2, sort_keys=True)
        # tokenizer.json last: it is what load_tokenizer looks for.
        for name in sorted(os.listdir(tmp), key=lambda n: n == "tokenizer.json"):
            store.put_file(os.path.join(tmp, name), f"{rel}/{name}")
    return store.url_of(rel)


def load_tokenizer(store: Store, rel: str) -> PreTrainedTokenizerFast:
    url = store.url_of(rel)
    if not store.exists(f"{rel}/tokenizer.json"):
        raise TokenizerError(
            f"no tokenizer at {url} (tokenizer.json is missing): train it at bootstrap "
            f"(train_tokenizer on version 1's training documents, then save_tokenizer)"
        )
    with tempfile.TemporaryDirectory(prefix="lrpath-tok-") as tmp:
        for name in TOKENIZER_FILES:
            if store.exists(f"{rel}/{name}"):
                store.get_file(f"{rel}/{name}", os.path.join(tmp, name))
        from transformers import PreTrainedTokenizerFast

        try:
            # what AutoTokenizer resolves the saved tokenizer_class to, without importing torch (250 MB)
            tok = PreTrainedTokenizerFast.from_pretrained(tmp)
        except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad folder
            raise TokenizerError(f"the tokenizer at {url} could not be loaded: {exc}") from exc
    if tok.convert_tokens_to_ids(EOS_TOKEN) != EOS_ID:
        raise TokenizerError(f"the tokenizer at {url} does not map {EOS_TOKEN} to id {EOS_ID}")
    return tok


def tokenizer_sha256(tok: PreTrainedTokenizerFast) -> str:
    """sha256 of the tokenizer.json content, canonicalised so it survives save/load.

    Truncation and padding are dropped: transformers sets them on the backend when a caller asks
    for them, and they do not change how text becomes ids.
    """
    content = json.loads(tok.backend_tokenizer.to_str())
    content.pop("truncation", None)
    content.pop("padding", None)
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encoder(tok: PreTrainedTokenizerFast) -> Tokenizer:
    """A copy of the backend that encodes documents as ingest does: no truncation, no padding, and a
    literal ``<|endoftext|>`` in the text stays text (the caller's tokenizer is left unchanged)."""
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = True
    return backend


def encode_documents(tok: PreTrainedTokenizerFast, documents: list[str]) -> list[list[int]]:
    """Token ids per document, without special tokens; a literal ``<|endoftext|>`` in the text stays text."""
    return [e.ids for e in encoder(tok).encode_batch(documents, add_special_tokens=False)]


def document_ids(
    tok: PreTrainedTokenizerFast, documents: Iterable[str], batch_chars: int | None = None
) -> Iterator[np.ndarray]:
    """int32 ids of consecutive batches of ``documents``, ``EOS_ID`` after each document.

    Each document is encoded on its own, so the batches joined are the ids of the documents
    encoded at once; a batch holds about ``batch_chars`` (:data:`ENCODE_BATCH_CHARS`) characters,
    which bounds the memory.
    """
    batch_chars = ENCODE_BATCH_CHARS if batch_chars is None else batch_chars
    backend = encoder(tok)
    batch: list[str] = []
    chars = 0
    for document in documents:
        batch.append(document)
        chars += len(document)
        if chars >= batch_chars:
            yield _batch_ids(backend, batch)
            batch, chars = [], 0
    if batch:
        yield _batch_ids(backend, batch)


def _batch_ids(backend: Tokenizer, documents: list[str]) -> np.ndarray:
    ids: list[int] = []
    for encoding in backend.encode_batch(documents, add_special_tokens=False):
        ids += encoding.ids
        ids.append(EOS_ID)
    return np.array(ids, dtype=np.int32)
