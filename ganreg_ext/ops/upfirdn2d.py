"""Ops of the upfirdn2d family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): schema, fake kernel, and the autograd of the Triton op
(native: ``csrc/autograd/upfirdn2d.cpp``, the same formula).

``upfirdn2d`` is linear in ``x`` and its adjoint is again an ``upfirdn2d`` (up and down swapped, the
filter flipped, the padding adjusted to the input size), so every order of derivative is one fused
pass. The filter is a constant (no gradient).
"""

from __future__ import annotations

import torch

SCHEMAS = {
    "upfirdn2d": "(Tensor x, Tensor f, int[] up, int[] down, int[] padding, bool flip_filter, float gain) -> Tensor",
}


def out_size(n: int, up: int, p0: int, p1: int, taps: int, down: int) -> int:
    """Output length along one axis: ``(n·up + p0 + p1 − taps) // down + 1``."""
    return (n * up + p0 + p1 - taps) // down + 1


def adjoint_padding(x_shape, f: torch.Tensor, up, down, padding) -> list[int]:
    """Padding of the upfirdn2d that is the adjoint (backward) of ``upfirdn2d(x, f, up, down, padding)``:
    per axis ``[taps − p0 − 1, n·up − out·down + p0 − up + 1]``."""
    fw = f.shape[-1]
    fh = f.shape[0]
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    h, w = x_shape[2], x_shape[3]
    ow, oh = out_size(w, upx, px0, px1, fw, downx), out_size(h, upy, py0, py1, fh, downy)
    return [fw - px0 - 1, w * upx - ow * downx + px0 - upx + 1, fh - py0 - 1, h * upy - oh * downy + py0 - upy + 1]


def _upfirdn2d_fake(x, f, up, down, padding, flip_filter, gain):
    fh, fw = f.shape[0], f.shape[-1]
    oh = out_size(x.shape[2], up[1], padding[2], padding[3], fh, down[1])
    ow = out_size(x.shape[3], up[0], padding[0], padding[1], fw, down[0])
    return x.new_empty((x.shape[0], x.shape[1], oh, ow))


FAKES = {"upfirdn2d": _upfirdn2d_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def setup(ctx, inputs, output):
        x, f, ctx.up, ctx.down, ctx.padding, ctx.flip, ctx.gain = inputs
        ctx.x_shape = x.shape
        ctx.save_for_backward(f)

    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        pad = adjoint_padding(ctx.x_shape, f, ctx.up, ctx.down, ctx.padding)
        return T.upfirdn2d(dy, f, ctx.down, ctx.up, pad, not ctx.flip, ctx.gain), None, None, None, None, None, None

    return {"upfirdn2d": (setup, backward)}
