"""Every registered architecture, read from the registry: one tiny preset that runs forward, samples, saves and
loads, and trains two steps in the one training loop (with the objective its kind chooses)."""
import json
import os

import pytest
import torch

import pixelfolder
from pixelfolder import registry
from pixelfolder.training.loop import training_loop
from pixelfolder.training.objectives import objective_for_preset
from tests.helpers import make_folder, options

MODELS = [a.name for a in registry.architectures() if a.kind != "discriminator"]
TRAINABLE = registry.trainable_architectures()


def tiny(arch: str) -> str:
    (name,) = registry.architecture(arch).tiny_presets
    return name


def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs")


def test_the_registry_knows_every_fact():
    assert {"pixelfolder", "cips_skip", "cips_res", "stylegan2", "inrgan", "inrgan_bil", "creps",
            "pixelpyramids"} <= set(MODELS)
    for arch in registry.architectures():
        assert len(arch.tiny_presets) == 1, f"{arch.name} needs exactly one tiny preset: {arch.tiny_presets}"
        assert arch.description, arch.name
        if arch.kind == "discriminator":
            continue
        assert arch.recipe is not None and arch.recipe.source, f"{arch.name} has no documented training recipe"
        assert arch.sample_options, arch.name
        if arch.kind == "generator":
            assert registry.architecture(arch.discriminator).kind == "discriminator"
        assert any(c.arch == arch.name for c in registry.converters()), f"{arch.name} has no converter"
    assert set(registry.converter_choices()) >= set(TRAINABLE) - {"stylegan2"} | {"stylegan2_ada"}


@pytest.mark.parametrize("arch", MODELS)
def test_forward(arch):
    torch.manual_seed(0)
    model = pixelfolder.create(tiny(arch)).eval()
    with torch.no_grad():
        if model.kind == "likelihood":
            x = torch.randint(0, 256, (2, 3, model.resolution, model.resolution), dtype=torch.uint8)
            out = model.nll_bits(x)
            assert out.shape == (2,) and bool((out > 0).all())
        else:
            out = model(torch.randn(2, model.z_dim))
            assert out.shape == (2, 3, model.resolution, model.resolution)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", MODELS)
def test_sample_save_and_load(tmp_path, arch):
    torch.manual_seed(0)
    model = pixelfolder.create(tiny(arch)).eval()
    images = model.sample([0, 1, 2], batch_size=2)
    assert images.shape == (3, 3, model.resolution, model.resolution) and torch.isfinite(images).all()
    assert torch.allclose(model.sample([2], batch_size=1), images[2:], atol=1e-5)      # batch-size independent
    for name in ("net.pt", "net.safetensors"):
        pixelfolder.save(model, tmp_path / name)
        loaded = pixelfolder.load(tmp_path / name)
        assert loaded.arch == arch
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
        # load() returns channels_last weights: other conv kernels, the same images to float rounding
        assert torch.allclose(loaded.sample([0, 1, 2], batch_size=2), images, atol=1e-5)


@pytest.mark.parametrize("arch", TRAINABLE)
def test_two_training_steps_change_every_network(tmp_path, data, arch):
    preset = tiny(arch)
    gan = objective_for_preset(preset).kind == "generator"
    path_length = registry.architecture(arch).recipe.pl_weight > 0
    torch.manual_seed(0)                      # the loop initialises G from the master seed (0) the same way
    before = pixelfolder.create(preset)
    opts = options(data, tmp_path / "run", preset=preset, kimg=0.016, r1_every=2, pl_every=2,
                   pl_weight=2.0 if path_length else 0.0)
    result = training_loop(opts)
    assert result.step == 2
    nets = (("G", result.G), ("D", result.D), ("G_ema", result.G_ema)) if gan else (("G", result.G),)
    for name, net in nets:
        assert all(torch.isfinite(p).all() for p in net.parameters()), name
    unchanged = [k for k, v in params(result.G).items() if torch.equal(v, before.state_dict()[k])
                 and not k.startswith(getattr(result.G, "unused_parameters", ()) or ("\0",))]
    assert not unchanged, f"G parameters not trained: {unchanged[:5]}"
    files = set(os.listdir(tmp_path / "run"))
    assert {"training_options.json", "stats.jsonl", "log.txt", "training-state.pt", "fakes000000.png",
            "network-snapshot-000000.pt", "fakes000000.016.png", "network-snapshot-000000.016.pt"} <= files
    G = pixelfolder.load(tmp_path / "run" / "network-snapshot-000000.016.pt")     # 16 images: 2 steps of 8
    assert G.arch == arch and G.metadata["step"] == 2
    assert pixelfolder.load(tmp_path / "run" / "network-snapshot-000000.pt").metadata["step"] == 0
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 2
    if gan:
        assert "loss_G" in stats[-1] and "loss_D" in stats[-1] and "r1" in stats[-1]
        if path_length:
            assert "pl_penalty" in stats[-1]
    else:
        assert result.D is None and "nll_bpd" in stats[-1]
