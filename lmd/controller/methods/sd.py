"""Plain Stable Diffusion from the overall prompt ("{background} with {names}"): no boxes
drawn, no guidance, no SAM. The baseline every method is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from lmd.controller.methods.base import Method


@dataclass(frozen=True)
class PlainSD(Method):
    name = "sd"
    summary = "sd (plain Stable Diffusion)"

    @property
    def grounded(self) -> bool:
        return False
