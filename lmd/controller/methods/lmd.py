"""LMD (Lian et al., TMLR 2024): each object drawn centred under energy guidance, masked by
SAM from its attention peak, shifted into its box, then the whole image guided with attention
transfer. All of it is `BoxMethod`'s defaults."""

from __future__ import annotations

from dataclasses import dataclass

from lmd.controller.methods.base import BoxMethod


@dataclass(frozen=True)
class LMD(BoxMethod):
    name = "lmd"
    summary = "lmd (the paper's method, the default)"
