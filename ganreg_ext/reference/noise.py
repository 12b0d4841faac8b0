"""Instance noise (docs/semantics.md#instance-noise, Sønderby 2016 / Roth 2017), eager PyTorch."""

from __future__ import annotations

import torch

from .._contract import acc_dtype
from .philox import normal_like


def instance_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``x + σ·n`` with ``n`` the docs/semantics.md#path-length-regularization-stylegan2 Philox stream over ``x``'s logical shape; output dtype of ``x``."""
    acc = acc_dtype(x.dtype)
    n = normal_like(tuple(x.shape), seed, x.device).to(acc)
    return (x.to(acc) + sigma * n).to(x.dtype)
