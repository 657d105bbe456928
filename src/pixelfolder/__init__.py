"""pixelfolder: efficient pixel-synthesis image generation in pure PyTorch."""
from .checkpoint import load, save
from .errors import PixelfolderError
from .registry import create, list_architectures, list_models

__version__ = "0.1.0"
__all__ = ["create", "load", "save", "list_models", "list_architectures", "PixelfolderError", "__version__"]
