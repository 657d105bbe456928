"""pixelfolder: efficient pixel-synthesis image generation in pure PyTorch."""
from .checkpoint import save
from .errors import PixelfolderError
from .networks import load, load_all
from .registry import create, list_architectures, list_models

__version__ = "0.1.0"
__all__ = ["create", "load", "load_all", "save", "list_models", "list_architectures", "PixelfolderError", "__version__"]
