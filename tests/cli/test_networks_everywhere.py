"""Every verb opens every kind of network the same way (pixelfolder.load): our .pt and .safetensors, official
train.py dicts and bare state_dicts, NVlabs pickles, PixelPyramids checkpoints with params, presets, run
directories and http(s) URLs served on 127.0.0.1."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelfolder
from pixelfolder.data.images import to_uint8
from pixelfolder.metrics.cost import count_parameters
from tests.helpers import FIXTURES, load_fixture, make_folder, run_cli, serve_directory


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    with serve_directory(root) as (url, _):
        yield root, url


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, server):
    """kind -> (spec, extra CLI args, what training must be told to resume it)."""
    root = tmp_path_factory.mktemp("inputs")
    www, url = server
    torch.manual_seed(0)
    sg2 = pixelfolder.create("stylegan2-tiny").eval()
    pixelfolder.save(sg2, root / "ours.pt")
    pixelfolder.save(sg2, root / "ours.safetensors")
    pixelfolder.save(sg2, www / "served.pt")
    run = root / "run"
    run.mkdir()
    pixelfolder.save(pixelfolder.create("stylegan2-tiny"), run / "network-snapshot-000000.pt")
    pixelfolder.save(sg2, run / "network-snapshot-000008.pt")        # the latest: most images seen
    pf = load_fixture("pixelfolder_64.pt")["state_dict"]
    torch.save({"g_ema": pf, "g": pf}, root / "official_train.pt")
    torch.save(pf, root / "official_bare.pt")
    pp = load_fixture("pixelpyramids_tiny.pt")
    levels = [{f"module.{k}": v for k, v in pp["state_dict"][i].items()} for i in sorted(pp["state_dict"])]
    torch.save(levels, root / "pp.pth")
    (root / "params.json").write_text(json.dumps({"params": pp["config"]}))
    sg2_train = ["--model", "stylegan2", "--preset", "stylegan2-tiny"]
    pf_train = ["--model", "pixelfolder", "--preset", "pixelfolder-tiny", "--resolution", "64"]
    return {
        "ours-pt": (str(root / "ours.pt"), [], sg2_train),
        "ours-safetensors": (str(root / "ours.safetensors"), [], sg2_train),
        "official-train-dict": (str(root / "official_train.pt"), [], pf_train),
        "official-state-dict": (str(root / "official_bare.pt"), [], pf_train),
        "nvlabs-pickle": (str(FIXTURES / "sg2ada_tiny.pkl"), [], sg2_train),
        "pixelpyramids-params": (str(root / "pp.pth"), ["--params", str(root / "params.json")],
                                 ["--model", "pixelpyramids", "--preset", "pixelpyramids-tiny"]),
        "preset": ("stylegan2-tiny", [], sg2_train),
        "run-dir": (str(run), [], sg2_train),
        "url": (f"{url}/served.pt", [], sg2_train),
    }


KINDS = ["ours-pt", "ours-safetensors", "official-train-dict", "official-state-dict", "nvlabs-pickle",
         "pixelpyramids-params", "preset", "run-dir", "url"]


def library_model(spec, extra):
    params = extra[extra.index("--params") + 1] if "--params" in extra else None
    return pixelfolder.load(spec, params=params)


@pytest.mark.parametrize("kind", KINDS)
def test_generate(tmp_path, capsys, inputs, kind):
    spec, extra, _ = inputs[kind]
    code, out, err = run_cli(capsys, "generate", "--network", spec, "--seeds", "0,3", "--outdir", str(tmp_path / "g"),
                             "--device", "cpu", *extra)
    assert code == 0, err
    G = library_model(spec, extra)
    want = to_uint8(G.sample([0, 3])).numpy()
    for k, seed in enumerate((0, 3)):
        got = np.asarray(Image.open(tmp_path / "g" / f"seed{seed:04d}.png"))
        assert np.abs(got.astype(int) - want[k]).max() <= 1, kind


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate(tmp_path, capsys, inputs, data, kind):
    """Generators: the parameter count; the likelihood model: bits/dim of the 8 real images, computed directly too."""
    spec, extra, _ = inputs[kind]
    likelihood = kind == "pixelpyramids-params"
    metric = ["--metrics", "bpd", "--data", str(data[32])] if likelihood else ["--metrics", "params"]
    code, out, err = run_cli(capsys, "evaluate", "--network", spec, *metric, "--outdir", str(tmp_path), "--device",
                             "cpu", *extra)
    assert code == 0, err
    name = metric[1]
    value = float(next(line for line in out.splitlines() if line.startswith(f"{name}:")).split()[1])
    model = library_model(spec, extra)
    if likelihood:
        reals = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1)
                             for p in sorted(data[32].iterdir())])
        with torch.no_grad():
            direct = float(model.nll_bits(reals).sum()) / reals[0].numel() / len(reals)
        assert value == pytest.approx(direct, rel=1e-5)
    else:
        assert int(value) == count_parameters(model)


@pytest.mark.parametrize("kind", KINDS)
def test_bench(tmp_path, capsys, inputs, kind):
    spec, extra, _ = inputs[kind]
    code, out, err = run_cli(capsys, "bench", "--models", spec, "--repeats", "1", "--batch", "1", "--json",
                             str(tmp_path / "b.json"), *extra)
    assert code == 0, err
    row = json.loads((tmp_path / "b.json").read_text())[0]
    model = library_model(spec, extra)
    assert row["arch"] == model.arch and row["params"] == count_parameters(model)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {32: make_folder(root / "d32", n=8, size=32), 64: make_folder(root / "d64", n=8, size=64)}


@pytest.mark.parametrize("kind", KINDS)
def test_train_resume(tmp_path, capsys, inputs, data, kind):
    """One training step starting from the network, which the run then holds (a trained snapshot is written)."""
    spec, extra, train_args = inputs[kind]
    resolution = 64 if "64" in train_args else 32
    code, out, err = run_cli(capsys, "train", "--resume", spec, *train_args, *extra, "--data",
                             str(data[resolution]), "--outdir", str(tmp_path / "run"), "--kimg", "0.004", "--batch",
                             "4", "--snap", "0.004", "--device", "cpu", "--workers", "0")
    assert code == 0, err
    snapshot = pixelfolder.load(tmp_path / "run")            # the run directory: its latest snapshot
    start = library_model(spec, extra)
    assert snapshot.arch == start.arch and count_parameters(snapshot) == count_parameters(start)
    moved = [not torch.equal(a, b) for a, b in zip(snapshot.state_dict().values(), start.state_dict().values())]
    kept = [torch.equal(a, b) for a, b in zip(snapshot.state_dict().values(), start.state_dict().values())]
    assert any(kept) and any(moved)    # started from the network's weights (untouched buffers), then trained


@pytest.mark.parametrize("kind", KINDS)
def test_convert(tmp_path, capsys, inputs, kind):
    spec, extra, _ = inputs[kind]
    for dst in ("out.pt", "out.safetensors"):
        code, out, err = run_cli(capsys, "convert", spec, str(tmp_path / dst), *extra)
        assert code == 0, err
        converted = pixelfolder.load(tmp_path / dst)
        start = library_model(spec, extra)
        assert converted.arch == start.arch
        for (k, a), b in zip(converted.state_dict().items(), start.state_dict().values()):
            assert torch.equal(a, b), (kind, dst, k)
    header = (tmp_path / "out.safetensors").read_bytes()[:8]
    assert int.from_bytes(header, "little") < 10 ** 7          # a safetensors header, not a zip ('PK')


def test_train_resume_with_another_architecture_is_one_line(tmp_path, capsys, inputs, data):
    spec, _, _ = inputs["official-state-dict"]
    code, _, err = run_cli(capsys, "train", "--resume", spec, "--model", "stylegan2", "--preset", "stylegan2-tiny",
                           "--resolution", "64", "--data", str(data[64]), "--outdir", str(tmp_path / "run"),
                           "--kimg", "0.004", "--batch", "4", "--device", "cpu", "--workers", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds a pixelfolder network" in err and "stylegan2-tiny (stylegan2)" in err
