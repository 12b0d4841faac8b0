"""Ops of the bias_act family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): schemas, fake kernels, and the autograd of the Triton ops
(native: ``csrc/autograd/bias_act.cpp``, the same formulas).

``bias_act(x, b) = clamp(gain·f(x + b))`` and ``bias_act_grad(x, b, y, mults, order) =
Π mults · gain · f^(order)(x + b) · [unclamped]``: the vjp of ``bias_act_grad`` is again a
``bias_act_grad`` (one more multiplier, or one more order for ``x``), so every order of derivative
is one fused pass. What the forward saves: :func:`saved_by_bias_act`.
"""

from __future__ import annotations

import torch

from .._contract import ACT_CODES, PIECEWISE_LINEAR
from ._common import needs

SCHEMAS = {
    "bias_act": "(Tensor x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) -> Tensor",
    "bias_act_grad": "(Tensor? x, Tensor? b, Tensor? y, Tensor[] mults, int dim, int act, float alpha, float gain, "
    "float clamp, int order) -> Tensor",
}


def _bias_act_fake(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(x)


def _bias_act_grad_fake(x, b, y, mults, dim, act, alpha, gain, clamp, order):
    return torch.empty_like(mults[0])


LINEAR = ACT_CODES["linear"]

FAKES = {"bias_act": _bias_act_fake, "bias_act_grad": _bias_act_grad_fake}


def saved_by_bias_act(act: int, clamp: float) -> str:
    """What ``bias_act``'s backward keeps (docs/blocks.md "Saved tensors"), the same rule as the C++
    autograd: ``"nothing"`` for linear without clamp (f' = 1: the output may be edited in place),
    ``"input"`` (x and b) for linear with clamp and the smooth activations (every derivative and the
    clamp mask from z = x + b), ``"output"`` for relu/lrelu (f' and the mask from y)."""
    if act == LINEAR:
        return "input" if clamp >= 0 else "nothing"
    return "output" if act in PIECEWISE_LINEAR else "input"


def bias_grad(dx: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """∂L/∂b from ∂L/∂x: the sum over every dimension but ``dim``."""
    dims = [d for d in range(dx.dim()) if d != dim]
    return (dx.sum(dims) if dims else dx).to(dtype)  # a sum over no dim would sum over all


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def bias_act_setup(ctx, inputs, output):
        x, b, ctx.dim, ctx.act, ctx.alpha, ctx.gain, ctx.clamp = inputs
        ctx.b_dtype = None if b is None else b.dtype
        saves = saved_by_bias_act(ctx.act, ctx.clamp)
        ctx.save_for_backward(*((x, b, None) if saves == "input" else (None, None, output if saves == "output" else None)))

    def bias_act_bwd(ctx, gy):
        x, b, y = ctx.saved_tensors
        dx = T.bias_act_grad(x, b, y, [gy], ctx.dim, ctx.act, ctx.alpha, ctx.gain, ctx.clamp, 1)
        db = bias_grad(dx, ctx.dim, ctx.b_dtype) if ctx.b_dtype is not None and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None

    def grad_setup(ctx, inputs, output):
        x, b, y, mults, ctx.dim, ctx.act, ctx.alpha, ctx.gain, ctx.clamp, ctx.order = inputs
        ctx.n = len(mults)
        ctx.flags = (x is not None, b is not None, y is not None)
        ctx.save_for_backward(x, b, y, *mults)

    def grad_bwd(ctx, u):
        x, b, y, *mults = ctx.saved_tensors
        args = (ctx.dim, ctx.act, ctx.alpha, ctx.gain, ctx.clamp)
        dmults = [None] * ctx.n
        if needs(ctx, 3):
            dmults = [T.bias_act_grad(x, b, y, mults[:i] + mults[i + 1 :] + [u], *args, ctx.order) for i in range(ctx.n)]
        dx = db = None
        if x is not None and (needs(ctx, 0) or needs(ctx, 1)):
            dx = T.bias_act_grad(x, b, y, mults + [u], *args, ctx.order + 1)
            db = bias_grad(dx, ctx.dim, b.dtype) if b is not None and needs(ctx, 1) else None
        # y enters only through the sign/clamp mask: derivative 0 almost everywhere
        return dx, db, None, dmults, None, None, None, None, None, None

    return {"bias_act": (bias_act_setup, bias_act_bwd), "bias_act_grad": (grad_setup, grad_bwd)}
