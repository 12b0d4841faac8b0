"""What the op layer and every backend's kernels agree on (no registration, no public API here):
the accumulation-dtype rule, the reduction codes, the augment flag bits and the poison-aware
output allocation used by the Python-launched (Triton) kernels.

Accumulation rule (docs/semantics.md#notation-and-contracts-shared-by-every-op "All reductions accumulate in float32 (float64 for float64 inputs)",
made exact for mixed lists): the accumulation dtype of a reduction over a list of tensors is
float64 if *any* tensor of the list (all operands, for ``dot``) is float64, else float32. Every
element is converted to that dtype before it is scaled, multiplied or squared; the partial sums and
the result are in that dtype. The reference, the C++ kernels and the Triton kernels all follow it.
"""

from __future__ import annotations

import torch

# reduction codes of the fused reductions (``sqnorm``): per-sample [B]; Σ_b; mean_b; Σ of
# everything (tensors may differ in batch size: parameter gradients)
RED_NONE, RED_SUM, RED_MEAN, RED_TOTAL = 0, 1, 2, 3
REDUCTION_CODES = {"none": RED_NONE, "sum": RED_SUM, "mean": RED_MEAN}

# bias_act activation codes
ACT_CODES = {"linear": 0, "relu": 1, "lrelu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6, "softplus": 7, "swish": 8}
PIECEWISE_LINEAR = (0, 1, 2)  # f^(k) = 0 for k >= 2; f' from the sign of the output
MAX_ACT_ORDER = 8  # bias_act_grad orders 1..8

# DiffAugment flag bits
BRIGHTNESS, SATURATION, CONTRAST, TRANSLATION, CUTOUT = 1, 2, 4, 8, 16

_poison = [False]


def acc_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """Accumulation (and result) dtype of a reduction over tensors of ``dtypes``: float64 if any
    is float64, else float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def list_acc_dtype(*lists) -> torch.dtype:
    """:func:`acc_dtype` over every tensor of the given lists."""
    return acc_dtype(*(t.dtype for xs in lists for t in xs))


def set_poison(flag: bool) -> None:
    """Tests: Python-launched kernels' outputs start as NaN (catches unwritten elements)."""
    _poison[0] = bool(flag)


def poison_enabled() -> bool:
    return _poison[0]


def empty(shape, dtype: torch.dtype, device, like: torch.Tensor | None = None) -> torch.Tensor:
    """Output allocation for Python-launched kernels (NaN-filled while poisoning is on). With
    ``like``: ``torch.empty_like(like)`` strides (dense layouts such as channels_last are kept)."""
    out = torch.empty_like(like, dtype=dtype) if like is not None else torch.empty(shape, dtype=dtype, device=device)
    if _poison[0] and out.is_floating_point():
        out.fill_(float("nan"))
    return out
