"""Ops of the augmentation family: DiffAugment and the CR transform from packed parameters (schemas,
fake kernels, autograd of the Triton ops; native: ``csrc/autograd/augment.cpp``, same formulas).

Both transforms are (affine-)linear in the image for fixed parameters, so each backward is the
exact adjoint kernel and the adjoint's backward is the forward without the brightness offset.

Packed parameters (built by :func:`ganreg_ext.augment.pack_diffaug_params`): ``fparams`` float32
``[B, 3]`` = brightness, saturation, contrast uniforms; ``iparams`` int32 ``[B, 4]`` = translation
``tx, ty``, cutout centre ``ox, oy``; ``flags`` a bit set of ``_contract.BRIGHTNESS | ...``.
CR: ``iparams`` int32 ``[B, 3]`` = ``flip, tx, ty``.
"""

from __future__ import annotations

from .._contract import BRIGHTNESS
from ._common import contiguous_like

SCHEMAS = {
    "diff_augment": "(Tensor x, Tensor fparams, Tensor iparams, int flags) -> Tensor",
    "diff_augment_adj": "(Tensor g, Tensor fparams, Tensor iparams, int flags) -> Tensor",
    "cr_augment": "(Tensor x, Tensor iparams) -> Tensor",
    "cr_augment_adj": "(Tensor g, Tensor iparams) -> Tensor",
}


def _diffaug_fake(x, fparams, iparams, flags):
    return contiguous_like(x)


def _cr_fake(x, iparams):
    return contiguous_like(x)


FAKES = {"diff_augment": _diffaug_fake, "diff_augment_adj": _diffaug_fake, "cr_augment": _cr_fake, "cr_augment_adj": _cr_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def params_setup(ctx, inputs, output):  # linear ops: the backward never needs the image
        ctx.params = inputs[1:]

    def diff_augment_bwd(ctx, gout):
        return T.diff_augment_adj(gout, *ctx.params), None, None, None

    def diff_augment_adj_bwd(ctx, gout):
        fparams, iparams, flags = ctx.params
        return T.diff_augment(gout, fparams, iparams, flags & ~BRIGHTNESS), None, None, None

    def cr_augment_bwd(ctx, gout):
        return T.cr_augment_adj(gout, *ctx.params), None

    def cr_augment_adj_bwd(ctx, gout):
        return T.cr_augment(gout, *ctx.params), None

    return {
        "diff_augment": (params_setup, diff_augment_bwd),
        "diff_augment_adj": (params_setup, diff_augment_adj_bwd),
        "cr_augment": (params_setup, cr_augment_bwd),
        "cr_augment_adj": (params_setup, cr_augment_adj_bwd),
    }
