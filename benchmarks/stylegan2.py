"""End to end: a compact StyleGAN2 generator and residual discriminator built on ``gx.bias_act`` and
``gx.upsample2d`` / ``gx.downsample2d`` / ``gx.filter2d``, run with the SAME weights once on the eager
``reference`` blocks and once on a fused backend; the two regularized training steps are timed
interleaved, their peak memory measured and every parameter gradient compared.

    python -m benchmarks stylegan2 [--sizes 64,256] [--reps N] [--threads T] [--out DIR]

Output (``--out``, default ``benchmarks/results/<device-slug>/stylegan2/``): ``results.csv``,
``results.md`` (the table, the method, and the top operators of one step of each kind); the table
is printed too.

The networks (Karras et al. 2020, *Analyzing and Improving the Image Quality of StyleGAN*; written from
the paper and the math, equalized learning rate everywhere, ``[1, 3, 3, 1]`` FIR filter; every bias
starts at ``N(0, BIAS_STD²)`` (plus 1 for the affine layers) and every noise strength at
``NOISE_STRENGTH``, so neither is a no-op):

- **G, mapping**: ``z`` normalized to unit second moment, ``mapping_layers`` FC layers (learning-rate
  multiplier 0.01) each ``bias_act(lrelu)``; ``w`` broadcast to ``num_ws = 2·log2(res) − 2`` styles.
- **G, synthesis** (skip architecture): a learned 4×4 constant; per resolution a modulated 3×3 conv
  (with 2× upsampling from 8×8 on), a modulated 3×3 conv and a toRGB 1×1 conv; the image so far is
  ``upsample2d``-ed and the new toRGB output added. A modulated conv: styles ``s = affine(w)`` (FC,
  bias initialized to 1), demodulation ``d[n, o] = (Σ_{i,k} (W[o, i, k]·s[n, i])² + 1e-8)^(-1/2)``,
  applied to the activations as StyleGAN2 trains (``conv(x·s, W)·d``, equal to the per-sample
  convolution with the modulated, demodulated weights); then per-pixel noise ``·noise_strength``
  (one ``[N, 1, H, W]`` image per layer, drawn from a seeded generator so both backends see the same;
  strength ``NOISE_STRENGTH``)
  and ``bias_act(lrelu, gain √2, clamp 256)``. toRGB: no demodulation, linear ``bias_act`` (clamp 256).
- **Upsampling conv** (StyleGAN2's ``conv2d_resample`` fast path): a stride-2 transposed convolution
  with the flipped kernel (= zero insertion, then the 3×3 conv), then ``filter2d`` with gain 4 and
  padding ``[-1, 0, -1, 0]`` (``2H + 1 → 2H``). This equals the combined 6×6 kernel ``W * f`` on the
  zero-inserted input with no intermediate crop; it costs the 3×3 conv at the low resolution.
- **D** (residual architecture): fromRGB (1×1 conv, lrelu) at the top; per resolution down to 8×8
  a 3×3 conv + lrelu, then a downsampling 3×3 conv + lrelu (as StyleGAN2's ``conv2d_resample``:
  ``upfirdn2d`` with padding 2 at full resolution, then the 3×3 conv with stride 2), the skip
  ``downsample2d`` + 1×1 conv without bias; both branches scaled by √½ and added. At 4×4:
  minibatch standard deviation (group 4, one feature), 3×3 conv + lrelu, FC + lrelu, FC → 1 logit.

Steps (NVlabs ``training/loss.py``, without the optimizer, which is the same for both backends):

- **D step, R1** on B reals: ``x.requires_grad_()``, ``logits = D(x)``,
  ``grads = autograd.grad(logits.sum(), x, create_graph=True)``,
  ``loss = softplus(−logits).mean() + gx.r1_penalty(grads, γ=10)``, ``loss.backward()``.
- **G step, path length** on B/2 latents: ``img, ws = G(z)``,
  ``loss = gx.PathLengthRegularizer(img, ws, seed)`` (noise-dot, ``autograd.grad(create_graph=True)``
  w.r.t. the broadcast ``ws``, penalty), ``loss.backward()`` into the synthesis and the mapping.

Measurements, per (step, size): ms per step, the median of ``--reps`` steps after ``--warmup``,
reference and fused **interleaved** (one step of each per round, the order alternating, warm-up
rounds first: ``timing.interleaved``) in the same process; peak memory, the extra bytes at the peak of one step (``timing.peak_memory_bytes``:
``torch.profiler`` with ``profile_memory=True``, its allocation/free records replayed in time order,
plus the peak of ganreg_ext's CPU reuse cache, which the profiler never sees, docs/memory.md;
PyTorch has no CPU allocator statistics and max RSS is monotonic); the gradients: one step from the
same weights and inputs per backend, for every parameter ``max|g_fused − g_ref| / max|g_ref|``, the
worst reported, next to the same error of the float32 reference against a float64 reference run
(the float32 noise floor of the step); the convolution-bound limit (the speed-up if every
non-convolution op took no time) and the share of it reached, and would be reached with the
package's ops at their memory floor (``op_bytes`` at ``cold_bandwidth``) or free.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import ganreg_ext as gx

from . import report
from . import timing as T
from .checks import fused_backends, rel_err, worst_rel

SQRT2, SQRT_HALF = math.sqrt(2.0), math.sqrt(0.5)
CLAMP = 256.0  # StyleGAN2's conv_clamp
BIAS_STD = 0.1  # biases start random (trained networks have non-zero biases), not at StyleGAN2's zeros
NOISE_STRENGTH = 0.1  # per-layer noise strength (StyleGAN2 starts at 0; trained values are non-zero)
STEPS = {"d_r1": "D step: softplus + R1", "g_pl": "G step: path length"}
FIELDS = [
    "step", "size", "batch", "channels", "params", "threads", "fused_backend", "reps",
    "ref_ms", "ref_q1_ms", "ref_q3_ms", "fused_ms", "fused_q1_ms", "fused_q3_ms", "speedup",
    "ref_peak_mib", "fused_peak_mib", "max_grad_rel_err", "worst_param", "loss_rel_err", "f32_floor_rel_err", "floor_worst_param", "f64_rel_err",
    "conv_ms", "conv_calls", "limit_speedup", "pct_of_limit", "pct_ops_at_floor", "pct_ops_free", "ref_conv_ms",
    "conv_prof_ms", "fused_prof_ms", "ganreg_prof_ms", "ops_floor_ms", "cold_gbs", "ref_prof_ms",
]  # fmt: skip


# ------------------------------------------------------------------------------------ layers


def fir_filter() -> torch.Tensor:
    return gx.setup_filter([1, 3, 3, 1])


class FC(nn.Module):
    """Equalized-lr fully connected layer: ``bias_act(x·(W·lr_mul/√in)ᵀ, b·lr_mul, act)``."""

    def __init__(self, cin: int, cout: int, act: str = "linear", lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)) + BIAS_STD * torch.randn(cout) / lr_mul)
        self.act, self.lr_mul, self.wgain = act, lr_mul, lr_mul / math.sqrt(cin)

    def forward(self, x, backend):
        return gx.bias_act(x.matmul((self.weight * self.wgain).t()), self.bias * self.lr_mul, act=self.act, backend=backend)


class ModConv(nn.Module):
    """Modulated, demodulated 3×3 conv (optionally 2× upsampling), noise, ``bias_act(lrelu)``."""

    def __init__(self, cin: int, cout: int, w_dim: int, up: bool):
        super().__init__()
        self.affine = FC(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(BIAS_STD * torch.randn(cout))
        self.noise_strength = nn.Parameter(torch.tensor(NOISE_STRENGTH))
        self.up = up

    def forward(self, x, w, f, backend, gen):
        s = self.affine(w, backend)  # [N, cin]
        d = (s.square().matmul(self.weight.square().sum([2, 3]).t()) + 1e-8).rsqrt()  # [N, cout]
        x = x * s[:, :, None, None]
        if self.up:  # transposed conv = zero insertion + conv with W; then the FIR filter (gain 4)
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1).flip([2, 3]), stride=2)
            x = gx.filter2d(x, f, padding=[-1, 0, -1, 0], gain=4, backend=backend)
        else:
            x = F.conv2d(x, self.weight, padding=1)
        x = x * d[:, :, None, None]
        # drawn in float32 and converted: a float64 run sees the same noise
        noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], generator=gen).to(x)
        x = x + noise * self.noise_strength
        return gx.bias_act(x, self.bias, act="lrelu", clamp=CLAMP, backend=backend)


class ToRGB(nn.Module):
    """Modulated 1×1 conv to RGB without demodulation, linear ``bias_act``."""

    def __init__(self, cin: int, w_dim: int):
        super().__init__()
        self.affine = FC(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(3, cin, 1, 1))
        self.bias = nn.Parameter(BIAS_STD * torch.randn(3))
        self.sgain = 1 / math.sqrt(cin)

    def forward(self, x, w, backend):
        s = self.affine(w, backend) * self.sgain
        return gx.bias_act(F.conv2d(x * s[:, :, None, None], self.weight), self.bias, clamp=CLAMP, backend=backend)


class Conv(nn.Module):
    """Equalized-lr conv, ``bias_act`` (gain·√2 for lrelu, clamp·gain). With ``down`` (StyleGAN2's
    ``conv2d_resample``): a k×k kernel filters at full resolution (``upfirdn2d`` padding 2, output
    ``H + 1``) and convolves with stride 2; a 1×1 kernel ``downsample2d``-s first."""

    def __init__(self, cin: int, cout: int, k: int, act: str = "lrelu", down: bool = False, bias: bool = True, gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(BIAS_STD * torch.randn(cout)) if bias else None
        self.act, self.down, self.gain = act, down, gain
        self.wgain = 1 / math.sqrt(cin * k * k) * (1.0 if bias else gain)  # no bias: the gain folds into W

    def forward(self, x, f, backend):
        k = self.weight.shape[-1]
        if self.down and k > 1:
            x = gx.upfirdn2d(x, f, padding=(f.shape[-1] - 1) // 2 + k // 2, backend=backend)
            x = F.conv2d(x, self.weight * self.wgain, stride=2)
        else:
            if self.down:
                x = gx.downsample2d(x, f, backend=backend)
            x = F.conv2d(x, self.weight * self.wgain, padding=k // 2)
        if self.bias is None:
            return x
        act_gain = SQRT2 if self.act == "lrelu" else 1.0
        return gx.bias_act(x, self.bias, act=self.act, gain=act_gain * self.gain, clamp=CLAMP * self.gain, backend=backend)


# ------------------------------------------------------------------------------------ networks


def channels(res: int, size: int, cmax: int) -> int:
    """Width at resolution ``res``: ``cmax``, halved at the output resolution."""
    return max(cmax // 2, 1) if res == size else cmax


class Generator(nn.Module):
    """Mapping + skip-architecture synthesis; ``forward(z, backend, gen)`` → ``(img, ws)``."""

    def __init__(self, size: int, cmax: int, z_dim: int = 128, w_dim: int = 128, mapping_layers: int = 4):
        super().__init__()
        self.z_dim, self.log2 = z_dim, int(math.log2(size))
        self.num_ws = 2 * self.log2 - 2
        self.mapping = nn.ModuleList(
            [FC(z_dim if i == 0 else w_dim, w_dim, act="lrelu", lr_mul=0.01) for i in range(mapping_layers)]
        )
        c4 = channels(4, size, cmax)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.conv4 = ModConv(c4, c4, w_dim, up=False)
        self.rgb4 = ToRGB(c4, w_dim)
        self.blocks = nn.ModuleList()
        for r in range(3, self.log2 + 1):
            cin, cout = channels(2 ** (r - 1), size, cmax), channels(2**r, size, cmax)
            self.blocks.append(
                nn.ModuleList([ModConv(cin, cout, w_dim, up=True), ModConv(cout, cout, w_dim, up=False), ToRGB(cout, w_dim)])
            )
        self.register_buffer("f", fir_filter())

    def forward(self, z, backend, gen):
        w = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for layer in self.mapping:
            w = layer(w, backend)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        x = self.const.unsqueeze(0).expand(z.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], self.f, backend, gen)
        img = self.rgb4(x, ws[:, 1], backend)
        for i, (conv0, conv1, torgb) in enumerate(self.blocks):
            x = conv0(x, ws[:, 2 * i + 1], self.f, backend, gen)
            x = conv1(x, ws[:, 2 * i + 2], self.f, backend, gen)
            img = gx.upsample2d(img, self.f, backend=backend) + torgb(x, ws[:, 2 * i + 3], backend)
        return img, ws


class Discriminator(nn.Module):
    """Residual D; ``forward(img, backend)`` → logits ``[N, 1]``."""

    def __init__(self, size: int, cmax: int, mbstd_group: int = 4):
        super().__init__()
        self.mbstd_group = mbstd_group
        self.fromrgb = Conv(3, channels(size, size, cmax), 1)
        self.blocks = nn.ModuleList()
        for r in range(int(math.log2(size)), 2, -1):
            cin, cout = channels(2**r, size, cmax), channels(2 ** (r - 1), size, cmax)
            self.blocks.append(
                nn.ModuleList(
                    [
                        Conv(cin, cin, 3),
                        Conv(cin, cout, 3, down=True, gain=SQRT_HALF),
                        Conv(cin, cout, 1, down=True, bias=False, gain=SQRT_HALF),
                    ]
                )
            )
        c4 = channels(4, size, cmax)
        self.conv = Conv(c4 + 1, c4, 3)
        self.fc = FC(c4 * 16, c4, act="lrelu")
        self.out = FC(c4, 1)
        self.register_buffer("f", fir_filter())

    def minibatch_std(self, x):
        """Per group of ``G`` samples: the std over the group of every feature, averaged over
        features and pixels, appended as one constant channel."""
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        y = x.reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])  # [n // g]
        y = y.reshape(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], 1)

    def forward(self, img, backend):
        x = self.fromrgb(img, self.f, backend)
        for conv0, conv1, skip in self.blocks:
            y = skip(x, self.f, backend)
            x = conv1(conv0(x, self.f, backend), self.f, backend) + y
        x = self.conv(self.minibatch_std(x), self.f, backend)
        return self.out(self.fc(x.flatten(1), backend), backend)


# ------------------------------------------------------------------------------------ steps


class Step:
    """One regularized step of ``kind`` ("d_r1" | "g_pl") on ``model`` with a backend; fixed inputs
    and noise seeds, so every call with the same weights computes the same thing."""

    def __init__(self, kind: str, model: nn.Module, data: torch.Tensor):
        self.kind, self.model, self.data = kind, model, data
        self.pl = {}

    def loss(self, backend: str):
        if self.kind == "d_r1":
            x = self.data.detach().requires_grad_(True)
            logits = self.model(x, backend)
            (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            return F.softplus(-logits).mean() + gx.r1_penalty(grads, gamma=10.0, backend=backend)
        if backend not in self.pl:
            self.pl[backend] = gx.PathLengthRegularizer(decay=0.01, weight=2.0, backend=backend)
        img, ws = self.model(self.data, backend, torch.Generator().manual_seed(2))
        return self.pl[backend](img, ws, seed=1234)

    def __call__(self, backend: str):
        self.model.zero_grad(set_to_none=True)
        loss = self.loss(backend)
        loss.backward()
        return loss.detach()

    def grads(self, backend: str):
        """(loss, {name: gradient}) of one step from a zero path-length mean. A parameter the loss
        does not depend on (toRGB biases under the path length) gets zeros: whether autograd links
        it at all differs between backends (the fused ``bias_act_grad`` takes the bias as an input)."""
        for pl in self.pl.values():
            pl.pl_mean.zero_()
        loss = self(backend)
        return loss, {
            n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in self.model.named_parameters()
        }


def make_step(kind: str, size: int, cmax: int, batch: int) -> Step:
    """Seeded weights; B reals (D step) or B/2 latents (G step)."""
    torch.manual_seed(0)
    if kind == "d_r1":
        return Step(kind, Discriminator(size, cmax), torch.randn(batch, 3, size, size))
    model = Generator(size, cmax)
    return Step(kind, model, torch.randn(max(batch // 2, 1), model.z_dim))


def compare_grads(step: Step, fused: str) -> dict:
    """Gradient errors of one step, each the worst over the parameters: fused vs reference in
    float32; the float32 reference vs a float64 reference of the same weights (the float32 floor);
    fused vs reference in float64 (the math alone, without float32 rounding)."""
    loss_r, g_r = step.grads("reference")
    loss_f, g_f = step.grads(fused)
    step64 = Step(step.kind, copy.deepcopy(step.model).double(), step.data.double())
    _, g64 = step64.grads("reference")
    _, g64_f = step64.grads(fused)

    err, name = worst_rel(g_f, g_r)
    floor, floor_name = worst_rel(g_r, g64)
    return {
        "max_grad_rel_err": err,
        "worst_param": name,
        "loss_rel_err": rel_err(loss_f, loss_r),
        "f32_floor_rel_err": floor,
        "floor_worst_param": floor_name,
        "f64_rel_err": worst_rel(g64_f, g64)[0],
    }


CONV_OPS = ("aten::conv", "aten::_conv", "aten::mkldnn_conv", "aten::slow_conv", "aten::thnn_conv", "aten::cudnn_conv")


def is_conv(name: str) -> bool:
    """A convolution op of PyTorch (forward, transposed, backward, double backward)."""
    return name.startswith(CONV_OPS)


def conv_time_ms(events) -> tuple[float, int]:
    """(ms, count) of the outermost convolution events of a profile (forward and backward convolutions;
    nested ones, e.g. ``aten::conv2d → aten::convolution → aten::mkldnn_convolution``, counted once)."""
    total, n = 0.0, 0
    for e in events:
        if not is_conv(e.name):
            continue
        p = e.cpu_parent
        while p is not None and not is_conv(p.name):
            p = p.cpu_parent
        if p is None:
            total += e.time_range.elapsed_us()
            n += 1
    return total / 1e3, n


def top_ops(step: Step, backend: str, k: int, tries: int = 3) -> dict:
    """Self CPU time of one step under torch.profiler, the least disturbed (smallest total) of
    ``tries`` steps: ``top`` = the ``k`` operators with the most (name, self ms, calls),
    ``total_ms`` over every operator, ``ganreg_ms`` of the ``ganreg*`` ops, ``conv_ms`` (``conv_calls``)
    the wall time of the outermost convolution ops (:func:`conv_time_ms`), ``wall_ms`` of the step."""
    from torch.profiler import ProfilerActivity, profile

    best = None
    for _ in range(tries):
        with T.quiet_fds(), profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            step(backend)
            wall = (time.perf_counter() - t0) * 1e3
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows) / 1e3
        if best is None or total < best["total_ms"]:
            conv_ms, conv_calls = conv_time_ms(prof.events())
            best = {
                "top": [(e.key, e.self_cpu_time_total / 1e3, e.count) for e in rows[:k]],
                "total_ms": total,
                "wall_ms": wall,
                "ganreg_ms": sum(e.self_cpu_time_total for e in rows if e.key.startswith("ganreg")) / 1e3,
                "conv_ms": conv_ms,
                "conv_calls": conv_calls,
            }
    return best


# ------------------------------------------------------------------------------------ driver


def op_bytes(step: Step, backend: str) -> int:
    """Bytes of every tensor argument (tensor lists included) and output of the ``ganreg_C`` ops of one
    step (a ``TorchDispatchMode`` sees the calls made by the C++ autograd too): what the package's ops
    must at least move if each is a separate call reading its inputs and writing its output once."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def nbytes(a) -> int:
        if isinstance(a, torch.Tensor):
            return a.numel() * a.element_size()
        return sum(nbytes(t) for t in a) if isinstance(a, (list, tuple)) else 0

    total = 0

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            nonlocal total
            out = func(*args, **(kwargs or {}))
            if func.namespace == "ganreg_C":
                total += nbytes(list(args) + list((kwargs or {}).values())) + nbytes(out)
            return out

    with Count():
        step(backend)
    return total


def cold_bandwidth(mib: int = 16, sets: int = 12, rounds: int = 5) -> float:
    """Bytes/s of ``torch.mul(a, b, out=c)`` on ``mib`` MiB float32 tensors not in cache (``sets``
    triples visited in turn, 3·sets·mib MiB in all, far above any L3), median of every call: the memory
    floor rate used for the package's ops (two inputs and one output, as ``bias_act_grad``)."""
    n = mib * 2**18
    g = torch.Generator().manual_seed(0)
    abc = [
        (torch.empty(n).uniform_(1, 2, generator=g), torch.empty(n).uniform_(1, 2, generator=g), torch.empty(n))
        for _ in range(sets)
    ]
    times = []
    for _ in range(rounds):
        for a, b, c in abc:
            t0 = time.perf_counter()
            torch.mul(a, b, out=c)
            times.append(time.perf_counter() - t0)
    return 3 * n * 4 / sorted(times)[len(times) // 2]


def blocks_backend(device: torch.device) -> str | None:
    """The first fused backend running natively on ``device`` (never the Triton interpreter) that
    has the blocks (``bias_act`` with its double backward, ``upfirdn2d``), else None."""
    x = torch.randn(2, 3, 4, 4, device=device, requires_grad=True)
    f = fir_filter().to(device)
    for b in fused_backends(device):
        try:
            y = gx.upsample2d(gx.bias_act(x, act="lrelu", backend=b), f, backend=b)
            (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
            g.sum().backward()
        except (gx.BackendUnavailable, NotImplementedError, RuntimeError):
            continue
        return b
    return None


def config(size: int, channels_max: int | None, batch: int | None) -> tuple[int, int]:
    """(max channels, batch): 64 channels, batch 8 up to 64 px; 32 channels, batch 4 above."""
    cmax, b = (64, 8) if size <= 64 else (32, 4)
    return channels_max or cmax, batch or b


def measure(args, kind: str, size: int, fused: str) -> tuple[dict, dict]:
    """One (step, size): gradients compared, interleaved timing, peak memory, top operators → (row, profile)."""
    cmax, batch = config(size, args.channels, args.batch)
    step = make_step(kind, size, cmax, batch)
    nparams = sum(p.numel() for p in step.model.parameters())
    label = f"{STEPS[kind]} {size}px"
    print(f"[{label}] B{batch} ch≤{cmax} {nparams / 1e3:.0f}k params: gradients ...", flush=True)
    cmp = compare_grads(step, fused)
    print(f"[{label}] timing {args.reps} reps interleaved ...", flush=True)
    st = T.interleaved({"ref": lambda: step("reference"), "fused": lambda: step(fused)}, args.reps, args.warmup)
    t = {n: (s.median_ms, s.q1_ms, s.q3_ms) for n, s in st.items()}
    peak = {}
    if not args.no_memory:
        for name, b in (("ref", "reference"), ("fused", fused)):
            nbytes = T.peak_memory_bytes(lambda _, b=b: step(b), torch.device("cpu"))
            peak[name] = nbytes / 2**20 if nbytes is not None else None
    # the convolution-bound limit: the network's convolutions are PyTorch's on both paths; the fused
    # step's profile holds no other convolution (the reference's FIR filters are depthwise conv2d too)
    profile = {b: top_ops(step, b, max(args.profile, 1), args.profile_tries) for b in ("reference", fused)}
    # conv share of the fused step, both from the same profiled step (a shared machine's load moves
    # every time, so a ratio within one run is what holds); the conv time of a timed step is that share
    conv_p, wall_p, ops_p = profile[fused]["conv_ms"], profile[fused]["wall_ms"], profile[fused]["ganreg_ms"]
    share = conv_p / wall_p
    # the package's ops at their memory floor (each call's bytes once at the cold bandwidth), and free
    floor_ms = op_bytes(step, fused) / args.cold_bw * 1e3
    conv_ms = share * t["fused"][0]
    limit = t["ref"][0] / conv_ms if conv_ms > 0 else None
    row = {
        "step": STEPS[kind], "size": size, "batch": batch if kind == "d_r1" else max(batch // 2, 1),
        "channels": cmax, "params": nparams, "threads": torch.get_num_threads(), "fused_backend": fused,
        "reps": args.reps, "ref_ms": t["ref"][0], "ref_q1_ms": t["ref"][1], "ref_q3_ms": t["ref"][2],
        "fused_ms": t["fused"][0], "fused_q1_ms": t["fused"][1], "fused_q3_ms": t["fused"][2],
        "speedup": t["ref"][0] / t["fused"][0], "ref_peak_mib": peak.get("ref"), "fused_peak_mib": peak.get("fused"),
        **cmp, "conv_ms": conv_ms, "conv_calls": profile[fused]["conv_calls"], "limit_speedup": limit,
        "pct_of_limit": None if limit is None else 100 * t["ref"][0] / t["fused"][0] / limit,
        "pct_ops_at_floor": 100 * conv_p / (wall_p - ops_p + floor_ms), "pct_ops_free": 100 * conv_p / (wall_p - ops_p),
        "ops_floor_ms": floor_ms, "cold_gbs": args.cold_bw / 1e9,
        "conv_prof_ms": conv_p, "fused_prof_ms": wall_p, "ganreg_prof_ms": ops_p,
        "ref_prof_ms": profile["reference"]["wall_ms"],
        "ref_conv_ms": profile["reference"]["conv_ms"],
    }  # fmt: skip
    print(table([row], header=False), flush=True)
    return row, profile if args.profile else {}


def run(args) -> tuple[list[dict], dict]:
    """Every (size, step) of ``args`` → (CSV rows, {(step, size): top operators per backend})."""
    device = torch.device("cpu")
    fused = args.fused or blocks_backend(device)
    if fused is None:
        raise SystemExit(f"no fused backend with the blocks on {device.type} (available: {gx.available_backends()})")
    rows, profiles = [], {}
    for size in args.sizes:
        for kind in args.steps:
            row, profiles[(kind, size)] = measure(args, kind, size, fused)
            rows.append(row)
    return rows, {k: v for k, v in profiles.items() if v}


def table(rows: list[dict], header: bool = True) -> str:
    fs, lines = report.fmt_spec, []
    if header:
        lines += [
            "| step | size | batch | ref ms | fused ms | speed-up | conv ms | limit | % of limit | ops at floor | ops free | ref peak MiB | fused peak MiB | max grad rel err | f32 floor | f64 err |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['size']}² | {r['batch']} | {fs(r['ref_ms'], '.0f')} | {fs(r['fused_ms'], '.0f')} | "
            f"{fs(r['speedup'], '.2f')}× | {fs(r['conv_ms'], '.0f')} | {fs(r['limit_speedup'], '.2f')}× | "
            f"{fs(r['pct_of_limit'], '.0f')}% | {fs(r['pct_ops_at_floor'], '.0f')}% | {fs(r['pct_ops_free'], '.0f')}% | {fs(r['ref_peak_mib'], '.1f')} | {fs(r['fused_peak_mib'], '.1f')} | "
            f"{fs(r['max_grad_rel_err'], '.1e')} | {fs(r['f32_floor_rel_err'], '.1e')} | {fs(r['f64_rel_err'], '.1e')} |"
        )
    return "\n".join(lines)


def write(out: Path, rows: list[dict], env: dict, profiles: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(out / "results.csv", FIELDS, rows)
    md = [
        "# StyleGAN2 end to end: regularized steps, eager reference blocks vs fused",
        "",
        f"{env['date']} · {env['device']} · torch {env['torch']} · {env['threads']} threads · fused backend "
        f"`{env['fused']}` · load average {env['load_start']:.2f} at the start, {env['load_end']:.2f} at the end "
        f"· {env['elapsed_s']:.0f} s",
        "",
        "`python -m benchmarks.stylegan2 " + env["argv"] + "`. The load averages above include this run's own "
        "threads (a load above them means other jobs shared the machine and the absolute times are inflated); "
        "reference and fused steps are interleaved in the same run, so the speed-up is the figure to read "
        "(see the quartiles in `results.csv`).",
        "",
        table(rows),
        "",
        "- **ms**: median of the reps after warm-up (one step of each backend per round, alternating order); "
        "a step = forward, the `create_graph` gradient, the penalty and `backward()` into every parameter "
        "(no optimizer). **ref** = the eager `reference` blocks: `bias_act` in torch ops, FIR filtering by "
        "depthwise (grouped) `conv2d` as StyleGAN's own reference filters.",
        "- **conv ms**: time of the network's convolutions in a fused step: their share of one profiled fused "
        "step (wall time of the outermost forward, transposed, backward and double-backward convolution ops / "
        "the step's wall time, same profiled step, least disturbed of `--profile-tries`; the fused step has no "
        "other convolution) times the fused ms. They are PyTorch's on both paths, so **limit** = ref ms / conv ms "
        "is the speed-up if everything else took no time, and **% of limit** = speed-up / limit (= that conv share). "
        "**ops free**: the % of limit the same profiled fused step would reach if this package's `ganreg*` ops "
        "took no time (conv time / (step wall time − their self time)): the most any implementation of these ops "
        "could give; the rest is the network's own PyTorch work, run the same way on both paths. **ops at floor**: "
        f"the same with the `ganreg*` ops at their memory floor instead of free: every byte of their calls' tensor "
        f"arguments and outputs moved once at {env['cold_gbs']:.1f} GB/s, the rate of `torch.mul` on tensors not in "
        "cache measured at the start of this run (`ops_floor_ms`, `cold_gbs` in `results.csv`): what separate calls "
        "of these ops could give at best. "
        "`results.csv` has the raw profile times (`conv_prof_ms`, `fused_prof_ms`, `ganreg_prof_ms`, `ref_prof_ms`).",
        "- **peak MiB**: extra memory at the peak of one step (torch.profiler `profile_memory` records replayed in time order).",
        "- **max grad rel err**: over every parameter, `max|g_fused − g_ref| / max|g_ref|`, one step from the "
        "same weights, inputs, noise and seeds (worst parameter in `results.csv`); **f32 floor**: the same error "
        "of the float32 reference against a float64 reference run (what float32 alone costs); **f64 err**: fused "
        "vs reference with the model and inputs in float64 (the math without float32 rounding; the fused "
        "path-length noise is generated in float32, docs/semantics.md#path-length-regularization-stylegan2, hence ~1e-7 and not 1e-15 in the G step). "
        "A float32 error far above the floor while the float64 one is small comes from a pre-activation within "
        "rounding of the leaky ReLU's kink (its derivative jumps from 0.2·√2 to √2): which float32 run lands on "
        "which side is a coin toss, and one such element sets the max.",
        "- Models: see the docstring of `benchmarks/stylegan2.py` (StyleGAN2 G with mapping, modulated/demodulated "
        "convs, noise, transposed-conv + `filter2d` upsampling, toRGB skips; residual D with `downsample2d`, "
        "minibatch std). Channels: the `channels` column at ≤ 32 px resolutions, half at the output resolution.",
    ]
    if profiles:
        md += ["", "## Where the time goes (self CPU time of one step, torch.profiler, least disturbed of 3)", ""]
        for (kind, size), per in profiles.items():
            for b, p in per.items():
                share = f", of which `ganreg*` ops {p['ganreg_ms']:.0f} ms" if p["ganreg_ms"] else ""
                share += f"; outermost convolution ops {p['conv_ms']:.0f} ms wall ({p['conv_calls']} calls)"
                md += [f"**{STEPS[kind]} {size}px, `{b}`**: {p['total_ms']:.0f} ms of self time{share}; top operators:", ""]
                md += ["| operator | self ms | calls |", "|---|---|---|"]
                md += [f"| `{name}` | {ms:.1f} | {calls} |" for name, ms, calls in p["top"]]
                md.append("")
    (out / "results.md").write_text("\n".join(md) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks stylegan2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="64,256", help="output resolutions, comma separated (powers of two ≥ 8)")
    p.add_argument("--steps", default="d_r1,g_pl", help="d_r1, g_pl (comma separated)")
    p.add_argument("--reps", type=int, default=10, help="timed steps per backend")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per backend first")
    p.add_argument("--channels", type=int, default=None, help="max channels (default 64 up to 64 px, else 32)")
    p.add_argument("--batch", type=int, default=None, help="D batch; G uses half (default 8 up to 64 px, else 4)")
    p.add_argument("--fused", default=None, help="the fused backend (default: the first native one with the blocks)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--profile", type=int, default=12, help="top operators per step in results.md (0: none listed)")
    p.add_argument("--profile-tries", type=int, default=3, help="profiled steps per backend (the least disturbed is kept)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results/<device-slug>/stylegan2/)")
    a = p.parse_args(argv)
    a.sizes = [int(s) for s in a.sizes.split(",") if s]
    a.steps = [s for s in a.steps.split(",") if s]
    for s in a.sizes:
        if s < 8 or s & (s - 1):
            p.error(f"--sizes: {s} is not a power of two >= 8")
    for s in a.steps:
        if s not in STEPS:
            p.error(f"--steps: {s!r} is not one of {list(STEPS)}")
    if a.reps < 1 or a.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    threads = torch.get_num_threads()
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        return _main(a, argv)
    finally:
        torch.set_num_threads(threads)  # main() is also called in-process (tests)


def _main(a, argv) -> int:
    device = torch.device("cpu")
    out = Path(a.out) if a.out else report.results_dir(device, "stylegan2")
    t0 = time.perf_counter()
    load = T.loadavg()
    a.cold_bw = cold_bandwidth()
    rows, profiles = run(a)
    env = {
        **T.header(device),
        "cold_gbs": a.cold_bw / 1e9,
        "fused": rows[0]["fused_backend"] if rows else "",
        "load_start": load,
        "load_end": T.loadavg(),
        "elapsed_s": time.perf_counter() - t0,
        "argv": T.argv_line(argv),
    }
    write(out, rows, env, profiles)
    print(table(rows))
    print(f"wrote {out / 'results.csv'} and results.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
