"""Reading the optimizers of checkpoints written before format version 3.

Until version 2, weight decay lived inside the update rules: ``SGD``, ``Adam``,
``RMSprop`` and ``Adagrad`` had a ``weight_decay`` field (coupled L2), and ``AdamW``
was one transform whose state was ``(AdamState, decay mask)``. Since version 3 decay is
the one transform ``AddDecayedWeights``, chained before a rule (coupled) or after Adam
(decoupled, with the rule's learning rate). :func:`migrate_optimizer` rewrites an old
manifest's optimizer, and renames its optimizer-state arrays, into that layout: what
``fnn.sgd(..., weight_decay=wd)``, ``fnn.adamw(...)`` and friends build today, so a
run resumes with today's optimizer exactly as it would have with the old one (the
update is the same, bit for bit).
"""

from __future__ import annotations

from typing import Any, Final

from fnn.io._archive import Malformed, Member
from fnn.io._manifest import show

_COUPLED: Final = ("SGD", "Adam", "RMSprop", "Adagrad")
"""The update rules that had a coupled ``weight_decay`` field."""
_PREFIX: Final = "opt_state/states."


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _split(cfg: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The configs one old transform config becomes, and how its state's array paths
    (below ``states.<i>``, ``""`` for the state itself) move: to ``"<j>"`` (the j-th
    new transform, at the same sub-path) or ``"<j>:<sub>"`` (the j-th, replacing the
    first path component by ``sub``, ``"-"`` meaning none). Unrecognised configs are
    left as they are (building them then says what is wrong); a rule that had decay
    inside with a ``weight_decay`` that is not a number is :class:`Malformed`."""
    name = cfg.get("transform")
    wd = cfg.get("weight_decay")
    if (name in _COUPLED or name == "AdamW") and "weight_decay" in cfg and not _number(wd):
        raise Malformed(f"{where}.weight_decay", f"must be a number, got {show(wd)}")
    if name in _COUPLED and _number(wd):
        rule = {k: v for k, v in cfg.items() if k != "weight_decay"}
        if not wd:
            return [rule], {"": "0"}
        decay = {"transform": "AddDecayedWeights", "weight_decay": wd, "mask": None}
        return [decay, rule], {"": "1"}  # the decay's state (no mask) has no arrays
    if name == "AdamW" and _number(wd):
        rule = {k: v for k, v in cfg.items() if k not in ("weight_decay", "decay_mask")}
        rule["transform"] = "Adam"
        moves = {"0": "0:-"}  # (AdamState, mask): the moments are the rule's state
        if not wd:
            return [rule], moves  # no decay ran: its mask is not kept
        decay = {
            "transform": "AddDecayedWeights",
            "weight_decay": wd,
            "mask": cfg.get("decay_mask"),
        }
        if "learning_rate" in cfg:
            decay["learning_rate"] = cfg["learning_rate"]
        return [rule, decay], moves | {"1": "1:-"}  # the mask is the decay's state
    return [cfg], {"": "0"}


def migrate_optimizer(manifest: dict[str, Any], members: dict[str, Member]) -> None:
    """Rewrite, in place, the optimizer of a manifest older than version 3 (its
    ``optimizer`` list, and the names of its ``opt_state/`` arrays in ``manifest["arrays"]``
    and the archive's ``members``) into today's layout. Arrays of a state that no
    longer exists (the decay mask of an ``AdamW`` whose decay was zero) are dropped.
    The manifest's types are checked already; values are checked when built.

    Raises:
        Malformed: an old rule's ``weight_decay`` is not a number."""
    configs = manifest["optimizer"]
    new: list[dict[str, Any]] = []
    moves: list[tuple[int, dict[str, str]]] = []  # (first new index, moves) per old one
    for i, cfg in enumerate(configs):
        parts, move = _split(cfg, f"optimizer.{i}")
        moves.append((len(new), move))
        new.extend(parts)
    manifest["optimizer"] = new
    renamed: dict[str, str | None] = {}  # old key -> new key, None to drop
    for key in manifest["arrays"]:
        if key.startswith(_PREFIX):
            renamed[key] = _moved(key[len(_PREFIX) :], moves)
    # rebuilt, not renamed in place: a new name may be an old name not yet moved
    arrays = {k: v for k, v in manifest["arrays"].items() if k not in renamed}
    kept = {k: v for k, v in members.items() if k not in renamed}
    for key, target in renamed.items():
        if target is not None:
            arrays[target] = manifest["arrays"][key]
            if key in members:
                kept[target] = members[key]
    manifest["arrays"] = arrays
    members.clear()
    members.update(kept)


def _moved(path: str, moves: list[tuple[int, dict[str, str]]]) -> str | None:
    """The new path of the old state array ``opt_state/states.<path>``, or None when
    its state no longer exists (the decay mask of an AdamW whose decay was zero)."""
    index, _, rest = path.partition(".")
    if not index.isdigit() or int(index) >= len(moves):
        return _PREFIX + path  # not a state of this optimizer: refused when built
    base, move = moves[int(index)]
    if "" in move:
        return _PREFIX + ".".join([str(base + int(move[""])), *([rest] if rest else [])])
    head, _, tail = rest.partition(".")
    if head not in move:
        return None
    j, _, sub = move[head].partition(":")
    parts = [str(base + int(j)), *([] if sub == "-" else [sub]), *([tail] if tail else [])]
    return _PREFIX + ".".join(parts)
