"""``torch_utils.ops.upfirdn2d`` (StyleGAN2-ADA / StyleGAN3) on ganreg_ext's fused ``upfirdn2d``."""

from __future__ import annotations

import importlib

import torch

from ._impl import backend as _backend

_CPU = torch.device("cpu")
_gx = importlib.import_module("ganreg_ext.upfirdn2d")  # the module (the package attribute of that name is the function)


def _init() -> bool:
    """Nothing to build: the kernels come with ganreg_ext."""
    return True


def _parse_scaling(scaling):
    """``(sx, sy)`` of an int or ``[x, y]`` factor (used by StyleGAN's ``conv2d_resample``)."""
    return tuple(_gx.parse_scaling(scaling, "scaling"))


def _parse_padding(padding):
    """``(px0, px1, py0, py1)`` of an int, ``[px, py]`` or 4-element padding."""
    return tuple(_gx.parse_padding(padding))


def _get_filter_size(f):
    """``(fw, fh)`` of a filter (``None``: ``(1, 1)``)."""
    return _gx.filter_size(f)


def setup_filter(f, device=_CPU, normalize=True, flip_filter=False, gain=1, separable=None):
    """:func:`ganreg_ext.setup_filter` (a float32 FIR filter)."""
    return _gx.setup_filter(f, device, normalize, flip_filter, gain, separable)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl="cuda"):
    """:func:`ganreg_ext.upfirdn2d` under StyleGAN's signature."""
    return _gx.upfirdn2d(x, f, up, down, padding, flip_filter, gain, backend=_backend(impl))


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="cuda"):
    """:func:`ganreg_ext.filter2d` under StyleGAN's signature."""
    return _gx.filter2d(x, f, padding, flip_filter, gain, backend=_backend(impl))


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="cuda"):
    """:func:`ganreg_ext.upsample2d` under StyleGAN's signature."""
    return _gx.upsample2d(x, f, up, padding, flip_filter, gain, backend=_backend(impl))


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="cuda"):
    """:func:`ganreg_ext.downsample2d` under StyleGAN's signature."""
    return _gx.downsample2d(x, f, down, padding, flip_filter, gain, backend=_backend(impl))
