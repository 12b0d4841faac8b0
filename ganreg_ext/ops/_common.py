"""Helpers shared by the op registrations."""

from __future__ import annotations

import torch
from torch import Tensor

from .._dispatch import acc_dtype


def reduced_like(like: Tensor, per_sample: bool) -> Tensor:
    """Fake output of a reduction: ``[B]`` (or 0-d) in the accumulation dtype."""
    return like.new_empty((like.shape[0],) if per_sample else (), dtype=acc_dtype(like.dtype))


def contiguous_like(x: Tensor) -> Tensor:
    """Fake output of an elementwise op: ``x``'s shape and dtype, contiguous."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


_TENSOR = object()


def save_all(ctx, inputs, output, skip: tuple[int, ...] = ()):
    """setup_context for every op of the package: save the tensor inputs (except those at the
    positions in ``skip``, which the backward does not need), remember the rest."""
    tensors, layout = [], []
    for i, arg in enumerate(inputs):
        if i in skip:
            layout.append((None,))
        elif isinstance(arg, (list, tuple)):
            tensors += arg
            layout.append(len(arg))
        elif isinstance(arg, Tensor):
            tensors.append(arg)
            layout.append(_TENSOR)
        else:
            layout.append((arg,))
    ctx.layout = layout
    ctx.save_for_backward(*tensors)


def unpack(ctx) -> list:
    """The inputs saved by :func:`save_all`, in their original structure."""
    saved = iter(ctx.saved_tensors)
    out = []
    for item in ctx.layout:
        if item is _TENSOR:
            out.append(next(saved))
        elif isinstance(item, int):
            out.append([next(saved) for _ in range(item)])
        else:
            out.append(item[0])
    return out
