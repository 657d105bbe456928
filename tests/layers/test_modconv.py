"""Modulated convolution: fused == nonfused == a per-sample loop; StyledConv noise modes."""
import pytest
import torch
import torch.nn.functional as F

from pixelfolder.layers import StyledConv, ToRGB, fir_kernel, modulated_conv2d, switch, upfirdn2d_reference
from tests.helpers import assert_close


def modconv_loop(x, weight, styles, demodulate, up, padding):
    """One sample at a time, straight from the StyleGAN2 definition (float64)."""
    x, weight, styles = x.double(), weight.double(), styles.double()
    outs = []
    for b in range(x.shape[0]):
        w_b = weight * styles[b][None, :, None, None]
        if demodulate:
            w_b = w_b * torch.rsqrt(w_b.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        if up:
            outs.append(F.conv_transpose2d(x[b:b + 1], w_b.transpose(0, 1), stride=2))
        else:
            outs.append(F.conv2d(x[b:b + 1], w_b, padding=padding))
    return torch.cat(outs).float()


CASES = [(k, demod, up) for k in (3, 1) for demod in (True, False) for up in (False, True)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("k,demodulate,up", CASES, ids=[f"k{k}-demod{d}-up{u}" for k, d, u in CASES])
def test_fused_nonfused_and_loop_agree(batch, k, demodulate, up):
    g = torch.Generator().manual_seed(100 * k + 10 * batch + 2 * demodulate + up)
    cin, cout = 5, 4
    x = torch.randn(batch, cin, 6, 7, generator=g)
    weight = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
    styles = torch.randn(batch, cin, generator=g) + 1.0
    padding = k // 2
    ref = modconv_loop(x, weight, styles, demodulate, up, padding)
    outs = {}
    for impl in ("fused", "nonfused"):
        outs[impl] = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, padding=padding, impl=impl)
        assert_close(outs[impl], ref, f"{impl} vs loop")
    assert_close(outs["fused"], outs["nonfused"], "fused vs nonfused")
    if up:
        assert ref.shape[2:] == (2 * 6 + k - 2, 2 * 7 + k - 2)
    else:
        assert ref.shape[2:] == (6, 7)


def test_demodulation_changes_output():
    """Guard against a reference that silently ignores `demodulate` (the two must differ)."""
    g = torch.Generator().manual_seed(7)
    x, weight, styles = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 3, 3, generator=g), \
        torch.randn(2, 3, generator=g) * 3
    a = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)
    b = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)
    assert (a - b).abs().max() > 1e-3


def test_modconv_impl_restores_previous_and_rejects_unknown():
    mc = StyledConv(2, 2, 3, 4, resolution=4)
    before = mc.impl
    with switch(mc, impl="fused"):
        assert mc.impl == "fused"
        with switch(mc, impl="nonfused"):
            assert mc.impl == "nonfused"
        assert mc.impl == "fused"
    assert mc.impl == before
    with pytest.raises(ValueError):
        with switch(mc, impl="bogus"):
            pass
    assert mc.impl == before


@pytest.mark.parametrize("up", [False, True])
def test_styledconv_and_torgb_impls_agree(up):
    torch.manual_seed(0)
    conv = StyledConv(4, 6, 3, 8, resolution=8 if up else 4, up=up)
    torgb = ToRGB(6, 8)
    with torch.no_grad():
        conv.noise_strength.fill_(0.3)
        conv.bias.normal_()
    x, w = torch.randn(3, 4, 4, 4), torch.randn(3, 8)
    skip = torch.randn(3, 3, conv.resolution // 2, conv.resolution // 2)
    res = {}
    for impl in ("fused", "nonfused"):
        with switch(conv, torgb, impl=impl):
            y = conv(x, w)
            res[impl] = (y, torgb(y, w, skip))
    assert res["fused"][0].shape == (3, 6, conv.resolution, conv.resolution)
    assert_close(res["fused"][0], res["nonfused"][0], "StyledConv")
    assert_close(res["fused"][1], res["nonfused"][1], "ToRGB")


def make_styled(seed=0):
    torch.manual_seed(seed)
    conv = StyledConv(3, 4, 3, 8, resolution=8)
    with torch.no_grad():
        conv.noise_strength.fill_(0.5)
    g = torch.Generator().manual_seed(seed + 1)
    return conv, torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 8, generator=g)


def test_noise_none_differs_from_const():
    conv, x, w = make_styled()
    with torch.no_grad():
        none = conv(x, w, noise_mode="none")
        const = conv(x, w, noise_mode="const")
    assert (none - const).abs().max() > 1e-3


def test_noise_none_equals_const_when_strength_zero():
    conv, x, w = make_styled()
    with torch.no_grad():
        conv.noise_strength.zero_()
        assert torch.equal(conv(x, w, noise_mode="none"), conv(x, w, noise_mode="const"))


def test_noise_const_deterministic_and_random_varies():
    conv, x, w = make_styled()
    with torch.no_grad():
        c1, c2 = conv(x, w, noise_mode="const"), conv(x, w, noise_mode="const")
        r1, r2 = conv(x, w, noise_mode="random"), conv(x, w, noise_mode="random")
    assert torch.equal(c1, c2)
    assert (r1 - r2).abs().max() > 1e-3
    assert (r1 - c1).abs().max() > 1e-3


def test_noise_const_same_for_every_sample_and_fresh_layer():
    """'const' noise is a fixed per-layer map: a second layer built with the same seed uses the same one."""
    conv, x, w = make_styled()
    conv2, _, _ = make_styled()
    with torch.no_grad():
        assert torch.equal(conv(x, w, noise_mode="const"), conv2(x, w, noise_mode="const"))


@pytest.mark.parametrize("impl", ["fused", "nonfused"])
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_styledconv_equals_reference(impl, up, batch):
    """conv (per-sample loop) -> [blur] -> + noise * strength -> + bias -> leaky_relu(0.2) * sqrt(2)."""
    torch.manual_seed(4)
    res = 8 if up else 6
    conv = StyledConv(3, 4, 3, 8, resolution=res, up=up)
    with torch.no_grad():
        conv.noise_strength.fill_(0.5)
        conv.bias.normal_()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 3, res // 2 if up else res, res // 2 if up else res, generator=g)
    w = torch.randn(batch, 8, generator=g)
    noise = torch.randn(batch, 1, res, res, generator=g)
    with torch.no_grad(), switch(conv, impl=impl):
        out = conv(x, w, noise=noise)
        styles = conv.affine(w)
        pre = modconv_loop(x, conv.weight * conv.weight_gain, styles, True, up, 1)
        if up:
            pre = upfirdn2d_reference(pre, fir_kernel(gain=4.0), pad=(1, 1))
        pre = pre + noise * 0.5 + conv.bias.view(1, -1, 1, 1)
        ref = F.leaky_relu(pre, 0.2) * 2 ** 0.5
        base = conv(x, w, noise_mode="none")
    assert out.shape == (batch, 4, res, res)
    assert_close(out, ref, "StyledConv")
    assert (out - base).abs().max() > 1e-3


@pytest.mark.parametrize("impl", ["fused", "nonfused"])
def test_torgb_equals_reference(impl):
    torch.manual_seed(6)
    torgb = ToRGB(5, 8)
    with torch.no_grad():
        torgb.bias.normal_()
    g = torch.Generator().manual_seed(7)
    x, w, skip = torch.randn(2, 5, 8, 8, generator=g), torch.randn(2, 8, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    with torch.no_grad(), switch(torgb, impl=impl):
        out = torgb(x, w, skip)
        ref = modconv_loop(x, torgb.weight * torgb.weight_gain, torgb.affine(w), False, False, 0)
        ref = ref + torgb.bias.view(1, -1, 1, 1) + upfirdn2d_reference(skip, fir_kernel(gain=4.0), up=2, pad=(2, 1))
    assert_close(out, ref, "ToRGB")


def test_invalid_noise_mode_raises():
    conv, x, w = make_styled()
    with pytest.raises(ValueError):
        conv(x, w, noise_mode="bogus")
