"""Crop + resize to the training size with PIL LANCZOS (antialiased when downscaling, as dataset_tool.py).

Each transform returns (image, upscaled): upscaled is True when the cropped region was smaller than the
output, i.e. the image had to be enlarged.
"""
from __future__ import annotations

from PIL import Image

LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
TRANSFORMS = ("center-crop", "resize-short", "center-crop-wide")
MAX_ASPECT = 16       # resize-short of a 1x20000 strip would make a 256 x 5,120,000 intermediate image


def aspect_problem(size: tuple[int, int], name: str) -> str | None:
    """Why transform `name` refuses an image of `size` (w, h), or None."""
    w, h = size
    if name != "resize-short" or max(w, h) <= MAX_ASPECT * min(w, h):
        return None
    return (f"aspect ratio {w}x{h} is beyond {MAX_ASPECT}:1, the limit of --transform resize-short "
            "(center-crop takes the central square of any shape)")


def _crop_resize(img: Image.Image, box: tuple, out: tuple) -> Image.Image:
    if box != (0, 0) + img.size:
        img = img.crop(box)
    return img if img.size == out else img.resize(out, LANCZOS)


def center_crop(img: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """The central square of side min(w, h), resized to size x size."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return _crop_resize(img, (left, top, left + s, top + s), (size, size)), s < size


def resize_short(img: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """Short side to `size` (long side int(size * long / short), as torchvision's Resize), then center-crop."""
    problem = aspect_problem(img.size, "resize-short")
    if problem:
        raise ValueError(problem)
    w, h = img.size
    if w <= h:
        new = (size, max(size, int(size * h / w)))
    else:
        new = (max(size, int(size * w / h)), size)
    resized = img if img.size == new else img.resize(new, LANCZOS)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return _crop_resize(resized, (left, top, left + size, top + size), (size, size)), min(w, h) < size


def center_crop_wide(img: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """The central 2:1 region, resized to size x size//2 and pasted centred on a black size x size canvas."""
    w, h = img.size
    cw, ch = (2 * h, h) if w >= 2 * h else (w, max(1, w // 2))
    left, top = (w - cw) // 2, (h - ch) // 2
    band_h = size // 2
    band = _crop_resize(img, (left, top, left + cw, top + ch), (size, band_h))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(band, (0, (size - band_h) // 2))
    return canvas, cw < size


_BY_NAME = {"center-crop": center_crop, "resize-short": resize_short, "center-crop-wide": center_crop_wide}


def apply_transform(img: Image.Image, name: str, size: int) -> tuple[Image.Image, bool]:
    return _BY_NAME[name](img, size)
