"""What the UNet is conditioned on, per batch row: text embeddings, the model family's added
inputs (SDXL: pooled text embeddings and size ids) and grounding inputs (GLIGEN)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Conditioning:
    """Text conditioning of a batch of UNet rows."""

    embeds: torch.Tensor  # [rows, tokens, dim]
    added: dict[str, torch.Tensor] = field(default_factory=dict)  # SDXL: text_embeds, time_ids

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def rows(self, index: torch.Tensor | slice) -> Conditioning:
        return Conditioning(self.embeds[index], {k: v[index] for k, v in self.added.items()})

    def expand(self, rows: int) -> Conditioning:
        """One row repeated `rows` times (a view, no copy)."""
        return Conditioning(
            self.embeds.expand(rows, *self.embeds.shape[1:]),
            {k: v.expand(rows, *v.shape[1:]) for k, v in self.added.items()},
        )

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        added = {k: torch.cat([p.added[k] for p in parts]) for k in parts[0].added}
        return Conditioning(torch.cat([p.embeds for p in parts]), added)

    def unet_kwargs(self) -> dict:
        kwargs: dict = {"encoder_hidden_states": self.embeds}
        if self.added:
            kwargs["added_cond_kwargs"] = self.added
        return kwargs


@dataclass
class Grounding:
    """GLIGEN's inputs for one phase, on for step index < `steps`: `cfg` for the CFG batch
    ([uncond, cond]), `guidance` for the guidance forward (conditional rows only)."""

    cfg: dict[str, torch.Tensor]
    guidance: dict[str, torch.Tensor]
    steps: int

    def at(self, step: int, rows: torch.Tensor | None = None) -> dict[str, torch.Tensor] | None:
        """The inputs at step index `step`: the CFG batch's, or those of guidance rows `rows`;
        None once grounding is off (the UNet then skips its gated layers)."""
        if step >= self.steps:
            return None
        if rows is None:
            return self.cfg
        return {k: v[rows] for k, v in self.guidance.items()}
