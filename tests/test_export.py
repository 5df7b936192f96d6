"""torch.export and torch.onnx.export of kokoyi models.

Batched models export with a dynamic batch size. A recurrence is a loop that export
unrolls, so its length must be static: a dynamic sequence length is a KokoyiRuntimeError
naming the recurrence's line (documented in docs/scaling.md).
"""
from __future__ import annotations

import pytest
import torch
import zoo_models

import kokoyi

pytest.importorskip("sklearn")  # the digits examples' train.py files import it
pytest.importorskip("tqdm")


class Batched(torch.nn.Module):
    """model(*inputs, batch_level=1): export takes tensors, not the batch_level list."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs, batch_level=1)


def batch_dims(args, axis=0, name="batch"):
    dim = torch.export.Dim(name, min=2)
    return (tuple({axis: dim} for _ in args),)


@pytest.mark.parametrize("name", ["pi", "mlp", "cnn", "vae", "gru"])
def test_export_with_a_dynamic_batch(name):
    model, args, _ = zoo_models.build(name, batch=4)
    wrapped = Batched(model)
    program = torch.export.export(wrapped, args, dynamic_shapes=batch_dims(args))
    other = tuple(torch.cat([a, a[:1]]) for a in args)  # batch 5: not the traced size
    want, got = wrapped(*other), program.module()(*other)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(g, w)


def test_a_dynamic_sequence_length_names_the_recurrence():
    model, args, _ = zoo_models.build("gru", batch=3)
    seq = torch.export.Dim("seq", min=2)
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"seq2seq\.kyi:\d+:\d+: this recurrence is a loop") as err:
        torch.export.export(Batched(model), args, dynamic_shapes=(({1: seq}, {1: seq}),))
    assert "export with that length static" in str(err.value)


@pytest.mark.parametrize("name", ["pi", "mlp", "cnn"])
def test_onnx_export_matches(name):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    model, args, _ = zoo_models.build(name, batch=4)
    wrapped = Batched(model)
    program = torch.onnx.export(wrapped, args, dynamo=True, dynamic_shapes=batch_dims(args), verbose=False)
    onnx.checker.check_model(program.model_proto)
    other = tuple(torch.cat([a, a[:2]]) for a in args)
    feeds = {i.name: a.numpy() for i, a in zip(program.model_proto.graph.input, other)}
    (got,) = ReferenceEvaluator(program.model_proto).run(None, feeds)
    torch.testing.assert_close(torch.from_numpy(got), wrapped(*other).detach(), atol=1e-5, rtol=1e-4)
