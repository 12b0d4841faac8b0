"""Ops on the Philox normal stream of SPEC §3 (path length noise-dot, instance noise).

``noise_dot(x) = scale·Σ x·n`` and ``noise_axpy(x, α) = x + α·scale·n``: the noise ``n`` is made
inside the kernels from ``seed`` and never stored; each op's derivative is the other.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._dispatch import acc_dtype, kernel


@torch.library.custom_op("ganreg::noise_dot", mutates_args=())
def noise_dot(x: Tensor, seed: int, scale: float, backend: str) -> Tensor:
    """``scale·Σ_i x_i·n_i`` (``i`` the logical row-major index) → 0-d float32 (float64 for float64)."""
    return kernel("noise_dot", backend)(x, seed, scale)


@torch.library.custom_op("ganreg::noise_axpy", mutates_args=())
def noise_axpy(
    x: Optional[Tensor], alpha: Tensor, seed: int, scale: float, size: list[int], dtype: torch.dtype, backend: str
) -> Tensor:
    """``x + alpha·scale·n`` (``x = None`` reads as 0) → contiguous ``size`` tensor of ``dtype``;
    ``alpha`` is a 0-d tensor on the output device (read there, no host sync)."""
    return kernel("noise_axpy", backend)(x, alpha, seed, scale, size, dtype)


@noise_dot.register_fake
def _(x, seed, scale, backend):
    return x.new_empty((), dtype=acc_dtype(x.dtype))


@noise_axpy.register_fake
def _(x, alpha, seed, scale, size, dtype, backend):
    return alpha.new_empty(size, dtype=dtype)


def _noise_dot_setup(ctx, inputs, output):
    x, ctx.seed, ctx.scale, ctx.backend = inputs
    ctx.size, ctx.dtype = list(x.shape), x.dtype  # the noise is regenerated: nothing to save


def _noise_dot_bwd(ctx, gout):
    return noise_axpy(None, gout, ctx.seed, ctx.scale, ctx.size, ctx.dtype, ctx.backend), None, None, None


def _noise_axpy_setup(ctx, inputs, output):
    x, alpha, ctx.seed, ctx.scale, _, _, ctx.backend = inputs
    ctx.x_dtype = None if x is None else x.dtype
    ctx.alpha_dtype = alpha.dtype


def _noise_axpy_bwd(ctx, gout):
    dx = gout.to(ctx.x_dtype) if ctx.x_dtype is not None and ctx.needs_input_grad[0] else None
    dalpha = noise_dot(gout, ctx.seed, ctx.scale, ctx.backend).to(ctx.alpha_dtype) if ctx.needs_input_grad[1] else None
    return dx, dalpha, None, None, None, None, None


noise_dot.register_autograd(_noise_dot_bwd, setup_context=_noise_dot_setup)
noise_axpy.register_autograd(_noise_axpy_bwd, setup_context=_noise_axpy_setup)
