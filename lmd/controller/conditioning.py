"""What the denoiser is conditioned on, per batch row: text embeddings and the backbone's added
inputs (SDXL: pooled text embeddings and size ids), as the backbone encodes them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Conditioning:
    """Text conditioning of a batch of denoiser rows."""

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
