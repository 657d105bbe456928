"""LPIPS-VGG (Zhang et al. 2018, v0.1 linear heads) without the lpips package (it depends on torchvision).

d(x0, x1) = sum over the five VGG16 taps l of mean_hw( w_l . (f0_l - f1_l)^2 ), where f_l are the tap's
activations divided by their channel-wise L2 norm (+1e-10) and w_l the 1x1 linear head. Inputs are float images
nominally in [-1, 1], shifted and scaled as the lpips package's ScalingLayer does; no resizing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import VGG16

CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    def __init__(self, vgg: VGG16, heads: dict):
        super().__init__()
        self.vgg = vgg
        device = next(vgg.features.parameters()).device
        for k, c in enumerate(CHANNELS):
            self.register_buffer(f"lin{k}", heads[f"lin{k}.weight"].reshape(1, c, 1, 1).float().to(device))
        self.register_buffer("shift", torch.tensor(SHIFT, device=device).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE, device=device).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised (over channels) VGG taps of float images in [-1, 1]."""
        x = ((images.float() - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        return [f / (f.square().sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self.vgg.taps(x)]

    def distance_from_features(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        total = 0
        for k, (a, b) in enumerate(zip(f0, f1)):
            total = total + F.conv2d((a - b).square(), getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return total

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """(N,) LPIPS distances."""
        return self.distance_from_features(self.features(x0), self.features(x1))
