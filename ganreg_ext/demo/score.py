"""An Inception-Score-like quality number for the digits: a scikit-learn classifier trained at
start-up on the held-out half of the 8×8 digits (``data.digits_split``: digits the GAN never trains
on) scores generated samples downscaled to 8×8.

``score = exp(H(mean_n p_n) − mean_n H(p_n))`` (1 … 10: high when each sample is confidently one
digit and all ten digits appear) and the mean top-class confidence ``mean_n max_k p_n[k]``.

A classifier fitted on digits alone extrapolates: it labelled smooth random blobs (an untrained
generator's output) confidently as a few classes, so pure noise scored ~2.9. The scorer therefore
has an eleventh class, "not a digit", fitted on smooth random blobs at several scales and contrasts
(outlier exposure); its probability is spread uniformly over the ten digits before the score is
computed (a sample judged not-a-digit counts as a uniform guess), so noise scores ≈ 1.

**Digits FD** (a Fréchet distance computed like FID, in this classifier's feature space): the
features of an image are the classifier's 11 logits (``decision_function``: ten digits and "not a
digit"; for a linear classifier the layer before the softmax, and better suited to a Gaussian fit than
saturated probabilities). ``FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)`` between the generated
samples' features and those of the held-out digits (the reference statistics). ``real_fd`` (the
GAN's training half, which the scorer never saw) and ``noise_fd`` (held-out blobs) give the two ends
of the scale. Lower is better; unlike the score it also sees the class balance and the spread of
each class (a generator that makes one perfect "3" per class scores well but has a large FD).

Neither number can tell a copy of a training digit from a new one (a copy *is* a real digit): a
generator that returns its training set scores exactly ``real_score`` / ``real_fd``, no better.
``memorization.py`` checks for copies.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data import digits_8x8, digits_split, digits_to_images


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


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``, FID's formula. ``tr (Σ₁Σ₂)^½`` is computed as
    ``Σ √λᵢ`` over the eigenvalues of the symmetric positive semi-definite ``Σ₁^½ Σ₂ Σ₁^½`` (same
    eigenvalues as ``Σ₁Σ₂``), in float64 with numpy's ``eigh`` (no complex round-off, unlike ``sqrtm``)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ₁^½
    m = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def feature_stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``N − 1``) of features ``[N, D]``."""
    f = np.asarray(f, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


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
    """Logistic regression fitted on the **held-out** half of the digits (``digits_split``; after the
    same 8 → ``size`` → 8 round trip the generated samples go through) plus the "not a digit" class
    (see the module docstring); the FD reference statistics are the held-out half's features. The
    GAN's training half, which the scorer never sees, gives the real digits' values (``real_score``,
    ``real_confidence``, ``real_fd``: what a generator that copies its training set gets) and the
    accuracy; held-out blobs give ``noise_score`` and ``noise_fd``. Nothing depends on the run's seed:
    every run is judged by the same scorer."""

    def __init__(self, size: int = 32, n_outliers: int = 1500, seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        with _blas_threads():
            x8, y = digits_8x8()
            x = to_8x8(digits_to_images(x8, size))
            train, held_out = digits_split()
            neg = to_8x8(non_digits(2 * n_outliers, size, seed))
            self.clf = LogisticRegression(max_iter=3000, C=10.0)
            xh, yh = x[held_out], y[held_out]
            self.clf.fit(np.concatenate([xh, neg[:n_outliers]]) / 16.0, np.concatenate([yh, np.full(n_outliers, 10)]))
            self.n_fit, self.n_unseen = len(held_out), len(train)
            self.test_accuracy = float(self.clf.score(x[train] / 16.0, y[train]))
            self.ref_stats = feature_stats(self.features(xh))
            self.real_score, self.real_confidence = digits_score(self.proba(x[train]))
            self.real_fd = self.fd_of(self.features(x[train]))
            self.noise_score, self.noise_confidence = digits_score(self.proba(neg[n_outliers:]))
            self.noise_fd = self.fd_of(self.features(neg[n_outliers:]))

    def features(self, x8: np.ndarray) -> np.ndarray:
        """``[N, 11]`` classifier logits of 8×8 images (0..16): the digits-FD feature space."""
        return self.clf.decision_function(x8 / 16.0)

    def fd_of(self, feats: np.ndarray) -> float:
        return frechet_distance(*feature_stats(feats), *self.ref_stats)

    def fd(self, images: torch.Tensor) -> float:
        """Digits FD of ``[N, C, H, W]`` images in [−1, 1] against the held-out digits (lower is better)."""
        with _blas_threads():
            return self.fd_of(self.features(to_8x8(images)))

    def evaluate(self, images: torch.Tensor) -> tuple[float, float, float]:
        """``(score, confidence, fd)`` of ``[N, C, H, W]`` images in [−1, 1]."""
        with _blas_threads():
            x8 = to_8x8(images)
            return (*digits_score(self.proba(x8)), self.fd_of(self.features(x8)))

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
