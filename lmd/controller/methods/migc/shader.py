"""One MIGC layer: the instance shading that replaces a cross-attention layer's output on the
conditional rows (Zhou et al., CVPR 2024, Sec. 3.2-3.4, Fig. 2-3), and MIGC++'s variant.

Inputs, per conditional row, on the layer's grid of H x W cells (HW = H * W):
- `g` [HW, C]: the frozen cross-attention's output for the global prompt;
- `x_i` [N, HW, C]: its output for each instance's own prompt ("shading stage 1", Eq. 3);
- `h` [HW, C]: the layer's input (the cross-attention's query side);
- `M_i` [N, H, W], `M_bg` [1, H, W]: instance and background masks on this grid;
- `b_i` [N, 4]: each box (x0, y0, x1, y1) in fractions of the image; `p_i` [N, D]: the pooled
  text embedding of each instance's prompt.

MIGC (the authors' `MIGC.forward`, "arch.py:N" = `migc/migc_arch.py` line N of limuloo/MIGC
at commit effd6cc2e6a9f7d2fe34409c300a5f037a87b9ec; written from reading it, not copied):
1. grounded phrase tokens G_i = [p_i, BoxTokens(b_i)] (Sec. 3.3; arch.py:151-157);
2. enhancement attention e_i = EA(LayerNorm(h), G_i) * M_i (Eq. 5; arch.py:162-165);
3. shaded instances s_i = x_i * M_i + e_i (Eq. 6; arch.py:167-173);
4. shading template t = LA(h) where pixel p may attend pixel q only when some mask of
   [M_1..M_N, M_bg] is non-zero at both (Eq. 7; layers.py:115-128; the masks' values do not
   weight the attention, only their zeros cut pairs out); LA reads h without the LayerNorm;
5. shading background s_bg = g * M_bg (Sec. 3.4; arch.py:180);
6. the shading aggregation controller (SAC, Sec. 3.4, Fig. 3c; arch.py:50-118) over the slots
   S = [s_bg, s_1..s_N, t] with guide masks [M_bg, M_1..M_N, 1]: see `Aggregator`.

MIGC++ (`MIGC_plus`, migc_plus/migc_plus_arch.py:96-171): steps 1-4 as above but without
the masking of x_i; its SAC (`PlusAggregator`) weighs only [e_1..e_N, t]; the result is added
to the mask-weighted mean of [g, x_1..x_N] (`fuse`, weights 1 and 10 M_i) through a learnt
gate: out = fuse + SAC * tanh(gamma).
"""

from __future__ import annotations

import torch
from torch import nn

from lmd.controller.methods.migc.modules import HEADS, Attention, BoxTokens, Gate

SLOTS = 30
"""The SAC's second gate runs over 30 slot channels (arch.py:51, `number_pro=30`): background,
28 instance slots (unused ones filled with the null slot's logits), template. So at most 28
instances per MIGC layer (27 for MIGC++, whose 30 slots are 29 instance slots and template)."""
FUSE_WEIGHT = 10.0
"""The naive fuser and MIGC++'s refined shader weigh instance outputs by 10 * M_i against 1
for the global output (arch.py:214, migc_plus_arch.py:87)."""
FUSE_EPS = 1e-6
"""Added to the fuser's weight sum (arch.py:216)."""
BOX_ORDER = (0, 2, 1, 3)
"""lmd's (x0, y0, x1, y1) to the (x0, x1, y0, y1) the authors' box MLP was trained on
(migc_pipeline.py:202: `in_box.append([bbox[0], bbox[2], bbox[1], bbox[3]])`)."""


def fuse(global_out: torch.Tensor, instance_out: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The naive fuser (arch.py:198-220), also MIGC++'s refined shader: per pixel the mean of
    [g, x_1..x_N] weighted by [1, 10 M_1 .. 10 M_N], plus 1e-6 in the denominator.

    `global_out` [B, HW, C], `instance_out` [B, N, HW, C], `masks` [B, N, H, W] -> [B, HW, C].
    """
    b, n, hw, _ = instance_out.shape
    weights = torch.cat([torch.ones_like(masks[:, :1]), masks * FUSE_WEIGHT], dim=1)
    weights = weights.reshape(b, n + 1, hw, 1)
    slots = torch.cat([global_out[:, None], instance_out], dim=1)
    return (slots * weights).sum(dim=1) / (weights.sum(dim=1) + FUSE_EPS)


def _shuffle(middle: torch.Tensor, order: torch.Tensor | None):
    """The instance slots in the order the second gate sees them, and where each came from."""
    if order is None:
        return middle, None
    if sorted(order.tolist()) != list(range(middle.shape[1])):
        raise ValueError(f"`order` must be a permutation of {middle.shape[1]} slots")
    return middle[:, order], torch.argsort(order)


class Aggregator(nn.Module):
    """MIGC's shading aggregation controller (SAC; arch.py:50-118).

    For each slot j of S (and one null slot: zero features, zero mask), a logit map
    l_j = conv2(Gate_C(conv1([S_j ; G_j]))) (1x1 convolutions, C + 1 -> C -> 1). The second gate
    runs over 30 channels: [l_bg, the 28 instance slots, l_t], where the N instances' logits
    are followed by copies of the null logit and the 28 are put in `order` (the authors draw a
    fresh `torch.randperm` on every call, arch.py:95; the gate's channel MLP sees the order);
    `order=None` keeps them in place. Then the instances are put back, the null copies
    dropped, and a softmax over [bg, 1..N, t] at each pixel weighs the slots:
    out = sum_j softmax(l)_j S_j.
    """

    plus = False

    def __init__(self, channels: int, slots: int = SLOTS):
        super().__init__()
        self.slots = slots
        self.merge = nn.Conv2d(channels + 1, channels, 1)
        self.feature_gate = Gate(channels)
        self.logit = nn.Conv2d(channels, 1, 1)
        self.slot_gate = Gate(slots, reduction=1)

    @property
    def max_instances(self) -> int:
        return self.slots - 2

    def logits(self, features: torch.Tensor, guides: torch.Tensor) -> torch.Tensor:
        """[B, P, H, W, C] slot features and [B, P, H, W] guide masks -> [B, P, H, W]."""
        b, p, h, w, c = features.shape
        x = torch.cat([features, guides[..., None]], dim=-1).reshape(b * p, h, w, c + 1)
        x = self.logit(self.feature_gate(self.merge(x.permute(0, 3, 1, 2))))
        return x.reshape(b, p, h, w)

    def forward(
        self, slots: torch.Tensor, guides: torch.Tensor, order: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`slots` [B, P, H, W, C] = [bg, 1..N, template], `guides` [B, P, H, W] -> [B, H, W, C]."""
        n = slots.shape[1] - 2
        if n > self.max_instances:
            raise ValueError(f"MIGC shades at most {self.max_instances} instances, not {n}")
        null = torch.zeros_like(slots[:, :1])
        logits = self.logits(torch.cat([slots, null], dim=1), torch.cat([guides, null[..., 0]], 1))
        null_logit, logits = logits[:, -1:], logits[:, :-1]
        middle = torch.cat([logits[:, 1:-1], null_logit.expand(-1, self.slots - 2 - n, -1, -1)], 1)
        middle, back = _shuffle(middle, order)
        gated = self.slot_gate(torch.cat([logits[:, :1], middle, logits[:, -1:]], dim=1))
        middle = gated[:, 1:-1]
        instances = middle[:, back[:n]] if back is not None else middle[:, :n]
        final = torch.cat([gated[:, :1], instances, gated[:, -1:]], dim=1)
        return (slots * final.softmax(dim=1)[..., None]).sum(dim=1)


class PlusAggregator(nn.Module):
    """MIGC++'s SAC (migc_plus_arch.py:10-68): the same second gate and softmax, over the slots
    [e_1..e_N, t] (no background slot), logits l_j = conv2(S_j) straight from the features
    (no guide mask, no first convolution, no feature gate); 29 instance slots."""

    plus = True

    def __init__(self, channels: int, slots: int = SLOTS):
        super().__init__()
        self.slots = slots
        self.logit = nn.Conv2d(channels, 1, 1)
        self.slot_gate = Gate(slots, reduction=1)

    @property
    def max_instances(self) -> int:
        return self.slots - 1

    def forward(
        self, slots: torch.Tensor, guides: torch.Tensor | None = None, order=None
    ) -> torch.Tensor:
        """`slots` [B, P, H, W, C] = [1..N, template] -> [B, H, W, C]."""
        b, p, h, w, c = slots.shape
        n = p - 1
        if n > self.max_instances:
            raise ValueError(f"MIGC++ shades at most {self.max_instances} instances, not {n}")
        x = torch.cat([slots, torch.zeros_like(slots[:, :1])], dim=1)
        logits = self.logit(x.reshape(-1, h, w, c).permute(0, 3, 1, 2)).reshape(b, p + 1, h, w)
        null_logit, logits = logits[:, -1:], logits[:, :-1]
        middle = torch.cat([logits[:, :-1], null_logit.expand(-1, self.slots - 1 - n, -1, -1)], 1)
        middle, back = _shuffle(middle, order)
        gated = self.slot_gate(torch.cat([middle, logits[:, -1:]], dim=1))
        middle = gated[:, :-1]
        instances = middle[:, back[:n]] if back is not None else middle[:, :n]
        final = torch.cat([instances, gated[:, -1:]], dim=1)
        return (slots * final.softmax(dim=1)[..., None]).sum(dim=1)


class InstanceShader(nn.Module):
    """One MIGC (or MIGC++, `plus=True`) layer for a cross-attention layer of `channels`
    channels whose prompts' pooled embeddings are `context_dim` wide (the module docstring
    has the math; arch.py:121-195, migc_plus_arch.py:96-171)."""

    def __init__(
        self,
        channels: int,
        context_dim: int,
        *,
        plus: bool = False,
        heads: int = HEADS,
        position_hidden: int = 512,
        slots: int = SLOTS,
    ):
        super().__init__()
        self.channels = channels
        self.context_dim = context_dim
        self.enhance = Attention(channels, context_dim, heads)
        self.layout = Attention(channels, heads=heads)
        self.norm = nn.LayerNorm(channels)
        self.position = BoxTokens(context_dim, hidden=position_hidden)
        self.aggregate = PlusAggregator(channels, slots) if plus else Aggregator(channels, slots)
        if plus:
            self.gamma = nn.Parameter(torch.zeros(1))  # tanh(0) = 0: the authors' init

    @property
    def plus(self) -> bool:
        return self.aggregate.plus

    @property
    def max_instances(self) -> int:
        return self.aggregate.max_instances

    def forward(
        self,
        global_out: torch.Tensor,
        instance_out: torch.Tensor,
        hidden: torch.Tensor,
        masks: torch.Tensor,
        background: torch.Tensor,
        boxes: torch.Tensor,
        pooled: torch.Tensor,
        order: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`global_out` [B, HW, C], `instance_out` [B, N, HW, C], `hidden` [B, HW, C], `masks`
        [B, N, H, W], `background` [B, 1, H, W] (this layer's grid), `boxes` [B, N, 4]
        (x0, y0, x1, y1 fractions), `pooled` [B, N, D]; `order`: the SAC's slot order (a
        permutation of its instance slots; None: unshuffled) -> [B, HW, C]."""
        b, n, hw, c = instance_out.shape
        h, w = masks.shape[-2:]
        flat = masks.reshape(b, n, hw, 1)
        tokens = self.position(boxes[..., list(BOX_ORDER)])  # [B, N, D]
        grounded = torch.stack([pooled, tokens], dim=2).reshape(b * n, 2, -1)
        queries = self.norm(hidden)[:, None].expand(b, n, hw, c).reshape(b * n, hw, c)
        enhanced = self.enhance(queries, grounded).reshape(b, n, hw, c) * flat
        template = self.layout(hidden, allowed=self._pairs(torch.cat([masks, background], 1)))
        if self.plus:
            slots = torch.cat([enhanced, template[:, None]], dim=1)
            shaded = self.aggregate(slots.reshape(b, n + 1, h, w, c), None, order)
            gate = torch.tanh(self.gamma)
            return fuse(global_out, instance_out, masks) + shaded.reshape(b, hw, c) * gate
        instances = instance_out * flat + enhanced
        slots = torch.cat([(global_out * background.reshape(b, hw, 1))[:, None], instances,
                           template[:, None]], dim=1)  # fmt: skip
        guides = torch.cat([background, masks, torch.ones_like(background)], dim=1)
        shaded = self.aggregate(slots.reshape(b, n + 2, h, w, c), guides, order)
        return shaded.reshape(b, hw, c)

    @staticmethod
    def _pairs(masks: torch.Tensor) -> torch.Tensor:
        """[B, K, H, W] masks -> [B, HW, HW]: some mask is non-zero at both pixels (Eq. 7)."""
        flat = masks.flatten(2)  # [B, K, HW]
        return torch.einsum("bkp,bkq->bpq", flat, flat) != 0
