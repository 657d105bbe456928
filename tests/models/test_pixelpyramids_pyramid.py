"""The lossless pyramid: bit-exact against the official loaders' output, exact inverse, errors."""
import pytest
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.models.pixelpyramids.pyramid import (Pyramid, decompose, dequantize_to_uint8, from_model_space, pyramid_shapes,
                                        quantize, reconstruct, split_kinds, squeeze_slots, to_model_space,
                                        unsqueeze_slots)
from tests.helpers import load_fixture

FX = load_fixture("pyramid_decomposition.pt")
CASES = FX["case_order"]


def case(name):
    return FX["cases"][name]


def image_batch(c):
    """The fixture's 8-bit image as a (1, 3, H, W) uint8 batch."""
    return c["image_uint8_hwc"].permute(2, 0, 1).unsqueeze(0)


def official_pyramid(c) -> Pyramid:
    return decompose(quantize(image_batch(c), c["n_bits"]), c["n_bits"], c["L"], c["residual_offset"])


@pytest.mark.parametrize("name", CASES)
def test_quantize_and_geometry_match_official(name):
    c = case(name)
    assert torch.equal(quantize(image_batch(c), c["n_bits"])[0], c["image_codes"].long())
    assert split_kinds(c["H"], c["W"], c["L"]) == c["split"]
    assert [list(s) for s in pyramid_shapes(c["H"], c["W"], c["L"])] == [list(s) for s in c["shapes"]]
    assert len(c["shapes"]) == c["num_splits"] == c["L"] - 1 and c["n_bins"] == 2 ** c["n_bits"]


@pytest.mark.parametrize("name", CASES)
def test_codes_of_every_level_bit_exact(name):
    c = case(name)
    pyr = official_pyramid(c)
    assert len(pyr.residuals) == len(pyr.kept) == c["L"] - 1
    for level in range(c["L"] - 1):
        assert pyr.residuals[level].dtype == torch.int64
        assert torch.equal(pyr.residuals[level][0], c["diff_codes"][level].long()), f"residual {level}"
        assert torch.equal(pyr.kept[level][0], c["downsmp_codes"][level].long()), f"kept {level}"
    assert torch.equal(pyr.coarsest[0], c["coarsest_codes"].long())
    assert pyr.coarsest is pyr.kept[-1]


@pytest.mark.parametrize("name", CASES)
def test_model_space_floats_bit_exact(name):
    c = case(name)
    pyr = official_pyramid(c)
    for level in range(c["L"] - 1):
        d = to_model_space(pyr.residuals[level], c["n_bits"])[0]
        x = to_model_space(pyr.kept[level], c["n_bits"])[0]
        assert d.dtype == torch.float32
        assert torch.equal(d, c["diff_im"][level]), f"diff_im {level}"
        assert torch.equal(x, c["downsmp_im"][level]), f"downsmp_im {level}"
        assert torch.equal(from_model_space(c["diff_im"][level], c["n_bits"]), c["diff_codes"][level].long())


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("n_squeeze", ["1", "2"])
def test_squeezed_layouts_bit_exact(name, n_squeeze):
    c = case(name)
    f = 2 ** int(n_squeeze)
    for level, ref in enumerate(c["diff_squeezed"][n_squeeze]):
        d = c["diff_im"][level].unsqueeze(0)
        ours = squeeze_slots(d, f)
        assert ours.shape == (1, f * f) + tuple(ref.shape[1:])
        assert torch.equal(ours[0], ref), f"level {level}"
        assert torch.equal(unsqueeze_slots(ours, f), d)


@pytest.mark.parametrize("name", CASES)
def test_inverse_reproduces_image_codes(name):
    c = case(name)
    coarsest = c["coarsest_codes"].unsqueeze(0)
    residuals = [d.unsqueeze(0) for d in c["diff_codes"]]
    out = reconstruct(coarsest, residuals, c["n_bits"], c["residual_offset"])
    assert out.dtype == torch.int64 and torch.equal(out[0], c["image_codes"].long())
    dims = sum(d.numel() for d in c["diff_codes"]) + coarsest.numel()
    assert dims == c["n_modelled_values"] == 3 * c["H"] * c["W"]


@pytest.mark.parametrize("name", CASES)
def test_lsun_loader_equivalence_is_the_residual_offset(name):
    """data/lsun.py never adds 128: it equals our pyramid with residual_offset 0, exactly when s = 0 mod n."""
    c = case(name)
    n = c["n_bins"]
    assert c["identical_to_lsun_py"] == (c["residual_offset"] % n == 0)
    plain = decompose(quantize(image_batch(c), c["n_bits"]), c["n_bits"], c["L"], residual_offset=0)
    for level, ref in enumerate(c["diff_codes"]):
        assert torch.equal(plain.residuals[level][0], (ref.long() - c["residual_offset"]) % n)
        assert torch.equal(plain.kept[level][0], c["downsmp_codes"][level].long())
    assert torch.equal(reconstruct(plain.coarsest, plain.residuals, c["n_bits"])[0], c["image_codes"].long())


def test_residual_is_even_minus_odd_mod_n():
    """A hand-checkable 4x8 image at 2 bits: one column split, kept = odd columns, residual wraps."""
    row = torch.tensor([0, 1, 3, 0, 2, 2, 1, 3])
    codes = row.repeat(3, 4, 1).unsqueeze(0)
    pyr = decompose(codes, 2, 2)
    assert torch.equal(pyr.kept[0][0, 0, 0], torch.tensor([1, 0, 2, 3]))
    assert torch.equal(pyr.residuals[0][0, 0, 0], torch.tensor([3, 3, 0, 2]))
    assert torch.equal(decompose(codes, 2, 2, residual_offset=2).residuals[0][0, 0, 0], torch.tensor([1, 1, 2, 0]))


# (H, W, num_levels): square and Sx2S images of several depths
SHAPES = [(4, 4, 1), (4, 8, 2), (8, 8, 3), (8, 16, 4), (16, 16, 5), (16, 32, 6), (32, 32, 7), (64, 64, 9)]


@pytest.mark.parametrize("n_bits", range(1, 9))
@pytest.mark.parametrize("offset", [0, 128])
def test_round_trip_random_images(n_bits, offset):
    gen = torch.Generator().manual_seed(1000 * n_bits + offset)
    n = 2 ** n_bits
    for i, (h, w, levels) in enumerate(SHAPES):
        batch = 1 + (i + n_bits) % 3
        codes = torch.randint(0, n, (batch, 3, h, w), generator=gen)
        if i % 2:
            codes = (quantize(torch.randint(0, 256, (batch, 3, h, w), generator=gen, dtype=torch.uint8), n_bits))
        pyr = decompose(codes, n_bits, levels, residual_offset=offset)
        assert sum(d[0].numel() for d in pyr.residuals) + pyr.coarsest[0].numel() == 3 * h * w
        assert tuple(pyr.coarsest.shape) == (batch, 3, 4, 4)
        assert all(int(d.min()) >= 0 and int(d.max()) < n for d in pyr.residuals)
        out = reconstruct(pyr.coarsest, pyr.residuals, n_bits, residual_offset=offset)
        assert torch.equal(out, codes), f"{h}x{w} L={levels} batch {batch}"
        # the model-space round trip of every level is exact as well
        back = [from_model_space(to_model_space(d, n_bits), n_bits) for d in pyr.residuals]
        assert all(torch.equal(a, b) for a, b in zip(back, pyr.residuals))


def test_batch_elements_are_independent():
    gen = torch.Generator().manual_seed(7)
    codes = torch.randint(0, 32, (3, 3, 16, 32), generator=gen)
    whole = decompose(codes, 5, 6)
    single = decompose(codes[1:2], 5, 6)
    assert all(torch.equal(a[1:2], b) for a, b in zip(whole.residuals, single.residuals))


def test_model_space_grid_and_decoding():
    for n_bits in range(1, 9):
        n = 2 ** n_bits
        k = torch.arange(n)
        v = to_model_space(k, n_bits)
        assert v[0] == -1 and v[-1] == 1
        assert torch.equal(from_model_space(v, n_bits), k)
        # rounding, not truncation: values slightly below a grid point decode to it
        assert torch.equal(from_model_space(v - 0.3 / (n - 1), n_bits), k)
        assert torch.equal(from_model_space(torch.tensor([-3.0, 3.0]), n_bits), torch.tensor([0, n - 1]))


def test_quantize_floors_and_dequantize_inverts_it():
    x = torch.arange(256, dtype=torch.int64).to(torch.uint8)
    for n_bits in range(1, 9):
        n = 2 ** n_bits
        k = quantize(x, n_bits)
        assert torch.equal(k, torch.arange(256) // 2 ** (8 - n_bits))
        shown = dequantize_to_uint8(torch.arange(n), n_bits)
        assert shown.dtype == torch.uint8 and shown[0] == 0 and shown[-1] == 255
        assert torch.equal(quantize(shown, n_bits), torch.arange(n))
        assert torch.equal(shown.long(), torch.round(torch.arange(n) * 255.0 / (n - 1)).long())


def test_error_codes_out_of_range():
    codes = torch.zeros(1, 3, 32, 32, dtype=torch.int64)
    codes[0, 1, 5, 5] = 37
    with pytest.raises(PixelfolderError, match="5-bit codes 0..31; got values up to 37 for n_bits=5"):
        decompose(codes, 5, 7)
    codes[0, 1, 5, 5] = -1
    with pytest.raises(PixelfolderError, match="got values down to -1"):
        decompose(codes, 5, 7)
    with pytest.raises(PixelfolderError, match="integer codes"):
        decompose(torch.zeros(1, 3, 32, 32), 5, 7)
    with pytest.raises(PixelfolderError, match="values up to 32"):
        reconstruct(torch.full((1, 3, 4, 4), 32), [], 5)


@pytest.mark.parametrize("n_bits", [0, 9, 2.5, True])
def test_error_n_bits(n_bits):
    with pytest.raises(PixelfolderError, match="n_bits must be an integer in 1..8"):
        decompose(torch.zeros(1, 3, 32, 32, dtype=torch.int64), n_bits, 7)


@pytest.mark.parametrize("h,w,levels,allowed", [(30, 30, 7, "32x32"), (32, 32, 6, "16x32"), (32, 16, 6, "16x32"),
                                                (64, 64, 7, "32x32"), (24, 48, 6, "16x32"), (16, 16, 7, "32x32")])
def test_error_image_size(h, w, levels, allowed):
    with pytest.raises(PixelfolderError, match=f"num_levels={levels} takes {allowed} images .*got {h}x{w}"):
        pyramid_shapes(h, w, levels)
    with pytest.raises(PixelfolderError, match=f"takes {allowed} images"):
        decompose(torch.zeros(1, 3, h, w, dtype=torch.int64), 5, levels)


def test_error_messages_are_one_line():
    for call in (lambda: pyramid_shapes(30, 30, 7), lambda: pyramid_shapes(32, 32, 0),
                 lambda: decompose(torch.zeros(3, 32, 32, dtype=torch.int64), 5, 7),
                 lambda: reconstruct(torch.zeros(1, 3, 4, 4, dtype=torch.int64), [torch.zeros(1, 3, 4, 8)], 5),
                 lambda: squeeze_slots(torch.zeros(1, 3, 6, 8), 4)):
        with pytest.raises(PixelfolderError) as info:
            call()
        assert "\n" not in str(info.value)
