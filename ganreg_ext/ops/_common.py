"""Helpers shared by the op families' registrations."""

from __future__ import annotations

import torch


def needs(ctx, i: int) -> bool:
    """Whether input ``i`` (a tensor or a list of tensors) needs a gradient."""
    v = ctx.needs_input_grad[i]
    return any(v) if isinstance(v, (list, tuple)) else bool(v)


def contiguous_like(x: torch.Tensor) -> torch.Tensor:
    """Fake output of an elementwise op: ``x``'s shape and dtype, contiguous."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)
