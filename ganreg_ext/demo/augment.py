"""The D-input augmentation of the demo (``--augment``): DiffAugment with a policy, or ADA
(``gx.AdaptiveAugment``); ``build_augment`` picks it, here and nowhere else."""

from __future__ import annotations

import torch

import ganreg_ext as gx

from .config import Config


class DiffAugment:
    """DiffAugment (``gx.diff_augment``) with a policy (``color``, ``translation``, ``cutout``);
    parameters drawn on the CPU from the step's generator, moved to the device."""

    name = "DiffAugment"

    def __init__(self, policy: str, size: int, device: torch.device):
        self.policy, self.size, self.device = policy, size, device

    def sample(self, B: int, gen: torch.Generator) -> dict:
        p = gx.sample_diffaug_params(B, self.size, self.size, self.policy, device="cpu", generator=gen)
        return {k: v.to(self.device) for k, v in p.items()}

    def __call__(self, x, params, backend):
        return gx.diff_augment(x, self.policy, params=params, backend=backend)


class ADA(torch.nn.Module):
    """Adaptive discriminator augmentation (``gx.AdaptiveAugment``): transforms drawn on the CPU from
    the step's generator with the current ``p``; ``update(d_real)`` after each main D step moves ``p``
    toward ``r_t = target`` (``p``, ``r_t`` and the controller's state are in the checkpoint)."""

    name = "ADA"

    def __init__(self, cfg: Config, channels: int, device: torch.device):
        super().__init__()
        self.size, self.channels = cfg.size, channels
        self.ada = gx.AdaptiveAugment(target=cfg.ada_target, kimg=cfg.ada_kimg, preset=cfg.ada_preset).to(device)

    def sample(self, B: int, gen: torch.Generator) -> dict:
        p = float(self.ada.p)  # one host read per draw (the demo logs every step anyway)
        params = gx.sample_ada_params(
            B, self.size, self.size, p, self.ada.preset, device="cpu", generator=gen, channels=self.channels
        )
        return {k: v.to(self.ada.p.device) if torch.is_tensor(v) else v for k, v in params.items()}

    def forward(self, x, params, backend):
        return gx.ada_augment(x, params, backend=backend)

    def update(self, d_real: torch.Tensor) -> dict:
        """Feed the controller D's real logits; returns ``p`` and ``r_t`` for the log."""
        self.ada.update(d_real)
        return {"ada_p": float(self.ada.p), "ada_rt": float(self.ada.r_t)}


def build_augment(cfg: Config, device: torch.device, channels: int = 1):
    """The D-input augmentation (``--augment``), chosen here and nowhere else: ``None`` for "none",
    ``ADA`` for "ada", else DiffAugment with that policy — an object with ``sample(B, generator) →
    params`` and ``__call__(x, params, backend)`` (an ``nn.Module`` one is checkpointed with the
    networks; one with ``update`` gets D's real logits after each main D step; ``name`` labels it)."""
    if cfg.augment == "none":
        return None
    if cfg.augment == "ada":
        return ADA(cfg, channels, device)
    return DiffAugment(cfg.augment, cfg.size, device)
