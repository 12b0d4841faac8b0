"""``--compare [N]``: the drop-in proof (the first N steps on two backends from the same seed, plus a
one-ulp control), ``compare.csv`` and ``compare.png``."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import torch

from . import report
from .cli import console
from .config import Config, resolve_config
from .data import load_training_images
from .trainer import Trainer

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
    say, threads, auto = console(cfg)
    backends = [b.strip() for b in cfg.compare_backends.split(",")]
    if len(backends) != 2:
        raise SystemExit(f"--compare-backends needs two backends, got {cfg.compare_backends!r}")
    data = load_training_images(cfg.data, cfg.size)
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
