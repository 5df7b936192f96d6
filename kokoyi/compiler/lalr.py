"""lark's LALR(1) driver loop, with the rule lookups made cheap.

lark's `ParserState.feed_token` finds each reduction's callback with `callbacks[rule]`. The
rules in a parse table loaded from lark's cache are copies of the callbacks' keys, so every
lookup runs `Rule.__hash__` and `Rule.__eq__` (which compares the rule's symbols one by
one) in Python: a third of the parser's time. This driver does the same steps and raises
the same errors, but looks up each table rule's (size, callback, name) by identity, once
per rule, and then from a dict keyed by `id`.

`install(lark_parser)` swaps it into a `Lark(parser="lalr")` object; everything else (the
contextual lexer, the post-lexer, error recovery, interactive parsing) is lark's own.
"""
from __future__ import annotations

from lark.exceptions import UnexpectedToken
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_parser import _Parser
from lark.parsers.lalr_parser_state import ParseConf, ParserState


class FastParserState(ParserState):
    """A ParserState whose feed_token finds reductions by rule identity."""

    __slots__ = ("reductions",)

    def __init__(self, parse_conf, lexer, state_stack=None, value_stack=None, reductions=None):
        super().__init__(parse_conf, lexer, state_stack, value_stack)
        self.reductions = {} if reductions is None else reductions  # id(rule) -> (size, callback, origin)

    def copy(self, deepcopy_values=True):
        state = super().copy(deepcopy_values)
        state.reductions = self.reductions
        return state

    def _reduction(self, rule):
        callbacks = self.parse_conf.callbacks
        callback = callbacks[rule] if callbacks else list  # lark: no callbacks, the children themselves
        entry = (len(rule.expansion), callback, rule.origin.name, rule)  # the entry keeps the rule (and its id) alive
        self.reductions[id(rule)] = entry
        return entry

    def feed_token(self, token, is_end=False):
        state_stack = self.state_stack
        value_stack = self.value_stack
        conf = self.parse_conf
        states = conf.states
        end_state = conf.end_state
        reductions = self.reductions
        kind = token.type
        while True:
            state = state_stack[-1]
            try:
                action, arg = states[state][kind]
            except KeyError:
                expected = {s for s in states[state] if s.isupper()}
                raise UnexpectedToken(token, expected, state=self, interactive_parser=None) from None
            if action is Shift:
                assert not is_end
                state_stack.append(arg)
                callbacks = conf.callbacks
                value_stack.append(token if kind not in callbacks else callbacks[kind](token))
                return None
            size, callback, origin, _ = reductions.get(id(arg)) or self._reduction(arg)
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value = callback(children)
            _action, new_state = states[state_stack[-1]][origin]
            state_stack.append(new_state)
            value_stack.append(value)
            if is_end and new_state == end_state:
                return value


class FastParser(_Parser):
    """lark's _Parser, starting each parse with a FastParserState (one rule table per parser)."""

    def __init__(self, parse_table, callbacks, debug=False):
        super().__init__(parse_table, callbacks, debug)
        self.reductions: dict = {}

    def parse(self, lexer, start, value_stack=None, state_stack=None, start_interactive=False):
        if start_interactive:
            return super().parse(lexer, start, value_stack, state_stack, start_interactive)
        conf = ParseConf(self.parse_table, self.callbacks, start)
        return self.parse_from_state(FastParserState(conf, lexer, state_stack, value_stack, self.reductions))


def install(lark_parser) -> bool:
    """Use FastParser in a Lark(parser="lalr") object; False (lark's own kept) if its layout differs."""
    lalr = getattr(getattr(lark_parser, "parser", None), "parser", None)
    inner = getattr(lalr, "parser", None)
    if type(inner) is not _Parser:
        return False
    lalr.parser = FastParser(inner.parse_table, inner.callbacks, inner.debug)
    return True
