"""batch/statics.py: values of sizes and constants alone computed once per sizes, kept
across calls (kx.static_values), never where they could be changed or handed out."""
from __future__ import annotations

import math

import pytest
import torch

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.batch_test import BATCHED_VECTOR, kernel, ops

MATRIX_BATCHED = (("tensor", 2, False), True)

# A positional table and a causal mask, added to the input: neither reads x's data.
TABLE_AND_MASK = r"""\Module{M}{X}
  T \gets |X| \\
  d \gets |X[0]| \\
  P \gets \{ \begin{cases} \sin(t / 10000^{k / d}) & 2 * \lfloor k / 2 \rfloor = k \\ \cos(t / 10000^{(k - 1) / d}) & \text{otherwise} \end{cases} \}_{t=0, k=0}^{T-1, d-1} \\
  M \gets \{ \begin{cases} 0 & j \le i \\ -\infty & \text{otherwise} \end{cases} \}_{i=0, j=0}^{T-1, T-1} \\
  \Return \Softmax(X @ X^\top + M) @ (X + P) \\
\EndModule"""


def _reference(X):
    T, d = X.shape[-2:]
    t = torch.arange(T, dtype=X.dtype)[:, None]
    k = torch.arange(d)
    angle = t / 10000 ** (torch.where(k % 2 == 0, k, k - 1).to(X.dtype) / d)
    P = torch.where(k % 2 == 0, torch.sin(angle), torch.cos(angle))
    M = torch.full((T, T), -math.inf, dtype=X.dtype).triu(1)
    return torch.softmax(X @ X.transpose(-1, -2) + M, -1) @ (X + P)


def _statics(k: K.Kernel) -> list:
    found = []

    def walk(block):
        for s in block:
            if isinstance(s, K.Assign) and s.op == "statics":
                found.append(s)
            elif isinstance(s, K.If):
                walk(s.then)
                walk(s.orelse)
            elif isinstance(s, K.For):
                walk(s.pre)
                walk(s.body)
    walk(k.body)
    return found


def _module(text: str):
    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile(text, filename="statics.kyi")
    return Host(None, kokoyi.symbol["M"])


def _aten_calls(fn) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.key for e in prof.key_averages() for _ in range(e.count)]


def test_a_table_and_a_mask_are_kept_out_of_the_kernel_and_what_reads_x_stays():
    k = kernel(TABLE_AND_MASK, (MATRIX_BATCHED,))
    kept = _statics(k)
    assert kept, K.dump(k)
    inside = [s.op for st in kept for s in st.attrs["body"]]
    assert {"arange", "sin", "cos", "where"} <= set(inside)
    outside = [op for op in ops(k) if op not in inside or op in ("add", "where")]
    assert "sin" not in outside and "cos" not in outside  # computed only inside the kept function
    # what the kept values are a function of: numbers and the device, never a tensor input
    for st in kept:
        assert all(a.name not in k.params for a in st.args)


def test_kept_values_give_the_values_and_gradients_and_are_computed_once_per_size():
    m = _module(TABLE_AND_MASK)
    for T in (5, 7, 5):
        X = torch.randn(3, T, 4, dtype=torch.float32, requires_grad=True)
        got = m(X, batch_level=[1])
        want = _reference(X)
        torch.testing.assert_close(got, want)
        (g,) = torch.autograd.grad(got.square().sum(), X)
        (w,) = torch.autograd.grad(want.square().sum(), X)
        torch.testing.assert_close(g, w)
    # sizes seen before: the table's sin and cos and the mask's comparison do not run again
    X = torch.randn(3, 7, 4)
    calls = _aten_calls(lambda: m(X, batch_level=[1]))
    assert "aten::sin" not in calls and "aten::cos" not in calls and "aten::le" not in calls, calls
    X = torch.randn(3, 9, 4)  # a new size: computed (once)
    first = _aten_calls(lambda: m(X, batch_level=[1]))
    assert "aten::sin" in first and "aten::arange" in first
    assert "aten::sin" not in _aten_calls(lambda: m(X, batch_level=[1]))


def test_a_value_made_under_inference_mode_is_not_reused_by_a_call_that_trains():
    m = _module(TABLE_AND_MASK)
    X = torch.randn(2, 6, 4, requires_grad=True)
    with torch.inference_mode():
        m(X.detach(), batch_level=[1])
    out = m(X, batch_level=[1])  # would fail saving an inference tensor for backward
    (g,) = torch.autograd.grad(out.sum(), X)
    (w,) = torch.autograd.grad(_reference(X).sum(), X)
    torch.testing.assert_close(g, w)


@pytest.mark.parametrize("body", [
    r"\Return \{ t * t \}_{t=0}^{|x|-1} \\",  # returned: the caller may write to it
    r"\Return \{ \{ i \le j \}_{j=0}^{|x|-1} \}_{i=0}^{|x|-1}[1] \\",  # a view of it returned
])
def test_a_value_handed_out_is_computed_on_every_call(body):
    text = rf"\Module{{M}}{{x}} {body} \EndModule"
    k = kernel(text, (BATCHED_VECTOR,))
    kept = {n for st in _statics(k) for n in st.attrs["outs"]}
    assert kept  # the index tensors are kept, what is handed out (or viewed to be) is not:
    (ret,) = [s for s in k.body if isinstance(s, K.Return)]
    handed = {ret.values[0].name} | {a.name for s in k.body if isinstance(s, K.Assign) and s.op == "read_static"
                                     for a in s.args[:1]}
    assert not kept & handed, K.dump(k)
    m = _module(text)
    x = torch.randn(2, 5)
    a, b = m(x, batch_level=[1]), m(x, batch_level=[1])
    assert torch.equal(a, b)  # each call's value is its own (the caller may write to it)
    assert a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()


def test_a_read_shifted_by_one_keeps_its_indices_and_reads_the_data_each_call():
    text = r"""\Module{M}{y}
  \Return \{ \begin{cases} 0 & t = 0 \\ y[t-1] & \text{otherwise} \end{cases} \}_{t=0}^{|y|-1} \\
\EndModule"""
    k = kernel(text, (BATCHED_VECTOR,))
    assert _statics(k) and "gather" in ops(k)
    m = _module(text)
    for _ in range(2):
        y = torch.randn(3, 6)
        torch.testing.assert_close(m(y, batch_level=[1]), torch.cat([torch.zeros(3, 1), y[:, :-1]], 1))
