"""The ``ganreg_triton`` ops: one ``torch.library.custom_op`` per Triton launcher, with the family's
fake kernel and Python autograd (each backward calls other ``ganreg_triton`` ops, so every order of
derivative works). Imported when the ``triton`` backend is first probed."""

from __future__ import annotations

import importlib

import torch

from . import FAMILIES

_LIB = torch.library.Library("ganreg_triton", "FRAGMENT")


def _define() -> None:
    for family, mod in FAMILIES.items():
        launchers = importlib.import_module(f"ganreg_ext.triton_kernels.{family}")
        composite = mod.composites(torch.ops.ganreg_triton) if hasattr(mod, "composites") else {}
        for name, schema in mod.SCHEMAS.items():
            if name in composite:
                _LIB.define(name + schema)
                _LIB.impl(name, composite[name], "CompositeImplicitAutograd")
                continue
            op = torch.library.custom_op(f"ganreg_triton::{name}", getattr(launchers, name), mutates_args=(), schema=schema)
            op.register_fake(mod.FAKES[name])
        for name, (setup, backward) in mod.autograd(torch.ops.ganreg_triton).items():
            torch.library.register_autograd(f"ganreg_triton::{name}", backward, setup_context=setup)


_define()
