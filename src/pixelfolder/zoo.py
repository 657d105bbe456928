"""The official pretrained networks: where each one lives, its format and the converter that reads it.

None of these files was downloaded or inspected while writing this table (the build machines are offline); the
formats are those the official code writes, and the converters are tested on files written by that code.
A `direct` entry's short name works as `--network NAME`: it is downloaded once into the cache. The others (Google
Drive folders, archives) give a one-line instruction; a file dropped at the entry's cache path then works by name.
"""
from __future__ import annotations

from dataclasses import dataclass

NGC_SG3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
NGC_SG2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
SG2ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
INRGAN = "https://kaust-cair.s3.amazonaws.com/inr-gan/checkpoints/"
PIXELPYRAMIDS = "http://download.visinf.informatik.tu-darmstadt.de/2021-iccv-mahajan-pixelpyramids/ckpts.tar.gz"
CREPS_DRIVE = "https://drive.google.com/drive/folders/19ntlAXD7MwYqN7OPVuBcZgaC_yFCwpk7"

NVLABS_PICKLE = "NVlabs network pickle (read as data, never executed)"


@dataclass(frozen=True)
class Pretrained:
    name: str            # short name, usable as --network when `direct`
    model: str           # the official model, in words
    dataset: str
    resolution: int      # px
    url: str             # the file, or the page/folder/archive holding it
    format: str
    converter: str       # the pixelfolder module that reads it ('' = not supported yet)
    direct: bool = True  # `url` is the file itself, downloadable without a browser
    filename: str = ""   # the file's own name (for folders and Google Drive links)
    note: str = ""       # what else a user must know (an instruction when not direct or not supported)

    @property
    def supported(self) -> bool:
        return bool(self.converter)


def _nvlabs(name, model, dataset, res, url, converter="pixelfolder.convert.stylegan2_ada", note=""):
    return Pretrained(name, model, dataset, res, url, NVLABS_PICKLE, converter, note=note)


def _drive(name, dataset, res, file_id, filename):
    return Pretrained(name, "PixelFolder", dataset, res, f"https://drive.google.com/file/d/{file_id}/view",
                      "torch .pt (train.py dict with g_ema, or a bare g_ema state_dict)", "pixelfolder.convert.archs",
                      direct=False, filename=filename,
                      note="Google Drive only: download it in a browser, then pass the file")


_SG3_NOTE = "StyleGAN3 networks are not supported yet (the StyleGAN3 architecture has not landed)"
_COND_NOTE = "class-conditional networks are not supported yet"

PRETRAINED: tuple[Pretrained, ...] = (
    _drive("pixelfolder-ffhq256", "FFHQ", 256, "1qrkATOalIw04MHKTf3tC8Oqe0POHaGo1", "PixelFolder_ffhq_256.pt"),
    _drive("pixelfolder-ffhq512", "FFHQ", 512, "1R54xHWvP-TbJp_uZFDMdec8lvtnYSISr", "PixelFolder_ffhq_512.pt"),
    _drive("pixelfolder-ffhq1024", "FFHQ", 1024, "16Oi0x_t2u50HMa-ZPhRMa0uNzgYc2sjN", "PixelFolder_ffhq_1024.pt"),
    _drive("pixelfolder-church256", "LSUN Church", 256, "1kX9LWLpMpOnLhft2wIkIoqzjFDMO6D01",
           "PixelFolder_church_256.pt"),
    *(_nvlabs(f"inrgan-{d}256", "INR-GAN", label, 256, f"{INRGAN}{d}.pkl", "pixelfolder.convert.inrgan",
              note=note)
      for d, label, note in (("churches", "LSUN Churches", ""), ("bedrooms", "LSUN Bedrooms", "use --trunc 0.9"),
                             ("ffhq", "FFHQ", ""))),
    *(_nvlabs(f"inrgan_bil-{d}256", "INR-GAN-bil", label, 256, f"{INRGAN}{d}-bil.pkl", "pixelfolder.convert.inrgan",
              note=note)
      for d, label, note in (("churches", "LSUN Churches", ""), ("bedrooms", "LSUN Bedrooms", "use --trunc 0.95"),
                             ("ffhq", "FFHQ", ""))),
    Pretrained("creps-ffhq512", "CREPS", "FFHQ", 512, CREPS_DRIVE, NVLABS_PICKLE, "pixelfolder.convert.creps",
               direct=False, filename="creps-ffhq-512x512.pkl",
               note="Google Drive folder (with the other CREPS networks): download the file in a browser"),
    *(_nvlabs(f"stylegan2-{d}{r}", "StyleGAN2 (NGC)", label, r,
              f"{NGC_SG2}stylegan2-{d}-{r}x{r}.pkl")
      for d, label, r in (("ffhq", "FFHQ", 1024), ("ffhq", "FFHQ", 512), ("ffhq", "FFHQ", 256),
                          ("ffhqu", "FFHQ-U", 1024), ("ffhqu", "FFHQ-U", 256), ("metfaces", "MetFaces", 1024),
                          ("metfacesu", "MetFaces-U", 1024), ("afhqv2", "AFHQv2", 512), ("afhqcat", "AFHQ Cat", 512),
                          ("afhqdog", "AFHQ Dog", 512), ("afhqwild", "AFHQ Wild", 512),
                          ("brecahad", "BreCaHAD", 512), ("celebahq", "CelebA-HQ", 256),
                          ("lsundog", "LSUN Dog", 256))),
    _nvlabs("stylegan2-cifar10-32", "StyleGAN2 (NGC)", "CIFAR-10 (conditional)", 32,
            f"{NGC_SG2}stylegan2-cifar10-32x32.pkl", converter="", note=_COND_NOTE),
    *(_nvlabs(f"stylegan2ada-{d}{r}", "StyleGAN2-ADA", label, r, f"{SG2ADA}{d}.pkl")
      for d, label, r in (("ffhq", "FFHQ (original StyleGAN2)", 1024), ("metfaces", "MetFaces", 1024),
                          ("afhqcat", "AFHQ Cat", 512), ("afhqdog", "AFHQ Dog", 512), ("afhqwild", "AFHQ Wild", 512),
                          ("brecahad", "BreCaHAD", 512))),
    _nvlabs("stylegan2ada-cifar10-32", "StyleGAN2-ADA", "CIFAR-10 (conditional)", 32, f"{SG2ADA}cifar10.pkl",
            converter="", note=_COND_NOTE),
    *(_nvlabs(f"stylegan3-{cfg}-{d}{r}", f"StyleGAN3-{cfg.upper()}", label, r, f"{NGC_SG3}stylegan3-{cfg}-{d}-{r}x{r}.pkl",
              converter="", note=_SG3_NOTE)
      for cfg in ("t", "r")
      for d, label, r in (("ffhq", "FFHQ", 1024), ("ffhqu", "FFHQ-U", 1024), ("ffhqu", "FFHQ-U", 256),
                          ("metfaces", "MetFaces", 1024), ("metfacesu", "MetFaces-U", 1024),
                          ("afhqv2", "AFHQv2", 512))),
    Pretrained("pixelpyramids-ckpts", "PixelPyramids", "CelebA-HQ 256/1024, LSUN 128, ImageNet 128", 0, PIXELPYRAMIDS,
               "tar.gz archive of per-level state_dicts (no configuration inside)", "pixelfolder.convert.pixelpyramids",
               direct=False, filename="ckpts.tar.gz",
               note="an archive, not one network: download and extract it, then `pixelfolder convert CKPT out.pt "
                    "--params params/<name>.json` (params from the official repository)"),
)

BY_NAME = {p.name: p for p in PRETRAINED}
