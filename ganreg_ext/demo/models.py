"""A small StyleGAN2 for the demo, built on the package's fused blocks (generic in channels and
resolution).

* Mapping network ``z → w`` (normalized ``z``, equalized-lr MLP, lr multiplier ``mapping_lr_mul``),
  broadcast to ``ws`` ``[B, num_ws, w_dim]`` (one row per layer as NVlabs: ``num_ws = 2·log2(size) − 2``,
  so path length regularization sees a StyleGAN-shaped ``ws``).
* Synthesis network: learned 4×4 constant, modulated 3×3 convolutions with weight demodulation
  (applied to the activations: ``conv(x·s, W)·d``, the fast form on CPU), the 2× upsampling conv
  as StyleGAN2 computes it (stride-2 transposed conv, then ``gx.filter2d`` with the ``[1, 3, 3, 1]``
  FIR filter, separable), skip-architecture ``toRGB`` layers whose running image is ``gx.upsample2d``-ed.
* Residual discriminator: ``fromRGB``; per resolution a 3×3 conv, then ``gx.downsample2d`` (FIR) + 3×3
  conv, the skip ``gx.downsample2d`` + 1×1 conv, both scaled by ``√½``; at 4×4 minibatch standard
  deviation (``parts``: the main D step scores reals and fakes in one pass, each half grouped on
  its own), 3×3 conv, two dense layers. The 1×1 convolutions (``toRGB``, ``fromRGB``, the skips) are
  matmuls (``conv2d``).

Every bias + activation is ``gx.bias_act`` (lrelu 0.2, gain √2) and every resampling
``gx.upsample2d``/``gx.downsample2d``/``gx.filter2d``; each ``forward`` takes ``backend`` and hands it
to every block, so ``backend="reference"`` runs the eager reference blocks and a fused backend the
fused ones (the same weights compute the same function either way). Everything is twice
differentiable (R1 and path length need the double backward); the fused blocks' backward and
double backward are themselves fused ops. Equalized learning rate everywhere. Left out (a CPU demo):
per-pixel noise inputs, style mixing, ``w_avg``/truncation, ``conv_clamp``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import ganreg_ext as gx

SQRT_HALF = math.sqrt(0.5)


def conv2d(x: torch.Tensor, w: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, w, padding=padding)``; a 1×1 ``w`` ``[O, C, 1, 1]`` (padding 0) as a broadcast
    product (C = 1) or a matmul over the channels: the same sums, 1.5-3× faster than ATen's
    convolution at the demo's sizes (one CPU thread)."""
    if w.shape[-2:] != (1, 1) or padding:
        return F.conv2d(x, w, padding=padding)
    B, C, H, W = x.shape
    if C == 1:
        return x * w.reshape(1, -1, 1, 1)
    return w.flatten(1).matmul(x.flatten(2)).view(B, -1, H, W)


def fir_filter() -> torch.Tensor:
    """StyleGAN2's ``[1, 3, 3, 1]`` resampling filter in its separable form (the 1-D taps; the ops
    apply ``f ⊗ f``, the same 4×4 filter in two 4-tap passes, about half the work of the 2-D form)."""
    return gx.setup_filter([1, 3, 3, 1], separable=True)


class EqLinear(nn.Module):
    """Dense layer with equalized learning rate: ``bias_act(x·(W·lr_mul/√in)ᵀ, b·lr_mul, act)``."""

    def __init__(self, in_f: int, out_f: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_f], float(bias_init)))
        self.w_gain = lr_mul / math.sqrt(in_f)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x, backend=None):
        return gx.bias_act(x.matmul((self.weight * self.w_gain).t()), self.bias * self.lr_mul, act=self.act, backend=backend)


class EqConv2d(nn.Module):
    """Conv with equalized learning rate; optional FIR 2× downsampling (``gx.downsample2d``) before
    the conv; ``gx.bias_act`` with gain ``gain`` (× √2 for lrelu). Without a bias the output is
    linear and ``gain`` folds into the weight."""

    def __init__(
        self, in_ch: int, out_ch: int, k: int, bias: bool = True, act: str = "lrelu", down: bool = False, gain: float = 1.0
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.w_gain = (1 if bias else gain) / math.sqrt(in_ch * k * k)
        self.act, self.down, self.pad, self.gain = act, down, k // 2, gain

    def forward(self, x, f, backend=None):
        if self.down:
            x = gx.downsample2d(x, f, backend=backend)
        x = conv2d(x, self.weight * self.w_gain, self.pad)
        if self.bias is None:
            return x
        act_gain = math.sqrt(2) if self.act == "lrelu" else 1.0
        return gx.bias_act(x, self.bias, act=self.act, gain=act_gain * self.gain, backend=backend)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 2, lr_mul: float = 0.01):
        super().__init__()
        self.num_ws = num_ws
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.ModuleList([EqLinear(a, b, lr_mul=lr_mul, act="lrelu") for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, z, backend=None):
        w = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)  # normalize 2nd moment
        for layer in self.net:
            w = layer(w, backend)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class ModulatedConv(nn.Module):
    """StyleGAN2 modulated conv: ``s = A(w)``; ``y = bias_act(d·conv(x·s, W), b)``, with
    ``d = (Σ (W·s)² + 1e-8)^(-1/2)`` (demodulation) or, for toRGB, styles scaled by ``1/√fan_in``
    and no demodulation. ``up``: the conv upsamples 2× (transposed conv, then the FIR filter)."""

    def __init__(
        self, in_ch: int, out_ch: int, k: int, w_dim: int, demodulate: bool = True, act: str = "lrelu", up: bool = False
    ):
        super().__init__()
        self.affine = EqLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.s_gain = 1 / math.sqrt(in_ch * k * k)
        self.demodulate, self.act, self.up, self.pad = demodulate, act, up, k // 2

    def forward(self, x, w, f, backend=None):
        s = self.affine(w, backend)  # [B, in]
        if not self.demodulate:  # toRGB: NVlabs scales the styles instead of demodulating
            s = s * self.s_gain
        x = x * s[:, :, None, None]
        if self.up:  # = zero insertion + conv with W (one 3×3 conv at the low resolution), then FIR
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1).flip([2, 3]), stride=2)
            x = gx.filter2d(x, f, padding=[-1, 0, -1, 0], gain=4, backend=backend)  # 2H + 1 → 2H
        else:
            x = conv2d(x, self.weight, self.pad)
        if self.demodulate:
            d = torch.rsqrt(s.square().matmul(self.weight.square().sum([2, 3]).t()) + 1e-8)  # [B, out]
            x = x * d[:, :, None, None]
        return gx.bias_act(x, self.bias, act=self.act, backend=backend)


def channels_at(res: int, width: int) -> int:
    """Feature maps per resolution: ``width`` up to 8×8, halving above (at least 16)."""
    return max(16, min(width, width * 8 // res))


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, size: int, channels: int, width: int):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"size must be a power of two >= 8, got {size}")
        self.size = size
        c4 = channels_at(4, width)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.conv4 = ModulatedConv(c4, c4, 3, w_dim)
        self.rgb4 = ModulatedConv(c4, channels, 1, w_dim, demodulate=False, act="linear")
        self.blocks = nn.ModuleList()
        res, c_in = 8, c4
        while res <= size:
            c = channels_at(res, width)
            self.blocks.append(
                nn.ModuleList(
                    [
                        ModulatedConv(c_in, c, 3, w_dim, up=True),
                        ModulatedConv(c, c, 3, w_dim),
                        ModulatedConv(c, channels, 1, w_dim, demodulate=False, act="linear"),
                    ]
                )
            )
            res, c_in = res * 2, c
        self.num_ws = 2 + 2 * len(self.blocks)  # NVlabs: conv layers + the last toRGB
        self.register_buffer("f", fir_filter())

    def forward(self, ws, backend=None):
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], self.f, backend)
        img = self.rgb4(x, ws[:, 1], self.f, backend)
        for i, (conv0, conv1, torgb) in enumerate(self.blocks):
            x = conv0(x, ws[:, 2 * i + 1], self.f, backend)
            x = conv1(x, ws[:, 2 * i + 2], self.f, backend)
            img = gx.upsample2d(img, self.f, backend=backend) + torgb(x, ws[:, 2 * i + 3], self.f, backend)
        return img


class Generator(nn.Module):
    def __init__(
        self,
        z_dim: int = 64,
        w_dim: int = 64,
        size: int = 32,
        channels: int = 1,
        width: int = 64,
        mapping_layers: int = 2,
        mapping_lr_mul: float = 0.01,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.size, self.channels = z_dim, w_dim, size, channels
        self.synthesis = SynthesisNetwork(w_dim, size, channels, width)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mul)

    def forward(self, z, backend=None):
        return self.synthesis(self.mapping(z, backend), backend)


class MinibatchStd(nn.Module):
    """Append the mean over features of the per-group standard deviation (group of ≤ 4 samples:
    i, i + n/G, ...). ``parts``: the batch is that many minibatches of n = B/parts stacked (the
    real and fake halves of one D pass), each grouped on its own as if it ran alone."""

    def forward(self, x, parts: int = 1):
        B, C, H, W = x.shape
        n = B // parts
        G = next(g for g in (4, 3, 2, 1) if n % g == 0)
        y = x.reshape(parts, G, -1, C, H, W)
        y = (y - y.mean(1, keepdim=True)).square().mean(1).add(1e-8).sqrt().mean([2, 3, 4])  # [parts, n/G]
        y = y.reshape(parts, 1, -1, 1, 1, 1).expand(-1, G, -1, 1, H, W).reshape(B, 1, H, W)
        return torch.cat([x, y], 1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqConv2d(c_in, c_in, 3)
        self.conv1 = EqConv2d(c_in, c_out, 3, down=True, gain=SQRT_HALF)
        self.skip = EqConv2d(c_in, c_out, 1, bias=False, down=True, gain=SQRT_HALF)

    def forward(self, x, f, backend=None):
        return self.skip(x, f, backend) + self.conv1(self.conv0(x, f, backend), f, backend)


class Discriminator(nn.Module):
    def __init__(self, size: int = 32, channels: int = 1, width: int = 64):
        super().__init__()
        self.from_rgb = EqConv2d(channels, channels_at(size, width), 1)
        blocks, res = [], size
        while res > 4:
            blocks.append(DiscriminatorBlock(channels_at(res, width), channels_at(res // 2, width)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        c4 = channels_at(4, width)
        self.mbstd = MinibatchStd()
        self.conv = EqConv2d(c4 + 1, c4, 3)
        self.fc = EqLinear(c4 * 16, c4, act="lrelu")
        self.out = EqLinear(c4, 1)
        self.register_buffer("f", fir_filter())

    def forward(self, img, backend=None, parts: int = 1):
        """Logits ``[B]``; ``parts``: ``img`` is that many minibatches stacked (``MinibatchStd``)."""
        x = self.from_rgb(img, self.f, backend)
        for block in self.blocks:
            x = block(x, self.f, backend)
        x = self.conv(self.mbstd(x, parts), self.f, backend)
        return self.out(self.fc(x.flatten(1), backend), backend).squeeze(1)  # [B] logits
