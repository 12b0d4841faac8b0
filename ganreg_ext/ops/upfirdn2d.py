"""Ops of the upfirdn2d family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu):
the fake kernel (schema: ``csrc/ops.cpp``; autograd: ``csrc/autograd/upfirdn2d.cpp``, for every fused
backend).

``upfirdn2d`` is linear in ``x`` and its adjoint is again an ``upfirdn2d`` (up and down swapped, the
filter flipped, the padding adjusted to the input size), so every order of derivative is one fused
pass. The filter is a constant (no gradient).
"""

from __future__ import annotations

from ..reference.upfirdn2d import out_size


def _upfirdn2d_fake(x, f, up, down, padding, flip_filter, gain):
    fh, fw = f.shape[0], f.shape[-1]
    oh = out_size(x.shape[2], up[1], padding[2], padding[3], fh, down[1])
    ow = out_size(x.shape[3], up[0], padding[0], padding[1], fw, down[0])
    return x.new_empty((x.shape[0], x.shape[1], oh, ow))


FAKES = {"upfirdn2d": _upfirdn2d_fake}
