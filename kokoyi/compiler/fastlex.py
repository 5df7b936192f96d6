"""lark's contextual lexer with its per-token costs cut.

Per token lark's `ContextualLexer.lex` reads the parser's state through a property, calls
the state's `BasicLexer.next_token`, which calls three methods to match (`match`, the
scanner property, `Scanner.match`), builds the Token through `__new__` and a class method,
and moves its line counter with another call: about a third of the parse. `lex` below
does the same steps in one loop, with each parser state's regular expressions, ignored and
newline types and callbacks looked up once per state, and yields the same tokens (type,
value, positions, lexer callbacks). Where nothing matches it hands over to lark's own
`lex`, which raises lark's errors from the same position.

`install(lark_parser)` switches a Lark(lexer="contextual") object's lexer to it (lark 1.3's
layout; anything else is left alone).
"""
from __future__ import annotations

from lark.exceptions import LexError
from lark.lexer import BasicLexer, ContextualLexer, Token

from kokoyi.compiler.firstchar import ByFirstChar, by_first_char

_new_str = str.__new__


class FastContextualLexer(ContextualLexer):
    # parser state -> (matchers, ignored types, newline types, callbacks); matchers: a
    # ByFirstChar (character -> its narrowed regular expression's match) or lark's regexps
    _tables: dict | None = None

    def _build_tables(self) -> dict:
        per_lexer = {}
        for sub in self.lexers.values():
            if id(sub) not in per_lexer:
                scanner = sub.scanner  # (builds the callbacks too)
                matchers = by_first_char(scanner)
                if matchers is None:  # (not `or`: a ByFirstChar is an empty dict until its first match)
                    matchers = scanner._mres
                per_lexer[id(sub)] = (matchers, sub.ignore_types, sub.newline_types, sub.callback)
        self._tables = {state: per_lexer[id(sub)] for state, sub in self.lexers.items()}
        return self._tables

    def lex(self, lexer_state, parser_state):
        tables = self._tables or self._build_tables()
        line_ctr = lexer_state.line_ctr
        text = lexer_state.text
        whole, end = text.text, text.end
        stack = parser_state.state_stack  # (lark's parser_state.position is its last item)
        # The line counter's fields as locals, written back before each token is handed on (and
        # before lark's lexer takes over), so whoever reads it then sees what lark's would hold;
        # except in parse_building (parser.parse_ast), whose errors are reported by parsing again:
        # there they are written back only where lark's lexer takes over, and at the end.
        every_token = not getattr(parser_state, "building", False)
        pos, line, column, line_start = line_ctr.char_pos, line_ctr.line, line_ctr.column, line_ctr.line_start_pos
        t = lexer_state.last_token
        while pos < end:
            mres, ignore_types, newline_types, callback = tables[stack[-1]]
            if mres.__class__ is ByFirstChar:
                m = mres[whole[pos]](whole, pos, end)
            else:
                for mre in mres:
                    m = mre.match(whole, pos, end)
                    if m:
                        break
            if not m:  # nothing matches here: lark's own lexer raises its error (or the parser's)
                lexer_state.last_token = t
                line_ctr.char_pos, line_ctr.line, line_ctr.column, line_ctr.line_start_pos = pos, line, column, line_start
                yield from ContextualLexer.lex(self, lexer_state, parser_state)
                return
            value, type_ = m.group(0), m.lastgroup
            start, start_line, start_column = pos, line, column
            # LineCounter.feed
            if type_ in newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            column = pos - line_start + 1
            ignored = type_ in ignore_types
            if ignored and type_ not in callback:
                continue
            token = _new_str(Token, value)
            token.type, token.start_pos, token.value, token.line, token.column = type_, start, value, start_line, start_column
            token.end_line, token.end_column, token.end_pos = line, column, pos
            if type_ in callback:
                token = callback[type_](token)
            if not ignored:
                if not isinstance(token, Token):
                    raise LexError("Callbacks must return a token (returned %r)" % token)
                t = token
                if every_token:
                    lexer_state.last_token = t
                    line_ctr.char_pos, line_ctr.line, line_ctr.column, line_ctr.line_start_pos = (
                        pos, line, column, line_start)
                yield t
        lexer_state.last_token = t
        line_ctr.char_pos, line_ctr.line, line_ctr.column, line_ctr.line_start_pos = pos, line, column, line_start


def retyped(kind: str, token: Token) -> Token:
    """Token.new_borrow_pos(kind, token.value, token): the same token, without lark's
    class method, keyword-argument check and second class method per call."""
    t = _new_str(Token, token.value)
    t.type, t.start_pos, t.value, t.line, t.column = kind, token.start_pos, token.value, token.line, token.column
    t.end_line, t.end_column, t.end_pos = token.end_line, token.end_column, token.end_pos
    return t


def install(lark_parser) -> bool:
    """Use FastContextualLexer as the lexer of a Lark(lexer="contextual") object."""
    lexer = getattr(getattr(getattr(lark_parser, "parser", None), "lexer", None), "lexer", None)
    if type(lexer) is not ContextualLexer or getattr(lark_parser.lexer_conf, "use_bytes", False):
        return False
    if not all(type(sub) is BasicLexer for sub in lexer.lexers.values()):
        return False
    # (pyproject allows lark 1.2, whose lexer state holds a str, not a TextSlice)
    import lark.lexer

    if not hasattr(lark.lexer, "TextSlice") or not all(hasattr(sub.scanner, "_mres") for sub in lexer.lexers.values()):
        return False
    lexer.__class__ = FastContextualLexer
    return True
