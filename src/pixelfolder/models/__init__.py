"""Every architecture, registered by name on import."""
from .base import Generator, GeneratorConfig, count_parameters
from .cips import CIPSConfig, CIPSRes, CIPSSkip
from .creps import CREPS, CREPSConfig
from .discriminator import Discriminator, DiscriminatorConfig
from .inrgan import INRGAN, INRGANBil, INRGANConfig
from .pixelfolder import PixelFolder, PixelFolderConfig
from .pixelpyramids import PixelPyramids, PixelPyramidsConfig
from .stylegan2 import StyleGAN2, StyleGAN2Config

__all__ = ["Generator", "GeneratorConfig", "count_parameters", "CREPS", "CREPSConfig", "INRGAN", "INRGANBil",
           "INRGANConfig", "CIPSConfig", "CIPSRes", "CIPSSkip",
           "Discriminator", "DiscriminatorConfig", "PixelFolder", "PixelFolderConfig",
           "PixelPyramids", "PixelPyramidsConfig", "StyleGAN2",
           "StyleGAN2Config"]
