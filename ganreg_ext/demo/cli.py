"""``python -m ganreg_ext.demo``: train a small StyleGAN2 with the package's fused regularizers (lazy R1,
lazy path length, DiffAugment, bCR) and fused blocks (``bias_act``, FIR ``upfirdn2d``) and show what
they buy.

The command line: ``parse_args`` (every flag; ``Config`` in config.py), ``main`` (a training run,
run.py, or the drop-in comparison, compare.py; ``--resume`` reloads a checkpoint's settings) and the
console header both share.

Settings left at ``None`` come from a preset (``--preset``): ``cpu`` (a 2-core CPU; meant for 5 minutes
of training, ~9 measured) or ``gpu`` (larger and longer); ``auto`` picks by device.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

import ganreg_ext as gx

from .config import PRESETS, RUNTIME_FLAGS, Config, resolve_config
from .trainer import LOSSES


def parse_args(argv=None, prog: str = "python -m ganreg_ext.demo", description: str | None = None) -> tuple[Config, str | None]:
    """(the settings, ``--resume``'s value); ``prog`` / ``description``: for another command that takes
    the demo's flags (``python -m benchmarks demo-timing``)."""
    c, cpu, gpu = Config(), PRESETS["cpu"], PRESETS["gpu"]
    p = argparse.ArgumentParser(
        prog=prog,
        description=description or __doc__.split("\n\n")[0],
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
    p.add_argument("--pl-interval", type=int, default=None, help=preset("pl_interval", "path length every this many steps"))
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
        from .compare import compare

        return compare(cfg)
    from .run import run

    return run(cfg, ckpt)


def console(cfg: Config):
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
