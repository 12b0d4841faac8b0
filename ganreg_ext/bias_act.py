"""Fused bias + activation + gain + clamp (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): StyleGAN2's ``bias_act`` with a fused backward
of every order.

``y = clamp(gain·f(x + b), ±clamp)`` is one elementwise pass on the chosen backend; its backward is
the family's ``bias_act_grad`` op, whose own backward is again a ``bias_act_grad`` (one more
multiplier, or one more derivative order), so gradient penalties through a StyleGAN network (R1,
path length: double backward) stay fused. Formulas: ``ganreg_ext/reference/bias_act.py``.
"""

from __future__ import annotations

import math
import numbers

from torch import Tensor

from . import _checks as check
from ._contract import ACT_CODES
from ._dispatch import fused
from .reference import bias_act as ref
from .reference.bias_act import SELU_ALPHA, SELU_LAMBDA  # noqa: F401  (re-exported constants)

SQRT2 = math.sqrt(2)

ACTIVATIONS = {  # name: (default alpha, default gain), StyleGAN2's conventions
    "linear": (0.0, 1.0),
    "relu": (0.0, SQRT2),
    "lrelu": (0.2, SQRT2),
    "tanh": (0.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "elu": (0.0, 1.0),
    "selu": (0.0, 1.0),
    "softplus": (0.0, 1.0),
    "swish": (0.0, SQRT2),
}
"""Every activation name with its default ``alpha`` (only lrelu uses it) and default ``gain``."""


def act_code(act) -> int:
    if not isinstance(act, str) or act not in ACT_CODES:
        raise ValueError(f"act must be one of {list(ACT_CODES)}, got {act!r}")
    return ACT_CODES[act]


def _dim(dim, x: Tensor, has_bias: bool) -> int:
    """``dim`` normalized to ``[0, x.dim())``; as in StyleGAN2 it only matters (and is only range
    checked) when there is a bias."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not has_bias:
        return 0
    nd = x.dim()
    if nd == 0:
        raise ValueError("b needs an x with at least one dimension, got a 0-d x")
    if not -nd <= dim < nd:
        raise ValueError(f"dim must be in [{-nd}, {nd}) for x of shape {tuple(x.shape)}, got {dim}")
    return int(dim) % nd


def bias_act(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    backend: str | None = None,
) -> Tensor:
    """``clamp(gain·act(x + b), ±clamp)`` in one fused pass (StyleGAN2 ``bias_act``).

    ``x``: any shape, float16/bfloat16/float32/float64, any strides (the output has
    ``torch.empty_like(x)``'s layout and ``x``'s dtype; math in float32, float64 for float64).
    ``b``: ``None`` or a 1-D bias of ``x.shape[dim]`` elements (``x``'s dtype and device), added
    along ``dim``. ``act``: ``linear``, ``relu``, ``lrelu``, ``tanh``, ``sigmoid``, ``elu``, ``selu``,
    ``softplus`` or ``swish``. ``alpha``: lrelu's negative slope (default 0.2). ``gain``: default √2
    for relu, lrelu and swish, else 1. ``clamp``: ``None`` or a bound ``>= 0`` (gradient 0 where
    clamped). Every order of derivative w.r.t. ``x`` and ``b`` runs fused.
    """
    check.tensor(x, "x", min_dim=0)
    code = act_code(act)
    dim = _dim(dim, x, b is not None)
    b = check.bias(b, x, dim)
    def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else check.number(alpha, "alpha")
    gain = def_gain if gain is None else check.number(gain, "gain")
    clamp = check.clamp_value(clamp)
    op = fused("bias_act", backend, x.device)
    if op is None or x.numel() == 0 or x.dim() == 0:  # nothing to fuse: the eager formula
        return ref.bias_act(x, b, dim, code, alpha, gain, clamp)
    return op(x, b, dim, code, alpha, gain, clamp)
