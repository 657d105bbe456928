"""Equalized-learning-rate layers: weights are stored N(0, 1) and scaled at run time."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .fir import BLUR_TAPS, blur, fir_kernel

SQRT2 = math.sqrt(2.0)


def full_precision(x: torch.Tensor):
    """Context that turns autocast off, for the small but precision-critical parts (styles, demodulation, RGB)."""
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16/float32; float64 (an exact reference run, e.g. tools/bench_train.py's) stays."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def fp32(x: torch.Tensor) -> torch.Tensor:
    """x in at_least_fp32(x.dtype): autocast's bf16/fp16 outputs go up to float32, float64 stays."""
    return x.to(at_least_fp32(x.dtype))


def bias_lrelu(x: torch.Tensor, bias: torch.Tensor | None, gain: float = SQRT2) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * gain, bias broadcast over channel dim 1 (the official fused_leaky_relu)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, 0.2) * gain


def conv1x1(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1x1 convolution as one matmul in x's memory layout (mkldnn's 1x1 path is slow on some CPUs)."""
    b, c, h, w = x.shape
    w2d = weight.reshape(weight.shape[0], c).to(x.dtype)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return (x.permute(0, 2, 3, 1) @ w2d.t()).permute(0, 3, 1, 2)
    return (w2d @ x.reshape(b, c, h * w)).view(b, -1, h, w)


class EqualLinear(nn.Module):
    """Linear layer with runtime weight scale lr_mul/sqrt(in); optional bias + leaky-ReLU."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Always float32, also under autocast: mapping and style outputs are tiny and precision-critical."""
        with full_precision(x):
            x, w, b = fp32(x), fp32(self.weight) * self.weight_gain, fp32(self.bias) * self.lr_mul
            if self.activate:
                return bias_lrelu(F.linear(x, w), b)
            return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activate={self.activate}"


class ConvLayer(nn.Module):
    """EqualConv2d (+ optional FIR-blur and stride-2 downsampling) + optional bias and leaky-ReLU.

    Matches the official ConvLayer: with `activate` the bias is applied inside the activation;
    `bias=False, activate=False` is the plain skip convolution. `clamp` limits the output to +-clamp after
    bias and activation gain (NVlabs conv_clamp); None = off.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, down: bool = False,
                 bias: bool = True, activate: bool = True, clamp: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.activate = activate
        self.clamp = clamp
        self.down = down
        if down:
            p = (len(BLUR_TAPS) - 2) + (kernel_size - 1)
            self.blur_pad = ((p + 1) // 2, p // 2)
            self.register_buffer("blur_kernel", fir_kernel(), persistent=False)
        self.padding = 0 if down else (kernel_size - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            x = blur(x, self.blur_kernel, self.blur_pad)
            x = F.conv2d(x, w, stride=2)
        elif w.shape[-1] == 1:
            x = conv1x1(x, w)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        if self.activate:
            x = bias_lrelu(x, self.bias)
        elif self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        return x if self.clamp is None else x.clamp(-self.clamp, self.clamp)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        clamp = f", clamp={self.clamp}" if self.clamp is not None else ""
        return f"{i}, {o}, k={k}, down={self.down}, bias={self.bias is not None}, activate={self.activate}{clamp}"
