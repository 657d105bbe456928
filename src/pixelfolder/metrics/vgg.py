"""VGG16 (torchvision's layout and ImageNet weights), for precision/recall features and as LPIPS's backbone.

Precision/recall features follow torch-fidelity's `vgg16` extractor: uint8 images resized to 224x224 with TF1's
bilinear resize, ImageNet mean/std normalisation, the convolutional trunk, then fc1 -> ReLU -> fc2 -> ReLU
(`fc2_relu`, 4096-d; Kynkäänniemi et al. 2019 use the second fully connected layer of an ImageNet VGG16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resize import resize_bilinear_tf1

INPUT_SIZE = 224
CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
LPIPS_TAPS = (3, 8, 15, 22, 29)        # indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _trunk() -> nn.Sequential:
    layers, cin = [], 3
    for v in CONFIG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers)


class VGG16(nn.Module):
    """torchvision's VGG16 without fc8: `features.*` and `classifier.0` (fc1), `classifier.3` (fc2)."""

    def __init__(self):
        super().__init__()
        self.features = _trunk()
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096))
        self.requires_grad_(False)

    def fc2_relu(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> (N, 4096) ReLU(fc2) features, torch-fidelity's `vgg16` / `fc2_relu`."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"the VGG16 detector takes uint8 (N, 3, H, W) images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        x = resize_bilinear_tf1(images.float(), (INPUT_SIZE, INPUT_SIZE))
        mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1) * 255
        std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1) * 255
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        x = F.adaptive_avg_pool2d(self.features(x), (7, 7)).flatten(1)
        return F.relu(self.classifier[3](F.relu(self.classifier[0](x))))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised float input -> the five LPIPS feature maps (relu1_2 ... relu5_3)."""
        out = []
        for i, layer in enumerate(self.features[:LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in LPIPS_TAPS:
                out.append(x)
        return out
