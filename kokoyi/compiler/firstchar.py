"""A scanner's alternation of terminals narrowed by the character at the match position.

lark's scanner matches one regular expression, `(?P<A>...)|(?P<B>...)|...`, with every
terminal of a lexer state in its priority order; Python's `re` tries the alternatives one
by one, so a `}` is tried against each `\\command`, whitespace, comment and punctuation
pattern before its own (about 2.5 µs). `ByFirstChar` maps the character at the position to
the same alternation without the terminals that cannot start with it (same order, same
group names), compiled on first use: the first alternative that matches is the same one, so
the match is the same, value and type. A terminal whose first characters are not known
exactly (a negated or large class, an escape category, an assertion, one that may match
the empty string, flags) is kept for every character.
"""
from __future__ import annotations

import re
from re import _constants as C  # (the sre opcodes)
from re import _parser as sre_parse


def first_chars(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """The characters a match of pattern can start with, or None (any, or not known)."""
    try:
        tree = sre_parse.parse(pattern, flags)
    except Exception:  # noqa: BLE001 - not known: kept for every character
        return None
    if tree.state.flags & (re.IGNORECASE | re.VERBOSE | re.LOCALE):
        return None
    chars, nullable = _sequence(list(tree))
    return None if chars is None or nullable else frozenset(chars)


def _sequence(items) -> tuple[set | None, bool]:
    """(first characters, whether the sequence can match the empty string); None: not known."""
    out: set = set()
    for op, av in items:
        chars, nullable = _item(op, av)
        if chars is None:
            return None, False
        out |= chars
        if not nullable:
            return out, False
    return out, True


def _item(op, av) -> tuple[set | None, bool]:
    if op is C.LITERAL:
        return {chr(av)}, False
    if op is C.IN:
        out = set()
        for o, a in av:
            if o is C.LITERAL:
                out.add(chr(a))
            elif o is C.RANGE and a[1] - a[0] < 512:
                out.update(chr(c) for c in range(a[0], a[1] + 1))
            else:  # NEGATE, CATEGORY (\s, \d, \w: Unicode classes), a large range
                return None, False
        return out, False
    if op is C.SUBPATTERN:
        _group, add_flags, del_flags, p = av
        return (None, False) if add_flags or del_flags else _sequence(list(p))
    if op is C.ATOMIC_GROUP:
        return _sequence(list(av))
    if op is C.BRANCH:
        out, nullable = set(), False
        for alternative in av[1]:
            chars, empty = _sequence(list(alternative))
            if chars is None:
                return None, False
            out |= chars
            nullable = nullable or empty
        return out, nullable
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        low, _high, p = av
        chars, nullable = _sequence(list(p))
        return (None, False) if chars is None else (chars, nullable or low == 0)
    return None, False  # ANY, NOT_LITERAL, AT, ASSERT, ASSERT_NOT, GROUPREF, ...


def _never(text, pos=0, end=None):
    return None


class ByFirstChar(dict):
    """character -> the `match` of the scanner's alternation narrowed to that character."""

    def __init__(self, terminals, flags: int, compile_re=re.compile) -> None:
        super().__init__()
        self._flags, self._compile = flags, compile_re
        self._terminals = [(t.name, t.pattern.to_regexp()) for t in terminals]
        self._firsts = [first_chars(regexp, flags) for _name, regexp in self._terminals]
        self._by_names: dict = {}  # the kept terminals' names -> match (characters share them)

    def __missing__(self, char: str):
        kept = tuple(i for i, firsts in enumerate(self._firsts) if firsts is None or char in firsts)
        match = self._by_names.get(kept)
        if match is None:
            if kept:
                pattern = "|".join("(?P<{}>{})".format(*self._terminals[i]) for i in kept)
                match = self._compile(pattern, self._flags).match
            else:  # no terminal starts with it: no match (the caller's error path)
                match = _never
            self._by_names[kept] = match
        self[char] = match
        return match


def by_first_char(scanner) -> ByFirstChar | None:
    """The scanner's ByFirstChar, where its terminals fit one regular expression (else None)."""
    if getattr(scanner, "use_bytes", False) or len(getattr(scanner, "_mres", ())) != 1:
        return None
    return ByFirstChar(scanner.terminals, scanner.g_regex_flags, scanner.re_.compile)
