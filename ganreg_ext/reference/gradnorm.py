"""Gradient-norm penalties (docs/semantics.md#gradient-norm-penalties-r1-r2-wgan-gp-roth-et-al-dragan-grad_sqnorm), eager PyTorch: the truth the fused backends are tested against.

``sqnorm`` (the fused op's semantics: R1/R2 are ``sqnorm`` with ``weight = γ/2``) is the only part
that touches the full-size gradients; the other epilogues act on the per-sample ``s_b`` (O(B) work).
"""

from __future__ import annotations

import torch

from .._contract import RED_MEAN, RED_NONE, RED_SUM, RED_TOTAL, list_acc_dtype


def sqnorm(grads: list[torch.Tensor], inv_scale: torch.Tensor | None, weight: float, reduction: int) -> torch.Tensor:
    """``weight · s_b`` with ``s_b = Σ_t Σ_i (inv_scale·g_t[b, i])²`` → ``[B]`` (``RED_NONE``), its sum
    or mean over the batch (0-d), or ``RED_TOTAL``: the sum over every element of every tensor (0-d,
    tensors of any shape). Every element is converted to the list's accumulation dtype (float64 if
    any tensor is float64, else float32) before ``inv_scale`` is applied and it is squared."""
    acc = list_acc_dtype(grads)
    total = None
    for g in grads:
        x = g.to(acc)
        if inv_scale is not None:
            x = x * inv_scale.to(device=x.device, dtype=acc)
        sq = x.square()
        part = sq.reshape(g.shape[0], -1).sum(1) if reduction != RED_TOTAL else sq.sum()
        total = part if total is None else total + part
    if reduction == RED_SUM:
        total = total.sum()
    elif reduction == RED_MEAN:
        total = total.mean()
    return weight * total


def reduce(x: torch.Tensor, reduction: int) -> torch.Tensor:
    """``RED_MEAN`` / ``RED_SUM`` over the batch, or ``RED_NONE`` (the per-sample vector)."""
    return x.mean() if reduction == RED_MEAN else x.sum() if reduction == RED_SUM else x


def safe_norm(s: torch.Tensor, eps: float) -> torch.Tensor:
    """``sqrt(s + eps)`` whose gradient is 0 (not NaN) at ``s + eps = 0``, like ``vector_norm``."""
    s = s + eps
    # NaN counts as positive: sqrt(NaN) = NaN propagates, never masked to 0
    # (docs/semantics.md#notation-and-contracts-shared-by-every-op)
    pos = ~(s <= 0)
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


def gp_from_sqnorm(s, center: float, weight, one_sided: bool, eps: float, reduction: int) -> torch.Tensor:
    """WGAN-GP: ``w · (‖g_b‖ − c)²``; one-sided ``w · relu(‖g_b‖ − c)²``; ``‖g_b‖ = sqrt(s_b + eps)``."""
    d = safe_norm(s, eps) - center
    if one_sided:
        d = torch.relu(d)
    return reduce(weight * d.square(), reduction)


def grad_penalty(grads, inv_scale, center: float, weight, eps: float, one_sided: bool, reduction: int) -> torch.Tensor:
    """The fused op's semantics: :func:`gp_from_sqnorm` of ``s_b = sqnorm(grads, inv_scale)``."""
    return gp_from_sqnorm(sqnorm(grads, inv_scale, 1.0, RED_NONE), center, weight, one_sided, eps, reduction)


def roth_from_sqnorm(s_real, logits_real, s_fake, logits_fake, gamma: float) -> torch.Tensor:
    """Roth et al. 2017: ``γ/2 · E_b[(1−σ(D_r))²·s_r + σ(D_f)²·s_f]`` (gradient into the logits too)."""
    w_real = (1 - torch.sigmoid(logits_real.to(s_real.dtype).reshape(-1))).square()
    w_fake = torch.sigmoid(logits_fake.to(s_fake.dtype).reshape(-1)).square()
    return gamma / 2 * ((w_real * s_real).mean() + (w_fake * s_fake).mean())
