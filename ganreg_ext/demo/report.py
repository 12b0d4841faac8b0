"""Outputs of a demo run: sample grids (Pillow), curves (matplotlib Agg), CSV files, timing.md."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import torch


def save_grid(images: torch.Tensor, path: str, nrow: int | None = None, scale: int | None = None) -> None:
    """``[N, C, H, W]`` in [−1, 1] → one PNG grid (1-pixel gaps), upscaled ``scale``× (nearest;
    default: tiles of at least 64 pixels, so 16×16 digits are readable)."""
    from PIL import Image

    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    N, C, H, W = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(N)))
    ncol = int(math.ceil(N / nrow))
    grid = torch.full((C, ncol * (H + 1) + 1, nrow * (W + 1) + 1), 64, dtype=torch.uint8)
    for i in range(N):
        r, c = divmod(i, nrow)
        grid[:, 1 + r * (H + 1) : 1 + r * (H + 1) + H, 1 + c * (W + 1) : 1 + c * (W + 1) + W] = x[i]
    a = grid.numpy()
    im = Image.fromarray(a[0] if C == 1 else a.transpose(1, 2, 0), "L" if C == 1 else "RGB")
    scale = max(1, -(-64 // max(H, W))) if scale is None else scale
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    im.save(path)


class CsvLog:
    """Append rows (dicts with fixed keys) to a CSV file; when resuming, keeps the existing rows
    with ``step < resume_step`` so a resumed run continues the same file."""

    def __init__(self, path: str, fields: list[str], resume_step: int | None = None):
        self.path, self.fields = path, fields
        rows = []
        if resume_step is not None and os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) < resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: _fmt(row.get(k)) for k in self.fields})


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_csv(path: str) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for k in rows[0].keys() if rows else []:
        out[k] = np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
    return out


def plot_curves(
    metrics_csv: str,
    scores_csv: str,
    path: str,
    real_score: float | None = None,
    real_fd: float | None = None,
    ada_target: float | None = None,
) -> None:
    """Losses, penalties, ``pl_mean``, the digits score, the digits FD and the memorization check
    over steps (and ADA's ``p`` and ``r_t`` when logged), one PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_csv(metrics_csv)
    s = read_csv(scores_csv) if os.path.exists(scores_csv) else {}
    ada = bool(m) and "ada_p" in m and np.isfinite(m["ada_p"]).any()
    fig, axes = plt.subplots(1, 7 if ada else 6, figsize=(30.8 if ada else 26.4, 3.8))
    if m:
        step = m["step"]

        def smooth(v, k=25):
            ok = ~np.isnan(v)
            if ok.sum() < k:
                return step[ok], v[ok]
            return step[ok][k - 1 :], np.convolve(v[ok], np.ones(k) / k, mode="valid")

        ax = axes[0]
        for key in ("loss_G", "loss_D"):
            ax.plot(step, m[key], alpha=0.25)
            ax.plot(*smooth(m[key]), label=key, color=ax.lines[-1].get_color())
        ax.set_title("adversarial losses")
        ax.legend()
        ax = axes[1]
        for key, label in (("r1", "R1 γ/2·E‖∇D(x)‖² (lazy)"), ("pl", "path length w·E(‖Jᵀy‖−a)² (lazy)"), ("bcr", "bCR")):
            if key in m and np.isfinite(m[key]).any():
                ok = np.isfinite(m[key])
                ax.plot(step[ok], m[key][ok], ".-", ms=2, lw=0.6, label=label)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title("penalties")
        ax.legend()
        ax = axes[2]
        ax.plot(step, m["pl_mean"])
        ax.set_title("pl_mean (running mean of path lengths)")
    has = s and len(s.get("step", [])) and np.isfinite(s.get("score", [np.nan])).any()
    ax = axes[3]
    if has:
        ax.plot(s["step"], s["score"], "o-", label="generated (G_ema)")
        if real_score is not None:
            ax.axhline(real_score, color="k", ls="--", label=f"real digits unseen by the scorer ({real_score:.2f})")
        ax.set_ylim(0.8, 10.2)
        ax.legend()
    ax.set_title("digits score exp(H(E p) − E H(p)) ↑")
    ax = axes[4]
    if has and "fd" in s and np.isfinite(s["fd"]).any():
        ax.plot(s["step"], s["fd"], "o-", color="C3", label="generated (G_ema)")
        if real_fd is not None:
            ax.axhline(max(real_fd, 1e-3), color="k", ls="--", label=f"real digits unseen by the scorer ({real_fd:.2f})")
        ax.set_yscale("log")
        ax.legend()
    ax.set_title("digits FD to the held-out digits ↓")
    ax = axes[5]
    if has and "nn_gen" in s and np.isfinite(s["nn_gen"]).any():
        ax.plot(s["step"], s["nn_gen"], "o-", color="C2", label="samples (median)")
        ax.axhline(np.nanmax(s["nn_real"]), color="k", ls="--", label=f"held-out digits ({np.nanmax(s['nn_real']):.3f})")
        ax.set_ylim(0, None)
        ax.legend()
    ax.set_title("memorization: RMS distance to the nearest training digit")
    if ada:
        ax = axes[6]
        ax.plot(m["step"], m["ada_p"], label="p (augmentation probability)")
        ok = np.isfinite(m["ada_rt"])
        ax.plot(m["step"][ok], m["ada_rt"][ok], label="r_t = E[sign D(x_real)]", alpha=0.8)
        if ada_target is not None:
            ax.axhline(ada_target, color="k", ls="--", label=f"target r_t ({ada_target:g})")
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="k", lw=0.5)
        ax.legend()
        ax.set_title("ADA controller")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


COMPARE_TITLES = {
    "loss_G": "G loss (Gmain)",
    "loss_D": "D loss (Dmain)",
    "r1": "R1 penalty (lazy, Dreg)",
    "pl": "path length penalty (lazy, Greg)",
    "pl_mean": "pl_mean",
    "bcr": "bCR",
}


def plot_compare(runs: dict, names: dict, drift: dict, drift0: dict, secs: dict, path: str) -> None:
    """The ``--compare`` plot: per quantity the curves of backend a (thick line), backend b (dots)
    and the control (a with the weights moved by one ulp, thin grey line), each panel titled with
    b's and the control's drift from a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in COMPARE_TITLES if k in drift["b"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.0), squeeze=False)
    styles = {
        "a": dict(lw=3.5, alpha=0.4, color="C0"),
        "b": dict(lw=0, marker=".", ms=3.5, color="C3"),
        "control": dict(lw=0.8, color="0.35", ls="--"),
    }
    for ax, k in zip(axes[0], keys):
        for x in ("a", "b", "control"):
            v = runs[x][k]
            ok = np.isfinite(v)
            ax.plot(np.flatnonzero(ok), v[ok], label=f"{names[x]} ({secs[x]:.0f} s)", **styles[x])
        ax.set_title(
            f"{COMPARE_TITLES[k]}\ndrift: {names['b']} {drift['b'][k]:.1e}, control {drift['control'][k]:.1e}", fontsize=9
        )
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    worst = {x: max(d.values(), default=0.0) for x, d in drift.items()}
    steps = len(runs["a"][keys[0]]) if keys else 0
    fig.suptitle(
        f"Drop-in check, same seed, first {steps} steps: {names['b']} vs {names['a']}: max relative drift "
        f"{worst['b']:.1e} (step 0, identical weights: {max(drift0.values(), default=0.0):.0e}); control "
        f"({names['control']}): {worst['control']:.1e}.  drift = max_k |x_k − a_k| / max_k |a_k|",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
