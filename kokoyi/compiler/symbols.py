"""What a name refers to: the Symbol that name resolution attaches to every use."""
from __future__ import annotations

from dataclasses import dataclass, field

from kokoyi.errors import Span

# Kinds of symbol.
INPUT, PARAM, ARG, LOCAL, INDEX, DIM = "input", "param", "arg", "local", "index", "dim"
FUNCTION, MODULE, CONSTANT = "function", "module", "constant"
BUILTIN_CONSTANT = "builtin_constant"


@dataclass(eq=False)
class Symbol:
    """One defined name. Compared by identity: two scopes may both define `x`."""

    key: str  # canonical spelling
    kind: str
    hint: str  # readable identifier fragment
    span: Span | None = None  # where it is defined (None for earlier units and built-ins)
    filename: str | None = None
    arity: int | None = None  # functions: number of arguments
    is_function: bool = False  # callable value (function, module, function-valued local)
    rank: int | None = None  # per-sample rank, when known
    integer: bool = False  # annotated \mathbb{Z} or \mathbb{N}, or an index/dimension
    global_name: str | None = None  # Python name of a top-level definition
    builtin: str | None = None  # function-valued local bound to a built-in
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Symbol({self.kind} {self.key!r}" + (f" rank={self.rank}" if self.rank is not None else "") + ")"

    def where(self) -> str:
        if self.span is None:
            return "an earlier unit"
        return f"{self.filename or '<kokoyi>'}:{self.span.line}:{self.span.column}"
