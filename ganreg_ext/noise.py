"""Instance noise (SPEC §5; Sønderby 2016, Roth et al. 2017 seed 003): ``x + σ·n``, ``n`` the
Philox stream of SPEC §3 made inside the kernel (no noise tensor)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _checks as check
from ._dispatch import resolve
from .ops import noise as ops
from .reference import noise as ref

_OPS = ("noise_axpy", "noise_dot")


def instance_noise(x: Tensor, sigma: float, seed: int | None = None, backend: str | None = None) -> Tensor:
    """``x + σ·n`` with ``n ~ N(0, I)`` the SPEC §3 stream over ``x``'s logical shape; dtype of ``x``."""
    check.tensor(x, "x")
    sigma = check.nonneg(sigma, "sigma")
    seed = check.seed(seed)
    name = resolve(_OPS, backend, x.device)
    if name == "reference":
        return ref.instance_noise(x, sigma, seed)
    alpha = torch.full((), sigma, dtype=torch.float32, device=x.device)
    return ops.noise_axpy(x, alpha, seed, 1.0, list(x.shape), x.dtype, name)


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
    def sigma(self) -> float:
        return self.sigma0 * max(0.0, 1.0 - int(self.t) / self.anneal_steps)

    def step(self) -> None:
        self.t += 1

    def forward(self, x: Tensor, seed: int | None = None) -> Tensor:
        return instance_noise(x, self.sigma, seed, self.backend)

    def extra_repr(self) -> str:
        return f"sigma0={self.sigma0}, anneal_steps={self.anneal_steps}"
