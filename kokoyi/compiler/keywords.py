"""The keyword table: every `\\command` the language knows, as data.

The lexer produces one CMD terminal for any `\\letters`; the post-lexer looks the word up
here and hands the parser the keyword terminal instead. Words missing from the table are
unknown commands, reported with the closest known spelling.
"""
from __future__ import annotations

GREEK = frozenset(
    """alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho
    sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi
    Omega varepsilon vartheta varphi varrho varsigma varpi ell infty""".split()
)

ACCENTS = frozenset("hat bar tilde vec dot ddot check breve overline widehat widetilde".split())

# Fonts that keep the name (`\mathrm{x}` is `x`) and fonts that make a distinct one.
SAME_NAME_FONTS = frozenset({"mathrm", "mathit", "operatorname"})
DISTINCT_FONTS = frozenset({"mathbf", "boldsymbol", "mathcal"})

# Built-in functions applied with parentheses, braces or to a single atom.
FUNCTIONS = frozenset(
    """exp Exp log ln sin cos tan sinh cosh tanh sqrtfn abs sign ReLU Sigmoid Softplus GELU
    maximum minimum clip Softmax LogSoftmax Mean Var Std LogSumExp OneHot Concat StopGrad
    CrossEntropy MSE SmoothL1 det Tr""".split()
) - {"sqrtfn"}

# Big operators: `\sum_{i=a}^{b} body`, and reductions `\sum(x)`.
BIG_OPERATORS = frozenset("sum prod max min argmax argmin".split())

# Layout macros: typeset spacing and delimiter sizing, ignored everywhere.
LAYOUT = frozenset(
    """left right middle big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr
    displaystyle textstyle limits nolimits quad qquad""".split()
)

# Fixed words -> terminal name.
FIXED = {
    "Module": "MODULE",
    "EndModule": "END_MODULE",
    "Function": "FUNCTION",
    "EndFunction": "END_FUNCTION",
    "Return": "RETURN",
    "gets": "GETS",
    "where": "WHERE",
    "in": "IN",
    "frac": "FRAC",
    "dfrac": "FRAC",
    "tfrac": "FRAC",
    "sqrt": "SQRT",
    "mathbb": "MATHBB",
    "arg": "ARG",
    "cdot": "CDOT",
    "times": "TIMES",
    "circ": "CIRC",
    "odot": "ODOT",
    "le": "LE",
    "leq": "LE",
    "ge": "GE",
    "geq": "GE",
    "ne": "NE",
    "neq": "NE",
    "lt": "LT",
    "gt": "GT",
    "lor": "LOR",
    "vee": "LOR",
    "land": "LAND",
    "wedge": "LAND",
    "lnot": "LNOT",
    "neg": "LNOT",
    "lceil": "LCEIL",
    "rceil": "RCEIL",
    "lfloor": "LFLOOR",
    "rfloor": "RFLOOR",
}

# Words that are known but only valid in one spot (after `^`, or as `\text{...}`): the
# parser reports them as misplaced rather than unknown.
PLACED = frozenset({"top", "intercal", "text", "Comment", "begin", "end", "operatorname*"})

# Terminal for each table above.
CLASSES = (
    (GREEK, "GREEK"),
    (ACCENTS, "ACCENT"),
    (SAME_NAME_FONTS | DISTINCT_FONTS, "FONT"),
    (FUNCTIONS, "FUNC"),
    (BIG_OPERATORS, "BIGOP"),
)

# Macros whose arguments follow TeX's rule (one token or one braced group each), with
# their argument counts, keyed by terminal. `\sqrt` also takes an optional `[n]`.
TEX_ARGUMENTS = {
    "FRAC": 2,
    "SQRT": 1,
    "ACCENT": 1,
    "FONT": 1,
    "MATHBB": 1,
    "OPNAME_STAR": 1,
    "CARET": 1,
    "UNDERSCORE": 1,
}


def classify(word: str) -> str | None:
    """Terminal name for `\\word`, "LAYOUT" for ignored macros, None if unknown."""
    if word in FIXED:
        return FIXED[word]
    for table, terminal in CLASSES:
        if word in table:
            return terminal
    if word in LAYOUT:
        return "LAYOUT"
    if word in PLACED:
        return "MISPLACED"
    return None


def known_words() -> list[str]:
    """Every command word, for 'did you mean' suggestions."""
    words = set(FIXED) | LAYOUT | PLACED
    for table, _ in CLASSES:
        words |= table
    return sorted(words)
