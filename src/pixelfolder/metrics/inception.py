"""The FID Inception-v3: the TensorFlow graph `inception-2015-12-05` used by the original FID and IS code.

This is the "FID Inception" of pytorch-fid and torch-fidelity, written here without torchvision: torchvision's
Inception-v3 layout (so their state_dict key names are ours) with the TF graph's differences — average pools that
ignore padding (`count_include_pad=False`) in the A, C and first E blocks, a max pool in the last E block's pool
branch, batch-norm eps 1e-3 without a learned scale — and a 1008-way `fc` head (kept only when the weights have it).

Input handling is torch-fidelity's `inception-v3-compat`: uint8 NCHW RGB images of any size, resized to 299x299
with TF1's bilinear resize (`resize.resize_bilinear_tf1`), then (x - 128) / 128, in float32.
Outputs: `pool3` (N, 2048), the global average of the last block; `logits_unbiased` (N, 1008) = pool3 @ fc.weight.T
without the bias, which is what the original Inception Score code (and torch-fidelity, StyleGAN3) feeds to softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resize import resize_bilinear_tf1

INPUT_SIZE = 299
POOL3_DIM = 2048
NUM_LOGITS = 1008


class FrozenBatchNorm(nn.Module):
    """Inference-only batch norm with the usual key names (weight, bias, running_mean, running_var)."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> batch norm -> ReLU; `fold()` merges the batch norm into the conv for speed."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm(cout)
        self.is_folded = False

    def fold(self) -> None:
        scale, shift = self.bn.scale_shift()
        weight = (self.conv.weight * scale.view(-1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
        self.register_buffer("folded_weight", weight, persistent=False)
        self.register_buffer("folded_bias", shift, persistent=False)
        self.is_folded = True

    def forward(self, x):
        if self.is_folded:
            return F.relu(F.conv2d(x, self.folded_weight, self.folded_bias, self.conv.stride, self.conv.padding))
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """`pool='avg'` for Mixed_7b; the TF graph's Mixed_7c uses a max pool in its pool branch."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b), self.branch_pool(pooled)], 1)


class InceptionV3FID(nn.Module):
    """The FID Inception-v3 (see the module docstring). `with_logits` adds the 1008-way `fc` head for IS."""

    def __init__(self, with_logits: bool = True):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(POOL3_DIM, NUM_LOGITS) if with_logits else None
        self.requires_grad_(False)

    @property
    def has_logits(self) -> bool:
        return self.fc is not None

    def fold(self) -> "InceptionV3FID":
        """Merge every batch norm into its conv (1-2 ulp differences, ~10 % faster on CPU) and use channels_last."""
        for m in self.modules():
            if isinstance(m, BasicConv2d):
                m.fold()
        return self

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) float input already scaled to [-1, 1) -> (N, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor, logits: bool = False) -> dict[str, torch.Tensor]:
        """uint8 (N, 3, H, W) -> {'pool3': (N, 2048)} (+ 'logits_unbiased': (N, 1008) with `logits=True`)."""
        x = preprocess(images).to(memory_format=torch.channels_last)
        pool3 = self.pool3(x)
        out = {"pool3": pool3}
        if logits:
            if self.fc is None:
                raise ValueError("these Inception weights have no 1008-logit head")
            out["logits_unbiased"] = pool3 @ self.fc.weight.T
        return out


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 NCHW at 299x299 (TF1 bilinear) scaled by (x - 128) / 128, as torch-fidelity."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"the Inception detector takes uint8 (N, 3, H, W) images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    x = resize_bilinear_tf1(images.float(), (INPUT_SIZE, INPUT_SIZE))
    return (x - 128) / 128
