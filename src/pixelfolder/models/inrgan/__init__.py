"""INR-GAN: the model (model.py) and its private factorized-multiplicative-modulation layers (fmm.py)."""
from .model import (BAND_BYTES, CACHE_MAX_ELEMENTS, INRGAN, UPSAMPLING, INRGANBil, INRGANBilConfig, INRGANBlock,
                    INRGANConfig, INRGANSynthesis, nearest_index, scaled_grid)

__all__ = [
    "BAND_BYTES", "CACHE_MAX_ELEMENTS", "INRGAN", "UPSAMPLING", "INRGANBil", "INRGANBilConfig", "INRGANBlock",
    "INRGANConfig", "INRGANSynthesis", "nearest_index", "scaled_grid",
]
