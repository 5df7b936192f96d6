"""Tests of the grammar (grammar.lark), the post-lexer (TexArguments) and syntax errors.

Structure is checked through the AST the builder makes, written as s-expressions
(kokoyi.test_utils.sexpr), so each case reads like the tree it should be.
"""
from __future__ import annotations

import re

import pytest
from lark import Lark
from lark.exceptions import GrammarError

import kokoyi
from kokoyi.compiler import ast as A
from kokoyi.compiler import parser
from kokoyi.errors import KokoyiSyntaxError, Source
from kokoyi.test_utils import expect_error, parse_expr, parse_program, sexpr, value


def tree(expr: str) -> str:
    return sexpr(parse_expr(expr))


def syntax_error(text: str, filename: str = "t.kyi") -> KokoyiSyntaxError:
    with pytest.raises(KokoyiSyntaxError) as info:
        parser.parse(Source(text, filename))
    return info.value


# ---- the grammar itself -------------------------------------------------------------------


def test_grammar_builds_conflict_free_in_strict_mode():
    strict = parser._lark("start", strict=True)
    assert isinstance(strict, Lark)
    # The strict parser reads the same language as the one compile uses.
    text = r"\Module{M}{x; W} \Return \sum_{i=0}^{|x|-1} W[i] * x[i] + \frac{1}{2} x^2 \\ \EndModule"
    slot = strict.options.postlex
    slot.current = parser.TexArguments(Source(text))
    try:
        assert strict.parse(text) == parser.parse(Source(text))
    finally:
        slot.current = None


def test_strict_mode_does_reject_a_conflicting_grammar():
    # Guards the test above: strict=True really does turn a conflict into an error.
    ambiguous = 'start: e\ne: e "+" e | "x"\n'
    Lark(ambiguous, parser="lalr", strict=False)
    with pytest.raises(GrammarError):
        Lark(ambiguous, parser="lalr", strict=True)


# ---- lexical rules ----------------------------------------------------------------------------


def test_percent_starts_a_comment_to_the_end_of_the_line():
    assert value("1 % + 100 \\\\ nothing here counts\n + 2") == 3


def test_escaped_percent_is_not_a_comment():
    # `\%` is not a comment: the rest of the line is still read, and `\%` itself is no operator.
    err = expect_error("q \\gets 1 \\% 2 \\\\\n", KokoyiSyntaxError)
    assert (err.line, err.column) == (1, 11)
    assert "\\%" in err.message


def test_a_unit_may_start_with_the_kokoyi_line():
    kokoyi.compile("%kokoyi\nq \\gets 2 \\\\\n")
    assert kokoyi.symbol["q"] == 2
    err = expect_error("%kokoyi\nq \\gets \\Foo \\\\\n")
    assert (err.line, err.column) == (2, 9)


def test_whitespace_and_newlines_are_insignificant():
    assert tree("a\n+\n  b *\tc") == tree("a + b * c") == "(+ a (* b c))"


LAYOUT_MACROS = [r"\,", r"\:", r"\;", r"\!", "\\ ", "~", r"\quad", r"\qquad", r"\displaystyle", r"\textstyle"]


@pytest.mark.parametrize("macro", LAYOUT_MACROS)
def test_spacing_macros_are_ignored_everywhere(macro):
    m = f" {macro} " if macro != "\\ " else "\\ "
    with_layout = (f"{m}\\sum{m}_{{{m}i{m}={m}0{m}}}^{{{m}3{m}}}{m}x{m}[{m}i{m}]{m}+{m}f{m}({m}a{m},{m}b{m})"
                   f"{m}*{m}\\frac{m}{{1}}{m}{{2}}{m}")
    assert tree(with_layout) == tree(r"\sum_{i=0}^{3} x[i] + f(a, b) * \frac{1}{2}")
    program = parse_program(f"{m}\\Module{m}{{M}}{m}{{x{m};{m}W}}{m}\\Return{m}x{m}\\\\{m}\\EndModule{m}")
    assert isinstance(program.items[0], A.Module)


@pytest.mark.parametrize("size", ["big", "Big", "bigg", "Bigg"])
def test_delimiter_sizes_are_ignored(size):
    text = (f"\\{size}( a + b \\{size}) * \\{size}l( c \\{size}r) + \\{size}| x \\{size}| "
            f"+ \\left\\| y \\right\\| + \\left\\lceil z \\right\\rceil")
    assert tree(text) == tree(r"(a + b) * (c) + |x| + \|y\| + \lceil z \rceil")


def test_limits_and_nolimits_are_ignored():
    plain = tree(r"\sum_{i=0}^{3} x[i]")
    assert tree(r"\sum\limits_{i=0}^{3} x[i]") == plain
    assert tree(r"\sum\nolimits_{i=0}^{3} x[i]") == plain
    assert tree(r"\displaystyle\max\limits_{i=0}^{3} x[i]") == tree(r"\max_{i=0}^{3} x[i]")


@pytest.mark.parametrize(
    "text, expected, kind",
    [("3", 3, int), ("10", 10, int), ("0.5", 0.5, float), (".5", 0.5, float), ("1e-3", 0.001, float),
     ("2.5E4", 25000.0, float), ("1E3", 1000.0, float), ("7.0", 7.0, float)],
)
def test_numbers(text, expected, kind):
    num = parse_expr(text)
    assert isinstance(num, A.Num) and num.text == text
    assert num.value == expected and type(num.value) is kind
    assert type(value(text)) is kind


# ---- TeX's argument rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\frac12", "(frac 1 2)"),
        (r"\frac{a}2", "(frac a 2)"),
        (r"\frac a2", "(frac a 2)"),
        (r"\frac{1}{2}", "(frac 1 2)"),
        (r"\sqrt2", "(sqrt 2)"),
        (r"\sqrt[3]8", "(sqrt 8 3)"),
        ("x^2", "(^ x 2)"),
        (r"x^\frac{1}{2}", "(^ x (frac 1 2))"),
        (r"x^\frac12", "(^ x (frac 1 2))"),
        (r"\frac1234", "(jux (frac 1 2) 34)"),
        (r"\frac{x^2}{y_1}", "(frac (^ x 2) y_{1})"),
        (r"\frac\alpha2", r"(frac \alpha 2)"),
        ("x_12", None),  # x_{1} 2: a name and a number side by side
    ],
)
def test_tex_argument_rule(text, expected):
    if expected is None:
        with pytest.raises(KokoyiSyntaxError):
            parse_expr(text)
    else:
        assert tree(text) == expected


def test_tex_argument_rule_values():
    assert value(r"\frac1234") == 17
    assert value(r"\frac12") == 0.5
    assert value(r"\sqrt4") == 2
    assert value(r"2^\frac12") == pytest.approx(2 ** 0.5)
    assert value(r"\frac{3}2 + \frac1{4}") == 1.75


# ---- precedence (LANGUAGE.md section 5) -------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        # \lor < \land
        (r"a \lor b \land c", "(or a (and b c))"),
        (r"a \land b \lor c", "(or (and a b) c)"),
        (r"a \vee b \wedge c", "(or a (and b c))"),
        # \land < \lnot
        (r"\lnot a \land b", "(and (not a) b)"),
        (r"\neg a \lor \neg b", "(or (not a) (not b))"),
        # \lnot < comparisons
        (r"\lnot a < b", "(not (< a b))"),
        (r"a < b \land c > d", "(and (< a b) (> c d))"),
        # comparisons < + -
        ("a + b < c - d", "(< (+ a b) (- c d))"),
        (r"a \le b + 1", "(<= a (+ b 1))"),
        # + - < products
        ("a + b * c", "(+ a (* b c))"),
        ("a - b / c", "(- a (/ b c))"),
        ("a * b + c @ d", "(+ (* a b) (@ c d))"),
        (r"a \cdot b - c \times d", "(- (@ a b) (* c d))"),
        (r"a \circ b + c \odot d", "(+ (* a b) (* c d))"),
        # products < unary
        ("a * -b", "(* a (- b))"),
        ("-a * b", "(* (- a) b)"),
        ("-a + b", "(+ (- a) b)"),
        # unary < power
        ("-a ** 2", "(- (^ a 2))"),
        ("-x^2", "(- (^ x 2))"),
        ("+x^2", "(+ (^ x 2))"),
        # power < postfix
        ("x[1] ** 2", "(^ (idx x 1) 2)"),
        ("f(x)^2", "(^ (call f x) 2)"),
        (r"x[1]^\top", "(T (idx x 1))"),
        # postfix chains
        ("f(x)[1]", "(idx (call f x) 1)"),
        ("x[1](y)", "(call (idx x 1) y)"),
        ("-x[1]", "(- (idx x 1))"),
        # left associativity of + - * /
        ("a - b - c", "(- (- a b) c)"),
        ("a / b / c", "(/ (/ a b) c)"),
        ("a / b * c", "(* (/ a b) c)"),
        # a full ladder
        (r"a \lor b \land \lnot c < d + e * -f ** g[0]",
         "(or a (and b (not (< c (+ d (* e (- (^ f (idx g 0)))))))))"),
    ],
)
def test_precedence(text, expected):
    assert tree(text) == expected


@pytest.mark.parametrize("op, name", [("<", "<"), (">", ">"), (r"\le", "<="), (r"\leq", "<="), (r"\ge", ">="),
                                      (r"\geq", ">="), ("=", "=="), (r"\ne", "!="), (r"\neq", "!=")])
def test_comparison_operators(op, name):
    assert tree(f"a {op} b + 1") == f"({name} a (+ b 1))"


def test_comparisons_do_not_chain():
    with pytest.raises(KokoyiSyntaxError):
        parse_expr("a < b < c")


def test_powers_are_right_associative():
    assert tree("a ** b ** c") == "(^ a (^ b c))"
    assert tree("a^{b^c}") == "(^ a (^ b c))"
    assert tree("a ** -b") == "(^ a (- b))"
    assert value("2 ** 3 ** 2") == 512
    assert value("-2^2") == -4
    assert value("(-2)^2") == 4


def test_double_superscript_is_an_error_as_in_latex():
    with pytest.raises(KokoyiSyntaxError):
        parse_expr("a^b^c")


@pytest.mark.parametrize("text", [r"x^\top", r"x^{\top}", r"x^\intercal", r"x ^ { \top }"])
def test_transpose(text):
    assert tree(text) == "(T x)"


@pytest.mark.parametrize("text, expected", [
    (r"\log \sum_{k=0}^{2} \exp(z_k) - b", r"(- (\log (sum k 0 2 (\exp z_{k}))) b)"),
    (r"2 \log \sum_{k=0}^{2} z_k", r"(jux 2 (\log (sum k 0 2 z_{k})))"),
    (r"x * \exp \log \prod_{k=0}^{2} z_k", r"(* x (\exp (\log (prod k 0 2 z_{k}))))"),
    (r"\log \sum(z) - b", r"(- (\log (\sum() z)) b)"),
])
def test_a_bare_function_applies_to_a_big_operator(text, expected):
    # the log-sum-exp as papers write it; the big operator's body ends with the product
    assert tree(text) == expected


@pytest.mark.parametrize("text, expected", [
    (r"\frac{K^\top}{2}", "(frac (T K) 2)"),
    (r"\frac{2}{K^\intercal}", "(frac 2 (T K))"),
    (r"\frac{Q @ K^\top}{\sqrt{d}}", "(frac (@ Q (T K)) (sqrt d))"),
    (r"{K^\top} + 1", "(+ (T K) 1)"),
])
def test_transpose_before_a_closing_brace_leaves_the_brace(text, expected):
    # `^\top}`: the brace closes the enclosing group; only `^{\top}` owns its braces.
    assert tree(text) == expected


# ---- juxtaposition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2x", "(jux 2 x)"),
        ("2 x", "(jux 2 x)"),
        ("0.5x^2", "(jux 0.5 (^ x 2))"),
        (r"\frac{1}{2} \delta^2", r"(jux (frac 1 2) (^ \delta 2))"),
        (r"\frac{1}{2}x", "(jux (frac 1 2) x)"),
        (r"\sqrt{2} \pi", r"(jux (sqrt 2) \pi)"),
        (r"2\frac{1}{2}", "(jux 2 (frac 1 2))"),
        (r"2 \log x", r"(jux 2 (\log x))"),
        (r"\frac{1}{T} \sum_{t=0}^{T-1} x[t]", "(jux (frac 1 T) (sum t 0 (- T 1) (idx x t)))"),
        (r"2 \sum_{t=0}^{3} x[t] + 1", "(+ (jux 2 (sum t 0 3 (idx x t))) 1)"),
        ("2 f(x)", "(jux 2 (call f x))"),
        ("ab", "ab"),
        ("logP", "logP"),
    ],
)
def test_juxtaposition(text, expected):
    assert tree(text) == expected


def test_juxtaposition_values():
    assert value("2x", prelude="x \\gets 3 \\\\") == 6
    assert value(r"\frac{1}{2} \delta^2", prelude="\\delta \\gets 4 \\\\") == 8


@pytest.mark.parametrize("text, left, right, column", [("W x", "W", "x", 11), (r"\alpha \beta", r"\alpha", r"\beta", 16),
                                                        ("2 x y", "x", "y", 13)])
def test_two_names_side_by_side_suggest_matmul_or_product(text, left, right, column):
    err = syntax_error(f"q \\gets {text} \\\\")
    assert (err.line, err.column) == (1, column)
    assert f"`{left} @ {right}`" in err.message and f"`{left} * {right}`" in err.message


@pytest.mark.parametrize("text", ["(a + b) c", "f(x) y", "x[1] y", "x_1 y", "x^2 y", r"\mathbf{W} x", "|x| y",
                                  r"x \hat{y}", r"\sum(x) y"])
def test_other_operands_side_by_side_suggest_an_operator(text):
    err = syntax_error(f"q \\gets {text} \\\\")
    assert "side by side" in err.message and "@" in err.message and "*" in err.message


# ---- big operators ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\sum_{i=0}^{n-1} a[i] * b[i] + c", "(+ (sum i 0 (- n 1) (* (idx a i) (idx b i))) c)"),
        (r"\sum_{i=0}^{3} {x[i] + 1}", "(sum i 0 3 (+ (idx x i) 1))"),
        (r"\sum_{i=0}^{3} (x[i] + 1) * 2", "(sum i 0 3 (* (+ (idx x i) 1) 2))"),
        (r"a + \sum_{i=0}^{3} x[i] * 2 - 1", "(- (+ a (sum i 0 3 (* (idx x i) 2))) 1)"),
        (r"a * \sum_{i=0}^{3} x[i] * 2", "(* a (sum i 0 3 (* (idx x i) 2)))"),
        (r"-\sum_{i=0}^{3} x[i]", "(- (sum i 0 3 (idx x i)))"),
        (r"\sum_{i=0}^{3} \sum_{j=0}^{i} x[j] + 1", "(+ (sum i 0 3 (sum j 0 i (idx x j))) 1)"),
        (r"\sum_{i=0}^{3} x[i] < 2", "(< (sum i 0 3 (idx x i)) 2)"),
        (r"\sum^{b}_{i=a} x[i]", "(sum i a b (idx x i))"),
        (r"\prod_{i=1}^{n} x[i]", "(prod i 1 n (idx x i))"),
        (r"\max_{i=0}^{3} x[i]", "(max i 0 3 (idx x i))"),
        (r"\min_{i=0}^{3} x[i]", "(min i 0 3 (idx x i))"),
        (r"\argmax_{i=0}^{3} x[i]", "(argmax i 0 3 (idx x i))"),
        (r"\argmin_{i=0}^{3} x[i]", "(argmin i 0 3 (idx x i))"),
        (r"\arg\max_{i=0}^{3} x[i]", "(argmax i 0 3 (idx x i))"),
        (r"\arg\min_{i=0}^{3} x[i]", "(argmin i 0 3 (idx x i))"),
        (r"\operatorname*{argmax}_{i=0}^{3} x[i]", "(argmax i 0 3 (idx x i))"),
        (r"\operatorname*{argmin}_{i=0}^{3} x[i]", "(argmin i 0 3 (idx x i))"),
        (r"\mathbb{E}_{i=0}^{3} x[i]", "(mean i 0 3 (idx x i))"),
        (r"\sum_{i=0}^3 x_i", "(sum i 0 3 x_{i})"),
    ],
)
def test_big_operators(text, expected):
    assert tree(text) == expected


def test_big_operator_body_rule_values():
    prelude = r"a \gets \{ k \}_{k=1}^{3} \\ b \gets \{ 10 * k \}_{k=1}^{3} \\ c \gets 1000 \\"
    assert value(r"\sum_{i=0}^{2} a[i] * b[i] + c", prelude) == 10 + 40 + 90 + 1000
    assert value(r"\sum^{2}_{i=1} a[i]", prelude) == 5


@pytest.mark.parametrize("text", [r"\sum(x)", r"\prod(x)", r"\max(x)", r"\min(x)", r"\argmax(x)", r"\argmin(x)"])
def test_reductions_with_parentheses(text):
    op = text[1:text.index("(")]
    assert tree(text) == f"(\\{op}() x)"


def test_max_min_with_several_arguments():
    assert tree(r"\max(a, b, c)") == r"(\max() a b c)"
    assert value(r"\max(1, 5, 3) + \min(4, 2)") == 7


# ---- indicators, cases, set-builders, norms, rounding, slices -----------------------------------


@pytest.mark.parametrize("text", [r"\mathbb{1}[x > 0]", r"\mathbb{1}(x > 0)", r"\mathbb{1}_{x > 0}"])
def test_indicator_forms(text):
    assert tree(text) == "(1 (> x 0))"


def test_indicator_values():
    assert value(r"\mathbb{1}[2 > 1] + \mathbb{1}(2 < 1) * 10 + \mathbb{1}_{1 = 1} * 100") == 101.0


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\begin{cases} a & \text{if } c \\ b & \text{otherwise} \end{cases}", "(cases [a c] [b else])"),
        (r"\begin{cases} a & c \\ b & \text{otherwise} \end{cases}", "(cases [a c] [b else])"),
        (r"\begin{cases} a & c \\ b & \text{else} \end{cases}", "(cases [a c] [b else])"),
        (r"\begin{cases} a & \text{if} c \\ b & d \end{cases}", "(cases [a c] [b d])"),
        (r"\begin{cases} a & x > 0 \\ b & x < 0 \\ 0 & \text{otherwise} \\ \end{cases}",
         "(cases [a (> x 0)] [b (< x 0)] [0 else])"),
    ],
)
def test_cases_forms(text, expected):
    assert tree(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\{ x[t] \}_{t=0}^{3}", "(set (idx x t) t 0 3)"),
        (r"\{ x[t] \}^{3}_{t=0}", "(set (idx x t) t 0 3)"),
        (r"\{ x[i] * y[j] \}_{i=0, j=0}^{2, 3}", "(set (* (idx x i) (idx y j)) i 0 2 j 0 3)"),
        (r"\{ \{ j \}_{j=0}^{i} \}_{i=0}^{n}", "(set (set j j 0 i) i 0 n)"),
    ],
)
def test_set_builders(text, expected):
    assert tree(text) == expected


def test_set_builder_values():
    assert value(r"\{ i^2 \}_{i=0}^{3}").tolist() == [0, 1, 4, 9]
    assert value(r"\{ 10 * i + j \}_{i=0, j=0}^{1, 2}").tolist() == [[0, 1, 2], [10, 11, 12]]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\|x\|", "(norm x)"),
        (r"\|x\|_1", "(norm1 x)"),
        (r"\|x\|_2", "(norm2 x)"),
        (r"\|x\|_\infty", "(norminf x)"),
        (r"\|x\|_{\infty}", "(norminf x)"),
        (r"\|x - y\|^2", "(^ (norm (- x y)) 2)"),
        ("|x|", "(bars x)"),
        ("|x| + |y|", "(+ (bars x) (bars y))"),
        ("|x - 1|", "(bars (- x 1))"),
        (r"\lceil x \rceil", "(ceil x)"),
        (r"\lfloor x / 2 \rfloor", "(floor (/ x 2))"),
    ],
)
def test_norms_bars_and_rounding(text, expected):
    assert tree(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x[1:2]", "(idx x (: 1 2))"),
        ("x[:2]", "(idx x (: _ 2))"),
        ("x[1:]", "(idx x (: 1 _))"),
        ("x[:]", "(idx x (: _ _))"),
        ("x[:, j]", "(idx x (: _ _) j)"),
        ("x[i, j]", "(idx x i j)"),
        ("x[i][j]", "(idx (idx x i) j)"),
        ("x[t-1:t+1]", "(idx x (: (- t 1) (+ t 1)))"),
    ],
)
def test_indexing_and_slices(text, expected):
    assert tree(text) == expected


# ---- built-in function application -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\exp{x}", r"(\exp x)"),
        (r"\exp(x)", r"(\exp x)"),
        (r"\exp x", r"(\exp x)"),
        (r"\log x + 1", r"(+ (\log x) 1)"),
        (r"\log(x) + 1", r"(+ (\log x) 1)"),
        (r"\sin \cos \theta", r"(\sin (\cos \theta))"),
        (r"\log x^2", r"(\log (^ x 2))"),
        (r"\exp(x)^2", r"(^ (\exp x) 2)"),
        (r"\tanh x[1]", r"(\tanh (idx x 1))"),
        (r"\log 2", r"(\log 2)"),
        (r"\exp \frac{1}{2}", r"(\exp (frac 1 2))"),
        (r"\log \sqrt{x}", r"(\log (sqrt x))"),
        (r"\log 2 * x", r"(* (\log 2) x)"),
        (r"\maximum(a, b)", r"(\maximum a b)"),
        (r"\SmoothL1(a, b)", r"(\SmoothL1 a b)"),
        (r"\Mean", r"\Mean"),
    ],
)
def test_builtin_application_forms(text, expected):
    assert tree(text) == expected


def test_builtin_application_values():
    assert float(value(r"\log e + 1")) == pytest.approx(2.0)
    assert float(value(r"\sin \cos 0")) == pytest.approx(0.8414709848)
    assert float(value(r"\exp{0} + \log 1")) == pytest.approx(1.0)


def test_bare_function_of_bars_needs_parentheses():
    err = syntax_error(r"q \gets \log |x| \\")
    assert err.column == 14 and "\\log(" in err.message


# ---- syntax errors ------------------------------------------------------------------------------


def test_unknown_command_suggests_the_closest_known_one():
    err = syntax_error("q \\gets \\Softmx(x) \\\\", "m.kyi")
    assert (err.filename, err.line, err.column) == ("m.kyi", 1, 9)
    assert "`\\Softmx`" in err.message and "did you mean `\\Softmax`?" in err.message
    assert "did you mean" not in syntax_error("q \\gets \\qwertyuiop \\\\").message


def test_missing_terminator_before_the_next_statement():
    err = syntax_error("\\Module{M}{x}\n  a \\gets x + 1\n  \\Return a \\\\\n\\EndModule\n")
    assert (err.line, err.column) == (3, 3)
    assert "expected `\\\\` to end the statement" in err.message


def test_missing_terminator_at_the_end_of_the_input():
    err = syntax_error("a \\gets 1 \\\\\nb \\gets 2\n")
    assert err.line == 2
    assert "expected `\\\\` to end the statement" in err.message


def test_missing_terminator_before_a_definition_is_hinted():
    # `2 c` would be a product, so the parser only stops at the next `\gets`.
    err = syntax_error("a \\gets 1 \\\\\nb \\gets 2\nc \\gets 3 \\\\\n")
    assert (err.line, err.column) == (3, 3)
    assert "\\\\" in err.message and "missing" in err.message


BROKEN = [
    r"\Module{M}{x} \Return \lceil x \\ \EndModule",
    r"\Module{M}{x} \Return \lfloor x + \\ \EndModule",
    r"\Module{M}{x} \Return x \\",
    r"\Module{M}{x} \Return x",
    r"\Module{M}{x} \Return (x \\ \EndModule",
    r"\Module{M}{x} \Return x) \\ \EndModule",
    r"\Module{M}{x} \Return x] \\ \EndModule",
    r"\Module{M}{x} \Return {x \\ \EndModule",
    r"\Module{M}{x \Return x \\ \EndModule",
    r"\Module{M}{x} \Return x \lor \\ \EndModule",
    r"\Module{M}{x} \Return x \land \\ \EndModule",
    r"\Module{M}{x} \Return x ? 3 \\ \EndModule",
    r"\Module{M}{x} \Return \text{hi} \\ \EndModule",
    r"\Module{M}{x} \Return x^\top^\top \\ \EndModule",
    r"\Module{M}{x} \Return \sum_{i=0} x \\ \EndModule",
    r"\Module{M}{x} \Return \sum_{i=0}^{3} \\ \EndModule",
    r"\Module{M}{x} \Return \begin{cases} x & \end{cases} \\ \EndModule",
    r"\Function{f}{x} \Return x \\ \EndModule",
    r"\gets",
    r"x \gets \\",
    r"x \gets \sqrt[3 \\",
    r"x \gets x_ \\",
    r"x \gets \frac{1} \\",
    r"x \gets \mathbf{1} \\",
    r"x \gets \mathbf{a + b} \\",
    r"x \gets | \\",
    r"x \gets \| \\",
    r"x \gets a & b \\",
    r"x \gets ; \\",
    r"\Module{M}{x; y; z} \Return x \\ \EndModule",
    r"f(x, ) \gets x \\",
    r"x \gets \begin{cases} \end{cases} \\",
    r"x \gets \{ \} \\",
    r"x \gets 1 \where \\",
    r"x \gets 1 \in 2 \\",
    r"x \gets a \ge \\",
    r"x \gets a \ne \\",
    r"x \gets \lceil a \rfloor \\",
    r"x \gets \lfloor a \rceil \\",
    r"x \gets a \times \\",
    r"x \gets \cdot a \\",
    r"x \gets \arg \\",
    r"x \gets \operatorname*{argmax} \\",
    r"x \gets \mathbb{1} \\",
    r"x \gets a ** \\",
    r"x \gets a ^ \\",
    r"x \gets @ \\",
    r"\\",
    "\\Module{M}{x}\n\\Return x \\\\\n\\EndModule\n\\EndModule",
]


def _terminal_names() -> set[str]:
    lark_parser = parser._lark("start")
    table = lark_parser.parser.parser.parser.parse_table
    rules = {r.origin.name for r in lark_parser.rules}
    names = {str(t) for actions in table.states.values() for t in actions if t not in rules}
    return {n for n in names if n.isupper() or n.startswith("$")} | {"CMD", "MISPLACED", "LAYOUT"}


def test_every_terminal_the_parser_can_expect_has_a_readable_name():
    missing = {t for t in _terminal_names() - {"CMD", "MISPLACED", "LAYOUT"} if t not in parser.TERMINAL_TEXT}
    assert not missing


@pytest.mark.parametrize("source", BROKEN)
def test_syntax_errors_never_show_lark_terminal_names(source):
    err = expect_error(source, KokoyiSyntaxError)
    words = set(re.findall(r"[$A-Za-z_]+", err.message))
    leaked = {t for t in _terminal_names() if t in words and len(t) > 1}
    assert not leaked, f"{leaked} in: {err.message}"
    # Nor their lower-case forms outside quoted source text (`expected rceil`).
    unquoted = set(re.findall(r"[a-z_]+", re.sub(r"`[^`]*`", "", err.message)))
    phrases = set(re.findall(r"[a-z]+", re.sub(r"`[^`]*`", "", " ".join(parser.TERMINAL_TEXT.values()))))
    leaked = {t.lower() for t in _terminal_names()} & unquoted - phrases
    assert not leaked, f"{leaked} in: {err.message}"
    assert "$END" not in str(err) and "DOUBLE_BACKSLASH" not in str(err)
    assert "Token(" not in str(err) and "Expected one of" not in str(err)


@pytest.mark.parametrize("source", BROKEN)
def test_every_syntax_error_carries_its_position_and_shows_a_caret(source):
    err = expect_error(source, KokoyiSyntaxError, filename="bad.kyi")
    lines = source.splitlines() or [""]
    assert err.filename == "bad.kyi"
    assert 1 <= err.line <= len(lines)
    assert 1 <= err.column <= len(lines[err.line - 1]) + 1
    text = str(err).splitlines()
    assert text[0].startswith(f"bad.kyi:{err.line}:{err.column}: ")
    assert text[1].endswith(lines[err.line - 1].expandtabs(1)) and text[1].lstrip().startswith(f"{err.line} |")
    caret_line = text[2]
    assert caret_line.index("^") - caret_line.index("|") - 2 == err.column - 1


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_breaks_of_every_platform_count_as_lines(newline):
    err = expect_error(f"a \\gets 1 \\\\{newline}b \\gets \\Foo \\\\{newline}", KokoyiSyntaxError)
    assert (err.line, err.column) == (2, 9)
    assert str(err).splitlines()[1] == "   2 | b \\gets \\Foo \\\\"


@pytest.mark.parametrize("blank", ["\t", "\x0c"])
def test_caret_stays_under_the_column_past_tabs_and_control_characters(blank):
    err = expect_error(f"q \\gets{blank}{blank}\\Foo \\\\", KokoyiSyntaxError)
    shown, caret = str(err).splitlines()[1:3]
    assert len(shown.splitlines()) == 1
    assert caret.index("^") == shown.index("\\Foo") and caret.count("^") == len("\\Foo")


@pytest.mark.parametrize("odd", ["\u2028", "\x00", "\x85"])
def test_odd_characters_are_reported_on_one_line(odd):
    err = expect_error(f"q \\gets 1 {odd} 2 \\\\", KokoyiSyntaxError)
    assert (err.line, err.column) == (1, 11)
    assert len(str(err).splitlines()) == 3


def test_error_text_layout_exactly():
    err = syntax_error("\\Module{M}{x}\n  a \\gets x + 1\n  \\Return a \\\\\n\\EndModule\n", "policy.kyi")
    assert str(err).splitlines() == [
        "policy.kyi:3:3: expected `\\\\` to end the statement before `\\Return`",
        "   3 |   \\Return a \\\\",
        "     |   ^^^^^^^",
    ]
