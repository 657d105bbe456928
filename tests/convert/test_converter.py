"""Converter behaviour beyond the fixture values: file forms, inference, refusals, metadata."""
import pytest
import torch

import pixelfolder
from pixelfolder.convert import convert_all, convert_state_dict, detect_arch, load_official
from pixelfolder.errors import ConversionError, PixelfolderError
from tests.helpers import load_fixture


@pytest.fixture(scope="module")
def pf64():
    return load_fixture("pixelfolder_64.pt")


def test_train_dict_and_bare_state_dict_give_the_same_generator(tmp_path, pf64):
    d = load_fixture("discriminator_64.pt")["state_dict"]
    sd = pf64["state_dict"]
    torch.save({"g": sd, "g_ema": sd, "d": d, "g_optim": {"state": {}, "param_groups": []}}, tmp_path / "train.pt")
    torch.save(sd, tmp_path / "bare.pt")
    a, b = load_official(tmp_path / "train.pt"), load_official(tmp_path / "bare.pt")
    assert a.arch == b.arch == "pixelfolder" and a.resolution == 64
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    nets = convert_all(tmp_path / "train.pt")
    assert set(nets) == {"g_ema", "g", "d"} and nets["d"].kind == "discriminator"


def test_w_avg_is_computed_reproducibly_and_recorded(pf64):
    a, b = convert_state_dict(pf64["state_dict"]), convert_state_dict(pf64["state_dict"])
    assert torch.equal(a.w_avg, b.w_avg) and a.w_avg.abs().sum() > 0
    assert a.metadata["w_avg"]["seed"] == 0 and a.metadata["w_avg"]["num_samples"] == 10_000
    # agrees with the fixture's mean over 512 official samples within 5 standard errors of that mean
    with torch.no_grad():
        ws = a.mapping.embed(pf64["inputs"]["truncation_z"])
    stderr = ws.std(0) / len(ws) ** 0.5
    assert ((a.w_avg - pf64["truncation_latent"][0]).abs() < 5 * stderr).all()


def test_unmappable_keys_are_listed(pf64):
    sd = dict(pf64["state_dict"])
    sd["extra.layer.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError, match="extra.layer.weight"):
        convert_state_dict(sd)


def test_wrong_shapes_and_sizes_are_refused(pf64):
    with pytest.raises(ConversionError, match="64 px"):
        convert_state_dict(pf64["state_dict"], size=256)
    sd = dict(pf64["state_dict"])
    sd["convs.1.conv.weight"] = torch.zeros(1, 64, 8, 3, 3)
    with pytest.raises(ConversionError):
        convert_state_dict(sd)


def test_nonstandard_fir_kernel_is_refused():
    sd = dict(load_fixture("stylegan2_64.pt")["state_dict"])
    sd["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
    with pytest.raises(ConversionError, match="FIR"):
        convert_state_dict(sd)


def test_unknown_layout_and_foreign_files(tmp_path):
    with pytest.raises(ConversionError, match="architecture"):
        detect_arch({"foo.weight": torch.zeros(1)})
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(PixelfolderError):
        load_official(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "dict.pt")
    with pytest.raises(ConversionError, match="not an official checkpoint"):
        load_official(tmp_path / "dict.pt")


def test_converted_checkpoint_round_trips_and_keeps_official_options(tmp_path):
    fx = load_fixture("cips_skip_32.pt")
    G = convert_state_dict(fx["state_dict"])
    assert G.config.embedding_mode == "official" and G.config.truncation_space == "z"
    pixelfolder.save(G, tmp_path / "g.pt", G.metadata)
    H = pixelfolder.load(tmp_path / "g.pt")
    assert H.config == G.config and H.metadata["source"] == "official"
    z = fx["inputs"]["z"]
    with torch.no_grad():
        assert torch.equal(G(z), H(z))


def test_official_presets_load_official_state_dicts_strictly():
    """Key sets of our official presets equal the converted official key sets (no extra, none missing)."""
    fx = load_fixture("pixelfolder_64.pt")
    G = convert_state_dict(fx["state_dict"])
    H = pixelfolder.create("pixelfolder", resolution=64, z_dim=64, w_dim=64, mapping_layers=2,
                           channel_base=4096, channel_max=64, compute_w_avg=False)
    H.load_state_dict(G.state_dict(), strict=True)
