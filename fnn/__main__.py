"""Command line: ``python -m fnn demo [--data DIR] [--mnist-epochs N] [--verbose N]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fnn", description="fnn command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on built-in data and print what it reached")
    demo.add_argument("--data", default=None, help="folder with the MNIST IDX files")
    demo.add_argument("--mnist-epochs", type=int, default=5, help="epochs of the MNIST run")
    demo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0 silent, 1 live progress in a terminal, 2 a line per epoch",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from fnn.demo import run

        run(args.data, args.mnist_epochs, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
