"""Modulated convolution (StyleGAN2) in two equal forms, styled conv with noise, and ToRGB.

- "fused": one grouped convolution with a per-sample modulated (and demodulated) weight, as the
  official code does;
- "nonfused": scale the input channels by the style, convolve with the shared weight, scale the output
  channels by the demodulation coefficients. One large convolution instead of B small ones: faster on
  CPUs and GPUs for batches > 1, and mathematically identical.

StyledConv and ToRGB carry the switches `reference` (True: fused, the official form) and `impl` (an explicit
form; 'auto' = by batch), set with `layers.switch` / `layers.reference`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .equalized import SQRT2, EqualLinear, conv1x1, fp32, full_precision
from .fir import blur, fir_kernel, upsample2x

IMPLS = ("auto", "fused", "nonfused")
NOISE_MODES = ("const", "random", "none")


def resolve_impl(impl: str, batch: int) -> str:
    """'fused' or 'nonfused' for `impl` ('auto': fused at batch 1, where the grouped conv is one plain conv)."""
    if impl not in IMPLS:
        raise ValueError(f"modconv impl must be one of {IMPLS}, got {impl!r}")
    if impl != "auto":
        return impl
    return "fused" if batch == 1 else "nonfused"


class ModconvSwitch:
    """The modulated-conv form of a module: an explicit `impl`, else fused on the reference path, else by batch."""

    reference = False
    impl = "auto"

    def modconv_impl(self) -> str:
        return "fused" if self.impl == "auto" and self.reference else self.impl


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: bool = False, padding: int = 0, defer_demod: bool = False, impl: str = "auto"):
    """x (B, Cin, H, W), weight (Cout, Cin, k, k) already scaled by its gain, styles (B, Cin).

    `impl`: 'fused' (official), 'nonfused' or 'auto' (by batch); modules choose it with layers.switch.

    With `up`, a stride-2 transposed convolution without padding (the caller blurs afterwards).
    With `defer_demod`, returns (out, dcoefs) and leaves the per-(sample, channel) demodulation factors
    (B, Cout) to the caller to fuse into its epilogue (dcoefs is None when already applied).
    """
    batch, cin = styles.shape
    cout, _, kh, kw = weight.shape
    if resolve_impl(impl, batch) == "fused":
        w = weight.unsqueeze(0) * styles.view(batch, 1, cin, 1, 1)
        if demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
        xg = x.reshape(1, batch * cin, *x.shape[2:])
        w = w.to(x.dtype)
        if up:
            wt = w.transpose(1, 2).reshape(batch * cin, cout, kh, kw)
            out = F.conv_transpose2d(xg, wt, stride=2, groups=batch)
        else:
            out = F.conv2d(xg, w.reshape(batch * cout, cin, kh, kw), padding=padding, groups=batch)
        out = out.reshape(batch, cout, *out.shape[2:])
        return (out, None) if defer_demod else out
    x = x * styles.to(x.dtype).view(batch, cin, 1, 1)
    if up:
        out = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
    elif kh == kw == 1:
        out = conv1x1(x, weight)
    else:
        out = F.conv2d(x, weight.to(x.dtype), padding=padding)
    dcoefs = None
    if demodulate:
        with full_precision(styles):
            dcoefs = torch.rsqrt(fp32(styles).square() @ fp32(weight).square().sum(dim=[2, 3]).t() + 1e-8)
        if not defer_demod:
            out = out * dcoefs.to(out.dtype).view(batch, cout, 1, 1)
    return (out, dcoefs) if defer_demod else out


def deterministic_noise(height: int, width: int, seed: int) -> torch.Tensor:
    """The fixed (1, 1, H, W) noise of noise_mode='const' for models without stored noise buffers."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(1, 1, height, width, generator=g, device="cpu")


class StyledConv(ModconvSwitch, nn.Module):
    """Modulated conv -> (+ FIR blur when upsampling) -> noise -> bias + leaky-ReLU * sqrt(2) (-> clamp).

    `conv_clamp` (NVlabs StyleGAN2-ADA): clamp the activated output to [-conv_clamp, conv_clamp]; None = off.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, *,
                 resolution: int, up: bool = False, noise_seed: int = 0, store_noise: bool = False,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.up = up
        self.resolution = resolution
        self.noise_seed = noise_seed
        if up:
            self.register_buffer("blur_kernel", fir_kernel(gain=4.0), persistent=False)
        self.register_buffer("noise_const", deterministic_noise(resolution, resolution, noise_seed),
                             persistent=store_noise)

    def noise_for(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        h, w = x.shape[2:]
        if noise_mode == "none":
            return None
        if noise_mode == "random":
            return torch.randn(x.shape[0], 1, h, w, device=x.device, dtype=x.dtype)
        if noise_mode != "const":
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if self.noise_const.shape[2:] == (h, w):
            return self.noise_const
        return deterministic_noise(h, w, self.noise_seed).to(x.device)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        styles = self.affine(w)
        x, dcoefs = modulated_conv2d(x, self.weight * self.weight_gain, styles, up=self.up,
                                     padding=0 if self.up else self.padding, defer_demod=True,
                                     impl=self.modconv_impl())
        if self.up:
            x = blur(x, self.blur_kernel, (1, 1))
        if noise is None:
            noise = self.noise_for(x, noise_mode)
        # One fused epilogue: leaky_relu(x * d + noise * s + b) * sqrt(2), using leaky(a) * g = leaky(a * g), g > 0.
        addend = self.bias.to(x.dtype).view(1, -1, 1, 1) * SQRT2
        if noise is not None:
            addend = addend + noise.to(x.dtype) * (self.noise_strength.to(x.dtype) * SQRT2)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            addend = addend.contiguous(memory_format=torch.channels_last)
        scale = SQRT2 if dcoefs is None else (dcoefs.to(x.dtype) * SQRT2).view(*dcoefs.shape, 1, 1)
        if torch.is_tensor(scale):
            out = torch.addcmul(fp32(addend), fp32(x), fp32(scale))
        else:
            out = torch.add(fp32(addend), fp32(x), alpha=scale)
        out = F.leaky_relu_(out, 0.2) if not torch.is_grad_enabled() else F.leaky_relu(out, 0.2)
        return out if self.conv_clamp is None else out.clamp(-self.conv_clamp, self.conv_clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, k={k}, res={self.resolution}, up={self.up}"


class ToRGB(ModconvSwitch, nn.Module):
    """1x1 modulated conv without demodulation + bias (-> clamp); adds the x2-upsampled (or same-size) skip image."""

    def __init__(self, in_channels: int, w_dim: int, *, upsample_skip: bool = True, out_channels: int = 3,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.upsample_skip = upsample_skip

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 even under autocast: 3 output channels cost little, and the skip sum is the image."""
        with full_precision(x):
            return self._forward(fp32(x), fp32(w), skip if skip is None else fp32(skip))

    def _forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), demodulate=False,
                               impl=self.modconv_impl())
        out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        if skip is not None:
            out = out + (upsample2x(skip) if self.upsample_skip else skip)
        return out
