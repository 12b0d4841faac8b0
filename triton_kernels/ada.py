"""ADA family (adaptive discriminator augmentation): the fused pipe and the exact adjoint of its
linear part. Semantics: ``ganreg_ext/reference/ada.py`` (module docstring); schemas and autograd:
``ganreg_ext/ops/ada.py``.

Per sample ``b``, output pixel ``(x, y)`` (column, row), channel ``o``::

    (u, v) = geom[b] · (x, y, 1)
    r_c    = Σ_j wy_j · Σ_i wx_i · x[b, c, R_H(j), R_W(i)]
    y[o]   = keep · (Σ_c color[b, o, c] · r_c + affine · color[b, o, C])

Resampling: the Keys cubic (a = −0.5) stretched by ``kx = clamp(hypot(g00, g01), 1, 4)`` (``ky``
from row 1), taps ``i = floor(u − 2kx) + 1 + t`` for ``t < ceil(4kx)`` — a per-sample scalar loop
bound, since one program handles one sample × ``BLOCK_P`` output pixels — weights normalised to
sum 1 per axis (first a pass summing them, then each weight divided by the sum, as the reference
does), indices reflected with period ``2(n − 1)``. The x taps go ``TAPS`` (8, a fixed constant,
never tuned: it sets the summation order) at a time: their weights and reflected columns are
computed once per step and serve every row ``j`` (a ``[CB, BLOCK_P, TAPS]`` gather per row, summed
over the taps, times ``wy_j``); one step covers ``kx ≤ 2``. The rows' weights and reflected indices
are computed ``TAPS`` at a time too, as ``[BLOCK_P, TAPS]`` tiles from which each row picks its
column (an exact select-and-sum), so the loops run few, cheap operations. The stretch's ``hypot`` is evaluated in float64
and rounded (correctly rounded for float32 parameters), divisions are IEEE round-to-nearest
(``tl.div_rn`` in float32: Triton's plain ``/`` is approximate there), so the identity map gives
weights exactly ``[0, 1, 0, 0]`` and reproduces ``x`` bitwise, and flips, 90° rotations and
integer shifts move pixels exactly.

Colour: ``C ≤ 4`` channels when a matrix is given (``MIXC = C``, a constexpr: the mixing is
unrolled, all channels in one ``[CB, BLOCK_P]`` tile); without one any ``C``, in channel blocks of
``CB``. Cutout: a multiplication by the 0/1 mask, as the reference (NaN and inf propagate alike).

Inputs are read in place through their four strides (contiguous, channels_last, any strided or
expanded view); the small parameter tables are made contiguous. Coordinates, weights and sums are
in float32 (float64 for float64 inputs); outputs are contiguous NCHW in the input dtype. The
forward sums in a fixed per-pixel order (bitwise reproducible; its tile is autotuned on GPU, keyed
by the size class). The adjoint scatters with atomics (see :func:`ada_augment_adj`).
"""

from __future__ import annotations

import warnings

import torch
import triton
import triton.language as tl

from ganreg_ext._contract import acc_dtype, empty

from ._utils import (
    autotuned,
    ceil_div,
    cfg,
    div_rn,
    fsum,
    full_like,
    helper,
    launcher,
    pick,
    pixel_grid,
    pixel_tile,
    size_class,
    tl_dtype,
)

KMAX = tl.constexpr(4.0)  # largest filter stretch (reference.ada.KMAX)
MAX_COLOR_CHANNELS = 4  # colour matrices [B, C, C + 1] with C ≤ 4 (the mixing is unrolled)
TAPS = tl.constexpr(8)  # x taps per vector step: one step covers kx <= 2 (a fixed order, never tuned)
# tiles of ≤ 16 gathered elements ([CB ≤ 4, BLOCK_P, TAPS]) per thread: no float64 spills on sm_90
TILE_GPU = [cfg(2, BLOCK_P=32), cfg(4, BLOCK_P=64), cfg(8, BLOCK_P=128)]
TILE_INTERP = cfg(4, BLOCK_P=512)  # interpreted: few programs
ADJ_P = pick(64, 512)  # the adjoint's fixed tile (atomics: an autotuner rerun would add twice)
ADJ_WARPS = 4
# int32 limits, checked by the launchers (_check): pixel indices p < H·W + BLOCK_P and H·W itself are
# int32 (also in _utils.pixel_tile); a tap index, reduced modulo 2(n − 1), plus a tap number stays
# int32 (_axis); one program per (sample, tile) on grid axis 0, at most 2**31 − 1 of them.
MIN_TILE = min([c.kwargs["BLOCK_P"] for c in TILE_GPU] + [TILE_INTERP.kwargs["BLOCK_P"], ADJ_P])
MAX_PLANE = 2**31 - 1 - 1024  # H·W: room for a tile (BLOCK_P ≤ 1024) past the last pixel
MAX_SIDE = 2**30 - 16  # H, W: 2(n − 1) + 16 taps < 2**31
MAX_PROGRAMS = 2**31 - 1


def _cb(C: int) -> int:
    """Channel block: every channel of a colour-mixed image (C ≤ 4) at once, else blocks of 4."""
    return min(triton.next_power_of_2(C), MAX_COLOR_CHANNELS)


# ------------------------------------------------------------------------------- jit helpers


_div = div_rn  # a / b rounded to nearest (b broadcast to a's shape first): tl.div_rn in float32


@helper
def _keys(s):
    """Keys' cubic convolution kernel (a = −0.5), the reference's operation order."""
    a = tl.abs(s)
    a2 = a * a
    a3 = a2 * a
    near = 1.5 * a3 - 2.5 * a2 + 1.0
    far = -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    return tl.where(a <= 1.0, near, tl.where(a < 2.0, far, 0.0))


@helper
def _reflect(i, n):
    """Reflect padding, periodic with period ``2(n − 1)`` (``n == 1`` → 0): always in ``[0, n)``."""
    per = tl.maximum(2 * (n - 1), 1)
    m = i % per
    m = tl.where(m < 0, m + per, m)
    return tl.where(m >= n, 2 * (n - 1) - m, m)


@helper
def _axis(gb, xf, yf, size, ACC: tl.constexpr):
    """One axis of the map, from its row ``gb`` of ``geom``, for an input axis of ``size`` pixels:
    positions ``pos`` ``[BLOCK_P]``, the stretch ``k`` (broadcast), the first tap (as a float, and as
    an int32 index reduced modulo the reflection period: see below), the tap count (a scalar) and the
    sum of the unnormalised weights.

    The first tap becomes an int64 index (0 for NaN or beyond ±4e18, as ``common/ada.h``'s
    ``ada_index``), reduced modulo the reflection period ``2(size − 1)`` in int64; the reduced index
    plus a tap number (< 16) fits int32 as the launcher checks ``size ≤ MAX_SIDE = 2**30 − 16``, so
    reflecting it gives the reference's index for any position (an int32 conversion of the position
    itself overflowed beyond ±2**31)."""
    g0 = tl.load(gb + 0).to(ACC)
    g1 = tl.load(gb + 1).to(ACC)
    g2 = tl.load(gb + 2).to(ACC)
    pos = g0 * xf + g1 * yf + g2
    a = g0.to(tl.float64)
    c = g1.to(tl.float64)
    h = tl.sqrt(a * a + c * c).to(ACC)  # hypot: products exact in float64, IEEE sqrt there
    k = tl.minimum(tl.maximum(h, 1.0), KMAX)
    first = tl.floor(pos - 2.0 * k) + 1.0
    n = tl.ceil(4.0 * k).to(tl.int32)
    kv = full_like(pos, k)
    tot = full_like(pos, 0)
    for t0 in range(0, n, TAPS):
        t = t0 + tl.arange(0, TAPS)
        w = _keys(_div(pos[:, None] - (first[:, None] + t[None, :]), kv[:, None], ACC))
        tot += fsum(tl.where((t < n)[None, :], w, 0.0), 1)
    i0 = tl.where(tl.abs(first) < 4.0e18, first, 0.0).to(tl.int64)
    per = tl.maximum(2 * (size - 1), 1)  # int32 (size ≤ MAX_SIDE), i0 % per in int64
    i0 = i0 % per
    i0 = tl.where(i0 < 0, i0 + per, i0)  # in [0, per): the same reflection, int32-safe
    return pos, kv, first, i0.to(tl.int32), n, tot


@helper
def _pick(wyt, iyt, j, TAPS: tl.constexpr):
    """Row ``j`` of a ``TAPS``-row tile: its weight and reflected index ``[BLOCK_P]`` (an exact
    select-and-sum over the tile's columns)."""
    sel = (tl.arange(0, TAPS) == j)[None, :]
    return fsum(tl.where(sel, wyt, 0.0), 1), fsum(tl.where(sel, iyt, 0), 1).to(tl.int64)


@helper
def _weights(pos, kv, first, t, tot, ACC: tl.constexpr):
    """Normalised weights ``[BLOCK_P, TAPS]`` of the taps ``t`` ``[TAPS]``."""
    return _div(_keys(_div(pos[:, None] - (first[:, None] + t[None, :]), kv[:, None], ACC)), tot[:, None], ACC)


@helper
def _keep(cut_ptr, b, row, col, H, W, ACC: tl.constexpr):
    """1 outside the sample's cutout rectangle, 0 inside (``[BLOCK_P]``, ``ACC``)."""
    cx = tl.load(cut_ptr + b * 3 + 0).to(ACC)
    cy = tl.load(cut_ptr + b * 3 + 1).to(ACC)
    half = tl.load(cut_ptr + b * 3 + 2).to(ACC) * 0.5
    xs = _div(col.to(ACC) + 0.5, W, ACC)
    ys = _div(row.to(ACC) + 0.5, H, ACC)
    out = (tl.abs(xs - cx) >= half) | (tl.abs(ys - cy) >= half)
    return out.to(ACC)


# ----------------------------------------------------------------------------------- kernels


@autotuned(TILE_GPU, TILE_INTERP, key=["MIXC", "CB", "size_class"])
@triton.jit
def _ada_fwd_kernel(
    x_ptr,
    out_ptr,
    geom_ptr,
    color_ptr,
    cut_ptr,
    C,
    H,
    W,
    sxb,
    sxc,
    sxh,
    sxw,
    size_class,
    MIXC: tl.constexpr,
    AFFINE: tl.constexpr,
    CUT: tl.constexpr,
    ACC: tl.constexpr,
    CB: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """One sample × ``BLOCK_P`` output pixels: resample, mix (``MIXC`` channels, 0 = no matrix),
    cut out; every channel block of ``CB``."""
    b, p, pm, row, col = pixel_tile(tl.program_id(0), H, W, BLOCK_P)
    xf = col.to(ACC)
    yf = row.to(ACC)
    u, kx, fx, ix0, nx, sx = _axis(geom_ptr + b * 6, xf, yf, W, ACC)
    v, ky, fy, iy0, ny, sy = _axis(geom_ptr + b * 6 + 3, xf, yf, H, ACC)
    if CUT:
        keep = _keep(cut_ptr, b, row, col, H, W, ACC)
    HW = H * W
    for c0 in range(0, C, CB):
        cc = c0 + tl.arange(0, CB)
        cm = (cc < C)[:, None] & pm[None, :]
        base = x_ptr + b * sxb + cc.to(tl.int64)[:, None, None] * sxc
        acc = tl.zeros([CB, BLOCK_P], ACC)
        for t0 in range(0, nx, TAPS):  # TAPS x taps at a time: their weights and columns serve every row
            t = t0 + tl.arange(0, TAPS)
            wx = _weights(u, kx, fx, t, sx, ACC)  # [BLOCK_P, TAPS]
            cols = base + (_reflect(ix0[:, None] + t[None, :], W).to(tl.int64) * sxw)[None, :, :]
            m3 = cm[:, :, None] & (t < nx)[None, None, :]
            for s0 in range(0, ny, TAPS):  # rows TAPS at a time: weights and offsets as tiles, one picked per row
                s = s0 + tl.arange(0, TAPS)
                wyt = _weights(v, ky, fy, s, sy, ACC)
                iyt = _reflect(iy0[:, None] + s[None, :], H)  # int32: half the registers of offsets
                for j in range(0, tl.minimum(ny - s0, TAPS)):
                    wy, iy = _pick(wyt, iyt, j, TAPS)
                    xv = tl.load(cols + (iy * sxh)[None, :, None], mask=m3, other=0)
                    acc += fsum(xv.to(ACC) * wx[None, :, :], 2) * wy[None, :]
        if MIXC:  # y[o] = Σ_c color[o, c]·r_c (+ color[o, C]), unrolled over c; here c0 == 0
            cb = color_ptr + b * (MIXC * (MIXC + 1)) + cc * (MIXC + 1)  # row o = cc
            om = cc < MIXC
            y = tl.zeros([CB, BLOCK_P], ACC)
            for c in tl.static_range(MIXC):
                rc = fsum(tl.where((cc == c)[:, None], acc, 0.0), 0)
                y += tl.load(cb + c, mask=om, other=0).to(ACC)[:, None] * rc[None, :]
            if AFFINE:
                y += tl.load(cb + MIXC, mask=om, other=0).to(ACC)[:, None]
            acc = y
        if CUT:
            acc = acc * keep[None, :]
        dst = out_ptr + (b * C + cc.to(tl.int64))[:, None] * HW + p[None, :]
        tl.store(dst, acc.to(out_ptr.dtype.element_ty), mask=cm)


@triton.jit
def _ada_adj_kernel(
    g_ptr,
    out_ptr,
    geom_ptr,
    color_ptr,
    cut_ptr,
    C,
    H,
    W,
    sgb,
    sgc,
    sgh,
    sgw,
    MIXC: tl.constexpr,
    CUT: tl.constexpr,
    ACC: tl.constexpr,
    CB: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """One sample × ``BLOCK_P`` output pixels ``p``: ``h_c = keep·Σ_o color[o, c]·g[o, p]``, added
    to the taps of ``p`` with weights ``wx·wy`` in the zeroed ``out`` (``ACC``, contiguous NCHW).
    Zero contributions are not issued (adding 0 changes nothing; NaN and inf still are)."""
    b, p, pm, row, col = pixel_tile(tl.program_id(0), H, W, BLOCK_P)
    xf = col.to(ACC)
    yf = row.to(ACC)
    u, kx, fx, ix0, nx, sx = _axis(geom_ptr + b * 6, xf, yf, W, ACC)
    v, ky, fy, iy0, ny, sy = _axis(geom_ptr + b * 6 + 3, xf, yf, H, ACC)
    if CUT:
        keep = _keep(cut_ptr, b, row, col, H, W, ACC)
    src = g_ptr + b * sgb + row.to(tl.int64) * sgh + col.to(tl.int64) * sgw
    for c0 in range(0, C, CB):
        cc = c0 + tl.arange(0, CB)
        cm = (cc < C)[:, None] & pm[None, :]
        h = tl.load(src[None, :] + cc.to(tl.int64)[:, None] * sgc, mask=cm, other=0).to(ACC)
        if MIXC:  # h[c] = Σ_o color[o, c]·g[o], unrolled over o; here c0 == 0
            cb = color_ptr + b * (MIXC * (MIXC + 1)) + cc  # column c = cc
            om = cc < MIXC
            hm = tl.zeros([CB, BLOCK_P], ACC)
            for o in tl.static_range(MIXC):
                go = fsum(tl.where((cc == o)[:, None], h, 0.0), 0)
                hm += tl.load(cb + o * (MIXC + 1), mask=om, other=0).to(ACC)[:, None] * go[None, :]
            h = hm
        if CUT:
            h = h * keep[None, :]
        dst = out_ptr + (b * C + cc.to(tl.int64))[:, None, None] * (H * W)
        for t0 in range(0, nx, TAPS):
            t = t0 + tl.arange(0, TAPS)
            wx = _weights(u, kx, fx, t, sx, ACC)  # [BLOCK_P, TAPS]
            cols = dst + _reflect(ix0[:, None] + t[None, :], W).to(tl.int64)[None, :, :]
            m3 = cm[:, :, None] & (t < nx)[None, None, :]
            for s0 in range(0, ny, TAPS):
                s = s0 + tl.arange(0, TAPS)
                wyt = _weights(v, ky, fy, s, sy, ACC)
                iyt = _reflect(iy0[:, None] + s[None, :], H)
                for j in range(0, tl.minimum(ny - s0, TAPS)):
                    wy, iy = _pick(wyt, iyt, j, TAPS)
                    val = h[:, :, None] * (wy[:, None] * wx)[None, :, :]
                    ptr = cols + (iy * W)[None, :, None]
                    tl.atomic_add(ptr, val, mask=m3 & (val != 0), sem="relaxed")


# --------------------------------------------------------------------------------- launchers


def _check(x, geom, color, cutout, name: str) -> tuple[int, int, int, int]:
    if x.dim() != 4:
        raise ValueError(f"{name}: the image must be 4-D NCHW, got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    if H * W > MAX_PLANE or max(H, W) > MAX_SIDE or B * ceil_div(H * W, MIN_TILE) > MAX_PROGRAMS:
        raise ValueError(
            f"{name}: a {B}x{C}x{H}x{W} image is too large for the Triton ADA kernels, which index pixels "
            f"in int32: H·W must be at most {MAX_PLANE}, H and W at most {MAX_SIDE}, and B·ceil(H·W/{MIN_TILE}) "
            f"at most {MAX_PROGRAMS} (the launch grid); use the cpu or cuda backend"
        )
    if tuple(geom.shape) != (B, 2, 3):
        raise ValueError(f"{name}: geom must be [{B}, 2, 3], got {tuple(geom.shape)}")
    if color is not None:
        if C > MAX_COLOR_CHANNELS or tuple(color.shape) != (B, C, C + 1):
            raise ValueError(
                f"{name}: color must be [B, C, C + 1] with C <= {MAX_COLOR_CHANNELS} "
                f"(got {tuple(color.shape)} for an image of shape {tuple(x.shape)})"
            )
    if cutout is not None and tuple(cutout.shape) != (B, 3):
        raise ValueError(f"{name}: cutout must be [{B}, 3], got {tuple(cutout.shape)}")
    for t in (geom, color, cutout):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: parameters on {t.device}, the image on {x.device}")
    return B, C, H, W


@launcher
def ada_augment(x, geom, color, cutout, affine):
    """ADA pipe of ``x`` ``[B, C, H, W]`` (any strides, float16/bfloat16/float32/float64): resample
    each sample through ``geom`` ``[B, 2, 3]`` (output pixel → input position), mix channels by
    ``color`` ``[B, C, C + 1]`` (``C ≤ 4``; plus its last column when ``affine``; None: identity),
    zero ``cutout`` ``[B, 3]`` = ``(cx, cy, size)`` rectangles (None: none) → contiguous NCHW in
    ``x``'s dtype. One launch; math in float32 (float64 for float64); no host sync."""
    B, C, H, W = _check(x, geom, color, cutout, "ada_augment")
    out = empty((B, C, H, W), x.dtype, x.device)
    if out.numel() == 0:
        return out
    geom = geom.contiguous()  # tiny per-sample tables, read row-major
    mixc = 0 if color is None else C
    _ada_fwd_kernel[pixel_grid(B, H, W)](
        x,
        out,
        geom,
        geom if color is None else color.contiguous(),  # placeholder pointers, never read
        geom if cutout is None else cutout.contiguous(),
        C,
        H,
        W,
        *x.stride(),
        size_class(out.numel()),
        MIXC=mixc,
        AFFINE=bool(affine) and mixc > 0,
        CUT=cutout is not None,
        ACC=tl_dtype(acc_dtype(x.dtype)),
        CB=_cb(C),
    )
    return out


@launcher
def ada_augment_adj(g, geom, color, cutout):
    """The exact adjoint of the linear part of :func:`ada_augment` (``affine=False``) applied to
    ``g`` ``[B, C, H, W]`` (any strides): ``gx[b, c] = Σ_p keep(p)·Σ_o color[b, o, c]·g[b, o, p]``
    scattered to the taps of output pixel ``p`` with weights ``wx·wy`` (reflection included) →
    contiguous NCHW in ``g``'s dtype.

    The scatter is ``tl.atomic_add`` into a zeroed float32 (float64 for float64 ``g``) buffer,
    converted to ``g``'s dtype at the end. On a GPU the order of the atomic adds is not fixed, so the
    result is not bitwise reproducible (like torch's ``grid_sample`` backward); float64 sums round
    far below float32 precision. Under the interpreter the order is fixed."""
    B, C, H, W = _check(g, geom, color, cutout, "ada_augment_adj")
    if g.is_cuda and torch.are_deterministic_algorithms_enabled():  # as the CUDA kernel (and torch's own atomics)
        msg = "ganreg_triton::ada_augment_adj adds with atomics and is not deterministic on a GPU"
        if not torch.is_deterministic_algorithms_warn_only_enabled():
            raise RuntimeError(msg + "; turn off torch.use_deterministic_algorithms or use the cpu backend")
        warnings.warn(msg, stacklevel=2)
    acc = acc_dtype(g.dtype)
    if g.numel() == 0:
        return empty((B, C, H, W), g.dtype, g.device)
    buf = torch.zeros((B, C, H, W), dtype=acc, device=g.device)
    geom = geom.contiguous()
    _ada_adj_kernel[(B * ceil_div(H * W, ADJ_P),)](
        g,
        buf,
        geom,
        geom if color is None else color.contiguous(),
        geom if cutout is None else cutout.contiguous(),
        C,
        H,
        W,
        *g.stride(),
        MIXC=0 if color is None else C,
        CUT=cutout is not None,
        ACC=tl_dtype(acc),
        CB=_cb(C),
        BLOCK_P=ADJ_P,
        num_warps=ADJ_WARPS,
    )
    if g.dtype == acc:
        return buf
    out = empty((B, C, H, W), g.dtype, g.device)
    out.copy_(buf)
    return out
