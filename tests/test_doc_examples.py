"""The runner of the documentation's Python blocks: it runs pages in order and asserts
the values they state, so a page whose stated value is wrong fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from tests.doc_examples import evaluate, stated_value


@pytest.mark.parametrize(
    ("comment", "value", "tolerance"),
    [
        ("# array([[364.]])", [[364.0]], 0.5),
        ("# 0.975", 0.975, 0.0005),
        ("  # [1.5, -2]", [1.5, -2.0], 0.05),
        ("# array([2., -3.])", [2.0, -3.0], 0.5),
    ],
)
def test_stated_values_and_their_precision(comment: str, value: object, tolerance: float) -> None:
    stated = stated_value(comment)
    assert stated is not None
    np.testing.assert_array_equal(stated[0], np.asarray(value))
    assert stated[1] == pytest.approx(tolerance)


@pytest.mark.parametrize(
    "comment",
    [
        "# out: (200, 1) probabilities",
        "# frozen; arrays are read-only",
        '# {"layers.0.W": ..., "layers.0.b": ..., ...}',
        "# True stops training",
        "# run/model.npz",
        "# (2, 16)x",
        "# __import__('os')",
        "",
    ],
)
def test_prose_is_not_a_stated_value(comment: str) -> None:
    assert stated_value(comment) is None


def run_page(tmp_path: Path, text: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    document = Sybil([CodeBlockParser(language="python", evaluator=evaluate)]).parse(page)
    for example in document.examples():
        example.evaluate()


def test_blocks_share_a_page_namespace_and_stated_values_are_checked(tmp_path: Path) -> None:
    good = "```python\nx = [1.0, 2.0]\n```\n\ntext\n\n```python\nsum(x)  # 3.0\n```\n"
    run_page(tmp_path, good)
    with pytest.raises(
        AssertionError, match=r"page.md, line 8: the docs state 4.0, the code gives 3.0"
    ):
        run_page(tmp_path, good.replace("# 3.0", "# 4.0"))
    with pytest.raises(AssertionError, match="the docs state"):
        run_page(tmp_path, "```python\n[0.16, 1]  # [0.1, 1]\n```\n")  # 0.16 rounds to 0.2
    with pytest.raises(NameError):
        run_page(tmp_path, "```python\nundefined_name\n```\n")


SELF_NAMING_CLASS = """```python
class Node:
    def child(self) -> Node:
        return Node()
```
"""


def test_blocks_run_without_the_runners_future_import(tmp_path: Path) -> None:
    # the runner's module has `from __future__ import annotations`; a user's file has not,
    # so on Python 3.11 an annotation naming its own class is evaluated, and fails
    with pytest.raises(NameError, match="name 'Node' is not defined"):
        run_page(tmp_path, SELF_NAMING_CLASS)


def test_a_pages_own_future_import_holds_for_its_later_blocks(tmp_path: Path) -> None:
    run_page(tmp_path, "```python\nfrom __future__ import annotations\n```\n\n" + SELF_NAMING_CLASS)


def test_a_page_runs_in_a_fresh_main_module(tmp_path: Path) -> None:
    page = (
        "```python\nimport sys\nnames = sorted(k for k in globals() if not k.startswith('__'))\n"
        "len(names)  # 1\n"  # only `sys`: nothing of the runner's is visible
        "float(__name__ == '__main__' and sys.modules['__main__'].names == names)  # 1\n```\n"
    )
    run_page(tmp_path, page)
    run_page(tmp_path, page)  # a second page starts afresh, with no `names` from the first
