"""Tests of reads taken only for their sizes (kokoyi/compiler/batch/static_sizes.py)."""
from __future__ import annotations

import linecache

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiError
from kokoyi.test_utils import Host

SOURCE = r"""\Module{Half}{h}
  \Return \{ h[c, 2i] + h[c, 2i+1] \}_{c=0, i=0}^{|h|-1, \lfloor |h[0]|/2 \rfloor - 1} \\
\EndModule
\Module{Width}{h} \Return |h[0, 0]| * h[0, 0, 0] \\ \EndModule
"""


def generated(name: str) -> str:
    return "".join("".join(v[2]) for k, v in linecache.cache.items() if f":{name}__" in k)


def test_a_size_bound_reads_no_view_values_and_gradients():
    kokoyi.compile(SOURCE, "ss.kyi")
    h = torch.randn(4, 3, 7, dtype=torch.float64, requires_grad=True)
    got = Host(None, kokoyi.symbol["Half"])(h, batch_level=[1])
    code = generated("Half")
    assert "kx.check_static(" in code and "kx.read_static(" not in code
    want = h[:, :, 0:6:2] + h[:, :, 1:6:2]
    torch.testing.assert_close(got, want)
    g = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, h, g), torch.autograd.grad(want, h, g))


def test_the_size_of_a_read_of_two_entries_and_one_sample():
    kokoyi.compile(SOURCE, "ss.kyi")
    h = torch.randn(2, 3, 5)
    assert torch.allclose(Host(None, kokoyi.symbol["Width"])(h), 5 * h[0, 0, 0])
    hb = torch.randn(6, 2, 3, 5)
    torch.testing.assert_close(Host(None, kokoyi.symbol["Width"])(hb, batch_level=[1]), 5 * hb[:, 0, 0, 0])
    assert "kx.check_static(" in generated("Width")


def test_an_empty_axis_is_still_the_located_error_where_the_read_applies():
    # (the message the read itself gave before: the same file:line:col and words)
    kokoyi.compile(SOURCE, "ss.kyi")
    with pytest.raises(KokoyiError, match=r"^ss.kyi:4:28: index 0 is out of range for `h` \(the axis has length 0\)"):
        Host(None, kokoyi.symbol["Width"])(torch.randn(2, 0, 5))
    # under the c range's guard: no c, no read, no error (as the read itself behaves)
    assert Host(None, kokoyi.symbol["Half"])(torch.randn(4, 0, 7), batch_level=[1]).shape == (4, 0, 3)
