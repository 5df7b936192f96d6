"""kokoyi modules under torch.compile.

The generated code runs in an importable module (kokoyi.runtime.generated_N) and code
generation for a new call signature is wrapped in torch.compiler.disable, so after one
eager call with a signature (the warm-up) Dynamo traces the whole forward: the argument
checks, the cache lookup and the specialised code, in one graph.
"""
from __future__ import annotations

import pytest
import torch
import zoo_models

pytest.importorskip("sklearn")  # the digits examples' train.py files import it
pytest.importorskip("tqdm")


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", zoo_models.NAMES)
def test_no_graph_breaks_after_warm_up(name):
    model, args, kwargs = zoo_models.build(name)
    model(*args, **kwargs)  # warm-up: generates the specialised code outside any trace
    explained = torch._dynamo.explain(model)(*args, **kwargs)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("name", ["pi", "pgloss", "dqnloss", "gru",
                                  *(pytest.param(n, marks=pytest.mark.slow) for n in ("cnn", "vae", "transformer"))])
def test_fullgraph_values_and_gradients_equal_eager(name):
    model, args, kwargs = zoo_models.build(name)
    leaves = [*model.parameters(), *(a for a in args if a.requires_grad)]
    assert leaves

    def values_and_grads(fn):
        for leaf in leaves:
            leaf.grad = None
        out = as_tuple(fn(*args, **kwargs))
        out[0].sum().backward()
        return [o.detach() for o in out], [torch.zeros_like(x) if x.grad is None else x.grad.clone() for x in leaves]

    want, want_grads = values_and_grads(model)
    got, got_grads = values_and_grads(torch.compile(model, backend="aot_eager", fullgraph=True))
    for g, w in zip(got + got_grads, want + want_grads):
        torch.testing.assert_close(g, w)


def test_inductor_compiles_the_policy():
    model, args, kwargs = zoo_models.build("pi", batch=8)
    want = model(*args, **kwargs)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(*args, **kwargs), want)
    other = torch.randn(3, 4)  # another batch size: a recompile, the same code
    torch.testing.assert_close(compiled(other, batch_level=[1]), model(other, batch_level=[1]))


def test_a_new_signature_under_compile_is_a_graph_break_with_a_reason():
    model, args, kwargs = zoo_models.build("pgloss")
    compiled = torch.compile(model, backend="eager")  # no warm-up: default mode breaks the graph once
    torch.testing.assert_close(compiled(*args, **kwargs), model(*args, **kwargs))
    torch._dynamo.reset()
    model, args, kwargs = zoo_models.build("pgloss")
    with pytest.raises(Exception, match="call the model once with these input ranks"):
        torch.compile(model, backend="eager", fullgraph=True)(*args, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru", "transformer", "dqnloss"])
def test_inductor_fullgraph_slow(name):
    model, args, kwargs = zoo_models.build(name)
    want = as_tuple(model(*args, **kwargs))
    got = as_tuple(torch.compile(model, fullgraph=True)(*args, **kwargs))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_generated_code_lives_in_an_importable_module():
    import importlib
    import sys

    import kokoyi

    kokoyi.compile("\\Module{M}{x}\n\\Return 2 * x \\\\\n\\EndModule\n", filename="m.kyi")
    namespace = kokoyi.symbol.namespace
    module = importlib.import_module(namespace["__name__"])
    assert module.__dict__ is namespace and module.M is kokoyi.symbol["M"]
    kokoyi.symbol.clear()  # the cleared namespace is not kept in sys.modules
    assert namespace["__name__"] not in sys.modules
