"""PixelPyramids' inference path (no_grad: folded BatchNorm, channels_last, cached weights) against the plain path.

The plain path runs whenever autograd is on, so the same model and inputs give both; they may differ only by
float reordering (<= 1e-4 * max|params| on the mixture parameters, per-level NLL within the fixture tolerance
0.001 + 2e-5 * |nll| nats). The weight cache must follow training steps, BatchNorm statistic updates,
load_state_dict and edits through .data (the last two kinds bump no version counter): after any of them the
inference path must equal a freshly built model holding the same state.
"""
import pytest
import torch

import pixelfolder
from pixelfolder.layers import DerivedCache, release_cached
from pixelfolder.models.pixelpyramids.unet_lstm import BatchNorm, DoubleConv
from pixelfolder.models.pixelpyramids import PixelPyramids  # noqa: F401  (registers)


def tiny(seed: int):
    torch.manual_seed(seed)
    model = pixelfolder.create("pixelpyramids-tiny")
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BatchNorm):      # non-trivial affine and running statistics
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def images(seed: int = 0, batch: int = 2):
    return torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def both_paths(model, x, protocol):
    """(inference-path, plain-path) per-level NLL (L, B)."""
    with torch.no_grad():
        fast = model.level_nll(x, protocol=protocol)
    with torch.enable_grad():
        plain = model.level_nll(x, protocol=protocol).detach()
    return fast, plain


def assert_nll_close(a, b, what):
    bound = 0.001 + 2e-5 * b.abs()
    assert bool(((a - b).abs() <= bound).all()), f"{what}: max diff {(a - b).abs().max().item():.3g} nats"


@pytest.mark.parametrize("protocol", ["eval", "official"])
def test_inference_path_matches_plain_path(protocol):
    model, x = tiny(0), images()
    fast, plain = both_paths(model, x, protocol)
    assert_nll_close(fast, plain, protocol)
    codes = model.codes_of(x)
    with torch.no_grad():
        params_fast = model.mixture_params(codes, protocol=protocol)
    with torch.enable_grad():
        params_plain = model.mixture_params(codes, protocol=protocol)
    for level, ref in params_plain.items():
        err = (params_fast[level] - ref.detach()).abs().max().item()
        assert err <= 1e-4 * ref.abs().max().item(), (protocol, level, err)


def test_cache_follows_training_steps_and_statistics():
    model, x = tiny(1), images(1)
    with torch.no_grad():
        before = model.level_nll(x, protocol="eval")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(x).sum(0).mean().backward()        # also updates the BatchNorm running statistics
    fine = [p for n, p in model.named_parameters() if not n.startswith("levels.6.")]
    assert all(p.grad is not None for p in fine)     # the plain path trains every fine level
    opt.step()
    with torch.no_grad():                    # training-mode BatchNorm under no_grad: the plain path, stats move
        model.level_nll(images(2), levels=[0])
    model.eval()
    fast, plain = both_paths(model, x, "eval")
    assert_nll_close(fast, plain, "after a training step")
    assert (fast - before).abs().max() > 0.1


def test_cache_follows_load_state_dict_and_release():
    model, other, x = tiny(2), tiny(3), images(3)
    with torch.no_grad():
        model.level_nll(x)                   # fills the caches with model's own weights
        model.load_state_dict(other.state_dict())
        loaded = model.level_nll(x)
        expected = other.level_nll(x)
    assert torch.equal(loaded, expected)
    release_cached(model)
    assert all(not m._cache.entries for m in model.modules() if isinstance(getattr(m, "_cache", None), DerivedCache))
    with torch.no_grad():
        assert torch.equal(model.level_nll(x), expected)



def fresh_copy(model):
    """A newly built tiny model holding model's current state (empty weight caches), in eval mode."""
    other = pixelfolder.create("pixelpyramids-tiny")
    other.load_state_dict(model.state_dict())
    return other.eval()


def eval_bits(model, x):
    with torch.no_grad():                    # the inference path, cached weights
        return model.nll_bits(x)


def test_cache_sees_running_statistics_of_a_training_forward():
    model, x = tiny(4), images(4)
    before = eval_bits(model, x)             # fills the caches
    model.train()
    with torch.no_grad():                    # running statistics move in place, no version bump
        model(images(5))
    assert all(not m._cache.entries for m in model.modules() if isinstance(m, DoubleConv))   # dropped explicitly
    model.eval()
    after = eval_bits(model, x)
    assert torch.equal(after, eval_bits(fresh_copy(model), x))
    assert (after - before).abs().max() > 0.01


@pytest.mark.parametrize("name, factor", [("levels.0.unet.inc.conv1.weight", 1.5),
                                          ("levels.0.unet.ups.3.merge.bn2.running_var", 0.01),
                                          ("levels.2.lstm.cells.0.weight_hh", 1.5)])
def test_cache_sees_edits_through_data(name, factor):
    model, x = tiny(5), images(6)
    before = eval_bits(model, x)
    dict(model.named_parameters(), **dict(model.named_buffers()))[name].data.mul_(factor)   # no version bump
    after = eval_bits(model, x)
    assert torch.equal(after, eval_bits(fresh_copy(model), x))
    assert (after - before).abs().max() > 1e-3
