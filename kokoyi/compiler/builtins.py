"""Built-in functions, reductions and constants, kept as data.

Each entry says how many arguments it takes, how the per-sample rank of its result follows
from its arguments' ranks, which core-IR primitive it lowers to (and so which batch rule
and which printer template it gets: kokoyi/compiler/batch/rules.py, emit/torch_eager.py), and how it
renders. The docs' built-in table is generated from this module.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinFunction:
    name: str  # source word: `\Softmax` -> "Softmax"
    runtime: str | None  # its core-IR primitive, where `ir` does not name another one
    min_args: int
    max_args: int | None  # None: any number
    rank: str  # a key of RANK_RULES
    render: str  # LaTeX shown in notebooks and papers
    meaning: str  # one line for the docs: the PyTorch meaning, per sample
    ir: str | None = None  # core-IR primitive (kokoyi/compiler/ir.py) when not `runtime`
    form: str = "call"  # "call": `\word(x)` or the bare word; "subscript": `\mathbf{I}_{n}`
    spelling: str = ""  # how the source writes it when that is not the command `\name`

    @property
    def source(self) -> str:
        """How a program writes it: `\\det`, `\\operatorname{tr}`, `\\mathbf{I}_{n}`."""
        return self.spelling or "\\" + self.name

    @property
    def primitive(self) -> str:
        """The core-IR primitive a call lowers to."""
        return self.ir or self.runtime

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"{self.min_args} or more arguments"
        if self.min_args == self.max_args:
            return f"{self.min_args} argument" + ("s" if self.min_args != 1 else "")
        return f"{self.min_args} to {self.max_args} arguments"


def _f(name, runtime, n, rank, render, meaning, max_args=-1, ir=None, form="call", spelling=""):
    return BuiltinFunction(name, runtime, n, n if max_args == -1 else max_args, rank, render, meaning, ir, form,
                           spelling)


# How the per-sample rank of a result follows from the arguments' ranks (kokoyi/compiler/passes/ranks.py).
RANK_RULES = {
    "same": "same shape as the (first) argument",
    "scalar": "a scalar",
    "broadcast": "the rank of the highest-rank argument",
    "onehot": "a float vector of length n (one axis more than i)",
    "matrix_reduce": "the argument without its last two axes (a scalar for a matrix)",
    "diag": "a vector gives a matrix; a matrix (rank >= 2) gives its diagonal, one axis less",
    "identity": "an n x n matrix",
}


FUNCTIONS: dict[str, BuiltinFunction] = {
    f.name: f
    for f in [
        _f("exp", "exp", 1, "same", r"\exp", "torch.exp, element-wise"),
        _f("Exp", "exp", 1, "same", r"\exp", "torch.exp, element-wise"),
        _f("log", "log", 1, "same", r"\log", "torch.log, element-wise"),
        _f("ln", "log", 1, "same", r"\ln", "torch.log, element-wise"),
        _f("sin", "sin", 1, "same", r"\sin", "torch.sin, element-wise"),
        _f("cos", "cos", 1, "same", r"\cos", "torch.cos, element-wise"),
        _f("tan", "tan", 1, "same", r"\tan", "torch.tan, element-wise"),
        _f("sinh", "sinh", 1, "same", r"\sinh", "torch.sinh, element-wise"),
        _f("cosh", "cosh", 1, "same", r"\cosh", "torch.cosh, element-wise"),
        _f("tanh", "tanh", 1, "same", r"\tanh", "torch.tanh, element-wise"),
        _f("abs", "abs", 1, "same", r"\operatorname{abs}", "torch.abs, element-wise"),
        _f("sign", "sign", 1, "same", r"\operatorname{sign}", "torch.sign, element-wise"),
        _f("ReLU", "relu", 1, "same", r"\operatorname{ReLU}", "torch.relu, element-wise"),
        _f("Sigmoid", "sigmoid", 1, "same", r"\sigma", "torch.sigmoid, element-wise"),
        _f("Softplus", "softplus", 1, "same", r"\operatorname{softplus}", "torch.nn.functional.softplus"),
        _f("GELU", "gelu", 1, "same", r"\operatorname{GELU}", "torch.nn.functional.gelu"),
        _f("maximum", "maximum", 2, "broadcast", r"\max", "torch.maximum, element-wise"),
        _f("minimum", "minimum", 2, "broadcast", r"\min", "torch.minimum, element-wise"),
        _f("clip", "clip", 3, "broadcast", r"\operatorname{clip}", "torch.clamp(x, lo, hi)"),
        _f("Softmax", "softmax", 1, "same", r"\operatorname{softmax}", "torch.softmax over the last axis"),
        _f("LogSoftmax", "log_softmax", 1, "same", r"\operatorname{log\,softmax}",
           "torch.log_softmax over the last axis"),
        _f("Mean", "mean", 1, "scalar", r"\operatorname{mean}", "mean of all elements"),
        _f("Var", "var", 1, "scalar", r"\operatorname{Var}", "population variance of all elements"),
        _f("Std", "std", 1, "scalar", r"\operatorname{std}", "population standard deviation of all elements"),
        _f("LogSumExp", "logsumexp", 1, "scalar", r"\operatorname{LSE}", "log of the sum of exp of all elements"),
        _f("OneHot", "one_hot", 2, "onehot", r"\operatorname{onehot}", "one-hot float vector of length n"),
        _f("Concat", "concat", 2, "broadcast", r"\operatorname{concat}", "torch.cat along the first axis",
           max_args=None),
        _f("StopGrad", "stop_grad", 1, "same", r"\mathrm{sg}", "x.detach(): no gradient flows through"),
        _f("CrossEntropy", "cross_entropy", 2, "scalar", r"\operatorname{CE}",
           "-log_softmax(logits)[label] for an integer label"),
        _f("MSE", "mse", 2, "scalar", r"\operatorname{MSE}", "mean of squared differences"),
        _f("SmoothL1", "smooth_l1", 2, "scalar", r"\operatorname{SmoothL1}",
           "torch.nn.functional.smooth_l1_loss, mean"),
        # Linear algebra on the last two per-sample axes (LANGUAGE.md section 6).
        _f("det", None, 1, "matrix_reduce", r"\det", "torch.linalg.det of the last two axes", ir="det"),
        _f("Tr", None, 1, "matrix_reduce", r"\operatorname{tr}", "the trace: sum of the diagonal of the last two axes",
           ir="trace"),
        _f("tr", None, 1, "matrix_reduce", r"\operatorname{tr}", "the trace", ir="trace",
           spelling=r"\operatorname{tr}"),
        _f("diag", None, 1, "diag", r"\operatorname{diag}",
           "of a vector: the diagonal matrix (torch.diag_embed); of a matrix: its diagonal (torch.diagonal)",
           ir="diag", spelling=r"\operatorname{diag}"),
        _f("\\mathbf{I}", None, 1, "identity", r"\mathbf{I}",
           "the n x n identity (torch.eye), where `\\mathbf{I}` is not defined", ir="eye", form="subscript",
           spelling=r"\mathbf{I}_{n}"),
    ]
}

# How the batch pass batches each built-in's IR primitive (its family of rules in
# kokoyi/compiler/batch/rules.py; a built-in not listed has a rule of its own there):
#   float      element-wise, integers converted to the module's float first, float result
#   same       element-wise, the result keeps its operand's kind (int stays int)
#   int        element-wise, integer result (rounding: it can index)
#   broadcast  element-wise over several operands (tensors), kinds promoted
#   whole      a reduction of the whole per-sample value (the leading axes pass through)
#   last       along the last per-sample axis, same shape
BATCHING = {
    "exp": "float", "log": "float", "sin": "float", "cos": "float", "tan": "float", "sinh": "float", "cosh": "float",
    "tanh": "float", "sigmoid": "float", "softplus": "float", "gelu": "float", "sqrt": "float",
    "abs": "same", "sign": "same", "relu": "same", "stop_grad": "same",
    "floor": "int", "ceil": "int",
    "maximum": "broadcast", "minimum": "broadcast", "clip": "broadcast",
    "mean": "whole", "var": "whole", "std": "whole", "logsumexp": "whole", "reduce_sum": "whole",
    "reduce_prod": "whole", "reduce_max": "whole", "reduce_min": "whole", "reduce_argmax": "whole",
    "reduce_argmin": "whole",
    "softmax": "last", "log_softmax": "last",
}

# `\sum(x)`-style reductions over all elements; max/min with several arguments are element-wise.
REDUCTIONS = {
    "sum": ("reduce_sum", r"\sum"),
    "prod": ("reduce_prod", r"\prod"),
    "max": ("reduce_max", r"\max"),
    "min": ("reduce_min", r"\min"),
    "argmax": ("reduce_argmax", r"\operatorname{argmax}"),
    "argmin": ("reduce_argmin", r"\operatorname{argmin}"),
}

# Big operators over an index range (an ir.Reduce over a vector axis): value of an empty
# range (None: an empty range is a run-time error), and rendering.
BIG_OPERATORS = {
    "sum": (0, r"\sum"),
    "prod": (1, r"\prod"),
    "max": (None, r"\max"),
    "min": (None, r"\min"),
    "argmax": (None, r"\operatorname*{argmax}"),
    "argmin": (None, r"\operatorname*{argmin}"),
    "mean": (None, r"\mathbb{E}"),
}

# Constants, used where the name is not defined by the user.
CONSTANTS = {"\\pi": "math.pi", "e": "math.e", "\\infty": "math.inf"}
