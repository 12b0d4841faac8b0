"""Upsample-FIR-downsample on NCHW images and the filtered leaky ReLU (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): StyleGAN2's
``upfirdn2d``, ``setup_filter``, ``upsample2d``, ``downsample2d``, ``filter2d`` and StyleGAN3's
``filtered_lrelu``, fused on the chosen backend.

``upfirdn2d`` is linear in ``x`` and its backward is again an ``upfirdn2d`` (up and down swapped,
the filter flipped, the padding adjusted to the input size), so every order of derivative is one
fused pass. Formulas: ``ganreg_ext/reference/upfirdn2d.py``.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from . import _checks as check
from ._contract import acc_dtype
from ._dispatch import fused
from .bias_act import bias_act
from .reference import upfirdn2d as ref
from .reference.upfirdn2d import out_size

SQRT2 = math.sqrt(2)
CPU = torch.device("cpu")


# ---------------------------------------------------------------- argument parsing


def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def parse_scaling(value, name: str) -> list[int]:
    """``up``/``down``: an int or ``[x, y]``, each ``>= 1`` → ``[sx, sy]``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a list/tuple [x, y], got {value!r}")
        values = [_int(v, name) for v in value]
    else:
        values = [_int(value, name)] * 2
    if min(values) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return values


def parse_padding(value, name: str = "padding") -> list[int]:
    """An int, ``[px, py]`` or ``[px0, px1, py0, py1]`` (negative values crop) → 4 ints."""
    if isinstance(value, (list, tuple)):
        values = [_int(v, name) for v in value]
        if len(values) == 2:
            return [values[0], values[0], values[1], values[1]]
        if len(values) == 4:
            return values
        raise ValueError(f"{name} must be an int, [px, py] or [px0, px1, py0, py1], got {value!r}")
    return [_int(value, name)] * 4


def filter_size(f, name: str = "f") -> tuple[int, int]:
    """``(fw, fh)`` of a filter (``None``: 1×1; a 1-D ``[fw]`` filter is ``fw × fw``)."""
    if f is None:
        return 1, 1
    if not isinstance(f, Tensor):
        raise TypeError(f"{name} must be None or a torch.Tensor (see setup_filter), got {type(f).__name__}")
    if f.dim() not in (1, 2):
        raise ValueError(f"{name} must be 1-D [taps] (separable) or 2-D [fh, fw], got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def _filter(f, x: Tensor, name: str = "f") -> Tensor:
    """The filter as the ops take it: in ``x``'s accumulation dtype (float64 for float64 ``x``, else
    float32), contiguous, on ``x``'s device; ``None`` → ``[[1]]``."""
    acc = acc_dtype(x.dtype)
    if f is None:
        return torch.ones(1, 1, dtype=acc, device=x.device)
    filter_size(f, name)
    if not f.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {f.dtype}")
    check.same_device(f"x/{name}", x, f)
    if f.requires_grad:
        raise ValueError(f"{name} must not require grad: no gradient w.r.t. the filter is computed (use a buffer or f.detach())")
    return f.to(acc).contiguous()


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _images(x) -> Tensor:
    return check.tensor(x, "x", min_dim=0, dims=(4,))


def _check_output(shape, f: Tensor, up, down, padding, what: str = "padding") -> None:
    """Raise unless ``upfirdn2d`` with these arguments leaves at least one output pixel per axis."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    h, w = shape[2], shape[3]
    fh, fw = f.shape[0], f.shape[-1]
    for axis, n, u, p0, p1, taps, d in (("width", w, upx, px0, px1, fw, downx), ("height", h, upy, py0, py1, fh, downy)):
        if out_size(n, u, p0, p1, taps, d) < 1:
            raise ValueError(
                f"{what} leaves no output along the {axis}: {axis} {n}·up {u} + padding {p0} + {p1} = "
                f"{n * u + p0 + p1} < filter taps {taps} (padding {list(padding)})"
            )


def _upfirdn2d(x: Tensor, f: Tensor, up, down, padding, flip_filter: bool, gain: float, backend) -> Tensor:
    """The op on validated, converted arguments."""
    op = fused("upfirdn2d", backend, x.device)
    if op is None or x.numel() == 0:
        return ref.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    return op(x, f, up, down, padding, flip_filter, gain)


def _resample(x, f, up, down, padding, flip_filter, gain, backend, pad_fn, what) -> Tensor:
    """Shared front end of upfirdn2d/upsample2d/downsample2d/filter2d: validate and convert every
    argument (before any kernel runs), derive the padding with ``pad_fn(fw, fh, up, down, padding)``."""
    x = _images(x)
    f = _filter(f, x)
    up, down = parse_scaling(up, "up"), parse_scaling(down, "down")
    padding = parse_padding(padding)
    flip_filter = _flag(flip_filter, "flip_filter")
    gain = check.number(gain, "gain")
    fw, fh = f.shape[-1], f.shape[0]
    pad = pad_fn(fw, fh, up, down, padding)
    _check_output(x.shape, f, up, down, pad, what)
    return _upfirdn2d(x, f, up, down, pad, flip_filter, gain, backend)


# ---------------------------------------------------------------- public functions


def setup_filter(f, device=CPU, normalize=True, flip_filter=False, gain=1, separable=None) -> Tensor:
    """A float32 FIR filter for :func:`upfirdn2d` (StyleGAN2 ``setup_filter``).

    ``f``: ``None`` (identity ``[1]``), a number, a list, a NumPy array or a tensor of 0, 1 or 2
    dimensions. A 1-D filter becomes the 2-D ``f ⊗ f`` unless ``separable`` (default: separable when
    1-D with at least 8 taps). Then: ``normalize`` divides by the sum (unit DC gain), ``flip_filter``
    reverses it, and it is scaled by ``gain^(ndim/2)`` (so the overall gain is ``gain`` either way).
    Returns a new tensor on ``device`` (the input is never modified).
    """
    if f is None:
        f = 1
    if isinstance(f, Tensor) and f.requires_grad:
        f = f.detach()
    try:
        f = torch.as_tensor(f, dtype=torch.float32).clone()
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"f must be None, a number, a list, an array or a tensor, got {type(f).__name__} ({e})") from None
    if f.dim() not in (0, 1, 2):
        raise ValueError(f"f must have 0, 1 or 2 dimensions, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError(f"f must not be empty, got shape {tuple(f.shape)}")
    f = f.reshape(1) if f.dim() == 0 else f
    if separable is None:
        separable = f.dim() == 1 and f.numel() >= 8
    separable = _flag(separable, "separable")
    if separable and f.dim() != 1:
        raise ValueError(f"separable=True needs a 1-D filter, got shape {tuple(f.shape)}")
    if not separable and f.dim() == 1:
        f = torch.outer(f, f)
    if _flag(normalize, "normalize"):
        total = f.sum()
        if total == 0:
            raise ValueError("f sums to 0 and cannot be normalized (pass normalize=False)")
        f = f / total
    if _flag(flip_filter, "flip_filter"):
        f = f.flip(list(range(f.dim())))
    f = f * (check.number(gain, "gain") ** (f.dim() / 2))
    return f.to(device=device)


def upfirdn2d(x: Tensor, f, up=1, down=1, padding=0, flip_filter=False, gain=1, backend: str | None = None) -> Tensor:
    """Per channel of NCHW ``x``: insert ``up − 1`` zeros after each pixel, pad with zeros
    (negative ``padding`` crops), convolve with the FIR filter ``f`` keeping only the outputs whose
    footprint lies inside, keep every ``down``-th pixel, multiply by ``gain`` (StyleGAN2
    ``upfirdn2d``, like ``scipy.signal.upfirdn`` in 2-D).

    ``x``: ``[N, C, H, W]``, float16/bfloat16/float32/float64, any strides. ``f``: ``None`` (``[1]``),
    2-D ``[fh, fw]`` or 1-D ``[fw]`` (the separable ``f ⊗ f``), any float dtype (converted to
    float32, float64 for float64 ``x``), on ``x``'s device, not requiring grad. ``up``, ``down``: an
    int or ``[x, y]`` (``>= 1``); ``padding``: an int, ``[px, py]`` or ``[px0, px1, py0, py1]``.
    ``flip_filter=False``: a true convolution; ``True``: a correlation. Returns contiguous
    ``[N, C, (H·upy + py0 + py1 − fh) // downy + 1, (W·upx + px0 + px1 − fw) // downx + 1]`` in
    ``x``'s dtype. Every order of derivative w.r.t. ``x`` runs fused (there is none w.r.t. ``f``).
    """
    return _resample(x, f, up, down, padding, flip_filter, gain, backend, lambda fw, fh, u, d, p: p, "padding")


def upsample2d(x: Tensor, f, up=2, padding=0, flip_filter=False, gain=1, backend: str | None = None) -> Tensor:
    """Upsample by ``up`` (an int or ``[x, y]``) with the FIR filter ``f``: :func:`upfirdn2d` with
    padding ``[px0 + (fw+upx−1)//2, px1 + (fw−upx)//2, py0 + (fh+upy−1)//2, py1 + (fh−upy)//2]`` and
    gain ``gain·upx·upy`` (the output is ``up`` times the input size for ``padding=0``)."""

    def pad(fw, fh, u, d, p):
        return [p[0] + (fw + u[0] - 1) // 2, p[1] + (fw - u[0]) // 2, p[2] + (fh + u[1] - 1) // 2, p[3] + (fh - u[1]) // 2]

    up = parse_scaling(up, "up")
    return _resample(x, f, up, 1, padding, flip_filter, check.number(gain, "gain") * up[0] * up[1], backend, pad, "padding")


def downsample2d(x: Tensor, f, down=2, padding=0, flip_filter=False, gain=1, backend: str | None = None) -> Tensor:
    """Downsample by ``down`` (an int or ``[x, y]``) with the FIR filter ``f``: :func:`upfirdn2d`
    with padding ``[px0 + (fw−downx+1)//2, px1 + (fw−downx)//2, py0 + (fh−downy+1)//2, py1 + (fh−downy)//2]``
    (the output is the input size divided by ``down`` for ``padding=0`` and divisible sizes)."""

    def pad(fw, fh, u, d, p):
        return [p[0] + (fw - d[0] + 1) // 2, p[1] + (fw - d[0]) // 2, p[2] + (fh - d[1] + 1) // 2, p[3] + (fh - d[1]) // 2]

    return _resample(x, f, 1, down, padding, flip_filter, gain, backend, pad, "padding")


def filter2d(x: Tensor, f, padding=0, flip_filter=False, gain=1, backend: str | None = None) -> Tensor:
    """Filter with the FIR filter ``f`` keeping the size: :func:`upfirdn2d` with padding
    ``[px0 + fw//2, px1 + (fw−1)//2, py0 + fh//2, py1 + (fh−1)//2]``."""

    def pad(fw, fh, u, d, p):
        return [p[0] + fw // 2, p[1] + (fw - 1) // 2, p[2] + fh // 2, p[3] + (fh - 1) // 2]

    return _resample(x, f, 1, 1, padding, flip_filter, gain, backend, pad, "padding")


def filtered_lrelu(
    x: Tensor,
    fu=None,
    fd=None,
    b: Tensor | None = None,
    up=1,
    down=1,
    padding=0,
    gain: float = SQRT2,
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
    backend: str | None = None,
) -> Tensor:
    """StyleGAN3's filtered leaky ReLU, as the composition of fused ops::

        bias_act(x, b)                                   (bias along the channels)
        → upfirdn2d(·, fu, up=up, padding=padding, gain=up²)
        → bias_act(·, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
        → upfirdn2d(·, fd, down=down)

    ``x``: ``[N, C, H, W]``; ``fu``/``fd``: filters as for :func:`upfirdn2d` (``None``: ``[1]``);
    ``b``: ``None`` or ``[C]`` in ``x``'s dtype; ``up``/``down``: an int or ``[x, y]`` (``up²`` is
    ``upx·upy``); ``padding`` applies to the upsampled image. ``gain > 0``, ``slope >= 0``,
    ``clamp``: ``None`` or ``>= 0``. Output ``[N, C, (H·up + py0 + py1 − (fuh−1) − (fdh−1) + down − 1)
    // down, …]`` in ``x``'s dtype.
    """
    x = _images(x)
    fu_t, fd_t = _filter(fu, x, "fu"), _filter(fd, x, "fd")
    b = check.bias(b, x, 1)
    up, down = parse_scaling(up, "up"), parse_scaling(down, "down")
    padding = parse_padding(padding)
    gain = check.number(gain, "gain")
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    slope = check.number(slope, "slope")
    if not slope >= 0:
        raise ValueError(f"slope must be >= 0, got {slope}")
    clamp = check.clamp_value(clamp)
    flip_filter = _flag(flip_filter, "flip_filter")
    _check_output(x.shape, fu_t, up, [1, 1], padding, "padding")
    n, c, h, w = x.shape
    mid = (
        n,
        c,
        out_size(h, up[1], padding[2], padding[3], fu_t.shape[0], 1),
        out_size(w, up[0], padding[0], padding[1], fu_t.shape[-1], 1),
    )
    _check_output(mid, fd_t, [1, 1], down, [0, 0, 0, 0], "padding (after upsampling, for fd)")

    if b is not None:
        x = bias_act(x, b, 1, backend=backend)
    if fu is not None or up != [1, 1] or padding != [0, 0, 0, 0]:  # else the identity
        x = _upfirdn2d(x, fu_t, up, [1, 1], padding, flip_filter, float(up[0] * up[1]), backend)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=None if clamp < 0 else clamp, backend=backend)
    if fd is not None or down != [1, 1]:
        x = _upfirdn2d(x, fd_t, [1, 1], down, [0, 0, 0, 0], flip_filter, 1.0, backend)
    return x
