"""``torch_utils.ops.bias_act`` (StyleGAN2-ADA / StyleGAN3) on ganreg_ext's fused ``bias_act``."""

from __future__ import annotations

from types import SimpleNamespace

from .._contract import ACT_CODES, PIECEWISE_LINEAR
from ..bias_act import ACTIVATIONS as _ACTIVATIONS
from ..bias_act import bias_act as _bias_act
from ._impl import backend as _backend

activation_funcs = {
    name: SimpleNamespace(
        def_alpha=alpha, def_gain=gain, cuda_idx=ACT_CODES[name], has_2nd_grad=ACT_CODES[name] not in PIECEWISE_LINEAR
    )
    for name, (alpha, gain) in _ACTIVATIONS.items()
}
"""Per activation: ``def_alpha``, ``def_gain`` (StyleGAN networks read ``activation_funcs[act].def_gain``),
``cuda_idx`` (ganreg_ext's activation code) and ``has_2nd_grad`` (a non-zero second derivative)."""


def _init() -> bool:
    """Nothing to build: the kernels come with ganreg_ext."""
    return True


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="cuda"):
    """``clamp(gain·act(x + b), ±clamp)``: :func:`ganreg_ext.bias_act` under StyleGAN's signature
    (``impl="ref"``: the reference backend; ``"cuda"``: the default backend)."""
    return _bias_act(x, b, dim, act, alpha, gain, clamp, backend=_backend(impl))
