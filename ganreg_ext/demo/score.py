"""An Inception-Score-like quality number for the digits: a scikit-learn classifier trained at
start-up on the real 8×8 digits scores generated samples downscaled to 8×8.

``score = exp(H(mean_n p_n) − mean_n H(p_n))`` (1 … 10: high when each sample is confidently one
digit and all ten digits appear) and the mean top-class confidence ``mean_n max_k p_n[k]``.
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


class DigitsScorer:
    """Logistic regression on the 8×8 digits, fitted on 80 % of them after the same 8 → ``size``
    → 8 round trip the generated samples go through; the held-out 20 % give the real data's score."""

    def __init__(self, size: int = 32, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        with _blas_threads():
            self._fit(size, seed, LogisticRegression, train_test_split)

    def _fit(self, size, seed, LogisticRegression, train_test_split):
        x8, y = digits_8x8()
        x = to_8x8(digits_to_images(x8, size))
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
        self.clf = LogisticRegression(max_iter=3000, C=10.0)
        self.clf.fit(xtr / 16.0, ytr)
        self.test_accuracy = float(self.clf.score(xte / 16.0, yte))
        self.real_score, self.real_confidence = digits_score(self.clf.predict_proba(xte / 16.0))

    def __call__(self, images: torch.Tensor) -> tuple[float, float]:
        with _blas_threads():
            return digits_score(self.clf.predict_proba(to_8x8(images) / 16.0))


def _blas_threads():
    """Limit BLAS/OpenMP threads of numpy/scikit-learn to torch's count (oversubscribed BLAS
    threads make a 0.1 s fit take seconds on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(torch.get_num_threads())
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()
