"""MIGC weights: random ones for the random models, published-layout files read back by their
own names, and one-line refusals of files that are no MIGC checkpoint or do not fit."""

from __future__ import annotations

import pytest
import torch

from lmd.controller.methods.migc import (
    MIGC,
    MIGC_PLUS,
    MIGCCheckpointError,
    load_shaders,
    migc_layers,
    random_shaders,
    save_checkpoint,
)
from lmd.controller.methods.migc.checkpoint import (
    KEY_MAP,
    layer_name,
    ldm_key,
    official_state_dict,
    to_authors,
    to_lmd,
)

TINY_LAYERS = [
    "mid_block.attentions.0.transformer_blocks.0.attn2",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn2",
]


def test_migc_layers_are_the_mid_block_and_the_first_cross_attention_up_block(tiny_pipe):
    assert migc_layers(tiny_pipe.unet) == TINY_LAYERS


def test_random_weights_fit_the_model_and_are_seeded(tiny_pipe):
    one = random_shaders(tiny_pipe, seed=3)
    assert list(one) == TINY_LAYERS
    modules = dict(tiny_pipe.unet.named_modules())
    for layer, shader in one.items():
        assert shader.channels == modules[layer].to_q.in_features
        assert shader.context_dim == tiny_pipe.text_encoder.config.hidden_size
    again, other = random_shaders(tiny_pipe, seed=3), random_shaders(tiny_pipe, seed=4)
    for layer in TINY_LAYERS:
        a, b, c = (s[layer].state_dict() for s in (one, again, other))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)
    state = torch.random.get_rng_state()
    random_shaders(tiny_pipe, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is left alone


def test_key_map_covers_every_parameter_both_ways(tiny_pipe):
    for plus in (False, True):
        (shader, *_) = random_shaders(tiny_pipe, plus=plus).values()
        for key in shader.state_dict():
            assert to_lmd(to_authors(key)) == key
    assert (
        to_lmd("sac.cbam1.ChannelGate.mlp.1.weight")
        == "aggregate.feature_gate.channel.squeeze.weight"
    )
    assert to_lmd("ea.to_out.0.bias") == "enhance.to_out.bias"
    assert to_lmd("sac.cbam3.whatever") is None
    assert len({ours for _, ours in KEY_MAP}) == len(KEY_MAP)


def test_ldm_names_map_to_diffusers_layers_as_the_authors_map_them():
    """SD 1.x (2 layers per block): the authors' n // 3 and n % 3 - 1 (input), n % 3 (output)."""

    class Config:
        layers_per_block = 2

    class Unet:
        config = Config()

    assert layer_name(Unet, ("up", 3)) == "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
    assert layer_name(Unet, ("up", 5)) == "up_blocks.1.attentions.2.transformer_blocks.0.attn2"
    assert layer_name(Unet, ("down", 8)) == "down_blocks.2.attentions.1.transformer_blocks.0.attn2"
    assert layer_name(Unet, ("mid", 0)) == "mid_block.attentions.0.transformer_blocks.0.attn2"
    for n in (1, 2, 4, 5, 7, 8):
        name = layer_name(Unet, ("down", n))
        assert f".input_blocks.{n}." in ldm_key(Unet, name)
    for n in range(3, 12):
        assert f".output_blocks.{n}." in ldm_key(Unet, layer_name(Unet, ("up", n)))


@pytest.mark.parametrize("plus", [False, True])
def test_a_file_in_the_published_layout_loads_by_its_own_names(tiny_pipe, tmp_path, plus):
    shaders = random_shaders(tiny_pipe, seed=7, plus=plus)
    path = save_checkpoint(shaders, tiny_pipe.unet, tmp_path / "MIGC_SD14.ckpt")
    raw = torch.load(path, weights_only=True)
    if plus:  # MIGC++: flat, diffusers layer names
        assert "mid_block.attentions.0.transformer_blocks.0.attn2.processor.migc.gamma" in raw
    else:  # MIGC: under "state_dict", the original UNet's names; tiny has 1 layer per block
        keys = raw["state_dict"]
        assert (
            "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.migc.norm.bias" in keys
        )
        assert any(
            ".output_blocks.2.1.transformer_blocks.0.attn2.migc.sac.conv1." in k for k in keys
        )
    variant, loaded = load_shaders(path, tiny_pipe)
    assert variant == (MIGC_PLUS if plus else MIGC)
    assert list(loaded) == TINY_LAYERS
    for layer in TINY_LAYERS:
        mine, theirs = loaded[layer].state_dict(), shaders[layer].state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_published_checkpoint_has_219_mb_of_sd14_layers():
    """The README's 219M: four 1280-channel layers, 768-wide text, in fp32."""
    from lmd.controller.methods.migc import InstanceShader

    params = sum(p.numel() for p in InstanceShader(1280, 768).parameters())
    assert 4 * params * 4 / 2**20 == pytest.approx(219, abs=1)


def one_line(error: pytest.ExceptionInfo, name: str) -> str:
    text = str(error.value)
    assert "\n" not in text and name in text
    return text


def test_refuses_a_file_that_is_no_checkpoint(tiny_pipe, tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(MIGCCheckpointError) as e:
        load_shaders(path, tiny_pipe)
    assert "is not an MIGC checkpoint" in one_line(e, "notes.ckpt")
    with pytest.raises(MIGCCheckpointError) as e:
        load_shaders(tmp_path / "missing.ckpt", tiny_pipe)
    assert "does not exist" in one_line(e, "missing.ckpt")


def test_refuses_a_checkpoint_of_something_else(tiny_pipe, tmp_path):
    path = tmp_path / "unet.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.out.0.weight": torch.zeros(3)}}, path)
    with pytest.raises(MIGCCheckpointError) as e:
        load_shaders(path, tiny_pipe)
    assert "unexpected key" in one_line(e, "unet.ckpt")


def test_refuses_pickled_code(tiny_pipe, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": ValueError("boom")}, path)
    with pytest.raises(MIGCCheckpointError) as e:
        load_shaders(path, tiny_pipe)
    assert "is not an MIGC checkpoint" in one_line(e, "evil.ckpt")


def test_refuses_weights_of_another_model(tiny_pipe, sd2_tiny_pipe, tmp_path):
    path = save_checkpoint(random_shaders(tiny_pipe), tiny_pipe.unet, tmp_path / "tiny.ckpt")
    with pytest.raises(MIGCCheckpointError) as e:  # sd2-tiny's text is 48 wide, not 32
        load_shaders(path, sd2_tiny_pipe)
    assert "text embeddings are 48 wide, the checkpoint's 32" in one_line(e, "tiny.ckpt")


def edited(tiny_pipe, tmp_path, change) -> str:
    state = official_state_dict(random_shaders(tiny_pipe), tiny_pipe.unet)
    change(state)
    path = tmp_path / "edited.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(MIGCCheckpointError) as e:
        load_shaders(path, tiny_pipe)
    return one_line(e, "edited.ckpt")


MID = "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.migc."


def test_refuses_a_layer_of_other_channels(tiny_pipe, tmp_path):
    def widen(state):
        state[MID + "norm.weight"] = torch.zeros(128)

    text = edited(tiny_pipe, tmp_path, widen)
    assert "mid_block.attentions.0.transformer_blocks.0.attn2 has 64 channels" in text


def test_refuses_a_layer_the_model_lacks(tiny_pipe, tmp_path):
    def move(state):
        for key in [k for k in state if ".output_blocks.2." in k]:
            state[key.replace(".output_blocks.2.", ".output_blocks.7.")] = state.pop(key)

    assert "it has no layer up_blocks.3.attentions.1" in edited(tiny_pipe, tmp_path, move)


def test_refuses_a_missing_or_misshapen_parameter(tiny_pipe, tmp_path):
    def drop(state):
        del state[MID + "sac.cbam2.SpatialGate.spatial.conv.weight"]

    assert "lacks sac.cbam2.SpatialGate.spatial.conv.weight" in edited(tiny_pipe, tmp_path, drop)

    def reshape(state):
        state[MID + "la.to_q.weight"] = torch.zeros(64, 32)

    assert "la.to_q.weight is (64, 32), the model needs (64, 64)" in edited(
        tiny_pipe, tmp_path, reshape
    )


def test_refuses_a_mix_of_migc_and_migc_plus(tiny_pipe, tmp_path):
    def mix(state):
        state[MID + "gamma"] = torch.zeros(1)

    assert "neither MIGC" in edited(tiny_pipe, tmp_path, mix)
