"""Gradient-norm penalties (docs/semantics.md#gradient-norm-penalties-r1-r2-wgan-gp-roth-et-al-dragan-grad_sqnorm): R1, R2, WGAN-GP, Roth et al. 2017, and their helpers.

Only ``s_b = Σ_i (inv_scale·g)²`` touches the full-size gradients: it runs in one fused pass
(one launch for a whole list of tensors) on the chosen backend; the O(B) epilogues are shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

from . import _checks as check
from ._contract import RED_NONE, RED_TOTAL
from ._dispatch import fused
from .reference import gradnorm as ref

Grads = Union[Tensor, Sequence[Tensor]]


def _sqnorm(grads: list[Tensor], inv, weight, reduction: int, backend) -> Tensor:
    """``weight · reduce_b s_b`` through the op ``backend`` picks (a tensor ``weight`` multiplies the
    result: no host read)."""
    w, w_t = check.split_coefficient(weight)
    op = fused("sqnorm", backend, grads[0].device)
    out = ref.sqnorm(grads, inv, w, reduction) if op is None else op(grads, inv, w, reduction)
    return out if w_t is None else out * w_t.to(out.dtype)


def grad_sqnorm(grads: Grads, per_sample: bool = True, inv_scale=None, backend: str | None = None) -> Tensor:
    """``s_b = Σ_i (inv_scale·g)²`` summed over every tensor in ``grads``.

    ``grads``: a tensor ``[B, ...]`` or a sequence of them (same ``B``); any float dtype and strides.
    Returns ``[B]`` float32 (float64 if any tensor is float64); ``per_sample=False`` sums everything
    into a 0-d scalar (e.g. parameter-gradient norms, where the tensors need not share a batch size).
    ``inv_scale`` fuses the AMP unscale ``g·inv_scale`` (before squaring): a number or a 0-d tensor
    (a device tensor such as ``1 / scaler._scale`` is read in the kernel, no host synchronisation).
    """
    grads = check.tensor_list(grads, "grads", same_batch=per_sample)
    inv = check.inv_scale(inv_scale, grads[0])
    return _sqnorm(grads, inv, 1.0, RED_NONE if per_sample else RED_TOTAL, backend)


def r1_penalty(grads: Grads, gamma: float = 10.0, reduction: str = "mean", inv_scale=None, backend=None) -> Tensor:
    """R1 on real inputs: ``γ/2 · Σ_i g_b²`` per sample, then ``reduction`` (``mean``/``sum``/``none``),
    one fused op (forward and backward). ``gamma``: a number or a 0-d tensor.

    Anchor: NVlabs stylegan2-ada-pytorch ``loss.py`` (``r1_grads.square().sum([1,2,3]) * (r1_gamma/2)``).
    ``grads`` come from ``autograd.grad(D(x).sum(), x, create_graph=True)`` (see :func:`input_gradients`).
    """
    grads = check.tensor_list(grads, "grads")
    gamma = check.coefficient(gamma, "gamma", grads[0])
    red = check.reduction(reduction)
    inv = check.inv_scale(inv_scale, grads[0])
    return _sqnorm(grads, inv, gamma / 2, red, backend)


def r2_penalty(grads: Grads, gamma: float = 10.0, reduction: str = "mean", inv_scale=None, backend=None) -> Tensor:
    """R2: the R1 formula ``γ/2 · Σ_i g_b²`` on gradients at fake inputs (Mescheder 2018, R3GAN)."""
    return r1_penalty(grads, gamma, reduction, inv_scale, backend)


def gradient_penalty(
    grads: Grads,
    center: float = 1.0,
    weight: float = 10.0,
    one_sided: bool = False,
    eps: float = 0.0,
    reduction: str = "mean",
    inv_scale=None,
    backend=None,
) -> Tensor:
    """WGAN-GP (Gulrajani 2017): ``w · (‖g_b‖ − c)²``, one-sided ``w · relu(‖g_b‖ − c)²``,
    with the per-sample norm ``‖g_b‖ = sqrt(s_b + eps)`` (never batch-global). Gradient 0 at ``‖g_b‖ = 0``.
    """
    grads = check.tensor_list(grads, "grads")
    w, w_t = check.split_coefficient(check.coefficient(weight, "weight", grads[0]))
    eps = check.nonneg(eps, "eps")
    red = check.reduction(reduction)
    inv = check.inv_scale(inv_scale, grads[0])
    op = fused("grad_penalty", backend, grads[0].device)
    out = (ref.grad_penalty if op is None else op)(grads, inv, float(center), w, eps, bool(one_sided), red)
    return out if w_t is None else out * w_t.to(out.dtype)


def roth_penalty(
    grads_real: Grads, logits_real: Tensor, grads_fake: Grads, logits_fake: Tensor, gamma: float = 0.1, backend=None
):
    """Roth et al. 2017: ``γ/2 · E_b[(1−σ(D_r))²·‖∇D_r‖² + σ(D_f)²·‖∇D_f‖²]``; the gradient flows
    into the logits too. ``logits_*``: ``[B]`` or ``[B, 1]`` D outputs (pre-sigmoid)."""
    grads_real = check.tensor_list(grads_real, "grads_real")  # validate everything before any kernel runs
    grads_fake = check.tensor_list(grads_fake, "grads_fake")
    gamma = check.coefficient(gamma, "gamma", grads_real[0])
    for name, logits, g in (("logits_real", logits_real, grads_real[0]), ("logits_fake", logits_fake, grads_fake[0])):
        check.tensor(logits, name, dims=(1, 2))
        if logits.numel() != g.shape[0]:
            raise ValueError(f"{name} must hold one logit per sample ({g.shape[0]}), got shape {tuple(logits.shape)}")
        check.same_device(name, logits, g)
    s_real = _sqnorm(grads_real, None, 1.0, RED_NONE, backend)
    s_fake = _sqnorm(grads_fake, None, 1.0, RED_NONE, backend)
    return ref.roth_from_sqnorm(s_real, logits_real, s_fake, logits_fake, gamma)


def input_gradients(outputs: Tensor, inputs, scaler=None):
    """``autograd.grad(outputs.sum(), inputs, create_graph=True)``: the gradients a penalty needs,
    kept differentiable so the penalty's backward reaches D's parameters. With an AMP ``scaler`` the
    sum is scaled first (pass ``inv_scale=1/scaler.get_scale()`` to the penalty). Returns a tensor
    for a tensor ``inputs``, else a tuple."""
    check.tensor(outputs, "outputs", min_dim=0)
    total = outputs.sum()
    if scaler is not None:
        total = scaler.scale(total)
    grads = torch.autograd.grad(total, inputs, create_graph=True)
    return grads[0] if isinstance(inputs, Tensor) else grads


def r1_loss(logits: Tensor, inputs, gamma=10.0, backend=None) -> Tensor:
    """``r1_penalty(input_gradients(logits, inputs), gamma)``: R1 from D's logits in one call."""
    return r1_penalty(input_gradients(logits, inputs), gamma, backend=backend)


def wgan_interpolate(real: Tensor, fake: Tensor, alpha: Tensor | None = None, generator=None) -> Tensor:
    """``α·real + (1−α)·fake`` with ``α ~ U[0,1)`` per sample (WGAN-GP). Detach ``fake`` and call
    ``.requires_grad_()`` on the result before taking gradients w.r.t. it."""
    check.tensor(real, "real")
    check.tensor(fake, "fake")
    check.same_shape("real", real, "fake", fake)
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, generator=generator, dtype=real.dtype)
    alpha = alpha.to(real.dtype).reshape(-1, *([1] * (real.dim() - 1)))
    if alpha.shape[0] != real.shape[0]:
        raise ValueError(f"alpha must hold one value per sample ({real.shape[0]}), got {alpha.shape[0]}")
    return alpha * real + (1 - alpha) * fake


def dragan_perturb(x: Tensor, c: float = 0.5, generator=None) -> Tensor:
    """DRAGAN perturbation ``x + c·std(x)·U[0,1)`` (elementwise uniform, global std; StudioGAN)."""
    check.tensor(x, "x")
    c = check.nonneg(c, "c")
    u = torch.rand(x.shape, device=x.device, generator=generator, dtype=x.dtype)
    return x + c * x.std() * u
