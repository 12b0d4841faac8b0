"""``torch_utils.ops.filtered_lrelu`` (StyleGAN3) on ganreg_ext's fused ops."""

from __future__ import annotations

import math

from ..upfirdn2d import filtered_lrelu as _filtered_lrelu
from ._impl import backend as _backend

_SQRT2 = math.sqrt(2)


def _init() -> bool:
    """Nothing to build: the kernels come with ganreg_ext."""
    return True


def filtered_lrelu(
    x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=_SQRT2, slope=0.2, clamp=None, flip_filter=False,
    impl="cuda",
):  # fmt: skip
    """:func:`ganreg_ext.filtered_lrelu` under StyleGAN3's signature: bias, upsample with ``fu``,
    leaky ReLU (``slope``, ``gain``, ``clamp``), downsample with ``fd``."""
    return _filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, backend=_backend(impl))
