"""pixelfolder: efficient pixel-synthesis image generation in pure PyTorch.

The public names are imported on first use, so `import pixelfolder` (and the command line's start-up) does not
import torch until something needs it.
"""
from .lazy import lazy_getattr

__version__ = "0.1.0"
__all__ = ["create", "load", "load_all", "save", "list_models", "list_architectures", "PixelfolderError", "__version__"]

__getattr__ = lazy_getattr(__name__, {
    "create": "registry", "list_models": "registry", "list_architectures": "registry", "load": "networks",
    "load_all": "networks", "save": "checkpoint", "PixelfolderError": "errors"})
