"""Bits per dimension for likelihood models (registry kind "likelihood").

Interface: such a model implements

    nll_bits(x: torch.Tensor) -> torch.Tensor
        x: uint8 (N, C, H, W) images; returns (N,) float: -log2 p(x) of each whole discrete image, in bits
        (a continuous-density model adds its dequantisation correction itself).

bpd = sum of nll_bits over the images / (N * C * H * W). A uniform model over the 256 values of every
sub-pixel gives exactly 8.
"""
from __future__ import annotations

import torch

from ..errors import PixelfolderError


def check_likelihood_model(model, name: str = "the network") -> None:
    if getattr(model, "kind", None) != "likelihood" or not callable(getattr(model, "nll_bits", None)):
        what = f"a {model.kind} ({getattr(model, 'arch', type(model).__name__)})" if hasattr(model, "kind") \
            else type(model).__name__
        raise PixelfolderError(f"bpd needs a likelihood model (kind 'likelihood' with nll_bits(x_uint8) -> bits per "
                               f"image); {name} is {what}")


@torch.no_grad()
def bits_per_dim(model, batches) -> float:
    """`batches`: iterable of uint8 (N, C, H, W) tensors (or lists of such tensors)."""
    check_likelihood_model(model)
    total_bits, total_dims = 0.0, 0
    for x in (x for item in batches for x in (item if isinstance(item, list) else [item])):
        bits = model.nll_bits(x)
        if bits.shape != (x.shape[0],):
            raise PixelfolderError(f"nll_bits returned shape {tuple(bits.shape)} for {x.shape[0]} images; "
                                   f"expected ({x.shape[0]},)")
        total_bits += float(bits.double().sum())
        total_dims += x[0].numel() * x.shape[0]
    if total_dims == 0:
        raise PixelfolderError("bpd: no images")
    return total_bits / total_dims
