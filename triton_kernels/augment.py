"""Augmentation family: DiffAugment and the CR transform, forward and exact adjoint.

Every kernel owns a tile of ``BLOCK_P`` output pixels of one sample and walks the channels in
blocks of ``CB``; per-sample parameters are read from the packed ``fparams``/``iparams`` tensors
(no host sync). Inputs are read in place through their four strides (any layout); outputs are
contiguous NCHW in the input dtype, colour math in float32 (float64 for float64).

Per-sample means: the channel mean of a pixel is local (a first pass over the channel blocks);
the ``C·H·W`` mean that contrast needs is a per-sample reduction done first by a small kernel
(forward: the split-K sum of ``x``; adjoint: the same tile kernel in ``SUM_ONLY`` mode summing
``Tᵀ(mask·g)``) with FIXED tiles, reduced in a fixed order, then read by the main kernel. The
elementwise kernels are autotuned, keyed by ``size_class``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ganreg_ext._contract import BRIGHTNESS, CONTRAST, CUTOUT, RED_NONE, SATURATION, TRANSLATION, acc_dtype, empty

from ._utils import autotuned, ceil_div, cfg, finish, helper, launcher, pixel_grid, pixel_tile, size_class, tl_dtype
from .gradnorm import MODE_SUM, multi_reduce

TILE_GPU = [cfg(4, BLOCK_P=256), cfg(4, BLOCK_P=512), cfg(8, BLOCK_P=1024)]
TILE_INTERP = cfg(4, BLOCK_P=512)
SUM_P = 256  # fixed tile of the adjoint's SUM_ONLY pass (a reduction: never tuned)
KEY = ["FLAGS", "CB", "size_class"]


@helper
def _source(b, i, j, pm, i_ptr, H, W, ch, cw, FLAGS: tl.constexpr, SIGN: tl.constexpr):
    """DiffAugment geometry: ``(si, sj)`` = (i, j) shifted by ``SIGN·t`` and the pixels that are
    kept (in range after the shift, outside the cutout square, tested at the *output* position
    ``(i, j)`` for the forward (SIGN=+1) and at the shifted position for the adjoint (SIGN=−1))."""
    si = i
    sj = j
    ok = pm
    if FLAGS & 8:
        tx = tl.load(i_ptr + b * 4 + 0)
        ty = tl.load(i_ptr + b * 4 + 1)
        si = i + SIGN * tx
        sj = j + SIGN * ty
        ok = ok & (si >= 0) & (si < H) & (sj >= 0) & (sj < W)
    if FLAGS & 16:
        ox = tl.load(i_ptr + b * 4 + 2)
        oy = tl.load(i_ptr + b * 4 + 3)
        if SIGN == 1:
            ci = i
            cj = j
        else:
            ci = si
            cj = sj
        r = ci - (ox - ch // 2)
        q = cj - (oy - cw // 2)
        ok = ok & ~((r >= 0) & (r < ch) & (q >= 0) & (q < cw))
    return si, sj, ok


@autotuned(TILE_GPU, TILE_INTERP, key=KEY)
@triton.jit
def _diffaug_fwd_kernel(
    x_ptr,
    out_ptr,
    f_ptr,
    i_ptr,
    sum_ptr,
    C,
    H,
    W,
    sxb,
    sxc,
    sxh,
    sxw,
    ch,
    cw,
    size_class,
    FLAGS: tl.constexpr,
    ACC: tl.constexpr,
    CB: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    b, p, pm, i, j = pixel_tile(tl.program_id(0), H, W, BLOCK_P)
    si, sj, ok = _source(b, i, j, pm, i_ptr, H, W, ch, cw, FLAGS, 1)
    src = x_ptr + b * sxb + si.to(tl.int64) * sxh + sj.to(tl.int64) * sxw
    HW = H * W
    dst = out_ptr + b * C * HW + p
    bright = tl.zeros([], ACC)
    if FLAGS & 1:
        bright = tl.load(f_ptr + b * 3 + 0).to(ACC) - 0.5
    if FLAGS & 4:
        k = tl.load(f_ptr + b * 3 + 2).to(ACC) + 0.5
        mean = tl.load(sum_ptr + b).to(ACC) / (C * HW) + bright  # mean_chw x1 (= mean_chw x2)
    if FLAGS & 2:
        sat = tl.load(f_ptr + b * 3 + 1).to(ACC) * 2
        csum = tl.zeros([BLOCK_P], ACC)
        for c0 in range(0, C, CB):
            cc = c0 + tl.arange(0, CB)
            m2 = (cc < C)[:, None] & ok[None, :]
            csum += tl.sum(tl.load(src[None, :] + cc[:, None].to(tl.int64) * sxc, mask=m2, other=0).to(ACC), 0)
        mc = csum / C + bright  # mean_c x1
    for c0 in range(0, C, CB):
        cc = c0 + tl.arange(0, CB)
        cm = (cc < C)[:, None]
        y = tl.load(src[None, :] + cc[:, None].to(tl.int64) * sxc, mask=cm & ok[None, :], other=0).to(ACC)
        if FLAGS & 1:
            y = y + bright
        if FLAGS & 2:
            y = (y - mc[None, :]) * sat + mc[None, :]
        if FLAGS & 4:
            y = (y - mean) * k + mean
        y = tl.where(ok[None, :], y, 0)
        tl.store(dst[None, :] + cc[:, None].to(tl.int64) * HW, y.to(out_ptr.dtype.element_ty), mask=cm & pm[None, :])


@triton.jit
def _diffaug_adj_kernel(
    g_ptr,
    out_ptr,
    f_ptr,
    i_ptr,
    sum_ptr,
    C,
    H,
    W,
    sgb,
    sgc,
    sgh,
    sgw,
    ch,
    cw,
    size_class,
    FLAGS: tl.constexpr,
    ACC: tl.constexpr,
    CB: tl.constexpr,
    SUM_ONLY: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """``h = Tᵀ(mask·g)``, then contrast ``h ← k·h + (1−k)·mean_chw h``, then saturation
    ``h ← s·h + (1−s)·mean_c h``. ``SUM_ONLY``: write ``Σ_{c, tile} h`` to ``out[pid]`` instead."""
    pid = tl.program_id(0)
    b, p, pm, i, j = pixel_tile(pid, H, W, BLOCK_P)
    gi, gj, ok = _source(b, i, j, pm, i_ptr, H, W, ch, cw, FLAGS, -1)
    src = g_ptr + b * sgb + gi.to(tl.int64) * sgh + gj.to(tl.int64) * sgw
    HW = H * W
    if SUM_ONLY:
        tot = tl.zeros([BLOCK_P], ACC)
        for c0 in range(0, C, CB):
            cc = c0 + tl.arange(0, CB)
            m2 = (cc < C)[:, None] & ok[None, :]
            tot += tl.sum(tl.load(src[None, :] + cc[:, None].to(tl.int64) * sgc, mask=m2, other=0).to(ACC), 0)
        tl.store(out_ptr + pid, tl.sum(tot, 0))
    else:
        dst = out_ptr + b * C * HW + p
        if FLAGS & 4:
            k = tl.load(f_ptr + b * 3 + 2).to(ACC) + 0.5
            mh = tl.load(sum_ptr + b).to(ACC) / (C * HW)
        if FLAGS & 2:
            s = tl.load(f_ptr + b * 3 + 1).to(ACC) * 2
            csum = tl.zeros([BLOCK_P], ACC)
            for c0 in range(0, C, CB):
                cc = c0 + tl.arange(0, CB)
                m2 = (cc < C)[:, None] & ok[None, :]
                csum += tl.sum(tl.load(src[None, :] + cc[:, None].to(tl.int64) * sgc, mask=m2, other=0).to(ACC), 0)
            mc = csum / C
            if FLAGS & 4:
                mc = k * mc + (1 - k) * mh  # mean_c of the contrast adjoint's output
        for c0 in range(0, C, CB):
            cc = c0 + tl.arange(0, CB)
            cm = (cc < C)[:, None]
            h = tl.load(src[None, :] + cc[:, None].to(tl.int64) * sgc, mask=cm & ok[None, :], other=0).to(ACC)
            if FLAGS & 4:
                h = k * h + (1 - k) * mh
            if FLAGS & 2:
                h = s * h + (1 - s) * mc[None, :]
            tl.store(dst[None, :] + cc[:, None].to(tl.int64) * HW, h.to(out_ptr.dtype.element_ty), mask=cm & pm[None, :])


# the SUM_ONLY pass runs the plain kernel with the fixed tile SUM_P; the adjoint itself is tuned
_diffaug_adj_tuned = autotuned(TILE_GPU, TILE_INTERP, key=KEY)(_diffaug_adj_kernel)


@helper
def _reflect(p, N):
    p = tl.where(p < 0, -p, p)
    return tl.where(p >= N, 2 * (N - 1) - p, p)


@autotuned(TILE_GPU, TILE_INTERP, key=["CB", "size_class"])
@triton.jit
def _cr_fwd_kernel(x_ptr, out_ptr, i_ptr, C, H, W, sxb, sxc, sxh, sxw, size_class, CB: tl.constexpr, BLOCK_P: tl.constexpr):
    """``out[c,i,j] = xf[c, reflect_H(i+tx), reflect_W(j+ty)]``, ``xf`` = ``x`` flipped along W if ``flip``."""
    b, p, pm, i, j = pixel_tile(tl.program_id(0), H, W, BLOCK_P)
    flip = tl.load(i_ptr + b * 3 + 0)
    si = _reflect(i + tl.load(i_ptr + b * 3 + 1), H)
    sj = _reflect(j + tl.load(i_ptr + b * 3 + 2), W)
    sj = tl.where(flip != 0, W - 1 - sj, sj)
    src = x_ptr + b * sxb + si.to(tl.int64) * sxh + sj.to(tl.int64) * sxw
    HW = H * W
    dst = out_ptr + b * C * HW + p
    for c0 in range(0, C, CB):
        cc = c0 + tl.arange(0, CB)
        m2 = (cc < C)[:, None] & pm[None, :]
        v = tl.load(src[None, :] + cc[:, None].to(tl.int64) * sxc, mask=m2, other=0)
        tl.store(dst[None, :] + cc[:, None].to(tl.int64) * HW, v, mask=m2)


@helper
def _cand(r, k: tl.constexpr, t, N):
    """Candidate ``k`` (0, 1, 2) of the positions whose reflection is ``r`` — ``r``, ``−r`` (r > 0),
    ``2(N−1) − r`` (r < N−1) — shifted back by ``t``: ``(index, valid)``."""
    if k == 0:
        p = r
        v = r >= 0
    elif k == 1:
        p = -r
        v = r > 0
    else:
        p = 2 * (N - 1) - r
        v = r < N - 1
    p = p - t
    return p, v & (p >= 0) & (p < N)


@autotuned(TILE_GPU, TILE_INTERP, key=["CB", "size_class"])
@triton.jit
def _cr_adj_kernel(
    g_ptr,
    out_ptr,
    i_ptr,
    C,
    H,
    W,
    sgb,
    sgc,
    sgh,
    sgw,
    size_class,
    ACC: tl.constexpr,
    CB: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """``h[c, r, q'] = Σ g[c, i, j]`` over the ≤ 2×2 output positions whose reflected source is
    ``(r, q)``, ``q = flip ? W−1−q' : q'``."""
    b, p, pm, r, q = pixel_tile(tl.program_id(0), H, W, BLOCK_P)
    flip = tl.load(i_ptr + b * 3 + 0)
    tx = tl.load(i_ptr + b * 3 + 1)
    ty = tl.load(i_ptr + b * 3 + 2)
    q = tl.where(flip != 0, W - 1 - q, q)
    HW = H * W
    dst = out_ptr + b * C * HW + p
    base = g_ptr + b * sgb
    i0, vi0 = _cand(r, 0, tx, H)
    i1, vi1 = _cand(r, 1, tx, H)
    i2, vi2 = _cand(r, 2, tx, H)
    j0, vj0 = _cand(q, 0, ty, W)
    j1, vj1 = _cand(q, 1, ty, W)
    j2, vj2 = _cand(q, 2, ty, W)
    for c0 in range(0, C, CB):
        cc = c0 + tl.arange(0, CB)
        cm = (cc < C)[:, None] & pm[None, :]
        cb = base + cc[:, None].to(tl.int64) * sgc
        acc = tl.zeros([CB, BLOCK_P], ACC)
        acc += _gather(cb, i0, vi0, j0, vj0, cm, sgh, sgw, ACC)
        acc += _gather(cb, i0, vi0, j1, vj1, cm, sgh, sgw, ACC)
        acc += _gather(cb, i0, vi0, j2, vj2, cm, sgh, sgw, ACC)
        acc += _gather(cb, i1, vi1, j0, vj0, cm, sgh, sgw, ACC)
        acc += _gather(cb, i1, vi1, j1, vj1, cm, sgh, sgw, ACC)
        acc += _gather(cb, i1, vi1, j2, vj2, cm, sgh, sgw, ACC)
        acc += _gather(cb, i2, vi2, j0, vj0, cm, sgh, sgw, ACC)
        acc += _gather(cb, i2, vi2, j1, vj1, cm, sgh, sgw, ACC)
        acc += _gather(cb, i2, vi2, j2, vj2, cm, sgh, sgw, ACC)
        tl.store(dst[None, :] + cc[:, None].to(tl.int64) * HW, acc.to(out_ptr.dtype.element_ty), mask=cm)


@helper
def _gather(cb, ii, vi, jj, vj, cm, sgh, sgw, ACC: tl.constexpr):
    off = ii.to(tl.int64) * sgh + jj.to(tl.int64) * sgw
    return tl.load(cb + off[None, :], mask=cm & (vi & vj)[None, :], other=0).to(ACC)


def _cb(C: int) -> int:
    """Channel block: all channels of an RGB image at once, blocks of 8 for wide inputs."""
    return min(triton.next_power_of_2(C), 8)


_FLAG_MASK = BRIGHTNESS | SATURATION | CONTRAST | TRANSLATION | CUTOUT


def _cutout(H: int, W: int) -> tuple[int, int]:
    """Cutout square ``(int(H·0.5 + 0.5), int(W·0.5 + 0.5))`` (docs/ARCHITECTURE.md)."""
    return int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)


@launcher
def diff_augment(x, fparams, iparams, flags):
    """DiffAugment of ``x`` ``[B, C, H, W]`` (any strides) with packed per-sample parameters
    (``fparams`` ``[B, 3]`` colour uniforms, ``iparams`` ``[B, 4]`` shifts and cutout centres) and the
    ``flags`` bits of ``_contract`` → contiguous NCHW in ``x``'s dtype; colour math in float32
    (float64 for float64). Contrast needs ``Σ_chw x`` per sample: a deterministic split-K sum first."""
    fparams, iparams = fparams.contiguous(), iparams.contiguous()  # tiny [B, k] tables, read row-major
    B, C, H, W = x.shape
    out = empty((B, C, H, W), x.dtype, x.device)
    if out.numel() == 0:
        return out
    flags = int(flags) & _FLAG_MASK
    sums = fparams  # placeholder pointer, never read without CONTRAST
    if flags & CONTRAST:
        sums = multi_reduce([x], None, MODE_SUM, RED_NONE)  # Σ_chw x per sample
    _diffaug_fwd_kernel[pixel_grid(B, H, W)](
        x,
        out,
        fparams,
        iparams,
        sums,
        C,
        H,
        W,
        *x.stride(),
        *_cutout(H, W),
        size_class(out.numel()),
        FLAGS=flags,
        ACC=tl_dtype(acc_dtype(x.dtype)),
        CB=_cb(C),
    )
    return out


@launcher
def diff_augment_adj(g, fparams, iparams, flags):
    """The adjoint of the linear part of :func:`diff_augment` (brightness ignored) applied to ``g``:
    ``h = Tᵀ(mask·g)``, then contrast ``h ← k·h + (1−k)·mean_chw h``, then saturation
    ``h ← s·h + (1−s)·mean_c h`` → contiguous NCHW in ``g``'s dtype. ``Σ_chw Tᵀ(mask·g)`` per sample
    comes from fixed ``SUM_P``-pixel tile partials summed in a fixed order."""
    fparams, iparams = fparams.contiguous(), iparams.contiguous()  # tiny [B, k] tables, read row-major
    B, C, H, W = g.shape
    out = empty((B, C, H, W), g.dtype, g.device)
    if out.numel() == 0:
        return out
    flags = int(flags) & _FLAG_MASK
    acc = acc_dtype(g.dtype)
    args = (C, H, W, *g.stride(), *_cutout(H, W), size_class(out.numel()))
    sums = fparams  # placeholder pointer, never read without CONTRAST
    if flags & CONTRAST:
        nt = ceil_div(H * W, SUM_P)
        partials = torch.empty((B, nt), dtype=acc, device=g.device)
        _diffaug_adj_kernel[(B * nt,)](
            g,
            partials,
            fparams,
            iparams,
            fparams,
            *args,
            FLAGS=flags,
            ACC=tl_dtype(acc),
            CB=_cb(C),
            SUM_ONLY=True,
            BLOCK_P=SUM_P,
            num_warps=4,
        )
        sums = finish(partials, torch.empty((B,), dtype=acc, device=g.device))
    _diffaug_adj_tuned[pixel_grid(B, H, W)](
        g, out, fparams, iparams, sums, *args, FLAGS=flags, ACC=tl_dtype(acc), CB=_cb(C), SUM_ONLY=False
    )
    return out


@launcher
def cr_augment(x, iparams):
    """CR transform: ``out[c,i,j] = xf[c, reflect_H(i+tx), reflect_W(j+ty)]``, ``xf`` = ``x`` flipped
    along W where ``flip`` (``iparams`` ``[B, 3]`` = flip, tx, ty) → contiguous NCHW, exact copy."""
    iparams = iparams.contiguous()
    B, C, H, W = x.shape
    out = empty((B, C, H, W), x.dtype, x.device)
    if out.numel() == 0:
        return out
    _cr_fwd_kernel[pixel_grid(B, H, W)](x, out, iparams, C, H, W, *x.stride(), size_class(out.numel()), CB=_cb(C))
    return out


@launcher
def cr_augment_adj(g, iparams):
    """The adjoint of :func:`cr_augment`: each source pixel gathers the ≤ 2×2 outputs that read it."""
    iparams = iparams.contiguous()
    B, C, H, W = g.shape
    out = empty((B, C, H, W), g.dtype, g.device)
    if out.numel() == 0:
        return out
    _cr_adj_kernel[pixel_grid(B, H, W)](
        g, out, iparams, C, H, W, *g.stride(), size_class(out.numel()), ACC=tl_dtype(acc_dtype(g.dtype)), CB=_cb(C)
    )
    return out
