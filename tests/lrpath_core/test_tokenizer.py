from __future__ import annotations

import os

import numpy as np
import pytest
from transformers import AutoTokenizer

from lrpath_core.storage import Store
from lrpath_core.synthetic import synthetic_documents
from lrpath_core.tokenizer import (
    EOS_ID,
    EOS_TOKEN,
    TOKENIZER_FILES,
    TokenizerError,
    document_ids,
    encode_documents,
    load_tokenizer,
    save_tokenizer,
    tokenizer_sha256,
    train_tokenizer,
)

UNICODE_SAMPLES = [
    "plain ascii, with  two spaces\nand a newline\n\n\tand a tab",
    "Ünïcödé — naïve café, Ωmega, Привет мир",
    "日本語のテキスト 🙂🚀 emoji and CJK never seen in training",
    "\x01 control \x7f bytes and trailing space ",
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(synthetic_documents(1, 200, seed=0), vocab_size=400)


def test_training_gives_byte_level_bpe_with_eos_zero(tok) -> None:
    assert tok.convert_tokens_to_ids(EOS_TOKEN) == EOS_ID == tok.eos_token_id
    assert 300 < len(tok) <= 400, "merges were learned up to the requested size"
    ids = tok("about the", add_special_tokens=False)["input_ids"]
    assert len(ids) < len("about the"), "frequent words are merged into few tokens"
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=100)


def test_saved_tokenizer_loads_with_autotokenizer_and_round_trips(tok, tmp_path) -> None:
    store = Store(str(tmp_path / "store"))
    url = save_tokenizer(tok, store, "tokenizer")
    assert url == str(tmp_path / "store" / "tokenizer")
    assert sorted(os.listdir(url)) == sorted(TOKENIZER_FILES)

    loaded = AutoTokenizer.from_pretrained(url)
    assert loaded.eos_token == EOS_TOKEN and loaded.eos_token_id == EOS_ID
    for text in UNICODE_SAMPLES:
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert ids == tok(text, add_special_tokens=False)["input_ids"]
        assert EOS_ID not in ids
        assert loaded.decode(ids) == text

    again = load_tokenizer(store, "tokenizer")
    assert tokenizer_sha256(again) == tokenizer_sha256(tok)
    assert (
        again.decode(again(UNICODE_SAMPLES[1], add_special_tokens=False)["input_ids"]) == UNICODE_SAMPLES[1]
    )


def test_missing_tokenizer_names_the_url(tmp_path) -> None:
    store = Store(str(tmp_path))
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(store, "tokenizer")
    assert str(tmp_path / "tokenizer") in str(info.value)


def test_hash_follows_the_vocabulary_not_call_settings(tok) -> None:
    before = tokenizer_sha256(tok)
    tok(["a long enough text to truncate"], truncation=True, max_length=3, padding="max_length")
    assert tokenizer_sha256(tok) == before
    other = train_tokenizer(synthetic_documents(1, 200, seed=0), vocab_size=380)
    assert tokenizer_sha256(other) != before
    same = train_tokenizer(synthetic_documents(1, 200, seed=0), vocab_size=400)
    assert tokenizer_sha256(same) == before, "training is deterministic"


def test_literal_eos_text_in_a_document_stays_text(tok) -> None:
    text = f"before {EOS_TOKEN} after"
    [ids] = encode_documents(tok, [text])
    assert EOS_ID not in ids
    assert tok.decode(ids) == text
    assert tok.backend_tokenizer.encode_special_tokens is False, "the caller's tokenizer is left unchanged"


@pytest.mark.parametrize("batch_chars", [1, 40, 1 << 20])
def test_document_ids_in_batches_are_the_documents_encoded_at_once(tok, batch_chars) -> None:
    docs = [*UNICODE_SAMPLES, f"x {EOS_TOKEN} y", *synthetic_documents(1, 20, seed=3)]
    batches = list(document_ids(tok, iter(docs), batch_chars=batch_chars))
    assert all(b.dtype == np.int32 for b in batches)
    expected = [t for ids in encode_documents(tok, docs) for t in (*ids, EOS_ID)]
    assert np.concatenate(batches).tolist() == expected
    assert int(np.count_nonzero(np.concatenate(batches) == EOS_ID)) == len(docs)
    assert (len(batches) == len(docs)) == (batch_chars == 1)
