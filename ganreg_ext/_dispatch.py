"""The one place that picks a backend (docs/semantics.md#backends-and-dispatch).

:func:`fused` answers, for an op name, the requested backend and the device type, which registered
op a public function calls: ``torch.ops.ganreg_C.<op>`` (C++ kernels with C++ autograd; the
dispatcher picks the CPU or CUDA kernel), ``torch.ops.ganreg_triton.<op>`` (Triton), or ``None``
for the eager ``reference`` code. The answer is cached per (op, backend setting, device type).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import warnings
from collections.abc import Callable

import torch

from . import _contract

BACKENDS = ("reference", "cpu", "triton", "cuda")
_CHOICES = BACKENDS + ("auto",)


class BackendUnavailable(RuntimeError):
    """A backend was asked for by name but cannot run here; the message says why and how to fix it."""


class BackendWarning(UserWarning):
    """``auto`` fell back to the reference backend because a fused kernel is not available."""


_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("ganreg_backend", default=None)
_status: dict[str, tuple[bool, str]] = {}

_BUILD_HINT = (
    "build the extension with `CUDA_HOME=/usr/local/cuda-13.0 pip install --no-build-isolation -e .` (or run `make build`)"
)


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
                importlib.import_module("ganreg_ext.ops.triton")
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
        info["backends"][b] = {"available": ok, "reason": why, "ops": (_ops_of(b) if b != "reference" else ["all"]) if ok else []}
    if _probe("cpu")[0] or _status.get("cpu", (False, ""))[1].startswith("ganreg_ext._C was built"):
        from .ops.native import build_info

        info["build"] = build_info()
    from .memory import cpu_cache_stats  # docs/memory.md

    try:
        info["cpu_cache"] = cpu_cache_stats()
    except BackendUnavailable as e:
        info["cpu_cache"] = {"unavailable": str(e)}
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
    if not isinstance(name, str) or (name not in _CHOICES and name not in _TEST_BACKENDS):
        raise ValueError(f"{arg} must be one of {list(_CHOICES)}, got {name!r}")
    return name


def _device_ok(backend: str, device: torch.device) -> tuple[bool, str]:
    if backend == "cpu" and device.type != "cpu":
        return False, f"the cpu backend runs on CPU tensors only, got a {device.type} tensor"
    if backend == "cuda" and device.type != "cuda":
        return False, f"the cuda backend runs on CUDA tensors only, got a {device.type} tensor"
    if backend == "triton" and device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return False, "the triton backend runs CPU tensors only under TRITON_INTERPRET=1"
    if backend in _TEST_BACKENDS and device.type != "cpu":
        return False, f"the test backend {backend} runs on CPU tensors only, got a {device.type} tensor"
    return True, ""


OPS = {
    "gradnorm": ("sqnorm", "scale", "dot", "grad_penalty", "path_length"),
    "noise": ("noise_dot", "noise_axpy"),
    "consistency": ("sq_diff_sum", "diff_scale"),
    "augment": ("diff_augment", "diff_augment_adj", "cr_augment", "cr_augment_adj"),
    "bias_act": ("bias_act", "bias_act_grad"),
    "upfirdn2d": ("upfirdn2d",),
    "ada": ("ada_augment", "ada_augment_adj"),
}
"""Every fused op, by family: each fused backend has all of them (CI checks it)."""

_NAMESPACE = {"cpu": "ganreg_C", "cuda": "ganreg_C", "triton": "ganreg_triton"}
_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA"}
_resolved: dict[tuple[str, str, str], tuple[str, Callable | None]] = {}


def has_kernel(ns: str, op: str, dispatch_key: str) -> bool:
    """Whether the registered op ``ns::op`` exists and has a kernel for ``dispatch_key`` ("CPU",
    "CUDA"): the one probe of the package and its tests (a private dispatcher query, kept here)."""
    return hasattr(getattr(torch.ops, ns), op) and torch._C._dispatch_has_kernel_for_dispatch_key(f"{ns}::{op}", dispatch_key)


def has_op(op: str, backend: str) -> bool:
    """Whether ``backend`` has a kernel for ``op`` (native: for its dispatch key)."""
    if backend in _DISPATCH_KEY:
        return has_kernel(_NAMESPACE[backend], op, _DISPATCH_KEY[backend])
    return hasattr(torch.ops.ganreg_triton, op)


def _ops_of(backend: str) -> list[str]:
    return sorted(op for ops in OPS.values() for op in ops if has_op(op, backend))


def registered(op: str, backend: str) -> Callable:
    """The registered op of a fused backend (``torch.ops.<namespace>.<op>.default``)."""
    return getattr(getattr(torch.ops, _NAMESPACE[backend]), op).default


def fused(op: str, backend: str | None, device: torch.device) -> Callable | None:
    """The registered op a public function calls for ``op`` on ``device`` with ``backend``
    (``None``: the default of :func:`get_backend`), or ``None`` for the eager reference.

    Raises :class:`BackendUnavailable` when an explicitly requested backend cannot run ``op``
    here; warns :class:`BackendWarning` (once per op and device type) when ``auto`` falls back to
    the reference. Cached per (op, backend setting, device type).
    """
    return _lookup(op, backend, device)[1]


def resolve(op: str, backend: str | None, device: torch.device) -> str:
    """The name of the backend :func:`fused` picks (``"reference"`` for the eager code)."""
    return _lookup(op, backend, device)[0]


def _lookup(op: str, backend: str | None, device: torch.device) -> tuple[str, Callable | None]:
    name = backend if backend is not None else get_backend()
    key = (op, name, device.type)
    found = _resolved.get(key)
    if found is None:
        chosen = _choose(op, _check_name(name, "backend"), device)
        found = _resolved[key] = (chosen, None if chosen == "reference" else registered(op, chosen))
    return found


@torch.compiler.assume_constant_result  # may first run while torch.compile traces a public function
def _choose(op: str, name: str, device: torch.device) -> str:
    if name == "reference":
        return name
    if name != "auto":
        ok, why = _probe(name)
        if not ok:
            raise BackendUnavailable(f"{op}: backend {name!r} is unavailable: {why}")
        ok, why = _device_ok(name, device)
        if not ok:
            raise BackendUnavailable(f"{op}: {why}")
        if not has_op(op, name):
            raise BackendUnavailable(f"{op}: backend {name!r} has no kernel for this op")
        return name
    prefs = ("cuda", "triton") if device.type == "cuda" else ("cpu",) if device.type == "cpu" else ()
    reasons = []
    for cand in prefs:
        ok, why = _probe(cand)
        if ok and not has_op(op, cand):
            ok, why = False, f"backend {cand!r} has no kernel for {op}"
        if ok:
            return cand
        reasons.append(f"{cand}: {why}")
    why = "; ".join(reasons) or f"no fused backend for {device.type} tensors"
    warnings.warn(f"{op}: using the reference backend ({why})", BackendWarning, stacklevel=5)
    return "reference"


def set_poison(flag: bool) -> None:
    """Tests: make every fused kernel's output start as NaN (catches unwritten elements)."""
    _contract.set_poison(flag)
    if _probe("cpu")[0] or _status.get("cuda", (False, ""))[0]:
        torch.ops.ganreg_C.set_poison(bool(flag))
    for ns in _TEST_BACKENDS.values():
        getattr(torch.ops, ns).set_poison(bool(flag))


_TEST_BACKENDS: dict[str, str] = {}
"""Backends that exist only in the tests: name → the op namespace of a native module the tests loaded,
whose kernels take CPU tensors (``cuda_emu``: the CUDA kernels' own source run on the CPU, csrc/emu).
Never listed by :func:`available_backends` nor picked by ``auto``."""


def register_test_backend(name: str, namespace: str) -> None:
    """Tests only: ``backend=name`` calls ``torch.ops.<namespace>.<op>`` (same schemas as ganreg_C,
    kernels on the CPU dispatch key) for CPU tensors."""
    _TEST_BACKENDS[name] = _NAMESPACE[name] = namespace
    _DISPATCH_KEY[name] = "CPU"
    _status[name] = (True, f"test backend (torch.ops.{namespace})")
    _resolved.clear()
