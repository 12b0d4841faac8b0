"""Ops on the Philox normal stream of docs/semantics.md#path-length-regularization-stylegan2 (path length noise-dot, instance noise): schemas, fake
kernels, and the autograd of the Triton ops (native: ``csrc/autograd/noise.cpp``, same formulas).

``noise_dot(x) = scale·Σ x·n`` and ``noise_axpy(x, α) = x + α·scale·n``: the noise ``n`` is made
inside the kernels from ``seed`` and never stored; each op's derivative is the other.
"""

from __future__ import annotations

from .._contract import acc_dtype

SCHEMAS = {
    "noise_dot": "(Tensor x, int seed, float scale) -> Tensor",
    "noise_axpy": "(Tensor? x, Tensor alpha, int seed, float scale, int[] size, ScalarType dtype) -> Tensor",
}


def _noise_dot_fake(x, seed, scale):
    return x.new_empty((), dtype=acc_dtype(x.dtype))


def _noise_axpy_fake(x, alpha, seed, scale, size, dtype):
    return alpha.new_empty(size, dtype=dtype)


FAKES = {"noise_dot": _noise_dot_fake, "noise_axpy": _noise_axpy_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def noise_dot_setup(ctx, inputs, output):
        x, ctx.seed, ctx.scale = inputs
        ctx.size, ctx.dtype = list(x.shape), x.dtype  # the noise is regenerated: nothing to save

    def noise_dot_bwd(ctx, gout):
        return T.noise_axpy(None, gout, ctx.seed, ctx.scale, ctx.size, ctx.dtype), None, None

    def noise_axpy_setup(ctx, inputs, output):
        x, alpha, ctx.seed, ctx.scale, _, _ = inputs
        ctx.x_dtype = None if x is None else x.dtype
        ctx.alpha_dtype = alpha.dtype

    def noise_axpy_bwd(ctx, gout):
        dx = gout.to(ctx.x_dtype) if ctx.x_dtype is not None and ctx.needs_input_grad[0] else None
        dalpha = T.noise_dot(gout, ctx.seed, ctx.scale).to(ctx.alpha_dtype) if ctx.needs_input_grad[1] else None
        return dx, dalpha, None, None, None, None

    return {"noise_dot": (noise_dot_setup, noise_dot_bwd), "noise_axpy": (noise_axpy_setup, noise_axpy_bwd)}
