"""Discretised logistic mixture: the official loss values, normalisation, and the exact sampler's distribution."""
import itertools

import pytest
import torch
from scipy import stats

from pixelfolder.errors import PixelfolderError
from pixelfolder.models.pixelpyramids.dmol import dmol_nll, dmol_num_mix, dmol_sample, dmol_sample_official
from pixelfolder.models.pixelpyramids.pyramid import to_model_space
from tests.helpers import load_fixture

FX = load_fixture("pp_dmol_cases.pt")
CASES = {c["name"]: c for c in FX["dmol_cases"]}
P_FAIL = 1e-4          # a sampler test fails only when the histogram is this unlikely under the model


def x64_from_codes(codes, n_bits):
    n = 2 ** n_bits
    return (codes.double() / (n - 1)) * 2 - 1


@pytest.mark.parametrize("name", list(CASES))
def test_official_loss_float32(name):
    """Every case, including the ill-conditioned ones, within 1e-3 nats per pixel of the official float32 values."""
    c = CASES[name]
    x = to_model_space(c["codes"], c["n_bits"])
    assert torch.equal(x, c["x"])
    per_pixel = dmol_nll(c["l"], x, c["n_bits"], per_pixel=True)
    assert per_pixel.dtype == torch.float32 and per_pixel.shape == c["nll_per_pixel"].shape
    assert (per_pixel - c["nll_per_pixel"]).abs().max() <= 1e-3
    total = dmol_nll(c["l"], x, c["n_bits"])
    assert total.shape == c["nll"].shape
    assert ((total - c["nll"]).abs() <= 1e-3 + 2e-5 * c["nll"].abs()).all()
    assert dmol_num_mix(c["l"].shape[1]) == c["n_mix"]


@pytest.mark.parametrize("name", list(CASES))
def test_official_loss_float64(name):
    """The same formula run in float64 (x from the codes in float64) matches the official float64 run."""
    c = CASES[name]
    x = x64_from_codes(c["codes"], c["n_bits"])
    per_pixel = dmol_nll(c["l"].double(), x, c["n_bits"], per_pixel=True)
    assert per_pixel.dtype == torch.float64
    assert (per_pixel - c["nll_per_pixel_float64"]).abs().max() <= 1e-6
    assert torch.allclose(dmol_nll(c["l"].double(), x, c["n_bits"]), c["nll_float64"], rtol=0, atol=1e-6)


def random_params(gen, n_mix, *, coeff_scale=1.0, log_scale=(-3.0, 0.0), mean_range=1.2, dtype=torch.float64):
    """Parameters (1, 10*n_mix, 1, 1) of one pixel in the official layout."""
    logits = torch.randn(n_mix, generator=gen, dtype=dtype)
    means = (torch.rand(3 * n_mix, generator=gen, dtype=dtype) * 2 - 1) * mean_range
    lo, hi = log_scale
    scales = lo + (hi - lo) * torch.rand(3 * n_mix, generator=gen, dtype=dtype)
    coeffs = torch.randn(3 * n_mix, generator=gen, dtype=dtype) * coeff_scale
    return torch.cat([logits, means, scales, coeffs]).view(1, -1, 1, 1)


def all_colours(n_bits):
    """(n^3, 3) int64 codes of every colour, R slowest, and their model-space (n^3, 3, 1, 1) float64 values."""
    n = 2 ** n_bits
    codes = torch.tensor(list(itertools.product(range(n), repeat=3)), dtype=torch.int64)
    return codes, x64_from_codes(codes, n_bits).view(-1, 3, 1, 1)


def colour_probs(params, n_bits):
    """Probability of every colour of one pixel, exp(-nll), float64."""
    codes, x = all_colours(n_bits)
    nll = dmol_nll(params.double().expand(len(codes), -1, -1, -1), x, n_bits)
    return codes, torch.exp(-nll)


@pytest.mark.parametrize("n_bits", [1, 2, 3, 4, 5])
def test_pixel_distribution_sums_to_one(n_bits):
    gen = torch.Generator().manual_seed(n_bits)
    for n_mix in (1, 4):
        params = random_params(gen, n_mix, log_scale=(-4.0, 0.5))
        _, probs = colour_probs(params, n_bits)
        assert abs(probs.sum().item() - 1) <= 1e-9
        codes, _ = all_colours(n_bits)
        x32 = to_model_space(codes, n_bits).view(-1, 3, 1, 1)
        nll32 = dmol_nll(params.float().expand(len(codes), -1, -1, -1), x32, n_bits)
        assert abs(torch.exp(-nll32.double()).sum().item() - 1) <= 1e-5


def histogram(samples, n_bits):
    """(N, 3, 1, 1) codes -> counts over the n^3 colours in all_colours order."""
    n = 2 ** n_bits
    s = samples.view(-1, 3)
    return torch.bincount((s[:, 0] * n + s[:, 1]) * n + s[:, 2], minlength=n ** 3).double()


def chi_square_p(counts, probs):
    """Pearson chi-square p-value; colours expected fewer than 5 times are pooled into one cell."""
    expected = probs * counts.sum()
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    if exp[-1] < 5:            # merge the pooled cell into the smallest large cell if it is still too small
        obs, exp = obs[:-1].clone(), exp[:-1].clone()
        i = int(exp.argmin())
        obs[i] += counts[small].sum()
        exp[i] += expected[small].sum()
    assert (obs.sum() - exp.sum()).abs() < 1e-6 * obs.sum()
    stat = ((obs - exp) ** 2 / exp).sum().item()
    return stats.chi2.sf(stat, len(obs) - 1)


def draw(params, n_bits, count, seed, known=None):
    """`count` draws for one pixel, as a (1, C, count, 1) batch from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    p = params.float().expand(1, -1, count, 1)
    return dmol_sample(p, n_bits, generator=gen, known=known).permute(2, 1, 0, 3)


SAMPLER_CASES = {   # name: (n_bits, n_mix, random_params keywords)
    "2bit_mix3": (2, 3, {}),
    "3bit_mix3": (3, 3, {}),
    "3bit_strong_coupling": (3, 2, {"coeff_scale": 4.0, "log_scale": (-2.5, -1.0)}),
    "3bit_sharp_clamped": (3, 3, {"log_scale": (-9.0, -3.0), "mean_range": 1.0}),
}


@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_sampler_matches_model_distribution(name):
    n_bits, n_mix, kw = SAMPLER_CASES[name]
    params = random_params(torch.Generator().manual_seed(len(name) + 31 * n_bits), n_mix, **kw).float()
    _, probs = colour_probs(params, n_bits)
    samples = draw(params, n_bits, 200_000, seed=123)
    assert samples.dtype == torch.int64 and int(samples.min()) >= 0 and int(samples.max()) < 2 ** n_bits
    p = chi_square_p(histogram(samples, n_bits), probs)
    assert p >= P_FAIL, f"{name}: chi-square p = {p:.3g}"


def test_chi_square_detects_a_wrong_distribution():
    """Sanity of the test itself: samples at the official temperature 0.1, snapped, fail it."""
    n_bits = 3
    params = random_params(torch.Generator().manual_seed(5), 3).float()
    _, probs = colour_probs(params, n_bits)
    gen = torch.Generator().manual_seed(0)
    v = dmol_sample_official(params.expand(1, -1, 20_000, 1), n_bits, generator=gen)
    codes = torch.round((v.double() + 1) / 2 * (2 ** n_bits - 1)).long().permute(2, 1, 0, 3)
    assert chi_square_p(histogram(codes, n_bits), probs) < P_FAIL


def test_sampler_conditioned_on_known_red():
    """known R: the (G, B) draws follow p(G, B | R) (component drawn from its posterior)."""
    n_bits, n = 3, 8
    params = random_params(torch.Generator().manual_seed(11), 3, coeff_scale=2.0).float()
    codes, probs = colour_probs(params, n_bits)
    red = 2
    cond = torch.where(codes[:, 0] == red, probs, torch.zeros_like(probs))
    known = torch.full((1, 3, 100_000, 1), -1, dtype=torch.int64)
    known[:, 0] = red
    samples = draw(params, n_bits, 100_000, seed=9, known=known)
    assert (samples[:, 0] == red).all()
    counts = histogram(samples, n_bits)[codes[:, 0] == red]
    assert chi_square_p(counts, (cond / cond.sum())[codes[:, 0] == red]) >= P_FAIL
    full = torch.randint(0, n, (1, 3, 5, 1), generator=torch.Generator().manual_seed(1))
    assert torch.equal(draw(params, n_bits, 5, seed=2, known=full).permute(2, 1, 0, 3), full)


def test_sampler_is_seeded_and_per_pixel():
    gen = torch.Generator().manual_seed(3)
    params = torch.randn(3, 40, 4, 8, generator=gen)
    a = dmol_sample(params, 5, generator=torch.Generator().manual_seed(42))
    b = dmol_sample(params, 5, generator=torch.Generator().manual_seed(42))
    c = dmol_sample(params, 5, generator=torch.Generator().manual_seed(43))
    assert a.shape == (3, 3, 4, 8) and a.dtype == torch.int64
    assert torch.equal(a, b) and not torch.equal(a, c)
    other = params.clone()
    other[1:] = torch.randn(2, 40, 4, 8, generator=gen)          # other batch elements change, the stream does not
    d = dmol_sample(other, 5, generator=torch.Generator().manual_seed(42))
    assert torch.equal(a[0], d[0]) and not torch.equal(a[1:], d[1:])


def test_official_sampler_shape_range_and_temperature():
    n_bits = 5
    params = torch.zeros(1, 10, 64, 64)          # one component: mean 0, scale 0.05, no coupling
    params[:, 4:7] = torch.log(torch.tensor(0.05))
    draws = {t: dmol_sample_official(params, n_bits, generator=torch.Generator().manual_seed(0), temperature=t)
             for t in (1.0, 0.1)}
    for v in draws.values():
        assert v.shape == (1, 3, 64, 64) and v.dtype == torch.float32
        assert float(v.min()) >= -1 and float(v.max()) <= 1
    ratio = draws[0.1].std() / draws[1.0].std()
    assert 0.08 < ratio < 0.12
    expected_std = 0.05 * torch.pi / 3 ** 0.5                    # logistic standard deviation at temperature 1
    assert abs(draws[1.0].std().item() / expected_std - 1) < 0.05
    grid = to_model_space(torch.round((draws[1.0] + 1) / 2 * 31), n_bits)
    assert not torch.equal(draws[1.0], grid)                     # values are not snapped to the code grid
    again = dmol_sample_official(params, n_bits, generator=torch.Generator().manual_seed(0), temperature=1.0)
    assert torch.equal(again, draws[1.0])
    wide = torch.randn(2, 30, 8, 8, generator=torch.Generator().manual_seed(1)) * 3
    v = dmol_sample_official(wide, n_bits, generator=torch.Generator().manual_seed(0), temperature=1.0)
    assert float(v.min()) >= -1 and float(v.max()) <= 1 and (v.abs() == 1).any()


def test_errors():
    with pytest.raises(PixelfolderError, match="multiple of 10"):
        dmol_num_mix(25)
    with pytest.raises(PixelfolderError, match="n_bits"):
        dmol_nll(torch.zeros(1, 10, 2, 2), torch.zeros(1, 3, 2, 2), 9)
    with pytest.raises(PixelfolderError, match="do not match"):
        dmol_nll(torch.zeros(1, 10, 2, 2), torch.zeros(1, 3, 2, 3), 5)
    known = torch.full((1, 3, 2, 2), -1, dtype=torch.int64)
    known[0, 1] = 3                                               # G known without R
    with pytest.raises(PixelfolderError, match="prefix"):
        dmol_sample(torch.zeros(1, 10, 2, 2), 5, known=known)
