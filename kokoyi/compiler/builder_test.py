"""Tests of the parse tree -> AST builder: names, items, statements, spans, and the errors
the builder itself reports."""
from __future__ import annotations

from pathlib import Path

import pytest
from lark import Transformer

from kokoyi.compiler import ast as A
from kokoyi.compiler import builder, parser
from kokoyi.errors import KokoyiSyntaxError, Source
from kokoyi.test_utils import expect_error, parse_expr, parse_program, sexpr


def name(text: str) -> A.Name:
    n = parse_expr(text)
    assert isinstance(n, A.Name), f"{text!r} is not a name: {n}"
    return n


# ---- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, hint",
    [
        ("x", "x", "x"),
        ("logP", "logP", "logP"),
        ("Linears", "Linears", "Linears"),
        (r"\alpha", r"\alpha", "alpha"),
        (r"\Omega", r"\Omega", "Omega"),
        (r"\varepsilon", r"\varepsilon", "varepsilon"),
        (r"\ell", r"\ell", "ell"),
        (r"\mathrm{x}", "x", "x"),
        (r"\mathit{xy}", "xy", "xy"),
        (r"\operatorname{foo}", "foo", "foo"),
        (r"\mathbf{x}", r"\mathbf{x}", "x_bf"),
        (r"\boldsymbol{x}", r"\boldsymbol{x}", "x_bs"),
        (r"\mathcal{L}", r"\mathcal{L}", "L_cal"),
        (r"\bar{x}", r"\bar{x}", "x_bar"),
        (r"\bar x", r"\bar{x}", "x_bar"),
        (r"\hat{y}", r"\hat{y}", "y_hat"),
        (r"\bar{G_t}", r"\bar{G_{t}}", "G_t_bar"),
        ("G_t", "G_{t}", "G_t"),
        ("G_{t}", "G_{t}", "G_t"),
        ("x_{first}", "x_{first}", "x_first"),
        ("W_{hh}", "W_{hh}", "W_hh"),
        ("x_0", "x_{0}", "x_0"),
        ("s'", "s'", "s_prime"),
        ("s''", "s''", "s_prime_prime"),
        ("s'_t", "s'_{t}", "s_prime_t"),
        (r"\hat{x}_1", r"\hat{x}_{1}", "x_hat_1"),
    ],
)
def test_name_keys_and_hints(text, key, hint):
    n = name(text)
    assert (n.key, n.hint) == (key, hint)


def test_font_wrapped_names():
    # \mathrm, \mathit, \operatorname keep the name; \mathbf, \boldsymbol, \mathcal make distinct ones.
    assert name(r"\mathrm{x}").key == name("x").key == name(r"\mathit{x}").key == name(r"\operatorname{x}").key
    keys = {name(t).key for t in ("x", r"\mathbf{x}", r"\boldsymbol{x}", r"\mathcal{x}")}
    assert len(keys) == 4


ACCENTS = ["hat", "bar", "tilde", "vec", "dot", "ddot", "check", "breve", "overline", "widehat", "widetilde"]


def test_every_accent_makes_a_new_name():
    keys = {name(f"\\{a}{{x}}").key for a in ACCENTS} | {"x"}
    assert len(keys) == len(ACCENTS) + 1
    hints = {name(f"\\{a}{{x}}").hint for a in ACCENTS}
    assert len(hints) == len(ACCENTS)


def test_subscript_keeps_the_base_and_the_index_expressions():
    n = name("x_{t-1}")
    assert n.key == "x_{t - 1}"
    assert n.inner.key == "x"
    (idx,) = n.indices
    assert isinstance(idx, A.Binary) and idx.op == "-"
    two = name("A_{i,j}")
    assert two.key == "A_{i,j}" and [i.key for i in two.indices] == ["i", "j"]


def test_parenthesised_superscript_names_a_definition_target():
    prog = parse_program(r"W^{(1)} \gets 2 \\")
    target = prog.items[0].target
    assert target.key == "W^{(1)}" and target.hint == "W_1"
    assert target.inner.key == "W"


def test_defined_names_must_have_label_subscripts():
    err = expect_error(r"x_{i+1} \gets 3 \\", KokoyiSyntaxError)
    assert (err.line, err.column) == (1, 4) and "cannot be defined" in err.message


# ---- program structure ------------------------------------------------------------------------


def test_module_signature():
    prog = parse_program(r"""
\Module{\pi}{s, t; Linears, b} \Return s \\ \EndModule
\Module{A}{} \Return 1 \\ \EndModule
\Module{B}{x} \Return x \\ \EndModule
\Module{C}{; W} \Return W \\ \EndModule
\Module{D}{x;} \Return x \\ \EndModule
""")
    pi, a, b, c, d = prog.items
    assert pi.name.key == r"\pi"
    assert [x.name.key for x in pi.inputs] == ["s", "t"] and [x.name.key for x in pi.params] == ["Linears", "b"]
    assert (a.inputs, a.params, a.has_params_section) == ((), (), False)
    assert ([x.name.key for x in b.inputs], b.params, b.has_params_section) == (["x"], (), False)
    assert (c.inputs, [x.name.key for x in c.params], c.has_params_section) == ((), ["W"], True)
    assert ([x.name.key for x in d.inputs], d.params, d.has_params_section) == (["x"], (), True)


def test_annotations():
    prog = parse_program(r"\Module{M}{X \in \mathbb{R}^{T \times d}, k \in \mathbb{Z}, n \in \mathbb{N}, "
                         r"v \in \mathbb{R}^3, w \in \mathbb{R}^{\alpha}} \Return X \\ \EndModule")
    X, k, n, v, w = prog.items[0].inputs
    assert X.annotation.field == "R" and [d.key for d in X.annotation.dims] == ["T", "d"]
    assert (k.annotation.field, k.annotation.dims) == ("Z", ())
    assert (n.annotation.field, n.annotation.dims) == ("N", ())
    assert [d.value for d in v.annotation.dims] == [3]
    assert [d.key for d in w.annotation.dims] == [r"\alpha"]


def test_unknown_annotation_field_is_a_syntax_error():
    err = expect_error(r"\Module{M}{x \in \mathbb{Q}} \Return x \\ \EndModule", KokoyiSyntaxError)
    assert (err.line, err.column) == (1, 26) and "\\mathbb{R}" in err.message


def test_functions_definitions_where_and_comments():
    prog = parse_program(r"""
\Function{softclip}{x, c}
  y \gets \tanh(x / c) \\
  \Return c * y, y \\
\EndFunction
f(x, y) \gets a + b \where a \gets x, b \gets a * y \Comment{a note {with} braces} \\
g \gets 1 \\
""")
    fn, f, g = prog.items
    assert isinstance(fn, A.Function) and [a.name.key for a in fn.args] == ["x", "c"]
    assert len(fn.body[-1].values) == 2
    assert isinstance(f, A.Definition) and [p.key for p in f.params] == ["x", "y"]
    assert [b.target.key for b in f.where] == ["a", "b"]
    assert f.comment == "a note {with} braces"
    assert g.params is None and g.comment is None


def test_function_with_no_arguments_is_a_function():
    f = parse_program(r"f() \gets 1 \\").items[0]
    assert f.params == ()


def test_cases_rows_remember_their_wording():
    rows = parse_expr(r"\begin{cases} a & \text{if } c \\ b & d \\ e & \text{else} \end{cases}").rows
    assert [r.text for r in rows] == ["if", "", "else"]
    rows = parse_expr(r"\begin{cases} a & c \\ b & \text{otherwise} \end{cases}").rows
    assert rows[-1].condition is None and rows[-1].text == "otherwise"


def test_indicator_styles():
    assert [parse_expr(t).style for t in (r"\mathbb{1}[c]", r"\mathbb{1}(c)", r"\mathbb{1}_{c}")] == ["[", "(", "_"]


def test_operator_spellings_are_kept_for_rendering():
    e = parse_expr(r"a \cdot b")
    assert (e.op, e.spelling) == ("@", r"\cdot")
    e = parse_expr(r"a \odot b")
    assert (e.op, e.spelling) == ("*", r"\odot")
    assert parse_expr("a ** b").spelling == "**" and parse_expr("a^b").spelling == "^"


def test_spans_are_one_based_and_cover_the_node():
    prog = parse_program("q \\gets\n   a + bb \\\\")
    e = prog.items[0].value
    assert (e.span.line, e.span.column, e.span.end_line, e.span.end_column) == (2, 4, 2, 10)
    assert (e.right.span.column, e.right.span.end_column) == (8, 10)


# ---- errors the builder reports (as KokoyiSyntaxError, never lark's VisitError) ----------------


@pytest.mark.parametrize(
    "expr, at, words",
    [
        (r"\|x\|_3", "3", "unknown norm"),
        (r"\mathbb{2}[x]", "2", "indicator"),
        (r"\arg\sum_{i=0}^{3} x", r"\arg", r"\arg\max"),
        (r"\operatorname*{foo}_{i=0}^{3} x", r"\operatorname", "not a big operator"),
        (r"\mathbb{F}_{i=0}^{3} x", r"\mathbb", r"\mathbb{E}"),
        (r"\{x\}_{i=0, j=0}^{3}", "_{i", "upper bound"),
        (r"\sum_{i=0, j=0}^{3, 3} x", "_{i", "one index variable"),
        (r"\begin{cases} x & \text{foo} \end{cases}", r"\text", r"\text{if }"),
        (r"\begin{cases} x & \text{if} \end{cases}", r"\text", "condition"),
        (r"\begin{cases} x & \text{otherwise} \\ 1 & x > 0 \end{cases}", "x &", "last row"),
    ],
)
def test_builder_errors_are_syntax_errors_with_positions(expr, at, words):
    source = f"\\Module{{M}}{{x}}\n\\Return {expr} \\\\\n\\EndModule"
    err = expect_error(source, KokoyiSyntaxError)
    assert (err.line, err.column) == (2, len("\\Return ") + 1 + expr.index(at))
    assert words in err.message
    assert str(err).startswith(f"t.kyi:2:{err.column}: ")


# ---- language round 2: log bases, matrix literals, linear-algebra words ----------------------


@pytest.mark.parametrize("text, base, style", [
    (r"\log_2 x", "2", "bare"),
    (r"\log_{10}(x)", "10", "paren"),
    (r"\log_{b}(x)", "b", "paren"),
    (r"\log_b x", "b", "bare"),
])
def test_a_log_with_a_subscript_is_a_log_to_that_base(text, base, style):
    e = parse_expr(text)
    assert isinstance(e, A.LogBase) and e.style == style
    assert sexpr(e.base) == base and sexpr(e.operand) == "x"


def test_log_bases_in_products_and_sums():
    e = parse_expr(r"-\sum_{k=0}^{n} p_k * \log_2 p_k + 10 \log_{10}(a)")
    assert sexpr(e) == "(+ (- (sum k 0 n (* p_{k} (log_2 p_{k})))) (jux 10 (log_10 a)))"


@pytest.mark.parametrize("text, at, words", [
    (r"q \gets \exp_2 x \\", 9, "only `\\log` has a base"),
    (r"q \gets \log_{2}(x, y) \\", 9, "takes 1 argument"),
    (r"q \gets \log_2 \\", 9, "needs its argument"),
])
def test_a_misused_log_base_is_a_located_error(text, at, words):
    err = expect_error(text, KokoyiSyntaxError)
    assert (err.line, err.column) == (1, at) and words in err.message


@pytest.mark.parametrize("text, shape", [
    (r"\begin{bmatrix} a & b \\ c & d \end{bmatrix}", [2, 2]),
    (r"\begin{pmatrix} u \\ v \end{pmatrix}", [1, 1]),
    (r"\begin{bmatrix} 1 & 2 & 3 \end{bmatrix}", [3]),
    (r"\begin{bmatrix} a & b \\ c & d \\ \end{bmatrix}", [2, 2]),  # a trailing `\\` is allowed
    (r"\begin{bmatrix} |x| & -\sin\theta \\ \frac{1}{2} & (a) \end{bmatrix}", [2, 2]),
])
def test_matrix_literals_keep_their_rows(text, shape):
    e = parse_expr(text)
    assert isinstance(e, A.Matrix)
    assert [len(r.entries) for r in e.rows] == shape


def test_matrix_delimiters_must_match():
    err = expect_error(r"q \gets \begin{bmatrix} a \end{pmatrix} \\", KokoyiSyntaxError)
    assert (err.line, err.column) == (1, 27) and "\\end{bmatrix}" in err.message


def test_linear_algebra_words_are_built_in_calls():
    assert sexpr(parse_expr(r"\log \det(A) + \Tr A")) == r"(+ (\log (\det A)) (\Tr A))"


# ---- the builder's own tree walk ----------------------------------------------------------------

EXAMPLE_FILES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_transform_builds_what_larks_transformer_builds(path):
    source = Source(path.read_text(), str(path))
    tree = parser.parse(source)
    fast = builder.AstBuilder(source).transform(tree)
    reference = Transformer.transform(builder.AstBuilder(source), tree)
    assert A.dump(fast) == A.dump(reference)
    assert [n.span for n in A.walk(fast)] == [n.span for n in A.walk(reference)]
