"""FIR filtering, up- and down-sampling as depthwise convolutions (no custom kernels).

`upfirdn2d_reference` is the slow, literal twin (zero insertion, padding, FIR, decimation); the fast
helpers below must equal it and the tests check that they do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


def fir_kernel(taps=BLUR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D FIR kernel: outer(taps, taps) normalised to sum `gain`."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k * (gain / k.sum())


def _depthwise(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    return kernel.to(device=x.device, dtype=x.dtype).flip([0, 1]).expand(c, 1, *kernel.shape)


def upfirdn2d_reference(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
                        pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Literal upfirdn2d: insert zeros, pad (p0, p1) on both axes, convolve, keep every `down`-th pixel."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h, up, w, up)
        z[:, :, :, 0, :, 0] = x
        x = z.reshape(b, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    x = F.conv2d(x, _depthwise(kernel, x), groups=c)
    return x[:, :, ::down, ::down]


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """FIR filter with padding (p0, p1) on both spatial axes, as one depthwise convolution."""
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, _depthwise(kernel, x), groups=x.shape[1])


def _upsample2x_axis(x: torch.Tensor, dim: int, near: float, far: float) -> torch.Tensor:
    """1-D x2 FIR upsampling with a symmetric 4-tap kernel [far, near, near, far] along `dim` (zero borders)."""
    n = x.shape[dim]
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    prev = torch.cat([zero, x.narrow(dim, 0, n - 1)], dim=dim)
    nxt = torch.cat([x.narrow(dim, 1, n - 1), zero], dim=dim)
    even = x * near + prev * far
    odd = x * near + nxt * far
    out = torch.stack([even, odd], dim=dim + 1)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return out.reshape(shape)


def upsample2x(x: torch.Tensor, taps=BLUR_TAPS) -> torch.Tensor:
    """x2 FIR upsampling (StyleGAN2 skip path): upfirdn2d(x, fir_kernel(taps, gain=4), up=2, pad=(2, 1)).

    For a symmetric 4-tap filter, computed separably with elementwise ops (a depthwise transposed conv
    on 3 channels is slow on CPUs).
    """
    if len(taps) != 4 or tuple(taps) != tuple(reversed(taps)):
        raise ValueError("upsample2x expects a symmetric 4-tap filter")
    total = float(sum(taps))
    near, far = 2 * taps[1] / total, 2 * taps[0] / total   # the 1-D factor carries a gain of 2
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return upfirdn2d_reference(x, fir_kernel(taps, gain=4.0), up=2, pad=(2, 1))
    return _upsample2x_axis(_upsample2x_axis(x, 2, near, far), 3, near, far)
