"""Argument validation shared by every op (docs/semantics.md#notation-and-contracts-shared-by-every-op): each message names the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from ._contract import REDUCTION_CODES

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
REDUCTIONS = ("mean", "sum", "none")


def tensor(x, name: str, *, min_dim: int = 1, dims: Sequence[int] | None = None) -> torch.Tensor:
    """A floating tensor with a non-empty batch dimension and an allowed rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if dims is not None and x.dim() not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} dimensions, got shape {tuple(x.shape)}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s) [B, ...], got shape {tuple(x.shape)}")
    if min_dim >= 1 and x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {tuple(x.shape)})")
    return x


def tensor_list(grads, name: str, *, same_batch: bool = True) -> list[torch.Tensor]:
    """A tensor or a non-empty sequence of tensors on one device; with ``same_batch`` each is
    ``[B, ...]`` with one ``B``, otherwise any shape (parameter gradients)."""
    seq = [grads] if isinstance(grads, torch.Tensor) else grads
    if not isinstance(seq, (list, tuple)) or len(seq) == 0:
        raise TypeError(f"{name} must be a tensor or a non-empty list/tuple of tensors, got {type(grads).__name__}")
    min_dim = 1 if same_batch else 0
    out = [tensor(g, f"{name}[{i}]" if len(seq) > 1 else name, min_dim=min_dim) for i, g in enumerate(seq)]
    same_device(name, *out)
    if same_batch:
        sizes = {g.shape[0] for g in out}
        if len(sizes) > 1:
            raise ValueError(f"{name}: every tensor must have the same batch size, got {[g.shape[0] for g in out]}")
    return out


def same_device(name: str, *xs: torch.Tensor) -> torch.device:
    devices = {x.device for x in xs if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"{name}: all tensors must be on one device, got {sorted(map(str, devices))}")
    return xs[0].device


def same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    same_device(f"{name_a}/{name_b}", a, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")


def batch_match(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    same_device(f"{name_a}/{name_b}", a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_b} must have the batch size of {name_a} ({a.shape[0]}), got {b.shape[0]}")


def nonneg(value, name: str) -> float:
    if isinstance(value, torch.Tensor):
        value = float(value)  # host-side settings (module construction), not a training-step argument
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def coefficient(value, name: str, like: torch.Tensor):
    """A weight such as ``gamma``: a number >= 0 (returned as float), or a 0-d float tensor on the
    CPU or on ``like``'s device, returned as it is: a tensor is never read on the host (no
    synchronisation in a training step), so its sign is the caller's responsibility."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be a number or a 0-d float tensor, got {value.dtype} of shape {tuple(value.shape)}")
        if value.device.type != "cpu" and value.device != like.device:
            raise ValueError(f"{name} must be on the CPU or on {like.device}, got {value.device}")
        return value
    return nonneg(value, name)


def split_coefficient(value) -> tuple[float, torch.Tensor | None]:
    """``(number, tensor)`` of a :func:`coefficient`: a float goes into the kernel's ``weight``
    argument, a tensor multiplies the result (one tiny op, no host read)."""
    return (1.0, value) if isinstance(value, torch.Tensor) else (value, None)


def running_mean(value, name: str, like: torch.Tensor, like_name: str):
    """A number or a 0-d float tensor on the device of ``like`` (e.g. ``pl_mean``)."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be a number or a 0-d float tensor, got {value.dtype} of shape {tuple(value.shape)}")
        same_device(f"{name}/{like_name}", value, like)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a 0-d float tensor, got {type(value).__name__}")
    return value


def unit_interval(value, name: str) -> float:
    value = nonneg(value, name)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def reduction(value: str) -> int:
    """The kernels' reduction code of ``"mean"``, ``"sum"`` or ``"none"``."""
    if value not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {value!r}")
    return REDUCTION_CODES[value]


def inv_scale(value, like: torch.Tensor) -> torch.Tensor | None:
    """The AMP unscale factor for the kernels: ``None`` (no scaling) for ``None`` or 1; a positive
    number → a 0-d float64 CPU tensor (read by value at launch); a 0-d float tensor on the CPU or on
    ``like``'s device as it is (a device tensor is read inside the kernel: no host synchronisation;
    like every tensor coefficient it is not read on the host to check its sign)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return coefficient(value, "inv_scale", like)
    value = nonneg(value, "inv_scale")
    if value == 0:
        raise ValueError("inv_scale must be > 0 (1 / GradScaler.get_scale())")
    return None if value == 1.0 else torch.tensor(value, dtype=torch.float64)


def seed(value) -> int:
    """``None`` draws a 63-bit seed from torch's default CPU generator (``torch.manual_seed`` repeats runs)."""
    if value is None:
        return int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64).item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"seed must be an int or None, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {value}")
    return value


def images(x, name: str) -> torch.Tensor:
    """An NCHW image batch."""
    return tensor(x, name, dims=(4,))


def number(value, name: str, *, finite: bool = True) -> float:
    """A real number (Python, NumPy or a 0-d tensor read on the host: these are layer settings)."""
    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype.is_floating_point:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def clamp_value(clamp, name: str = "clamp") -> float:
    """``None`` → ``-1`` (the ops' "no clamp"); else a number ``>= 0``."""
    if clamp is None:
        return -1.0
    value = number(clamp, name, finite=False)
    if not value >= 0:
        raise ValueError(f"{name} must be None or >= 0, got {value}")
    return value


def bias(b, x: Tensor, dim: int, name: str = "b") -> Tensor | None:
    """``None`` or a 1-D tensor of ``x``'s dtype and device with ``x.shape[dim]`` elements."""
    if b is None:
        return None
    if not isinstance(b, Tensor):
        raise TypeError(f"{name} must be None or a torch.Tensor, got {type(b).__name__}")
    if b.dim() != 1 or b.shape[0] != x.shape[dim]:
        raise ValueError(f"{name} must be a 1-D tensor of x.shape[{dim}] = {x.shape[dim]} elements, got shape {tuple(b.shape)}")
    if b.dtype != x.dtype:
        raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {b.dtype} (use b.to(x.dtype))")
    same_device(f"x/{name}", x, b)
    return b
