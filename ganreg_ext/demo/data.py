"""Training data for the demo: scikit-learn's bundled digits (no download) or a folder of images.

The digits are split once, the same way for every run: ``digits_split`` holds out half of each
class (``HELD_OUT``, drawn with the fixed ``SPLIT_SEED``, not the run's ``--seed``). The GAN trains
on the other half only; the digits scorer, the FD reference statistics and the memorization check
use the held-out half (docs/demo/README.md, "The two quality numbers")."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def digits_8x8() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8×8 digits of ``sklearn.datasets.load_digits`` (values 0..16) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32), d.target


def digits_to_images(x8: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``[N, 8, 8]`` in 0..16 → ``[N, 1, size, size]`` in [−1, 1] (bilinear resize)."""
    x = torch.as_tensor(x8, dtype=torch.float32).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) if size != 8 else x
    return (x / 8.0 - 1.0).clamp(-1, 1)


SPLIT_SEED = 0  # fixed: every run, whatever its --seed, trains and is judged on the same split
HELD_OUT = 0.5  # fraction of each class held out from GAN training


def digits_split(held_out: float = HELD_OUT, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)``: sorted, disjoint index arrays covering the 1,797 digits. Per class,
    ``round(held_out · n_class)`` indices drawn by ``numpy.random.default_rng(seed)`` (PCG64: the same
    split on every platform and numpy version) are held out; the rest are the GAN's training set."""
    labels = digits_8x8()[1]
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(held_out * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits_images(size: int = 32, split: str = "all") -> torch.Tensor:
    """The digits as ``[N, 1, size, size]`` in [−1, 1]: ``split`` "all", "train" (the GAN's half of
    ``digits_split``) or "held_out"."""
    x8 = digits_8x8()[0]
    if split != "all":
        train, held_out = digits_split()
        x8 = x8[{"train": train, "held_out": held_out}[split]]
    return digits_to_images(x8, size)


def load_training_images(data: str, size: int) -> torch.Tensor:
    """What the GAN trains on: the digits' training split for "digits", else every image of the folder."""
    return load_digits_images(size, "train") if data == "digits" else load_folder(data, size)


def load_folder(path: str, size: int) -> torch.Tensor:
    """Every image under ``path`` (recursively), centre-cropped to a square, resized to ``size``
    (bilinear), in [−1, 1]. One channel when every image is greyscale, else RGB."""
    from PIL import Image

    files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names if f.lower().endswith(IMAGE_EXTS))
    if not files:
        raise SystemExit(f"--data {path}: no images ({', '.join(IMAGE_EXTS)}) found")
    imgs = [Image.open(f) for f in files]
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in imgs)
    out = []
    for im in imgs:
        im = im.convert("L" if grey else "RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
        out.append(a[None] if grey else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))
