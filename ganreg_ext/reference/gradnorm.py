"""Gradient-norm penalties (SPEC §2), eager PyTorch.

``grad_sqnorm`` is the only part that touches the full-size gradients; the penalty epilogues
below act on the per-sample ``s_b`` and are shared by every backend (they are O(B) work).
"""

from __future__ import annotations

import torch

from .._dispatch import acc_dtype


def grad_sqnorm(grads: list[torch.Tensor], per_sample: bool = True, inv_scale: float = 1.0) -> torch.Tensor:
    """``s_b = Σ_i (inv_scale·g_i)²`` over every tensor of ``grads`` → ``[B]`` (or a 0-d total).

    Accumulates in float32 (float64 for float64 inputs); ``inv_scale`` is applied before squaring.
    """
    acc = acc_dtype(grads[0].dtype)
    total = None
    for g in grads:
        sq = (g.to(acc) * inv_scale).square()
        part = sq.reshape(g.shape[0], -1).sum(1) if per_sample else sq.sum()
        total = part if total is None else total + part
    return total


def reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean`` / ``sum`` over the batch, or ``none`` (the per-sample vector)."""
    return x.mean() if reduction == "mean" else x.sum() if reduction == "sum" else x


def r1_from_sqnorm(s: torch.Tensor, gamma: float, reduction: str) -> torch.Tensor:
    """R1/R2: ``γ/2 · s_b`` (NVlabs ``loss.py``: ``r1_penalty * (r1_gamma / 2)``)."""
    return reduce(s * (gamma / 2), reduction)


def safe_norm(s: torch.Tensor, eps: float) -> torch.Tensor:
    """``sqrt(s + eps)`` whose gradient is 0 (not NaN) at ``s + eps = 0``, like ``vector_norm``."""
    s = s + eps
    pos = ~(s <= 0)  # NaN counts as positive: sqrt(NaN) = NaN propagates (SPEC §6), never masked to 0
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


def gp_from_sqnorm(s, center: float, weight: float, one_sided: bool, eps: float, reduction: str) -> torch.Tensor:
    """WGAN-GP: ``w · (‖g_b‖ − c)²``; one-sided ``w · relu(‖g_b‖ − c)²``; ``‖g_b‖ = sqrt(s_b + eps)``."""
    d = safe_norm(s, eps) - center
    if one_sided:
        d = torch.relu(d)
    return reduce(weight * d.square(), reduction)


def roth_from_sqnorm(s_real, logits_real, s_fake, logits_fake, gamma: float) -> torch.Tensor:
    """Roth et al. 2017: ``γ/2 · E_b[(1−σ(D_r))²·s_r + σ(D_f)²·s_f]`` (gradient into the logits too)."""
    w_real = (1 - torch.sigmoid(logits_real.to(s_real.dtype).reshape(-1))).square()
    w_fake = torch.sigmoid(logits_fake.to(s_fake.dtype).reshape(-1)).square()
    return gamma / 2 * ((w_real * s_real).mean() + (w_fake * s_fake).mean())
