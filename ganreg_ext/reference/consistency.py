"""Consistency regularization (docs/semantics.md#consistency-regularization-cr-bcr-zcr: CR, bCR, zCR as in StudioGAN), eager PyTorch."""

from __future__ import annotations

import torch

from .._contract import acc_dtype


def sq_diff_sum(a: torch.Tensor, b: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``weight · Σ (a − b)²`` accumulated in float32 (float64 if either is float64); gradient into both.
    With ``weight = w / numel`` it is ``w · F.mse_loss(a, b)`` (neither argument detached)."""
    acc = acc_dtype(a.dtype, b.dtype)
    return weight * (a.to(acc) - b.to(acc)).square().sum()
