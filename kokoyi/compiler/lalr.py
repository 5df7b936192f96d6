"""lark's LALR(1) driver loop, with the rule lookups made cheap.

lark's `ParserState.feed_token` finds each reduction's callback with `callbacks[rule]`. The
rules in a parse table loaded from lark's cache are copies of the callbacks' keys, so every
lookup runs `Rule.__hash__` and `Rule.__eq__` (which compares the rule's symbols one by
one) in Python: a third of the parser's time. This driver does the same steps and raises
the same errors, but looks up each table rule's (size, callback, name) by identity, once
per rule, and then from a dict keyed by `id`.

`install(lark_parser)` swaps it into a `Lark(parser="lalr")` object; everything else (the
contextual lexer, the post-lexer, error recovery, interactive parsing) is lark's own.

`FastParser.parse_building` runs the loop with other callbacks (kokoyi/compiler/parser.py
passes the AST builder's methods, so no parse tree is made) and keeps, next to each value,
the depth the parse tree would have under it.
"""
from __future__ import annotations

from lark.exceptions import UnexpectedToken
from lark.lexer import Token
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_parser import _Parser
from lark.parsers.lalr_parser_state import ParseConf, ParserState

# How a rule's reduction adds to the parse tree's depth: it makes a node; it makes none (an
# inlined `_rule`, whose children join its parent's); it makes one unless it has one child
# (`?rule`: lark's ExpandSingleChild; the callback then sets `made[0]`); or it hands its one
# child on unchanged (a `?rule` of one symbol that lark's tree builder keeps: a unit rule); or
# it makes a node of one child whose value is that child (PASS: a rule of one symbol whose
# callback returns its child, as kinds says; the callback is not called).
NODE, INLINED, MAYBE, UNIT, PASS = 1, 0, 2, 3, 4


class TooDeep(Exception):
    """The parse tree would nest deeper than the limit parse_building was given."""


class FastParserState(ParserState):
    """A ParserState whose feed_token finds reductions by rule identity, hands a unit rule's
    child on without calling its callback (about a third of the reductions), and keeps next
    to each value the depth of the parse tree under it (when `kinds` says how rules add to it)."""

    __slots__ = ("reductions", "chains", "depths", "kinds", "made", "limit", "building", "rows")

    def __init__(self, parse_conf, lexer, state_stack=None, value_stack=None, reductions=None,
                 kinds=None, made=None, limit=None, chains=None, rows=None):
        super().__init__(parse_conf, lexer, state_stack, value_stack)
        self.reductions = {} if reductions is None else reductions  # id(rule) -> (size, callback, origin, kind, rule)
        # (state below, state, token type) -> the state after the unit rules that token reduces there
        self.chains = {} if chains is None else chains
        # state -> {token type: (Shift, next state) or (Reduce, the rule's reductions entry)}, made
        # per state on first use (feed_all: no rule lookup per reduction); kept with reductions
        self.rows = {} if rows is None else rows
        self.depths = [0] * len(self.value_stack)
        self.kinds, self.made = kinds, made if made is not None else [False]
        self.limit = float("inf") if limit is None else limit
        # parse_building: errors are reported by parsing again, so the lexer need not keep its
        # line counter up to date per token (fastlex.FastContextualLexer.lex)
        self.building = False

    def copy(self, deepcopy_values=True):
        state = super().copy(deepcopy_values)
        state.reductions, state.chains, state.depths = self.reductions, self.chains, list(self.depths)
        state.rows = self.rows
        state.kinds, state.made, state.limit, state.building = self.kinds, self.made, self.limit, self.building
        return state

    def _reduction(self, rule):
        callbacks = self.parse_conf.callbacks
        callback = callbacks[rule] if callbacks else list  # lark: no callbacks, the children themselves
        size = len(rule.expansion)
        if size == 1 and type(callback) is ExpandSingleChild:  # (no child filter: the child is kept)
            kind = UNIT
        else:
            kind = NODE if self.kinds is None else self.kinds[rule]
            if kind is PASS and size != 1:
                kind = NODE
        entry = (size, callback, rule.origin.name, kind, rule)  # the entry keeps the rule (and its id) alive
        self.reductions[id(rule)] = entry
        return entry

    def _chain(self, below, state, kind):
        """The state a token of type `kind` leaves on top of `below` after the unit rules it
        reduces from `state` one after another (each replaces the top state by its goto from
        `below`; a unit rule's value is its child, so the value stack does not change)."""
        start, states, reductions = state, self.parse_conf.states, self.reductions
        while True:
            action, arg = states[state].get(kind, (Shift, None))  # (no action: the loop raises there)
            if action is Shift:
                break
            entry = reductions.get(id(arg)) or self._reduction(arg)
            if entry[3] is not UNIT:
                break
            state = states[below][entry[2]][1]
        self.chains[below, start, kind] = state
        return state

    def _action(self, state, kind, token):
        """rows[state][kind], making the state's row first where it is missing; lark's
        UnexpectedToken where the state has no action for the token."""
        row = self.rows.get(state)
        if row is None:
            reductions = self.reductions
            row = self.rows[state] = {
                k: (action, arg) if action is Shift else (action, reductions.get(id(arg)) or self._reduction(arg))
                for k, (action, arg) in self.parse_conf.states[state].items()}
        if kind not in row:
            expected = {s for s in self.parse_conf.states[state] if s.isupper()}
            raise UnexpectedToken(token, expected, state=self, interactive_parser=None) from None
        return row[kind]

    def feed_token(self, token, is_end=False):
        state_stack = self.state_stack
        value_stack = self.value_stack
        depths = self.depths
        conf = self.parse_conf
        states = conf.states
        end_state = conf.end_state
        reductions = self.reductions
        chains = self.chains
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
                depths.append(0)
                return None
            size, callback, origin, node, _ = reductions.get(id(arg)) or self._reduction(arg)
            if node is UNIT:  # the child stays where it is, as the rule's value
                if is_end:
                    new_state = state_stack[-1] = states[state_stack[-2]][origin][1]
                    if new_state == end_state:
                        return value_stack[-1]
                else:  # the whole chain of unit rules at once (about 2/3 of the reductions)
                    below = state_stack[-2]
                    top = chains.get((below, state, kind))
                    state_stack[-1] = self._chain(below, state, kind) if top is None else top
                continue
            if node is PASS:  # the child stays as the value, one level deeper
                depth = depths[-1] = depths[-1] + 1
                if depth > self.limit:
                    raise TooDeep(depth)
                new_state = state_stack[-1] = states[state_stack[-2]][origin][1]
                if is_end and new_state == end_state:
                    return value_stack[-1]
                continue
            if size:
                children = value_stack[-size:]
                depth = max(depths[-size:]) if size > 1 else depths[-1]
                del state_stack[-size:]
                del value_stack[-size:]
                del depths[-size:]
            else:
                children = []
                depth = 0
            if node is NODE:
                depth += 1
                value = callback(children)
            elif node is MAYBE:
                made = self.made
                made[0] = False
                value = callback(children)
                if made[0]:
                    depth += 1
            else:
                value = callback(children)
            if depth > self.limit:
                raise TooDeep(depth)
            _action, new_state = states[state_stack[-1]][origin]
            state_stack.append(new_state)
            value_stack.append(value)
            depths.append(depth)
            if is_end and new_state == end_state:
                return value


    def feed_all(self, tokens):
        """feed_token(token) for each token of the stream, in one loop (no call and no setup per
        token; about 1 in 3 tokens only shifts); returns the last token (None: there was none).
        The end token is left to feed_token, which returns the parse's value."""
        state_stack = self.state_stack
        value_stack = self.value_stack
        depths = self.depths
        conf = self.parse_conf
        states = conf.states
        token_callbacks = conf.callbacks
        rows = self.rows
        chains = self.chains
        made = self.made
        limit = self.limit
        token = None
        for token in tokens:
            kind = token.type
            while True:
                state = state_stack[-1]
                try:
                    action, arg = rows[state][kind]
                except KeyError:
                    action, arg = self._action(state, kind, token)
                if action is Shift:
                    state_stack.append(arg)
                    value_stack.append(token if kind not in token_callbacks else token_callbacks[kind](token))
                    depths.append(0)
                    break
                size, callback, origin, node, _ = arg  # (the rule's entry: see _action)
                if node is UNIT:  # the whole chain of unit rules at once, as in feed_token
                    below = state_stack[-2]
                    top = chains.get((below, state, kind))
                    state_stack[-1] = self._chain(below, state, kind) if top is None else top
                    continue
                if node is PASS:  # (as in feed_token)
                    depth = depths[-1] = depths[-1] + 1
                    if depth > limit:
                        raise TooDeep(depth)
                    state_stack[-1] = states[state_stack[-2]][origin][1]
                    continue
                if size:
                    children = value_stack[-size:]
                    depth = max(depths[-size:]) if size > 1 else depths[-1]
                    del state_stack[-size:]
                    del value_stack[-size:]
                    del depths[-size:]
                else:
                    children = []
                    depth = 0
                if node is NODE:
                    depth += 1
                    value = callback(children)
                elif node is MAYBE:
                    made[0] = False
                    value = callback(children)
                    if made[0]:
                        depth += 1
                else:
                    value = callback(children)
                if depth > limit:
                    raise TooDeep(depth)
                state_stack.append(states[state_stack[-1]][origin][1])
                value_stack.append(value)
                depths.append(depth)
        return token


class FastParser(_Parser):
    """lark's _Parser, starting each parse with a FastParserState (one rule table per parser)."""

    def __init__(self, parse_table, callbacks, debug=False):
        super().__init__(parse_table, callbacks, debug)
        self.reductions: dict = {}
        self.chains: dict = {}
        self.rows: dict = {}

    def parse(self, lexer, start, value_stack=None, state_stack=None, start_interactive=False):
        if start_interactive:
            return super().parse(lexer, start, value_stack, state_stack, start_interactive)
        conf = ParseConf(self.parse_table, self.callbacks, start)
        return self.parse_from_state(FastParserState(conf, lexer, state_stack, value_stack, self.reductions,
                                                     chains=self.chains, rows=self.rows))

    def parse_building(self, lexer, start, callbacks, kinds, reductions, made, limit, chains=None, rows=None):
        """The value the start rule's callback returns, parsing with `callbacks` (rule -> function
        of the children, after lark's child filters) instead of the tree builder's. kinds: rule
        -> NODE, INLINED or MAYBE (MAYBE callbacks set made[0] when they make a node);
        reductions, chains and rows: dicts kept between calls with the same callbacks. Raises TooDeep where the
        parse tree would nest more than `limit` levels, and lark's errors."""
        conf = ParseConf(self.parse_table, callbacks, start)
        state = FastParserState(conf, lexer, None, None, reductions, kinds, made, limit, chains, rows)
        state.building = True
        # (lark's parse_from_state, with the token loop in feed_all: the same steps and errors;
        # an error leaves no interactive parser on the exception, which parse_ast never reads)
        last = state.feed_all(lexer.lex(state))
        end = Token.new_borrow_pos("$END", "", last) if last else Token("$END", "", 0, 1, 1)
        return state.feed_token(end, True)


def install(lark_parser) -> bool:
    """Use FastParser in a Lark(parser="lalr") object; False (lark's own kept) if its layout differs."""
    lalr = getattr(getattr(lark_parser, "parser", None), "parser", None)
    inner = getattr(lalr, "parser", None)
    if type(inner) is not _Parser:
        return False
    lalr.parser = FastParser(inner.parse_table, inner.callbacks, inner.debug)
    return True
