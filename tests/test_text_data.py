"""The shipped Shakespeare text, the character vocabulary, the train/validation split
and random text windows."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn.datasets import CharVocab, char_vocab, load_shakespeare, split_text, text_windows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare" / "tragedies.txt"
SHA256 = "e578771aec0412d8a7d3cff4f82d98e57b75bd7190c9f3c08fb3bb60a7d35b21"


@pytest.fixture(scope="module")
def text() -> str:
    return load_shakespeare()


def test_shakespeare_is_the_published_text(text: str) -> None:
    assert len(text) == 1_157_406
    assert len(set(text)) == 73
    assert text.isascii()
    # the same bytes as the source file whose hash its README gives
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == SHA256
    assert text.startswith(text.lstrip())  # no leading whitespace lost or added
    assert "To be, or not to be" in text and "Coriolanus" in text[-200_000:]
    if SHARED.exists():
        assert SHARED.read_text(encoding="ascii") == text


def test_shakespeare_ships_gzipped_in_the_package() -> None:
    data = resources.files("fnn.datasets").joinpath("data")
    packed = data.joinpath("tragedies.txt.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"  # the gzip magic number
    assert 400_000 < len(packed) < 500_000  # about 460 KB
    readme = data.joinpath("README.md").read_text(encoding="utf-8")
    assert "Creative Commons Attribution 2.5" in readme and SHA256 in readme


def test_char_vocab_round_trips_the_corpus(text: str) -> None:
    vocab = char_vocab(text)
    assert vocab.size == 73
    assert vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert ids.min() == 0 and ids.max() == vocab.size - 1
    # ids follow the sorted order: character c has id chars.index(c)
    for i in (0, 1, 500_000, len(text) - 1):
        assert ids[i] == vocab.chars.index(text[i])
    assert vocab.decode(ids) == text


def test_char_vocab_small_and_unicode() -> None:
    vocab = char_vocab("hello, wörld")
    assert vocab.chars == " ,dehlorwö"
    np.testing.assert_array_equal(vocab.encode("löw"), [5, 9, 8])
    assert vocab.decode(np.array([5, 9, 8], dtype=np.int32)) == "löw"
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""


def test_char_vocab_unknown_character_names_it_and_its_position() -> None:
    vocab = char_vocab("abc")
    with pytest.raises(ValueError, match=r"'z' at position 3"):
        vocab.encode("abcz")
    with pytest.raises(ValueError, match=r"'€' at position 1"):
        vocab.encode("a€")  # a code point beyond the vocabulary's table
    with pytest.raises(ValueError, match=r"id 3 at position 1 is outside \[0, 3\)"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="id -1 at position 0"):
        vocab.decode([-1])
    with pytest.raises(ValueError, match="integers"):
        vocab.decode(np.array([0.0]))
    with pytest.raises(TypeError, match="text must be a str"):
        vocab.encode(b"abc")  # type: ignore[arg-type]


def test_char_vocab_is_json_serialisable_and_frozen() -> None:
    vocab = char_vocab("to be or not")
    restored = CharVocab.from_config(json.loads(json.dumps(vocab.config())))
    assert restored == vocab and hash(restored) == hash(vocab)
    np.testing.assert_array_equal(restored.encode("not be"), vocab.encode("not be"))
    with pytest.raises(AttributeError):
        vocab.chars = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="sorted"):
        CharVocab.from_config({"kind": "char_vocab", "chars": "ba"})
    with pytest.raises(ValueError, match="not a char_vocab"):
        CharVocab.from_config({"chars": "ab"})
    with pytest.raises(TypeError, match="chars must be a str"):
        CharVocab.from_config({"kind": "char_vocab", "chars": 3})


def test_split_text_is_the_conventional_split(text: str) -> None:
    train, val = split_text(text, 0.9)
    n = len(text)
    assert len(train) == int(0.9 * n) and train + val == text
    ids = char_vocab(text).encode(text)
    ids_train, ids_val = split_text(ids)  # 0.9 by default, arrays too
    assert len(ids_train) == len(train)
    np.testing.assert_array_equal(np.concatenate([ids_train, ids_val]), ids)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="train_fraction"):
            split_text(text, bad)


def test_text_windows_are_windows_and_their_next_characters() -> None:
    ids = np.arange(100, dtype=np.int64) * 3  # each id tells its position
    X, y = text_windows(ids, 8, 16, rng=np.random.default_rng(0))
    assert X.shape == y.shape == (16, 8) and X.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y, X + 3)  # y is X shifted by one position
    np.testing.assert_array_equal(np.diff(X, axis=1), 3)  # contiguous windows
    assert X.min() >= 0 and y.max() <= 99 * 3
    # same seed, same windows; starts cover the whole range
    X2, _ = text_windows(ids, 8, 16, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(X, X2)
    starts, _ = text_windows(ids, 8, 5000, rng=np.random.default_rng(1))
    assert set(starts[:, 0] // 3) == set(range(100 - 8))


def test_text_windows_exact_length_and_bad_inputs() -> None:
    ids = np.array([4, 5, 6], dtype=np.int32)
    X, y = text_windows(ids, 2, 3, rng=0)  # exactly context + 1 tokens: one window
    np.testing.assert_array_equal(X, [[4, 5]] * 3)
    np.testing.assert_array_equal(y, [[5, 6]] * 3)
    assert X.dtype == np.int64
    with pytest.raises(ValueError, match=r"3 tokens, fewer than context \+ 1 = 4"):
        text_windows(ids, 3, 1, rng=0)
    with pytest.raises(ValueError, match="context must be >= 1"):
        text_windows(ids, 0, 1, rng=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        text_windows(ids, 1, 0, rng=0)
    with pytest.raises(ValueError, match="integers"):
        text_windows(np.zeros(5), 1, 1, rng=0)
    with pytest.raises(ValueError, match=r"shape \(len,\)"):
        text_windows(np.zeros((2, 5), dtype=np.int64), 1, 1, rng=0)


def test_text_tools_are_exported() -> None:
    for name in ("CharVocab", "char_vocab", "load_shakespeare", "split_text", "text_windows"):
        assert name in fnn.datasets.__all__
