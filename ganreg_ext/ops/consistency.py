"""Ops of the consistency family: the fake kernels (schemas: ``csrc/ops.cpp``; autograd:
``csrc/autograd/consistency.cpp``, for every fused backend).

``sq_diff_sum(a, b, w) = w·Σ (a − b)²``; ``diff_scale(a, b, c) = (c·(a − b), −c·(a − b))`` in one
pass, so the backward into both arguments writes no difference tensor.
"""

from __future__ import annotations

from .._contract import acc_dtype
from ._common import contiguous_like


def _sq_diff_sum_fake(a, b, weight):
    return a.new_empty((), dtype=acc_dtype(a.dtype, b.dtype))


def _diff_scale_fake(a, b, coef):
    return contiguous_like(a), contiguous_like(b)


FAKES = {"sq_diff_sum": _sq_diff_sum_fake, "diff_scale": _diff_scale_fake}
