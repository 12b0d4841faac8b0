"""Check against the reference before timing: what every entry point compares, and how.

- :func:`fused_backends`: the fused backends that run natively on a device (never the Triton
  interpreter on CPU), i.e. what is checked and timed there;
- :func:`outputs`: output, input gradients and (where the case has one) double-backward gradients of
  one implementation, detached: what ``op_check``, the sweep and the pytest suite compare;
- :func:`max_err`: those lists against the reference's (``torch.testing.assert_close`` per tensor,
  the worst absolute error, a one-line message);
- :func:`rel_err` / :func:`worst_rel`: ``max|got − want| / max|want|`` per parameter gradient and the
  worst parameter (the end-to-end steps and the real clients);
- :func:`errmsg`: an exception as one short line for a ``status`` column.
"""

from __future__ import annotations

import math

import torch


def fused_backends(device: torch.device) -> list[str]:
    """Fused backends that run natively on ``device`` (never the Triton interpreter on CPU)."""
    import ganreg_ext as gx

    avail = gx.available_backends()
    want = ("cpu",) if device.type == "cpu" else ("cuda", "triton")
    return [b for b in want if b in avail]


def errmsg(e: Exception, limit: int = 300) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:limit]


def grad(out, leaves, grad_out):
    return torch.autograd.grad(out, leaves, grad_out, allow_unused=True)


def outputs(case, inp, call, dbl: bool = True) -> list:
    """Output, input gradients and (``dbl`` and where the case has one) double-backward gradients of
    ``call(inp)``, detached (None where an input is unused)."""
    out = call(inp)
    res = [out] + list(grad(out, inp.leaves, inp.grad_out))
    if dbl and case.dbl:
        res += list(grad(case.dbl(inp, call), inp.leaves, None))
    return [r if r is None else r.detach() for r in res]


def max_err(got, want, rtol: float, atol: float) -> tuple[bool, float, str]:
    """Compare output + gradients; (ok, max abs error, message)."""
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, want)):
        name = "output" if i == 0 else f"grad[{i - 1}]"
        if (a is None) != (b is None):
            return False, math.inf, f"{name}: one of the results is None"
        if a is None:
            continue
        if a.shape != b.shape:
            return False, math.inf, f"{name}: shape {tuple(a.shape)} != {tuple(b.shape)}"
        a64, b64 = a.detach().double(), b.detach().double()
        err = (a64 - b64).abs().max().item() if a.numel() else 0.0
        worst = max(worst, err if math.isfinite(err) else math.inf)
        try:
            torch.testing.assert_close(a64, b64, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as e:
            return False, worst, f"{name}: " + str(e).splitlines()[0] + " | " + " ".join(str(e).split())[:200]
    return True, worst, ""


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """``max|got − want| / max|want|`` (0 when both are 0)."""
    got, want = got.double(), want.double()
    scale = want.abs().max().item()
    diff = (got - want).abs().max().item()
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def worst_rel(got: dict, want: dict) -> tuple[float, str]:
    """Worst over parameters of :func:`rel_err` → (error, parameter name); a parameter without a
    gradient in one of the two counts as zeros there (whether autograd links a parameter the loss does
    not depend on, e.g. toRGB biases under the path length, differs between implementations)."""
    worst, name = -1.0, ""
    for n in list(want) + [n for n in got if n not in want]:
        a, b = got.get(n), want.get(n)
        e = rel_err(torch.zeros_like(b) if a is None else a, torch.zeros_like(a) if b is None else b)
        if e > worst:
            worst, name = e, n
    return max(worst, 0.0), name
