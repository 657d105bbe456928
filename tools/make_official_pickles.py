#!/usr/bin/env python3
"""Build NVlabs-style snapshot pickles with the OFFICIAL code at the official 256 px training configurations.

Run it with an interpreter that can import the official repositories' dependencies (torch, numpy, scipy,
omegaconf; click/hydra-core are not needed), NOT with pixelfolder (this script never imports it):

    /tmp/offvenv/bin/python tools/make_official_pickles.py \
        --inrgan /tmp/off/inr-gan --creps /tmp/off/CREPS --sg2ada /tmp/off/stylegan2-ada-pytorch \
        --out tests/fixtures --width small --expected

Every network is built in its own subprocess (the three repositories all define top-level `training`,
`torch_utils` and `dnnlib` packages) with the repository's own constructors and the keyword arguments its
train.py / training_loop.py pass, random weights (torch.manual_seed), float32, on the CPU, and written as the
repository's training_loop.py writes `network-snapshot-*.pkl`: the same dict keys in the same order, every module
`copy.deepcopy(m).eval().requires_grad_(False).cpu()`, pickled with `pickle.dump` through the repository's own
`torch_utils.persistence`.

Networks (file stem `official_<name>256_<width>`):
  inrgan         universome/inr-gan configs/inr-gan.yml, train.py --cfg=auto (main.yml: 4 GPUs, aug noaug, mirror)
  inrgan_bil     the same with configs/inr-gan-bil.yml
  creps          VinAIResearch/CREPS train.py --cfg=creps (aug ada, mirror)
  sg2ada         NVlabs/stylegan2-ada-pytorch train.py --cfg=stylegan2 (config F; aug ada, mirror)
  sg2ada_paper   the same with --cfg=paper256 (only when asked for with --nets)

--width full: exactly the official widths.  --width small: the same structure (every module class, block,
extra conv, coordinate embedding, noise buffer, decoder and mapping layer is there) with widths shrunk only
through constructor arguments the official code accepts (z_dim/w_dim, channel_base/channel_max, CREPS
biline_channels, INR-GAN const/random embedding sizes); see SMALL below.

--expected also writes `<stem>_expected.pt` (a plain dict, torch.load(weights_only=True)): the images of the
pickle's G_ema, re-loaded from the written file with the official code (pickle.load through torch_utils.persistence),
for seeds 0, 2, 7 with z = np.random.RandomState(seed).randn(1, z_dim) (as gen_images.py / generate.py draw it),
c = zeros([1, 0]), noise_mode='const', force_fp32=True, truncation_psi 1, plus psi 0.7 for seed 0.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import pickle
import pickletools
import platform
import subprocess
import sys
import time
from pathlib import Path

SEEDS = [0, 2, 7]
PSI_SEED = 0
RESOLUTION = 256
NETS = ("inrgan", "inrgan_bil", "creps", "sg2ada", "sg2ada_paper")
DEFAULT_NETS = ("inrgan", "inrgan_bil", "creps", "sg2ada")
REPO_OF = {"inrgan": "inrgan", "inrgan_bil": "inrgan", "creps": "creps", "sg2ada": "sg2ada",
           "sg2ada_paper": "sg2ada"}
REPO_NAME = {"inrgan": "universome/inr-gan", "creps": "VinAIResearch/CREPS",
             "sg2ada": "NVlabs/stylegan2-ada-pytorch"}
# Widths of --width small (everything else is the official configuration).
SMALL = {
    "inrgan": dict(z_dim=16, w_dim=16, channel_base=1024, channel_max=16, d_channel_base=1024, d_channel_max=16,
                   low_const_emb_size=4, medium_const_emb_size=1, medium_random_emb_size=4),
    "creps": dict(z_dim=32, w_dim=32, cbase=512, cmax=16, biline_channels=8),   # G gets 2 * cbase, 2 * cmax
    "sg2ada": dict(z_dim=32, w_dim=32, channel_base=1024, channel_max=16),
}
# How the random weights are made (on top of the official initialisation, so that no bias is zero, noise
# matters, w_avg is a real average and the training copy G differs from G_ema).
WEIGHTS_NOTE = ("official constructor initialisation after torch.manual_seed(seed) and np.random.seed(seed); then "
                "every parameter named *bias += N(0, 0.1^2) (G and D), every noise_strength = N(0, 0.3^2), "
                "mapping.w_avg = mean of G.mapping(z)[:, 0] over 2048 z ~ N(0, I) (eval mode); G_ema = deepcopy(G); "
                "then the training copy G += N(0, 0.02^2) on every parameter; augment_pipe.p = 0.08")


# ------------------------------------------------------------------------------------------------ helpers
def plain(x):
    """EasyDicts / OrderedDicts / tuples -> plain dicts / lists (what torch.load(weights_only=True) accepts)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item") and getattr(x, "shape", None) == ():
        return x.item()
    return x


STR_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(data: bytes) -> list[str]:
    """Every module.name a pickle references through GLOBAL / STACK_GLOBAL (strings followed through the memo)."""
    out, stack, marks, memo = set(), [], [], {}
    for op, arg, _ in pickletools.genops(data):
        n = op.name
        if n == "MARK":
            marks.append(len(stack))
        elif n in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if n == "MEMOIZE" else arg] = stack[-1]
        elif n in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif n == "GLOBAL":
            out.add(arg.replace(" ", "."))
            stack.append(None)
        elif n == "STACK_GLOBAL":
            mod, name = stack[-2], stack[-1]
            del stack[-2:]
            out.add(f"{mod}.{name}")
            stack.append(None)
        elif n in STR_OPS:
            stack.append(arg)
        elif n == "DUP":
            stack.append(stack[-1])
        else:
            below = len(op.stack_before)
            if pickletools.markobject in op.stack_before:
                del stack[marks.pop():]
                below = op.stack_before.index(pickletools.markobject)
            if below:
                del stack[len(stack) - below:]
            stack.extend([None] * len(op.stack_after))
    return sorted(out)


def pixel_select(n: int, k: int = 96, seed: int = 0):
    """Rows/columns kept of an n-px image: the first k/4, k/4 around n/2, the last k/4, k/4 random others."""
    import numpy as np
    q = k // 4
    fixed = set(range(q)) | set(range(n // 2 - q // 2, n // 2 + q // 2)) | set(range(n - q, n))
    rest = sorted(set(range(n)) - fixed)
    extra = np.random.RandomState(seed).choice(rest, q, replace=False).tolist()
    return sorted(fixed | set(extra))


def repo_commit(path: Path, given: dict, repo_key: str) -> str:
    if given.get(repo_key):
        return given[repo_key]
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; pass --commit)"


# -------------------------------------------------------------------------------------- compatibility shims
def apply_shims() -> list[str]:
    """Runtime shims for old code under numpy 2 / torch 2.13; sources stay byte-identical (module_src hashes)."""
    import numpy as np
    applied = []
    if "float" not in np.__dict__:
        try:
            np.float  # noqa: B018
        except AttributeError:
            np.float = float
            applied.append("runtime shim numpy.float = builtins.float before importing the official code (the alias "
                           "is gone since numpy 1.24; inr-gan src/training/layers.py calls np.float('inf') at import "
                           "time); no source file edited, so every embedded module_src is the official file")
    return applied


# ------------------------------------------------------------------------------------------ configurations
def inrgan_config(repo: Path, variant: str, width: str) -> dict:
    """G/D kwargs as universome/inr-gan src/train.py builds them (cfg=auto, main.yml's 4 GPUs, 256 px)."""
    from omegaconf import OmegaConf
    import dnnlib
    yml = "inr-gan.yml" if variant == "inrgan" else "inr-gan-bil.yml"
    how = None
    try:   # train.py: hydra compose(config_name=hydra_cfg_name); same content as the yml (no defaults list)
        try:
            from hydra import compose, initialize_config_dir
        except ImportError:
            from hydra.experimental import compose, initialize_config_dir
        with initialize_config_dir(config_dir=str(repo / "configs"), job_name="INR-GAN training"):
            hydra_cfg = compose(config_name=yml)
        how = f"hydra compose(config_name={yml!r})"
    except Exception as e:  # noqa: BLE001  (hydra-core 1.0.x does not import on Python >= 3.11)
        hydra_cfg = OmegaConf.load(repo / "configs" / yml)
        why = (str(e).strip().splitlines() or [""])[0][:100]
        how = (f"OmegaConf.load(configs/{yml}) instead of train.py's hydra compose (hydra unavailable: "
               f"{type(e).__name__}: {why}); same content: the yml has no defaults list")
    gpus, res = 4, RESOLUTION                         # configs/main.yml num_gpus: 4; 256 px datasets
    mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    spec = dict(mbstd=min(mb // gpus, 4), fmaps=1 if res >= 512 else 0.5, map=2)   # cfg_specs['auto']
    G_kwargs = dnnlib.EasyDict(class_name="training.networks.Generator", z_dim=512, w_dim=512,
                               mapping_kwargs=dnnlib.EasyDict(), synthesis_kwargs=dnnlib.EasyDict())
    D_kwargs = dnnlib.EasyDict(class_name="training.networks.Discriminator", block_kwargs=dnnlib.EasyDict(),
                               mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    G_kwargs.synthesis_kwargs.channel_base = int(hydra_cfg.generator.get("fmaps", spec["fmaps"]) * 32768)
    D_kwargs.channel_base = int(hydra_cfg.get("discriminator", {}).get("fmaps", spec["fmaps"]) * 32768)
    G_kwargs.synthesis_kwargs.channel_max = D_kwargs.channel_max = 512
    G_kwargs.mapping_kwargs.num_layers = hydra_cfg.generator.get("mapping_net_n_layers", spec["map"])
    G_kwargs.synthesis_kwargs.num_fp16_res = D_kwargs.num_fp16_res = 4
    G_kwargs.synthesis_kwargs.conv_clamp = D_kwargs.conv_clamp = 256
    G_kwargs.cfg = OmegaConf.to_container(hydra_cfg.generator)      # interpolations left unresolved
    D_kwargs.epilogue_kwargs.mbstd_group_size = spec["mbstd"]
    if hydra_cfg.generator.get("fp32"):
        G_kwargs.synthesis_kwargs.num_fp16_res = 0
        G_kwargs.synthesis_kwargs.conv_clamp = None
    desc = (f"configs/{yml} ({how}), src/train.py cfg=auto with configs/main.yml (gpus=4, aug=noaug, mirror=1) "
            f"at {res} px: mapping {G_kwargs.mapping_kwargs.num_layers} layers, G channel_base "
            f"{G_kwargs.synthesis_kwargs.channel_base}, D channel_base {D_kwargs.channel_base}, mbstd "
            f"{spec['mbstd']}, G fp32 (num_fp16_res 0, conv_clamp None), D num_fp16_res 4 / conv_clamp 256")
    if width == "small":
        s = SMALL["inrgan"]
        G_kwargs.z_dim, G_kwargs.w_dim = s["z_dim"], s["w_dim"]
        G_kwargs.synthesis_kwargs.channel_base, G_kwargs.synthesis_kwargs.channel_max = s["channel_base"], \
            s["channel_max"]
        D_kwargs.channel_base, D_kwargs.channel_max = s["d_channel_base"], s["d_channel_max"]
        coords = G_kwargs.cfg["coords"]
        coords["low_res_cfg"]["const_emb_size"] = s["low_const_emb_size"]
        coords["medium_res_cfg"]["const_emb_size"] = s["medium_const_emb_size"]
        coords["medium_res_cfg"]["random_emb_size"] = s["medium_random_emb_size"]
        desc += f"; --width small: {json.dumps(s)}"
    tsk = dict(class_name="training.dataset.ImageFolderDataset", path="data/ffhq256.zip", use_labels=False,
               max_size=70000, xflip=True, resolution=res)
    return dict(G_kwargs=G_kwargs, D_kwargs=D_kwargs, augment_kwargs=None, augment_p=0, ada_target=None,
                training_set_kwargs=tsk, batch_gpu=mb // gpus, config=desc,
                keys=("training_set_kwargs", "G", "D", "G_ema", "augment_pipe"),
                file="src/training/networks.py", cls="training.networks.Generator")


AUGPIPE_BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                   lumaflip=1, hue=1, saturation=1)


def creps_config(width: str) -> dict:
    """G/D kwargs as VinAIResearch/CREPS train.py builds them for --cfg=creps (defaults: cbase 32768, cmax 512,
    mbstd 4, aug ada, gpus 8 / batch 32 as in its README example, --mirror=1)."""
    import dnnlib
    cbase, cmax = 32768, 512
    z_dim = w_dim = 512
    s = SMALL["creps"] if width == "small" else {}
    if s:
        cbase, cmax, z_dim, w_dim = s["cbase"], s["cmax"], s["z_dim"], s["w_dim"]
    G_kwargs = dnnlib.EasyDict(class_name=None, z_dim=z_dim, w_dim=w_dim, mapping_kwargs=dnnlib.EasyDict())
    D_kwargs = dnnlib.EasyDict(class_name="training.networks_stylegan2.Discriminator",
                               block_kwargs=dnnlib.EasyDict(), mapping_kwargs=dnnlib.EasyDict(),
                               epilogue_kwargs=dnnlib.EasyDict())
    G_kwargs.channel_base = D_kwargs.channel_base = cbase
    G_kwargs.channel_max = D_kwargs.channel_max = cmax
    G_kwargs.mapping_kwargs.num_layers = 8
    D_kwargs.block_kwargs.freeze_layers = 0
    D_kwargs.epilogue_kwargs.mbstd_group_size = 4
    G_kwargs.class_name = "training.networks_creps.Generator"
    G_kwargs.channel_base *= 2
    G_kwargs.channel_max *= 2
    if s:
        G_kwargs.biline_channels = s["biline_channels"]
    desc = ("train.py --cfg=creps at 256 px (defaults --cbase=32768 --cmax=512, G doubled to 65536/1024, "
            "mapping 8 layers, --mbstd-group=4, --aug=ada, --mirror=1, fp16 defaults)")
    if s:
        desc += f"; --width small: {json.dumps(s)} (G channel_base/max = 2 * cbase/cmax as train.py does)"
    tsk = dict(class_name="training.dataset.ImageFolderDataset", path="datasets/ffhq-256x256.zip", use_labels=False,
               max_size=70000, xflip=True, resolution=RESOLUTION, random_seed=0)
    return dict(G_kwargs=G_kwargs, D_kwargs=D_kwargs,
                augment_kwargs=dict(class_name="training.augment.AugmentPipe", **AUGPIPE_BGC), augment_p=0,
                ada_target=0.6, training_set_kwargs=tsk, batch_gpu=4, config=desc,
                keys=("G", "D", "G_ema", "augment_pipe", "training_set_kwargs"),
                file="training/networks_creps.py", cls="training.networks_creps.Generator")


def sg2ada_config(cfg: str, width: str) -> dict:
    """G/D kwargs as NVlabs/stylegan2-ada-pytorch train.py builds them for --cfg=stylegan2 / paper256 (aug ada)."""
    import dnnlib
    specs = {"stylegan2": dict(ref_gpus=8, mb=32, mbstd=4, fmaps=1, map=8),
             "paper256": dict(ref_gpus=8, mb=64, mbstd=8, fmaps=0.5, map=8)}
    spec = specs[cfg]
    G_kwargs = dnnlib.EasyDict(class_name="training.networks.Generator", z_dim=512, w_dim=512,
                               mapping_kwargs=dnnlib.EasyDict(), synthesis_kwargs=dnnlib.EasyDict())
    D_kwargs = dnnlib.EasyDict(class_name="training.networks.Discriminator", block_kwargs=dnnlib.EasyDict(),
                               mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    G_kwargs.synthesis_kwargs.channel_base = D_kwargs.channel_base = int(spec["fmaps"] * 32768)
    G_kwargs.synthesis_kwargs.channel_max = D_kwargs.channel_max = 512
    G_kwargs.mapping_kwargs.num_layers = spec["map"]
    G_kwargs.synthesis_kwargs.num_fp16_res = D_kwargs.num_fp16_res = 4
    G_kwargs.synthesis_kwargs.conv_clamp = D_kwargs.conv_clamp = 256
    D_kwargs.epilogue_kwargs.mbstd_group_size = spec["mbstd"]
    desc = (f"train.py --cfg={cfg} at 256 px (channel_base {G_kwargs.synthesis_kwargs.channel_base}, channel_max "
            f"512, mapping {spec['map']} layers, num_fp16_res 4, conv_clamp 256, mbstd {spec['mbstd']}, "
            "--aug=ada --augpipe=bgc, --mirror=1)")
    if width == "small":
        s = SMALL["sg2ada"]
        G_kwargs.z_dim, G_kwargs.w_dim = s["z_dim"], s["w_dim"]
        G_kwargs.synthesis_kwargs.channel_base = D_kwargs.channel_base = s["channel_base"]
        G_kwargs.synthesis_kwargs.channel_max = D_kwargs.channel_max = s["channel_max"]
        desc += f"; --width small: {json.dumps(s)}"
    tsk = dict(class_name="training.dataset.ImageFolderDataset", path="datasets/ffhq-256x256.zip", use_labels=False,
               max_size=70000, xflip=True, resolution=RESOLUTION)
    return dict(G_kwargs=G_kwargs, D_kwargs=D_kwargs,
                augment_kwargs=dict(class_name="training.augment.AugmentPipe", **AUGPIPE_BGC), augment_p=0,
                ada_target=0.6, training_set_kwargs=tsk, batch_gpu=spec["mb"] // spec["ref_gpus"], config=desc,
                keys=("training_set_kwargs", "G", "D", "G_ema", "augment_pipe"),
                file="training/networks.py", cls="training.networks.Generator")


D_INPUT_HOW = ("x = sin(0.05 * k + 0.3 * b) * (1 + 0.5 * cos(0.001 * k)) for k = 0 .. 3*256*256-1 the flat index "
               "within image b = 0, 1, 2, computed in float64 and cast to float32, shape (3, 3, 256, 256); "
               "scores = D(x, c=zeros([3, 0]), force_fp32=True) (mbstd over the batch of 3)")


def d_test_input():
    import torch
    k = torch.arange(3 * RESOLUTION * RESOLUTION, dtype=torch.float64)
    imgs = [torch.sin(0.05 * k + 0.3 * b) * (1 + 0.5 * torch.cos(0.001 * k)) for b in range(3)]
    return torch.stack(imgs).reshape(3, 3, RESOLUTION, RESOLUTION).to(torch.float32)


# ------------------------------------------------------------------------------------------------- build
def randomize(G, D, seed: int):
    import torch
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)
                elif name.endswith("noise_strength"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        z = torch.randn([2048, G.z_dim], generator=gen)
        c = torch.zeros([2048, G.c_dim])
        was = G.training
        G.eval()
        G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))
        G.train(was)


def build_one(net: str, repo: Path, out: Path, width: str, expected: bool, seed: int, warmup_batch: int,
              commit: str, seeds: list[int] = SEEDS) -> dict:
    root = repo / "src" if net.startswith("inrgan") else repo
    sys.path.insert(0, str(root))
    os.chdir(root)                     # as the official scripts run (relative imports of data, configs, ...)
    patches = apply_shims() if net.startswith("inrgan") else []   # CREPS / SG2-ADA import as they are
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import dnnlib
    from torch_utils import misc

    if net.startswith("inrgan"):
        cfg = inrgan_config(repo, net, width)
    elif net == "creps":
        cfg = creps_config(width)
    else:
        cfg = sg2ada_config("paper256" if net == "sg2ada_paper" else "stylegan2", width)

    # training_loop.py: seeds, networks, G_ema = deepcopy(G).eval()
    np.random.seed(seed)
    torch.manual_seed(seed)
    common = dict(c_dim=0, img_resolution=RESOLUTION, img_channels=3)
    G = dnnlib.util.construct_class_by_name(**cfg["G_kwargs"], **common).train().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**cfg["D_kwargs"], **common).train().requires_grad_(False)
    randomize(G, D, seed)
    G_ema = copy.deepcopy(G).eval()
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for p in G.parameters():     # the training copy has moved on from the EMA
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    # The forwards the training loop runs before a snapshot (print_module_summary(G, [z, c]), then G_ema on the
    # image grid) leave state behind only in INR-GAN (CoordFuser `_fourier_embs_cache`); they are run for INR-GAN
    # only (D's summary forward and fp16 forwards of the others take many minutes on the CPU and change nothing).
    warmup_batch = warmup_batch if net.startswith("inrgan") else 0
    if warmup_batch:                 # print_module_summary(G, [z, c]); z = zeros (the loop uses torch.empty)
        misc.print_module_summary(G, [torch.zeros([warmup_batch, G.z_dim]), torch.zeros([warmup_batch, G.c_dim])])
    augment_pipe = None
    if cfg["augment_kwargs"] is not None and (cfg["augment_p"] > 0 or cfg["ada_target"] is not None):
        augment_pipe = dnnlib.util.construct_class_by_name(**cfg["augment_kwargs"]).train().requires_grad_(False)
        augment_pipe.p.copy_(torch.as_tensor(cfg["augment_p"]))
        augment_pipe.p.copy_(torch.as_tensor(0.08))     # as after some ADA adjustments
    if warmup_batch:                 # 'Exporting sample images': G_ema(z, c, noise_mode='const') on the grid
        with torch.no_grad():
            G_ema(z=torch.randn([warmup_batch, G.z_dim], generator=gen), c=torch.zeros([warmup_batch, G.c_dim]),
                  noise_mode="const")

    # Save network snapshot, as training_loop.py does (dict order and keys of that repo).
    mods = dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe)
    snapshot = {}
    for key in cfg["keys"]:
        if key == "training_set_kwargs":
            snapshot[key] = dict(cfg["training_set_kwargs"])
        else:
            m = mods[key]
            snapshot[key] = None if m is None else copy.deepcopy(m).eval().requires_grad_(False).cpu()
    stem = f"official_{net}{RESOLUTION}_{width}"
    pkl = out / f"{stem}.pkl"
    t0 = time.time()
    with open(pkl, "wb") as f:
        pickle.dump(snapshot, f)
    data = pkl.read_bytes()
    info = dict(net=net, pickle=str(pkl), bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                globals=pickle_globals(data), write_s=round(time.time() - t0, 1),
                params={k: sum(p.numel() for p in m.parameters()) for k, m in mods.items() if m is not None})
    del snapshot, mods, G, D, G_ema, augment_pipe
    if not expected:
        return info

    # Reload the file with the official loader (torch_utils.persistence) and render the official seeds.
    t0 = time.time()
    with open(pkl, "rb") as f:
        loaded = pickle.load(f)
    G, D = loaded["G_ema"].eval(), loaded["D"].eval()
    del loaded
    info["load_s"] = round(time.time() - t0, 1)
    zs = torch.cat([torch.from_numpy(np.random.RandomState(s).randn(1, G.z_dim)).to(torch.float32) for s in seeds])
    kwargs = dict(noise_mode="const", force_fp32=True)
    t0 = time.time()
    with torch.no_grad():
        images = torch.cat([G(zs[i:i + 1], torch.zeros([1, G.c_dim]), truncation_psi=1, **kwargs)
                            for i in range(len(seeds))])
        i0 = seeds.index(PSI_SEED)
        psi = G(zs[i0:i0 + 1], torch.zeros([1, G.c_dim]), truncation_psi=0.7, **kwargs)
    info["render_s_per_image"] = round((time.time() - t0) / (len(seeds) + 1), 2)
    with torch.no_grad():            # the discriminator on a fixed, formula-made batch (no RNG involved)
        d_input = d_test_input()
        d_scores = D(d_input, torch.zeros([d_input.shape[0], D.c_dim]), force_fp32=True)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    shape = list(images.shape)
    fx = {
        "format": "official-config-pickle-expected v1",
        "pickle": pkl.name, "pickle_sha256": info["sha256"], "width": width, "network": "G_ema",
        "class_name": cfg["cls"], "init_kwargs": plain(G.init_kwargs), "init_args": plain(list(G.init_args)),
        "seeds": list(seeds), "z": zs, "c": None, "truncation_psi": 1.0,
        "forward_kwargs": dict(kwargs, truncation_psi=1), "image_shape": shape,
        "max_abs": images.abs().max().item(), "psi_seed": PSI_SEED,
        "max_abs_psi0.7": psi.abs().max().item(), "globals": info["globals"],
        "snapshot_keys": list(cfg["keys"]),
        "d_scores": d_scores, "d_init_kwargs": plain(D.init_kwargs), "d_class_name": cfg["D_kwargs"]["class_name"],
        "d_input_how": D_INPUT_HOW,
        "w_avg": G.mapping.w_avg.detach().clone(),
        "source": {
            "repo": REPO_NAME[REPO_OF[net]], "commit": commit, "file": cfg["file"], "class": cfg["cls"],
            "config": cfg["config"], "weights": WEIGHTS_NOTE + f" (seed {seed})",
            "snapshot": "training_loop.py network snapshot: keys " + ", ".join(cfg["keys"]) +
                        "; modules deepcopy(m).eval().requires_grad_(False).cpu(); pickle.dump (protocol "
                        f"{pickle.DEFAULT_PROTOCOL}) through torch_utils.persistence",
            "warmup": warmup_note(net, warmup_batch),
            "patches": patches or ["none"],
            "environment": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
                           + _omegaconf_version(),
            "expected": "G_ema re-loaded from the written pickle with pickle.load (official persistence); per seed "
                        "z = np.random.RandomState(seed).randn(1, z_dim) -> float32, c = zeros([1, 0]), "
                        "noise_mode='const', force_fp32=True",
        },
    }
    idx = torch.tensor(pixel_select(shape[-1]), dtype=torch.long)    # keeps every .pt well under 2 MB
    pick = lambda x: x.index_select(2, idx).index_select(3, idx).contiguous()  # noqa: E731
    fx.update(images=pick(images), **{"images_psi0.7": pick(psi)}, stored="pixel_select", pixel_select=idx,
              pixel_select_how="stored = image.index_select(2, idx).index_select(3, idx); idx = rows/columns "
                               "0-23, the 24 around H/2 (116-139), the last 24 and 24 others drawn by "
                               "np.random.RandomState(0); max_abs is over the full images")
    exp = out / f"{stem}_expected.pt"
    torch.save(fx, exp)
    info["expected"] = str(exp)
    info["expected_bytes"] = exp.stat().st_size
    info["max_abs"] = fx["max_abs"]
    return info


def warmup_note(net: str, warmup_batch: int) -> str:
    if warmup_batch:
        return (f"G summary forward (train mode) and G_ema grid forward at batch {warmup_batch} before the snapshot, "
                "as the training loop runs them (CoordFuser Fourier caches filled)")
    if net.startswith("inrgan"):
        return ("no forward before the snapshot (CoordFuser caches are None; the training loop would have filled "
                "them with tensors, which add no global)")
    return "no forward before the snapshot (this network keeps no state from a forward)"


def _omegaconf_version() -> str:
    try:
        import omegaconf
        return f", omegaconf {omegaconf.__version__}"
    except ImportError:
        return ""


# -------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inrgan", type=Path, help="extracted universome/inr-gan")
    ap.add_argument("--creps", type=Path, help="extracted VinAIResearch/CREPS")
    ap.add_argument("--sg2ada", type=Path, help="extracted NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--width", choices=("full", "small"), default="small")
    ap.add_argument("--expected", action="store_true", help="also write <stem>_expected.pt")
    ap.add_argument("--nets", default=",".join(DEFAULT_NETS), help=f"comma list out of {', '.join(NETS)}")
    ap.add_argument("--seed", type=int, default=0, help="torch/numpy seed of the random weights")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                    help=f"image seeds of the expected files (default {','.join(map(str, SEEDS))}; must include "
                         f"{PSI_SEED}, the psi 0.7 seed)")
    ap.add_argument("--warmup-batch", type=int, default=None,
                    help="batch of the forwards the training loop runs before a snapshot (0 = none); "
                         "default 1 for --width full, 0 for --width small")
    ap.add_argument("--commit", action="append", default=[], metavar="REPO=SHA",
                    help="commit of an extracted repo (inrgan=..., creps=..., sg2ada=...) when it is no checkout")
    ap.add_argument("--manifest", type=Path, help="write what was built (sizes, globals, timings) as JSON here")
    ap.add_argument("--one", help=argparse.SUPPRESS)       # internal: build one network in this process
    args = ap.parse_args(argv)
    commits = dict(c.split("=", 1) for c in args.commit)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if PSI_SEED not in seeds:
        ap.error(f"--seeds must include {PSI_SEED} (the psi 0.7 image is rendered for it)")
    warmup = args.warmup_batch if args.warmup_batch is not None else (1 if args.width == "full" else 0)
    repos = {"inrgan": args.inrgan, "creps": args.creps, "sg2ada": args.sg2ada}
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.one:
        repo = repos[REPO_OF[args.one]].resolve()
        info = build_one(args.one, repo, args.out, args.width, args.expected, args.seed, warmup,
                         repo_commit(repo, commits, REPO_OF[args.one]), seeds)
        print("RESULT " + json.dumps(info))
        return 0

    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    bad = [n for n in nets if n not in NETS]
    if bad:
        ap.error(f"unknown --nets {bad}; known: {', '.join(NETS)}")
    nets = [n for n in nets if repos[REPO_OF[n]] is not None]
    if not nets:
        ap.error("nothing to build: pass --inrgan, --creps and/or --sg2ada")
    results = []
    for net in nets:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", net, "--out", str(args.out),
               "--width", args.width, "--seed", str(args.seed), "--warmup-batch", str(warmup), "--seeds", args.seeds]
        for key, path in repos.items():
            if path is not None:
                cmd += [f"--{key}", str(path.resolve())]
        cmd += [f"--commit={k}={v}" for k, v in commits.items()]
        if args.expected:
            cmd.append("--expected")
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
            print(f"{net}: FAILED (exit {proc.returncode})", file=sys.stderr)
            return 1
        info = json.loads(lines[-1][len("RESULT "):])
        info["total_s"] = round(time.time() - t0, 1)
        results.append(info)
        print(f"{net}: {Path(info['pickle']).name} {info['bytes']:,} bytes"
              + (f", {Path(info['expected']).name} {info['expected_bytes']:,} bytes, max_abs {info['max_abs']:.4g}"
                 if "expected" in info else "") + f" ({info['total_s']} s)")
        print("  globals: " + ", ".join(info["globals"]))
    if args.manifest:
        args.manifest.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
