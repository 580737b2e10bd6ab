"""Training loop: exact resume after a kill, non-finite loss handling, checkpoints (one process;
several processes: tests/test_parallel.py)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import core.train as train_mod
from core.checkpoint import load_model
from core.data import load_dataset
from core.meanflow import MeanFlowConfig
from core.model import build_model
from core.train import NonFiniteLossError, TrainConfig, build_optimizers, train

REPO = Path(__file__).resolve().parents[1]


def _tiny(out_dir, **kw):
    base = dict(out_dir=str(out_dir), dataset="mnist", preset="pMF-T/4", steps=8, batch_size=8,
                log_every=1, sample_every=0, ckpt_every=2, progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _losses(run):
    lines = [json.loads(ln) for ln in (Path(run) / "log.jsonl").read_text().splitlines()]
    return [(d["step"], d["loss_u"], d["loss_v"]) for d in lines]


@pytest.fixture(scope="module")
def mnist_small():
    ds = load_dataset("mnist")
    return ds.subset(torch.arange(0, len(ds), 45))  # 100 images, every class


def test_resume_after_kill_repeats_the_uninterrupted_run(tmp_path, mnist_small):
    full = tmp_path / "full"
    train(_tiny(full), dataset=mnist_small)
    # The same run in a separate process, killed with SIGKILL once a checkpoint past step 2 exists.
    killed = tmp_path / "killed"
    cfg = _tiny(killed, steps=10_000)
    code = (
        "import torch, json, sys; from core.train import TrainConfig, train; "
        "from core.data import load_dataset; ds = load_dataset('mnist'); "
        "ds = ds.subset(torch.arange(0, len(ds), 45)); "
        f"train(TrainConfig.from_dict(json.loads({json.dumps(json.dumps(cfg.to_dict()))})), dataset=ds)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    pointer = killed / "checkpoints" / "latest.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if pointer.is_file() and json.loads(pointer.read_text())["step"] >= 4:
            break
        if proc.poll() is not None:
            pytest.fail("training subprocess exited early")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = json.loads(pointer.read_text())["step"]
    assert 4 <= resumed_from < 8
    train(_tiny(killed), dataset=mnist_small)  # resume to step 8
    assert _losses(killed) == _losses(full)
    a, _ = load_model(full / "model")
    b, _ = load_model(killed / "model")
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), k


def test_run_folder_contents_and_exported_model(tmp_path, mnist_small):
    run = tmp_path / "run"
    train(_tiny(run, steps=4, sample_every=2, keep_checkpoints=1), dataset=mnist_small)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 4 and cfg["model"]["num_classes"] == 10
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step_0000004"]
    assert (run / "samples" / "step_0000002.png").is_file()
    net, meta = load_model(run / "model")
    assert meta["objective"] == "pmf" and not net.has_v_head
    assert meta["class_names"] == [str(i) for i in range(10)]


def test_training_draws_from_its_own_seed_and_leaves_the_callers_rng_alone(tmp_path, mnist_small):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(_tiny(tmp_path / "a", steps=2), dataset=mnist_small)
    assert torch.equal(torch.rand(3), expected)  # the caller's global RNG did not move
    torch.manual_seed(999)  # a different caller state: the run is the same
    train(_tiny(tmp_path / "b", steps=2), dataset=mnist_small)
    (net_a, _), (net_b, _) = load_model(tmp_path / "a" / "model"), load_model(tmp_path / "b" / "model")
    for (k, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), k


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_last_checkpoint(tmp_path, mnist_small, monkeypatch):
    real = train_mod.pmf_loss_given
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss, stats = real(*args, **kwargs)
        if calls["n"] == 4:  # step index 3
            return loss * float("nan"), {**stats, "loss": float("nan")}
        return loss, stats

    monkeypatch.setattr(train_mod, "pmf_loss_given", flaky)
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step 3.*step_0000002"):
        train(_tiny(run), dataset=mnist_small)
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2
    monkeypatch.setattr(train_mod, "pmf_loss_given", real)
    train(_tiny(run, steps=4), dataset=mnist_small)  # resumes from the good checkpoint
    assert [s for s, *_ in _losses(run)] == [1, 2, 3, 4]


def test_resume_refuses_a_different_model(tmp_path, mnist_small):
    run = tmp_path / "r"
    train(_tiny(run, steps=2), dataset=mnist_small)
    with pytest.raises(ValueError, match="different model config"):
        train(_tiny(run, steps=4, model_overrides={"width": 32}), dataset=mnist_small)


def test_flow_matching_objective_trains(tmp_path, mnist_small):
    """The flow-matching baseline learns: its loss on fixed draws (64 digits, 4 seeds) after 40 steps is
    below the loss after 1 step on every draw; the exported model says what it is."""
    from core.meanflow import FlowMatchingConfig, fm_loss

    def held_loss(run):
        net, meta = load_model(run / "model")
        x, y = mnist_small.images[:64], mnist_small.labels[:64]
        with torch.no_grad():
            return meta, [fm_loss(net, x, y, FlowMatchingConfig(), torch.Generator().manual_seed(s))[0].item()
                          for s in range(4)]

    train(_tiny(tmp_path / "fm1", steps=1, objective="fm"), dataset=mnist_small)
    train(_tiny(tmp_path / "fm40", steps=40, objective="fm", ckpt_every=1000), dataset=mnist_small)
    (_, before), (meta, after) = held_loss(tmp_path / "fm1"), held_loss(tmp_path / "fm40")
    assert all(a < 0.95 * b for a, b in zip(after, before)), (before, after)  # 2.74 -> 2.35 when written
    assert meta["objective"] == "fm" and meta["sampling"]["num_steps"] == 50


def test_perceptual_term_with_the_offline_mobilenet(tmp_path, mnist_small):
    run = tmp_path / "perc"
    cfg = _tiny(run, steps=2, perceptual_size=32,
                meanflow=MeanFlowConfig(perceptual_weight=0.5, perceptual_max_t=1.0))
    train(cfg, dataset=mnist_small)
    assert all("loss_perc" in json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(_tiny(tmp_path / "bad", steps=1, perceptual_net=str(tmp_path / "missing.pth"),
                    meanflow=MeanFlowConfig(perceptual_weight=0.5)), dataset=mnist_small)


def test_ema_beta_ramp():
    # Early on the half-life is capped by 5% of the images seen; later it is the configured one.
    assert train_mod.ema_beta(10.0, 10, 64, 0.05) == pytest.approx(0.5 ** (64 / (10 * 64 * 0.05)))
    assert train_mod.ema_beta(10.0, 10**6, 64, 0.05) == pytest.approx(0.5 ** (64 / 10_000))


def test_optimizer_split_muon_for_linear_weights_only():
    net = build_model("pMF-T/4")
    muon, adam = build_optimizers(net, TrainConfig())
    assert isinstance(muon, torch.optim.Muon)
    assert all(p.ndim == 2 for g in muon.param_groups for p in g["params"])
    n_muon = sum(len(g["params"]) for g in muon.param_groups)
    n_adam = sum(len(g["params"]) for g in adam.param_groups)
    assert n_muon + n_adam == len(list(net.parameters()))
    assert id(net.class_embed.weight) in {id(p) for g in adam.param_groups for p in g["params"]}


def test_warm_start_copies_missing_heads_from_the_u_head(tmp_path):
    from core.checkpoint import save_model
    from core.model import build_model
    from core.train import warm_start

    torch.manual_seed(0)
    src = build_model("pMF-T/4", with_v_head=False)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(tmp_path / "m", src)  # an exported model: no v-head
    net = build_model("pMF-T/4", backward_head=True)
    warm_start(net, tmp_path / "m")
    for a, b in zip(net.v_blocks.parameters(), src.u_blocks.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(net.b_blocks.parameters(), src.u_blocks.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(net.v_final.linear.weight, src.u_final.linear.weight)
    assert net.b_final.linear.weight.abs().sum() == 0  # its output means noise, not an image
    z, t, r = torch.randn(2, 1, 32, 32), torch.tensor([0.9, 0.5]), torch.tensor([0.0, 0.5])
    with torch.no_grad():
        assert torch.equal(net(z, t, r), src(z, t, r))  # the forward direction is unchanged
    with pytest.raises(ValueError, match="differs"):
        warm_start(build_model("pMF-T/4", width=32), tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="init-from"):
        warm_start(net, tmp_path / "nothing")


def test_bidirectional_run_exports_a_backward_head_and_checkpoint_export_matches(tmp_path, mnist_small):
    from core.train import export_checkpoint

    run = tmp_path / "run"
    cfg = _tiny(run, steps=2, meanflow=MeanFlowConfig(backward_ratio=0.5))
    train(cfg, dataset=mnist_small)
    net, meta = load_model(run / "model")
    assert net.cfg.backward_head and meta["train_steps"] == 2
    peek, _ = load_model(export_checkpoint(run, tmp_path / "peek"))
    for (k, a), (_, b) in zip(net.state_dict().items(), peek.state_dict().items()):
        assert torch.equal(a, b), k  # the checkpoint's last EMA is what the run exported
    with pytest.raises(FileNotFoundError, match="latest.json"):
        export_checkpoint(tmp_path / "nothing", tmp_path / "x")


def test_pmf_export_cli_writes_the_chosen_ema_with_a_guidance_default(tmp_path, mnist_small, capsys):
    from apps.cli import main

    run = tmp_path / "run"
    train(_tiny(run, steps=2, ema_halflife_kimg=(0.001, 1.0), ema_rampup=0.0), dataset=mnist_small)
    assert main(["export", str(run), str(tmp_path / "last")]) == 0
    last, meta = load_model(tmp_path / "last")
    final, _ = load_model(run / "model")  # what the finished run exported: the last EMA
    for a, b in zip(last.state_dict().values(), final.state_dict().values()):
        assert torch.equal(a, b)
    assert main(["export", str(run), str(tmp_path / "first"), "--ema", "0", "--guidance-scale", "2.5"]) == 0
    first, meta0 = load_model(tmp_path / "first")
    assert meta0["ema_halflife_kimg"] == 0.001 and meta0["sampling"]["guidance_scale"] == 2.5
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), final.state_dict().values()))
    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "bad"), "--ema", "2"]) == 2
    assert "out of range" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["export", str(run), str(tmp_path / "bad"), "--guidance-scale", "-1"]) == 2
    assert "guidance-scale" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "bad")]) == 2
    assert "no checkpoints" in capsys.readouterr().err


def test_lr_cooldown_schedule_and_resume(tmp_path, mnist_small):
    from core.train import lr_factor

    assert [lr_factor(s, 10, 4) for s in range(10)] == [1.0] * 7 + [0.75, 0.5, 0.25]
    assert all(lr_factor(s, 10, 0) == 1.0 for s in range(10))
    with pytest.raises(ValueError, match="lr_cooldown_steps"):
        _tiny(tmp_path / "bad", lr_cooldown_steps=-1)
    # The factor is logged per step and is a function of the step and the configured schedule, not of
    # the optimizer state: a resumed run with another schedule follows the new one from its step on.
    full = tmp_path / "full"
    train(_tiny(full, lr_cooldown_steps=6), dataset=mnist_small)
    logged = [json.loads(ln)["lr_factor"] for ln in (full / "log.jsonl").read_text().splitlines()]
    assert logged == [lr_factor(s, 8, 6) for s in range(8)]
    split = tmp_path / "split"
    train(_tiny(split, steps=4, lr_cooldown_steps=2), dataset=mnist_small)  # a shorter schedule first ...
    # ... then resumed with the full schedule: from step 4 on it follows the full run's rates.
    train(_tiny(split, lr_cooldown_steps=6), dataset=mnist_small)
    tail = [json.loads(ln) for ln in (split / "log.jsonl").read_text().splitlines()][4:]
    assert [d["lr_factor"] for d in tail] == logged[4:]
