"""Ops of the ADA family (adaptive discriminator augmentation): the fake kernels (schemas:
``csrc/ops.cpp``; autograd: ``csrc/autograd/ada.cpp``, for every fused backend). Semantics:
``ganreg_ext/reference/ada.py``.

``ada_augment(x, geom, color, cutout, affine)`` resamples each image through its own affine map,
mixes channels with its colour matrix (+ offset when ``affine``) and applies its cutout, in one pass.
It is affine in ``x``: the backward is ``ada_augment_adj`` (the adjoint of the linear part) and the
adjoint's backward is ``ada_augment(..., affine=False)``, so every order of derivative is one pass.
Parameters: ``geom`` float32 ``[B, 2, 3]``, ``color`` float32 ``[B, C, C + 1]`` or None, ``cutout``
float32 ``[B, 3]`` or None; constants (no gradient). Outputs are contiguous NCHW in ``x``'s dtype.
"""

from __future__ import annotations

from ._common import contiguous_like


def _fwd_fake(x, geom, color, cutout, affine):
    return contiguous_like(x)


def _adj_fake(g, geom, color, cutout):
    return contiguous_like(g)


FAKES = {"ada_augment": _fwd_fake, "ada_augment_adj": _adj_fake}
