"""Loads the C++/CUDA extension ``ganreg_ext._C``: the ops ``torch.ops.ganreg_C.<op>`` (schemas in
``csrc/ops.cpp``), their CPU kernels (``csrc/cpu``), CUDA kernels when built with nvcc
(``csrc/cuda``) and C++ autograd (``csrc/autograd/<family>.cpp``); the PyTorch dispatcher picks the kernel
by device. This module adds what only Python can: the fake kernels (``torch.compile``, ``opcheck``).
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

from .. import _dispatch
from . import FAMILIES

OPS = tuple(op for mod in FAMILIES.values() for op in mod.FAKES)
_DISPATCH_KEY = {"cpu": "CPU", "cuda": "CUDA"}


def has_kernel(op: str, backend: str) -> bool:
    """Whether ``torch.ops.ganreg_C.<op>`` has a kernel for ``backend``'s dispatch key."""
    return _dispatch.has_kernel("ganreg_C", op, _DISPATCH_KEY[backend])


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


for _mod in FAMILIES.values():
    for _name, _fake in _mod.FAKES.items():  # composites too: their native forward is one C++ kernel
        if hasattr(torch.ops.ganreg_C, _name):  # an op missing from this build fails the contract tests instead
            torch.library.register_fake(f"ganreg_C::{_name}")(_fake)
