"""Package attributes imported on first use, so importing a package does not import torch before it is needed."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, public: dict[str, str]):
    """A module `__getattr__`: public names from their submodules (name -> submodule), then submodules."""
    def __getattr__(name: str):
        if name in public:
            return getattr(importlib.import_module(f".{public[name]}", package), name)
        try:
            return importlib.import_module(f".{name}", package)
        except ModuleNotFoundError as e:
            if e.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    return __getattr__
