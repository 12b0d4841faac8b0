"""Every tile, block and chunk constant of the C++ CPU kernels and the Triton kernels, in ONE table
(issue 22): each entry names its file and constant, a test reads the source to prove the listed value
is still what the code says, and each boundary is crossed (size − 1, size, size + 1) on the cpu and
triton backends (and any other fused backend listed), compared with the float64 reference within the
error bounds of ``helpers.error_bound``. A tile offset, a lost remainder or a doubled tile gives an
error of the size of one element, far above those bounds."""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import ganreg_ext as gx
from helpers import ATOMIC_ADJOINT, NOISE_ATOL, assert_close, assert_ref64, assert_sum_close, fused, make, need

ROOT = pathlib.Path(__file__).resolve().parents[1]
F64 = torch.float64


# ------------------------------------------------------------------------------------- probes
# probe(n, backend, device, dtype): build an input whose tiled size is n, run ``backend`` and the
# float64 reference on the same values, compare. dtype: float64 (tight) and float32 (the other
# vector width of the CPU kernels).


def _leaf(t):
    return t.detach().clone().requires_grad_()


def _fwd_bwd(fn, inputs, backend, cot_seed=1):
    """fn(*inputs, backend) and its gradients for a fixed random cotangent, on ``backend`` and on
    the float64 reference."""
    out = []
    for name, ins in ((backend, inputs), ("reference", [t.double() for t in inputs])):
        ins = [_leaf(t) for t in ins]
        y = fn(*ins, name)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(cot_seed), dtype=F64)
        w = w.to(inputs[0].dtype).to(y.device, y.dtype)  # the cotangent the fused run gets, in both runs
        gs = torch.autograd.grad(y, ins, w) if y.requires_grad else []
        out.append((y.detach(), [g.detach() for g in gs], w))
    return out


def probe_bias_flat(n, backend, device, dtype):
    """bias_act forward and dx over n elements (elementwise tiles/blocks)."""
    x = make((n,), dtype, device)
    (y, (g,), w), (y64, (g64,), _) = _fwd_bwd(lambda t, name: gx.bias_act(t, act="swish", clamp=1.5, backend=name), [x], backend)
    assert_ref64(y, y64, 2 * (x.double().abs() + 1), msg=f"y n={n}")
    assert_ref64(g, g64, 4 * w.double().abs() * (x.double().abs() + 1), msg=f"dx n={n}")


def probe_bias_inner(n, backend, device, dtype):
    """db of x ``[4, n]``, bias along the innermost dim (a fully-connected layer of n features)."""
    x, b = make((4, n), dtype, device), make((n,), dtype, device)
    (y, (gxx, gb), w), (y64, (gx64, gb64), _) = _fwd_bwd(
        lambda t, c, name: gx.bias_act(t, c, 1, "lrelu", backend=name), [x, b], backend
    )
    assert_ref64(y, y64, 2 * (x.double().abs() + 1), msg=f"y n={n}")
    assert_ref64(gxx, gx64, 2 * w.double().abs(), msg=f"dx n={n}")
    assert_ref64(gb, gb64, 2 * w.double().abs().sum(0), kind="sum", msg=f"db n={n}")


def probe_bias_reduce(n, backend, device, dtype):
    """db of x ``[n, 1]``: the bias gradient sums n elements (reduction tiles)."""
    x, b = make((n, 1), dtype, device), make((1,), dtype, device)
    (_, (_, gb), w), (_, (_, gb64), _) = _fwd_bwd(lambda t, c, name: gx.bias_act(t, c, 1, "tanh", backend=name), [x, b], backend)
    assert_ref64(gb, gb64, 2 * w.double().abs().sum(0), kind="sum", msg=f"db n={n}")


def probe_sqnorm(n, backend, device, dtype):
    """grad_sqnorm of x ``[2, n]`` per sample (sqnorm) and its gradient (scale)."""
    x = make((2, n), dtype, device)
    (s, (g,), w), (s64, (g64,), _) = _fwd_bwd(lambda t, name: gx.grad_sqnorm(t, backend=name), [x], backend)
    assert_ref64(s, s64, kind="sum", msg=f"sqnorm n={n}")
    assert_ref64(g, g64, msg=f"scale n={n}")
    # dot: the gradient w.r.t. the cotangent of the backward (the create_graph path of R1),
    # d⟨scale(x, w), u⟩/dw_b = 2·Σ_i u_bi·x_bi
    u = make((2, n), dtype, device)
    dws = []
    for name, xx, uu in ((backend, x, u), ("reference", x.double(), u.double())):
        xl = _leaf(xx)
        sq = gx.grad_sqnorm(xl, backend=name)
        wl = torch.ones_like(sq).requires_grad_()
        (d,) = torch.autograd.grad(sq, xl, wl, create_graph=True)
        dws.append(torch.autograd.grad(d, wl, uu)[0])
    assert_ref64(dws[0], dws[1], terms=2 * (u.double() * x.double()).abs().sum(1), kind="sum", msg=f"dot n={n}")


def probe_consistency(n, backend, device, dtype):
    """consistency_loss of ``[1, n]`` pairs (sq_diff_sum) and its gradients (diff_scale)."""
    a, b = make((1, n), dtype, device), make((1, n), dtype, device)
    (c, ga, _), (c64, ga64, _) = _fwd_bwd(lambda p, q, name: gx.consistency_loss(p, q, backend=name), [a, b], backend)
    assert_ref64(c, c64, kind="sum", msg=f"sq_diff_sum n={n}")
    for p, q in zip(ga, ga64):
        assert_ref64(p, q, msg=f"diff_scale n={n}")


def probe_noise(n, backend, device, dtype):
    """path_length_noise_dot over ``[1, 1, 1, n]`` (noise_dot) and instance_noise (noise_axpy):
    the normal stream agrees to NOISE_ATOL per element (docs/semantics.md#path-length-regularization-stylegan2)."""
    x = make((1, 1, 1, n), dtype, device)
    got = gx.path_length_noise_dot(x, 11, backend=backend)
    want = gx.path_length_noise_dot(x.double(), 11, backend="reference")
    assert_sum_close(got.double(), want, x.double().abs().sum(), atol=float(NOISE_ATOL * x.double().abs().sum()))
    y = gx.instance_noise(x, 0.5, 7, backend=backend)
    assert_close(y.double(), gx.instance_noise(x.double(), 0.5, 7, backend="reference"), dtype=torch.float32,
                 factor=NOISE_ATOL / 1e-5)  # fmt: skip


def probe_augment(n, backend, device, dtype):
    """diff_augment and cr_augment of ``[2, 3, 1, n]`` images (n pixels per sample) and their adjoints."""
    gen = torch.Generator(device=device).manual_seed(n)
    dp = gx.sample_diffaug_params(2, 1, n, device=device, generator=gen)
    cp = gx.sample_cr_params(2, 1, n, device=device, generator=gen)
    x = make((2, 3, 1, n), dtype, device)
    for what, fn in (("diff", lambda t, name: gx.diff_augment(t, params=dp, backend=name)),
                     ("cr", lambda t, name: gx.cr_augment(t, params=cp, backend=name))):  # fmt: skip
        (y, (g,), w), (y64, (g64,), _) = _fwd_bwd(fn, [x], backend)
        assert_ref64(y, y64, 4 * (x.double().abs().sum(1, keepdim=True) + 1), msg=f"{what} n={n}")
        assert_ref64(g, g64, 4 * w.double().abs().sum((1, 2, 3)).view(-1, 1, 1, 1), kind="sum", msg=f"{what} adj n={n}")


def _ada(x, prm, backend):
    """ADA forward and adjoint on ``backend`` vs the reference (float64: the same sample positions)."""
    if x.dtype != F64:
        # float32 sample positions err by ~eps32·W pixels, which moves each output by up to |∇x|·W·eps32
        # (~2e-4 here) in every float32 implementation, each at other elements (the cpu kernel sums
        # in another order than the reference). Against float64: no worse than twice the float32
        # reference's own error (a tile bug errs by a whole pixel value, ~1).
        y = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(3)).to(x.device)
        res = {}
        for name, t in ((backend, _leaf(x)), ("reference", _leaf(x)), ("ref64", _leaf(x.double()))):
            out = gx.ada_augment(t, prm, backend="reference" if name == "ref64" else name)
            res[name] = (out.detach().double(), torch.autograd.grad(out, t, y.to(out.dtype))[0].double())
        for k, what in ((0, "ada"), (1, "ada adj")):
            ref_err = (res["reference"][k] - res["ref64"][k]).abs().amax()
            err = (res[backend][k] - res["ref64"][k]).abs().amax()
            floor = 8 * torch.finfo(torch.float32).eps * res["ref64"][k].abs().amax()
            assert err <= 2 * ref_err + floor, f"{what} {tuple(x.shape)}: |err| {err:.3e} > 2 x float32 reference's {ref_err:.3e}"
        return
    (y, (g,), w), (y64, (g64,), _) = _fwd_bwd(lambda t, name: gx.ada_augment(t, prm, backend=name), [x], backend)
    C, taps = x.shape[1], 16 * 16  # colour mixing of C channels, at most 16 x 16 taps per pixel
    scale = x.abs().amax((1, 2, 3), keepdim=True) * C * taps
    assert_ref64(y, y64, scale.expand_as(y64), kind="sum", msg=f"ada {tuple(x.shape)}")
    gscale = w.abs().amax((1, 2, 3), keepdim=True) * C * taps * 4
    assert_ref64(g, g64, gscale.expand_as(g64), kind="sum", msg=f"ada adj {tuple(x.shape)}")


def _ada_params(B, H, W, device, geom=None):
    prm = gx.sample_ada_params(B, H, W, 1.0, "bgc", device=device, cutout=True,
                               generator=torch.Generator(device=device).manual_seed(B * 1000 + H * 10 + W))  # fmt: skip
    if geom is not None:
        prm["geom"] = torch.tensor(geom, dtype=torch.float32, device=device).expand(B, 2, 3).contiguous()
    return prm


def probe_ada_rows(n, backend, device, dtype):
    """ADA ``[2, 3, n, 32]``: the CPU forward's row tiles of ceil(2048/W) = 64 rows."""
    _ada(make((2, 3, n, 32), dtype, device), _ada_params(2, n, 32, device), backend)


def probe_ada_width(n, backend, device, dtype):
    """ADA ``[2, 3, 6, n]``: the reflected padding of P = max(16, ceil(W/4)) columns."""
    _ada(make((2, 3, 6, n), dtype, device), _ada_params(2, 6, n, device), backend)


def probe_ada_batch(n, backend, device, dtype):
    """ADA ``[n, 3, 10, 9]``: the CPU adjoint splits samples into ceil(8/B) row chunks (B < 8)."""
    _ada(make((n, 3, 10, 9), dtype, device), _ada_params(n, 10, 9, device), backend)


def probe_ada_chunk_rows(n, backend, device, dtype):
    """ADA ``[2, 1, n, 8]``: the CPU adjoint sums its chunk buffers in groups of 16 rows of C·H."""
    _ada(make((2, 1, n, 8), dtype, device), _ada_params(2, n, 8, device), backend)


def probe_ada_pixels(n, backend, device, dtype):
    """ADA ``[2, 3, 1, n]``: n output pixels per sample (the Triton tiles of BLOCK_P pixels)."""
    _ada(make((2, 3, 1, n), dtype, device), _ada_params(2, 1, n, device), backend)


def probe_ada_taps(n, backend, device, dtype):
    """ADA ``[2, 3, 24, 24]`` with a stretch n/4 along y (n row taps; 4·KMAX = 16 at most) and,
    transposed, along x: the Triton TAPS-wide tap tiles, the CPU vectors of taps."""
    x = make((2, 3, 24, 24), dtype, device)
    k = n / 4
    _ada(x, _ada_params(2, 24, 24, device, [[0.9, 0.2, 1.0], [0.1, k, -3.0]]), backend)
    _ada(x, _ada_params(2, 24, 24, device, [[k, 0.1, -2.0], [0.3, 1.1, 0.5]]), backend)


def _ufd_check(x, f, backend, **kw):
    f = f.to(x.dtype)  # the filter the fused run gets, in both runs
    fa = f.abs().double()
    kw_abs = dict(kw, gain=abs(kw.get("gain", 1.0)))
    (y, (g,), w), (y64, (g64,), _) = _fwd_bwd(lambda t, name: gx.upfirdn2d(t, f.to(t.dtype), backend=name, **kw), [x], backend)
    terms = gx.upfirdn2d(x.double().abs(), fa, backend="reference", **kw_abs)
    assert_ref64(y, y64, terms, kind="sum", msg=f"upfirdn2d {tuple(x.shape)} {tuple(f.shape)} {kw}")
    xa = _leaf(x.double().abs())
    (gterms,) = torch.autograd.grad(gx.upfirdn2d(xa, fa, backend="reference", **kw_abs), xa, w.abs().double())
    assert_ref64(g, g64, gterms, kind="sum", msg=f"upfirdn2d adjoint {tuple(x.shape)} {tuple(f.shape)} {kw}")


def probe_ufd_taps(n, backend, device, dtype):
    """upfirdn2d with n taps per phase: a separable n-tap filter (up 1), a 2-D ``[3, n]`` filter,
    and a ``[1, 2n]`` filter upsampled by 2 along x (n per phase); random asymmetric taps."""
    p0, p1 = n // 2, n - 1 - n // 2
    # a small plane (the CPU kernel's flat path) and a long one (its banded path; too slow interpreted)
    planes = [make((1, 1, 4, n + 6), dtype, device)]
    if not _interpreted(backend, device):
        planes.append(make((1, 1, 2, FLAT_PLANE // 2 + n), dtype, device))
    for x in planes:
        _ufd_check(x, torch.randn(n, device=device), backend, padding=[p0, p1, p0, p1])
        _ufd_check(x, torch.randn(3, n, device=device), backend, padding=[p0, p1, 1, 1], flip_filter=True)
        _ufd_check(x, torch.randn(1, 2 * n, device=device), backend, up=[2, 1], padding=[n, n - 1, 0, 0], gain=2.0)


FLAT_PLANE = 160 * 160  # csrc/cpu/upfirdn2d.cpp kFlatPlane (listed in TILES)


def probe_ufd_flat(n, backend, device, dtype):
    """upfirdn2d of an n x n plane, 3 x 3 filter 'same', 2x down and 2x up (output (2n - 1)²): the CPU
    kernel filters planes of at most kFlatPlane elements whole, larger ones in bands of rows."""
    x = make((1, 2, n, n), dtype, device)
    _ufd_check(x, torch.randn(3, 3, device=device), backend, padding=1)
    _ufd_check(x, torch.randn(4, device=device), backend, down=2, padding=1)
    _ufd_check(x, torch.randn(4, device=device), backend, up=2, padding=[1, 0, 1, 0])


def probe_ufd_factor(n, backend, device, dtype):
    """upfirdn2d of an n x n plane with StyleGAN's 4 x 4 [1, 3, 3, 1] filter (rank 1), filtering only
    (padding 2, and a crop): the CPU kernel's flat path runs it as two 1-D passes from kFactorPlane
    (32 x 32) elements on, as 2-D taps below."""
    x = make((1, 2, n, n), dtype, device)
    f = gx.setup_filter([1, 3, 3, 1]).to(device)
    _ufd_check(x, f, backend, padding=2)
    _ufd_check(x, f, backend, padding=[1, -1, 0, 1], flip_filter=True, gain=2.0)


FLAT_GROUP = 32 * 1024  # csrc/cpu/upfirdn2d.cpp kFlatGroup (listed in TILES)


def ufd_flat_group(n: int) -> int:
    """Planes per group of the CPU upfirdn2d's flat path (csrc/cpu/upfirdn2d.cpp kFlatGroup) for
    n x n planes and a 3 x 3 'same' filter: padded sub-plane (n + 3)·(n + 2) elements (one sub-plane
    in, one out)."""
    return FLAT_GROUP // (2 * (n + 3) * (n + 2))


def probe_ufd_group(n, backend, device, dtype):
    """upfirdn2d of n planes of 8 x 8 (3 x 3 'same'; the group size is ufd_flat_group(8)), and of the
    same planes 2x down (separable) and 2x up."""
    x = make((1, n, 8, 8), dtype, device)
    _ufd_check(x, torch.randn(3, 3, device=device), backend, padding=1)
    _ufd_check(x, torch.randn(4, device=device), backend, down=[2, 1], padding=[1, 1, 1, 1])
    _ufd_check(x[:, :, :, :7], torch.randn(4, device=device), backend, up=2, padding=[1, 0, 1, 0])


def probe_ufd_tile(n, backend, device, dtype):
    """upfirdn2d ``[1, 2, n // 2, n]`` outputs (a 3-tap 'same' filter): tiles of BH x BW pixels."""
    x = make((1, 2, max(1, n // 2), n), dtype, device)
    _ufd_check(x, torch.randn(3, 3, device=device), backend, padding=1)


def ufd_band_rows(W: int, dtype: torch.dtype, fh: int = 3) -> int:
    """The CPU upfirdn2d's output rows per band (csrc/cpu/upfirdn2d.cpp: rows of the band's input
    stay within 192 KiB; a 2-D filter of fh rows, up = down = 1)."""
    row_bytes = W * (8 if dtype == F64 else 4)
    budget = max(4, (192 << 10) // row_bytes)
    return budget - fh


def probe_ufd_band(n, backend, device, dtype):
    """upfirdn2d of ``[1, 1, n + 2, 1536]`` with a 3 x 3 filter: n output rows vs the band height."""
    W = 1536
    rows = ufd_band_rows(W, dtype)
    x = make((1, 1, rows + n + 2, W), dtype, device)  # n is an offset from the band height here
    _ufd_check(x, torch.randn(3, 3, device=device), backend)


# ------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Tile:
    """One constant: where it is written (``file``, a regex whose group 1 is the literal), its value,
    the size at which the boundary is crossed (``at``, default the value) and the probe that crosses
    it. ``triton``: whether the Triton backend runs it (interpreter cost)."""

    name: str
    file: str
    pattern: str
    value: int
    probe: Callable
    at: int | None = None
    triton: bool = True

    @property
    def size(self) -> int:
        return self.value if self.at is None else self.at


def _ada_row_taps_max():
    return 16  # ceil(4·KMAX)


TILES = [
    # ---- C++ CPU kernels
    Tile("cpu bias_act kBlk", "csrc/cpu/bias_act.cpp", r"constexpr int64_t kBlk = (\d+);", 256, probe_bias_inner),
    Tile("cpu bias_act kBlk (flat)", "csrc/cpu/bias_act.cpp", r"constexpr int64_t kBlk = (\d+);", 256, probe_bias_flat),
    Tile("cpu bias_act kEwTile", "csrc/cpu/bias_act.cpp", r"constexpr int64_t kEwTile = (\d+);", 16384, probe_bias_flat),
    Tile(
        "cpu bias_act kEwTile (db)",
        "csrc/cpu/bias_act.cpp",
        r"constexpr int64_t kEwTile = (\d+);",
        16384,
        probe_bias_reduce,
        triton=False,
    ),
    Tile(
        "cpu reduce kChunk (sqnorm)",
        "csrc/common/reduce.h",
        r"constexpr int64_t kChunk = (\d+);",
        16384,
        probe_sqnorm,
        triton=False,
    ),
    Tile(
        "cpu reduce kChunk (consistency)",
        "csrc/common/reduce.h",
        r"constexpr int64_t kChunk = (\d+);",
        16384,
        probe_consistency,
        triton=False,
    ),
    Tile("cpu noise kBlock", "csrc/cpu/noise.cpp", r"constexpr int64_t kBlock = (\d+);", 32, probe_noise),
    Tile(
        "cpu noise kNoiseChunk",
        "csrc/cpu/noise.cpp",
        r"constexpr int64_t kNoiseChunk = (\d+) \* kBlock;",
        256,
        probe_noise,
        at=256 * 32,
        triton=False,
    ),
    Tile(
        "cpu ada forward rows (2048 px)",
        "csrc/cpu/ada.cpp",
        r"ceil_div\((\d+), W\)\)\);  // ~2048 output pixels",
        2048,
        probe_ada_rows,
        at=2048 // 32,
        triton=False,
    ),
    Tile(
        "cpu ada pad P = max(16, W/4)",
        "csrc/cpu/ada.cpp",
        r"std::max<int64_t>\((\d+), ceil_div\(W, 4\)\)",
        16,
        probe_ada_width,
        at=64,
        triton=False,
    ),
    Tile(
        "cpu ada adjoint chunks ceil(8/B)",
        "csrc/cpu/ada.cpp",
        r"ceil_div\((\d+), std::max<int64_t>\(g\.B, 1\)\)",
        8,
        probe_ada_batch,
    ),
    Tile(
        "cpu ada adjoint kRows", "csrc/cpu/ada.cpp", r"constexpr int64_t kRows = (\d+);", 16, probe_ada_chunk_rows, triton=False
    ),
    Tile(
        "common ada kAdaMaxTaps",
        "csrc/common/ada.h",
        r"constexpr int kAdaMaxTaps = (\d+);",
        16,
        probe_ada_taps,
        at=_ada_row_taps_max() - 1,
    ),
    Tile("cpu upfirdn2d taps per register pass", "csrc/cpu/upfirdn2d.cpp", r"std::min\((\d+), nt - i0\)", 16, probe_ufd_taps),
    Tile(
        "cpu upfirdn2d unrolled tap counts",
        "csrc/cpu/upfirdn2d.cpp",
        r"case (\d+):\n\s+return fir_run<A, \d+>\(p, c, nt, n, d, acc\);\n\s+default:",
        6,
        probe_ufd_taps,
    ),
    Tile(
        "cpu upfirdn2d kFlatPlane (side)",
        "csrc/cpu/upfirdn2d.cpp",
        r"constexpr int64_t kFlatPlane = (\d+) \* \d+;",
        160,
        probe_ufd_flat,
        triton=False,
    ),
    Tile(
        "cpu upfirdn2d kFactorPlane (side)",
        "csrc/cpu/upfirdn2d.cpp",
        r"constexpr int64_t kFactorPlane = (\d+) \* \d+;",
        32,
        probe_ufd_factor,
        triton=False,
    ),
    Tile(
        "cpu upfirdn2d kFlatGroup (planes of 8 x 8)",
        "csrc/cpu/upfirdn2d.cpp",
        r"constexpr int64_t kFlatGroup = (\d+) \* 1024;",
        32,
        probe_ufd_group,
        at=ufd_flat_group(8),
        triton=False,
    ),
    Tile(
        "cpu upfirdn2d band budget (KiB)",
        "csrc/cpu/upfirdn2d.cpp",
        r"\(int64_t\((\d+)\) << 10\)",
        192,
        probe_ufd_band,
        at=0,
        triton=False,
    ),
    # ---- Triton kernels (interpreted configs run here; the GPU configs at their own sizes)
    Tile(
        "triton bias_act ELEM_INTERP BLOCK",
        "triton_kernels/bias_act.py",
        r"ELEM_INTERP = cfg\(\d+, BLOCK=(\d+)\)",
        256,
        probe_bias_flat,
    ),
    Tile(
        "triton bias_act ELEM_GPU BLOCK 1024",
        "triton_kernels/bias_act.py",
        r"ELEM_GPU = \[cfg\(\d+, BLOCK=(\d+)\)",
        1024,
        probe_bias_flat,
    ),
    Tile(
        "triton bias_act ELEM_GPU BLOCK 4096",
        "triton_kernels/bias_act.py",
        r"cfg\(\d+, BLOCK=(\d+)\)\]\nELEM_INTERP",
        4096,
        probe_bias_flat,
    ),
    Tile(
        "triton gradnorm REDUCE_INTERP BLOCK",
        "triton_kernels/gradnorm.py",
        r"REDUCE_INTERP = cfg\(\d+, BLOCK=(\d+)\)",
        256,
        probe_sqnorm,
    ),
    Tile(
        "triton gradnorm REDUCE_GPU BLOCK",
        "triton_kernels/gradnorm.py",
        r"REDUCE_GPU = cfg\(\d+, BLOCK=(\d+)\)",
        4096,
        probe_sqnorm,
    ),
    Tile(
        "triton gradnorm SCALE_GPU BLOCK",
        "triton_kernels/gradnorm.py",
        r"SCALE_GPU = \[cfg\(\d+, BLOCK=(\d+)\)",
        1024,
        probe_sqnorm,
    ),
    Tile(
        "triton gradnorm SCALE_INTERP BLOCK",
        "triton_kernels/gradnorm.py",
        r"SCALE_INTERP = cfg\(\d+, BLOCK=(\d+)\)",
        256,
        probe_sqnorm,
    ),
    Tile(
        "triton chunk INTERP_CHUNK_MAX",
        "triton_kernels/_utils.py",
        r"INTERP_CHUNK_MIN, INTERP_CHUNK_MAX = \d+, (\d+)",
        1024,
        probe_sqnorm,
    ),
    Tile(
        "triton chunk GPU_CHUNK_MIN", "triton_kernels/_utils.py", r"GPU_CHUNK_MIN, GPU_CHUNK_MAX = (\d+), \d+", 4096, probe_sqnorm
    ),
    Tile(
        "triton consistency DIFF_SCALE_INTERP BLOCK",
        "triton_kernels/consistency.py",
        r"DIFF_SCALE_INTERP = cfg\(\d+, BLOCK=(\d+)\)",
        512,
        probe_consistency,
    ),
    Tile(
        "triton consistency DIFF_SCALE_GPU BLOCK",
        "triton_kernels/consistency.py",
        r"DIFF_SCALE_GPU = \[cfg\(\d+, BLOCK=(\d+)\)",
        1024,
        probe_consistency,
    ),
    Tile(
        "triton noise DOT_INTERP BLOCK_C",
        "triton_kernels/noise.py",
        r"DOT_INTERP = cfg\(\d+, BLOCK_C=(\d+)\)",
        64,
        probe_noise,
        at=4 * 64,
    ),  # 4 elements per counter
    Tile(
        "triton noise AXPY_INTERP BLOCK_C",
        "triton_kernels/noise.py",
        r"AXPY_INTERP = cfg\(\d+, BLOCK_C=(\d+)\)",
        64,
        probe_noise,
        at=4 * 64,
    ),
    Tile(
        "triton noise DOT_GPU BLOCK_C",
        "triton_kernels/noise.py",
        r"DOT_GPU = cfg\(\d+, BLOCK_C=(\d+)\)",
        512,
        probe_noise,
        at=4 * 512,
    ),
    Tile(
        "triton noise AXPY_GPU BLOCK_C",
        "triton_kernels/noise.py",
        r"AXPY_GPU = \[cfg\(\d+, BLOCK_C=(\d+)\)",
        256,
        probe_noise,
        at=4 * 256,
    ),
    Tile(
        "triton augment TILE_INTERP BLOCK_P",
        "triton_kernels/augment.py",
        r"TILE_INTERP = cfg\(\d+, BLOCK_P=(\d+)\)",
        512,
        probe_augment,
    ),
    Tile(
        "triton augment TILE_GPU BLOCK_P",
        "triton_kernels/augment.py",
        r"TILE_GPU = \[cfg\(\d+, BLOCK_P=(\d+)\)",
        256,
        probe_augment,
    ),
    Tile("triton augment SUM_P", "triton_kernels/augment.py", r"SUM_P = (\d+)", 256, probe_augment),
    Tile(
        "triton ada TILE_INTERP BLOCK_P",
        "triton_kernels/ada.py",
        r"TILE_INTERP = cfg\(\d+, BLOCK_P=(\d+)\)",
        512,
        probe_ada_pixels,
    ),
    Tile("triton ada TILE_GPU BLOCK_P", "triton_kernels/ada.py", r"TILE_GPU = \[cfg\(\d+, BLOCK_P=(\d+)\)", 32, probe_ada_pixels),
    Tile("triton ada ADJ_P (GPU)", "triton_kernels/ada.py", r"ADJ_P = pick\((\d+), \d+\)", 64, probe_ada_pixels),
    Tile("triton ada ADJ_P (interpreted)", "triton_kernels/ada.py", r"ADJ_P = pick\(\d+, (\d+)\)", 512, probe_ada_pixels),
    Tile("triton ada TAPS", "triton_kernels/ada.py", r"TAPS = tl\.constexpr\((\d+)\)", 8, probe_ada_taps),
    Tile(
        "triton upfirdn2d TILE_INTERP BW",
        "triton_kernels/upfirdn2d.py",
        r"TILE_INTERP = cfg\(\d+, BH=\d+, BW=(\d+)\)",
        32,
        probe_ufd_tile,
    ),
    Tile(
        "triton upfirdn2d TILE_GPU BW",
        "triton_kernels/upfirdn2d.py",
        r"TILE_GPU = \[\n    cfg\(\d+, BH=\d+, BW=(\d+)\)",
        64,
        probe_ufd_tile,
    ),
    Tile(
        "triton upfirdn2d TILE_INTERP BH",
        "triton_kernels/upfirdn2d.py",
        r"TILE_INTERP = cfg\(\d+, BH=(\d+), BW=\d+\)",
        16,
        probe_ufd_tile,
        at=32,
    ),
]
IDS = [t.name.replace(" ", "_") for t in TILES]


@pytest.mark.parametrize("tile", TILES, ids=IDS)
def test_listed_value_is_in_the_source(tile):
    """The table holds what the code says (a changed constant fails here until the table follows)."""
    text = (ROOT / tile.file).read_text()
    found = re.findall(tile.pattern, text)
    assert found, f"{tile.file}: pattern of {tile.name!r} not found: {tile.pattern}"
    assert all(int(v) == tile.value for v in found), f"{tile.file}: {tile.name} is {found}, the table says {tile.value}"


def test_every_tile_constant_of_the_kernels_is_listed():
    """Each ALL-CAPS/kConstant integer assignment of the CPU and Triton kernel files that names a
    tile, block, chunk, row or tap count appears in the table (or in the list of non-tile ones)."""
    not_tiles = {  # constants that size no work split: limits, algebra, table layouts, memory
        "kMaxDims", "kMaxOps", "kNumActs", "kMaxActOrder", "kActPolyLen", "kAdaMaxColor", "kHuge", "kStreamBytes",
        "MAX_PLANE", "MAX_SIDE", "MAX_PROGRAMS", "kReuseBytes", "kV", "SELU_ALPHA", "SELU_LAMBDA", "KEY", "MAXD", "NC", "ROW", "MAX_COLOR_CHANNELS", "ADJ_WARPS", "FINISH_BLOCK", "GPU_CHUNK_MAX", "INTERP_CHUNK_MIN", "KMAX",
        "kBlock (cpu_utils.h: 2 vectors)", "kPrefetchRows (upfirdn2d.cpp: a prefetch distance, no work split)",
    }  # fmt: skip
    listed = " ".join(t.name for t in TILES) + " " + " ".join(t.pattern for t in TILES)
    names = set()
    for f in list((ROOT / "csrc/cpu").glob("*.[ch]*")) + [ROOT / "csrc/common/reduce.h", ROOT / "csrc/common/ada.h"]:
        names |= set(re.findall(r"constexpr (?:int|int64_t|size_t) (k[A-Z]\w*) = ", f.read_text()))
    for f in (ROOT / "triton_kernels").glob("*.py"):
        names |= set(
            re.findall(r"^([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)?) = (?:tl\.constexpr\()?(?:pick\()?\d", f.read_text(), re.M)
        )
        names |= set(re.findall(r"^([A-Z][A-Z0-9_]*) = (?:cfg\(|\[)", f.read_text(), re.M))
    names = {n for part in names for n in part.split(", ")}
    missing = sorted(n for n in names if n not in listed and n not in not_tiles and not any(n in s for s in not_tiles))
    assert not missing, f"tile constants missing from tests/test_tiles.py TILES: {missing}"


def _cases():
    for tile in TILES:
        for d in (-1, 0, 1):
            yield pytest.param(tile, tile.size + d, id=f"{tile.name.replace(' ', '_')}-{tile.size + d}")


def _interpreted(backend, device):
    return backend == "triton" and torch.device(device).type == "cpu"


@fused
@pytest.mark.parametrize("tile,n", list(_cases()))
def test_tile_boundary_matches_the_reference(backend, device, tile, n, seed):
    """size − 1, size, size + 1 at every listed constant: float64 (and float32 on the native CPU
    backend, whose vectors are twice as wide) against the float64 reference."""
    need(backend)
    if _interpreted(backend, device) and not tile.triton:
        pytest.skip("a CPU-kernel constant too large for the Triton interpreter (its own tiles are listed)")
    dtypes = [F64] if _interpreted(backend, device) else [F64, torch.float32]
    for dtype in dtypes:
        tile.probe(n, backend, device, dtype)


@fused
def test_stylegan3_filter_sizes(backend, device, seed):
    """StyleGAN3's 24-tap filters (more than 16 taps per phase) and up=2 with a 48-tap filter."""
    need(backend, "upfirdn2d")
    probe_ufd_taps(24, backend, device, F64)


def test_probe_catches_a_shifted_tile():
    """The probes fail on a wrong tile: the same bound with one element moved by one position."""
    x = make((300,), F64)
    y = gx.bias_act(x, act="swish", backend="reference")
    bad = y.clone()
    bad[256:] = torch.roll(y[256:], 1)
    with pytest.raises(AssertionError, match="error bound"):
        assert_ref64(bad, y, 2 * (x.abs() + 1))


def test_band_rows_formula_is_the_source():
    """ufd_band_rows mirrors the CPU kernel's band height: its expressions are in the source."""
    text = (ROOT / "csrc/cpu/upfirdn2d.cpp").read_text()
    assert "std::max<int64_t>(4, (int64_t(192) << 10) / std::max<int64_t>(1, row_bytes))" in text
    assert "(budget_rows - vt) * upy / downy" in text
    assert ufd_band_rows(1536, torch.float32) == 29 and math.ceil(3 / 1) == 3


def test_flat_group_formula_is_the_source():
    """ufd_flat_group mirrors the flat path's group size (kFlatGroup over the buffers of one plane)."""
    text = (ROOT / "csrc/cpu/upfirdn2d.cpp").read_text()
    assert f"constexpr int64_t kFlatGroup = {FLAT_GROUP // 1024} * 1024;" in text
    assert "kFlatGroup / ((nsub + nh + nout) * sub)" in text and "const int64_t sub = (Hr + 1) * Wr;" in text
    assert ufd_flat_group(8) == 148  # Wr = Hr = 8 + 2 (one pad each side), sub = 11 * 10


def test_flat_groups_give_each_plane_its_own_result(seed):
    """The CPU kernel's flat path filters planes in groups (kFlatGroup): a batch gives every plane
    exactly the result it gets alone (four dtypes, strided and channels_last inputs, down/up along
    one axis or both). The float64 comparisons of the table bound the error; this pins the bits."""
    backend, device = "cpu", "cpu"
    need(backend, "upfirdn2d")
    for i, (dtype, up, down, f) in enumerate(
        [
            (F64, [1, 1], [2, 1], torch.randn(4)),
            (torch.float32, [1, 1], [2, 2], torch.randn(4)),
            (torch.float16, [2, 1], [1, 2], torch.randn(3, 3)),
            (torch.bfloat16, [2, 2], [1, 1], torch.randn(5)),
            (torch.float32, [3, 1], [2, 1], torch.randn(3, 4)),
        ]
    ):
        x = make((3, 50, 9, 10), dtype, device)
        if i % 3 == 1:
            x = x.contiguous(memory_format=torch.channels_last)
        elif i % 3 == 2:
            x = x.transpose(2, 3).contiguous().transpose(2, 3)
        kw = dict(up=up, down=down, padding=[1, 2, 0, 1], gain=1.5, backend=backend)
        y = gx.upfirdn2d(x, f.to(device), **kw)
        alone = torch.stack(
            [torch.stack([gx.upfirdn2d(x[n : n + 1, c : c + 1], f.to(device), **kw)[0, 0] for c in range(50)]) for n in range(3)]
        )
        assert torch.equal(y, alone), f"case {i}: a plane's result depends on its batch"


# ------------------------------------------------------------------------------------- gradchecks
# float64 gradcheck (fast mode: one random projection; the full Jacobian of a tile-sized input is
# too slow) through a tile boundary of the table, and gradgradcheck where the op runs under
# create_graph in training (bias_act and upfirdn2d inside D for R1; ADA's double backward is linear).


def _grad_cases(device):
    g = torch.Generator().manual_seed(5)
    f17 = torch.randn(1, 17, generator=g, dtype=F64).to(device)  # 17 taps per phase (> 16 per register pass)
    f33 = torch.randn(3, 3, generator=g, dtype=F64).to(device)
    ada9 = _ada_params(9, 4, 5, device)  # batch 9: the CPU adjoint's chunking at B >= 8
    ada_taps = _ada_params(2, 12, 12, device, [[0.9, 0.2, 1.0], [0.1, 9 / 4, -3.0]])  # 9 row taps (> TAPS = 8)
    return [
        ("bias_act db past kBlk=256", lambda x, b, be: gx.bias_act(x, b, 1, "swish", clamp=2.5, backend=be), [(2, 257), (257,)], True),
        ("bias_act past BLOCK=256", lambda x, be: gx.bias_act(x, act="tanh", gain=1.3, backend=be), [(257,)], True),
        ("upfirdn2d 17 taps", lambda x, be: gx.upfirdn2d(x, f17, padding=[8, 8, 0, 0], backend=be), [(1, 1, 2, 20)], True),
        ("upfirdn2d tile BW=32", lambda x, be: gx.upfirdn2d(x, f33, up=[1, 1], padding=1, backend=be), [(1, 1, 3, 33)], True),
        ("ada batch 9", lambda x, be: gx.ada_augment(x, ada9, backend=be), [(9, 1, 4, 5)], False),
        ("ada 9 row taps", lambda x, be: gx.ada_augment(x, ada_taps, backend=be), [(2, 1, 12, 12)], False),
    ]  # fmt: skip


@fused
@pytest.mark.parametrize("k", range(6), ids=["bias_db_kBlk", "bias_BLOCK", "ufd_17taps", "ufd_BW", "ada_B9", "ada_taps9"])
def test_gradcheck_across_a_tile(backend, device, k, seed):
    name, fn, shapes, second = _grad_cases(device)[k]
    need(backend)
    ins = tuple(torch.randn(s, dtype=F64, device=device).requires_grad_() for s in shapes)
    f = lambda *t: fn(*t, backend)  # noqa: E731
    nondet = 1e-12 if backend in ATOMIC_ADJOINT else 0.0
    assert torch.autograd.gradcheck(f, ins, fast_mode=True, nondet_tol=nondet), name
    if second:
        assert torch.autograd.gradgradcheck(f, ins, fast_mode=True, nondet_tol=nondet), name
