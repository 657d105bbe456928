"""The metric registry (name -> function, like StyleGAN3's metric_main), `compute` and JSON-lines reports.

A metric function takes a `Context` (options, the network, the datasets, and per-run caches of detectors and
features) and returns its results dict. `compute_records` runs several metrics sharing one generation pass:
the detectors of every requested metric are resolved first, and the generated images are produced once and fed
to all of them. Metrics whose weights are missing are skipped with a one-line message.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ..errors import PixelfolderError
from . import features as F
from .weights import MissingWeights

GENERATOR, REAL, IMAGES, LIKELIHOOD = "generator", "real", "images", "likelihood"


@dataclass(frozen=True)
class MetricOptions:
    num_gen: int | None = None       # generated (or --fake) images; default: each metric's own (50,000)
    num_real: int | None = None      # cap on real images; default: each metric's own (all for *_full)
    batch: int = 32                  # images per generator / detector call
    truncation_psi: float = 1.0
    noise_mode: str = "random"       # as NVlabs' metrics: fresh per-image noise (drawn from each image's seed)
    gen_dtype: str = "fp32"          # 'bf16': autocast for the generator only (never the detectors, never PPL)
    device: str | None = None        # detectors' device; default: the generator's, else cpu
    detector: str | None = None      # Inception weights file (see weights.inception_weights)
    vgg: str | None = None           # VGG16 weights file (precision/recall, LPIPS backbone)
    lpips: str | None = None         # LPIPS linear heads file
    seed: int = 0                    # first generator seed; also the KID subsets' and PPL pairs' seed
    use_cache: bool = True           # reference-feature cache on disk
    progress: bool | None = None     # tqdm bars; None: only when stderr is a terminal


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    needs: tuple[str, ...]           # 'generator', 'images' (generator or --fake folder), 'real', 'likelihood'
    plan: Callable                   # ctx -> detectors the metric runs on generated/fake images (may raise)
    description: str = ""


@dataclass(frozen=True)
class MetricRecord:
    metric: str
    results: dict
    total_time: float
    num_gen: int | None = None
    num_real: int | None = None
    detector: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self, **extra) -> dict:
        """NVlabs' JSON-lines layout (results, metric, total_time, ...) plus our counts, detector and warnings."""
        return {"results": dict(self.results), "metric": self.metric, "total_time": self.total_time,
                "total_time_str": str(datetime.timedelta(seconds=round(self.total_time))),
                "num_gen": self.num_gen, "num_real": self.num_real, **extra, "detector": self.detector,
                "warnings": list(self.warnings), "timestamp": time.time()}


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, needs, plan=lambda ctx: [], description: str = ""):
    def wrap(fn):
        _METRICS[name] = Metric(name, fn, tuple(needs), plan, description or (fn.__doc__ or "").strip())
        return fn
    return wrap


def list_metrics() -> list[str]:
    return list(_METRICS)


def get_metric(name: str) -> Metric:
    if name not in _METRICS:
        raise PixelfolderError(f"unknown metric {name!r}; known: {', '.join(_METRICS)}")
    return _METRICS[name]


def parse_metric_names(text) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise PixelfolderError("no metrics given")
    for n in names:
        get_metric(n)
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------------------------------------ context

class Context:
    """One evaluation run: options, inputs, and caches shared by the metrics (detectors, generated features)."""

    def __init__(self, opts: MetricOptions, G=None, dataset=None, fake=None, echo=None):
        self.opts, self.G, self.dataset, self.fake = opts, G, dataset, fake
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr))
        params = list(G.parameters()) if G is not None else []
        self.device = torch.device(opts.device or (params[0].device if params else "cpu"))
        self._detectors: dict[tuple, F.Detector] = {}
        self._images: dict[int, dict] = {}
        self.planned: list[F.Detector] = []
        self.begin()

    def begin(self) -> None:
        """Reset the per-metric bookkeeping (warnings, image counts, detector description)."""
        self.warnings: list[str] = []
        self.num_gen = self.num_real = None
        self.detector_note: str | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.echo(f"warning: {message}")

    def note(self, message: str) -> None:
        self.echo(f"note: {message}")

    # detectors ----------------------------------------------------------------------------------------------

    def _cached(self, key, build):
        if key not in self._detectors:
            self._detectors[key] = build()
        return self._detectors[key]

    def inception(self, need_logits: bool = False) -> F.Detector:
        return self._cached(("inception", need_logits), lambda: F.load_inception(
            self.opts.detector, need_logits=need_logits, device=self.device))

    def pr_detector(self) -> F.Detector:
        """VGG16 fc2 features, else (with a printed note) Inception pool3 features."""
        try:
            return self._cached(("vgg16",), lambda: F.load_vgg16(self.opts.vgg, device=self.device))
        except MissingWeights as e:
            if ("pr-fallback",) not in self._detectors:
                self.note(f"precision/recall uses Inception pool3 features instead of VGG16 ({e})")
            return self._cached(("pr-fallback",), self.inception)

    def lpips(self):
        def build():
            from .lpips import LPIPS
            from .weights import lpips_weights
            heads = lpips_weights(self.opts.lpips)
            vgg = F.load_vgg16(self.opts.vgg, device=self.device)
            net = LPIPS(vgg.net, heads.state_dict)
            net.describe = lambda: f"lpips-vgg16 (heads {heads.describe()}; backbone {vgg.weights.describe()})"
            return net
        return self._cached(("lpips",), build)

    # features -----------------------------------------------------------------------------------------------

    def real(self, det: F.Detector, max_real: int | None = None, requested: int | None = None) -> dict:
        """Reference record of the first n real images: n = min(--num-real or max_real, available)."""
        available = int(getattr(self.dataset, "num_images", len(self.dataset)))
        cap = self.opts.num_real or max_real
        want = self.opts.num_real or requested
        if want is not None and available < want:
            self.warn(f"only {available} real images in {getattr(self.dataset, 'path', 'the dataset')} "
                      f"({want} requested); using {available}")
        n = available if cap is None else min(cap, available)
        self.num_real = n
        return F.reference_features(self.dataset, n, [det], batch=self.opts.batch, progress=self.opts.progress,
                                    use_cache=self.opts.use_cache)[det.id]

    def image_count(self, default: int | None) -> int:
        if self.G is not None:
            n = self.opts.num_gen or default
        else:
            available = int(getattr(self.fake, "num_images", len(self.fake)))
            if self.opts.num_gen and available < self.opts.num_gen:
                self.warn(f"only {available} images in {getattr(self.fake, 'path', 'the --fake set')} "
                          f"({self.opts.num_gen} requested); using {available}")
            n = min(self.opts.num_gen or available, available)
        self.num_gen = n
        return n

    def images(self, det: F.Detector, default: int | None = 50_000) -> dict:
        """{layer: features} of the generated (or --fake) images; every planned detector runs in the same pass."""
        n = self.image_count(default)
        store = self._images.setdefault(n, {})
        if det.id not in store:
            todo = [det] + [d for d in self.planned if d.id not in store and d.id != det.id]
            todo = list({d.id: d for d in todo}.values())
            store.update(F.extract(self._image_batches(n), todo, n, desc="generated images" if self.G is not None
                                   else "--fake images", progress=self.opts.progress))
        return store[det.id]

    def _image_batches(self, n: int):
        if self.G is None:
            return F.dataset_batches(self.fake, n, self.opts.batch)
        seeds = range(self.opts.seed, self.opts.seed + n)
        return F.generator_batches(self.G, seeds, self.opts.batch, truncation_psi=self.opts.truncation_psi,
                                   noise_mode=self.opts.noise_mode, gen_dtype=self.opts.gen_dtype)


# ------------------------------------------------------------------------------------------------------ running

def _check_inputs(metric: Metric, G, dataset, fake) -> None:
    from .bpd import check_likelihood_model
    if LIKELIHOOD in metric.needs:
        if G is None:
            raise PixelfolderError(f"{metric.name} needs a likelihood model (--network)")
        check_likelihood_model(G)
    if GENERATOR in metric.needs or (IMAGES in metric.needs and fake is None):
        if G is None:
            raise PixelfolderError(f"{metric.name} needs a generator (--network)" +
                                   ("" if GENERATOR in metric.needs else " or a folder of images (--fake)"))
        if getattr(G, "kind", "generator") != "generator":
            raise PixelfolderError(f"{metric.name} needs a generator; the network is a {G.kind} "
                                   f"({getattr(G, 'arch', type(G).__name__)})")
    if REAL in metric.needs and dataset is None:
        raise PixelfolderError(f"{metric.name} needs real images (--data, or --real in folder mode)")


def compute_records(metric_names, *, G=None, dataset=None, fake=None, options: MetricOptions | None = None,
                    echo=None, on_record=None, **kwargs) -> list[MetricRecord]:
    """Run the metrics; returns one record per computed metric (skipped ones are reported through `echo`).
    `on_record(record)` is called as soon as each metric is done (a long run keeps its finished results)."""
    opts = replace(options or MetricOptions(), **kwargs)
    for value, flag in ((opts.num_gen, "num_gen"), (opts.num_real, "num_real")):
        if value is not None and value < 1:
            raise PixelfolderError(f"{flag} must be >= 1")
    if opts.batch < 1:
        raise PixelfolderError("batch must be >= 1")
    metrics = [get_metric(n) for n in parse_metric_names(metric_names)]
    for m in metrics:
        _check_inputs(m, G, dataset, fake)
    ctx = Context(opts, G=G, dataset=dataset, fake=fake, echo=echo)
    plans, skipped = {}, {}
    for m in metrics:
        try:
            plans[m.name] = m.plan(ctx)
        except MissingWeights as e:
            skipped[m.name] = str(e)
    ctx.planned = list({d.id: d for p in plans.values() for d in p}.values())
    records = []
    for m in metrics:
        if m.name in skipped:
            ctx.echo(f"skipped {m.name}: {skipped[m.name]}")
            continue
        ctx.begin()
        start = time.time()
        try:
            results = m.fn(ctx)
        except MissingWeights as e:
            ctx.echo(f"skipped {m.name}: {e}")
            continue
        except PixelfolderError:
            raise
        except ValueError as e:
            raise PixelfolderError(f"{m.name}: {e}") from None
        detector = "; ".join(d.describe() for d in plans[m.name]) or ctx.detector_note
        records.append(MetricRecord(m.name, results, time.time() - start, ctx.num_gen, ctx.num_real,
                                    detector, tuple(ctx.warnings)))
        if on_record is not None:
            on_record(records[-1])
    return records


def compute(metric_names, *, G=None, dataset=None, fake=None, **kwargs) -> dict:
    """Flat {result name: value} of the metrics, e.g. compute(["fid50k_full"], G=G_ema, dataset=ds, num_gen=10000)
    -> {'fid50k_full': 12.3}. Options are MetricOptions' fields. The hook training calls at snapshots."""
    out = {}
    for record in compute_records(metric_names, G=G, dataset=dataset, fake=fake, **kwargs):
        out.update(record.results)
    return out


def format_value(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def write_jsonl(record: MetricRecord, directory, **extra) -> Path:
    """Append the record as one JSON line to DIRECTORY/metric-<name>.jsonl (NVlabs' layout)."""
    path = Path(directory) / f"metric-{record.metric}.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record.to_json(**extra)) + "\n")
    except OSError as e:
        raise PixelfolderError(f"cannot write {path}: {e.strerror} (use --outdir)") from None
    return path

