"""PixelPyramids' lossless pyramid: a polyphase split plus a modular integer residual, and its exact inverse.

One split of an integer image X (codes 0..n-1, n = 2**n_bits): square images split rows, S x 2S images split
columns; the odd rows/columns p2 are kept (plain subsampling), the even ones p1 are coded as the residual
d = (p1 - p2 + s) mod n (s = `residual_offset`, 128 mod n for the official celeba.py loader, else 0).
Repeating it num_levels-1 times takes the image down to 4x4; the residuals plus the 4x4 image are exactly
3*H*W integers (a bijection). All integer work is int64; images are batched (B, C, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import PixelfolderError

COARSEST = 4    # side of the coarsest (PixelCNN++) image, hard-coded in the official model


def _check_n_bits(n_bits) -> int:
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 8:
        raise PixelfolderError(f"n_bits must be an integer in 1..8; got {n_bits!r}")
    return 1 << n_bits


def _check_codes(codes: torch.Tensor, n_bits: int, what: str = "the pyramid transform") -> torch.Tensor:
    """Integer codes in [0, 2**n_bits) as int64, or a one-line PixelfolderError."""
    n = _check_n_bits(n_bits)
    if not isinstance(codes, torch.Tensor) or codes.dtype.is_floating_point or codes.dtype.is_complex \
            or codes.dtype == torch.bool:
        kind = type(codes).__name__ if not isinstance(codes, torch.Tensor) else str(codes.dtype)
        raise PixelfolderError(f"{what} takes integer codes (use quantize or from_model_space); got {kind}")
    in_range_by_type = codes.dtype == torch.uint8 and n_bits == 8      # no value to read on the host
    codes = codes.to(torch.int64)
    if codes.numel() and not in_range_by_type:
        lo, hi = int(codes.min()), int(codes.max())
        if hi >= n:
            raise PixelfolderError(f"{what} takes {n_bits}-bit codes 0..{n - 1}; got values up to {hi} "
                                   f"for n_bits={n_bits}")
        if lo < 0:
            raise PixelfolderError(f"{what} takes {n_bits}-bit codes 0..{n - 1}; got values down to {lo} "
                                   f"for n_bits={n_bits}")
    return codes


def quantize(x_uint8: torch.Tensor, n_bits: int) -> torch.Tensor:
    """8-bit values -> int64 codes floor(x / 2**(8-n_bits)) (floor, as the official loaders; identity at 8 bits)."""
    _check_n_bits(n_bits)
    x = _check_codes(x_uint8, 8, "quantize")
    return x >> (8 - n_bits)


def dequantize_to_uint8(codes: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Codes -> uint8 for display: round(255 k / (n-1)), so 0 -> 0 and n-1 -> 255 (the [-1, 1] image scaled to
    0..255 and rounded); `quantize` maps the result back to k. The official PNGs truncate instead of rounding."""
    n = _check_n_bits(n_bits)
    k = _check_codes(codes, n_bits, "dequantize_to_uint8")
    return ((k * 510 + (n - 1)) // (2 * (n - 1))).to(torch.uint8)


def to_model_space(codes: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Codes -> float32 (k / (n-1)) * 2 - 1, in that order (bit-exact with the official loaders)."""
    n = _check_n_bits(n_bits)
    return (codes.to(torch.float32) / (n - 1)) * 2 - 1


def from_model_space(v: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Model-space values -> int64 codes round((v+1)/2*(n-1)) clamped to 0..n-1 (round, never truncate)."""
    n = _check_n_bits(n_bits)
    k = torch.round((v.to(torch.float64) + 1) / 2 * (n - 1))
    return k.clamp(0, n - 1).to(torch.int64)


def _size_rule(num_levels: int) -> tuple[int, int]:
    """The one image size (H, W) whose num_levels-1 alternating splits end at 4x4."""
    splits = num_levels - 1
    side = COARSEST << (splits // 2)
    return side, side * (2 if splits % 2 else 1)


def pyramid_shapes(height: int, width: int, num_levels: int) -> list[tuple[int, int]]:
    """(h_l, w_l) of the kept image x_l (= residual d_l) for l = 0..num_levels-2, finest first."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
        raise PixelfolderError(f"num_levels must be an integer >= 1; got {num_levels!r}")
    need = _size_rule(num_levels)
    if (height, width) != need:
        raise PixelfolderError(
            f"the pyramid with num_levels={num_levels} takes {need[0]}x{need[1]} images (square SxS or Sx2S with "
            f"S a power of two >= 4; num_levels-1 = {num_levels - 1} splits must reach 4x4, i.e. "
            f"num_levels = 2*log2(S/4)+1 for SxS, 2*log2(S/4)+2 for Sx2S); got {height}x{width}")
    shapes, h, w = [], height, width
    for _ in range(num_levels - 1):
        h, w = (h // 2, w) if h == w else (h, w // 2)
        shapes.append((h, w))
    return shapes


def split_kinds(height: int, width: int, num_levels: int) -> list[str]:
    """"rows" or "cols" for each split, finest first (square images split rows)."""
    kinds, h = [], height
    for sh, _ in pyramid_shapes(height, width, num_levels):
        kinds.append("rows" if sh < h else "cols")
        h = sh
    return kinds


@dataclass
class Pyramid:
    """Integer pyramid, finest first: residuals[l] = d_l, kept[l] = x_l, coarsest = kept[-1] (4x4)."""
    residuals: list[torch.Tensor]
    kept: list[torch.Tensor]
    coarsest: torch.Tensor


def _split(x: torch.Tensor, n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One split: (kept p2, residual (p1 - p2 + s) mod n)."""
    if x.shape[-2] == x.shape[-1]:
        p1, p2 = x[..., 0::2, :], x[..., 1::2, :]
    else:
        p1, p2 = x[..., 0::2], x[..., 1::2]
    return p2, torch.remainder(p1 - p2 + offset, n)


def decompose(codes: torch.Tensor, n_bits: int, num_levels: int, residual_offset: int = 0, *,
              in_range: bool = False) -> Pyramid:
    """Codes (B, C, H, W) -> Pyramid of num_levels-1 splits (int64 codes, bit-exact with the official loaders).
    in_range: the codes are known to lie in [0, 2**n_bits) (made by `quantize`), so their values are not read
    on the host to check them."""
    n = _check_n_bits(n_bits)
    if not isinstance(codes, torch.Tensor) or codes.dim() != 4:
        shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise PixelfolderError(f"the pyramid transform takes batched codes (B, C, H, W); got {shape}")
    x = codes.to(torch.int64) if in_range else _check_codes(codes, n_bits)
    pyramid_shapes(x.shape[-2], x.shape[-1], num_levels)
    residuals, kept = [], []
    for _ in range(num_levels - 1):
        x, d = _split(x, n, residual_offset % n)
        residuals.append(d)
        kept.append(x)
    return Pyramid(residuals=residuals, kept=kept, coarsest=x)


def _merge(x: torch.Tensor, d: torch.Tensor, n: int, offset: int) -> torch.Tensor:
    """Undo one split: a non-square x came from a row split, a square one from a column split."""
    p1 = torch.remainder(x + d - offset, n)
    b, c, h, w = x.shape
    if h < w:
        return torch.stack([p1, x], dim=3).reshape(b, c, 2 * h, w)
    return torch.stack([p1, x], dim=4).reshape(b, c, h, 2 * w)


def reconstruct(coarsest: torch.Tensor, residuals: list[torch.Tensor], n_bits: int,
                residual_offset: int = 0) -> torch.Tensor:
    """Exact inverse of `decompose`: the coarsest image and the residuals (finest first) -> int64 codes."""
    n = _check_n_bits(n_bits)
    x = _check_codes(coarsest, n_bits)
    for level in range(len(residuals) - 1, -1, -1):
        d = _check_codes(residuals[level], n_bits)
        if d.shape != x.shape:
            raise PixelfolderError(f"pyramid level {level}: residual shape {tuple(d.shape)} does not match the "
                                   f"coarser image {tuple(x.shape)}")
        x = _merge(x, d, n, residual_offset % n)
    return x


def squeeze_slots(x: torch.Tensor, f: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, f*f, C, h/f, w/f): out[b, t, c, i, j] = x[b, c, i*f+dy, j*f+dx] with t = dy*f + dx."""
    b, c, h, w = x.shape
    if h % f or w % f:
        raise PixelfolderError(f"cannot squeeze a {h}x{w} map into {f}x{f} blocks")
    x = x.reshape(b, c, h // f, f, w // f, f).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, f * f, c, h // f, w // f)


def unsqueeze_slots(x: torch.Tensor, f: int) -> torch.Tensor:
    """Exact inverse of `squeeze_slots`: (B, f*f, C, h, w) -> (B, C, h*f, w*f)."""
    b, t, c, h, w = x.shape
    if t != f * f:
        raise PixelfolderError(f"unsqueeze_slots: {t} slots do not form {f}x{f} blocks")
    x = x.reshape(b, f, f, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c, h * f, w * f)
