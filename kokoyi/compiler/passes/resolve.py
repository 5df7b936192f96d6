"""Name resolution: scopes, the subscript rule, single assignment and recursion.

Every use of a name becomes a Ref to its Symbol. A subscripted name that is not itself
defined, on a base that is, becomes an index (`x_i` -> `x[i]`); `W^{(1)}` that is not a
defined name becomes a power. Built-in constants and functions are found last, so user
definitions shadow them.
"""
from __future__ import annotations

import difflib

from kokoyi.compiler import ast as A
from kokoyi.compiler.ast import replace
from kokoyi.compiler import builtins as B
from kokoyi.compiler import signs
from kokoyi.compiler import symbols as S
from kokoyi.compiler.spelling import spell
from kokoyi.errors import KokoyiError, KokoyiNameError, KokoyiSyntaxError, KokoyiTypeError, Source


class Scope:
    def __init__(self, parent: Scope | None, owner: str = "") -> None:
        self.parent = parent
        self.owner = owner  # "unit", "module", "function", "where", "index" ...
        self.names: dict[str, S.Symbol] = {}
        self.in_progress: dict[str, S.Symbol] = {}

    def lookup(self, key: str) -> tuple[S.Symbol | None, bool]:
        """(symbol, whether it is still being defined)."""
        scope = self
        while scope is not None:
            if key in scope.in_progress:
                return scope.in_progress[key], True
            if key in scope.names:
                return scope.names[key], False
            scope = scope.parent
        return None, False

    def visible(self) -> set[str]:
        keys, scope = set(), self
        while scope is not None:
            keys |= set(scope.names)
            scope = scope.parent
        return keys


class Resolver:
    def __init__(self, source: Source, env: dict[str, S.Symbol]) -> None:
        self.source = source
        globals_scope = Scope(None, "earlier units")
        # env itself, not a copy (which grew with every unit registered before): this scope is
        # never the current one, so nothing is ever defined in it
        globals_scope.names = env
        self.scope = Scope(globals_scope, "unit")
        self.recurrence: S.Symbol | None = None  # the set-builder definition being resolved
        self.recurrences: list[S.Symbol] = []  # the set-builders found reading themselves (extra["recurrence"])
        # Set-builder definitions of the body being resolved that come later: a set-builder may
        # read them (a recurrence group, LANGUAGE.md section 5); the recurrences pass checks how.
        self.forward: dict[str, S.Symbol] = {}
        self.in_builder = False  # resolving a body-level set-builder definition (or its \where)
        self.where_of_builder = False  # resolving the \where bindings of a set-builder definition

    # ---- errors ----
    def error(self, cls, node: A.Node, message: str, notes=()) -> KokoyiError:
        return cls.at(self.source, node.span, message, tuple(notes))

    def define(self, name: A.Name, symbol: S.Symbol) -> S.Symbol:
        """Add symbol to the current scope; a second definition in one scope is an error."""
        old = self.scope.names.get(name.key) or self.scope.in_progress.get(name.key)
        if old is not None and old is not symbol:
            raise self.error(KokoyiNameError, name, f"`{name.key}` is already defined in this scope",
                             [f"  first defined at {old.where()}"])
        symbol.span = symbol.span or name.span
        symbol.filename = self.source.filename
        self.scope.names[name.key] = symbol
        return symbol

    def new_symbol(self, name: A.Name, kind: str, **kw) -> S.Symbol:
        return S.Symbol(name.key, kind, name.hint, span=name.span, filename=self.source.filename, **kw)

    def push(self, owner: str) -> Scope:
        self.scope = Scope(self.scope, owner)
        return self.scope

    def pop(self) -> None:
        self.scope = self.scope.parent

    # ---- program ----
    def program(self, prog: A.Program) -> tuple[A.Program, list[S.Symbol]]:
        items, defined = [], []
        for item in prog.items:
            match item:
                case A.Module():
                    new, sym = self.module(item)
                case A.Function():
                    new, sym = self.function(item)
                case A.Definition():
                    new, sym = self.definition(item, top_level=True)
            items.append(new)
            defined.append(sym)
        return replace(prog, items=tuple(items)), defined

    def _top_level(self, name: A.Name, kind: str, **kw) -> S.Symbol:
        sym = self.new_symbol(name, kind, **kw)
        old = self.scope.names.get(name.key)
        if old is not None:
            raise self.error(KokoyiNameError, name, f"`{name.key}` is already defined in this unit",
                             [f"  first defined at {old.where()}"])
        self.scope.in_progress[name.key] = sym
        return sym

    def _finish_top_level(self, name: A.Name, sym: S.Symbol) -> None:
        del self.scope.in_progress[name.key]
        self.define(name, sym)

    def module(self, mod: A.Module):
        sym = self._top_level(mod.name, S.MODULE, is_function=True, arity=len(mod.inputs))
        self.push("module")
        dims = self._dims(mod.inputs + mod.params)
        inputs = tuple(self._decl(d, S.INPUT) for d in mod.inputs)
        params = tuple(self._decl(d, S.PARAM) for d in mod.params)
        body = self._body(mod.body, mod, f"module `{mod.name.key}`")
        self.pop()
        self._finish_top_level(mod.name, sym)
        sym.extra["dims"] = dims
        return replace(mod, name=A.Ref(mod.name.span, sym, mod.name), inputs=inputs, params=params, body=body), sym

    def function(self, fn: A.Function):
        sym = self._top_level(fn.name, S.FUNCTION, is_function=True, arity=len(fn.args))
        self.push("function")
        dims = self._dims(fn.args)
        args = tuple(self._decl(d, S.ARG) for d in fn.args)
        body = self._body(fn.body, fn, f"function `{fn.name.key}`")
        self.pop()
        self._finish_top_level(fn.name, sym)
        sym.extra["dims"] = dims
        return replace(fn, name=A.Ref(fn.name.span, sym, fn.name), args=args, body=body), sym

    def _dims(self, decls) -> list[tuple[S.Symbol, A.Name]]:
        """Dimension names of annotations become integer names (one symbol per name)."""
        out = []
        for d in decls:
            if d.annotation is None:
                continue
            for dim in d.annotation.dims:
                if isinstance(dim, A.Name) and dim.key not in self.scope.names:
                    sym = self.new_symbol(dim, S.DIM, rank=0, integer=True)
                    self.scope.names[dim.key] = sym
                    out.append((sym, dim))
        return out

    def _decl(self, d: A.Decl, kind: str) -> A.Decl:
        rank = len(d.annotation.dims) if d.annotation is not None else None
        integer = d.annotation is not None and d.annotation.field in ("Z", "N")
        existing = self.scope.names.get(d.name.key)
        if existing is not None and existing.kind == S.DIM:
            raise self.error(KokoyiNameError, d.name, f"`{d.name.key}` is already a dimension name",
                             [f"  first used at {existing.where()}"])
        sym = self.define(d.name, self.new_symbol(d.name, kind, rank=rank, integer=integer))
        annotation = d.annotation
        if annotation is not None:
            dims = tuple(A.Ref(x.span, self.scope.names[x.key], x) if isinstance(x, A.Name) else x
                         for x in annotation.dims)
            annotation = replace(annotation, dims=dims)
        return replace(d, name=A.Ref(d.name.span, sym, d.name), annotation=annotation)

    def _body(self, body, owner: A.Node, what: str):
        returns = [i for i, s in enumerate(body) if isinstance(s, A.Return)]
        if not returns:
            raise KokoyiSyntaxError.at(self.source, _end_span(owner), f"{what} has no `\\Return`")
        if len(returns) > 1 or returns[0] != len(body) - 1:
            bad = body[returns[0] + 1]
            raise self.error(KokoyiSyntaxError, bad, f"{what}: nothing may follow its `\\Return`")
        saved, self.forward = self.forward, {}
        for stmt in body:
            if _is_builder_definition(stmt) and stmt.target.key not in self.forward:
                self.forward[stmt.target.key] = self.new_symbol(stmt.target, S.LOCAL)
        out = []
        for stmt in body:
            if isinstance(stmt, A.Return):
                out.append(self.return_stmt(stmt))
            else:
                out.append(self.definition(stmt, body_level=True)[0])
        self.forward = saved
        return tuple(out)

    # ---- statements ----
    def return_stmt(self, ret: A.Return) -> A.Return:
        self.push("where")
        where = tuple(self.definition(b)[0] for b in ret.where)
        values = tuple(self.expr(v) for v in ret.values)
        self.pop()
        return replace(ret, values=values, where=where)

    def definition(self, d: A.Definition, top_level: bool = False, body_level: bool = False):
        is_function = d.params is not None
        builder = body_level and _is_builder_definition(d)
        if top_level:
            sym = self._top_level(d.target, S.FUNCTION if is_function else S.CONSTANT)
        else:
            if builder and d.target.key in self.forward:
                sym = self.forward.pop(d.target.key)  # the symbol earlier set-builders may have read
            else:
                sym = self.new_symbol(d.target, S.FUNCTION if is_function else S.LOCAL)
            old = self.scope.names.get(d.target.key)
            if old is not None:
                raise self.error(KokoyiNameError, d.target, f"`{d.target.key}` is already defined in this scope",
                                 [f"  first defined at {old.where()}"])
            self.scope.in_progress[d.target.key] = sym
        params = None
        if is_function:
            sym.is_function, sym.arity = True, len(d.params)
            self.push("function")
            params = tuple(A.Ref(p.span, self.define(p, self.new_symbol(p, S.ARG)), p) for p in d.params)
        value_node = A.strip(d.value)
        saved, saved_builder = self.recurrence, self.in_builder
        own = sym if isinstance(value_node, A.SetBuilder) and not is_function else None
        # Inside the `\where` of a set-builder definition, the set-builder may still be read.
        outer = saved if self.where_of_builder else None
        self.in_builder = builder or (saved_builder and not body_level)
        if own is not None and d.where:
            self.recurrence = own
            value, where = self._builder_with_where(d, value_node, sym)
        else:
            self.push("where")
            self.recurrence = outer
            where = tuple(self.definition(b)[0] for b in d.where)
            self.recurrence = own or outer
            value = self.expr(d.value)
            self.pop()
        self.recurrence, self.in_builder = saved, saved_builder
        if is_function:
            self.pop()
        del self.scope.in_progress[d.target.key]
        if not is_function:
            self._describe_value(sym, A.strip(value))
        self.define(d.target, sym)
        new = replace(d, target=A.Ref(d.target.span, sym, d.target), params=params, value=value, where=where)
        return new, sym

    def _builder_with_where(self, d: A.Definition, builder: A.SetBuilder, sym: S.Symbol):
        """A set-builder definition with `\\where` bindings: the bindings may use the index
        (`z_t \\gets \\Concat(h[t-1], x[t])`, evaluated per element), so they are resolved
        with the index variables in scope; the bounds may use bindings that do not."""
        self.push("index")
        variables = [self._index_var(b.var) for b in builder.bounds]
        self.push("where")
        saved, self.where_of_builder = self.where_of_builder, True
        where = tuple(self.definition(b)[0] for b in d.where)
        self.where_of_builder = saved
        indices = {id(v.symbol) for v in variables}
        per_element = _per_element(where, indices)
        if per_element:
            sym.extra["per_element_where"] = True
        bounds = []
        for k, b in enumerate(builder.bounds):
            lower, upper = self.expr(b.lower), self.expr(b.upper)
            variables[k].symbol.extra[signs.KEY] = signs.nonnegative(lower)
            later = {id(v.symbol) for v in variables[k:]} | per_element
            for n in (*A.walk(lower), *A.walk(upper)):
                if isinstance(n, A.Ref) and id(n.symbol) in later:
                    what = "an index that is not bound yet" if n.symbol.kind == S.INDEX else \
                        "a `\\where` binding that depends on the index"
                    raise self.error(KokoyiNameError, n, f"the bounds of `{sym.key}` cannot use `{n.symbol.key}`: "
                                                         f"it is {what}")
            bounds.append(replace(b, var=variables[k], lower=lower, upper=upper))
        element = self.expr(builder.element)
        self.pop()
        self.pop()
        value = replace(builder, bounds=tuple(bounds), element=element)
        return _rewrap(d.value, value), where

    def _describe_value(self, sym: S.Symbol, value: A.Node) -> None:
        """A local bound to a function (`\\mu \\gets \\Mean`) is itself callable. Records too
        whether the value is known to be >= 0 (kokoyi.compiler.signs)."""
        sym.extra[signs.KEY] = signs.nonnegative(value)
        if isinstance(value, A.Builtin):
            fn = B.FUNCTIONS[value.name]
            sym.is_function, sym.builtin = True, value.name
            sym.arity = fn.min_args if fn.min_args == fn.max_args else None
        elif isinstance(value, A.Ref) and value.symbol.is_function:
            sym.is_function, sym.arity, sym.builtin = True, value.symbol.arity, value.symbol.builtin

    # ---- expressions ----
    def expr(self, e):
        match e:
            case A.Name():
                return self.name(e)
            case A.Power(base=A.Name() as base, exponent=A.Group(expr=A.Paren(expr=inner)), spelling="^"):
                key = f"{base.key}^{{({spell(inner)})}}"
                sym, in_progress = self.scope.lookup(key)
                if sym is not None:
                    name = A.Name(e.span, key, base.hint, inner=base, exponent=inner)
                    return self._ref(name, sym, in_progress)
                return A.map_children(e, self.expr)
            case A.Call():
                return self.call(e)
            case A.BuiltinCall():
                self._check_builtin_arity(e, e.name, len(e.args))
                return A.map_children(e, self.expr)
            case A.Reduce():
                if len(e.args) != 1 and e.op not in ("max", "min"):
                    raise self.error(KokoyiTypeError, e, f"`\\{e.op}(...)` takes one argument, got {len(e.args)}")
                return A.map_children(e, self.expr)
            case A.BigOp():
                lower, upper = self.expr(e.bound.lower), self.expr(e.bound.upper)
                self.push("index")
                var = self._index_var(e.bound.var, lower)
                body = self.expr(e.body)
                self.pop()
                return replace(e, bound=replace(e.bound, var=var, lower=lower, upper=upper), body=body)
            case A.SetBuilder():
                bounds = []
                pushed = 0
                for b in e.bounds:
                    lower, upper = self.expr(b.lower), self.expr(b.upper)
                    self.push("index")
                    pushed += 1
                    bounds.append(replace(b, var=self._index_var(b.var, lower), lower=lower, upper=upper))
                element = self.expr(e.element)
                for _ in range(pushed):
                    self.pop()
                return replace(e, bounds=tuple(bounds), element=element)
            case A.Node():
                return A.map_children(e, self.expr)
        raise TypeError(e)

    def _index_var(self, var: A.Name, lower=None) -> A.Ref:
        """An index variable; its values are >= 0 where its lower bound is (kokoyi.compiler.signs)."""
        sym = self.define(var, self.new_symbol(var, S.INDEX, rank=0, integer=True))
        sym.extra[signs.KEY] = lower is not None and signs.nonnegative(lower)
        return A.Ref(var.span, sym, var)

    def _check_builtin_arity(self, node: A.Node, name: str, count: int) -> None:
        fn = B.FUNCTIONS[name]
        if count < fn.min_args or (fn.max_args is not None and count > fn.max_args):
            raise self.error(KokoyiTypeError, node, f"`\\{name}` takes {fn.arity_text()}, got {count}")

    def call(self, e: A.Call):
        func = self.expr(e.func)
        args = tuple(self.expr(a) for a in e.args)
        if isinstance(func, A.Builtin):
            self._check_builtin_arity(e, func.name, len(args))
            return A.BuiltinCall(e.span, func.name, args, "paren")
        if isinstance(func, A.Ref):
            sym = func.symbol
            if sym.kind == S.MODULE:
                raise self.error(KokoyiTypeError, e.func,
                                 f"module `{sym.key}` cannot be called directly: pass a torch.nn.Module "
                                 f"whose forward is it as a parameter, and call that")
            if sym.builtin is not None:
                self._check_builtin_arity(e, sym.builtin, len(args))
            elif sym.is_function and sym.arity is not None and sym.arity != len(args):
                raise self.error(KokoyiTypeError, e, f"`{sym.key}` takes {sym.arity} argument"
                                 f"{'s' if sym.arity != 1 else ''}, got {len(args)}")
            elif sym.kind in (S.DIM, S.INDEX, S.CONSTANT) and not sym.is_function:
                raise self.error(KokoyiTypeError, e.func, f"`{sym.key}` is not a function and cannot be called")
        return replace(e, func=func, args=args)

    def name(self, n: A.Name):
        found = self._try_name(n)
        if found is not None:
            return found
        visible = self.scope.visible() | set(B.CONSTANTS) | set(B.FUNCTIONS)
        near = difflib.get_close_matches(n.key, sorted(visible), n=1, cutoff=0.75)
        hint = f" (did you mean `{near[0]}`?)" if near else ""
        raise self.error(KokoyiNameError, n, f"undefined name `{n.key}`{hint}")

    def _try_name(self, n: A.Name):
        sym, in_progress = self.scope.lookup(n.key)
        if sym is not None:
            return self._ref(n, sym, in_progress)
        if self.in_builder and n.key in self.forward:
            # A later set-builder of this body: a member of this one's recurrence group.
            return A.Ref(n.span, self.forward[n.key], n)
        if n.inner is not None and n.indices:
            base = self._try_name(n.inner)
            if base is not None:
                return A.Index(n.span, base, tuple(self.expr(i) for i in n.indices))
            fn = B.FUNCTIONS.get(n.inner.key)
            if fn is not None and fn.form == "subscript":  # `\mathbf{I}_{n}` where `\mathbf{I}` is undefined
                if len(n.indices) != 1:
                    raise self.error(KokoyiTypeError, n, f"`{n.inner.key}_{{n}}` takes one size, got {len(n.indices)}")
                return A.BuiltinCall(n.span, fn.name, (self.expr(n.indices[0]),), "subscript")
            return None
        if n.key in B.CONSTANTS:
            return A.Constant(n.span, n.key)
        if n.key in B.FUNCTIONS and B.FUNCTIONS[n.key].form == "call":
            return A.Builtin(n.span, n.key)
        return None

    def _ref(self, n: A.Name, sym: S.Symbol, in_progress: bool) -> A.Ref:
        if in_progress:
            if sym is self.recurrence:
                if not sym.extra.get("recurrence"):
                    self.recurrences.append(sym)
                sym.extra["recurrence"] = True
                return A.Ref(n.span, sym, n)
            what = "recursion is not allowed" if sym.kind in (S.FUNCTION, S.MODULE) else "a name cannot be used in its own definition"
            raise self.error(KokoyiNameError, n, f"`{n.key}` is used in its own definition: {what}")
        return A.Ref(n.span, sym, n)


def _is_builder_definition(stmt) -> bool:
    """`name \\gets \\{ ... \\}_{t=a}^{b}`: a set-builder bound to a name (a possible recurrence)."""
    return isinstance(stmt, A.Definition) and stmt.params is None and isinstance(A.strip(stmt.value), A.SetBuilder)


def _per_element(where, indices: set[int]) -> set[int]:
    """ids of the symbols of `\\where` bindings that use an index in indices (directly or
    through an earlier binding): they are evaluated per element."""
    dependent = set(indices)
    for b in where:
        if any(isinstance(n, A.Ref) and id(n.symbol) in dependent for n in A.walk(b)):
            dependent.add(id(b.target.symbol))
    return dependent - indices


def _rewrap(original, value):
    """value in the parentheses or braces original had around its set-builder."""
    if isinstance(original, (A.Paren, A.Group)):
        return replace(original, expr=_rewrap(original.expr, value))
    return value


def _end_span(node: A.Node):
    from kokoyi.errors import Span

    s = node.span
    return Span(s.end_line, max(1, s.end_column - 1), s.end_line, s.end_column)


def resolve(prog: A.Program, source: Source, env: dict[str, S.Symbol]):
    """(resolved program, symbols the unit defines at top level, in order)."""
    return Resolver(source, env).program(prog)
