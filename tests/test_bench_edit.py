"""Edit benchmark (pmf_edit/bench, `pmf bench-edit`): manifests, run + score end to end with a toy
callable editor, scoring from a folder equals scoring in memory, per-item seeds, masked metrics."""
import json
from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from apps.cli import main
from core.checkpoint import save_model
from core.eval.edit_metrics import EditFeatures, self_similarity
from core.eval.metrics import ssim as core_ssim
from core.model import build_model
from pmf_edit.bench import examples
from pmf_edit.bench.curves import choose_strength, sweep
from pmf_edit.bench.editors import EditBatch, make_editor
from pmf_edit.bench.manifest import (EditItem, Manifest, bundled_manifest, load_images, load_manifest, load_masks,
                                     save_manifest)
from pmf_edit.bench.metrics import masked_mse, masked_psnr, masked_ssim
from pmf_edit.bench.run import quantize_u8, run_editor, write_outputs
from pmf_edit.bench.score import Scorer

# ------------------------------------------------------------------------------------------------
# A toy editor and classifier, imported by the CLI as tests.test_bench_edit:toy_editor


def toy_editor(batch: EditBatch):
    """Inverts the items whose target is 1 (dark -> bright), leaves the others; reports 3 NFE."""
    flip = torch.tensor([it.target == 1 for it in batch.items]).view(-1, 1, 1, 1)
    return torch.where(flip, 1 - batch.images, batch.images), 3


def toy_classifier(images01: torch.Tensor) -> torch.Tensor:
    """Class 1 if the image is mostly bright, else 0."""
    return (images01.flatten(1).mean(1) > 0.5).long()


@pytest.fixture()
def toy_manifest(tmp_path):
    """Four dark 16x16 gray images; items 0 and 1 target class 1, items 2 and 3 class 0."""
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(4):
        arr = (torch.rand(16, 16, generator=g) * 80).to(torch.uint8).numpy()
        iio.imwrite(tmp_path / f"src{i}.png", arr)
        items.append({"id": f"im{i}", "image": f"src{i}.png", "source": 0, "target": 1 if i < 2 else 0, "seed": i})
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({"resolution": 16, "channels": 1, "feature_size": 64, "items": items}))
    return path


def test_toy_callable_runs_end_to_end_through_the_cli(toy_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench-edit", "run", "--manifest", str(toy_manifest), "--editor", "tests.test_bench_edit:toy_editor",
                 "--out", str(out), "--batch-size", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png", "im3.png", "run.json"]
    assert json.loads((out / "run.json").read_text())["items"]["im2"]["nfe"] == 3
    capsys.readouterr()
    assert main(["bench-edit", "score", "--manifest", str(toy_manifest), "--outputs", str(out),
                 "--classifier", "tests.test_bench_edit:toy_classifier", "--per-item",
                 "--out", str(tmp_path / "s.json")]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    # Items 0, 1 flipped -> bright -> class 1 = target; items 2, 3 untouched -> class 0 = target.
    assert summary["target_accuracy"] == 1.0 and summary["nfe"] == 3.0
    items = {r["id"]: r for r in json.loads((tmp_path / "s.json").read_text())["points"][0]["items"]}
    assert items["im2"]["mse"] == 0 and items["im2"]["ssim"] == pytest.approx(1.0) and items["im2"]["psnr"] == 100.0
    assert items["im2"]["perceptual"] == pytest.approx(0, abs=1e-6) and items["im2"]["structure"] == pytest.approx(0, abs=1e-6)
    assert items["im0"]["mse"] > 0.3 and items["im0"]["ssim"] < 0.5 and items["im0"]["perceptual"] > 0.01


def test_score_of_a_sweep_folder_and_plot(toy_manifest, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["bench-edit", "run", "--manifest", str(toy_manifest), "--editor", "identity",
                 "--strengths", "0.5,0.8", "--out", str(out)]) == 0
    assert (out / "strength_0.50" / "im0.png").is_file() and (out / "strength_0.80" / "run.json").is_file()
    capsys.readouterr()
    assert main(["bench-edit", "score", "--manifest", str(toy_manifest), "--outputs", str(out),
                 "--classifier", "tests.test_bench_edit:toy_classifier", "--metrics", "accuracy,pixels",
                 "--plot", str(tmp_path / "c.png")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["strength"] for r in rows] == [0.5, 0.8]
    assert all(r["target_accuracy"] == 0.5 and r["ssim"] == pytest.approx(1.0) for r in rows)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_score_errors_name_the_problem(toy_manifest, tmp_path):
    m = load_manifest(toy_manifest)
    with pytest.raises(FileNotFoundError, match="lacks outputs for 4 of 4"):
        Scorer(m, classifier=toy_classifier, metrics=("accuracy",)).score_folder(tmp_path)
    big = [torch.zeros(1, 20, 20)] * 4
    with pytest.raises(ValueError, match="20x20 but the manifest's images are 16x16"):
        Scorer(m, classifier=toy_classifier, metrics=("accuracy",)).score(big)
    assert Scorer(m, classifier=toy_classifier, metrics=("accuracy",), resize=True).score(big)["summary"]["n"] == 4
    with pytest.raises(ValueError, match="must return"):
        run_editor(m, lambda b: "nope")
    with pytest.raises(ValueError, match="values in"):
        run_editor(m, lambda b: b.images * 3 + 0.5)


# ------------------------------------------------------------------------------------------------
# Manifests


def test_manifest_csv_masks_and_errors(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.full((20, 30), 200, np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    iio.imwrite(tmp_path / "m.png", mask)
    (tmp_path / "e.csv").write_text('image,source,target,mask,seed\na.png,3,4,"box:0,0,2,8",7\na.png,3,,m.png,\n'
                                    "mnist:test:0,0,1,,\n")
    m = load_manifest(tmp_path / "e.csv", resolution=8, channels=3, classifier="digits")
    assert [it.id for it in m.items] == ["0000", "0001", "0002"] and m.items[1].target is None
    assert m.items[0].seed == 7 and m.items[1].seed == 0
    x = load_images(m)
    assert x.shape == (3, 3, 8, 8) and torch.allclose(x[0], torch.full((3, 8, 8), 200 / 255))
    masks = load_masks(m)
    assert masks[0, 0, :2].all() and not masks[0, 0, 2:].any()
    assert masks[1, 0, :4].all() and not masks[1, 0, 4:].any() and masks[2].all()
    save_manifest(m, tmp_path / "back.json")
    assert load_manifest(tmp_path / "back.json").items == m.items
    with pytest.raises(ValueError, match="resolution and channels"):
        load_manifest(tmp_path / "e.csv")
    (tmp_path / "unquoted.csv").write_text("image,mask\na.png,box:0,0,2,8\n")
    with pytest.raises(ValueError, match="quote values"):
        load_manifest(tmp_path / "unquoted.csv", resolution=8, channels=1)
    (tmp_path / "dup.json").write_text(json.dumps({"resolution": 8, "channels": 1, "items": [
        {"id": "a", "image": "a.png"}, {"id": "a", "image": "a.png"}]}))
    with pytest.raises(ValueError, match="duplicate item ids"):
        load_manifest(tmp_path / "dup.json")
    bad = Manifest(items=(EditItem(id="x", image="nope.png"),), resolution=8, channels=1, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_images(bad)
    bad = Manifest(items=(EditItem(id="x", image="a.png", mask="box:0,0,9,9"),), resolution=8, channels=1, root=tmp_path)
    with pytest.raises(ValueError, match="box"):
        load_masks(bad)


def test_bundled_manifests_are_what_the_generators_make():
    made = {m.name: m for m in (examples.mnist_swap_manifest("test", 10, "mnist_heldout_swap100"),
                                examples.mnist_swap_manifest("train", 10, "mnist_tune_swap100"),
                                examples.mnist_inpaint_manifest(), examples.photos_imagenet_manifest())}
    for name, m in made.items():
        assert load_manifest(bundled_manifest(name)) == m, name
    heldout = {it.image for it in made["mnist_heldout_swap100"].items}
    tune = {it.image for it in made["mnist_tune_swap100"].items}
    assert all(i.startswith("mnist:test:") for i in heldout) and all(i.startswith("mnist:train:") for i in tune)
    x = load_images(made["mnist_heldout_swap100"].select(["0000", "0099"]))
    assert x.shape == (2, 1, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_photos_manifest_sources_are_the_imagenet_classifiers_reading():
    m = load_manifest(bundled_manifest("photos_imagenet"))
    first = {}
    for it in m.items:
        first.setdefault(it.image, it)
    sub = m.select([it.id for it in first.values()])
    s = Scorer(sub, metrics=("accuracy",))
    pred = [r["predicted"] for r in s.score(list(s.sources))["items"]]
    assert pred == [it.source for it in sub.items]


# ------------------------------------------------------------------------------------------------
# Our editors: folder == memory, per-item seeds


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models")
    for name in ("pmf", "fm"):
        net = build_model("pMF-T/4", with_v_head=False)
        with torch.no_grad():  # break the zero-initialised gates and output so edits depend on noise and class
            for p in net.parameters():
                if not p.any():
                    p.normal_(0, 0.05)
        save_model(d / name, net, objective=name)
    return d


@pytest.fixture(scope="module")
def digits4():
    m = load_manifest(bundled_manifest("mnist_heldout_swap100"))
    return m.select(["0000", "0031", "0062", "0093"])


def test_folder_scores_equal_in_memory_scores(tiny_models, digits4, tmp_path):
    ed = make_editor("flow_edit", model=str(tiny_models / "pmf"))
    res = run_editor(digits4, ed, strength=0.8, batch_size=2)
    scorer = Scorer(digits4)
    # npy is lossless: the folder gives exactly the in-memory numbers.
    npy = scorer.score_folder(write_outputs(tmp_path / "npy", digits4, res, fmt="npy"))
    mem = scorer.score(res.images, res.records)
    assert npy["items"] == mem["items"] and npy["summary"] == mem["summary"]
    # 8-bit PNG: exactly the in-memory numbers of the same quantisation.
    png = scorer.score_folder(write_outputs(tmp_path / "png", digits4, res, fmt="png"))
    mem_q = scorer.score([quantize_u8(x) for x in res.images], res.records)
    assert png["items"] == mem_q["items"] and png["summary"] == mem_q["summary"]
    assert png["summary"]["nfe"] == 8 and png["summary"]["cpu_ms_per_image"] > 0


@pytest.mark.parametrize("name", ["flow_edit", "sdedit", "fm_sdedit", "fm_flowedit"])
def test_outputs_depend_on_item_seed_not_batch(tiny_models, digits4, name):
    model = str(tiny_models / ("fm" if name.startswith("fm_") else "pmf"))
    ed = make_editor(name, model=model, fm_steps=2)
    a = torch.stack(run_editor(digits4, ed, strength=0.7, batch_size=4).images)
    b = torch.stack(run_editor(digits4, ed, strength=0.7, batch_size=1).images)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    reseeded = replace(digits4, items=tuple(replace(it, seed=it.seed + 1) for it in digits4.items))
    c = torch.stack(run_editor(reseeded, ed, strength=0.7, batch_size=4).images)
    assert (a - c).abs().max() > 1e-4  # a different seed changes the edit


def test_inpaint_editor_keeps_pixels_outside_the_mask(tiny_models):
    m = load_manifest(bundled_manifest("mnist_heldout_inpaint20")).select(["0000", "0001"])
    res = run_editor(m, make_editor("inpaint", model=str(tiny_models / "pmf")), batch_size=2)
    rep = Scorer(m, metrics=("pixels",)).score(res.images, res.records)
    assert all(r["mse"] == 0 and r["psnr"] == 100.0 for r in rep["items"])
    assert rep["summary"]["nfe"] == 8


# ------------------------------------------------------------------------------------------------
# Metrics and the default rule


def test_masked_metrics():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    torch.testing.assert_close(masked_ssim(x, y, None).float(), core_ssim(x, y, data_range=1.0), rtol=0, atol=1e-6)
    keep = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    keep[:, :, :8] = False  # top half is the edit region
    z = x.clone()
    z[:, :, :8] = y[:, :, :8]  # change only inside the edit region
    assert masked_mse(z, x, keep).tolist() == [0.0, 0.0] and masked_psnr(z, x, keep).tolist() == [100.0, 100.0]
    assert masked_mse(z, x, None).min() > 0.01
    # SSIM's window reaches 3 px across the seam: rows >= 11 see no change.
    keep2 = torch.zeros_like(keep)
    keep2[:, :, 11:] = True
    torch.testing.assert_close(masked_ssim(z, x, keep2), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="keep must be bool"):
        masked_mse(x, y, keep.float())


def test_structure_distance():
    f = torch.randn(2, 8, 3, 3)
    s = self_similarity(f)
    assert s.shape == (2, 9, 9) and torch.allclose(s.diagonal(dim1=1, dim2=2), torch.ones(2, 9), atol=1e-5)
    feats = EditFeatures(size=64)
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 8:24, 12:20] = 1  # a bar
    y = x.transpose(-1, -2).contiguous()  # the bar turned 90 degrees
    fx, fy = feats(x), feats(y)
    assert feats.structure(fx, fx).abs().max() < 1e-6 and (feats.structure(fx, fy) > 1e-3).all()
    assert (feats.perceptual(fx, fy) > 1e-3).all()


@pytest.mark.parametrize("accs, chosen", [
    ([0.3, 0.85, 0.92, 1.0], 0.7),  # the first strength that reaches 90 %
    ([0.3, 0.5, 0.6, 0.55], 0.7),  # none reaches it: the most accurate
    ([0.3, 0.6, 0.6, 0.5], 0.6),  # tie: the smaller strength
])
def test_default_rule(accs, chosen):
    rows = [{"strength": s, "target_accuracy": a} for s, a in zip([0.5, 0.6, 0.7, 0.8], accs)]
    assert choose_strength(rows, 0.9)[0] == chosen


def test_sweep_scores_each_strength_from_its_folder(toy_manifest, tmp_path):
    m = load_manifest(toy_manifest)
    scorer = Scorer(m, classifier=toy_classifier, metrics=("accuracy", "pixels"))
    rows = sweep(m, "identity", [0.3, None], scorer, out_dir=tmp_path / "sw")
    assert [r["strength"] for r in rows] == [0.3, None]
    assert (tmp_path / "sw" / "strength_0.30" / "im0.png").is_file() and (tmp_path / "sw" / "default" / "run.json").is_file()
    assert all(r["target_accuracy"] == 0.5 and r["mse"] == 0 and r["nfe"] == 0 for r in rows)


def test_rgb_edit_of_a_gray_manifest_is_scored_in_luma(toy_manifest):
    m = load_manifest(toy_manifest)
    s = Scorer(m, metrics=("pixels",))
    rgb = [x.expand(3, -1, -1) for x in s.sources]  # the same gray image as RGB
    assert s.score(rgb)["summary"]["mse"] == pytest.approx(0, abs=1e-12)


def test_bundled_flow_edit_default_changes_the_class():
    # The bundled pMF at the default strength on one held-out digit per class (96 % on 100 in docs/bench_edit.md).
    m = load_manifest(bundled_manifest("mnist_heldout_swap100"))
    m = m.select([it.id for it in m.items[::10]])
    res = run_editor(m, make_editor("flow_edit"), batch_size=10)
    summary = Scorer(m, metrics=("accuracy", "pixels")).score(res.images, res.records)["summary"]
    assert summary["target_accuracy"] >= 0.7 and summary["nfe"] == 8
    assert 0.3 < summary["ssim"] < 0.9  # changed, yet not regenerated from scratch


# ------------------------------------------------------------------------------------------------
# The change gate on any editor (like for like with ours)


def speckle_editor(batch: EditBatch):
    """Draws a bright 6x6 square (the edit) and adds faint speckle everywhere (what a regeneration moves
    by accident)."""
    g = torch.Generator().manual_seed(0)
    out = (batch.images + 0.03 * torch.rand(batch.images.shape, generator=g)).clamp(0, 1)
    out[..., 2:8, 2:8] = 1.0
    return out


def test_gated_gives_any_editor_our_gate_and_the_cli_flag(toy_manifest, tmp_path, capsys):
    from pmf_edit.bench.editors import gated, make_editor_gated
    from pmf_edit.editing import DEFAULT_GATE, gate_change

    m = load_manifest(toy_manifest)
    plain = run_editor(m, speckle_editor)
    gated_res = run_editor(m, gated(speckle_editor, DEFAULT_GATE))
    src = load_images(m)
    for x, p, q in zip(src, plain.images, gated_res.images):
        torch.testing.assert_close(q, gate_change(p[None], x[None], DEFAULT_GATE)[0])
        far = (slice(None), slice(12, 16), slice(12, 16))  # speckle far from the square: mostly undone
        assert (q[far] - x[far]).abs().mean() < 0.3 * (p[far] - x[far]).abs().mean()
    # Another output size: the source is resized to it for the gate.
    big = gated(lambda b: torch.nn.functional.interpolate(speckle_editor(b), scale_factor=2), DEFAULT_GATE)
    assert run_editor(m, big).images[0].shape == (1, 32, 32)
    # One rule for every editor: T gates the user's editor, 0 leaves it as it is.
    assert torch.equal(run_editor(m, make_editor_gated("tests.test_bench_edit:speckle_editor", 0)).images[0],
                       plain.images[0])
    torch.testing.assert_close(run_editor(m, make_editor_gated("tests.test_bench_edit:speckle_editor", 0.6)).images[1],
                               gated_res.images[1])
    out = tmp_path / "g"
    assert main(["bench-edit", "run", "--manifest", str(toy_manifest), "--editor",
                 "tests.test_bench_edit:speckle_editor", "--change-gate", "0.6", "--format", "npy",
                 "--out", str(out)]) == 0
    torch.testing.assert_close(torch.from_numpy(np.load(out / "im0.npy")), gated_res.images[0])
    assert json.loads((out / "run.json").read_text())["change_gate"] == 0.6


def test_our_editors_gate_once_under_one_rule(tiny_models, digits4):
    from pmf_edit.bench.editors import make_editor_gated

    model = str(tiny_models / "pmf")
    library = run_editor(digits4, make_editor("sdedit", model=model), strength=0.7).images
    all_gated = run_editor(digits4, make_editor_gated("sdedit", 0.6, model=model), strength=0.7).images
    plain = run_editor(digits4, make_editor_gated("sdedit", 0, model=model), strength=0.7).images
    for a, b, c in zip(library, all_gated, plain):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # at the model's size: the same gate, applied once
        assert not torch.equal(a, c)
