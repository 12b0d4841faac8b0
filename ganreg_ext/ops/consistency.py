"""Ops of the consistency family: schemas, fake kernels, and the autograd of the Triton ops (native:
``csrc/autograd/consistency.cpp``, same formulas).

``sq_diff_sum(a, b, w) = w·Σ (a − b)²``; ``diff_scale(a, b, c) = (c·(a − b), −c·(a − b))`` in one
pass, so the backward into both arguments writes no difference tensor.
"""

from __future__ import annotations

from .._contract import acc_dtype
from ._common import contiguous_like

SCHEMAS = {
    "sq_diff_sum": "(Tensor a, Tensor b, float weight) -> Tensor",
    "diff_scale": "(Tensor a, Tensor b, Tensor coef) -> (Tensor, Tensor)",
}


def _sq_diff_sum_fake(a, b, weight):
    return a.new_empty((), dtype=acc_dtype(a.dtype, b.dtype))


def _diff_scale_fake(a, b, coef):
    return contiguous_like(a), contiguous_like(b)


FAKES = {"sq_diff_sum": _sq_diff_sum_fake, "diff_scale": _diff_scale_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def sq_diff_sum_setup(ctx, inputs, output):
        a, b, ctx.weight = inputs
        ctx.save_for_backward(a, b)

    def sq_diff_sum_bwd(ctx, gout):
        a, b = ctx.saved_tensors
        da, db = T.diff_scale(a, b, gout * (2.0 * ctx.weight))
        return da, db, None

    def diff_scale_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def diff_scale_bwd(ctx, ga, gb):
        a, b, coef = ctx.saved_tensors
        da, db = T.diff_scale(ga, gb, coef)
        dcoef = None
        if ctx.needs_input_grad[2]:
            acc = acc_dtype(a.dtype, b.dtype)
            dcoef = ((ga.to(acc) - gb.to(acc)) * (a.to(acc) - b.to(acc))).sum().to(coef.dtype)
        return da.to(a.dtype), db.to(b.dtype), dcoef

    return {"sq_diff_sum": (sq_diff_sum_setup, sq_diff_sum_bwd), "diff_scale": (diff_scale_setup, diff_scale_bwd)}
