"""Errors raised by the compiler and by compiled code.

Every compile error carries the file name, 1-based line and column, and prints as::

    policy.kyi:3:3: expected `\\\\` to end the statement
      3 |   \\Return a \\\\
        |   ^
"""
from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass


# Characters a caret line would misalign or break: shown as one space each.
_BLANKED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters an error's first line shows escaped.
_ESCAPED = frozenset({"Cc", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class Span:
    """A source range: 1-based lines and columns, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __init__(self, line: int, column: int, end_line: int, end_column: int) -> None:
        # (dataclass keeps this __init__: the frozen one sets each field through
        # object.__setattr__, and the parser makes a few spans per token)
        fields = self.__dict__
        fields["line"], fields["column"], fields["end_line"], fields["end_column"] = line, column, end_line, end_column

    def to(self, other: Span) -> Span:
        """The span from the start of self to the end of other."""
        return Span(self.line, self.column, other.end_line, other.end_column)


@dataclass(frozen=True)
class Source:
    """A unit's text and the name errors give it.

    Line breaks are `\\n`, `\\r\\n` or a lone `\\r`; the text is kept with `\\n` only, so the
    parser, error positions and the lines errors show all count lines the same way. A
    leading byte order mark (U+FEFF) is dropped, as editors do not show it as a column.

    The filename is only ever shown (in messages and generated code), so it is kept as
    text that can always be encoded and compiled: a path-like or bytes name is decoded as
    the OS does, and lone surrogates (undecodable bytes of a file name) and NUL (which no
    file name holds) become `\\udcXX` and `\\x00` escapes.
    """

    text: str
    filename: str = "<kokoyi>"

    def __post_init__(self) -> None:
        if self.text.startswith("\ufeff"):  # a byte order mark, as Windows editors write: not text
            object.__setattr__(self, "text", self.text[1:])
        if "\r" in self.text:
            object.__setattr__(self, "text", self.text.replace("\r\n", "\n").replace("\r", "\n"))
        name = self.filename
        if isinstance(name, (bytes, os.PathLike)):
            name = os.fsdecode(name)
        if isinstance(name, str) and (_SURROGATE.search(name) or "\x00" in name):
            name = name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
        if name is not self.filename:
            object.__setattr__(self, "filename", name)

    def lines(self) -> list[str]:
        return list(self._lines)

    @functools.cached_property
    def _lines(self) -> tuple[str, ...]:
        # Split once: code generation asks for a line per statement (was quadratic in the
        # length of the source).
        return tuple(self.text.split("\n"))

    def line_text(self, line: int) -> str:
        lines = self._lines
        return lines[line - 1] if 1 <= line <= len(lines) else ""


class KokoyiError(Exception):
    """Base class of every error kokoyi raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
        width: int = 1,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line
        self.width = max(1, width)
        self.notes = tuple(notes)
        self.span: Span | None = None if line is None else Span(line, column, line, column + self.width)
        super().__init__(self._render())

    @classmethod
    def at(cls, source: Source, span: Span, message: str, notes: tuple[str, ...] = ()) -> KokoyiError:
        """An error located at span in source."""
        width = span.end_column - span.column if span.end_line == span.line else 1
        err = cls(
            message,
            filename=source.filename,
            line=span.line,
            column=span.column,
            source_line=source.line_text(span.line),
            width=width,
            notes=notes,
        )
        err.span = span  # the whole range, for editors (`kyic check --format json`, `kyic lsp`)
        return err

    def _render(self) -> str:
        if self.line is None:
            head = f"{_shown(self.filename, '')}: {_shown(self.message)}" if self.filename else _shown(self.message)
            return "\n".join((head, *self.notes))
        head = f"{_shown(self.filename or '<kokoyi>', '')}:{self.line}:{self.column}: {_shown(self.message)}"
        parts = [head]
        if self.source_line is not None:
            gutter = f"{self.line:>4} | "
            # one character per column: tabs and other control characters show as a space
            text = "".join(" " if unicodedata.category(c) in _BLANKED else c for c in self.source_line)
            parts.append(gutter + text)
            caret_width = min(self.width, max(1, len(text) - self.column + 1))
            parts.append(" " * (len(gutter) - 2) + "| " + " " * (self.column - 1) + "^" * caret_width)
        parts.extend(self.notes)
        return "\n".join(parts)

    def __reduce__(self):  # keep errors picklable across processes (pytest-xdist, nbclient)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _shown(text, keep: str = "\t\n") -> str:
    """text with control characters, line separators and lone surrogates escaped (`\\x1b`),
    so that a hostile file name or token cannot break, fake or recolour the lines an error
    prints. The characters in keep stay (a message may have several lines; a file name not)."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in keep or unicodedata.category(ch) not in _ESCAPED:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _rebuild(cls, message, state):
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class KokoyiSyntaxError(KokoyiError):
    """The text is not Kokoyi: a bad token, a missing `\\\\`, an unknown command."""


class KokoyiNameError(KokoyiError):
    """A name is undefined, defined twice, or used in its own definition."""


class KokoyiTypeError(KokoyiError):
    """Ranks, shapes, argument counts or batch levels that do not fit."""


class KokoyiUnsupportedError(KokoyiError):
    """A construct of the language that the back end in use does not compile yet."""


class KokoyiRuntimeError(KokoyiError):
    """An error raised while compiled code runs, located at its `.kyi` line."""
