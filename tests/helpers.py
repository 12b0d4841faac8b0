"""Input makers and tolerances shared by the backend tests."""

from __future__ import annotations

import torch

import ganreg_ext as gx

FUSED_BACKENDS = [b for b in gx.available_backends() if b != "reference"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# (rtol, atol) for comparing a fused backend with the reference on the same inputs
TOL = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (2e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}
LAYOUTS = ["contiguous", "channels_last", "strided"]


def backend_device(backend: str) -> str:
    """The device a backend's tests run on here."""
    if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def make(shape, dtype=torch.float32, device="cpu", layout="contiguous", scale=1.0) -> torch.Tensor:
    """Random normal tensor of ``shape`` in the given memory layout (never zeros)."""
    if layout == "channels_last" and len(shape) == 4:
        return (torch.randn(shape, device=device) * scale).to(dtype).contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        big = (torch.randn(*shape[:-1], 2 * shape[-1] + 1, device=device) * scale).to(dtype)
        return big[..., 1::2]  # non-contiguous innermost stride 2
    return (torch.randn(shape, device=device) * scale).to(dtype)


def assert_close(actual, expected, dtype, factor: float = 1.0, msg: str = ""):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol * factor, atol=atol * factor, msg=msg or None, equal_nan=True)


def assert_sum_close(actual, expected, abs_sum, rtol: float, atol: float, ulps: float = 64.0, eps=None):
    """Signed sums (dot products) of the same terms added in another order. The rounding error
    scales with ``abs_sum`` = Σ|terms|, not with the result, which can cancel to near zero:
    allowed |actual − expected| ≤ atol + rtol·|expected| + ulps·eps·Σ|terms| (eps of the
    accumulation dtype unless given). One term of a typical size missing still fails (|term| ≫ ulps·eps·Σ|terms|
    for the sizes tested)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (actual, expected)
    abs_sum = torch.as_tensor(abs_sum, dtype=torch.float64, device=actual.device)
    a, e = actual.double(), expected.double()
    eps = torch.finfo(actual.dtype).eps if eps is None else eps
    bound = atol + rtol * e.abs() + ulps * eps * abs_sum
    err = (a - e).abs()
    assert bool((err <= bound).all()), f"sum mismatch: got {actual}, expected {expected}, |err| {err} > bound {bound}"
