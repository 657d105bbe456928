"""CREPS: tiny-preset behaviour, any-size rendering, row-chunked head, parameter and MAC counts."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import pixelfolder
from pixelfolder.errors import PixelfolderError
from pixelfolder.models.creps import lines as lines_mod
from pixelfolder.models.creps.lines import line_coords
from pixelfolder.models import count_parameters
from pixelfolder.models.creps import CREPS, HEAD_CHUNK_BYTES, CREPSConfig
from tests.helpers import assert_close, build_meta, zs

# ../shared/reference/inrgan_creps_keys.txt, section "creps 256 (scale 1) G": 184 tensors, 30,535,945 values;
# minus its three buffers synthesis.b4.input.freqs [1, 4096], synthesis.b4.input.coords [1, 256, 2, 1] and
# mapping.w_avg [512] (4096 + 512 + 512) = 30,530,825 parameters (reference §5: "30.53 M (2.10 / 28.43)").
OFFICIAL_PARAMS_256 = 30_530_825
MAPPING_PARAMS = 8 * (512 * 512 + 512)          # reference §5: mapping 2.10 M
PARAMS_512_M = 30.87                            # reference §5: "CREPS 512 native (params only) 30.87 M"
# Reference §2.4 / §5 (FlopCounterMode on the official code): 53.69 GMAC per image at 256, 128.04 at --scale 2.
MACS_256_G, MACS_SCALE2_G = 53.69, 128.04


def make_tiny():
    """The tiny preset with every bias moved off its init, so that bias handling is exercised."""
    torch.manual_seed(0)
    G = pixelfolder.create("creps-tiny")
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") and not name.startswith("mapping"):
                p.add_(0.2 * torch.randn_like(p))
    return G.eval()


@pytest.fixture(scope="module")
def G():
    return make_tiny()


# ------------------------------------------------------------------------------ straightforward formulation
def _ref_layer(layer, x, w, clamp):
    """The official modulated_fc + bias_act on the official layout (B, C, n, 2r) or (B, C, H, W)."""
    styles = layer.affine(w)
    if not layer.demodulate:
        styles = styles / math.sqrt(layer.weight.shape[1])
    wt = layer.weight[None] * styles[:, None]
    if layer.demodulate:
        wt = wt * torch.rsqrt(wt.square().sum(2, keepdim=True) + 1e-8)
    x = torch.einsum("nihw,noi->nohw", x, wt) + layer.bias.view(1, -1, 1, 1)
    if layer.demodulate:
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return x.clamp(-clamp, clamp)


def reference_forward(G, ws, n):
    """The official op sequence written plainly: einsums on [B, C, n, 2r], F = A @ B^T, MLPs on [pixels, C]."""
    s, c = G.synthesis, G.config
    b, ch, r, cb = ws.shape[0], s.input.channels, c.rank, c.biline_channels
    x = line_coords(n).reshape(1, -1, 1, 1).repeat(b, 1, 2, 1) @ s.input.freqs.reshape(1, -1)
    x = x.reshape(b, n, 2, ch // 2, r).permute(0, 3, 1, 2, 4) * (math.pi * 2)
    x = x.reshape(b, ch // 2, n, 2 * r)
    x = torch.sin(torch.cat([x, x + math.pi / 2], dim=1))
    x = x * (s.input.weight.view(1, ch, 1, 2 * r) * s.input.affine(ws[:, 0]).view(b, ch, 1, 2 * r)) / math.sqrt(ch)
    x = _ref_layer(s.lines[0].fc1, x, ws[:, 1], c.fc_clamp)
    biline = feature = None
    for i, blk in enumerate(s.lines[1:], start=1):
        x = _ref_layer(blk.fc0, x, ws[:, 2 * i - 1], c.fc_clamp)
        x = _ref_layer(blk.fc1, x, ws[:, 2 * i], c.fc_clamp)
        y = _ref_layer(blk.tores, x, ws[:, 2 * i + 1], c.fc_clamp)
        biline = y if biline is None else biline + y
        a, bl = (biline * math.sqrt(0.5)).chunk(2, dim=-1)
        f = (a @ bl.transpose(-2, -1)).permute(0, 2, 3, 1).reshape(-1, cb)
        feature = f if feature is None else s.decoders[i - 1](feature) + f
    feature = s.decoder_last(feature)
    img = s.decoder_img(feature).reshape(b, n, n, 3).permute(0, 3, 1, 2)
    x = feature.reshape(b, n, n, cb).permute(0, 3, 1, 2)
    for blk in s.head:
        x = _ref_layer(blk.fc0, x, ws[:, -1], c.fc_clamp)
        x = _ref_layer(blk.fc1, x, ws[:, -1], c.fc_clamp)
        img = img + _ref_layer(blk.torgb, x, ws[:, -1], c.fc_clamp)
    return img


@pytest.mark.parametrize("n", [32, 24, 57])
def test_fast_path_equals_reference_formulation(G, n):
    ws = G.mapping(zs(2, seed=n))
    with torch.no_grad():
        assert_close(G.synthesis(ws, size=n), reference_forward(G, ws, n), f"size {n}")


# ------------------------------------------------------------------------------ behaviour of the tiny preset
@torch.no_grad()
def test_forward_and_sample(G):
    img = G(zs(2))
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and (img[0] - img[1]).abs().max() > 1e-4
    a = G.sample([0, 1, 2], batch_size=1)
    b = G.sample([0, 1, 2], batch_size=3)
    assert_close(b, a, "sample batching")
    out, stages = G(zs(2), return_stages=True)
    assert torch.equal(stages[-1], out)
    assert G.synthesis.noise_shapes(32) == []
    with pytest.raises(PixelfolderError):
        G(zs(1), noise=[torch.zeros(1, 1, 32, 32)])


@torch.no_grad()
def test_scale_and_size_shapes(G):
    assert not G.native_size_only
    for scale, side in ((2, 64), (1.5, 48), (0.5, 16), (0.3, 9), (1, 32)):
        assert G(zs(1), scale=scale).shape == (1, 3, side, side), scale
    assert G(zs(2), size=40).shape == (2, 3, 40, 40)
    assert_close(G(zs(2), scale=1.25), G(zs(2), size=40), "scale 1.25 = size 40")
    assert G.sample([3], size=20).shape == (1, 3, 20, 20)


@pytest.mark.parametrize("kwargs", [dict(scale=0), dict(scale=-1.0), dict(scale=float("nan")), dict(scale=float("inf")),
                                    dict(scale=0.01), dict(size=0), dict(size=40, scale=1.0)])
def test_bad_scale_or_size(G, kwargs):
    with pytest.raises(PixelfolderError):
        G(zs(1), **kwargs)


def test_absurd_size_is_refused_with_memory_needed(G):
    with pytest.raises(PixelfolderError, match="would need about"):
        G(zs(1), scale=1e5)
    with pytest.raises(PixelfolderError, match="would need about"):
        G(zs(1), size=10 ** 7)


def test_render_bytes_estimate():
    G = build_meta("creps-256")
    small, big = G.render_bytes(1, 2048), G.render_bytes(1, 4096)
    assert 4 * 3 * 4096 ** 2 < big < 4 * 64 * 4096 ** 2            # far below full-resolution activations
    assert G.render_bytes(2, 4096) > big > small > G.render_bytes(1, 256)
    line_peak = 4 * 3 * 4096 * 16 * 1024                           # input, output, product of a 1024-wide FC
    assert big > line_peak


@torch.no_grad()
def test_chunked_head_equals_unchunked(G):
    ws = G.mapping(zs(2, seed=5))
    whole = G.synthesis(ws, size=40, chunk_rows=40)
    for rows in (1, 3, 16):
        assert_close(G.synthesis(ws, size=40, chunk_rows=rows), whole, f"{rows} rows per chunk")
    s = G.synthesis
    try:
        s.chunk_bytes = 1            # the budget path: one row at a time
        assert s.rows_per_chunk(40) == 1
        assert_close(G.synthesis(ws, size=40), whole, "budget of 1 byte")
    finally:
        s.chunk_bytes = HEAD_CHUNK_BYTES


@torch.no_grad()
def test_head_never_holds_full_resolution_activations(G, monkeypatch):
    """With a budget of a few rows, every per-pixel activation is one sample's band of rows."""
    seen = []
    original = lines_mod.activate

    def spy(x, lrelu, clamp):
        if x.ndim == 2:            # the head (C, pixels); the line part is (B, P, C)
            seen.append(x.shape[1])
        return original(x, lrelu, clamp)

    monkeypatch.setattr(lines_mod, "activate", spy)
    s, n = G.synthesis, 64
    s.chunk_bytes = 4 * s.head_bytes_per_pixel() * n
    try:
        G(zs(2), size=n)
    finally:
        s.chunk_bytes = HEAD_CHUNK_BYTES
    assert seen and max(seen) == 4 * n


def test_save_load_round_trip(G, tmp_path):
    pixelfolder.save(G, tmp_path / "g.pt", metadata={"note": "creps"})
    loaded = pixelfolder.load(tmp_path / "g.pt")
    assert type(loaded) is CREPS and loaded.config == G.config and loaded.metadata == {"note": "creps"}
    assert torch.equal(loaded.synthesis.input.freqs, G.synthesis.input.freqs)
    with torch.no_grad():
        assert torch.equal(loaded(zs(2), scale=1.5), G(zs(2), scale=1.5))


def test_dead_official_parameters_get_no_gradient():
    """b4's tores and decoder_8 exist (as officially) but never run: exactly they receive no gradient."""
    G = make_tiny().train()
    G(zs(2)).square().mean().backward()
    no_grad = sorted(n for n, p in G.named_parameters() if p.grad is None)
    dead = sorted(n for n, _ in G.named_parameters()
                  if n.startswith(("synthesis.lines.0.tores.", "synthesis.decoders.0.")))
    assert no_grad == dead and dead


# ------------------------------------------------------------------------------ counts (meta device)
def test_param_counts():
    G = build_meta("creps-256")
    assert next(G.parameters()).device.type == "meta"
    assert count_parameters(G) == OFFICIAL_PARAMS_256
    assert count_parameters(G.mapping) == MAPPING_PARAMS
    assert round(count_parameters(G.synthesis) / 1e6, 2) == 28.43
    assert G.n_latent == 15 and G.synthesis.input.freqs.shape == (512, 8)
    G512 = build_meta("creps-512")
    assert round(count_parameters(G512) / 1e6, 2) == PARAMS_512_M and G512.n_latent == 17
    assert build_meta("creps-1024").n_latent == 19


def test_config_defaults_are_the_official_creps():
    c = CREPSConfig()
    assert (c.channel_base, c.channel_max, c.mapping_layers, c.biline_channels, c.rank) == (65536, 1024, 8, 32, 8)
    assert (c.fc_clamp, c.decoder_hidden, c.head_channels) == (256.0, (64, 128, 64), (128, 64))


def test_official_macs_against_reference_numbers():
    G = build_meta("creps-256")
    assert round(G.official_macs() / 1e9, 2) == MACS_256_G
    assert round(G.official_macs(512) / 1e9, 2) == MACS_SCALE2_G


@pytest.mark.parametrize("n", [32, 48])
def test_official_macs_equal_flop_counter_of_the_official_op_sequence(G, n):
    z = zs(2, seed=1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        reference_forward(G, G.mapping(z), n)
    assert counter.get_total_flops() // 2 // 2 == G.official_macs(n)
