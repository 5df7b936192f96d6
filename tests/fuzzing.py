"""Fuzzing helpers shared by tests/test_fuzz.py and scripts/fuzz_campaign.py.

Hypothesis strategies that build hostile Kokoyi input from the language's own vocabulary
(kokoyi/compiler/keywords.py and the literal terminals of grammar.lark), from the shared
conformance sources (truncated and mutated), from grammar-shaped random programs, and from
random unicode and bytes; and the oracle every input must satisfy:

* it compiles, or it raises a kokoyi.KokoyiError whose line and column lie inside the input
  (1 <= line <= number of lines, 1 <= column <= len(that line) + 1, lines split at `\\n`,
  `\\r\\n` or `\\r` as the compiler counts them);
* it raises nothing else;
* it takes at most TIME_LIMIT seconds (a watchdog interrupts it after HARD_LIMIT).
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import os
import pathlib
import re
import signal
import time
import traceback

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFORMANCE_CASES = ROOT.parent / "shared" / "conformance" / "cases"
TIME_LIMIT = 1.0  # seconds an input may take
HARD_LIMIT = 5.0  # seconds after which the watchdog interrupts it

LINE_BREAK = re.compile(r"\r\n|\r|\n")
CODING_COOKIE = re.compile(r"coding[:=]")  # PEP 263

# Hypothesis profiles. The default-run fuzz tests use "kokoyi-fuzz" (bounded: the whole of
# tests/test_fuzz.py stays under a minute); KOKOYI_FUZZ_PROFILE=kokoyi-fuzz-long multiplies
# every test's examples by 20 for a longer local run. scripts/fuzz_campaign.py runs the
# open-ended campaign.
settings.register_profile(
    "kokoyi-fuzz",
    deadline=datetime.timedelta(seconds=TIME_LIMIT),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("kokoyi-fuzz-long", parent=settings.get_profile("kokoyi-fuzz"))
PROFILE = os.environ.get("KOKOYI_FUZZ_PROFILE", "kokoyi-fuzz")
FUZZ = settings.get_profile(PROFILE)
SCALE = 20 if PROFILE == "kokoyi-fuzz-long" else 1


def fuzz_settings(max_examples: int) -> settings:
    """The fuzz profile with this test's number of examples (scaled by the profile)."""
    return settings(FUZZ, max_examples=max_examples * SCALE)


# ---- the vocabulary ------------------------------------------------------------------------
@functools.cache
def command_words() -> tuple[str, ...]:
    """Every `\\word` the keyword table knows, plus a few near misses."""
    from kokoyi.compiler import keywords

    words = set(keywords.known_words())
    return tuple(sorted(f"\\{w}" for w in words)) + ("\\Softmx", "\\foo", "\\Retrun", "\\mathbf", "\\x")


@functools.cache
def grammar_literals() -> tuple[str, ...]:
    """The string literals of grammar.lark (`"\\\\"`, `"**"`, `"{"`, ...)."""
    from kokoyi.compiler.parser import grammar_text

    out = set()
    for m in re.finditer(r'^[A-Z_]+(?:\.\d+)?:\s*"((?:[^"\\]|\\.)*)"', grammar_text(), re.MULTILINE):
        out.add(m.group(1).encode().decode("unicode_escape"))
    return tuple(sorted(out))


PHRASES = (
    "\\\\", "\\{", "\\}", "\\|", "\\,", "\\;", "\\:", "\\!", "\\ ", "~", "\\%",
    "\\text{if }", "\\text{otherwise}", "\\text{else}", "\\text{when}", "\\text{",
    "\\Comment{a note}", "\\Comment{", "\\begin{cases}", "\\end{cases}", "\\begin{matrix}",
    "\\operatorname*{argmax}", "\\operatorname{abs}", "\\mathbb{R}", "\\mathbb{Z}", "\\mathbb{N}",
    "\\mathbb{E}", "\\mathbb{1}", "\\mathbb{Q}", "^\\top", "^{\\top}", "^\\intercal", "\\arg\\max",
    "\\in \\mathbb{R}^{T \\times d}", "_{t=0}^{T-1}", "_{i=0, j=0}^{n-1, n-1}", "^{(1)}", "'", "''",
    "|x|", "\\|x\\|_2", "\\|x\\|_\\infty", "x[t-1]", "h[t+1]", "x_{first}", "\\bar{x}", "\\hat{y}",
    "%kokoyi\n", "% a comment\n", "\n", " ", "  ", "\t",
)
NAMES = ("x", "y", "z", "W", "T", "d", "h", "t", "i", "j", "k", "n", "a", "b", "c", "f", "M", "F",
         "logP", "Linears", "e", "E", "R", "xy", "x1", "G_t", "h_0")
NUMBERS = ("0", "1", "2", "3", "10", "0.5", "1e-3", "2.5E4", ".5", "1e", "007", "99999999999999999999",
           "1e999", "1234")


def vocabulary() -> tuple[str, ...]:
    return command_words() + grammar_literals() + PHRASES + NAMES + NUMBERS


def tokens() -> st.SearchStrategy[str]:
    return st.sampled_from(vocabulary())


def token_soup(max_tokens: int = 40) -> st.SearchStrategy[str]:
    """Random sequences of the language's own tokens, joined by random whitespace."""
    sep = st.sampled_from(["", " ", " ", "\n", "  "])
    return st.lists(st.tuples(tokens(), sep), max_size=max_tokens).map(
        lambda parts: "".join(tok + s for tok, s in parts))


# ---- conformance sources, truncated and mutated --------------------------------------------
@functools.cache
def conformance_sources() -> tuple[str, ...]:
    import importlib.util

    out = []
    for path in sorted(CONFORMANCE_CASES.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"fuzz_case_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out.append(mod.SOURCE)
    return tuple(out) or ("\\Module{M}{x}\n  \\Return x + 1 \\\\\n\\EndModule\n",)


TOKEN_RE = re.compile(r"\\[a-zA-Z]+|\\.|[a-zA-Z][a-zA-Z0-9]*|\d+(?:\.\d+)?|\s+|.", re.DOTALL)


def _tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


@st.composite
def mutated_source(draw) -> str:
    """A conformance source with a few random edits: truncation, deletion, duplication,
    insertion of vocabulary tokens or random characters, swaps."""
    text = draw(st.sampled_from(conformance_sources()))
    toks = _tokenize(text)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "delete", "insert", "duplicate", "swap", "replace", "char"]))
        n = len(toks)
        i = draw(st.integers(0, max(0, n)))
        j = draw(st.integers(i, min(n, i + 6)))
        if kind == "truncate":
            toks = toks[:i]
        elif kind == "delete":
            del toks[i:j]
        elif kind == "insert":
            toks[i:i] = [draw(tokens())]
        elif kind == "duplicate":
            toks[i:i] = toks[i:j]
        elif kind == "swap" and n >= 2:
            a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            toks[a], toks[b] = toks[b], toks[a]
        elif kind == "replace" and i < n:
            toks[i] = draw(tokens())
        elif kind == "char":
            toks[i:i] = [draw(st.characters())]
    return "".join(toks)


@st.composite
def truncated_source(draw) -> str:
    """A conformance source cut at a random character."""
    text = draw(st.sampled_from(conformance_sources()))
    return text[: draw(st.integers(0, len(text)))]


# ---- grammar-shaped programs ---------------------------------------------------------------
BIGOPS = ("\\sum", "\\prod", "\\max", "\\min", "\\argmax", "\\argmin", "\\mathbb{E}")
FUNCS = ("\\exp", "\\log", "\\tanh", "\\ReLU", "\\Softmax", "\\Mean", "\\abs", "\\sqrt", "\\maximum",
         "\\OneHot", "\\Concat", "\\CrossEntropy", "\\sin", "\\clip")
BODY_NAMES = ("x", "y", "W", "a", "b", "h", "n", "G_t", "\\bar{x}", "v0", "s")
CONSTANT_NAMES = ("c", "k", "phi", "x_{first}", "\\phi")
BINOPS = ("+", "-", "*", "/", "@", "\\cdot", "\\odot", "\\times", "**", "^", "<", "\\le", "=", "\\ne",
          "\\land", "\\lor")


@functools.cache
def expression(names: tuple[str, ...] = ("x", "y", "W", "n")) -> st.SearchStrategy[str]:
    """Random expressions from the expression grammar (well-formed more often than not)."""
    leaf = st.one_of(st.sampled_from(names), st.sampled_from(("0", "1", "2", "0.5", "3", "1e-3")),
                     st.sampled_from(("\\pi", "e", "\\infty", "t", "i", "|x|", "T")))

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(BINOPS), inner).map(lambda p: f"{p[0]} {p[1]} {p[2]}"),
            inner.map(lambda a: f"({a})"),
            inner.map(lambda a: f"{{{a}}}"),
            inner.map(lambda a: f"-{a}"),
            inner.map(lambda a: f"\\lnot {a}"),
            st.tuples(inner, inner).map(lambda p: f"\\frac{{{p[0]}}}{{{p[1]}}}"),
            inner.map(lambda a: f"\\sqrt{{{a}}}"),
            inner.map(lambda a: f"|{a}|"),
            inner.map(lambda a: f"\\|{a}\\|"),
            inner.map(lambda a: f"\\lfloor {a} \\rfloor"),
            st.tuples(st.sampled_from(FUNCS), st.lists(inner, min_size=1, max_size=3)).map(
                lambda p: f"{p[0]}({', '.join(p[1])})"),
            st.tuples(st.sampled_from(names), st.lists(inner, min_size=1, max_size=2)).map(
                lambda p: f"{p[0]}[{', '.join(p[1])}]"),
            st.tuples(st.sampled_from(names), inner).map(lambda p: f"{p[0]}_{{{p[1]}}}"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}[{p[1]}:]"),
            inner.map(lambda a: f"{a}^\\top"),
            st.tuples(st.sampled_from(BIGOPS), st.sampled_from("ijk"), inner, inner, inner).map(
                lambda p: f"{p[0]}_{{{p[1]}={p[2]}}}^{{{p[3]}}} {p[4]}"),
            st.tuples(inner, st.sampled_from("tij"), inner, inner).map(
                lambda p: f"\\{{ {p[0]} \\}}_{{{p[1]}={p[2]}}}^{{{p[3]}}}"),
            st.tuples(inner, inner, inner).map(
                lambda p: f"\\begin{{cases}} {p[0]} & \\text{{if }} {p[1]} \\\\ {p[2]} & \\text{{otherwise}} \\end{{cases}}"),
            inner.map(lambda a: f"\\mathbb{{1}}[{a}]"),
            st.tuples(st.sampled_from(("\\max", "\\min", "\\sum", "\\argmax")), inner).map(lambda p: f"{p[0]}({p[1]})"),
            st.tuples(st.sampled_from(("2", "\\frac{1}{2}", "\\sqrt{2}")), inner).map(lambda p: f"{p[0]} {p[1]}"),
        )

    return st.recursive(leaf, extend, max_leaves=12)


@st.composite
def program(draw) -> str:
    """A unit of modules, functions and constants with random bodies."""
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["module", "function", "constant", "oneline"]))
        if kind == "constant":
            target = draw(st.sampled_from(CONSTANT_NAMES))
            value = draw(expression(("c", "1", "e")))
            items.append(f"{target} \\gets {value} \\\\")
            continue
        if kind == "oneline":
            items.append(f"g(x, y) \\gets {draw(expression(('x', 'y')))} \\\\")
            continue
        ann = draw(st.sampled_from(["", " \\in \\mathbb{R}^{n}", " \\in \\mathbb{R}^{n \\times n}", " \\in \\mathbb{Z}"]))
        body = []
        for k in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from(("a", "b", "h", "G_t", "\\bar{x}", f"v{k}", "s(u)")))
            value = draw(expression(BODY_NAMES))
            body.append(f"  {name} \\gets {value} \\\\")
        value = draw(expression(BODY_NAMES))
        body.append(f"  \\Return {value} \\\\")
        if kind == "module":
            items.append(f"\\Module{{M}}{{x{ann}, y; W}}\n" + "\n".join(body) + "\n\\EndModule")
        else:
            items.append("\\Function{F}{x, y, W}\n" + "\n".join(body) + "\n\\EndFunction")
    return "\n".join(items) + "\n"


# ---- deep nesting and long chains ------------------------------------------------------------
NESTINGS = (("(", ")"), ("{", "}"), ("-", ""), ("\\sqrt", ""), ("\\exp ", ""), ("|", "|"), ("\\|", "\\|"),
            ("\\frac{1}{", "}"), ("\\bar{", "}"), ("\\lnot ", ""), ("x_{", "}"), ("\\{", "\\}_{t=0}^{1}"),
            ("\\sum_{i=0}^{1} ", ""), ("g(", ")"), ("\\max(", ")"), ("\\lfloor ", " \\rfloor"), ("x[", "]"),
            ("\\mathbb{1}[", "]"), ("\\begin{cases} ", " & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}"))
CHAINS = (" + ", " - ", " * ", " / ", " ^ ", " ** ", " @ ", " \\land ", " \\lor ", "[0]", "'", " < ")


@st.composite
def deep_nesting(draw, small_math: bool = False) -> str:
    """Expressions nested or chained hundreds of levels deep, in a constant or a module.

    small_math: index ranges of one element, for runs that evaluate the constants
    (kokoyi.compile): k nested two-element set-builders or sums are 2**k elements or terms of
    honest work, which takes as long as it takes.
    """
    n = draw(st.integers(1, 400))
    if draw(st.booleans()):
        open_, close = draw(st.sampled_from(NESTINGS))
        if small_math:
            open_, close = open_.replace("^{1}", "^{0}"), close.replace("^{1}", "^{0}")
        expr = open_ * n + "x" + close * n
    else:
        sep = draw(st.sampled_from(CHAINS))
        expr = sep.join(["x"] * n) if sep not in ("[0]", "'") else "x" + sep * n
    if draw(st.booleans()):
        return f"g(y) \\gets y \\\\\n\\Module{{M}}{{x}}\n  \\Return {expr} \\\\\n\\EndModule\n"
    return f"x \\gets 1.5 \\\\\ng(y) \\gets y \\\\\nc \\gets {expr} \\\\\n"


# ---- hostile comments, text and file names -------------------------------------------------
MARKER = "/tmp/kokoyi_fuzz_pwned"
PAYLOADS = (
    "'", '"', "'''", '"""', "\\", "\\n", "\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0c", "\x0b",
    "\x1c", "\x1d", "\x1e", "\x00", "\x1b[31m", "\ud800", "\udce9", "}", "{", "%", "#", "\\\\", "{0}", "%s",
    f"__import__('os').system('touch {MARKER}')",
    f"\nimport os; os.system('touch {MARKER}')\n",
    f"\u2028import os; os.system('touch {MARKER}')",
    f"'''; import os; os.system('touch {MARKER}'); '''",
    "-*- coding: utf-7 -*-",
    f"+AAo-import os+ADs-os.system(+ACI-touch {MARKER}+ACI-)",
)


def payload() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=30),
                     st.lists(st.sampled_from(PAYLOADS), max_size=4).map("".join))


@st.composite
def commented_source(draw) -> str:
    """A conformance source with hostile `%` comments and `\\Comment{...}` texts added."""
    lines = draw(st.sampled_from(conformance_sources())).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        text = draw(payload())
        if draw(st.booleans()) and lines[i].rstrip().endswith("\\\\"):
            body = lines[i].rstrip()[:-2]
            lines[i] = body + " \\Comment{" + text + "} \\\\"
        else:
            lines[i] = lines[i] + " % " + text
    return "\n".join(lines)


def filenames() -> st.SearchStrategy[str]:
    return st.one_of(st.just("fuzz.kyi"), payload(), st.text(min_size=1, max_size=40))


# ---- random text and bytes ---------------------------------------------------------------
SEPARATORS = ("\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r", "\r\n", "\t", "\x00",
              "\ufeff", "\u200b", "\ud800", "\U0001f600")


def random_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=200),
        st.text(st.characters(codec="ascii"), max_size=200),
        st.lists(st.one_of(tokens(), st.sampled_from(SEPARATORS), st.characters()), max_size=40).map("".join),
    )


def random_bytes_text() -> st.SearchStrategy[str]:
    """Random bytes, decoded as a file loader might (utf-8 with replacement, latin-1, surrogateescape)."""
    return st.tuples(st.binary(max_size=200), st.sampled_from(["utf-8-replace", "latin-1", "surrogateescape"])).map(
        lambda p: p[0].decode("utf-8", "replace") if p[1] == "utf-8-replace"
        else p[0].decode("latin-1") if p[1] == "latin-1" else p[0].decode("utf-8", "surrogateescape"))


def any_input() -> st.SearchStrategy[str]:
    """Every kind of hostile input at once."""
    return st.one_of(token_soup(), mutated_source(), truncated_source(), program(), commented_source(),
                     deep_nesting(), random_text(), random_bytes_text())


# ---- the oracle ---------------------------------------------------------------------------
class Timeout(BaseException):
    """Raised by the watchdog; a BaseException so that no `except Exception` swallows it."""


@contextlib.contextmanager
def watchdog(seconds: float = HARD_LIMIT):
    """Interrupt the block after `seconds` (main thread only; elsewhere a no-op)."""
    def fire(signum, frame):
        raise Timeout(f"took longer than {seconds} s")

    try:
        old = signal.signal(signal.SIGALRM, fire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def input_lines(text: str) -> list[str]:
    """The lines of text as the compiler counts them."""
    return LINE_BREAK.split(text)


def position_problem(err, text: str) -> str | None:
    """Why err's position does not lie inside text, or None when it does."""
    line, column = getattr(err, "line", None), getattr(err, "column", None)
    if line is None and column is None:
        return "error has no line and column"
    lines = input_lines(text)
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return f"line {line!r} outside 1..{len(lines)}"
    if not isinstance(column, int) or not 1 <= column <= len(lines[line - 1]) + 1:
        return f"column {column!r} outside 1..{len(lines[line - 1]) + 1} of line {line}"
    if f"{line}:{column}" not in str(err):
        return "error text lacks line:column"
    return None


def generated_code_problem(code: str) -> str | None:
    """Why generated Python is not a well-formed UTF-8 module, or None when it is."""
    import io
    import tokenize

    try:
        data = code.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"generated code is not UTF-8 encodable: {err}"
    encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    if encoding not in ("utf-8", "utf-8-sig"):
        return f"generated code declares the source encoding {encoding!r}"
    try:
        compile(data, "<generated>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as err:
        return f"generated code does not compile: {err}"
    return None


def runtime_error_problem(err) -> str | None:
    """A KokoyiRuntimeError from kokoyi.compile must come from running the unit's code (its
    top-level math raised); one whose cause never ran generated code (compiling the code,
    registering it) is a compiler defect."""
    from kokoyi.runtime.module import locate

    cause = err.__cause__
    if cause is None or isinstance(cause, kokoyi_error()):
        return None
    if locate(cause) is None:
        return f"failed outside the unit's code: {type(cause).__name__}: {cause}"
    return None


def kokoyi_error():
    import kokoyi

    return kokoyi.KokoyiError


def check(text: str, via: str = "compile_unit", filename: str = "fuzz.kyi",
          time_limit: float | None = TIME_LIMIT) -> str | None:
    """Run one input through the compiler; None if it behaved, else what went wrong.

    via: "compile_unit" (kokoyi.compiler.pipeline.compile_unit, no global state; the
    generated code must also be a well-formed UTF-8 Python module) or "compile"
    (kokoyi.compile, which also runs the unit's top-level code and registers it).
    time_limit: seconds the input may take (an input over it is timed once more, so that
    a busy machine is not a finding); None: not timed (Hypothesis' deadline times tests).
    """
    problem, elapsed = _check_once(text, via, filename)
    if problem is None and time_limit is not None and elapsed > time_limit:
        problem, elapsed = _check_once(text, via, filename)
        if problem is None and elapsed > time_limit:
            problem = f"slow: {elapsed:.2f} s (limit {time_limit} s)"
    return problem


def _check_once(text: str, via: str, filename: str) -> tuple[str | None, float]:
    import kokoyi
    from kokoyi.compiler.pipeline import compile_unit

    if via == "compile":
        kokoyi.symbol.clear()
    start = time.perf_counter()
    problem = None
    try:
        with watchdog():
            if via == "compile":
                kokoyi.compile(text, filename=filename)
            else:
                problem = generated_code_problem(compile_unit(text, filename).generated.code)
    except Timeout as err:
        problem = f"timeout: {err}"
    except kokoyi.KokoyiError as err:
        if isinstance(err, kokoyi.KokoyiRuntimeError):
            problem = runtime_error_problem(err)
        else:
            problem = position_problem(err, text)
            if problem:
                problem = f"{type(err).__name__} at a bad position ({problem}): {err}"
    except RecursionError as err:
        problem = f"RecursionError: {str(err)[:200]}"
    except Exception as err:  # noqa: BLE001 - that is the finding
        problem = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-4)}"
    finally:
        if via == "compile":
            kokoyi.symbol.clear()
    return problem, time.perf_counter() - start
