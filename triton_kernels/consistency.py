"""Consistency family: ``sq_diff_sum`` (fused ``Σ (a − b)²``, split-K, deterministic) and
``diff_scale`` (both outputs ``±coef·(a − b)`` written in one pass, no difference tensor)."""

from __future__ import annotations

import triton
import triton.language as tl

from ganreg_ext._dispatch import acc_dtype, register_kernel

from ._utils import acc_of, ceil_div, cfg, configs, empty, logical_plan, offset4, tl_dtype
from .gradnorm import MODE_SQDIFF, multi_reduce

_GPU = [cfg(4, BLOCK=1024), cfg(8, BLOCK=2048), cfg(4, BLOCK=512)]
_INTERP = cfg(4, BLOCK=512)


@triton.autotune(configs=configs(_GPU, _INTERP), key=["NDIM"])
@triton.jit
def _diff_scale_kernel(
    a_ptr,
    b_ptr,
    oa_ptr,
    ob_ptr,
    coef_ptr,
    total,
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
    pid = tl.program_id(0).to(tl.int64)
    i = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = i < total
    a = tl.load(a_ptr + offset4(i, n1, n2, n3, sa0, sa1, sa2, sa3, NDIM), mask=m, other=0).to(ACC)
    b = tl.load(b_ptr + offset4(i, n1, n2, n3, sb0, sb1, sb2, sb3, NDIM), mask=m, other=0).to(ACC)
    v = tl.load(coef_ptr).to(ACC) * (a - b)
    tl.store(oa_ptr + i, v.to(oa_ptr.dtype.element_ty), mask=m)
    tl.store(ob_ptr + i, (-v).to(ob_ptr.dtype.element_ty), mask=m)


@register_kernel("sq_diff_sum", "triton")
def sq_diff_sum(a, b):
    return multi_reduce([a], [b], MODE_SQDIFF, per_sample=False, out_dtype=acc_dtype(a.dtype))


@register_kernel("diff_scale", "triton")
def diff_scale(a, b, coef):
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
        n[1],
        n[2],
        n[3],
        *sa,
        *sb,
        NDIM=ndim,
        ACC=tl_dtype(acc_of(a.dtype, b.dtype, coef.dtype)),
    )
    return oa, ob
