"""FIR filtering: the fast helpers equal the literal upfirdn2d, which itself equals a loop definition."""
import numpy as np
import pytest
import torch

from pixelfolder.layers import ConvLayer, blur, fir_kernel, upfirdn2d_reference, upsample2x
from tests.helpers import REL_TOL, assert_close

FLOOR = REL_TOL * 1e-30     # tolerance max(FLOOR, REL_TOL * max|ref|) = REL_TOL * max(max|ref|, 1e-30): all-zero refs


def upfirdn2d_loops(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple) -> np.ndarray:
    """Literal definition with explicit loops (float64):
    1. zero insertion: z[i*up, j*up] = x[i, j];
    2. pad p0 zeros before and p1 after, on both axes;
    3. true 2-D convolution with the kernel (flipped), 'valid' region;
    4. keep every `down`-th sample starting at 0.
    """
    b, c, h, w = x.shape
    kh, kw = k.shape
    p0, p1 = pad
    zh, zw = h * up, w * up
    z = np.zeros((b, c, zh, zw))
    for i in range(h):
        for j in range(w):
            z[:, :, i * up, j * up] = x[:, :, i, j]
    ph, pw = zh + p0 + p1, zw + p0 + p1
    p = np.zeros((b, c, ph, pw))
    p[:, :, p0:p0 + zh, p0:p0 + zw] = z
    oh, ow = ph - kh + 1, pw - kw + 1
    full = np.zeros((b, c, oh, ow))
    for n in range(oh):
        for m in range(ow):
            acc = np.zeros((b, c))
            # true convolution: out[n] = sum_u p[n + kh - 1 - u] * k[u]  (kernel flipped)
            for u in range(kh):
                for v in range(kw):
                    acc += p[:, :, n + kh - 1 - u, m + kw - 1 - v] * k[u, v]
            full[:, :, n, m] = acc
    return full[:, :, ::down, ::down]


ASYM_TAPS = np.array([1.0, 2.0, 5.0, -3.0])       # asymmetric: a flipped kernel gives different results
ASYM_TAPS_ODD = np.array([0.5, -1.0, 4.0])


def asym_kernel(taps) -> np.ndarray:
    return np.outer(taps, taps * np.array([1.0, -0.5, 2.0, 0.25][:len(taps)]))  # asymmetric on both axes


@pytest.mark.parametrize("taps", [ASYM_TAPS, ASYM_TAPS_ODD], ids=["4tap", "3tap"])
@pytest.mark.parametrize("up,down,pad", [(1, 1, (0, 0)), (1, 1, (2, 1)), (2, 1, (2, 1)), (1, 2, (1, 2)),
                                         (2, 2, (1, 1)), (3, 1, (0, 2))])
def test_upfirdn2d_reference_matches_loop_definition(taps, up, down, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g)
    k = asym_kernel(taps)
    ref = torch.from_numpy(upfirdn2d_loops(x.double().numpy(), k, up, down, pad)).float()
    ours = upfirdn2d_reference(x, torch.tensor(k, dtype=torch.float32), up=up, down=down, pad=pad)
    assert_close(ours, ref, f"upfirdn2d up={up} down={down} pad={pad}", abs=FLOOR)


def test_loop_definition_sanity():
    """The loop reference itself: a delta input returns the (unflipped) kernel placed at the delta."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    k = asym_kernel(ASYM_TAPS)
    out = upfirdn2d_loops(x, k, up=1, down=1, pad=(3, 3))
    # true convolution of a delta at padded index 4 with a 4x4 kernel: out[n] = k[4 - n] for n in 1..4
    assert out.shape == (1, 1, 6, 6)
    np.testing.assert_allclose(out[0, 0, 1:5, 1:5], k, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 5, 7), (3, 4, 8, 8)])
def test_upsample2x_equals_reference(shape):
    """upsample2x(x) (default [1, 3, 3, 1] taps) == upfirdn2d(x, fir_kernel(gain=4), up=2, pad=(2, 1))."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    k = fir_kernel(gain=4)
    ref = upfirdn2d_reference(x, k, up=2, pad=(2, 1))
    out = upsample2x(x)
    assert out.shape == (shape[0], shape[1], 2 * shape[2], 2 * shape[3])
    assert_close(out, ref, "upsample2x", abs=FLOOR)
    assert_close(upsample2x(x, (1.0, 3.0, 3.0, 1.0)), ref, "upsample2x explicit taps", abs=FLOOR)


@pytest.mark.parametrize("taps", [(1.0, 3.0, 3.0, 1.0), (1.0, 2.0, 2.0, 1.0), (-1.0, 5.0, 5.0, -1.0)])
@pytest.mark.parametrize("shape", [(2, 2, 4, 5), (1, 2, 1, 3), (1, 1, 2, 1), (1, 1, 1, 1)])
def test_upsample2x_equals_loops(taps, shape):
    """Any symmetric 4-tap filter (with gain 4), any spatial size, against the loop definition."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    k = fir_kernel(taps, gain=4)
    ref = torch.from_numpy(upfirdn2d_loops(x.double().numpy(), k.double().numpy(), 2, 1, (2, 1))).float()
    assert_close(upsample2x(x, taps), ref, f"upsample2x taps={taps} shape={shape}", abs=FLOOR)


@pytest.mark.parametrize("taps", [(1.0, 2.0, 5.0, -3.0), (1.0, 2.0, 1.0), (1.0, 3.0, 3.0, 3.0, 1.0)])
def test_upsample2x_rejects_unsupported_taps(taps):
    with pytest.raises(ValueError):
        upsample2x(torch.randn(1, 1, 4, 4), taps)


def test_fir_kernel_is_outer_product_with_gain():
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    for gain in (1.0, 4.0):
        ref = np.outer(taps, taps) / 64.0 * gain
        np.testing.assert_allclose(fir_kernel(gain=gain).numpy(), ref, rtol=1e-7)


@pytest.mark.parametrize("pad", [(1, 1), (2, 2), (2, 1), (0, 3)])
@pytest.mark.parametrize("kind", ["blur", "asym"])
def test_blur_equals_reference(pad, kind):
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(3))
    k = fir_kernel() if kind == "blur" else torch.tensor(asym_kernel(ASYM_TAPS), dtype=torch.float32)
    ref = upfirdn2d_reference(x, k, pad=pad)
    assert_close(blur(x, k, pad), ref, f"blur pad={pad}", abs=FLOOR)
    loops = torch.from_numpy(upfirdn2d_loops(x.double().numpy(), k.double().numpy(), 1, 1, pad)).float()
    assert_close(blur(x, k, pad), loops, f"blur pad={pad} vs loops", abs=FLOOR)


@pytest.mark.parametrize("kernel_size", [3, 1])
@pytest.mark.parametrize("res", [4, 8, 16])
def test_convlayer_down_halves_resolution(kernel_size, res):
    layer = ConvLayer(3, 5, kernel_size, down=True)
    out = layer(torch.randn(2, 3, res, res))
    assert out.shape == (2, 5, res // 2, res // 2)


@pytest.mark.parametrize("kernel_size", [3, 1])
def test_convlayer_no_down_keeps_resolution(kernel_size):
    layer = ConvLayer(3, 5, kernel_size)
    assert layer(torch.randn(2, 3, 8, 8)).shape == (2, 5, 8, 8)


def convlayer_reference(layer, x):
    """EqualConv2d by hand: [blur with pad ((p+1)//2, p//2), stride 2] or 'same' padding; bias; lrelu * sqrt 2."""
    k = layer.weight.shape[-1]
    w = layer.weight / (layer.weight.shape[1] * k * k) ** 0.5
    if layer.down:
        p = 2 + (k - 1)
        xb = torch.from_numpy(upfirdn2d_loops(x.double().numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0,
                                              1, 1, ((p + 1) // 2, p // 2)))
        out = torch.nn.functional.conv2d(xb, w.double(), stride=2)
    else:
        out = torch.nn.functional.conv2d(x.double(), w.double(), padding=(k - 1) // 2)
    if layer.bias is not None:
        out = out + layer.bias.double().view(1, -1, 1, 1)
    if layer.activate:
        out = torch.nn.functional.leaky_relu(out, 0.2) * 2 ** 0.5
    return out.float()


@pytest.mark.parametrize("kernel_size", [3, 1])
@pytest.mark.parametrize("down", [False, True])
@pytest.mark.parametrize("bias_act", [(True, True), (False, False)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_convlayer_values(kernel_size, down, bias_act, channels_last):
    torch.manual_seed(kernel_size + 2 * down)
    layer = ConvLayer(3, 5, kernel_size, down=down, bias=bias_act[0], activate=bias_act[1])
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.normal_()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    ref = convlayer_reference(layer, x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert_close(layer(x), ref, f"ConvLayer k={kernel_size} down={down}", abs=FLOOR)
