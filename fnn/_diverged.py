"""The signal of a training step that produced a non-finite value (shared by the step
function in :mod:`fnn.network`, the optimizer runner in :mod:`fnn.optim` and ``fit``)."""

from __future__ import annotations


class NonFinite(FloatingPointError):
    """The loss, or the gradient or update, of a training step is not finite.

    ``what`` names it (``"loss"`` or ``"gradient or update"``); nothing was updated."""

    def __init__(self, what: str, value: float | None = None) -> None:
        super().__init__(f"non-finite {what}" + ("" if value is None else f" {value}"))
        self.what = what
