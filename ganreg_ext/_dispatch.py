"""The one place that picks a backend (SPEC §1).

Backends plug in by registering raw kernels for an op name with :func:`register_kernel`;
the registered ``torch.library`` ops in :mod:`ganreg_ext.ops` look the kernel up here by the
concrete backend name that the public function resolved. The ``reference`` backend is the
eager PyTorch code in :mod:`ganreg_ext.reference`, called directly by the public functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import warnings
from collections.abc import Callable

import torch

BACKENDS = ("reference", "cpu", "triton", "cuda")
_CHOICES = BACKENDS + ("auto",)


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says why and how to fix it."""


class BackendWarning(UserWarning):
    """``auto`` fell back to the reference backend because a fused kernel is not available."""


_KERNELS: dict[str, dict[str, Callable]] = {}
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("ganreg_backend", default=None)
_status: dict[str, tuple[bool, str]] = {}
_warned: set[tuple[str, str]] = set()
_poison = [False]

_BUILD_HINT = (
    "build the extension with `CUDA_HOME=/usr/local/cuda-13.0 pip install --no-build-isolation -e .` (or run `make build`)"
)


def register_kernel(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as ``backend``'s kernel for the op ``op``."""
    if backend not in BACKENDS[1:]:
        raise ValueError(f"register_kernel: backend must be one of {BACKENDS[1:]}, got {backend!r}")

    def deco(fn: Callable) -> Callable:
        _KERNELS.setdefault(op, {})[backend] = fn
        return fn

    return deco


@torch.compiler.assume_constant_result  # may be first called while torch.compile traces an op
def _probe(name: str) -> tuple[bool, str]:
    """Load a backend's kernels once; return (available, reason)."""
    if name in _status:
        return _status[name]
    ok, why = True, "available"
    try:
        if name == "reference":
            pass
        elif name in ("cpu", "cuda"):
            importlib.import_module("ganreg_ext.ops.native")
            from .ops.native import CPU_UNUSABLE, NATIVE_DEVICES

            if name == "cpu" and CPU_UNUSABLE:
                ok, why = False, CPU_UNUSABLE
            elif name not in NATIVE_DEVICES:
                ok, why = False, "ganreg_ext._C was built without CUDA (nvcc not found at build time); " + _BUILD_HINT
            elif name == "cuda" and not torch.cuda.is_available():
                ok, why = False, "no CUDA device is visible to torch (torch.cuda.is_available() is False)"
        elif name == "triton":
            importlib.import_module("triton")
            if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
                ok, why = False, "Triton needs a CUDA device; on CPU tensors set TRITON_INTERPRET=1 (tests only)"
            else:
                importlib.import_module("triton_kernels")
    except ImportError as e:
        hint = "" if "pip install" in str(e) else "; " + ("pip install triton" if name == "triton" else _BUILD_HINT)
        ok, why = False, f"{name} backend failed to import ({e}){hint}"
    _status[name] = (ok, why)
    return ok, why


def available_backends() -> list[str]:
    """Names of the backends that work in this process, in SPEC order."""
    return [b for b in BACKENDS if _probe(b)[0]]


def backend_info() -> dict:
    """Versions, build flags, compiled ops, and why any backend is missing."""
    info: dict = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "default_backend": get_backend(),
        "backends": {},
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    for b in BACKENDS:
        ok, why = _probe(b)
        ops = sorted(op for op, impls in _KERNELS.items() if b in impls) if b != "reference" else ["all"]
        info["backends"][b] = {"available": ok, "reason": why, "ops": ops if ok else []}
    if _probe("cpu")[0] or _status.get("cpu", (False, ""))[1].startswith("ganreg_ext._C was built"):
        from .ops.native import build_info

        info["build"] = build_info()
    return info


def get_backend() -> str:
    """The default backend: ``use_backend`` / ``set_backend``, else env ``GANREG_BACKEND``, else ``auto``."""
    name = _current.get() or os.environ.get("GANREG_BACKEND") or "auto"
    return _check_name(name, "GANREG_BACKEND" if _current.get() is None else "backend")


def set_backend(name: str) -> None:
    """Set the default backend for this thread/context (``"auto"`` restores automatic choice)."""
    _current.set(_check_name(name, "name"))


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: ops called inside use ``name`` unless they pass ``backend=`` themselves."""
    token = _current.set(_check_name(name, "name"))
    try:
        yield
    finally:
        _current.reset(token)


def _check_name(name, arg: str) -> str:
    if not isinstance(name, str) or name not in _CHOICES:
        raise ValueError(f"{arg} must be one of {list(_CHOICES)}, got {name!r}")
    return name


def _device_ok(backend: str, device: torch.device) -> tuple[bool, str]:
    if backend == "cpu" and device.type != "cpu":
        return False, f"the cpu backend runs on CPU tensors only, got a {device.type} tensor"
    if backend == "cuda" and device.type != "cuda":
        return False, f"the cuda backend runs on CUDA tensors only, got a {device.type} tensor"
    if backend == "triton" and device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return False, "the triton backend runs CPU tensors only under TRITON_INTERPRET=1"
    return True, ""


def resolve(ops: str | tuple[str, ...], backend: str | None, device: torch.device) -> str:
    """Concrete backend for ``ops`` (an op and the ops its backward calls) on ``device``:
    explicit names are checked, ``auto`` is chosen.

    Raises :class:`BackendUnavailable` when an explicitly requested backend cannot run ``op``
    here; warns :class:`BackendWarning` (once per op and reason) when ``auto`` falls back to
    the reference.
    """
    ops = (ops,) if isinstance(ops, str) else ops
    op = ops[0]
    name = _check_name(backend, "backend") if backend is not None else get_backend()
    if name == "reference":
        return name
    if name != "auto":
        ok, why = _probe(name)
        if not ok:
            raise BackendUnavailable(f"{op}: backend {name!r} is unavailable: {why}")
        ok, why = _device_ok(name, device)
        if not ok:
            raise BackendUnavailable(f"{op}: {why}")
        missing = [o for o in ops if name not in _KERNELS.get(o, {})]
        if missing:
            raise BackendUnavailable(f"{op}: backend {name!r} has no kernel for {', '.join(missing)}")
        return name
    prefs = ("cuda", "triton") if device.type == "cuda" else ("cpu",) if device.type == "cpu" else ()
    reasons = []
    for cand in prefs:
        ok, why = _probe(cand)
        missing = [o for o in ops if cand not in _KERNELS.get(o, {})]
        if ok and missing:
            ok, why = False, f"backend {cand!r} has no kernel for {', '.join(missing)}"
        if ok:
            return cand
        reasons.append(f"{cand}: {why}")
    if (op, device.type) not in _warned:
        _warned.add((op, device.type))
        why = "; ".join(reasons) or f"no fused backend for {device.type} tensors"
        warnings.warn(f"{op}: using the reference backend ({why})", BackendWarning, stacklevel=3)
    return "reference"


def kernel(op: str, backend: str) -> Callable:
    """The raw kernel of ``backend`` for ``op`` (after :func:`resolve`)."""
    _probe(backend)
    try:
        return _KERNELS[op][backend]
    except KeyError:
        raise BackendUnavailable(f"{op}: backend {backend!r} has no kernel for this op") from None


def set_poison(flag: bool) -> None:
    """Tests: make every fused kernel's output start as NaN (catches unwritten elements)."""
    _poison[0] = bool(flag)
    if _probe("cpu")[0] or _status.get("cuda", (False, ""))[0]:
        from .ops.native import set_native_poison

        set_native_poison(flag)


def empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Output allocation for Python-launched kernels; NaN-filled when poisoning is on."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison[0] and out.is_floating_point():
        out.fill_(float("nan"))
    return out


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation/output dtype of reductions: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
