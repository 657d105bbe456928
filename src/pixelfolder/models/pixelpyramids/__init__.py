"""PixelPyramids: the model (model.py) and its private blocks (pyramid, dmol, pixelcnnpp, unet_lstm)."""
from .model import (BN_PROTOCOLS, OFFICIAL_OFFSET, OFFICIAL_TEMPERATURE, PRECISIONS, SAMPLE_MODES, PixelPyramids,
                    PixelPyramidsConfig, check_config, official_merge, official_unet_depths, unet_depths)

__all__ = [
    "BN_PROTOCOLS", "OFFICIAL_OFFSET", "OFFICIAL_TEMPERATURE", "PRECISIONS", "SAMPLE_MODES", "PixelPyramids",
    "PixelPyramidsConfig", "check_config", "official_merge", "official_unet_depths", "unet_depths",
]
