"""Tests of `kokoyi.symbol`: key spellings, units sharing one namespace, atomic installs."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiError, KokoyiRuntimeError
from kokoyi.runtime.symbols import canonical_spelling
from kokoyi.test_utils import Host

NAMES = r"""
\pi \gets 3 \\
x_{first} \gets 1 \\
\bar{x} \gets 2 \\
x_{bar} \gets 20 \\
G_t \gets 4 \\
s' \gets 5 \\
\mathbf{W} \gets 6 \\
W \gets 7 \\
W^{(1)} \gets 8 \\
\alpha_{1} \gets 9 \\
"""


@pytest.mark.parametrize(
    "key, want",
    [
        (r"\pi", 3), ("pi", 3),
        ("x_{first}", 1), ("x_first", 1),
        (r"\bar{x}", 2), (r"\bar x", 2), ("bar{x}", 2), ("x_bar", 2),
        ("x_{bar}", 20),
        ("G_t", 4), ("G_{t}", 4), ("G_{ t }", 4),
        ("s'", 5), ("s_prime", 5),
        (r"\mathbf{W}", 6), ("mathbf{W}", 6),
        ("W", 7),
        ("W^{(1)}", 8),
        (r"\alpha_1", 9), (r"\alpha_{1}", 9), ("alpha_1", 9),
    ],
)
def test_key_spellings(key, want):
    kokoyi.compile(NAMES)
    assert key in kokoyi.symbol
    assert kokoyi.symbol[key] == want


@pytest.mark.parametrize("key", ["G_{t", "x", "G_T", r"\beta", "bar", "", "\\\\", "a\nb", 3, None])
def test_unknown_keys(key):
    kokoyi.compile(NAMES)
    assert key not in kokoyi.symbol
    with pytest.raises(KeyError):
        kokoyi.symbol[key]


def test_unknown_key_message_lists_what_is_defined():
    kokoyi.compile(r"a \gets 1 \\ b \gets 2 \\")
    with pytest.raises(KeyError, match="defined: a, b"):
        kokoyi.symbol["c"]


def test_mapping_protocol():
    kokoyi.compile(NAMES)
    assert len(kokoyi.symbol) == 10
    assert list(kokoyi.symbol)[:3] == [r"\pi", "x_{first}", r"\bar{x}"]
    assert dict(kokoyi.symbol.items())["G_{t}"] == 4


def test_canonical_spelling():
    assert canonical_spelling("G_t") == canonical_spelling("G_{t}") == "G_{t}"
    assert canonical_spelling(r"\bar x") == r"\bar{x}"
    assert canonical_spelling("a b") is None and canonical_spelling("x \\\\") is None


def test_compile_returns_the_units_names_and_python_source():
    unit = kokoyi.compile(r"a \gets 1 \\ \Module{M}{x} \Return x + a \\ \EndModule", "u.kyi")
    assert list(unit) == ["a", "M"] and unit["a"] == 1 and unit["M"] is kokoyi.symbol["M"]
    assert unit.filename == "u.kyi" and "M = KOKOYI_UNIT.module(" in unit.python_source


def test_redefinition_across_units_replaces():
    kokoyi.compile(r"c \gets 1 \\ f(x) \gets x + c \\ \Module{M}{x} \Return f(x) \\ \EndModule", "one.kyi")
    old_module = kokoyi.symbol["M"]
    assert old_module(Host(), torch.tensor(0.0)).item() == 1
    kokoyi.compile(r"f(x) \gets x + 100 \\", "two.kyi")
    assert kokoyi.symbol["f"](1) == 101
    assert kokoyi.symbol["c"] == 1
    # A later use of f sees the new definition, as a later notebook cell would.
    kokoyi.compile(r"\Module{N}{x} \Return f(x) \\ \EndModule", "three.kyi")
    assert kokoyi.symbol["N"](Host(), torch.tensor(0.0)).item() == 100
    kokoyi.compile(r"c \gets 2 \\", "four.kyi")
    assert kokoyi.symbol["c"] == 2 and len(kokoyi.symbol) == 4


def test_later_units_see_earlier_top_level_definitions():
    kokoyi.compile(r"k \gets 3 \\ sq(x) \gets x * x \\", "one.kyi")
    kokoyi.compile(r"\Module{M}{x} \Return sq(x) + k \\ \EndModule", "two.kyi")
    kokoyi.compile(r"j \gets sq(k) \\", "three.kyi")
    assert kokoyi.symbol["M"](Host(), torch.tensor(2.0)).item() == 7
    assert kokoyi.symbol["j"] == 9


def _snapshot():
    table = kokoyi.symbol
    return dict(table._objects), dict(table._names), dict(table._symbols), dict(table.namespace), \
        dict.fromkeys(sorted(table.taken_names()))


def test_taken_names_are_the_python_names_of_every_definition():
    kokoyi.compile(r"\alpha \gets 1 \\ alpha \gets 2 \\", "one.kyi")
    kokoyi.compile(r"alpha \gets 3 \\ \Module{sum}{x} \Return x \\ \EndModule", "two.kyi")  # (redefined: same name)
    table = kokoyi.symbol
    assert table.taken_names() == set(table.environment()[1].values()) >= {"alpha", "alpha_1", "sum_"}
    unit = kokoyi.compile(r"alpha_1 \gets 4 \\", "three.kyi")  # (a name an earlier unit's Python name took)
    assert list(unit._python_names().values()) == ["alpha_1_1"]
    assert table.taken_names() == set(table.environment()[1].values())


@pytest.mark.parametrize(
    "bad",
    [
        "a \\gets 2 \\\\\nb \\gets \\Foo \\\\",  # syntax error
        "a \\gets 2 \\\\\nb \\gets undefined \\\\",  # name error
        "a \\gets 2 \\\\\n\\Module{M}{x \\in \\mathbb{R}} \\Return x @ x \\\\ \\EndModule",  # rank error
        "a \\gets 2 \\\\\nv \\gets \\{ i \\}_{i=0}^{2} \\\\\nw \\gets v[10] \\\\",  # fails while it runs
    ],
)
def test_a_failed_compile_leaves_the_symbol_table_exactly_as_it_was(bad):
    kokoyi.compile(r"a \gets 1 \\ f(x) \gets x \\ \Module{M}{x} \Return f(x) + a \\ \EndModule", "good.kyi")
    before = _snapshot()
    with pytest.raises(KokoyiError):
        kokoyi.compile(bad, "bad.kyi")
    after = _snapshot()
    for old, new in zip(before, after):
        assert list(old) == list(new)
        assert all(old[k] is new[k] for k in old)
    assert kokoyi.symbol["a"] == 1
    assert kokoyi.symbol["M"](Host(), torch.tensor(1.0)).item() == 2


def test_a_unit_that_fails_while_running_names_its_line():
    with pytest.raises(KokoyiRuntimeError, match=r"^bad\.kyi:3"):
        kokoyi.compile("a \\gets 2 \\\\\nv \\gets \\{ i \\}_{i=0}^{2} \\\\\nw \\gets v[10] \\\\", "bad.kyi")


def test_clear_forgets_everything():
    kokoyi.compile(NAMES)
    kokoyi.symbol.clear()
    assert len(kokoyi.symbol) == 0 and "pi" not in kokoyi.symbol
    kokoyi.compile(r"\pi \gets 1 \\")
    assert kokoyi.symbol["pi"] == 1


def test_a_unit_installed_by_its_declarations_that_fails_changes_nothing(monkeypatch):
    """A unit whose code only declares is installed without running its code
    (kokoyi.runtime.unit.declare); a failure there also leaves the table as it was."""
    from kokoyi.runtime import unit as ku

    kokoyi.compile(r"a \gets 1 \\ \Module{M}{x} \Return x + a \\ \EndModule", "good.kyi")
    before = _snapshot()

    def broken(self, *args, **kwargs):
        raise RuntimeError("broken declaration")

    monkeypatch.setattr(ku.Unit, "function", broken)
    with pytest.raises(KokoyiRuntimeError, match="broken declaration"):
        kokoyi.compile(r"\Module{N}{x} \Return x \\ \EndModule" "\n" r"g(x) \gets x \\", "bad.kyi")
    after = _snapshot()
    for old, new in zip(before, after):
        assert list(old) == list(new)
        assert all(old[k] is new[k] for k in old)
