"""The demo's training step: ``Trainer`` holds G, D, G_ema, both Adam optimizers, the path length
regularizer and the augmentation, and runs one step of the NVlabs phases.

Each step runs the NVlabs phases ``Gmain``, ``Greg`` (every ``pl_interval`` steps), ``Dmain``,
``Dreg`` (every ``r1_interval`` steps), each with its own optimizer step; the regularized phases
multiply their penalty by the interval and both Adam optimizers use
``gx.lazy_regularization(interval, lr, betas)`` (PyTorch's fused Adam). ``Dmain`` scores reals and
fakes in one D pass (``parts=2``: the same logits as two passes). All randomness of step ``k`` comes from a
generator seeded with ``(seed, k)``, so a resumed run repeats the exact next step, and two runs
from the same seed draw the same numbers (``--compare`` runs the same steps on two backends).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random

import numpy as np
import torch

import ganreg_ext as gx

from .augment import build_augment
from .config import Config, resolve_config
from .models import Discriminator, Generator

LOSSES = {
    "ns": (gx.ns_d_loss, gx.ns_g_loss),
    "lsgan": (gx.lsgan_d_loss, gx.lsgan_g_loss),
    "hinge": (gx.hinge_d_loss, gx.hinge_g_loss),
}


class Trainer:
    def __init__(self, cfg: Config, data: torch.Tensor):
        cfg = self.cfg = resolve_config(cfg)
        self.device = torch.device(cfg.device)
        self.data = data.to(self.device)
        channels = data.shape[1]
        torch.manual_seed(cfg.seed)  # model initialization
        self.G = Generator(cfg.z_dim, cfg.w_dim, cfg.size, channels, cfg.width, cfg.mapping_layers, cfg.mapping_lr_mul)
        self.G = self.G.to(self.device)
        self.D = Discriminator(cfg.size, channels, cfg.d_width or cfg.width).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.aug = build_augment(cfg, self.device, channels)
        self.d_loss, self.g_loss = LOSSES[cfg.loss]
        # Lazy regularization: Adam settings for a network whose penalty runs every `interval` steps.
        g_lr, g_betas = gx.lazy_regularization(cfg.pl_interval, cfg.lr, (cfg.beta1, cfg.beta2))
        d_lr, d_betas = gx.lazy_regularization(cfg.r1_interval, cfg.d_lr or cfg.lr, (cfg.beta1, cfg.beta2))
        # fused: one kernel per step for all parameters (CPU and CUDA; ~3 ms less per step here)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=g_lr, betas=g_betas, eps=1e-8, fused=True)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=d_betas, eps=1e-8, fused=True)
        self.pl_reg = gx.PathLengthRegularizer(decay=cfg.pl_decay, weight=cfg.pl_weight, backend=cfg.backend).to(self.device)
        self.step = 0
        self.last = {"r1": float("nan"), "pl": float("nan")}

    # -- randomness -------------------------------------------------------------------------------
    def step_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step * 7919 + 1) % (2**63))

    def randn(self, *shape, gen):
        return torch.randn(*shape, generator=gen).to(self.device)

    def sample_augment(self, B: int, gen: torch.Generator):
        """Augmentation parameters for ``B`` images; None when off."""
        return None if self.aug is None else self.aug.sample(B, gen)

    def augment(self, x, params, backend=None):
        if params is None:
            return x
        return self.aug(x, params, backend or self.cfg.backend)

    def real_batch(self, B: int, gen):
        return self.data[torch.randint(0, len(self.data), (B,), generator=gen).to(self.device)]

    # -- one training step --------------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, G, D, step, be = self.cfg, self.G, self.D, self.step, self.cfg.backend
        gen = self.step_generator(step)
        B = cfg.batch
        out = {"step": step}

        # Gmain: non-saturating (or lsgan/hinge) G loss through the augmentation of the fakes.
        G.requires_grad_(True)
        D.requires_grad_(False)
        fake = G(self.randn(B, cfg.z_dim, gen=gen), be)
        loss_G = self.g_loss(D(self.augment(fake, self.sample_augment(B, gen)), be))
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        out["loss_G"] = loss_G.item()

        # Greg: lazy path length regularization on B // 2 samples, ×interval.
        if cfg.pl_weight > 0 and step % cfg.pl_interval == 0:
            ws = G.mapping(self.randn(max(1, B // 2), cfg.z_dim, gen=gen), be)
            img = G.synthesis(ws, be)
            seed = int(torch.randint(0, 2**62, (1,), generator=gen))
            pl = self.pl_reg(img, ws, seed=seed)
            self.opt_G.zero_grad(set_to_none=True)
            (pl * cfg.pl_interval).backward()
            self.opt_G.step()
            self.last["pl"] = out["pl"] = pl.item()
        out["pl_mean"] = float(self.pl_reg.pl_mean)

        # Dmain: D loss on augmented reals and fakes (+ bCR on D outputs).
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            fake = G(self.randn(B, cfg.z_dim, gen=gen), be)
        real = self.real_batch(B, gen)
        aug_r, aug_f = self.sample_augment(B, gen), self.sample_augment(B, gen)
        cr = (self.sample_cr(B, gen), self.sample_cr(B, gen)) if cfg.bcr > 0 else None
        loss_D, d_real, d_fake, bcr = self.d_main_loss(real, fake, aug_r, aug_f, cr)
        if bcr is not None:
            out["bcr"] = bcr.item()
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        out["loss_D"] = loss_D.item()
        out["d_real"] = d_real.mean().item()
        out["d_fake"] = d_fake.mean().item()
        if hasattr(self.aug, "update"):
            out.update(self.aug.update(d_real.detach()))

        # Dreg: lazy R1 on the (augmented) reals, gradients w.r.t. the un-augmented input, ×interval.
        if cfg.r1_gamma > 0 and step % cfg.r1_interval == 0:
            x = real.detach().requires_grad_(True)
            logits = D(self.augment(x, self.sample_augment(B, gen)), be)
            grads = gx.input_gradients(logits, x)
            r1 = gx.r1_penalty(grads, cfg.r1_gamma, backend=be)
            self.opt_D.zero_grad(set_to_none=True)
            (logits.mean() * 0 + r1 * cfg.r1_interval).backward()
            self.opt_D.step()
            self.last["r1"] = out["r1"] = r1.item()
        D.requires_grad_(False)

        self.update_ema()
        self.step += 1
        return out

    def d_main_loss(self, real, fake, aug_r, aug_f, cr=None, backend=None, D=None):
        """D loss on augmented reals and fakes, plus bCR when ``cr`` (two ``sample_cr`` draws):
        ``λ·mse(D(x), D(T(x)))`` on reals and fakes, x the D input (after the augmentation) and T
        ``gx.cr_augment``, for every s-th sample (``bcr_stride``). ``backend`` defaults to the
        config's; ``D`` to ``self.D`` (the timing table passes a compiled one). Returns
        (loss, d_real, d_fake, bcr)."""
        D, cfg = self.D if D is None else D, self.cfg
        b = backend or cfg.backend
        real_in, fake_in = self.augment(real, aug_r, b), self.augment(fake, aug_f, b)
        # one D pass over both minibatches (minibatch std groups each on its own): the same logits as
        # two passes, with half the per-op overhead
        d_real, d_fake = D(torch.cat([real_in, fake_in]), b, parts=2).chunk(2)
        loss, bcr = self.d_loss(d_real, d_fake), None
        if cr is not None:
            s = self.bcr_stride(real.shape[0])
            real_t = gx.cr_augment(real_in[::s], params=cr[0], backend=b)
            fake_t = gx.cr_augment(fake_in[::s], params=cr[1], backend=b)
            bcr = gx.bcr_loss(d_real[::s], D(real_t, b), d_fake[::s], D(fake_t, b), cfg.bcr, cfg.bcr, backend=b)
            loss = loss + bcr
        return loss, d_real, d_fake, bcr

    def bcr_stride(self, B: int) -> int:
        """bCR's sub-batch is every s-th sample, s = B / bcr_batch: whole minibatch-std groups (samples
        i ≡ j mod B/4) stay together, so D scores them as in the full batch. s = 1 (all) unless
        bcr_batch divides B and is a multiple of 4."""
        n = self.cfg.bcr_batch
        return B // n if 0 < n < B and B % n == 0 and n % 4 == 0 else 1

    def sample_cr(self, B: int, gen):
        """Parameters of bCR's T for the sub-batch: a reflect translation by up to size/8 (and a
        horizontal flip with ``--bcr-flip``; off by default, digits are not mirror-symmetric)."""
        n = len(range(0, B, self.bcr_stride(B)))
        p = gx.sample_cr_params(n, self.cfg.size, self.cfg.size, device="cpu", generator=gen)
        if not self.cfg.bcr_flip:
            p["flip"] = torch.zeros_like(p["flip"])
        return {k: v.to(self.device) for k, v in p.items()}

    @torch.no_grad()
    def update_ema(self):
        cfg = self.cfg
        nimg = (self.step + 1) * cfg.batch
        ema_nimg = min(cfg.ema_kimg * 1000, nimg * cfg.ema_rampup) if cfg.ema_rampup else cfg.ema_kimg * 1000
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))

    # -- sampling, checkpoints --------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, seed: int, ema: bool = True, chunk: int = 250) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.z_dim, generator=gen)
        net = self.G_ema if ema else self.G
        return torch.cat([net(z[i : i + chunk].to(self.device), self.cfg.backend).cpu() for i in range(0, n, chunk)])

    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        sd = {
            "step": self.step,
            "config": dataclasses.asdict(self.cfg),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "pl_reg": self.pl_reg.state_dict(),
            "last": dict(self.last),
            "rng": rng,
        }
        if isinstance(self.aug, torch.nn.Module):
            sd["augment"] = self.aug.state_dict()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.step = int(sd["step"])
        for name in ("G", "D", "G_ema", "opt_G", "opt_D", "pl_reg"):
            getattr(self, name).load_state_dict(sd[name])
        if isinstance(self.aug, torch.nn.Module) and "augment" in sd:
            self.aug.load_state_dict(sd["augment"])
        self.last = dict(sd.get("last", self.last))
        rng = sd["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
