"""MIGC weights: the published checkpoints read by their own parameter names, checked against the
base model, and random weights of the right shapes for the `random:*` models.

The published files (Zhou et al.; Google Drive links in limuloo/MIGC's README, non-commercial
research licence): `MIGC_SD14.ckpt` (219 MB) and `MIGC++_SD14.ckpt`, trained on SD 1.4.

Key layouts, as the authors' loaders read them (limuloo/MIGC at effd6cc):
- MIGC (`migc/migc_utils.py:49-117`): a pickle whose "state_dict" holds the MIGC parameters
  under the original Stable Diffusion (LDM) UNet names, e.g.
  `model.diffusion_model.output_blocks.4.1.transformer_blocks.0.attn2.migc.ea.to_q.weight`. Only
  three parts are read: the block kind (`input_blocks`, `middle_block`, else the output
  blocks), the number after it, and everything from the `migc` component on. Input block n is
  down block (n - 1) // (L + 1), stack (n - 1) % (L + 1); output block n is up block
  n // (L + 1), stack n % (L + 1) (L = layers per block, 2 in SD 1.x: the authors' n // 3 and
  n % 3 - 1, n % 3); the middle block is the mid block's stack 0; always transformer block 0.
  The checkpoint holds the mid block and the three stacks of the first up block with
  cross-attention (the paper's 8x8 and 16x16 layers at 512 px, Sec. 4.1; 4 layers of 1280
  channels: 219 MB in fp32).
- MIGC++ (`migc_plus/migc_plus_utils.py:50-95`): a flat dict keyed by the diffusers layer,
  `mid_block.attentions.0.transformer_blocks.0.attn2.processor.migc.ea.to_q.weight`.

Parameter names inside `migc.` (the authors' modules) and lmd's (`KEY_MAP`) differ: the
map renames prefixes one to one, both ways, and every key of a file must be mapped and every
parameter of lmd's module filled, with the right shape, or the file is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from lmd.controller.backbones.unet import find_hooked_layers
from lmd.controller.methods.migc.shader import InstanceShader
from lmd.layouts.errors import LmdError
from lmd.layouts.io import atomic_write

KEY_MAP: tuple[tuple[str, str], ...] = (
    ("ea.to_out.0.", "enhance.to_out."),
    ("ea.", "enhance."),
    ("la.to_out.0.", "layout.to_out."),
    ("la.", "layout."),
    ("norm.", "norm."),
    ("pos_net.linears_position.", "position.mlp."),
    ("sac.conv1.", "aggregate.merge."),
    ("sac.conv2.", "aggregate.logit."),
    ("sac.cbam1.ChannelGate.mlp.1.", "aggregate.feature_gate.channel.squeeze."),
    ("sac.cbam1.ChannelGate.mlp.3.", "aggregate.feature_gate.channel.excite."),
    ("sac.cbam1.SpatialGate.spatial.conv.", "aggregate.feature_gate.spatial.conv."),
    ("sac.cbam2.ChannelGate.mlp.1.", "aggregate.slot_gate.channel.squeeze."),
    ("sac.cbam2.ChannelGate.mlp.3.", "aggregate.slot_gate.channel.excite."),
    ("sac.cbam2.SpatialGate.spatial.conv.", "aggregate.slot_gate.spatial.conv."),
    ("gamma", "gamma"),
)
"""The authors' parameter names (after `migc.`) -> lmd's `InstanceShader` names, by prefix;
the first matching prefix wins."""

MIGC = "migc"
MIGC_PLUS = "migc++"
_LDM_KINDS = ("input_blocks", "middle_block", "output_blocks")
_PLUS_SPLIT = ".attn2.processor."


class MIGCCheckpointError(LmdError, ValueError):
    """A file is not an MIGC checkpoint, or does not fit the base model; the message names it."""


def to_lmd(key: str) -> str | None:
    """An authors' parameter name (after `migc.`) as lmd's; None when it is not one."""
    for theirs, ours in KEY_MAP:
        if key == theirs or (theirs.endswith(".") and key.startswith(theirs)):
            return ours + key[len(theirs) :]
    return None


def to_authors(key: str) -> str:
    """lmd's `InstanceShader` parameter name as the authors' (the inverse of `to_lmd`)."""
    for theirs, ours in KEY_MAP:
        if key == ours or (ours.endswith(".") and key.startswith(ours)):
            return theirs + key[len(ours) :]
    raise KeyError(key)


@dataclass
class MIGCWeights:
    """The parameters of a checkpoint, per MIGC layer: {layer key: {authors' name: tensor}}.

    Layer keys are ("mid", 0), ("down", n) or ("up", n) with n the LDM block number for the
    MIGC layout (resolved against the UNet by `layer_name`), or ("diffusers", name) for MIGC++."""

    variant: str  # MIGC or MIGC_PLUS
    layers: dict[tuple[str, object], dict[str, torch.Tensor]]
    source: str


def read_checkpoint(path: str | Path) -> MIGCWeights:
    """Read an MIGC or MIGC++ checkpoint (tensors only: nothing in it is executed)."""
    path = Path(path)
    name = path.name
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MIGCCheckpointError(f"MIGC checkpoint {str(path)!r} does not exist") from None
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise MIGCCheckpointError(f"{name} is not an MIGC checkpoint: {reason}") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data:
        raise MIGCCheckpointError(f"{name} is not an MIGC checkpoint: it holds no state dict")
    return group(data, name)


def group(state: dict, source: str = "checkpoint") -> MIGCWeights:
    """Split a flat state dict in either published layout into MIGC layers."""
    layers: dict[tuple[str, object], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise MIGCCheckpointError(f"{source} is not an MIGC checkpoint: {key!r} is no tensor")
        if _PLUS_SPLIT in key and ".migc." in key:
            layer, sub = key.split(_PLUS_SPLIT, 1)
            where: tuple[str, object] = ("diffusers", layer + ".attn2")
            sub = sub.split("migc.", 1)[1]
        else:
            parts = key.split(".")
            kind = next((k for k in _LDM_KINDS if k in parts), None)
            if "migc" not in parts or kind is None:
                raise MIGCCheckpointError(
                    f"{source} is not an MIGC checkpoint: unexpected key {key!r}"
                )
            at = parts.index(kind)
            number = parts[at + 1] if at + 1 < len(parts) else ""
            if kind != "middle_block" and not number.isdigit():
                raise MIGCCheckpointError(f"{source}: no block number in {key!r}")
            where = {"input_blocks": ("down", int(number or 0)),
                     "middle_block": ("mid", 0)}.get(kind, ("up", int(number or 0)))  # fmt: skip
            sub = ".".join(parts[parts.index("migc") + 1 :])
        layers.setdefault(where, {})[sub] = value
    subs = {k for layer in layers.values() for k in layer}
    unknown = sorted(k for k in subs if to_lmd(k) is None)
    if unknown:
        raise MIGCCheckpointError(f"{source} is not an MIGC checkpoint: unknown {unknown[0]!r}")
    plus = "gamma" in subs
    if plus == any(k.startswith("sac.conv1.") for k in subs):
        raise MIGCCheckpointError(
            f"{source} is neither MIGC (sac.conv1, no gamma) nor MIGC++ (gamma, no sac.conv1)"
        )
    return MIGCWeights(MIGC_PLUS if plus else MIGC, layers, source)


def layer_name(unet, key: tuple[str, object]) -> str:
    """The diffusers cross-attention layer a checkpoint layer key names in `unet`."""
    kind, n = key
    if kind == "diffusers":
        return str(n)
    if kind == "mid":
        return "mid_block.attentions.0.transformer_blocks.0.attn2"
    per = unet.config.layers_per_block
    per = per if isinstance(per, int) else per[0]
    if kind == "down":
        block, stack = (n - 1) // (per + 1), (n - 1) % (per + 1)
        return f"down_blocks.{block}.attentions.{stack}.transformer_blocks.0.attn2"
    return f"up_blocks.{n // (per + 1)}.attentions.{n % (per + 1)}.transformer_blocks.0.attn2"


def ldm_key(unet, name: str) -> str:
    """The MIGC checkpoint's key prefix for diffusers layer `name` (the inverse of
    `layer_name`), with the original SD UNet's names around it."""
    per = unet.config.layers_per_block
    per = per if isinstance(per, int) else per[0]
    if name.startswith("mid_block."):
        return "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2"
    m = re.match(r"(down|up)_blocks\.(\d+)\.attentions\.(\d+)\.", name)
    if m is None:
        raise ValueError(f"{name!r} is not a UNet cross-attention layer")
    block, stack = int(m[2]), int(m[3])
    if m[1] == "down":
        return (
            f"model.diffusion_model.input_blocks.{block * (per + 1) + stack + 1}.1"
            ".transformer_blocks.0.attn2"
        )
    return (
        f"model.diffusion_model.output_blocks.{block * (per + 1) + stack}.1"
        ".transformer_blocks.0.attn2"
    )


def migc_layers(unet) -> list[str]:
    """The cross-attention layers MIGC shades in an SD-shaped UNet: the mid block's and those
    of the first up block with cross-attention (the paper's 8x8 and 16x16 layers at 512 px,
    Sec. 4.1; `MIGC_SD14.ckpt` holds exactly these for SD 1.x)."""
    return find_hooked_layers(unet).guidance


def context_width(pipe) -> int:
    """The width of the pooled prompt embedding the enhancement attention reads."""
    return pipe.text_encoder.config.hidden_size


def shaders_from(weights: MIGCWeights, pipe) -> dict[str, InstanceShader]:
    """lmd's MIGC layers for `pipe`'s UNet, filled from `weights`; refuses (one line naming the
    file) weights whose layers or shapes do not fit the model."""
    unet, name = pipe.unet, weights.source
    modules = dict(unet.named_modules())
    width = context_width(pipe)
    out: dict[str, InstanceShader] = {}
    for key, params in weights.layers.items():
        layer = layer_name(unet, key)
        attn = modules.get(layer)
        if attn is None or not hasattr(attn, "to_q"):
            raise MIGCCheckpointError(f"{name} does not fit this model: it has no layer {layer}")
        shader = build_shader(params, attn.to_q.in_features, width, weights.variant, name, layer)
        out[layer] = shader.to(device=attn.to_q.weight.device, dtype=attn.to_q.weight.dtype).eval()
    return out


def build_shader(
    params: dict[str, torch.Tensor],
    channels: int,
    width: int,
    variant: str = MIGC,
    name: str = "checkpoint",
    layer: str = "layer",
) -> InstanceShader:
    """One `InstanceShader` of `channels` channels reading `width`-wide pooled text, from one
    layer's parameters by the authors' names (after `migc.`); refuses, naming `name` and
    `layer`, parameters that are missing, unknown or of another shape. The box MLP's width and
    the number of SAC slots are read from the parameters."""
    theirs = params.get("norm.weight")
    if theirs is None or theirs.shape[0] != channels:
        found = "none" if theirs is None else theirs.shape[0]
        raise MIGCCheckpointError(
            f"{name} does not fit this model: {layer} has {channels} channels, the "
            f"checkpoint's {found}"
        )
    context = params.get("ea.to_k.weight")
    if context is None or context.shape[1] != width:
        found = "none" if context is None else context.shape[1]
        raise MIGCCheckpointError(
            f"{name} does not fit this model: its text embeddings are {width} wide, the "
            f"checkpoint's {found}"
        )
    hidden = params.get("pos_net.linears_position.0.weight")
    slots = params.get("sac.cbam2.ChannelGate.mlp.1.weight")
    shader = InstanceShader(
        channels, width, plus=variant == MIGC_PLUS,
        position_hidden=hidden.shape[0] if hidden is not None else 512,
        slots=slots.shape[0] if slots is not None else 30,
    )  # fmt: skip
    _load(shader, params, name, layer)
    return shader.eval()


def _load(shader: InstanceShader, params: dict[str, torch.Tensor], name: str, layer: str):
    mine = shader.state_dict()
    renamed = {to_lmd(k): v for k, v in params.items()}
    missing = sorted(set(mine) - set(renamed))
    if missing:
        raise MIGCCheckpointError(f"{name}: {layer} lacks {to_authors(missing[0])}")
    for key, value in renamed.items():
        if key not in mine:
            raise MIGCCheckpointError(f"{name}: {layer} has an unexpected {to_authors(key)}")
        if value.shape != mine[key].shape:
            raise MIGCCheckpointError(
                f"{name} does not fit this model: {layer} {to_authors(key)} is "
                f"{tuple(value.shape)}, the model needs {tuple(mine[key].shape)}"
            )
    shader.load_state_dict(renamed)


def load_shaders(path: str | Path, pipe) -> tuple[str, dict[str, InstanceShader]]:
    """(variant, {layer: InstanceShader}) from a published checkpoint file, for `pipe`."""
    weights = read_checkpoint(path)
    return weights.variant, shaders_from(weights, pipe)


def random_shaders(
    pipe, *, seed: int = 0, plus: bool = False, layers: Iterable[str] | None = None
) -> dict[str, InstanceShader]:
    """MIGC layers with random weights (seeded; torch's own initialisation, then every
    parameter nudged so none is left at an identity or zero) for `pipe`'s UNet, on the layers
    MIGC shades: for the `random:*` models, which have no published weights."""
    unet = pipe.unet
    modules = dict(unet.named_modules())
    width = context_width(pipe)
    state = torch.random.get_rng_state()
    out: dict[str, InstanceShader] = {}
    try:
        torch.manual_seed(seed)
        for layer in layers if layers is not None else migc_layers(unet):
            attn = modules[layer]
            shader = InstanceShader(attn.to_q.in_features, width, plus=plus)
            with torch.no_grad():
                for p in shader.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            out[layer] = shader.to(device=attn.to_q.weight.device, dtype=attn.to_q.weight.dtype)
    finally:
        torch.random.set_rng_state(state)
    return {k: v.eval() for k, v in out.items()}


def official_state_dict(shaders: dict[str, InstanceShader], unet) -> dict[str, torch.Tensor]:
    """`shaders` keyed as the published file of their variant keys them (see the module
    docstring): what `read_checkpoint` reads back."""
    out: dict[str, torch.Tensor] = {}
    for layer, shader in shaders.items():
        if shader.plus:
            prefix = layer.removesuffix(".attn2") + _PLUS_SPLIT + "migc."
        else:
            prefix = ldm_key(unet, layer) + ".migc."
        for key, value in shader.state_dict().items():
            out[prefix + to_authors(key)] = value.detach().cpu().float().clone()
    return out


def save_checkpoint(shaders: dict[str, InstanceShader], unet, path: str | Path) -> Path:
    """Write `shaders` as a file in the published layout: MIGC under "state_dict", MIGC++ flat."""
    state = official_state_dict(shaders, unet)
    plus = any(s.plus for s in shaders.values())
    payload = state if plus else {"state_dict": state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))
