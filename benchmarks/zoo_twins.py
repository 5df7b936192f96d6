"""Hand-written PyTorch twins of every example model + loss, and the cases benchmarks/zoo.py times.

Each twin is what a strong PyTorch engineer would write for the same math: `F.cross_entropy`,
`F.max_pool2d`, `nn.GRU`, `F.scaled_dot_product_attention` with `is_causal`,
`F.binary_cross_entropy_with_logits`, `F.smooth_l1_loss`, `F.layer_norm`, `F.leaky_relu`.
Twins share the Kokoyi model's parameters (the same tensors, reshaped views where the
layout differs), except the GRU, whose `nn.GRU` layers hold copies packed in torch's
(reset, update, new) layout; its gradients are unpacked back for the check.

A case is built by `CASES[name](batch)` and gives two closures computing the scalar training
loss of one minibatch (Kokoyi, twin), the parameters to differentiate, and a function that
maps the twin's gradients onto the Kokoyi parameters' layout.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
for folder in ("tests", "benchmarks"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
import zoo_models


@dataclass
class Case:
    """One model + loss at one batch size, on both sides."""

    kokoyi: Callable[[], torch.Tensor]  # the training loss of the Kokoyi model (a scalar)
    twin: Callable[[], torch.Tensor]  # the same loss, hand-written
    params: list  # the Kokoyi side's parameters (gradients are compared on these)
    twin_params: list | None = None  # the twin's own parameters, when it holds copies
    twin_grads_to_kokoyi: Callable[[list], list] | None = None  # twin grads -> the layout of `params`
    backward: bool = True  # False: forward only (a loss whose inputs need no gradient)
    first_call: Callable[[], Callable] | None = None  # loads the module symbols afresh, returns their first call
    models: list = field(default_factory=list)  # the Kokoyi modules (parameters excluded from memory)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(*modules) -> list:
    seen, out = set(), []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


# ---- classifiers --------------------------------------------------------------------------
def mlp_logits(L, x):
    return L[2](F.relu(L[1](F.relu(L[0](x)))))


def cnn_logits(model, x):
    h = F.max_pool2d(F.relu(model.Convs[0](x)), 2)
    h = F.max_pool2d(F.relu(model.Convs[1](h)), 2)
    return F.linear(h.flatten(1), model.V.flatten(1), model.b)


def classifier(kind: str, batch: int) -> Case:
    torch.manual_seed(0)
    ex = zoo_models.load_example("classifiers")
    model = ex.MLP(64, 128) if kind == "mlp" else ex.CNN(8, (16, 32))
    loss_fn = ex.MeanCrossEntropyLoss()  # the minibatch's mean, as the twin's F.cross_entropy
    g = _gen()
    images = torch.rand(batch, 1, 8, 8, generator=g)
    x = images.flatten(1) if kind == "mlp" else images
    y = torch.randint(0, 10, (batch,), generator=g)

    def kokoyi_loss():
        return loss_fn(model(x, batch_level=[1]), y)

    def twin_loss():
        logits = mlp_logits(model.Linears, x) if kind == "mlp" else cnn_logits(model, x)
        return F.cross_entropy(logits, y)

    def first_call():
        fresh = zoo_models.load_example("classifiers")
        m = fresh.MLP(64, 128) if kind == "mlp" else fresh.CNN(8, (16, 32))
        m.load_state_dict(model.state_dict())
        return lambda: m(x, batch_level=[1])

    return Case(kokoyi_loss, twin_loss, _params(model), first_call=first_call, models=[model])


# ---- VAE ----------------------------------------------------------------------------------
def vae_twin(model, x, eps):
    E, Fd = model.q.E, model.p.F
    h = F.relu(E[0](x))
    mu, log_var = E[1](h), E[2](h)
    z = mu + torch.exp(0.5 * log_var) * eps
    eta = Fd[1](F.relu(Fd[0](z)))
    rec = F.binary_cross_entropy_with_logits(eta, x, reduction="none").sum(-1)
    kl = 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1).sum(-1)
    torch.sigmoid(eta)  # the example's fourth output, the reconstruction: computed on both sides
    return (rec + kl).mean()


def vae(batch: int) -> Case:
    torch.manual_seed(0)
    ex = zoo_models.load_example("vae")
    model = ex.VAE(64, 256, 8)
    g = _gen()
    x, eps = torch.rand(batch, 64, generator=g), torch.randn(batch, 8, generator=g)

    def first_call():
        fresh = zoo_models.load_example("vae").VAE(64, 256, 8)
        return lambda: fresh(x, eps, batch_level=[1, 1])

    return Case(lambda: model(x, eps, batch_level=[1, 1])[0].mean(), lambda: vae_twin(model, x, eps),
                _params(model), first_call=first_call, models=[model])


# ---- GAN ----------------------------------------------------------------------------------
def gan_generator(G, z):
    h = F.relu(F.layer_norm(G[0](z), (G[0].out_features,), eps=1e-5))
    h = F.relu(F.layer_norm(G[1](h), (G[1].out_features,), eps=1e-5))
    return torch.tanh(G[2](h))


def gan_discriminator(W, x):
    h = F.leaky_relu(W[0](x), 0.2)
    h = F.leaky_relu(W[1](h), 0.2)
    return W[2](h).squeeze(-1)


def gan(which: str, batch: int) -> Case:
    torch.manual_seed(0)
    ex = zoo_models.load_example("gan")
    G, D = ex.Generator(16, 128, 64), ex.Discriminator(64, 128)
    g = _gen()
    x, z = torch.rand(batch, 64, generator=g) * 2 - 1, torch.randn(batch, 16, generator=g)
    if which == "d":
        loss = ex.DiscriminatorLoss(D, G)

        def kokoyi_loss():
            return loss(x, z, batch_level=[1, 1]).mean()

        def twin_loss():
            fake = gan_generator(G.G, z).detach()
            return (F.softplus(-gan_discriminator(D.W, x)) + F.softplus(gan_discriminator(D.W, fake))).mean()

        params = _params(D)  # G is held fixed (\StopGrad)
    else:
        loss = ex.GeneratorLoss(D, G)

        def kokoyi_loss():
            return loss(z, batch_level=[1]).mean()

        def twin_loss():
            return F.softplus(-gan_discriminator(D.W, gan_generator(G.G, z))).mean()

        params = _params(G, D)

    def first_call():
        fresh = zoo_models.load_example("gan")
        Gf, Df = fresh.Generator(16, 128, 64), fresh.Discriminator(64, 128)
        if which == "d":
            loss_f = fresh.DiscriminatorLoss(Df, Gf)
            return lambda: loss_f(x, z, batch_level=[1, 1])
        loss_f = fresh.GeneratorLoss(Df, Gf)
        return lambda: loss_f(z, batch_level=[1])

    return Case(kokoyi_loss, twin_loss, params, first_call=first_call, models=[G, D])


# ---- DQN and policy gradient (CartPole) ---------------------------------------------------
def dqn(batch: int) -> Case:
    torch.manual_seed(0)
    _, _, Q, _ = zoo_models.cartpole()
    q, q_hat = Q(4, 2, hidden=128), Q(4, 2, hidden=128)
    loss = zoo_models.load_example("dqn").load_mean_loss()(q, q_hat, 0.99)  # the minibatch's mean
    g = _gen()
    data = (torch.randn(batch, 4, generator=g), torch.randint(0, 2, (batch,), generator=g),
            torch.rand(batch, generator=g), torch.randn(batch, 4, generator=g),
            (torch.rand(batch, generator=g) < 0.2).float())
    s, a, r, s_next, done = data

    def twin_loss():
        with torch.no_grad():
            target = r + 0.99 * (1 - done) * q_hat.Linears[1](F.relu(q_hat.Linears[0](s_next))).max(-1).values
        q_sa = q.Linears[1](F.relu(q.Linears[0](s))).gather(1, a.unsqueeze(1)).squeeze(1)
        return F.smooth_l1_loss(q_sa, target)  # Huber with delta 1: the cases of the .kyi

    def first_call():
        _, _, Qf, DQNLossf = zoo_models.cartpole()
        loss_f = DQNLossf(Qf(4, 2, hidden=128), Qf(4, 2, hidden=128), 0.99)
        return lambda: loss_f(*data, batch_level=[1] * 5)

    return Case(lambda: loss(*data), twin_loss, _params(q), first_call=first_call,
                models=[q, q_hat])


def discounted_returns(r: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma G_{t+1}, a reversed loop over Python floats (PyTorch's REINFORCE example)."""
    G, running = [0.0] * r.shape[0], 0.0
    for t, rt in zip(range(r.shape[0] - 1, -1, -1), reversed(r.tolist())):
        running = rt + gamma * running
        G[t] = running
    return torch.tensor(G, dtype=r.dtype)


def policy_gradient(steps: int) -> Case:
    """The policy on an episode of `steps` states, the log-probabilities of the actions, PGLoss."""
    torch.manual_seed(0)
    Pi, PGLoss, _, _ = zoo_models.cartpole()
    pi, loss = Pi(4, 2, hidden=128), PGLoss(0.99)
    g = _gen()
    S, a, r = torch.randn(steps, 4, generator=g), torch.randint(0, 2, (steps, 1), generator=g), torch.rand(steps, generator=g)

    def kokoyi_loss():
        logp = pi(S, batch_level=[1]).gather(1, a).squeeze(1).log()
        return loss(logp, r).sum()

    def twin_loss():
        logp = F.log_softmax(pi.Linears[1](F.relu(pi.Linears[0](S))), -1).gather(1, a).squeeze(1)
        G = discounted_returns(r, 0.99)
        G = (G - G.mean()) / G.std(correction=0)
        return -(G * logp).sum()

    def first_call():
        Pif, PGLossf, _, _ = zoo_models.cartpole()
        pi_f, loss_f = Pif(4, 2, hidden=128), PGLossf(0.99)
        return lambda: loss_f(pi_f(S, batch_level=[1]).gather(1, a).squeeze(1).log(), r)

    return Case(kokoyi_loss, twin_loss, _params(pi), first_call=first_call, models=[pi])


def policy_one_state(batch: int) -> Case:
    """The policy on one state (`batch` is 1): what the rollout calls once per environment step."""
    torch.manual_seed(0)
    Pi, _, _, _ = zoo_models.cartpole()
    pi = Pi(4, 2, hidden=128)
    s = torch.randn(4, generator=_gen())

    def twin_loss():
        return torch.softmax(pi.Linears[1](torch.relu(pi.Linears[0](s))), -1)[0]

    def first_call():
        pi_f = zoo_models.cartpole()[0](4, 2, hidden=128)
        return lambda: pi_f(s)

    return Case(lambda: pi(s)[0], twin_loss, _params(pi), first_call=first_call, models=[pi])


# ---- PPO ----------------------------------------------------------------------------------
def ppo(batch: int) -> Case:
    import ppo_twins

    torch.manual_seed(0)
    K = ppo_twins.kokoyi_modules()
    pi, V = K["Policy"](4, 2, 64), K["Value"](4, 64)
    loss = K["PPOLoss"](pi, V, 0.2, 0.5, 0.01)
    tpi, tV = ppo_twins.Policy(4, 2, 64), ppo_twins.Value(4, 64)
    tpi.Linears, tV.Linears = pi.Linears, V.Linears  # the same layers
    twin = ppo_twins.PPOLoss(tpi, tV, 0.2, 0.5, 0.01)
    inputs = ppo_twins.loss_inputs(B=batch)

    def first_call():
        Kf = ppo_twins._train_script().load_modules("kokoyi")
        loss_f = Kf["PPOLoss"](Kf["Policy"](4, 2, 64), Kf["Value"](4, 64), 0.2, 0.5, 0.01)
        return lambda: loss_f(*inputs, batch_level=[1] * 6)

    return Case(lambda: loss(*inputs, batch_level=[1] * 6)[0].mean(), lambda: twin(*inputs)[0].mean(),
                _params(pi, V), first_call=first_call, models=[pi, V])


def gae(envs: int) -> Case:
    """GAE over a rollout of 128 steps of `envs` environments (forward only, as in training)."""
    import ppo_twins

    K = ppo_twins.kokoyi_modules()
    module = K["GAE"](0.99, 0.95)
    r, v, d = ppo_twins.rollout_inputs(T=128, N=envs)
    v = v.detach()

    def kokoyi_loss():
        adv, ret = module(r, v, d, batch_level=[1, 1, 1])
        return adv.sum() + ret.sum()

    def twin_loss():
        adv = ppo_twins.gae_loop(r, v, d, 0.99, 0.95)
        return adv.sum() + (adv + v[..., :-1]).sum()

    return Case(kokoyi_loss, twin_loss, [], backward=False)


# ---- seq2seq: GRU -------------------------------------------------------------------------
GRU_GATES = (1, 0, 2)  # torch.nn.GRU packs (reset, update, new); the .kyi's W[k], U[k] are (update, reset, new)


def packed_gru(cell) -> nn.GRU:
    """An nn.GRU holding a copy of a Kokoyi GRUCell's six affine layers."""
    W, U = cell.W, cell.U
    gru = nn.GRU(W[0].in_features, W[0].out_features, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.cat([W[k].weight for k in GRU_GATES]))
        gru.bias_ih_l0.copy_(torch.cat([W[k].bias for k in GRU_GATES]))
        gru.weight_hh_l0.copy_(torch.cat([U[k].weight for k in GRU_GATES]))
        gru.bias_hh_l0.copy_(torch.cat([U[k].bias for k in GRU_GATES]))
    return gru


def unpack_gru_grads(grads) -> list:
    """nn.GRU's four packed gradients -> W[0..2].weight, W.bias, ..., U[2].bias in the cell's order."""
    w_ih, w_hh, b_ih, b_hh = (g.chunk(3) for g in grads)
    by_gate = {k: i for i, k in enumerate(GRU_GATES)}
    out = []
    for weights, biases in ((w_ih, b_ih), (w_hh, b_hh)):
        for k in range(3):
            out += [weights[by_gate[k]], biases[by_gate[k]]]
    return out


def seq2seq_targets(y):
    """The decoder's input: the target shifted right behind bos (token 0)."""
    return torch.cat([torch.zeros_like(y[:, :1]), y[:, :-1]], 1)


def gru(batch: int, length: int = 8) -> Case:
    torch.manual_seed(0)
    ex = zoo_models.load_example("seq2seq")
    model = ex.Seq2Seq(ex.GRUSeq2Seq(10, 32, 128))
    f = model.f
    enc, dec = packed_gru(f.Enc), packed_gru(f.Dec)
    x, y = ex.make_batch(_gen(), batch, length, 10, "reverse")

    def twin_loss():
        u = seq2seq_targets(y)
        _, c = enc(f.E(x), f.h_0.expand(1, x.shape[0], -1).contiguous())
        s, _ = dec(f.E(u), c)
        return F.cross_entropy(f.Out(s).flatten(0, 1), y.flatten())

    own = [f.E.weight, f.h_0, f.Out.weight, f.Out.bias]
    gru_params = lambda g: [g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0]
    kokoyi_params = own + [p for cell in (f.Enc, f.Dec) for layers in (cell.W, cell.U) for layer in layers
                           for p in (layer.weight, layer.bias)]

    def to_kokoyi(grads):
        return list(grads[:4]) + unpack_gru_grads(grads[4:8]) + unpack_gru_grads(grads[8:12])

    def first_call():
        fresh = zoo_models.load_example("seq2seq")
        m = fresh.Seq2Seq(fresh.GRUSeq2Seq(10, 32, 128))
        return lambda: m(x, y, batch_level=[1, 1])

    return Case(lambda: model(x, y, batch_level=[1, 1]).mean(), twin_loss, kokoyi_params,
                twin_params=own + gru_params(enc) + gru_params(dec), twin_grads_to_kokoyi=to_kokoyi,
                first_call=first_call, models=[model])


# ---- seq2seq: Transformer -----------------------------------------------------------------
def positional_table(T: int, d: int) -> torch.Tensor:
    """Sinusoidal encodings (sin on even features, cos on odd ones), built once per length."""
    t = torch.arange(T, dtype=torch.float32)[:, None]
    k = torch.arange(d)
    angle = t / 10000 ** ((k - k % 2) / d)
    return torch.where(k % 2 == 0, torch.sin(angle), torch.cos(angle))


class TransformerTwin:
    """The Kokoyi Transformer's math with packed heads and SDPA, on the Kokoyi model's own tensors."""

    def __init__(self, f):
        self.f = f
        self.tables: dict = {}

    def pe(self, T, d):
        if (T, d) not in self.tables:
            self.tables[T, d] = positional_table(T, d)
        return self.tables[T, d]

    @staticmethod
    def attention(xq, xkv, W_Q, W_K, W_V, W_O, causal):
        B, T, d = xq.shape
        heads, dk, _ = W_Q.shape
        S = xkv.shape[1]
        q = F.linear(xq, W_Q.reshape(heads * dk, d)).view(B, T, heads, dk).transpose(1, 2)
        k = F.linear(xkv, W_K.reshape(heads * dk, d)).view(B, S, heads, dk).transpose(1, 2)
        v = F.linear(xkv, W_V.reshape(heads * dk, d)).view(B, S, heads, dk).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return a.transpose(1, 2).reshape(B, T, heads * dk) @ W_O.reshape(heads * dk, d)

    def encoder_layer(self, layer, X):
        Xb = layer.LN[0](X)
        A = X + self.attention(Xb, Xb, *layer.W, causal=False)
        return A + layer.FF[1](F.relu(layer.FF[0](layer.LN[1](A))))

    def decoder_layer(self, layer, Y, Z):
        W = list(layer.W)
        Yb = layer.LN[0](Y)
        A = Y + self.attention(Yb, Yb, *W[:4], causal=True)
        B = A + self.attention(layer.LN[1](A), Z, *W[4:], causal=False)
        return B + layer.FF[1](F.relu(layer.FF[0](layer.LN[2](B))))

    def __call__(self, x, u):
        f = self.f
        d = f.E.embedding_dim
        Z = math.sqrt(d) * f.E(x) + self.pe(x.shape[1], d)
        for layer in f.Enc:
            Z = self.encoder_layer(layer, Z)
        Z = f.LN[0](Z)
        H = math.sqrt(d) * f.E(u) + self.pe(u.shape[1], d)
        for layer in f.Dec:
            H = self.decoder_layer(layer, H, Z)
        return f.Out(f.LN[1](H))


def transformer(batch: int, length: int = 8) -> Case:
    torch.manual_seed(0)
    ex = zoo_models.load_example("seq2seq")
    model = ex.Seq2Seq(ex.Transformer(10, 64, 4, 128, 1))
    twin = TransformerTwin(model.f)
    x, y = ex.make_batch(_gen(), batch, length, 10, "reverse")

    def twin_loss():
        return F.cross_entropy(twin(x, seq2seq_targets(y)).flatten(0, 1), y.flatten())

    def first_call():
        fresh = zoo_models.load_example("seq2seq")
        m = fresh.Seq2Seq(fresh.Transformer(10, 64, 4, 128, 1))
        return lambda: m(x, y, batch_level=[1, 1])

    return Case(lambda: model(x, y, batch_level=[1, 1]).mean(), twin_loss, _params(model), first_call=first_call,
                models=[model])


# name -> (builder(batch), the example's batch size, extra batch sizes besides it and 4x it)
# ---- an LSTM written as a recurrence group (issue 13) ----------------------------------------
LSTM_SOURCE = r"""
\Module{LSTM}{x \in \mathbb{R}^{T \times n}; W_f, W_i, W_c, W_o, h_0, c_0}
  c \gets \{ f_t \odot \begin{cases} c_0 & t = 0 \\ c[t-1] & \text{otherwise} \end{cases} + i_t \odot \tanh(W_c @ z_t) \}_{t=0}^{T-1}
      \where z_t \gets \Concat(\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t]),
              f_t \gets \Sigmoid(W_f @ z_t), i_t \gets \Sigmoid(W_i @ z_t) \\
  h \gets \{ \Sigmoid(W_o @ \Concat(\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t])) \odot \tanh(c[t]) \}_{t=0}^{T-1} \\
  \Return h \\
\EndModule
"""


def lstm(batch: int, length: int = 50, hidden: int = 128, inputs: int = 32) -> Case:
    """The LSTM of the issue's target (T=50, hidden 128) against torch's fused LSTM kernel,
    whose weights are the Kokoyi gates' matrices (concatenated, so gradients reach them)."""
    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile(LSTM_SOURCE, filename="lstm_bench.kyi")
    g = _gen()
    mats = [nn.Parameter(torch.randn(hidden, hidden + inputs, generator=g) / math.sqrt(hidden)) for _ in range(4)]
    h0, c0 = (nn.Parameter(torch.zeros(hidden)) for _ in range(2))
    params = [*mats, h0, c0]
    model = Host(tuple(params), kokoyi.symbol["LSTM"])
    x = torch.randn(batch, length, inputs, generator=g)
    target = torch.randn(batch, length, hidden, generator=g)

    def kokoyi_loss():
        return F.mse_loss(model(x, batch_level=[1]), target)

    def twin_loss():
        wf, wi, wc, wo = mats
        order = (wi, wf, wc, wo)  # torch's gate order: input, forget, cell, output
        w_ih = torch.cat([w[:, hidden:] for w in order])
        w_hh = torch.cat([w[:, :hidden] for w in order])
        state = (h0.expand(1, batch, hidden).contiguous(), c0.expand(1, batch, hidden).contiguous())
        out = torch._VF.lstm(x, state, (w_ih, w_hh), False, 1, 0.0, False, False, True)[0]
        return F.mse_loss(out, target)

    return Case(kokoyi_loss, twin_loss, params, models=[model])


CASES: dict[str, tuple[Callable[[int], Case], int, tuple[int, ...]]] = {
    "mlp+ce": (lambda b: classifier("mlp", b), 64, ()),
    "cnn+ce": (lambda b: classifier("cnn", b), 64, ()),
    "vae": (vae, 64, ()),
    "gan-d": (lambda b: gan("d", b), 64, ()),
    "gan-g": (lambda b: gan("g", b), 64, ()),
    "dqn": (dqn, 64, ()),
    "pg": (policy_gradient, 200, ()),  # one CartPole episode of 200 steps
    "pi-1": (policy_one_state, 1, ()),  # the policy on one state (rollout): batch 1 only
    "ppo": (ppo, 128, ()),  # a minibatch of 4 envs x 128 steps / 4
    "gae": (gae, 4, ()),  # 4 environments x 128 steps, forward only
    "gru": (gru, 64, (1,)),
    "transformer": (transformer, 64, ()),
    "lstm": (lstm, 64, ()),
}
SINGLE_BATCH = {"pi-1"}  # cases timed only at their own batch size
