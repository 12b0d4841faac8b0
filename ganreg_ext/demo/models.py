"""A small StyleGAN2-flavoured GAN for the demo (generic in channels and resolution).

* Mapping network ``z → w`` (normalized ``z``, equalized-lr MLP with lr multiplier 0.01), broadcast
  to ``ws`` ``[B, num_ws, w_dim]`` (one row per layer, so path length regularization sees a
  StyleGAN-shaped ``ws``).
* Synthesis network: learned 4×4 constant, modulated 3×3 convolutions with weight demodulation
  (non-fused form: modulate the input, one shared conv, demodulate the output, which is the
  fast form on CPU), bilinear upsampling, skip-architecture ``toRGB`` layers.
* Residual discriminator (``fromRGB``, residual blocks with average-pool downsampling and a
  ``1/sqrt(2)`` merge, minibatch standard deviation, two dense layers).

Everything uses equalized learning rate (runtime weight scaling) and leaky ReLU 0.2 with gain
``sqrt(2)``, as StyleGAN2. Simplifications compared with NVlabs (kept small for a CPU demo): no
per-pixel noise inputs, no style mixing, no FIR resampling filters, no ``w_avg``/truncation.
Every op here is twice differentiable (R1 and path length need double backward).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * SQRT2


class EqLinear(nn.Module):
    """Dense layer with equalized learning rate (``weight · lr_mul/sqrt(fan_in)`` at runtime)."""

    def __init__(self, in_f: int, out_f: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_f], float(bias_init)))
        self.w_gain = lr_mul / math.sqrt(in_f)
        self.b_gain = lr_mul
        self.act = act

    def forward(self, x):
        x = F.linear(x, self.weight * self.w_gain, self.bias * self.b_gain)
        return lrelu(x) if self.act else x


class EqConv2d(nn.Module):
    """Conv with equalized learning rate; optional 2× average-pool downsampling after the conv."""

    def __init__(self, in_ch: int, out_ch: int, k: int, bias: bool = True, act: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.gain = 1 / math.sqrt(in_ch * k * k)
        self.act, self.down, self.pad = act, down, k // 2

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return lrelu(x) if self.act else x


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 2, lr_mul: float = 0.01):
        super().__init__()
        self.num_ws = num_ws
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, z):
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)  # normalize 2nd moment
        w = self.net(z)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class ModulatedConv(nn.Module):
    """StyleGAN2 modulated conv: ``s = A(w)``; ``y = demod · conv(x·s, W)`` (+ bias, lrelu)."""

    def __init__(self, in_ch: int, out_ch: int, k: int, w_dim: int, demodulate: bool = True, act: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.gain = 1 / math.sqrt(in_ch * k * k)
        self.demodulate, self.act, self.up, self.pad = demodulate, act, up, k // 2

    def forward(self, x, w):
        s = self.affine(w)  # [B, in]
        if not self.demodulate:  # toRGB: NVlabs scales the styles instead of demodulating
            s = s * self.gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        weight = self.weight * (self.gain if self.demodulate else 1.0)
        x = F.conv2d(x * s[:, :, None, None], weight, padding=self.pad)
        if self.demodulate:
            d = torch.rsqrt((weight.square().sum([2, 3])[None] * s.square()[:, None, :]).sum(2) + 1e-8)  # [B, out]
            x = x * d[:, :, None, None]
        x = x + self.bias[None, :, None, None]
        return lrelu(x) if self.act else x


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
        self.rgb4 = ModulatedConv(c4, channels, 1, w_dim, demodulate=False, act=False)
        self.blocks = nn.ModuleList()
        res, c_in = 8, c4
        while res <= size:
            c = channels_at(res, width)
            self.blocks.append(
                nn.ModuleList(
                    [
                        ModulatedConv(c_in, c, 3, w_dim, up=True),
                        ModulatedConv(c, c, 3, w_dim),
                        ModulatedConv(c, channels, 1, w_dim, demodulate=False, act=False),
                    ]
                )
            )
            res, c_in = res * 2, c
        self.num_ws = 2 + 3 * len(self.blocks)

    def forward(self, ws):
        ws = ws.unbind(1)
        x = self.const[None].expand(ws[0].shape[0], -1, -1, -1)
        x = self.conv4(x, ws[0])
        img = self.rgb4(x, ws[1])
        i = 2
        for conv0, conv1, torgb in self.blocks:
            x = conv0(x, ws[i])
            x = conv1(x, ws[i + 1])
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + torgb(x, ws[i + 2])
            i += 3
        return img


class Generator(nn.Module):
    def __init__(
        self, z_dim: int = 64, w_dim: int = 64, size: int = 32, channels: int = 1, width: int = 64, mapping_layers: int = 2
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.size, self.channels = z_dim, w_dim, size, channels
        self.synthesis = SynthesisNetwork(w_dim, size, channels, width)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers)

    def forward(self, z):
        return self.synthesis(self.mapping(z))


class MinibatchStd(nn.Module):
    """Append the mean over features of the per-group standard deviation (group of ≤ 4 samples)."""

    def forward(self, x):
        B, C, H, W = x.shape
        G = next(g for g in (4, 3, 2, 1) if B % g == 0)
        y = x.reshape(G, -1, C, H, W)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])  # [B/G]
        y = y.reshape(-1, 1, 1, 1).repeat(G, 1, H, W)
        return torch.cat([x, y], 1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqConv2d(c_in, c_in, 3)
        self.conv1 = EqConv2d(c_in, c_out, 3, down=True)
        self.skip = EqConv2d(c_in, c_out, 1, bias=False, act=False, down=True)

    def forward(self, x):
        return (self.skip(x) + self.conv1(self.conv0(x))) * (1 / SQRT2)


class Discriminator(nn.Module):
    def __init__(self, size: int = 32, channels: int = 1, width: int = 64):
        super().__init__()
        self.from_rgb = EqConv2d(channels, channels_at(size, width), 1)
        blocks, res = [], size
        while res > 4:
            blocks.append(DiscriminatorBlock(channels_at(res, width), channels_at(res // 2, width)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = channels_at(4, width)
        self.mbstd = MinibatchStd()
        self.conv = EqConv2d(c4 + 1, c4, 3)
        self.fc = EqLinear(c4 * 16, c4, act=True)
        self.out = EqLinear(c4, 1)

    def forward(self, img):
        x = self.blocks(self.from_rgb(img))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).squeeze(1)  # [B] logits
