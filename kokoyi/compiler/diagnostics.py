"""Kokoyi errors as editor diagnostics: `kyic check --format json` and `kyic lsp` share this."""
from __future__ import annotations

from kokoyi.errors import KokoyiError, KokoyiNameError, KokoyiRuntimeError, KokoyiSyntaxError, KokoyiTypeError

# A short, stable code per error class (most specific first: they are subclasses of KokoyiError).
CODES = (
    (KokoyiSyntaxError, "syntax"),
    (KokoyiNameError, "name"),
    (KokoyiTypeError, "type"),
    (KokoyiRuntimeError, "runtime"),
    (KokoyiError, "error"),
)


def error_code(err: KokoyiError) -> str:
    return next(code for cls, code in CODES if isinstance(err, cls))


def diagnostic(err: KokoyiError, file: str) -> dict:
    """One diagnostic: 1-based `line`/`column`, end exclusive; positions are None when unknown.

    `message` is the error's first line without its location, notes (such as "first
    defined at ...") follow on later lines.
    """
    span = err.span
    return {
        "file": file,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "end_line": span.end_line if span else None,
        "end_column": span.end_column if span else None,
        "severity": "error",
        "message": "\n".join((err.message, *err.notes)),
        "code": error_code(err),
    }
