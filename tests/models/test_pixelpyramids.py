"""PixelPyramids model: parameter counts, exactness of the ancestral sampler, save/load and input errors.

Parameter totals: ../shared/reference/pixelpyramids.md §5 (167.04 M for celeba_256 of which 31.44 M are the
unused Down.conv blocks; lsun_bedroom 223.77 M / 43.25 M; celeba_1024 349.30 M / 68.93 M).
"""
import math

import pytest
import torch
from scipy.stats import chisquare

import pixelfolder
from pixelfolder.convert.pixelpyramids import from_official
from pixelfolder.errors import PixelfolderError
from pixelfolder.models.pixelpyramids.dmol import dmol_nll
from pixelfolder.models.pixelpyramids.pyramid import decompose, dequantize_to_uint8, squeeze_slots, to_model_space
from pixelfolder.models import count_parameters
from tests.helpers import load_fixture

# (preset, total with the dead Down.conv blocks, their share), millions, reference §5.
REFERENCE_M = [("pixelpyramids-celeba256", 167.04, 31.44), ("pixelpyramids-lsun128", 223.77, 43.25),
               ("pixelpyramids-celeba1024", 349.30, 68.93)]
# celeba_256 per level (reference §5): l0-2 42.56 M, l3 12.46 M, l4 4.93 M, l5-11 3.05 M, PixelCNN++ 0.62 M.
CELEBA256_LEVELS_M = [42.56] * 3 + [12.46, 4.93] + [3.05] * 7 + [0.62]


def meta(name, **overrides):
    with torch.device("meta"):
        return pixelfolder.create(name, **overrides)


@pytest.mark.parametrize("name, total, dead", REFERENCE_M)
def test_parameter_counts_match_the_reference(name, total, dead):
    full = count_parameters(meta(name, keep_dead_down_convs=True))
    ours = count_parameters(meta(name))
    assert round(full / 1e6, 2) == total
    assert round((full - ours) / 1e6, 2) == dead


def test_celeba256_exact_count_and_levels():
    model = meta("pixelpyramids-celeba256", keep_dead_down_convs=True)
    assert [round(count_parameters(lv) / 1e6, 2) for lv in model.levels] == CELEBA256_LEVELS_M
    assert all(count_parameters(lv.lstm) == 2_595_428 for lv in model.levels[:-1])
    assert count_parameters(model) == 167_041_512
    assert count_parameters(meta("pixelpyramids-celeba256")) == 135_599_976   # 167.04 M - 31.44 M dead


@pytest.fixture(scope="module")
def official_tiny():
    fx = load_fixture("pixelpyramids_tiny.pt")
    return from_official(fx["state_dict"], fx["config"])


def test_teacher_forcing_equivalence(official_tiny):
    """Every sampling step uses exactly the mixture the likelihood forward computes on the final sample."""
    model, trace = official_tiny, []
    codes = model.sample_codes([11, 12], batch_size=2, trace=trace)
    assert len(trace) == 16 + sum(lv.slots for lv in model.levels[:-1])
    with torch.no_grad():
        full = model.mixture_params(codes, protocol="eval")
    last = model.num_levels - 1
    for level, step, used in trace:
        if level == last:
            i, j = divmod(step, 4)
            ref = full[level][:, :, i:i + 1, j:j + 1]
        else:
            ref = squeeze_slots(full[level], model.levels[level].factor)[:, step]
        assert torch.allclose(used, ref, atol=1e-5, rtol=1e-5), (level, step)
    # and the likelihood of the image through the uint8 interface sees the same codes
    x = dequantize_to_uint8(codes, model.config.n_bits)
    assert torch.equal(model.codes_of(x), codes)


def _fixed_head(gen, n_classes):
    m = n_classes // 10
    return torch.cat([torch.randn(m, generator=gen), torch.rand(3 * m, generator=gen) * 1.6 - 0.8,
                      torch.rand(3 * m, generator=gen) * 1.5 - 2.5, torch.randn(3 * m, generator=gen)])


def test_whole_model_distribution_with_fixed_conditionals():
    """Zero output heads: every conditional is its level's fixed mixture, so every residual (and coarsest) pixel
    is an independent draw of it; chi-square of the colour histograms against the exact probabilities."""
    torch.manual_seed(0)
    model = pixelfolder.create("pixelpyramids-tiny", n_bits=2).eval()
    gen, heads = torch.Generator().manual_seed(1), []
    with torch.no_grad():
        for level in model.levels[:-1]:
            level.lstm.out.weight.zero_()
            level.lstm.out.bias.copy_(_fixed_head(gen, 30))
            heads.append(level.lstm.out.bias.clone())
        model.levels[-1].output.weight_g.zero_()
        model.levels[-1].output.bias.copy_(_fixed_head(gen, 30))
        heads.append(model.levels[-1].output.bias.clone())
    codes = model.sample_codes(range(24), batch_size=12)
    pyr = decompose(codes, 2, model.num_levels)
    colours = torch.cartesian_prod(*[torch.arange(4)] * 3).view(64, 3, 1, 1)
    probs = [torch.exp(-dmol_nll(h.view(1, 30, 1, 1).expand(64, 30, 1, 1), to_model_space(colours, 2), 2))
             for h in heads]
    for level, values in enumerate(pyr.residuals + [pyr.coarsest]):
        assert abs(probs[level].sum().item() - 1) < 1e-5
        index = (values[:, 0] * 16 + values[:, 1] * 4 + values[:, 2]).flatten()
        observed = torch.bincount(index, minlength=64).double()
        p = _chi_square_p(observed, probs[level])
        assert p > 1e-4, f"level {level}: chi-square p = {p:.3g} over {index.numel()} draws"
        if level == 0:   # the test has power: the same draws are rejected against another level's mixture
            assert _chi_square_p(observed, probs[1]) < 1e-6


def _chi_square_p(observed, probs):
    """Chi-square p-value of a histogram against exact probabilities, bins with expectation < 5 pooled."""
    expected = probs.double() * observed.sum()
    small = expected < 5
    obs = torch.cat([observed[~small], observed[small].sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    return chisquare(obs.numpy(), exp.numpy() * obs.sum().item() / exp.sum().item()).pvalue


def test_samples_do_not_depend_on_batch_size(official_tiny):
    one = official_tiny.sample_codes([5, 6, 7], batch_size=1)
    three = official_tiny.sample_codes([5, 6, 7], batch_size=3)
    assert torch.equal(one, three)
    assert torch.equal(official_tiny.sample_codes([6], batch_size=4)[0], one[1])
    assert not torch.equal(one[0], one[1])
    imgs = official_tiny.sample([5], batch_size=1)
    assert torch.equal(imgs, to_model_space(one[:1], 5))
    assert imgs.dtype == torch.float32 and imgs.min() >= -1 and imgs.max() <= 1


def test_official_sampler_runs_without_touching_batchnorm(official_tiny):
    before = {k: v.clone() for k, v in official_tiny.state_dict().items()}
    a = official_tiny.sample([1, 2], batch_size=2, mode="official")
    b = official_tiny.sample_codes([1, 2], batch_size=2, mode="official")
    assert a.shape == (2, 3, 32, 32) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(b, ((a.double() + 1) / 2 * 31).trunc().long())
    assert all(torch.equal(before[k], v) for k, v in official_tiny.state_dict().items())
    with pytest.raises(PixelfolderError, match="mode"):
        official_tiny.sample([1], mode="greedy")


def test_forward_training_and_save_load(tmp_path):
    torch.manual_seed(0)
    model = pixelfolder.create("pixelpyramids-tiny")
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    model.train()
    nll = model(x)
    assert nll.shape == (7, 2) and torch.isfinite(nll).all()
    nll.sum(0).mean().backward()
    # Official quirk (the down-pass ul layers take u as main input): only the last down 'ul' layer reaches the
    # output, so the up 'ul' stream and the other down 'ul' layers of the PixelCNN++ get no gradient.
    last = len(model.levels[-1].down_ul) - 1
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {n for n, _ in model.named_parameters()
                       if n.startswith("levels.6.up_ul.") or (n.startswith("levels.6.down_ul.")
                                                              and not n.startswith(f"levels.6.down_ul.{last}."))}
    subset = model(x, levels=[0, 6])
    assert torch.all(subset[1:6] == 0) and torch.all(subset[[0, 6]] > 0)
    model.eval()
    out = model.bits_per_dim(x)
    assert out["bpd"].shape == (2,) and out["per_level"].shape == (7, 2) and "subpixel" in out["units"]
    path = tmp_path / "pp.pt"
    pixelfolder.save(model, path)
    loaded = pixelfolder.load(path)
    assert loaded.arch == "pixelpyramids" and loaded.kind == "likelihood"
    with torch.no_grad():
        assert torch.allclose(loaded.level_nll(x), model.level_nll(x), rtol=1e-5, atol=1e-3)
    assert torch.allclose(loaded.nll_bits(x), out["bpd"] * model.dims, rtol=1e-5)


def test_bad_inputs_and_configs():
    model = pixelfolder.create("pixelpyramids-tiny").eval()
    with pytest.raises(PixelfolderError, match="uint8"):
        model.level_nll(torch.zeros(1, 3, 32, 32))
    with pytest.raises(PixelfolderError, match="32x32"):
        model.level_nll(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(PixelfolderError, match="protocol"):
        model.level_nll(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), protocol="train")
    with pytest.raises(PixelfolderError, match=r"takes 32x32 images .*got 48x48"):
        pixelfolder.create("pixelpyramids-tiny", height=48, width=48, device="meta")
    for n_bits in (0, 9):
        with pytest.raises(PixelfolderError, match="n_bits"):
            pixelfolder.create("pixelpyramids-tiny", n_bits=n_bits, device="meta")
    with pytest.raises(PixelfolderError, match="n_squeeze"):
        pixelfolder.create("pixelpyramids-tiny", n_squeeze=(3,) * 6, device="meta")
    with pytest.raises(PixelfolderError, match="residual_offset"):
        pixelfolder.create("pixelpyramids-tiny", residual_offset=32, device="meta")
    assert math.isclose(model.dims, 3 * 32 * 32)
