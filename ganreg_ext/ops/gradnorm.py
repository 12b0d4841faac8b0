"""Ops of the gradient-norm family: schemas, fake kernels, and the autograd of the Triton ops (the
native ops' autograd is the same formulas in C++, ``csrc/autograd/gradnorm.cpp``).

``sqnorm(g) = weight·reduce_b Σ_i (inv·g)²``, ``scale(g, c) = factor·c_b·g``, ``dot(a, b) = Σ_i a·b``:
each one's derivative is expressed with the others, so the family is closed under differentiation.
``grad_penalty`` (WGAN-GP) and ``path_length`` are ``sqnorm`` plus an O(B) epilogue: one C++ autograd
node each on the native backends; on Triton a composite of ``sqnorm`` and the reference epilogue.
"""

from __future__ import annotations

import torch

from .._contract import RED_MEAN, RED_NONE, list_acc_dtype
from ._common import needs

SCHEMAS = {
    "sqnorm": "(Tensor[] grads, Tensor? inv_scale, float weight, int reduction) -> Tensor",
    "scale": "(Tensor[] grads, Tensor coef, float factor, bool per_sample) -> Tensor[]",
    "dot": "(Tensor[] a, Tensor[] b, bool per_sample) -> Tensor",
    "grad_penalty": "(Tensor[] grads, Tensor? inv_scale, float center, float weight, float eps, bool one_sided, "
    "int reduction) -> Tensor",
    "path_length": "(Tensor pl_grads, Tensor pl_mean, float decay) -> (Tensor, Tensor)",
}


def _sqnorm_fake(grads, inv_scale, weight, reduction):
    shape = (grads[0].shape[0],) if reduction == RED_NONE else ()
    return grads[0].new_empty(shape, dtype=list_acc_dtype(grads))


def _scale_fake(grads, coef, factor, per_sample):
    return [torch.empty_like(g) for g in grads]


def _dot_fake(a, b, per_sample):
    return a[0].new_empty((a[0].shape[0],) if per_sample else (), dtype=list_acc_dtype(a, b))


def _grad_penalty_fake(grads, inv_scale, center, weight, eps, one_sided, reduction):
    return _sqnorm_fake(grads, inv_scale, weight, reduction)


def _path_length_fake(pl_grads, pl_mean, decay):
    acc = list_acc_dtype([pl_grads])
    return pl_grads.new_empty((pl_grads.shape[0],), dtype=acc), pl_grads.new_empty((), dtype=acc)


FAKES = {
    "sqnorm": _sqnorm_fake,
    "scale": _scale_fake,
    "dot": _dot_fake,
    "grad_penalty": _grad_penalty_fake,
    "path_length": _path_length_fake,
}


def composites(T) -> dict:
    """Ops defined by composition (``CompositeImplicitAutograd``) for namespace ``T``: the reference
    epilogue on the backend's ``sqnorm``."""
    from ..reference import gradnorm as ref
    from ..reference import pathlength as ref_pl

    def grad_penalty(grads, inv_scale, center, weight, eps, one_sided, reduction):
        return ref.gp_from_sqnorm(T.sqnorm(grads, inv_scale, 1.0, RED_NONE), center, weight, one_sided, eps, reduction)

    def path_length(pl_grads, pl_mean, decay):
        num_ws = pl_grads.shape[1] if pl_grads.dim() == 3 else 1
        return ref_pl.pl_epilogue(T.sqnorm([pl_grads], None, 1.0, RED_NONE), num_ws, pl_mean, decay)

    return {"grad_penalty": grad_penalty, "path_length": path_length}


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
