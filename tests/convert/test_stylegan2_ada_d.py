"""NVlabs networks_stylegan2 resnet Discriminators (SG2-ADA / StyleGAN3 repo / CREPS / INR-GAN) -> our stylegan2_d.

Reference: tests/fixtures/sg2ada_d_tiny.pt (+ .pkl), made by the official code; its `source` says how.
"""
import pytest
import torch

import pixelfolder
from pixelfolder.convert.nvlabs_pickle import detect_pickle_arch, extract_network
from pixelfolder.convert.stylegan2_ada import d_config_from_official, d_from_official, d_from_record, detect_d
from pixelfolder.errors import ConversionError
from pixelfolder.models import count_parameters
from tests.helpers import FIXTURES, assert_close, load_fixture, run_cli

CLAMPS = {"none": "init_kwargs", "clamp": "init_kwargs_clamp"}


@pytest.fixture(scope="module")
def fx():
    return load_fixture("sg2ada_d_tiny.pt")


def assert_logits(D, fx, mode):
    for name in ("x", "x_large"):
        want = fx["logits"][mode][name]
        with torch.no_grad():
            got = D(fx[name])
        assert_close(got, want, f"{mode}/{name}")


def official_numel(sd: dict) -> int:
    """Parameters of the official D: every state_dict entry but the constant resample_filter buffers."""
    return sum(v.numel() for k, v in sd.items() if not k.endswith("resample_filter"))


@pytest.mark.parametrize("mode", ["none", "clamp"])
def test_logits_match_official(fx, mode):
    D = d_from_official(fx["state_dict"], fx[CLAMPS[mode]])
    assert D.config.conv_clamp == fx[CLAMPS[mode]]["conv_clamp"]
    assert (D.config.resolution, D.config.mbstd_group, D.config.mbstd_features) == (32, 4, 1)
    assert count_parameters(D) == official_numel(fx["state_dict"]) == fx["numel"]
    assert_logits(D, fx, mode)


def test_the_clamp_is_active_in_the_reference(fx):
    assert min(fx["clamp_delta"].values()) > 1.0      # the official logits change when conv_clamp is removed
    assert len(fx["clamped_elements"]["x_large"]) >= 4
    ours = {m: d_from_official(fx["state_dict"], fx[CLAMPS[m]]) for m in CLAMPS}
    with torch.no_grad():
        diff = (ours["none"](fx["x_large"]) - ours["clamp"](fx["x_large"])).abs().max().item()
    assert diff > 1.0


def test_config_from_recorded_attributes(fx):
    fields = d_config_from_official({}, fx["state_dict"], fx["attributes_clamp"])
    assert fields == d_config_from_official(fx["init_kwargs_clamp"], fx["state_dict"])
    assert fields["conv_clamp"] == 256.0 and fields["channel_base"] == 256 and fields["channel_max"] == 16


def test_official_pickle_converts(fx):
    record = extract_network(FIXTURES / "sg2ada_d_tiny.pkl", "D")
    assert detect_pickle_arch(record) == "stylegan2_d" and detect_d(record.state_dict)
    assert record.state_dict.keys() == fx["state_dict"].keys()
    assert all(torch.equal(record.state_dict[k], v) for k, v in fx["state_dict"].items())
    assert_logits(d_from_record(record), fx, "clamp")


def test_cli_converts_our_pickle_and_reproduces_the_logits(fx, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "convert", str(FIXTURES / "sg2ada_d_tiny.pkl"), str(tmp_path / "d.pt"),
                           "--which", "D")
    assert code == 0 and "d: stylegan2_d 32px" in out
    assert_logits(pixelfolder.load(tmp_path / "d.pt", channels_last=False), fx, "clamp")


@pytest.mark.parametrize("name", ["creps_snapshot_tiny.pkl", "inrgan_snapshot_tiny.pkl"])
def test_cli_converts_snapshot_discriminators(tmp_path, capsys, name):
    code, out, _ = run_cli(capsys, "convert", str(FIXTURES / name), str(tmp_path / "d.pt"), "--which", "D")
    assert code == 0 and "d: stylegan2_d 64px" in out
    record = extract_network(FIXTURES / name, "D")
    D = pixelfolder.load(tmp_path / "d.pt", channels_last=False)
    assert D.arch == "stylegan2_d" and D.config.conv_clamp == 256.0 and D.metadata["network"] == "D"
    assert count_parameters(D) == official_numel(record.state_dict)
    direct = d_from_record(record)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(D(x), direct(x))


def _refusal(fx, match, sd=None, **kwargs):
    with pytest.raises(ConversionError, match=match) as e:
        d_from_official(sd or fx["state_dict"], {**fx["init_kwargs_clamp"], **kwargs})
    assert len(str(e.value).splitlines()) == 1


def test_refuses_what_it_cannot_represent(fx):
    sd = fx["state_dict"]
    _refusal(fx, "conditional", c_dim=10)
    _refusal(fx, "conditional", sd={**sd, "mapping.fc0.weight": torch.zeros(16, 10)})
    _refusal(fx, "'resnet' discriminator architecture", architecture="orig")
    _refusal(fx, "'resnet' discriminator architecture", sd={k: v for k, v in sd.items() if ".skip." not in k})
    _refusal(fx, "only RGB", img_channels=1)
    _refusal(fx, "minibatch-stddev", epilogue_kwargs={"mbstd_group_size": None})
    _refusal(fx, "mbstd_num_channels=2", epilogue_kwargs={"mbstd_num_channels": 2})
    _refusal(fx, "activations", block_kwargs={"activation": "relu"})
    bad = {**sd, "b16.conv1.resample_filter": torch.ones(4, 4) / 16}
    _refusal(fx, "FIR kernels differ", sd=bad)
    with pytest.raises(ConversionError, match="cannot tell the discriminator's conv_clamp"):
        d_from_official(sd, {k: v for k, v in fx["init_kwargs"].items() if k != "conv_clamp"})
    attrs = {**fx["attributes_clamp"], "b8.conv0": {"conv_clamp": 128}}
    with pytest.raises(ConversionError, match="different conv_clamp values"):
        d_from_official(sd, {}, attrs)
