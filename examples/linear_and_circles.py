"""Example 2: a single sigmoid neuron on a linearly separable set, then a (2, 3, 2)
network on circles trained with minibatch SGD and per-epoch shuffling, printing the test
score every epoch.

Run: python examples/linear_and_circles.py [--quick] [--plots DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fnn


def single_neuron(quick: bool) -> float:
    # x = 2 * rand(100, 2) - 1, y = x @ (1, -1.5) > 0.4
    X, y = fnn.datasets.make_linear(100, rng=0)
    X_test, y_test = fnn.datasets.make_linear(1000, rng=1)  # fresh points, same rule
    neuron = fnn.init(fnn.mlp([2, 1], output="sigmoid"), rng=0)
    neuron, _ = fnn.fit(
        neuron, fnn.sgd(1.0), X, y, epochs=50 if quick else 500, batch_size=100, rng=0, verbose=0
    )
    acc = fnn.metrics.accuracy(y_test, fnn.predict(neuron, X_test))
    layer = neuron.layers[0]
    assert isinstance(layer, fnn.Dense) and layer.b is not None
    w, b = layer.W[:, 0], layer.b[0]
    # the decision boundary w.x + b = 0 should be parallel to x1 - 1.5 x2 = 0.4
    print(
        f"single neuron: w = {np.round(w / -b * 0.4, 2)} (true (1, -1.5)), test accuracy {acc:.3f}"
    )
    return acc


def circles(quick: bool, plots: str | None = None) -> float:
    X, y = fnn.datasets.make_circles(1000, noise=0.1, factor=0.5, rng=0)
    X_train, X_test, y_train, y_test = fnn.datasets.train_test_split(X, y, test_size=0.3, rng=0)
    net = fnn.init(fnn.mlp([2, 3, 2], hidden="tanh", output="softmax"), rng=0)
    epochs = 5 if quick else 150
    steps = epochs * -(-len(X_train) // 16)
    opt = fnn.sgd(fnn.schedules.CosineDecay(1.0, decay_steps=steps))
    state = opt.init(net)
    acc = 0.0
    for epoch in range(1, epochs + 1):
        # one epoch: shuffle, then minibatch SGD through the pure functions
        for Xb, yb in fnn.datasets.minibatches(X_train, y_train, batch_size=16, rng=epoch):
            net, state, _ = fnn.train_step(net, state, Xb, yb)
        acc = fnn.metrics.accuracy(y_test, fnn.predict(net, X_test))
        print(f"circles (2, 3, 2): epoch {epoch:2d} test accuracy {acc:.3f}")
    if plots is not None:
        from fnn import plot

        Path(plots).mkdir(parents=True, exist_ok=True)
        plot.decision_boundary(net, X_test, y_test, path=Path(plots) / "circles_boundary.png")
        print(f"circles: figure saved in {plots}")
    return acc


def main(quick: bool = False, plots: str | None = None) -> dict[str, float]:
    return {"linear_accuracy": single_neuron(quick), "circles_accuracy": circles(quick, plots)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a sigmoid neuron, and circles")
    parser.add_argument("--quick", action="store_true", help="a few epochs")
    parser.add_argument("--plots", default=None, help="save PNG figures in this folder")
    args = parser.parse_args()
    main(quick=args.quick, plots=args.plots)
