"""Converted official CREPS weights reproduce every stored official output (../shared/fixtures/official/creps_64.pt)."""
import pytest
import torch

from pixelfolder.convert import creps as convert_creps
from pixelfolder.errors import ConversionError
from pixelfolder.models.creps.lines import line_coords, split_biline, to_official_lines
from tests.helpers import assert_close, load_fixture, stored_view

REL_TOL = 1e-5       # README_inrgan_creps.md "Tolerance": |got - want| <= 1e-5 * max_abs
W_REL_TOL = 1e-6     # same section: w and w_psi0.7 to 1e-6 relative


@pytest.fixture(scope="module")
def fx():
    return load_fixture("creps_64.pt")


@pytest.fixture(scope="module")
def G(fx):
    return convert_creps.from_official(fx["state_dict"], fx["init_kwargs"])


def run_case(G, fx, case):
    """Our call equivalent to the official one the case records (see the fixture README, "Cases")."""
    ins = fx["inputs"]
    if case["call"] == "G":
        assert case["z"] == "@z"
        return G(ins["z"], truncation_psi=case["kwargs"]["truncation_psi"], scale=case["scale"])
    assert case["call"] == "G.synthesis" and case["scale"] == 1.0
    return G(ws=ins[case["ws"][1:]])


def test_detect_and_metadata(fx, G):
    assert convert_creps.detect(fx["state_dict"])
    assert not convert_creps.detect({"mapping.fc0.weight": torch.zeros(1)})
    assert not G.training
    assert G.metadata["source"] == "official" and G.metadata["arch"] == "creps"
    assert G.n_latent == fx["num_ws"]
    assert torch.equal(G.w_avg, fx["w_avg"])    # the official w_avg is kept, not recomputed


def test_config_from_kwargs_equals_config_from_shapes(fx):
    a = convert_creps.config_from_official(fx["init_kwargs"], fx["state_dict"])
    b = convert_creps.config_from_official(None, fx["state_dict"])
    for key in ("resolution", "z_dim", "w_dim", "mapping_layers", "rank", "biline_channels", "decoder_hidden",
                "head_channels", "channel_base", "channel_max"):
        assert a[key] == b[key], key
    widths = [blk.fc1.weight.shape[0] for blk in convert_creps.from_official(fx["state_dict"]).synthesis.lines]
    assert widths == [fx["channels"][r] for r in sorted(fx["channels"])]


def test_mapping(fx, G):
    with torch.no_grad():
        for key, psi in (("w", 1.0), ("w_psi0.7", 0.7)):
            ref = fx[key]
            assert_close(G.mapping(fx["z"], truncation_psi=psi), ref, key, rel=W_REL_TOL)


@pytest.mark.parametrize("name", ["psi1", "psi0.7", "wplus", "clamp", "scale2", "scale1.5", "scale0.5"])
def test_case(fx, G, name):
    case = fx["cases"][name]
    with torch.no_grad():
        img = run_case(G, fx, case)
    assert list(img.shape) == case["image_shape"], name
    assert img.shape[-1] == case["coords_len"]
    assert_close(stored_view(fx, img), case["image"], name, scale=case["max_abs"])


def test_clamp_case_is_active(fx, G):
    """The clamp case only tests fc_clamp if some activation exceeds +-256 (without clamping it moves by 212)."""
    case = fx["cases"]["clamp"]
    assert case["max_abs_diff_vs_no_clamp"] > 100
    unclamped = convert_creps.from_official(fx["state_dict"], fx["init_kwargs"])
    for m in unclamped.modules():
        if hasattr(m, "clamp"):
            m.clamp = None
    with torch.no_grad():
        img = unclamped(ws=fx["inputs"]["ws_large"])
    assert (img - case["image"]).abs().max() > 100 * REL_TOL * case["max_abs"]


def test_grid_matches_official_coords(fx):
    for scale, coords in fx["coords"].items():
        n = coords.shape[1]
        assert torch.equal(line_coords(n), coords[0, :, 0, 0]), scale
        assert torch.equal(coords[0, :, 0, 0], coords[0, :, 1, 0])


def test_intermediates(fx, G):
    inter, ws = fx["intermediates"], fx["w"][:1]
    s, n = G.synthesis, fx["img_resolution"]
    with torch.no_grad():
        x = to_official_lines(s.input(ws[:, 0], n), n)
        bilines = s.run_lines(ws, n)
        hw = s.head_weights(ws[:, -1])
        feature = s.features([split_biline(t[0]) for t in bilines], hw, 0, n)
        weight, bias = hw["img"]
        img0 = (weight @ feature + bias[:, None]).view(1, 3, n, n)
    for ours, key in ((x, "input_s0"), (bilines[-1], "biline_s0"), (img0, "img_decoder_s0")):
        ref = inter[key]
        assert_close(ours, ref, key)


def test_state_dict_round_trip_is_lossless(fx, G):
    """Every official tensor except the regenerated coords grid is held, values unchanged."""
    ours = G.state_dict()
    official = {k: v for k, v in fx["state_dict"].items() if k != convert_creps.COORDS_KEY}
    assert len(ours) == len(official)
    summary = lambda sd: sorted((v.numel(), float(v.double().sum())) for v in sd.values())  # noqa: E731
    assert summary(ours) == summary(official)


def test_conversion_errors(fx):
    sd = dict(fx["state_dict"])
    with pytest.raises(ConversionError, match="cannot map 1 key"):
        convert_creps.from_official({**sd, "synthesis.b4.extra.weight": torch.zeros(1)})
    with pytest.raises(ConversionError, match="missing"):
        convert_creps.from_official({k: v for k, v in sd.items() if k != "synthesis.decoder_last.0.weight"})
    with pytest.raises(ConversionError, match="linspace"):
        convert_creps.from_official({**sd, convert_creps.COORDS_KEY: sd[convert_creps.COORDS_KEY] * 2})
    with pytest.raises(ConversionError, match="c_dim"):
        convert_creps.from_official(sd, {**fx["init_kwargs"], "c_dim": 10})
    with pytest.raises(ConversionError, match="conv_clamp"):
        convert_creps.from_official(sd, {**fx["init_kwargs"], "conv_clamp": 256})
    with pytest.raises(ConversionError, match="shapes|missing|unexpected"):
        convert_creps.from_official(sd, {**fx["init_kwargs"], "channel_max": 128})
