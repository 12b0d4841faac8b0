"""Helpers shared by the op families' fake kernels."""

from __future__ import annotations

import torch


def contiguous_like(x: torch.Tensor) -> torch.Tensor:
    """Fake output of an elementwise op: ``x``'s shape and dtype, contiguous."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)
