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
from tests.helpers import PP_PROTOCOLS, assert_nll_close, pp_images


def test_pyramid_inputs_match_the_official_loader(pp_fx, pp_model):
    xs, ds = pp_model.model_inputs(pp_model.codes_of(pp_images(pp_fx)))
    for level in range(pp_model.num_levels - 1):
        assert torch.equal(xs[level], pp_fx["inputs"]["downsmp_im"][level]), level
        assert torch.equal(ds[level], pp_fx["inputs"]["diff_im"][level]), level


@pytest.mark.parametrize("protocol", PP_PROTOCOLS)
def test_unet_cond_and_mixture_params(pp_fx, pp_model, protocol):
    ref = pp_fx["outputs"][PP_PROTOCOLS[protocol]]
    codes = pp_model.codes_of(pp_images(pp_fx))
    xs, _ = pp_model.model_inputs(codes)
    with torch.no_grad(), pp_model.bn_protocol(protocol):
        conds = [pp_model.levels[i].unet(xs[i]) for i in range(pp_model.num_levels - 1)]
    with torch.no_grad():
        params = pp_model.mixture_params(codes, protocol=protocol)
    mixture = [params[i] for i in range(pp_model.num_levels)]
    for name, ours, stored in [("unet_cond", conds, ref["unet_cond"]),
                               ("mixture_params", mixture, ref["mixture_params"])]:
        assert len(ours) == len(stored)
        for level, (a, b) in enumerate(zip(ours, stored)):
            assert a.shape == b.shape, f"{name}[{level}]"
            err = (a - b).abs().max().item()
            assert err <= 1e-4 * b.abs().max().item(), f"{name}[{level}] ({protocol}): {err:.3g}"


@pytest.mark.parametrize("protocol", PP_PROTOCOLS)
def test_level_nll_total_and_bpd(pp_fx, pp_model, protocol):
    ref = pp_fx["outputs"][PP_PROTOCOLS[protocol]]
    with torch.no_grad():
        nll = pp_model.level_nll(pp_images(pp_fx), protocol=protocol)
    assert_nll_close(nll, ref["nll"], f"per-level nll ({protocol})")
    assert_nll_close(nll.sum(0), ref["total_nll"], f"total nll ({protocol})")
    out = pp_model.bits_per_dim(pp_images(pp_fx), protocol=protocol)
    stored = torch.tensor(ref["bpd_per_image"], dtype=torch.float64)
    assert torch.allclose(out["bpd"].double(), stored, rtol=2e-5, atol=0)
    assert out["batch_bpd"] == pytest.approx(ref["bpd_batch_official"], rel=2e-5)
    assert torch.allclose(out["per_level"].sum(0), out["bpd"], rtol=1e-6)
    bits = pp_model.nll_bits(pp_images(pp_fx)) if protocol == pp_model.config.bn_protocol else None
    if bits is not None:
        assert torch.allclose(bits.double() / pp_model.dims, stored, rtol=2e-5, atol=0)


def test_singleton_batches_official_protocol(pp_fx, pp_model):
    ref = pp_fx["outputs"]["bn_train_batch_stats_singleton_batches"]["nll"]
    x = pp_images(pp_fx)
    with torch.no_grad():
        for b in range(x.shape[0]):
            nll = pp_model.level_nll(x[b:b + 1], protocol="official")
            assert_nll_close(nll[:, 0], ref[:, b], f"singleton image {b}")


def test_official_protocol_leaves_running_stats_alone(pp_fx, pp_model):
    before = {k: v.clone() for k, v in pp_model.state_dict().items()}
    pp_model.train()
    try:
        with torch.no_grad():
            pp_model.level_nll(pp_images(pp_fx), protocol="official")
            pp_model.level_nll(pp_images(pp_fx), protocol="eval")
    finally:
        pp_model.eval()
    assert all(torch.equal(before[k], v) for k, v in pp_model.state_dict().items())


def test_key_spellings_and_containers(pp_fx, pp_model):
    """`module.` prefixes, parametrizations weight-norm names and a list container give the same model."""
    L = pp_fx["config"]["L"]
    renamed = []
    for level in range(L):
        sd = {}
        for k, v in pp_fx["state_dict"][level].items():
            k = k.replace("weight_g", "parametrizations.weight.original0").replace(
                "weight_v", "parametrizations.weight.original1")
            sd["module." + k] = v
        renamed.append(sd)
    other = from_official(renamed, {"params": pp_fx["config"]})
    ours = pp_model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in other.state_dict().items())
    assert other.metadata["residual_offset"] == 0 and other.metadata["source"] == "official"


def test_dead_down_convs_dropped_or_kept(pp_fx, pp_model):
    kept = from_official(pp_fx["state_dict"], pp_fx["config"], keep_dead_down_convs=True)
    assert [count_parameters(lv) for lv in kept.levels] == pp_fx["n_parameters_per_level"]
    dead = sum(v.numel() for sd in pp_fx["state_dict"].values() for k, v in sd.items()
               if ".conv.double_conv." in k and k.startswith("downs.") and v.dtype.is_floating_point
               and "running" not in k)
    assert count_parameters(pp_model) == sum(pp_fx["n_parameters_per_level"]) - dead


def test_refusals(pp_fx):
    with pytest.raises(ConversionError, match="store no configuration"):
        from_official(pp_fx["state_dict"], None)
    assert "--params" in NO_PARAMS
    broken = dict(pp_fx["state_dict"])
    broken[0] = {**broken[0], "inc.double_conv.9.weight": torch.zeros(1)}
    with pytest.raises(ConversionError, match="cannot map"):
        from_official(broken, pp_fx["config"])
    with pytest.raises(ConversionError, match="level"):
        from_official({0: pp_fx["state_dict"][0]}, pp_fx["config"])


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
