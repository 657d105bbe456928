"""PixelPyramids' fine-level conditional model: a U-Net on the coarser image x_l and a ConvLSTM over slots of d_l.

The U-Net turns x_l into a conditioning map aligned with the residual d_l; both are split into T = f*f slots
(space-to-depth per channel, slot t = dy*f + dx) and a 2-layer ConvLSTM predicts the mixture parameters of
slot t from the conditioning of slot t and the values of slot t-1 (zeros at t = 0).

BatchNorm: `BatchNorm` follows the usual train/eval behaviour unless its `batch_stats` flag is set, in which
case it normalises with the statistics of the current batch without touching its running buffers (the
official evaluation protocol, where the networks are never put in eval mode).

Two paths, same numbers up to float reordering. With autograd on, while BatchNorm updates its running
statistics, or on the reference path (`with layers.reference(model):`), the plain one (the modules as written).
Under no_grad otherwise, the inference one: channels_last
activations and weights, eval BatchNorm folded into the preceding convolution, in-place ReLU, both LSTM biases
added once in the time-batched input convolution and no recurrent convolution at t = 0 (zero state). Its
derived weights live in a `layers.DerivedCache`, rebuilt whenever a source parameter or buffer changes value
(checked once per forward against a snapshot, so every kind of edit is seen); `layers.release_cached(model)` frees
them.

The inference path can also run in bfloat16 (FineLevel(..., dtype=torch.bfloat16)): bfloat16 weights and
activations for every conv but the U-Net's first (float32), float32 LSTM update and cell state, float32
mixture head; convolutions accumulate in float32 and round their outputs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PixelfolderError
from ...layers.cache import DerivedCache
from .pyramid import squeeze_slots, unsqueeze_slots

CL = torch.channels_last
COMPUTE_DTYPES = (torch.float32, torch.bfloat16)


def inference_path(module: nn.Module) -> bool:
    """The fast inference path: off the reference path and without autograd."""
    return not module.reference and not torch.is_grad_enabled()


def check_dtype(dtype: torch.dtype, fast: bool) -> None:
    """bfloat16 is an inference-path option (no_grad, BatchNorm not updating its statistics)."""
    if dtype not in COMPUTE_DTYPES or (dtype != torch.float32 and not fast):
        raise PixelfolderError(f"compute dtype {dtype} is not available here: float32 always, bfloat16 only for "
                               "evaluation under torch.no_grad()")


def to_cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=CL)


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that can be told to use batch statistics without updating the running ones."""

    batch_stats: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_stats:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)

    @property
    def updates_stats(self) -> bool:
        """True when a forward would update the running statistics (ordinary training mode)."""
        return self.training and not self.batch_stats


def fold_bn(conv: nn.Conv2d, bn: BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv followed by eval-mode bn, the weight channels_last."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = to_cl(conv.weight * scale.view(-1, 1, 1, 1))
    return weight, (conv.bias - bn.running_mean) * scale + bn.bias


class DoubleConv(nn.Module):
    """[3x3 conv (bias) -> BatchNorm -> ReLU] x 2.

    Inference path: the first conv in the dtype of x, the second (and the output) in `dtype` (default the same).
    """

    reference = False        # True: the plain path under no_grad too (layers.reference)

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = BatchNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = BatchNorm(cout)
        self._cache = DerivedCache()

    def forward(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        updating = self.bn1.updates_stats or self.bn2.updates_stats
        if updating:
            self._cache.clear()                 # the running statistics are about to change
        if updating or not inference_path(self):
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        dtype = dtype or x.dtype
        batch_stats = self.bn1.batch_stats or self.bn2.batch_stats      # 'official' protocol
        (w1, b1), (w2, b2) = self._weights(batch_stats, x.dtype)[0], self._weights(batch_stats, dtype, False)[1]
        if batch_stats:
            x = F.relu_(self.bn1(F.conv2d(x, w1, b1, padding=1))).to(dtype)
            return F.relu_(self.bn2(F.conv2d(x, w2, b2, padding=1)))
        x = F.relu_(F.conv2d(x, w1, b1, padding=1)).to(dtype)
        return F.relu_(F.conv2d(x, w2, b2, padding=1))

    def _weights(self, batch_stats: bool, dtype: torch.dtype, check: bool = True):
        """((W1, b1), (W2, b2)) channels_last: the convs' own (batch statistics) or folded with eval BatchNorm."""
        if batch_stats:
            return self._cache.get((self.conv1.weight, self.conv1.bias, self.conv2.weight, self.conv2.bias),
                                   lambda: ((to_cl(self.conv1.weight), self.conv1.bias),
                                            (to_cl(self.conv2.weight), self.conv2.bias)), dtype,
                                   tag="batch_stats", check=check)
        sources = [t for m in (self.conv1, self.bn1, self.conv2, self.bn2) for t in (m.weight, m.bias)]
        sources += [self.bn1.running_mean, self.bn1.running_var, self.bn2.running_mean, self.bn2.running_var]
        return self._cache.get(sources, lambda: (fold_bn(self.conv1, self.bn1), fold_bn(self.conv2, self.bn2)),
                               dtype, tag="eval", check=check)


class Down(nn.Module):
    """DoubleConv -> 2x2 max-pool -> DoubleConv (convolution before pooling, as the official code).

    keep_unused=True also builds the official, never-called `conv` DoubleConv (only to hold its weights).
    """

    def __init__(self, cin: int, cout: int, keep_unused: bool = False):
        super().__init__()
        self.pre = DoubleConv(cin, cout)
        self.post = DoubleConv(cout, cout)
        self.unused = DoubleConv(cin, cout) if keep_unused else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(F.max_pool2d(self.pre(x), 2))


class Up(nn.Module):
    """DoubleConv on the deeper map -> bilinear x2 (align_corners) -> pad to the skip -> cat[skip, up] -> DoubleConv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deep = DoubleConv(cin // 2, cin // 2)
        self.merge = DoubleConv(cin, cout)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.deep(deep), scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
        if dy or dx:
            up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.merge(torch.cat([skip, up], dim=1))


class UNet(nn.Module):
    """x_l (B, 3, h, w) -> conditioning map (B, cond_channels, h, w); `depth` Downs, the last keeping its width."""

    reference = False        # True: the plain path under no_grad too (layers.reference)

    def __init__(self, width: int, depth: int, cond_channels: int, in_channels: int = 3,
                 keep_unused: bool = False):
        super().__init__()
        self.inc = DoubleConv(in_channels, width)
        widths = [width * 2 ** k for k in range(depth)] + [width * 2 ** (depth - 1)]
        self.downs = nn.ModuleList(Down(widths[k], widths[k + 1], keep_unused) for k in range(depth))
        ups = [Up(width * 2 ** (k + 1), width * 2 ** (k - 1)) for k in range(depth - 1, 0, -1)]
        self.ups = nn.ModuleList(ups + [Up(2 * width, width)])
        self.out = nn.Conv2d(width, cond_channels, 1)
        self._cache = DerivedCache()

    def forward(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The inference path returns a channels_last map (same values) in `dtype`.

        dtype=bfloat16 (inference path only): every conv in bfloat16 but the first (3 input channels, cheap),
        which stays float32: in bfloat16 it makes most of the error on images with flat backgrounds.
        """
        fast = inference_path(self)
        check_dtype(dtype, fast)
        feats = [self.inc(to_cl(x), dtype) if fast else self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        y = feats.pop()
        for up in self.ups:
            y = up(y, feats.pop())
        if not fast:
            return self.out(y)
        w, b = self._cache.get((self.out.weight, self.out.bias), lambda: (to_cl(self.out.weight), self.out.bias),
                               dtype)
        return F.conv2d(y, w, b)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: gates (i, f, g, o) = conv(x, W_ih) + b_ih + conv(h, W_hh) + b_hh, 'same' padding."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden, cin, kernel, kernel))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden, hidden, kernel, kernel))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden))
        self.hidden, self.pad = hidden, kernel // 2
        bound = 1 / math.sqrt(hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight_ih, self.bias_ih, padding=self.pad)

    def step(self, gates_x: torch.Tensor, state):
        """One time step from precomputed input gates; state (h, c) or None (zeros)."""
        if state is None:
            h = c = gates_x.new_zeros(gates_x.shape[0], self.hidden, *gates_x.shape[2:])
        else:
            h, c = state
        i, f, g, o = (gates_x + F.conv2d(h, self.weight_hh, self.bias_hh, padding=self.pad)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def tanh_via_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1: within 2e-7 of tanh, and ~5x faster than torch.tanh on this CPU build."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def lstm_update(gates: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference-path LSTM pointwise update from the summed gates (i, f, g, o); c None = zero state.

    Runs in the dtype of `gates` (float32 from the bfloat16 path: the cell state stays float32).
    """
    i, f, g, o = gates.chunk(4, dim=1)
    new_c = torch.sigmoid(i).mul_(tanh_via_sigmoid(g))
    if c is not None:
        new_c = new_c.add_(torch.sigmoid(f).mul_(c))
    return torch.sigmoid(o).mul_(tanh_via_sigmoid(new_c)), new_c


class SlotLSTM(nn.Module):
    """conv_embed (3x3) -> stacked ConvLSTM -> conv_out (3x3) over a slot sequence (B, T, ch, h, w)."""

    reference = False        # True: the plain path under no_grad too (layers.reference)

    def __init__(self, cond_channels: int, out_channels: int, hidden: int = 128, num_layers: int = 2,
                 data_channels: int = 3):
        super().__init__()
        self.embed = nn.Conv2d(cond_channels + data_channels, hidden, 3, padding=1)
        self.cells = nn.ModuleList(ConvLSTMCell(hidden, hidden) for _ in range(num_layers))
        self.out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        self._cache = DerivedCache()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Teacher forcing over the whole sequence, layer by layer (input convs batched over time)."""
        if inference_path(self):
            return self._forward_inference(seq)
        b, t = seq.shape[:2]
        x = self.embed(seq.flatten(0, 1))
        for cell in self.cells:
            gates = cell.input_gates(x).unflatten(0, (b, t))
            state, hs = None, []
            for step in range(t):
                state = cell.step(gates[:, step], state)
                hs.append(state[0])
            x = torch.stack(hs, dim=1).flatten(0, 1)
        return self.out(x).unflatten(0, (b, t))

    def _weights(self, dtype: torch.dtype = torch.float32, check: bool = True):
        """Inference weights: (W_embed, b_embed), per cell (W_ih, b_ih + b_hh, W_hh), (W_out, b_out); channels_last."""
        def build():
            cells = [(to_cl(c.weight_ih), c.bias_ih + c.bias_hh, to_cl(c.weight_hh)) for c in self.cells]
            return (to_cl(self.embed.weight), self.embed.bias), cells, (to_cl(self.out.weight), self.out.bias)
        sources = [self.embed.weight, self.embed.bias, self.out.weight, self.out.bias]
        sources += [p for c in self.cells for p in c.parameters()]
        return self._cache.get(sources, build, dtype, check=check)

    def _forward_inference(self, seq: torch.Tensor) -> torch.Tensor:
        """In the dtype of `seq`; with bfloat16 the LSTM update (and cell state) and the output are float32."""
        b, t = seq.shape[:2]
        (w_embed, b_embed), cells, _ = self._weights(seq.dtype)
        x = F.conv2d(to_cl(seq.flatten(0, 1)), w_embed, b_embed, padding=1)
        for w_ih, bias, w_hh in cells:
            gates = F.conv2d(x, w_ih, bias, padding=1).unflatten(0, (b, t))
            hs = torch.empty_like(x).unflatten(0, (b, t))
            h = c = None
            for step in range(t):
                g = gates[:, step].float()
                if h is not None:
                    g = F.conv2d(h, w_hh, None, padding=1).float().add_(g)
                h, c = lstm_update(g, c)
                h = h.to(x.dtype)
                hs[:, step] = h
            x = hs.flatten(0, 1)
        return self._head(x).unflatten(0, (b, t))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """The mixture-parameter conv in float32 (from bfloat16 features too: float32 weights and output)."""
        w_out, b_out = self._weights(check=False)[2]       # checked by _forward_inference
        return F.conv2d(x.float(), w_out, b_out, padding=1)

    def step(self, inp: torch.Tensor, states: list | None, *, check: bool = True):
        """One slot (B, ch, h, w) -> (mixture params (B, out, h, w), new per-layer states).

        check=False skips the cache's value check: for the later steps of one sampling pass, whose first step checked.
        """
        if inference_path(self):
            return self._step_inference(inp, states, check)
        x = self.embed(inp)
        states = states or [None] * len(self.cells)
        new = []
        for cell, state in zip(self.cells, states):
            state = cell.step(cell.input_gates(x), state)
            new.append(state)
            x = state[0]
        return self.out(x), new

    def _step_inference(self, inp: torch.Tensor, states: list | None, check: bool = True):
        (w_embed, b_embed), cells, (w_out, b_out) = self._weights(check=check)
        x = F.conv2d(to_cl(inp), w_embed, b_embed, padding=1)
        states = states or [None] * len(cells)
        new = []
        for (w_ih, bias, w_hh), state in zip(cells, states):
            g = F.conv2d(x, w_ih, bias, padding=1)
            if state is not None:
                g = g.add_(F.conv2d(state[0], w_hh, None, padding=1))
            h, c = lstm_update(g, None if state is None else state[1])
            new.append((h, c))
            x = h
        return F.conv2d(x, w_out, b_out, padding=1), new


class FineLevel(nn.Module):
    """p(d_l | x_l): U-Net conditioning, slot squeeze (f = 2**n_squeeze) and the slot ConvLSTM."""

    def __init__(self, *, width: int, depth: int, n_squeeze: int, n_classes: int, cond_channels: int = 100,
                 lstm_hidden: int = 128, lstm_layers: int = 2, keep_unused: bool = False):
        super().__init__()
        self.unet = UNet(width, depth, cond_channels, keep_unused=keep_unused)
        self.lstm = SlotLSTM(cond_channels, n_classes, lstm_hidden, lstm_layers)
        self.factor = 2 ** n_squeeze

    @property
    def slots(self) -> int:
        return self.factor ** 2

    def forward(self, x: torch.Tensor, d: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Model-space x_l, d_l (B, 3, h, w) -> float32 mixture parameters of d_l (B, n_classes, h, w).

        dtype: compute dtype of the U-Net and ConvLSTM convolutions (bfloat16: inference path only).
        """
        cond = squeeze_slots(self.unet(x, dtype), self.factor)
        prev = squeeze_slots(d, self.factor)
        prev = torch.cat([torch.zeros_like(prev[:, :1]), prev[:, :-1]], dim=1)
        return unsqueeze_slots(self.lstm(torch.cat([cond, prev], dim=2).to(dtype)), self.factor)
