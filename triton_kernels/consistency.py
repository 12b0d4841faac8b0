"""Consistency family: ``sq_diff_sum`` (fused ``weight·Σ (a − b)²``: split-K, fixed config,
deterministic) and ``diff_scale`` (both outputs ``±coef·(a − b)`` in one pass, no difference tensor)."""

from __future__ import annotations

import triton
import triton.language as tl

from ganreg_ext._contract import RED_TOTAL, acc_dtype, empty

from ._utils import autotuned, ceil_div, cfg, launcher, logical_plan, offset4, size_class, tl_dtype
from .gradnorm import MODE_SQDIFF, multi_reduce

DIFF_SCALE_GPU = [cfg(4, BLOCK=1024), cfg(8, BLOCK=2048), cfg(4, BLOCK=512)]
DIFF_SCALE_INTERP = cfg(4, BLOCK=512)


@autotuned(DIFF_SCALE_GPU, DIFF_SCALE_INTERP, key=["NDIM", "size_class"])
@triton.jit
def _diff_scale_kernel(
    a_ptr,
    b_ptr,
    oa_ptr,
    ob_ptr,
    coef_ptr,
    total,
    size_class,
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
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``oa_i = coef·(a_i − b_i)``, ``ob_i = −oa_i`` (flat logical index ``i``, contiguous outputs)."""
    pid = tl.program_id(0).to(tl.int64)
    i = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = i < total
    a = tl.load(a_ptr + offset4(i, n1, n2, n3, sa0, sa1, sa2, sa3, NDIM), mask=m, other=0).to(ACC)
    b = tl.load(b_ptr + offset4(i, n1, n2, n3, sb0, sb1, sb2, sb3, NDIM), mask=m, other=0).to(ACC)
    v = tl.load(coef_ptr).to(ACC) * (a - b)
    tl.store(oa_ptr + i, v.to(oa_ptr.dtype.element_ty), mask=m)
    tl.store(ob_ptr + i, (-v).to(ob_ptr.dtype.element_ty), mask=m)


@launcher
def sq_diff_sum(a, b, weight):
    """``weight·Σ (a − b)²`` → 0-d, accumulated in float32 (float64 if either input is float64)."""
    return multi_reduce([a], [b], MODE_SQDIFF, RED_TOTAL, weight=weight)


@launcher
def diff_scale(a, b, coef):
    """``(coef·(a − b), −coef·(a − b))``, contiguous, dtypes of ``a`` and ``b``; computed in float32
    (float64 if any of ``a``, ``b``, ``coef`` is float64)."""
    if a.shape != b.shape:
        raise ValueError(f"diff_scale: b has shape {tuple(b.shape)}, expected {tuple(a.shape)}")
    oa = empty(a.shape, a.dtype, a.device)
    ob = empty(b.shape, b.dtype, b.device)
    total = a.numel()
    if total == 0:
        return oa, ob
    (a, b), ndim, n, (sa, sb) = logical_plan(a, b)

    def grid(meta):
        return (ceil_div(total, meta["BLOCK"]),)

    _diff_scale_kernel[grid](
        a,
        b,
        oa,
        ob,
        coef,
        total,
        size_class(total),
        *n[1:],
        *sa,
        *sb,
        NDIM=ndim,
        ACC=tl_dtype(acc_dtype(a.dtype, b.dtype, coef.dtype)),
    )
    return oa, ob
