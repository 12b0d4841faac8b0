"""Shared by the Triton launchers: the launcher decorator (device checks and guard), configs and
size classes, layout planning, the deterministic second reduction stage, small jit helpers.

Layouts. Every kernel reads its inputs in place (no ``.contiguous()`` copy) through at most
``MAXD = 4`` (size, stride) pairs per tensor, after merging the dimensions that can be merged
(:func:`collapse`). A contiguous tensor becomes one dimension of stride 1, a channels_last one two
or three, an innermost-strided slice two. Only a layout that still needs more than four
dimensions after merging (rank ≥ 6 with no mergeable neighbours) falls back to a contiguous copy.

Configs. Reductions run ONE fixed config (the summation order is a function of the shapes only:
bitwise equal results across processes, ranks and runs); elementwise kernels are autotuned on GPU,
keyed by :func:`size_class`. Under ``TRITON_INTERPRET=1`` every kernel uses one small config.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _interpreter_rounds_bfloat16_to_nearest_even() -> None:
    """Triton 3.8's interpreter converts float32 → bfloat16 by TRUNCATION (its cast passes no rounding
    mode; its own "RTNE" rounds half up without ties to even), while compiled kernels round to nearest
    even, as torch does. Left alone, every interpreted bfloat16 output would be one unit low in about
    half the elements and biased toward zero (a StyleGAN2 D with bfloat16 layers lost 60 % of a
    gradient through R1's double backward this way): the interpreted runs would not test what the
    GPU computes. So, under ``TRITON_INTERPRET=1`` only, float32/float64 → bfloat16 casts (explicit
    or at a store) round through torch (nearest even, NaN and inf kept); an explicit RTZ cast keeps
    truncating. tests/test_triton_kernels.py checks both against torch."""
    import numpy as np
    from triton._C.libtriton import ir
    from triton.runtime import interpreter

    B = interpreter.InterpreterBuilder
    if getattr(B, "_ganreg_bf16_rtne", False):
        return
    cast_impl, fp_to_fp = B.cast_impl, B.create_fp_to_fp

    def rounds(src, dst_type) -> bool:
        return dst_type.scalar == tl.bfloat16 and src.dtype.scalar in (tl.float32, tl.float64)

    def to_bf16(src, dst_type):
        t = torch.from_numpy(np.array(src.data, copy=True)).to(torch.bfloat16)
        return interpreter.TensorHandle(t.view(torch.int16).numpy().view(np.uint16), dst_type.scalar)

    B.cast_impl = lambda self, src, dst_type: to_bf16(src, dst_type) if rounds(src, dst_type) else cast_impl(self, src, dst_type)
    B.create_fp_to_fp = lambda self, src, dst_type, mode: (
        to_bf16(src, dst_type) if rounds(src, dst_type) and mode != ir.ROUNDING_MODE.RTZ else fp_to_fp(self, src, dst_type, mode)
    )
    B._ganreg_bf16_rtne = True


if INTERPRET:
    _interpreter_rounds_bfloat16_to_nearest_even()

MAXD = 4  # merged dimensions a kernel can address directly
GPU_CHUNK_MIN, GPU_CHUNK_MAX = 4096, 65536  # split-K chunk (elements per program) on GPU
INTERP_CHUNK_MIN, INTERP_CHUNK_MAX = 256, 1024  # interpreted: small, so tests split small tensors


def tl_dtype(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float64: tl.float64, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype]


# ------------------------------------------------------------------------------------- launches


def _device(args) -> torch.device:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            return a[0].device
    raise ValueError("a Triton launcher needs at least one tensor argument")


def launcher(fn):
    """Decorator of every public launcher. The first tensor argument (the operand) must be where
    this Triton mode runs: CUDA when compiled; the CPU under ``TRITON_INTERPRET=1``, which runs the
    kernels on the host and would dereference device addresses there. Its CUDA device is made
    current for the launches (Triton launches on the current device: tensors on ``cuda:1`` while
    ``cuda:0`` is current)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        dev = _device(args)
        if INTERPRET and dev.type != "cpu":
            raise RuntimeError(
                f"ganreg_ext Triton kernels: TRITON_INTERPRET=1 runs kernels on the host CPU, which cannot read "
                f"tensors on {dev}; unset TRITON_INTERPRET to run on the GPU, or pass CPU tensors"
            )
        if not INTERPRET and dev.type != "cuda":
            raise RuntimeError(
                f"ganreg_ext Triton kernels need CUDA tensors, got a tensor on {dev} "
                "(CPU tensors run only under TRITON_INTERPRET=1)"
            )
        if dev.type == "cuda":
            with torch.cuda.device(dev):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return run


def cfg(num_warps: int = 4, num_stages: int = 2, **kw) -> triton.Config:
    return triton.Config(kw, num_warps=num_warps, num_stages=num_stages)


def pick(gpu, interp):
    """The GPU config (list) normally, the interpreter's under ``TRITON_INTERPRET=1``."""
    return interp if INTERPRET else gpu


def capturing() -> bool:
    """Whether the current CUDA stream is being captured into a CUDA graph (False without CUDA).
    The one probe of the launchers' capture rules (tests patch it)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def refuse_capture(what: str) -> None:
    """Raise a clear error for first-use work that a CUDA-graph capture cannot record."""
    raise RuntimeError(
        f"ganreg_ext Triton kernels: {what} cannot run while a CUDA graph is being captured; run the op "
        "once with the same shapes, dtypes and arguments before capturing (a warm-up step)"
    )


def autotuned(gpu: list[triton.Config], interp: triton.Config, key: list[str]):
    """``triton.autotune`` for elementwise kernels only; ``key`` should end with ``"size_class"``.

    CUDA graphs: tuning a new key times trial launches and synchronizes, which a capture cannot
    record, so a key first met during capture raises (:func:`refuse_capture`); a key tuned before
    the capture launches its chosen config, which is capture-safe."""

    def deco(fn):
        tuner = triton.autotune(configs=pick(gpu, [interp]), key=key)(fn)
        bench = tuner._bench  # the trial launch of one config: only called for an untuned key
        name = getattr(fn, "__name__", None) or getattr(getattr(fn, "fn", None), "__name__", "kernel")

        def guarded_bench(*args, **kwargs):
            if capturing():
                refuse_capture(f"autotuning {name} for a new size class")
            return bench(*args, **kwargs)

        tuner._bench = guarded_bench
        return tuner

    return deco


def size_class(n: int) -> int:
    """Autotune key of elementwise kernels: the next power of two of the element count, clamped to
    [2**12, 2**24] (a bounded number of tunings, none per raw size)."""
    return min(1 << 24, max(1 << 12, triton.next_power_of_2(max(n, 1))))


def chunk_size(total: int, longest: int, gpu: bool = not INTERPRET) -> int:
    """Elements per program of the split-K kernels, a function of the shapes only (deterministic):
    ``total`` elements of work, ``longest`` the longest per-sample run.

    GPU: the power of two ``≤ total/1024`` clamped to ``[GPU_CHUNK_MIN, GPU_CHUNK_MAX]``;
    interpreted: ``next_pow2(longest)`` clamped to ``[INTERP_CHUNK_MIN, INTERP_CHUNK_MAX]``.
    Invariant (tested on CPU for the GPU configs too): every ``BLOCK`` of a split-K kernel divides
    every chunk, so a program's ``range(0, chunk, BLOCK)`` covers exactly its chunk."""
    if not gpu:
        return min(INTERP_CHUNK_MAX, max(INTERP_CHUNK_MIN, triton.next_power_of_2(max(longest, 1))))
    c = 1 << max(0, (max(total, 1) // 1024).bit_length() - 1)
    return min(GPU_CHUNK_MAX, max(GPU_CHUNK_MIN, c))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ------------------------------------------------------------------------------ small device tables

_TABLES: dict = {}  # (rows, dtype, device) -> device tensor built outside graph capture
_TABLES_MAX = 512


def _flat(rows) -> list:
    return [v for r in rows for v in _flat(r)] if isinstance(rows, (list, tuple)) else [rows]


def device_table(rows: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant table (nested tuples of numbers, rectangular) as a ``dtype`` tensor on
    ``device``, to be read by kernels and never written.

    CPU: a plain tensor. CUDA outside graph capture: copied once through pinned memory without a
    host sync, then cached (a function of the arguments). During CUDA-graph capture a pinned copy
    would be recorded from a staging buffer that is freed and reused before the graph is replayed,
    so a table not yet cached is built there by per-element fills (the values are kernel
    arguments, recorded by value), used by that launch only and not cached (its memory belongs to
    the graph's pool and holds nothing until a replay); a cached table is used as is."""
    if device.type == "cpu":
        return torch.tensor(rows, dtype=dtype)
    key = (rows, dtype, device)
    hit = _TABLES.get(key)
    if hit is not None:
        return hit
    if capturing():
        return _filled(rows, dtype, device)
    t = _upload(rows, dtype, device)
    if len(_TABLES) >= _TABLES_MAX:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = t
    return t


def _upload(rows, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Host → device through pinned memory, no host sync (outside graph capture only)."""
    return torch.tensor(rows, dtype=dtype).pin_memory().to(device, non_blocking=True)


def _filled(rows, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The table built on ``device`` by one fill per element (each value a kernel argument, so a
    graph capture records it by value: no host buffer involved)."""
    shape = torch.tensor(rows, dtype=dtype).shape  # host only: the shape of the nested rows
    t = torch.empty(shape, dtype=dtype, device=device)
    flat = t.view(-1)
    for i, v in enumerate(_flat(rows)):
        flat[i].fill_(v)
    return t


# ----------------------------------------------------------------------------------------- layouts


@functools.lru_cache(maxsize=1024)
def collapse(shape: tuple, strides: tuple, order_by: int | None = None, skip_batch: bool = False):
    """Merge dimensions of ``shape`` that are adjacent in memory for *every* stride set of ``strides``.

    ``order_by=None`` keeps the logical (row-major) order, so the merged dims still enumerate the
    flat logical index (needed by the noise stream and by outputs written in logical order).
    ``order_by=k`` first sorts the dims by stride set ``k``, outermost first (for order-free sums
    and for elementwise ops whose output layout is stride set ``k``): then every dense layout,
    channels_last or any permutation included, merges to one dim read linearly in memory order.
    ``skip_batch`` leaves dim 0 out (it is addressed by the batch stride).

    Returns ``(sizes, (strides per set))`` as tuples, outermost first, at least one dim, or ``None``
    if more than ``MAXD`` dims remain. Cached: a function of the arguments only.
    """
    dims = [d for d in range(1 if skip_batch else 0, len(shape)) if shape[d] != 1]
    if order_by is not None:
        ref = strides[order_by]
        dims.sort(key=lambda d: (-abs(ref[d]), -shape[d]))
    sizes: list[int] = []
    out: list[list[int]] = [[] for _ in strides]
    for d in dims:
        if sizes and all(o[-1] == s[d] * shape[d] for o, s in zip(out, strides)):
            sizes[-1] *= shape[d]
            for o, s in zip(out, strides):
                o[-1] = s[d]
        else:
            sizes.append(shape[d])
            for o, s in zip(out, strides):
                o.append(s[d])
    if not sizes:
        sizes, out = [1], [[0] for _ in strides]
    if len(sizes) > MAXD:
        return None
    return tuple(sizes), tuple(tuple(o) for o in out)


def pad_dims(sizes, strides):
    """Right-align to ``MAXD`` dims (outer padding: size 1, stride 0), as the kernels expect."""
    k = MAXD - len(sizes)
    return (1,) * k + tuple(sizes), tuple((0,) * k + tuple(s) for s in strides)


def logical_plan(*tensors: torch.Tensor):
    """Merged logical-order dims shared by same-shape ``tensors`` (copying them contiguous only in
    the rare layout that needs more than MAXD dims). Returns ``(tensors, ndim, sizes4, strides4s)``."""
    plan = collapse(tuple(tensors[0].shape), tuple(t.stride() for t in tensors))
    if plan is None:  # documented fallback: > MAXD unmergeable dims
        tensors = tuple(t.contiguous() for t in tensors)
        plan = collapse(tuple(tensors[0].shape), tuple(t.stride() for t in tensors))
    sizes, strides = plan
    sizes4, strides4 = pad_dims(sizes, strides)
    return tensors, len(sizes), sizes4, strides4


# ------------------------------------------------------------------------ jit building blocks


def helper(fn):
    """``@triton.jit`` for device helper functions; under the interpreter a plain Python function.

    The interpreter re-patches ``triton.language`` on every call of a nested jit function (~10 ms
    each), which dominated the test time; a plain function called from inside a running kernel
    already sees the patched module, so the result is the same, only faster.
    """
    return fn if INTERPRET else triton.jit(fn)


@helper
def pixel_tile(pid, H, W, BLOCK_P: tl.constexpr):
    """Program ``pid`` of a per-image pixel grid (``pixel_grid``): its image ``b`` (int64), flat pixel
    indices ``p`` of one BLOCK_P tile, their mask ``p < H·W``, and their row and column."""
    NT = (H * W + BLOCK_P - 1) // BLOCK_P  # tiles per sample
    b = pid // NT
    p = (pid % NT) * BLOCK_P + tl.arange(0, BLOCK_P)
    return b.to(tl.int64), p, p < H * W, p // W, p % W


def pixel_grid(B, H, W):
    """Launch grid of ``pixel_tile``: B images × ceil(H·W / BLOCK_P) tiles."""

    def grid(meta):
        return (B * ceil_div(H * W, meta["BLOCK_P"]),)

    return grid


@helper
def scalar_as(x, DT: tl.constexpr):
    """A float scalar argument (declared ``tl.float64``) as a ``DT`` scalar, without losing float64
    precision compiled or interpreted (a plain ``tl.cast`` of a Python float rounds to float32
    under the interpreter)."""
    return (tl.full([], 1, DT) * x).to(DT)


@helper
def fsum(x, axis):
    """``tl.sum(x, axis)`` of a float tensor: the same reduction (``tl.reduce`` with Triton's sum
    combiner), without ``tl.sum``'s own jit frame, which the interpreter re-patches (~7 ms) on every
    call; use it in loops."""
    return tl.reduce(x, axis, tl.standard._sum_combine)


@helper
def full_like(x, value):
    """``x``'s shape and dtype filled with ``value`` (a scalar, tensor or Python number): the
    builtin ``tl.full`` plus a broadcast add, where ``tl.zeros_like`` (a jit function) would be
    re-patched by the interpreter on every call."""
    return tl.full(x.shape, 0, x.dtype) + value


@helper
def div_rn(a, b, ACC: tl.constexpr):
    """``a / b`` rounded to nearest in ``ACC`` (``a`` a tensor, ``b`` a tensor of its shape or a
    scalar, broadcast to it): ``tl.div_rn`` in float32, where Triton's plain ``/`` is an
    approximation (up to 2 ulp on a GPU); ``/`` in float64, which is IEEE already."""
    d = full_like(a, b)
    if ACC == tl.float32:
        q = tl.div_rn(a, d)
    else:
        q = a / d
    return q


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


FINISH_BLOCK = 256


@triton.jit(do_not_specialize=["weight", "div"])
def _finish_kernel(p_ptr, out_ptr, R, S, weight: tl.float64, div: tl.float64, ALL: tl.constexpr, BLOCK: tl.constexpr):
    """Second stage of every split-K reduction, in float64 and a fixed order: ``out[r] =
    weight·Σ_s p[r, s]`` (one program per row), or with ``ALL`` ``out = weight·(Σ_r Σ_s p[r, s])/div``
    (one program, rows summed in index order)."""
    if ALL:
        lo = 0
        hi = R
    else:
        lo = tl.program_id(0)
        hi = lo + 1
    tot = tl.zeros([], tl.float64)
    for r in range(lo, hi):
        acc = tl.zeros([BLOCK], tl.float64)
        for s0 in range(0, S, BLOCK):
            o = s0 + tl.arange(0, BLOCK)
            acc += tl.load(p_ptr + r * S + o, mask=o < S, other=0).to(tl.float64)
        tot += tl.sum(acc, 0)
    res = scalar_as(weight, tl.float64) * (tot / scalar_as(div, tl.float64))
    tl.store(out_ptr + lo, res.to(out_ptr.dtype.element_ty))


def finish(partials: torch.Tensor, out: torch.Tensor, weight: float = 1.0, total: bool = False, div: float = 1.0):
    """Reduce the ``[R, S]`` partials into ``out``: ``R`` row sums, or with ``total`` one 0-d sum
    divided by ``div``; times ``weight``. One launch."""
    R, S = partials.shape
    grid = (1,) if total else (R,)
    if grid[0]:
        _finish_kernel[grid](partials, out, R, S, float(weight), float(div), ALL=total, BLOCK=FINISH_BLOCK)
    return out
