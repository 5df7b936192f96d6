"""Every recognised form (kokoyi/compiler/rewrite/, one file each) on every path: the values,
dtypes, errors and gradients of the compiled module equal the reference interpreter's (which
computes the math as written), and the generated code uses the one-step form."""
from __future__ import annotations

import differential
import pytest
import torch

import kokoyi
from kokoyi.test_utils import Host

CASES = {
    "discounted_scan": (r"\Module{P}{r; \gamma} \Return \{ \sum_{i=0}^{|r|-1-t} \gamma^i * (r[t+i] * 1) \}_{t=0}^{|r|-1} \\ \EndModule",
                        {"r": torch.randn(6)}, [0.9], "kk.discounted_window("),
    "population_std": (r"\Module{P}{v} \Return \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - \Mean(v))^2}}{|v|}} \\ \EndModule",
                       {"v": torch.randn(5)}, [], "kx.population_std("),
    "standardize": (r"\Module{P}{x} \Return \frac{x - \Mean(x)}{\Std(x)} \\ \EndModule", {"x": torch.randn(5)}, [],
                    "kk.standardize("),
    "layer_norm": (r"\Module{P}{x} \Return \frac{x - \Mean(x)}{\sqrt{\Var(x) + 10^{-5}}} \\ \EndModule",
                   {"x": torch.randn(5)}, [], "kk.layer_norm("),
    "leaky_relu": (r"\Module{P}{x} \Return \max(0.2 x, x) \\ \EndModule", {"x": torch.randn(5)}, [], "kk.leaky_max("),
    "lerp": (r"\Module{P}{x, y, a} \Return a * y + x * (1 - a) \\ \EndModule",
             {"x": torch.randn(5), "y": torch.randn(5), "a": torch.rand(5)}, [], "torch.lerp("),
    "max_pooling": (r"\Module{P}{h} \Return \{ \max_{a=0}^{1} \max_{b=0}^{1} h[c, 2i+a, 2j+b] \}_{c=0, i=0, j=0}^{|h|-1, 1, 2} \\ \EndModule",
                    {"h": torch.randn(2, 5, 6)}, [], "kx.pool2d("),
    "sum_pooling": (r"\Module{P}{h} \Return \{ \sum_{a=0}^{2} \sum_{b=0}^{1} h[c, i+a, 2j+b] \}_{c=0, i=0, j=0}^{1, 2, 1} \\ \EndModule",
                    {"h": torch.randn(2, 5, 4)}, [], "kx.pool2d("),
    "mean_of_sum": (r"\Module{P}{L, y} \Return \frac{1}{|y|} \sum_{t=0}^{|y|-1} \CrossEntropy(L[t], y[t]) \\ \EndModule",
                    {"L": torch.randn(4, 3), "y": torch.tensor([0, 2, 1, 2])}, [], ".mean(1)"),
    "cross_entropy": (r"\Module{P}{z, y \in \mathbb{Z}} m \gets \max(z) \\ \Return m + \log \sum_{k=0}^{|z|-1} \exp(z_k - m) - z_y \\ \EndModule",
                      {"z": torch.randn(4), "y": torch.tensor(2)}, [], "kx.cross_entropy_rows("),
    "huber": (r"\Module{P}{q, y} \delta \gets q - y \\ \Return \begin{cases} \frac{1}{2} \delta^2 & \text{if } |\delta| < 1 \\ |\delta| - \frac{1}{2} & \text{otherwise} \end{cases} \\ \EndModule",
              {"q": torch.tensor(0.3), "y": torch.tensor(2.0)}, [], "kx.huber_rows(q, y, 1.0)"),
    "huber_delta": (r"\Module{P}{x} \Return \begin{cases} \frac{x^2}{2} & \text{if } |x| \le 2 \\ 2 (|x| - 1) & \text{otherwise} \end{cases} \\ \EndModule",
                    {"x": torch.tensor(-2.5)}, [], "huber_loss("),
    # reduced_loss: the minibatch's mean or sum of row losses, reduced inside the torch loss
    "cross_entropy_mean": (r"""\Function{CE}{z, y}
  m \gets \max(z) \\
  \Return m + \log \sum_{k=0}^{|z|-1} \exp(z_k - m) - z_y \\
\EndFunction
\Module{P}{Z, y \in \mathbb{Z}^{B}}
  \Return \mathbb{E}_{b=0}^{B-1} CE(Z[b], y[b]) \\
\EndModule""", {"Z": torch.randn(4, 5), "y": torch.tensor([0, 4, 2, 2])}, [], "kx.cross_entropy_reduced("),
    "huber_sum": (r"""\Function{Huber}{\delta}
  \Return \begin{cases} \frac{1}{2} \delta^2 & \text{if } |\delta| < 1 \\ |\delta| - \frac{1}{2} & \text{otherwise} \end{cases} \\
\EndFunction
\Module{P}{q, y}
  \Return \sum_{i=0}^{|q|-1} Huber(q[i] - 2 y[i]) \\
\EndModule""", {"q": torch.tensor([0.3, -2.0, 1.5, 0.1]), "y": torch.tensor([0.2, 0.4, -1.0, 3.0])}, [],
                  "kx.huber_reduced("),
    "bce_logits": (r"\Module{P}{x, \eta} \Return \Softplus(\eta) - \eta * x \\ \EndModule",
                   {"x": torch.rand(5), "eta": torch.randn(5) * 3}, [], "kx.bce_logits("),
    "bce_logits_sum": (r"\Module{P}{x, \eta} \Return \sum_{i=0}^{|x|-1} (\Softplus(\eta_i) - x_i * \eta_i) \\ \EndModule",
                       {"x": torch.rand(5), "eta": torch.randn(5) * 3}, [], "kx.bce_logits("),
    "contraction": (r"\Module{P}{x; V} \Return \{ \sum(V_k * x) \}_{k=0}^{|V|-1} \\ \EndModule",
                    {"x": torch.randn(3, 2)}, [torch.randn(4, 3, 2)], "kx.contract("),
    "attention": (r"""\Function{Attention}{Q, K, V, M}
  \Return \Softmax(\frac{Q @ K^\top}{\sqrt{|K[0]|}} + M) @ V \\
\EndFunction
\Module{P}{X, M; W}
  \Return \sum_{i=0}^{|W|-1} Attention(X @ W[i]^\top, X @ W[i]^\top, X, M) \\
\EndModule""", {"X": torch.randn(3, 4), "M": torch.randn(3, 3)}, [torch.randn(2, 4, 4)],
    "scaled_dot_product_attention("),
    "causal_attention": (r"""\Function{Attention}{Q, K, V, M}
  \Return \Softmax(\frac{Q @ K^\top}{\sqrt{|K[0]|}} + M) @ V \\
\EndFunction
\Module{P}{X; W}
  T \gets |X| \\
  M \gets \{ \begin{cases} 0 & j \le i \\ -\infty & \text{otherwise} \end{cases} \}_{i=0, j=0}^{T-1, T-1} \\
  \Return \sum_{i=0}^{|W|-1} Attention(X @ W[i]^\top, X @ W[i]^\top, X, M) \\
\EndModule""", {"X": torch.randn(3, 4)}, [torch.randn(2, 4, 4)], "kx.causal_attention("),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recognised_form_agrees_with_the_math_on_every_path(name):
    source, inputs, params, fast = CASES[name]
    prog = differential.program(source, inputs, params)
    findings, stats = differential.check(prog, seed=3)
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.paths >= 3
    kokoyi.compile(source, filename="form.kyi")
    forward = kokoyi.symbol["P"]
    args = [v.expand((3,) + v.shape) for v in inputs.values()]
    Host(params[0] if len(params) == 1 else tuple(params) or None, forward)(*args, batch_level=[1] * len(args))
    codes = [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]
    assert codes and all(fast in code for code in codes), codes


def test_a_pooling_window_past_the_map_is_the_located_error():
    kokoyi.compile(r"""\Module{P}{h}
  \Return \{ \max_{a=0}^{1} \max_{b=0}^{1} h[c, 2i+a, 2j+b] \}_{c=0, i=0, j=0}^{|h|-1, 2, 1} \\
\EndModule""", filename="pool.kyi")
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"pool\.kyi:2:.*index 5 is out of range for `h` \(the axis has length 5\)"):
        Host(None, kokoyi.symbol["P"])(torch.randn(3, 2, 5, 4), batch_level=[1])
