"""ADA (pixelfolder.training.ada): the pipeline against the official AugmentPipe's outputs (fixtures/ada/
official_augment.pt: NVlabs/stylegan2-ada-pytorch's training/augment.py run on CPU in float64, torch.rand and
torch.randn patched to return our u/z columns in its call order), against direct formulas (blits, colour), probabilities, batch independence, gradients,
and the controller's updates, resume and absence of host syncs."""
import contextlib
import math
import os
import sys

import pytest
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.training import ada
from pixelfolder.training.ada import NUM_NORMAL, NUM_UNIFORM, AdaController, AugmentPipe
from pixelfolder.training.randomness import Draws
from tests.helpers import load_fixture

ALL_KEYS = ada.GEOM_KEYS + ada.COLOR_KEYS
GATE = {k: i for i, k in enumerate(ada.GATES)}
UVAL = {k: len(ada.GATES) + i for i, k in enumerate(ada.U_VALUES)}
ZVAL = {k: i for i, k in enumerate(ada.Z_VALUES)}


def only(key: str, **kw) -> AugmentPipe:
    """A pipeline with transform `key` alone."""
    return AugmentPipe("bgc", **{k: (1 if k == key else 0) for k in ALL_KEYS}, **kw)


def randomness(n: int, u_values=None, z_values=None, gates: float = 0.0):
    """u with every gate at `gates` (0: open at p = 1) and the given value columns; z likewise."""
    u = torch.full((n, NUM_UNIFORM), 0.5)
    u[:, :len(ada.GATES)] = gates
    z = torch.zeros(n, NUM_NORMAL)
    for k, v in (u_values or {}).items():
        u[:, UVAL[k]] = torch.as_tensor(v, dtype=torch.float32)
    for k, v in (z_values or {}).items():
        z[:, ZVAL[k]] = torch.as_tensor(v, dtype=torch.float32)
    return u, z


def image(n=4, c=3, h=16, w=16, seed=0, dtype=torch.float32):
    """A random image batch in [-1, 1]."""
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


# ------------------------------------------------------------------------------------------ official fixture
@pytest.fixture(scope="module")
def official():
    return load_fixture("ada/official_augment.pt")


@pytest.mark.parametrize("case", range(8))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_official_augment_pipe(official, case, dtype):
    c = official["cases"][case]
    x = official[c["image"]].to(dtype)
    y = AugmentPipe(c["spec"]).apply(x, c["p"], official[c["u"]], official["z"])
    err = (y.float() - c["out"]).abs()
    # The official pads by a batch-dependent margin that is slightly short near its edge (it differs from
    # itself with maximal padding by up to ~1.4e-4 there); we pad maximally, so allow that at a few pixels.
    assert y.dtype == dtype and err.max() < 3e-4 and err.mean() < 3e-6, (err.max(), err.mean())
    assert (c["out"] - x.float()).abs().max() > 0.1                    # the case does augment


# ---------------------------------------------------------------------------------------------- blits
# The official runs blits through its resampling chain too; sym6 is not symmetric (centroid 5.10 of 11 taps),
# so a mirrored chain is off by a fraction of a pixel: flips and quarter turns equal torch.flip / torch.rot90
# only approximately, on smooth images (bit-level agreement with the official is the fixture test's job).
def smooth_image(h=16, w=16, cycles=0.04):
    """Three smooth channels (low-frequency waves), amplitude 1."""
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    t = 2 * math.pi * cycles
    img = torch.stack([torch.sin(t * (0.8 * xx + 0.6 * yy) + 1), torch.cos(t * (0.3 * xx - yy)),
                       torch.sin(t * xx + 2) * torch.cos(t * yy)])
    return img.expand(2, 3, h, w).clone()


def assert_near(y, expect, wrong, tol):
    """y is within tol of expect (max abs), and far from the plausible wrong answer."""
    assert (y - expect).abs().max() < tol, (y - expect).abs().max()
    assert (y - wrong).abs().max() > 5 * tol


@pytest.mark.parametrize("flip", [0, 1])
def test_xflip_is_torch_flip(flip):
    x = smooth_image()
    u, z = randomness(2, {"xflip": 0.25 + 0.5 * flip})
    y = only("xflip").apply(x, 1.0, u, z)
    if flip:
        assert_near(y, torch.flip(x, [3]), torch.flip(x, [2]), 0.04)
    else:
        assert torch.equal(y, x)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate90_is_torch_rot90(k):
    x = smooth_image()
    u, z = randomness(2, {"rotate90": (k + 0.5) / 4})
    y = only("rotate90").apply(x, 1.0, u, z)
    assert_near(y, torch.rot90(x, k, dims=(2, 3)), torch.rot90(x, -k, dims=(2, 3)) if k != 2 else x, 0.06)


def test_integer_translation_shifts_with_reflect_padding():
    x = image(h=16, w=16)
    u, z = randomness(4, {"xint_x": 0.75, "xint_y": 0.375})       # t = (0.125, -0.0625) * 16 = (+2, -1) px
    y = only("xint", xint_max=0.25).apply(x, 1.0, u, z)
    pad = torch.nn.functional.pad(x, [4, 4, 4, 4], mode="reflect")
    expect = pad[:, :, 4 + 1:4 + 1 + 16, 4 - 2:4 - 2 + 16]          # out(y, x) = in(y + 1, x - 2)
    torch.testing.assert_close(y, expect, atol=2e-5, rtol=0)


def test_arbitrary_rotation_by_quarter_turn_is_rot90():
    x = smooth_image()
    u, z = randomness(2, {"rotate_pre": 0.75, "rotate_post": 0.5})   # pre: +pi/2, post: 0
    y = only("rotate").apply(x, 1.0, u, z)
    assert_near(y, torch.rot90(x, 1, dims=(2, 3)), torch.rot90(x, -1, dims=(2, 3)), 0.04)


# ---------------------------------------------------------------------------------------------- colour
def test_brightness_adds_b():
    x = image()
    u, z = randomness(4, z_values={"brightness": torch.tensor([-1.0, 0.5, 2.0, 0.0])})
    y = only("brightness").apply(x, 1.0, u, z)
    b = torch.tensor([-1.0, 0.5, 2.0, 0.0]).view(4, 1, 1, 1) * 0.2
    torch.testing.assert_close(y, x + b)


def test_contrast_scales_around_zero():
    x = image()
    z_c = torch.tensor([-1.0, 0.5, 2.0, 0.3])
    y = only("contrast").apply(x, 1.0, *randomness(4, z_values={"contrast": z_c}))
    torch.testing.assert_close(y, x * torch.exp2(z_c * 0.5).view(4, 1, 1, 1))


def test_luma_flip_reflects_across_the_grey_plane():
    x = image()
    y = only("lumaflip").apply(x, 1.0, *randomness(4, {"lumaflip": 0.75}))
    torch.testing.assert_close(y, x - 2 * x.mean(dim=1, keepdim=True), atol=1e-6, rtol=0)


def test_hue_third_turn_permutes_channels():
    x = image()
    y = only("hue").apply(x, 1.0, *randomness(4, {"hue": 5 / 6}))    # theta = 2 pi / 3
    torch.testing.assert_close(y, x[:, [2, 0, 1]], atol=1e-5, rtol=0)


def test_saturation_scales_around_grey():
    x = image()
    y = only("saturation").apply(x, 1.0, *randomness(4, z_values={"saturation": -1.0}))
    grey = x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y, grey + 0.5 * (x - grey), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------- probability
def test_p_zero_is_exact_identity():
    for dtype in (torch.float32, torch.float64):
        x = image(dtype=dtype)
        pipe = AugmentPipe("bgc")
        assert torch.equal(pipe(x, torch.zeros(()), Draws(0, 3, "ada", range(4))), x)
        assert torch.equal(pipe(x, 0.0, Draws(0, 3, "ada", range(4))), x)


# share of samples a transform changes, given that its gate opens (values that are no-ops excluded)
# (xint on 8 px: the shift is round(8 t), t uniform in +-0.125, zero on both axes with probability 1/4)
NON_IDENTITY = dict(xflip=0.5, rotate90=0.75, xint=0.75, lumaflip=0.5)


@pytest.mark.parametrize("key", ALL_KEYS)
@pytest.mark.parametrize("p", [0.3, 1.0])
def test_fraction_of_samples_touched_is_p(key, p):
    n = 800
    x = image(n=n, h=8, w=8, seed=1)
    y = only(key)(x, torch.tensor(p), Draws(7, 0, f"frac-{key}", range(n)))
    touched = (y != x).flatten(1).any(dim=1).double().mean().item()
    expect = p * NON_IDENTITY.get(key, 1.0)
    assert abs(touched - expect) < 0.07, (key, touched, expect)        # > 3.9 sigma


def test_fixed_number_of_draws_per_call():
    x = image()
    for spec, p in [("blit", 0.0), ("color", 0.5), ("bgc", torch.tensor(1.0))]:
        draws = Draws(0, 0, "ada", range(4))
        AugmentPipe(spec)(x, p, draws)
        assert draws.draws == 2


def test_batch_independent():
    x = image(n=8, seed=3)
    pipe, p = AugmentPipe("bgc"), torch.tensor(0.7)
    whole = pipe(x, p, Draws(5, 11, "ada", range(8)))
    parts = torch.cat([pipe(x[:4], p, Draws(5, 11, "ada", range(4))),
                       pipe(x[4:], p, Draws(5, 11, "ada", range(4, 8)))])
    torch.testing.assert_close(whole, parts, atol=1e-6, rtol=0)
    assert not torch.equal(whole, x)


# ---------------------------------------------------------------------------------------------- gradients
def test_gradient_reaches_images():
    x = image().requires_grad_(True)
    y = AugmentPipe("bgc")(x, 1.0, Draws(0, 0, "ada", range(4)))
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradcheck_and_gradgradcheck_geometric_float64():
    x = image(n=1, c=1, h=8, w=8, dtype=torch.float64).requires_grad_(True)
    u, z = randomness(1, {"rotate_pre": 0.6, "rotate_post": 0.45}, {"scale": 0.7, "aniso": -0.5, "xfrac_x": 0.4})
    pipe = AugmentPipe("geom")
    fn = lambda t: pipe.apply(t, 1.0, u, z)                             # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-6, fast_mode=True)


def test_r1_through_augmentation_double_backward():
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 14 * 14, 1))
    x = image().requires_grad_(True)
    logits = disc(AugmentPipe("bgc")(x, 1.0, Draws(0, 0, "ada", range(4))))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    w = disc[0].weight.grad
    assert w is not None and torch.isfinite(w).all() and w.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- controller
def test_controller_positive_signs_raise_p_by_one_step_per_update():
    c = AdaController(target=0.6, speed_kimg=500, interval=4, batch=64)
    step = 64 * 4 / 500_000
    for s in range(1, 13):
        c.accumulate(torch.rand(64, 1) + 0.1)
        assert c.update(s) == (s % 4 == 0)
        assert c.p_value() == pytest.approx(step * (s // 4), rel=1e-5, abs=1e-9)
    assert c.rt_value() == 1.0


def test_controller_negative_signs_lower_p_and_clamp_at_zero():
    c = AdaController(target=0.6, interval=1, batch=32, speed_kimg=100, p=0.0007)
    step = 32 / 100_000
    seen = []
    for s in range(1, 6):
        c.accumulate(-torch.rand(32) - 0.1)
        c.update(s)
        seen.append(c.p_value())
    assert seen[:2] == pytest.approx([0.0007 - step, 0.0007 - 2 * step], rel=1e-5)
    assert seen[2:] == [0.0, 0.0, 0.0] and c.rt_value() == -1.0


def test_controller_at_target_holds_and_without_data_holds():
    c = AdaController(target=0.5, interval=2, batch=8, p=0.25)
    c.accumulate(torch.tensor([1.0, 2.0, 3.0, -1.0]))                 # mean sign 0.5
    c.accumulate(torch.tensor([0.0, 5.0]))                             # sign(0) = 0: mean 3 / 6 = 0.5
    c.update(2)
    c.update(4)                                                        # nothing accumulated: no change
    assert c.p_value() == 0.25 and c.rt_value() == 0.5


def test_controller_has_no_upper_clamp_like_the_official():
    c = AdaController(target=0.6, interval=1, batch=1000, speed_kimg=1, p=0.9)
    c.accumulate(torch.ones(4))
    c.update(1)
    assert c.p_value() == pytest.approx(1.9)


def test_controller_reduce_hook_sees_the_statistics():
    c = AdaController(target=0.6, interval=1, batch=4)
    c.accumulate(torch.tensor([1.0, -1.0]))
    c.update(1, reduce=lambda t: t.mul_(torch.tensor([3.0, 1.0])))    # as if other processes saw +1s
    assert c.rt_value() == 0.0 or c.rt_value() == pytest.approx(0.0)  # (3 * 0) / 2
    c.accumulate(torch.tensor([1.0, -1.0, 1.0]))
    c.update(2, reduce=lambda t: t.add_(torch.tensor([1.0, 1.0])))
    assert c.rt_value() == pytest.approx(0.5)


def test_controller_state_dict_resumes_exactly(tmp_path):
    logits = [torch.randn(16, generator=torch.Generator().manual_seed(s)) + 0.9 for s in range(40)]
    a = AdaController(target=0.6, interval=4, batch=16, speed_kimg=2, p=0.1)
    trajectory_a, trajectory_b = [], []
    for s in range(1, 41):
        a.accumulate(logits[s - 1])
        a.update(s)
        if s == 18:                                                    # mid-interval: pending statistics
            torch.save(a.state_dict(), tmp_path / "ada.pt")
        if s > 18:
            trajectory_a.append(a.p.clone())
    b = AdaController(target=0.6, interval=4, batch=16, speed_kimg=2)             # p=0: the state sets it
    b.load_state_dict(torch.load(tmp_path / "ada.pt", weights_only=True))
    for s in range(19, 41):
        b.accumulate(logits[s - 1])
        b.update(s)
        trajectory_b.append(b.p.clone())
    assert torch.equal(torch.stack(trajectory_a), torch.stack(trajectory_b))
    assert len(set(t.item() for t in trajectory_a)) > 2                # p did move


SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def no_host_sync_from_ada():
    """Patch host-synchronising tensor methods to raise when called from ada.py."""
    originals = {name: getattr(torch.Tensor, name) for name in SYNCING}
    here = os.path.abspath(ada.__file__)

    def wrap(name, original):
        def guarded(self, *args, **kwargs):
            if os.path.abspath(sys._getframe(1).f_code.co_filename) == here:
                raise AssertionError(f"host sync: Tensor.{name} in ada.py line {sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)
        return guarded
    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_no_host_sync_in_augment_and_controller_step():
    c = AdaController(target=0.6, interval=2, batch=4)
    pipe, x = AugmentPipe("bgc"), image()
    with no_host_sync_from_ada():
        for s in range(1, 5):
            y = pipe(x, c.p, Draws(0, s, "ada", range(4)))
            c.accumulate(y.mean(dim=(1, 2, 3)))
            c.update(s)
    with no_host_sync_from_ada(), pytest.raises(AssertionError, match="host sync"):
        c.p_value()                                                    # the guard does catch one


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make", [lambda: AugmentPipe("bgcfnc"), lambda: AugmentPipe("bgc", blur=1),
                                  lambda: AdaController(target=1.5)])
def test_user_errors_are_one_line(make):
    with pytest.raises(PixelfolderError) as e:
        make()
    assert "\n" not in str(e.value) and ":" in str(e.value)


def test_bad_images_and_draws_are_user_errors():
    pipe = AugmentPipe("bgc")
    with pytest.raises(PixelfolderError, match="channels|H, W"):
        pipe(torch.zeros(2, 4, 8, 8), 0.5, Draws(0, 0, "ada", range(2)))
    with pytest.raises(PixelfolderError, match="draws cover 3"):
        pipe(torch.zeros(2, 3, 8, 8), 0.5, Draws(0, 0, "ada", range(3)))


def test_specs_match_the_official_names():
    assert set(ada.SPECS) >= {"blit", "geom", "color", "bg", "bgc"}
    assert ada.SPECS["bgc"] == dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                                    brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    assert math.isclose(sum(ada.SYM6) / math.sqrt(2), 1.0, rel_tol=1e-9)    # orthonormal low-pass
