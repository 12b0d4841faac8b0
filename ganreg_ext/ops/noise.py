"""Ops on the Philox normal stream of docs/semantics.md#path-length-regularization-stylegan2 (path
length noise-dot, instance noise): the fake kernels (schemas: ``csrc/ops.cpp``; autograd:
``csrc/autograd/noise.cpp``, for every fused backend).

``noise_dot(x) = scale·Σ x·n`` and ``noise_axpy(x, α) = x + α·scale·n``: the noise ``n`` is made
inside the kernels from ``seed`` and never stored; each op's derivative is the other.
"""

from __future__ import annotations

from .._contract import acc_dtype


def _noise_dot_fake(x, seed, scale):
    return x.new_empty((), dtype=acc_dtype(x.dtype))


def _noise_axpy_fake(x, alpha, seed, scale, size, dtype):
    return alpha.new_empty(size, dtype=dtype)


FAKES = {"noise_dot": _noise_dot_fake, "noise_axpy": _noise_axpy_fake}
