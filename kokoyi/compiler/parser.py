"""Text -> lark parse tree: the LALR parser, the post-lexer and readable syntax errors."""
from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import stat
import sys
from collections import deque
from collections.abc import Iterator
from importlib import resources

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from kokoyi.compiler import fastlex, keywords, lalr
from kokoyi.errors import KokoyiSyntaxError, Source, Span

GRAMMAR_FILE = "grammar.lark"

# What each terminal is called in messages: lark's terminal names never reach the user.
TERMINAL_TEXT = {
    "END": "`\\\\` to end the statement",
    "LSET": "`\\{`",
    "RSET": "`\\}`",
    "DNORM": "`\\|`",
    "NORM_OPEN": "`\\|`",
    "NORM_CLOSE": "`\\|`",
    "BAR_OPEN": "`|`",
    "BAR_CLOSE": "`|`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "BAR": "`|`",
    "COMMA": "`,`",
    "SEMI": "`;`",
    "COLON": "`:`",
    "AMP": "`&`",
    "PRIME": "`'`",
    "POW": "`**`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "AT": "`@`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "CARET": "`^`",
    "UNDERSCORE": "`_`",
    "LT": "`<`",
    "GT": "`>`",
    "EQ": "`=`",
    "NAME": "a name",
    "NUMBER": "a number",
    "GREEK": "a name",
    "MODULE": "`\\Module`",
    "END_MODULE": "`\\EndModule`",
    "FUNCTION": "`\\Function`",
    "END_FUNCTION": "`\\EndFunction`",
    "RETURN": "`\\Return`",
    "GETS": "`\\gets`",
    "WHERE": "`\\where`",
    "IN": "`\\in`",
    "FRAC": "`\\frac`",
    "SQRT": "`\\sqrt`",
    "TEXT": "`\\text{...}`",
    "COMMENT_TEXT": "`\\Comment{...}`",
    "BEGIN_CASES": "`\\begin{cases}`",
    "END_CASES": "`\\end{cases}`",
    "BEGIN_MATRIX": "`\\begin{bmatrix}`",
    "END_MATRIX": "`\\end{bmatrix}`",
    "TRANSPOSE_HAT": "`^\\top`",
    "FUNC": "a built-in function",
    "BIGOP": "a big operator",
    "ARG": "`\\arg`",
    "OPNAME_STAR": "`\\operatorname*`",
    "MATHBB": "`\\mathbb`",
    "ACCENT": "an accent",
    "FONT": "a font command",
    "CDOT": "`\\cdot`",
    "TIMES": "`\\times`",
    "CIRC": "`\\circ`",
    "ODOT": "`\\odot`",
    "LE": "`\\le`",
    "GE": "`\\ge`",
    "NE": "`\\ne`",
    "LOR": "`\\lor`",
    "LAND": "`\\land`",
    "LNOT": "`\\lnot`",
    "LCEIL": "`\\lceil`",
    "RCEIL": "`\\rceil`",
    "LFLOOR": "`\\lfloor`",
    "RFLOOR": "`\\rfloor`",
    "$END": "the end of the input",
}

# Terminals that start or form an operand: an unexpected one right after an operand means
# two things were written side by side.
OPERAND_TERMINALS = {"NAME", "GREEK", "FONT", "ACCENT", "LPAR", "FUNC"}
OPERAND_ENDS = {"NAME", "GREEK", "RPAR", "RSQB", "RBRACE", "PRIME", "NUMBER", "BAR_CLOSE", "NORM_CLOSE",
                "TRANSPOSE_HAT", "RCEIL", "RFLOOR", "END_CASES", "END_MATRIX"}
# Brackets that start and end a level for bars: a bar inside them never closes one outside.
OPENING_BRACKETS = {"LPAR", "LSQB", "LBRACE", "LSET", "BEGIN_CASES", "BEGIN_MATRIX", "LCEIL", "LFLOOR"}
CLOSING_BRACKETS = {"RPAR", "RSQB", "RBRACE", "RSET", "END_CASES", "END_MATRIX", "RCEIL", "RFLOOR"}


class TexArguments:
    """Post-lexer: keyword lookup for `\\commands`, and TeX's argument rule.

    A macro argument is one token or one braced group, so after `\\frac`, `^` and the
    like a multi-character number or name is split: `\\frac1234` reads as
    `\\frac{1}{2}34` and `x^ab` as `x^{a}b`, exactly as LaTeX typesets them.
    """

    always_accept = ("CMD", "BAR", "DNORM")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.recent: deque[Token] = deque(maxlen=2)  # the last two tokens handed to the parser
        self.bars: list[list[str]] = [[]]  # per bracket level: the bars opened there, innermost last
        self.blocks: list[Token] = []  # \Module and \Function tokens not closed yet

    def _emit(self, tok: Token) -> Token:
        kind = tok.type
        if kind in ("BAR", "DNORM"):
            tok = self._bar(tok)
        elif kind in OPENING_BRACKETS:
            self.bars.append([])
        elif kind in CLOSING_BRACKETS and len(self.bars) > 1:
            self.bars.pop()
        elif kind in ("MODULE", "FUNCTION"):
            self.blocks.append(tok)
        elif kind in ("END_MODULE", "END_FUNCTION") and self.blocks:
            self.blocks.pop()
        self.recent.append(tok)
        return tok

    def _bar(self, tok: Token) -> Token:
        """`|` and `\\|` open or close: a bar closes the innermost bar of its kind opened at this
        bracket level when it follows an operand; otherwise it opens one. So `2 |x|` and
        `\\frac{1}{2} \\|w\\|^2` are products, and `||x| - 1|` nests."""
        open_here = self.bars[-1]
        previous = self.recent[-1] if self.recent else None
        after_operand = previous is not None and previous.type in OPERAND_ENDS
        if open_here and open_here[-1] == tok.type and after_operand:
            open_here.pop()
            kind = "BAR_CLOSE" if tok.type == "BAR" else "NORM_CLOSE"
        else:
            open_here.append(tok.type)
            kind = "BAR_OPEN" if tok.type == "BAR" else "NORM_OPEN"
        return fastlex.retyped(kind, tok)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        frames: list[_Frame] = []
        depth = 0
        recent = self.recent
        bars = self.bars
        for raw in stream:
            token = self._keyword(raw) if raw.type == "CMD" else raw
            if token is None:
                continue
            if not frames and token.type not in _TRACKED:  # (most tokens: nothing to split, open or close)
                recent.append(token)
                yield token
                continue
            # The token, then the rest of it where a macro's argument takes its first character
            # (at most one piece waits at a time). _emit's bookkeeping is written out below.
            pending = token
            while pending is not None:
                tok, pending = pending, None
                kind = tok.type
                top = frames[-1] if frames else None
                active = top is not None and top.depth == depth and not top.in_group and not top.in_option
                if kind == "LBRACE" or kind == "LSQB":
                    if active and kind == "LSQB" and top.optional and top.remaining == top.count:
                        top.in_option = True
                    elif active and kind == "LBRACE":
                        top.in_group = True
                    depth += 1
                    bars.append([])  # (both are opening brackets)
                    recent.append(tok)
                    yield tok
                    continue
                if kind == "RBRACE" or kind == "RSQB":
                    depth -= 1
                    if len(bars) > 1:  # (both are closing brackets)
                        bars.pop()
                    recent.append(tok)
                    yield tok
                    top = frames[-1] if frames else None
                    if top is not None and top.depth == depth:
                        if top.in_option and kind == "RSQB":
                            top.in_option = False
                        elif top.in_group and kind == "RBRACE":
                            top.in_group = False
                            _argument_done(frames)
                    continue
                if active and (kind == "NUMBER" or kind == "NAME") and len(tok.value) > 1:
                    tok, pending = _split_first(tok)
                count = keywords.TEX_ARGUMENTS.get(kind)
                if count:
                    frames.append(_Frame(count, depth, optional=kind == "SQRT", is_argument=active))
                elif active:
                    _argument_done(frames)
                if kind in _BOOKKEPT:
                    tok = self._emit(tok)
                else:
                    recent.append(tok)
                yield tok

    def _keyword(self, token: Token) -> Token | None:
        word = token.value[1:]
        kind = _CLASSIFIED.get(word)
        if kind is None:
            kind = keywords.classify(word)
            if kind is not None and len(_CLASSIFIED) < 4096:
                _CLASSIFIED[word] = kind
        if kind == "LAYOUT":
            return None
        if kind is None:
            near = difflib.get_close_matches(word, keywords.known_words(), n=1, cutoff=0.6)
            hint = f" (did you mean `\\{near[0]}`?)" if near else ""
            raise KokoyiSyntaxError.at(self.source, _span(token), f"unknown command `{token.value}`{hint}")
        return fastlex.retyped(kind, token)


# What `\\word` is, for the words seen so far (keywords.classify, which tries each class in turn).
_CLASSIFIED: dict[str, str] = {}
# Token types _emit does more for than noting the token as the last one handed on.
_BOOKKEPT = frozenset({"BAR", "DNORM", "MODULE", "FUNCTION", "END_MODULE", "END_FUNCTION", *OPENING_BRACKETS,
                       *CLOSING_BRACKETS})
# Token types the post-lexer tracks (brackets, bars, blocks) or that take TeX arguments; any
# other token, with no macro waiting for its arguments, goes to the parser as it is.
_TRACKED = frozenset({"LBRACE", "LSQB", "RBRACE", "RSQB", "BAR", "DNORM", "MODULE", "FUNCTION", "END_MODULE",
                      "END_FUNCTION", *OPENING_BRACKETS, *CLOSING_BRACKETS, *keywords.TEX_ARGUMENTS})


class _Frame:
    __slots__ = ("count", "remaining", "depth", "optional", "in_group", "in_option", "is_argument")

    def __init__(self, count: int, depth: int, optional: bool, is_argument: bool) -> None:
        self.count = self.remaining = count
        self.depth = depth
        self.optional = optional
        self.is_argument = is_argument
        self.in_group = self.in_option = False


def _argument_done(frames: list[_Frame]) -> None:
    """One argument of the innermost macro is complete; close finished macros."""
    while frames:
        top = frames[-1]
        top.remaining -= 1
        if top.remaining > 0:
            return
        frames.pop()
        if not top.is_argument:
            return


def _split_first(tok: Token) -> tuple[Token, Token]:
    head = Token(tok.type, tok.value[0], tok.start_pos, tok.line, tok.column, tok.line, tok.column + 1,
                 None if tok.start_pos is None else tok.start_pos + 1)
    rest = Token(tok.type, tok.value[1:], None if tok.start_pos is None else tok.start_pos + 1, tok.line,
                 tok.column + 1, tok.end_line, tok.end_column, tok.end_pos)
    return head, rest


def _span(token: Token) -> Span:
    end_col = token.end_column if token.end_column is not None else token.column + len(token.value)
    return Span(token.line, token.column, token.end_line or token.line, end_col)


@functools.lru_cache(maxsize=None)
def grammar_text() -> str:
    return resources.files("kokoyi.compiler").joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


def _table_cache(start: str, strict: bool):
    """Where lark keeps the analysed LALR tables between processes (None: do not cache).

    Building the tables takes a few hundred milliseconds; loading them takes a few tens.
    The file lives in the user's kokoyi cache folder, named by the grammar's hash and the
    lark and Python versions, and lark checks the hash again before using it.

    Lark stores the tables as a pickle, and loading a pickle can run any code, so the file
    is used only where nobody else could have written it: the folder must belong to this
    user (or root) and not be writable by others, and an existing file must be a regular
    file of this user (or root) that neither group nor others may write. Anything else (a
    shared or world-writable folder, a file someone else planted or could have edited)
    turns the cache off: the tables are built in memory and nothing is read or written.
    """
    if strict or os.environ.get("KOKOYI_NO_PARSER_CACHE"):
        return False
    try:
        from kokoyi.cachedir import cache_dir, trusted

        folder = cache_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        digest = hashlib.sha256(grammar_text().encode()).hexdigest()[:16]
        path = folder / f"lalr-{start}-{digest}-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.tables"
        if not trusted(os.stat(folder), folder_mode=True):
            return False
        if os.path.lexists(path) and not trusted(os.lstat(path), folder_mode=False):
            return False
    except OSError:
        return False
    return str(path)


def _private_tables(cache) -> None:
    """Make the table file lark just wrote writable by this user only (best effort)."""
    if isinstance(cache, str):
        try:
            st = os.lstat(cache)
            if stat.S_ISREG(st.st_mode) and hasattr(os, "getuid") and st.st_uid == os.getuid():
                os.chmod(cache, stat.S_IMODE(st.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
        except OSError:
            pass


@functools.lru_cache(maxsize=4)
def _lark(start: str = "start", strict: bool = False) -> Lark:
    # The post-lexer is swapped per call (it needs the Source for its errors), so build
    # with a forwarding slot.
    cache = _table_cache(start, strict)
    parser = Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        start=start,
        propagate_positions=False,  # the builder computes spans from tokens
        maybe_placeholders=True,
        strict=strict,
        postlex=_PostLexSlot(),
        cache=cache,
    )
    _private_tables(cache)
    lalr.install(parser)  # the same parse, with cheap rule lookups (kokoyi/compiler/lalr.py)
    fastlex.install(parser)  # the same tokens, with fewer calls per token (kokoyi/compiler/fastlex.py)
    return parser


class _PostLexSlot:
    """Lark wants the post-lexer at construction; this one forwards to the current one."""

    always_accept = TexArguments.always_accept
    current: TexArguments | None = None

    def process(self, stream):
        return self.current.process(stream)


# A lone surrogate is not a character: no file can hold one, no encoder can write one.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_characters(source: Source) -> None:
    """Reject lone surrogates anywhere, comments included: they would reach the generated code."""
    m = _SURROGATE.search(source.text)
    if m is not None:
        line = source.text.count("\n", 0, m.start()) + 1
        column = m.start() - (source.text.rfind("\n", 0, m.start()) + 1) + 1
        raise KokoyiSyntaxError.at(source, Span(line, column, line, column + 1),
                                   f"invalid character U+{ord(m.group()):04X} (a lone surrogate, not text)")


def parse(source: Source, start: str = "start") -> Tree:
    """Parse source into a lark tree, raising KokoyiSyntaxError on bad input."""
    _check_characters(source)
    parser = _lark(start)
    slot = parser.options.postlex
    previous = slot.current
    slot.current = TexArguments(source)
    try:
        tree = parser.parse(source.text)
    except UnexpectedInput as err:
        raise _syntax_error(source, err, _previous(slot.current.recent, err), slot.current.blocks) from None
    finally:
        slot.current = previous
    _check_depth(tree, source)
    return tree


class _Building:
    """A parser's callbacks that build the AST during the LALR reductions (no parse tree).

    They are the AST builder's methods (kokoyi/compiler/builder.py), each behind lark's own
    child filters for its rule, so a reduction hands its method the children the builder's
    walk of the parse tree would; an inlined `_rule` still makes the lark Tree its parent
    splices. The builder's source is set per parse (like the post-lexer's, _PostLexSlot).
    """

    def __init__(self, parser: Lark) -> None:
        from kokoyi.compiler.builder import AstBuilder

        self.builder = AstBuilder(None)
        self.made = [False]
        self.callbacks: dict = {}
        self.kinds: dict = {}
        self.reductions: dict = {}
        self.chains: dict = {}
        self.rows: dict = {}
        for rule, chain in parser._parse_tree_builder.rule_builders:
            name = rule.alias or rule.options.template_source or rule.origin.name
            if rule.origin.name.startswith("_"):
                f, kind = functools.partial(Tree, name), lalr.INLINED
            else:
                f = getattr(self.builder, name, None) or self.builder._missing(name)
                kind = lalr.MAYBE if rule.options.expand1 and not rule.alias else lalr.NODE
                if kind == lalr.MAYBE:
                    f = self._marking(f)
            if kind == lalr.NODE and not chain and getattr(f, "passes_child", False):
                kind = lalr.PASS  # (its value is its one child: the parser keeps it, no call)
            for wrapper in chain:
                f = wrapper(f)
            self.callbacks[rule] = f
            self.kinds[rule] = kind

    def _marking(self, method):
        made = self.made

        def node(children):
            made[0] = True
            return method(children)

        return node


@functools.lru_cache(maxsize=4)
def _building(start: str) -> _Building | None:
    parser = _lark(start)
    if not isinstance(parser.parser.parser.parser, lalr.FastParser) or not hasattr(parser, "_parse_tree_builder"):
        return None
    return _Building(parser)


def parse_ast(source: Source, start: str = "start"):
    """The AST of source (kokoyi/compiler/builder.py), built while parsing.

    Any error, and a parse tree deeper than MAX_DEPTH, parses again the other way (parse,
    then builder.build), which raises what it always raised, in the same order: characters,
    syntax, depth, then the first error of the builder's walk (the order of the reductions).
    """
    _check_characters(source)
    building = _building(start)
    if building is not None:
        parser = _lark(start)
        slot = parser.options.postlex
        previous, previous_source = slot.current, building.builder.source
        slot.current, building.builder.source = TexArguments(source), source
        try:
            frontend = parser.parser
            return frontend.parser.parser.parse_building(
                frontend._make_lexer_thread(source.text), frontend._verify_start(start), building.callbacks,
                building.kinds, building.reductions, building.made, MAX_DEPTH, building.chains, building.rows)
        except Exception:  # noqa: BLE001, S110 - reported by the other way below, as it always was
            pass
        finally:
            slot.current, building.builder.source = previous, previous_source
    from kokoyi.compiler.builder import build  # (here: a function-level import costs per call)

    return build(parse(source, start), source)


# How deep a parse tree may nest. The later passes and the generated Python recurse once per
# level (CPython also refuses more than 200 nested brackets), so a deeper tree would fail with
# a RecursionError or unlocated SyntaxError instead of an error at the source. Real programs
# nest 10 to 20 levels; the limit allows about 60 nested operators, or a chain of about 60
# `+` terms (a left-nested chain is as deep as it is long).
MAX_DEPTH = 64


def _check_depth(tree: Tree, source: Source) -> None:
    """Raise a located KokoyiSyntaxError where the tree nests deeper than MAX_DEPTH."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            token = _first_token(node)
            span = _span(token) if token is not None else Span(1, 1, 1, 2)
            raise KokoyiSyntaxError.at(
                source, span,
                f"this expression nests more than {MAX_DEPTH} levels deep (brackets, operators, or a very "
                f"long chain of terms): give its parts names with `\\gets`")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _first_token(node) -> Token | None:
    """The first token under node, in source order (iteratively)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Token):
            return n
        if isinstance(n, Tree):
            stack.extend(reversed([c for c in n.children if c is not None]))
    return None


def _previous(recent: list[Token], err: UnexpectedInput) -> Token | None:
    """The token handed to the parser just before the one err is about.

    The contextual lexer rejects a token the parser state cannot take before the
    post-lexer sees it, so the offending token is not always among the recent ones.
    """
    token = getattr(err, "token", None)
    pos = getattr(token, "start_pos", None)
    if pos is None:
        return recent[-1] if recent else None
    before = [t for t in recent if t.start_pos is not None and t.start_pos < pos]
    return before[-1] if before else None


# A token that is a whole operand by itself, so the message can quote it.
SIMPLE_OPERANDS = {"NAME", "GREEK"}
JUXTAPOSITION_NOTE = ("(only a number, `\\frac` or `\\sqrt` multiplies by juxtaposition; "
                      "a multi-letter name is one name)")


def _side_by_side(source: Source, span: Span, previous: Token, tok: Token) -> KokoyiSyntaxError:
    if previous.type in SIMPLE_OPERANDS and tok.type in SIMPLE_OPERANDS:
        left, right = previous.value, tok.value
        return KokoyiSyntaxError.at(
            source, span,
            f"`{left}` and `{right}` side by side: write `{left} @ {right}` for a matrix product "
            f"or `{left} * {right}` for an element-wise one {JUXTAPOSITION_NOTE}",
        )
    return KokoyiSyntaxError.at(
        source, span,
        f"two operands side by side before `{tok.value}`: write `@` between them for a matrix product "
        f"or `*` for an element-wise one {JUXTAPOSITION_NOTE}",
    )


def _syntax_error(source: Source, err: UnexpectedInput, previous: Token | None,
                  open_blocks=()) -> KokoyiSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        ch = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else ""
        span = Span(err.line, err.column, err.line, err.column + 1)
        if ch == "\\":
            following = source.text[err.pos_in_stream + 1:err.pos_in_stream + 2]
            if following and not following.isspace():
                span = Span(err.line, err.column, err.line, err.column + 2)
                return KokoyiSyntaxError.at(source, span, f"unknown command `\\{following}`")
            return KokoyiSyntaxError.at(source, span, f"a stray `\\`{_expected(err.allowed)}")
        return KokoyiSyntaxError.at(source, span, f"unexpected character {ch!r}{_expected(err.allowed)}")
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        if open_blocks:  # a block left open is reported where it was opened
            opener = open_blocks[-1]
            closer = "\\EndModule" if opener.type == "MODULE" else "\\EndFunction"
            return KokoyiSyntaxError.at(source, _span(opener), f"`{opener.value}` is never closed: expected "
                                                               f"`{closer}` before the end of the input")
        lines = source.text.rstrip().split("\n")
        line = len(lines)
        span = Span(line, len(lines[-1]) + 1, line, len(lines[-1]) + 2)
        if "END" in (err.expected or ()):
            return KokoyiSyntaxError.at(source, span, "expected `\\\\` to end the statement before the end of the input")
        return KokoyiSyntaxError.at(source, span, f"unexpected end of input{_expected(err.expected)}")
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = _span(tok)
    if tok.type in OPERAND_TERMINALS and previous is not None and previous.type in OPERAND_ENDS:
        return _side_by_side(source, span, previous, tok)
    if tok.type in ("BAR_OPEN", "NORM_OPEN") and previous is not None and previous.type == "FUNC":
        bar = tok.value
        return KokoyiSyntaxError.at(source, span, f"`{previous.value}` applied to `{bar}...{bar}` needs parentheses "
                                                  f"or braces: write `{previous.value}({bar}...{bar})`")
    if tok.type == "MISPLACED":
        return KokoyiSyntaxError.at(source, span, f"`{tok.value}` cannot stand here{_expected(err.expected)}")
    shown = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
    if "END" in err.expected and tok.type in {"RETURN", "END_MODULE", "END_FUNCTION", "NAME", "GREEK"}:
        return KokoyiSyntaxError.at(source, span, f"expected `\\\\` to end the statement before `{shown}`")
    if tok.type == "GETS":
        return KokoyiSyntaxError.at(source, span, f"unexpected `{shown}`: is the `\\\\` that ends the previous "
                                                  "statement missing?")
    return KokoyiSyntaxError.at(source, span, f"unexpected `{shown}`{_expected(err.expected)}")


def _expected(terminals) -> str:
    names = sorted({TERMINAL_TEXT.get(t, t.lower()) for t in terminals or () if t not in ("CMD", "MISPLACED")})
    if not names:
        return ""
    if len(names) > 6:
        return ""
    return "; expected " + ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]
