"""Plain-PyTorch building blocks shared by every architecture (no custom CUDA/C++ ops)."""
from .coords import LFF, coord_grid, fold, unfold
from .equalized import ConvLayer, EqualLinear, bias_lrelu
from .fir import blur, fir_kernel, upfirdn2d_reference, upsample2x
from .mapping import MappingNetwork, mix_ws, pixel_norm, truncate
from .modconv import (NOISE_MODES, StyledConv, ToRGB, deterministic_noise, modconv_impl, modulated_conv2d,
                      set_modconv_impl)
from .stddev import minibatch_stddev

__all__ = [
    "LFF", "coord_grid", "fold", "unfold", "ConvLayer", "EqualLinear", "bias_lrelu", "blur", "fir_kernel",
    "upfirdn2d_reference", "upsample2x", "MappingNetwork", "mix_ws", "pixel_norm", "truncate", "NOISE_MODES", "StyledConv", "ToRGB",
    "deterministic_noise", "modconv_impl", "modulated_conv2d", "set_modconv_impl", "minibatch_stddev",
]
