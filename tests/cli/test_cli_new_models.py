"""The command line with INR-GAN / CREPS (any scale), NVlabs pickles and PixelPyramids (convert, generate, bpd)."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import pixelfolder
from tests.helpers import FIXTURES, load_fixture, run_cli


@pytest.mark.parametrize("preset", ["creps-tiny", "inrgan-tiny", "cips_skip-tiny"])
def test_generate_at_scale_2(tmp_path, capsys, preset):
    code, out, _ = run_cli(capsys, "generate", "--network", preset, "--seeds", "0-1", "--scale", "2",
                           "--outdir", str(tmp_path))
    assert code == 0 and "64x64" in out
    assert Image.open(tmp_path / "seed0001.png").size == (64, 64)


@pytest.mark.parametrize("scale, message", [("0", "scale must be a finite number > 0"),
                                            ("-1", "scale must be a finite number > 0"),
                                            ("1e6", "would need about")])
def test_generate_bad_scale_is_one_line(tmp_path, capsys, scale, message):
    code, _, err = run_cli(capsys, "generate", "--network", "creps-tiny", "--seeds", "0", "--scale", scale,
                           "--outdir", str(tmp_path))
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_generate_scale_on_a_fixed_size_model_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "generate", "--network", "stylegan2-tiny", "--seeds", "0", "--scale", "2",
                           "--outdir", str(tmp_path))
    assert code != 0 and "renders only its native 32px grid" in err


@pytest.mark.parametrize("name, arch", [("creps_snapshot_tiny.pkl", "creps"), ("inrgan_snapshot_tiny.pkl", "inrgan")])
def test_convert_network_pickle_then_generate(tmp_path, capsys, name, arch):
    expected = load_fixture(name.replace(".pkl", "_expected.pt"))
    code, out, _ = run_cli(capsys, "convert", str(FIXTURES / name), str(tmp_path / "g.pt"))
    assert code == 0 and f"g_ema: {arch} 64px" in out
    G = pixelfolder.load(tmp_path / "g.pt", channels_last=False)
    with torch.no_grad():
        img = G(expected["z"])
    assert (img - expected["image"]).abs().max() <= 1e-5 * expected["max_abs"]
    assert G.metadata["official_class"] == "Generator" and G.metadata["network"] == "G_ema"
    code, out, _ = run_cli(capsys, "convert", str(FIXTURES / name), str(tmp_path / "g_train.pt"), "--which", "G")
    assert code == 0
    G_train = pixelfolder.load(tmp_path / "g_train.pt")
    assert G_train.metadata["network"] == "G"         # the training copy differs from G_ema in these snapshots
    assert any(not torch.equal(a, b) for a, b in zip(G_train.parameters(), G.parameters()))


def test_convert_refuses_a_malicious_pickle_before_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    code, _, err = run_cli(capsys, "convert", str(path), str(tmp_path / "out.pt"))
    assert code != 0 and "refusing to unpickle" in err and "system" in err
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_convert_pickle_discriminator(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "convert", str(FIXTURES / "creps_snapshot_tiny.pkl"), str(tmp_path / "d.pt"),
                           "--which", "D")
    assert code == 0 and "d: stylegan2_d 64px" in out
    D = pixelfolder.load(tmp_path / "d.pt")
    assert D.arch == "stylegan2_d" and D.config.conv_clamp == 256 and D.metadata["official_class"] == "Discriminator"
    with torch.no_grad():
        assert D(torch.zeros(4, 3, 64, 64)).shape == (4, 1)


@pytest.fixture(scope="module")
def official_pp(tmp_path_factory):
    """An official-format PixelPyramids checkpoint (per-level state_dicts, `module.` prefixes) + params json."""
    fx = load_fixture("pixelpyramids_tiny.pt")
    root = tmp_path_factory.mktemp("pp")
    levels = [{f"module.{k}": v for k, v in fx["state_dict"][i].items()} for i in sorted(fx["state_dict"])]
    torch.save(levels, root / "best.pth")
    (root / "params.json").write_text(json.dumps({"params": fx["config"]}))
    return root, fx


def test_convert_pixelpyramids_needs_params(tmp_path, capsys, official_pp):
    root, fx = official_pp
    code, _, err = run_cli(capsys, "convert", str(root / "best.pth"), str(tmp_path / "pp.pt"), "--arch",
                           "pixelpyramids")
    assert code != 0 and "store no configuration: pass --params" in err
    code, out, _ = run_cli(capsys, "convert", str(root / "best.pth"), str(tmp_path / "pp.pt"), "--params",
                           str(root / "params.json"))
    assert code == 0 and "pixelpyramids" in out
    model = pixelfolder.load(tmp_path / "pp.pt")
    x = fx["inputs"]["images_uint8_hwc"].permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        nll = model.level_nll(x, protocol="eval")
    ref = fx["outputs"]["bn_eval_running_stats"]["nll"]
    assert ((nll - ref).abs() <= 0.001 + 2e-5 * ref.abs()).all()


@pytest.mark.parametrize("sampler", ["exact", "official"])
def test_generate_from_a_likelihood_model(tmp_path, capsys, sampler):
    code, out, _ = run_cli(capsys, "generate", "--network", "pixelpyramids-tiny", "--seeds", "0-2", "--outdir",
                           str(tmp_path), "--sampler", sampler, "--grid")
    assert code == 0 and "32x32" in out
    img = np.asarray(Image.open(tmp_path / "seed0002.png"))
    assert img.shape == (32, 32, 3)
    if sampler == "exact":     # 5-bit codes: every value is one of the 32 levels round(255 k / 31)
        levels = {round(255 * k / 31) for k in range(32)}
        assert set(np.unique(img).tolist()) <= levels


def test_evaluate_bpd_on_the_held_out_split(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    model = pixelfolder.create("pixelpyramids-tiny").eval()
    pixelfolder.save(model, tmp_path / "pp.pt")
    code, out, _ = run_cli(capsys, "evaluate", "--network", str(tmp_path / "pp.pt"), "--data", str(folder),
                           "--metrics", "bpd", "--split", "test", "--outdir", str(tmp_path))
    assert code == 0
    value = float(next(line for line in out.splitlines() if line.startswith("bpd:")).split()[1])
    held_out = torch.stack([torch.from_numpy(np.array(Image.open(folder / f"{i:02d}.png"))).permute(2, 0, 1)
                            for i in (9, 19)])
    with torch.no_grad():
        direct = float(model.nll_bits(held_out).sum()) / held_out[0].numel() / 2
    assert value == pytest.approx(direct, rel=1e-5)
