"""Differentiable augmentation (docs/semantics.md#augmentation-diffaugment-and-the-cr-transform): DiffAugment and the CR transform.

Random parameters are drawn by the samplers (small per-sample tensors, torch RNG) and applied by
one fused kernel forward and one backward (the exact adjoint). Given the same parameters every
backend equals the reference; the reference with sampled parameters equals the original
DiffAugment code given the same random draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _checks as check
from . import _contract as C
from ._dispatch import fused
from .reference import augment as ref


def _policies(policy: str) -> tuple[str, ...]:
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a comma-separated string, got {type(policy).__name__}")
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in ref.DIFFAUG_POLICIES]
    if unknown:
        raise ValueError(f"policy: unknown augmentation(s) {unknown}; choose from {ref.DIFFAUG_POLICIES}")
    if list(names) != sorted(set(names), key=ref.DIFFAUG_POLICIES.index):
        raise ValueError(f"policy must list each of {ref.DIFFAUG_POLICIES} at most once, in that order; got {policy!r}")
    return names


def sample_diffaug_params(B: int, H: int, W: int, policy: str = "color,translation,cutout", device=None, generator=None) -> dict:
    """Per-sample DiffAugment parameters (see :func:`ganreg_ext.reference.augment.sample_diffaug_params`)."""
    for name, v in (("B", B), ("H", H), ("W", W)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return ref.sample_diffaug_params(B, H, W, _policies(policy), device, generator)


def sample_cr_params(B: int, H: int, W: int, device=None, generator=None) -> dict:
    """Per-sample CR parameters: ``flip`` ``[B]`` bool, ``translation`` ``[B, 2]`` int64."""
    for name, v in (("B", B), ("H", H), ("W", W)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return ref.sample_cr_params(B, H, W, device, generator)


def _check_params(params: dict, x: Tensor, keys: tuple[str, ...], shapes: dict) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict from the sampler, got {type(params).__name__}")
    for k in keys:
        v = params.get(k)
        if not isinstance(v, Tensor) or tuple(v.shape) != shapes[k]:
            raise ValueError(f"params[{k!r}] must be a tensor of shape {shapes[k]}, got {getattr(v, 'shape', v)}")
        if v.device != x.device:
            raise ValueError(f"params[{k!r}] is on {v.device} but x is on {x.device}")


def pack_diffaug_params(params: dict, B: int) -> tuple[Tensor, Tensor, int]:
    """``(fparams [B,3] float32, iparams [B,4] int32, flags)`` for the fused kernels."""
    some = next(iter(params.values()))
    f = torch.full((B, 3), 0.5, dtype=torch.float32, device=some.device)
    i = torch.zeros((B, 4), dtype=torch.int32, device=some.device)
    flags = 0
    for col, (key, bit) in enumerate((("brightness", C.BRIGHTNESS), ("saturation", C.SATURATION), ("contrast", C.CONTRAST))):
        if key in params:
            f[:, col] = params[key]
            flags |= bit
    if "translation" in params:
        i[:, 0:2] = params["translation"]
        flags |= C.TRANSLATION
    if "cutout" in params:
        i[:, 2:4] = params["cutout"]
        flags |= C.CUTOUT
    return f, i, flags


def diff_augment(
    x: Tensor, policy: str = "color,translation,cutout", params: dict | None = None, generator=None, backend=None
) -> Tensor:
    """DiffAugment (Zhao et al. 2020), per sample in this order: brightness ``x + (u−0.5)``; saturation
    ``(x − mean_c x)·2u + mean_c x``; contrast ``(x − mean_chw x)·(u+0.5) + mean_chw x``; translation by
    up to ``0.125·size`` with zero fill; cutout of a ``0.5·size`` square. ``x``: NCHW float; returns
    a contiguous tensor of ``x``'s dtype, differentiable w.r.t. ``x`` (twice)."""
    check.images(x, "x")
    B, _, H, W = x.shape
    names = _policies(policy)
    if params is None:
        params = ref.sample_diffaug_params(B, H, W, names, x.device, generator)
    keys = tuple(k for p in names for k in (("brightness", "saturation", "contrast") if p == "color" else (p,)))
    _check_params(
        params, x, keys, {"brightness": (B,), "saturation": (B,), "contrast": (B,), "translation": (B, 2), "cutout": (B, 2)}
    )
    params = {k: params[k] for k in keys}
    if not keys:
        return x
    op = fused("diff_augment", backend, x.device)
    if op is None:
        return ref.diff_augment(x, params)
    return op(x, *pack_diffaug_params(params, B))


def cr_augment(x: Tensor, params: dict | None = None, generator=None, backend=None) -> Tensor:
    """CR transform (StudioGAN): per sample a horizontal flip with p = 0.5, then an integer translation
    ``t ∈ [−size/8, size/8]²`` with reflect padding. Differentiable w.r.t. ``x`` (twice)."""
    check.images(x, "x")
    B, _, H, W = x.shape
    user_params = params is not None
    if params is None:
        params = ref.sample_cr_params(B, H, W, x.device, generator)
    _check_params(params, x, ("flip", "translation"), {"flip": (B,), "translation": (B, 2)})
    if user_params:
        _check_cr_range(params["translation"], H, W)
    op = fused("cr_augment", backend, x.device)
    if op is None:
        return ref.cr_augment(x, params)
    iparams = torch.cat([params["flip"].to(torch.int32).view(B, 1), params["translation"].to(torch.int32)], 1)
    return op(x, iparams)


def _check_cr_range(t: Tensor, H: int, W: int) -> None:
    """Reflect padding covers shifts up to ``size − 1``: beyond that the forward would clamp while the
    adjoint does not (silently wrong gradients), so user-given translations are checked, on every
    backend: a ``ValueError`` for CPU parameters; for device parameters (or under ``torch.compile``)
    an asynchronous device assert, so no step waits for a host read. Sampled parameters are in range
    by construction and skip it."""
    lim = torch.tensor([H - 1, W - 1], device=t.device)
    bad = (t.abs() > lim).any()
    msg = f"params['translation'] must lie in [-(H-1), H-1] x [-(W-1), W-1] = ±({H - 1}, {W - 1})"
    if t.device.type != "cpu" or torch.compiler.is_compiling():
        torch._assert_async(~bad, msg)
    elif bool(bad):
        raise ValueError(f"{msg}, got {t[(t.abs() > lim).any(1)][0].tolist()}")
