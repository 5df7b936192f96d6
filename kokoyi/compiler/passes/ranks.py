"""Per-sample rank inference, and the rank errors it can prove at compile time.

Ranks come from annotations (`x \\in \\mathbb{R}^{T \\times d}` has rank 2), literals,
indices and dimensions (rank 0), built-ins and set-builders. Unannotated inputs have an
unknown rank (None) that the call decides; anything computed from an unknown rank is
unknown too, and is checked at run time instead. Symbol.rank records the result for later
passes (the code generator picks `x.shape[0]` or `abs` for `|x|` when it is known).
"""
from __future__ import annotations

from kokoyi.compiler import ast as A
from kokoyi.compiler import builtins as B
from kokoyi.errors import KokoyiTypeError, Source


class RankInference:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.ranks: dict[int, int | None] = {}
        self.inverses: set[int] = set()  # ids of `A^{-1}` whose A has per-sample rank >= 2
        self.recurrences: list = []  # the elements of the recurrences met since the last item

    def error(self, node: A.Node, message: str) -> KokoyiTypeError:
        return KokoyiTypeError.at(self.source, node.span, message)

    def program(self, prog: A.Program) -> None:
        for item in prog.items:
            match item:
                case A.Module() | A.Function():
                    for stmt in item.body:
                        self.statement(stmt)
                case A.Definition():
                    self.statement(item)
            self.recurrence_elements_again()

    def recurrence_elements_again(self) -> None:
        """Infer the recurrences' elements again, now that their ranks (and those of the other
        members of their groups) are known: what reads earlier elements had an unknown rank the
        first time, where later passes know it (`(I + h_{t-1} J)^{-1}` is a matrix to invert)."""
        for element in self.recurrences:
            for n in A.walk(element):
                self.ranks.pop(id(n), None)
            self.rank(element)
        self.recurrences.clear()

    def statement(self, stmt) -> None:
        for b in stmt.where:
            self.statement(b)
        if isinstance(stmt, A.Return):
            for v in stmt.values:
                self.rank(v)
            return
        if stmt.params is not None:
            self.rank(stmt.value)
            return
        sym = stmt.target.symbol
        if sym.extra.get("recurrence") or "group" in sym.extra:
            builder = A.strip(stmt.value)
            # The element's rank may depend on earlier elements; base cases decide it.
            sym.rank = None
            element = self.rank(builder.element)
            sym.rank = None if element is None else element + 1
            self.recurrences.append(builder.element)
            return
        r = self.rank(stmt.value)
        if not sym.is_function:
            sym.rank = r

    def rank(self, e) -> int | None:
        key = id(e)
        if key not in self.ranks:
            self.ranks[key] = self._rank(e)
        return self.ranks[key]

    def _all(self, *es):
        ranks = [self.rank(x) for x in es]
        return None if any(r is None for r in ranks) else max(ranks, default=0)

    def _rank(self, e) -> int | None:
        match e:
            case A.Num() | A.Constant():
                return 0
            case A.Bars() | A.Norm():
                self.rank(e.operand)
                return 0
            case A.Indicator():
                return self.rank(e.condition)
            case A.Ref():
                return None if e.symbol.is_function else e.symbol.rank
            case A.Paren() | A.Group():
                return self.rank(e.expr)
            case A.Unary() | A.Rounding() | A.Transpose():
                return self.rank(e.operand)
            case A.Binary(op="@"):
                return self.matmul(e)
            case A.Binary() | A.Compare() | A.Juxtapose():
                return self._all(e.left, e.right)
            case A.Power():
                rank = self._all(e.base, e.exponent)
                base = self.rank(e.base)
                if base is not None and base >= 2 and is_minus_one(e.exponent):
                    self.inverses.add(id(e))  # A^{-1} of a matrix: the inverse (LANGUAGE.md section 6)
                    return base
                return rank
            case A.Inverse():
                return self.rank(e.operand)
            case A.LogBase():
                return self._all(e.base, e.operand)
            case A.Matrix():
                return self.matrix(e)
            case A.Frac():
                return self._all(e.numerator, e.denominator)
            case A.Sqrt():
                if e.degree is not None:
                    self.rank(e.degree)
                return self.rank(e.radicand)
            case A.Index():
                return self.index(e)
            case A.Slice():
                return self._all(*(x for x in (e.start, e.stop) if x is not None))
            case A.Call():
                self.rank(e.func)
                for a in e.args:
                    self.rank(a)
                return None
            case A.Builtin():
                return None
            case A.BuiltinCall():
                return self.builtin_call(e)
            case A.Reduce():
                ranks = [self.rank(a) for a in e.args]
                if len(ranks) == 1:
                    return 0
                return None if None in ranks else max(ranks)
            case A.BigOp():
                self._all(e.bound.lower, e.bound.upper)
                body = self.rank(e.body)
                return 0 if e.op in ("argmax", "argmin") else body
            case A.SetBuilder():
                for b in e.bounds:
                    self._all(b.lower, b.upper)
                element = self.rank(e.element)
                return None if element is None else element + len(e.bounds)
            case A.Cases():
                ranks = []
                for row in e.rows:
                    ranks.append(self.rank(row.value))
                    if row.condition is not None:
                        ranks.append(self.rank(row.condition))
                return None if None in ranks else max(ranks)
        raise TypeError(f"no rank rule for {type(e).__name__}")

    def need_matrix(self, e: A.BuiltinCall, rank: int | None) -> None:
        if rank is not None and rank < 2:
            word = "\\det" if e.name == "det" else "\\operatorname{tr}"
            raise self.error(e, f"`{word}` works on the last two axes of a matrix, but its argument has rank {rank}")

    def matrix(self, e: A.Matrix) -> int | None:
        """r rows of c entries: an r x c matrix, a vector when r or c is 1; entries add their axes after."""
        width = max(len(row.entries) for row in e.rows)
        for i, row in enumerate(e.rows):
            if len(row.entries) < width:
                longest = next(j for j, r in enumerate(e.rows) if len(r.entries) == width)
                raise self.error(row, f"row {i + 1} of this matrix has {len(row.entries)} "
                                      f"entr{'y' if len(row.entries) == 1 else 'ies'}, but row {longest + 1} has "
                                      f"{width}: every row needs the same number of entries")
        entries = self._all(*(x for row in e.rows for x in row.entries))
        axes = 1 if len(e.rows) == 1 or width == 1 else 2
        return None if entries is None else entries + axes

    def matmul(self, e: A.Binary) -> int | None:
        left, right = self.rank(e.left), self.rank(e.right)
        if is_cdot(e) and 0 in (left, right):  # `a \cdot b` with a scalar: the ordinary product
            return None if None in (left, right) else max(left, right)
        for side, r in ((e.left, left), (e.right, right)):
            if r == 0:
                raise self.error(side, "`@` (matrix product) needs vectors or matrices, not a scalar; "
                                       "use `*` to scale")
        if left is None or right is None:
            return None
        if left == 1 and right == 1:
            return 0
        if left == 1 or right == 1:
            return max(left, right) - 1
        return max(left, right)

    def index(self, e: A.Index) -> int | None:
        target = self.rank(e.target)
        ranks = [self.rank(item) for item in e.items]
        used = len(e.items)  # every index and every slice takes one axis
        if target is not None and used > target:
            raise self.error(e, f"indexed with {used} {'index' if used == 1 else 'indices'} but the value "
                                f"has rank {target}")
        removed, added = 0, 0
        for item, r in zip(e.items, ranks):
            if isinstance(item, A.Slice):
                continue
            removed += 1
            if r is None:
                return None
            added += r
        if target is None:
            return None
        return target - removed + added

    def builtin_call(self, e: A.BuiltinCall) -> int | None:
        fn = B.FUNCTIONS[e.name]
        ranks = [self.rank(a) for a in e.args]
        if fn.rank == "scalar":
            return 0
        if fn.rank == "same":
            if e.name in ("Softmax", "LogSoftmax") and ranks[0] == 0:
                raise self.error(e, f"`\\{e.name}` works along the last axis, but its argument is a scalar")
            return ranks[0]
        if fn.rank == "onehot":
            return None if ranks[0] is None else ranks[0] + 1
        if fn.rank == "matrix_reduce":  # \det, \operatorname{tr}: over the last two axes
            self.need_matrix(e, ranks[0])
            return None if ranks[0] is None else ranks[0] - 2
        if fn.rank == "diag":  # a vector gives a matrix; a matrix its diagonal
            if ranks[0] == 0:
                raise self.error(e, "`\\operatorname{diag}` needs a vector or a matrix, not a scalar")
            return None if ranks[0] is None else (2 if ranks[0] == 1 else ranks[0] - 1)
        if fn.rank == "identity":
            if ranks[0] not in (0, None):
                raise self.error(e.args[0], f"the size of `{e.name}_{{n}}` must be a scalar, not a value of "
                                            f"rank {ranks[0]}")
            return 2
        return None if None in ranks else max(ranks)


def is_minus_one(e) -> bool:
    """Whether an exponent is the integer -1 as written (`A^{-1}`, `A^{(-1)}`, `A**-1`)."""
    e = A.strip(e)
    return isinstance(e, A.Unary) and e.op == "-" and isinstance(A.strip(e.operand), A.Num) \
        and A.strip(e.operand).value == 1 and isinstance(A.strip(e.operand).value, int)


def is_cdot(e: A.Binary) -> bool:
    """Whether a matrix product was written `\\cdot`, which is the ordinary product when a side
    is a per-sample scalar."""
    return e.spelling.strip() == "\\cdot"


def infer_ranks(prog: A.Program, source: Source) -> A.Program:
    """Ranks on the symbols; `A^{-1}` of a per-sample matrix becomes an `A.Inverse`."""
    inference = RankInference(source)
    inference.program(prog)
    if not inference.inverses:
        return prog
    return _inverses(prog, inference.inverses)


def _inverses(node, ids: set[int]):
    new = A.map_children(node, lambda c: _inverses(c, ids))
    if isinstance(node, A.Power) and id(node) in ids:
        return A.Inverse(node.span, new.base)
    return new

