"""Drop-in replacements for StyleGAN2-ADA / StyleGAN3 ``torch_utils.ops`` modules (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu).

Swap one import in a StyleGAN codebase (``training/networks*.py``)::

    from torch_utils.ops import bias_act, upfirdn2d, filtered_lrelu       # before
    from ganreg_ext.nvlabs import bias_act, upfirdn2d, filtered_lrelu     # after

Every function keeps its StyleGAN call signature (including ``impl``): ``impl="ref"`` runs the
eager reference (backend ``"reference"``), ``impl="cuda"`` (their default) the fused kernels of the
default backend (``"auto"`` unless chosen with ``ganreg_ext.use_backend``/``set_backend``/
``GANREG_BACKEND``) on any device, CPU included. Written from the documented semantics, not from
NVIDIA's code. See docs/blocks.md.
"""

from __future__ import annotations

from . import bias_act, filtered_lrelu, upfirdn2d

__all__ = ["bias_act", "filtered_lrelu", "upfirdn2d"]
