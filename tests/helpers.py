"""What the tests share: the backends and the device each one runs on, which kernels a backend has
and its poison-aware allocator (the ONLY place in the tests that knows the op layer's internals),
input makers and tolerances."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import ganreg_ext as gx

# ---------------------------------------------------------------- ops and backends

# the native ops (torch.ops.ganreg_C.<op>) and Triton launchers (ganreg_ext.triton_kernels.<family>.<op>)
FAMILIES = {
    "gradnorm": ("sqnorm", "scale", "dot"),
    "noise": ("noise_dot", "noise_axpy"),
    "consistency": ("sq_diff_sum", "diff_scale"),
    "augment": ("diff_augment", "diff_augment_adj", "cr_augment", "cr_augment_adj"),
    "ada": ("ada_augment", "ada_augment_adj"),
}
GN, NOISE, CONS = FAMILIES["gradnorm"], FAMILIES["noise"], FAMILIES["consistency"]
DA, CR = FAMILIES["augment"][:2], FAMILIES["augment"][2:]
ALL_OPS = tuple(op for ops in FAMILIES.values() for op in ops)
FAMILY_OF = {op: fam for fam, ops in FAMILIES.items() for op in ops}


def _load_cuda_emu() -> str | None:
    """Register the test backend ``cuda_emu``: csrc/cuda's kernels compiled for the CPU under the CUDA
    execution model (csrc/emu; `make test` builds build/emu/ganreg_emu.so). Returns why it is not
    loaded, or None. Under GANREG_REQUIRE_EMU=1 (make test) a missing or stale build is an error."""
    if os.environ.get("GANREG_NO_EMU") == "1":
        return "disabled by GANREG_NO_EMU=1"
    path = Path(__file__).resolve().parents[1] / "csrc" / "emu" / "build.py"
    spec = importlib.util.spec_from_file_location("ganreg_emu_build", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mod.load()
    except (RuntimeError, OSError) as e:
        if os.environ.get("GANREG_REQUIRE_EMU") == "1":
            raise
        return str(e)
    from ganreg_ext import _dispatch
    from ganreg_ext.ops import FAMILIES

    for fam in FAMILIES.values():  # the fake kernels of ganreg_C's ops (torch.compile, opcheck)
        for name, fake in fam.FAKES.items():
            if hasattr(getattr(torch.ops, mod.NAMESPACE), name):
                torch.library.register_fake(f"{mod.NAMESPACE}::{name}")(fake)
    _dispatch.register_test_backend("cuda_emu", mod.NAMESPACE)
    return None


EMU_UNAVAILABLE = _load_cuda_emu()
TEST_BACKENDS = [] if EMU_UNAVAILABLE else ["cuda_emu"]  # run only by the tests, on CPU tensors
# backends whose adjoints scatter with atomic adds (last bits vary run to run: gradcheck's nondet_tol)
ATOMIC_ADJOINT = {"cuda", "cuda_emu"} | ({"triton"} if torch.cuda.is_available() else set())
AVAILABLE = gx.available_backends() + TEST_BACKENDS
FUSED_BACKENDS = [b for b in AVAILABLE if b != "reference"]
BACKENDS = ["reference"] + FUSED_BACKENDS
# every test parametrized by "backend" takes the ``device`` fixture (conftest enforces it)
fused = pytest.mark.parametrize("backend", FUSED_BACKENDS)
every_backend = pytest.mark.parametrize("backend", BACKENDS)


def backend_device(backend: str) -> str:
    """The device a backend's tests run on here: cuda → cuda; triton → cuda when there is a GPU,
    else cpu (TRITON_INTERPRET=1); cpu and reference → cpu."""
    if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def native_has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether ``torch.ops.ganreg_C.<op>`` has a kernel for ``dispatch_key`` ("CPU"/"CUDA")."""
    importlib.import_module("ganreg_ext._C")
    return gx._dispatch.has_kernel("ganreg_C", op, dispatch_key)


def native_with_cuda() -> bool:
    """Whether ``ganreg_ext._C`` was compiled with its CUDA kernels."""
    importlib.import_module("ganreg_ext._C")
    return bool(json.loads(torch.ops.ganreg_C.build_info())["with_cuda"])


def triton_has_op(op: str) -> bool:
    """The op ``torch.ops.ganreg_triton.<op>`` and, for SPEC's ops, its launcher
    ``ganreg_ext.triton_kernels.<family>.<op>``."""
    if op in FAMILY_OF:
        try:
            if not callable(getattr(importlib.import_module(f"ganreg_ext.triton_kernels.{FAMILY_OF[op]}"), op, None)):
                return False
        except ImportError:
            return False
    return hasattr(torch.ops.ganreg_triton, op)


def missing_ops(backend: str, ops=ALL_OPS) -> list[str]:
    """The ops of ``ops`` that ``backend`` has no kernel for (the reference has them all)."""
    if backend == "reference":
        return []
    if backend in ("cpu", "cuda"):
        return [op for op in ops if not native_has_kernel(op, backend.upper())]
    if backend in TEST_BACKENDS:
        from ganreg_ext import _dispatch

        return [op for op in ops if not _dispatch.has_op(op, backend)]
    return [op for op in ops if not triton_has_op(op)]


def need(backend: str, *ops: str) -> None:
    """FAIL when ``backend`` is available here but lacks a kernel for one of ``ops``; skip (with the
    reason) only when the backend itself is not available on this machine."""
    if backend not in AVAILABLE:
        pytest.skip(f"backend {backend!r} is unavailable here: {gx.backend_info()['backends'][backend]['reason']}")
    missing = missing_ops(backend, ops)
    if missing:
        pytest.fail(f"backend {backend!r} is available but has no kernel for {missing}", pytrace=False)


_UTILITY_OPS = ("build_info", "set_poison", "parallel_threads", "new_output_like")  # ganreg_C ops that are no kernels


def package_ops() -> tuple[str, ...]:
    """The fused ops the package itself declares (SPEC's and any the op layer added since)."""
    from ganreg_ext import _dispatch

    return tuple(dict.fromkeys(ALL_OPS + tuple(op for ops in getattr(_dispatch, "OPS", {}).values() for op in ops)))


class no_kernels(TorchDispatchMode):
    """Context manager: any fused kernel (a ``ganreg_C``/``ganreg_triton`` op) called inside fails."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace in ("ganreg_C", "ganreg_triton", "ganreg_emu") and func._opname not in _UTILITY_OPS:
            raise AssertionError(f"the kernel {func.name()} ran (bad input must be rejected before any kernel runs)")
        return func(*args, **(kwargs or {}))


def lacks_device_fixture(item) -> bool:
    """A test item parametrized by ``backend`` that does not take the ``device`` fixture (it would
    build CPU tensors for a GPU backend)."""
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "backend" in callspec.params and "device" not in item.fixturenames


def set_poison(flag: bool) -> None:
    """Every fused kernel's output starts as NaN while on (an unwritten element stays NaN)."""
    from ganreg_ext import _dispatch

    _dispatch.set_poison(flag)


def raw_output(backend: str, device, n: int = 64) -> torch.Tensor:
    """A fresh float32 ``[n]`` buffer from ``backend``'s output allocator, written by nobody."""
    if backend == "triton":
        from ganreg_ext._contract import empty

        return empty((n,), torch.float32, device)
    importlib.import_module("ganreg_ext._C")
    probe = getattr(torch.ops.ganreg_emu if backend == "cuda_emu" else torch.ops.ganreg_C, "new_output_like", None)
    if probe is None:
        pytest.fail("ganreg_C has no test hook `new_output_like(Tensor like) -> Tensor` (the native output allocator)")
    return probe(torch.zeros(n, device=device))


# ---------------------------------------------------------------- inputs

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
LAYOUTS = ["contiguous", "channels_last", "strided"]


def acc_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """Accumulation/result dtype of a reduction over tensors of ``dtypes`` (float64 if any is)."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def make(shape, dtype=torch.float32, device="cpu", layout="contiguous", scale=1.0) -> torch.Tensor:
    """Random normal tensor of ``shape`` in the given memory layout (never zeros); channels_last
    falls back to contiguous for shapes that are not 4-d."""
    if layout == "channels_last" and len(shape) == 4:
        return (torch.randn(shape, device=device) * scale).to(dtype).contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        big = (torch.randn(*shape[:-1], 2 * shape[-1] + 1, device=device) * scale).to(dtype)
        return big[..., 1::2]  # non-contiguous innermost stride 2
    return (torch.randn(shape, device=device) * scale).to(dtype)


def leaf(t: torch.Tensor) -> torch.Tensor:
    """A fresh leaf (requires grad) equal to ``t``, with ``t``'s strides (layouts survive)."""
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    out.copy_(t.detach())
    return out.requires_grad_(True)


# ---------------------------------------------------------------- tolerances

# (rtol, atol) of an elementwise result IN this dtype (about 2 units in the last place)
TOL = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (2e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}
NOISE_ATOL = 1e-5  # docs/semantics.md#path-length-regularization-stylegan2: backends agree on the normal stream to 1e-5 absolute


def assert_close(actual, expected, dtype=None, factor: float = 1.0, msg: str = ""):
    """Elementwise outputs (augmentations, gradients): the tolerance of the OUTPUT dtype (``dtype``
    overrides it). Reductions go through :func:`assert_sum_close`."""
    rtol, atol = TOL[dtype or expected.dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol * factor, atol=atol * factor, msg=msg or None, equal_nan=True)


def assert_sum_close(actual, expected, abs_sum, rtol: float = 0.0, atol: float = 0.0, ulps: float = 64.0, eps=None):
    """Sums of the same terms added in another order (the result's dtype is the accumulation dtype:
    float32 sums of float16/bfloat16 inputs are held to float32 bounds). The rounding error scales
    with ``abs_sum`` = Σ|terms| (the result itself for sums of squares), not with the result, which
    can cancel to near zero: allowed |actual − expected| ≤ atol + rtol·|expected| + ulps·eps·Σ|terms|
    (eps of the ACCUMULATION dtype unless given: float32 for a float16/bfloat16 result, which adds
    one final rounding eps(dtype)·|expected|). One term of a typical size missing or counted twice
    fails (test_suite_contract proves it for every backend and dtype)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (actual, expected)
    abs_sum = torch.as_tensor(abs_sum, dtype=torch.float64, device=actual.device)
    a, e = actual.double(), expected.double()
    eps = torch.finfo(acc_dtype(actual.dtype)).eps if eps is None else eps
    bound = atol + rtol * e.abs() + ulps * eps * abs_sum
    if acc_dtype(actual.dtype) != actual.dtype:
        bound = bound + torch.finfo(actual.dtype).eps * e.abs()
    err = (a - e).abs()
    ok = (err <= bound) | ((a == e) & ~torch.isfinite(e))  # the same inf where the sum overflows
    assert bool(ok.all()), f"sum mismatch: got {actual}, expected {expected}, |err| {err} > bound {bound}"


# ---- the one table of error bounds against the float64 reference (issue 22). A fused result in
# ``dtype`` is compared with the reference evaluated in float64 on the same inputs (inputs are exact in
# every dtype). Kernels compute in float32 for float16/bfloat16/float32 (float64 for float64) and
# round once to ``dtype`` at the end, so with e = eps(dtype), a = eps(accumulation dtype):
#     |got − ref64| ≤ ROUND[dtype]·e·|ref64| + ulps·a·(|ref64| + Σ|terms|) + e·tiny(dtype)
# ``Σ|terms|``: what the accumulation-dtype rounding acts on (the |summands| of a sum; for an
# elementwise f(z): |f'(z)|·|z|, the rounding of z carried through f). ``ulps`` per kind of result.
# ``inter``: magnitudes that pass through an INTERMEDIATE rounding to ``dtype`` (composite ops and
# autograd's own ``dtype`` arithmetic between two kernels), allowed one unit e each.
ROUND = {torch.float64: 1.0, torch.float32: 1.0, torch.float16: 1.0, torch.bfloat16: 1.0}  # final rounding, 2× margin
ULPS = {"elementwise": 8.0, "sum": 64.0}  # units of a in the accumulation


def error_bound(ref64, dtype, terms=None, inter=None, kind: str = "elementwise", factor: float = 1.0) -> torch.Tensor:
    """The allowed |got − ref64| elementwise (float64), from the table above."""
    ref = ref64.double().abs()
    e, a = torch.finfo(dtype).eps, torch.finfo(acc_dtype(dtype)).eps
    acc = ref if terms is None else ref + torch.as_tensor(terms, dtype=torch.float64, device=ref.device)
    bound = ROUND[dtype] * e * ref + ULPS[kind] * a * acc + e * torch.finfo(dtype).tiny
    if inter is not None:
        bound = bound + e * torch.as_tensor(inter, dtype=torch.float64, device=ref.device)
    return factor * bound


def assert_ref64(actual, ref64, terms=None, inter=None, kind: str = "elementwise", factor: float = 1.0, msg: str = ""):
    """``actual`` (a fused result in its dtype) within :func:`error_bound` of ``ref64`` (the
    reference in float64 on the same inputs). NaN where the reference has NaN, the same inf where it
    overflows (in ``actual``'s dtype)."""
    assert actual.shape == ref64.shape, (msg, actual.shape, ref64.shape)
    a, r = actual.detach().double(), ref64.detach().double()
    rr = ref64.detach().to(actual.dtype).double()  # the reference as the dtype holds it (inf on overflow)
    bound = error_bound(r, actual.dtype, terms, inter, kind, factor)
    err = (a - r).abs()
    special = ~torch.isfinite(rr)
    ok = torch.where(special, (a == rr) | (torch.isnan(a) & torch.isnan(rr)), err <= bound)
    if not bool(ok.all()):
        i = int((~ok).flatten().nonzero()[0])
        raise AssertionError(
            f"{msg}: {int((~ok).sum())} of {ok.numel()} elements outside the float64 error bound ({actual.dtype}, {kind}); "
            f"first at flat index {i}: got {a.flatten()[i].item()!r}, ref64 {r.flatten()[i].item()!r}, "
            f"|err| {err.flatten()[i].item():.3e} > bound {bound.flatten()[i].item():.3e}"
        )


def raises_before_any_kernel(call, backend: str, device, exc, needle: str) -> None:
    """``call()`` raises ``exc`` naming ``needle`` with ``backend`` as default and no kernel launched."""
    from ganreg_ext import use_backend

    with torch.device(device), use_backend(backend), no_kernels():
        with pytest.raises(exc) as info:
            call()
    assert needle in str(info.value), str(info.value)


# StyleGAN2 bias_act conventions, written independently with torch.nn.functional (the eager oracle of
# test_bias_act and the zoo's original semantics): name → (f(z, alpha), default alpha, default gain)
ANCHOR_ACTS = {
    "linear": (lambda z, a: z, 0.0, 1.0),
    "relu": (lambda z, a: F.relu(z), 0.0, math.sqrt(2)),
    "lrelu": (lambda z, a: F.leaky_relu(z, a), 0.2, math.sqrt(2)),
    "tanh": (lambda z, a: torch.tanh(z), 0.0, 1.0),
    "sigmoid": (lambda z, a: torch.sigmoid(z), 0.0, 1.0),
    "elu": (lambda z, a: F.elu(z), 0.0, 1.0),
    "selu": (lambda z, a: F.selu(z), 0.0, 1.0),
    "softplus": (lambda z, a: F.softplus(z), 0.0, 1.0),
    "swish": (lambda z, a: torch.sigmoid(z) * z, 0.0, math.sqrt(2)),
}
