"""Memorization check: are the generated samples copies of training images?

For each image, its distance to the nearest image of the GAN's training set, RMS over pixels at the
training resolution (``d(x) = min_t ‖x − t‖₂ / √(C·H·W)``, images in [−1, 1]). The same distance
for the held-out digits (real digits the GAN never saw) is the yardstick: a generator that makes new
digits has samples about as far from the training set as new real digits are, one that copies has
them much nearer. Reported:

* ``nn_gen``, ``nn_real``: the medians of ``d`` over the samples and over the held-out digits;
* ``nn_ratio = nn_gen / nn_real`` (≈ 1 or above: no sign of copying; a copier: 0);
* ``near_copies``: the fraction of samples nearer to a training image than ``QUANTILE`` (5 %) of the
  held-out digits are (≈ 0.05 for a generator of new digits, 1 for a copier).

``memorizing`` is ``near_copies > FLAG_NEAR_COPIES`` (0.25: five times what new digits give).
"""

from __future__ import annotations

import numpy as np
import torch

QUANTILE = 0.05
FLAG_NEAR_COPIES = 0.25


def nearest_distances(x: torch.Tensor, ref: torch.Tensor, chunk: int = 1024) -> np.ndarray:
    """``[N]``: per image of ``x`` ``[N, C, H, W]``, the RMS pixel distance to its nearest image of
    ``ref`` ``[M, C, H, W]`` (float64)."""
    a = x.detach().reshape(len(x), -1).double().cpu()
    b = ref.detach().reshape(len(ref), -1).double().cpu()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"images of {tuple(x.shape[1:])} vs training images of {tuple(ref.shape[1:])}")
    out = [
        torch.cdist(a[i : i + chunk], b, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
        for i in range(0, len(a), chunk)
    ]
    return (torch.cat(out) / a.shape[1] ** 0.5).numpy()


class MemorizationCheck:
    """Nearest-training-neighbour distances of samples against those of the held-out images
    (module docstring). ``train``, ``held_out``: ``[N, C, H, W]`` at the training resolution."""

    def __init__(self, train: torch.Tensor, held_out: torch.Tensor):
        self.train = train.detach().cpu()
        d = nearest_distances(held_out, self.train)
        self.nn_real = float(np.median(d))
        self.threshold = float(np.quantile(d, QUANTILE))

    def __call__(self, samples: torch.Tensor) -> dict:
        """``{"nn_gen", "nn_real", "nn_ratio", "near_copies", "memorizing"}`` for ``samples``."""
        d = nearest_distances(samples, self.train)
        nn_gen = float(np.median(d))
        near = float(np.mean(d < self.threshold))
        return {
            "nn_gen": nn_gen,
            "nn_real": self.nn_real,
            "nn_ratio": nn_gen / self.nn_real,
            "near_copies": near,
            "memorizing": near > FLAG_NEAR_COPIES,
        }
