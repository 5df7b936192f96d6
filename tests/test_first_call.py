"""The work of a module's first call (issue 14, "first call of any example model < 50 ms"),
counted, not timed: a test that times would fail on a loaded machine.

* every definition a call reaches is lowered to core IR once per process, however many
  call sites and specialisations reach it (a unit loaded from kokoyi.load's cache has no IR
  yet: the first call makes it);
* the cyclic garbage collector does not run while a call signature's code is generated
  (each collection then scans every object of the process, torch's included).
"""
from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import zoo_models  # noqa: E402

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")


@pytest.fixture
def cached_seq2seq(tmp_path, monkeypatch):
    """The seq2seq example loaded as a second process would: from kokoyi.load's cache."""
    import kokoyi

    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "cache"))
    zoo_models.load_example("seq2seq")  # fills the cache
    kokoyi.symbol.clear()  # (the cache key covers the earlier units: none, both times)
    ex = zoo_models.load_example("seq2seq")
    return ex


def _batch(ex):
    return ex.make_batch(torch.Generator().manual_seed(1), 4, 5, 10, "reverse")


@pytest.mark.parametrize("model", ["transformer", "gru"])
def test_each_definition_is_lowered_once(cached_seq2seq, monkeypatch, model):
    from kokoyi.compiler.passes.lower import Lowering

    ex = cached_seq2seq
    torch.manual_seed(0)
    inner = ex.Transformer(10, 16, 2, 32, 2) if model == "transformer" else ex.GRUSeq2Seq(10, 8, 16)
    m = ex.Seq2Seq(inner)
    x, y = _batch(ex)
    lowered = []
    item = Lowering.item

    def counting(self, it):
        lowered.append(it)
        return item(self, it)

    monkeypatch.setattr(Lowering, "item", counting)
    batched = m(x, y, batch_level=[1, 1])
    one = m(x[0], y[0])  # another signature of every module: nothing lowered again
    assert lowered, "the cached unit's definitions are lowered at their first call"
    names = [(it.target if hasattr(it, "target") else it.name).symbol.key for it in lowered]
    assert len(names) == len(set(names)), f"lowered more than once: {sorted(names)}"
    if model == "transformer":  # MultiHead and Attention are inlined at three call sites
        assert {"MultiHead", "Attention"} <= set(names)
    assert torch.allclose(batched[0], one, atol=1e-5, rtol=1e-4)


def test_no_collection_while_code_is_generated(cached_seq2seq):
    ex = cached_seq2seq
    torch.manual_seed(0)
    m = ex.Seq2Seq(ex.Transformer(10, 16, 2, 32, 1))
    x, y = _batch(ex)
    collections = []

    def on_gc(phase, info):
        if phase != "start":
            return
        frame = sys._getframe(1)
        while frame is not None:  # a collection started inside the call-time passes?
            if frame.f_code.co_name == "run_call_passes":
                collections.append(info["generation"])
                return
            frame = frame.f_back

    threshold = gc.get_threshold()
    gc.callbacks.append(on_gc)
    gc.set_threshold(10)  # a collection every few allocations, were the collector on
    try:
        out = m(x, y, batch_level=[1, 1])
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(on_gc)
    assert collections == []
    assert torch.isfinite(out).all()


def test_what_code_generation_keeps_is_not_scanned_young_after_it(cached_seq2seq):
    """The call-time passes' survivors go to the oldest generation as the collector resumes
    (kokoyi/compiler/gcpause.py, promote=True): no generation-0 collection right after them
    scans the definitions' IR and the kernel's code only to move them up a generation."""
    ex = cached_seq2seq
    torch.manual_seed(0)
    m = ex.Seq2Seq(ex.Transformer(10, 16, 2, 32, 1))
    x, y = _batch(ex)
    built = []
    from kokoyi.runtime.specialize import Specializations

    build = Specializations._build

    def counting(self, *args):
        out = build(self, *args)
        built.append(gc.get_count()[0])  # after the collector resumed
        return out

    Specializations._build = counting
    try:
        gc.collect()
        m(x, y, batch_level=[1, 1])
    finally:
        Specializations._build = build
    assert built and built[-1] < 50, built  # the thousands allocated while paused no longer count


def test_promotion_leaves_the_process_frozen_objects_alone():
    from kokoyi.compiler.gcpause import gc_paused

    assert gc.get_freeze_count() == 0
    kept = []
    with gc_paused(promote=True):
        kept.extend([i] for i in range(5000))
    assert gc.isenabled() and gc.get_count()[0] < 50 and gc.get_freeze_count() == 0
    gc.freeze()  # a process that froze its own objects (before forking workers, say)
    try:
        frozen = gc.get_freeze_count()
        with gc_paused(promote=True):
            kept.extend([i] for i in range(5000))
        assert gc.get_freeze_count() == frozen  # not unfrozen by the promotion: it is skipped
        assert gc.get_count()[0] >= 5000 - 50
    finally:
        gc.unfreeze()
    with gc_paused():  # without promote: the survivors stay young
        kept.extend([i] for i in range(5000))
    assert gc.get_count()[0] >= 5000 - 50
