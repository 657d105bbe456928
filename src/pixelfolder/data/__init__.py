"""Image I/O now; dataset preparation and loading come with the datasets issue."""
from .images import image_grid, save_image, to_uint8

__all__ = ["image_grid", "save_image", "to_uint8"]
