"""Ops of the bias_act family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu):
the fake kernels (schemas: ``csrc/ops.cpp``; autograd: ``csrc/autograd/bias_act.cpp``, for every
fused backend, with its saved-tensor rule ``bias_act_saves``, docs/blocks.md "Saved tensors").

``bias_act(x, b) = clamp(gain·f(x + b))`` and ``bias_act_grad(x, b, y, mults, order) =
Π mults · gain · f^(order)(x + b) · [unclamped]``: the vjp of ``bias_act_grad`` is again a
``bias_act_grad`` (one more multiplier, or one more order for ``x``), so every order of derivative
is one fused pass.
"""

from __future__ import annotations

import torch


def _bias_act_fake(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(x)


def _bias_act_grad_fake(x, b, y, mults, dim, act, alpha, gain, clamp, order):
    return torch.empty_like(mults[0])


FAKES = {"bias_act": _bias_act_fake, "bias_act_grad": _bias_act_grad_fake}
