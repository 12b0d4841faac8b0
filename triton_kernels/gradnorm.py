"""Gradient-norm family: ``sqnorm``, ``scale``, ``dot``, and the generic multi-tensor split-K
reduction :func:`multi_reduce` that ``consistency`` and ``augment`` reuse.

Work split. A program owns one chunk (:func:`_utils.chunk_size` elements, a multiple of every
``BLOCK``) of one tensor's sample ``b``: ``pid = b·S + s`` with ``S`` slots per sample. Reductions
write one partial per program into ``[B, S_total]`` (one launch per dtype group, groups at
increasing slot offsets; one group for a same-dtype list); :func:`_utils.finish` sums them in a
fixed order in float64 and applies the epilogue (weight, Σ_b or mean_b): forward = 2 launches.
No atomics: results are a function of the shapes only (fixed config, no autotune).

Tensor descriptors. A group of ONE tensor gets its pointer, per-sample numel, batch strides and
merged sizes/strides as kernel arguments: no host-built table. A group of several reads them from
int64 tables: layout ``[T, 14]`` (row: ``n, sab, sbb, n1, n2, n3, sa0..sa3, sb0..sb3``) and slots
``[S, 2]`` = (tensor, first element), cached by shapes/strides/dtypes, and pointers ``[T, 2]``,
cached by the data pointers (a training loop reuses a few; a miss rebuilds only that table).
Tables travel through pinned memory with ``non_blocking=True``: no host sync.

Alignment. ``ALIGN`` (host-checked: 16-byte aligned pointers, per-sample sizes and batch strides
multiples of 16 bytes, one unit-stride dim): flat offsets plus hints that make the accesses 128-bit
(argument pointers are specialized as aligned by Triton; table pointers get ``tl.multiple_of``).
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from ganreg_ext._contract import RED_MEAN, RED_NONE, RED_SUM, RED_TOTAL, acc_dtype, empty, list_acc_dtype

from ._utils import (
    autotuned,
    ceil_div,
    cfg,
    chunk_size,
    collapse,
    finish,
    helper,
    launcher,
    offset4,
    pad_dims,
    pick,
    scalar_as,
    tl_dtype,
)

MODE_SQ, MODE_DOT, MODE_SQDIFF, MODE_SUM = 0, 1, 2, 3
ROW = 14  # int64 words per layout-table row

REDUCE_GPU = cfg(8, BLOCK=4096)  # fixed: the summation order must not depend on a tuning run
REDUCE_INTERP = cfg(4, BLOCK=256)
SCALE_GPU = [cfg(4, BLOCK=1024), cfg(8, BLOCK=2048), cfg(4, BLOCK=2048), cfg(8, BLOCK=4096)]
SCALE_INTERP = cfg(4, BLOCK=256)
_REDUCE_RUN = pick(REDUCE_GPU, REDUCE_INTERP).all_kwargs()


@helper
def _locate(
    pid,
    S,
    chunk,
    a_ptr,
    b_ptr,
    ptr_tab,
    lay_tab,
    slot_tab,
    n,
    sab,
    sbb,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Program ``pid`` → ``(b, s, pa, pb, n, start, row)``: sample, slot, typed pointers at sample
    ``b``, numel per sample, first element of the chunk, layout-table row. ``ALIGN`` rounds values
    down to the multiples they already are (``(x // k) * k``): alignment hints for the compiler."""
    b = pid // S
    s = pid % S
    if SINGLE:
        start = s * chunk
        row = lay_tab
        pa = a_ptr
        pb = b_ptr
    else:
        t = tl.load(slot_tab + 2 * s)
        start = tl.load(slot_tab + 2 * s + 1)
        row = lay_tab + t * 14  # ROW
        n = tl.load(row)
        sab = tl.load(row + 1)
        sbb = tl.load(row + 2)
        pa = tl.load(ptr_tab + 2 * t).to(tl.pointer_type(a_ptr.dtype.element_ty))
        pb = tl.load(ptr_tab + 2 * t + 1).to(tl.pointer_type(b_ptr.dtype.element_ty))
        if ALIGN:
            pa = tl.multiple_of(pa, 16)
            pb = tl.multiple_of(pb, 16)
    if ALIGN:
        n = (n // VA) * VA
        sab = (sab // VA) * VA
        sbb = (sbb // VB) * VB
        start = (start // BLOCK) * BLOCK
    return b, s, pa + b * sab, pb + b * sbb, n, start, row


@helper
def _dims(row, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, SINGLE: tl.constexpr):
    """Merged sizes/strides of a and b: the kernel arguments, or layout-table words 3..13."""
    if not SINGLE:
        n1 = tl.load(row + 3)
        n2 = tl.load(row + 4)
        n3 = tl.load(row + 5)
        sa0 = tl.load(row + 6)
        sa1 = tl.load(row + 7)
        sa2 = tl.load(row + 8)
        sa3 = tl.load(row + 9)
        sb0 = tl.load(row + 10)
        sb1 = tl.load(row + 11)
        sb2 = tl.load(row + 12)
        sb3 = tl.load(row + 13)
    return n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3


@helper
def _offsets(i, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, ALIGN: tl.constexpr, NDIM: tl.constexpr):
    """Offsets of flat per-sample indices ``i`` in a and b."""
    if ALIGN:
        oa = i
        ob = i
    else:
        oa = offset4(i, n1, n2, n3, sa0, sa1, sa2, sa3, NDIM)
        ob = offset4(i, n1, n2, n3, sb0, sb1, sb2, sb3, NDIM)
    return oa, ob


@triton.jit(do_not_specialize=["inv_value"])
def _reduce_kernel(
    a_ptr,
    b_ptr,
    part_ptr,
    inv_ptr,
    inv_value: tl.float64,
    ptr_tab,
    lay_tab,
    slot_tab,
    S,
    S_total,
    slot_base,
    chunk,
    n,
    sab,
    sbb,
    n1,
    n2,
    n3,
    sa0,
    sa1,
    sa2,
    sa3,
    sb0,
    sb1,
    sb2,
    sb3,
    NDIM: tl.constexpr,
    MODE: tl.constexpr,
    ACC: tl.constexpr,
    INV_PTR: tl.constexpr,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``part[b, slot_base + s] = Σ_{i in chunk s of sample b} f(a_i, b_i)`` in ``ACC``, ``f`` by
    ``MODE``: 0 ``(inv·a)²`` (``inv`` loaded from ``inv_ptr`` if ``INV_PTR`` else ``inv_value``),
    1 ``a·b``, 2 ``(a−b)²``, 3 ``a``."""
    pid = tl.program_id(0).to(tl.int64)
    b, s, pa, pb, N, start, row = _locate(
        pid, S, chunk, a_ptr, b_ptr, ptr_tab, lay_tab, slot_tab, n, sab, sbb, ALIGN, SINGLE, VA, VB, BLOCK
    )
    if not ALIGN:
        n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3 = _dims(
            row, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, SINGLE
        )
    if MODE == 0:
        if INV_PTR:
            inv = tl.load(inv_ptr).to(ACC)
        else:
            inv = scalar_as(inv_value, ACC)
    acc = tl.zeros([BLOCK], ACC)
    for it in range(0, chunk, BLOCK):
        i = start + it + tl.arange(0, BLOCK).to(tl.int64)
        m = i < N
        oa, ob = _offsets(i, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, ALIGN, NDIM)
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


@autotuned(SCALE_GPU, SCALE_INTERP, key=["NDIM", "PER_SAMPLE", "ALIGN", "SINGLE", "chunk"])
@triton.jit(do_not_specialize=["factor", "coef_stride"])
def _scale_kernel(
    g_ptr,
    o_ptr,
    coef_ptr,
    coef_stride,
    factor: tl.float64,
    ptr_tab,
    lay_tab,
    slot_tab,
    S,
    chunk,
    n,
    sab,
    sbb,
    n1,
    n2,
    n3,
    sa0,
    sa1,
    sa2,
    sa3,
    sb0,
    sb1,
    sb2,
    sb3,
    NDIM: tl.constexpr,
    PER_SAMPLE: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
    SINGLE: tl.constexpr,
    VA: tl.constexpr,
    VB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``o = (factor·coef_b)·g`` over chunk ``s`` of sample ``b`` (``factor·coef_b`` formed in
    float64, then rounded to ``ACC``). Autotuned: ``chunk`` is the size class (a capped power of two
    of the total), a runtime argument, so sizes do not recompile."""
    pid = tl.program_id(0).to(tl.int64)
    b, s, pg, po, N, start, row = _locate(
        pid, S, chunk, g_ptr, o_ptr, ptr_tab, lay_tab, slot_tab, n, sab, sbb, ALIGN, SINGLE, VA, VB, BLOCK
    )
    if not ALIGN:
        n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3 = _dims(
            row, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, SINGLE
        )
    if PER_SAMPLE:
        c = tl.load(coef_ptr + b * coef_stride).to(tl.float64)
    else:
        c = tl.load(coef_ptr).to(tl.float64)
    c = (scalar_as(factor, tl.float64) * c).to(ACC)
    for it in range(0, chunk, BLOCK):
        i = start + it + tl.arange(0, BLOCK).to(tl.int64)
        m = i < N
        og, oo = _offsets(i, n1, n2, n3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, ALIGN, NDIM)
        x = tl.load(pg + og, mask=m, other=0).to(ACC)
        tl.store(po + oo, (c * x).to(po.dtype.element_ty), mask=m)


# ------------------------------------------------------------------------------- host side


def _pair(a, b, per_sample: bool, order_by: int):
    """``(a, b, row, ndim)`` of one tensor pair: the layout-table row (module docstring) and the
    merged dim count. ``order_by``: the stride set whose memory order is walked. Past ``MAXD``
    unmergeable dims the input(s) are read from a contiguous copy (documented fallback)."""
    plan = collapse(tuple(a.shape), (a.stride(), b.stride()), order_by, per_sample)
    if plan is None:
        a = a.contiguous()
        if order_by == 0:
            b = b.contiguous()
        plan = collapse(tuple(a.shape), (a.stride(), b.stride()), order_by, per_sample)
    sizes, strides = plan
    (_, n1, n2, n3), (sa, sb) = pad_dims(sizes, strides)
    n = math.prod(a.shape[1:]) if per_sample else a.numel()
    sab, sbb = (a.stride(0), b.stride(0)) if per_sample else (0, 0)
    return a, b, (n, sab, sbb, n1, n2, n3, *sa, *sb), len(sizes)


def _groups(a_list, b_list, per_sample: bool, order_by: int) -> list[list]:
    """Tensor pairs grouped by dtypes (one launch per group), first-seen order."""
    groups: dict = {}
    for a, b in zip(a_list, b_list):
        groups.setdefault((a.dtype, b.dtype), []).append(_pair(a, b, per_sample, order_by))
    return list(groups.values())


def _to_device(rows, device: torch.device) -> torch.Tensor:
    """A small host-built int64 table on ``device`` without a host sync (pinned, non-blocking)."""
    t = torch.tensor(rows, dtype=torch.int64)
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


@functools.lru_cache(maxsize=64)
def _layout_tables(rows: tuple, chunk: int, device: torch.device):
    """Layout table, slot table and slot count of a multi-tensor group (cached by layout)."""
    slots = [(t, k) for t, row in enumerate(rows) for k in range(0, row[0], chunk)]
    return _to_device(rows, device), _to_device(slots or [(0, 0)], device), len(slots)


@functools.lru_cache(maxsize=64)
def _pointer_table(ptrs: tuple, device: torch.device) -> torch.Tensor:
    """``[T, 2]`` data pointers of a multi-tensor group (cached by value: the content is the key)."""
    return _to_device(ptrs, device)


def _descriptors(entries, chunk: int, device: torch.device):
    """Kernel arguments of one dtype group: ``(a0, b0, tables, S, layout scalars, meta)``."""
    a0, b0 = entries[0][0], entries[0][1]
    va, vb = 16 // a0.element_size(), 16 // b0.element_size()
    ptrs = tuple((a.data_ptr(), b.data_ptr()) for a, b, _, _ in entries)
    align = all(pa % 16 == 0 and pb % 16 == 0 for pa, pb in ptrs) and all(
        nd == 1 and r[9] == 1 and r[13] == 1 and r[0] % max(va, vb) == 0 and r[1] % va == 0 and r[2] % vb == 0
        for _, _, r, nd in entries
    )
    meta = dict(NDIM=max(e[3] for e in entries), ALIGN=align, SINGLE=len(entries) == 1, VA=va, VB=vb)
    if len(entries) == 1:
        row = entries[0][2]
        return a0, b0, (a0, a0, a0), ceil_div(row[0], chunk), row, meta
    lay, slots, S = _layout_tables(tuple(e[2] for e in entries), chunk, device)
    return a0, b0, (_pointer_table(ptrs, device), lay, slots), S, (0,) * ROW, meta


def _chunk(groups, B: int) -> int:
    ns = [e[2][0] for es in groups for e in es]
    return chunk_size(B * sum(ns), max(ns))


def _inv(inv_scale, device: torch.device):
    """``(value, tensor)`` of ``inv_scale``: None → 1; a tensor on the kernels' device is loaded in
    the kernel (no host sync); a CPU tensor (with CUDA grads) is read on the host, passed by value."""
    if inv_scale is None:
        return 1.0, None
    if inv_scale.device == device:
        return 1.0, inv_scale
    return float(inv_scale), None


def multi_reduce(a_list, b_list, mode: int, reduction: int, inv_scale=None, weight: float = 1.0) -> torch.Tensor:
    """``weight·Σ_t Σ_i f(a_t, b_t)`` with ``f`` by ``mode`` (``(inv·a)²``, ``a·b``, ``(a−b)²``, ``a``;
    ``b_list`` None for the one-operand modes), per sample ``[B]`` (``RED_NONE``), summed or averaged
    over ``b`` (``RED_SUM``/``RED_MEAN``, 0-d), or ``RED_TOTAL``: every tensor one sample, 0-d.
    Accumulates in the lists' accumulation dtype (``_contract``), which is the result dtype."""
    if reduction not in (RED_NONE, RED_SUM, RED_MEAN, RED_TOTAL):
        raise ValueError(f"reduction code must be one of RED_NONE/SUM/MEAN/TOTAL (0..3), got {reduction}")
    per_sample = reduction != RED_TOTAL
    b_list = a_list if b_list is None else b_list
    device = a_list[0].device
    acc = list_acc_dtype(a_list, b_list)
    B = a_list[0].shape[0] if per_sample else 1
    groups = _groups(a_list, b_list, per_sample, 0)
    chunk = _chunk(groups, B)
    descs = [_descriptors(es, chunk, device) for es in groups]
    s_total = sum(d[3] for d in descs)
    partials = torch.empty((B, s_total), dtype=acc, device=device)
    inv_value, inv_ptr = _inv(inv_scale, device)
    base = 0
    for a0, b0, tabs, S, lay, meta in descs:
        if B * S:
            _reduce_kernel[(B * S,)](
                a0,
                b0,
                partials,
                partials if inv_ptr is None else inv_ptr,
                inv_value,
                *tabs,
                S,
                s_total,
                base,
                chunk,
                *lay,
                MODE=mode,
                ACC=tl_dtype(acc),
                INV_PTR=inv_ptr is not None,
                **meta,
                **_REDUCE_RUN,
            )
        base += S
    out = empty((B,) if reduction == RED_NONE else (), acc, device)
    return finish(partials, out, weight, total=reduction in (RED_SUM, RED_MEAN), div=B if reduction == RED_MEAN else 1)


@launcher
def sqnorm(grads, inv_scale, weight, reduction):
    """``s_b = Σ_t Σ_i (inv·g_t[b, i])²`` in the accumulation dtype (``inv`` = ``inv_scale`` or 1;
    a 0-d tensor on the grads' device is read in the kernel, a CPU one on the host); result
    ``weight·s_b`` ``[B]`` (``RED_NONE``), ``weight·Σ_b s_b`` (``RED_SUM``), ``weight·Σ_b s_b / B``
    (``RED_MEAN``), ``weight·Σ`` over every element of every tensor (``RED_TOTAL``, any shapes)."""
    return multi_reduce(grads, None, MODE_SQ, reduction, inv_scale, weight)


@launcher
def dot(a, b, per_sample):
    """``Σ_t Σ_i a_t[b, i]·b_t[b, i]`` → ``[B]`` (``per_sample``) or the 0-d total, accumulated in
    the accumulation dtype of both lists."""
    return multi_reduce(a, b, MODE_DOT, RED_NONE if per_sample else RED_TOTAL)


@launcher
def scale(grads, coef, factor, per_sample):
    """``out_t = factor·coef_b·g_t`` (``coef`` ``[B]`` read through its stride if ``per_sample``, else
    its one element), ``factor·coef_b`` in float64 then rounded to the accumulation dtype of ``g_t``;
    outputs in ``g_t``'s dtype with ``torch.empty_like(g_t)`` strides. One launch per dtype group."""
    device = grads[0].device
    outs = [empty(g.shape, g.dtype, device, like=g) for g in grads]
    B = grads[0].shape[0] if per_sample else 1
    groups = _groups(grads, outs, per_sample, 1)  # walk the outputs in memory order
    chunk = _chunk(groups, B)
    coef_stride = coef.stride(0) if per_sample and coef.dim() else 0
    for es in groups:
        g0, o0, tabs, S, lay, meta = _descriptors(es, chunk, device)
        if B * S:
            _scale_kernel[(B * S,)](
                g0,
                o0,
                coef,
                coef_stride,
                float(factor),
                *tabs,
                S,
                chunk,
                *lay,
                PER_SAMPLE=bool(per_sample),
                ACC=tl_dtype(acc_dtype(g0.dtype)),
                **meta,
            )
    return outs
