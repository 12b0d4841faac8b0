"""Noise family: ``noise_dot`` and ``noise_axpy`` on the docs/semantics.md#path-length-regularization-stylegan2 Philox normal stream.

The noise is generated in registers and never stored: a program owns ``BLOCK_C`` Philox counters
``c`` and the ``[BLOCK_C, 4]`` tile of elements ``i = 4c + lane``; one ``tl.randn4x(seed, c)`` call
(one Philox4x32-10, two logarithms) serves the four lanes. ``c`` is int64, and Triton's
``randint4x`` splits an int64 offset into the counter words ``(c & 0xffffffff, c >> 32, 0, 0)``,
which is exactly the SPEC counter, so the stream is right beyond ``2**32`` counters too; the seed
(up to 63 bits, passed as int64) becomes the key ``(seed & 0xffffffff, seed >> 32)``.

``i`` is the flat row-major index over the *logical* shape; strided / channels_last inputs are read
in place through merged logical dims (``_utils.logical_plan``). ``noise_dot`` is a split-K
reduction with one fixed config (deterministic); ``noise_axpy`` is elementwise and autotuned.
Seeds and counter offsets are not specialized (no recompilation per seed).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ganreg_ext._contract import acc_dtype, empty

from ._utils import (
    autotuned,
    ceil_div,
    cfg,
    chunk_size,
    finish,
    helper,
    launcher,
    logical_plan,
    offset4,
    pick,
    scalar_as,
    size_class,
    tl_dtype,
)

DOT_GPU = cfg(4, BLOCK_C=512)  # fixed (a reduction); 4·BLOCK_C divides every GPU chunk
DOT_INTERP = cfg(4, BLOCK_C=64)
AXPY_GPU = [cfg(4, BLOCK_C=256), cfg(4, BLOCK_C=512), cfg(8, BLOCK_C=1024)]
AXPY_INTERP = cfg(4, BLOCK_C=64)
_DOT_RUN = pick(DOT_GPU, DOT_INTERP).all_kwargs()


@helper
def _noise_tile(seed, c, base_c):
    """``[BLOCK_C, 4]`` tile of the stream: row ``c`` holds elements ``4(c+base_c) + 0..3``."""
    n0, n1, n2, n3 = tl.randn4x(seed, c + base_c)
    lane = tl.arange(0, 4)[None, :]
    return tl.where(lane == 0, n0[:, None], tl.where(lane == 1, n1[:, None], tl.where(lane == 2, n2[:, None], n3[:, None])))


@triton.jit(do_not_specialize=["seed", "base_c"])
def _noise_dot_kernel(
    x_ptr,
    part_ptr,
    seed: tl.int64,
    base_c: tl.int64,
    total,
    chunk_c,
    n1,
    n2,
    n3,
    st0,
    st1,
    st2,
    st3,
    NDIM: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """``part[pid] = Σ x_i·n_{4·base_c + i}`` over counters ``[pid·chunk_c, (pid+1)·chunk_c)``
    (``chunk_c`` a multiple of ``BLOCK_C``)."""
    pid = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK_C, 4], ACC)
    for it in range(0, chunk_c, BLOCK_C):
        c = pid * chunk_c + it + tl.arange(0, BLOCK_C).to(tl.int64)
        i = c[:, None] * 4 + tl.arange(0, 4)[None, :]
        x = tl.load(x_ptr + offset4(i, n1, n2, n3, st0, st1, st2, st3, NDIM), mask=i < total, other=0).to(ACC)
        acc += x * _noise_tile(seed, c, base_c).to(ACC)
    tl.store(part_ptr + pid, tl.sum(tl.sum(acc, 1), 0))


@autotuned(AXPY_GPU, AXPY_INTERP, key=["NDIM", "HAS_X", "size_class"])
@triton.jit(do_not_specialize=["seed", "base_c", "scale"])
def _noise_axpy_kernel(
    x_ptr,
    out_ptr,
    alpha_ptr,
    seed: tl.int64,
    base_c: tl.int64,
    scale: tl.float64,
    total,
    size_class,
    n1,
    n2,
    n3,
    st0,
    st1,
    st2,
    st3,
    HAS_X: tl.constexpr,
    NDIM: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """``out_i = x_i + alpha·scale·n_{4·base_c + i}`` (``x`` = 0 without ``HAS_X``), contiguous out."""
    pid = tl.program_id(0).to(tl.int64)
    c = pid * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    i = c[:, None] * 4 + tl.arange(0, 4)[None, :]
    m = i < total
    a = tl.load(alpha_ptr).to(ACC) * scalar_as(scale, ACC)
    v = _noise_tile(seed, c, base_c).to(ACC) * a
    if HAS_X:
        v += tl.load(x_ptr + offset4(i, n1, n2, n3, st0, st1, st2, st3, NDIM), mask=m, other=0).to(ACC)
    tl.store(out_ptr + i, v.to(out_ptr.dtype.element_ty), mask=m)


def _counter(offset: int) -> int:
    if offset % 4:
        raise ValueError(f"offset must be a multiple of 4, got {offset}")
    return offset >> 2


@launcher
def noise_dot_at(x: torch.Tensor, seed: int, scale: float, offset: int) -> torch.Tensor:
    """``scale·Σ_i x_i·n_{offset+i}``; ``offset`` (a multiple of 4) shifts the logical index (tests of
    the 64-bit counter path on small tensors). Split-K partials, fixed-order float64 second stage."""
    base_c = _counter(offset)
    (x,), ndim, n, st = logical_plan(x)
    total = x.numel()
    chunk_c = chunk_size(total, total) // 4
    P = ceil_div(total, 4 * chunk_c)
    acc = acc_dtype(x.dtype)
    partials = torch.empty((1, P), dtype=acc, device=x.device)
    if P:
        _noise_dot_kernel[(P,)](
            x,
            partials,
            int(seed),
            base_c,
            total,
            chunk_c,
            *n[1:],
            *st[0],
            NDIM=ndim,
            ACC=tl_dtype(acc),
            **_DOT_RUN,
        )
    return finish(partials, empty((), acc, x.device), scale, total=True)


@launcher
def noise_axpy_at(x, alpha, seed: int, scale: float, size, dtype, offset: int) -> torch.Tensor:
    """``x + alpha·scale·n_{offset+i}`` → contiguous ``size`` tensor of ``dtype`` (``x`` None → 0)."""
    base_c = _counter(offset)
    out = empty(tuple(size), dtype, alpha.device)
    total = out.numel()
    if total == 0:
        return out
    if x is not None:
        if tuple(x.shape) != tuple(size):
            raise ValueError(f"noise_axpy: x has shape {tuple(x.shape)}, expected {tuple(size)}")
        (x,), ndim, n, st = logical_plan(x)
        acc = acc_dtype(x.dtype, dtype)
    else:
        ndim, n, st, acc = 1, (1, 1, 1, 1), ((0, 0, 0, 0),), acc_dtype(dtype)

    def grid(meta):
        return (ceil_div(total, 4 * meta["BLOCK_C"]),)

    _noise_axpy_kernel[grid](
        x if x is not None else out,
        out,
        alpha,
        int(seed),
        base_c,
        float(scale),
        total,
        size_class(total),
        *n[1:],
        *st[0],
        HAS_X=x is not None,
        NDIM=ndim,
        ACC=tl_dtype(acc),
    )
    return out


def noise_dot(x, seed, scale):
    """``scale·Σ_i x_i·n_i`` (``n`` the docs/semantics.md#path-length-regularization-stylegan2 stream over ``x``'s logical shape) → 0-d, float32
    (float64 for float64 ``x``)."""
    return noise_dot_at(x, seed, scale, 0)


def noise_axpy(x, alpha, seed, scale, size, dtype):
    """``x + alpha·scale·n`` → contiguous ``size`` tensor of ``dtype`` (``x`` None → 0), computed in
    float32 (float64 if ``x`` or ``dtype`` is float64)."""
    return noise_axpy_at(x, alpha, seed, scale, size, dtype, 0)
