"""Ops of the augmentation family, DiffAugment and the CR transform from packed parameters: the fake
kernels (schemas: ``csrc/ops.cpp``; autograd: ``csrc/autograd/augment.cpp``, for every fused backend).

Both transforms are (affine-)linear in the image for fixed parameters, so each backward is the
exact adjoint kernel and the adjoint's backward is the forward without the brightness offset.

Packed parameters (built by :func:`ganreg_ext.augment.pack_diffaug_params`): ``fparams`` float32
``[B, 3]`` = brightness, saturation, contrast uniforms; ``iparams`` int32 ``[B, 4]`` = translation
``tx, ty``, cutout centre ``ox, oy``; ``flags`` a bit set of ``_contract.BRIGHTNESS | ...``.
CR: ``iparams`` int32 ``[B, 3]`` = ``flip, tx, ty``.
"""

from __future__ import annotations

from ._common import contiguous_like


def _diffaug_fake(x, fparams, iparams, flags):
    return contiguous_like(x)


def _cr_fake(x, iparams):
    return contiguous_like(x)


FAKES = {"diff_augment": _diffaug_fake, "diff_augment_adj": _diffaug_fake, "cr_augment": _cr_fake, "cr_augment_adj": _cr_fake}
