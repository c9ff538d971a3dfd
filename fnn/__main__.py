"""Command line: ``python -m fnn --version``,
``python -m fnn demo [--data DIR] [--download] [--mnist-epochs N] [--verbose {0,1,2}]`` and
``python -m fnn export CHECKPOINT MODEL.onnx [--opset N]``."""

from __future__ import annotations

import argparse
import os
import sys

import fnn


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """The ``python -m fnn`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m fnn",
        description="fnn: neural networks in pure NumPy. Try `python -m fnn demo`.",
    )
    p.add_argument("--version", action="version", version=f"fnn {fnn.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train on moons, the shipped digits and MNIST; print the accuracy reached",
        description=(
            "Train on make_moons and on the UCI digits shipped with fnn, then on MNIST "
            "when its files are found (--data DIR, $FNN_DATA_DIR, ~/.cache/fnn) or "
            "fetched with --download. Prints what it trained on, the test accuracy "
            "reached and the time taken."
        ),
    )
    demo.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="folder with the MNIST IDX files (default: $FNN_DATA_DIR, else ~/.cache/fnn)",
    )
    demo.add_argument(
        "--download",
        action="store_true",
        help="fetch missing MNIST files (11 MB) from a public mirror, verified by SHA-256",
    )
    demo.add_argument(
        "--mnist-epochs",
        type=_positive_int,
        default=5,
        metavar="N",
        help="epochs of the MNIST run (default 5)",
    )
    demo.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0 silent; 1 a live line on a terminal, else a line per epoch; 2 a line per epoch",
    )
    export = sub.add_parser(
        "export",
        help="write a checkpoint's network as an ONNX model (needs the 'onnx' extra)",
        description=(
            "Read the network of a checkpoint written by fnn.save and write it as an ONNX "
            "model (input X: (batch, *input_shape), channels-last; output: what "
            "fnn.predict returns), atomically. Prints what it wrote. Refuses to write over "
            "the checkpoint itself (the same path, or a link to it)."
        ),
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint (.npz)")
    export.add_argument("model", metavar="MODEL.onnx", help="the ONNX file to write")
    export.add_argument(
        "--opset",
        type=_positive_int,
        default=None,
        metavar="N",
        help="ONNX opset (default 18; 17 up to the newest the installed onnx knows)",
    )
    return p


def _same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (the same path, a symbolic
    or a hard link)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or is no valid path)
        return False


def _export(checkpoint: str, model: str, opset: int | None) -> int:
    """``python -m fnn export``: 0 after writing, 1 with a one-line error on stderr."""
    from fnn.demo import one_line

    try:
        if _same_file(checkpoint, model):
            raise ValueError(
                f"the ONNX file {model} is the checkpoint {checkpoint} itself; refusing to "
                "write over the input (choose another MODEL.onnx path)"
            )
        from fnn import onnx as fnn_onnx

        net = fnn.load(checkpoint).params
        path = fnn_onnx.export(net, model, opset=opset)
    except (ImportError, OSError, ValueError, TypeError) as e:
        message = one_line(e) or type(e).__name__
        print(f"python -m fnn export: error: {message}", file=sys.stderr)
        return 1
    shape = ", ".join(str(d) for d in net.input_shape or ())
    print(
        f"wrote {path}: ONNX opset {opset or fnn_onnx.DEFAULT_OPSET}, {len(net.layers)} layers, "
        f"input {fnn_onnx.INPUT_NAME!r} (batch, {shape}) {net.dtype}, output "
        f"{fnn_onnx.OUTPUT_NAME!r} (batch, {net.n_outputs}) after the {net.loss.output} output"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    if args.command == "demo":
        from fnn.demo import main as demo

        return demo(args.data, args.mnist_epochs, args.verbose, args.download)
    if args.command == "export":
        return _export(args.checkpoint, args.model, args.opset)
    return 2  # pragma: no cover - argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
