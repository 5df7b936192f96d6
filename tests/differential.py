"""The differential fuzzer: compiled Kokoyi modules against the reference interpreter, on every path.

For each program (tests/program_gen.py, or a hand-written one) it draws inputs and compares the
compiled module with tests/reference.py on each path of contract section 8: one sample
(batch_level all 0), a batch on every input (level 1, then level 2) and mixed levels (some
inputs shared, others batched with one axis, now and then with two). On each path it checks

* values: allclose with rtol 1e-5 (float32: 1e-4) and atol 1e-6 (float32: 1e-5) times the
  magnitude of the expected output, NaN equal to NaN, integers exactly;
* dtypes and shapes: exactly equal;
* errors: the reference raises a RefRuntimeError for some sample exactly when the module raises
  a KokoyiRuntimeError, and the module's message names one of the reference's `file:line:col`;
* gradients with respect to every float input and parameter, of a random weighted sum of the
  outputs: the same values, non-finite at the same places, within the values' tolerance plus
  64 ulps of the largest gradient of that sum (a gradient of terms that cancel is zero up to
  their rounding, which its own size does not show).

A float32 difference in values or gradients is counted as ill-conditioned, not as a finding,
when the reference itself changes as much in float64 (a gradient at a point where the math has
none, a comparison of nearly equal values): rounding, not a defect; and so is one where the
module is as near the reference in float64 as the float32 reference is, up to the tolerance
and four times the float32 reference's own rounding error (another order of float32 operations
rounds differently: a sine of a large argument). So is any difference on a
path where the reference compared two floats that differ by rounding alone (b <= c with c
equal to b up to rounding: another order of summing may decide it the other way), or solved
a matrix too ill-conditioned for the tolerance.

    findings, stats = check(program)             # a program_gen.Program
    print(reproduction(findings[0]))              # source, inputs, path and what differs

A reference that raises anything else means the generator wrote a program outside the
language; such programs are counted as `invalid` and not compared.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
import zlib
from dataclasses import dataclass, field

import reference
import torch
from program_gen import Input, Program

FILENAME = "diff.kyi"
CANCELLING_ULPS = 64  # rounding slack of a gradient, in units of the largest one (see _check_gradients)
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


@dataclass
class Path:
    name: str
    levels: list
    batch_shape: tuple


@dataclass
class Finding:
    kind: str  # "value", "dtype", "shape", "missing error", "unexpected error", "error position", "gradient", "compile"
    path: str
    levels: list
    message: str
    source: str
    inputs: dict = field(default_factory=dict)  # name -> nested lists (the call's inputs)
    params: list = field(default_factory=list)
    seed: int | None = None

    def key(self) -> str:
        """What makes two findings the same defect, roughly: kind, path kind and message shape."""
        text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", self.message.splitlines()[0])[:100]
        return f"{self.kind} | {self.path.split(' ')[0]} | {text}"

    def as_json(self) -> dict:
        return {"kind": self.kind, "path": self.path, "levels": self.levels, "message": self.message,
                "source": self.source, "inputs": self.inputs, "params": self.params, "seed": self.seed}


def reproduction(f: Finding) -> str:
    lines = [f"[{f.kind}] on {f.path} (batch_level={f.levels})" + (f", seed {f.seed}" if f.seed is not None else ""),
             f.message, "source:", f.source.rstrip(), "inputs:"]
    lines += [f"  {k} = {v}" for k, v in f.inputs.items()]
    if f.params:
        lines.append(f"  params = {f.params}")
    return "\n".join(lines)


def program(source: str, inputs: dict, params=(), module: str = "P") -> Program:
    """A hand-written program whose every sample takes these inputs (name -> tensor)."""
    specs = []
    for name, value in inputs.items():
        value = torch.as_tensor(value)
        kind = "f" if value.is_floating_point() else "i"
        specs.append(Input(name, kind, tuple(value.shape), fixed=value))
    return Program(source, module, specs, [("value", p) for p in params])


def batched_code(source: str, inputs: dict, params=(), filename: str = FILENAME, seed: int = 0,
                 errors: bool = False) -> list[str]:
    """check() of a hand-written program (no findings, at least three paths), then the code
    module P generates for a batch of three of every input: one source per specialisation
    (errors: a KokoyiRuntimeError of that call is expected on some paths and let pass)."""
    import kokoyi
    from kokoyi.test_utils import Host

    findings, stats = check(program(source, inputs, params), seed=seed)
    assert not findings, "\n\n".join(reproduction(f) for f in findings)
    assert stats.paths >= 3
    kokoyi.compile(source, filename=filename)
    forward = kokoyi.symbol["P"]
    args = [torch.as_tensor(v).expand((3,) + tuple(torch.as_tensor(v).shape)) for v in inputs.values()]
    try:
        Host(params[0] if params else None, forward)(*args, batch_level=[1] * len(args))
    except kokoyi.KokoyiRuntimeError:
        if not errors:
            raise
    return [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]


BATCH_SHAPES = {"one sample": (), "batch level 1": (3,), "batch level 2": (2, 2), "mixed levels": (3,),
                "mixed levels 0/2": (2, 2)}


def paths_for(n_inputs: int, rng) -> list[Path]:
    out = [Path("one sample", [0] * n_inputs, ()), Path("batch level 1", [1] * n_inputs, (3,)),
           Path("batch level 2", [2] * n_inputs, (2, 2))]
    if n_inputs >= 2:
        mixed = [rng.choice([0, 1]) for _ in range(n_inputs)]
        if len(set(mixed)) == 1:
            mixed[rng.randrange(n_inputs)] = 1 - mixed[0]
        out.append(Path("mixed levels", mixed, (3,)))
        if rng.random() < 0.5:  # now and then shared inputs beside a batch of two axes
            out.append(Path("mixed levels 0/2", [2 * k for k in mixed], (2, 2)))
    return out


def sample_input(spec: Input, g: torch.Generator) -> torch.Tensor:
    if spec.fixed is not None:
        return torch.as_tensor(spec.fixed).clone()
    if spec.kind == "i":
        lo, hi = spec.int_range
        return torch.randint(lo, hi + 1, spec.shape, generator=g)
    if spec.dtype == "int64":
        return torch.randint(-3, 4, spec.shape, generator=g)
    x = torch.randn(spec.shape, generator=g, dtype=torch.float64)
    if x.numel() > 1 and torch.rand((), generator=g) < 0.1:  # ties and zeros now and then
        x = x.round()
    return x.to(DTYPES[spec.dtype])


def parameters(program: Program, seed: int = 0):
    """What get_parameters() returns for program (made afresh, seeded; after it is compiled)."""
    import kokoyi

    g = torch.Generator().manual_seed(zlib.crc32(f"params:{seed}".encode()))
    values = []
    for kind, *spec in program.params:
        if kind == "tensor":
            shape, dtype = spec
            values.append(torch.nn.Parameter(torch.randn(shape, generator=g, dtype=DTYPES[dtype])))
        elif kind == "linear":
            n_in, n_out, dtype = spec
            layer = torch.nn.Linear(n_in, n_out).to(DTYPES[dtype])
            with torch.no_grad():
                for p in layer.parameters():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            values.append(layer)
        elif kind == "modulelist":
            sizes, dtype = spec
            layers = torch.nn.ModuleList([torch.nn.Linear(a, b).to(DTYPES[dtype]) for a, b in sizes])
            with torch.no_grad():
                for p in layers.parameters():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            values.append(layers)
        elif kind == "kokoyi":
            # As users write it (LANGUAGE.md 7): a module class whose forward is the symbol.
            nested = type(f"Nested{spec[0]}", (torch.nn.Module,), {"forward": kokoyi.symbol[spec[0]]})
            values.append(nested())
        else:
            values.append(spec[0])
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _param_leaves(params) -> list:
    out = []
    for p in params if isinstance(params, tuple) else [params]:
        if isinstance(p, torch.nn.Module):
            out += [q for q in p.parameters() if q.requires_grad]
        elif isinstance(p, torch.Tensor) and p.requires_grad:
            out.append(p)
    return out


def _flat(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _tolerance(dtype):
    return (1e-4, 1e-5) if dtype in (torch.float32, torch.float16, torch.bfloat16) else (1e-5, 1e-6)


def _compare(got, want, what: str):
    """None when got matches want (shape, dtype, values), else (kind, message)."""
    if not isinstance(got, torch.Tensor):
        return "value", f"{what}: expected a tensor, got {type(got).__name__} {got!r}"
    if tuple(got.shape) != tuple(want.shape):
        return "shape", f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if got.dtype != want.dtype:
        return "dtype", f"{what}: dtype {got.dtype}, expected {want.dtype}"
    a, b = got.detach(), want.detach()
    if not (a.is_floating_point() or b.is_floating_point()):
        if torch.equal(a, b):
            return None
        return "value", f"{what}: values differ\n got {a}\nwant {b}"
    if not close(a, b):
        return "value", f"{what}: values differ\n got {a}\nwant {b}"
    return None


def close(a: torch.Tensor, b: torch.Tensor, slack: float = 0.0) -> bool:
    """allclose in the dtype's tolerance, scaled by b's magnitude, plus an absolute slack;
    NaN equals NaN."""
    rtol, atol = _tolerance(b.dtype)
    a, b = a.double(), b.double()
    scale = max(1.0, _finite_max([b]))
    return torch.allclose(a, b, rtol=rtol, atol=atol * scale + slack, equal_nan=True)


def _finite_max(xs) -> float:
    """The largest finite magnitude in the tensors xs (0 when there is none)."""
    out = 0.0
    for x in xs:
        finite = x.detach()[torch.isfinite(x.detach())]
        if finite.numel():
            out = max(out, float(finite.abs().max()))
    return out


def _tolist(x):
    return x.tolist() if isinstance(x, torch.Tensor) else x


def _stack(outs, bshape):
    if isinstance(outs[0], tuple):
        return tuple(_stack([o[i] for o in outs], bshape) for i in range(len(outs[0])))
    if not bshape:
        return outs[0]
    t = torch.stack(outs)
    return t.reshape(tuple(bshape) + tuple(t.shape[1:]))


@dataclass
class Stats:
    programs: int = 0
    compiled: int = 0
    invalid: int = 0  # the reference rejects the program: outside the language (a generator slip)
    paths: int = 0
    error_paths: int = 0  # paths on which the reference raises (the error is what was compared)
    ill_conditioned: int = 0  # differences the float64 reference shows to be rounding: not compared
    findings: int = 0

    def add(self, other: Stats) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def check(program: Program, seed: int = 0, paths=None) -> tuple[list[Finding], Stats]:
    """Compare program's compiled module with the reference on every path."""
    import random

    import kokoyi
    from kokoyi.test_utils import Host

    stats = Stats(programs=1)
    findings: list[Finding] = []

    def finding(kind, path, message, args=None):
        inputs = {} if args is None else {spec.name: _tolist(a) for spec, a in zip(program.inputs, args)}
        findings.append(Finding(kind, path.name if path else "compile", path.levels if path else [], message,
                                program.source, inputs, [list(map(str, p)) for p in program.params], program.seed))

    try:
        kokoyi.compile(program.source, filename=FILENAME)
    except kokoyi.KokoyiError as err:
        finding("compile", None, f"{type(err).__name__}: {err}")
        stats.findings = len(findings)  # (counted: a generated program is well-formed, so the compiler must take it)
        return findings, stats
    stats.compiled = 1
    params = parameters(program, seed)
    host = Host(params, kokoyi.symbol[program.module])
    n = len(program.inputs)
    for path in paths or paths_for(n, random.Random(seed)):
        # inputs depend only on the seed and the path, so one path can be checked alone (shrinking)
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{path.name}".encode()))
        problem = _check_path(program, host, params, path, g, stats)
        if problem == "invalid":
            stats.invalid = 1
            return [], stats
        if problem is not None:
            kind, message, args = problem
            finding(kind, path, message, args)
    stats.findings = len(findings)
    return findings, stats


def _draw(program: Program, path: Path, g):
    shared = [sample_input(spec, g) for spec in program.inputs]
    idxs = list(itertools.product(*map(range, path.batch_shape)))
    samples = {idx: [sample_input(spec, g) for spec in program.inputs] for idx in idxs}
    args = []
    for j, level in enumerate(path.levels):
        if level == 0:
            args.append(shared[j])
        else:
            t = torch.stack([samples[idx][j] for idx in idxs])
            args.append(t.reshape(tuple(path.batch_shape) + tuple(t.shape[1:])))
    args = [a.detach().clone().requires_grad_(True) if a.is_floating_point() else a for a in args]
    return args, idxs


def _check_path(program: Program, host, params, path: Path, g, stats: Stats):
    """None, "invalid", or (kind, message, args) for the first difference on this path."""
    import kokoyi

    args, idxs = _draw(program, path, g)
    ref_outs, ref_errors = [], []
    conditions: list = []  # n * cond(A) of the matrices the reference solved, inverted or took det of
    for idx in idxs or [()]:
        sample = [a if level == 0 else a[idx] for a, level in zip(args, path.levels)]
        try:
            ref_outs.append(reference.run(program.source, program.module, sample, params, filename=FILENAME,
                                          conditions=conditions))
        except reference.RefRuntimeError as err:
            ref_errors.append(err)
        except Exception:  # noqa: BLE001 - the program is outside the language the reference knows
            return "invalid"
    stats.paths += 1
    try:
        got = host(*args, batch_level=path.levels)
    except kokoyi.KokoyiRuntimeError as err:
        if not ref_errors:
            return "unexpected error", f"the module raised, the reference did not: {err}", args
        allowed = {p for e in ref_errors for p in e.positions}
        if not any(p in str(err) for p in allowed):
            # Several reads of a sample may fail; batched code runs a loop's iterations together,
            # so it may meet another of them first (docs/reference/choices.md#which-error): every
            # read that fails for some sample is a right answer.
            allowed |= _failed_reads(program, params, path, args, idxs)
        if not any(p in str(err) for p in allowed):
            message = f"the module's error names none of {sorted(allowed)}: {str(err).splitlines()[0]}"
            return "error position", message, args
        stats.error_paths += 1
        return None
    except Exception as err:  # noqa: BLE001 - any other exception from a module is itself the finding
        want = f" (the reference raises: {ref_errors[0]})" if ref_errors else ""
        return "crash", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{want}", args
    if ref_errors:
        return "missing error", f"the reference raises {ref_errors[0]}, the module returned {got}", args
    want = _stack(ref_outs, path.batch_shape)
    got_l, want_l = _flat(got), _flat(want)
    if len(got_l) != len(want_l):
        return "shape", f"{len(got_l)} outputs, expected {len(want_l)}", args
    wide = None  # the reference in float64: where it disagrees with itself, the math is ill-conditioned
    kappa = max(conditions, default=1.0)
    for i, (a, b) in enumerate(zip(got_l, want_l)):
        problem = _compare(a, b, f"output {i}")
        if problem is not None and problem[0] == "value" and _within_conditioning(a, b, kappa):
            stats.ill_conditioned += 1
            return None
        if problem is not None and problem[0] == "value":
            wide = _wide(program, params, path, args, idxs) if wide is None else wide
            if wide and (not close(b.detach(), wide[i].detach().to(b.dtype))
                         or _rounding_explains(a, b, wide[i])):
                stats.ill_conditioned += 1
                return None
        if problem is not None:
            return (*problem, args)
    weights = torch.Generator().manual_seed(int(torch.randint(2 ** 31, (), generator=g)))
    problem = _check_gradients(got_l, want_l, args, params, weights.get_state(), kappa)
    if problem is not None and kappa > 1.0 and _check_gradients(got_l, want_l, args, params, weights.get_state(),
                                                                 kappa, True) is None:
        stats.ill_conditioned += 1
        return None
    if problem is not None:
        wide = _wide(program, params, path, args, idxs) if wide is None else wide
        leaves = _own_leaves(params)
        if wide and len(wide) == len(want_l) and (
                _check_gradients(wide, want_l, args, leaves, weights.get_state())
                or _check_gradients(got_l, want_l, args, leaves, weights.get_state(), truth=wide) is None):
            stats.ill_conditioned += 1
            return None
    return problem


def _failed_reads(program: Program, params, path: Path, args, idxs) -> set:
    """The positions of every read out of range, for every sample of the path."""
    found: list = []
    for idx in idxs or [()]:
        sample = [a if level == 0 else a[idx] for a, level in zip(args, path.levels)]
        try:
            reference.run(program.source, program.module, sample, params, filename=FILENAME, failed_reads=found)
        except Exception:  # noqa: BLE001, S112 - another error stops that sample: its reads so far count
            continue
    return set(found)


def _wide(program, params, path, args, idxs) -> list:
    out = _reference_in_float64(program, params, path, args, idxs)
    return [] if out is None else _flat(out)


def _own_leaves(params):
    """params, or () where _reference_in_float64 runs copies of their layers (the gradients of
    the second opinion are then compared for the inputs alone)."""
    ps = params if isinstance(params, tuple) else (params,)
    return () if any(isinstance(p, torch.nn.Module) for p in ps) else params


def _reference_in_float64(program: Program, params, path: Path, args, idxs):
    """A second opinion of the reference: its output with every float input (and tensor
    parameter) in float64 — or, for a program in float64 already, with the inputs moved by a
    relative 1e-12 (rounding-sized); layers run as float64 copies. Where that changes a value
    or gradient beyond the tolerance, the math is ill-conditioned there (a standard deviation
    at zero variance, a gradient that is two equal terms cancelling)."""
    if all(not a.is_floating_point() or a.dtype == torch.float64 for a in args):
        return _run_reference(program, params, path, _moved(args, 1e-12), idxs)
    wide_args = [a.double() if a.is_floating_point() else a for a in args]
    ps = params if isinstance(params, tuple) else (params,)
    try:  # layers in float64: copies (whose parameters are other leaves: see _own_leaves)
        ps = tuple(p.double() if isinstance(p, torch.Tensor) and p.is_floating_point()
                   else copy.deepcopy(p).double() if isinstance(p, torch.nn.Module) else p for p in ps)
    except Exception:  # noqa: BLE001 - a parameter that cannot be copied: no second opinion
        return None
    return _run_reference(program, ps if isinstance(params, tuple) else ps[0], path, wide_args, idxs)


def _moved(args, relative: float) -> list:
    """The float inputs moved by a random relative `relative` (rounding-sized)."""
    g = torch.Generator().manual_seed(12)
    return [a + a.detach() * relative * torch.randn(a.shape, generator=g, dtype=a.dtype)
            if a.is_floating_point() else a for a in args]


def _run_reference(program: Program, params, path: Path, args, idxs):
    outs = []
    try:
        for idx in idxs or [()]:
            sample = [a if level == 0 else a[idx] for a, level in zip(args, path.levels)]
            outs.append(reference.run(program.source, program.module, sample, params, filename=FILENAME))
    except Exception:  # noqa: BLE001 - (a parameter that cannot run in float64): no second opinion
        return None
    return _stack(outs, path.batch_shape)


def _within_conditioning(a, b, kappa: float) -> bool:
    """Whether a and b (float tensors of one shape) differ by no more than linear algebra
    on matrices of condition kappa (n * cond(A), recorded by the reference) can make them: a
    relative kappa * eps of the dtype; an infinite or NaN matrix is infinitely ill-conditioned,
    so any output may differ, integers and truth values made from it too (seed 39004051: the
    ceiling of the determinant of a singular matrix, +-1e-8, is 1 or 0)."""
    if kappa <= 1.0 or not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return False
    if not math.isfinite(kappa):
        return True  # also what is rounded or compared from it: ceil(det) of a singular matrix
    if not (a.is_floating_point() and b.is_floating_point()):
        return False
    rtol = kappa * torch.finfo(b.dtype).eps
    if rtol <= _tolerance(b.dtype)[0]:
        return False
    a, b = a.detach().double(), b.detach().double()
    scale = max(1.0, _finite_max([b]))
    return torch.allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True)


def _check_gradients(got, want, args, params, weight_state, kappa=1.0, conditioned=False, truth=None):
    """None, or a finding when the gradients of a random weighted sum of got and of want differ.

    A gradient may be a sum of infinities: of the samples' gradients of an input shared by a
    batch's samples (or a parameter), or of the terms of a value read several times in one
    sample (a set-builder of copies of one cube root at 0). The reference adds them one at a
    time (inf + -inf is NaN), compiled code may add the weights first (w1 + w2 times inf is
    ±inf, a value computed once and broadcast). Both are undefined: where both gradients are
    non-finite at the same places, any non-finite value matches any other there.

    With truth (the reference's outputs in float64), got's gradients are compared with truth's
    instead, allowing a few times the rounding error of want's (_rounding_explains)."""
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad] + _param_leaves(params)
    outs = (got, want) if truth is None else (got, want, truth)
    kept = [i for i, (a, b) in enumerate(zip(got, want)) if isinstance(a, torch.Tensor) and b.is_floating_point()]
    if not leaves or not kept:
        return None
    g = torch.Generator()
    g.set_state(weight_state)
    ws = [torch.randn(want[i].shape, generator=g, dtype=torch.float64) for i in kept]
    grads = []
    for k, side in enumerate(outs):
        terms = [(side[i] * w.to(side[i].dtype)).sum() for i, w in zip(kept, ws) if side[i].requires_grad]
        if terms:
            try:
                gs = torch.autograd.grad(sum(terms), leaves, allow_unused=True, retain_graph=True)
            except RuntimeError as err:  # the module's backward failing is a finding, not the checker's fault
                if k != 0:
                    raise
                return "crash", f"the gradient raised RuntimeError: {str(err).splitlines()[0]}", args
        else:
            gs = [None] * len(leaves)
        grads.append([torch.zeros_like(leaf) if x is None else x for leaf, x in zip(leaves, gs)])
    # A gradient that is a sum of terms cancelling (s + (x - s)) is zero up to the rounding of
    # those terms, whose size the gradient alone does not show: allow a few ulps of the
    # largest gradient of this weighted sum (seed 30003195: -2.3e-6 against 0 beside 1e10).
    largest = _finite_max(grads[1])
    for i, (a, b, *t) in enumerate(zip(*grads)):
        if tuple(a.shape) == tuple(b.shape):
            bad_a, bad_b = ~torch.isfinite(a), ~torch.isfinite(b)
            if torch.equal(bad_a, bad_b):  # non-finite at the same places: compare the rest
                a, b = torch.where(bad_a, 0, a), torch.where(bad_b, 0, b)
        if conditioned and _within_conditioning(a, b, kappa):
            continue
        if t and tuple(a.shape) == tuple(b.shape) and _rounding_explains(a, b, t[0]):
            continue
        cancel = CANCELLING_ULPS * torch.finfo(b.dtype).eps * largest if b.is_floating_point() else 0.0
        if tuple(a.shape) != tuple(b.shape) or not close(a, b, cancel):
            which = [f"input {k}" for k, x in enumerate(args) if x is leaves[i]] or ["a parameter"]
            return "gradient", f"gradient of {which[0]}: differs\n got {a}\nwant {b}", args
    return None


def _rounding_explains(got, want, truth) -> bool:
    """Whether got is within the tolerance of truth (the float64 reference) widened by four times
    the float32 reference want's own rounding error, everywhere: another order of float32
    operations rounds differently, by about as much (a sine of a large argument)."""
    rtol, atol = _tolerance(want.dtype)
    g, w, t = (x.detach().double() for x in (got, want, truth))
    scale = max(1.0, _finite_max([t]))
    slack = rtol * t.abs() + atol * scale + 4 * (w - t).abs()
    ok = ((g - t).abs() <= slack) | (torch.isnan(g) & torch.isnan(t)) | (torch.isinf(g) & (g == t))
    return bool(ok.all())


# ---- shrinking ----------------------------------------------------------------------------------


def signature(f: Finding) -> tuple:
    """What a smaller program must still show to count as the same finding."""
    text = re.sub(r"diff\.kyi:\d+(:\d+)?", "POS", f.message.splitlines()[0])
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return f.kind, f.path, text[:70]


def _split_top(text: str, sep: str = ",") -> list[str]:
    """text split at sep outside any brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _groups(text: str):
    """(start, end) of every parenthesised group `( ... )` in text, outermost first."""
    stack, out = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            out.append((stack.pop(), i + 1))
    return sorted(out, key=lambda se: se[0] - se[1])


def _cases_blocks(text: str):
    """(start, end) of every `\\begin{cases} ... \\end{cases}` in text, largest first."""
    out, stack = [], []
    for m in re.finditer(r"\\(begin|end)\{cases\}", text):
        if m.group(1) == "begin":
            stack.append(m.start())
        elif stack:
            out.append((stack.pop(), m.end()))
    return sorted(out, key=lambda se: se[0] - se[1])


def _candidates(source: str):
    """Smaller variants of source: a statement dropped, one output kept, a group replaced by 1."""
    lines = source.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(("\\Module", "\\EndModule", "\\Return")):
            continue
        if stripped.startswith("\\Function"):
            end = next(j for j in range(i, len(lines)) if lines[j].strip().startswith("\\EndFunction"))
            yield "\n".join(lines[:i] + lines[end + 1:]) + "\n"
        elif not stripped.startswith(("\\EndFunction", "y \\gets", "\\Return c")):
            yield "\n".join(lines[:i] + lines[i + 1:]) + "\n"
    for i, line in enumerate(lines):
        if line.strip().startswith("\\Return") and "\\where" not in line:
            body = line.strip()[len("\\Return"):].rstrip(" \\")
            outs = _split_top(body)
            if len(outs) > 1:
                for out in outs:
                    yield "\n".join(lines[:i] + [f"  \\Return {out.strip()} \\\\"] + lines[i + 1:]) + "\n"
    for start, end in _cases_blocks(source) + _groups(source):
        if end - start > 3:
            yield source[:start] + "(1)" + source[end:]
            yield source[:start] + "(0.5)" + source[end:]


def shrink(f: Finding, prog: Program, seed: int = 0, budget: int = 150, seconds: float = 3.0) -> Finding:
    """A smaller program showing the same finding (greedy: the first smaller variant that does),
    trying at most budget variants for at most about `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    want = signature(f)
    path = Path(f.path, f.levels, BATCH_SHAPES.get(f.path, ()))
    best, tries, improved = f, 0, True
    while improved and tries < budget and time.monotonic() <= deadline:
        improved = False
        for cand in _candidates(best.source):
            if tries >= budget or time.monotonic() > deadline:
                break
            tries += 1
            trial = Program(cand, prog.module, prog.inputs, prog.params, prog.seed, prog.float_dtype)
            try:
                found, _ = check(trial, seed, paths=[path])
            except Exception:  # noqa: BLE001, S112 - a variant outside the language: not smaller
                continue
            same = [g for g in found if signature(g) == want]
            if same and len(cand) < len(best.source):
                best, improved = same[0], True
                break
    return best
