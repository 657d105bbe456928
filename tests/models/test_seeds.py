"""Seeds: NVlabs-family networks draw z as gen_images.py does (np.random.RandomState(seed).randn(1, z_dim)), the
others from a per-seed torch.Generator; the convention is recorded in the checkpoint and can be overridden."""
import numpy as np
import pytest
import torch
from PIL import Image

import pixelfolder
from pixelfolder.cli.main import main
from pixelfolder.errors import PixelfolderError
from tests.helpers import FIXTURES


def nvlabs_z(seed: int, z_dim: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


@pytest.mark.parametrize("preset, rng", [("inrgan-tiny", "numpy"), ("inrgan_bil-tiny", "numpy"),
                                         ("creps-tiny", "numpy"), ("pixelfolder-tiny", "torch"),
                                         ("cips_skip-tiny", "torch"), ("stylegan2-tiny", "torch")])
def test_default_convention_per_family(preset, rng):
    G = pixelfolder.load(preset)
    assert G.seed_rng == rng
    with torch.no_grad():
        got = G.sample([2, 5], batch_size=2)
        z = torch.cat([nvlabs_z(2, G.z_dim), nvlabs_z(5, G.z_dim)]) if rng == "numpy" else torch.cat(
            [torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(s)) for s in (2, 5)])
        want = G(z)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_converted_nvlabs_stylegan2_uses_numpy_seeds_and_keeps_it_through_save(tmp_path):
    G = pixelfolder.load(FIXTURES / "sg2ada_tiny.pkl")
    assert G.arch == "stylegan2" and G.seed_rng == "numpy"
    for path in (tmp_path / "g.pt", tmp_path / "g.safetensors"):
        pixelfolder.save(G, path)
        H = pixelfolder.load(path)
        assert H.seed_rng == "numpy"
        if path.suffix == ".pt":
            assert torch.load(path, weights_only=True)["seed_rng"] == "numpy"
    with torch.no_grad():
        want = G(nvlabs_z(7, G.z_dim))
        assert torch.allclose(H.sample([7]), want, atol=1e-5 * want.abs().max().item())


def test_seed_rng_override():
    G = pixelfolder.load("creps-tiny")
    with torch.no_grad():
        numpy_img = G.sample([3])
        torch_img = G.sample([3], seed_rng="torch")
        want = G(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(numpy_img, torch_img)
    assert torch.allclose(torch_img, want, atol=1e-5 * want.abs().max().item())
    with pytest.raises(PixelfolderError, match="seed_rng must be one of"):
        G.sample([3], seed_rng="python")
    with pytest.raises(PixelfolderError, match=r"\[0, 2\*\*32\)"):
        G.sample([2 ** 32])


def test_generate_seed_rng_flag(tmp_path, capsys):
    for rng in ("numpy", "torch"):
        assert main(["generate", "--network", "creps-tiny", "--seeds", "4", "--outdir", str(tmp_path / rng),
                     "--seed-rng", rng, "--device", "cpu"]) == 0
    G = pixelfolder.load("creps-tiny")
    with torch.no_grad():
        want = pixelfolder.data.to_uint8(G.sample([4], seed_rng="torch"))[0].numpy()
    got = np.asarray(Image.open(tmp_path / "torch" / "seed0004.png"))
    assert np.abs(got.astype(int) - want).max() <= 1
    assert not np.array_equal(got, np.asarray(Image.open(tmp_path / "numpy" / "seed0004.png")))
    assert main(["generate", "--network", "creps-tiny", "--seeds", f"{2 ** 32}", "--outdir", str(tmp_path / "x")]) == 2
    assert "2**32" in capsys.readouterr().err


OFFICIAL = ["official_inrgan256_small", "official_inrgan_bil256_small", "official_creps256_small",
            "official_sg2ada256_small"]


@pytest.mark.parametrize("name", OFFICIAL)
def test_seed_n_is_the_official_seed_n_image(name):
    """Images rendered by the official code (gen_images.py's z for each seed, noise_mode const) for seeds 0, 2, 7."""
    expected = torch.load(FIXTURES / f"{name}_expected.pt", weights_only=True)
    G = pixelfolder.load(FIXTURES / f"{name}.pkl")
    with torch.no_grad():
        got = G.sample(list(expected["seeds"]), noise_mode="const")
    want = expected["images"]
    if "pixel_select" in expected:
        idx = expected["pixel_select"]
        got = got.index_select(2, idx).index_select(3, idx)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5 * expected["max_abs"]
