"""ast.walk visits every node in source order, depth first; ast.replace copies a node as
dataclasses.replace does."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kokoyi.compiler import ast as A
from kokoyi.compiler import parser
from kokoyi.errors import Source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))


def _recursive_walk(n):
    yield n
    for c in A.children(n):
        yield from _recursive_walk(c)


@pytest.mark.parametrize("path", EXAMPLES[:6], ids=lambda p: p.name)
def test_walk_is_the_depth_first_source_order(path):
    tree = parser.parse_ast(Source(path.read_text(), str(path)))
    assert [id(n) for n in A.walk(tree)] == [id(n) for n in _recursive_walk(tree)]
    assert len(list(A.walk(tree))) > 100


def test_replace_is_dataclasses_replace():
    tree = parser.parse_ast(Source("y \\gets a + 2 \\\\\n", "t.kyi"))
    binary = tree.items[0].value
    new = A.Num(binary.right.span, 3, "3")
    fast, slow = A.replace(binary, right=new), dataclasses.replace(binary, right=new)  # (nodes compare by identity)
    assert type(fast) is type(slow) and vars(fast) == vars(slow)
    assert A.replace(binary, right=new).left is binary.left and binary.right is not new
    with pytest.raises(TypeError):
        A.replace(binary, rihgt=new)
