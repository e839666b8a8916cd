"""The building blocks of an MIGC layer (Zhou et al., CVPR 2024, arXiv 2402.05408), as torch
modules: the Fourier box embedding and its MLP, multi-head attention with an optional pixel-pair
mask (the enhancement and the layout attention), and the channel + spatial gates the shading
aggregation runs its logits through.

Written for lmd from the paper (Sec. 3.3-3.4) and from reading the authors' code (limuloo/MIGC
at commit effd6cc2e6a9f7d2fe34409c300a5f037a87b9ec, non-commercial licence, not copied here);
"arch.py:N" below is `migc/migc_arch.py` line N there, "layers.py:N" `migc/migc_layers.py`.
Every constant is a constructor argument whose default is the authors' value; the checkpoint
loader (`checkpoint.py`) reads the sizes that the weights fix from the weights themselves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FOURIER_FREQUENCIES = 8
"""Frequencies per box coordinate (arch.py:24, `PositionNet(fourier_freqs=8)`)."""
FOURIER_TEMPERATURE = 100.0
"""Frequency k of F is temperature ** (k / F) (arch.py:9-12)."""
POSITION_HIDDEN = 512
"""Width of the box MLP's two hidden layers (arch.py:33-39)."""
HEADS = 8
"""Heads of the enhancement and layout attention, head width = channels / 8 (arch.py:122-129);
not recorded in the weights."""
CHANNEL_REDUCTION = 16
"""The feature gate's channel MLP squeezes C to C / 16 (layers.py:173, CBAM's default)."""
SPATIAL_KERNEL = 7
"""The spatial gate's convolution is 7 x 7, padding 3, no bias (layers.py:221-223)."""


def fourier_features(boxes: torch.Tensor, frequencies: int, temperature: float) -> torch.Tensor:
    """[..., 4] -> [..., 8 * frequencies]: for k = 0..F-1, f_k = temperature ** (k / F), the
    blocks sin(f_k * box), cos(f_k * box), k after k (arch.py:8-20)."""
    k = torch.arange(frequencies, dtype=torch.float32, device=boxes.device)
    bands = (temperature ** (k / frequencies)).to(boxes.dtype)
    angles = boxes[..., None, :] * bands[:, None]  # [..., F, 4]
    both = torch.stack([angles.sin(), angles.cos()], dim=-2)  # [..., F, 2, 4]
    return both.flatten(-3)


class BoxTokens(nn.Module):
    """A box's position token (the paper's "position token", Sec. 3.3, Fig. 3a): its Fourier
    features through Linear-SiLU-Linear-SiLU-Linear to the text width (arch.py:23-47).

    The box is given as the authors' pipeline hands it over, (x0, x1, y0, y1) in fractions of
    the image (migc_pipeline.py:202): `BoxShader` reorders lmd's (x0, y0, x1, y1) to that.
    """

    def __init__(
        self,
        out_dim: int,
        hidden: int = POSITION_HIDDEN,
        frequencies: int = FOURIER_FREQUENCIES,
        temperature: float = FOURIER_TEMPERATURE,
    ):
        super().__init__()
        self.frequencies = frequencies
        self.temperature = temperature
        self.mlp = nn.Sequential(
            nn.Linear(frequencies * 2 * 4, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, boxes: torch.Tensor) -> torch.Tensor:
        return self.mlp(fourier_features(boxes, self.frequencies, self.temperature))


class Attention(nn.Module):
    """Multi-head attention, queries from `x`, keys and values from `context` (default `x`);
    projections without bias, output projection with bias; scores scaled by head_width^-0.5
    (layers.py:21-82 and 85-149). `allowed` [B, Lq, Lk] (bool) masks pixel pairs out: the
    layout attention's A (Sec. 3.4, Eq. 7); the authors fill masked scores with -max before
    the softmax, which is what a boolean mask does."""

    def __init__(self, dim: int, context_dim: int | None = None, heads: int = HEADS):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{dim} channels do not split into {heads} heads")
        context_dim = context_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = x if context is None else context
        b, h = x.shape[0], self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [B, L, h*d] -> [B, h, L, d]
            return t.view(b, t.shape[1], h, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        mask = None if allowed is None else allowed[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out(out.transpose(1, 2).reshape(b, x.shape[1], -1))


class ChannelGate(nn.Module):
    """x * sigmoid(mlp(mean_hw x) + mlp(max_hw x)), mlp = Linear(C, C/r)-ReLU-Linear(C/r, C)
    (CBAM's channel attention, layers.py:172-206)."""

    def __init__(self, channels: int, reduction: int = CHANNEL_REDUCTION):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f"{channels} channels cannot be reduced {reduction} times")
        self.squeeze = nn.Linear(channels, channels // reduction)
        self.excite = nn.Linear(channels // reduction, channels)

    def mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.excite(F.relu(self.squeeze(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * att.sigmoid()[:, :, None, None]


class SpatialGate(nn.Module):
    """x * sigmoid(conv7x7([max_c x, mean_c x])) (CBAM's spatial attention, layers.py:214-228)."""

    def __init__(self, kernel: int = SPATIAL_KERNEL):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=(kernel - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * self.conv(pooled).sigmoid()


class Gate(nn.Module):
    """The channel gate, then the spatial gate (CBAM, layers.py:230-241)."""

    def __init__(self, channels: int, reduction: int = CHANNEL_REDUCTION):
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
