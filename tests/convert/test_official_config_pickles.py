"""Snapshot pickles written by the official code at the OFFICIAL 256 px configurations convert exactly.

The fixtures `official_*256_small.pkl` (+ `_expected.pt`) come from tools/make_official_pickles.py (see
tests/fixtures/README_official_config_pickles.md): the real training configurations of INR-GAN, INR-GAN-bil, CREPS
and StyleGAN2-ADA config F with widths shrunk only through official constructor arguments, so they reference every
global the full-width snapshots do (e.g. INR-GAN's `extra_convs` ModuleList, which the 64 px tiny fixtures lack).
"""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pixelfolder.convert import load_official
from pixelfolder.convert.nvlabs_pickle import STUB_CLASSES, detect_pickle_arch, extract_network, loads_network_pickle
from tests.helpers import FIXTURES, call, glob, load_fixture, program, value

REL_TOL = 1e-5
ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "make_official_pickles.py"

COMMON = {"collections.OrderedDict", "dnnlib.util.EasyDict", "numpy._core.multiarray.scalar", "numpy.dtype",
          "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
          "torch_utils.persistence._reconstruct_persistent_obj"}
OMEGACONF = {"builtins.dict", "collections.defaultdict", "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
             "omegaconf.dictconfig.DictConfig", "omegaconf.nodes.AnyNode", "typing.Any"}
MODULE_LIST = "torch.nn.modules.container.ModuleList"
SEQUENTIAL = "torch.nn.modules.container.Sequential"
# name -> (our arch, torch.nn containers the pickle must hold, every global it references)
NETS = {
    "inrgan": ("inrgan", {MODULE_LIST}, COMMON | OMEGACONF | {MODULE_LIST}),
    "inrgan_bil": ("inrgan_bil", {MODULE_LIST}, COMMON | OMEGACONF | {MODULE_LIST}),
    "creps": ("creps", {SEQUENTIAL}, COMMON | {SEQUENTIAL, "training.networks_creps.SynthesisInput"}),
    "sg2ada": ("stylegan2", set(), COMMON),
}
REPOS = {"inrgan": "inr-gan", "creps": "CREPS", "sg2ada": "stylegan2-ada-pytorch"}


def _tool():
    """tools/make_official_pickles.py as a module (it imports only the standard library at import time)."""
    spec = importlib.util.spec_from_file_location("make_official_pickles", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pickle_globals(path) -> set:
    return set(_tool().pickle_globals(Path(path).read_bytes()))


def render(G, fx, n=None):
    """Our images for the fixture's z (psi 1), and for its first seed at psi 0.7, as the fixture stores them."""
    idx = fx.get("pixel_select")
    pick = (lambda x: x) if idx is None else (lambda x: x.index_select(2, idx).index_select(3, idx))
    n = len(fx["seeds"]) if n is None else n
    with torch.no_grad():
        images = torch.cat([pick(G(fx["z"][i:i + 1], noise_mode="const")) for i in range(n)])
        i0 = fx["seeds"].index(fx["psi_seed"])
        psi = pick(G(fx["z"][i0:i0 + 1], noise_mode="const", truncation_psi=0.7))
    return images, psi


def assert_matches(G, fx, n=None, what=""):
    images, psi = render(G, fx, n)
    want = fx["images"][: images.shape[0]]
    assert images.shape == want.shape, what
    err = (images - want).abs().max().item()
    assert err <= REL_TOL * fx["max_abs"], f"{what} psi 1: {err:.3g} > {REL_TOL} * {fx['max_abs']:.3g}"
    err = (psi - fx["images_psi0.7"]).abs().max().item()
    assert err <= REL_TOL * fx["max_abs"], f"{what} psi 0.7: {err:.3g} > {REL_TOL} * {fx['max_abs']:.3g}"


@pytest.fixture(scope="module", params=list(NETS))
def net(request):
    name = request.param
    stem = f"official_{name}256_small"
    return name, FIXTURES / f"{stem}.pkl", load_fixture(f"{stem}_expected.pt")


def test_fixture_is_the_official_256px_config(net):
    name, pkl, fx = net
    assert fx["image_shape"] == [3, 3, 256, 256] and fx["seeds"] == [0, 2, 7]
    assert fx["z"].shape == (3, fx["init_kwargs"]["z_dim"]) and fx["z"].dtype == torch.float32
    assert fx["init_kwargs"]["img_resolution"] == 256
    assert fx["source"]["commit"] and "unknown" not in fx["source"]["commit"]
    assert pickle_globals(pkl) == set(fx["globals"])   # the pickle is the one the expected file was made from


def test_pickle_holds_the_torch_nn_containers(net):
    """The containers only the real configurations have are in the fixture, and all of its globals are allowed."""
    name, pkl, _ = net
    found = pickle_globals(pkl)
    _, containers, everything = NETS[name]
    assert {g for g in found if g.startswith("torch.nn.")} == containers
    assert found == everything
    stubs = {f"{m}.{n}" for m, names in STUB_CLASSES.items() for n in names}
    assert containers <= stubs


def test_converts_and_reproduces_the_official_images(net):
    name, pkl, fx = net
    G = load_official(pkl, channels_last=False)
    assert G.arch == NETS[name][0] and G.resolution == 256
    assert_matches(G, fx, what=name)


def test_record_is_plain_and_matches_the_official_kwargs(net):
    name, pkl, fx = net
    rec = extract_network(pkl)
    assert rec.class_name == "Generator" and detect_pickle_arch(rec) in ("stylegan2", NETS[name][0])
    assert rec.init_kwargs == fx["init_kwargs"]
    assert torch.equal(rec.state_dict["mapping.w_avg"], fx["w_avg"])
    if NETS[name][1]:
        assert set(rec.non_persistent) >= NETS[name][1]


def test_discriminator_matches_the_official_scores(net):
    """D of the snapshot (resnet, the repo's fp16/conv_clamp/mbstd settings) on the formula-made batch."""
    _, pkl, fx = net
    D = load_official(pkl, which="d", channels_last=False)
    with torch.no_grad():
        scores = D(_tool().d_test_input())
    want = fx["d_scores"]
    assert scores.shape == want.shape
    assert (scores - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_inrgan_extra_convs_are_walked():
    """b128/b256 extra convs live in a ModuleList: their weights reach the state_dict and our model."""
    rec = extract_network(FIXTURES / "official_inrgan256_small.pkl")
    for res in (128, 256):
        assert f"synthesis.b{res}.extra_convs.0.weight" in rec.state_dict
        assert f"synthesis.b{res}.extra_convs.0.affine.weight" in rec.state_dict
    assert "synthesis.b64.extra_convs.0.weight" not in rec.state_dict


# ------------------------------------------------------------------------------------------ full width (slow)
@pytest.mark.slow
def test_full_width_pickles_from_the_official_code(tmp_path):
    """Full official widths, built by the official code now (several GB in tmp_path, minutes on 2 CPU cores)."""
    repos = os.environ.get("PIXELFOLDER_OFFICIAL_REPOS")
    if not repos or not all((Path(repos) / d).is_dir() for d in REPOS.values()):
        pytest.skip("set PIXELFOLDER_OFFICIAL_REPOS to a folder holding the extracted official repos inr-gan, CREPS "
                    "and stylegan2-ada-pytorch (and PIXELFOLDER_OFFICIAL_PYTHON to an interpreter with their "
                    "dependencies: torch, numpy, scipy, omegaconf, setuptools; default: this one)")
    python = os.environ.get("PIXELFOLDER_OFFICIAL_PYTHON", sys.executable)
    for name in NETS:
        cmd = [python, str(TOOL), "--out", str(tmp_path), "--width", "full", "--expected", "--nets", name,
               "--seeds", "0"]
        cmd += [f"--{key}={Path(repos) / d}" for key, d in REPOS.items()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        stem = tmp_path / f"official_{name}256_full"
        pkl = stem.with_suffix(".pkl")
        fx = torch.load(f"{stem}_expected.pt", weights_only=True)
        small = pickle_globals(FIXTURES / f"official_{name}256_small.pkl")
        assert pickle_globals(pkl) == small, f"{name}: full and small pickles reference different globals"
        t0 = time.perf_counter()
        G = load_official(pkl, channels_last=False)
        assert_matches(G, fx, n=1, what=f"{name} full ({time.perf_counter() - t0:.0f} s)")
        D = load_official(pkl, which="d", channels_last=False)
        with torch.no_grad():
            scores = D(_tool().d_test_input())
        assert (scores - fx["d_scores"]).abs().max().item() <= 1e-5 * max(1.0, fx["d_scores"].abs().max().item())
        del G, D
        pkl.unlink()     # full pickles are large


# ------------------------------------------------------------------------------------ torch.nn containers as data
def test_torch_nn_containers_walk_like_state_dict():
    """Real pickled ModuleDict / ModuleList / Sequential / ParameterList / ParameterDict (and non-persistent
    buffers) are read as inert stubs whose walk gives exactly nn.Module.state_dict()."""
    import pickle

    from pixelfolder.convert.nvlabs_pickle import _Stub, _walk, _Walk, loads_network_pickle
    torch.manual_seed(0)
    plist = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(2)), torch.nn.Parameter(torch.randn(3))])
    pdict = torch.nn.ParameterDict({"b": torch.nn.Parameter(torch.randn(2)), "a": torch.nn.Parameter(torch.randn(1))})
    inner = torch.nn.ModuleList([torch.nn.ParameterList([torch.nn.Parameter(torch.randn(4))]), torch.nn.Sequential()])
    root = torch.nn.ModuleDict({"z": plist, "y": torch.nn.Sequential(pdict, inner)})
    root.register_buffer("kept", torch.ones(2))
    root.register_buffer("dropped", torch.zeros(1), persistent=False)
    obj = loads_network_pickle(pickle.dumps(root))
    assert isinstance(obj, _Stub) and type(obj).__module__ == "pixelfolder.convert.nvlabs_pickle"
    w = _Walk()
    _walk(obj, "", w)
    want = root.state_dict()
    assert list(w.out) == list(want)
    assert all(torch.equal(w.out[k], v) for k, v in want.items())
    assert {"torch.nn.modules.container.ModuleDict", "torch.nn.modules.container.ParameterList",
            "torch.nn.modules.container.ParameterDict", "torch.nn.modules.container.Sequential",
            "torch.nn.modules.container.ModuleList"} == set(w.stubs)


def test_container_stubs_are_inert(tmp_path):
    """A container global called with hostile arguments builds an inert stub: nothing runs, nothing is callable."""
    marker = tmp_path / "ran"
    for name in ("ModuleList", "Sequential", "ModuleDict", "ParameterList", "ParameterDict"):
        obj = loads_network_pickle(program(call(glob("torch.nn.modules.container", name),
                                                value(f"touch '{marker}'"))))
        assert not marker.exists()
        assert not any(hasattr(obj, a) for a in ("forward", "append", "extend", "__call__", "__iter__", "state_dict"))
        assert obj.state is None
    assert not isinstance(obj, torch.nn.Module)
