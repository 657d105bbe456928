"""PixelPyramids' discretised logistic mixture over RGB codes: official loss, exact sampler, official sampler.

Parameter layout of `params` (B, 10*M, H, W), M components, colour c fastest (the official one, not openai's):
logits [0, M); means M + 3m + c; log-scales 4M + 3m + c (clamped at -7); coefficients 7M + 3m + c (tanh;
c = 0: alpha G|R, 1: beta B|R, 2: gamma B|G). Colours are coupled linearly: mu_G = mean_G + alpha * x_R,
mu_B = mean_B + beta * x_R + gamma * x_G. Code k sits at v = 2k/(n-1) - 1 with bin half-width 1/(n-1); the
bins of codes 0 and n-1 are open (they absorb the tails), so every pixel distribution is normalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import PixelfolderError
from .pyramid import _check_n_bits

LOG_SCALE_MIN = -7.0    # log-scale clamp of the official loss and sampler
CDF_FLOOR = 1e-12       # floor of an interior bin probability in the official loss


def dmol_num_mix(n_classes: int) -> int:
    """Mixture components of a head with n_classes channels (10 per component: logit, 3 means, 3 scales, 3 coeffs)."""
    if n_classes < 10 or n_classes % 10:
        raise PixelfolderError(f"a 3-colour logistic-mixture head needs a multiple of 10 channels; got {n_classes}")
    return n_classes // 10


def _unpack(params: torch.Tensor):
    """(B, 10M, H, W) -> logits (B, M, H, W); means, log-scales (clamped), coefficients (tanh): (B, M, 3, H, W)."""
    if params.dim() != 4:
        raise PixelfolderError(f"mixture parameters must be (B, 10*M, H, W); got {tuple(params.shape)}")
    b, ch, h, w = params.shape
    m = dmol_num_mix(ch)
    rest = params[:, m:].reshape(b, 3 * m, 3, h, w)
    means, log_scales, coeffs = rest.split(m, 1)
    return params[:, :m], means, log_scales.clamp(min=LOG_SCALE_MIN), coeffs.tanh()


def dmol_nll(params: torch.Tensor, x: torch.Tensor, n_bits: int, *, per_pixel: bool = False) -> torch.Tensor:
    """Negative log-likelihood (nats) of model-space images x (B, 3, H, W): (B,), or (B, H, W) with per_pixel.

    The official float32 formula, same operations in the same order (so ill-conditioned interior bins, where
    sigmoid(plus) - sigmoid(minus) cancels, give the official numbers); runs in the dtype of `params`.
    """
    n = _check_n_bits(n_bits)
    logits, means, log_scales, coeffs = _unpack(params)
    if x.shape[0] != params.shape[0] or x.shape[1] != 3 or x.shape[2:] != params.shape[2:]:
        raise PixelfolderError(f"dmol_nll: images {tuple(x.shape)} do not match parameters {tuple(params.shape)}")
    x = x.to(params.dtype).unsqueeze(1).expand_as(means)
    mu_r = means[:, :, 0]
    mu_g = means[:, :, 1] + coeffs[:, :, 0] * x[:, :, 0]
    mu_b = means[:, :, 2] + coeffs[:, :, 1] * x[:, :, 0] + coeffs[:, :, 2] * x[:, :, 1]
    centred = x - torch.stack([mu_r, mu_g, mu_b], 2)
    inv_scale = torch.exp(-log_scales)
    plus = inv_scale * (centred + 1 / (n - 1))
    minus = inv_scale * (centred - 1 / (n - 1))
    log_low_edge = plus - F.softplus(plus)           # code 0: log cdf(plus)
    log_high_edge = -F.softplus(minus)               # code n-1: log (1 - cdf(minus))
    log_interior = torch.log((torch.sigmoid(plus) - torch.sigmoid(minus)).clamp(min=CDF_FLOOR))
    # branch by code: the official thresholds -1 + 2/(n-1) and 1 - 2/(n-1) sit a whole bin from the edge codes;
    # half a bin selects the same codes at every n_bits except 2 in float32, where the official one also sends
    # code 2 of 0..3 to the top edge (the distribution then does not sum to 1)
    log_probs = torch.where(x < -1.0 + 1 / (n - 1), log_low_edge,
                            torch.where(x > 1.0 - 1 / (n - 1), log_high_edge, log_interior))
    log_probs = log_probs.sum(2) + F.log_softmax(logits, 1)
    nll = -log_probs.logsumexp(1)
    return nll if per_pixel else nll.sum([1, 2])


def _log_bin_prob(k: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor, n: int) -> torch.Tensor:
    """log P(code k) of a discretised logistic with open edge bins, stable in both tails (float64 inside)."""
    inv_scale = torch.exp(-log_scale)
    v = k.to(mu.dtype) / (n - 1) * 2 - 1
    plus = inv_scale * (v - mu + 1 / (n - 1))
    minus = inv_scale * (v - mu - 1 / (n - 1))
    plus = torch.where(k == n - 1, torch.full_like(plus, float("inf")), plus)
    minus = torch.where(k == 0, torch.full_like(minus, float("-inf")), minus)
    # sigma(p) - sigma(m) = sigma(-m) - sigma(-p): evaluate it in the left tail, where sigmoids are accurate
    flip = (plus + minus) > 0
    hi = torch.where(flip, -minus, plus)
    lo = torch.where(flip, -plus, minus)
    log_hi, log_lo = F.logsigmoid(hi), F.logsigmoid(lo)
    return log_hi + torch.log(-torch.expm1(log_lo - log_hi))


def _check_known(known, shape, n_bits: int):
    """Known codes (>= 0 fixed, < 0 to draw) must form a colour prefix (R, R+G or all) at every pixel."""
    if known is None:
        return None
    if tuple(known.shape) != tuple(shape):
        raise PixelfolderError(f"dmol_sample: known codes {tuple(known.shape)} must have shape {tuple(shape)}")
    known = known.to(torch.int64)
    if known.numel() and int(known.max()) >= (1 << n_bits):
        raise PixelfolderError(f"dmol_sample: known codes must be < {1 << n_bits} for n_bits={n_bits}")
    given = known >= 0
    if bool((given[:, 1:] & ~given[:, :-1]).any()):
        raise PixelfolderError("dmol_sample: known colours must be a prefix per pixel (R, R and G, or all three)")
    return known


def dmol_sample(params: torch.Tensor, n_bits: int, *, generator: torch.Generator | None = None,
                known: torch.Tensor | None = None) -> torch.Tensor:
    """Exact draw of codes (B, 3, H, W) int64 from the discretised mixture (float64 inside).

    Component m ~ softmax(logits) (Gumbel-max); then R, G, B in turn: y ~ Logistic(mu_c, exp(log_scale_c)) with
    mu_c coupled to the grid values of the colours already drawn, k_c = clip(round((y+1)/2*(n-1)), 0, n-1),
    which is exactly the discretised logistic with open edge bins. `known` (optional, (B, 3, H, W) int64,
    entries >= 0 fixed, < 0 drawn; a colour prefix per pixel) conditions on given colours: the component is then
    drawn from its posterior given them, so the result is an exact draw of the remaining colours.
    Randomness: exactly two draws from `generator`, uniforms of shape (B, M, H, W) then (B, 3, H, W), whatever
    `known` is; pixel (b, i, j) uses only its own entries, so it depends on the rest of the batch only through
    its position in the generator stream.
    """
    n = _check_n_bits(n_bits)
    f64, dev = torch.float64, params.device
    logits, means, log_scales, coeffs = _unpack(params.to(f64))
    b, m, h, w = logits.shape
    known = _check_known(known, (b, 3, h, w), n_bits)
    u_mix = torch.rand((b, m, h, w), generator=generator, device=dev, dtype=f64)
    u_col = torch.rand((b, 3, h, w), generator=generator, device=dev, dtype=f64)
    score = F.log_softmax(logits, 1)
    if known is not None:
        score = score + _known_log_lik(known, means, log_scales, coeffs, n)
    comp = (score - torch.log(-torch.log(u_mix))).argmax(1, keepdim=True)    # Gumbel-max, (B, 1, H, W)
    index = comp.unsqueeze(2).expand(b, 1, 3, h, w)
    mean, log_scale, coeff = (t.gather(1, index).squeeze(1) for t in (means, log_scales, coeffs))
    noise = torch.exp(log_scale) * (torch.log(u_col) - torch.log1p(-u_col))
    codes, grid = [], []
    for c in range(3):
        mu = mean[:, c]
        if c == 1:
            mu = mu + coeff[:, 0] * grid[0]
        elif c == 2:
            mu = mu + coeff[:, 1] * grid[0] + coeff[:, 2] * grid[1]
        k = torch.round((mu + noise[:, c] + 1) / 2 * (n - 1)).clamp(0, n - 1).to(torch.int64)
        if known is not None:
            k = torch.where(known[:, c] >= 0, known[:, c], k)
        codes.append(k)
        grid.append(k.to(f64) / (n - 1) * 2 - 1)
    return torch.stack(codes, 1)


def _known_log_lik(known, means, log_scales, coeffs, n: int) -> torch.Tensor:
    """(B, M, H, W): log-probability of the known colour prefix under each component (0 where nothing is known)."""
    total = torch.zeros_like(means[:, :, 0])
    grid = (known.clamp(min=0).to(means.dtype) / (n - 1) * 2 - 1).unsqueeze(1)      # (B, 1, 3, H, W)
    mu = [means[:, :, 0],
          means[:, :, 1] + coeffs[:, :, 0] * grid[:, :, 0],
          means[:, :, 2] + coeffs[:, :, 1] * grid[:, :, 0] + coeffs[:, :, 2] * grid[:, :, 1]]
    for c in range(3):
        k = known[:, c].unsqueeze(1).expand_as(total)
        term = _log_bin_prob(k.clamp(min=0), mu[c], log_scales[:, :, c], n)
        total = total + torch.where(k >= 0, term, torch.zeros_like(term))
    return total


def dmol_sample_official(params: torch.Tensor, n_bits: int, *, generator: torch.Generator | None = None,
                         temperature: float = 0.1) -> torch.Tensor:
    """The official approximate draw (`misc.sample_from_discretized_mix_logistic`): model-space floats (B, 3, H, W).

    Not an exact sample: the logistic scale is multiplied by `temperature` (0.1 in the official sampler),
    u is drawn in [1e-5, 1 - 1e-5], each colour is clamped to [-1, 1] and NOT snapped to the code grid, and the
    coupling uses these continuous values. Component by Gumbel-max. float32 like the official code.
    """
    _check_n_bits(n_bits)
    logits, means, log_scales, coeffs = _unpack(params.to(torch.float32))
    b, m, h, w = logits.shape

    def uniform(shape):
        u = torch.rand(shape, generator=generator, device=params.device, dtype=torch.float32)
        return u * (1 - 2e-5) + 1e-5

    comp = (logits - torch.log(-torch.log(uniform((b, m, h, w))))).argmax(1, keepdim=True)
    index = comp.unsqueeze(2).expand(b, 1, 3, h, w)
    mean, log_scale, coeff = (t.gather(1, index).squeeze(1) for t in (means, log_scales, coeffs))
    u = uniform((b, 3, h, w))
    y = mean + temperature * log_scale.exp() * (torch.log(u) - torch.log1p(-u))
    r = y[:, 0].clamp(-1, 1)
    g = (y[:, 1] + coeff[:, 0] * r).clamp(-1, 1)
    bl = (y[:, 2] + coeff[:, 1] * r + coeff[:, 2] * g).clamp(-1, 1)
    return torch.stack([r, g, bl], 1)
