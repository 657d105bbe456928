"""uint8 <-> NCHW float images (nominally [-1, 1]) and PNG files; the float -> uint8 side is the only place we clamp."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import PixelfolderError


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any layout) -> float32 in [-1, 1]: k -> k / 127.5 - 1 (the one float conversion of reals)."""
    return images.float() / 127.5 - 1


def xflip(images: torch.Tensor) -> torch.Tensor:
    """Mirror CHW or NCHW images left-right (the one x-flip: dataset --mirror copies and training flips)."""
    return images.flip(-1)


def check_finite(images: torch.Tensor, seeds=None, error: type = PixelfolderError) -> torch.Tensor:
    """`images`, unless the network produced NaN or infinite values (damaged weights): one line naming the first
    seeds affected when `seeds` (one per image) are given."""
    ok = torch.isfinite(images).flatten(1).all(1)
    if bool(ok.all()):
        return images
    which = "" if seeds is None else f" for seed(s) {[s for s, good in zip(seeds, ok.tolist()) if not good][:5]}"
    raise error(f"the network produced NaN or infinite values{which}: its weights are damaged (check the checkpoint)")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8, clamped and rounded."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1)


def image_grid(images: torch.Tensor, cols: int | None = None, pad: int = 0) -> torch.Tensor:
    """Tile (N, C, H, W) images into one (1, C, rows*H, cols*W) image, row-major; empty cells are white."""
    n, c, h, w = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = images.new_ones(c, rows * (h + pad) - pad, cols * (w + pad) - pad)
    for k in range(n):
        r, q = divmod(k, cols)
        grid[:, r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = images[k]
    return grid.unsqueeze(0)


def save_image(image: torch.Tensor, path) -> None:
    """Write one (C, H, W) or (1, C, H, W) float image in [-1, 1] as PNG (RGB or grayscale)."""
    if image.ndim == 3:
        image = image.unsqueeze(0)
    arr = to_uint8(image)[0].numpy()
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)


def uint8_grid(images: list[np.ndarray], cols: int | None = None) -> np.ndarray:
    """Tile (H, W, C) uint8 images into one, row-major; empty cells are white."""
    h, w, c = images[0].shape
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * h, cols * w, c), 255, dtype=np.uint8)
    for k, img in enumerate(images):
        r, q = divmod(k, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return grid


def save_uint8(array: np.ndarray, path) -> None:
    """Write an (H, W, C) uint8 array as an image file (the format from the suffix)."""
    if array.shape[-1] == 1:
        array = array[..., 0]
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def write_smooth_folder(path, n: int = 16, size: int = 32, seed: int = 0):
    """n smooth random RGB PNGs of size x size px in `path` (tests, tools/gpu_check.py); returns the path."""
    from pathlib import Path

    import numpy as np
    from PIL import Image
    path = Path(path)
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        f = rng.uniform(1, 4, size=3)
        img = np.stack([np.sin(2 * np.pi * (f[c] * xx + rng.uniform() * yy) + rng.uniform(0, 6)) for c in range(3)], -1)
        Image.fromarray(((img + 1) * 127.5).astype(np.uint8)).save(path / f"img{i:03d}.png")
    return path
