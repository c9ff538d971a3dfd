"""The classic hand-set network: two inputs, two ReLU hidden layers of two nodes, and a
linear output. With the tutorial's weights, input [3, 5] gives 364.

Run: python examples/hand_set_weights.py
"""

from __future__ import annotations

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


def main() -> float:
    out = fnn.predict(build(), np.array([[3, 5]]))
    value = float(out[0, 0])
    print(f"forward pass on [3, 5]: {value:g}")
    return value


if __name__ == "__main__":
    main()
