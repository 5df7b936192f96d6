"""Tests of the identifier namespace: legal, readable, never colliding Python names."""
from __future__ import annotations

import builtins
import keyword

import pytest

from kokoyi.compiler.emit.namespace import RESERVED, Namespace, legal


@pytest.mark.parametrize(
    "hint, expected",
    [
        ("alpha", "alpha"),
        ("x_first", "x_first"),
        ("x_bar", "x_bar"),
        ("s_prime", "s_prime"),
        ("lambda", "lambda_"),
        ("class", "class_"),
        ("None", "None_"),
        ("match", "match_"),  # soft keyword
        ("sum", "sum_"),
        ("print", "print_"),
        ("len", "len_"),
        ("kk", "kk_"),
        ("torch", "torch_"),
        ("math", "math_"),
        ("kokoyi", "kokoyi_"),
        ("__init__", "init"),
        ("1x", "v_1x"),
        ("a-b c", "a_b_c"),
        ("x__y", "x_y"),
        ("", "v"),
        ("___", "v"),
    ],
)
def test_legal(hint, expected):
    assert legal(hint) == expected


def test_no_keyword_builtin_or_reserved_name_survives():
    words = sorted(set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | RESERVED)
    for word in words:
        name = legal(word)
        assert name.isidentifier(), word
        assert not keyword.iskeyword(name) and not keyword.issoftkeyword(name), word
        assert name not in dir(builtins) and name not in RESERVED, word


def test_create_makes_unique_names():
    ns = Namespace()
    assert [ns.create("x") for _ in range(3)] == ["x", "x_1", "x_2"]
    assert ns.create("x_1") == "x_1_1"
    assert ns.create("lambda") == "lambda_" and ns.create("lambda_") == "lambda__1"


def test_taken_and_reserved_names_are_avoided():
    ns = Namespace(taken={"y"})
    ns.reserve("z")
    assert ns.create("y") == "y_1" and ns.create("z") == "z_1"


def test_child_avoids_the_parent_but_not_the_other_way_round():
    parent = Namespace()
    parent.create("a")
    child = parent.child()
    assert child.create("a") == "a_1"
    assert child.create("b") == "b"
    assert parent.create("b") == "b"  # the child's names are local to it


def test_many_hints_stay_distinct_and_legal():
    ns = Namespace()
    hints = ["x", "x_bar", "x_bar", "bar_x", "x", "sum", "sum_", "lambda", "lambda_", "v", "", "1", "v_1"]
    names = [ns.create(h) for h in hints]
    assert len(set(names)) == len(names)
    assert all(n.isidentifier() and not keyword.iskeyword(n) and n not in dir(builtins) for n in names)


def test_outer_names_are_avoided_but_neither_copied_nor_changed():
    outer = {"x", "x_1"}
    ns = Namespace(outer=outer)
    assert ns.create("x") == "x_2" and ns.create("y") == "y"
    assert outer == {"x", "x_1"}  # the caller's set, only read
    outer.add("z")  # (read when asked, not copied when made)
    assert ns.create("z") == "z_1"
    assert ns.child().create("x_1") == "x_1_1"
