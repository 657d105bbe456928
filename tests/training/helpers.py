"""Small datasets and option builders for the training tests."""
import numpy as np
from PIL import Image

from pixelfolder.training.options import TrainOptions, resolve


def make_folder(path, n=16, size=32, seed=0):
    """n smooth random RGB images (PNG) in `path`."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        f = rng.uniform(1, 4, size=3)
        img = np.stack([np.sin(2 * np.pi * (f[c] * xx + rng.uniform() * yy) + rng.uniform(0, 6)) for c in range(3)], -1)
        Image.fromarray(((img + 1) * 127.5).astype(np.uint8)).save(path / f"img{i:03d}.png")
    return path


def options(data, run_dir, **kw):
    base = dict(model="pixelfolder", preset="pixelfolder-tiny", data=str(data), run_dir=str(run_dir),
                batch=8, kimg=0.024, snap_kimg=0.024, device="cpu", workers=0, grid_seeds=4)
    base.update(kw)
    return resolve(TrainOptions(**base))
