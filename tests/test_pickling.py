"""Module symbols pickle by key and unit source; nn.Modules that hold them pickle too, also
into fresh processes (spawn) that never compiled the unit."""
from __future__ import annotations

import copy
import multiprocessing
import pickle
from pathlib import Path

import pytest
import spawn_workers
import torch

import kokoyi

POLICY = Path(__file__).resolve().parents[1] / "examples" / "policy_gradient" / "policy.kyi"


@pytest.fixture(autouse=True)
def spawnable(monkeypatch):
    spawn_workers.spawnable_main(monkeypatch)


def policy():
    kokoyi.load(POLICY)
    torch.manual_seed(0)
    linears = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])
    return kokoyi.symbol[r"\pi"], linears


def test_a_symbol_pickles_to_itself_in_the_same_process():
    pi, _ = policy()
    assert pickle.loads(pickle.dumps(pi)) is pi
    assert copy.deepcopy(pi) is pi and copy.copy(pi) is pi


def test_an_unpickled_symbol_recompiles_its_unit_when_the_process_lacks_it():
    pi, linears = policy()
    data = pickle.dumps(pi)
    x = torch.randn(3, 4)
    want = spawn_workers.Holder(pi, linears)(x, batch_level=[1])
    kokoyi.symbol.clear()
    restored = pickle.loads(data)
    assert restored is not pi and r"\pi" in kokoyi.symbol
    torch.testing.assert_close(spawn_workers.Holder(restored, linears)(x, batch_level=[1]), want)
    assert pickle.loads(data) is restored  # compiled once per process


def test_a_unit_that_needs_earlier_units_fails_to_restore_with_their_names():
    kokoyi.compile(r"\gamma \gets 0.5 \\", filename="consts.kyi")
    unit = kokoyi.compile("\\Module{Scale}{x}\n\\Return \\gamma * x \\\\\n\\EndModule\n", filename="scale.kyi")
    data = pickle.dumps(unit["Scale"])
    kokoyi.symbol.clear()
    with pytest.raises(kokoyi.KokoyiError, match="gamma"):
        pickle.loads(data)


def test_symbols_and_modules_cross_into_spawned_processes():
    pi, linears = policy()
    x = torch.randn(5, 4)
    want = spawn_workers.Holder(pi, linears)(x, batch_level=[1])
    pg_loss = kokoyi.symbol["PGLoss"]
    log_p, r = torch.randn(6), torch.rand(6)
    want_loss = spawn_workers.Holder(pg_loss, 0.9)(log_p, r)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(spawn_workers.call_symbol, (pi, linears, (x,), [1]))
        got_module = pool.apply(spawn_workers.call_module, (spawn_workers.Holder(pi, linears), (x,), [1]))
        got_loss = pool.apply(spawn_workers.call_symbol, (pg_loss, 0.9, (log_p, r), None))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_module, want)
    torch.testing.assert_close(got_loss, want_loss)


def test_a_dataloader_with_spawned_workers_runs_a_kokoyi_module():
    pi, linears = policy()
    scorer = spawn_workers.Holder(pi, linears)
    xs = torch.randn(6, 4)
    loader = torch.utils.data.DataLoader(spawn_workers.ScoredDataset(scorer, xs), batch_size=3, num_workers=1,
                                         multiprocessing_context="spawn")
    got = torch.cat(list(loader))
    torch.testing.assert_close(got, scorer(xs, batch_level=[1]).detach())


def test_function_symbols_cross_into_spawned_processes():
    """Top-level functions pickle by key and unit source too (they live in this process's
    generated module, which a spawned process does not have)."""
    kokoyi.compile(r"""sq(u) \gets u * u \\
\Function{softclip}{x, c}
  \Return c * \tanh(x / c) \\
\EndFunction""", filename="functions.kyi")
    sq, softclip = kokoyi.symbol["sq"], kokoyi.symbol["softclip"]
    assert pickle.loads(pickle.dumps(sq)) is sq
    x = torch.tensor([0.5, -3.0])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(spawn_workers.call_function, (softclip, x, 2.0))
        got_sq = pool.apply(spawn_workers.call_function, (sq, 7))
    torch.testing.assert_close(got, softclip(x, 2.0))
    assert got_sq == 49
