"""An Inception-Score-like quality number for the digits: a scikit-learn classifier trained at
start-up on the real 8×8 digits scores generated samples downscaled to 8×8.

``score = exp(H(mean_n p_n) − mean_n H(p_n))`` (1 … 10: high when each sample is confidently one
digit and all ten digits appear) and the mean top-class confidence ``mean_n max_k p_n[k]``.

A classifier fitted on digits alone extrapolates: it labelled smooth random blobs (an untrained
generator's output) confidently as a few classes, so pure noise scored ~2.9 (real digits 8.4). The
scorer therefore has an eleventh class, "not a digit", fitted on smooth random blobs at several scales
and contrasts (outlier exposure); its probability is spread uniformly over the ten digits before the
score is computed (a sample judged not-a-digit counts as a uniform guess), so noise scores ≈ 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import digits_8x8, digits_to_images


def to_8x8(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` in [−1, 1] → ``[N, 64]`` in the dataset's 0..16 range (area downscaling,
    channels averaged)."""
    x = images.detach().float().cpu().mean(1, keepdim=True)
    x = F.interpolate(x, size=(8, 8), mode="area") if x.shape[-1] != 8 else x
    return ((x.clamp(-1, 1) + 1.0) * 8.0).reshape(len(x), 64).numpy()


def digits_score(proba: np.ndarray) -> tuple[float, float]:
    """``(score, confidence)`` from class probabilities ``[N, 10]``."""
    p = np.clip(proba, 1e-12, 1.0)
    h_mean = -(p.mean(0) * np.log(p.mean(0))).sum()
    mean_h = -(p * np.log(p)).sum(1).mean()
    return float(np.exp(h_mean - mean_h)), float(proba.max(1).mean())


def non_digits(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1, size, size]`` smooth random blobs in [−1, 1] (the "not a digit" class): Gaussian noise
    on a 2..6 pixel grid, bicubic-upsampled, with random gain and offset, clamped (like an untrained
    generator's output: dark background, bright blobs of any shape)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(2, 7, (1,), generator=g))
        z = torch.randn(1, 1, k, k, generator=g)
        x = F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)
        gain = float(torch.empty(1).uniform_(0.5, 3.0, generator=g))
        offset = float(torch.empty(1).uniform_(-1.5, 0.5, generator=g))
        out.append((x * gain + offset).clamp(-1, 1))
    return torch.cat(out)


class DigitsScorer:
    """Logistic regression on the 8×8 digits (80 %, after the same 8 → ``size`` → 8 round trip the
    generated samples go through) plus the "not a digit" class (see the module docstring); the
    held-out 20 % give the real data's score, held-out blobs ``noise_score``."""

    def __init__(self, size: int = 32, seed: int = 0, n_outliers: int = 1500):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        with _blas_threads():
            x8, y = digits_8x8()
            x = to_8x8(digits_to_images(x8, size))
            xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
            neg = to_8x8(non_digits(2 * n_outliers, size, seed))
            self.clf = LogisticRegression(max_iter=3000, C=10.0)
            self.clf.fit(np.concatenate([xtr, neg[:n_outliers]]) / 16.0, np.concatenate([ytr, np.full(n_outliers, 10)]))
            self.test_accuracy = float(self.clf.score(xte / 16.0, yte))
            self.real_score, self.real_confidence = digits_score(self.proba(xte))
            self.noise_score, self.noise_confidence = digits_score(self.proba(neg[n_outliers:]))

    def proba(self, x8: np.ndarray) -> np.ndarray:
        """``[N, 10]`` digit probabilities of 8×8 images (0..16): the "not a digit" mass spread evenly."""
        p = self.clf.predict_proba(x8 / 16.0)
        return p[:, :10] + p[:, 10:] / 10.0

    def __call__(self, images: torch.Tensor) -> tuple[float, float]:
        with _blas_threads():
            return digits_score(self.proba(to_8x8(images)))


def _blas_threads():
    """Limit BLAS/OpenMP threads of numpy/scikit-learn to torch's count (oversubscribed BLAS
    threads make a 0.1 s fit take seconds on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(torch.get_num_threads())
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()
