"""Example 5: a 2-layer network (tanh hidden, sigmoid output) on make_moons(200,
noise=0.2), trained with full-batch gradient descent, logging the cost every 1000
iterations, for several hidden sizes.

The tutorial's run ended at cost 0.3138 with one hidden unit; more hidden units fit the
moons better (and, past a point, overfit the 200 points).

Run: python examples/planar_tanh.py [--quick]
"""

from __future__ import annotations

import argparse

import fnn


def main(quick: bool = False) -> dict[str, float]:
    X, y = fnn.datasets.make_moons(200, noise=0.2, rng=3)
    iterations = 2000 if quick else 10_000
    sizes = [1, 4] if quick else [1, 2, 3, 4, 5, 20, 50]
    final: dict[str, float] = {}
    for h in sizes:
        net = fnn.init(
            fnn.mlp([2, h, 1], hidden="tanh", output="sigmoid", initializer="normal"), rng=2
        )
        # full batch: one epoch is one gradient-descent iteration
        net, history = fnn.fit(
            net,
            fnn.sgd(1.2),
            X,
            y,
            epochs=iterations,
            batch_size=len(X),
            shuffle=False,
            rng=0,
            verbose=0,
        )
        costs = history.train_loss
        log = ", ".join(f"{i}: {costs[i]:.4f}" for i in range(0, iterations, 1000))
        acc = fnn.metrics.accuracy(y, fnn.predict(net, X))
        print(
            f"hidden {h:2d}: cost every 1000 iterations {log}; "
            f"final {costs[-1]:.4f}, accuracy {acc:.3f}"
        )
        final[f"cost_{h}"] = costs[-1]
        final[f"accuracy_{h}"] = acc
    return final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="A tanh hidden layer of several sizes on make_moons(200), full-batch "
        "gradient descent."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="hidden sizes 1 and 4, 2,000 iterations (default: sizes 1-50, 10,000)",
    )
    main(quick=parser.parse_args().quick)
