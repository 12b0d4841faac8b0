"""Ops of the ADA family (adaptive discriminator augmentation): schemas, fake kernels, autograd of the
Triton ops (native: ``csrc/autograd/ada.cpp``, the same formulas). Semantics: ``ganreg_ext/reference/ada.py``.

``ada_augment(x, geom, color, cutout, affine)`` resamples each image through its own affine map,
mixes channels with its colour matrix (+ offset when ``affine``) and applies its cutout, in one pass.
It is affine in ``x``: the backward is ``ada_augment_adj`` (the adjoint of the linear part) and the
adjoint's backward is ``ada_augment(..., affine=False)``, so every order of derivative is one pass.
Parameters: ``geom`` float32 ``[B, 2, 3]``, ``color`` float32 ``[B, C, C + 1]`` or None, ``cutout``
float32 ``[B, 3]`` or None; constants (no gradient). Outputs are contiguous NCHW in ``x``'s dtype.
"""

from __future__ import annotations

from ._common import contiguous_like

SCHEMAS = {
    "ada_augment": "(Tensor x, Tensor geom, Tensor? color, Tensor? cutout, bool affine) -> Tensor",
    "ada_augment_adj": "(Tensor g, Tensor geom, Tensor? color, Tensor? cutout) -> Tensor",
}


def _fwd_fake(x, geom, color, cutout, affine):
    return contiguous_like(x)


def _adj_fake(g, geom, color, cutout):
    return contiguous_like(g)


FAKES = {"ada_augment": _fwd_fake, "ada_augment_adj": _adj_fake}


def autograd(T) -> dict:
    """``{op: (setup_context, backward)}`` for the ops of namespace ``T`` (``torch.ops.ganreg_triton``)."""

    def setup(ctx, inputs, output):  # linear in the image: only the parameters are kept
        ctx.params = inputs[1:4]

    def fwd_bwd(ctx, gout):
        return T.ada_augment_adj(gout, *ctx.params), None, None, None, None

    def adj_bwd(ctx, gout):
        return T.ada_augment(gout, *ctx.params, False), None, None, None

    return {"ada_augment": (setup, fwd_bwd), "ada_augment_adj": (setup, adj_bwd)}
