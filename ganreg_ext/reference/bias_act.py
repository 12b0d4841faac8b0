"""Fused bias + activation (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu, StyleGAN2's ``bias_act``), eager PyTorch: the truth every
backend is tested against. Same op signatures as the fused backends (``ganreg_ext/ops/bias_act.py``).

Forward, with ``z = x + b`` (``b`` broadcast along ``dim``)::

    y = clamp(gain·f(z), −clamp, clamp)          (no clamp when clamp < 0)

computed in float32 (float64 for float64 inputs), returned in the dtype of ``x``. Activations
``f`` by code (``_contract.ACT_CODES``):

    0 linear   z                      5 elu       z ≥ 0 ? z : eᶻ − 1
    1 relu     max(z, 0)              6 selu      λ·(z ≥ 0 ? z : α_s(eᶻ − 1))
    2 lrelu    z > 0 ? z : α·z        7 softplus  log(1 + eᶻ)
    3 tanh     tanh z                 8 swish     z·σ(z)
    4 sigmoid  σ(z) = 1/(1 + e⁻ᶻ)

with λ = 1.0507009873554805, α_s = 1.6732632423543772. The clamp's derivative is the mask
``[|y₀| < clamp]`` (``y₀ = gain·f(z)`` before clamping): 0 where clamped, also at the boundary.

Derivatives (``bias_act_grad``, order ``k ≥ 1``)::

    out = (Π mults) · gain · f⁽ᵏ⁾(z) · [|y₀| < clamp]

    linear  [k = 1]                      relu   [k = 1]·[z > 0]    lrelu  [k = 1]·(z > 0 ? 1 : α)
    tanh    P_k(t), t = tanh z,  P₁ = 1 − t²,  P_{k+1} = P_k′(t)·(1 − t²)
    sigmoid S_k(s), s = σ(z),    S₀ = s,       S_{k+1} = S_k′(s)·s(1 − s)
    softplus S_{k−1}(σ(z))       swish  z·S_k(s) + k·S_{k−1}(s)
    elu     z ≥ 0 ? [k = 1] : eᶻ          selu   λ·(z ≥ 0 ? [k = 1] : α_s·eᶻ)

The piecewise-linear activations (linear, relu, lrelu) may be given ``x = None`` and the output
``y`` instead: ``f′`` is then read from the sign of ``y·gain`` (``> 0`` → 1, else 0 for relu and
``α`` for lrelu). Linear without clamp needs neither (``f′ = 1``).
"""

from __future__ import annotations

import functools

import torch

from .._contract import ACT_CODES, MAX_ACT_ORDER, PIECEWISE_LINEAR, acc_dtype

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772

LINEAR, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH = (
    ACT_CODES[n] for n in ("linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish")
)


# ---------------------------------------------------------------- helpers


def _bias_view(b: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    """``b`` reshaped to broadcast along dimension ``dim`` of an ``ndim``-d tensor."""
    return b.reshape([-1 if i == dim else 1 for i in range(ndim)])


def _z(x: torch.Tensor, b: torch.Tensor | None, dim: int, acc: torch.dtype) -> torch.Tensor:
    z = x.to(acc)
    return z if b is None else z + _bias_view(b.to(acc), dim, x.dim())


class _Softplus(torch.autograd.Function):
    """``log(1 + eᶻ)`` computed stably, with the derivative ``σ(z)`` written with differentiable ops
    (so every order of derivative is exact and free of overflow, also for large ``|z|``)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * torch.sigmoid(z)


def activation(z: torch.Tensor, act: int, alpha: float) -> torch.Tensor:
    """``f(z)`` for activation code ``act``, with plain autograd (every order of derivative)."""
    if act == LINEAR:
        return z
    if act == RELU:  # f'(NaN) = 0 like the closed form [z > 0] (torch.relu's backward passes it through)
        return torch.where(z > 0, z, torch.where(torch.isnan(z), z.detach(), torch.zeros_like(z)))
    if act == LRELU:
        return torch.where(z > 0, z, z * alpha)
    if act == TANH:
        return torch.tanh(z)
    if act == SIGMOID:
        return torch.sigmoid(z)
    if act in (ELU, SELU):
        # expm1 of min(z, 0): the branch that is not taken never overflows (no inf·0 in the backward)
        # (a NaN z reaches expm1 and gives a NaN derivative, as the closed form eᶻ does)
        neg = torch.expm1(torch.where(z > 0, torch.zeros_like(z), z))
        if act == ELU:
            return torch.where(z >= 0, z, neg)
        return SELU_LAMBDA * torch.where(z >= 0, z, SELU_ALPHA * neg)
    if act == SOFTPLUS:
        return _Softplus.apply(z)
    if act == SWISH:
        return z * torch.sigmoid(z)
    raise ValueError(f"act must be one of the codes {sorted(ACT_CODES.values())}, got {act!r}")


def _clamp(y0: torch.Tensor, clamp: float) -> torch.Tensor:
    """``clamp(y₀, ±clamp)`` whose derivative is ``[|y₀| < clamp]`` (0 at the boundary too)."""
    return torch.where(y0.abs() < clamp, y0, y0.detach().clamp(-clamp, clamp))


# ---------------------------------------------------------------- the ops


def bias_act(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, act: int, alpha: float, gain: float, clamp: float
) -> torch.Tensor:
    """``clamp(gain·f(x + b), ±clamp)`` (``clamp < 0``: none), in the accumulation dtype, returned
    in the dtype of ``x``. ``b``: ``None`` or 1-D of size ``x.shape[dim]``."""
    acc = acc_dtype(x.dtype, *(() if b is None else (b.dtype,)))
    y = activation(_z(x, b, dim, acc), act, alpha) * gain
    if clamp >= 0:
        y = _clamp(y, clamp)
    return y.to(x.dtype)


@functools.cache
def _poly_tanh(k: int) -> tuple[float, ...]:
    """Coefficients (ascending powers of ``t``) of ``P_k(t) = dᵏ tanh / dzᵏ`` (``t = tanh z``), k ≥ 1."""
    p = (1.0, 0.0, -1.0)
    for _ in range(k - 1):
        p = _mul(_deriv(p), (1.0, 0.0, -1.0))
    return p


@functools.cache
def _poly_sigmoid(k: int) -> tuple[float, ...]:
    """Coefficients of ``S_k(s) = dᵏ σ / dzᵏ`` (``s = σ(z)``), k ≥ 0."""
    p = (0.0, 1.0)
    for _ in range(k):
        p = _mul(_deriv(p), (0.0, 1.0, -1.0))
    return p


def _deriv(p):
    return tuple(i * c for i, c in enumerate(p))[1:] or (0.0,)


def _mul(p, q):
    out = [0.0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, c in enumerate(q):
            out[i + j] += a * c
    return tuple(out)


def _horner(coefs, t: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(t, coefs[-1])
    for c in reversed(coefs[:-1]):
        out = out * t + c
    return out


def derivative(z: torch.Tensor, act: int, alpha: float, k: int) -> torch.Tensor:
    """``f⁽ᵏ⁾(z)`` (k ≥ 1) from the closed forms of the module docstring."""
    one = 1.0 if k == 1 else 0.0
    if act == LINEAR:
        return torch.full_like(z, one)
    if act == RELU:
        return (z > 0).to(z.dtype) * one
    if act == LRELU:
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, alpha)) * one
    if act == TANH:
        return _horner(_poly_tanh(k), torch.tanh(z))
    if act == SIGMOID:
        return _horner(_poly_sigmoid(k), torch.sigmoid(z))
    if act == SOFTPLUS:
        return _horner(_poly_sigmoid(k - 1), torch.sigmoid(z))
    if act == SWISH:
        s = torch.sigmoid(z)
        return z * _horner(_poly_sigmoid(k), s) + k * _horner(_poly_sigmoid(k - 1), s)
    if act in (ELU, SELU):
        e = torch.exp(z.clamp(max=0))
        d = torch.where(z >= 0, torch.full_like(z, one), e * (1.0 if act == ELU else SELU_ALPHA))
        return d if act == ELU else SELU_LAMBDA * d
    raise ValueError(f"act must be one of the codes {sorted(ACT_CODES.values())}, got {act!r}")


def _derivative_from_output(y: torch.Tensor, act: int, alpha: float, gain: float, k: int) -> torch.Tensor:
    """``f⁽ᵏ⁾`` of a piecewise-linear activation from the sign of ``y·gain`` (no input needed)."""
    if k >= 2:
        return torch.zeros_like(y)
    if act == LINEAR:
        return torch.ones_like(y)
    return torch.where(y * gain > 0, torch.ones_like(y), torch.full_like(y, 0.0 if act == RELU else alpha))


def bias_act_grad(
    x: torch.Tensor | None,
    b: torch.Tensor | None,
    y: torch.Tensor | None,
    mults: list[torch.Tensor],
    dim: int,
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
    order: int,
) -> torch.Tensor:
    """``(Π mults)·gain·f⁽ᵒʳᵈᵉʳ⁾(x + b)·m`` with ``m = [|y₀| < clamp]`` (1 without clamp; ``y₀ = y``
    when given, else ``gain·f(x + b)`` recomputed), in the accumulation dtype of every tensor given,
    returned in the dtype of ``mults[0]``. Piecewise-linear activations accept ``x = None`` with
    ``y`` given (``f′`` from the sign of ``y·gain``). Orders 1..8 (like the fused backends)."""
    if not 1 <= order <= MAX_ACT_ORDER:
        raise ValueError(f"bias_act_grad: order must be in 1..{MAX_ACT_ORDER}, got {order}")
    if not mults:
        raise ValueError("bias_act_grad: mults must hold at least one tensor")
    if x is None and act not in PIECEWISE_LINEAR:
        raise ValueError("bias_act_grad: x is required (only piecewise-linear activations can use y alone)")
    if x is None and y is None and (act != LINEAR or clamp >= 0):
        raise ValueError("bias_act_grad: with x = None, y is needed (the sign of y gives f', |y| the clamp mask)")
    acc = acc_dtype(*(t.dtype for t in (x, b, y, *mults) if t is not None))
    prod = mults[0].to(acc)
    for m in mults[1:]:
        prod = prod * m.to(acc)
    if x is not None:
        z = _z(x, b, dim, acc)
        d = derivative(z, act, alpha, order)
    elif y is None:  # linear without clamp: f' = 1
        z = None
        d = torch.full_like(prod, 1.0 if order == 1 else 0.0)
    else:
        z = None
        d = _derivative_from_output(y.to(acc), act, alpha, gain, order)
    out = prod * (gain * d)
    if clamp >= 0:
        # a stored y holds the clamp rounded to its dtype: compare in that dtype (0 where clamped)
        mask = y.abs() < clamp if y is not None else (activation(z, act, alpha) * gain).abs() < clamp
        out = out * mask.to(acc)
    return out.to(mults[0].dtype)
