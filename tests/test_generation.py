"""fnn.generate: shapes, determinism, greedy top_k=1, max_len cropping, temperature,
bad input; a checkpoint that carries a language model's vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fnn
from fnn import specs

V, MAX_LEN = 7, 5


def lm(max_len: int = MAX_LEN, seed: int = 0) -> fnn.Network:
    arch = fnn.sequential(
        (None,),
        [
            specs.embedding(V, 8),
            specs.positional_embedding(max_len),
            *specs.transformer_block(2, bias=False),
            specs.layer_norm(),
            specs.dense(V, bias=False),
        ],
        output="softmax",
    )
    return fnn.init(arch, rng=seed)


PROMPT = np.array([[1, 2, 3], [4, 0, 6]])


def test_shape_dtype_and_prompt_kept() -> None:
    out = fnn.generate(lm(), PROMPT, 9, rng=0)
    assert out.shape == (2, 12) and out.dtype == np.int64
    assert np.array_equal(out[:, :3], PROMPT)
    assert out.min() >= 0 and out.max() < V
    assert np.array_equal(fnn.generate(lm(), PROMPT, 0, rng=0), PROMPT)


def test_deterministic_given_rng() -> None:
    net = lm()
    a = fnn.generate(net, PROMPT, 20, rng=3)
    b = fnn.generate(net, PROMPT, 20, rng=np.random.default_rng(3))
    c = fnn.generate(net, PROMPT, 20, rng=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def greedy(net: fnn.Network, prompt: np.ndarray[Any, Any], steps: int, window: int) -> Any:
    out = prompt.copy()
    for _ in range(steps):
        probs = fnn.predict(net, out[:, -window:])  # (n, w, V)
        out = np.concatenate([out, probs[:, -1].argmax(axis=1)[:, None]], axis=1)
    return out


def test_top_k_1_is_greedy_argmax_and_crops_to_max_len() -> None:
    net = lm()
    got = fnn.generate(net, PROMPT, 12, top_k=1, rng=0)
    assert np.array_equal(got, greedy(net, PROMPT, 12, MAX_LEN))
    assert PROMPT.shape[1] + 12 > MAX_LEN  # the window slid over the generated tokens
    assert fnn.generation.context_length(net) == MAX_LEN


def test_a_prompt_longer_than_the_context_is_refused_before_any_draw() -> None:
    net = lm()
    long_prompt = np.arange(2 * (MAX_LEN + 2)).reshape(2, MAX_LEN + 2) % V
    gen = np.random.default_rng(3)
    before = gen.bit_generator.state
    with pytest.raises(ValueError, match=f"prompt has {MAX_LEN + 2} tokens.*context of {MAX_LEN}"):
        fnn.generate(net, long_prompt, 3, rng=gen)
    assert gen.bit_generator.state == before
    # its last max_len tokens are accepted
    got = fnn.generate(net, long_prompt[:, -MAX_LEN:], 3, top_k=1, rng=0)
    assert np.array_equal(got, greedy(net, long_prompt[:, -MAX_LEN:], 3, MAX_LEN))


def test_temperature_sharpens_and_flattens() -> None:
    net = lm()
    prompt = np.tile(PROMPT[:1], (4000, 1))
    p = fnn.predict(net, prompt[:1])[0, -1].astype(np.float64)
    best = int(p.argmax())
    share = []
    for t in (0.3, 1.0, 3.0):
        got = fnn.generate(net, prompt, 1, temperature=t, rng=0)[:, -1]
        q = p ** (1 / t) / (p ** (1 / t)).sum()  # softmax(logits / t)
        freq = np.bincount(got, minlength=V) / len(got)
        assert np.abs(freq - q).max() < 0.03, (t, freq, q)
        share.append(freq[best])
    assert share[0] > share[1] > share[2]  # colder: more of the likeliest token


def test_top_k_restricts_to_the_k_likeliest() -> None:
    net = lm()
    prompt = np.tile(PROMPT[:1], (300, 1))
    p = fnn.predict(net, prompt[:1])[0, -1]
    top2 = set(np.argsort(p)[-2:].tolist())
    got = fnn.generate(net, prompt, 1, top_k=2, temperature=5.0, rng=0)[:, -1]
    assert set(got.tolist()) == top2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt": np.zeros((1, 0), int)}, ValueError, "shape"),
        ({"prompt": np.zeros((0, 3), int)}, ValueError, "shape"),
        ({"prompt": np.array([1, 2])}, ValueError, "shape"),
        ({"prompt": np.array([[1.0, 2.0]])}, ValueError, "integer"),
        ({"prompt": np.array([[True, False]])}, ValueError, "integer"),
        ({"prompt": np.array([[1, 7]])}, ValueError, r"token id 7 at prompt\[0, 1\]"),
        ({"prompt": np.array([[1], [-1]])}, ValueError, r"token id -1 at prompt\[1, 0\]"),
        ({"steps": -1}, ValueError, "steps"),
        ({"steps": 2.0}, TypeError, "steps"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"top_k": V + 1}, ValueError, "top_k"),
        ({"top_k": 1.5}, TypeError, "top_k"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    net = lm()
    args: dict[str, Any] = {"prompt": PROMPT.copy(), "steps": 3} | kwargs
    before = np.array(args["prompt"], copy=True)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(error, match=match):
        fnn.generate(net, args.pop("prompt"), args.pop("steps"), rng=rng, **args)
    assert np.array_equal(kwargs.get("prompt", PROMPT), before)
    assert rng.bit_generator.state == state  # nothing drawn


def test_a_network_that_is_not_a_language_model_is_refused() -> None:
    net = fnn.init(fnn.mlp([3, 4, 2], output="softmax"), rng=0)
    with pytest.raises(ValueError, match="language model"):
        fnn.generate(net, PROMPT, 2, rng=0)
    with pytest.raises(TypeError, match="net"):
        fnn.generate("net", PROMPT, 2, rng=0)  # type: ignore[arg-type]


def test_checkpoint_carries_the_vocabulary(tmp_path: Path) -> None:
    text = "to be, or not to be"
    vocab = fnn.datasets.char_vocab(text)
    arch = fnn.sequential((None,), [specs.embedding(vocab.size, 4), specs.dense(vocab.size)])
    net = fnn.init(arch, rng=0)
    path = fnn.save(tmp_path / "lm", net, vocab=vocab)
    ckpt = fnn.load(path)
    assert ckpt.vocab == vocab
    assert ckpt.vocab is not None and ckpt.vocab.decode(ckpt.vocab.encode(text)) == text
    assert np.array_equal(ckpt.params.flat, net.flat)
    # without a vocabulary: as before (no manifest entry, None on load)
    assert fnn.load(fnn.save(tmp_path / "plain", net)).vocab is None
    with pytest.raises(TypeError, match="vocab"):
        fnn.save(tmp_path / "bad", net, vocab="abc")  # type: ignore[arg-type]
    assert not (tmp_path / "bad.npz").exists()


def test_a_malformed_vocabulary_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    import json
    import zipfile

    net = fnn.init(fnn.sequential((None,), [specs.embedding(3, 2), specs.dense(3)]), rng=0)
    good = fnn.save(tmp_path / "good", net, vocab=fnn.datasets.char_vocab("abc"))
    for bad_vocab in ({"kind": "char_vocab", "chars": "ba"}, {"kind": "words"}, "abc"):
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
            for item in zin.infolist():
                data = zin.read(item)
                if item.filename == "manifest.json.npy":
                    arr = np.load(__import__("io").BytesIO(data))
                    m = json.loads(arr.tobytes().decode())
                    m["vocab"] = bad_vocab
                    buf = __import__("io").BytesIO()
                    np.save(buf, np.frombuffer(json.dumps(m).encode(), np.uint8))
                    data = buf.getvalue()
                zout.writestr(item, data)
        with pytest.raises(ValueError, match="vocab"):
            fnn.load(bad)
