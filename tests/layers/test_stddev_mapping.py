"""Minibatch stddev grouping, truncation, style mixing and the mapping network's w_avg."""
import pytest
import torch

from pixelfolder.layers import MappingNetwork, mix_ws, truncate
from pixelfolder.models.discriminator import minibatch_stddev

REL_TOL = 1e-5


def stddev_loops(x, groups):
    """Extra channel for sample b: mean over (C, H, W) of sqrt(biased var over b's group + 1e-8)."""
    b, c, h, w = x.shape
    x = x.double()
    extra = torch.empty(b, 1, h, w, dtype=torch.float64)
    for members in groups:
        stack = torch.stack([x[m] for m in members])                       # (G, C, H, W)
        mean = stack.mean(0)
        var = ((stack - mean) ** 2).sum(0) / len(members)
        s = torch.sqrt(var + 1e-8).mean()
        for m in members:
            extra[m] = s
    return torch.cat([x, extra], dim=1).float()


def test_minibatch_stddev_groups_strided():
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ref = stddev_loops(x, [[0, 2, 4, 6], [1, 3, 5, 7]])
    out = minibatch_stddev(x, 4)
    assert out.shape == (8, 4, 4, 4)
    assert torch.equal(out[:, :3], x)
    err = (out - ref).abs().max().item()
    assert err <= REL_TOL * ref.abs().max().item()
    # and NOT contiguous groups (guards the reference's grouping as a real distinction)
    wrong = stddev_loops(x, [[0, 1, 2, 3], [4, 5, 6, 7]])
    assert (out[:, 3] - wrong[:, 3]).abs().max() > 1e-3


def test_minibatch_stddev_small_batch_single_group():
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    ref = stddev_loops(x, [[0, 1, 2]])
    out = minibatch_stddev(x, 4)
    assert (out - ref).abs().max().item() <= REL_TOL * ref.abs().max().item()


def test_minibatch_stddev_indivisible_batch_raises():
    with pytest.raises(ValueError):
        minibatch_stddev(torch.randn(6, 2, 4, 4), 4)


@pytest.fixture
def ws_pair():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 6, 5, generator=g), torch.randn(5, generator=g)


def test_truncate_all_layers(ws_pair):
    ws, avg = ws_pair
    out = truncate(ws, avg, 0.7)
    ref = torch.stack([torch.stack([avg + 0.7 * (ws[b, i] - avg) for i in range(6)]) for b in range(2)])
    assert (out - ref).abs().max() <= 1e-6


@pytest.mark.parametrize("cutoff", [1, 3, 5])
def test_truncate_cutoff_only_touches_lower_layers(ws_pair, cutoff):
    ws, avg = ws_pair
    out = truncate(ws, avg, 0.5, cutoff=cutoff)
    assert torch.equal(out[:, cutoff:], ws[:, cutoff:])
    ref = avg + 0.5 * (ws[:, :cutoff] - avg)
    assert (out[:, :cutoff] - ref).abs().max() <= 1e-6
    assert (out[:, :cutoff] - ws[:, :cutoff]).abs().max() > 1e-3


def test_truncate_psi_one_is_identity(ws_pair):
    ws, avg = ws_pair
    assert torch.equal(truncate(ws, avg, 1.0), ws)
    assert torch.equal(truncate(ws, avg, 1.0, cutoff=2), ws)


def test_truncate_psi_zero_gives_average(ws_pair):
    ws, avg = ws_pair
    assert torch.equal(truncate(ws, avg, 0.0), avg.expand_as(ws))


@pytest.mark.parametrize("crossover", [1, 3, 5])
def test_mix_ws(ws_pair, crossover):
    a, _ = ws_pair
    b = torch.randn_like(a)
    out = mix_ws(a, b, crossover)
    for i in range(6):
        assert torch.equal(out[:, i], a[:, i] if i < crossover else b[:, i])


@pytest.mark.parametrize("crossover", [0, 6, 7, -1])
def test_mix_ws_crossover_out_of_range(ws_pair, crossover):
    a, _ = ws_pair
    with pytest.raises(ValueError):
        mix_ws(a, a, crossover)


def small_mapping():
    torch.manual_seed(0)
    return MappingNetwork(z_dim=16, w_dim=8, num_layers=2, num_ws=3)


def test_compute_w_avg_deterministic_and_is_mean_of_embed():
    m = small_mapping()
    a = m.compute_w_avg(1000, seed=5, batch=300)
    assert torch.equal(m.w_avg, a)
    b = m.compute_w_avg(1000, seed=5, batch=300)
    assert torch.equal(a, b)
    c = m.compute_w_avg(1000, seed=6, batch=300)
    assert (a - c).abs().max() > 0
    # the documented draw: one generator seeded `seed`, z drawn in consecutive batches of `batch`
    g = torch.Generator().manual_seed(5)
    zs = torch.cat([torch.randn(n, 16, generator=g) for n in (300, 300, 300, 100)])
    with torch.no_grad():
        ref = m.embed(zs.double().float()).double().mean(0).float()
    assert (a - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_compute_w_avg_close_to_large_sample_mean():
    m = small_mapping()
    a = m.compute_w_avg(20000, seed=0)
    with torch.no_grad():
        big = m.embed(torch.randn(100000, 16, generator=torch.Generator().manual_seed(123))).mean(0)
        spread = m.embed(torch.randn(4000, 16, generator=torch.Generator().manual_seed(9))).std(0)
    # standard error of a 20k-sample mean is spread/141; allow ~6 standard errors
    assert ((a - big).abs() <= 6 * spread / 20000 ** 0.5 + 1e-6).all()


def test_mapping_forward_shape_and_truncation():
    m = small_mapping()
    m.compute_w_avg(500)
    z = torch.randn(4, 16)
    ws = m(z)
    assert ws.shape == (4, 3, 8)
    assert torch.equal(ws[:, 0], ws[:, 2])
    with torch.no_grad():
        assert torch.equal(ws[:, 0], m.embed(z))
        assert torch.allclose(m(z, truncation_psi=0.0), m.w_avg.expand(4, 3, 8))
