"""Several processes (CPU, gloo): DDP equals one process on the same global batch, FSDP2 equals DDP,
gradient accumulation equals the big batch, a killed sharded run resumes exactly, and a checkpoint of
2 processes resumes in 1. Tiny pMF-T/4 runs of 3 steps on 100 MNIST digits."""
import copy
import functools
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.tensor import DTensor

from core.checkpoint import load_model
from core.data import BatchSampler, load_dataset
from core.meanflow import (
    FlowMatchingConfig, MeanFlowConfig, draw_fm_rows, draw_rows, du_dt, spread_rows,
)
from core.model import build_model
from core.parallel import parallelize
from core.train import TrainConfig, build_optimizers, export_checkpoint, load_checkpoint, train

STEPS = 3


@functools.cache
def _small():
    ds = load_dataset("mnist")
    return ds.subset(torch.arange(0, len(ds), 45))  # 100 images, every class


def _cfg(out_dir, **kw) -> dict:
    base = dict(out_dir=str(out_dir), dataset="mnist", preset="pMF-T/4", steps=STEPS, batch_size=8,
                log_every=1, sample_every=0, ckpt_every=1, progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base).to_dict()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(TrainConfig.from_dict(cfg), dataset=_small())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn_train(cfg: dict, world: int) -> None:
    """``train(cfg)`` in ``world`` gloo processes (what torchrun does, without the agent). Forked,
    not spawned: the children inherit the imported modules and the data (seconds per child)."""
    _small()
    mp.start_processes(_worker, args=(world, _free_port(), cfg), nprocs=world, join=True,
                       start_method="fork")


def _log(run):
    return [json.loads(ln) for ln in (Path(run) / "log.jsonl").read_text().splitlines()]


def _losses(run):
    return torch.tensor([[d["loss_u"], d["loss_v"]] for d in _log(run)], dtype=torch.float64)


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _exported(run):
    return _state(load_model(Path(run) / "model")[0])


def _live_weights(run):
    """The live weights of the run's latest checkpoint, loaded in THIS process (no process group)
    whatever wrote it: also checks that a sharded checkpoint loads into one process."""
    torch.manual_seed(123)  # different initial weights: everything must come from the checkpoint
    net = build_model("pMF-T/4", image_size=32, in_channels=1, num_classes=10)
    opts = build_optimizers(net, TrainConfig())
    emas = [{k: p.detach().clone() for k, p in net.named_parameters()} for _ in range(2)]
    step = load_checkpoint(Path(run), net, opts, emas, BatchSampler(100, 8))
    return step, {k: v.clone() for k, v in net.state_dict().items()}


@functools.cache
def _initial() -> dict:
    torch.manual_seed(0)  # what train() builds for these runs
    return build_model("pMF-T/4", image_size=32, in_channels=1, num_classes=10).state_dict()


def _assert_same_training(a: dict, b: dict, tol: float = 5e-2) -> None:
    """Per tensor, ``a`` and ``b`` differ by under ``tol`` of how far training moved ``a`` from the
    initial weights. Not bitwise: another reduction order changes the gradients' last float bits,
    and torch.optim.Muon's Newton-Schulz, which runs in bf16 (8 bits of mantissa), turns a flipped
    rounding into a 2^-8 relative change of the update (measured: up to 1.9% of the movement of a
    Linear weight after 3 steps; Adam-trained tensors agree to ~1e-3). Other data or draws would
    differ by ~100%; the losses of every step are compared at rtol 1e-4 besides."""
    init = _initial()
    assert a.keys() == b.keys()
    for k in a:
        moved = (a[k] - init[k]).norm()
        assert moved > 0, f"{k} did not train"
        assert (a[k] - b[k]).norm() <= tol * moved, (k, float((a[k] - b[k]).norm() / moved))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Reference runs: one process, 2 DDP processes, 2 FSDP2 processes with 2 micro-batches each."""
    root = tmp_path_factory.mktemp("parallel")
    train(TrainConfig.from_dict(_cfg(root / "single")), dataset=_small())
    spawn_train(_cfg(root / "ddp"), 2)
    spawn_train(_cfg(root / "fsdp", parallel="fsdp", grad_accum=2), 2)
    return root


def test_draws_do_not_depend_on_the_split():
    x = torch.zeros(12, 1, 8, 8)
    cfg = MeanFlowConfig()
    whole = draw_rows(x, cfg, seed=5, start=0, global_batch=12)
    parts = [draw_rows(x[i : i + 3], cfg, seed=5, start=i, global_batch=12) for i in range(0, 12, 3)]
    for name in ("e", "t", "r", "omega", "t_min", "t_max", "drop"):
        assert torch.equal(getattr(whole, name), torch.cat([getattr(p, name) for p in parts])), name
    # r = t rows (no JVP) are spread: every quarter of the batch holds its share (fm_ratio 0.5).
    assert [int((p.t == p.r).sum()) for p in parts] == [2, 1, 2, 1]
    assert int((whole.t == whole.r).sum()) == 6
    fm_whole = draw_fm_rows(x, FlowMatchingConfig(), seed=5, start=0, global_batch=12)
    fm_part = draw_fm_rows(x[6:], FlowMatchingConfig(), seed=5, start=6, global_batch=12)
    assert torch.equal(fm_whole.e[6:], fm_part.e) and torch.equal(fm_whole.t[6:], fm_part.t)
    with pytest.raises(ValueError, match="outside a global batch"):
        draw_rows(x, cfg, seed=5, start=4, global_batch=12)


def test_spread_rows_keeps_group_order_and_interleaves():
    same = torch.tensor([True] * 4 + [False] * 4)
    order = spread_rows(same)
    assert sorted(order.tolist()) == list(range(8))
    assert same[order].tolist() == [True, False] * 4
    assert order[same[order]].tolist() == [0, 1, 2, 3]


def _jvp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    bare = build_model("pMF-T/4")
    with torch.no_grad():  # non-zero residual gates, so every block shapes the JVP
        for p in bare.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    sharded = copy.deepcopy(bare)
    parallelize(sharded, "fsdp", world)
    g = torch.Generator().manual_seed(1)
    z, dz = torch.randn(3, 1, 32, 32, generator=g), torch.randn(3, 1, 32, 32, generator=g)
    t, r = torch.tensor([0.9, 0.6, 0.4]), torch.tensor([0.1, 0.3, 0.0])
    args = (torch.tensor([1, 2, 3]), torch.ones(3) * 2, torch.zeros(3), torch.ones(3))
    results = [du_dt(n, z, t, r, dz, *args) for n in (bare, sharded)]
    # The blocks are shards again; FSDP2 keeps its root group (embeddings, final layers) gathered
    # between forwards by design.
    blocks = [sharded.shared_blocks, sharded.u_blocks, sharded.v_blocks]
    still_sharded = all(isinstance(p, DTensor) for b in blocks for p in b.parameters())
    torch.save({"bare": results[0], "fsdp": results[1], "resharded": still_sharded}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_jvp_runs_on_fsdp2_shards_through_the_unsharding_hooks(tmp_path):
    mp.start_processes(_jvp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    for rank in range(2):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        assert res["bare"].abs().max() > 0
        torch.testing.assert_close(res["fsdp"], res["bare"], rtol=1e-5, atol=1e-6)
        assert res["resharded"]  # the blocks' parameters are DTensor shards again after the JVP


def test_ddp_equals_one_process_on_the_same_global_batch(runs):
    torch.testing.assert_close(_losses(runs / "ddp"), _losses(runs / "single"), rtol=1e-4, atol=1e-6)
    _assert_same_training(_live_weights(runs / "ddp")[1], _live_weights(runs / "single")[1])
    _assert_same_training(_exported(runs / "ddp"), _exported(runs / "single"))


def test_fsdp_with_grad_accumulation_equals_ddp(runs):
    # FSDP2 (sharded weights, JVP through the unsharding hooks, Muon on DTensor shards) with 2
    # micro-batches per rank against DDP with 1: the same global batch, so the same training.
    assert (runs / "fsdp" / "checkpoints" / f"step_{STEPS:07d}" / "__1_0.distcp").is_file()  # sharded
    torch.testing.assert_close(_losses(runs / "fsdp"), _losses(runs / "ddp"), rtol=1e-4, atol=1e-6)
    _assert_same_training(_live_weights(runs / "fsdp")[1], _live_weights(runs / "ddp")[1])
    _assert_same_training(_exported(runs / "fsdp"), _exported(runs / "ddp"))


def test_killed_sharded_run_resumes_exactly(runs, tmp_path):
    cfg = _cfg(tmp_path / "killed", parallel="fsdp", grad_accum=2, steps=10_000)
    ranks = mp.start_processes(_worker, args=(2, _free_port(), cfg), nprocs=2, join=False,
                               start_method="fork")
    pointer = tmp_path / "killed" / "checkpoints" / "latest.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if pointer.is_file() and json.loads(pointer.read_text())["step"] >= 1:
                break
            if any(not p.is_alive() for p in ranks.processes):
                pytest.fail("a training rank exited early")
            time.sleep(0.05)
    finally:
        for p in ranks.processes:  # both ranks, mid-step
            os.kill(p.pid, signal.SIGKILL)
        for p in ranks.processes:
            p.join()
    resumed_from = json.loads(pointer.read_text())["step"]
    assert 1 <= resumed_from < STEPS
    spawn_train(_cfg(tmp_path / "killed", parallel="fsdp", grad_accum=2), 2)
    assert _log(tmp_path / "killed")[-1]["step"] == STEPS
    assert torch.equal(_losses(tmp_path / "killed"), _losses(runs / "fsdp"))
    a, b = _live_weights(tmp_path / "killed")[1], _live_weights(runs / "fsdp")[1]
    assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = _exported(tmp_path / "killed"), _exported(runs / "fsdp")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_checkpoint_resumes_in_one_process(runs, tmp_path):
    run = tmp_path / "two_then_one"
    spawn_train(_cfg(run, steps=STEPS // 2, grad_accum=2), 2)  # DDP with no_sync micro-batches
    step, weights = _live_weights(run)
    assert step == STEPS // 2
    train(TrainConfig.from_dict(_cfg(run)), dataset=_small())  # one process continues
    assert [d["step"] for d in _log(run)] == list(range(1, STEPS + 1))
    torch.testing.assert_close(_losses(run), _losses(runs / "single"), rtol=1e-4, atol=1e-6)
    _assert_same_training(_live_weights(run)[1], _live_weights(runs / "single")[1])
    assert json.loads((run / "checkpoints" / f"step_{STEPS:07d}" / "state.json").read_text()).get("format") is None


def test_sharded_checkpoint_exports_its_ema(tmp_path):
    run = tmp_path / "peek"
    spawn_train(_cfg(run, steps=1), 2)  # its last checkpoint (step 1) is sharded, model/ its EMA
    peek = _state(load_model(export_checkpoint(run, tmp_path / "exported"))[0])
    final = _exported(run)
    assert all(torch.equal(peek[k], final[k]) for k in final)


def test_bidirectional_ddp_equals_one_process_and_fsdp_refuses_it(tmp_path):
    # The backward head runs only for r > t rows: ranks use different parameters in a step, which
    # DDP handles with find_unused_parameters; FSDP2 would pair its all-gathers up wrongly.
    kw = dict(steps=2, meanflow=MeanFlowConfig(backward_ratio=0.5))
    train(TrainConfig.from_dict(_cfg(tmp_path / "one", **kw)), dataset=_small())
    spawn_train(_cfg(tmp_path / "two", **kw), 2)
    torch.testing.assert_close(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-4, atol=1e-6)
    net = build_model("pMF-T/4", backward_head=True)
    with pytest.raises(ValueError, match="backward head"):
        parallelize(net, "fsdp", world=2)
