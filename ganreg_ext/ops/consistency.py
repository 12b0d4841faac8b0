"""Ops of the consistency family: a fused squared difference and its two-output backward.

``sq_diff_sum(a, b) = Σ (a − b)²``; ``diff_scale(a, b, c) = (c·(a − b), −c·(a − b))`` in one pass,
so the backward into both arguments writes no difference tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._dispatch import acc_dtype, kernel
from ._common import contiguous_like, save_all, unpack


@torch.library.custom_op("ganreg::sq_diff_sum", mutates_args=())
def sq_diff_sum(a: Tensor, b: Tensor, backend: str) -> Tensor:
    """``Σ (a − b)²`` → 0-d float32 (float64 for float64)."""
    return kernel("sq_diff_sum", backend)(a, b)


@torch.library.custom_op("ganreg::diff_scale", mutates_args=())
def diff_scale(a: Tensor, b: Tensor, coef: Tensor, backend: str) -> tuple[Tensor, Tensor]:
    """``(coef·(a − b), −coef·(a − b))`` with ``coef`` 0-d, in the dtypes of ``a`` and ``b``."""
    return kernel("diff_scale", backend)(a, b, coef)


@sq_diff_sum.register_fake
def _(a, b, backend):
    return a.new_empty((), dtype=acc_dtype(a.dtype))


@diff_scale.register_fake
def _(a, b, coef, backend):
    return contiguous_like(a), contiguous_like(b)


def _sq_diff_sum_bwd(ctx, gout):
    a, b, backend = unpack(ctx)
    da, db = diff_scale(a, b, 2 * gout, backend)
    return da, db, None


def _diff_scale_bwd(ctx, ga, gb):
    a, b, coef, backend = unpack(ctx)
    da, db = diff_scale(ga, gb, coef, backend)
    dcoef = None
    if ctx.needs_input_grad[2]:
        acc = acc_dtype(a.dtype)
        dcoef = ((ga.to(acc) - gb.to(acc)) * (a.to(acc) - b.to(acc))).sum().to(coef.dtype)
    return da.to(a.dtype), db.to(b.dtype), dcoef, None


sq_diff_sum.register_autograd(_sq_diff_sum_bwd, setup_context=save_all)
diff_scale.register_autograd(_diff_scale_bwd, setup_context=save_all)
