"""Ops of the gradient-norm family: the fake kernels (schemas: ``csrc/ops.cpp``; autograd:
``csrc/autograd/gradnorm.cpp``, for every fused backend).

``sqnorm(g) = weight·reduce_b Σ_i (inv·g)²``, ``scale(g, c) = factor·c_b·g``, ``dot(a, b) = Σ_i a·b``:
each one's derivative is expressed with the others, so the family is closed under differentiation.
``grad_penalty`` (WGAN-GP) and ``path_length`` are ``sqnorm`` plus an O(B) epilogue: one C++ autograd
node each, whose forward (the backend's own ``sqnorm`` plus the epilogue, also C++) is their CPU and
CUDA kernel on every fused backend.
"""

from __future__ import annotations

import torch

from .._contract import RED_NONE, list_acc_dtype


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
