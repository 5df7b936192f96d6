"""Functions and classes that tests run in other processes (spawn start method: they must
be importable by name, and must not rely on what the parent compiled)."""
from __future__ import annotations

import copy

import torch


def spawnable_main(monkeypatch) -> None:
    """Let multiprocessing's spawn read `__main__`: under pytest-xdist the worker's
    `__main__` (execnet's) has no `__spec__` attribute, which spawn expects."""
    import sys

    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):
        monkeypatch.setattr(main, "__spec__", None, raising=False)


class Holder(torch.nn.Module):
    """An nn.Module that keeps a Kokoyi module symbol as an attribute (pickled with it)."""

    def __init__(self, kokoyi_forward, params):
        super().__init__()
        self.kokoyi_forward = kokoyi_forward
        self.params = params

    def get_parameters(self):
        return self.params

    def forward(self, *inputs, **kwargs):
        return self.kokoyi_forward(self, *inputs, **kwargs)


def call_symbol(symbol, params, inputs, batch_level):
    """symbol called on a Holder of params (computed without autograd: results cross back)."""
    with torch.no_grad():
        return Holder(symbol, params)(*inputs, batch_level=batch_level)


def call_module(module, inputs, batch_level):
    with torch.no_grad():
        return module(*inputs, batch_level=batch_level)


class ScoredDataset(torch.utils.data.Dataset):
    """Items scored by a Kokoyi module in the DataLoader worker."""

    def __init__(self, scorer, xs):
        self.scorer, self.xs = scorer, xs

    def __len__(self):
        return len(self.xs)

    def __getitem__(self, i):
        with torch.no_grad():
            return self.scorer(self.xs[i])


def policy_loss(model, states, actions):
    """Mean negative log-likelihood of actions under a Kokoyi policy (batched call)."""
    probs = model(states, batch_level=[1])
    return -torch.log(probs.gather(1, actions[:, None])).mean()


def train_steps(model, batches, lr=0.1):
    """SGD steps on policy_loss; the gradients of the first step and the final parameters."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    first = None
    for states, actions in batches:
        opt.zero_grad()
        policy_loss(model, states, actions).backward()
        if first is None:
            first = [p.grad.clone() for p in model.parameters()]
        opt.step()
    return first, [p.detach().clone() for p in model.parameters()]


def ddp_rank(rank, world, port, model, batches, out):
    """One DDP rank (gloo on the loopback interface): trains on its share of every batch;
    rank 0 saves the first gradients and the final parameters to `out`."""
    import datetime
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # never the host's other interfaces
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        # torch.multiprocessing hands every rank the same shared-memory parameters: each
        # rank trains its own copy, as separate machines would.
        ddp = DistributedDataParallel(copy.deepcopy(model))
        mine = [(s.chunk(world)[rank], a.chunk(world)[rank]) for s, a in batches]
        first, final = train_steps(ddp, mine)
        if rank == 0:
            torch.save({"first": first, "final": final}, out)
        # Both ranks done before the process group goes: a rank that tears down its
        # DistributedDataParallel while the other still talks to it can hang in gloo.
        dist.barrier()
        del ddp
    finally:
        dist.destroy_process_group()


def call_function(function, *args):
    """A Kokoyi function symbol called in this (spawned) process."""
    return function(*args)
