"""Upsample, pad, FIR-filter, downsample (docs/semantics.md, StyleGAN2's ``upfirdn2d``), eager PyTorch:
the truth every backend is tested against, and the eager baseline of the benchmarks. Same op
signature as the fused backends (dispatched by ``ganreg_ext/upfirdn2d.py``).

Per channel of an NCHW image, along each axis (x: width with ``upx, downx, px0, px1``; y: height
with ``upy, downy, py0, py1``), in 1-D::

    xu[i]  = x[i / up]  if i % up == 0 and 0 ≤ i < n·up, else 0          (zero insertion)
    out[k] = gain · Σ_t xu[k·down + t − p0] · F[t],   0 ≤ k < out_n       (pad, FIR, keep every down-th)
    out_n  = (n·up + p0 + p1 − taps) // down + 1

``F = f`` reversed (a true convolution) unless ``flip_filter`` (a correlation). Negative padding
crops. A 2-D filter ``[fh, fw]`` is applied as such; a 1-D filter ``[fw]`` means the separable
``f ⊗ f`` (one pass per axis, the gain applied once). The filter is a constant: no gradient.

Computed the way StyleGAN's own eager reference (the code its users run on a CPU) computes it:
zero insertion by reshape + pad, ``F.pad`` / slicing for the padding and cropping, a depthwise
(``groups = C``) ``conv2d`` with the filter (``conv2d`` correlates, so the filter is flipped for a
true convolution) and stride ``down``. (StyleGAN's reference convolves at full resolution and then
keeps ``[::down]``: the same result for ``down``² times the work; the strided form is the faster
of the two, so a speed-up measured against it is not inflated.) All in the accumulation dtype (float32 for
float16/bfloat16/float32, float64 for float64), returned in the dtype of ``x``. Every derivative is
PyTorch's (convolution backward), so double backward works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._contract import acc_dtype


def out_size(n: int, up: int, p0: int, p1: int, taps: int, down: int) -> int:
    """Output length along one axis: ``(n·up + p0 + p1 − taps) // down + 1``."""
    return (n * up + p0 + p1 - taps) // down + 1


def _zero_insert(x: torch.Tensor, upx: int, upy: int) -> torch.Tensor:
    """``up − 1`` zeros after every pixel along each axis (reshape + pad): ``[N, C, H·upy, W·upx]``."""
    if upx == 1 and upy == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    return x.reshape(n, c, h * upy, w * upx)


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero padding for positive amounts, then cropping for negative ones (in that order, so a crop
    larger than the image on one side eats into the padding of the other)."""
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0) : h - max(-py1, 0), max(-px0, 0) : w - max(-px1, 0)]


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor, up: list[int], down: list[int], padding: list[int], flip_filter: bool, gain: float
) -> torch.Tensor:
    """``upfirdn2d`` of the module docstring by zero insertion, pad/crop and a depthwise ``conv2d``
    of stride ``down`` with the (flipped unless ``flip_filter``) filter, times ``gain`` (once).
    ``up = [upx, upy]``, ``down = [downx, downy]``, ``padding = [px0, px1, py0, py1]``; ``f`` 2-D
    ``[fh, fw]`` or 1-D ``[fw]`` (separable: a ``[1, fw]`` pass along the width, then an ``[fw, 1]``
    pass along the height). Returns contiguous NCHW in the dtype of ``x``."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    n, c, h, w = x.shape
    fh, fw = f.shape[0], f.shape[-1]
    oh, ow = out_size(h, upy, py0, py1, fh, downy), out_size(w, upx, px0, px1, fw, downx)
    acc = acc_dtype(x.dtype, f.dtype)
    if x.numel() == 0:  # nothing to filter: zeros, still attached to x's graph
        return x.new_zeros(n, c, oh, ow) + 0 * x.sum()

    xp = _pad_or_crop(_zero_insert(x.to(acc), upx, upy), px0, px1, py0, py1)

    # conv2d correlates: the weight is F = f reversed for a true convolution, f itself for a correlation
    wt = f.to(acc)
    if not flip_filter:
        wt = wt.flip(list(range(f.dim())))
    if f.dim() == 2:
        out = F.conv2d(xp, (wt * gain)[None, None].repeat(c, 1, 1, 1), stride=(downy, downx), groups=c)
    else:  # separable: along the width (with the gain, once: any sign), then along the height
        out = F.conv2d(xp, (wt * gain)[None, None, None, :].repeat(c, 1, 1, 1), stride=(1, downx), groups=c)
        out = F.conv2d(out, wt[None, None, :, None].repeat(c, 1, 1, 1), stride=(downy, 1), groups=c)
    assert out.shape[2:] == (oh, ow), (out.shape, oh, ow)
    return out.to(x.dtype).contiguous()
