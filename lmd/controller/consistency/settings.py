"""`ConsistencySettings`: every constant of the shared-attention mechanism, and where it is from.

ConsiStory (Tewel, Kaduri, Gal, Kasten, Wolf, Chechik, Atzmon: "Training-Free Consistent
Text-to-Image Generation", SIGGRAPH 2024, arXiv 2402.03286). Sources, as cited below:

- [P] the paper's abstract and project page (research.nvidia.com/labs/par/consistory): SDXL,
  "a subject-driven shared attention block and correspondence-based feature injection",
  "strategies to encourage layout diversity", about 10 s per image on an H100.
- [S] the Chinese summary of the paper (lmd's `shared/seeds/003`): the three steps, the
  architecture figure, anchors, the 2 anchors and 0.5 dropout of the experiments.
- [I] lmd's issue 18, which lists the mechanisms and the defaults below.
- [lmd] lmd's own choice where none of these gives a number (marked as such).

The paper's code is not used or read (its licence allows neither).

Formulas (N images denoised together as rows of one batch; A the anchor images):

1. Subject masks M_i (one per image, [S] "subject localisation", [I]): in lmd from the layout:
   the union of the subject objects' masks in place (LMD's) or, without one, their boxes; or
   from the subject tokens' cross-attention, `mean over heads, tokens and the last
   `mask_window` steps` (including the current step's) on the backbone's mask layer, then
   M_i = map_i > otsu(map_i) (Otsu's threshold, between-class variance maximised) [S], [I].
   Several subjects: their masks are merged [S].
2. Subject-driven shared self-attention, SDSA ([S] "主题驱动的自注意力", [I]), in every
   self-attention layer of the decoder (a UNet's up blocks) [S]:
       K_i+ = [K_i ; K_a for a in A, a != i],  V_i+ likewise,
       M_i+ = [1 ; M_a for a in A, a != i]  (1: image i's own patches, all of them),
       h_i = softmax(Q_i K_i+^T / sqrt(d) + log M_i+) V_i+,
   in the unconditional and conditional halves of the classifier-free batch separately [I].
   Anchors attend to the other anchors, every other image to all anchors [S], so a story of
   N images costs O(N (1 + |A|)) attention, linear in N [S], [I].
3. Attention dropout ([S], [I]): of each image's shared entries (M_a = 1, a != i) a fraction
   `dropout` is set to 0, drawn anew each step and layer from a generator seeded by the
   render seed, the step and the layer (so a seed gives the same picture).
4. Query blending with a vanilla pass ([S], [I]): at step t < `query_blend_until` * n, a first
   pass without sharing gives Q_i^v; the shared pass uses
       Q_i* = s_t Q_i^v + (1 - s_t) Q_i,   s_t = query_blend * (1 - t / T_b),
   T_b = round(query_blend_until * n): s_0 = 0.9 [I], falling linearly to 0 [I].
5. Feature injection ([S] "特征注入", [I]), for step t in [n * injection_from, n *
   injection_until) (n/10 to n/3 [I]): the vanilla pass's self-attention inputs are the
   denoising features F (DIFT-like: the plain model's own features of x_t [S]); for each
   non-anchor image i and patch p in M_i,
       q = argmax over anchor patches a in M_a of cos(F_i[p], F_a[q]),
       d = 1 - cos(F_i[p], F_a[q]),
       if d < injection_max_distance: O_i[p] <- (1 - w) O_i[p] + w O_a[q],
   O the shared pass's self-attention output and w = injection_weight = 0.8 [I]; anchors are
   the only sources [S].

Energy-guidance forwards (LMD's, which see only the rows still being guided) run without
sharing: each image's energy is its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from lmd.controller.config import check_ranges


@dataclass(frozen=True)
class ConsistencySettings:
    """The constants of ConsiStory's shared attention (see the module docstring for each
    formula and its source); hashable, override by keyword."""

    anchors: int = 2  # [S] "two anchor images", [I]
    dropout: float = 0.5  # [S] "0.5 dropout rate", [I]
    query_blend: float = 0.9  # s_0 [I]
    query_blend_until: float = 0.2  # [lmd] s reaches 0 at this fraction of the steps
    injection_weight: float = 0.8  # w [I]
    injection_from: float = 0.1  # n/10 [I]
    injection_until: float = 1 / 3  # n/3 [I]
    injection_max_distance: float = 0.5  # [lmd] cosine distance 1 - cos below which to inject
    mask_source: Literal["auto", "layout", "attention"] = "auto"
    """Where the subject masks come from: "layout" (LMD's object masks, else the boxes),
    "attention" (the subject tokens' cross-attention, Otsu-thresholded), or "auto": the layout
    for methods that draw the boxes, attention for plain generation."""
    mask_window: int | None = None
    """Steps of cross-attention averaged for an attention mask (None: every step so far [S])."""
    share: bool = True  # SDSA on; off: the images are drawn as the base method draws them
    inject: bool = True  # feature injection on

    def __post_init__(self) -> None:
        check_ranges(
            self,
            {
                "anchors": self.anchors >= 1,
                "dropout": 0 <= self.dropout < 1,
                "query_blend": 0 <= self.query_blend <= 1,
                "query_blend_until": 0 <= self.query_blend_until <= 1,
                "injection_weight": 0 <= self.injection_weight <= 1,
                "injection_from": 0 <= self.injection_from <= 1,
                "injection_until": self.injection_from <= self.injection_until <= 1,
                "injection_max_distance": 0 <= self.injection_max_distance <= 2,
                "mask_window": self.mask_window is None or self.mask_window >= 1,
            },
        )
        if self.mask_source not in ("auto", "layout", "attention"):
            raise ValueError(
                "`mask_source` must be one of 'auto', 'layout', 'attention' "
                f"but is {self.mask_source!r}"
            )

    def blend_weight(self, index: int, steps: int) -> float:
        """s_t: the vanilla queries' weight at step `index` of `steps` (0: no vanilla pass)."""
        until = round(self.query_blend_until * steps)
        if not self.share or index >= until or self.query_blend == 0:
            return 0.0
        return self.query_blend * (1 - index / until)

    def injects(self, index: int, steps: int) -> bool:
        """Whether step `index` of `steps` injects anchor features."""
        if not (self.share and self.inject) or self.injection_weight == 0:
            return False
        return math.ceil(self.injection_from * steps) <= index < self.injection_until * steps
