"""Plain-PyTorch building blocks shared by two or more architectures (no custom CUDA/C++ ops).

Blocks used by one architecture only live with it (models/<arch>/), e.g. models/pixelpyramids/dmol.py.
Every model shares one derived-tensor cache (cache.py: DerivedCache, release_cached) and one reference/fast
switch (switch.py: `with reference(model):`, `with switch(model, impl="fused"):`).
"""
from .cache import DerivedCache, caching_allowed, release_cached
from .coords import LFF, coord_grid, fold, unfold
from .equalized import ConvLayer, EqualLinear, bias_lrelu
from .fir import blur, fir_kernel, upfirdn2d_reference, upsample2x
from .mapping import MappingNetwork, mix_ws, pixel_norm, truncate
from .modconv import IMPLS, NOISE_MODES, StyledConv, ToRGB, deterministic_noise, modulated_conv2d
from .switch import SWITCHES, reference, switch

__all__ = [
    "DerivedCache", "caching_allowed", "release_cached", "LFF", "coord_grid", "fold", "unfold", "ConvLayer",
    "EqualLinear", "bias_lrelu", "blur", "fir_kernel", "upfirdn2d_reference", "upsample2x", "MappingNetwork",
    "mix_ws", "pixel_norm", "truncate", "IMPLS", "NOISE_MODES", "StyledConv", "ToRGB", "deterministic_noise",
    "modulated_conv2d", "SWITCHES", "reference", "switch",
]
