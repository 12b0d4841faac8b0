"""Instance noise (docs/semantics.md#instance-noise; Sønderby 2016, Roth et al. 2017 seed 003): ``x + σ·n``, ``n`` the
Philox stream of docs/semantics.md#path-length-regularization-stylegan2 made inside the kernel (no noise tensor)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _checks as check
from ._dispatch import fused
from .reference import noise as ref


def instance_noise(x: Tensor, sigma: float, seed: int | None = None, backend: str | None = None) -> Tensor:
    """``x + σ·n`` with ``n ~ N(0, I)`` the docs/semantics.md#path-length-regularization-stylegan2 stream over ``x``'s logical shape; dtype of ``x``.
    ``sigma``: a number or a 0-d tensor (a device tensor is read in the kernel)."""
    check.tensor(x, "x")
    sigma = check.coefficient(sigma, "sigma", x)
    seed = check.seed(seed)
    op = fused("noise_axpy", backend, x.device)
    if op is None:
        return ref.instance_noise(x, sigma, seed)
    if not isinstance(sigma, torch.Tensor) or sigma.device != x.device:  # a fill kernel, no host→device copy
        sigma = torch.full((), float(sigma), dtype=torch.float32, device=x.device)
    return op(x, sigma, seed, 1.0, list(x.shape), x.dtype)


class InstanceNoise(nn.Module):
    """Annealed instance noise: ``σ_t = σ0 · max(0, 1 − t / anneal_steps)``; call :meth:`step` once per
    training iteration. ``t`` is a buffer, so ``state_dict`` resumes the schedule."""

    def __init__(self, sigma0: float, anneal_steps: int, backend: str | None = None):
        super().__init__()
        self.sigma0 = check.nonneg(sigma0, "sigma0")
        if not isinstance(anneal_steps, int) or anneal_steps <= 0:
            raise ValueError(f"anneal_steps must be a positive int, got {anneal_steps!r}")
        self.anneal_steps = anneal_steps
        self.backend = backend
        self.register_buffer("t", torch.zeros((), dtype=torch.int64))

    @property
    def sigma(self) -> Tensor:
        """``σ_t`` as a 0-d float32 tensor on the buffer's device (computed there: no host read)."""
        return self.sigma0 * torch.clamp(1.0 - self.t.to(torch.float32) / self.anneal_steps, min=0.0)

    def step(self) -> None:
        self.t += 1

    def forward(self, x: Tensor, seed: int | None = None) -> Tensor:
        return instance_noise(x, self.sigma, seed, self.backend)

    def extra_repr(self) -> str:
        return f"sigma0={self.sigma0}, anneal_steps={self.anneal_steps}"
