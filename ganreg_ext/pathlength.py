"""Path length regularization (docs/semantics.md#path-length-regularization-stylegan2; StyleGAN2, NVlabs ``loss.py`` ``Gpl``).

``E_{w, y~N(0,I)} (‖J_wᵀ y‖₂ − a)²``: the noise ``y`` is generated inside the fused kernels from
a seed (Philox4x32-10) and never stored, forward or backward.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import _checks as check
from ._dispatch import fused
from .gradnorm import grad_sqnorm
from .reference import pathlength as ref


def path_length_noise(shape, seed: int, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Materialize ``y = n / sqrt(H·W)`` (``n`` the docs/semantics.md#path-length-regularization-stylegan2 Philox stream) for tests and debugging."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"shape must be NCHW (4 sizes), got {shape}")
    return ref.path_length_noise(shape, check.seed(seed), device, dtype)


def path_length_noise_dot(images: Tensor, seed: int | None = None, backend: str | None = None) -> Tensor:
    """``Σ images · y`` with ``y = n / sqrt(H·W)`` regenerated from ``seed`` (0-d float32, float64 for
    float64). Differentiable twice: its backward ``grad_out·y`` is again an op whose derivative is
    the noise-dot, so it works inside ``autograd.grad(..., create_graph=True)`` then ``.backward()``."""
    check.images(images, "images")
    seed = check.seed(seed)
    op = fused("noise_dot", backend, images.device)
    if op is None:
        return ref.path_length_noise_dot(images, seed)
    return op(images, seed, 1.0 / math.sqrt(images.shape[2] * images.shape[3]))


def _pl_grads(pl_grads: Tensor) -> Tensor:
    return check.tensor(pl_grads, "pl_grads", dims=(2, 3))


def path_length_penalty(pl_grads: Tensor, pl_mean, decay: float = 0.01, backend: str | None = None):
    """``(penalty[B], new_mean)`` from ``pl_grads`` ``[B, num_ws, w_dim]`` (or ``[B, w_dim]``):
    ``len_b = sqrt(mean_k Σ_d g²)``, ``new_mean = pl_mean + decay·(E_b len − pl_mean)``,
    ``penalty_b = (len_b − new_mean)²``; the gradient also flows through ``new_mean`` (as NVlabs)."""
    _pl_grads(pl_grads)
    pl_mean = check.running_mean(pl_mean, "pl_mean", pl_grads, "pl_grads")
    decay = check.unit_interval(decay, "decay")
    op = fused("path_length", backend, pl_grads.device)
    if op is None:
        return ref.path_length(pl_grads, pl_mean, decay)
    if not isinstance(pl_mean, Tensor):  # a fill kernel on the device: no host→device copy
        pl_mean = torch.full((), float(pl_mean), dtype=torch.float32, device=pl_grads.device)
    return op(pl_grads, pl_mean.detach(), decay)


class PathLengthRegularizer(nn.Module):
    """StyleGAN2 path length regularizer with its running mean ``pl_mean`` (a 0-d float32 buffer).

    ``forward(images, ws, seed=None)`` computes ``pl_grads = autograd.grad(Σ images·y, ws,
    create_graph=True)``, updates ``pl_mean`` (detached; averaged over the process group first when
    ``sync_mean``) and returns ``weight · E_b penalty_b`` (NVlabs ``loss_Gpl``; multiply by the
    lazy-regularization interval yourself). Run G on ``B // 2`` samples for this step as NVlabs does.
    """

    def __init__(self, decay: float = 0.01, weight: float = 2.0, sync_mean: bool = False, backend: str | None = None):
        super().__init__()
        self.decay = check.unit_interval(decay, "decay")
        self.weight = check.nonneg(weight, "weight")
        self.sync_mean = sync_mean
        self.backend = backend
        self.register_buffer("pl_mean", torch.zeros((), dtype=torch.float32))

    def forward(self, images: Tensor, ws: Tensor, seed: int | None = None) -> Tensor:
        check.images(images, "images")
        check.tensor(ws, "ws", dims=(2, 3))
        check.batch_match("images", images, "ws", ws)
        noise_dot = path_length_noise_dot(images, seed, self.backend)
        (pl_grads,) = torch.autograd.grad(noise_dot, ws, create_graph=True)
        if self.sync_mean:  # the batch mean of the lengths is all-reduced between sqnorm and the epilogue
            num_ws = pl_grads.shape[1] if pl_grads.dim() == 3 else 1
            s = grad_sqnorm(pl_grads, backend=self.backend)
            penalty, new_mean = ref.pl_epilogue(s, num_ws, self.pl_mean, self.decay, self._batch_mean)
        else:
            penalty, new_mean = path_length_penalty(pl_grads, self.pl_mean, self.decay, self.backend)
        self.pl_mean.copy_(new_mean.detach())
        return self.weight * penalty.mean()

    @staticmethod
    def _batch_mean(local: Tensor) -> Tensor:
        """The process-group mean of ``E_b len`` with the local gradient (penalties stay local)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return local
        total = local.detach().clone()
        torch.distributed.all_reduce(total)
        return local + (total / torch.distributed.get_world_size() - local).detach()

    def extra_repr(self) -> str:
        return f"decay={self.decay}, weight={self.weight}, sync_mean={self.sync_mean}"
