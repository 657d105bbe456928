"""Converted official INR-GAN / INR-GAN-bil generators reproduce the official outputs (fixtures/inrgan_*.pt).

The fixtures are trimmed copies of ../shared/fixtures/official/inrgan{,_bil}_{64,128}.pt (official code at
universome/inr-gan@5c498e6, random weights); tolerance 1e-5 * max_abs as the fixture README recommends.
Both of our code paths (fast and official-structured reference) are checked.
"""
import pytest
import torch

from pixelfolder.convert.inrgan import config_from_official, detect, from_official, resolve
from pixelfolder.errors import ConversionError
from pixelfolder.models.inrgan.fmm import inrgan_coords
from tests.helpers import assert_close, code_path, load_fixture, stored_view

FILES = ["inrgan_64.pt", "inrgan_128.pt", "inrgan_bil_64.pt", "inrgan_bil_128.pt"]
PATHS = ["fast", "reference"]


@pytest.fixture(scope="module", params=FILES)
def converted(request):
    fx = load_fixture(request.param)
    return fx, from_official(fx["state_dict"], fx["init_kwargs"])


def test_detect_and_arch(converted):
    fx, G = converted
    assert detect(fx["state_dict"])
    assert G.arch == fx["arch"]
    assert G.n_latent == fx["num_ws"]
    assert G.metadata["source"] == "official"


def test_w_avg_kept_and_mapping(converted):
    fx, G = converted
    assert torch.equal(G.mapping.w_avg, fx["w_avg"])
    with torch.no_grad():
        w = G.mapping(fx["inputs"]["z"])
        w7 = G.mapping(fx["inputs"]["z"], truncation_psi=0.7)
    assert_close(w, fx["w"], "w", rel=1e-6)
    assert_close(w7, fx["w_psi0.7"], "w_psi0.7", rel=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_every_case(converted, path):
    fx, G = converted
    ins = fx["inputs"]
    with code_path(G, path), torch.no_grad():
        for name, case in fx["cases"].items():
            if case["call"] == "G":
                img = G(ins["z"], truncation_psi=case["kwargs"]["truncation_psi"])
            else:
                img = G.synthesis(ins["wplus"])
            assert list(img.shape) == list(case["image_shape"]), name
            assert_close(stored_view(fx, img), case["image"], f"{name} ({path})", scale=case["max_abs"])


@pytest.mark.parametrize("path", PATHS)
def test_intermediates(converted, path):
    fx, G = converted
    inter = fx["intermediates"]
    with code_path(G, path), torch.no_grad():
        _, stages = G(fx["inputs"]["z"][:1], return_stages=True)
        feats = G.synthesis.blocks[0].coords(G.synthesis.input_resolution)
    ref = inter["b4_input_s0"]
    assert_close(feats.unsqueeze(0), ref, "b4 input")
    blocks = G.synthesis.blocks
    for block, stage in zip(blocks[:-1], stages[:-1]):
        ref = inter[f"block_img_b{block.res}"]
        assert_close(stage, ref, f"image after b{block.res} ({path})")
    for key, ref in inter.items():
        if key.startswith("coords_"):
            x, y = inrgan_coords(int(key.split("_")[1]))
            n = x.shape[0]
            assert torch.equal(torch.stack([x.expand(n, n), y[:, None].expand(n, n)]), ref), key


def test_w_index(converted):
    fx, G = converted
    ours, idx = {}, 0
    for block in G.synthesis.blocks:
        names = ([] if block.conv0 is None else ["conv0"]) + ["conv1"] + \
            [f"extra_convs.{j}" for j in range(len(block.extra_convs))] + ["torgb"]
        for j, name in enumerate(names):
            ours[f"b{block.res}.{name}"] = idx + j
        idx += block.num_conv
    assert ours == fx["w_index"]


def test_config_from_state_dict_alone(converted):
    fx, G = converted
    from_kwargs = config_from_official(fx["init_kwargs"], fx["state_dict"])
    from_sd = config_from_official(None, fx["state_dict"])
    for key, value in from_sd.items():
        assert from_kwargs[key] == value, key
    assert set(from_kwargs) - set(from_sd) == {"upsampling", "instance_norm", "mapping_lr_mul"}
    bare = from_official(fx["state_dict"], arch=fx["arch"])
    with torch.no_grad():
        assert torch.equal(bare(fx["inputs"]["z"]), G(fx["inputs"]["z"]))


def test_resolve_interpolations():
    fx = load_fixture("inrgan_64.pt")
    assert resolve(fx["init_kwargs"]["cfg"]) == fx["cfg_resolved"]
    assert resolve({"a": {"b": 3}, "c": "${a.b}", "d": "x${a.b}y"}) == {"a": {"b": 3}, "c": 3, "d": "x3y"}
    with pytest.raises(ConversionError):
        resolve({"a": "${a}"})
    with pytest.raises(ConversionError):
        resolve({"a": "${nowhere.b}"})


def test_conversion_errors():
    fx = load_fixture("inrgan_64.pt")
    sd = dict(fx["state_dict"])
    with pytest.raises(ConversionError, match="cannot map 1 key"):
        from_official({**sd, "synthesis.b4.mystery": torch.zeros(1)}, fx["init_kwargs"])
    bad = dict(sd)
    bad["synthesis.b8.conv1.bias"] = torch.zeros(7)
    with pytest.raises(ConversionError, match="shapes"):
        from_official(bad, fx["init_kwargs"])
    bad = dict(sd)
    bad["synthesis.b8.resample_filter"] = torch.ones(4, 4)
    with pytest.raises(ConversionError, match="differ"):
        from_official(bad, fx["init_kwargs"])
    kwargs = {**fx["init_kwargs"], "cfg": {**fx["init_kwargs"]["cfg"], "use_noise": True}}
    with pytest.raises(ConversionError, match="use_noise"):
        from_official(sd, kwargs)
    with pytest.raises(ConversionError, match="not inrgan_bil"):
        from_official(sd, fx["init_kwargs"], arch="inrgan_bil")
