"""Ops of the augmentation family: DiffAugment and the CR transform applied from packed parameters.

Both transforms are (affine-)linear in the image for fixed parameters, so each backward is the
exact adjoint kernel and the adjoint's backward is the forward without the brightness offset.

Packed parameters (built by :func:`ganreg_ext.augment.pack_diffaug_params`):
``fparams`` float32 ``[B, 3]`` = brightness, saturation, contrast uniforms; ``iparams`` int32
``[B, 4]`` = translation ``tx, ty``, cutout centre ``ox, oy``; ``flags`` a bit set of
``BRIGHTNESS | SATURATION | CONTRAST | TRANSLATION | CUTOUT``. CR: ``iparams`` int32 ``[B, 3]``
= ``flip, tx, ty``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .._dispatch import kernel
from ._common import contiguous_like, save_all, unpack

BRIGHTNESS, SATURATION, CONTRAST, TRANSLATION, CUTOUT = 1, 2, 4, 8, 16


@torch.library.custom_op("ganreg::diff_augment", mutates_args=())
def diff_augment(x: Tensor, fparams: Tensor, iparams: Tensor, flags: int, backend: str) -> Tensor:
    """DiffAugment forward (SPEC §4) → contiguous tensor of ``x``'s shape and dtype."""
    return kernel("diff_augment", backend)(x, fparams, iparams, flags)


@torch.library.custom_op("ganreg::diff_augment_adj", mutates_args=())
def diff_augment_adj(g: Tensor, fparams: Tensor, iparams: Tensor, flags: int, backend: str) -> Tensor:
    """Adjoint of the linear part of :func:`diff_augment` (its backward), applied to ``g``."""
    return kernel("diff_augment_adj", backend)(g, fparams, iparams, flags)


@torch.library.custom_op("ganreg::cr_augment", mutates_args=())
def cr_augment(x: Tensor, iparams: Tensor, backend: str) -> Tensor:
    """CR transform: flip, then reflect-padded integer translation."""
    return kernel("cr_augment", backend)(x, iparams)


@torch.library.custom_op("ganreg::cr_augment_adj", mutates_args=())
def cr_augment_adj(g: Tensor, iparams: Tensor, backend: str) -> Tensor:
    """Adjoint of :func:`cr_augment` (a gather over the ≤ 2×2 reflected source positions)."""
    return kernel("cr_augment_adj", backend)(g, iparams)


for _op in (diff_augment, diff_augment_adj):
    _op.register_fake(lambda x, fparams, iparams, flags, backend: contiguous_like(x))
for _op in (cr_augment, cr_augment_adj):
    _op.register_fake(lambda x, iparams, backend: contiguous_like(x))


def _diff_augment_bwd(ctx, gout):
    _, fparams, iparams, flags, backend = unpack(ctx)
    return diff_augment_adj(gout, fparams, iparams, flags, backend), None, None, None, None


def _diff_augment_adj_bwd(ctx, gout):
    _, fparams, iparams, flags, backend = unpack(ctx)
    return diff_augment(gout, fparams, iparams, flags & ~BRIGHTNESS, backend), None, None, None, None


def _cr_augment_bwd(ctx, gout):
    _, iparams, backend = unpack(ctx)
    return cr_augment_adj(gout, iparams, backend), None, None


def _cr_augment_adj_bwd(ctx, gout):
    _, iparams, backend = unpack(ctx)
    return cr_augment(gout, iparams, backend), None, None


_save_params = functools.partial(save_all, skip=(0,))  # linear ops: the backward never needs the image
diff_augment.register_autograd(_diff_augment_bwd, setup_context=_save_params)
diff_augment_adj.register_autograd(_diff_augment_adj_bwd, setup_context=_save_params)
cr_augment.register_autograd(_cr_augment_bwd, setup_context=_save_params)
cr_augment_adj.register_autograd(_cr_augment_adj_bwd, setup_context=_save_params)
