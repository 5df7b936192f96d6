"""Tests of kokoyi.compile, kokoyi.load, kokoyi.template, kokoyi.nn and kokoyi.set_rt_device."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.test_utils import Host

POLICY = r"""%kokoyi
\Module{\pi}{s; Linears}
\Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\
\EndModule
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """kokoyi.load may cache generated code; keep it out of the user's cache folder."""
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "cache"))


def test_compile_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        kokoyi.compile(b"a \\gets 1 \\\\")


def test_compile_registers_and_returns_the_definitions():
    unit = kokoyi.compile(POLICY, "policy.kyi")
    assert unit[r"\pi"] is kokoyi.symbol[r"\pi"] is kokoyi.symbol["pi"]
    assert "policy.kyi" in unit.python_source


def test_load_a_file(tmp_path):
    path = tmp_path / "policy.kyi"
    path.write_text(POLICY, encoding="utf-8")
    unit = kokoyi.load(path)
    assert r"\pi" in unit and "pi" in kokoyi.symbol
    kokoyi.symbol.clear()
    kokoyi.load(str(path))  # a str path works too, and a second load (maybe cached) registers again
    layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])
    out = kokoyi.symbol["pi"](Host(layers), torch.randn(4))
    assert out.shape == (2,) and out.sum().item() == pytest.approx(1.0)


def test_load_reports_errors_with_the_file_name(tmp_path):
    path = tmp_path / "bad.kyi"
    path.write_text("a \\gets 1 \\\\\nb \\gets \\Foo \\\\\n", encoding="utf-8")
    with pytest.raises(kokoyi.KokoyiSyntaxError) as info:
        kokoyi.load(path)
    assert info.value.filename.endswith("bad.kyi") and (info.value.line, info.value.column) == (2, 9)


# ---- templates --------------------------------------------------------------------------------


def _class_from_template(name: str, fill: dict[str, str]):
    code = kokoyi.template(name)
    for attr, expr in fill.items():
        assert f"self.{attr} = None" in code
        code = code.replace(f"self.{attr} = None", f"self.{attr} = {expr}")
    namespace = {"torch": torch, "kokoyi": kokoyi}
    exec(compile(code, "<template>", "exec"), namespace)  # noqa: S102 - the code under test
    classes = [v for k, v in namespace.items() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
    assert len(classes) == 1
    return classes[0], code


def test_template_is_a_working_module_class_once_filled_in():
    kokoyi.compile(POLICY)
    cls, code = _class_from_template(r"\pi", {"Linears": "torch.nn.ModuleList([kokoyi.nn.Linear(4, 16), "
                                                          "kokoyi.nn.Linear(16, 2)])"})
    assert code.startswith("class Pi(torch.nn.Module):")
    model = cls()
    out = model(torch.randn(5, 4), batch_level=[1])
    assert out.shape == (5, 2) and torch.allclose(out.sum(-1), torch.ones(5))
    assert len(list(model.parameters())) == 4


def test_template_with_several_parameters_and_none():
    kokoyi.compile(r"""
\Module{Affine}{x; W^{(1)}, \mathbf{b}} \Return W^{(1)} @ x + \mathbf{b} \\ \EndModule
\Module{Id}{x} \Return x \\ \EndModule
""")
    cls, code = _class_from_template("Affine", {"W_1": "torch.nn.Parameter(torch.eye(2))",
                                                "b_bf": "torch.nn.Parameter(torch.ones(2))"})
    assert "return (self.W_1, self.b_bf)" in code
    assert cls()(torch.tensor([1.0, 2.0])).tolist() == [2.0, 3.0]
    cls, code = _class_from_template("Id", {})
    assert "get_parameters" not in code
    assert cls()(torch.tensor(4.0)).item() == 4.0


def test_template_of_a_non_module_is_an_error():
    kokoyi.compile(r"a \gets 1 \\")
    with pytest.raises(KeyError):
        kokoyi.template("a")
    with pytest.raises(KeyError):
        kokoyi.template("nothing")


# ---- kokoyi.nn --------------------------------------------------------------------------------

LAYER = r"\Module{Layer}{x; f} \Return f(x) \\ \EndModule"


@pytest.mark.parametrize(
    "make, sample",
    [
        (lambda: kokoyi.nn.Linear(3, 2), lambda: torch.randn(3)),
        (lambda: kokoyi.nn.Conv2d(2, 3, 3), lambda: torch.randn(2, 5, 5)),
        (lambda: kokoyi.nn.Conv1d(2, 3, 2), lambda: torch.randn(2, 6)),
        (lambda: kokoyi.nn.Embedding(10, 4), lambda: torch.tensor(7)),
        (lambda: kokoyi.nn.LayerNorm(3), lambda: torch.randn(3)),
        (lambda: kokoyi.nn.MLP([3, 5, 2]), lambda: torch.randn(3)),
        (lambda: kokoyi.nn.Sequential(kokoyi.nn.Linear(3, 3), kokoyi.nn.Identity()), lambda: torch.randn(3)),
    ],
)
def test_nn_layers_work_per_sample_and_batched(make, sample):
    kokoyi.compile(LAYER)
    torch.manual_seed(0)
    layer = make()
    host = Host(layer)
    one = sample()
    assert torch.allclose(kokoyi.symbol["Layer"](host, one), layer(one), atol=1e-6)
    batch = torch.stack([sample() for _ in range(4)])
    got = kokoyi.symbol["Layer"](host, batch, batch_level=[1])
    want = torch.stack([layer(b) for b in batch])
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


def test_nn_module_list_of_layers():
    kokoyi.compile(POLICY)
    layers = kokoyi.nn.ModuleList([kokoyi.nn.Linear(4, 8), kokoyi.nn.Linear(8, 3)])
    s = torch.randn(4)
    want = torch.softmax(layers[1](torch.relu(layers[0](s))), -1)
    assert torch.allclose(kokoyi.symbol["pi"](Host(layers), s), want, atol=1e-6)
    plain_list = [layers[0], layers[1]]
    assert torch.allclose(kokoyi.symbol["pi"](Host(plain_list), s), want, atol=1e-6)


# ---- devices ------------------------------------------------------------------------------------


def test_set_rt_device_decides_where_created_tensors_live():
    kokoyi.compile(r"\Module{Make}{} \Return \{ i \}_{i=0}^{2} \\ \EndModule")
    assert kokoyi.symbol["Make"](Host()).device.type == "cpu"
    kokoyi.set_rt_device("meta")
    out = kokoyi.symbol["Make"](Host())
    assert out.device.type == "meta" and out.shape == (3,)
    kokoyi.set_rt_device(None)
    assert kokoyi.symbol["Make"](Host()).device.type == "cpu"


def test_inputs_decide_the_device_when_they_can():
    kokoyi.compile(r"\Module{Add}{x} \Return x + \{ i \}_{i=0}^{2} \\ \EndModule")
    kokoyi.set_rt_device("meta")
    out = kokoyi.symbol["Add"](Host(), torch.zeros(3))
    assert out.device.type == "cpu" and out.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("expr", [r"x * \log 2", r"x + \OneHot(1, 3)"])
def test_inputs_decide_the_device_for_numbers_and_one_hot(expr):
    kokoyi.compile(f"\\Module{{Dev}}{{x}} \\Return {expr} \\\\ \\EndModule")
    kokoyi.set_rt_device("meta")
    out = kokoyi.symbol["Dev"](Host(), torch.zeros(3))
    assert out.device.type == "cpu"
