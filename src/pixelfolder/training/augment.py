"""DiffAugment (Zhao et al., 2020): differentiable colour, translation and cutout, applied alike to reals and
fakes. Random parameters come from keyed per-sample draws (randomness.Draws), so a sample's augmentation is
batch-independent."""
from __future__ import annotations

import torch
import torch.nn.functional as F



def diffaugment(x: torch.Tensor, draws, translation: float = 0.125, cutout: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    p = draws.uniform(7).to(x.device, x.dtype)         # brightness, saturation, contrast, tx, ty, cx, cy
    x = x + (p[:, 0] - 0.5).view(b, 1, 1, 1)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (p[:, 1] * 2).view(b, 1, 1, 1) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - mean) * (p[:, 2] + 0.5).view(b, 1, 1, 1) + mean
    x = _translate(x, p[:, 3], p[:, 4], translation)
    return _cutout(x, p[:, 5], p[:, 6], cutout)


def _translate(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, ratio: float) -> torch.Tensor:
    """Integer shifts in [-ratio*size, ratio*size], zero fill."""
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.floor(u * (2 * sh + 1)).long() - sh
    tx = torch.floor(v * (2 * sw + 1)).long() - sw
    rows = (torch.arange(h, device=x.device).view(1, h) - ty.view(b, 1)).clamp(-1, h)   # source row
    cols = (torch.arange(w, device=x.device).view(1, w) - tx.view(b, 1)).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    idx_r = (rows + 1).view(b, 1, h, 1).expand(b, c, h, w + 2)
    out = padded.gather(2, idx_r)
    idx_c = (cols + 1).view(b, 1, 1, w).expand(b, c, h, w)
    return out.gather(3, idx_c)


def _cutout(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, ratio: float) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.floor(u * (h + (1 - ch % 2))).long() - ch // 2
    x0 = torch.floor(v * (w + (1 - cw % 2))).long() - cw // 2
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((yy >= y0.view(b, 1, 1)) & (yy < (y0 + ch).view(b, 1, 1))
              & (xx >= x0.view(b, 1, 1)) & (xx < (x0 + cw).view(b, 1, 1)))
    return x * (~inside).unsqueeze(1).to(x.dtype)
