"""SD3- and FLUX-shaped pipelines with random weights, built from the configs lmd carries.

`random:sd3` (Stable Diffusion 3.5 Medium's shapes) and `random:flux` (FLUX.1 [dev]'s) are
full size, for timing and memory arithmetic; `random:sd3-tiny` and `random:flux-tiny` have toy
widths for tests. Every component is built from config, nothing is downloaded: the CLIP
tokenizers are `random_pipeline`'s BPE, and the T5 tokenizer is a SentencePiece-style unigram
model over the same `words.txt` and the words of lmd's negative prompts (each word one `▁word`
piece; any other text is spelt from single characters, as T5 spells rare words).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

import torch

T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as T5's own vocabulary
WORD_SCORE = -2.0  # log-probabilities of the unigram model: a word beats its spelling
SPACE_SCORE = -4.0
CHAR_SCORE = -8.0


@lru_cache(maxsize=1)
def t5_vocab() -> tuple[tuple[str, float], ...]:
    """(piece, score) pairs: T5's special tokens, `▁`, printable ASCII, `▁word` per word."""
    from lmd.controller.config import PER_BOX_NEGATIVE, QUALITY_NEGATIVE

    text = resources.files("lmd.configs").joinpath("words.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    lines += [QUALITY_NEGATIVE.replace(",", " "), PER_BOX_NEGATIVE.replace(",", " ")]
    words = sorted({w for line in lines for w in line.split()})
    chars = [chr(c) for c in range(33, 127)]
    pieces = [(s, 0.0) for s in T5_SPECIALS] + [("▁", SPACE_SCORE)]
    pieces += [(c, CHAR_SCORE) for c in chars]
    pieces += [("▁" + w, WORD_SCORE) for w in words]
    return tuple(pieces)


def build_t5_tokenizer(model_max_length: int):
    """A T5 tokenizer (unigram, no beginning-of-text token, `</s>` at the end)."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=list(t5_vocab()), extra_ids=0, model_max_length=model_max_length)


@contextmanager
def _building(device, dtype, in_place: bool):
    """Build modules on `device` in `dtype` (`in_place`: full-size models, no fp32 copy on the
    CPU first), else on the CPU in fp32."""
    if not in_place:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_dit_pipeline(cfg: dict, name: str, clip_tok, *, seed: int, device, dtype):
    """A `StableDiffusion3Pipeline` or `FluxPipeline` (as `cfg["pipeline"]` names) with random
    weights of the shapes in `cfg`; `clip_tok` is the CLIP tokenizer (`random_pipeline`'s)."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    sd3 = cfg["pipeline"] == "StableDiffusion3Pipeline"
    t5_key = "text_encoder_3" if sd3 else "text_encoder_2"
    t5_tok_key = "tokenizer_3" if sd3 else "tokenizer_2"
    t5_tok = build_t5_tokenizer(cfg[t5_tok_key]["model_max_length"])

    def clip(key: str, kind):
        te = dict(cfg[key], vocab_size=max(len(clip_tok), 49408))
        return kind(CLIPTextConfig(**te, eos_token_id=clip_tok.eos_token_id))

    def t5():
        te = dict(cfg[t5_key])
        te["vocab_size"] = max(len(t5_tok), te.get("vocab_size", 0))
        return T5EncoderModel(T5Config(**te, is_encoder_decoder=False, use_cache=False))

    in_place = not name.endswith("tiny")
    with torch.random.fork_rng(devices=[]), _building(device, dtype, in_place):
        torch.manual_seed(seed)
        vae = AutoencoderKL(**cfg["vae"])
        if sd3:
            transformer = SD3Transformer2DModel(**cfg["transformer"])
            encoders = {
                "text_encoder": clip("text_encoder", CLIPTextModelWithProjection),
                "text_encoder_2": clip("text_encoder_2", CLIPTextModelWithProjection),
                "text_encoder_3": t5(),
            }
        else:
            transformer = FluxTransformer2DModel(**cfg["transformer"])
            encoders = {"text_encoder": clip("text_encoder", CLIPTextModel), "text_encoder_2": t5()}
    scheduler_cfg = {k: v for k, v in cfg["scheduler"].items() if k != "_class_name"}
    scheduler = FlowMatchEulerDiscreteScheduler(**scheduler_cfg)
    for module in (vae, transformer, *encoders.values()):
        module.eval()
    if sd3:
        pipe = StableDiffusion3Pipeline(
            transformer=transformer, scheduler=scheduler, vae=vae, tokenizer=clip_tok,
            tokenizer_2=clip_tok, tokenizer_3=t5_tok, **encoders,
        )  # fmt: skip
    else:
        pipe = FluxPipeline(
            scheduler=scheduler, vae=vae, tokenizer=clip_tok, tokenizer_2=t5_tok,
            transformer=transformer, **encoders,
        )  # fmt: skip
    return pipe.to(device=device, dtype=dtype)
