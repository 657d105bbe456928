"""Behaviour of every tiny preset: shapes, seeding, batching, truncation, W input, checkpoints, training, errors."""
import pytest
import torch

import pixelfolder
from pixelfolder import registry
from pixelfolder.errors import CheckpointError, PixelfolderError
from pixelfolder.training.losses import d_logistic_loss, g_nonsaturating_loss
from tests.helpers import assert_close, zs

TINY = [n for n in pixelfolder.list_models() if registry.preset(n).tiny]
TINY_G = [n for n in TINY if pixelfolder.list_models("generator").count(n)]
TINY_D = [n for n in TINY if pixelfolder.list_models("discriminator").count(n)]
CIPS_TINY = [n for n in TINY_G if n.startswith("cips")]


def test_tiny_preset_list():
    assert sorted(TINY_G) == ["cips_res-tiny", "cips_skip-tiny", "creps-tiny", "inrgan-tiny", "inrgan_bil-tiny",
                              "pixelfolder-tiny", "stylegan2-tiny"]
    assert TINY_D == ["stylegan2_d-tiny"]


def make(name, **kw):
    torch.manual_seed(0)
    G = pixelfolder.create(name, **kw)
    # noise strengths start at 0: make noise matter so that noise-handling bugs are visible
    with torch.no_grad():
        for mod in G.modules():
            if hasattr(mod, "noise_strength"):
                mod.noise_strength.fill_(0.2)
    return G.eval()


@pytest.fixture(scope="module", params=TINY_G)
def G(request):
    return make(request.param)


@torch.no_grad()
def test_forward_shape_finite(G):
    img = G(zs(2))
    R = G.resolution
    assert R == 32
    assert img.shape == (2, 3, R, R)
    assert img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert (img[0] - img[1]).abs().max() > 1e-4   # different z, different images


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_sample_independent_of_batch_size(G, noise_mode):
    a = G.sample(seeds=[0, 1, 2, 3], batch_size=1, noise_mode=noise_mode)
    b = G.sample(seeds=[0, 1, 2, 3], batch_size=4, noise_mode=noise_mode)
    c = G.sample(seeds=[0, 1, 2, 3], batch_size=3, noise_mode=noise_mode)
    assert a.shape == (4, 3, 32, 32)
    assert_close(b, a, f"batch 4 vs 1 ({noise_mode})")
    assert_close(c, a, f"batch 3 vs 1 ({noise_mode})")


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_same_seed_same_image(G, noise_mode):
    a = G.sample(seeds=[7, 7, 8], batch_size=3, noise_mode=noise_mode)
    b = G.sample(seeds=[7], batch_size=1, noise_mode=noise_mode)
    assert_close(a[0], a[1], "same seed in one batch")
    assert_close(b[0], a[0], "same seed across calls")
    assert (a[0] - a[2]).abs().max() > 1e-4


def test_sample_random_noise_changes_image(G):
    if not any(hasattr(m, "noise_strength") for m in G.modules()):
        assert torch.equal(G.sample(seeds=[0], noise_mode="random"), G.sample(seeds=[0], noise_mode="const"))
        return      # INR-GAN (use_noise false) and CREPS have no noise inputs
    const = G.sample(seeds=[0], noise_mode="const")
    rand = G.sample(seeds=[0], noise_mode="random")
    none = G.sample(seeds=[0], noise_mode="none")
    assert (const - rand).abs().max() > 1e-5
    assert (const - none).abs().max() > 1e-5


@torch.no_grad()
def test_return_stages(G):
    z = zs(2)
    out = G(z, return_stages=True)
    assert isinstance(out, tuple) and len(out) == 2
    img, stages = out
    assert isinstance(stages, list) and len(stages) >= 1
    assert torch.equal(stages[-1], img)
    assert_close(img, G(z), "return_stages image vs plain call")


@torch.no_grad()
def test_truncation_psi_zero_collapses_z(G):
    img = G(zs(2, seed=1), truncation_psi=0.0)
    assert_close(img[1], img[0], "psi=0 images for different z")
    ref = G(ws=G.w_avg.expand(1, G.n_latent, -1).clone())
    assert_close(img[:1], ref, "psi=0 vs ws = w_avg")


@torch.no_grad()
def test_truncation_moves_toward_average(G):
    z = zs(2, seed=2)
    full, half, avg = G(z), G(z, truncation_psi=0.5), G(z, truncation_psi=0.0)
    assert (full - half).abs().max() > 1e-4
    assert (half - avg).abs().max() > 1e-4


@torch.no_grad()
def test_ws_input_equals_z_input(G):
    z = zs(3, seed=3)
    ws = G.mapping(z)
    assert ws.shape == (3, G.n_latent, 64)
    assert_close(G(ws=ws), G(z), "ws vs z")
    assert_close(G(ws=ws[:, 0]), G(z), "2-D ws vs z")
    if G.mapping.truncation_space == "w":
        assert_close(G(ws=ws, truncation_psi=0.6), G(z, truncation_psi=0.6), "ws vs z with psi")


def perturbed(name, seed):
    """The preset with every parameter moved by 0.1 * N(0, 1) (seeded)."""
    model = make(name)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", TINY_G)
@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode"])
def test_outputs_follow_in_place_weight_changes(name, ctx):
    """Loading other weights in place (or editing them) changes the next no-grad output accordingly."""
    A, B = make(name), perturbed(name, seed=99)
    z = zs(2, seed=8)
    guard = torch.no_grad if ctx == "no_grad" else torch.inference_mode
    with guard():
        ref_b = B(z).clone()
        a1 = A(z).clone()
        a2 = A(z).clone()
    assert torch.equal(a1, a2)
    assert (a1 - ref_b).abs().max() > 1e-4
    A.load_state_dict(B.state_dict())
    with guard():
        assert_close(A(z), ref_b, "after load_state_dict")
    with torch.no_grad():
        for p in A.parameters():
            p.mul_(1.05)
    with guard():
        moved = A(z)
    C = make(name)
    C.load_state_dict(A.state_dict())
    with torch.enable_grad():
        fresh = C(z).detach()
    assert_close(moved, fresh, "after in-place edit")


def accumulate(model1, model2, decay=0.5):
    """The official (rosinality / PixelFolder train.py) EMA update, written through `.data`."""
    par1, par2 = dict(model1.named_parameters()), dict(model2.named_parameters())
    for k in par1:
        par1[k].data.mul_(decay).add_(par2[k].data, alpha=1 - decay)


@pytest.mark.parametrize("name", TINY_G)
def test_outputs_follow_ema_update_through_data(name):
    """g_ema updated with the official accumulate() and then sampled under no_grad shows the new weights."""
    g_ema, g = make(name), perturbed(name, seed=98)
    z = zs(2, seed=9)
    with torch.no_grad():
        before = g_ema(z).clone()
    accumulate(g_ema, g)
    with torch.no_grad():
        after = g_ema(z)
    C = make(name)
    C.load_state_dict(g_ema.state_dict())
    with torch.enable_grad():
        fresh = C(z).detach()
    assert (before - fresh).abs().max() > 1e-4
    assert_close(after, fresh, "no-grad output after EMA update through .data")


@pytest.mark.parametrize("name", TINY_G)
def test_outputs_follow_dtype_round_trip(name):
    """half() then float() rounds the weights; the next no-grad output must use the rounded weights."""
    G = make(name)
    z = zs(2, seed=10)
    with torch.no_grad():
        G(z)
    G.half().float()
    with torch.no_grad():
        out = G(z)
    with torch.enable_grad():   # the same model, same (rounded) weights and buffers, through the autograd path
        fresh = G(z).detach()
    assert_close(out, fresh, "no-grad output after half().float()")


# --------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("name", TINY)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model = pixelfolder.create(name)
    with torch.no_grad():   # move every parameter away from its init so the check is meaningful
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    path = tmp_path / "x.pt"
    pixelfolder.save(model, path, metadata={"note": "hello", "step": 3})
    loaded = pixelfolder.load(path)
    assert type(loaded) is type(model)
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded.metadata == {"note": "hello", "step": 3}
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert torch.equal(sd[k], sd2[k]), k
    x = {"generator": zs(2, seed=4), "discriminator": torch.randn(4, 3, 32, 32),
         "likelihood": torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)}[model.kind]
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(pixelfolder.load(path, channels_last=False)(x), ref)   # same layout: bit-identical
        out = loaded(x)   # the default channels_last layout may pick other conv kernels
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    raw = torch.load(path, weights_only=True)
    for key in ("format", "version", "arch", "config", "state_dict", "metadata"):
        assert key in raw
    assert raw["arch"] == model.arch
    assert raw["metadata"] == {"note": "hello", "step": 3}


def test_load_preserves_w_avg(tmp_path):
    G = make("pixelfolder-tiny")
    G.mapping.w_avg.normal_()
    pixelfolder.save(G, tmp_path / "g.pt")
    assert torch.equal(pixelfolder.load(tmp_path / "g.pt").w_avg, G.w_avg)


# --------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", TINY_G)
def test_two_optimisation_steps(name):
    torch.manual_seed(2)
    G = pixelfolder.create(name).train()
    D = pixelfolder.create("stylegan2_d-tiny").train()
    assert D.resolution == G.resolution == 32
    g_opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    g0 = {k: v.detach().clone() for k, v in G.named_parameters()}
    d0 = {k: v.detach().clone() for k, v in D.named_parameters()}
    real = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    for step in range(2):
        z = zs(4, seed=10 + step)
        d_loss = d_logistic_loss(D(real), D(G(z).detach()))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_loss = g_nonsaturating_loss(D(G(zs(4, seed=20 + step))))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        assert any(p.grad is not None for p in G.parameters())
        g_opt.step()
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    unchanged_g = [k for k, v in G.named_parameters() if torch.equal(v, g0[k])]
    unused = [k for k in unchanged_g if k.startswith(G.unused_parameters)] if G.unused_parameters else []
    assert len(unused) == sum(1 for k, _ in G.named_parameters() if G.unused_parameters and
                              k.startswith(G.unused_parameters))      # the official dead weights stay as loaded
    unchanged_g = [k for k in unchanged_g if k not in unused]
    unchanged_d = [k for k, v in D.named_parameters() if torch.equal(v, d0[k])]
    assert not unchanged_g, f"G parameters never updated: {unchanged_g}"
    assert not unchanged_d, f"D parameters never updated: {unchanged_d}"
    for p in list(G.parameters()) + list(D.parameters()):
        assert torch.isfinite(p).all()


# --------------------------------------------------------------------------------------------- CIPS
@pytest.mark.parametrize("name", CIPS_TINY)
def test_cips_any_size(name):
    G = make(name)
    with torch.no_grad():
        img = G(zs(2), size=48)
    assert img.shape == (2, 3, 48, 48)
    assert torch.isfinite(img).all()
    a = G.sample([0, 1, 2], batch_size=1, size=48, noise_mode="random")
    b = G.sample([0, 1, 2], batch_size=3, size=48, noise_mode="random")
    assert a.shape == (3, 3, 48, 48)
    assert_close(b, a, "size 48 batching")


@pytest.mark.parametrize("name", CIPS_TINY)
def test_cips_aligned_train_equals_eval(name):
    G = make(name)
    assert G.config.embedding_mode == "aligned"
    z = zs(2, seed=5)
    with torch.no_grad():
        ev = G.eval()(z)
        tr = G.train()(z)
    assert torch.equal(ev, tr)


@pytest.mark.parametrize("name", CIPS_TINY)
def test_cips_official_train_differs_from_eval(name):
    G = make(name, embedding_mode="official")
    z = zs(2, seed=5)
    with torch.no_grad():
        ev = G.eval()(z)
        tr = G.train()(z)
    assert (ev - tr).abs().max() > 1e-4


@pytest.mark.parametrize("name", CIPS_TINY)
def test_cips_aligned_and_official_same_in_train_mode(name):
    """At the native size in train mode both modes read the stored embedding as is."""
    a, b = make(name), make(name, embedding_mode="official")
    b.load_state_dict(a.state_dict())
    z = zs(2, seed=6)
    with torch.no_grad():
        assert torch.equal(a.train()(z), b.train()(z))


# --------------------------------------------------------------------------------------------- errors
def test_error_hierarchy():
    assert issubclass(CheckpointError, PixelfolderError)
    assert issubclass(pixelfolder.PixelfolderError, ValueError)
    assert pixelfolder.PixelfolderError is PixelfolderError


@pytest.mark.parametrize("kwargs", [
    dict(z=torch.randn(2, 63)),
    dict(z=torch.randn(64)),
    dict(z=torch.randn(2, 1, 64)),
    dict(z=None),
    dict(z=torch.randn(2, 64), truncation_psi=5.0),
    dict(z=torch.randn(2, 64), truncation_psi=float("nan")),
    dict(z=torch.randn(2, 64), noise_mode="bogus"),
    dict(z=torch.randn(2, 64), c=torch.zeros(2, 1)),
    dict(ws=torch.randn(2, 5, 63)),
], ids=["z-width", "z-1d", "z-3d", "z-none", "psi5", "psi-nan", "noise-bogus", "c", "ws-shape"])
def test_generator_argument_errors(G, kwargs):
    z = kwargs.pop("z", None)
    with pytest.raises(PixelfolderError):
        G(z, **kwargs)


@pytest.mark.parametrize("name", ["pixelfolder-tiny", "stylegan2-tiny"])
def test_native_size_only(name):
    G = make(name)
    with pytest.raises(PixelfolderError):
        G(zs(1), size=48)
    with torch.no_grad():
        assert G(zs(1), size=32).shape == (1, 3, 32, 32)


def test_create_errors():
    with pytest.raises(PixelfolderError):
        pixelfolder.create("nope")
    with pytest.raises(PixelfolderError):
        pixelfolder.create("pixelfolder-tiny", not_a_field=1)
    with pytest.raises(PixelfolderError):
        pixelfolder.create("pixelfolder-tiny", resolution=48)


def test_load_errors(tmp_path):
    with pytest.raises(PixelfolderError):
        pixelfolder.load(tmp_path / "missing.pt")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(PixelfolderError):
        pixelfolder.load(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(PixelfolderError):
        pixelfolder.load(plain)
    with pytest.raises(CheckpointError):
        pixelfolder.load(plain)


def test_load_errors_for_damaged_records(tmp_path):
    """A file claiming the pixelfolder format but missing parts is a CheckpointError, not a KeyError/RuntimeError."""
    from pixelfolder.checkpoint import to_record
    rec = to_record(make("pixelfolder-tiny"))
    no_arch = {k: v for k, v in rec.items() if k != "arch"}
    short_sd = {**rec, "state_dict": dict(list(rec["state_dict"].items())[1:])}
    bad_shape = {**rec, "state_dict": {k: v[..., :1] if v.ndim else v for k, v in rec["state_dict"].items()}}
    for i, bad in enumerate([no_arch, short_sd, bad_shape]):
        path = tmp_path / f"bad{i}.pt"
        torch.save(bad, path)
        with pytest.raises(PixelfolderError):
            pixelfolder.load(path)
