"""Gradient-norm family: ``sqnorm``, ``dot``, ``scale``, plus the generic multi-tensor split-K
reduction that ``consistency`` and ``augment`` reuse.

One launch per dtype group (one for the usual same-dtype list) covers every tensor of the list:
see :mod:`triton_kernels._utils` for the descriptor table. Each program reduces one fixed chunk of
one tensor's sample into a partial; partials ``[B, S]`` are summed in a fixed order by a second
tiny kernel (no atomics, deterministic).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ganreg_ext._dispatch import acc_dtype, register_kernel

from ._utils import (
    ROW,
    acc_of,
    cfg,
    chunk_size,
    collapse,
    configs,
    empty,
    empty_like_strided,
    helper,
    offset4,
    pad_dims,
    scalar_as,
    sum_rows,
    tl_dtype,
    to_device,
)

MODE_SQNORM, MODE_DOT, MODE_SQDIFF, MODE_SUM = 0, 1, 2, 3

_GPU = [cfg(4, BLOCK=1024), cfg(8, BLOCK=2048), cfg(4, BLOCK=2048), cfg(8, BLOCK=4096)]
_INTERP = cfg(4, BLOCK=256)


@helper
def _slot(
    tab_ptr,
    slot_ptr,
    pid,
    S,
    a_ref,
    b_ref,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Decode program ``pid`` = (sample ``b``, slot ``s``): typed pointers already at sample ``b``,
    numel per sample ``N``, first element ``start``, and the table row (dims at words 6..16).

    ``ALIGN`` (host-checked: 16-byte aligned pointers, batch strides and per-sample sizes, one
    unit-stride dim): sizes and strides are rounded down to the multiples they already are, which
    only tells the compiler the alignment (``(x // k) * k``). ``SINGLE`` (one tensor in the group):
    its pointers are the kernel arguments ``a_ref``/``b_ref`` themselves, whose alignment Triton
    knows, so with ``ALIGN`` the loads and stores are 128-bit (checked on the PTX by the tests). A
    pointer made from a table word (``int_to_ptr``) loses the alignment: multi-tensor groups use
    scalar (still coalesced) accesses.
    """
    b = pid // S
    s = pid % S
    t = tl.load(slot_ptr + 2 * s)
    start = tl.load(slot_ptr + 2 * s + 1)
    row = tab_ptr + t * 17
    ia = tl.load(row + 0)
    ib = tl.load(row + 1)
    n = tl.load(row + 2)
    sa = tl.load(row + 3)
    sb = tl.load(row + 4)
    if ALIGN:
        n = (n // VA) * VA
        sa = (sa // VA) * VA
        sb = (sb // VB) * VB
        start = (start // BLOCK) * BLOCK
    if SINGLE:
        pa = a_ref + b * sa
        pb = b_ref + b * sb
    else:
        pa = ia.to(tl.pointer_type(a_ref.dtype.element_ty)) + b * sa
        pb = ib.to(tl.pointer_type(b_ref.dtype.element_ty)) + b * sb
    return b, s, pa, pb, n, start, row


@helper
def _offsets(i, row, ALIGN: tl.constexpr, NDIM: tl.constexpr):
    """Offsets of flat per-sample indices ``i`` in tensors a and b of a table row."""
    if ALIGN:
        oa = i
        ob = i
    else:
        n1 = tl.load(row + 6)
        n2 = tl.load(row + 7)
        n3 = tl.load(row + 8)
        oa = offset4(i, n1, n2, n3, tl.load(row + 9), tl.load(row + 10), tl.load(row + 11), tl.load(row + 12), NDIM)
        ob = offset4(i, n1, n2, n3, tl.load(row + 13), tl.load(row + 14), tl.load(row + 15), tl.load(row + 16), NDIM)
    return oa, ob


@triton.autotune(configs=configs(_GPU, _INTERP), key=["NDIM", "MODE", "CHUNK", "ALIGN", "SINGLE"])
@triton.jit
def _reduce_kernel(
    tab_ptr,
    slot_ptr,
    part_ptr,
    a_ref,
    b_ref,
    inv_scale: tl.float64,
    S,
    S_total,
    slot_base,
    NDIM: tl.constexpr,
    MODE: tl.constexpr,
    ACC: tl.constexpr,
    CHUNK: tl.constexpr,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    b, s, pa, pb, N, start, row = _slot(tab_ptr, slot_ptr, pid, S, a_ref, b_ref, ALIGN, SINGLE, VA, VB, BLOCK)
    inv = scalar_as(inv_scale, ACC)
    acc = tl.zeros([BLOCK], ACC)
    for it in range(0, CHUNK, BLOCK):
        i = start + it + tl.arange(0, BLOCK).to(tl.int64)
        m = (i < N) & (i < start + CHUNK)
        oa, ob = _offsets(i, row, ALIGN, NDIM)
        x = tl.load(pa + oa, mask=m, other=0).to(ACC)
        if MODE == 0:
            x = x * inv
            acc += x * x
        elif MODE == 3:
            acc += x
        else:
            y = tl.load(pb + ob, mask=m, other=0).to(ACC)
            if MODE == 1:
                acc += x * y
            else:
                d = x - y
                acc += d * d
    tl.store(part_ptr + b * S_total + slot_base + s, tl.sum(acc, 0))


@triton.autotune(configs=configs(_GPU, _INTERP), key=["NDIM", "PER_SAMPLE", "CHUNK", "ALIGN", "SINGLE"])
@triton.jit
def _scale_kernel(
    tab_ptr,
    slot_ptr,
    coef_ptr,
    coef_stride,
    g_ref,
    o_ref,
    factor: tl.float64,
    S,
    NDIM: tl.constexpr,
    PER_SAMPLE: tl.constexpr,
    ACC: tl.constexpr,
    CHUNK: tl.constexpr,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    b, s, pg, po, N, start, row = _slot(tab_ptr, slot_ptr, pid, S, g_ref, o_ref, ALIGN, SINGLE, VA, VB, BLOCK)
    if PER_SAMPLE:
        c = tl.load(coef_ptr + b * coef_stride).to(ACC)
    else:
        c = tl.load(coef_ptr).to(ACC)
    c = scalar_as(factor, ACC) * c
    for it in range(0, CHUNK, BLOCK):
        i = start + it + tl.arange(0, BLOCK).to(tl.int64)
        m = (i < N) & (i < start + CHUNK)
        og, oo = _offsets(i, row, ALIGN, NDIM)
        x = tl.load(pg + og, mask=m, other=0).to(ACC)
        tl.store(po + oo, (c * x).to(po.dtype.element_ty), mask=m)


def _plan_pairs(a_list, b_list, per_sample: bool, order_by: int):
    """Per tensor pair: (a, b, N per sample, batch strides, merged sizes/strides), grouped by dtypes."""
    groups: dict = {}
    for a, b in zip(a_list, b_list):
        plan = collapse(a.shape, [a.stride(), b.stride()], order_by=order_by, skip_batch=per_sample)
        if plan is None:  # documented fallback (> MAXD unmergeable dims): read a contiguous copy
            a = a.contiguous()
            if order_by == 0:
                b = b.contiguous()
            plan = collapse(a.shape, [a.stride(), b.stride()], order_by=order_by, skip_batch=per_sample)
        sizes, strides = plan
        n = a[0].numel() if per_sample else a.numel()
        sb = (a.stride(0), b.stride(0)) if per_sample and a.dim() > 0 else (0, 0)
        groups.setdefault((a.dtype, b.dtype), []).append((a, b, n, sb, sizes, strides))
    return groups


def _chunk(groups, B: int) -> int:
    sizes = [e[2] for es in groups.values() for e in es]
    return chunk_size(B * sum(sizes), max(sizes))


def _tables(entries, chunk: int, device):
    """Host-built tensor rows and slots ``(row, start)`` for one dtype group."""
    rows, slots, ndim = [], [], 1
    va, vb = 16 // entries[0][0].element_size(), 16 // entries[0][1].element_size()
    align = True
    for t, (a, b, n, (sba, sbb), sizes, strides) in enumerate(entries):
        ndim = max(ndim, len(sizes))
        sizes4, (sa4, sb4) = pad_dims(sizes, strides)
        rows.append([a.data_ptr(), b.data_ptr(), n, sba, sbb, *sizes4, *sa4, *sb4])
        slots += [[t, k] for k in range(0, n, chunk)]
        align &= a.data_ptr() % 16 == 0 and b.data_ptr() % 16 == 0 and sba % va == 0 and sbb % vb == 0 and n % max(va, vb) == 0
        align &= len(sizes) == 1 and sa4[-1] == 1 and sb4[-1] == 1
    assert len(rows[0]) == ROW
    meta = dict(NDIM=ndim, ALIGN=align, SINGLE=len(entries) == 1, VA=va, VB=vb)
    return to_device(rows, device), to_device(slots, device) if slots else None, len(slots), meta


def multi_reduce(a_list, b_list, mode: int, per_sample: bool, inv_scale: float = 1.0, out_dtype=None, mult: float = 1.0):
    """``mult · Σ_t Σ_i f(a_t, b_t)`` per sample (``[B]``) or in total (0-d), ``f`` chosen by ``mode``:
    ``(inv·a)²``, ``a·b``, ``(a−b)²``, ``a``. One launch per dtype group, split-K, deterministic."""
    b_list = a_list if b_list is None else b_list
    device = a_list[0].device
    acc = acc_of(*(t.dtype for t in a_list), *(t.dtype for t in b_list))
    out_dtype = out_dtype or acc_dtype(a_list[0].dtype)
    B = a_list[0].shape[0] if per_sample else 1
    out = empty((B,) if per_sample else (), out_dtype, device)
    groups = _plan_pairs(a_list, b_list, per_sample, order_by=0)
    per_prog = _chunk(groups, B)
    tables = [_tables(es, per_prog, device) + (es,) for es in groups.values()]
    s_total = sum(t[2] for t in tables)
    partials = torch.empty((B, s_total), dtype=acc, device=device)
    base = 0
    for tab, slots, S, meta, es in tables:
        if S == 0:
            continue
        _reduce_kernel[(B * S,)](
            tab,
            slots,
            partials,
            es[0][0],
            es[0][1],
            float(inv_scale),
            S,
            s_total,
            base,
            MODE=mode,
            ACC=tl_dtype(acc),
            CHUNK=per_prog,
            **meta,
        )
        base += S
    sum_rows(partials, out.view(B), mult)
    return out


@register_kernel("sqnorm", "triton")
def sqnorm(grads, inv_scale, per_sample):
    return multi_reduce(grads, None, MODE_SQNORM, per_sample, inv_scale=inv_scale)


@register_kernel("dot", "triton")
def dot(a, b, per_sample):
    return multi_reduce(a, b, MODE_DOT, per_sample)


@register_kernel("scale", "triton")
def scale(grads, coef, factor, per_sample):
    device = grads[0].device
    outs = [empty_like_strided(g) for g in grads]
    B = grads[0].shape[0] if per_sample else 1
    groups = _plan_pairs(grads, outs, per_sample, order_by=1)  # walk the outputs in memory order
    per_prog = _chunk(groups, B)
    for es in groups.values():
        tab, slots, S, meta = _tables(es, per_prog, device)
        if S == 0:
            continue
        _scale_kernel[(B * S,)](
            tab,
            slots,
            coef,
            coef.stride(0) if per_sample else 0,
            es[0][0],
            es[0][1],
            float(factor),
            S,
            PER_SAMPLE=bool(per_sample),
            ACC=tl_dtype(acc_of(es[0][0].dtype, coef.dtype)),
            CHUNK=per_prog,
            **meta,
        )
    return outs
