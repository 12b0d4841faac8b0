"""``python -m ganreg_ext.demo``: train a small StyleGAN2 with the package's fused regularizers (lazy R1,
lazy path length, DiffAugment, bCR) and fused blocks (``bias_act``, FIR ``upfirdn2d``) and show what
they buy.

Each step runs the NVlabs phases ``Gmain``, ``Greg`` (every ``pl_interval`` steps), ``Dmain``,
``Dreg`` (every ``r1_interval`` steps), each with its own optimizer step; the regularized phases
multiply their penalty by the interval and both Adam optimizers use
``gx.lazy_regularization(interval, lr, betas)``. All randomness of step ``k`` comes from a
generator seeded with ``(seed, k)``, so a resumed run repeats the exact next step, and two runs
from the same seed draw the same numbers (``--compare`` runs the same steps on two backends).

Settings left at ``None`` come from a preset (``--preset``): ``cpu`` (a 2-core CPU, ≤ 5 minutes of
training) or ``gpu`` (larger and longer); ``auto`` picks by device.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import time
import warnings

import numpy as np
import torch

import ganreg_ext as gx

from . import report
from .models import Discriminator, Generator

LOSSES = {
    "ns": (gx.ns_d_loss, gx.ns_g_loss),
    "lsgan": (gx.lsgan_d_loss, gx.lsgan_g_loss),
    "hinge": (gx.hinge_d_loss, gx.hinge_g_loss),
}

# Settings a preset fills in when they are left at None (measured choices: docs/demo/README.md).
PRESETS = {
    # 2 CPU cores, ≤ 5 minutes of training: 2,200 steps at ~86 ms (quiet 2-core AMD EPYC, 1 thread: 189 s)
    "cpu": dict(
        size=16,
        steps=2200,
        batch=32,
        width=32,
        lr=0.01,
        r1_gamma=0.1,
        augment="translation",
        bcr=0.0,
        ema_kimg=5.0,
        eval_every=200,
    ),
    # a GPU: twice the resolution, 4× the width, twice the batch, ~3× the steps (not tuned on a GPU)
    "gpu": dict(
        size=32,
        steps=6000,
        batch=64,
        width=128,
        lr=0.005,
        r1_gamma=0.1,
        augment="translation,cutout",
        bcr=0.0,
        ema_kimg=10.0,
        eval_every=500,
    ),
}

# Flags that may differ on --resume (everything else comes from the checkpoint).
RUNTIME_FLAGS = ("steps", "out", "device", "backend", "eval_every", "timing", "timing_reps", "compile", "progress", "threads")


@dataclasses.dataclass
class Config:
    data: str = "digits"  # "digits" (sklearn, no download) or a folder of images
    preset: str = "auto"  # "auto" (by device), "cpu" or "gpu": fills the settings left at None
    size: int | None = None
    steps: int | None = None
    batch: int | None = None
    loss: str = "ns"
    r1_gamma: float | None = None
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    augment: str | None = None  # the D-input augmentation: a DiffAugment policy, "ada" or "none" (build_augment)
    ada_preset: str = "bgc"  # --augment ada: ADA's transforms (gx.AdaptiveAugment)
    ada_target: float = 0.6  # --augment ada: target of r_t = E[sign(D(x_real))]
    ada_kimg: float = 50.0  # --augment ada: p can move 0 → 1 in this many thousand real images
    bcr: float | None = None
    bcr_batch: int = 8
    bcr_flip: bool = False
    lr: float | None = None
    d_lr: float = 0.0  # 0: lr
    beta1: float = 0.0
    beta2: float = 0.99
    width: int | None = None
    d_width: int = 0  # 0: width
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    ema_kimg: float | None = None
    ema_rampup: float = 0.05
    backend: str = "auto"
    device: str = ""
    seed: int = 0
    out: str = ""
    eval_every: int | None = None
    n_eval: int = 1000
    timing: bool = True
    timing_reps: int = 10
    compile: str = "auto"
    progress: bool = True
    threads: int = 1  # CPU: 1 (a run repeats exactly on a machine like this one); 0: torch's default, 1 when busy
    compare: int = 0  # > 0: only the drop-in comparison of this many steps (compare.png)
    compare_backends: str = "reference,auto"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_config(cfg: Config) -> Config:
    """``cfg`` with the device and every setting left at ``None`` filled from its preset."""
    device = cfg.device or default_device()
    preset = cfg.preset
    if preset == "auto":
        preset = "gpu" if torch.device(device).type == "cuda" else "cpu"
    if preset not in PRESETS:
        raise ValueError(f"preset must be auto, {' or '.join(PRESETS)}, got {cfg.preset!r}")
    fill = {k: v for k, v in PRESETS[preset].items() if getattr(cfg, k) is None}
    cfg = dataclasses.replace(cfg, device=device, preset=preset, **fill)
    if cfg.augment.strip().lower() in ("", "none", "off"):
        cfg.augment = "none"
    elif cfg.augment.strip().lower() == "ada":
        cfg.augment = "ada"
    return cfg


def parse_args(argv=None) -> tuple[Config, str | None]:
    c, cpu, gpu = Config(), PRESETS["cpu"], PRESETS["gpu"]
    p = argparse.ArgumentParser(
        prog="python -m ganreg_ext.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def preset(key, help=""):
        return f"{help + '; ' if help else ''}default from the preset: cpu {cpu[key]!r}, gpu {gpu[key]!r}"

    p.add_argument("--data", default=c.data, help='"digits" (scikit-learn, bundled) or a folder of images')
    p.add_argument(
        "--preset", choices=("auto", *PRESETS), default=c.preset, help="settings for a 2-core CPU or a GPU (auto: by device)"
    )
    p.add_argument("--size", type=int, default=None, help=preset("size", "image resolution (power of two >= 8)"))
    p.add_argument(
        "--steps", type=int, default=None, help=preset("steps", "total training steps (a resumed run continues to this)")
    )
    p.add_argument("--batch", type=int, default=None, help=preset("batch"))
    p.add_argument("--loss", choices=sorted(LOSSES), default=c.loss)
    p.add_argument("--r1-gamma", type=float, default=None, help=preset("r1_gamma", "R1 gamma (0 turns R1 off)"))
    p.add_argument("--r1-interval", type=int, default=c.r1_interval)
    p.add_argument("--pl-weight", type=float, default=c.pl_weight, help="path length weight (0 turns it off)")
    p.add_argument("--pl-interval", type=int, default=c.pl_interval)
    p.add_argument(
        "--augment",
        default=None,
        metavar="POLICY",
        help=preset("augment", 'DiffAugment policy, "ada" (adaptive augmentation, gx.AdaptiveAugment) or "none"'),
    )
    p.add_argument("--ada-preset", default=c.ada_preset, help="--augment ada: transforms (b, g, c and combinations)")
    p.add_argument("--ada-target", type=float, default=c.ada_target, help="--augment ada: target r_t")
    p.add_argument(
        "--ada-kimg",
        type=float,
        default=c.ada_kimg,
        help="--augment ada: speed of p (0 → 1 in this many kimg; the paper's 500 is for runs of many Mimg)",
    )
    p.add_argument("--bcr", type=float, default=None, help=preset("bcr", "bCR weight (lambda_real = lambda_fake); 0 = off"))
    p.add_argument(
        "--bcr-batch",
        type=int,
        default=c.bcr_batch,
        help="samples per batch that get bCR's second view (every B/n-th; all unless n divides B and 4 divides n)",
    )
    p.add_argument(
        "--bcr-flip", action="store_true", help="bCR's T also flips horizontally (off: digits are not mirror-symmetric)"
    )
    p.add_argument("--lr", type=float, default=None, help=preset("lr", "Adam learning rate of G (and D unless --d-lr)"))
    p.add_argument("--d-lr", type=float, default=c.d_lr, help="Adam learning rate of D (0: --lr)")
    p.add_argument("--beta1", type=float, default=c.beta1, help="Adam beta1 (before lazy-regularization scaling)")
    p.add_argument("--beta2", type=float, default=c.beta2, help="Adam beta2 (before lazy-regularization scaling)")
    p.add_argument(
        "--width", type=int, default=None, help=preset("width", "feature maps at 4x4 and 8x8 (halved per octave above)")
    )
    p.add_argument("--d-width", type=int, default=c.d_width, help="D's width (0: --width)")
    p.add_argument("--ema-kimg", type=float, default=None, help=preset("ema_kimg", "half-life of G_ema in thousands of images"))
    p.add_argument(
        "--backend", default=c.backend, help="ganreg_ext backend for every op and block (auto, reference, cpu, cuda, triton)"
    )
    p.add_argument("--device", default=c.device, help="default: cuda if available else cpu")
    p.add_argument("--seed", type=int, default=c.seed)
    p.add_argument("--out", default=c.out, help="run directory (default runs/<data>-<loss>-<time>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="resume from CHECKPOINT (default: <out>/checkpoint.pt)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=preset("eval_every", "steps between evaluations (grid, score, FD, checkpoint)"),
    )
    p.add_argument("--n-eval", type=int, default=c.n_eval, help="samples scored per evaluation")
    p.add_argument("--timing-reps", type=int, default=c.timing_reps)
    p.add_argument("--no-timing", dest="timing", action="store_false", help="skip the timing table")
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default=c.compile,
        help="torch.compile row of the timing table (auto: CUDA only)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument(
        "--threads",
        type=int,
        default=c.threads,
        help="CPU threads for torch: 1 by default (the networks are tiny: one thread is as fast as two, and a "
        "run then repeats exactly on another machine with the same CPU type; the thread count changes float "
        "summation order, hence the trajectory); 0: torch's default, or 1 if the load average exceeds the core count",
    )
    p.add_argument(
        "--compare",
        type=int,
        nargs="?",
        const=100,
        default=c.compare,
        metavar="N",
        help="drop-in proof instead of training: the first N steps (default 100) once per backend of "
        "--compare-backends from the same seed, curves overlaid in compare.png",
    )
    p.add_argument("--compare-backends", default=c.compare_backends, metavar="A,B", help="the two backends --compare runs")
    a = p.parse_args(argv)
    resume = a.__dict__.pop("resume")
    return Config(**vars(a)), resume


def set_threads(n: int) -> int:
    """Oversubscribed OpenMP threads spin and stall on a busy machine: there one thread is faster."""
    if n <= 0:
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] >= (os.cpu_count() or 1)
        n = 1 if busy else torch.get_num_threads()
    torch.set_num_threads(n)
    return n


def load_data(cfg: Config) -> torch.Tensor:
    from .data import load_digits_images, load_folder

    return load_digits_images(cfg.size) if cfg.data == "digits" else load_folder(cfg.data, cfg.size)


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
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=g_lr, betas=g_betas, eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=d_betas, eps=1e-8)
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
        d_real, d_fake = D(real_in, b), D(fake_in, b)
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


METRIC_FIELDS = ["step", "loss_G", "loss_D", "d_real", "d_fake", "r1", "pl", "pl_mean", "bcr", "ada_p", "ada_rt", "sec"]
SCORE_FIELDS = ["step", "score", "confidence", "fd", "real_score", "real_confidence", "real_fd"]


def main(argv=None) -> dict:
    cfg, resume = parse_args(argv)
    ckpt = None
    if resume is not None:
        path = resume if resume != "auto" else os.path.join(cfg.out or "", "checkpoint.pt")
        if resume == "auto" and not cfg.out:
            raise SystemExit("--resume without a path needs --out (the run directory)")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        saved = dict(ckpt["config"])
        for k in RUNTIME_FLAGS:
            if getattr(cfg, k) is not None:
                saved[k] = getattr(cfg, k)
        saved["out"] = cfg.out or os.path.dirname(os.path.abspath(path))
        cfg = Config(**{k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
    if not cfg.out:
        name = f"{'digits' if cfg.data == 'digits' else os.path.basename(os.path.normpath(cfg.data))}-{cfg.loss}"
        cfg.out = os.path.join("runs", f"{name}{'-compare' if cfg.compare else ''}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = resolve_config(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    if cfg.compare > 0:
        return compare(cfg)
    return run(cfg, ckpt)


def _console(cfg: Config):
    """(say, threads, chosen backend name); prints the header line. Library warnings are reported
    once here instead of between the progress bar's lines."""
    from tqdm import tqdm

    from .timing import auto_backend

    say = tqdm.write
    device = torch.device(cfg.device)
    threads = set_threads(cfg.threads) if device.type == "cpu" else torch.get_num_threads()
    auto = auto_backend(device)
    say(
        f"ganreg_ext demo → {cfg.out}  (preset {cfg.preset}, device {device}, backend {cfg.backend}"
        f"{f' → {auto}' if cfg.backend == 'auto' else ''}; available: {gx.available_backends()}; {threads} CPU threads)"
    )
    if auto == "reference" and cfg.backend == "auto":
        say("  note: no fused backend is built for this device; auto uses the reference (eager PyTorch) ops")
    warnings.filterwarnings("ignore", category=gx.BackendWarning)  # reported once above
    warnings.filterwarnings("ignore", module="sklearn")
    return say, threads, auto


def run(cfg: Config, ckpt: dict | None = None) -> dict:
    from tqdm import tqdm

    cfg = resolve_config(cfg)
    t_start = time.perf_counter()
    say, threads, auto = _console(cfg)

    data = load_data(cfg)
    trainer = Trainer(cfg, data)
    if ckpt is not None:
        trainer.load_state_dict(ckpt)
        say(f"resumed at step {trainer.step}")
    resume_step = trainer.step if ckpt is not None else None
    with open(os.path.join(cfg.out, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)
    ada = f" ({cfg.ada_preset}, target r_t {cfg.ada_target}, {cfg.ada_kimg} kimg)" if cfg.augment == "ada" else ""
    say(
        f"data: {tuple(data.shape)} in [{data.min():.2f}, {data.max():.2f}]; G {_count(trainer.G)} params, "
        f"D {_count(trainer.D)} params, num_ws {trainer.G.num_ws}; steps {cfg.steps}, batch {cfg.batch}, loss {cfg.loss}, "
        f"lr {cfg.lr}, R1 γ={cfg.r1_gamma}/{cfg.r1_interval}, PL w={cfg.pl_weight}/{cfg.pl_interval}, "
        f"augment {cfg.augment}{ada}, bCR {cfg.bcr}, G_ema {cfg.ema_kimg} kimg"
    )

    scorer = None
    if cfg.data == "digits":
        from .score import DigitsScorer

        scorer = DigitsScorer(cfg.size, cfg.seed)
        say(
            f"digits scorer: logistic regression + a 'not a digit' class, held-out accuracy {scorer.test_accuracy:.3f}; "
            f"held-out real digits: score {scorer.real_score:.2f}, FD {scorer.real_fd:.2f}; "
            f"random blobs: score {scorer.noise_score:.2f}, FD {scorer.noise_fd:.0f}"
        )
    metrics = report.CsvLog(os.path.join(cfg.out, "metrics.csv"), METRIC_FIELDS, resume_step)
    # an evaluation at step k happens after k steps: keep it when resuming at k
    scores = report.CsvLog(os.path.join(cfg.out, "scores.csv"), SCORE_FIELDS, None if resume_step is None else resume_step + 1)
    results = {"out": cfg.out, "scores": []}

    def evaluate():
        step = trainer.step
        grid = trainer.sample(64, seed=cfg.seed + 777)
        report.save_grid(grid, os.path.join(cfg.out, f"samples_{step:06d}.png"), nrow=8)
        row = {"step": step}
        if scorer is not None:
            s, conf, fd = scorer.evaluate(trainer.sample(cfg.n_eval, seed=cfg.seed + 999))
            row.update(
                score=s,
                confidence=conf,
                fd=fd,
                real_score=scorer.real_score,
                real_confidence=scorer.real_confidence,
                real_fd=scorer.real_fd,
            )
            say(f"[step {step:5d}] digits score {s:5.2f} (confidence {conf:.3f}), digits FD {fd:7.2f}")
            results["scores"].append(row)
        scores.write(row)
        return grid

    t_train = 0.0
    if trainer.step == 0:
        evaluate()
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not cfg.progress, dynamic_ncols=True, mininterval=1.0, unit="it")
    grid = None
    while trainer.step < cfg.steps:
        t = time.perf_counter()
        row = trainer.train_step()
        row["sec"] = time.perf_counter() - t
        t_train += row["sec"]
        metrics.write(row)
        if trainer.step % 5 == 0 or trainer.step == cfg.steps:
            extra = {"bcr": f"{row['bcr']:.3g}"} if "bcr" in row else {}
            if "ada_p" in row:
                extra["p"] = f"{row['ada_p']:.3f}"
            bar.set_postfix(
                G=f"{row['loss_G']:.3f}",
                D=f"{row['loss_D']:.3f}",
                r1=f"{trainer.last['r1']:.3g}",
                pl=f"{trainer.last['pl']:.3g}",
                **extra,
                refresh=False,
            )
        bar.update(1)
        if trainer.step % cfg.eval_every == 0 or trainer.step == cfg.steps:
            grid = evaluate()
            trainer.save(os.path.join(cfg.out, "checkpoint.pt"))
    bar.close()
    if grid is None:
        grid = trainer.sample(64, seed=cfg.seed + 777)
        trainer.save(os.path.join(cfg.out, "checkpoint.pt"))
    report.save_grid(grid, os.path.join(cfg.out, "samples.png"), nrow=8)
    report.plot_curves(
        os.path.join(cfg.out, "metrics.csv"),
        os.path.join(cfg.out, "scores.csv"),
        os.path.join(cfg.out, "curves.png"),
        scorer.real_score if scorer else None,
        scorer.real_fd if scorer else None,
        cfg.ada_target if cfg.augment == "ada" else None,
    )
    results["train_s"] = t_train
    results["wall_train_s"] = time.perf_counter() - t_start
    say(
        f"training done: step {trainer.step}; {t_train:.1f} s in training steps, "
        f"{results['wall_train_s']:.1f} s since start (set-up and evaluations included)"
    )

    if cfg.timing:
        from .timing import timing_table

        table, rows = timing_table(trainer, cfg.timing_reps, cfg.compile)
        with open(os.path.join(cfg.out, "timing.md"), "w") as f:
            f.write(table)
        say("\n" + table)
        results["timing"] = rows
    all_scores = report.read_csv(os.path.join(cfg.out, "scores.csv")) if scorer is not None else {}
    if all_scores and len(all_scores["step"]) and np.isfinite(all_scores["score"]).any():
        ok = np.flatnonzero(np.isfinite(all_scores["score"]))  # first and last evaluation, resumed runs included
        first, last = ({k: all_scores[k][i] for k in ("step", "score", "confidence", "fd")} for i in (ok[0], ok[-1]))
        txt = (
            "digits score: exp(H(mean p) - mean H(p)), 1..10, higher is better (mean top-class confidence in brackets);\n"
            "digits FD: Frechet distance to the real digits in the classifier's logit space, lower is better\n"
            f"step {int(first['step']):>6}: score {first['score']:5.2f} ({first['confidence']:.3f})  FD {first['fd']:8.2f}\n"
            f"step {int(last['step']):>6}: score {last['score']:5.2f} ({last['confidence']:.3f})  FD {last['fd']:8.2f}\n"
            f"real digits (held out): score {scorer.real_score:5.2f} ({scorer.real_confidence:.3f})  FD {scorer.real_fd:8.2f}\n"
            f"random blobs (held out): score {scorer.noise_score:5.2f} ({scorer.noise_confidence:.3f})  FD {scorer.noise_fd:8.2f}\n"
        )
        with open(os.path.join(cfg.out, "scores.txt"), "w") as f:
            f.write(txt)
        say(txt)
    results["wall_s"] = time.perf_counter() - t_start
    say(
        f"outputs in {cfg.out}: samples.png, samples_<step>.png, curves.png, metrics.csv, scores.csv, checkpoint.pt"
        f"{', timing.md' if cfg.timing else ''}; wall time {results['wall_s']:.1f} s"
    )
    return results


COMPARE_KEYS = ("loss_G", "loss_D", "r1", "pl", "pl_mean", "bcr")


def compare(cfg: Config) -> dict:
    """Drop-in proof: the first ``cfg.compare`` steps twice from the same seed (same weights, same
    random numbers), once per backend of ``cfg.compare_backends`` (a, then b), plus a control: a
    again with every initial weight moved by one float32 ulp. Per step the losses and penalties of
    the three runs go to ``compare.csv`` and are overlaid in ``compare.png``. The drift of a curve
    against a's is ``max_k |x_k − a_k| / max_k |a_k|``; the step-0 drift (identical weights: the ops
    alone) is reported too. A GAN amplifies any round-off from step to step (Adam's first updates
    are ≈ lr·sign(g)), so b's drift is judged against the control's: the same size means the backends
    differ by float round-off only."""
    from tqdm import tqdm

    cfg = resolve_config(cfg)
    say, threads, auto = _console(cfg)
    backends = [b.strip() for b in cfg.compare_backends.split(",")]
    if len(backends) != 2:
        raise SystemExit(f"--compare-backends needs two backends, got {cfg.compare_backends!r}")
    data = load_data(cfg)
    names = {"a": backends[0], "b": backends[1], "control": f"{backends[0]}, weights +1 ulp"}
    names = {k: f"{v} → {auto}" if v == "auto" else v for k, v in names.items()}
    runs, secs = {}, {}
    for key, backend in (("a", backends[0]), ("b", backends[1]), ("control", backends[0])):
        trainer = Trainer(dataclasses.replace(cfg, backend=backend), data)
        if key == "control":
            with torch.no_grad():
                for p in [*trainer.G.parameters(), *trainer.D.parameters(), *trainer.G_ema.parameters()]:
                    p.copy_(torch.nextafter(p, torch.full_like(p, float("inf"))))
        rows = []
        t0 = time.perf_counter()
        for _ in tqdm(range(cfg.compare), desc=names[key], disable=not cfg.progress, dynamic_ncols=True, leave=False):
            rows.append(trainer.train_step())
        secs[key] = time.perf_counter() - t0
        say(f"{names[key]}: {cfg.compare} steps in {secs[key]:.1f} s ({secs[key] / cfg.compare * 1e3:.0f} ms per step)")
        runs[key] = {k: np.array([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in COMPARE_KEYS}
    drift = {x: _drift(runs["a"], runs[x]) for x in ("b", "control")}
    drift0 = _drift(runs["a"], runs["b"], first=True)
    with open(os.path.join(cfg.out, "compare.csv"), "w") as f:
        cols = [f"{k}_{x}" for k in COMPARE_KEYS for x in ("a", "b", "control")]
        f.write(f"# a = {names['a']}, b = {names['b']}, control = {names['control']}\n")
        f.write(",".join(["step"] + cols) + "\n")
        for i in range(cfg.compare):
            vals = [runs[x][k][i] for k in COMPARE_KEYS for x in ("a", "b", "control")]
            f.write(",".join([str(i)] + ["" if not np.isfinite(v) else f"{v:.9g}" for v in vals]) + "\n")
    report.plot_compare(runs, names, drift, drift0, secs, os.path.join(cfg.out, "compare.png"))
    worst = {x: max(d.values(), default=0.0) for x, d in drift.items()}
    worst0 = max(drift0.values(), default=0.0)
    lines = [
        f"drop-in check ({cfg.compare} steps, same seed): relative drift from {names['a']} (max_k |x_k - a_k| / max_k |a_k|)",
        f"  {'':8s} {names['b']:>24s} {names['control']:>28s}",
    ]
    lines += [f"  {k:8s} {drift['b'][k]:24.2e} {drift['control'][k]:28.2e}" for k in drift["b"]]
    lines.append(f"  {'worst':8s} {worst['b']:24.2e} {worst['control']:28.2e}")
    lines.append(
        f"  step 0 (identical weights): {worst0:.1e}; time {names['a']} {secs['a']:.1f} s, {names['b']} {secs['b']:.1f} s"
    )
    say("\n".join(lines))
    say(f"outputs in {cfg.out}: compare.png, compare.csv")
    return {
        "out": cfg.out,
        "drift": drift["b"],
        "max_drift": worst["b"],
        "control_drift": drift["control"],
        "max_control_drift": worst["control"],
        "step0_drift": worst0,
        "seconds": secs,
        "curves": runs,
        "names": names,
    }


def _drift(a: dict, b: dict, first: bool = False) -> dict:
    """Per key ``max_k |b_k − a_k| / max_k |a_k|`` over the steps where both are finite (``first``:
    the first such step only)."""
    out = {}
    for k in COMPARE_KEYS:
        ok = np.flatnonzero(np.isfinite(a[k]) & np.isfinite(b[k]))
        if len(ok):
            ok = ok[:1] if first else ok
            scale, diff = np.abs(a[k][ok]).max(), np.abs(a[k][ok] - b[k][ok]).max()
            out[k] = float(diff / scale) if scale > 0 else float(diff)
    return out


def _count(m) -> str:
    n = sum(p.numel() for p in m.parameters())
    return f"{n / 1e3:.0f}k"
