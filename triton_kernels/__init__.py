"""Triton backend of ganreg_ext: importing this package registers the ``"triton"`` kernels.

One module per op family (``gradnorm``, ``noise``, ``consistency``, ``augment``); shared layout
planning, descriptor tables and the deterministic second reduction stage live in ``_utils``.
On CPU tensors the kernels run only under ``TRITON_INTERPRET=1`` (tests).

Design notes and limitations:

* ``sqnorm``/``dot``/``scale`` take a whole list in one launch per dtype group (normally one):
  an int64 table of data pointers (turned back into pointers in the kernel, which works compiled
  and under the interpreter on CPU tensors) plus a slot table assigning a fixed chunk of one
  tensor's sample to each program. Reductions are split-K with partials reduced in a fixed order
  by a second tiny kernel: deterministic for a given shape and device, no atomics.
* Inputs are read in place through ≤ 4 merged (size, stride) dims: contiguous, channels_last, any
  permutation of a dense tensor, expanded and innermost-strided tensors need no copy. Only layouts
  with more than 4 unmergeable dims after merging fall back to a ``.contiguous()`` copy.
* 128-bit vector accesses need a single aligned dense tensor per launch (pointer from the kernel
  argument); tensors of a multi-tensor list are read with scalar, coalesced accesses because a
  pointer rebuilt from a table word carries no alignment information.
* All offsets are int64 (tensors past 2**31 elements); the noise counter is int64 too (correct for
  counters ≥ 2**32; tested through an internal logical offset on small tensors).
* Autotuned on GPU (Ampere/Hopper configs; the first call per shape key benchmarks, which syncs
  once); a single small config under the interpreter. Ops themselves never call ``.item()``/``.cpu()``;
  host-built tables travel through pinned memory with ``non_blocking=True``.
* The noise stream is float32 (``tl.randn4x``) in every backend: float64 results agree with the
  reference to float32 precision only, as SPEC §3 states (1e-5 absolute).
"""

from . import augment, consistency, gradnorm, noise  # noqa: F401
