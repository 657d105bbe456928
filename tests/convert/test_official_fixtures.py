"""Converted official weights reproduce every stored official output (../shared/fixtures/official)."""
import pytest
import torch

from pixelfolder.convert import convert_state_dict
from pixelfolder.layers import mix_ws, switch
from pixelfolder.training.losses import d_logistic_loss, g_nonsaturating_loss, r1_loss_weight, r1_penalty
from tests.helpers import assert_close, load_fixture, stored_view

GENERATOR_FILES = ["pixelfolder_64.pt", "pixelfolder_128.pt", "pixelfolder_256.pt", "stylegan2_64.pt",
                   "cips_skip_32.pt", "cips_skip_64.pt", "cips_res_32.pt", "cips_res_32_skipconv.pt"]
IMPLS = ["fused", "nonfused"]
REL_TOL = 1e-5


def run_case(G, fx, name, case):
    """Our call equivalent to the official forward the case records; returns (image, ws, stages)."""
    ins = fx["inputs"]
    G.train(case["mode"] == "train")
    kw = case["kwargs"]
    psi = kw.get("truncation", 1.0)
    noise = ins["noise"] if "noise" in kw else None
    size = ins["coords48"].shape[-1] if case["coords"] == "@coords48" else None
    styles = case["styles"]
    if styles == ["@z", "@z2"]:
        ws = mix_ws(G.mapping(ins["z"]), G.mapping(ins["z2"]), kw["inject_index"])
    elif kw.get("input_is_latent"):
        ws = ins[styles[0][1:]]
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).repeat(1, G.n_latent, 1)
        ws = G.mapping.w_avg + psi * (ws - G.mapping.w_avg) if psi != 1.0 else ws
    else:
        assert styles == ["@z"], name
        ws = G.mapping(ins["z"], truncation_psi=psi)
    img, stages = G(ws=ws, noise=noise, size=size, return_stages=True)
    return img, ws, stages


@pytest.fixture(scope="module", params=GENERATOR_FILES)
def converted(request):
    fx = load_fixture(request.param)
    G = convert_state_dict(fx["state_dict"])
    G.mapping.w_avg.copy_(fx["truncation_latent"][0])
    return fx, G


def test_mapping_and_w_avg(converted):
    fx, G = converted
    ins = fx["inputs"]
    with torch.no_grad():
        w = G.mapping.embed(ins["z"])
        mean = G.mapping.embed(ins["truncation_z"]).mean(0, keepdim=True)
    assert_close(w, fx["w"], "mapping")
    assert_close(mean, fx["truncation_latent"], "w mean")


@pytest.mark.parametrize("impl", IMPLS)
def test_every_case(converted, impl):
    fx, G = converted
    assert fx["cases"], "fixture has no cases"
    for name, case in fx["cases"].items():
        with torch.no_grad(), switch(G, impl=impl):
            img, ws, stages = run_case(G, fx, name, case)
        assert tuple(img.shape) == tuple(case["image_shape"]), name
        assert_close(stored_view(fx, img), case["image"], f"{name} image ({impl})", scale=case["max_abs"])
        latent = case["latent"]
        ours_latent = ws[:, 0] if latent.ndim == 2 else ws
        assert_close(ours_latent, latent, f"{name} latent")
        if "all_images" in case:
            by_width = {s.shape[-1]: s for s in stages}
            for ref, shape in zip(case["all_images"], case["all_images_shapes"]):
                ours = stored_view(fx, by_width[shape[-1]])
                assert_close(ours, ref, f"{name} stage {shape[-1]}px", scale=case["max_abs"])


def test_cips_train_and_eval_differ_as_officially():
    fx = load_fixture("cips_skip_32.pt")
    assert (fx["cases"]["train_psi1"]["image"] - fx["cases"]["eval_psi1"]["image"]).abs().max() > 1e-2


@pytest.fixture(scope="module")
def disc():
    fx = load_fixture("discriminator_64.pt")
    return fx, convert_state_dict(fx["state_dict"])


def test_discriminator_logits(disc):
    fx, D = disc
    for name, (a, b) in fx["slices"].items():
        with torch.no_grad():
            logits = D(fx["images"][a:b])
        assert_close(logits, fx[f"logits_{name}"], f"logits {name}", scale=fx["max_abs_logits"])


def test_logistic_losses(disc):
    fx, D = disc
    with torch.no_grad():
        real, fake = D(fx["images"][0:4]), D(fx["images"][4:8])
    for ours, key in ((d_logistic_loss(real, fake), "d_logistic_loss"), (g_nonsaturating_loss(fake), "g_nonsaturating_loss")):
        ref = fx[key]
        assert abs(ours.item() - ref.item()) <= REL_TOL * abs(ref.item()), key


def test_r1_gradient_and_penalty(disc):
    fx, D = disc
    real = fx["images"][0:4].clone().requires_grad_(True)
    pred = D(real)
    penalty, grad = r1_penalty(pred, real)
    assert_close(pred.detach(), fx["r1_real_pred"], "r1 pred", scale=fx["max_abs_logits"])
    assert_close(grad.detach(), fx["r1_grad"], "r1 grad", scale=fx["max_abs_r1_grad"])
    assert abs(penalty.item() - fx["r1_penalty"].item()) <= REL_TOL * fx["r1_penalty"].item()
    weighted = penalty * r1_loss_weight(fx["r1_gamma"], fx["d_reg_every"])
    assert abs(weighted.item() - fx["r1_weighted"].item()) <= REL_TOL * fx["r1_weighted"].item()
