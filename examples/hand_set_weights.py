"""Example 3: the classic hand-set network, then gradient descent on a linear model.

Two inputs, two ReLU hidden layers of two nodes and a linear output; with the tutorial's
weights, input [3, 5] gives 364. Then a linear model ``y = X @ w`` fitted by full-batch
gradient descent, recording the mean squared error at every iteration.

Run: python examples/hand_set_weights.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

import fnn


def build() -> fnn.Network:
    """The tutorial's weights; column j of each W holds the weights into node j."""
    node_0_0, node_0_1 = [2, 4], [4, -5]
    node_1_0, node_1_1 = [-1, 1], [2, 2]
    output = [2, 7]
    return fnn.Network(
        layers=[
            fnn.Dense(W=np.array([node_0_0, node_0_1]).T, activation="relu"),
            fnn.Dense(W=np.array([node_1_0, node_1_1]).T, activation="relu"),
            fnn.Dense(W=np.array([output]).T),
        ],
        loss="mse",
    )


def linear_regression(iterations: int) -> list[float]:
    """Gradient descent on y = X @ (2, -3) with the four functions; returns the MSE history."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = X @ np.array([2.0, -3.0])
    model = fnn.Network(layers=[fnn.Dense(W=np.zeros((2, 1)))], loss="mse")
    opt = fnn.sgd(0.1)
    state = opt.init(model)
    history = []
    for _ in range(iterations):
        _, cache = fnn.forward(model, X)
        history.append(fnn.losses.mean_squared_error(cache.out, y))
        model, state = fnn.update(model, fnn.backward(model, cache, y), state)
    layer = model.layers[0]
    assert isinstance(layer, fnn.Dense)
    print(f"linear model: w = {np.round(layer.W[:, 0], 4)} (true (2, -3))")
    print(
        "MSE by iteration: "
        + ", ".join(f"{v:.4g}" for v in history[:5])
        + f", ... {history[-1]:.3g}"
    )
    return history


def main(quick: bool = False) -> dict[str, float]:
    out = fnn.predict(build(), np.array([[3, 5]]))
    value = float(out[0, 0])
    print(f"forward pass on [3, 5]: {value:g}")
    history = linear_regression(20 if quick else 100)
    return {"output": value, "final_mse": history[-1], "first_mse": history[0]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="The hand-set 364 network, then gradient descent on a linear model."
    )
    parser.add_argument(
        "--quick", action="store_true", help="20 gradient-descent iterations instead of 100"
    )
    main(quick=parser.parse_args().quick)
