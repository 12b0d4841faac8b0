"""Upsample, pad, FIR-filter, downsample (SPEC §7, StyleGAN2's ``upfirdn2d``), eager PyTorch: the
truth every backend is tested against. Same op signature as the fused backends
(``ganreg_ext/ops/upfirdn2d.py``).

Per channel of an NCHW image, along each axis (x: width with ``upx, downx, px0, px1``; y: height
with ``upy, downy, py0, py1``), in 1-D::

    xu[i]  = x[i / up]  if i % up == 0 and 0 ≤ i < n·up, else 0          (zero insertion)
    out[k] = gain · Σ_t xu[k·down + t − p0] · F[t],   0 ≤ k < out_n       (pad, FIR, keep every down-th)
    out_n  = (n·up + p0 + p1 − taps) // down + 1

``F = f`` reversed (a true convolution) unless ``flip_filter`` (a correlation). Negative padding
crops. A 2-D filter ``[fh, fw]`` is applied as such; a 1-D filter ``[fw]`` means the separable
``f ⊗ f`` (one pass per axis; the gain is applied once). The filter is a constant: no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._contract import acc_dtype


def out_size(n: int, up: int, p0: int, p1: int, taps: int, down: int) -> int:
    """Output length along one axis: ``(n·up + p0 + p1 − taps) // down + 1``."""
    return (n * up + p0 + p1 - taps) // down + 1


def _zero_insert(x: torch.Tensor, upx: int, upy: int) -> torch.Tensor:
    """``up − 1`` zeros after every pixel along each axis: ``[N, C, H·upy, W·upx]``."""
    if upx == 1 and upy == 1:
        return x
    n, c, h, w = x.shape
    xu = x.new_zeros(n, c, h * upy, w * upx)
    xu[:, :, ::upy, ::upx] = x
    return xu


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero padding for positive amounts, then cropping for negative ones (in that order, so a crop
    larger than the image on one side eats into the padding of the other)."""
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0) : h - max(-py1, 0), max(-px0, 0) : w - max(-px1, 0)]


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor, up: list[int], down: list[int], padding: list[int], flip_filter: bool, gain: float
) -> torch.Tensor:
    """``upfirdn2d`` of the module docstring: zero insertion, pad/crop, then the FIR filter on
    every ``down``-th window (the depthwise convolution with stride ``down``, written as windows ·
    filter: on the CPU, oneDNN's ``conv2d`` costs ~100× more per small call). ``up = [upx, upy]``, ``down = [downx,
    downy]``, ``padding = [px0, px1, py0, py1]``; ``f`` 2-D ``[fh, fw]`` or 1-D ``[fw]`` (separable).
    Computed in float32 (float64 for float64), returned contiguous NCHW in the dtype of ``x``."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    n, c, h, w = x.shape
    fh, fw = f.shape[0], f.shape[-1]
    oh, ow = out_size(h, upy, py0, py1, fh, downy), out_size(w, upx, px0, px1, fw, downx)
    acc = acc_dtype(x.dtype, f.dtype)
    if x.numel() == 0:  # nothing to filter: zeros, still attached to x's graph
        return x.new_zeros(n, c, oh, ow) + 0 * x.sum()

    xp = _pad_or_crop(_zero_insert(x.to(acc), upx, upy), px0, px1, py0, py1)

    # out[k] = Σ_t xp[k·down + t]·F[t] with F the reversed filter (true convolution) unless flip_filter:
    # the windows xp[k·down : k·down + taps] are unfold(dim, taps, down) views, contracted with F
    taps = f.to(acc) if flip_filter else f.to(acc).flip(list(range(f.dim())))
    if f.dim() == 2:
        windows = xp.unfold(2, fh, downy).unfold(3, fw, downx)  # [N, C, oh, ow, fh, fw]
        out = torch.einsum("ncijst,st->ncij", windows, taps)
    else:  # separable: rows, then columns
        out = torch.einsum("nchjt,t->nchj", xp.unfold(3, fw, downx), taps)
        out = torch.einsum("ncijs,s->ncij", out.unfold(2, fw, downy), taps)
    assert out.shape[2:] == (oh, ow), (out.shape, oh, ow)
    return (out * gain).to(x.dtype).contiguous()  # the gain once (f⊗f scaled by gain^(ndim/2) in total)
