"""PixelCNN++ (Salimans et al. 2017) as PixelPyramids uses it on the coarsest 4x4 image.

Weight-normed, causally shifted convolutions, concat_elu and gated residual layers; one stride-2 stage.
The weight norm is computed in forward (w = g * v / ||v||, norm over every dim but 0): for a transposed
convolution the weight is (in, out, kh, kw), so g is per INPUT channel, as torch.nn.utils.weight_norm(dim=0) does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SHIFTS = ("down", "downright")


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move the map one row down (zero first row, last row dropped)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move the map one column right (zero first column, last column dropped)."""
    return F.pad(x, (1, 0))[:, :, :, :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


class ShiftedConv(nn.Module):
    """Weight-normed conv whose receptive field sees only rows above ('down') or above-and-left ('downright').

    transposed=True: the stride-2 transposed version, cropped back to twice the input size.
    """

    def __init__(self, cin: int, cout: int, kernel=(1, 1), *, shift: str = "down", stride: int = 1,
                 transposed: bool = False):
        super().__init__()
        if shift not in SHIFTS:
            raise ValueError(f"shift must be one of {SHIFTS}")
        kh, kw = kernel
        shape = (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw)
        self.weight_v = nn.Parameter(torch.empty(shape))
        self.weight_g = nn.Parameter(torch.empty(shape[0], 1, 1, 1))
        self.bias = nn.Parameter(torch.empty(cout))
        self.kernel, self.shift, self.stride, self.transposed = (kh, kw), shift, stride, transposed
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch's default conv init for v, then g = ||v|| (the state right after weight_norm is applied)."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        fan_in = self.weight_v[0].numel()
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=(1, 2, 3), keepdim=True))

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel
        if self.transposed:
            y = F.conv_transpose2d(x, self.weight(), self.bias, stride=self.stride)
            h, w = y.shape[-2:]
            cols = slice(kw // 2, w) if self.shift == "down" else slice(0, w - kw + self.stride)
            return y[:, :, :h - kh + self.stride, cols]
        if self.shift == "down":
            x = F.pad(x, ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0))
        else:
            x = F.pad(x, (kw - 1, 0, kh - 1, 0))
        return F.conv2d(x, self.weight(), self.bias, stride=self.stride)


class GatedResidual(nn.Module):
    """x + a * sigmoid(b), [a, b] = c2(concat_elu(c1(concat_elu(x)) [+ c1c(concat_elu(aux))]))."""

    def __init__(self, channels: int, kernel, shift: str, aux_channels: int = 0):
        super().__init__()
        self.c1 = ShiftedConv(2 * channels, channels, kernel, shift=shift)
        self.c1c = ShiftedConv(2 * aux_channels, channels) if aux_channels else None
        self.c2 = ShiftedConv(2 * channels, 2 * channels, kernel, shift=shift)

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(concat_elu(x))
        if aux is not None:
            h = h + self.c1c(concat_elu(aux))
        a, b = self.c2(concat_elu(h)).chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


def _stage(channels: int, n_res: int, kernel, shift: str, aux: int, resample: ShiftedConv, n_after: int):
    layers = [GatedResidual(channels, kernel, shift, aux) for _ in range(n_res)] + [resample]
    return nn.ModuleList(layers + [GatedResidual(channels, kernel, shift, aux) for _ in range(n_after)])


class PixelCNNpp(nn.Module):
    """Unconditional PixelCNN++ over (B, 3, H, W) model-space images -> mixture parameters (B, n_classes, H, W).

    Up pass [n_res gated, stride-2, n_res gated]; down pass [n_res gated, transposed stride-2, n_res+1 gated].
    As in the PixelPyramids code, the gated layers of the down 'ul' stream take u (not ul) as their main input,
    so each overwrites the previous ul: only the last one (whose shortcut sees the ul input layers) reaches the
    output, and the up 'ul' stream and the other down 'ul' layers are dead weight (kept for the official keys
    and parameter count; they receive no gradient).
    """

    def __init__(self, channels: int = 32, n_res_layers: int = 2, n_classes: int = 100, in_channels: int = 3):
        super().__init__()
        n, r = channels, n_res_layers
        self.u_input = ShiftedConv(in_channels + 1, n, (2, 3), shift="down")
        self.ul_input_d = ShiftedConv(in_channels + 1, n, (1, 3), shift="down")
        self.ul_input_dr = ShiftedConv(in_channels + 1, n, (2, 1), shift="downright")
        self.up_u = _stage(n, r, (2, 3), "down", 0, ShiftedConv(n, n, (2, 3), shift="down", stride=2), r)
        self.up_ul = _stage(n, r, (2, 2), "downright", n,
                            ShiftedConv(n, n, (2, 2), shift="downright", stride=2), r)
        self.down_u = _stage(n, r, (2, 3), "down", n,
                             ShiftedConv(n, n, (2, 3), shift="down", stride=2, transposed=True), r + 1)
        self.down_ul = _stage(n, r, (2, 2), "downright", 2 * n,
                              ShiftedConv(n, n, (2, 2), shift="downright", stride=2, transposed=True), r + 1)
        self.output = ShiftedConv(n, n_classes)

    @property
    def dead_parameters(self) -> tuple[str, ...]:
        """Name prefixes of the dead weights described above (they never receive a gradient)."""
        return ("up_ul.", *(f"down_ul.{k}." for k in range(len(self.down_ul) - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, 0, 0, 1), value=1.0)   # all-ones channel: tells the image from the zero padding
        us = [down_shift(self.u_input(x))]
        uls = [down_shift(self.ul_input_d(x)) + right_shift(self.ul_input_dr(x))]
        for u_layer, ul_layer in zip(self.up_u, self.up_ul):
            us.append(u_layer(us[-1]))
            uls.append(ul_layer(uls[-1], us[-1]) if isinstance(ul_layer, GatedResidual) else ul_layer(uls[-1]))
        u, ul = us.pop(), uls.pop()
        for u_layer, ul_layer in zip(self.down_u, self.down_ul):
            if isinstance(u_layer, GatedResidual):
                u = u_layer(u, us.pop())
                ul = ul_layer(u, torch.cat([u, uls.pop()], dim=1))
            else:
                u, ul = u_layer(u), ul_layer(ul)
        return self.output(F.elu(ul))
