"""Clean-up's dropping of unread values (kokoyi/compiler/batch/cleanup.py `_dead`): one counted
walk gives what dropping them round after round gave (the rounds kept: a reduction becomes
its check only in a round that drops something)."""
from __future__ import annotations

import itertools
import random

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch import cleanup as C


def rounds(body: list) -> list:
    """The clean-up's dead-code rounds as they were written before (the reference)."""
    count = C._count(body)
    while True:
        used: set = set()
        for s in K.statements(body):
            used |= K.read_names(s)
        if C._reads_device(body):
            used.add("_dev")
        pruned = _round(body, used)
        if C._count(pruned) == count:
            return body
        body, count = pruned, C._count(pruned)


def _round(block: list, used: set) -> list:
    out = []
    for s in block:
        if isinstance(s, K.Assign) and s.out is not None and s.out not in used and C._droppable(s):
            continue
        if isinstance(s, K.Assign) and s.out is not None and s.out not in used and s.op in C.CHECK_ONLY \
                and not s.attrs:
            s = K.Assign(None, C.CHECK_ONLY[s.op], s.args, {}, s.line)
        elif isinstance(s, (K.If, K.For)):
            s = K.with_blocks(s, lambda b: _round(b, used))
        out.append(s)
    return out


def one_walk(body: list) -> list:
    dead = C._dead(body)
    return C._dce(body, dead) if dead else body


def R(name):
    return K.Ref(name)


def test_a_chain_of_unread_values_goes_in_one_walk():
    body = [K.Assign("_dev", "device_of", (R("x"),)), K.Assign("a", "not", (R("x"),)),
            K.Assign("b", "view", (R("a"),)), K.Assign("c", "to", (R("b"),)), K.Return((R("x"),))]
    assert one_walk(body) == rounds(body) == [body[-1]]  # the device too: nothing reads it now


def test_a_reduction_becomes_its_check_only_in_a_round_that_drops_something():
    # m is unread from the start, and `a` is dropped in the same (first) round: m is its check
    first = [K.Assign("m", "reduce_max_last", (R("x"),)), K.Assign("a", "not", (R("x"),)), K.Return((R("x"),))]
    # m is read by `a` alone: unread in the second round, which drops nothing, so it stays
    second = [K.Assign("m", "reduce_max_last", (R("x"),)), K.Assign("a", "not", (R("m"),)), K.Return((R("x"),))]
    # nothing else to drop: m stays as it is
    alone = [K.Assign("m", "reduce_max_last", (R("x"),)), K.Return((R("x"),))]
    for body in (first, second, alone):
        assert one_walk(body) == rounds(body)
    assert one_walk(first)[0].op == "nonempty_last" and one_walk(second)[0].op == "reduce_max_last"
    assert one_walk(alone) == alone


def test_random_kernels_as_the_rounds_clean_them():
    ops = ["not", "view", "add", "reduce_max_last", "constant", "append", "matmul", "copy"]
    rng = random.Random(14)
    for _ in range(400):
        names = ["x"]
        counter = itertools.count()

        def block(depth):
            out = []
            for _ in range(rng.randint(0, 6)):
                kind = rng.random()
                if kind < 0.12 and depth < 2:
                    out.append(K.If(R(rng.choice(names)), block(depth + 1), block(depth + 1)))
                elif kind < 0.2 and depth < 2:
                    out.append(K.For("t", 0, R(rng.choice(names)), block(depth + 1), pre=block(depth + 1)))
                else:
                    op = rng.choice(ops)
                    out_name = rng.choice(["_dev", "_B", "_tmp"]) if rng.random() < 0.08 else f"v{next(counter)}"
                    args = tuple(R(rng.choice(names)) for _ in range(rng.randint(0, 2)))
                    attrs = {"py": True} if op == "add" and rng.random() < 0.5 else {}
                    out.append(K.Assign(None if rng.random() < 0.1 else out_name, op, args, attrs))
                    names.append(out_name)
            return out

        body = block(0) + [K.Return(tuple(R(rng.choice(names)) for _ in range(rng.randint(0, 2))))]
        assert one_walk(body) == rounds(body)
