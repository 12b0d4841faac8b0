"""The demo's settings: ``Config`` (every flag of ``python -m ganreg_ext.demo``), the ``cpu`` and
``gpu`` presets that fill the settings left at ``None``, and ``resolve_config``."""

from __future__ import annotations

import dataclasses

import torch

# Settings a preset fills in when they are left at None (measured choices: docs/demo/README.md).
PRESETS = {
    # 2 CPU cores: 4,500 steps of batch 24 (where seeds 0-2 reach score >= 7.0 and FD <= 1.5; 64 ms each
    # on a quiet 2-core AMD EPYC, one thread: 288 s), no augmentation (at 16x16 the digits train fastest
    # without it), R1 gamma 0.5 (a discriminator without augmentation needs the stronger R1), path
    # length every 8 steps (docs/demo/README.md, Presets and tuning record)
    "cpu": dict(
        size=16,
        steps=4500,
        batch=24,
        width=32,
        lr=0.01,
        r1_gamma=0.5,
        pl_interval=8,
        augment="none",
        bcr=0.0,
        ema_kimg=5.0,
        eval_every=500,
    ),
    # a GPU: twice the resolution, 4× the width, twice the batch, ~3× the steps (not tuned on a GPU)
    "gpu": dict(
        size=32,
        steps=6000,
        batch=64,
        width=128,
        lr=0.005,
        r1_gamma=0.1,
        pl_interval=4,
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
    pl_interval: int | None = None
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
