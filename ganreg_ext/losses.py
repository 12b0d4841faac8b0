"""Adversarial losses, LeCam regularization and lazy regularization (docs/semantics.md#adversarial-losses-lecam-and-lazy-regularization).

These act on D's logits (``O(B)`` values), so they are plain PyTorch on every backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _checks as check


def _logits(x, name: str) -> Tensor:
    return check.tensor(x, name)


def lsgan_d_loss(real: Tensor, fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """LSGAN (Mao et al. 2017): ``½E(D(x) − b)² + ½E(D(G(z)) − a)²``; Pearson χ² coding ``a=−1, b=1, c=0``."""
    _logits(real, "real"), _logits(fake, "fake")
    return 0.5 * (real - b).square().mean() + 0.5 * (fake - a).square().mean()


def lsgan_g_loss(fake: Tensor, c: float = 1.0) -> Tensor:
    """LSGAN generator: ``½E(D(G(z)) − c)²``."""
    return 0.5 * (_logits(fake, "fake") - c).square().mean()


def ns_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Non-saturating D loss (StyleGAN2): ``E softplus(−D(x)) + E softplus(D(G(z)))``."""
    return F.softplus(-_logits(real, "real")).mean() + F.softplus(_logits(fake, "fake")).mean()


def ns_g_loss(fake: Tensor) -> Tensor:
    """Non-saturating G loss: ``E softplus(−D(G(z)))``."""
    return F.softplus(-_logits(fake, "fake")).mean()


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge D loss: ``E relu(1 − D(x)) + E relu(1 + D(G(z)))``."""
    return torch.relu(1 - _logits(real, "real")).mean() + torch.relu(1 + _logits(fake, "fake")).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """Hinge G loss: ``−E D(G(z))``."""
    return -_logits(fake, "fake").mean()


def wgan_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """WGAN critic loss: ``E D(G(z)) − E D(x)``."""
    return _logits(fake, "fake").mean() - _logits(real, "real").mean()


def wgan_g_loss(fake: Tensor) -> Tensor:
    """WGAN generator loss: ``−E D(G(z))``."""
    return -_logits(fake, "fake").mean()


class LeCamRegularizer(nn.Module):
    """LeCam regularization (Tseng et al. 2021, ``google/lecam-gan``).

    ``forward(d_real, d_fake)`` first updates the EMA anchors ``α_R ← decay·α_R + (1−decay)·E D(x)``
    and ``α_F`` from ``D(G(z))`` (0-d detached buffers, averaged over the process group when
    ``sync``), then returns ``weight · (E relu(D(x) − α_F)² + E relu(α_R − D(G(z)))²)``;
    ``one_sided=False`` drops the relu (the paper's form).
    """

    def __init__(self, decay: float = 0.99, weight: float = 0.3, one_sided: bool = True, sync: bool = False):
        super().__init__()
        self.decay = check.unit_interval(decay, "decay")
        self.weight = check.nonneg(weight, "weight")
        self.one_sided = one_sided
        self.sync = sync
        self.register_buffer("ema_real", torch.zeros((), dtype=torch.float32))
        self.register_buffer("ema_fake", torch.zeros((), dtype=torch.float32))

    def _mean(self, x: Tensor) -> Tensor:
        m = x.detach().float().mean()
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(m)
            m = m / torch.distributed.get_world_size()
        return m

    def forward(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        _logits(d_real, "d_real"), _logits(d_fake, "d_fake")
        check.same_device("d_real/d_fake", d_real, d_fake, self.ema_real)
        self.ema_real.mul_(self.decay).add_((1 - self.decay) * self._mean(d_real))
        self.ema_fake.mul_(self.decay).add_((1 - self.decay) * self._mean(d_fake))
        act = torch.relu if self.one_sided else (lambda t: t)
        real_term = act(d_real - self.ema_fake.to(d_real.dtype)).square().mean()
        fake_term = act(self.ema_real.to(d_fake.dtype) - d_fake).square().mean()
        return self.weight * (real_term + fake_term)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, weight={self.weight}, one_sided={self.one_sided}, sync={self.sync}"


def lazy_regularization(interval: int, lr: float, betas=(0.0, 0.99)) -> tuple[float, tuple[float, float]]:
    """NVlabs lazy regularization: ``(lr·c, (β1^c, β2^c))`` with ``c = interval/(interval+1)``.

    Use the returned Adam settings for a network whose penalty runs every ``interval`` steps, and
    multiply that penalty by ``interval`` when it is applied."""
    if not isinstance(interval, int) or interval <= 0:
        raise ValueError(f"interval must be a positive int, got {interval!r}")
    lr = check.nonneg(lr, "lr")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    b1, b2 = (check.unit_interval(b, "betas") for b in betas)
    c = interval / (interval + 1)
    return lr * c, (b1**c, b2**c)
