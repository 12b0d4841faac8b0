"""Ops of the gradient-norm family.

``sqnorm(g) = Σ (inv·g)²``, ``scale(g, coef) = factor·coef_b·g``, ``dot(a, b) = Σ a·b``: each one's
derivative is expressed with the others, so the family is closed under differentiation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._dispatch import kernel
from ._common import reduced_like, save_all, unpack


@torch.library.custom_op("ganreg::sqnorm", mutates_args=())
def sqnorm(grads: list[Tensor], inv_scale: float, per_sample: bool, backend: str) -> Tensor:
    """``s_b = Σ_i (inv_scale·g)²`` over all tensors → ``[B]`` (0-d if not ``per_sample``), float32/64."""
    return kernel("sqnorm", backend)(grads, inv_scale, per_sample)


@torch.library.custom_op("ganreg::scale", mutates_args=())
def scale(grads: list[Tensor], coef: Tensor, factor: float, per_sample: bool, backend: str) -> list[Tensor]:
    """``out_t = factor·coef_b·g_t`` (``coef`` ``[B]``, or 0-d if not ``per_sample``), dtype of ``g_t``,
    with ``torch.empty_like(g_t)`` strides (channels_last stays channels_last)."""
    # coef is often an expanded gradient (``s.sum().backward()`` gives stride 0): kernels index it densely
    return kernel("scale", backend)(grads, coef.contiguous(), factor, per_sample)


@torch.library.custom_op("ganreg::dot", mutates_args=())
def dot(a: list[Tensor], b: list[Tensor], per_sample: bool, backend: str) -> Tensor:
    """``Σ_i a·b`` per sample over all tensor pairs → ``[B]`` (0-d if not ``per_sample``)."""
    return kernel("dot", backend)(a, b, per_sample)


@sqnorm.register_fake
def _(grads, inv_scale, per_sample, backend):
    return reduced_like(grads[0], per_sample)


@scale.register_fake
def _(grads, coef, factor, per_sample, backend):
    return [torch.empty_like(g) for g in grads]


@dot.register_fake
def _(a, b, per_sample, backend):
    return reduced_like(a[0], per_sample)


def _sqnorm_bwd(ctx, gout):
    grads, inv, per_sample, backend = unpack(ctx)
    return scale(grads, gout, 2.0 * inv * inv, per_sample, backend), None, None, None


def _scale_bwd(ctx, gouts):
    grads, coef, factor, per_sample, backend = unpack(ctx)
    gouts = list(gouts)
    d_grads = scale(gouts, coef, factor, per_sample, backend) if ctx.needs_input_grad[0] else None
    d_coef = None
    if ctx.needs_input_grad[1]:
        d_coef = (dot(gouts, grads, per_sample, backend) * factor).to(coef.dtype)
    return d_grads, d_coef, None, None, None


def _dot_bwd(ctx, gout):
    a, b, per_sample, backend = unpack(ctx)
    da = scale(b, gout, 1.0, per_sample, backend) if ctx.needs_input_grad[0] else None
    db = scale(a, gout, 1.0, per_sample, backend) if ctx.needs_input_grad[1] else None
    return da, db, None, None


sqnorm.register_autograd(_sqnorm_bwd, setup_context=save_all)
scale.register_autograd(_scale_bwd, setup_context=save_all)
dot.register_autograd(_dot_bwd, setup_context=save_all)
