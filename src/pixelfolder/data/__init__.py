"""Image I/O, dataset preparation (folders, zips, LMDBs -> LMDB or zip) and loading."""
from .dataset import ImageDataset, open_dataset
from .images import image_grid, save_image, to_uint8
from .prepare import PrepareConfig, PrepareResult, prepare
from .sampler import InfiniteSampler

__all__ = ["ImageDataset", "InfiniteSampler", "PrepareConfig", "PrepareResult", "image_grid", "open_dataset",
           "prepare", "save_image", "to_uint8"]
