"""The torch_eager backend: a kernel printed as a Python function calling torch.

Each kernel op is one row of a table (a template over the printed arguments and
attributes); ops on Python numbers (`py=True`) have their own row where the spelling
differs. The generated code runs in a namespace holding `torch`, `math`, `kk`
(kokoyi.runtime.ops) and `kx` (kokoyi.runtime.kernels). The printer records, per generated
line, the source line it came from (the line map tracebacks use).
"""
from __future__ import annotations

import math

from kokoyi.compiler import kernel as K
from kokoyi.compiler.emit import checks

TEMPLATES = {
    # arithmetic and comparisons (Python numbers and tensors alike)
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
    # (pow has a tensor operand, batch/rules.py: torch.pow is Tensor.__pow__'s and __rpow__'s own
    # call, without their Python wrapper)
    "pow": "torch.pow({0}, {1})",
    "neg": "-{0}", "lt": "{0} < {1}", "gt": "{0} > {1}", "le": "{0} <= {1}", "ge": "{0} >= {1}",
    "eq": "{0} == {1}", "ne": "{0} != {1}",
    "and": "{0} & {1}", "or": "{0} | {1}", "not": "~{0}",
    "root": "{0} ** (1.0 / {1})",
    "power": "kk.power({0}, {1})", "float_power": "kk.power(float({0}), {1})",
    "exp": "torch.exp({0})", "log": "torch.log({0})", "sin": "torch.sin({0})", "cos": "torch.cos({0})",
    "tan": "torch.tan({0})", "sinh": "torch.sinh({0})", "cosh": "torch.cosh({0})", "tanh": "torch.tanh({0})",
    "sqrt": "torch.sqrt({0})", "sigmoid": "torch.sigmoid({0})", "softplus": "torch.nn.functional.softplus({0})",
    "gelu": "kk.gelu({0})", "abs": "torch.abs({0})", "sign": "torch.sign({0})",
    "relu": "torch.relu({0})", "floor": "kx.floor_to_int({0})", "ceil": "kx.ceil_to_int({0})", "stop_grad": "{0}.detach()",
    "maximum": "torch.maximum({0}, {1})", "minimum": "torch.minimum({0}, {1})", "clip": "torch.clamp({0}, {1}, {2})",
    "floor_int": "math.floor({0})", "ceil_int": "math.ceil({0})",
    "indicator_py": "(1.0 if {0} else 0.0)",
    # layouts
    "device_of": "kk.device_of({*})", "size": "{0}.shape[{1}]", "view": "{0}[{items}]",
    "expand_lead": "kx.expand_lead({0}, {1}, {2})", "constant": "torch.tensor({0}, dtype={dtype}, device=_dev)",
    "number_tensor": "kx.number_tensor({0}, {1}, _dev)",
    "to": "{0}.to({dtype})", "transpose": "{0}.transpose(-1, -2)", "copy": "{0}", "item": "{0}[{1}]", "module_at": "{0}._modules[{key!r}]",
    # loops
    "range_size": "max({1} - {0} + 1, 0)", "int_of": "int({0})", "arange": "torch.arange({0}, {0} + {1}, device=_dev)",
    "max_size": "kx.max_size({0}, {1})", "iota_from": "kx.iota_from({0}, {1}, {2}, _dev)",
    "reduce_axis": "kx.reduce_axis({op!r}, {0}, {1}, {2}, {3}, {4})",
    "require_nonempty": "kx.require_nonempty({0}, {1}, {2}, {3}, {4}, {5}, {6})",
    # reads
    "read_static": "kx.read_static({0}, {1}, {2}, {3}, {4}, {5})",
    "check_static": "kx.check_static({0}, {1}, {2}, {3}, {4}, {5})",
    "read_indices": "kx.read_indices({0}, {1}, {2}, {3}, {4})",
    "gather": "kx.gather({0}, {1}, {2}, {3}, {4}, {5}, {6})", "affine_range": "kx.affine_range({0}, {1})",
    "windows": "kx.window_views({0}, {1}, {2}, {3}, {4}, {5}, {6})", "any_over": "kx.any_over({0}, {1})",
    "any_trailing": "kk.any_trailing({0}, {1})", "list_item": "kx.list_item({0}, {1}, {2}, {3}, {4})",
    # cases and recurrences
    "where": "torch.where({0}, {1}, {2})", "gradient_where": "torch.where({1}, {0}, {0}.detach())", "no_row": "kx.no_row({0}, {1})",
    "new_list": "[]", "unbind": "{0}.unbind({1})", "step_item": "{0}[{1}]", "append": "{0}.append({1})", "drop_first": "del {0}[0]", "earlier": "kx.earlier_element({0}, {1}, {2}, {3})",
    "no_earlier": "kx.no_earlier({0}, {1}, {2})",
    "stack_states": "kx.stack_states({0}, {1}, {2}, {3}, {4}, {5})",
    "fuse_rows": "kx.fuse_rows({0})",
    "fuse_layers": "kx.fuse_layers({0})", "fused_product": "kx.fused_product({*})",
    "steps_cat": "kx.steps_cat({0}, {1}, {2})",
    "project_steps": "kx.project_steps({0}, {1}, {2}, {3}, {4})", "projected_product": "kx.projected_product({*})",
    "lstm_sequence": "kx.lstm_sequence({*})",
    "read_states": "kx.read_states({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9})",
    # per-sample reductions and products
    "matmul": "kx.matmul_by_rank({0}, {1}, {2}, {3})",
    "einsum": "torch.einsum({0}, {1}, {2})",
    "matmul_rows": "kx.matmul_rows({0}, {1}, {2}, {3})",
    "matmul_rows_t": "kx.matmul_rows_t({0}, {1}, {2}, {3})", "matmul_summed": "kx.matmul_summed({0}, {1}, {2})",
    "linear": "torch.nn.functional.linear({0}, {1})", "trailing": "kx.trailing({op!r}, {*})",
    "trailing2": "kx.trailing2({op!r}, {*})", "cross_entropy": "kk.cross_entropy({0}, {1})",
    "one_hot": "kk.one_hot({0}, {1}, _dev, {2})", "cat": "torch.cat({0}, {1})",
    # round 2: log bases, matrix literals, linear algebra
    "log2": "torch.log2({0})", "log10": "torch.log10({0})",
    "matrix": "kx.matrix({0}, {1}, {2}, {3}, {4}, _dev)", "inverse": "kx.inverse({0})",
    "det": "torch.linalg.det({0})", "logdet": "torch.logdet({0})", "trace": "{0}.diagonal(0, -2, -1).sum(-1)",
    "diag_embed": "torch.diag_embed({0})", "diagonal": "{0}.diagonal(0, -2, -1)",
    "eye": "torch.eye({0}, dtype={1}, device=_dev)", "solve": "kx.solve({0}, {1})",
    "solve_vector": "kx.solve_vector({0}, {1})",
    # recognised forms
    "discounted_window": "kk.discounted_window({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7})",
    "std_last": "kx.population_std({0})", "var_last": "{0}.var(-1, correction=0)",
    "mean_last": "{0}.mean(-1)", "logsumexp_last": "{0}.logsumexp(-1)", "reduce_sum_last": "{0}.sum(-1)",
    "reduce_max_last": "{0}.amax(-1)", "reduce_min_last": "{0}.amin(-1)", "nonempty_last": "kx.nonempty_last({0})",
    "softmax_last": "torch.softmax({0}, -1)", "log_softmax_last": "torch.log_softmax({0}, -1)",
    "linear_layer": "kk.linear_layer({0}, {1})", "lerp": "torch.lerp({0}, {1}, {2})", "standardize": "kk.standardize({0})",
    "layer_norm": "kk.layer_norm({0}, {1})", "leaky_max": "kk.leaky_max({0}, {1})",
    "pool2d": "kx.pool2d({0}, {1}, {2}, {3}, {4}, {5}, {6}, {7})",
    "cross_entropy_rows": "kx.cross_entropy_rows({0}, {1}, {2}, {3}, {4})",
    "huber": "torch.nn.functional.huber_loss({0}, torch.zeros_like({0}), reduction='none', delta={1})",
    "difference": "{0} - {1}", "huber_rows": "kx.huber_rows({0}, {1}, {2})", "huber_reduced": "kx.huber_reduced({0}, {1}, {2}, {3})",
    "cross_entropy_reduced": "kx.cross_entropy_reduced({0}, {1}, {2}, {3}, {4}, {5})",
    "bce_logits": "kx.bce_logits({0}, {1}, {2})",
    "contract": "kx.contract({0}, {1}, {2}, {3}, {4}, {5})",
    "contract_add": "kx.contract_add({0}, {1}, {2}, {3}, {4}, {5}, {6})",
    "attention": "torch.nn.functional.scaled_dot_product_attention({0}, {1}, {2}, attn_mask={3})",
    "causal_attention": "kx.causal_attention({0}, {1}, {2}, {3})",
    # calls
    "call_layer": "{0}({1})", "call_each": "kx.call_each({0}, {1}, {2}, {3}, {4}, {5})", "call_flat": "kx.call_flat({0}, {1}, {2})",
    "call_cell": "kk.cell_layer({0}, {1}, {2})",
    "call_module": "kx.call_module({0}, {1}, {2}, {3}, {4}, {5})",
    "module_params": "kx.module_params({0}, {1})",
}
# Where Python numbers are spelled differently.
PY_TEMPLATES = {
    "div": "kx.true_divide({0}, {1})", "and": "({0} and {1})", "or": "({0} or {1})", "not": "(not {0})",
    "exp": "kk.exp({0})", "log": "kk.log({0})", "sin": "kk.sin({0})", "cos": "kk.cos({0})", "tan": "kk.tan({0})",
    "sinh": "kk.sinh({0})", "cosh": "kk.cosh({0})", "tanh": "kk.tanh({0})", "sqrt": "kk.sqrt({0})",
    "sigmoid": "kk.sigmoid({0})", "softplus": "kk.softplus({0})", "gelu": "kk.gelu({0})", "abs": "abs({0})",
    "sign": "kk.sign({0})", "relu": "kk.relu({0})", "floor": "kx.floor_number({0})", "ceil": "kx.ceil_number({0})",
    "stop_grad": "{0}",
}


def arg(a) -> str:
    """A kernel argument as Python source."""
    if isinstance(a, K.Ref):
        return a.name
    if isinstance(a, bool) or a is None:
        return repr(a)
    if isinstance(a, float):
        if math.isnan(a):
            return "math.nan"
        if math.isinf(a):
            return "math.inf" if a > 0 else "-math.inf"
        return repr(a)
    if a is Ellipsis:
        return "..."
    if isinstance(a, tuple):
        if len(a) == 3 and a[0] == "slice":
            return f"slice({arg(a[1])}, {arg(a[2])})"
        return "(" + ", ".join(arg(x) for x in a) + ("," if len(a) == 1 else "") + ")"
    if isinstance(a, str) and a.startswith("torch."):
        return a  # a dtype
    return repr(a)


def _items(items) -> str:
    return ", ".join(":" if i == ":" else "None" if i is None else "..." if i is Ellipsis else arg(i) for i in items)


def expression(s: K.Assign) -> str:
    template = (PY_TEMPLATES.get(s.op) if s.attrs.get("py") else None) or TEMPLATES[s.op]
    args = [arg(a) for a in s.args]
    fields = {k: v for k, v in s.attrs.items() if k != "py"}
    if "items" in fields:
        fields["items"] = _items(fields["items"])
    if "dtype" in fields:
        fields["dtype"] = arg(fields["dtype"])
    text = template.replace("{*}", ", ".join(args) + ("," if len(args) == 1 and s.op == "device_of" else ""))
    return text.format(*args, **fields)


class Printer:
    """Prints a kernel's statements. A tensor whose shape is read more than once (sizes,
    the inline checks of emit/checks.py) has it read once into a local, `_shape_x = x.shape`,
    printed before the first statement of a block that reads it (each `.shape` makes a new
    torch.Size): only for names bound once in the kernel, so the local cannot go stale."""

    def __init__(self, shared=frozenset(), printed=None) -> None:
        self.lines: list[str] = []
        self.line_map: dict[int, int] = {}
        self.shared = shared  # names whose shape gets a local
        self.wanted: dict[str, int] = {}  # name -> shape reads printed (what `shared` is chosen from)
        self.scopes: list[set] = [set()]  # shape locals bound, per enclosing block
        self.pending: list[str] = []  # shape locals to bind before the statement being printed
        # An Assign's text (by id) and the names whose shapes it read, from the first printing:
        # printed again as it is unless it reads the shape of a name now `shared`.
        self.printed: dict = {} if printed is None else printed
        self.shaped: list[str] = []  # names whose shapes the statement being printed read

    def shape(self, name: str) -> str:
        self.wanted[name] = self.wanted.get(name, 0) + 1
        self.shaped.append(name)
        if name not in self.shared:
            return f"{name}.shape"
        if not any(name in scope for scope in self.scopes):
            self.scopes[-1].add(name)
            self.pending.append(name)
        return f"_shape_{name}"

    def put(self, depth: int, text: str, line: int) -> None:
        for name in self.pending:
            self.lines.append("    " * depth + f"_shape_{name} = {name}.shape")
            if line:
                self.line_map[len(self.lines)] = line
        self.pending.clear()
        self.lines.append("    " * depth + text)
        if line:
            self.line_map[len(self.lines)] = line

    def _assign(self, s: K.Assign) -> str:
        done = self.printed.get(id(s))
        if done is not None and done[0] is s and not (self.shared and self.shared.intersection(done[2])):
            return done[1]
        self.shaped = []
        if s.op == "size" and isinstance(s.args[0], K.Ref):
            text = f"{self.shape(s.args[0].name)}[{arg(s.args[1])}]"
        else:
            text = expression(s)
        fast = checks.inline(s, text, arg, self.shape)  # a checked helper's common case inline (emit/checks.py)
        text = fast or (f"{s.out} = {text}" if s.out else text)
        self.printed[id(s)] = (s, text, self.shaped)
        return text

    def block(self, stmts: list, depth: int) -> None:
        self.scopes.append(set())
        try:
            self._block(stmts, depth)
        finally:
            self.scopes.pop()

    def _block(self, stmts: list, depth: int) -> None:
        if not stmts:
            self.put(depth, "pass", 0)
        for s in stmts:
            match s:
                case K.Assign() if s.op == "statics":  # batch/statics.py: a local function, its results kept
                    fn, keys = s.attrs["fn"], ", ".join(arg(a) for a in s.args)
                    self.put(depth, f"def {fn}({keys}):", s.line)
                    outer, self.scopes = self.scopes, [set()]  # (its own scope)
                    self.block(s.attrs["body"], depth + 1)
                    self.scopes = outer
                    outs = s.attrs["outs"]
                    self.put(depth + 1, f"return ({', '.join(outs)},)", 0)
                    self.put(depth, f"{', '.join(outs)}, = kx.static_values({fn}, ({keys}{',' if len(s.args) == 1 else ''}))",
                             s.line)
                case K.Assign():
                    self.put(depth, self._assign(s), s.line)
                case K.If():
                    self.put(depth, f"if {arg(s.cond)}:", s.line)
                    self.block(s.then, depth + 1)
                    if s.orelse:
                        self.put(depth, "else:", s.line)
                        self.block(s.orelse, depth + 1)
                case K.For():
                    if s.pre:
                        self.block(s.pre, depth)
                    self.put(depth, f"for {s.var} in kk.recurrence_steps({arg(s.start)}, {arg(s.stop)}, "
                                    f"{s.site!r}):", s.line)
                    self.block(s.body, depth + 1)
                case K.Return():
                    values = [arg(v) for v in s.values]
                    self.put(depth, "return " + (values[0] if len(values) == 1 else f"({', '.join(values)})"), s.line)


def _bound(stmts: list, counts: dict) -> dict:
    """How many times each name is bound in stmts (nested blocks and local functions included)."""
    for s in stmts:
        match s:
            case K.Assign():
                names = [s.out] if s.out else []
                if s.op == "statics":
                    names += list(s.attrs["outs"])
                    _bound(s.attrs["body"], counts)
                for name in names:
                    counts[name] = counts.get(name, 0) + 1
            case K.If():
                _bound(s.then, counts)
                _bound(s.orelse, counts)
            case K.For():
                counts[s.var] = counts.get(s.var, 0) + 2  # (a new value each step)
                _bound(s.pre, counts)
                _bound(s.body, counts)
    return counts


def emit(k: K.Kernel) -> tuple[str, dict[int, int]]:
    """(Python source defining the kernel's function, line map: generated line -> source line)."""
    first = Printer()  # (printed once to count the shape reads, then with their locals)
    first.block(k.body, 1)
    counts = _bound(k.body, {name: 1 for name in k.params})
    shared = frozenset(n for n, reads in first.wanted.items() if reads > 1 and counts.get(n, 0) == 1)
    p = Printer(shared, first.printed) if shared else first
    if shared:
        p.block(k.body, 1)
    head = f"def {k.name}({', '.join(k.params)}):"
    p.lines.insert(0, head)
    return "\n".join(p.lines) + "\n", {line + 1: src for line, src in p.line_map.items()}
