"""The registered metrics. Names and result keys follow StyleGAN3's metric_main; `fid`, `kid`, `pr`, `is` are the
same computations on a folder of images (--fake) or a generator, with all --fake images by default."""
from __future__ import annotations

import torch

from .fid import feature_stats, fid_from_stats_and_features
from .isc import inception_score
from .kid import kid_from_features, kid_subset_size
from .metric_main import GENERATOR, IMAGES, LIKELIHOOD, REAL, Context, register_metric
from .pr import precision_recall

GEN_REAL = (GENERATOR, REAL)
IMAGES_REAL = (IMAGES, REAL)
KID_SUBSETS, KID_SUBSET_SIZE, PR_K, IS_SPLITS, PPL_EPSILON = 100, 1000, 3, 10, 1e-4


def _inception(ctx: Context):
    return [ctx.inception()]


def _inception_logits(ctx: Context):
    return [ctx.inception(need_logits=True)]


def _pr_detector(ctx: Context):
    return [ctx.pr_detector()]


def _lpips(ctx: Context):
    ctx.lpips()
    return []


def _fake_default(ctx: Context, default: int) -> int | None:
    """Folder mode uses every --fake image unless --num-gen is given."""
    return default if ctx.fake is None else None


# ------------------------------------------------------------------------------------------------- computations

def fid(ctx: Context, num_gen: int | None, max_real: int | None = None, requested: int | None = None) -> float:
    det = ctx.inception()
    ref = ctx.real(det, max_real, requested)
    mu, sigma = (ref["mu"].numpy(), ref["sigma"].numpy()) if "mu" in ref else feature_stats(ref["features"]["pool3"])
    return fid_from_stats_and_features(mu, sigma, ctx.images(det, num_gen)["pool3"].numpy())


def kid(ctx: Context, num_gen: int | None, max_real: int | None = 1_000_000, requested: int | None = None) -> float:
    det = ctx.inception()
    real = ctx.real(det, max_real, requested)["features"]["pool3"].numpy()
    fake = ctx.images(det, num_gen)["pool3"].numpy()
    m = kid_subset_size(len(real), len(fake), KID_SUBSET_SIZE)
    if m < KID_SUBSET_SIZE:
        ctx.warn(f"KID subsets have {m} images (a set has fewer than {KID_SUBSET_SIZE})")
    return kid_from_features(real, fake, KID_SUBSETS, KID_SUBSET_SIZE, seed=ctx.opts.seed)


def pr(ctx: Context, prefix: str, num_gen: int | None, max_real: int | None = 200_000,
       requested: int | None = None) -> dict:
    det = ctx.pr_detector()
    layer = det.layers[0]
    real = ctx.real(det, max_real, requested)["features"][layer]
    fake = ctx.images(det, num_gen)[layer]
    precision, recall = precision_recall(real, fake, k=PR_K)
    return {f"{prefix}_precision": precision, f"{prefix}_recall": recall}


def inception_score_of(ctx: Context, prefix: str, num_gen: int | None) -> dict:
    logits = ctx.images(ctx.inception(need_logits=True), num_gen)["logits_unbiased"]
    mean, std = inception_score(logits, IS_SPLITS)
    return {f"{prefix}_mean": mean, f"{prefix}_std": std}


# ----------------------------------------------------------------------------------------- StyleGAN3's metrics

@register_metric("fid50k_full", GEN_REAL, _inception)
def fid50k_full(ctx):
    """FID: 50,000 generated images against all real images."""
    return {"fid50k_full": fid(ctx, 50_000)}


@register_metric("kid50k_full", GEN_REAL, _inception)
def kid50k_full(ctx):
    """KID: 50,000 generated images against up to 1,000,000 real images, 100 subsets of 1,000."""
    return {"kid50k_full": kid(ctx, 50_000)}


@register_metric("pr50k3_full", GEN_REAL, _pr_detector)
def pr50k3_full(ctx):
    """Precision and recall, k=3: 50,000 generated images against up to 200,000 real images (VGG16 fc2)."""
    return pr(ctx, "pr50k3_full", 50_000)


@register_metric("is50k", (GENERATOR,), _inception_logits)
def is50k(ctx):
    """Inception Score of 50,000 generated images, 10 splits."""
    return inception_score_of(ctx, "is50k", 50_000)


@register_metric("ppl2_wend", (GENERATOR,), _lpips)
def ppl2_wend(ctx):
    """Perceptual path length in W, end-point sampling, epsilon 1e-4, no crop, 50,000 pairs (LPIPS-VGG16)."""
    from ..progress import Progress
    from .features import eval_mode
    from .ppl import pair_distances, ppl_from_distances
    lpips = ctx.lpips()
    ctx.detector_note = lpips.describe()
    n = ctx.image_count(50_000)
    pairs = max(1, ctx.opts.batch // 2)
    dist = []
    with eval_mode(ctx.G), Progress(n, "ppl pairs", enabled=ctx.opts.progress) as bar:
        for start in range(0, n, pairs):
            idx = range(start, min(start + pairs, n))
            dist.append(pair_distances(ctx.G, lpips, idx, epsilon=PPL_EPSILON, seed=ctx.opts.seed,
                                       device=next(ctx.G.parameters()).device))
            bar.update(len(idx))
    return {"ppl2_wend": ppl_from_distances(torch.cat(dist).numpy())}


@register_metric("fid50k", GEN_REAL, _inception)
def fid50k(ctx):
    """Legacy FID: 50,000 generated against 50,000 real images (a warning when the dataset has fewer)."""
    return {"fid50k": fid(ctx, 50_000, 50_000, requested=50_000)}


@register_metric("kid50k", GEN_REAL, _inception)
def kid50k(ctx):
    """Legacy KID: 50,000 generated against 50,000 real images."""
    return {"kid50k": kid(ctx, 50_000, 50_000, requested=50_000)}


@register_metric("pr50k3", GEN_REAL, _pr_detector)
def pr50k3(ctx):
    """Legacy precision/recall: 50,000 generated against 50,000 real images."""
    return pr(ctx, "pr50k3", 50_000, 50_000, requested=50_000)


# ---------------------------------------------------------------------------------- folder mode (or generator)

@register_metric("fid", IMAGES_REAL, _inception)
def fid_any(ctx):
    """FID of the --fake images (all, or --num-gen; a generator: 50,000) against all real images."""
    return {"fid": fid(ctx, _fake_default(ctx, 50_000))}


@register_metric("kid", IMAGES_REAL, _inception)
def kid_any(ctx):
    """KID of the --fake images against the real images."""
    return {"kid": kid(ctx, _fake_default(ctx, 50_000))}


@register_metric("pr", IMAGES_REAL, _pr_detector)
def pr_any(ctx):
    """Precision and recall (k=3) of the --fake images against the real images."""
    return pr(ctx, "pr", _fake_default(ctx, 50_000))


@register_metric("is", (IMAGES,), _inception_logits)
def is_any(ctx):
    """Inception Score of the --fake images."""
    return inception_score_of(ctx, "is", _fake_default(ctx, 50_000))


# ---------------------------------------------------------------------------------------- cost and likelihood

@register_metric("params", (GENERATOR,))
def params(ctx):
    """Number of parameters."""
    from ..utils import count_parameters
    return {"params": count_parameters(ctx.G)}


@register_metric("gmacs", (GENERATOR,))
def gmacs(ctx):
    """Forward multiply-accumulates per image, in billions (counted on the meta device, as `bench`)."""
    from .cost import generator_macs
    return {"gmacs": generator_macs(ctx.G)["total"] / 1e9}


@register_metric("speed", (GENERATOR,))
def speed(ctx):
    """Generator latency at --batch (median of 3 timed calls after one warm-up), with --gen-dtype."""
    from .cost import generator_ms_per_image
    from .features import GEN_DTYPES, eval_mode
    with eval_mode(ctx.G):
        ms = generator_ms_per_image(ctx.G, batch=ctx.opts.batch, dtype=GEN_DTYPES.get(ctx.opts.gen_dtype))
    return {"speed_ms_per_img": ms, "speed_img_per_s": 1e3 / ms, "speed_batch": ctx.opts.batch,
            "speed_threads": torch.get_num_threads()}


@register_metric("bpd", (LIKELIHOOD, REAL))
def bpd(ctx):
    """Bits per dimension of the real images (all, or --num-real) under a likelihood model."""
    from .bpd import bits_per_dim
    from .features import dataset_batches
    available = int(getattr(ctx.dataset, "num_images", len(ctx.dataset)))
    n = min(ctx.opts.num_real or available, available)
    if ctx.opts.num_real and available < ctx.opts.num_real:
        ctx.warn(f"only {available} real images ({ctx.opts.num_real} requested); using {available}")
    ctx.num_real = n
    return {"bpd": bits_per_dim(ctx.G, dataset_batches(ctx.dataset, n, ctx.opts.batch))}

