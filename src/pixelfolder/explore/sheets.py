"""Labelled sheets of what a generator does, one PNG each: a truncation sweep, StyleGAN's style-mixing grid, and the
render scales of any-scale models.

truncation: rows = seeds, columns = psi values; cell (seed, psi) is `generate --seeds SEED --trunc PSI`'s image.
mixing: StyleGAN's figure: the first row shows the column seeds, the first column the row seeds, and cell (r, c) is
    rendered from the row seed's W with the column seed's W on `layers` (default: the coarse styles, 4-8 px in
    StyleGAN, the first four w's; at most half of them on small models). Noise, when random, is the row seed's.
scale: rows = seeds, columns = scales; cell (seed, s) is `generate --seeds SEED --scale s`'s image (any-scale models).

Labels use PIL's default font. `Sheet.boxes` says where each cell lies, so a cell can be cut out again exactly.
"""
from __future__ import annotations

from typing import NamedTuple

from ..errors import PixelfolderError

KINDS = ("truncation", "mixing", "scale")
PSIS = (-1.0, -0.5, 0.0, 0.5, 0.7, 1.0, 1.5)
SCALES = (0.5, 1.0, 1.5, 2.0)
COARSE = 4                   # StyleGAN's coarse styles: w 0-3 (4x4 and 8x8)
MAX_ROWS = 64                # seeds (rows) in a sheet
MAX_PIXELS = 1 << 28         # ~268 Mpx (~0.8 GB as RGB)
GAP, PAD = 2, 3              # px between cells, around labels
WHITE, INK = (255, 255, 255), (0, 0, 0)


class Sheet(NamedTuple):
    image: object            # (H, W, 3) uint8 numpy array
    boxes: dict              # (row, col) -> (x0, y0, x1, y1) of that cell's image (exclusive ends)


def parse_floats(text: str, what: str) -> list[float]:
    """'-1,0,0.5' -> [-1.0, 0.0, 0.5] (finite numbers)."""
    import math
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise PixelfolderError(f"bad {what} {text!r}: use comma-separated numbers, e.g. 0.5,1,2") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise PixelfolderError(f"bad {what} {text!r}: use comma-separated finite numbers, e.g. 0.5,1,2")
    if len(values) > 64:
        raise PixelfolderError(f"{what}: at most 64 values, got {len(values)}")
    return values


def default_mix_layers(n_latent: int) -> list[int]:
    """The coarse styles: w 0-3 as in StyleGAN's figure, at most half the w's on small models."""
    return list(range(max(1, min(COARSE, n_latent // 2))))


def parse_layers(text: str | None, n_latent: int) -> list[int]:
    """'0-3' or '0,2,5' -> sorted layer indices in [0, n_latent); None -> default_mix_layers."""
    if n_latent < 2:
        raise PixelfolderError(f"style mixing needs a generator with several w's (W+); this one uses {n_latent} w for "
                               "all its layers")
    if text is None:
        return default_mix_layers(n_latent)
    from ..cli.common import parse_seeds
    try:
        layers = sorted(set(parse_seeds(text)))
    except PixelfolderError:
        raise PixelfolderError(f"bad --mix-layers {text!r}: use e.g. 0-3 or 0,1,4") from None
    if layers[-1] >= n_latent:
        raise PixelfolderError(f"--mix-layers {text}: this generator has w's 0-{n_latent - 1}")
    if len(layers) == n_latent:
        raise PixelfolderError(f"--mix-layers {text} names every w: the cells would be the column seeds' images")
    return layers


# --------------------------------------------------------------------------------------------------- layout
def _font():
    from PIL import ImageFont
    return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    if not text:
        return 0, 0
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - min(0, x0), y1 - min(0, y0)


def layout(cells: dict, row_labels: list[str], col_labels: list[str], title: str = "") -> Sheet:
    """Place (H, W, 3) uint8 `cells[(r, c)]` in a labelled table (cells centred in their column, top-aligned)."""
    import numpy as np
    from PIL import Image, ImageDraw
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows, cols = len(row_labels), len(col_labels)
    col_w = [max([_text_size(probe, col_labels[c], font)[0] + 2 * PAD]
                 + [cells[r, c].shape[1] for r in range(rows) if (r, c) in cells]) for c in range(cols)]
    row_h = [max([_text_size(probe, row_labels[r], font)[1] + 2 * PAD]
                 + [cells[r, c].shape[0] for c in range(cols) if (r, c) in cells]) for r in range(rows)]
    label_h = max([_text_size(probe, t, font)[1] for t in col_labels] + [1]) + 2 * PAD
    title_h = _text_size(probe, title, font)[1] + 2 * PAD if title else 0
    left = max([_text_size(probe, t, font)[0] for t in row_labels] + [0]) + 2 * PAD
    width = max(left + sum(col_w) + GAP * cols, _text_size(probe, title, font)[0] + 2 * PAD)
    height = title_h + label_h + sum(row_h) + GAP * rows
    if width * height > MAX_PIXELS:
        raise PixelfolderError(f"the sheet would be {width}x{height} px; at most {MAX_PIXELS:,} px (fewer seeds or "
                               "values, or a smaller --size)")
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    xs = [left + sum(col_w[:c]) + GAP * c for c in range(cols)]
    ys = [title_h + label_h + sum(row_h[:r]) + GAP * r for r in range(rows)]
    boxes = {}
    for (r, c), img in cells.items():
        h, w = img.shape[:2]
        x0, y0 = xs[c] + (col_w[c] - w) // 2, ys[r]
        canvas[y0:y0 + h, x0:x0 + w] = img[..., :3] if img.shape[-1] >= 3 else img
        boxes[r, c] = (x0, y0, x0 + w, y0 + h)
    sheet = Image.fromarray(canvas)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), title, fill=INK, font=font)
    for c, text in enumerate(col_labels):
        tw = _text_size(draw, text, font)[0]
        draw.text((xs[c] + (col_w[c] - tw) // 2, title_h + PAD), text, fill=INK, font=font)
    for r, text in enumerate(row_labels):
        th = _text_size(draw, text, font)[1]
        draw.text((PAD, ys[r] + max(0, (row_h[r] - th) // 2)), text, fill=INK, font=font)
    out = np.asarray(sheet).copy()
    for (r, c), (x0, y0, x1, y1) in boxes.items():      # labels never cover a cell
        out[y0:y1, x0:x1] = canvas[y0:y1, x0:x1]
    return Sheet(out, boxes)


def _fmt(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------------------------------------------- sheets
def _check(G, seeds) -> None:
    from . import need_generator
    need_generator(G, "a sheet", "sample it with `pixelfolder generate` without --sheet")
    if not seeds:
        raise PixelfolderError("no seeds given")
    if len(seeds) > MAX_ROWS:
        raise PixelfolderError(f"a sheet has one row per seed: at most {MAX_ROWS}, got {len(seeds)}")


def _uint8(images):
    from ..data.images import check_finite, to_uint8
    return list(to_uint8(check_finite(images)).numpy())


def _sweep(G, seeds, option: str, values, batch: int, progress, sample: dict) -> dict:
    """{(row, column): uint8 image}: row = seed, column = G.sample(seeds, **{option: value}) for each value."""
    cells = {}
    for c, value in enumerate(values):
        for r, img in enumerate(_uint8(G.sample(seeds, batch_size=batch, **{option: value}, **sample))):
            cells[r, c] = img
        if progress:
            progress.update(len(seeds))
    return cells


def truncation_sheet(G, seeds, psis=PSIS, *, batch: int = 8, progress=None, **sample) -> Sheet:
    """Rows = seeds, columns = psi: each cell is G.sample([seed], truncation_psi=psi, **sample)."""
    _check(G, seeds)
    cells = _sweep(G, seeds, "truncation_psi", psis, batch, progress, sample)
    return layout(cells, [f"seed {s}" for s in seeds], [f"psi {_fmt(p)}" for p in psis], "truncation sweep")


def scale_sheet(G, seeds, scales=SCALES, *, batch: int = 8, progress=None, **sample) -> Sheet:
    """Rows = seeds, columns = render scales of an any-scale model: each cell is G.sample([seed], scale=s)."""
    _check(G, seeds)
    if G.native_size_only:
        raise PixelfolderError(f"--sheet scale needs an any-scale model (CIPS, INR-GAN, CREPS); {G.arch} renders "
                               f"only its native {G.resolution}px grid")
    if sample.get("size") is not None or sample.get("scale") is not None:
        raise PixelfolderError("--sheet scale sets the render scales itself: use --scales, not --size/--scale")
    sample = {k: v for k, v in sample.items() if k not in ("size", "scale")}
    for s in scales:
        G.output_size(None, s)
    cells = _sweep(G, seeds, "scale", scales, batch, progress, sample)
    labels = [f"x{_fmt(s)} ({G.output_size(None, s)}px)" for s in scales]
    return layout(cells, [f"seed {s}" for s in seeds], labels, "render scale")


def mixing_sheet(G, row_seeds, col_seeds, layers=None, *, batch: int = 8, truncation_psi: float = 1.0,
                 truncation_cutoff=None, noise_mode: str = "const", size=None, scale=None, seed_rng=None,
                 device=None, progress=None) -> Sheet:
    """StyleGAN's style-mixing figure: cell (r, c) = synthesis of the row seed's W with the column seed's W on
    `layers` (indices into the w's); the first row and column show the sources."""
    import torch

    from ..utils import check_seed_rng, seed_latent
    from .video import render_size
    _check(G, row_seeds)
    if not col_seeds or len(col_seeds) > MAX_ROWS:
        raise PixelfolderError(f"give 1-{MAX_ROWS} column seeds (--col-seeds)")
    if G.n_latent < 2:
        parse_layers(None, G.n_latent)            # its one-line refusal
    layers = default_mix_layers(G.n_latent) if layers is None else sorted({int(i) for i in layers})
    if not layers or layers[0] < 0 or layers[-1] >= G.n_latent:
        raise PixelfolderError(f"mix layers must be w indices in [0, {G.n_latent}), got {layers}")
    device = device or next(G.parameters()).device
    seed_rng = seed_rng or G.seed_rng
    check_seed_rng(seed_rng, list(row_seeds) + list(col_seeds))
    S = render_size(G, size, scale)
    G.check_render_memory(batch, S)
    G._check_args(None, None, truncation_psi, noise_mode, G.w_avg.new_zeros(1, G.config.w_dim), None,
                  truncation_cutoff)

    def latents(seeds):
        drawn = [seed_latent(s, G.z_dim, seed_rng) for s in seeds]
        with torch.no_grad():
            ws = G.mapping(torch.cat([z for z, _ in drawn]).to(device), truncation_psi=truncation_psi,
                           truncation_cutoff=truncation_cutoff)
        noise = None
        if noise_mode == "random":
            noise = [[torch.randn(1, 1, h, w, generator=g) for h, w in G.synthesis.noise_shapes(
                None if S == G.resolution else S)] for _, g in drawn]
        return ws, noise

    ws_r, noise_r = latents(row_seeds)
    ws_c, noise_c = latents(col_seeds)
    jobs = [((0, c + 1), ws_c[c], None if noise_c is None else noise_c[c]) for c in range(len(col_seeds))]
    jobs += [((r + 1, 0), ws_r[r], None if noise_r is None else noise_r[r]) for r in range(len(row_seeds))]
    for r in range(len(row_seeds)):
        for c in range(len(col_seeds)):
            w = ws_r[r].clone()
            w[layers] = ws_c[c][layers]
            jobs.append(((r + 1, c + 1), w, None if noise_r is None else noise_r[r]))
    from .video import _synthesize
    cells = {}
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        noises = None if noise_mode != "random" else [n for _, _, n in chunk]
        images = _synthesize(G, torch.stack([w for _, w, _ in chunk]), noises, noise_mode, S, batch, device)
        for (key, _, _), img in zip(chunk, _uint8(images)):
            cells[key] = img
        if progress:
            progress.update(len(chunk))
    span = _span(layers)
    return layout(cells, [""] + [f"seed {s}" for s in row_seeds], [""] + [f"seed {s}" for s in col_seeds],
                  f"style mixing: w {span} from the column seed")


def _span(layers) -> str:
    layers = sorted(layers)
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else str(layers[0])
    return ",".join(map(str, layers))


def cell_count(kind: str, rows: int, cols: int) -> int:
    """Images a sheet renders (for a progress bar)."""
    return (rows + 1) * (cols + 1) - 1 if kind == "mixing" else rows * cols
