"""SD-shaped pipelines with random weights, built from configs the project carries.

`random:sd15` and `random:sdxl` have Stable Diffusion 1.5's and SDXL base's exact shapes
(UNet, VAE, text encoders), so speed can be measured without downloading weights;
`random:tiny` (SD 1.x), `random:sd2-tiny` (SD 2.x: linear projections, gelu text encoder,
v-prediction) and `random:sdxl-tiny` (SDXL: two text encoders, pooled embeddings and size ids)
have toy widths for tests. `random:sd15-tiny` is `random:tiny` with SD 1.5's eight attention
heads: the guidance energy, a sum over heads, then has SD 1.5's scale and passes its threshold,
so every guided phase runs (random:tiny's two heads keep it under: no guidance at all).
A config with a `text_encoder_2` builds a `StableDiffusionXLPipeline`, any other a
`StableDiffusionPipeline`. `random:sd3`, `random:flux` and their `-tiny` versions are
transformer models (see `random_dit`).
The tokenizer is a real CLIP byte-level BPE whose merges are built from `words.txt` (most of
those words become one or two tokens; any other text is spelt from byte tokens).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import torch

RANDOM_PREFIX = "random:"
RANDOM_MODELS = (
    "sd15", "tiny", "sd15-tiny", "sd2-tiny", "sdxl-tiny", "sdxl",
    "sd3-tiny", "sd3", "flux-tiny", "flux",
)  # fmt: skip
_DIT_FAMILIES = {"StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux"}
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def is_xl(name: str) -> bool:
    """Whether random model `name` is SDXL-shaped (a UNet and two text encoders)."""
    cfg = random_config(name)
    return "unet" in cfg and "text_encoder_2" in cfg


def random_family(name: str) -> str:
    """The family (`sd1`, `sd2`, `sdxl`, `sd3`, `flux`) of random model `name`."""
    cfg = random_config(name)
    if "pipeline" in cfg:
        return _DIT_FAMILIES[cfg["pipeline"]]
    return "sdxl" if is_xl(name) else "sd2" if name.startswith("sd2") else "sd1"


def random_config(name: str) -> dict:
    """The carried config of random model `name` (its components' shapes)."""
    if name not in RANDOM_MODELS:
        raise ValueError(f"unknown random model {name!r}; choose one of {', '.join(RANDOM_MODELS)}")
    return json.loads(resources.files("lmd.configs").joinpath(f"{name}.json").read_text())


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


@lru_cache(maxsize=1)
def tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """CLIP BPE vocabulary and merges: every byte, plus a merge chain per word of `words.txt`."""
    text = resources.files("lmd.configs").joinpath("words.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    words = sorted({w for line in lines for w in line.split()})
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars]
    merges: list[str] = []
    known = set(vocab_list)
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            if merged not in known:
                merges.append(f"{parts[0]} {parts[1]}")
                vocab_list.append(merged)
                known.add(merged)
            parts = [merged, *parts[2:]]
    vocab_list += list(_SPECIALS)
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def build_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_files()
    pairs = [tuple(m.split(" ")) for m in merges]
    return CLIPTokenizer(vocab=dict(vocab), merges=pairs, model_max_length=77)


def build_random_pipeline(
    name: str = "tiny",
    *,
    gligen: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """A `StableDiffusionPipeline` (GLIGEN-gated UNet with `gligen`) or, for an SDXL config, a
    `StableDiffusionXLPipeline`, with random weights of a carried shape (SD3 and FLUX
    configs: see `random_dit`)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = random_config(name)
    family = random_family(name)
    if gligen and family not in ("sd1", "sd2"):
        raise ValueError(f"random:{name} is {family}-shaped: GLIGEN (lmd+) has no {family} weights")
    if "pipeline" in cfg:
        from lmd.random_dit import build_dit_pipeline

        return build_dit_pipeline(
            cfg, name, build_tokenizer(), seed=seed, device=device, dtype=dtype
        )
    xl = is_xl(name)
    tokenizer = build_tokenizer()

    def text_config(key: str) -> CLIPTextConfig:
        te = dict(cfg[key], vocab_size=max(len(tokenizer), 49408))
        return CLIPTextConfig(**te, eos_token_id=tokenizer.eos_token_id)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet_cfg = dict(cfg["unet"], attention_type="gated" if gligen else "default")
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**cfg["vae"])
        text_encoder = CLIPTextModel(text_config("text_encoder"))
        text_encoder_2 = CLIPTextModelWithProjection(text_config("text_encoder_2")) if xl else None
    scheduler = DDIMScheduler(**{k: v for k, v in cfg["scheduler"].items() if k != "_class_name"})
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet)
    if xl:
        pipe = StableDiffusionXLPipeline(
            **parts, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer,
            scheduler=scheduler, add_watermarker=False,
        )  # fmt: skip
    else:
        pipe = StableDiffusionPipeline(
            **parts, scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )  # fmt: skip
    return pipe.to(device=device, dtype=dtype)
