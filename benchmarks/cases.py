"""Benchmark cases, one builder per op family (docs/semantics.md), at sizes taken from real GAN training.

A :class:`Case` makes its random-normal inputs (never zeros/constants) and calls the *public*
``ganreg_ext`` function with a ``backend=`` argument, so every backend (and ``torch.compile`` of the
reference) runs exactly the code a user calls. Each case also states the bytes the op must move at
the very least (the *floor*) for the forward, the backward and both; achieved GB/s is measured
against that floor.

Floor conventions (``N`` elements of the big tensor, ``e`` bytes per element):

- gradient-norm penalties (R1/R2, WGAN-GP, path-length penalty): forward reads ``g`` (``N·e``);
  backward reads ``g`` and writes ``dL/dg`` (``2N·e``); fwd+bwd ``3N·e``. Roth: twice that (real+fake).
- path-length noise-dot: forward reads the images (``N·e``, the noise is generated, never stored);
  backward writes ``grad_out·y`` (``N·e``).
- consistency (bCR on logits, zCR on images): forward reads both inputs; backward reads both and
  writes both gradients.
- augmentations (DiffAugment, CR): forward reads ``x`` and writes the output; backward reads
  ``grad_out`` and writes ``dx``.
- instance noise: forward reads ``x``, writes ``x + σ·n``; the backward is the identity (floor 0,
  no GB/s is reported for it).
- double backward (``dbl``, overhead family only): no floor (its work depends on the surrounding graph).

The ``overhead`` family (:func:`overhead_cases`) runs every public function at a tiny size, where
the per-call cost of the layers (Python checks, dispatch, autograd nodes) is all that is measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import ganreg_ext as gx

from .checks import max_err, outputs

MODES = ("fwd", "bwd", "fwdbwd")
MODE_LABEL = {"fwd": "fwd", "bwd": "bwd", "fwdbwd": "fwd+bwd", "dbl": "double bwd", "nograd": "call, no grad", "step": "step"}
OVERHEAD_SHAPE = (4, 3, 8, 8)
SEED = 0x5EED_1234_ABCD  # noise seed of the Philox ops (fixed: same work every repetition)


@dataclass
class Inputs:
    leaves: list[Tensor]  # tensors that require grad (what the backward differentiates w.r.t.)
    kw: dict = field(default_factory=dict)  # other arguments (params, pl_mean, ...)
    grad_out: Tensor | None = None  # random normal output gradient for non-scalar outputs


@dataclass
class Case:
    family: str  # --ops name, e.g. "r1"
    op: str  # public function benchmarked, e.g. "r1_penalty"
    size: str  # human label, e.g. "32x3x256x256"
    numel: int  # elements of the big tensor(s): the x axis of the plots
    make: Callable[[torch.device, torch.dtype, torch.Generator], Inputs]
    fn: Callable[[Inputs, str], Tensor]  # fn(inputs, backend) -> output (runs the public op)
    floor_elems: dict  # mode -> elements that must be read/written at the least
    tol: tuple[float, float] = (1e-4, 1e-5)  # (rtol, atol) fused vs reference, float32
    # extra baselines (name -> fn(inputs) -> output), e.g. NVlabs' randn_like noise-dot
    extra: dict = field(default_factory=dict)
    # their checks against the reference, run before timing: name -> ExtraCheck (an extra without
    # one is timed but labelled unchecked)
    extra_check: dict = field(default_factory=dict)
    primary: bool = True  # the family's largest size (quick sweeps compile only this one)
    # torch.compile of the integer-Philox reference takes > 14 min on a busy 2-core CPU: off by
    # default (--compile-noise); its compiled randn_like baseline (compile_<extra>) is run instead
    compile_slow: bool | str = False  # a str: the reason shown
    modes: tuple = MODES
    # double backward: dbl(inputs, call) -> scalar loss whose gradient w.r.t. the leaves is timed;
    # ``call(inputs)`` is the implementation (eager, compiled or fused). None: does not apply.
    dbl: Callable | None = None
    # the extra (unchecked) baseline users actually run eagerly, e.g. NVlabs' randn_like noise-dot:
    # the headline ×eager/×compile are against it (and its compile); None: the eager reference
    baseline: str | None = None
    latency: bool = False  # overhead family: µs per call in batches, warm caches, no L2 flush

    @property
    def key(self) -> str:
        return f"{self.family}/{self.size}"

    def floor_bytes(self, mode: str, dtype: torch.dtype) -> int | None:
        if mode not in self.floor_elems:
            return None
        return int(self.floor_elems[mode] * torch.empty((), dtype=dtype).element_size())


@dataclass
class ExtraCheck:
    """How an extra baseline is checked against the reference before it is timed:
    ``fn(case, inp, call) -> (ok, err, msg)`` with ``call(inputs) -> output`` the implementation;
    ``label``: what the check establishes (shown in the ``status`` column); ``compiled``: whether it
    also applies to the ``compile_<name>`` row (a check that swaps the noise generator cannot reach
    into a compiled graph)."""

    fn: Callable
    label: str
    compiled: bool = False


def _same_noise_check(case: Case, inp: Inputs, call) -> tuple[bool, float, str]:
    """The baseline's formula with the reference's noise: ``torch.randn_like`` answers, during this
    one call, the reference's Philox normals (``SEED``, the tensor's shape), so output and input
    gradients must equal the reference's up to float32 rounding."""
    from ganreg_ext.reference.philox import normal_like

    real = torch.randn_like

    def philox_like(t, *args, dtype=None, **kw):
        return normal_like(tuple(t.shape), SEED, t.device).to(dtype or t.dtype)

    try:
        torch.randn_like = philox_like
        got = outputs(case, inp, call, dbl=False)
    finally:
        torch.randn_like = real
    want = outputs(case, inp, lambda i: case.fn(i, "reference"), dbl=False)
    return max_err(got, want, *case.tol)


def compiled(fn: Callable[[Inputs], Tensor], inp: Inputs) -> Callable[[Inputs], Tensor]:
    """``torch.compile(dynamic=False)`` of ``fn(inputs)`` over the leaves of ``inp`` (its other
    arguments fixed), as a call on inputs like ``fn``: the ``compile`` and ``compile_<extra>`` rows."""
    body = torch.compile(lambda *leaves: fn(Inputs(list(leaves), inp.kw, inp.grad_out)), dynamic=False)
    return lambda i: body(*i.leaves)


SAME_NOISE = ExtraCheck(_same_noise_check, "checked: same formula as the reference given its noise; timed with randn_like noise")


def _randn(shape, device, dtype, gen, scale=1.0, requires_grad=True) -> Tensor:
    t = (torch.randn(shape, device=device, generator=gen, dtype=torch.float32) * scale).to(dtype)
    return t.requires_grad_(requires_grad)


def _label(shape) -> str:
    return "x".join(str(s) for s in shape)


def _scalar(out: Tensor) -> Tensor:
    return out if out.dim() == 0 else out.sum()


def dbl_penalty(inp: Inputs, call) -> Tensor:
    """R1 pattern: the op on gradients made with ``create_graph=True`` (of ``D(x) = Σ x²/2``, so the
    gradients equal the inputs), then the penalty's backward through them."""
    gs = torch.autograd.grad(sum(0.5 * x.square().sum() for x in inp.leaves), inp.leaves, create_graph=True)
    return _scalar(call(Inputs(list(gs), inp.kw, inp.grad_out)))


def dbl_through(inp: Inputs, call) -> Tensor:
    """R1 through the op: ``g = ∂(Σ op(x)²/2)/∂x`` with ``create_graph=True``, loss ``Σ g²``: the
    op's backward is differentiated (as R1 through DiffAugment, or path length through the noise-dot)."""
    out = call(inp)
    gs = torch.autograd.grad(0.5 * out.square().sum(), inp.leaves, create_graph=True)
    return sum(g.square().sum() for g in gs)


# ---------------------------------------------------------------------------------------------
# one builder per family; each takes a shape (or a list of shapes) and returns a Case


def r1_case(shapes, op: str = "r1_penalty") -> Case:
    """R1/R2 ``r1_penalty`` (or ``r2_penalty``) on D's input gradients (a tensor, or a list for multi-input D)."""
    shapes = [shapes] if isinstance(shapes[0], int) else list(shapes)
    n = sum(math.prod(s) for s in shapes)

    def make(dev, dt, gen):
        return Inputs([_randn(s, dev, dt, gen) for s in shapes])

    def fn(inp, backend):
        g = inp.leaves if len(inp.leaves) > 1 else inp.leaves[0]
        return getattr(gx, op)(g, gamma=10.0, backend=backend)

    return Case("r1", op, "+".join(_label(s) for s in shapes), n, make, fn, {"fwd": n, "bwd": 2 * n, "fwdbwd": 3 * n})


def grad_sqnorm_case(shape) -> Case:
    """``grad_sqnorm`` (per-sample ``[B]``), the building block of every gradient-norm penalty."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        acc = torch.float64 if dt == torch.float64 else torch.float32
        return Inputs([_randn(shape, dev, dt, gen)], grad_out=_randn(shape[:1], dev, acc, gen, requires_grad=False))

    def fn(inp, backend):
        return gx.grad_sqnorm(inp.leaves[0], backend=backend)

    return Case("r1", "grad_sqnorm", _label(shape), n, make, fn, {"fwd": n, "bwd": 2 * n, "fwdbwd": 3 * n})


def wgan_gp_case(shape) -> Case:
    n = math.prod(shape)

    def make(dev, dt, gen):
        return Inputs([_randn(shape, dev, dt, gen, scale=0.01)])  # ‖g_b‖ near the centre 1

    def fn(inp, backend):
        return gx.gradient_penalty(inp.leaves[0], center=1.0, weight=10.0, backend=backend)

    return Case("wgan_gp", "gradient_penalty", _label(shape), n, make, fn, {"fwd": n, "bwd": 2 * n, "fwdbwd": 3 * n})


def roth_case(shape) -> Case:
    n = math.prod(shape)
    B = shape[0]

    def make(dev, dt, gen):
        gr, gf = _randn(shape, dev, dt, gen), _randn(shape, dev, dt, gen)
        lr, lf = _randn((B, 1), dev, dt, gen), _randn((B, 1), dev, dt, gen)
        return Inputs([gr, lr, gf, lf])

    def fn(inp, backend):
        gr, lr, gf, lf = inp.leaves
        return gx.roth_penalty(gr, lr, gf, lf, gamma=0.1, backend=backend)

    return Case("roth", "roth_penalty", "2x" + _label(shape), 2 * n, make, fn, {"fwd": 2 * n, "bwd": 4 * n, "fwdbwd": 6 * n})


def pl_noise_dot_case(shape) -> Case:
    n = math.prod(shape)
    hw = shape[2] * shape[3]

    def make(dev, dt, gen):
        return Inputs([_randn(shape, dev, dt, gen)])

    def fn(inp, backend):
        return gx.path_length_noise_dot(inp.leaves[0], seed=SEED, backend=backend)

    def nvlabs(inp):  # NVlabs loss.py: (gen_img * randn_like(gen_img) / sqrt(H*W)).sum(); other noise
        img = inp.leaves[0]
        return (img * (torch.randn_like(img) / math.sqrt(hw))).sum()

    return Case(
        "pl_noise_dot", "path_length_noise_dot", _label(shape), n, make, fn, {"fwd": n, "bwd": n, "fwdbwd": 2 * n},
        tol=(2e-4, 1e-3), extra={"nvlabs_randn": nvlabs}, compile_slow=True, baseline="nvlabs_randn",
        extra_check={"nvlabs_randn": SAME_NOISE},
    )  # fmt: skip


def pl_penalty_case(shape) -> Case:
    """``path_length_penalty`` on ``pl_grads = dL/dws`` ``[B, num_ws, 512]``."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        return Inputs([_randn(shape, dev, dt, gen, scale=0.05)], kw={"pl_mean": torch.tensor(0.7, device=dev)})

    def fn(inp, backend):
        penalty, _ = gx.path_length_penalty(inp.leaves[0], inp.kw["pl_mean"], decay=0.01, backend=backend)
        return penalty.mean()

    return Case("pl_penalty", "path_length_penalty", _label(shape), n, make, fn, {"fwd": n, "bwd": 2 * n, "fwdbwd": 3 * n})


def pl_regularizer_case(shape) -> Case:
    """``PathLengthRegularizer`` on images of a toy G, ``images = tanh(ws.flatten(1) @ A).view(shape)``
    (its forward already holds ``autograd.grad(create_graph=True)``; its backward is a double backward).
    Every call starts from the same ``pl_mean`` (one ``copy_``), so calls are comparable."""
    n = math.prod(shape)
    B = shape[0]
    modules: dict = {}

    def make(dev, dt, gen):
        ws = _randn((B, 2, 16), dev, dt, gen)
        A = _randn((32, n // B), dev, dt, gen, scale=0.1, requires_grad=False)
        return Inputs([ws], kw={"A": A, "pl_mean": torch.tensor(0.5, device=dev)})

    def fn(inp, backend):
        ws, A, mean = inp.leaves[0], inp.kw["A"], inp.kw["pl_mean"]
        key = (backend, mean.device)
        if key not in modules:
            modules[key] = gx.PathLengthRegularizer(backend=backend).to(mean.device)
        pl = modules[key]
        pl.pl_mean.copy_(mean)
        return pl(torch.tanh(ws.flatten(1) @ A).view(shape), ws, seed=SEED)

    def nvlabs(inp):  # NVlabs loss.py Gpl, with randn_like noise (other noise)
        ws, A, mean = inp.leaves[0], inp.kw["A"], inp.kw["pl_mean"]
        img = torch.tanh(ws.flatten(1) @ A).view(shape)
        noise = torch.randn_like(img) / math.sqrt(shape[2] * shape[3])
        (pl_grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = pl_grads.square().sum(2).mean(1).sqrt()
        new_mean = mean.lerp(lengths.mean(), 0.01)
        return (lengths - new_mean).square().mean() * 2.0

    return Case(
        "pl_penalty", "PathLengthRegularizer", _label(shape), n, make, fn, {"fwd": 2 * n, "fwdbwd": 3 * n},
        tol=(2e-4, 1e-4), modes=("fwd", "fwdbwd"), extra={"nvlabs_randn": nvlabs}, baseline="nvlabs_randn", compile_slow=True,
        extra_check={"nvlabs_randn": SAME_NOISE},
    )  # fmt: skip


def bcr_case(shape) -> Case:
    """bCR on D logits ``[B, 1]`` (real, T(real), fake, T(fake)): latency-bound, tiny."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        return Inputs([_randn(shape, dev, dt, gen) for _ in range(4)])

    def fn(inp, backend):
        return gx.bcr_loss(*inp.leaves, lambda_real=10.0, lambda_fake=10.0, backend=backend)

    return Case("bcr", "bcr_loss", "4x" + _label(shape), 4 * n, make, fn, {"fwd": 4 * n, "bwd": 8 * n, "fwdbwd": 12 * n})


def zcr_case(shape, op: str = "zcr_generator_loss") -> Case:
    """zCR generator loss ``−w·mse(G(z), G(z+ε))`` on images (or ``zcr_discriminator_loss`` /
    ``consistency_loss``, the same pair signature)."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        a = _randn(shape, dev, dt, gen)
        b = (a.detach() + 0.1 * torch.randn(shape, device=dev, generator=gen).to(dt)).requires_grad_()
        return Inputs([a, b])

    def fn(inp, backend):
        return getattr(gx, op)(*inp.leaves, weight=0.5, backend=backend)

    return Case("zcr", op, "2x" + _label(shape), 2 * n, make, fn, {"fwd": 2 * n, "bwd": 4 * n, "fwdbwd": 6 * n})


def cr_augment_case(shape) -> Case:
    n = math.prod(shape)
    B, _, H, W = shape

    def make(dev, dt, gen):
        x = _randn(shape, dev, dt, gen)
        return Inputs(
            [x],
            kw={"params": gx.sample_cr_params(B, H, W, device=dev, generator=gen)},
            grad_out=_randn(shape, dev, dt, gen, requires_grad=False),
        )

    def fn(inp, backend):
        return gx.cr_augment(inp.leaves[0], params=inp.kw["params"], backend=backend)

    return Case("cr_augment", "cr_augment", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 2 * n, "fwdbwd": 4 * n})


def diff_augment_case(shape) -> Case:
    n = math.prod(shape)
    B, _, H, W = shape
    policy = "color,translation,cutout"

    def make(dev, dt, gen):
        x = _randn(shape, dev, dt, gen)
        params = gx.sample_diffaug_params(B, H, W, policy, device=dev, generator=gen)
        return Inputs([x], kw={"params": params}, grad_out=_randn(shape, dev, dt, gen, requires_grad=False))

    def fn(inp, backend):
        return gx.diff_augment(inp.leaves[0], policy, params=inp.kw["params"], backend=backend)

    return Case("diff_augment", "diff_augment", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 2 * n, "fwdbwd": 4 * n})


# ADA's usual eager pipe (the paper's description, as StyleGAN2-ADA runs it): reflect-pad → 2×
# upsample (12-tap low-pass) → grid_sample (bilinear) → 2× downsample → colour matrix → cutout.
_ADA_LOWPASS = None


def _ada_lowpass() -> Tensor:
    """12-tap Kaiser-windowed sinc half-band low-pass (the resampling filter of the eager chain)."""
    global _ADA_LOWPASS
    if _ADA_LOWPASS is None:
        t = torch.arange(12, dtype=torch.float64) - 5.5
        f = torch.sinc(t / 2) * torch.kaiser_window(12, periodic=False, beta=6.0, dtype=torch.float64)
        _ADA_LOWPASS = (f / f.sum()).float()
    return _ADA_LOWPASS


def ada_margin(geom: Tensor, H: int, W: int, taps: int = 12) -> tuple[int, int, int, int]:
    """Reflect-padding margin ``(left, right, top, bottom)`` covering every mapped output corner plus
    the filter, clamped to ``size − 1`` (computed once per input, outside the timed call)."""
    corners = torch.tensor([[0, 0, 1], [W - 1, 0, 1], [0, H - 1, 1], [W - 1, H - 1, 1]], dtype=torch.float32)
    uv = torch.einsum("bij,kj->bki", geom.float().cpu(), corners)  # [B, 4, 2]
    lo, hi = uv.amin((0, 1)), uv.amax((0, 1))
    m = [-lo[0], hi[0] - (W - 1), -lo[1], hi[1] - (H - 1)]
    lim = (W - 1, W - 1, H - 1, H - 1)
    return tuple(int(min(max(0.0, math.ceil(float(v))) + taps // 4, cap)) for v, cap in zip(m, lim))


def ada_grid_sample_chain(x: Tensor, params: dict, margin) -> Tensor:
    """Eager ADA as usually implemented (one kernel after another, full-size temporaries)."""
    import torch.nn.functional as F

    B, C, H, W = x.shape
    ml, mr, mt, mb = margin
    f = _ada_lowpass().to(x.device)
    xp = F.pad(x, [ml, mr, mt, mb], mode="reflect")
    xu = gx.upsample2d(xp, f, up=2, backend="reference")  # input pixel u ↔ index 2(u + ml) + 0.5
    Hu, Wu = xu.shape[2:]
    g = params["geom"].to(x.dtype)
    # output grid at 2× resolution: pixel X ↔ output coordinate (X − 0.5)/2
    ys = (torch.arange(2 * H, device=x.device, dtype=x.dtype) - 0.5) / 2
    xs = (torch.arange(2 * W, device=x.device, dtype=x.dtype) - 0.5) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    u = g[:, 0, 0, None, None] * xx + g[:, 0, 1, None, None] * yy + g[:, 0, 2, None, None]
    v = g[:, 1, 0, None, None] * xx + g[:, 1, 1, None, None] * yy + g[:, 1, 2, None, None]
    iu, iv = 2 * (u + ml) + 0.5, 2 * (v + mt) + 0.5  # upsampled pixel-centre indices
    grid = torch.stack([(2 * iu + 1) / Wu - 1, (2 * iv + 1) / Hu - 1], -1)
    xs2 = F.grid_sample(xu, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = gx.downsample2d(xs2, f, down=2, backend="reference")
    m = params["color"].to(x.dtype)
    y = torch.einsum("boc,bchw->bohw", m[:, :C, :C], y) + m[:, :C, C, None, None]
    if "cutout" in params:
        from ganreg_ext.reference.ada import cutout_keep

        y = y * cutout_keep(params["cutout"], H, W, x.dtype)
    return y


# The chain and the reference implement the same transform (the same geometry matrix, colour matrix
# and cutout) with different resampling filters (2× 12-tap sinc up, bilinear, 2× down against the
# reference's stretched Keys cubic): on white noise they differ by O(1), so they are compared on
# band-limited images, where the filters agree. Thresholds from measurements (3 seeds, 33²/64²/256²,
# p = 0.6): same transform ≤ 0.010 (output) / 0.041 (gradient); a half-pixel shift ≥ 0.050 / 0.063,
# a transposed matrix ≥ 0.052 / 0.093, no cutout ≥ 0.078 / 0.094, no colour ≥ 0.87 / 0.95.
ADA_SMOOTH_CPP = 1 / 32  # highest frequency of the check images, cycles per pixel
ADA_OUT_TOL, ADA_GRAD_TOL = 0.025, 0.05  # mean |chain − ref| / mean |ref| (output, input gradient)


def smooth_images(shape, device, dtype, gen, cpp: float = ADA_SMOOTH_CPP) -> Tensor:
    """Per image and channel ``cos(2π(fx·x + fy·y) + φ)`` (pixel centres), ``fx, fy`` uniform in
    ``[0, cpp)`` cycles per pixel, ``φ`` uniform: band-limited images of amplitude 1."""
    B, C_, H, W = shape
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    f = torch.rand(B, C_, 2, generator=gen) * cpp
    ph = torch.rand(B, C_, 1, 1, generator=gen) * (2 * math.pi)
    img = torch.cos(2 * math.pi * (f[..., 0, None, None] * xx + f[..., 1, None, None] * yy) + ph)
    return img.to(device=device, dtype=dtype)


def _ada_chain_check(case: Case, inp: Inputs, call) -> tuple[bool, float, str]:
    """The chain against ``ada_augment(backend="reference")`` with the case's own parameters on
    band-limited images and output gradients: mean |Δ| / mean |ref| of the output and of the input
    gradient within ``ADA_OUT_TOL`` / ``ADA_GRAD_TOL`` (see above); returns the output's ratio as err."""
    x0 = inp.leaves[0]
    gen = torch.Generator().manual_seed(4321)
    xs = smooth_images(x0.shape, x0.device, x0.dtype, gen).requires_grad_()
    go = smooth_images(x0.shape, x0.device, x0.dtype, gen)
    probe = Inputs([xs], inp.kw, go)
    rel = []
    for impl in (call, lambda i: case.fn(i, "reference")):
        out = impl(probe)
        (g,) = torch.autograd.grad(out, [xs], go)
        rel.append((out.detach().double(), g.double()))
    (a, ga), (r, gr) = rel
    e_out = ((a - r).abs().mean() / r.abs().mean()).item()
    e_grad = ((ga - gr).abs().mean() / gr.abs().mean()).item()
    ok = e_out <= ADA_OUT_TOL and e_grad <= ADA_GRAD_TOL
    msg = "" if ok else f"band-limited images: output {e_out:.3g} (tol {ADA_OUT_TOL}), gradient {e_grad:.3g} (tol {ADA_GRAD_TOL})"
    return ok, e_out, msg


ADA_CHAIN_CHECK = ExtraCheck(
    _ada_chain_check,
    f"checked: same transform as the reference, other resampling filter (band-limited images: mean rel diff "
    f"<= {ADA_OUT_TOL} output, {ADA_GRAD_TOL} gradient)",
    compiled=True,
)


def ada_case(shape) -> Case:
    """ADA ``bgc`` + cutout at p = 0.6 (a typical late-training strength): the fused one-pass pipe
    against the usual eager grid_sample chain (headline baseline) and its ``torch.compile``."""
    n = math.prod(shape)
    B, _, H, W = shape

    def make(dev, dt, gen):
        x = _randn(shape, dev, dt, gen)
        params = gx.sample_ada_params(B, H, W, 0.6, "bgc", device=dev, generator=gen, cutout=True)
        margin = ada_margin(params["geom"], H, W)
        return Inputs([x], kw={"params": params, "margin": margin}, grad_out=_randn(shape, dev, dt, gen, requires_grad=False))

    def fn(inp, backend):
        return gx.ada_augment(inp.leaves[0], inp.kw["params"], backend=backend)

    def chain(inp):
        return ada_grid_sample_chain(inp.leaves[0], inp.kw["params"], inp.kw["margin"])

    return Case(
        "ada", "ada_augment", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 2 * n, "fwdbwd": 4 * n},
        extra={"grid_sample_chain": chain}, baseline="grid_sample_chain", dbl=dbl_through,
        extra_check={"grid_sample_chain": ADA_CHAIN_CHECK},
        tol=(1e-3, 1e-3),  # float32 sample positions (≈ 1e-5 px at 256 px) times the image's slope
        modes=MODES + ("dbl",),
        compile_slow="skipped: the gather-based reference is not what anyone runs; see compile_grid_sample_chain",
    )  # fmt: skip


# StyleGAN blocks (issue 14): one layer's worth of bias+act, FIR up/downsampling and filtered_lrelu at
# StyleGAN2 layer shapes; double backward = R1 through the block (``dbl_through``).


def bias_act_case(shape) -> Case:
    """``bias_act(x, b, act="lrelu")`` (gain √2) on a feature map ``[B, C, H, W]``."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        x, b = _randn(shape, dev, dt, gen), _randn((shape[1],), dev, dt, gen)
        return Inputs([x, b], grad_out=_randn(shape, dev, dt, gen, requires_grad=False))

    def fn(inp, backend):
        return gx.bias_act(inp.leaves[0], inp.leaves[1], act="lrelu", backend=backend)

    return Case(
        "bias_act", "bias_act", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 3 * n, "fwdbwd": 4 * n},
        dbl=dbl_through, modes=MODES + ("dbl",),
        tol=(1e-3, 5e-4),  # the bias gradient sums B·H·W terms (float32 rounding of a long sum)
    )  # fmt: skip


def _fir_case(shape, family: str) -> Case:
    n = math.prod(shape)
    up = family == "upsample2d"
    out_n = n * 4 if up else n // 4

    def make(dev, dt, gen):
        x = _randn(shape, dev, dt, gen)
        oshape = (*shape[:2], shape[2] * 2, shape[3] * 2) if up else (*shape[:2], shape[2] // 2, shape[3] // 2)
        return Inputs(
            [x], kw={"f": gx.setup_filter([1, 3, 3, 1], device=dev)}, grad_out=_randn(oshape, dev, dt, gen, requires_grad=False)
        )

    def fn(inp, backend):
        op = gx.upsample2d if up else gx.downsample2d
        return op(inp.leaves[0], inp.kw["f"], backend=backend)

    io = n + out_n
    return Case(
        family,
        family,
        _label(shape),
        n,
        make,
        fn,
        {"fwd": io, "bwd": io, "fwdbwd": 2 * io},
        dbl=dbl_through,
        modes=MODES + ("dbl",),
    )


def upsample2d_case(shape) -> Case:
    """``upsample2d(x, [1,3,3,1])`` (2×, StyleGAN2's synthesis upsampling) on ``[B, C, H, W]``."""
    return _fir_case(shape, "upsample2d")


def downsample2d_case(shape) -> Case:
    """``downsample2d(x, [1,3,3,1])`` (2×, StyleGAN2's discriminator downsampling) on ``[B, C, H, W]``."""
    return _fir_case(shape, "downsample2d")


def filtered_lrelu_case(shape) -> Case:
    """StyleGAN3's ``filtered_lrelu``: 2× up (12-tap), bias + lrelu + clamp 256, 2× down, on ``[B, C, H, W]``."""
    n = math.prod(shape)

    def make(dev, dt, gen):
        x, b = _randn(shape, dev, dt, gen), _randn((shape[1],), dev, dt, gen)
        f = gx.setup_filter(_ada_lowpass(), device=dev)
        return Inputs([x, b], kw={"f": f}, grad_out=_randn(shape, dev, dt, gen, requires_grad=False))

    def fn(inp, backend):
        x, b = inp.leaves
        f = inp.kw["f"]
        return gx.filtered_lrelu(x, f, f, b, up=2, down=2, padding=11, clamp=256.0, backend=backend)

    return Case(
        "filtered_lrelu", "filtered_lrelu", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 2 * n, "fwdbwd": 4 * n},
        dbl=dbl_through, modes=MODES + ("dbl",),
        tol=(1e-3, 5e-4),  # the bias gradient sums B·H·W terms (float32 rounding of a long sum)
    )  # fmt: skip


def instance_noise_case(shape) -> Case:
    n = math.prod(shape)

    def make(dev, dt, gen):
        return Inputs([_randn(shape, dev, dt, gen)], grad_out=_randn(shape, dev, dt, gen, requires_grad=False))

    def fn(inp, backend):
        return gx.instance_noise(inp.leaves[0], 0.1, seed=SEED, backend=backend)

    def nvlabs(inp):  # the usual eager way: a stored randn tensor
        x = inp.leaves[0]
        return x + 0.1 * torch.randn_like(x)

    return Case(
        "instance_noise", "instance_noise", _label(shape), n, make, fn, {"fwd": 2 * n, "bwd": 0, "fwdbwd": 2 * n},
        tol=(1e-4, 1e-4), extra={"torch_randn": nvlabs}, compile_slow=True, baseline="torch_randn",
        extra_check={"torch_randn": SAME_NOISE},
    )  # fmt: skip


BUILDERS: dict[str, Callable] = {
    "r1": r1_case,
    "wgan_gp": wgan_gp_case,
    "roth": roth_case,
    "pl_noise_dot": pl_noise_dot_case,
    "pl_penalty": pl_penalty_case,
    "bcr": bcr_case,
    "zcr": zcr_case,
    "cr_augment": cr_augment_case,
    "diff_augment": diff_augment_case,
    "instance_noise": instance_noise_case,
    "ada": ada_case,
    "bias_act": bias_act_case,
    "upsample2d": upsample2d_case,
    "downsample2d": downsample2d_case,
    "filtered_lrelu": filtered_lrelu_case,
}
TRAIN_OPS = ("train_d_r1", "train_g_pl")  # real use patterns (benchmarks/train.py)
ALL_OPS = tuple(BUILDERS) + ("overhead",) + TRAIN_OPS
ALIASES = {
    "r2": ("r1",),
    "gp": ("wgan_gp",),
    "path_length": ("pl_noise_dot", "pl_penalty"),
    "pl": ("pl_noise_dot", "pl_penalty"),
    "cr": ("bcr", "zcr", "cr_augment"),
    "consistency": ("bcr", "zcr"),
    "augment": ("cr_augment", "diff_augment", "ada"),
    "blocks": ("bias_act", "upsample2d", "downsample2d", "filtered_lrelu"),
    "train": TRAIN_OPS,
    "sweep": tuple(BUILDERS) + TRAIN_OPS,
    "all": ALL_OPS,
}


def expand_ops(names) -> list[str]:
    """``--ops`` names (comma lists, aliases) → op families in the canonical order."""
    want: set[str] = set()
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name in ALIASES:
                want.update(ALIASES[name])
            elif name in ALL_OPS:
                want.add(name)
            else:
                raise SystemExit(f"--ops: unknown op {name!r}; choose from {list(ALL_OPS)} or aliases {list(ALIASES)}")
    return [o for o in ALL_OPS if o in want]


def overhead_cases(shape=OVERHEAD_SHAPE) -> list[Case]:
    """Every public function at one tiny image shape (logits ``[B, 1]``, ``pl_grads`` ``[B, C, H·W]``):
    fwd, fwd+bwd, and the double backward where training uses one."""
    B, C, H, W = shape
    pairs = [
        (r1_case(shape), dbl_penalty),
        (r1_case(shape, "r2_penalty"), dbl_penalty),
        (wgan_gp_case(shape), dbl_penalty),
        (grad_sqnorm_case(shape), dbl_penalty),
        (roth_case(shape), dbl_penalty),
        (pl_penalty_case((B, C, H * W)), dbl_penalty),
        (pl_regularizer_case(shape), None),
        (pl_noise_dot_case(shape), dbl_through),
        (zcr_case(shape, "consistency_loss"), None),
        (bcr_case((B, 1)), None),
        (zcr_case(shape), None),
        (zcr_case((B, 1), "zcr_discriminator_loss"), None),
        (diff_augment_case(shape), dbl_through),
        (cr_augment_case(shape), dbl_through),
        (instance_noise_case(shape), dbl_through),
    ]
    for case, dbl in pairs:
        case.family, case.dbl, case.latency = "overhead", dbl, True
        case.modes = tuple(m for m in ("fwd", "fwdbwd") if m in case.modes) + (("dbl",) if dbl else ())
    return [c for c, _ in pairs]


# ---------------------------------------------------------------------------------------------
# sizes from real training: images B×3×H×W (B 4..64, H 32..1024), ws B×num_ws×512, logits B×1,
# feature-map gradients B×512×4×4, plus odd sizes. "quick" fits the time budgets of the runner.

ODD = (7, 3, 33, 33)


def sizes(family: str, device: str, quick: bool, tiny: bool = False) -> list:
    """Shapes for ``family`` on ``device`` (``cpu``/``cuda``); ``tiny`` is for smoke tests."""
    if tiny:
        return {
            "r1": [(2, 3, 8, 8), [(3, 3, 5, 7), (3, 8, 4, 4)]],
            "pl_penalty": [(2, 4, 32)],
            "bcr": [(4, 1)],
        }.get(family, [(2, 3, 8, 8), (3, 3, 9, 7)])
    gpu = device == "cuda"
    # the eager reference of the noise ops (integer Philox in torch ops) takes seconds per call on
    # CPU at 16x3x256x256: CPU sweeps keep the noise families small
    if quick:
        img = [ODD, (32, 3, 256, 256)] + ([(16, 3, 1024, 1024)] if gpu else [])
        pl_img = [ODD, (16, 3, 256, 256)] + ([(8, 3, 1024, 1024)] if gpu else [])
        noise = [ODD, (16, 3, 256, 256), (8, 3, 1024, 1024)] if gpu else [ODD, (8, 3, 64, 64)]
        aug = [ODD, (32, 3, 64, 64)] + ([(32, 3, 256, 256)] if gpu else [])
    else:
        img = [ODD, (4, 3, 32, 32), (64, 3, 32, 32), (32, 3, 64, 64), (32, 3, 128, 128), (32, 3, 256, 256), (16, 3, 512, 512)]
        img += [(32, 3, 512, 512), (16, 3, 1024, 1024), (64, 3, 1024, 1024)] if gpu else [(4, 3, 1024, 1024)]
        pl_img = [ODD, (32, 3, 64, 64), (16, 3, 256, 256), (8, 3, 512, 512)]
        pl_img += [(16, 3, 512, 512), (8, 3, 1024, 1024), (32, 3, 1024, 1024)] if gpu else [(2, 3, 1024, 1024)]
        aug = [ODD, (64, 3, 32, 32), (32, 3, 64, 64), (32, 3, 128, 128), (32, 3, 256, 256)]
        aug += [(16, 3, 512, 512), (16, 3, 1024, 1024)] if gpu else [(8, 3, 512, 512)]
        noise = pl_img if gpu else [ODD, (8, 3, 64, 64), (16, 3, 128, 128)]
    blocks = [(2, 512, 64, 64), (2, 128, 256, 256)] if not gpu else [(16, 512, 64, 64), (16, 128, 256, 256), (8, 32, 1024, 1024)]
    if not quick:
        blocks = [(2, 512, 16, 16)] + blocks + ([(1, 32, 1024, 1024)] if not gpu else [])
    table = {
        "r1": img + ([(64, 512, 4, 4), [(32, 3, 256, 256), (32, 512, 4, 4)]] if not quick else [(64, 512, 4, 4)]),
        "wgan_gp": img,
        "roth": img[:-1] if not quick else img,
        "pl_noise_dot": noise,
        "pl_penalty": [(8, 14, 512), (32, 18, 512)]
        if quick
        else [(4, 12, 512), (8, 14, 512), (16, 16, 512), (32, 18, 512), (64, 18, 512)],
        "bcr": [(64, 1)] if quick else [(4, 1), (16, 1), (64, 1)],
        "zcr": pl_img,
        "cr_augment": aug,
        "diff_augment": aug,
        "instance_noise": noise,
        "ada": [ODD, (32, 3, 64, 64), (8, 3, 256, 256)] + ([(32, 3, 256, 256), (16, 3, 512, 512)] if gpu else []),
        # StyleGAN2 config-f layer shapes: 512 channels up to 64 px, 128 at 256 px, 32 at 1024 px
        "bias_act": blocks,
        "upsample2d": [(B_, C_, H_ // 2, W_ // 2) for B_, C_, H_, W_ in blocks],
        "downsample2d": blocks,
        "filtered_lrelu": blocks[:-1] if not gpu else blocks,
    }
    return table[family]


def build(families, device: str, quick: bool, tiny: bool = False) -> list[Case]:
    """Cases of ``families`` in order; ``primary`` marks the largest size of each family."""
    out = []
    for f in families:
        if f == "overhead":
            out += overhead_cases()
        if f not in BUILDERS:
            continue
        cs = [BUILDERS[f](s) for s in sizes(f, device, quick, tiny)]
        big = max(range(len(cs)), key=lambda i: cs[i].numel)
        for i, c in enumerate(cs):
            c.primary = i == big
        out += cs
    return out
