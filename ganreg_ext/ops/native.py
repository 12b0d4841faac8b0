"""Loads the C++/CUDA extension ``ganreg_ext._C`` and registers its kernels as the ``cpu`` and
``cuda`` backends.

The extension defines the ops ``torch.ops.ganreg_C.<op>`` (``csrc/ops.cpp``) with CPU kernels
(``csrc/cpu``) and, when built with nvcc, CUDA kernels (``csrc/cuda``). Each op that really has a
kernel for a dispatch key is registered with :func:`ganreg_ext._dispatch.register_kernel` for the
matching backend; the torch.library ops in :mod:`ganreg_ext.ops` then call it.
"""

from __future__ import annotations

import json

import torch

try:
    from .. import _C  # noqa: F401  (loads the shared library, which registers torch.ops.ganreg_C)
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        "ganreg_ext._C is not built or failed to load "
        f"({e}); build it with `CUDA_HOME=/usr/local/cuda-13.0 pip install --no-build-isolation -e .`"
    ) from e

from .._dispatch import register_kernel

OPS = (
    "sqnorm",
    "scale",
    "dot",
    "noise_dot",
    "noise_axpy",
    "sq_diff_sum",
    "diff_scale",
    "diff_augment",
    "diff_augment_adj",
    "cr_augment",
    "cr_augment_adj",
)

_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA"}


def has_kernel(op: str, backend: str) -> bool:
    """Whether ``torch.ops.ganreg_C.<op>`` has a kernel for ``backend``'s dispatch key."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"ganreg_C::{op}", _DISPATCH_KEY[backend])


NATIVE_DEVICES: tuple[str, ...] = tuple(b for b in ("cpu", "cuda") if has_kernel("sqnorm", b))


def build_info() -> dict:
    """How the extension was built: CUDA (version, arch list), AVX2, compiler, ops per backend."""
    info = json.loads(torch.ops.ganreg_C.build_info())
    info["ops"] = {b: [op for op in OPS if has_kernel(op, b)] for b in ("cpu", "cuda")}
    return info


def _cpu_lacks_avx2() -> str | None:
    """The CPU kernels are compiled for AVX2/FMA/F16C (setup.py); on a CPU without them they would
    die with SIGILL, so the ``cpu`` backend is withheld with this reason instead."""
    if not json.loads(torch.ops.ganreg_C.build_info())["avx2"]:
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is not None:
        missing = [x for x in ("avx2", "fma", "f16c") if x not in flags]
    else:  # no /proc/cpuinfo: ATen's own detection
        missing = [] if torch.backends.cpu.get_cpu_capability().startswith("AVX") else ["avx2"]
    if not missing:
        return None
    return (
        f"ganreg_ext._C was built with AVX2/FMA/F16C but this CPU lacks {', '.join(missing)}; "
        "rebuild with GANREG_NO_AVX2=1 pip install --no-build-isolation -e ."
    )


CPU_UNUSABLE: str | None = _cpu_lacks_avx2()


def set_native_poison(flag: bool) -> None:
    """Make every native kernel's output start as NaN (tests)."""
    torch.ops.ganreg_C.set_poison(bool(flag))


def _as_first_acc(xs: list) -> list:
    """The reference accumulates a whole list in ``grads[0]``'s accumulation dtype; the C++ kernels
    accumulate each tensor in its own. They differ only for a float64 first tensor followed by lower
    precision ones (e.g. float32 denormals squared): promote those, a rare mixed-dtype case."""
    if xs[0].dtype == torch.float64 and any(x.dtype != torch.float64 for x in xs):
        return [x.double() for x in xs]
    return xs


def _sqnorm(op):
    return lambda grads, inv_scale, per_sample: op(_as_first_acc(list(grads)), inv_scale, per_sample)


def _dot(op):
    return lambda a, b, per_sample: op(_as_first_acc(list(a)), _as_first_acc(list(b)), per_sample)


_WRAP = {"sqnorm": _sqnorm, "dot": _dot}


def _register() -> None:
    for backend in NATIVE_DEVICES:
        if backend == "cpu" and CPU_UNUSABLE:
            continue
        for op in OPS:
            if has_kernel(op, backend):
                fn = getattr(torch.ops.ganreg_C, op)
                register_kernel(op, backend)(_WRAP[op](fn) if op in _WRAP else fn)


_register()
