"""Path length regularization (docs/semantics.md#path-length-regularization-stylegan2, StyleGAN2 / NVlabs ``loss.py`` ``Gpl``), eager PyTorch."""

from __future__ import annotations

import math

import torch

from .._contract import acc_dtype
from .philox import normal_like


def path_length_noise(shape, seed: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``y = n / sqrt(H·W)`` with ``n`` the docs/semantics.md#path-length-regularization-stylegan2 Philox normal stream over ``shape`` (NCHW)."""
    n = normal_like(tuple(shape), seed, device)
    return (n / math.sqrt(shape[-2] * shape[-1])).to(dtype)


def path_length_noise_dot(images: torch.Tensor, seed: int) -> torch.Tensor:
    """``Σ images · y`` (float32; float64 for float64 images)."""
    acc = acc_dtype(images.dtype)
    y = path_length_noise(images.shape, seed, images.device, torch.float32).to(acc)
    return (images.to(acc) * y).sum()


def pl_epilogue(s: torch.Tensor, num_ws: int, pl_mean, decay: float, batch_mean=None):
    """From ``s_b = Σ_{k,d} g²``: ``len_b = sqrt(s_b / num_ws)``, ``new_mean = pl_mean + decay·(E_b len − pl_mean)``,
    ``penalty_b = (len_b − new_mean)²``; the gradient also flows through ``new_mean`` (coefficient ``decay``).

    ``batch_mean`` (optional) maps the local ``E_b len`` to the value used for the update
    (e.g. averaged over a process group, with the local gradient).
    """
    lengths = torch.sqrt(s / num_ws)
    mean_len = lengths.mean()
    if batch_mean is not None:
        mean_len = batch_mean(mean_len)
    if isinstance(pl_mean, torch.Tensor):  # a device buffer stays on the device: no host copy either way
        pl_mean = pl_mean.detach().to(lengths.dtype)
    new_mean = pl_mean + decay * (mean_len - pl_mean)
    return (lengths - new_mean).square(), new_mean


def path_length(pl_grads: torch.Tensor, pl_mean, decay: float):
    """The fused op's semantics: ``(penalty[B], new_mean)`` of :func:`pl_epilogue` on
    ``s_b = Σ_{k,d} pl_grads[b,k,d]²`` (``pl_grads`` ``[B, num_ws, w_dim]`` or ``[B, w_dim]``)."""
    from .gradnorm import sqnorm

    num_ws = pl_grads.shape[1] if pl_grads.dim() == 3 else 1
    return pl_epilogue(sqnorm([pl_grads], None, 1.0, 0), num_ws, pl_mean, decay)
