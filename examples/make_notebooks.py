"""Generate the example notebooks from the scripts and the .kyi files, so they stay in sync.

    python examples/make_notebooks.py          # (re)writes the .ipynb files
    python examples/make_notebooks.py --check  # exit 1 if a notebook is out of date

* the ``%kokoyi`` cells are the ``.kyi`` files verbatim;
* the helper functions (``run_episode``, ``ReplayBuffer``, ``epsilon_at``,
  ``update_target``) are copied from the training scripts with ``inspect``;
* the hyperparameters are the scripts' defaults (``parse_args([])``), except for a
  short ``EPISODES`` so that the notebook runs in a minute or two.

The notebooks are written unexecuted (no outputs).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # inspect.getsource needs it for classes
    spec.loader.exec_module(mod)
    return mod


def _code(src: str):
    return new_code_cell(textwrap.dedent(src).strip("\n"))


def _md(src: str):
    return new_markdown_cell(textwrap.dedent(src).strip("\n"))


def _kyi_cell(path: Path):
    text = path.read_text().rstrip("\n")
    assert text.splitlines()[0].strip() == "%kokoyi", f"{path} must start with %kokoyi"
    return new_code_cell(text)


COMMON_SETUP = '''
import random
import warnings

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

import kokoyi  # registers the %kokoyi cell magic

torch.set_num_threads(1)


def make_env(seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CartPole-v0 is out of date": v0 (200 steps, solved at 195) is the task
        env = gym.make("CartPole-v0")
    env.action_space.seed(seed)
    return env


random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)
env = make_env(SEED)
'''

PLOT = '''
def running_mean(xs, window=100):
    return [np.mean(xs[max(0, i + 1 - window): i + 1]) for i in range(len(xs))]


plt.figure(figsize=(8, 4.5))
plt.plot(durations, alpha=0.5, lw=0.8, label="episode duration")
plt.plot(running_mean(durations), lw=2, label="100-episode mean")
plt.axhline(195, color="k", ls="--", lw=1, label="solved (195)")
plt.xlabel("episode")
plt.ylabel("duration (steps)")
plt.ylim(0, 210)
plt.legend(loc="lower right")
plt.show()
'''

GREEDY = '''
def greedy_test(model, seed, episodes=5):
    """Episodes with argmax actions (no exploration)."""
    test_env = make_env(seed)
    durations = []
    with torch.no_grad():
        for k in range(episodes):
            s, _ = test_env.reset(seed=seed if k == 0 else None)
            t, done = 0, False
            while not done:
                a = int(torch.argmax(model(torch.as_tensor(s, dtype=torch.float32))))
                s, _, terminated, truncated, _ = test_env.step(a)
                t, done = t + 1, terminated or truncated
            durations.append(t)
    return durations


print("greedy test durations:", greedy_test({model}, SEED + 10_000))
'''


def policy_gradient_notebook():
    train = _load(HERE / "policy_gradient" / "train.py", "pg_train")
    d = train.parse_args([])
    cells = [
        _md(r"""
        # REINFORCE on CartPole, with the policy and the loss written in Kokoyi

        The policy $\pi$ maps a CartPole state to action probabilities; `PGLoss` turns the
        log-probabilities of the actions taken in one episode and the rewards received into
        per-step losses: the discounted returns $G_t$, normalised by their mean and (population)
        standard deviation, times $-\log P$.  Both are Kokoyi modules, compiled to PyTorch by the
        `%kokoyi` cell below.  Everything else (the environment loop, sampling, the optimiser) is
        ordinary Python.

        `EPISODES` is kept short so that the notebook runs quickly; the script
        `train.py` next to this notebook runs the full experiment (up to 1000 episodes,
        stopping once the 100-episode mean reaches 195).
        """),
        _code(f"""
        EPISODES = 300  # the script's default is {d.episodes}
        SEED = {d.seed}
        HIDDEN = {d.hidden}
        LR = {d.lr!r}  # the seed recipe used 0.01, which collapses on some seeds (see README.md)
        GAMMA = {d.gamma!r}
        CLIP = {d.clip!r}  # gradient-norm clip (0 = off)
        """),
        _code(COMMON_SETUP),
        _md("## The model and the loss, in Kokoyi"),
        _kyi_cell(HERE / "policy_gradient" / "policy.kyi"),
        _md("""
        `kokoyi.symbol` now holds the compiled modules.  A module's parameters are given by
        `get_parameters()`, in declaration order; the module is written per sample.
        """),
        _code(r'''
        class Pi(torch.nn.Module):
            def __init__(self, d, a, hidden=128):
                super().__init__()
                self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, a)])

            def get_parameters(self):
                return self.Linears

            forward = kokoyi.symbol[r"\pi"]


        class PGLoss(torch.nn.Module):
            def __init__(self, gamma):
                super().__init__()
                self.gamma = gamma

            def get_parameters(self):
                return self.gamma

            forward = kokoyi.symbol["PGLoss"]


        pi = Pi(env.observation_space.shape[0], env.action_space.n, HIDDEN)
        pg_loss = PGLoss(GAMMA)
        optimizer = torch.optim.Adam(pi.parameters(), lr=LR)
        '''),
        _md("## Training"),
        _code("from torch.distributions import Categorical\n\n\n" + inspect.getsource(train.run_episode)),
        _code('''
        durations = []
        bar = tqdm(range(EPISODES))
        for episode in bar:
            log_probs, rewards = run_episode(env, pi, seed=SEED if episode == 0 else None)
            loss = pg_loss(log_probs, rewards).sum()
            optimizer.zero_grad()
            loss.backward()
            if CLIP > 0:
                torch.nn.utils.clip_grad_norm_(pi.parameters(), CLIP)
            optimizer.step()
            durations.append(len(rewards))
            mean100 = np.mean(durations[-100:])
            bar.set_postfix(mean100=f"{mean100:.1f}")
            if len(durations) >= 100 and mean100 >= 195:
                print(f"solved at episode {episode + 1}")
                break
        '''),
        _md("## Episode durations"),
        _code(PLOT),
        _md("## Greedy test run (argmax action)"),
        _code(GREEDY.replace("{model}", "pi")),
    ]
    return cells


def dqn_notebook():
    train = _load(HERE / "dqn" / "train.py", "dqn_train")
    d = train.parse_args([])
    cells = [
        _md(r"""
        # DQN on CartPole, with the Q network and the TD loss written in Kokoyi

        `Q` maps a state to one value per action.  `DQNLoss` is written **per sample**: the TD
        target $y = r + \gamma (1 - \mathit{done}) \max \hat{Q}(s')$ comes from a target network
        $\hat{Q}$ with the gradient stopped, and the loss is the Huber loss of
        $\delta = Q(s)[a] - y$.  It is called on replay batches with `batch_level=[1, 1, 1, 1, 1]`
        (one leading batch axis on each input) and returns one loss per sample.  The replay
        buffer, epsilon-greedy exploration and target-network updates are ordinary Python.

        `EPISODES` is kept short so that the notebook runs quickly; the script `train.py`
        next to this notebook runs the full experiment (up to 600 episodes, stopping once the
        100-episode mean reaches 195).
        """),
        _code(f"""
        EPISODES = 200  # the script's default is {d.episodes}
        SEED = {d.seed}
        HIDDEN = {d.hidden}
        LR = {d.lr!r}
        GAMMA = {d.gamma!r}
        BATCH_SIZE = {d.batch_size}
        BUFFER = {d.buffer}
        LEARNING_STARTS = {d.learning_starts}  # env steps before the first update
        TRAIN_EVERY = {d.train_every}
        EPS_START, EPS_END, EPS_DECAY_STEPS = {d.eps_start!r}, {d.eps_end!r}, {d.eps_decay_steps}
        TAU = {d.tau!r}  # target update rate: 1 = hard copy every TARGET_EVERY steps, <1 = Polyak every step
        TARGET_EVERY = {d.target_every}
        CLIP = {d.clip!r}  # gradient-norm clip (0 = off)
        """),
        _code(COMMON_SETUP),
        _md("## The Q network and the loss, in Kokoyi"),
        _kyi_cell(HERE / "dqn" / "dqn.kyi"),
        _md("""
        `Q` and $\\hat{Q}$ are parameters of `DQNLoss`: two `torch.nn.Module`s whose forward is the
        Kokoyi `Q` module.
        """),
        _code(r'''
        import copy


        class Q(torch.nn.Module):
            def __init__(self, d, a, hidden=128):
                super().__init__()
                self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, a)])

            def get_parameters(self):
                return self.Linears

            forward = kokoyi.symbol["Q"]


        class DQNLoss(torch.nn.Module):
            def __init__(self, Q, Q_hat, gamma):
                super().__init__()
                self.Q, self.Q_hat, self.gamma = Q, Q_hat, gamma

            def get_parameters(self):
                return self.Q, self.Q_hat, self.gamma

            forward = kokoyi.symbol["DQNLoss"]


        q = Q(env.observation_space.shape[0], env.action_space.n, HIDDEN)
        q_hat = copy.deepcopy(q).requires_grad_(False)
        dqn_loss = DQNLoss(q, q_hat, GAMMA)
        optimizer = torch.optim.Adam(q.parameters(), lr=LR)
        '''),
        _md("## Replay buffer, exploration schedule, target updates"),
        _code("\n\n".join(inspect.getsource(f) for f in (train.ReplayBuffer, train.epsilon_at, train.update_target))),
        _md("## Training"),
        _code('''
        rng = np.random.default_rng(SEED)
        buffer = ReplayBuffer(BUFFER, env.observation_space.shape[0], rng)
        durations, step = [], 0
        bar = tqdm(range(EPISODES))
        for episode in bar:
            s, _ = env.reset(seed=SEED if episode == 0 else None)
            duration = 0
            while True:
                if rng.random() < epsilon_at(step, EPS_START, EPS_END, EPS_DECAY_STEPS):
                    a = int(env.action_space.sample())
                else:
                    with torch.no_grad():
                        a = int(torch.argmax(q(torch.as_tensor(s, dtype=torch.float32))))
                s_next, r, terminated, truncated, _ = env.step(a)
                buffer.add(s, a, r, s_next, float(terminated))  # the time limit is not a terminal state
                s, step, duration = s_next, step + 1, duration + 1
                if step >= LEARNING_STARTS and step % TRAIN_EVERY == 0:
                    loss = dqn_loss(*buffer.sample(BATCH_SIZE), batch_level=[1, 1, 1, 1, 1]).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    if CLIP > 0:
                        torch.nn.utils.clip_grad_norm_(q.parameters(), CLIP)
                    optimizer.step()
                if TAU < 1.0:
                    update_target(q, q_hat, TAU)
                elif step % TARGET_EVERY == 0:
                    update_target(q, q_hat, 1.0)
                if terminated or truncated:
                    break
            durations.append(duration)
            mean100 = np.mean(durations[-100:])
            bar.set_postfix(mean100=f"{mean100:.1f}")
            if len(durations) >= 100 and mean100 >= 195:
                print(f"solved at episode {episode + 1}")
                break
        '''),
        _md("## Episode durations"),
        _code(PLOT),
        _md("## Greedy test run (argmax action)"),
        _code(GREEDY.replace("{model}", "q")),
    ]
    return cells


PPO_CLASSES = r'''

class Policy(torch.nn.Module):
    def __init__(self, d, a, hidden=64):
        super().__init__()
        self.Linears = mlp_layers(d, hidden, a, 0.01, kokoyi.nn.Linear)

    def get_parameters(self):
        return self.Linears

    forward = kokoyi.symbol[r"\pi"]


class Value(torch.nn.Module):
    def __init__(self, d, hidden=64):
        super().__init__()
        self.Linears = mlp_layers(d, hidden, 1, 1.0, kokoyi.nn.Linear)

    def get_parameters(self):
        return self.Linears

    forward = kokoyi.symbol["V"]


class GAE(torch.nn.Module):
    def __init__(self, gamma, lam):
        super().__init__()
        self.gamma, self.lam = gamma, lam

    def get_parameters(self):
        return self.gamma, self.lam

    forward = kokoyi.symbol["GAE"]


class Normalise(torch.nn.Module):
    forward = kokoyi.symbol["Normalise"]


class PPOLoss(torch.nn.Module):
    def __init__(self, pi, V, eps, c1, c2):
        super().__init__()
        self.pi, self.V, self.eps, self.c1, self.c2 = pi, V, eps, c1, c2

    def get_parameters(self):
        return self.pi, self.V, self.eps, self.c1, self.c2

    forward = kokoyi.symbol["PPOLoss"]
'''

PPO_TRAIN = '''
envs = make_envs(ENV_ID, NUM_ENVS)
obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
pi, V = Policy(obs_dim, n_actions, HIDDEN), Value(obs_dim, HIDDEN)
gae, normalise = GAE(GAMMA, GAE_LAMBDA), Normalise()
ppo_loss = PPOLoss(pi, V, CLIP, VF_COEF, ENT_COEF)
params = list(pi.parameters()) + list(V.parameters())
optimizer = torch.optim.Adam(params, lr=LR, eps=1e-5, foreach=True)
shuffle = torch.Generator().manual_seed(SEED)

log = EpisodeLog(NUM_ENVS, target={"CartPole-v1": 475.0, "Acrobot-v1": -100.0}[ENV_ID])
obs = torch.as_tensor(envs.reset(seed=SEED)[0], dtype=torch.float32)
updates = max(1, TOTAL_STEPS // (NUM_ENVS * NUM_STEPS))
bar = tqdm(range(updates))
for update in bar:
    optimizer.param_groups[0]["lr"] = LR * (1 - update / updates)
    rollout, obs = collect_rollout(envs, pi, V, obs, NUM_STEPS, log)
    loss, value_loss, entropy, approx_kl, clip_fraction = ppo_update(
        rollout, gae, normalise, ppo_loss, optimizer, params, EPOCHS, MINIBATCHES, MAX_GRAD_NORM, CLIP, shuffle)
    bar.set_postfix(mean100=f"{log.mean():.1f}", entropy=f"{entropy:.2f}")
envs.close()
print(f"{log.step} env steps, {len(log.returns)} episodes, last 100-episode mean {log.mean():.1f}")
'''

PPO_PLOT = '''
plt.figure(figsize=(8, 4.5))
plt.plot(log.end_steps, log.returns, alpha=0.4, lw=0.6, label="episodic return")
plt.plot(log.end_steps, log.running_means(), lw=2, label="100-episode mean")
plt.axhline(log.target, color="k", ls="--", lw=1, label=f"target ({log.target:g})")
plt.xlabel("environment steps")
plt.ylabel("episodic return")
plt.legend(loc="lower right")
plt.show()
'''


def ppo_notebook():
    train = _load(HERE / "ppo" / "train.py", "ppo_train")
    twins = _load(HERE.parent / "benchmarks" / "ppo_twins.py", "ppo_twins_nb")
    d = train.parse_args([])
    cells = [
        _md(r"""
        # PPO with GAE on vectorised environments, written in Kokoyi

        Proximal Policy Optimisation (Schulman et al., 2017) with the generalised advantage
        estimate (Schulman et al., 2016), on `NUM_ENVS` copies of the environment stepped together
        (`gymnasium.vector.SyncVectorEnv`). The actor $\pi$ (action logits), the critic $V$, the
        advantages, their normalisation and the per-sample loss are Kokoyi modules:

        * $\pi$ and $V$ are written for one state and called on all environments at once with
          `batch_level=[1]`;
        * `GAE` is written for one environment's rollout,
          $\delta_t = r_t + \gamma V(s_{t+1})(1 - d_t) - V(s_t)$ and
          $\hat{A}_t = \delta_t + \gamma\lambda(1 - d_t)\hat{A}_{t+1}$, and called with one batch row
          per environment;
        * `PPOLoss` is written for one transition (clipped surrogate objective, clipped value loss,
          entropy bonus) and called on minibatches with `batch_level=[1] * 6`.

        The hyperparameters are those of CleanRL's `ppo.py`. `TOTAL_STEPS` is kept short so that
        the notebook runs in a minute or so; the script `train.py` next to this notebook runs
        500k steps (see `README.md` for the results over 10 seeds).
        """),
        _code(f"""
        TOTAL_STEPS = 51200  # env steps, all environments together; the script's default is {d.total_steps}
        ENV_ID = {d.env!r}  # or "Acrobot-v1"
        SEED = {d.seed}
        NUM_ENVS = {d.num_envs}
        NUM_STEPS = {d.num_steps}  # steps per environment and rollout
        HIDDEN = {d.hidden}
        LR = {d.lr!r}  # decays linearly to 0 over TOTAL_STEPS
        GAMMA, GAE_LAMBDA = {d.gamma!r}, {d.gae_lambda!r}
        EPOCHS = {d.epochs}
        MINIBATCHES = {d.minibatches}
        CLIP, ENT_COEF, VF_COEF, MAX_GRAD_NORM = {d.clip!r}, {d.ent_coef!r}, {d.vf_coef!r}, {d.max_grad_norm!r}
        """),
        _code("""
        import math
        import random
        from collections import deque

        import gymnasium as gym
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        from torch import nn
        from tqdm.auto import tqdm

        import kokoyi  # registers the %kokoyi cell magic

        torch.set_num_threads(1)
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        WINDOW = 100  # episodes in the running mean
        """),
        _md("## The actor-critic, the advantages and the loss, in Kokoyi"),
        _kyi_cell(HERE / "ppo" / "ppo.kyi"),
        _md(r"""
        The modules' parameters: three Linear layers each for $\pi$ and $V$ (orthogonal
        initialisation, as in CleanRL), $\gamma$ and $\lambda$ for `GAE`, and for `PPOLoss` the two
        networks, the clip range $\epsilon$ and the loss coefficients $c_1$ (value) and $c_2$ (entropy).
        """),
        _code(inspect.getsource(twins.layer_init) + "\n\n" + inspect.getsource(twins.mlp_layers) + PPO_CLASSES),
        _md("## Environments, rollouts and updates"),
        _code("\n\n".join(inspect.getsource(f) for f in (train.make_envs, train.EpisodeLog, train.collect_rollout,
                                                          train.ppo_update))),
        _md("## Training"),
        _code(PPO_TRAIN),
        _md("## Episodic return against environment steps"),
        _code(PPO_PLOT),
        _md("## Greedy test run (most likely action)"),
        _code(inspect.getsource(train.greedy_test)
              + '\n\nprint("greedy test returns:", greedy_test(pi, ENV_ID, SEED + 10_000, 5))'),
    ]
    return cells


def build(cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids keep the files identical from one generation to the next.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


TARGETS = {
    HERE / "policy_gradient" / "policy_gradient.ipynb": policy_gradient_notebook,
    HERE / "dqn" / "dqn.ipynb": dqn_notebook,
    HERE / "ppo" / "ppo.ipynb": ppo_notebook,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = p.parse_args(argv)
    stale = []
    for path, make in TARGETS.items():
        nb = build(make())
        nbformat.validate(nb)
        text = nbformat.writes(nb) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python examples/make_notebooks.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
