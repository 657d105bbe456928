"""TensorFlow 1.x bilinear resizing (`tf.image.resize_bilinear`, align_corners=False), the detectors' input resize.

TF1 maps output pixel i to source coordinate i * in / out — no half-pixel offset, unlike
`torch.nn.functional.interpolate(align_corners=False)` — and interpolates between floor(src) and
min(floor(src) + 1, in - 1). torch-fidelity's `inception-v3-compat` feature extractor resizes this way
(`interpolate_bilinear_2d_like_tensorflow1x`, method 'slow'), reproducing the original TF FID/IS graphs; we compute
the same coordinates in float32 and the same interpolation order (columns, then rows), so results agree bit for bit.
"""
from __future__ import annotations

import torch


def _axis(in_size: int, out_size: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lo, hi, frac) source indices and weights along one axis."""
    src = torch.arange(out_size, dtype=torch.float32, device=device) * torch.tensor(in_size / out_size,
                                                                                     dtype=torch.float32)
    lo = src.long()
    hi = (lo + 1).clamp_max(in_size - 1)
    return lo, hi, src - lo.float()


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size[0], size[1]) with TF1's bilinear resize; identity at the same size."""
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError("resize_bilinear_tf1 expects a 4-D floating-point tensor")
    out_h, out_w = size
    if x.shape[2:] == (out_h, out_w):
        return x
    y_lo, y_hi, dy = _axis(x.shape[2], out_h, x.device)
    x_lo, x_hi, dx = _axis(x.shape[3], out_w, x.device)
    top, bottom = x.index_select(2, y_lo), x.index_select(2, y_hi)
    dx = dx.to(x.dtype).view(1, 1, 1, out_w)
    rows = []
    for part in (top, bottom):
        left = part.index_select(3, x_lo)
        rows.append(left + (part.index_select(3, x_hi) - left) * dx)
    return rows[0] + (rows[1] - rows[0]) * dy.to(x.dtype).view(1, 1, out_h, 1)
