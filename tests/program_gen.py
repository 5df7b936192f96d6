"""A generator of well-formed random Kokoyi programs, for the differential fuzzer (tests/differential.py).

Generation is typed with concrete shapes: every input has a fixed per-sample shape, and each
generator function (`scalar`, `vector(n)`, `matrix(r, c)`, `integer`) writes an expression
of exactly that shape, so most programs compile and run. Index reads know the interval of
their index over every iteration of the enclosing loops; a read that may fall outside the
axis is guarded by a `cases` row (on the index, or on the data) or, now and then, left
unguarded so that the run-time error paths are exercised too. Deterministic in its seed.

What it writes: float vector, matrix and scalar inputs (float32, float64, both, or an integer
tensor for an `\\mathbb{R}` input; sizes 0 to 5), `\\mathbb{Z}` and `\\mathbb{N}` scalars and
vectors used as indices (in and out of range), dimension names; parameters: a scalar, a tensor,
an nn.Linear, a ModuleList of two and a Kokoyi module; element-wise operators and built-ins,
`e` and `\\infty`, juxtaposition, powers (integer ones negative too), roots, rounding, `|x|`,
norms, indicators in three spellings, reductions and
function values (`\\mu \\gets \\Mean`); big operators (scalar and vector bodies) with bounds that
depend on enclosing indices, are empty, or are fractions that round inwards; set-builders of
scalars, vectors and literals, 1-D and 2-D, nested; windows `x[2i + j]`; slices; cases with
index and data conditions, guarded reads in values and in later conditions, constant
conditions, a missing otherwise; recurrences of order 1 and 2 with scalar or vector elements
and partial reads `h[t-1, i]`, `h_{t-1, i}`; local functions with `\\where`, top-level and
multi-statement functions, a top-level constant, `\\Return ... \\where`, several outputs.
Not written by default: the language's second round (issue 13). With `round2=True`
(`generate(seed, round2=True)`, or KOKOYI_DIFF_ROUND2=1 for tests/test_differential.py) it also
writes recurrence groups of two members (one reading the other's current element, the other
the first's earlier one through a `\\where` binding that uses the index), matrix literals of
scalars (r x c, a row, a column), `\\log_2`, `\\log_{10}` and `\\log_{3}`, `\\det`,
`\\operatorname{tr}` / `\\Tr`, `\\operatorname{diag}` both ways, `\\mathbf{I}_{n}`, `\\log \\det`
and `A^{-1} @ v` of well-conditioned matrices (`\\mathbf{I}_{n} + M M^\\top`). It is off by
default while the code generator in use rejects these (KokoyiUnsupportedError); with it off,
the programs of every seed are exactly those of before. Never written: annotated parameters,
non-ASCII names.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Input:
    name: str
    kind: str  # "f" (float) or "i" (integer)
    shape: tuple
    annotation: str = ""  # `\in \mathbb{R}^{N}` or ""
    int_range: tuple = (0, 0)  # integer inputs: values drawn from lo..hi inclusive
    dtype: str = "float32"  # float inputs: float32, float64, or int64 (an integer tensor for \mathbb{R})
    fixed: object = None  # a tensor every sample takes (hand-written regression programs)


@dataclass
class Program:
    source: str
    module: str
    inputs: list
    # ("scalar", value), ("tensor", shape, dtype), ("linear", in, out, dtype), ("modulelist", ((in, out), ...),
    # dtype) or ("kokoyi", module name);
    # differential.parameters() makes the objects (seeded), once the source is compiled
    params: list = field(default_factory=list)
    seed: int = 0
    float_dtype: str = "float32"


@dataclass
class Var:
    text: str
    kind: str  # "f" or "i"
    shape: tuple


@dataclass
class Loop:
    name: str
    lo: int  # interval of the index over every iteration of the enclosing loops
    hi: int
    cap: tuple | None = None  # (other loop name, C): this + other <= C


LOOP_NAMES = ("i", "j", "l", "p", "q", "r", "t")
COMPARISONS = (">", "<", "\\geq", "\\leq")
ELEMENTWISE = ("+", "-", "*", "\\odot", "\\circ")
UNARY = (r"\tanh", r"\sin", r"\cos", r"\Sigmoid", r"\ReLU", r"\Softplus", r"\abs", r"\GELU", r"\sinh", r"\sign",
         r"\tan", r"\cosh", r"\exp")  # (\exp last: vectors leave it out)


class Generator:
    def __init__(self, seed: int, max_depth: int = 3, round2: bool = False) -> None:
        self.rng = random.Random(seed)
        self.round2 = round2  # also write the constructs of issue 13 (draws from rng only when on)
        self.seed = seed
        self.max_depth = max_depth
        self.vars: list[Var] = []
        self.loops: list[Loop] = []
        self.funcs: list[tuple[str, tuple]] = []  # (name, argument shape): scalar-valued
        self.lengths: dict[int, str] = {}  # n -> an expression with value n (|x| or a dimension name)
        self.counter = 0
        self.used: set[str] = set()  # names of locals and functions
        self.reducers: list[str] = []  # locals bound to a built-in reduction (`\\mu \\gets \\Mean`)
        self.layers: list[tuple] = []  # (parameter name, in, out): torch layers (None: any length, same out)

    # ---- helpers ----
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def fresh(self, pool=("a", "b", "c", "g", "v", "w", "z", "u")) -> str:
        self.counter += 1
        base = pool[self.counter % len(pool)]
        return f"{base}_{{{self.counter}}}" if self.counter >= len(pool) else base

    def loop_name(self) -> str:
        used = {lp.name for lp in self.loops}
        return next(n for n in LOOP_NAMES if n not in used)

    def length(self, n: int) -> str:
        """An expression with value n: `|x|`, a dimension name, or the literal."""
        if n in self.lengths and self.chance(0.8):
            return self.lengths[n]
        return str(n)

    def upper(self, n: int) -> str:
        """An expression with value n - 1 (the last index of an axis of length n)."""
        return f"{self.length(n)} - 1" if n in self.lengths and self.chance(0.85) else str(n - 1)

    def vars_of(self, shape, kind=None):
        return [v for v in self.vars if v.shape == shape and (kind is None or v.kind == kind)]

    def vectors(self, kind="f"):
        return [v for v in self.vars if len(v.shape) == 1 and v.kind == kind and v.shape[0] > 0]

    # ---- the program ----
    def program(self) -> Program:
        rng = self.rng
        dtype = rng.choices(["float32", "float64", "mixed"], [6, 3, 1])[0]
        sizes = [rng.choices([1, 2, 3, 4, 5, 0], [2, 4, 4, 3, 2, 0.3])[0] for _ in range(2)]
        inputs = []
        dims = {}
        n_vec = rng.choice([1, 1, 2])
        for idx in range(n_vec):
            n = sizes[idx]
            name = "x" if idx == 0 else "y"
            ann = ""
            if self.chance(0.35):
                dim = dims.setdefault(n, "N" if not dims else "M")
                ann = rf" \in \mathbb{{R}}^{{{dim}}}"
                self.lengths.setdefault(n, dim)
            fdt = "float64" if dtype == "float64" or (dtype == "mixed" and idx == 1) else "float32"
            if ann and self.chance(0.08):
                fdt = "int64"
            inputs.append(Input(name, "f", (n,), ann, dtype=fdt))
            if n > 0:
                self.lengths.setdefault(n, f"|{name}|")
            self.vars.append(Var(name, "f", (n,)))
        if self.chance(0.35):
            r, c = rng.choice([1, 2, 3]), rng.choice([1, 2, 3, 4])
            ann = r" \in \mathbb{R}^{R \times C}" if self.chance(0.3) else ""
            if ann:
                self.lengths.setdefault(r, "R")
                self.lengths.setdefault(c, "C")
            inputs.append(Input("X", "f", (r, c), ann, dtype="float64" if dtype != "float32" else "float32"))
            self.vars.append(Var("X", "f", (r, c)))
        if self.chance(0.4):
            inputs.append(Input("s", "f", (), dtype="float64" if dtype == "float64" else "float32"))
            self.vars.append(Var("s", "f", ()))
        if self.chance(0.45):
            n = max(sizes[0], 1)
            lo, hi = (-n, n - 1) if self.chance(0.85) else (-n - 1, n)
            field = r"\mathbb{Z}"
            if self.chance(0.25):  # a natural number: never negative
                lo, field = 0, r"\mathbb{N}"
            inputs.append(Input("k", "i", (), rf" \in {field}", int_range=(lo, hi)))
            self.vars.append(Var("k", "i", ()))
        if self.chance(0.2) and sizes[0] > 0:
            n, m = sizes[0], rng.choice([1, 2, 3])
            inputs.append(Input("m", "i", (m,), r" \in \mathbb{Z}^{" + str(m) + "}", int_range=(-n, n - 1)))
            self.vars.append(Var("m", "i", (m,)))
        params, param_names = [], []
        pdtype = "float64" if dtype != "float32" else "float32"
        if self.chance(0.25):
            params.append(("scalar", round(rng.uniform(0.3, 1.5), 3)))
            param_names.append(r"\gamma")
            self.vars.append(Var(r"\gamma", "f", ()))
        vec_lengths = sorted({v.shape[0] for v in self.vectors()})
        if vec_lengths and self.chance(0.2):
            n, m = self.pick(vec_lengths), rng.choice([1, 2, 3])
            params.append(("tensor", (m, n), pdtype))
            param_names.append("W")
            self.vars.append(Var("W", "f", (m, n)))
        if vec_lengths and self.chance(0.15):
            n, m = self.pick(vec_lengths), rng.choice([1, 2, 3])
            params.append(("linear", n, m, pdtype))
            param_names.append("L")
            self.layers.append(("L", n, m))
        if vec_lengths and self.chance(0.1):
            n, m1, m2 = self.pick(vec_lengths), rng.choice([1, 2, 3]), self.pick(vec_lengths)
            params.append(("modulelist", ((n, m1), (m1, m2)), pdtype))
            param_names.append("Ls")
            self.layers += [("Ls[0]", n, m1), ("Ls[1]", m1, m2)]
        if vec_lengths and self.chance(0.1):
            params.append(("kokoyi", "Q"))
            param_names.append("q")
            self.layers.append(("q", None, None))
        lines = []
        prelude = []
        if self.chance(0.1):
            prelude.append(r"\kappa \gets \frac{3}{4} \\")
            self.vars.append(Var(r"\kappa", "f", ()))
        if self.chance(0.15):
            prelude.append(r"sq(u) \gets u * u \\")
            self.funcs.append(("sq", ()))
        if self.chance(0.1):
            prelude.append("\\Function{soft}{u, c}\n  y \\gets \\tanh(u / c) \\\\\n  \\Return c * y \\\\\n\\EndFunction")
            self.funcs.append(("soft2", ()))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            lines.append(self.statement())
        where = ""
        if self.chance(0.15):
            name = self.fresh()
            where = f" \\where {name} \\gets {self.scalar(2)}"
            self.vars.append(Var(name, "f", ()))
        outs = [self.output() for _ in range(rng.choice([1, 1, 2]))]
        if where:
            outs[0] = f"({outs[0]}) + {name}"
        ret = r"  \Return " + ", ".join(outs) + where
        ret += r" \\"
        decls = ", ".join(f"{i.name}{i.annotation}" for i in inputs)
        if param_names:
            decls += "; " + ", ".join(param_names)
        if any(kind == "kokoyi" for kind, *_ in params):
            # its input annotated or not, drawn apart from the program's own draws (a seed's
            # program stays what it was): annotated, a caller inlines it where the annotation
            # holds by the argument's layout, else calls it (batch/calls.py `_annotations_hold`)
            u = "u \\in \\mathbb{R}^{m}" if random.Random(self.seed * 7 + 1).random() < 0.5 else "u"
            prelude.append(f"\\Module{{Q}}{{{u}}}\n  \\Return \\tanh(u) * 2 + \\{{ u[i] * i \\}}_{{i=0}}^{{|u|-1}} \\\\\n\\EndModule")
        src = "\n".join(prelude + [f"\\Module{{P}}{{{decls}}}"] + lines + [ret, r"\EndModule"]) + "\n"
        return Program(src, "P", inputs, params, self.seed, dtype)

    def output(self) -> str:
        shapes = [v.shape for v in self.vars if v.kind == "f"] or [()]
        shape = self.pick(shapes + [(), ()])
        if len(shape) == 1 and shape[0] > 0:
            return self.vector(shape[0], self.max_depth)
        if len(shape) == 2 and 0 not in shape:
            return self.matrix(*shape, self.max_depth)
        if self.chance(0.1):
            return self.integer(2)
        return self.scalar(self.max_depth)

    # ---- statements ----
    def statement(self) -> str:
        roll = self.rng.random()
        vecs = [v for v in self.vectors() if v.shape[0] > 0]
        mats = [v for v in self.vars if len(v.shape) == 2 and v.kind == "f" and 0 not in v.shape]
        if self.round2 and vecs and self.chance(0.3):
            return self.recurrence_group(self.pick(vecs))
        if roll < 0.3 and (vecs or mats):
            return self.recurrence(self.pick(vecs + mats * 2))
        if roll < 0.38:
            return self.local_function()
        if roll < 0.45:
            name = self.pick([n for n in (r"\mu", r"\nu", r"\rho") if n not in self.used] or [self.fresh(("f",))])
            self.used.add(name)
            fn = self.pick(["Mean", "Std", "LogSumExp", "Var"])
            self.reducers.append(name)
            return f"  {name} \\gets \\{fn} \\\\"
        name = self.fresh()
        shapes = [(), ()] + [v.shape for v in self.vars if v.kind == "f" and 0 not in v.shape]
        shape = self.pick(shapes)
        depth = self.max_depth
        value = self.scalar(depth) if shape == () else (
            self.vector(shape[0], depth) if len(shape) == 1 else self.matrix(*shape, depth))
        self.vars.append(Var(name, "f", shape))
        return f"  {name} \\gets {value} \\\\"

    def recurrence_group(self, over: Var) -> str:
        """Two set-builders over the indices of `over` that read each other (LANGUAGE.md 5):
        b reads a's current element, a reads b's earlier one through a `\\where` binding that
        uses the index (and so is computed only in the row that reads it)."""
        n = over.shape[0]
        a, b = self.fresh(("c",)), self.fresh(("h",))
        t = "t" if all(lp.name != "t" for lp in self.loops) else self.loop_name()
        z = f"z_{{{t}}}"
        upper = self.upper(n)
        self.loops.append(Loop(t, 0, n - 1))
        saved = self.vars
        self.vars = self.vars + [Var(f"{b}[{t}-1]", "f", ()), Var(f"{over.text}[{t}]", "f", ())]
        z_value = self.scalar(1)
        self.vars = saved + [Var(z, "f", ()), Var(f"{a}[{t}-1]", "f", ())]
        a_step = f"{a}[{t}-1] * 0.5 + {z}"
        if self.chance(0.5):
            a_step += f" * ({self.scalar(1)})"
        self.vars = saved + [Var(f"{a}[{t}]", "f", ()), Var(f"{b}[{t}-1]", "f", ())]
        b_step = f"\\tanh({a}[{t}]) + ({self.scalar(1)})"
        self.vars = saved
        a_base, b_base = self.scalar(1), self.scalar(1)
        self.loops.pop()
        self.vars.append(Var(a, "f", (n,)))
        self.vars.append(Var(b, "f", (n,)))
        a_el = f"\\begin{{cases}} {a_base} & {t} = 0 \\\\ {a_step} & \\text{{otherwise}} \\end{{cases}}"
        b_el = f"\\begin{{cases}} {b_base} & {t} = 0 \\\\ {b_step} & \\text{{otherwise}} \\end{{cases}}"
        return (f"  {a} \\gets \\{{ {a_el} \\}}_{{{t}=0}}^{{{upper}}} \\where {z} \\gets {z_value} \\\\\n"
                f"  {b} \\gets \\{{ {b_el} \\}}_{{{t}=0}}^{{{upper}}} \\\\")

    def local_function(self) -> str:
        name = self.pick([n for n in ("f", "F", r"\phi", r"\psi") if n not in self.used] or [self.fresh(("f", "F"))])
        self.used.add(name)
        arg = "\\theta"
        saved = self.vars
        self.vars = self.vars + [Var(arg, "f", ())]
        body = self.scalar(2)
        where = ""
        if self.chance(0.3):
            self.vars = self.vars + [Var("\\beta", "f", ())]
            where = f" \\where \\beta \\gets {arg} * 2"
            body = f"{body} + \\beta"
        self.vars = saved
        self.funcs.append((name, ()))
        return f"  {name}({arg}) \\gets {body}{where} \\\\"

    def recurrence(self, over: Var) -> str:
        """h over the indices of `over`: first or second order, scalar or vector elements."""
        n = over.shape[0]
        name = self.pick([n for n in ("h", "H", r"\eta") if n not in self.used] or [self.fresh(("h", "H"))])
        self.used.add(name)
        t = "t" if all(lp.name != "t" for lp in self.loops) else self.loop_name()
        upper = self.upper(n)
        order = self.rng.choice([1, 1, 2])
        self.loops.append(Loop(t, 0, n - 1))
        if len(over.shape) == 2:  # vector elements, with partial reads h[t-1, i]
            X = over
            d = X.shape[1]
            saved = self.vars
            self.vars = self.vars + [Var(f"{name}[{t}-1]", "f", (d,))]
            if self.chance(0.5):
                i = self.loop_name()
                self.loops.append(Loop(i, 0, d - 1))
                prev = self.pick([f"{name}[{t}-1, {i}]", f"{name}[{t}-1][{i}]", f"{name}_{{{t}-1, {i}}}"])
                self.vars = self.vars + [Var(prev, "f", ())]
                inner = self.scalar(2)
                self.loops.pop()
                step = f"\\{{ {inner} \\}}_{{{i}=0}}^{{{self.upper(d)}}}"
            else:
                step = self.vector(d, 2)
            self.vars = saved
            base = self.pick([f"{X.text}[0]", self.vector(d, 1)])
            element = f"\\begin{{cases}} {base} & {t} = 0 \\\\ {step} & \\text{{otherwise}} \\end{{cases}}"
            shape = (n, d)
        else:
            saved = self.vars
            prev = [Var(self.pick([f"{name}[{t}-1]", f"{name}_{{{t}-1}}"]), "f", ())]
            earlier = prev[0].text
            if order == 2:
                prev.append(Var(f"{name}[{t}-2]", "f", ()))
            self.vars = self.vars + prev
            step = self.scalar(2)
            self.vars = saved
            base = self.scalar(1)
            if order == 2:
                base2 = self.scalar(1)
                element = (f"\\begin{{cases}} {base} & {t} = 0 \\\\ {base2} & {t} = 1 \\\\ "
                           f"{step} & \\text{{otherwise}} \\end{{cases}}")
            elif self.chance(0.05):  # no base case: reading element -1 is a run-time error
                element = step
            elif earlier in step and self.chance(0.5):
                # the general case from an initial element (batch/initial.py starts the loop at t = 0)
                self.loops.pop()
                initial = self.scalar(0)
                self.loops.append(Loop(t, 0, n - 1))
                first = step.replace(earlier, f"({initial})")
                element = f"\\begin{{cases}} {first} & {t} = 0 \\\\ {step} & \\text{{otherwise}} \\end{{cases}}"
            else:
                element = f"\\begin{{cases}} {base} & {t} < 1 \\\\ {step} & \\text{{otherwise}} \\end{{cases}}"
            shape = (n,)
        self.loops.pop()
        self.vars.append(Var(name, "f", shape))
        return f"  {name} \\gets \\{{ {element} \\}}_{{{t}=0}}^{{{upper}}} \\\\"

    # ---- integer scalars ----
    def integer(self, depth: int) -> str:
        opts = [lambda: str(self.rng.randint(0, 3))]
        for v in self.vars:
            if v.kind == "i" and v.shape == ():
                opts.append(lambda v=v: v.text)
        for lp in self.loops:
            opts += [lambda lp=lp: lp.name] * 2
        for text in self.lengths.values():
            opts.append(lambda text=text: text)
        if depth > 0:
            vecs = self.vectors()
            if vecs:
                opts.append(lambda: f"\\{self.pick(['argmax', 'argmin'])}({self.pick(vecs).text})")
                opts.append(lambda: self.bigop(depth - 1, op=self.pick(["argmax", "argmin"])))
            opts.append(lambda: f"\\lfloor {self.scalar(depth - 1)} \\rfloor")
            opts.append(lambda: f"({self.integer(depth - 1)}) {self.pick(['+', '-', '*'])} {self.integer(depth - 1)}")
            if vecs:
                v = self.pick(vecs)
                opts.append(lambda v=v: f"\\sum_{{{self.loop_name()}=1}}^{{{self.length(v.shape[0])}}} {self.loop_name()}")
        return self.pick(opts)()

    # ---- index reads ----
    def index_expr(self, n: int):
        """(text, lo, hi) of an index into an axis of length n, from the loop indices in scope."""
        opts = []
        for lp in self.loops:
            opts += [(lp.name, lp.lo, lp.hi), (f"{lp.name} - 1", lp.lo - 1, lp.hi - 1),
                     (f"{lp.name}+1", lp.lo + 1, lp.hi + 1), (f"2{lp.name}", 2 * lp.lo, 2 * lp.hi),
                     (f"{self.length(n)} - 1 - {lp.name}", n - 1 - lp.hi, n - 1 - lp.lo)]
            if lp.cap is not None:
                other = next((o for o in self.loops if o.name == lp.cap[0]), None)
                if other is not None:
                    opts += [(f"{other.name}+{lp.name}", other.lo + lp.lo, lp.cap[1])] * 3
            for lp2 in self.loops:
                if lp2 is not lp and lp2.name < lp.name:
                    opts.append((f"{lp2.name} + {lp.name}", lp2.lo + lp.lo, lp2.hi + lp.hi))
        if opts and self.chance(0.85):
            return self.pick(opts)
        c = self.rng.randint(-n, n - 1) if n > 0 else 0
        if self.chance(0.04):
            c = self.pick([n, -n - 1])
        return (str(c), c, c)

    def read(self, depth: int) -> str:
        """A scalar read of an input or local, guarded where it might fall outside."""
        vecs = [v for v in self.vars if len(v.shape) == 1 and v.kind == "f"]
        mats = [v for v in self.vars if len(v.shape) == 2 and v.kind == "f"]
        ints = self.vars_of((), "i")
        intvecs = [v for v in self.vars if v.kind == "i" and len(v.shape) == 1]
        if not vecs and not mats:
            return self.leaf_number()
        if mats and (not vecs or self.chance(0.3)):
            M = self.pick(mats)
            (a, alo, ahi), (b, blo, bhi) = self.index_expr(M.shape[0]), self.index_expr(M.shape[1])
            text = self.pick([f"{M.text}[{a}, {b}]", f"{M.text}[{a}][{b}]"])
            guards = self.guards(a, alo, ahi, M.shape[0], f"{M.text}") + self.guards(b, blo, bhi, M.shape[1], None)
            return self.guarded(text, guards, depth)
        v = self.pick(vecs)
        n = v.shape[0]
        if ints and self.chance(0.2):  # an integer input as the index, guarded by the data (or not)
            k = self.pick(ints).text
            if self.chance(0.5):
                return f"{v.text}[{k}]"
            cond = self.condition(1)
            return (f"\\begin{{cases}} {v.text}[{k}] & {cond} \\\\ {self.scalar(max(depth - 1, 0))} "
                    f"& \\text{{otherwise}} \\end{{cases}}")
        if intvecs and self.chance(0.15):
            mv = self.pick(intvecs)
            return f"{v.text}[{mv.text}[{self.rng.randint(0, mv.shape[0] - 1)}]]"
        a, lo, hi = self.index_expr(n)
        # (`h_{2}` is also how fresh() names a later definition, which would then be read instead)
        subscript = v.text.isalpha() and not a.isdigit()
        spelled = self.pick([f"{v.text}[{a}]", f"{v.text}[{a}]", f"{v.text}_{{{a}}}"]) if subscript else f"{v.text}[{a}]"
        return self.guarded(spelled, self.guards(a, lo, hi, n, v.text), depth)

    def guards(self, a, lo, hi, n, name):
        out = []
        if lo == hi and -n <= lo <= n - 1:  # a constant in range (negative ones count from the end)
            return out
        if lo < 0:
            out.append(f"{a} \\geq 0" if self.chance(0.5) else f"{a} > -1")
        if hi > n - 1:
            out.append(f"{a} < {self.length(n)}" if self.chance(0.6) else f"{a} \\leq {n - 1}")
        return out

    def guarded(self, text: str, guards, depth: int) -> str:
        if not guards or self.chance(0.06):  # (unguarded now and then: the error paths)
            return text
        alt = self.leaf_number() if depth <= 0 or self.chance(0.5) else self.scalar(depth - 1)
        if len(guards) == 2 and self.chance(0.5):
            # the second guard as a later row: read only where the first did not apply
            g1 = guards[0].replace("\\geq", "<").replace("> -1", "< 0")
            return (f"\\begin{{cases}} {alt} & {g1} \\\\ {text} & {guards[1]} \\\\ {alt} & "
                    f"\\text{{otherwise}} \\end{{cases}}")
        cond = " \\land ".join(guards)
        if self.chance(0.3):  # the read in the otherwise row, after a row that catches the outside
            neg = " \\lor ".join(f"\\lnot ({g})" for g in guards)
            return f"\\begin{{cases}} {alt} & {neg} \\\\ {text} & \\text{{otherwise}} \\end{{cases}}"
        return f"\\begin{{cases}} {text} & {cond} \\\\ {alt} & \\text{{otherwise}} \\end{{cases}}"

    @staticmethod
    def barred(a: str) -> str:
        """a to stand between bars: bars inside bars are ambiguous (`|2 |y||`), so parenthesised."""
        return f"({a})" if "|" in a else a

    def leaf_number(self) -> str:
        return self.pick(["0.5", "2", "1", "1.5", "3", "0.25", r"\pi", "-1", "10^{-2}", "e"])

    # ---- float scalars ----
    def scalar(self, depth: int) -> str:
        rng = self.rng
        leaves = [v.text for v in self.vars if v.shape == () and v.kind == "f"]
        if depth <= 0 or self.chance(0.15):
            r = rng.random()
            if leaves and r < 0.45:
                return self.pick(leaves)
            if r < 0.8:
                return self.read(0)
            return self.leaf_number()
        d = depth - 1
        choice = rng.choices(
            ["read", "unary", "binary", "jux", "power", "reduce", "bigop", "cases", "indicator", "int",
             "func", "safe", "maxn", "leaf"],
            [5, 4, 6, 1, 2, 4, 5, 3, 1, 1, 1, 2, 1, 2])[0]
        if choice == "read":
            return self.read(d)
        if choice == "leaf" and leaves:
            return self.pick(leaves)
        if choice == "unary":
            fn = self.pick(UNARY)
            arg = self.scalar(min(d, 1)) if fn == r"\exp" else self.scalar(d)
            return f"{fn}({arg})"
        if choice == "safe":
            a = self.scalar(d)
            return self.pick([f"\\log(1 + ({a})^2)", f"\\sqrt{{1 + ({a})^2}}", f"|{self.barred(a)}|", f"\\clip({a}, -1, 1)",
                              f"\\lfloor {a} \\rfloor", f"\\lceil {a} \\rceil", f"\\StopGrad({a})", f"\\log({a})",
                              f"\\sqrt{{{a}}}", f"\\sqrt[3]{{{a}}}"])
        if choice == "binary":
            a, b = self.scalar(d), self.scalar(d)
            op = self.pick(["+", "-", "*", "*", "/", "\\cdot", "\\times", "frac", "odot"])
            if op == "/":
                return f"({a}) / (1 + ({b})^2)"
            if op == "frac":
                return f"\\frac{{{a}}}{{2 + \\tanh({b})}}"
            if op == "odot":
                return f"({a}) \\odot ({b})"
            return f"({a}) {op} ({b})"
        if choice == "jux":
            a = self.scalar(d)
            vecs = self.vectors()
            opts = [f"2 ({a})", f"\\frac{{1}}{{2}} ({a})", f"\\sqrt{{2}} ({a})", f"2 |{self.barred(a)}|"]
            if vecs:
                v = self.pick(vecs).text
                opts += [f"\\frac{{1}}{{2}} \\|{v}\\|^2", f"\\sqrt{{2}} \\|{v}\\|_1", f"3 \\|{v}\\|"]
            return self.pick(opts)
        if self.round2 and self.chance(0.15):
            return self.round2_scalar(d)
        if choice == "power":
            a = self.scalar(d)
            return self.pick([f"({a})^2", f"({a}) ** 3", f"({a})^{{2}}", f"2^{{{self.integer(1)}}}",
                              f"({self.integer(1)} + 1)^{{-1}}"])
        if choice == "reduce":
            return self.reduction(d)
        if choice == "bigop":
            return self.bigop(d)
        if choice == "cases":
            rows = [(self.scalar(d), self.condition(d)) for _ in range(rng.choice([1, 1, 2]))]
            body = " \\\\ ".join(f"{v} & {c}" for v, c in rows)
            if self.chance(0.93):
                body += f" \\\\ {self.scalar(d)} & \\text{{{self.pick(['otherwise', 'else'])}}}"
            return f"\\begin{{cases}} {body} \\end{{cases}}"
        if choice == "indicator":
            c = self.condition(d)
            ind = self.pick([f"\\mathbb{{1}}[{c}]", f"\\mathbb{{1}}({c})", f"\\mathbb{{1}}_{{{c}}}"])
            return f"{ind} * ({self.scalar(d)})"
        if choice == "int":
            return f"({self.integer(d)}) * 0.5" if self.chance(0.5) else f"({self.integer(d)} + 1)^{{-1}}"
        if choice == "func" and self.funcs:
            name, _ = self.pick(self.funcs)
            if name == "soft2":
                return f"soft({self.scalar(d)}, 2)"
            return f"{name}({self.scalar(d)})"
        if choice == "maxn":
            if self.chance(0.2):  # the constant infinity, where it leaves the value finite
                return self.pick([f"\\max({self.scalar(d)}, -\\infty)", f"\\min(\\infty, {self.scalar(d)})"])
            return f"\\{self.pick(['max', 'min', 'maximum', 'minimum'])}({self.scalar(d)}, {self.scalar(d)})"
        return self.read(d)

    def round2_scalar(self, d: int) -> str:
        """A log to a base, or a determinant, trace or log-determinant of a small matrix."""
        a = self.scalar(d)
        k = self.rng.choice([1, 2, 3])
        choice = self.pick(["log2", "log10", "logb", "det", "trace", "logdet", "entry"])
        if choice == "log2":
            return f"\\log_2 {{1 + ({a})^2}}"
        if choice == "log10":
            return f"\\log_{{10}}(1 + ({a})^2)"
        if choice == "logb":
            return f"\\log_{{3}}(2 + \\tanh({a}))"
        M = self.matrix(k, k, d)
        if choice == "det":
            return f"\\det({M})"
        if choice == "trace":
            return self.pick([f"\\operatorname{{tr}}({M})", f"\\Tr{{{M}}}"])
        if choice == "logdet":
            return f"\\log \\det(\\mathbf{{I}}_{{{k}}} + ({M}) @ ({M})^\\top)"
        return f"\\operatorname{{diag}}({M})[{self.rng.randint(0, k - 1)}]"

    def round2_vector(self, n: int, d: int) -> str:
        """A matrix literal row or column, a diagonal, or a solve with a well-conditioned matrix."""
        choice = self.pick(["row", "column", "diag", "solve"])
        if choice in ("row", "column"):
            sep = " & " if choice == "row" else " \\\\ "
            env = self.pick(["bmatrix", "pmatrix"])
            return f"\\begin{{{env}}} {sep.join(self.scalar(min(d, 1)) for _ in range(n))} \\end{{{env}}}"
        M = self.matrix(n, n, d)
        if choice == "diag":
            return f"\\operatorname{{diag}}({M})"
        return f"(\\mathbf{{I}}_{{{self.length(n)}}} + ({M}) @ ({M})^\\top)^{{-1}} @ ({self.vector(n, d)})"

    def round2_matrix(self, r: int, c: int, d: int) -> str:
        """A matrix literal of scalars, a diagonal matrix, or a multiple of the identity."""
        if r == c and self.chance(0.4):
            if self.chance(0.5):
                return f"\\operatorname{{diag}}({self.vector(r, d)})"
            return f"({self.scalar(d)}) * \\mathbf{{I}}_{{{self.length(r)}}}"
        if r == 1 or c == 1:  # a literal of one row or column is a vector: make rows of one-entry vectors
            return f"\\{{ {self.vector(c, d)} \\}}_{{{self.loop_name()}=0}}^{{{r - 1}}}"
        rows = " \\\\ ".join(" & ".join(self.scalar(min(d, 1)) for _ in range(c)) for _ in range(r))
        return f"\\begin{{bmatrix}} {rows} \\end{{bmatrix}}"

    def condition(self, depth: int) -> str:
        r = self.rng.random()
        if self.loops and r < 0.4:
            lp = self.pick(self.loops)
            return self.pick([f"{lp.name} = 0", f"{lp.name} > {lp.lo}", f"{lp.name} \\le {self.integer(0)}",
                              "2 > 2", f"{lp.name} \\ne 1"])
        if r < 0.9:
            return f"{self.scalar(max(depth - 1, 0))} {self.pick(COMPARISONS)} {self.scalar(0)}"
        return f"{self.scalar(0)} > 0 \\land {self.scalar(0)} < 1"

    def reduction(self, depth: int) -> str:
        shapes = [v.shape for v in self.vars if v.kind == "f" and len(v.shape) >= 1 and 0 not in v.shape]
        if not shapes:
            return self.scalar(0)
        shape = self.pick(shapes)
        x = self.vector(shape[0], depth) if len(shape) == 1 else self.matrix(*shape, depth)
        opts = [f"\\sum({x})", f"\\max({x})", f"\\min({x})", f"\\Mean({x})", f"\\Var({x})", f"\\Std({x})",
                f"\\LogSumExp({x})", f"\\|{x}\\|", f"\\|{x}\\|_1", f"\\|{x}\\|_\\infty", f"\\|{x}\\|_2"]
        opts += [f"{r}({x})" for r in self.reducers]
        if len(shape) == 1:
            y = self.vector(shape[0], max(depth - 1, 0))
            opts += [f"({x}) @ ({y})", f"({x}) \\cdot ({y})", f"\\prod({x})", f"\\MSE({x}, {y})",
                     f"\\SmoothL1({x}, {y})"]
            if shape[0] > 0:
                opts.append(f"\\CrossEntropy({x}, 0)")
        return self.pick(opts)

    def bound_template(self):
        """(var, lower text, upper text, lo, hi, cap): an index range over an axis in scope."""
        name = self.loop_name()
        lens = [n for n in self.lengths if n > 0] or [self.rng.randint(1, 4)]
        n = self.pick(lens)
        L = self.length(n)
        opts = [("0", self.upper(n), 0, n - 1, None), ("1", f"{L} - 1", 1, n - 1, None),
                ("1", "3", 1, 3, None), ("2", "1", 2, 1, None),
                ("\\frac{1}{2}", f"\\frac{{{L}}}{{2}}", 1, n // 2, None)]
        for lp in self.loops:
            opts += [("0", lp.name, 0, lp.hi, None), (lp.name, f"{L} - 1", lp.lo, n - 1, None),
                     ("0", f"{L} - 1 - {lp.name}", 0, n - 1 - lp.lo, (lp.name, n - 1))]
            if lp.lo >= 1:
                opts.append(("0", f"{lp.name} - 1", 0, lp.hi - 1, None))
        lower, upper, lo, hi, cap = self.pick(opts)
        return name, lower, upper, lo, hi, cap

    def bigop(self, depth: int, op: str | None = None) -> str:
        if len(self.loops) >= 3:
            return self.read(depth)
        name, lower, upper, lo, hi, cap = self.bound_template()
        op = op or self.rng.choices(["sum", "prod", "max", "min", "mathbb{E}", "argmax"], [6, 1, 2, 1, 1, 1])[0]
        self.loops.append(Loop(name, lo, hi, cap))
        body = self.scalar(depth)
        self.loops.pop()
        if op == "argmax":
            return f"\\argmax_{{{name}={lower}}}^{{{upper}}} ({body})"
        return f"\\{op}_{{{name}={lower}}}^{{{upper}}} ({body})"

    # ---- vectors ----
    def vector(self, n: int, depth: int) -> str:
        rng = self.rng
        same = [v.text for v in self.vars_of((n,), "f")]
        if depth <= 0 or self.chance(0.1):
            if same and self.chance(0.8):
                return self.pick(same)
            return self.setbuilder(n, 0)
        d = depth - 1
        if self.round2 and self.chance(0.12):
            return self.round2_vector(n, d)
        choice = rng.choices(["leaf", "elementwise", "unary", "setbuilder", "cases", "matvec", "rows", "slice",
                              "softmax", "onehot", "concat", "literal", "window", "indicator", "layer", "bigop"],
                             [3, 5, 3, 6, 3, 1, 1, 1, 1, 1, 1, 1, 2, 1, 3 if self.layers else 0, 2])[0]
        if choice == "leaf" and same:
            return self.pick(same)
        if choice == "elementwise":
            a = self.vector(n, d)
            b = self.vector(n, d) if self.chance(0.5) else self.scalar(d)
            if self.chance(0.5):
                a, b = b, a
            return f"({a}) {self.pick(ELEMENTWISE)} ({b})"
        if choice == "unary":
            fn = self.pick(UNARY[:-1] + (r"\maximum",))
            if fn == r"\maximum":
                return f"\\maximum({self.vector(n, d)}, {self.scalar(0)})"
            return f"{fn}({self.vector(n, d)})"
        if choice == "cases":
            v1, v2, v3 = self.vector(n, d), self.vector(n, d), self.vector(n, d)
            rows = f"{v1} & {v2} > {self.scalar(0)}"
            if self.chance(0.3):
                rows += f" \\\\ {self.scalar(d)} & {v3} < 0"
            return f"\\begin{{cases}} {rows} \\\\ {self.vector(n, 0)} & \\text{{otherwise}} \\end{{cases}}"
        if choice == "matvec":
            mats = [v for v in self.vars if len(v.shape) == 2 and v.shape[0] == n and v.kind == "f"]
            if mats:
                M = self.pick(mats)
                return f"{M.text} @ ({self.vector(M.shape[1], d)})"
            mats = [v for v in self.vars if len(v.shape) == 2 and v.shape[1] == n and v.kind == "f"]
            if mats:
                M = self.pick(mats)
                return f"{M.text}^\\top @ ({self.vector(M.shape[0], d)})"
        if choice == "rows":
            mats = [v for v in self.vars if len(v.shape) == 2 and v.kind == "f"]
            for M in mats:
                if M.shape[1] == n:
                    a, lo, hi = self.index_expr(M.shape[0])
                    if 0 <= lo and hi < M.shape[0]:
                        return f"{M.text}[{a}]"
                if M.shape[0] == n:
                    return f"{M.text}[:, {self.rng.randint(0, M.shape[1] - 1)}]"
        if choice == "slice":
            longer = [v for v in self.vectors() if v.shape[0] >= n]
            if longer:
                v = self.pick(longer)
                a = self.rng.randint(0, v.shape[0] - n)
                if a == 0 and n == v.shape[0] and self.chance(0.5):
                    return f"{v.text}[:]"
                if a == 0 and self.chance(0.5):
                    return f"{v.text}[:{n}]"
                if a + n == v.shape[0] and self.chance(0.5):
                    return f"{v.text}[{a}:]"
                return f"{v.text}[{a}:{a + n}]"
        if choice == "bigop" and len(self.loops) < 3:  # a big operator with a vector body
            name, lower, upper, lo, hi, cap = self.bound_template()
            op = self.rng.choices(["sum", "prod", "max", "min", "mathbb{E}"], [5, 1, 2, 1, 1])[0]
            self.loops.append(Loop(name, lo, hi, cap))
            body = self.vector(n, d)
            self.loops.pop()
            return f"\\{op}_{{{name}={lower}}}^{{{upper}}} ({body})"
        if choice == "layer":
            name, n_in, n_out = self.pick(self.layers)
            if n_in is None:  # the Kokoyi module q: a vector of the same length
                return f"{name}({self.vector(n, d)})"
            if n_out == n:  # (a float argument: a float layer given integers is no Kokoyi question)
                return f"{name}(0.5 * ({self.vector(n_in, d)}))"
        if choice == "softmax":
            return f"\\{self.pick(['Softmax', 'LogSoftmax'])}({self.vector(n, d)})"
        if choice == "onehot":
            ints = self.vars_of((), "i")
            if ints:
                return f"\\OneHot({self.pick(ints).text}, {self.length(n)})"
        if choice == "concat" and n >= 2:
            k = self.rng.randint(1, n - 1)
            a = self.vector(k, d) if k > 1 else self.scalar(d)
            return f"\\Concat({a}, {self.vector(n - k, d)})"
        if choice == "literal":
            return f"\\{{ {self.pick(['2', '0.5', '1', '-1'])} \\}}_{{{self.loop_name()}=0}}^{{{self.upper(n)}}}"
        if choice == "window":
            return self.window(n, d)
        if choice == "indicator":
            v = self.vector(n, d)
            return f"\\mathbb{{1}}[{v} > 0] * ({self.vector(n, d)})"
        return self.setbuilder(n, d)

    def setbuilder(self, n: int, depth: int) -> str:
        if len(self.loops) >= 3:
            same = [v.text for v in self.vars_of((n,), "f")]
            return self.pick(same) if same else f"\\{{ {self.leaf_number()} \\}}_{{{self.loop_name()}=0}}^{{{n - 1}}}"
        name = self.loop_name()
        self.loops.append(Loop(name, 0, n - 1))
        element = self.scalar(max(depth, 1))
        self.loops.pop()
        return f"\\{{ {element} \\}}_{{{name}=0}}^{{{self.upper(n)}}}"

    def window(self, n: int, depth: int) -> str:
        """Pooling windows: `\\{ \\max_{j=0}^{w-1} x[s i + j] \\}_{i=0}^{n-1}`, in range by construction."""
        vecs = self.vectors()
        if not vecs or len(self.loops) >= 2:
            return self.setbuilder(n, depth)
        v = self.pick(vecs)
        L = v.shape[0]
        s = self.rng.choice([1, 2])
        w = L - s * (n - 1)
        if w < 1:
            return self.setbuilder(n, depth)
        w = self.rng.randint(1, w)
        i, op = self.loop_name(), self.pick(["max", "sum", "min", "mathbb{E}"])
        j = next(x for x in LOOP_NAMES if x not in {lp.name for lp in self.loops} | {i})
        idx = f"{s}{i} + {j}" if s > 1 else f"{i} + {j}"
        return f"\\{{ \\{op}_{{{j}=0}}^{{{w - 1}}} {v.text}[{idx}] \\}}_{{{i}=0}}^{{{self.upper(n)}}}"

    # ---- matrices ----
    def matrix(self, r: int, c: int, depth: int) -> str:
        if depth > 0 and self.chance(0.12):  # a matrix product through an axis in scope
            k = self.pick(sorted({n for n in self.lengths if n > 0} | {1, 2}))
            return f"({self.matrix(r, k, depth - 1)}) @ ({self.matrix(k, c, depth - 1)})"
        same = [v.text for v in self.vars_of((r, c), "f")]
        trans = [v.text for v in self.vars_of((c, r), "f")]
        if depth <= 0:
            if same and self.chance(0.7):
                return self.pick(same)
            if trans and self.chance(0.5):
                return f"{self.pick(trans)}^\\top"
        d = max(depth - 1, 0)
        if self.round2 and self.chance(0.2):
            return self.round2_matrix(r, c, d)
        choice = self.rng.choice(["leaf", "elementwise", "table", "nested", "rows", "outer", "unary"])
        if choice == "leaf" and (same or trans):
            return self.pick(same) if same else f"{self.pick(trans)}^\\top"
        if choice == "elementwise":
            a = self.matrix(r, c, d)
            b = self.matrix(r, c, d) if self.chance(0.5) else self.scalar(d)
            return f"({a}) {self.pick(['+', '-', '*'])} ({b})"
        if choice == "unary":
            return f"{self.pick(UNARY[:-1])}({self.matrix(r, c, d)})"
        if len(self.loops) >= 2:
            return self.pick(same) if same else f"\\{{ {self.leaf_number()} \\}}_{{i=0, j=0}}^{{{r - 1}, {c - 1}}}"
        i = self.loop_name()
        self.loops.append(Loop(i, 0, r - 1))
        j = self.loop_name()
        if choice == "rows":  # a set-builder of vectors
            row = self.vector(c, d)
            self.loops.pop()
            return f"\\{{ {row} \\}}_{{{i}=0}}^{{{self.upper(r)}}}"
        self.loops.append(Loop(j, 0, c - 1))
        element = self.scalar(max(d, 1))
        if choice == "outer" and self.chance(0.5):
            element = f"({element}) * \\mathbb{{1}}[{j} \\leq {i}]"
        self.loops.pop()
        self.loops.pop()
        if choice == "nested":
            return f"\\{{ \\{{ {element} \\}}_{{{j}=0}}^{{{self.upper(c)}}} \\}}_{{{i}=0}}^{{{self.upper(r)}}}"
        return f"\\{{ {element} \\}}_{{{i}=0, {j}=0}}^{{{self.upper(r)}, {self.upper(c)}}}"


def generate(seed: int, max_depth: int = 3, round2: bool = False) -> Program:
    """Program number seed; round2 also writes the constructs of issue 13 (see the module doc)."""
    return Generator(seed, max_depth, round2).program()
