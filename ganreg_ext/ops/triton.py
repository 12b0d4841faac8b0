"""The ``ganreg_triton`` ops. ``ganreg_ext._triton_autograd`` defines them: ``csrc/ops.cpp`` and
``csrc/autograd/*.cpp`` compiled under that namespace (setup.py), i.e. the native ops' schemas and
C++ autograd, and no kernel. This module registers each Triton launcher
``ganreg_ext.triton_kernels.<family>.<op>`` as the op's CPU kernel (tensors on the CPU run under
``TRITON_INTERPRET=1``) and CUDA kernel, and the family's fake kernel; ``grad_penalty`` and
``path_length`` have no launcher: their kernel is the C++ forward (the backend's ``sqnorm`` plus an
O(B) epilogue) registered by the module. Imported when the ``triton`` backend is first probed; a
missing or incomplete module fails the import (the backend is then unavailable, with this reason)."""

from __future__ import annotations

import importlib

import torch

from .. import _dispatch
from . import FAMILIES

_BUILD = "build it with `pip install --no-build-isolation -e .` (GANREG_NO_CUDA=1 is enough; not GANREG_SKIP_BUILD=1)"

try:
    from .. import _triton_autograd  # noqa: F401  (loads the library, which defines torch.ops.ganreg_triton)
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        f"ganreg_ext._triton_autograd (the schemas and C++ autograd of the Triton ops) is not built or failed to load ({e}); {_BUILD}"
    ) from e

_LIB = torch.library.Library("ganreg_triton", "IMPL")
KEYS = ("CPU", "CUDA")


def _register() -> None:
    for family, mod in FAMILIES.items():
        launchers = importlib.import_module(f"ganreg_ext.triton_kernels.{family}")
        for name, fake in mod.FAKES.items():
            if not hasattr(torch.ops.ganreg_triton, name):
                raise ImportError(f"ganreg_ext._triton_autograd defines no op ganreg_triton::{name} (stale build?); {_BUILD}")
            launcher = getattr(launchers, name, None)
            for key in KEYS:
                if launcher is not None:
                    _LIB.impl(name, launcher, key)
                elif not _dispatch.has_kernel("ganreg_triton", name, key):
                    raise ImportError(f"ganreg_triton::{name} has neither a Triton launcher nor a {key} kernel; {_BUILD}")
            torch.library.register_fake(f"ganreg_triton::{name}", fake, lib=_LIB)


_register()
