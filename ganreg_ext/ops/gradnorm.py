"""Ops of the gradient-norm family: schemas, fake kernels, and the autograd of the Triton ops (the
native ops' autograd is the same formulas in C++, ``csrc/autograd.cpp``).

``sqnorm(g) = weight·reduce_b Σ_i (inv·g)²``, ``scale(g, c) = factor·c_b·g``, ``dot(a, b) = Σ_i a·b``:
each one's derivative is expressed with the others, so the family is closed under differentiation.
"""

from __future__ import annotations

import torch

from .._contract import RED_MEAN, RED_NONE, list_acc_dtype
from ._common import needs

SCHEMAS = {
    "sqnorm": "(Tensor[] grads, Tensor? inv_scale, float weight, int reduction) -> Tensor",
    "scale": "(Tensor[] grads, Tensor coef, float factor, bool per_sample) -> Tensor[]",
    "dot": "(Tensor[] a, Tensor[] b, bool per_sample) -> Tensor",
}


def _sqnorm_fake(grads, inv_scale, weight, reduction):
    shape = (grads[0].shape[0],) if reduction == RED_NONE else ()
    return grads[0].new_empty(shape, dtype=list_acc_dtype(grads))


def _scale_fake(grads, coef, factor, per_sample):
    return [torch.empty_like(g) for g in grads]


def _dot_fake(a, b, per_sample):
    return a[0].new_empty((a[0].shape[0],) if per_sample else (), dtype=list_acc_dtype(a, b))


FAKES = {"sqnorm": _sqnorm_fake, "scale": _scale_fake, "dot": _dot_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def sqnorm_setup(ctx, inputs, output):
        grads, ctx.inv, ctx.weight, ctx.reduction = inputs
        ctx.save_for_backward(*grads)

    def sqnorm_bwd(ctx, gout):
        grads = list(ctx.saved_tensors)
        factor = 2.0 * ctx.weight / (grads[0].shape[0] if ctx.reduction == RED_MEAN else 1)
        coef = gout if ctx.inv is None else gout * ctx.inv.square().to(gout.dtype)
        return T.scale(grads, coef, factor, ctx.reduction == RED_NONE), None, None, None

    def scale_setup(ctx, inputs, output):
        grads, coef, ctx.factor, ctx.per_sample = inputs
        ctx.n = len(grads)
        ctx.save_for_backward(*grads, coef)

    def scale_bwd(ctx, gouts):
        *grads, coef = ctx.saved_tensors
        gouts = list(gouts)
        d_grads = T.scale(gouts, coef, ctx.factor, ctx.per_sample) if needs(ctx, 0) else None
        d_coef = None
        if ctx.needs_input_grad[1]:
            d_coef = (T.dot(gouts, grads, ctx.per_sample) * ctx.factor).to(coef.dtype).reshape(coef.shape)
        return d_grads, d_coef, None, None

    def dot_setup(ctx, inputs, output):
        a, b, ctx.per_sample = inputs
        ctx.n = len(a)
        ctx.save_for_backward(*a, *b)

    def dot_bwd(ctx, gout):
        a, b = ctx.saved_tensors[: ctx.n], ctx.saved_tensors[ctx.n :]
        da = db = None
        if needs(ctx, 0):
            da = [d.to(x.dtype) for d, x in zip(T.scale(list(b), gout, 1.0, ctx.per_sample), a)]
        if needs(ctx, 1):
            db = [d.to(x.dtype) for d, x in zip(T.scale(list(a), gout, 1.0, ctx.per_sample), b)]
        return da, db, None

    return {"sqnorm": (sqnorm_setup, sqnorm_bwd), "scale": (scale_setup, scale_bwd), "dot": (dot_setup, dot_bwd)}
