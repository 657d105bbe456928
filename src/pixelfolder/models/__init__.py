"""Every architecture: each module or package here registers itself (registry.register_model) on import, and its
model and config classes are exported from here by their names (e.g. `pixelfolder.models.CREPS`)."""
import importlib
import pkgutil

from .. import registry
from ..utils import count_parameters
from .base import Generator, GeneratorConfig

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

_CLASSES = registry.registered_classes()
globals().update(_CLASSES)

__all__ = ["Generator", "GeneratorConfig", "count_parameters", *sorted(_CLASSES)]
