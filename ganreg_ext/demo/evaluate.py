"""What a demo run measures at each evaluation and reports at its end: the digits score and FD
(``score.DigitsScorer``, against the held-out digits) and the memorization check
(``memorization.MemorizationCheck``) of G_ema's samples, the rows of ``scores.csv`` and ``scores.txt``."""

from __future__ import annotations

import numpy as np
import torch

from .data import load_digits_images

SCORE_FIELDS = [
    "step",
    "score",
    "confidence",
    "fd",
    "nn_gen",
    "near_copies",
    "real_score",
    "real_confidence",
    "real_fd",
    "nn_real",
]


class Evaluator:
    """Scores ``n`` G_ema samples per evaluation; ``None`` fields for data without a scorer (a folder
    of images: nothing is held out, so neither the score nor the memorization check applies)."""

    def __init__(self, data: str, size: int):
        self.scorer = self.memo = None
        if data == "digits":
            from .memorization import MemorizationCheck
            from .score import DigitsScorer

            self.scorer = DigitsScorer(size)
            self.memo = MemorizationCheck(load_digits_images(size, "train"), load_digits_images(size, "held_out"))

    @property
    def active(self) -> bool:
        return self.scorer is not None

    def describe(self) -> str:
        """One console line: what the scorer is and the two ends of its scale."""
        sc = self.scorer
        return (
            f"digits scorer (fitted on the {sc.n_fit} held-out digits; the GAN trains on the other {sc.n_unseen}): "
            f"accuracy {sc.test_accuracy:.3f} on the GAN's training digits, which score {sc.real_score:.2f}, "
            f"FD {sc.real_fd:.2f}; random blobs score {sc.noise_score:.2f}, FD {sc.noise_fd:.0f}; "
            f"held-out digits' nearest training digit: median RMS distance {self.memo.nn_real:.3f}"
        )

    def __call__(self, samples: torch.Tensor) -> dict:
        """The scores.csv fields (but ``step``) of ``samples`` ``[N, C, H, W]`` in [−1, 1]."""
        sc = self.scorer
        s, conf, fd = sc.evaluate(samples)
        m = self.memo(samples)
        return dict(
            score=s,
            confidence=conf,
            fd=fd,
            nn_gen=m["nn_gen"],
            near_copies=m["near_copies"],
            real_score=sc.real_score,
            real_confidence=sc.real_confidence,
            real_fd=sc.real_fd,
            nn_real=m["nn_real"],
        )

    def summary(self, scores: dict) -> str | None:
        """``scores.txt``: first and last evaluation of ``scores`` (``report.read_csv`` of
        scores.csv, resumed runs included), the real digits' and the blobs' values, the memorization
        check of the last evaluation."""
        if not self.active or not len(scores.get("step", [])) or not np.isfinite(scores["score"]).any():
            return None
        from .memorization import FLAG_NEAR_COPIES, QUANTILE

        sc = self.scorer
        ok = np.flatnonzero(np.isfinite(scores["score"]))
        first, last = ({k: scores[k][i] for k in scores} for i in (ok[0], ok[-1]))
        ratio = last["nn_gen"] / last["nn_real"]
        verdict = "MEMORIZING" if last["near_copies"] > FLAG_NEAR_COPIES else "no sign of copying"
        return (
            "digits score: exp(H(mean p) - mean H(p)), 1..10, higher is better (mean top-class confidence in brackets);\n"
            f"digits FD: Frechet distance to the {sc.n_fit} held-out digits (never trained on) in the logit space of a\n"
            f"classifier fitted on them, lower is better\n"
            f"step {int(first['step']):>6}: score {first['score']:5.2f} ({first['confidence']:.3f})  FD {first['fd']:8.2f}\n"
            f"step {int(last['step']):>6}: score {last['score']:5.2f} ({last['confidence']:.3f})  FD {last['fd']:8.2f}\n"
            f"real digits, the GAN's {sc.n_unseen} training digits (unseen by the scorer; a generator that copies its "
            f"training set scores this): score {sc.real_score:5.2f} ({sc.real_confidence:.3f})  FD {sc.real_fd:8.2f}\n"
            f"random blobs (held out): score {sc.noise_score:5.2f} ({sc.noise_confidence:.3f})  FD {sc.noise_fd:8.2f}\n"
            f"memorization check, step {int(last['step'])}: median RMS distance to the nearest training digit: samples "
            f"{last['nn_gen']:.3f}, held-out digits {last['nn_real']:.3f} (ratio {ratio:.2f}); samples nearer than "
            f"{QUANTILE:.0%} of held-out digits: {last['near_copies']:.1%} -> {verdict}\n"
        )
