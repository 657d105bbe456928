"""PixelPyramids' opt-in precision='bf16' evaluation against float32 and the official test vectors.

Source: the official pixelpyramids_tiny.pt fixture (tests/fixtures). Stated tolerance of bf16 (bfloat16 U-Net
and ConvLSTM convolutions; float32 first conv, cell state, mixture head and loss): per-level NLL within 1e-3
relative of float32, bits/dim per image within 2.5e-4 relative (measured here: 3.8e-4 per level with the
'official' protocol, 4e-5 with 'eval'; bits/dim 3e-5). float32 stays the default and must be unchanged: bitwise
equal before and after bf16 calls, and within the fixture tolerance (0.001 + 2e-5 * |nll| nats) of the official
numbers.
"""
import pytest
import torch

from pixelfolder.errors import PixelfolderError
from tests.helpers import PP_PROTOCOLS, assert_nll_close, pp_images

LEVEL_REL = 1e-3        # per-level NLL, |bf16 - fp32| / |fp32|
BPD_REL = 2.5e-4        # bits/dim per image, |bf16 - fp32| / fp32


@pytest.mark.parametrize("protocol", PP_PROTOCOLS)
def test_bf16_is_close_to_fp32_and_fp32_is_unchanged(pp_fx, pp_model, protocol):
    x, ref = pp_images(pp_fx), pp_fx["outputs"][PP_PROTOCOLS[protocol]]["nll"]
    with torch.no_grad():
        before = pp_model.level_nll(x, protocol=protocol)
        low = pp_model.level_nll(x, protocol=protocol, precision="bf16")
        after = pp_model.level_nll(x, protocol=protocol, precision="fp32")
    assert torch.equal(before, after)                 # the bf16 weight copies live beside the fp32 ones
    assert_nll_close(after, ref, f"fp32 ({protocol})")
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert not torch.equal(low, before)               # really a different computation
    rel = ((low - before).abs() / before.abs()).max().item()
    assert rel <= LEVEL_REL, f"per-level relative difference {rel:.3g} ({protocol})"


def test_bits_per_dim_and_nll_bits_take_a_precision(pp_fx, pp_model):
    x = pp_images(pp_fx)
    ref = pp_model.bits_per_dim(x, protocol="eval")
    low = pp_model.bits_per_dim(x, protocol="eval", precision="bf16")
    assert (ref["precision"], low["precision"]) == ("fp32", "bf16")
    rel = ((low["bpd"] - ref["bpd"]).abs() / ref["bpd"]).max().item()
    assert rel <= BPD_REL, f"bits/dim relative difference {rel:.3g}"
    assert torch.allclose(low["per_level"].sum(0), low["bpd"], rtol=1e-6)
    with torch.enable_grad():                          # nll_bits turns autograd off itself for bf16
        bits = pp_model.nll_bits(x, precision="bf16")
    assert not bits.requires_grad
    assert torch.allclose(bits, low["bpd"] * pp_model.dims, rtol=1e-6)


def test_bf16_mixture_params_are_float32_and_close(pp_fx, pp_model):
    codes = pp_model.codes_of(pp_images(pp_fx))
    with torch.no_grad():
        ref = pp_model.mixture_params(codes, protocol="eval")
        low = pp_model.mixture_params(codes, protocol="eval", precision="bf16")
    for level, params in ref.items():
        assert low[level].dtype == torch.float32
        err = (low[level] - params).abs().max().item()
        assert err <= 0.05 * params.abs().max().item(), (level, err)


def test_bf16_is_evaluation_only(pp_fx, pp_model):
    x = pp_images(pp_fx)
    with torch.enable_grad(), pytest.raises(PixelfolderError, match="no_grad"):
        pp_model.level_nll(x, protocol="eval", precision="bf16")
    with torch.no_grad(), pytest.raises(PixelfolderError, match="precision must be one of"):
        pp_model.level_nll(x, precision="fp16")
    pp_model.train()
    try:
        with torch.no_grad(), pytest.raises(PixelfolderError, match="eval mode"):
            pp_model.level_nll(x, precision="bf16")  # training BatchNorm would update its statistics
    finally:
        pp_model.eval()
