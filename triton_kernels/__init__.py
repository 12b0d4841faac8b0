"""Triton kernels and their launchers, imported as ``ganreg_ext.triton_kernels`` (setup.py maps this
repo-root folder there): no registration, no public API. The op layer (``ganreg_ext/ops/triton.py``)
registers each launcher ``ganreg_ext.triton_kernels.<family>.<op>`` as the CPU/CUDA kernel of the op
``ganreg_triton::<op>`` (schemas and C++ autograd from ``ganreg_ext._triton_autograd``); every
launcher has the op's signature (docs/ARCHITECTURE.md#raw-kernel-contract-what-a-backend-registers) and follows ``ganreg_ext._contract``.

One module per op family of ``ganreg_ext._dispatch.OPS`` (``gradnorm``, ``noise``, ``consistency``,
``augment``, ``bias_act``, ``upfirdn2d``, ``ada``; tests/test_dispatch.py ties the two); ``_utils`` holds the launcher decorator, configs, layout planning and the
deterministic second reduction stage.
On CPU tensors the kernels run only under ``TRITON_INTERPRET=1`` (tests); CUDA tensors then raise.

Design notes and limitations:

* Reductions (``sqnorm``, ``dot``, ``sq_diff_sum``, ``noise_dot``, the contrast sums of DiffAugment)
  are split-K: fixed-size chunks, one partial per program, partials summed in a fixed order in
  float64 by a second kernel that also applies the epilogue. One fixed config each (no autotune,
  no atomics): results are bitwise reproducible across processes and ranks for the same shapes.
* Elementwise kernels are autotuned on GPU, keyed by a size class (a capped power of two of the
  element count), never by raw sizes; a single small config under the interpreter.
* Inputs are read in place through ≤ 4 merged (size, stride) dims: contiguous, channels_last, any
  permutation of a dense tensor, expanded and innermost-strided tensors need no copy. Only layouts
  with more than 4 unmergeable dims after merging fall back to a ``.contiguous()`` copy.
* ``sqnorm``/``dot``/``scale`` take a whole list in one launch per dtype group: one tensor is
  described by kernel arguments, several by cached int64 tables (gradnorm module docstring).
* All offsets are int64 (tensors past 2**31 elements); the noise counter is int64 too (correct for
  counters ≥ 2**32; tested through an internal logical offset on small tensors).
* Launchers never call ``.item()``/``.cpu()`` on device tensors; the CUDA device of the operands is
  made current for the launches.
* The noise stream is float32 (``tl.randn4x``) in every backend: float64 results agree with the
  reference to float32 precision only, as docs/semantics.md#path-length-regularization-stylegan2 states (1e-5 absolute).
"""

from . import ada, augment, bias_act, consistency, gradnorm, noise, upfirdn2d  # noqa: F401
