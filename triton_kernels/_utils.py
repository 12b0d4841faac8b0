"""Helpers shared by the Triton kernels: layout planning, descriptor tables, autotune configs,
the deterministic second reduction stage and small ``@triton.jit`` building blocks.

Layouts. Every kernel reads its inputs in place (no ``.contiguous()`` copy) through at most
``MAXD = 4`` (size, stride) pairs per tensor, after merging the dimensions that can be merged
(:func:`collapse`). A contiguous tensor becomes one dimension of stride 1, a channels_last one two
or three, an innermost-strided slice two. Only a layout that still needs more than four
dimensions after merging (rank ≥ 6 with no mergeable neighbours) falls back to a contiguous copy.

Multi-tensor launches. ``sqnorm``/``dot``/``scale`` handle a whole list of tensors in one launch
(per dtype group; normally one group): the host builds an int64 table with one row per tensor
(data pointers, per-sample numel, batch strides, merged sizes/strides) and an int64 slot table
``[S, 2]`` = (row, first element) that assigns a fixed-size chunk of one tensor's sample to each
program. The kernel turns the pointer words back into typed pointers (``int → ptr``), which works
compiled on CUDA and under ``TRITON_INTERPRET=1`` on CPU tensors (the interpreter reads raw host
addresses). Tables travel to the GPU through pinned memory with ``non_blocking=True``: no host sync.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ganreg_ext._dispatch import acc_dtype, empty

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
MAXD = 4  # merged dimensions a kernel can address directly
ROW = 17  # int64 words per tensor row of the multi-tensor table (see ``table_row``)


def tl_dtype(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float64: tl.float64, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


def acc_of(*dtypes: torch.dtype) -> torch.dtype:
    """Accumulation dtype of a kernel reading these dtypes: float64 if any is float64, else float32."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def tl_acc(*dtypes: torch.dtype):
    return tl_dtype(acc_of(*dtypes))


def configs(gpu: list[triton.Config], interp: triton.Config) -> list[triton.Config]:
    """Autotune configs: the GPU list (Ampere/Hopper) normally, one small config under the interpreter."""
    return [interp] if INTERPRET else gpu


def cfg(num_warps: int = 4, num_stages: int = 2, **kw) -> triton.Config:
    return triton.Config(kw, num_warps=num_warps, num_stages=num_stages)


# ----------------------------------------------------------------------------------------- layouts


def collapse(shape, strides_list, order_by: int | None = None, skip_batch: bool = False, maxd: int = MAXD):
    """Merge dimensions of ``shape`` that are adjacent in memory for *every* stride set.

    ``order_by=None`` keeps the logical (row-major) order, so the merged dims still enumerate the
    flat logical index (needed by the noise stream and by outputs written in logical order).
    ``order_by=k`` first sorts the dims by stride set ``k``, outermost first (for order-free sums
    and for elementwise ops whose output layout is stride set ``k``): then every dense layout,
    channels_last or any permutation included, merges to one dim read linearly in memory order.
    ``skip_batch`` leaves dim 0 out (it is addressed by the batch stride).

    Returns ``(sizes, [strides per set])`` outermost first, at least one dim, or ``None`` if more
    than ``maxd`` dims remain.
    """
    dims = [d for d in range(1 if skip_batch else 0, len(shape)) if shape[d] != 1]
    if order_by is not None:
        ref = strides_list[order_by]
        dims.sort(key=lambda d: (-abs(ref[d]), -shape[d]))
    sizes: list[int] = []
    out: list[list[int]] = [[] for _ in strides_list]
    for d in dims:
        if sizes and all(o[-1] == s[d] * shape[d] for o, s in zip(out, strides_list)):
            sizes[-1] *= shape[d]
            for o, s in zip(out, strides_list):
                o[-1] = s[d]
        else:
            sizes.append(shape[d])
            for o, s in zip(out, strides_list):
                o.append(s[d])
    if not sizes:
        sizes, out = [1], [[0] for _ in strides_list]
    if len(sizes) > maxd:
        return None
    return sizes, out


def pad_dims(sizes, strides_list, maxd: int = MAXD):
    """Right-align to ``maxd`` dims (outer padding: size 1, stride 0), as the kernels expect."""
    k = maxd - len(sizes)
    return [1] * k + list(sizes), [[0] * k + list(s) for s in strides_list]


def logical_plan(*tensors: torch.Tensor):
    """Merged logical-order dims shared by same-shape ``tensors`` (copying them contiguous only in
    the rare layout that needs more than MAXD dims). Returns ``(tensors, ndim, sizes4, strides4s)``."""
    plan = collapse(tensors[0].shape, [t.stride() for t in tensors])
    if plan is None:  # documented fallback: > MAXD unmergeable dims
        tensors = tuple(t.contiguous() for t in tensors)
        plan = collapse(tensors[0].shape, [t.stride() for t in tensors])
    sizes, strides = plan
    ndim = len(sizes)
    sizes, strides = pad_dims(sizes, strides)
    return tensors, ndim, sizes, strides


def empty_like_strided(g: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(g)`` strides (preserve_format), allocated through the poison-aware ``empty``."""
    strides = torch.empty_like(g, device="meta").stride()
    if g.numel() == 0:
        return empty(g.shape, g.dtype, g.device)
    span = 1 + sum((n - 1) * s for n, s in zip(g.shape, strides))
    return empty((span,), g.dtype, g.device).as_strided(g.shape, strides)


def to_device(rows, device: torch.device) -> torch.Tensor:
    """A small host-built int64 table on ``device`` without a host sync (pinned, non-blocking)."""
    t = torch.tensor(rows, dtype=torch.int64)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def chunk_size(total: int, longest: int) -> int:
    """Elements per program of the split-K reductions, from the total work and the longest
    per-sample run (a function of the shapes only, so results are deterministic). Always a power
    of two no smaller than the largest autotuned ``BLOCK`` (4096 on GPU, 256 interpreted), so a
    program's ``range(0, CHUNK, BLOCK)`` loop never reaches into the next chunk."""
    if INTERPRET:
        return min(1024, max(256, triton.next_power_of_2(max(longest, 1))))
    c = 1 << max(0, (max(total, 1) // 1024).bit_length() - 1)
    return min(65536, max(4096, c))


# ------------------------------------------------------------------------ jit building blocks


def helper(fn):
    """``@triton.jit`` for device helper functions; under the interpreter a plain Python function.

    The interpreter re-patches ``triton.language`` on every call of a nested jit function (~10 ms
    each), which dominated the test time; a plain function called from inside a running kernel
    already sees the patched module, so the result is the same, only faster.
    """
    return fn if INTERPRET else triton.jit(fn)


@helper
def scalar_as(x, DT: tl.constexpr):
    """A float scalar argument (declared ``"fp64"``) as a ``DT`` scalar, without losing float64
    precision compiled or interpreted (a plain ``tl.cast`` of a Python float rounds to float32
    under the interpreter)."""
    return (tl.full([], 1, DT) * x).to(DT)


@helper
def offset4(i, n1, n2, n3, st0, st1, st2, st3, NDIM: tl.constexpr):
    """Element offset of flat index ``i`` (int64) in a right-aligned ≤4-dim layout: dims
    ``4-NDIM .. 3`` with sizes ``n*`` (``n0`` implied) and strides ``st*``, dim 3 innermost."""
    if NDIM == 1:
        off = i * st3
    elif NDIM == 2:
        off = (i // n3) * st2 + (i % n3) * st3
    elif NDIM == 3:
        q = i // n3
        off = (q // n2) * st1 + (q % n2) * st2 + (i % n3) * st3
    else:
        q = i // n3
        q2 = q // n2
        off = (q2 // n1) * st0 + (q2 % n1) * st1 + (q % n2) * st2 + (i % n3) * st3
    return off


@triton.jit
def _sum_rows_kernel(p_ptr, out_ptr, S, mult: tl.float64, BLOCK: tl.constexpr):
    """``out[r] = mult · Σ_s p[r, s]`` in a fixed order (the deterministic second stage)."""
    r = tl.program_id(0).to(tl.int64)
    ACC: tl.constexpr = p_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK], ACC)
    for s0 in range(0, S, BLOCK):
        o = s0 + tl.arange(0, BLOCK)
        acc += tl.load(p_ptr + r * S + o, mask=o < S, other=0)
    tl.store(out_ptr + r, (tl.sum(acc, 0) * scalar_as(mult, ACC)).to(out_ptr.dtype.element_ty))


def sum_rows(partials: torch.Tensor, out: torch.Tensor, mult: float = 1.0) -> torch.Tensor:
    """Reduce the ``[R, S]`` partials into ``out`` (``R`` elements) deterministically."""
    R, S = partials.shape
    if S == 0:
        return out.zero_()
    block = min(1024, triton.next_power_of_2(S))
    _sum_rows_kernel[(R,)](partials, out, S, float(mult), BLOCK=block)
    return out


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = [
    "INTERPRET",
    "MAXD",
    "ROW",
    "acc_dtype",
    "acc_of",
    "ceil_div",
    "cfg",
    "chunk_size",
    "collapse",
    "configs",
    "empty",
    "empty_like_strided",
    "logical_plan",
    "helper",
    "offset4",
    "pad_dims",
    "scalar_as",
    "sum_rows",
    "tl_acc",
    "tl_dtype",
    "to_device",
]
