"""Reading prepared datasets (LMDB, zip, or a raw folder of images) as CHW tensors."""
from __future__ import annotations

import sys

import numpy as np
import torch

from ..errors import PixelfolderError
from .decode import DecodeError, decode_rgb
from .emoji import is_demo_dataset, stored_resolution
from .images import from_uint8, xflip
from .sources import open_source, require_images
from .transforms import center_crop

DTYPES = ("uint8", "float")
SPLITS = ("all", "train", "test")
TEST_EVERY = 10   # split="test" holds every 10th image (indices 9, 19, ...); split="train" the other 90 %


def split_indices(num_images: int, split: str) -> range | list[int]:
    """Source indices of a split: all, train (9 of every 10 images) or test (every 10th, held out)."""
    if split not in SPLITS:
        raise PixelfolderError(f"split must be one of {SPLITS}, not {split!r}")
    if split == "all":
        return range(num_images)
    test = split == "test"
    return [i for i in range(num_images) if (i % TEST_EVERY == TEST_EVERY - 1) == test]


class ImageDataset(torch.utils.data.Dataset):
    """Images of an LMDB (official or rosinality keys), a zip (dataset_tool layout or any zip of images) or a
    folder, detected from `path`.

    Items are (3, H, W) uint8 tensors (`dtype="uint8"`) or float32 in [-1, 1] (`dtype="float"`). With
    `resolution`, images of another size are center-cropped and resized (LANCZOS) on the fly. With `xflip`,
    the length doubles and item N + i is image i mirrored left-right (StyleGAN2-ADA's --mirror).
    `split`: "all", "train" or "test" (every 10th image held out, e.g. for bits/dim of likelihood models).
    Pickle-safe: zip and LMDB handles are opened lazily in each DataLoader worker.
    """

    def __init__(self, path, resolution: int | None = None, xflip: bool = False, dtype: str = "uint8",
                 split: str = "all"):
        if dtype not in DTYPES:
            raise PixelfolderError(f"dtype must be 'uint8' or 'float', not {dtype!r}")
        if resolution is not None and resolution < 1:
            raise PixelfolderError(f"resolution must be >= 1 (got {resolution})")
        self.source = require_images(open_source(path, prefer_size=resolution))
        self.path, self.xflip, self.dtype = self.source.path, bool(xflip), dtype
        _warn_skipped(self.source)
        self._resolution = resolution
        self.split = split
        self.indices = split_indices(len(self.source), split)
        self.num_images = len(self.indices)
        if self.num_images == 0:
            raise PixelfolderError(f"{self.path}: the {split!r} split is empty ({len(self.source)} images)")

    def __len__(self) -> int:
        return self.num_images * (2 if self.xflip else 1)

    @property
    def resolution(self) -> int:
        """The requested resolution, else the height of the first (readable) image."""
        return self._resolution or int(self.first_image().shape[0])

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the first readable image as stored, before any resizing."""
        h, w, _ = self.first_image(stored=True).shape
        return (w, h)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self.first_image().shape
        return (c, h, w)

    def first_image(self, stored: bool = False, tries: int = 64) -> np.ndarray:
        """The first readable image among the first `tries` (as stored, or resized); the first error if none."""
        first_error = None
        for index in range(min(self.num_images, tries)):
            try:
                return self.image(index, stored=stored)
            except PixelfolderError as e:
                first_error = first_error or e
        raise first_error

    def image(self, index: int, stored: bool = False) -> np.ndarray:
        """Image `index` (< num_images) as an (H, W, 3) uint8 array, resized if a resolution was asked (unless
        `stored`)."""
        index = self.indices[index]
        try:
            img = decode_rgb(self.source.read(index))
        except (DecodeError, OSError) as e:
            raise PixelfolderError(f"{self.path}: image {index} ({self.source.name(index)}) is unreadable: {e}") \
                from None
        r = self._resolution
        if r is not None and not stored and img.size != (r, r):
            img = center_crop(img, r)[0]
        return np.asarray(img)

    def __getitem__(self, index: int) -> torch.Tensor:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        flip = index >= self.num_images
        arr = self.image(index - self.num_images if flip else index)
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        x = xflip(x).contiguous() if flip else x
        return x if self.dtype == "uint8" else from_uint8(x)

    def __repr__(self) -> str:
        return (f"ImageDataset({str(self.path)!r}, {self.source.kind}, {self.num_images} images"
                f"{f', split={self.split}' if self.split != 'all' else ''}"
                f"{', xflip' if self.xflip else ''}{f', resolution={self._resolution}' if self._resolution else ''})")


def _warn_skipped(source) -> None:
    """One stderr line for the FIFOs, devices and sockets a folder holds under image names (never read)."""
    skipped = getattr(source, "skipped", ())
    if skipped:
        name, why = skipped[0]
        print(f"warning: {source.path}: skipped {len(skipped)} file(s) that are not regular files "
              f"(e.g. {name}: {why})", file=sys.stderr)


def open_dataset(spec, resolution: int | None = None, **kwargs) -> ImageDataset:
    """ImageDataset for a path, or for the demo set's name ("emoji"): the cached Twemoji set at resolution 32
    (default) or 64.

    (A folder called emoji is reached as "./emoji" or Path("emoji").)
    """
    if is_demo_dataset(spec):
        from .emoji import emoji_zip
        return ImageDataset(emoji_zip(resolution or 32), resolution=None, **kwargs)
    return ImageDataset(spec, resolution=resolution, **kwargs)


def open_reals(spec, model_resolution: int | None = None, split: str = "all") -> ImageDataset:
    """Real images to compare a model with: a dataset as stored, or the demo set at its stored size closest to
    the model's resolution."""
    if is_demo_dataset(spec):
        return open_dataset(spec, stored_resolution(model_resolution), split=split)
    return open_dataset(spec, split=split)
