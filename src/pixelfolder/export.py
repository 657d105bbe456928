"""Export a generator as a standalone graph z -> image: ONNX (torch.onnx's torch.export-based exporter) or
TorchScript (torch.jit.trace), checked against the PyTorch model after writing.

What the graph computes: `G(z, truncation_psi=psi, noise_mode="const", size=size)` for z (batch, z_dim) float32,
giving images (batch, 3, size, size) float32, NCHW, nominally in [-1, 1] and not clamped, exactly what
`G.sample` / `pixelfolder generate` give for the same z. The truncation psi is baked in as a constant (re-export
for another psi; psi = 1 adds nothing to the graph) and noise is the model's fixed 'const' noise, so the graph is
deterministic and has one input. An any-scale model (CIPS, INR-GAN, CREPS) is exported at one render size (`size`,
default its native resolution); a fixed-size one only at its native resolution.

How the model is put into one traceable form (restored afterwards):
- `layers.switch(G, impl="nonfused")`: one modulated-conv form at every batch size ('auto' picks the fused grouped
  conv at batch 1, whose graph would not take other batch sizes);
- CREPS's per-pixel head runs batched (`CREPSSynthesis.batched_head`) instead of a Python loop over the samples;
- the forward is traced with autograd enabled and every parameter frozen: the code paths that cache derived
  tensors (INR-GAN's Fourier features) or split the image into row bands sized by the batch are the no-grad
  inference paths, and the grad paths compute the same function in one piece;
- the 'const' noise of a non-native grid (drawn from a seeded generator on each call) is drawn once before the
  trace and recorded as a constant (the same values: they are deterministic);
- the graph is G.mapping then G.synthesis, i.e. G.forward without its argument and memory checks, which run once
  before the export (a memory estimate on a symbolic batch would add a guard on the batch size).

The exporter: `torch.onnx.export(..., dynamo=True)` (needs onnx and onnxscript: the `export` extra). The legacy
TorchScript-based ONNX exporter (dynamo=False) is not used: with torch 2.13 it fails on PixelFolder and INR-GAN
(an internal alias-analysis assertion on aten::view), StyleGAN2 (a convolution kernel of unknown shape) and CREPS
(a wrong Gather under a dynamic batch).

The parity check runs the written file (onnxruntime for ONNX; skipped with a note when onnxruntime is absent,
torch.jit.load for TorchScript) at batch 1 and 3 (dynamic batch) or at the fixed batch, on seeded z, and requires
max|exported - torch| <= PARITY_REL * max|torch|; the file is only put in place when it passes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PixelfolderError, first_line

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
DEFAULT_OPSET = 18            # torch 2.13's torchlib opset (others go through the ONNX version converter)
MIN_OPSET = 18
PARITY_REL = 1e-4             # max|exported - torch| <= PARITY_REL * max|torch|
DYNAMIC_TRACE_BATCH = 2       # torch.export specialises a dimension of size 1: trace a dynamic batch at 2
PARITY_SEED = 0
INSTALL_HINT = 'pip install -e ".[export]"'


@dataclass
class ExportResult:
    """What `export` wrote and measured. errors: batch -> (max abs error, tolerance); note: why a check was skipped."""
    path: Path
    format: str
    size: int
    batch: int | None                   # None: dynamic batch
    truncation_psi: float
    exporter: str
    opset: int | None = None
    errors: dict = field(default_factory=dict)
    note: str = ""

    def summary(self) -> str:
        batch = "any batch" if self.batch is None else f"batch {self.batch}"
        what = f"ONNX opset {self.opset}" if self.format == "onnx" else "TorchScript"
        head = (f"wrote {self.path} ({what}, {self.exporter}): z ({batch}, z_dim) -> image ({self.size}x{self.size} "
                f"px), truncation psi {self.truncation_psi:g} baked in, noise 'const'")
        if self.note:
            return f"{head}\n{self.note}"
        checks = ", ".join(f"batch {b}: max error {e:.2e} (tolerance {t:.2e})" for b, (e, t) in self.errors.items())
        runner = "onnxruntime" if self.format == "onnx" else "torch.jit.load"
        return f"{head}\nparity with {runner}: {checks}"


def format_for(output, fmt: str | None) -> str:
    """The format: `fmt` when given, else from the output's suffix."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise PixelfolderError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise PixelfolderError(f"cannot tell the format from {Path(output).name!r}: pass --format onnx|torchscript "
                               f"or name the file {' / '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def check_exportable(G, size: int | None, truncation_psi: float) -> int:
    """The render size of the export; one-line refusals for non-generators, foreign sizes and bad psi."""
    from .models.base import PSI_RANGE
    kind, arch = getattr(G, "kind", None), getattr(G, "arch", type(G).__name__)
    if kind != "generator":
        what = ("a likelihood model: it has no z -> image mapping to export (its sampling is sequential and "
                "seeded)") if kind == "likelihood" else f"a {kind}, not a generator"
        raise PixelfolderError(f"{arch} is {what}; export takes a generator (pixelfolder, stylegan2, cips_skip, "
                               "cips_res, inrgan, inrgan_bil, creps)")
    if not (isinstance(truncation_psi, (int, float)) and math.isfinite(truncation_psi)
            and PSI_RANGE[0] <= truncation_psi <= PSI_RANGE[1]):
        raise PixelfolderError(f"truncation psi must be in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {truncation_psi}")
    out = G.output_size(size)
    if out is None:
        return G.resolution
    if G.native_size_only and out != G.resolution:
        raise PixelfolderError(f"{arch} renders only its native {G.resolution}px grid, not {out}px (--size is for "
                               "any-scale models: CIPS, INR-GAN, CREPS)")
    G.check_render_memory(DYNAMIC_TRACE_BATCH, out)
    return out


def _wrapper(G, truncation_psi: float, size: int):
    import torch

    class ZToImage(torch.nn.Module):
        """z (B, z_dim) -> G(z, truncation_psi, noise_mode='const', size) (B, 3, size, size).

        G.forward's two steps without its argument and memory checks (check_exportable ran them; with a symbolic
        batch the memory estimate would put a guard on the batch size into the graph).
        """

        def __init__(self):
            super().__init__()
            self.G = G

        def forward(self, z):
            ws = self.G.mapping(z, truncation_psi=truncation_psi)
            return self.G.synthesis(ws, noise_mode="const", size=None if size == G.resolution else size)

    return ZToImage().eval()


@contextlib.contextmanager
def _fixed_const_noise():
    """The 'const' noise of a non-native grid (layers.modconv.deterministic_noise, drawn from a seeded generator on
    every call) computed once and then reused, so a trace records it as a constant instead of a seeded randn."""
    from .layers import modconv
    draw, memo = modconv.deterministic_noise, {}

    def memoized(height, width, seed):
        if (height, width, seed) not in memo:
            memo[height, width, seed] = draw(height, width, seed)
        return memo[height, width, seed]

    modconv.deterministic_noise = memoized
    try:
        yield
    finally:
        modconv.deterministic_noise = draw


@contextlib.contextmanager
def export_form(G, module=None, example=None):
    """G in its one traceable form (module doc); every change is undone on exit. With `module` and `example`, one
    eager run first fixes the const noise of a non-native grid (_fixed_const_noise)."""
    import torch

    from .layers import release_cached, switch
    saved_flags = [(p, p.requires_grad) for p in G.parameters()]
    heads = [(m, m.__dict__.get("batched_head")) for m in G.modules() if hasattr(type(m), "batched_head")]
    training = G.training
    release_cached(G)
    try:
        for p, _ in saved_flags:
            p.requires_grad_(False)
        for m, _ in heads:
            m.batched_head = True
        G.eval()
        with switch(G, impl="nonfused"), torch.enable_grad(), _fixed_const_noise():
            if module is not None:
                module(example)
            yield G
    finally:
        for m, previous in heads:
            if previous is None:
                m.__dict__.pop("batched_head", None)
            else:
                m.batched_head = previous
        for p, flag in saved_flags:
            p.requires_grad_(flag)
        G.train(training)
        release_cached(G)          # nothing traced stays in a cache


def _latents(G, batch: int, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    return torch.randn(batch, G.z_dim, generator=g).to(device)


def reference_images(G, z, truncation_psi: float, size: int):
    """The PyTorch model's own output (default inference path, no export form) for z, on the CPU."""
    import torch
    with torch.no_grad():
        img = G(z, truncation_psi=truncation_psi, noise_mode="const", size=None if size == G.resolution else size)
    return img.float().cpu()


# --------------------------------------------------------------------------------------- exporter errors
_OP_PATTERNS = (re.compile(r"OpOverload\(op='([\w.]+)'"),
                re.compile(r"target=torch\.ops\.([\w]+\.[\w]+)"),
                re.compile(r"(?:ONNX export of|Exporting the operator) '?([\w:.]+)"),
                re.compile(r"\b(aten::\w+|prim::\w+)"))


def unsupported_op(e: BaseException) -> str | None:
    """The operator an exporter error names (e.g. 'aten.cummax'), searching the exception and its causes."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    for pattern in _OP_PATTERNS:
        for text in chain:
            m = pattern.search(text)
            if m:
                return m.group(1)
    return None


def _exception_summary(e: BaseException) -> str:
    """The first line of torch.onnx's '## Exception summary' (its own first lines are generic advice)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    m = re.search(r"## Exception summary\s*\n\s*(?:<class '[\w.]+'>: )?(.+)", text)
    return m.group(1).strip()[:200] if m else first_line(e, typed=True)


def refusal(G, fmt: str, e: BaseException) -> PixelfolderError:
    op = unsupported_op(e)
    what = "ONNX" if fmt == "onnx" else "TorchScript"
    if op:
        return PixelfolderError(f"{G.arch} cannot be exported to {what}: the exporter does not support the operator "
                                f"{op} ({_exception_summary(e)})")
    return PixelfolderError(f"{G.arch} cannot be exported to {what}: {_exception_summary(e)}")


@contextlib.contextmanager
def _quiet():
    """No exporter chatter (TracerWarnings, 'torchvision is not installed' log lines, progress prints)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------------------------------------ formats
def _metadata(G, fmt: str, size: int, batch, truncation_psi: float) -> dict:
    from . import __version__
    return {"pixelfolder": __version__, "arch": G.arch, "format": fmt, "z_dim": G.z_dim, "size": size,
            "batch": batch or "dynamic", "truncation_psi": truncation_psi, "noise_mode": "const",
            "input": "z (batch, z_dim) float32", "output": "image (batch, 3, size, size) float32, NCHW, about [-1, 1]",
            "seed_rng": G.seed_rng}


def _onnx_modules():
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise PixelfolderError(f"ONNX export needs onnx and onnxscript ({e.name} is missing): {INSTALL_HINT}") from None


def _export_onnx(G, module, z, tmp: str, dynamic: bool, opset: int, meta: dict) -> None:
    import torch
    _onnx_modules()
    kw = {"dynamic_shapes": {"z": {0: torch.export.Dim("batch")}}} if dynamic else {}
    with _quiet(), export_form(G, module, z):
        try:
            program = torch.onnx.export(module, (z,), None, dynamo=True, input_names=["z"], output_names=["image"],
                                        opset_version=opset, verbose=False,
                                        **kw)
        except Exception as e:     # the exporter's own error types (TorchExportError, ConversionError, ...)
            raise refusal(G, "onnx", e) from e
    written = program.model.opset_imports.get("", opset)
    if written != opset:        # the version converter leaves the graph at its own opset when it cannot convert
        raise PixelfolderError(f"the ONNX version converter could not convert the graph to opset {opset} (it stays "
                               f"at opset {written}): use --opset {written}")
    program.model.metadata_props["pixelfolder"] = json.dumps(meta)
    program.save(tmp, external_data=False)


def _export_torchscript(G, module, z, tmp: str, meta: dict) -> None:
    import torch
    with _quiet(), export_form(G, module, z):
        try:
            traced = torch.jit.trace(module, (z,), check_trace=False)
        except Exception as e:
            raise refusal(G, "torchscript", e) from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # torch 2.13 deprecates torch.jit (it still works)
        torch.jit.save(traced, tmp, _extra_files={"pixelfolder.json": json.dumps(meta)})


def _run_onnx(path: str):
    import numpy as np
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(z):
        import torch
        return torch.from_numpy(np.asarray(session.run(None, {"z": z.cpu().numpy()})[0]))
    return run


def _run_torchscript(path: str, device):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(path, map_location=device)

    def run(z):
        with torch.no_grad():
            return loaded(z).float().cpu()
    return run


def check_parity(G, run, batches, truncation_psi: float, size: int) -> dict:
    """batch -> (max|exported - torch|, tolerance) on seeded z; a one-line error past the tolerance."""
    errors = {}
    for batch in batches:
        z = _latents(G, batch, PARITY_SEED + batch)
        ref = reference_images(G, z, truncation_psi, size)
        out = run(z)
        if tuple(out.shape) != tuple(ref.shape):
            raise PixelfolderError(f"the exported {G.arch} graph gives shape {tuple(out.shape)} at batch {batch}, "
                                   f"the model {tuple(ref.shape)}: not written")
        err = (out - ref).abs().max().item()
        tol = PARITY_REL * ref.abs().max().item()
        if not err <= tol:
            raise PixelfolderError(f"the exported {G.arch} graph differs from the model at batch {batch}: max error "
                                   f"{err:.3g} > {tol:.3g} ({PARITY_REL:g} x max|output|): not written")
        errors[batch] = (err, tol)
    return errors


def export(G, output, fmt: str | None = None, *, dynamic_batch: bool = False, batch: int = 1,
           truncation_psi: float = 1.0, size: int | None = None, opset: int | None = None,
           check: bool = True) -> ExportResult:
    """Write G as a z -> image graph to `output` (module doc); returns what was written and the measured errors.

    fmt: 'onnx' or 'torchscript' (None: from the suffix); dynamic_batch: any batch size (else `batch` fixed);
    size: render size of an any-scale model (default native); opset: ONNX opset (default 18);
    check: run the written file at batch 1 and 3 (or the fixed batch) against G (the file is only kept if it passes).
    """
    from .atomic import atomic_write
    output = Path(output)
    fmt = format_for(output, fmt)
    size = check_exportable(G, size, truncation_psi)
    if not dynamic_batch and (isinstance(batch, bool) or int(batch) != batch or batch < 1):
        raise PixelfolderError(f"batch must be a whole number >= 1, got {batch!r}")
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if fmt == "onnx" and opset < MIN_OPSET:
        raise PixelfolderError(f"opset {opset} is below {MIN_OPSET}, the lowest torch.onnx's exporter writes")
    if fmt == "onnx":
        _onnx_modules()
        import onnx
        if opset > onnx.defs.onnx_opset_version():
            raise PixelfolderError(f"opset {opset} is above {onnx.defs.onnx_opset_version()}, the highest this onnx "
                                   f"{onnx.__version__} knows")
    fixed = None if dynamic_batch else int(batch)
    meta = _metadata(G, fmt, size, fixed, truncation_psi)
    module = _wrapper(G, truncation_psi, size)
    z = _latents(G, fixed or DYNAMIC_TRACE_BATCH, PARITY_SEED)
    batches = (1, 3) if dynamic_batch else (fixed,)
    result = ExportResult(output, fmt, size, fixed, truncation_psi,
                          "torch.onnx.export(dynamo=True)" if fmt == "onnx" else "torch.jit.trace",
                          opset if fmt == "onnx" else None)

    def write(tmp: str) -> None:
        if fmt == "onnx":
            _export_onnx(G, module, z, tmp, dynamic_batch, opset, meta)
        else:
            _export_torchscript(G, module, z, tmp, meta)
        if not check:
            result.note = "parity check skipped (check=False)"
            return
        if fmt == "onnx":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                result.note = f"parity check skipped: onnxruntime is not installed ({INSTALL_HINT})"
                return
            run = _run_onnx(tmp)
        else:
            run = _run_torchscript(tmp, next(G.parameters()).device)
        result.errors = check_parity(G, run, batches, truncation_psi, size)

    atomic_write(output, write, suffix=output.suffix or ".tmp")
    return result
