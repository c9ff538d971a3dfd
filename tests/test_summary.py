"""fnn.summary: the table of layers, output shapes and parameter counts."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import numpy as np
import pytest

import fnn
from fnn.layers import BatchNorm

SMALL = """\
#  Layer        Output shape  Trainable  Non-trainable
======================================================
   Input        (None, 2)
0  Dense(relu)  (None, 16)           48              0
1  Dense(relu)  (None, 16)          272              0
2  Dense        (None, 1)            17              0
======================================================
Total params: 337
Trainable params: 337
Non-trainable params: 0
Dtype: float64, 2,696 bytes (2.70 KB)
Loss: binary_cross_entropy (sigmoid output)"""


def test_the_table_of_a_small_mlp() -> None:
    table = fnn.summary(fnn.mlp([2, 16, 16, 1], output="sigmoid"))
    assert_type(table, str)  # what a user's type checker sees (mypy runs on tests/)
    assert table == SMALL


def test_an_architecture_and_its_network_give_the_same_table() -> None:
    arch = fnn.mlp([784, 256, 128, 10], output="softmax", dropout=0.2, dtype=np.float32)
    table = fnn.summary(arch)
    assert table == fnn.summary(fnn.init(arch, rng=7))
    lines = table.splitlines()
    assert lines[3] == "0  Dense(relu)   (None, 256)     200,960              0"
    assert lines[4] == "1  Dropout(0.2)  (None, 256)           0              0"
    assert "Total params: 235,146" in lines
    assert "Dtype: float32, 940,584 bytes (940.58 KB)" in lines
    assert lines[-1] == "Loss: cross_entropy (softmax output)"


def test_batch_norm_running_statistics_are_non_trainable() -> None:
    net = fnn.init(fnn.mlp([2, 16, 1], norm="batch"), rng=0)
    lines = fnn.summary(net).splitlines()
    assert lines[4] == "1  BatchNorm         (None, 16)           32             32"
    assert lines[5] == "2  Activation(relu)  (None, 16)            0              0"
    assert lines[-5:-2] == [
        "Total params: 129",
        "Trainable params: 97",
        "Non-trainable params: 32",
    ]


def test_input_shape_where_the_layers_do_not_fix_it() -> None:
    arch = fnn.Architecture(
        layers=(fnn.network.BatchNormSpec(), fnn.DenseSpec(None, 3, "tanh", "glorot_uniform")),
        loss=fnn.losses.MeanSquaredError(),
        dtype=np.float64,
    )
    with pytest.raises(ValueError, match=r"pass input_shape= .* to summary"):
        fnn.summary(arch)
    lines = fnn.summary(arch, input_shape=(5,)).splitlines()
    assert lines[2:5] == [
        "   Input        (None, 5)",
        "0  BatchNorm    (None, 5)            10             10",
        "1  Dense(tanh)  (None, 3)            18              0",
    ]
    net = fnn.Network(
        layers=[BatchNorm.create(4), fnn.Dense(W=np.ones((4, 1)))], loss="mse", input_shape=4
    )
    assert fnn.summary(net, input_shape=4) == fnn.summary(net)
    with pytest.raises(ValueError, match=r"layers.0"):
        fnn.summary(net, input_shape=(3,))


@pytest.mark.parametrize(
    ("bad", "fix"),
    [
        ([fnn.Dense(W=np.ones((2, 1)))], r"fnn.Network\(layers=\[...\], loss=...\)"),
        ("mlp", r"an fnn.Network \(from fnn.init\) or an fnn.Architecture \(from fnn.mlp\)"),
        (None, r"got NoneType"),
    ],
)
def test_a_bad_argument_is_a_type_error_that_tells_the_fix(bad: object, fix: str) -> None:
    with pytest.raises(TypeError, match=fix):
        fnn.summary(bad)  # type: ignore[arg-type]


def test_a_bad_input_shape() -> None:
    arch = fnn.mlp([2, 1])
    with pytest.raises(TypeError, match=r"input_shape must be a tuple of ints"):
        fnn.summary(arch, input_shape="2")
    with pytest.raises(ValueError, match=r"positive ints"):
        fnn.summary(arch, input_shape=(0,))


def test_the_tables_the_docs_show_are_what_summary_returns() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"```text\n{SMALL}\n```" in readme
    page = (root / "docs" / "getting-started.md").read_text(encoding="utf-8")
    table = fnn.summary(fnn.mlp([2, 8, 1], hidden="tanh", output="sigmoid"))
    assert f"```text\n{table}\n```" in page
