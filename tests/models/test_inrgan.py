"""INR-GAN / INR-GAN-bil: tiny presets, any-size rendering, chunked rendering, sizes and MAC counts."""
import pytest
import torch

import pixelfolder
from pixelfolder.errors import PixelfolderError
from pixelfolder.models import count_parameters
from pixelfolder.models.inrgan import INRGANConfig
from tests.helpers import assert_close, build_meta, code_path, zs

TINY = ["inrgan-tiny", "inrgan_bil-tiny"]

# ../shared/reference/inrgan_creps_keys.txt, "inr-gan 256 G": the sum of every shape except the unused
# resample_filter buffers (58 x 16 values) and the buffers log_basis, random_basis and mapping.w_avg.
EXACT_256 = 72_436_573
# ../shared/reference/inrgan_creps.md §1.4 (MACs per block, FlopCounterMode on the official code, 3 decimals)
# and §5 (total 14.94 G, mapping included).
BLOCK_GMACS_256 = {4: 0.094, 8: 0.554, 16: 0.554, 32: 0.554, 64: 2.541, 128: 4.975, 256: 5.669}
# §1.5: the extended (not official) 512 / 1024 configs: G params M, GMAC, const_embs params M.
EXTENDED = {512: (92.4, 22.0, 22.7), 1024: (161.6, 32.1, 89.8)}


@pytest.fixture(scope="module", params=TINY)
def G(request):
    torch.manual_seed(0)
    return pixelfolder.create(request.param).eval()


@torch.no_grad()
def test_forward_and_sample(G):
    img = G(zs(2))
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()
    assert (img[0] - img[1]).abs().max() > 1e-4
    a = G.sample([3, 5, 7], batch_size=2)
    b = G.sample([5], batch_size=1)
    assert a.shape == (3, 3, 32, 32)
    assert_close(a[1:2], b, "seed 5 alone vs in a batch")


@torch.no_grad()
def test_save_load_roundtrip(G, tmp_path):
    pixelfolder.save(G, tmp_path / "g.pt")
    H = pixelfolder.load(tmp_path / "g.pt")
    assert type(H) is type(G) and H.config == G.config
    assert_close(H(zs(2)), G(zs(2)), "reloaded")


@pytest.mark.parametrize("kw, side", [({"scale": 1.5}, 48), ({"scale": 0.5}, 16), ({"size": 100}, 100),
                                      ({"size": 7}, 7), ({"scale": 2}, 64)])
@torch.no_grad()
def test_any_size_fast_equals_reference(G, kw, side):
    with code_path(G, "reference"):
        ref = G(zs(2), **kw)
    img = G(zs(2), **kw)
    assert img.shape == (2, 3, side, side)
    assert_close(img, ref, f"{kw}")


@torch.no_grad()
def test_native_size_is_default(G):
    assert torch.equal(G(zs(2), size=32), G(zs(2)))
    assert torch.equal(G(zs(2), scale=1.0), G(zs(2)))


@pytest.mark.parametrize("kw", [{}, {"scale": 1.5}, {"size": 100}, {"scale": 3}])
@torch.no_grad()
def test_chunked_render_equals_unchunked(kw):
    torch.manual_seed(0)
    G = pixelfolder.create("inrgan-tiny").eval()
    full = G(zs(2), **kw)
    for rows in (1, 5):
        G.synthesis.band_rows = rows
        assert_close(G(zs(2), **kw), full, f"band of {rows} rows, {kw}")
    G.synthesis.band_rows = None


def test_render_bytes_is_chunked_for_nearest_only():
    with torch.device("meta"):
        near = pixelfolder.create("inrgan-256", compute_w_avg=False)
        bil = pixelfolder.create("inrgan_bil-256", compute_w_avg=False)
    out = 4 * 3 * 4096 * 4096
    # nearest: the output image plus a bounded band; bilinear: every activation of the 4096 px grid at once
    assert near.render_bytes(1, 4096) < 2 * out + 2 * near.synthesis.band_bytes
    assert bil.render_bytes(1, 4096) > 4 * 128 * 4096 * 4096
    assert near.render_bytes(1, 256) < near.render_bytes(4, 256)


def test_bad_arguments(G):
    for scale in (0, -1.0, float("nan")):
        with pytest.raises(PixelfolderError, match="scale"):
            G(zs(1), scale=scale)
    with pytest.raises(PixelfolderError, match="noise"):
        G(zs(1), noise=[torch.zeros(1, 1, 32, 32)])
    with pytest.raises(PixelfolderError, match="upsampling"):
        pixelfolder.create("inrgan-tiny", upsampling="bicubic")
    with pytest.raises(PixelfolderError, match="input_resolution"):
        pixelfolder.create("inrgan-tiny", input_resolution=32)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    G = pixelfolder.create("inrgan_bil-tiny")
    G(zs(2)).square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("name", ["inrgan-256", "inrgan_bil-256"])
def test_official_parameter_count_256(name):
    G = build_meta(name)
    assert count_parameters(G) == EXACT_256
    assert G.n_latent == 16
    assert G.config.upsampling == ("bilinear" if "bil" in name else "nearest")


def test_official_macs_256():
    G = build_meta("inrgan-256")
    blocks = G.synthesis.official_block_macs()
    assert {b.res: round(m / 1e9, 3) for b, m in zip(G.synthesis.blocks, blocks)} == BLOCK_GMACS_256
    assert G.official_macs() == sum(blocks) + 2 * 512 * 512      # + the two 512x512 mapping layers
    assert round(G.official_macs() / 1e9, 2) == 14.94
    # at 2x the blocks above 32 px run on 4x the pixels; the 32 px base does not change
    base = sum(blocks[:4])
    assert sum(G.synthesis.official_block_macs(512)) - base == pytest.approx(4 * (sum(blocks) - base), rel=0.01)


@pytest.mark.parametrize("res", sorted(EXTENDED))
def test_extended_presets(res):
    G = build_meta(f"inrgan-{res}")
    params, gmacs, const = EXTENDED[res]
    assert round(count_parameters(G) / 1e6, 1) == params
    assert round(G.official_macs() / 1e9, 1) == gmacs
    consts = sum(b.coords.const_embs.numel() for b in G.synthesis.blocks if b.coords is not None)
    assert round(consts / 1e6, 1) == const
    assert "not official" in pixelfolder.registry.preset(f"inrgan-{res}").description


def test_config_defaults_are_the_official_256():
    c = INRGANConfig()
    assert (c.mapping_layers, c.input_resolution, c.fmm_rank, c.upsampling) == (2, 32, 10, "nearest")
    assert dict(c.extra_convs) == {128: 1, 256: 1}


@torch.no_grad()
def test_no_stale_features_after_edits_through_data():
    torch.manual_seed(0)
    G = pixelfolder.create("inrgan-tiny").eval()
    H = pixelfolder.create("inrgan-tiny").eval()
    G(zs(2))                                    # fills the Fourier cache
    for block in G.synthesis.blocks:
        if block.coords is not None:
            block.coords.const_embs.data.mul_(0.5)
            if block.coords.random_basis is not None:
                block.coords.random_basis.data.mul_(2.0)
    H.load_state_dict(G.state_dict())
    with code_path(H, "reference"):
        assert_close(G(zs(2)), H(zs(2)), "after .data edits")
