"""A zoo of real GAN network patterns, small, written against an ``ops`` namespace.

``ops`` is anything with StyleGAN's ``torch_utils.ops`` layout: ``ops.bias_act.bias_act``,
``ops.bias_act.activation_funcs``, ``ops.upfirdn2d.{setup_filter, upfirdn2d, upsample2d,
downsample2d, filter2d}``, ``ops.filtered_lrelu.filtered_lrelu``. ``ganreg_ext.nvlabs`` is one
(the drop-in); :data:`ORIGINAL` below is another: the ORIGINAL SEMANTICS as eager PyTorch, FIR
filtering by zero insertion, pad/crop, a grouped depthwise ``conv2d`` and stride slicing (the way
StyleGAN's own reference does it), written from docs/blocks.md, not from NVIDIA's code.

The networks follow the papers (not any licensed code):

* :class:`StyleGAN2G`: Karras et al. 2020, *Analyzing and Improving the Image Quality of StyleGAN*
  (§2.2 modulation/demodulation, §4.1 skip generator): mapping network (lr multiplier 0.01),
  modulated/demodulated 3x3 convs (fused grouped-conv and non-fused paths), per-pixel noise with
  learned strength, skip toRGB with FIR upsampling of the running image (``img = img.add_(y)``),
  ``conv_clamp``, reduced-precision layers at the highest resolutions.
* :class:`StyleGAN2D`: the residual discriminator of the same paper: 1x1 skip conv (linear, no bias,
  gain sqrt(1/2)) added in place (``x = y.add_(x)``), FIR downsampling, minibatch stddev, epilogue.
* :class:`StyleGAN3Synthesis`: Karras et al. 2021, *Alias-Free GANs* (§3, App. F): filtered leaky
  ReLU layers with separable windowed-sinc (T) and radial jinc (R) filters, a critically sampled
  layer, toRGB with slope 1 and gain 1, paddings from the layer specs (odd, anisotropic here).
* :class:`R3GANNet`: Huang et al. 2024, *The GAN is dead; long live the GAN!*: residual blocks of
  1x1 → grouped 3x3 → 1x1 convs with biased leaky ReLU (gain 1), [1,2,1] resampling.

Half precision: a block built with ``half=torch.float16`` (or bfloat16) computes in it when the
network's parameters are float32 (mixed precision, as the originals); float64 parameters run every
block in float64 (StyleGAN's ``force_fp32`` for an exact comparison).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from helpers import ANCHOR_ACTS

# ================================================================ original semantics (eager)


_ACTS = ANCHOR_ACTS  # name → (f(z, alpha), default alpha, default gain)


def _bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="ref"):
    """``clamp(gain·f(x + b), ±clamp)`` in x's dtype, by plain torch ops (``torch.clamp``)."""
    f, def_alpha, def_gain = _ACTS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    if b is not None:
        x = x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = f(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _padding4(p):
    if isinstance(p, int):
        return p, p, p, p
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)


def _fsize(f):
    """(fw, fh) of a filter; None is [1]."""
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


_CPU = torch.device("cpu")
_SQRT2 = math.sqrt(2)


def _setup_filter(f, device=_CPU, normalize=True, flip_filter=False, gain=1, separable=None):
    """float32 filter: normalized to unit sum, 1-D → outer product unless separable (default:
    separable for 1-D with ≥ 8 taps), flipped if asked, scaled by gain^(ndim/2)."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="ref"):
    """Zero-insertion upsampling, pad (negative: crop), FIR by grouped depthwise conv2d with the
    flipped filter (a true convolution; ``flip_filter``: correlation), keep every down-th pixel."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    # (1) upsample: up-1 zeros after every pixel
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    # (2) pad, then crop the negative sides
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # (3) FIR filter (a 1-D f is separable: two passes of √gain each)
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        k = f[None, None].repeat(c, 1, 1)
        x = F.conv2d(x, k.unsqueeze(2), groups=c)
        x = F.conv2d(x, k.unsqueeze(3), groups=c)
    # (4) downsample
    return x[:, :, ::downy, ::downx]


def _upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="ref"):
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _fsize(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return _upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def _downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="ref"):
    dx, dy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _fsize(f)
    p = [px0 + (fw - dx + 1) // 2, px1 + (fw - dx) // 2, py0 + (fh - dy + 1) // 2, py1 + (fh - dy) // 2]
    return _upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def _filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="ref"):
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = _fsize(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return _upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def _filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=_SQRT2, slope=0.2, clamp=None,
                    flip_filter=False, impl="ref"):  # fmt: skip
    """StyleGAN3's reference: bias → upsample (gain upx·upy) → lrelu·gain, clamp → downsample."""
    upx, upy = _pair(up)
    x = _bias_act(x, b)
    x = _upfirdn2d(x, fu, up=up, padding=padding, flip_filter=flip_filter, gain=upx * upy)
    x = _bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return _upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


ORIGINAL = SimpleNamespace(
    bias_act=SimpleNamespace(
        bias_act=_bias_act,
        activation_funcs={k: SimpleNamespace(def_alpha=a, def_gain=g) for k, (_, a, g) in _ACTS.items()},
    ),
    upfirdn2d=SimpleNamespace(
        setup_filter=_setup_filter,
        upfirdn2d=_upfirdn2d,
        upsample2d=_upsample2d,
        downsample2d=_downsample2d,
        filter2d=_filter2d,
    ),  # fmt: skip
    filtered_lrelu=SimpleNamespace(filtered_lrelu=_filtered_lrelu),
)
"""The original semantics, eager (the truth the drop-in is compared with)."""


def _in_float32(fn):
    """``fn`` computed in float32 for float16/bfloat16 ``x`` (tensor arguments of x's dtype upcast),
    the result rounded once to x's dtype: the same semantics with the other legitimate rounding."""

    def wrapped(x, *args, **kwargs):
        if x.dtype not in (torch.float16, torch.bfloat16):
            return fn(x, *args, **kwargs)
        up = lambda a: a.float() if isinstance(a, torch.Tensor) and a.dtype == x.dtype else a  # noqa: E731
        return fn(x.float(), *map(up, args), **{k: up(v) for k, v in kwargs.items()}).to(x.dtype)

    return wrapped


ORIGINAL_F32MATH = SimpleNamespace(
    bias_act=SimpleNamespace(bias_act=_in_float32(_bias_act), activation_funcs=ORIGINAL.bias_act.activation_funcs),
    upfirdn2d=SimpleNamespace(
        setup_filter=_setup_filter,
        upfirdn2d=_in_float32(_upfirdn2d),
        upsample2d=_in_float32(_upsample2d),
        downsample2d=_in_float32(_downsample2d),
        filter2d=_in_float32(_filter2d),
    ),  # fmt: skip
    filtered_lrelu=SimpleNamespace(filtered_lrelu=_in_float32(_filtered_lrelu)),
)
""":data:`ORIGINAL` with half inputs computed in float32 and rounded once per op (a second sample
of the rounding error of a correct implementation, for the mixed-precision floor)."""


# ================================================================ shared layers


def _compute_dtype(module, half):
    """``half`` when the parameters are float32 and mixed precision is on, else the parameter dtype."""
    p = next(module.parameters()).dtype
    return half if half is not None and p == torch.float32 and getattr(module, "mixed", True) else p


def set_mixed_precision(net: nn.Module, on: bool) -> nn.Module:
    """Turn the float16/bfloat16 blocks of ``net`` on (as built) or off (all float32)."""
    for m in net.modules():
        m.mixed = on
    return net


def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """x / sqrt(mean(x²) + eps) along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def conv2d_resample(ops, x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True):
    """Convolution with FIR resampling (StyleGAN2 §4 / App. B): ``up=2``: a stride-2 transposed conv
    (zero insertion + TRUE convolution with ``w``) then the FIR filter (gain 4, padding that gives
    2H + 2·padding − (k−1)); ``down=2``: the FIR filter then a stride-2 conv (k > 1) or
    ``downsample2d`` then the conv (1x1); neither: a plain conv (``flip_weight=False``: true conv)."""
    o, ig, kh, kw = w.shape
    fw, _ = _fsize(f)
    if up == 1 and down == 1:
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=padding, groups=groups)
    if up == 2:
        assert down == 1 and not flip_weight
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, o // groups, ig, kh, kw).transpose(1, 2).reshape(groups * ig, o // groups, kh, kw)
        x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
        total = 2 * padding - 2 * kw + 2 + fw
        p0, p1 = total - total // 2, total // 2
        return ops.upfirdn2d.upfirdn2d(x, f, padding=[p0, p1, p0, p1], gain=4)
    assert down == 2 and up == 1 and flip_weight
    if kw == 1:
        return F.conv2d(ops.upfirdn2d.downsample2d(x, f), w, groups=groups)
    p0, p1 = padding + (fw - 1) // 2, padding + (fw - 2) // 2
    x = ops.upfirdn2d.upfirdn2d(x, f, padding=[p0, p1, p0, p1])
    return F.conv2d(x, w, stride=2, groups=groups)


def _bias(n, init=0.0):
    """A bias parameter: ``init`` plus a random offset (never zeros: the tests need every term)."""
    return nn.Parameter(init + 0.2 * torch.randn([n]))


class FC(nn.Module):
    """Equalized-lr fully connected layer: ``act((x·(W·lr/√in)ᵀ) + b·lr)``; linear uses addmm."""

    def __init__(self, cin, cout, act="linear", lr_mul=1.0, bias_init=0.0):
        super().__init__()
        self.act = act
        self.weight = nn.Parameter(torch.randn([cout, cin]) / lr_mul)
        self.bias = nn.Parameter((bias_init + 0.2 * torch.randn([cout])) / lr_mul)
        self.wg, self.bg = lr_mul / math.sqrt(cin), lr_mul

    def forward(self, x, ops):
        w = self.weight.to(x.dtype) * self.wg
        b = self.bias.to(x.dtype) * self.bg
        if self.act == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act.bias_act(x.matmul(w.t()), b, act=self.act)


class Conv(nn.Module):
    """Equalized-lr conv + bias_act (gain: the activation's default times the caller's ``gain``,
    clamp ``conv_clamp·gain``); FIR down/upsampling through :func:`conv2d_resample`."""

    def __init__(self, cin, cout, k, act="lrelu", bias=True, up=1, down=1, conv_clamp=None):
        super().__init__()
        self.act, self.up, self.down, self.pad, self.conv_clamp = act, up, down, k // 2, conv_clamp
        self.weight = nn.Parameter(torch.randn([cout, cin, k, k]))
        self.bias = _bias(cout) if bias else None
        self.wg = 1 / math.sqrt(cin * k * k)

    def forward(self, x, ops, f, gain=1.0):
        w = (self.weight * self.wg).to(x.dtype)
        x = conv2d_resample(ops, x, w, f, up=self.up, down=self.down, padding=self.pad, flip_weight=self.up == 1)
        b = None if self.bias is None else self.bias.to(x.dtype)
        act_gain = ops.bias_act.activation_funcs[self.act].def_gain * gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act.bias_act(x, b, act=self.act, gain=act_gain, clamp=clamp)


# ================================================================ StyleGAN2 generator


def modulated_conv2d(ops, x, weight, styles, noise=None, up=1, padding=0, f=None, demodulate=True, fused=True):
    """StyleGAN2 §2.2: w'_ijk = s_i·w_ijk, demodulated by 1/sqrt(Σ_ik w'² + 1e-8). ``fused``: one
    grouped conv with per-sample weights (noise added in place); else scale the input by s, conv
    with the shared weight, scale the output by the demodulation coefficients, add the noise.
    float16 inputs are pre-normalized (max-norm of weight and styles) to stay in range."""
    b = x.shape[0]
    o, i, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(b, 1, i, 1, 1)
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None
    flip = up == 1
    if fused:
        if demodulate:
            w = w * dcoefs.reshape(b, o, 1, 1, 1)
        x = x.reshape(1, b * i, *x.shape[2:])
        x = conv2d_resample(
            ops, x, w.reshape(b * o, i, kh, kw).to(x.dtype), f, up=up, padding=padding, groups=b, flip_weight=flip
        )
        x = x.reshape(b, o, *x.shape[2:])
        if noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x
    x = x * styles.to(x.dtype).reshape(b, i, 1, 1)
    x = conv2d_resample(ops, x, weight.to(x.dtype), f, up=up, padding=padding, flip_weight=flip)
    if demodulate and noise is not None:
        return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(b, o, 1, 1))
    if demodulate:
        return x * dcoefs.to(x.dtype).reshape(b, o, 1, 1)
    return x if noise is None else x.add_(noise.to(x.dtype))


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up) + per-pixel noise·strength + bias + lrelu (clamped)."""

    def __init__(self, cin, cout, w_dim, res, up=1, conv_clamp=None):
        super().__init__()
        self.res, self.up, self.conv_clamp = res, up, conv_clamp
        self.affine = FC(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn([cout, cin, 3, 3]))
        self.noise_strength = nn.Parameter(0.3 + 0.1 * torch.rand([]))  # learned; non-zero
        self.bias = _bias(cout)

    def forward(self, x, w, ops, f, gen, fused):
        styles = self.affine(w, ops)
        noise = torch.randn([x.shape[0], 1, self.res, self.res], generator=gen).to(x.device) * self.noise_strength
        x = modulated_conv2d(ops, x, self.weight, styles, noise, up=self.up, padding=1, f=f, fused=fused)
        gain = ops.bias_act.activation_funcs["lrelu"].def_gain
        return ops.bias_act.bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=gain, clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation, styles·1/√cin) + bias, linear, clamped."""

    def __init__(self, cin, w_dim, conv_clamp=None, channels=3):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FC(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn([channels, cin, 1, 1]))
        self.bias = _bias(channels)
        self.wg = 1 / math.sqrt(cin)

    def forward(self, x, w, ops, fused):
        styles = self.affine(w, ops) * self.wg
        x = modulated_conv2d(ops, x, self.weight, styles, demodulate=False, fused=fused)
        return ops.bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [const | conv0 (2x up)], conv1, toRGB; the running image
    is FIR-upsampled and the block's RGB added in place."""

    def __init__(self, cin, cout, w_dim, res, half=None, fused=True, conv_clamp=None):
        super().__init__()
        self.half, self.fused, self.res = half, fused, res
        if cin == 0:
            self.const = nn.Parameter(torch.randn([cout, res, res]))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, res, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, res, conv_clamp=conv_clamp)
        self.torgb = ToRGB(cout, w_dim, conv_clamp=conv_clamp)
        self.num_ws = 2 if cin == 0 else 3

    def forward(self, x, img, ws, ops, f, gen, img_dtype):
        dtype = _compute_dtype(self, self.half)
        it = iter(ws.unbind(1))
        if self.conv0 is None:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x.to(dtype), next(it), ops, f, gen, self.fused)
        x = self.conv1(x, next(it), ops, f, gen, self.fused)
        if img is not None:
            img = ops.upfirdn2d.upsample2d(img, f)
        y = self.torgb(x, next(it), ops, self.fused).to(img_dtype)
        img = img.add_(y) if img is not None else y
        return x, img


class StyleGAN2G(nn.Module):
    """Mapping (z → normalize → FC lrelu, lr 0.01 → w broadcast to ws) + skip synthesis 4 → 16 px:
    4 px fp32 fused modconv, 8 px bfloat16 non-fused, 16 px float16 non-fused (mixed precision)."""

    def __init__(self, ops, z_dim=8, w_dim=8, channels=(8, 6, 4), conv_clamp=256.0):
        super().__init__()
        self.z_dim = z_dim
        self.map = nn.ModuleList([FC(z_dim, w_dim, "lrelu", lr_mul=0.01), FC(w_dim, w_dim, "lrelu", lr_mul=0.01)])
        self.register_buffer("f", ops.upfirdn2d.setup_filter([1, 3, 3, 1]))
        c4, c8, c16 = channels
        self.blocks = nn.ModuleList([
            SynthesisBlock(0, c4, w_dim, 4, fused=True, conv_clamp=conv_clamp),
            SynthesisBlock(c4, c8, w_dim, 8, half=torch.bfloat16, fused=False, conv_clamp=conv_clamp),
            SynthesisBlock(c8, c16, w_dim, 16, half=torch.float16, fused=False, conv_clamp=conv_clamp),
        ])  # fmt: skip
        self.num_ws = sum(b.num_ws for b in self.blocks)

    def mapping(self, z, ops):
        x = normalize_2nd_moment(z)
        for layer in self.map:
            x = layer(x, ops)
        return x.unsqueeze(1).repeat([1, self.num_ws, 1])

    def synthesis(self, ws, ops, noise_seed):
        gen = torch.Generator().manual_seed(noise_seed)
        x = img = None
        k = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, k : k + block.num_ws], ops, self.f, gen, ws.dtype)
            k += block.num_ws
        return img

    def forward(self, z, ops, noise_seed):
        ws = self.mapping(z, ops)
        return self.synthesis(ws, ops, noise_seed), ws


# ================================================================ StyleGAN2 residual discriminator


class DBlock(nn.Module):
    """Residual D block: [fromRGB], y = skip(x, gain √½) (1x1, linear, no bias, 2x FIR down),
    x = conv1(conv0(x), gain √½) (3x3 lrelu, the second 2x FIR down), ``x = y.add_(x)``."""

    def __init__(self, cin, ctmp, cout, img_channels=3, half=None, conv_clamp=None):
        super().__init__()
        self.half = half
        self.fromrgb = Conv(img_channels, ctmp, 1, conv_clamp=conv_clamp) if cin == 0 else None
        self.conv0 = Conv(ctmp, ctmp, 3, conv_clamp=conv_clamp)
        self.conv1 = Conv(ctmp, cout, 3, down=2, conv_clamp=conv_clamp)
        self.skip = Conv(ctmp, cout, 1, act="linear", bias=False, down=2, conv_clamp=conv_clamp)

    def forward(self, x, img, ops, f):
        dtype = _compute_dtype(self, self.half)
        if self.fromrgb is not None:
            x = self.fromrgb(img.to(dtype), ops, f)
        x = x.to(dtype)
        y = self.skip(x, ops, f, gain=math.sqrt(0.5))
        x = self.conv0(x, ops, f)
        x = self.conv1(x, ops, f, gain=math.sqrt(0.5))
        return y.add_(x)


def minibatch_std(x, group_size, num_channels=1):
    """Append the stddev over groups of ``group_size`` samples (averaged over the channels of each of
    ``num_channels`` slices and the pixels) as ``num_channels`` extra feature maps."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, num_channels, c // num_channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])
    y = y.reshape(-1, num_channels, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class StyleGAN2D(nn.Module):
    """16 px image → residual blocks (16 px float16, 8 px bfloat16) → 4 px float32 epilogue:
    minibatch std (group 2), 3x3 conv, FC lrelu, FC → one logit per sample."""

    def __init__(self, ops, channels=(4, 6, 8), conv_clamp=256.0, mbstd_group=2):
        super().__init__()
        c16, c8, c4 = channels
        self.mbstd_group = mbstd_group
        self.register_buffer("f", ops.upfirdn2d.setup_filter([1, 3, 3, 1]))
        self.blocks = nn.ModuleList([
            DBlock(0, c16, c8, half=torch.float16, conv_clamp=conv_clamp),
            DBlock(c8, c8, c4, half=torch.bfloat16, conv_clamp=conv_clamp),
        ])  # fmt: skip
        self.conv = Conv(c4 + 1, c4, 3, conv_clamp=conv_clamp)
        self.fc = FC(c4 * 16, c4, "lrelu")
        self.out = FC(c4, 1)

    def forward(self, img, ops):
        x = None
        for block in self.blocks:
            x = block(x, img, ops, self.f)
        x = x.to(img.dtype)
        x = minibatch_std(x, self.mbstd_group)
        x = self.conv(x, ops, self.f)
        x = self.fc(x.flatten(1), ops)
        return self.out(x, ops)


# ================================================================ StyleGAN3 layers


def _kaiser_beta(numtaps, width, fs):
    """Kaiser's window β for a transition band ``width`` (Kaiser's attenuation estimate)."""
    a = 2.285 * (numtaps - 1) * math.pi * (width / (fs / 2)) + 7.95
    if a > 50:
        return 0.1102 * (a - 8.7)
    return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21) if a > 21 else 0.0


def lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """Alias-Free GANs App. C: Kaiser-windowed sinc (1-D, used separably) or, ``radial``, the
    jinc 2·fc·J1(2π·fc·r)/r·(unit-normalized) times the separable window (2-D). None for 1 tap."""
    if numtaps == 1:
        return None
    t = (torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2) / fs
    win = torch.kaiser_window(numtaps, periodic=False, beta=_kaiser_beta(numtaps, width, fs), dtype=torch.float64)
    if not radial:
        f = torch.sinc(2 * cutoff * t) * win
        return (f / f.sum()).float()
    r = torch.hypot(t[:, None], t[None, :])
    arg = 2 * math.pi * cutoff * r
    jinc = torch.where(r > 0, 2 * torch.special.bessel_j1(arg) / arg.clamp_min(1e-30), torch.ones_like(r))
    f = jinc * torch.outer(win, win)
    return (f / f.sum()).float()


class SG3Layer(nn.Module):
    """Alias-Free GANs §3.2: modulated conv (k×k, padding k−1, pre-normalized by RMS, demodulated,
    times an input gain) then ``filtered_lrelu`` (bias, ``up``x upsampling with ``fu``, leaky ReLU,
    ``down``x downsampling with ``fd``). The padding follows the layer spec: total
    ``(out−1)·down + 1 − (in + k − 1)·up + taps_u + taps_d − 2``, low side ``(total + up)//2``, per
    axis (so odd totals and W ≠ H give uneven, anisotropic paddings). toRGB: 1x1, no demodulation,
    styles·1/√cin, slope 1, gain 1."""

    def __init__(self, ops, cin, cout, w_dim, in_size, out_size, up=2, down=2, fu=None, fd=None, k=3,
                 torgb=False, half=None, conv_clamp=None):  # fmt: skip
        super().__init__()
        self.k, self.up, self.down, self.torgb, self.half, self.conv_clamp = k, up, down, torgb, half, conv_clamp
        self.affine = FC(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn([cout, cin, k, k]))
        self.bias = _bias(cout)
        self.register_buffer("input_gain", 0.8 + 0.4 * torch.rand([]))  # stands for the magnitude EMA
        self.register_buffer("fu", None if fu is None else ops.upfirdn2d.setup_filter(fu))
        self.register_buffer("fd", None if fd is None else ops.upfirdn2d.setup_filter(fd))
        tu = 1 if fu is None else fu.shape[0]
        td = 1 if fd is None else fd.shape[0]
        pad = []
        for i_n, o_n in zip(in_size, out_size):  # (width, height)
            total = (o_n - 1) * down + 1 - (i_n + k - 1) * up + tu + td - 2
            lo = (total + up) // 2
            pad += [lo, total - lo]
        self.padding = pad
        self.out_size = out_size

    def forward(self, x, w, ops):
        dtype = _compute_dtype(self, self.half)
        x = x.to(dtype)
        styles = self.affine(w, ops)
        b, (o, i) = x.shape[0], self.weight.shape[:2]
        weight = self.weight
        if self.torgb:
            styles = styles / math.sqrt(i * self.k * self.k)
        else:  # pre-normalize (keeps float16 in range; demodulation undoes the weight's scale)
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        wm = weight.unsqueeze(0) * styles.reshape(b, 1, i, 1, 1)
        if not self.torgb:
            wm = wm * (wm.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        wm = wm * self.input_gain.rsqrt()
        x = F.conv2d(
            x.reshape(1, b * i, *x.shape[2:]), wm.reshape(b * o, i, self.k, self.k).to(dtype), padding=self.k - 1, groups=b
        )
        x = x.reshape(b, o, *x.shape[2:])
        gain, slope = (1.0, 1.0) if self.torgb else (math.sqrt(2), 0.2)
        x = ops.filtered_lrelu.filtered_lrelu(x, self.fu, self.fd, self.bias.to(dtype), self.up, self.down, self.padding, gain=gain,
                                              slope=slope, clamp=self.conv_clamp)  # fmt: skip
        assert list(x.shape[2:]) == [self.out_size[1], self.out_size[0]], (x.shape, self.out_size)
        return x


class StyleGAN3Synthesis(nn.Module):
    """A learned input (stands for the Fourier features, W=8 x H=7) through StyleGAN3 layers with
    8-tap filters (the smallest separable ones; the paper's are 12): T (separable, 2x up 2x down,
    8x7 → 8x6), R (radial 2-D down filter, 8x6 → 7x5), T upsampling (4x up 2x down: the sampling
    rate doubles, 7x5 → 12x10), critically sampled (cutoff at the output Nyquist, float16 in mixed
    precision, 12x10 → 12x10), toRGB (1x1, slope 1, gain 1)."""

    def __init__(self, ops, w_dim=8, channels=(4, 4, 3, 3, 3), conv_clamp=256.0, taps=8):
        super().__init__()
        c0, c1, c2, c3, c4 = channels
        self.input = nn.Parameter(torch.randn([c0, 7, 8]))
        sr, hw = 4.0, 1.0  # sampling rate, transition half-width (cycles per unit)

        def lp(cut, fs, radial=False):
            return lowpass_filter(taps, cut, 2 * hw, fs, radial)

        self.layers = nn.ModuleList([
            SG3Layer(ops, c0, c1, w_dim, (8, 7), (8, 6), fu=lp(1.2, 2 * sr), fd=lp(1.2, 2 * sr), conv_clamp=conv_clamp),
            SG3Layer(ops, c1, c2, w_dim, (8, 6), (7, 5), fu=lp(1.2, 2 * sr), fd=lp(1.2, 2 * sr, True), conv_clamp=conv_clamp),
            SG3Layer(ops, c2, c3, w_dim, (7, 5), (12, 10), up=4, fu=lp(1.5, 4 * sr), fd=lp(1.5, 4 * sr), conv_clamp=conv_clamp),
            SG3Layer(ops, c3, c4, w_dim, (12, 10), (12, 10), fu=lp(sr, 4 * sr), fd=lp(sr, 4 * sr), half=torch.float16,
                     conv_clamp=conv_clamp),
            SG3Layer(ops, c4, 3, w_dim, (12, 10), (12, 10), up=1, down=1, k=1, torgb=True, conv_clamp=conv_clamp),
        ])  # fmt: skip
        self.num_ws = len(self.layers)

    def forward(self, ws, ops):
        x = self.input.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        for layer, w in zip(self.layers, ws.unbind(1)):
            x = layer(x, w, ops)
        return x.to(ws.dtype)


# ================================================================ R3GAN


class R3Conv(nn.Module):
    """Bias-free conv (variance-scaled weights; R3GAN puts the bias in the activation)."""

    def __init__(self, cin, cout, k, groups=1):
        super().__init__()
        self.groups, self.pad = groups, k // 2
        self.weight = nn.Parameter(torch.randn([cout, cin // groups, k, k]) / math.sqrt(cin // groups * k * k))

    def forward(self, x):
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.pad, groups=self.groups)


class R3Residual(nn.Module):
    """x + conv1x1(act(gconv3x3(act(conv1x1(x))))), act = bias_act lrelu with gain 1."""

    def __init__(self, c, cardinality=2, expansion=2):
        super().__init__()
        e = c * expansion
        self.l1, self.l2, self.l3 = R3Conv(c, e, 1), R3Conv(e, e, 3, groups=cardinality), R3Conv(e, c, 1)
        self.b1, self.b2 = _bias(e), _bias(e)

    def forward(self, x, ops):
        y = ops.bias_act.bias_act(self.l1(x), self.b1.to(x.dtype), act="lrelu", gain=1)
        y = ops.bias_act.bias_act(self.l2(y), self.b2.to(x.dtype), act="lrelu", gain=1)
        return x + self.l3(y)


class R3GANNet(nn.Module):
    """R3GAN-style stages on a [B, 4, 8, 8] input: residual block, downsample2d([1,2,1]) + 1x1
    transition, residual block (4x4), 1x1 transition + upsample2d([1,2,1]), residual block; the
    output times a fixed probe summed per sample is the 'logit'."""

    def __init__(self, ops, c=4, c2=6):
        super().__init__()
        self.register_buffer("f", ops.upfirdn2d.setup_filter([1, 2, 1]))
        self.r0, self.r1, self.r2 = R3Residual(c), R3Residual(c2), R3Residual(c)
        self.down, self.up = R3Conv(c, c2, 1), R3Conv(c2, c, 1)
        self.register_buffer("probe", torch.randn([c, 8, 8]))

    def forward(self, x, ops):
        x = self.r0(x, ops)
        x = self.down(ops.upfirdn2d.downsample2d(x, self.f))
        x = self.r1(x, ops)
        x = ops.upfirdn2d.upsample2d(self.up(x), self.f)
        x = self.r2(x, ops)
        return (x * self.probe.to(x.dtype)).sum([1, 2, 3]).unsqueeze(1)
