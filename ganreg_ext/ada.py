"""Adaptive discriminator augmentation (Karras et al. 2020): a per-sample, twice-differentiable
augmentation pipe applied by one fused kernel, and its controller with the statistic on the device.

:func:`sample_ada_params` draws each sample's transform (geometry composed into one affine map of the
coordinates, colour into one 4×4 matrix, optional cutout and noise); :func:`ada_augment` applies it in
one pass (backward: the adjoint of the linear part, one pass; double backward: the linear part again,
so R1 through the augmentation needs no "gradfix"). :class:`AdaptiveAugment` tunes ``p`` from
``sign(D(x_real))`` without reading anything back to the host. Math: ``ganreg_ext/reference/ada.py``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from . import _checks as check
from ._dispatch import fused
from .reference import ada as ref


def _preset(preset) -> str:
    if not isinstance(preset, str) or preset not in ref.PRESETS:
        raise ValueError(f"preset must be one of {list(ref.PRESETS)}, got {preset!r}")
    return preset


def _probability(p, name: str = "p"):
    """A number in [0, 1] (checked here) or a 0-d float tensor (CPU: checked here; on a device: an
    asynchronous device assert, so no step waits for a host read)."""
    if isinstance(p, Tensor):
        if p.dim() != 0 or not p.is_floating_point():
            raise ValueError(f"{name} must be a number or a 0-d float tensor, got shape {tuple(p.shape)} {p.dtype}")
        bad = (p < 0) | (p > 1) | torch.isnan(p)
        if p.device.type != "cpu" or torch.compiler.is_compiling():
            torch._assert_async(~bad, f"{name} must be in [0, 1]")
        elif bool(bad):
            raise ValueError(f"{name} must be in [0, 1], got {p.item()}")
        return p
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a number or a 0-d float tensor, got {type(p).__name__}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


def _multipliers(m) -> dict | None:
    if m is None:
        return None
    if not isinstance(m, dict):
        raise TypeError(f"multipliers must be a dict of transform name -> factor, got {type(m).__name__}")
    names = ref.GEOM_OPS + ref.COLOR_OPS + ("cutout", "noise")
    for k, v in m.items():
        if k not in names:
            raise ValueError(f"multipliers: unknown transform {k!r}; choose from {list(names)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise ValueError(f"multipliers[{k!r}] must be a number >= 0, got {v!r}")
    return dict(m)


def sample_ada_params(
    batch: int,
    height: int,
    width: int,
    p,
    preset: str = "bgc",
    device=None,
    generator=None,
    *,
    cutout: bool = False,
    noise: bool = False,
    channels: int = 3,
    multipliers: dict | None = None,
) -> dict:
    """Draw ADA's transforms for ``batch`` images of ``height × width`` with probability ``p`` each.

    ``preset``: ``b`` (x-flip, 90° rotations, integer translation), ``g`` (isotropic scale,
    pre-rotation, anisotropic scale, post-rotation, fractional translation), ``c`` (brightness,
    contrast, luma flip, hue rotation, saturation), or a combination (``bg``, ``bgc``, ...); ``cutout``
    and ``noise`` add those corruptions (``noise`` needs ``channels``); ``multipliers``: per-transform
    factors of ``p`` by name (``ganreg_ext.reference.ada.GEOM_OPS``, ``COLOR_OPS``, ``cutout``, ``noise``;
    default 1). ``p``: a float or a 0-d
    tensor (a device tensor is used on the device, never read). ``device``: default the generator's,
    else ``p``'s, else CPU. Returns a dict: ``geom`` ``[B, 2, 3]``, ``color`` ``[B, 4, 4]``, ``cutout``
    ``[B, 3]`` (with ``cutout``), ``noise`` ``[B, channels, H, W]`` (with ``noise``) — float32 tensors,
    fixed once drawn — plus ``preset`` and ``size``. Images are assumed in [−1, 1].
    """
    for name, v in (("batch", batch), ("height", height), ("width", width), ("channels", channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    preset = _preset(preset)
    p = _probability(p)
    multipliers = _multipliers(multipliers)
    if device is None:
        device = generator.device if generator is not None else (p.device if isinstance(p, Tensor) else "cpu")
    out = ref.sample_ada_params(
        batch, height, width, p, preset, torch.device(device), generator, cutout, noise, channels, multipliers
    )
    if not cutout:
        del out["cutout"]
    out["preset"], out["size"] = preset, (height, width)
    return out


_SHAPES = {
    "geom": lambda B, C, H, W: (B, 2, 3),
    "color": lambda B, C, H, W: (B, 4, 4),
    "cutout": lambda B, C, H, W: (B, 3),
    "noise": lambda B, C, H, W: (B, C, H, W),
}


def _check_params(params, x: Tensor) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params must be the dict of sample_ada_params, got {type(params).__name__}")
    B, C, H, W = x.shape
    for k in ("geom", "color"):
        if k not in params:
            raise ValueError(f"params lacks {k!r}: draw them with sample_ada_params")
    for k, v in params.items():
        if k in ("preset", "size"):
            continue
        if k not in _SHAPES:
            raise ValueError(f"params has an unknown key {k!r}; expected {sorted(_SHAPES)} (+ preset, size)")
        want = _SHAPES[k](B, C, H, W)
        if not isinstance(v, Tensor) or tuple(v.shape) != want:
            raise ValueError(
                f"params[{k!r}] must be a tensor of shape {want} for images {tuple(x.shape)}, got {getattr(v, 'shape', v)}"
            )
        if v.dtype != torch.float32:
            raise ValueError(f"params[{k!r}] must be float32, got {v.dtype}")
        if v.device != x.device:
            raise ValueError(f"params[{k!r}] is on {v.device} but the images are on {x.device}")
    if "size" in params and tuple(params["size"]) != (H, W):
        raise ValueError(f"params were drawn for {tuple(params['size'])} images, got {H}x{W}")
    if "c" in params.get("preset", "c") and C not in (1, 3):
        raise ValueError(f"ADA colour transforms need 1 or 3 channels, got {C}; use a preset without 'c'")


def ada_augment(images: Tensor, params: dict, backend: str | None = None) -> Tensor:
    """Apply drawn ADA transforms: per sample ``keep · (M · resample(x; geom) + m) + noise`` (see
    :mod:`ganreg_ext.reference.ada`), one fused pass on the fused backends. ``images``: NCHW float,
    any layout; returns a contiguous tensor of its dtype, twice differentiable w.r.t. the images."""
    x = check.images(images, "images")
    _check_params(params, x)
    C = x.shape[1]
    color = ref.channel_color(params["color"], C) if "c" in params.get("preset", "c") else None
    cutout = params.get("cutout")
    op = fused("ada_augment", backend, x.device)
    if op is None:
        y = ref.ada_augment(x, params["geom"], color, cutout, True)
    else:
        y = op(x, params["geom"], color, cutout, True)
    if "noise" in params:
        y = y + params["noise"].to(y.dtype)
    return y


class AdaptiveAugment(nn.Module):
    """ADA with its controller: ``forward(images)`` augments with the current ``p``; ``update(real_logits)``
    accumulates ``sign(D(x_real))`` on the device and every ``interval`` calls sets
    ``p ← clamp(p + sign(r_t − target) · N / (kimg · 1000), 0, p_max)``, ``r_t = E[sign(D(x_real))]``
    and ``N`` the real images seen in the interval (summed over the process group when ``sync`` and
    ``torch.distributed`` is initialised). ``p`` and ``r_t`` are 0-d float32 buffers (``state_dict``).
    """

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500,
        p: float = 0.0,
        p_max: float = 1.0,
        preset: str = "bgc",
        sync: bool = True,
        backend: str | None = None,
        *,
        cutout: bool = False,
        noise: bool = False,
        multipliers: dict | None = None,
    ):
        super().__init__()
        self.target = float(check.unit_interval(target, "target"))
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ValueError(f"interval must be a positive int, got {interval!r}")
        if isinstance(kimg, bool) or not isinstance(kimg, (int, float)) or kimg <= 0:
            raise ValueError(f"kimg must be a positive number, got {kimg!r}")
        self.interval, self.kimg = interval, float(kimg)
        self.p_max = float(check.unit_interval(p_max, "p_max"))
        p0 = _probability(p)
        if float(p0) > self.p_max:
            raise ValueError(f"p ({float(p0)}) must not exceed p_max ({self.p_max})")
        self.preset, self.sync, self.backend = _preset(preset), bool(sync), backend
        self.cutout, self.noise, self.multipliers = bool(cutout), bool(noise), _multipliers(multipliers)
        self.register_buffer("p", torch.tensor(float(p0), dtype=torch.float32))
        self.register_buffer("_r_t", torch.tensor(float("nan"), dtype=torch.float32))
        # Σ sign(D(x_real)), number of logits, number of images: since the last adjustment
        self.register_buffer("_stat", torch.zeros(3, dtype=torch.float64))
        self._calls = 0

    @property
    def r_t(self) -> Tensor:
        """The overfitting heuristic of the last completed interval (0-d device tensor; NaN before the
        first). ``float(ada.r_t)`` reads it (a host synchronisation: for logging only)."""
        return self._r_t

    def forward(self, images: Tensor, params: dict | None = None, generator=None) -> Tensor:
        """Augment ``images`` with freshly drawn transforms (the current ``p``), or with ``params``."""
        x = check.images(images, "images")
        if params is None:
            B, C, H, W = x.shape
            p = self.p if self.p.device == x.device else self.p.to(x.device)
            params = sample_ada_params(
                B,
                H,
                W,
                p,
                self.preset,
                x.device,
                generator,
                cutout=self.cutout,
                noise=self.noise,
                channels=C,
                multipliers=self.multipliers,
            )
        return ada_augment(x, params, self.backend)

    @torch.no_grad()
    def update(self, real_logits: Tensor) -> None:
        """Accumulate ``sign(real_logits)`` (D's outputs on real images, ``[B]`` or ``[B, ...]``); every
        ``interval`` calls, adjust ``p``. Device work only."""
        t = check.tensor(real_logits, "real_logits").detach()
        if t.device != self._stat.device:
            raise ValueError(f"real_logits are on {t.device} but the module is on {self._stat.device}; move it with .to()")
        self._stat[0] += torch.sign(t).sum(dtype=torch.float64)
        self._stat[1] += t.numel()
        self._stat[2] += t.shape[0]
        self._calls += 1
        if self._calls % self.interval == 0:
            self._adjust()

    def _adjust(self) -> None:
        s = self._stat
        if self.sync and dist.is_available() and dist.is_initialized():
            dist.all_reduce(s)
        r_t = s[0] / s[1].clamp(min=1)
        step = torch.sign(r_t - self.target) * s[2] / (self.kimg * 1000)
        self.p.copy_((self.p.double() + step).clamp(0.0, self.p_max))
        self._r_t.copy_(r_t)
        s.zero_()

    def get_extra_state(self) -> dict:
        return {"calls": self._calls}

    def set_extra_state(self, state: dict) -> None:
        self._calls = int(state["calls"])

    def extra_repr(self) -> str:
        return f"target={self.target}, interval={self.interval}, kimg={self.kimg}, p_max={self.p_max}, preset={self.preset!r}"
