"""Consistency regularization (SPEC §4: CR, bCR, zCR as in StudioGAN), eager PyTorch."""

from __future__ import annotations

import torch

from .._dispatch import acc_dtype


def sq_diff_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Σ (a − b)²`` accumulated in float32 (float64 for float64); gradient into both."""
    acc = acc_dtype(a.dtype)
    return (a.to(acc) - b.to(acc)).square().sum()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean((a − b)²)`` over all elements (``F.mse_loss``, neither argument detached)."""
    return sq_diff_sum(a, b) / a.numel()
