"""NVlabs networks_stylegan2 Generators (StyleGAN2-ADA / StyleGAN3 repo) convert to our stylegan2 exactly.

Reference: tests/fixtures/sg2ada_tiny.pt (+ .pkl), made by the official code; its `source` says how.
"""
import pytest
import torch

from pixelfolder.convert.nvlabs_pickle import detect_pickle_arch, extract_network
from pixelfolder.convert.stylegan2_ada import config_from_official, detect, from_official, from_record
from pixelfolder.errors import ConversionError
from pixelfolder.layers import switch
from tests.helpers import FIXTURES, assert_close, load_fixture

REL_TOL = 1e-5


@pytest.fixture(scope="module")
def fx():
    return load_fixture("sg2ada_tiny.pt")


def run(G, fx, name):
    if name == "wplus":
        return G(ws=fx["wplus"])
    if name == "ws_large":
        return G(ws=fx["ws_large"])
    kw = {"psi1": {}, "psi0.7": {"truncation_psi": 0.7}, "noise_none": {"noise_mode": "none"},
          "psi0.5_cutoff4": {"truncation_psi": 0.5, "truncation_cutoff": 4}}[name]
    return G(fx["z"], **kw)


def test_config_and_mapping(fx):
    sd = fx["state_dict"]
    assert detect(sd)
    fields = config_from_official(fx["init_kwargs"], sd)
    assert fields == {"resolution": 32, "z_dim": 32, "w_dim": 32, "mapping_layers": 2, "mapping_lr_mul": 0.01,
                      "channel_base": 256, "channel_max": 16, "conv_clamp": None}
    G = from_official(sd, fx["init_kwargs"])
    assert torch.equal(G.mapping.w_avg, sd["mapping.w_avg"])
    with torch.no_grad():
        w = G.mapping(fx["z"], truncation_psi=0.7)
        assert (G.mapping.embed(fx["z"]) - fx["w"]).abs().max() <= 1e-6 * fx["w"].abs().max()
    assert (w - fx["w_psi0.7"]).abs().max() <= 1e-6 * fx["w_psi0.7"].abs().max()


@pytest.mark.parametrize("impl", ["fused", "nonfused"])
def test_images_match_official(fx, impl):
    G = from_official(fx["state_dict"], fx["init_kwargs"])
    assert fx["cases"]
    for name, case in fx["cases"].items():
        with torch.no_grad(), switch(G, impl=impl):
            assert_close(run(G, fx, name), case["image"], f"{name} ({impl})", scale=case["max_abs"])


def test_conv_clamp_matches_official(fx):
    sd = {**fx["state_dict"], **fx["clamp_bias_override"]}
    G = from_official(sd, fx["init_kwargs_clamp"])
    assert G.config.conv_clamp == 256
    for name, case in fx["cases_clamp"].items():
        assert fx["clamp_delta"][name] > 100 * REL_TOL * case["max_abs"], "clamp inactive in the fixture"
        with torch.no_grad():
            assert_close(run(G, fx, name), case["image"], f"clamp {name}", scale=case["max_abs"])


def test_official_pickle_end_to_end(fx):
    """The network pickle written by the official persistence code, read as data and converted."""
    record = extract_network(FIXTURES / "sg2ada_tiny.pkl", "G_ema")
    assert detect_pickle_arch(record) == "stylegan2"
    assert record.source == "VinAIResearch/CREPS:training/networks_stylegan2.py"
    G = from_record(record)
    assert G.config.conv_clamp == 256
    for name, case in fx["cases_clamp"].items():
        with torch.no_grad():
            assert_close(run(G, fx, name), case["image"], f"pickle {name}", scale=case["max_abs"])


def test_up_conv_weights_are_not_flipped(fx):
    """Control for the key map: flipping the up-conv kernels (as a TF->PyTorch port would) breaks the match."""
    sd = dict(fx["state_dict"])
    for key in [k for k in sd if k.endswith("conv0.weight")]:
        sd[key] = sd[key].flip([2, 3])
    with torch.no_grad():
        img = from_official(sd, fx["init_kwargs"])(fx["z"])
    case = fx["cases"]["psi1"]
    assert (img - case["image"]).abs().max() > 1e-2 * case["max_abs"]


@pytest.mark.parametrize("change,message", [
    ({"c_dim": 10}, "conditional"),
    ({"architecture": "resnet"}, "'skip'"),
    ({"synthesis_kwargs": {"architecture": "orig", "conv_clamp": None}}, "'skip'"),
    ({"img_channels": 1}, "RGB"),
])
def test_refuses_what_we_cannot_represent(fx, change, message):
    with pytest.raises(ConversionError, match=message):
        from_official(fx["state_dict"], {**fx["init_kwargs"], **change})


def test_conv_clamp_must_be_known(fx):
    kwargs = {k: v for k, v in fx["init_kwargs"].items() if k != "conv_clamp"}
    with pytest.raises(ConversionError, match="cannot tell conv_clamp"):
        from_official(fx["state_dict"], kwargs)
