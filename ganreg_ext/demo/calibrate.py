"""``python -m ganreg_ext.demo.calibrate [--size 16] [--out FILE]``: the scale of the digits score,
the digits FD and the memorization check, measured on real and synthetic image sets (a markdown
table; docs/demo/calibration.md is its output at the CPU preset's size)."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from .data import digits_8x8, digits_split, load_digits_images
from .memorization import MemorizationCheck
from .score import DigitsScorer, non_digits


def calibration_rows(size: int = 16) -> list[tuple[str, int, float, float, float, float]]:
    """``(images, n, score, FD, median nearest-training-digit distance, near-copy fraction)`` per set."""
    sc = DigitsScorer(size)
    train_i, held_i = digits_split()
    digits, labels = load_digits_images(size), digits_8x8()[1]
    train, held = digits[train_i], digits[held_i]
    memo = MemorizationCheck(train, held)
    g = torch.Generator().manual_seed(0)
    sets = [
        ("held-out digits (the scorer's fit set and FD reference)", held),
        ("GAN's training digits (unseen by the scorer): a copier's output", train),
        (
            "training digits + Gaussian noise σ = 0.1 (near-copies)",
            (train + 0.1 * torch.randn(train.shape, generator=g)).clamp(-1, 1),
        ),
        ("training digits shifted by one pixel", torch.roll(train, 1, dims=3)),
        ("training digits blurred (3×3 box filter)", F.avg_pool2d(train, 3, 1, 1)),
        ("training digits of classes 0–4 only (half the modes)", train[torch.as_tensor(labels[train_i] < 5)]),
        ("training digits of class 0 only (one mode)", train[torch.as_tensor(labels[train_i] == 0)]),
        ("random blobs (the 'not a digit' kind, unseen)", non_digits(1000, size, seed=123)),
        ("Gaussian noise", torch.randn(1000, 1, size, size, generator=g).clamp(-1, 1)),
    ]
    rows = []
    for name, x in sets:
        s, _, fd = sc.evaluate(x)
        m = memo(x)
        rows.append((name, len(x), s, fd, m["nn_gen"], m["near_copies"]))
    return rows


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m ganreg_ext.demo.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    lines = [
        f"Calibration at {a.size}×{a.size} (`python -m ganreg_ext.demo.calibrate --size {a.size}`): scorer fitted on the "
        "held-out split, FD against it; nearest-training-digit distance = RMS over pixels in [−1, 1].",
        "",
        "| images | n | digits score | digits FD | median distance to nearest training digit | near copies |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n, s, fd, nn, near in calibration_rows(a.size):
        lines.append(f"| {name} | {n} | {s:.2f} | {fd:.2f} | {nn:.3f} | {near:.1%} |")
    txt = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(txt)
    print(txt, end="")
    return txt


if __name__ == "__main__":
    main()
