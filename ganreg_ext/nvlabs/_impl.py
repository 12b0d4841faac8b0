"""StyleGAN's ``impl`` argument → a ganreg_ext backend."""

from __future__ import annotations

IMPLS = {"ref": "reference", "cuda": None}  # None: the default backend ("auto" unless set)


def backend(impl) -> str | None:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be 'ref' or 'cuda', got {impl!r}")
    return IMPLS[impl]
