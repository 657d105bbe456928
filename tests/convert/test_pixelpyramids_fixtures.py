"""A converted official PixelPyramids model reproduces the official test vectors (pixelpyramids_tiny.pt).

Source: ../shared/fixtures/official/pixelpyramids_tiny.pt (trimmed copy in tests/fixtures), tolerances from its
README §5: network outputs <= 1e-4 * max|stored|, per-level NLL <= 0.001 + 2e-5 * |nll| nats, bits/dim
relative 2e-5. Both BatchNorm protocols are checked against their own blocks.
"""
import pytest
import torch

from pixelfolder.convert.pixelpyramids import NO_PARAMS, config_from_params, from_official
from pixelfolder.errors import ConversionError
from pixelfolder.models import count_parameters
from tests.conftest import load_fixture

PROTOCOLS = {"official": "bn_train_batch_stats", "eval": "bn_eval_running_stats"}


@pytest.fixture(scope="module")
def fx():
    return load_fixture("pixelpyramids_tiny.pt")


@pytest.fixture(scope="module")
def model(fx):
    return from_official(fx["state_dict"], fx["config"])


def images(fx):
    return fx["inputs"]["images_uint8_hwc"].permute(0, 3, 1, 2).contiguous()


def assert_nll_close(ours, ref, what):
    assert ours.shape == ref.shape, what
    bound = 0.001 + 2e-5 * ref.abs()
    diff = (ours.detach() - ref).abs()
    assert bool((diff <= bound).all()), f"{what}: max diff {diff.max().item():.3g} nats"


def test_pyramid_inputs_match_the_official_loader(fx, model):
    xs, ds = model.model_inputs(model.codes_of(images(fx)))
    for level in range(model.num_levels - 1):
        assert torch.equal(xs[level], fx["inputs"]["downsmp_im"][level]), level
        assert torch.equal(ds[level], fx["inputs"]["diff_im"][level]), level


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unet_cond_and_mixture_params(fx, model, protocol):
    ref = fx["outputs"][PROTOCOLS[protocol]]
    codes = model.codes_of(images(fx))
    xs, _ = model.model_inputs(codes)
    with torch.no_grad(), model.bn_protocol(protocol):
        conds = [model.levels[i].unet(xs[i]) for i in range(model.num_levels - 1)]
    with torch.no_grad():
        params = model.mixture_params(codes, protocol=protocol)
    for name, ours, stored in [("unet_cond", conds, ref["unet_cond"]),
                               ("mixture_params", [params[i] for i in range(model.num_levels)], ref["mixture_params"])]:
        assert len(ours) == len(stored)
        for level, (a, b) in enumerate(zip(ours, stored)):
            assert a.shape == b.shape, f"{name}[{level}]"
            err = (a - b).abs().max().item()
            assert err <= 1e-4 * b.abs().max().item(), f"{name}[{level}] ({protocol}): {err:.3g}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_level_nll_total_and_bpd(fx, model, protocol):
    ref = fx["outputs"][PROTOCOLS[protocol]]
    with torch.no_grad():
        nll = model.level_nll(images(fx), protocol=protocol)
    assert_nll_close(nll, ref["nll"], f"per-level nll ({protocol})")
    assert_nll_close(nll.sum(0), ref["total_nll"], f"total nll ({protocol})")
    out = model.bits_per_dim(images(fx), protocol=protocol)
    stored = torch.tensor(ref["bpd_per_image"], dtype=torch.float64)
    assert torch.allclose(out["bpd"].double(), stored, rtol=2e-5, atol=0)
    assert out["batch_bpd"] == pytest.approx(ref["bpd_batch_official"], rel=2e-5)
    assert torch.allclose(out["per_level"].sum(0), out["bpd"], rtol=1e-6)
    bits = model.nll_bits(images(fx)) if protocol == model.config.bn_protocol else None
    if bits is not None:
        assert torch.allclose(bits.double() / model.dims, stored, rtol=2e-5, atol=0)


def test_singleton_batches_official_protocol(fx, model):
    ref = fx["outputs"]["bn_train_batch_stats_singleton_batches"]["nll"]
    x = images(fx)
    with torch.no_grad():
        for b in range(x.shape[0]):
            nll = model.level_nll(x[b:b + 1], protocol="official")
            assert_nll_close(nll[:, 0], ref[:, b], f"singleton image {b}")


def test_official_protocol_leaves_running_stats_alone(fx, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    try:
        with torch.no_grad():
            model.level_nll(images(fx), protocol="official")
            model.level_nll(images(fx), protocol="eval")
    finally:
        model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_key_spellings_and_containers(fx, model):
    """`module.` prefixes, parametrizations weight-norm names and a list container give the same model."""
    L = fx["config"]["L"]
    renamed = []
    for level in range(L):
        sd = {}
        for k, v in fx["state_dict"][level].items():
            k = k.replace("weight_g", "parametrizations.weight.original0").replace(
                "weight_v", "parametrizations.weight.original1")
            sd["module." + k] = v
        renamed.append(sd)
    other = from_official(renamed, {"params": fx["config"]})
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in other.state_dict().items())
    assert other.metadata["residual_offset"] == 0 and other.metadata["source"] == "official"


def test_dead_down_convs_dropped_or_kept(fx, model):
    kept = from_official(fx["state_dict"], fx["config"], keep_dead_down_convs=True)
    assert [count_parameters(lv) for lv in kept.levels] == fx["n_parameters_per_level"]
    dead = sum(v.numel() for sd in fx["state_dict"].values() for k, v in sd.items()
               if ".conv.double_conv." in k and k.startswith("downs.") and v.dtype.is_floating_point
               and "running" not in k)
    assert count_parameters(model) == sum(fx["n_parameters_per_level"]) - dead


def test_refusals(fx):
    with pytest.raises(ConversionError, match="store no configuration"):
        from_official(fx["state_dict"], None)
    assert "--params" in NO_PARAMS
    broken = dict(fx["state_dict"])
    broken[0] = {**broken[0], "inc.double_conv.9.weight": torch.zeros(1)}
    with pytest.raises(ConversionError, match="cannot map"):
        from_official(broken, fx["config"])
    with pytest.raises(ConversionError, match="level"):
        from_official({0: fx["state_dict"][0]}, fx["config"])


# The official params/*.json contents (visinf/pixelpyramids@30f4946), without data_root.
CELEBA_256 = {"params": {"dataset_name": "celeba_256", "batch_size": 48, "L": 13, "C": 64, "n_bits": 5,
                         "eval_interval": 1, "n_classes": [100] * 13, "n_squeeze": [2, 2, 2, 2] + [1] * 8,
                         "n_channels": 32, "n_res_layers": 2}}
LSUN = {"params": {"dataset_name": "lsun_bedroom", "batch_size": 4, "L": 11, "C": 64, "n_bits": 5, "eval_interval": 1,
                   "n_classes": [100] * 11, "n_squeeze": [2, 2, 2, 2] + [1] * 7, "n_channels": 96, "n_res_layers": 5}}
CELEBA_1024 = {"params": {"dataset_name": "celeba_1024", "batch_size": 32, "L": 17, "C": 64, "n_bits": 8,
                          "eval_interval": 1, "n_classes": [100] * 17, "n_squeeze": [1] * 19, "n_channels": 96,
                          "n_res_layers": 5}}


@pytest.mark.parametrize("params, preset, offset", [(CELEBA_256, "pixelpyramids-celeba256", 0),
                                                     (LSUN, "pixelpyramids-lsun128", 0),
                                                     (CELEBA_1024, "pixelpyramids-celeba1024", 0)])
def test_official_params_give_the_presets(params, preset, offset):
    from pixelfolder.registry import resolve_config
    fields = config_from_params(params)
    assert fields.pop("residual_offset") == offset
    _, config = resolve_config(preset)
    for key, value in fields.items():
        want = getattr(config, key)
        assert value == want or (key == "unet_n_layers" and want == ()), key


def test_residual_offset_follows_the_loader():
    assert config_from_params({**CELEBA_256["params"], "n_bits": 8})["residual_offset"] == 128   # data/celeba.py
    assert config_from_params({**LSUN["params"], "n_bits": 8})["residual_offset"] == 0           # data/lsun.py
    assert config_from_params(CELEBA_1024)["residual_offset"] == 0                               # celeba_1024.py
