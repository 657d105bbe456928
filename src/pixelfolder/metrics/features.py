"""Feature extraction: detectors, uint8 image batches from datasets and generators, and the reference cache.

Reference (real) features are cached on disk in $PIXELFOLDER_CACHE/metrics/stats/ (else ~/.cache/pixelfolder/...),
keyed by a SHA-256 of the dataset's identity (resolved path; a zip's or LMDB's size and mtime, a folder's listed
files' names, sizes and mtimes in ns; number of images, resolution),
the number of images used, the detector (name, output layers, hash of its weights) and a format version. A file
holds the raw features of every layer (for KID and precision/recall) and, for pool3, mu and sigma (for FID).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PixelfolderError
from ..progress import Progress
from .fid import feature_stats
from .weights import Weights, cache_dir, inception_weights, vgg16_weights

CACHE_VERSION = 1
GEN_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True, eq=False)
class Detector:
    """A frozen feature network: uint8 (N, 3, H, W) images -> {layer: (N, D) float32}."""
    name: str                   # 'inception' or 'vgg16'
    net: nn.Module
    weights: Weights
    layers: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.name}:{'+'.join(self.layers)}:{self.weights.sha256}"

    def describe(self) -> str:
        return f"{self.name} {'+'.join(self.layers)} ({self.weights.describe()})"

    @property
    def device(self) -> torch.device:
        return next(iter(self.net.parameters())).device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        images = images.to(self.device)
        if self.name == "inception":
            out = self.net(images, logits="logits_unbiased" in self.layers)
        else:
            out = {"fc2_relu": self.net.fc2_relu(images)}
        return {k: out[k].float().cpu() for k in self.layers}


def load_inception(path=None, *, need_logits: bool = False, device="cpu") -> Detector:
    from .inception import InceptionV3FID
    w = inception_weights(path, need_logits=need_logits)
    net = InceptionV3FID(with_logits=w.has_logits)
    net.load_state_dict(w.state_dict)
    net = net.eval().to(device).fold()
    layers = ("pool3", "logits_unbiased") if w.has_logits else ("pool3",)
    return Detector("inception", net, w, layers)


def load_vgg16(path=None, *, device="cpu") -> Detector:
    from .vgg import VGG16
    w = vgg16_weights(path)
    net = VGG16()
    net.load_state_dict(w.state_dict)
    return Detector("vgg16", net.eval().to(device).to(memory_format=torch.channels_last), w, ("fc2_relu",))


# ------------------------------------------------------------------------------------------------------ sources

def to_uint8_nchw(images: torch.Tensor) -> torch.Tensor:
    """Float NCHW in [-1, 1] -> uint8 NCHW, as NVlabs' metrics: (x * 127.5 + 128).clamp(0, 255), truncated.
    One channel is repeated to three; other channel counts are an error."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise PixelfolderError(f"metrics need (N, 3, H, W) RGB images (or 1 channel), got {tuple(images.shape)}")
    x = (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def _real_image(dataset, index: int) -> torch.Tensor:
    """Image `index` of a dataset as uint8 (3, H, W) (never the x-flipped copies)."""
    if hasattr(dataset, "image"):
        return torch.from_numpy(np.ascontiguousarray(dataset.image(index).transpose(2, 0, 1)))
    item = dataset[index]
    item = item[0] if isinstance(item, (tuple, list)) else item
    return item if item.dtype == torch.uint8 else to_uint8_nchw(item.unsqueeze(0))[0]


def dataset_batches(dataset, count: int, batch: int):
    """uint8 (N, 3, H, W) batches of the first `count` images; a list of single images when sizes differ."""
    for start in range(0, count, batch):
        images = [_real_image(dataset, i) for i in range(start, min(start + batch, count))]
        if all(im.shape == images[0].shape for im in images):
            yield torch.stack(images)
        else:
            yield [im.unsqueeze(0) for im in images]


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def generator_batches(G, seeds, batch: int, *, truncation_psi: float = 1.0, noise_mode: str = "random",
                      gen_dtype: str = "fp32"):
    """uint8 batches of G.sample(seeds) (per-seed latents and noise), optionally under bf16 autocast."""
    if gen_dtype not in GEN_DTYPES:
        raise PixelfolderError(f"--gen-dtype must be one of {', '.join(GEN_DTYPES)}, not {gen_dtype!r}")
    device = next(G.parameters()).device
    autocast = torch.autocast(device.type, dtype=GEN_DTYPES[gen_dtype] or torch.float32,
                              enabled=GEN_DTYPES[gen_dtype] is not None)
    seeds = list(seeds)
    with eval_mode(G):
        for start in range(0, len(seeds), batch):
            with autocast:
                images = G.sample(seeds[start:start + batch], batch_size=batch, truncation_psi=truncation_psi,
                                  noise_mode=noise_mode, device=device)
            yield to_uint8_nchw(images.float())


def extract(batches, detectors, total: int, *, desc: str = "features", progress: bool | None = None) -> dict:
    """{detector.id: {layer: (N, D) float32 tensor}} of every detector on every batch (one pass over the images)."""
    parts = {d.id: {layer: [] for layer in d.layers} for d in detectors}
    with Progress(total, desc, enabled=progress) as bar:
        for images in batches:
            groups = images if isinstance(images, list) else [images]
            for det in detectors:
                outs = [det(g) for g in groups]
                for layer in det.layers:
                    parts[det.id][layer].append(torch.cat([o[layer] for o in outs]))
            bar.update(sum(len(g) for g in groups))
    return {k: {layer: torch.cat(v) if v else torch.empty(0) for layer, v in layers.items()}
            for k, layers in parts.items()}


# ------------------------------------------------------------------------------------------------ reference cache

def dataset_identity(dataset) -> dict | None:
    """What identifies a dataset's content cheaply, or None (no caching) for datasets that are not files."""
    path = getattr(dataset, "path", None)
    if path is None or not Path(path).exists():
        return None
    path = Path(path).resolve()
    source = getattr(dataset, "source", None)
    if source is not None and hasattr(source, "fingerprint"):
        content = source.fingerprint()          # a folder: every file's name, size and mtime
    else:
        target = path / "data.mdb" if (path / "data.mdb").is_file() else path
        st = target.stat()
        content = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    resolution = getattr(dataset, "_resolution", None) or tuple(getattr(dataset, "image_shape", ()))
    return {"path": str(path), **content, "num_images": int(getattr(dataset, "num_images", len(dataset))),
            "resolution": resolution, "split": getattr(dataset, "split", "all")}


def reference_key(identity: dict, count: int, detector: Detector) -> str:
    blob = json.dumps({"dataset": identity, "count": count, "detector": detector.id, "version": CACHE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def reference_path(key: str, detector: Detector) -> Path:
    return cache_dir() / "stats" / f"{detector.name}-{key[:24]}.pt"


def _load_reference(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (a damaged cache file is recomputed)
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def _save_reference(path: Path, key: str, identity: dict, detector: Detector, features: dict) -> dict:
    from ..atomic import atomic_torch_save
    record = {"key": key, "identity": json.dumps(identity, default=str), "detector": detector.describe(),
              "features": features}
    if "pool3" in features:
        mu, sigma = feature_stats(features["pool3"].numpy())
        record["mu"], record["sigma"] = torch.from_numpy(mu), torch.from_numpy(sigma)
    try:
        atomic_torch_save(record, path)
    except OSError:
        pass
    return record


def reference_features(dataset, count: int, detectors, *, batch: int = 32, progress: bool | None = None,
                       use_cache: bool = True) -> dict:
    """{detector.id: record} with record['features'][layer] (and 'mu'/'sigma' for pool3), from the cache if present.
    Missing detectors are computed in one pass over the first `count` images and saved."""
    identity = dataset_identity(dataset) if use_cache else None
    out, todo = {}, []
    for det in detectors:
        if identity is not None:
            key = reference_key(identity, count, det)
            record = _load_reference(reference_path(key, det), key)
            if record is not None:
                out[det.id] = record
                continue
        todo.append(det)
    if todo:
        feats = extract(dataset_batches(dataset, count, batch), todo, count, desc="real images", progress=progress)
        for det in todo:
            if identity is not None:
                key = reference_key(identity, count, det)
                out[det.id] = _save_reference(reference_path(key, det), key, identity, det, feats[det.id])
            else:
                out[det.id] = {"features": feats[det.id]}
    return out
