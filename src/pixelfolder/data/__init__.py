"""Image I/O, dataset preparation (folders, zips, LMDBs -> LMDB or zip) and loading (imported on first use)."""
from ..lazy import lazy_getattr
from .prepare import PrepareConfig, PrepareResult, prepare      # no torch: `prepare` is the function, not the module

__all__ = ["ImageDataset", "InfiniteSampler", "PrepareConfig", "PrepareResult", "image_grid", "open_dataset",
           "open_reals", "prepare", "save_image", "to_uint8"]

__getattr__ = lazy_getattr(__name__, {
    "ImageDataset": "dataset", "open_dataset": "dataset", "open_reals": "dataset", "image_grid": "images",
    "save_image": "images", "to_uint8": "images", "InfiniteSampler": "sampler"})
