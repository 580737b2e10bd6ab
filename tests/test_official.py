"""core/official.py + core/pretrained.py: official pmfDiT checkpoints, without the official code.

The official-format state dicts here are made by renaming our own weights through the inverse
mapping; the expected names below are the parameter names of the authors' ``pmfDiT``
(``Lyy-iiis/pMF@torch``, eval_mode=False), so the mapping is checked against the real names.
"""

import argparse

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import save_model
from core.model import PRESETS, PixelMeanFlow, build_model, rope_tables
from core.official import (
    convert_official_state_dict,
    OFFICIAL_MODELS,
    infer_config,
    load_official,
    official_to_ours_key,
    ours_to_official_key,
    select_state_dict,
    to_official_state_dict,
)
from core.pretrained import from_pretrained
from tests.test_model import inputs, perturb

OFFICIAL_TOP = {
    "time_tokens", "class_tokens", "omega_tokens", "t_min_tokens", "t_max_tokens", "pos_embed",
    "x_embedder.proj1.weight", "x_embedder.proj1.bias", "x_embedder.proj2.weight",
    "x_embedder.proj2.bias", "y_embedder.embedding_table._flax_embedding.weight",
    *(f"{e}.mlp.{i}._flax_linear.{p}" for e in ("h_embedder", "omega_embedder",
      "cfg_t_start_embedder", "cfg_t_end_embedder") for i in (0, 2) for p in ("weight", "bias")),
    *(f"{h}_final_layer.{s}" for h in "uv" for s in ("norm.weight", "linear._flax_linear.weight",
                                                     "linear._flax_linear.bias")),
}
OFFICIAL_BLOCK = {
    "attn_scale", "mlp_scale", "norm1.weight", "norm2.weight", "attn.q_norm.weight",
    "attn.k_norm.weight", *(f"attn.{x}_proj._flax_linear.weight" for x in ("q", "k", "v", "out")),
    *(f"mlp.w{i}._flax_linear.weight" for i in (1, 2, 3)),
}


def official_names(shared: int, head: int) -> set[str]:
    groups = {"shared_blocks": shared, "u_heads": head, "v_heads": head}
    return OFFICIAL_TOP | {f"{g}.{i}.{s}" for g, n in groups.items() for i in range(n)
                           for s in OFFICIAL_BLOCK}


def rope_buffer(net: PixelMeanFlow) -> torch.Tensor:
    """The official persistent ``rope_freqs`` buffer: complex (N, hd/2)."""
    cfg = net.cfg
    cos, sin = rope_tables(cfg.grid, cfg.width // cfg.num_heads, cfg.rope_theta)
    return torch.complex(cos, sin)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return perturb(build_model("pMF-T/4", in_channels=3, num_classes=10)).eval()


def official_sd(net: PixelMeanFlow, prefix: str = "net.") -> dict[str, torch.Tensor]:
    """Our weights in the layout of a released file: pixelMeanFlow's ``net.`` + official names."""
    sd = to_official_state_dict(net.state_dict())
    sd["rope_freqs"] = rope_buffer(net)
    return {prefix + k: v for k, v in sd.items()}


# ---- mapping --------------------------------------------------------------------------------------


def test_mapping_matches_official_names_and_round_trips(tiny):
    sd = tiny.state_dict()
    off = to_official_state_dict(sd)
    assert set(off) == official_names(shared=3, head=1)
    back = convert_official_state_dict(off, with_v_head=True)
    assert set(back) == set(sd) and all(back[k] is sd[k] for k in sd)
    assert not any(k.startswith("v_") for k in convert_official_state_dict(off))  # dropped


@pytest.mark.parametrize("official, ours", [
    ("x_embedder.proj1.weight", "patch_embed.proj1.weight"),
    ("h_embedder.mlp.0._flax_linear.weight", "h_embed.mlp.0.weight"),
    ("cfg_t_start_embedder.mlp.2._flax_linear.bias", "t_min_embed.mlp.2.bias"),
    ("cfg_t_end_embedder.mlp.0._flax_linear.weight", "t_max_embed.mlp.0.weight"),
    ("y_embedder.embedding_table._flax_embedding.weight", "class_embed.weight"),
    ("time_tokens", "h_tokens"),
    ("shared_blocks.12.attn.q_proj._flax_linear.weight", "shared_blocks.12.attn.q.weight"),
    ("u_heads.7.attn.out_proj._flax_linear.weight", "u_blocks.7.attn.out.weight"),
    ("v_heads.0.mlp_scale", "v_blocks.0.mlp_gate"),
    ("u_heads.3.attn_scale", "u_blocks.3.attn_gate"),
    ("u_final_layer.linear._flax_linear.bias", "u_final.linear.bias"),
])
def test_key_examples(official, ours):
    assert official_to_ours_key(official) == ours
    assert ours_to_official_key(ours) == official


def test_infer_config_paper_sizes_on_meta():
    for name, preset in PRESETS.items():
        with torch.device("meta"):
            sd = build_model(preset, with_v_head=False).state_dict()
        assert infer_config(sd) == preset, name  # including the per-model noise scale


# ---- loading ---------------------------------------------------------------------------------------


def test_from_pretrained_official_file_equals_source(tiny, tmp_path):
    path = tmp_path / "pMF-T.pt"
    torch.save(official_sd(tiny), path)
    net, cfg = from_pretrained(path, with_v_head=True, config=tiny.cfg)  # not a released size: named
    assert net.cfg == tiny.cfg and not net.training
    assert cfg["source"]["format"] == "official" and cfg["sampling"]["num_steps"] == 1
    z, t, r, y, omega, t_min, t_max = inputs(2, 3)
    with torch.no_grad():
        for a, b in zip(net(z, t, r, y, omega, t_min, t_max, heads="uv"),
                        tiny(z, t, r, y, omega, t_min, t_max, heads="uv")):
            assert torch.equal(a, b)
    plain, _ = from_pretrained(path, config=tiny.cfg)  # default: inference network without the v-head
    assert not plain.has_v_head


def test_from_pretrained_safetensors_and_model_folder(tiny, tmp_path):
    sd = {k: v.contiguous() for k, v in official_sd(tiny, prefix="").items() if k != "rope_freqs"}
    save_file(sd, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="no released model has"):  # not a released size, no config
        from_pretrained(tmp_path / "w.safetensors")
    net, _ = from_pretrained(tmp_path / "w.safetensors", config=tiny.cfg)
    assert torch.equal(net.pos_embed, tiny.pos_embed)
    save_model(tmp_path / "folder", tiny)
    net, cfg = from_pretrained(tmp_path / "folder")
    assert cfg["model"] == tiny.cfg.to_dict()
    with pytest.raises(ValueError, match="model folder"):
        from_pretrained(tmp_path / "folder", ema="2000")
    with pytest.raises(FileNotFoundError):
        from_pretrained(tmp_path / "nothing.pt")


def test_select_entry_ema_preferred_and_choosable(tiny):
    a = official_sd(tiny)
    b = {k: v + 1 if v.is_floating_point() else v for k, v in a.items()}
    sd, entry = select_state_dict({"model": a, "ema": b, "optimizer": {"state": {}}, "step": 3})
    assert entry == "ema" and sd is not a
    assert select_state_dict({"model": a, "ema": b}, ema="model")[1] == "model"
    several = {"ema_params": {"ema_500": a, "ema_2000": b}, "model": a}
    with pytest.raises(ValueError, match="choose one with ema="):  # not an official size: no best
        select_state_dict(several)
    assert select_state_dict(several, ema="2000")[1] == "ema_params.ema_2000"
    with pytest.raises(ValueError, match="matches"):
        select_state_dict(several, ema="ema_")


def test_best_ema_for_official_size_on_meta():
    with torch.device("meta"):
        sd = to_official_state_dict(build_model("pMF-L/16", with_v_head=False).state_dict())
    obj = {f"ema_{h}": sd for h in (500, 1000, 2000)} | {"model": sd}
    assert select_state_dict(obj)[1] == "ema_1000"  # PMF_SPEC section 6: L/16's best EMA


def test_official_table_matches_presets_and_spec():
    # PMF_SPEC section 7 (best 1-NFE guidance) and official pmf.py noise scales
    expect = {"pmfDiT_B_16": (8.5, (0.1, 0.7)), "pmfDiT_B_32": (6.5, (0.1, 0.7)),
              "pmfDiT_L_16": (7.0, (0.2, 0.7)), "pmfDiT_L_32": (7.5, (0.2, 0.6)),
              "pmfDiT_H_16": (7.0, (0.2, 0.6)), "pmfDiT_H_32": (5.5, (0.1, 0.6))}
    for name, info in OFFICIAL_MODELS.items():
        assert (info.guidance_scale, info.guidance_interval) == expect[name]
        assert PRESETS[info.preset].noise_scale == info.noise_scale


# ---- errors ----------------------------------------------------------------------------------------


def test_error_wrong_shape_names_key_and_shapes(tiny):
    sd = official_sd(tiny)
    key = "net.shared_blocks.1.mlp.w1._flax_linear.weight"
    sd[key] = torch.zeros(7, sd[key].shape[1])
    with pytest.raises(ValueError, match=r"shared_blocks\.1\.mlp\.w1\._flax_linear\.weight .*"
                                         r"checkpoint \(7, 64\) vs model \(170, 64\)"):
        load_official(sd)


def test_error_unknown_key(tiny):
    sd = official_sd(tiny)
    sd["net.shared_blocks.0.attn.qkv._flax_linear.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"not parameters of the official pmfDiT: "
                                         r"\['shared_blocks\.0\.attn\.qkv\._flax_linear\.weight'\]"):
        load_official(sd)


def test_error_not_pmf_and_pickled_objects_and_missing_v_head(tiny, tmp_path):
    with pytest.raises(ValueError, match="not a pMF checkpoint"):
        load_official({"state_dict": {"conv1.weight": torch.zeros(1)}})
    path = tmp_path / "pickled.pt"
    torch.save({"args": argparse.Namespace(lr=1.0), "model": official_sd(tiny)}, path)
    with pytest.raises(ValueError, match="pickled Python objects"):
        from_pretrained(path)
    no_v = {k: v for k, v in official_sd(tiny).items() if ".v_" not in k and "net.v_" not in k}
    with pytest.raises(ValueError, match="no v-head"):
        load_official(no_v, with_v_head=True)
    partial_v = official_sd(tiny)
    del partial_v["net.v_final_layer.norm.weight"]
    with pytest.raises(ValueError, match=r"lacks 1 tensors, e.g. \['v_final_layer\.norm\.weight'\]"):
        load_official(partial_v, with_v_head=True)
    bad_rope = official_sd(tiny)
    bad_rope["net.rope_freqs"] = bad_rope["net.rope_freqs"] * 1j
    with pytest.raises(ValueError, match="rope_freqs differs"):
        load_official(bad_rope)
