"""Consistency regularization (docs/semantics.md#consistency-regularization-cr-bcr-zcr; CR, bCR of Zhao et al. 2020, zCR; StudioGAN anchors).

Each loss is a weighted ``mean((a − b)²)`` computed in one fused pass with the gradient into
both arguments (no difference tensor is stored).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _checks as check
from ._dispatch import fused
from .reference import consistency as ref


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    check.tensor(a, name_a, min_dim=0)
    check.tensor(b, name_b, min_dim=0)
    check.same_shape(name_a, a, name_b, b)
    if a.numel() == 0:
        raise ValueError(f"{name_a} is empty (shape {tuple(a.shape)})")
    if a.dtype != b.dtype:
        raise TypeError(f"{name_b} must have the dtype of {name_a} ({a.dtype}), got {b.dtype}")


def _mse(a: Tensor, b: Tensor, weight, name_a: str, name_b: str, backend) -> Tensor:
    """``weight · mean((a − b)²)`` in one fused op (``weight`` checked by the caller; a tensor
    multiplies the result)."""
    _check_pair(a, b, name_a, name_b)
    return _weighted_mse(a, b, weight, backend)


def _weighted_mse(a: Tensor, b: Tensor, weight, backend) -> Tensor:
    """:func:`_mse` on arguments the caller has checked."""
    w, w_t = check.split_coefficient(weight)
    op = fused("sq_diff_sum", backend, a.device)
    out = (ref.sq_diff_sum if op is None else op)(a, b, w / a.numel())
    return out if w_t is None else out * w_t.to(out.dtype)


def consistency_loss(out: Tensor, out_aug: Tensor, weight: float = 1.0, backend=None) -> Tensor:
    """CR: ``w · mean((out − out_aug)²)`` over all elements; gradient into both (``F.mse_loss``)."""
    return _mse(out, out_aug, check.coefficient(weight, "weight", out), "out", "out_aug", backend)


def bcr_loss(real, real_aug, fake, fake_aug, lambda_real: float = 10.0, lambda_fake: float = 10.0, backend=None):
    """bCR (Zhao et al. 2020): ``λ_r·mse(D(x), D(T(x))) + λ_f·mse(D(G(z)), D(T(G(z))))``."""
    _check_pair(real, real_aug, "real", "real_aug")  # both pairs before any kernel runs
    _check_pair(fake, fake_aug, "fake", "fake_aug")
    lr = check.coefficient(lambda_real, "lambda_real", real)
    lf = check.coefficient(lambda_fake, "lambda_fake", fake)
    return _weighted_mse(real, real_aug, lr, backend) + _weighted_mse(fake, fake_aug, lf, backend)


def perturb_latent(z: Tensor, sigma: float = 0.05, generator=None) -> Tensor:
    """zCR: ``z + σ·N(0, I)`` (StudioGAN radius 0.05)."""
    check.tensor(z, "z")
    sigma = check.nonneg(sigma, "sigma")
    return z + sigma * torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)


def zcr_discriminator_loss(d_fake: Tensor, d_fake_eps: Tensor, weight: float = 20.0, backend=None) -> Tensor:
    """zCR for D: ``w · mse(D(G(z)), D(G(z+ε)))`` (StudioGAN ``d_lambda`` = 20)."""
    return _mse(d_fake, d_fake_eps, check.coefficient(weight, "weight", d_fake), "d_fake", "d_fake_eps", backend)


def zcr_generator_loss(img: Tensor, img_eps: Tensor, weight: float = 0.5, backend=None) -> Tensor:
    """zCR for G: ``−w · mse(G(z), G(z+ε))`` over the images (StudioGAN ``g_lambda`` = 0.5)."""
    return _mse(img, img_eps, -check.coefficient(weight, "weight", img), "img", "img_eps", backend)
