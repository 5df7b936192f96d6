"""lark's BasicLexer.next_token with its per-token costs cut (the contextual lexer's lexers).

Per token lark's loop calls three methods to match (`match`, the scanner property,
`Scanner.match`), builds the Token through `__new__` and a class method, and moves its line
counter with another call: about a third of the parse. `next_token` below does the same
steps inline and returns the same tokens (type, value, positions, lexer callbacks); where
nothing matches it hands over to lark's own, which raises lark's error.

`install(lark_parser)` switches the contextual lexer's lexers to it (lark 1.3's layout;
anything else is left alone).
"""
from __future__ import annotations

from lark.lexer import BasicLexer, ContextualLexer, Token

_new_str = str.__new__


class FastBasicLexer(BasicLexer):
    def next_token(self, lex_state, parser_state=None):
        line_ctr = lex_state.line_ctr
        text = lex_state.text
        whole, end = text.text, text.end
        mres = self.scanner._mres
        ignore_types, newline_types, callback = self.ignore_types, self.newline_types, self.callback
        while line_ctr.char_pos < end:
            pos = line_ctr.char_pos
            for mre in mres:
                m = mre.match(whole, pos, end)
                if m:
                    break
            else:
                return BasicLexer.next_token(self, lex_state, parser_state)  # raises lark's error
            value, type_ = m.group(0), m.lastgroup
            ignored = type_ in ignore_types
            t = None
            if not ignored or type_ in callback:
                t = _new_str(Token, value)
                t.type, t.start_pos, t.value, t.line, t.column = type_, pos, value, line_ctr.line, line_ctr.column
            # LineCounter.feed
            if type_ in newline_types:
                newlines = value.count("\n")
                if newlines:
                    line_ctr.line += newlines
                    line_ctr.line_start_pos = pos + value.rindex("\n") + 1
            line_ctr.char_pos = pos + len(value)
            line_ctr.column = line_ctr.char_pos - line_ctr.line_start_pos + 1
            if t is not None:
                t.end_line, t.end_column, t.end_pos = line_ctr.line, line_ctr.column, line_ctr.char_pos
                if type_ in callback:
                    t = callback[type_](t)
                if not ignored:
                    if not isinstance(t, Token):
                        return BasicLexer.next_token(self, lex_state, parser_state)  # (lark's LexError)
                    lex_state.last_token = t
                    return t
        raise EOFError(self)


def install(lark_parser) -> bool:
    """Use FastBasicLexer for the contextual lexer's lexers of a Lark(lexer="contextual") object."""
    lexer = getattr(getattr(getattr(lark_parser, "parser", None), "lexer", None), "lexer", None)
    if type(lexer) is not ContextualLexer or getattr(lark_parser.lexer_conf, "use_bytes", False):
        return False
    if not all(type(sub) is BasicLexer for sub in lexer.lexers.values()):
        return False
    # (pyproject allows lark 1.2, whose lexer state holds a str, not a TextSlice)
    import lark.lexer

    if not hasattr(lark.lexer, "TextSlice") or not all(hasattr(sub.scanner, "_mres") for sub in lexer.lexers.values()):
        return False
    for sub in lexer.lexers.values():
        sub.__class__ = FastBasicLexer
    return True
