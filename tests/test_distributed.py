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


def test_ddp_gradients_equal_single_process(tmp_path):
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
