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


def upsample2x(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x2 FIR upsampling (StyleGAN2 skip path): upfirdn2d(up=2, pad=(2, 1)) as a transposed depthwise conv.

    `kernel` must already carry the gain of 4 that keeps the mean; a 4-tap kernel is assumed.
    """
    c = x.shape[1]
    k = kernel.to(device=x.device, dtype=x.dtype).expand(c, 1, *kernel.shape)
    return F.conv_transpose2d(x, k, stride=2, padding=1, groups=c)
