"""Tests of name resolution: scopes, the subscript rule, single assignment, recursion, calls."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.compiler import ast as A
from kokoyi.compiler import symbols as S
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.errors import KokoyiNameError, KokoyiSyntaxError, KokoyiTypeError
from kokoyi.test_utils import Host, expect_error


def run(source: str, name: str = "M", *args, params=None):
    kokoyi.compile(source, "t.kyi")
    return kokoyi.symbol[name](Host(params), *args)


def resolved_return(source: str):
    """The resolved value of the last module's \\Return."""
    state = compile_unit(source, "t.kyi")
    module = [i for i in state.ast.items if isinstance(i, A.Module)][-1]
    return module.body[-1].values[0]


# ---- scopes ----------------------------------------------------------------------------------


def test_inputs_params_and_locals():
    got = run(r"\Module{M}{x; c} a \gets x + c \\ \Return a * 2 \\ \EndModule", "M", torch.tensor(1.0), params=3.0)
    assert got.item() == 8.0


def test_where_bindings_use_arguments_and_earlier_bindings():
    kokoyi.compile(r"f(x) \gets a + b \where a \gets x * 2, b \gets a + x \\")
    assert kokoyi.symbol["f"](1) == 5  # a = 2, b = 3


def test_where_on_a_return_and_a_value_definition():
    got = run(r"""\Module{M}{x}
  y \gets u * v \where u \gets x + 1, v \gets u + 1 \\
  \Return y + w \where w \gets y * 10 \\
\EndModule""", "M", torch.tensor(1.0))
    assert got.item() == 6 + 60


def test_where_bindings_are_local_to_their_statement():
    err = expect_error(r"""\Module{M}{x}
  y \gets u \where u \gets x \\
  \Return u \\
\EndModule""", KokoyiNameError)
    assert (err.line, err.column) == (3, 11) and "`u`" in err.message


def test_local_functions_use_enclosing_names():
    got = run(r"""\Module{M}{x; c}
  k \gets 3 \\
  g(y) \gets y * k + c + x \\
  \Return g(x) \\
\EndModule""", "M", torch.tensor(2.0), params=10.0)
    assert got.item() == 2 * 3 + 10 + 2


def test_top_level_functions_are_visible_to_later_items_only():
    got = run(r"""sq(x) \gets x * x \\
\Function{h}{x} \Return sq(x) + 1 \\ \EndFunction
\Module{M}{x} \Return h(x) \\ \EndModule""", "M", torch.tensor(3.0))
    assert got.item() == 10
    kokoyi.symbol.clear()
    err = expect_error("\\Module{M}{x} \\Return h(x) \\\\ \\EndModule\nh(x) \\gets x \\\\", KokoyiNameError)
    assert (err.line, err.column) == (1, 23)


def test_big_operator_and_set_builder_indices():
    got = run(r"""\Module{M}{x}
  a \gets \sum_{i=0}^{2} \sum_{j=i}^{2} x[j] \\
  b \gets \{ \sum_{k=0}^{i} x[k] \}_{i=0}^{2} \\
  c \gets \{ x[j] \}_{i=0, j=i}^{1, i+1} \\
  \Return a + \sum(b) + \sum(c) \\
\EndModule""", "M", torch.tensor([1.0, 10.0, 100.0]))
    # a = (1+10+100) + (10+100) + 100; b = [1, 11, 111]; c = [[x0, x1], [x1, x2]]
    assert got.item() == 321 + 123 + 121


def test_an_index_is_not_visible_outside_its_operator():
    err = expect_error(r"\Module{M}{x} \Return \sum_{i=0}^{2} x[i] + i \\ \EndModule", KokoyiNameError)
    assert err.column == 45
    err = expect_error(r"\Module{M}{x} \Return \sum_{i=0}^{i} x[i] \\ \EndModule", KokoyiNameError)
    assert err.column == 35  # a bound cannot use its own index


def test_annotation_dimensions_are_integer_names():
    got = run(r"\Module{M}{X \in \mathbb{R}^{T \times d}} \Return T * 10 + d \\ \EndModule", "M", torch.zeros(4, 3))
    assert got.item() == 43
    state = compile_unit(r"\Module{M}{X \in \mathbb{R}^{T \times d}} \Return T \\ \EndModule", "t.kyi")
    ref = state.ast.items[0].body[-1].values[0]
    assert ref.symbol.kind == S.DIM and ref.symbol.integer and ref.symbol.rank == 0


def test_a_dimension_name_cannot_also_be_an_input():
    err = expect_error(r"\Module{M}{x \in \mathbb{R}^{x}} \Return x \\ \EndModule", KokoyiNameError)
    assert "dimension" in err.message


# ---- single assignment and recursion ------------------------------------------------------


@pytest.mark.parametrize(
    "source, second, first",
    [
        ("\\Module{M}{x}\n  a \\gets x \\\\\n  a \\gets 2 \\\\\n  \\Return a \\\\\n\\EndModule", (3, 3), "t.kyi:2:3"),
        ("\\Module{M}{x}\n  x \\gets 2 \\\\\n  \\Return x \\\\\n\\EndModule", (2, 3), "t.kyi:1:12"),
        ("\\Module{M}{x, x}\n  \\Return x \\\\\n\\EndModule", (1, 15), "t.kyi:1:12"),
        ("\\Module{M}{x; x}\n  \\Return x \\\\\n\\EndModule", (1, 15), "t.kyi:1:12"),
        ("a \\gets 1 \\\\\na \\gets 2 \\\\", (2, 1), "t.kyi:1:1"),
        ("f(x) \\gets 1 \\\\\n\\Module{f}{x} \\Return x \\\\ \\EndModule", (2, 9), "t.kyi:1:1"),
        ("f(x) \\gets y \\where y \\gets 1, y \\gets 2 \\\\", (1, 32), "t.kyi:1:21"),
    ],
)
def test_single_assignment_error_shows_both_places(source, second, first):
    err = expect_error(source, KokoyiNameError)
    assert (err.line, err.column) == second
    assert f"t.kyi:{second[0]}:{second[1]}:" in str(err) and first in str(err)
    assert "already defined" in err.message


def test_names_in_different_scopes_may_repeat():
    got = run(r"""a \gets 100 \\
\Module{M}{x}
  a \gets 1 \\
  f(a) \gets a * 2 \\
  \Return f(x) + a + \sum_{i=0}^{1} (i + \sum_{i=0}^{2} x * i) \\
\EndModule
q \gets \sum_{i=0}^{1} \sum_{i=0}^{2} i \\""", "M", torch.tensor(5.0))
    assert got.item() == 10 + 1 + (0 + 15) + (1 + 15)
    assert kokoyi.symbol["a"] == 100
    assert kokoyi.symbol["q"] == 6  # the inner i shadows the outer one


@pytest.mark.parametrize(
    "source, position, words",
    [
        (r"f(x) \gets f(x) \\", (1, 12), "recursion"),
        (r"\Function{f}{x} \Return f(x) \\ \EndFunction", (1, 25), "recursion"),
        (r"\Module{M}{x} a \gets a + 1 \\ \Return a \\ \EndModule", (1, 23), "own definition"),
        (r"\Module{M}{x} g(y) \gets g(y) \\ \Return g(x) \\ \EndModule", (1, 26), "recursion"),
        (r"\Module{M}{x} \Return M(x) \\ \EndModule", (1, 23), "recursion"),
        (r"\Module{M}{x} h(y) \gets \{ h[t-1] \}_{t=0}^{2} \\ \Return h(x) \\ \EndModule", (1, 29), "recursion"),
    ],
)
def test_recursion_is_an_error(source, position, words):
    err = expect_error(source, KokoyiNameError)
    assert (err.line, err.column) == position and words in err.message


# ---- the subscript rule -----------------------------------------------------------------------


def test_whole_decorated_name_wins_when_defined():
    ret = resolved_return(r"\Module{M}{x} x_t \gets x * 2 \\ \Return x_t \\ \EndModule")
    assert isinstance(ret, A.Ref) and ret.symbol.key == "x_{t}"


def test_subscript_indexes_the_base_when_the_whole_name_is_undefined():
    ret = resolved_return(r"\Module{M}{x} t \gets 1 \\ \Return x_t + x_{t-1} + x_{|x| - 1} \\ \EndModule")
    left = ret.left.left
    assert isinstance(left, A.Index) and left.target.symbol.key == "x" and left.items[0].symbol.key == "t"
    got = run(r"\Module{M}{x} t \gets 1 \\ \Return x_t + 10 x_{t-1} + 100 x_{|x| - 1} \\ \EndModule",
              "M", torch.tensor([1.0, 2.0, 3.0]))
    assert got.item() == 2 + 10 + 300
    got = run(r"\Module{A}{A} \Return A_{1,0} \\ \EndModule", "A", torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert got.item() == 3.0


def test_subscript_with_neither_name_defined_is_an_undefined_name():
    err = expect_error(r"\Module{M}{y} \Return x_t \\ \EndModule", KokoyiNameError)
    assert err.column == 23 and "`x_{t}`" in err.message
    err = expect_error(r"\Module{M}{x} \Return x_t \\ \EndModule", KokoyiNameError)
    assert err.column == 25 and "`t`" in err.message  # x is defined, so t must be


def test_seed_names_G_t_and_bar_G_t_are_whole_names():
    ret = resolved_return(r"""\Module{P}{r}
G_t \gets r * 2 \\
\bar{G_t} \gets G_t + 1 \\
\Return \bar{G_t} \\
\EndModule""")
    assert ret.symbol.key == r"\bar{G_{t}}"


def test_parenthesised_superscript_is_a_name_when_defined_else_a_power():
    got = run(r"\Module{M}{x; W^{(1)}} \Return W^{(1)} * x \\ \EndModule", "M", torch.tensor(2.0), params=3.0)
    assert got.item() == 6.0
    kokoyi.symbol.clear()
    got = run(r"\Module{M}{x; W} \Return W^{(2)} * x \\ \EndModule", "M", torch.tensor(2.0), params=3.0)
    assert got.item() == 18.0


# ---- built-ins and constants ----------------------------------------------------------------


def test_user_definitions_shadow_builtin_names():
    kokoyi.compile(r"""
Mean(x) \gets x + 1 \\
e \gets 2 \\
\infty \gets 7 \\
a \gets Mean(1) \\
b \gets \Mean(\{ i \}_{i=0}^{2}) \\
c \gets e + \infty \\
""")
    assert kokoyi.symbol["a"] == 2
    assert float(kokoyi.symbol["b"]) == 1.0  # the command \Mean stays the built-in
    assert kokoyi.symbol["c"] == 9


def test_plain_words_reach_builtins_when_not_defined():
    assert float(kokoyi.compile(r"a \gets exp(0) + Mean(\{ i \}_{i=0}^{2}) \\")["a"]) == 2.0


def test_pi_is_a_name_when_defined():
    ret = resolved_return(r"\Module{M}{x} \Return \pi \\ \EndModule")
    assert isinstance(ret, A.Constant) and ret.key == r"\pi"
    ret = resolved_return(r"\Module{M}{x; \pi} \Return \pi \\ \EndModule")
    assert isinstance(ret, A.Ref) and ret.symbol.kind == S.PARAM


# ---- function values and calls -------------------------------------------------------------


def test_function_values():
    got = run(r"""\Module{M}{x}
  \mu \gets \Mean \\
  \nu \gets \mu \\
  f(y) \gets y * 2 \\
  g \gets f \\
  \Return \mu(x) + \nu(x) + g(x[0]) \\
\EndModule""", "M", torch.tensor([1.0, 3.0]))
    assert got.item() == 2 + 2 + 2


@pytest.mark.parametrize(
    "body, column, words",
    [
        (r"\mu \gets \Mean \\ \Return \mu(x, x) \\", 42, r"`\Mean` takes 1 argument, got 2"),
        (r"\Return f(x) \\", 23, "`f` takes 2 arguments, got 1"),
        (r"\Return \exp(x, x) \\", 23, r"`\exp` takes 1 argument, got 2"),
        (r"\Return \clip(x, 1) \\", 23, r"`\clip` takes 3 arguments, got 2"),
        (r"g(y) \gets y \\ \Return g() \\", 39, "`g` takes 1 argument, got 0"),
        (r"\Return \sum(x, x) \\", 23, "takes one argument"),
        (r"\Return \sum_{i=0}^{2} i(x) \\", 38, "not a function"),
    ],
)
def test_wrong_argument_counts(body, column, words):
    err = expect_error(f"f(a, b) \\gets a + b \\\\\n\\Module{{M}}{{x}} {body} \\EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (2, column) and words in err.message


def test_a_module_cannot_be_called_by_name():
    err = expect_error(r"""\Module{A}{x} \Return x \\ \EndModule
\Module{B}{x} \Return A(x) \\ \EndModule""", KokoyiTypeError)
    assert (err.line, err.column) == (2, 23) and "parameter" in err.message


# ---- \Return ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, position, words",
    [
        (r"\Return x \\ \Return x \\", (1, 28), "nothing may follow"),
        (r"\Return x \\ a \gets x \\", (1, 28), "nothing may follow"),
        (r"a \gets x \\", (1, 37), r"no `\Return`"),
        ("", (1, 25), r"no `\Return`"),
    ],
)
def test_exactly_one_return_at_the_end(body, position, words):
    err = expect_error(f"\\Module{{M}}{{x}} {body} \\EndModule", KokoyiSyntaxError)
    assert (err.line, err.column) == position and words in err.message


def test_functions_need_a_return_too():
    err = expect_error(r"\Function{f}{x} y \gets x \\ \EndFunction", KokoyiSyntaxError)
    assert "function `f`" in err.message


def test_tuple_return():
    out = run(r"\Module{M}{x} \Return x, 2 * x \\ \EndModule", "M", torch.tensor(1.5))
    assert isinstance(out, tuple) and [o.item() for o in out] == [1.5, 3.0]


# ---- earlier units ----------------------------------------------------------------------------


def test_later_units_see_earlier_top_level_definitions():
    kokoyi.compile(r"sq(x) \gets x * x \\ k \gets 3 \\", "one.kyi")
    kokoyi.compile(r"\Module{M}{x} \Return sq(x) + k \\ \EndModule", "two.kyi")
    assert kokoyi.symbol["M"](Host(), torch.tensor(2.0)).item() == 7
    err = expect_error(r"u \gets sq(1, 2) \\", KokoyiTypeError)
    assert "takes 1 argument" in err.message


# ---- every compile error is located ----------------------------------------------------------


@pytest.mark.parametrize(
    "source, cls",
    [
        ("\\Module{M}{x}\n  \\Return x + y \\\\\n\\EndModule", KokoyiNameError),
        ("\\Module{M}{x}\n  a \\gets x \\\\\n  a \\gets x \\\\\n  \\Return a \\\\\n\\EndModule", KokoyiNameError),
        ("f(x) \\gets 1 \\\\\n\\Module{M}{x}\n  \\Return f(x, x) \\\\\n\\EndModule", KokoyiTypeError),
        ("\\Module{M}{x \\in \\mathbb{R}}\n  \\Return\tx @ x \\\\\n\\EndModule", KokoyiTypeError),
        ("\\Module{M}{x}\n  h \\gets \\{ h[t] \\}_{t=0}^{2} \\\\\n  \\Return h \\\\\n\\EndModule", kokoyi.KokoyiError),
        ("\\Module{M}{x}\n  a \\gets x \\\\\n\\EndModule", KokoyiSyntaxError),
    ],
)
def test_compile_errors_carry_file_line_column_and_show_a_caret(source, cls):
    err = expect_error(source, cls, filename="where.kyi")
    assert err.filename == "where.kyi" and err.line >= 1 and err.column >= 1
    head, shown, caret = str(err).splitlines()[:3]
    assert head.startswith(f"where.kyi:{err.line}:{err.column}: ")
    assert shown == f"{err.line:>4} | " + source.split("\n")[err.line - 1].replace("\t", " ")
    assert caret.index("^") - caret.index("|") - 2 == err.column - 1


# ---- language round 2 ---------------------------------------------------------------------------
def _resolved(text: str):
    from kokoyi.compiler.pipeline import compile_unit as _compile

    return _compile(text, "r2.kyi", stop_after="resolve").ast


def test_identity_is_built_in_where_the_bold_I_is_undefined():
    body = _resolved(r"\Module{M}{x \in \mathbb{R}^{d}} \Return \mathbf{I}_{d} \\ \EndModule").items[0].body
    value = body[-1].values[0]
    assert isinstance(value, A.BuiltinCall) and value.name == "\\mathbf{I}"
    assert isinstance(value.args[0], A.Ref) and value.args[0].symbol.key == "d"


def test_a_defined_bold_I_is_indexed_as_usual():
    body = _resolved(r"\Module{M}{\mathbf{I}, i} \Return \mathbf{I}_{i} \\ \EndModule").items[0].body
    assert isinstance(body[-1].values[0], A.Index)


def test_a_bare_bold_I_is_not_a_function():
    err = expect_error(r"\Module{M}{x} \Return \mathbf{I} \\ \EndModule", KokoyiNameError)
    assert "undefined name" in err.message


@pytest.mark.parametrize("word", ["tr", "diag"])
def test_operatorname_words_are_built_ins_unless_defined(word):
    call = _resolved(rf"\Module{{M}}{{A}} \Return \operatorname{{{word}}}(A) \\ \EndModule").items[0].body[-1].values[0]
    assert isinstance(call, A.BuiltinCall) and call.name == word
    call = _resolved(rf"\Module{{M}}{{A; {word}}} \Return \operatorname{{{word}}}(A) \\ \EndModule").items[0].body[-1].values[0]
    assert isinstance(call, A.Call)  # a parameter of that name shadows the built-in


LSTM_LIKE = r"""\Module{M}{x}
  c \gets \{ \begin{cases} 0 & t = 0 \\ c[t-1] + z_t & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \where z_t \gets h[t-1] * x[t] \\
  h \gets \{ c[t] + 1 \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""


def test_a_set_builder_may_read_a_later_set_builder_and_its_where_may_use_the_index():
    body = _resolved(LSTM_LIKE).items[0].body
    c, h = body[0].target.symbol, body[1].target.symbol
    where = body[0].where[0]
    reads = {n.symbol for n in A.walk(where.value) if isinstance(n, A.Ref)}
    assert h in reads  # the later h, the same symbol as its definition
    index = A.strip(body[0].value).bounds[0].var.symbol
    assert index in reads  # z_t uses t
    assert c.extra.get("per_element_where") is True


def test_only_set_builders_may_read_later_definitions():
    err = expect_error(r"\Module{M}{x} a \gets h[0] \\ h \gets \{ x[t] \}_{t=0}^{2} \\ \Return a \\ \EndModule",
                       KokoyiNameError)
    assert "undefined name `h`" in err.message and err.column == 23


def test_bounds_cannot_use_a_where_binding_that_uses_the_index():
    err = expect_error(r"\Module{M}{x} g \gets \{ x[t] \}_{t=0}^{n} \where n \gets t + 1 \\ \Return g \\ \EndModule",
                       KokoyiNameError)
    assert "cannot use `n`" in err.message and err.column == 41


def test_bounds_may_use_a_where_binding_that_does_not_use_the_index():
    body = _resolved(r"\Module{M}{x} g \gets \{ x[t] * s_t \}_{t=0}^{n} \where n \gets |x| - 1, s_t \gets t \\ \Return g \\ \EndModule").items[0].body
    assert A.strip(body[0].value).bounds[0].upper.symbol is body[0].where[0].target.symbol


def test_the_identity_takes_one_size():
    err = expect_error(r"\Module{M}{a} \Return \mathbf{I}_{a, a} \\ \EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (1, 23) and "takes one size" in err.message
