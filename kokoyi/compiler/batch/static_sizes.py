"""A read taken only for its size, `|h[0]|` (a bound such as the pooling's `\\lfloor |h[0]|/2 \\rfloor`):
the size of the read value's own axis, after the read's range check alone (`kx.check_static`),
instead of a view made (and recorded by autograd) for nothing.

A kernel peephole after clean-up: a `read_static` of integer indices whose value is read by
`size` statements alone, all in its block. Reading entries k_1..k_m after `lead` leading axes
drops those axes, so the read's axis a is x's axis a (a < lead) or a + m.
"""
from __future__ import annotations

from kokoyi.compiler import kernel as K


def sizes_without_reads(block: list) -> list:
    """block with each read taken only for its sizes replaced by its check and x's sizes."""
    if not any(isinstance(s, K.Assign) and s.op == "read_static" and s.out is not None for s in K.statements(block)):
        return block  # (no read at all: the uses need not be gathered)
    other: set = set()  # names read anywhere but as the value of a `size`
    _other_uses(block, other)
    if not any(isinstance(s, K.Assign) and s.op == "read_static" and s.out is not None and s.out not in other
               for s in K.statements(block)):
        return block  # (no read is taken for its sizes alone: _block would copy the blocks as they are)
    return _block(block, other)


def _block(block: list, other: set) -> list:
    nested: set = set()  # names read inside this block's branches and loops: kept as they are
    for s in block:
        if isinstance(s, (K.If, K.For)):
            _all_uses(K.nested(s), nested)
    other = other | nested
    reads: dict = {}  # read's name -> (x, axis offset after lead, lead)
    defined_after: dict = {}  # read's name -> names assigned since (x must not be one)
    out: list = []
    for s in block:
        if isinstance(s, (K.If, K.For)):
            out.append(K.with_blocks(s, lambda b: _block(b, other)))
            continue
        if not isinstance(s, K.Assign):
            out.append(s)
            continue
        if (s.op == "size" and isinstance(s.args[0], K.Ref) and s.args[0].name in reads
                and isinstance(s.args[1], int)):
            x, m, lead = reads[s.args[0].name]
            if not (isinstance(x, K.Ref) and x.name in defined_after[s.args[0].name]):
                axis = s.args[1] if s.args[1] < lead else s.args[1] + m
                out.append(K.Assign(s.out, "size", (x, axis), dict(s.attrs), s.line))
                continue
        if (s.op == "read_static" and s.out is not None and s.out not in other and isinstance(s.args[1], int)
                and not any(isinstance(i, tuple) for i in s.args[2])):
            reads[s.out] = (s.args[0], len(s.args[2]), s.args[1])
            defined_after[s.out] = set()
            out.append(K.Assign(None, "check_static", s.args, dict(s.attrs), s.line))
            continue
        if s.out is not None:
            for names in defined_after.values():
                names.add(s.out)
        out.append(s)
    return out


def _other_uses(block: list, acc: set) -> None:
    for s in K.statements(block):
        if isinstance(s, K.Assign) and s.op == "size":
            K.names(s.args[1:], acc)
        else:
            acc |= K.read_names(s)


def _all_uses(block: list, acc: set) -> None:
    for s in K.statements(block):
        acc |= K.read_names(s)
