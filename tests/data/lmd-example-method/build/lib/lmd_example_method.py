"""An lmd method from another package: LMD that draws every object in its own box (nothing is
shifted afterwards). Installed, it is `lmd render --method in-place`."""

from __future__ import annotations

from dataclasses import dataclass

from lmd.controller.methods import LMD


@dataclass(frozen=True)
class InPlace(LMD):
    name = "in-place"
    summary = "in-place (LMD drawing each object where its box is)"

    def draw_at(self, cells, latent_hw, config):
        return cells

    def offset(self, mask, drawn, box, centre, latent_hw, config):
        return box.x - drawn.x, box.y - drawn.y
