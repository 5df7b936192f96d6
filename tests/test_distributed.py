"""A Kokoyi model trained under DistributedDataParallel (gloo, 2 processes on 127.0.0.1)
gets the gradients and parameters of single-process training on the whole batch."""
from __future__ import annotations

import copy
import socket
import time
from pathlib import Path

import pytest
import spawn_workers
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import kokoyi

POLICY = Path(__file__).resolve().parents[1] / "examples" / "policy_gradient" / "policy.kyi"

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_single_process(tmp_path, monkeypatch):
    spawn_workers.spawnable_main(monkeypatch)
    kokoyi.load(POLICY)
    torch.manual_seed(0)
    model = spawn_workers.Holder(kokoyi.symbol[r"\pi"],
                                 torch.nn.ModuleList([torch.nn.Linear(4, 16), torch.nn.Linear(16, 2)]))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g)) for _ in range(3)]
    want_first, want_final = spawn_workers.train_steps(copy.deepcopy(model), batches)

    out = tmp_path / "ddp.pt"
    ranks = mp.spawn(spawn_workers.ddp_rank, args=(2, free_port(), model, batches, str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail("the DDP ranks did not finish in 120 s")
    got = torch.load(out)
    for g_, w in zip(got["first"] + got["final"], want_first + want_final):
        torch.testing.assert_close(g_, w)
    assert all(not torch.equal(a, b) for a, b in zip(want_final, model.parameters()))  # training moved them


def test_fsdp2_sharded_layers_keep_the_batched_code(tmp_path):
    """fully_shard swaps each Linear for an FSDPLinear subclass: still batched without vmap."""
    import warnings

    from torch.distributed.fsdp import fully_shard

    from kokoyi.runtime.specialize import KokoyiBatchLoop

    kokoyi.load(POLICY)
    torch.manual_seed(0)
    linears = torch.nn.ModuleList([torch.nn.Linear(4, 16), torch.nn.Linear(16, 2)])
    model = spawn_workers.Holder(kokoyi.symbol[r"\pi"], linears)
    reference = copy.deepcopy(model)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for layer in linears:
            fully_shard(layer)
        fully_shard(model)
        assert type(linears[0]).__name__ == "FSDPLinear"
        s = torch.randn(6, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("error", KokoyiBatchLoop)
            model(s, batch_level=[1])[:, 0].sum().backward()
        reference(s, batch_level=[1])[:, 0].sum().backward()
        for sharded, plain in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(sharded.grad.full_tensor(), plain.grad)
    finally:
        dist.destroy_process_group()
