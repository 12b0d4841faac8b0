"""What only the Triton launchers have (``ganreg_ext.triton_kernels.<family>.<op>``, called directly;
on CPU machines under ``TRITON_INTERPRET=1``, which conftest sets; outputs start NaN-poisoned).
Values, dtypes, layouts, gradients, NaN and bad input of every op are tested through the public API
on every backend by the family test files, and every chunk/block constant by ``test_tiles.py``
(docs/testing.md).

Here: layout collapsing, the config invariants of the GPU configs (checked on CPU), which arguments
are specialized, the device checks, the ``inv_scale`` paths, the single-tensor argument path and the
cached multi-tensor tables (launch counts), stride patterns the planner falls back on, the 64-bit
Philox counter path, colour-op subsets and exact adjoints only the raw flags reach, and every kernel
compiled for sm_90/sm_80 without a GPU.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ganreg_ext._contract import RED_MEAN, RED_NONE, RED_SUM, RED_TOTAL
from ganreg_ext.augment import pack_diffaug_params
from ganreg_ext.reference import augment as RA
from ganreg_ext.reference import gradnorm as RG
from ganreg_ext.reference import philox as P
from helpers import LAYOUTS, TOL, assert_close, assert_sum_close, make

pytest.importorskip("triton")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton kernels need CUDA or TRITON_INTERPRET=1", allow_module_level=True)

from triton.runtime.autotuner import Autotuner  # noqa: E402

import ganreg_ext.triton_kernels as T  # noqa: E402
from ganreg_ext.triton_kernels import _utils as U  # noqa: E402

DEV = "cpu" if U.INTERPRET else "cuda"
REDUCTIONS = [RED_NONE, RED_SUM, RED_MEAN, RED_TOTAL]
F16, F32, F64 = torch.float16, torch.float32, torch.float64


def _acc(*dtypes):
    return F64 if F64 in dtypes else F32


def close_sum(actual, expected, abs_sum=None, factor=1.0, level=None):
    """A reduction against the reference's (same terms, another order): ``helpers.assert_sum_close``
    at the accumulation dtype's ``helpers.TOL`` (``level`` overrides it: float64 results of the float32
    noise stream agree to float32 level only). ``abs_sum`` defaults to |expected| (sums of squares)."""
    level = level or actual.dtype
    rtol, atol = TOL[level]
    abs_sum = expected.abs() if abs_sum is None else abs_sum
    assert_sum_close(actual, expected, abs_sum, rtol * factor, atol * factor, eps=torch.finfo(level).eps)


class Counter:
    """Counts the launches of a jit/autotuned kernel (module attribute replaced)."""

    def __init__(self, kernel):
        self.kernel, self.n = kernel, 0

    def __getitem__(self, grid):
        self.n += 1
        return self.kernel[grid]


def spanning(B: int) -> int:
    """A per-sample size (a multiple of 8: the aligned 128-bit path) spanning two full split-K
    chunks plus a tail at the chunk size in force here (≥ 4096 on GPU, ≥ 256 interpreted)."""
    for k in range(8, 30):
        n = 2**k + 8
        if n > 2 * U.chunk_size(B * n, n):
            return n
    raise AssertionError("unreachable")


def image_h(B: int, C: int = 3, W: int = 31) -> int:
    """An odd height whose ``[B, C, H, W]`` sample spans more than two split-K chunks here."""
    H = 33
    while C * H * W <= 2 * U.chunk_size(B * C * H * W, C * H * W):
        H += 2
    return H


# ============================================================================================
# infrastructure: layouts, configs, device checks


def test_collapse_dense_layouts_to_one_dim():
    x = torch.empty(2, 3, 5, 7)
    for t in (x, x.contiguous(memory_format=torch.channels_last), x.permute(0, 3, 1, 2)):
        sizes, (st,) = U.collapse(tuple(t.shape), (t.stride(),), 0, True)
        assert sizes == (105,) and st == (1,), (t.stride(), sizes, st)
    # logical order: channels_last keeps C and HW apart; contiguous merges everything
    cl = x.contiguous(memory_format=torch.channels_last)
    assert U.collapse(tuple(cl.shape), (cl.stride(),)) == ((2, 3, 35), ((105, 1, 3),))
    assert U.collapse(tuple(x.shape), (x.stride(),)) == ((210,), ((1,),))
    # innermost-strided slice: two dims, no copy
    s = make((2, 3, 5, 7), layout="strided")
    assert U.collapse(tuple(s.shape), (s.stride(),), 0, True) == ((15, 7), ((15, 2),))
    # more than MAXD unmergeable dims -> None (the caller's documented contiguous fallback)
    big = torch.empty(2, 4, 4, 4, 4, 4, 4)[:, ::2, ::2, ::2, ::2, ::2, ::2]
    assert U.collapse(tuple(big.shape), (big.stride(),), 0, True) is None


def _jit(k):
    """(Python function, do_not_specialize names) of a kernel, compiled or interpreted, tuned or not."""
    k = k.fn if isinstance(k, Autotuner) else k
    dns = k.do_not_specialize if hasattr(k, "do_not_specialize") else k.kwargs.get("do_not_specialize") or []
    return k.fn, set(dns)


def _split_k_blocks(gpu: bool):
    """Elements per inner iteration of every split-K kernel, over all its configs."""
    reduce_cfg = T.gradnorm.REDUCE_GPU if gpu else T.gradnorm.REDUCE_INTERP
    scale_cfgs = T.gradnorm.SCALE_GPU if gpu else [T.gradnorm.SCALE_INTERP]
    dot_cfg = T.noise.DOT_GPU if gpu else T.noise.DOT_INTERP
    return [reduce_cfg.kwargs["BLOCK"], 4 * dot_cfg.kwargs["BLOCK_C"]] + [c.kwargs["BLOCK"] for c in scale_cfgs]


@pytest.mark.parametrize("gpu", [True, False])
def test_every_block_divides_every_chunk(gpu):
    """``range(0, chunk, BLOCK)`` must cover exactly a program's chunk for every config and size
    class, GPU configs included (checked here on CPU): fails if a GPU config gets a BLOCK above the
    chunk floor or the floor drops below the largest BLOCK."""
    blocks = _split_k_blocks(gpu)
    sizes = sorted({1, 3, 255, 1000, 4097, 10**5, 3 * 10**6} | {2**k + d for k in range(0, 40, 3) for d in (-1, 0, 1)})
    for total in sizes:
        for longest in {1, max(1, total // 7), total}:
            c = U.chunk_size(total, longest, gpu=gpu)
            assert c & (c - 1) == 0, (total, longest, c)
            for blk in blocks:
                assert blk <= c and c % blk == 0, (gpu, total, longest, c, blk)
    assert max(blocks) <= U.chunk_size(1, 1, gpu=gpu)  # the floor itself
    assert U.chunk_size(2**40, 2**40, gpu=True) == U.GPU_CHUNK_MAX


def test_reductions_fixed_config_elementwise_tuned_by_size_class():
    """Reductions are plain jit kernels (one config: reproducible across processes); every
    autotuned kernel is keyed by a runtime size class, never a constexpr that recompiles per size."""
    for k in (T.gradnorm._reduce_kernel, T.noise._noise_dot_kernel, T.augment._diffaug_adj_kernel, U._finish_kernel):
        assert not isinstance(k, Autotuner)
    tuned = [T.gradnorm._scale_kernel, T.noise._noise_axpy_kernel, T.consistency._diff_scale_kernel]
    tuned += [T.augment._diffaug_fwd_kernel, T.augment._diffaug_adj_tuned, T.augment._cr_fwd_kernel, T.augment._cr_adj_kernel]
    for k in tuned:
        fn, _ = _jit(k)
        size_keys = [n for n in k.keys if n in ("size_class", "chunk")]
        ann = inspect.signature(fn).parameters[size_keys[0]].annotation
        assert len(size_keys) == 1 and "constexpr" not in str(ann), (fn.__name__, k.keys)
        assert len(k.configs) == (1 if U.INTERPRET else len(k.configs)) >= 1
    assert U.size_class(1) == U.size_class(4096) == 4096 and U.size_class(5000) == 8192 and U.size_class(2**40) == 2**24


def test_per_call_scalars_are_not_specialized():
    dns = [
        (T.noise._noise_dot_kernel, {"seed", "base_c"}),
        (T.noise._noise_axpy_kernel, {"seed", "base_c", "scale"}),
        (T.gradnorm._scale_kernel, {"factor", "coef_stride"}),
        (T.gradnorm._reduce_kernel, {"inv_value"}),
        (U._finish_kernel, {"weight", "div"}),
    ]
    for k, names in dns:
        fn, got = _jit(k)
        assert names <= got, (fn.__name__, got)


def test_launchers_refuse_tensors_on_the_wrong_device():
    """Interpreted: tensors off the CPU raise (the interpreter would read device addresses on the
    host); compiled: CPU tensors raise. Meta tensors stand in for the wrong device here."""
    wrong = "meta" if U.INTERPRET else "cpu"
    x = torch.zeros(2, 3, 4, 4, device=wrong)
    calls = [
        lambda: T.gradnorm.sqnorm([x], None, 1.0, RED_NONE),
        lambda: T.gradnorm.scale([x], torch.ones(2, device=wrong), 1.0, True),
        lambda: T.noise.noise_axpy(None, torch.ones((), device=wrong), 1, 1.0, [4], F32),
        lambda: T.consistency.sq_diff_sum(x, x, 1.0),
        lambda: T.augment.cr_augment(x, torch.zeros(2, 3, dtype=torch.int32, device=wrong)),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_interpreter_with_cuda_tensors_raises_clearly():
    code = (
        "import torch, ganreg_ext.triton_kernels as T\n"
        "try:\n    T.gradnorm.sqnorm([torch.ones(2, 3, device='cuda')], None, 1.0, 0)\n"
        "except RuntimeError as e:\n    print('refused:', e)\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "refused:" in res.stdout and "TRITON_INTERPRET=1" in res.stdout, res.stdout + res.stderr[-2000:]


@pytest.mark.skipif(U.INTERPRET or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_tensors_on_a_non_current_device(seed):
    with torch.cuda.device(0):
        g = [make((3, 3, 9, 11), F32, "cuda:1", "channels_last"), make((3, 5), F32, "cuda:1")]
        close_sum(T.gradnorm.sqnorm(g, None, 1.0, RED_NONE), RG.sqnorm(g, None, 1.0, RED_NONE))
        c = torch.randn(3, device="cuda:1")
        out = T.gradnorm.scale(g, c, 2.0, True)[0]
        torch.testing.assert_close(out, (2.0 * c).view(3, 1, 1, 1) * g[0], rtol=0, atol=0)
        x = make((2, 3, 8, 8), F32, "cuda:1")
        n = P.normal_like(tuple(x.shape), seed, "cuda:1")
        close_sum(T.noise.noise_dot(x, seed, 1.0), (x * n).sum(), (x * n).abs().sum(), factor=4)


# ============================================================================================
# gradient-norm family


def _inv(kind):
    v = torch.tensor(0.37, dtype=F32)
    return {"none": None, "cpu": v, "device": v.to(DEV)}[kind]


def test_inv_scale_paths():
    """A 0-d tensor on the grads' device is loaded in the kernel; a CPU one (with CUDA grads) is
    read on the host and passed by value; None is 1."""
    v = torch.tensor(0.25)
    assert T.gradnorm._inv(None, torch.device("cpu")) == (1.0, None)
    assert T.gradnorm._inv(v, v.device)[1] is v
    assert T.gradnorm._inv(v, torch.device("meta")) == (0.25, None)


def test_sqnorm_total_any_shapes_and_0d(seed):
    grads = [make((4, 3), F64, DEV), make((7,), F64, DEV), torch.randn((), dtype=F64, device=DEV)]
    inv = torch.tensor(2.0, dtype=F64, device=DEV)
    close_sum(T.gradnorm.sqnorm(grads, inv, 1.5, RED_TOTAL), RG.sqnorm(grads, inv, 1.5, RED_TOTAL))
    with pytest.raises(ValueError, match="reduction"):
        T.gradnorm.sqnorm(grads, None, 1.0, 4)


def test_sqnorm_inv_scale_avoids_fp16_overflow(seed):
    # AMP-scaled fp16 gradients: g² (and g itself times a few) would overflow fp16
    g = (torch.randn(2, 3, 9, 11, device=DEV).clamp(-4, 4) * 1.5e4).half()
    inv = torch.tensor(1 / 65536, device=DEV)
    assert torch.isfinite(g).all()
    out = T.gradnorm.sqnorm([g], inv, 1.0, RED_NONE)
    close_sum(out, RG.sqnorm([g], inv, 1.0, RED_NONE))
    assert torch.isfinite(out).all()


def _dot_expected(a, b, per_sample):
    acc = _acc(*(t.dtype for t in a + b))
    B = a[0].shape[0]
    terms = torch.cat([(x.to(acc) * y.to(acc)).reshape(B if per_sample else 1, -1) for x, y in zip(a, b)], 1)
    exp, mag = terms.sum(1), terms.abs().sum(1)
    return (exp, mag) if per_sample else (exp.sum(), mag.sum())


def _scale_expected(g, coef, factor, per_sample):
    """``factor·coef_b`` formed in float64, rounded to the accumulation dtype, times ``g``."""
    acc = _acc(g.dtype)
    c = (factor * coef.double()).to(acc)
    c = c.view(-1, *([1] * (g.dim() - 1))) if per_sample else c.reshape(())
    return (c * g.to(acc)).to(g.dtype)


def close_scaled(out, g, coef, factor, per_sample):
    exp = _scale_expected(g, coef, factor, per_sample)
    assert out.dtype == g.dtype and out.stride() == torch.empty_like(g).stride()
    if g.dtype in (F32, F64):  # the very same two roundings: bitwise equal
        torch.testing.assert_close(out, exp, rtol=0, atol=0)
    else:
        assert_close(out, exp, g.dtype)


@pytest.mark.parametrize("dtype", [F32, F16])
def test_single_aligned_tensor_across_chunks(seed, dtype, monkeypatch):
    """One contiguous tensor whose per-sample size spans several chunks: the argument-only,
    aligned (128-bit) path; 2 launches per reduction, 1 for scale."""
    B = 2
    n = spanning(B)
    x, y = make((B, n), dtype, DEV), make((B, n), dtype, DEV)
    group = T.gradnorm._groups([x], [y], True, 0)[0]
    *_, S, _, meta = T.gradnorm._descriptors(group, U.chunk_size(B * n, n), x.device)
    assert meta["SINGLE"] and meta["ALIGN"] and S >= 3
    red, fin, sc = Counter(T.gradnorm._reduce_kernel), Counter(U._finish_kernel), Counter(T.gradnorm._scale_kernel)
    monkeypatch.setattr(T.gradnorm, "_reduce_kernel", red)
    monkeypatch.setattr(U, "_finish_kernel", fin)
    monkeypatch.setattr(T.gradnorm, "_scale_kernel", sc)
    for red_code in REDUCTIONS:
        close_sum(T.gradnorm.sqnorm([x], None, 1.3, red_code), RG.sqnorm([x], None, 1.3, red_code))
    assert (red.n, fin.n) == (4, 4)
    exp, mag = _dot_expected([x], [y], True)
    close_sum(T.gradnorm.dot([x], [y], True), exp, mag)
    coef = torch.randn(B, device=DEV)
    close_scaled(T.gradnorm.scale([x], coef, 0.8, True)[0], x, coef, 0.8, True)
    assert sc.n == 1


def test_tables_only_for_lists_and_cached(seed, monkeypatch):
    """One tensor: no host-built table. A list: layout and slot tables built once per layout,
    the pointer table once per set of data pointers; one reduction launch + one finish."""
    built = []
    to_device = T.gradnorm._to_device
    monkeypatch.setattr(T.gradnorm, "_to_device", lambda rows, dev: built.append(len(rows)) or to_device(rows, dev))
    T.gradnorm._layout_tables.cache_clear()
    T.gradnorm._pointer_table.cache_clear()
    x, y = make((2, 3, 5, 7), F32, DEV, "channels_last"), make((2, 3, 5, 7), F32, DEV, "strided")
    T.gradnorm.sqnorm([x], None, 1.0, RED_NONE)
    T.gradnorm.dot([x], [y], True)
    T.gradnorm.scale([y], torch.randn(2, device=DEV), 2.0, True)
    assert built == []
    red, fin = Counter(T.gradnorm._reduce_kernel), Counter(U._finish_kernel)
    monkeypatch.setattr(T.gradnorm, "_reduce_kernel", red)
    monkeypatch.setattr(U, "_finish_kernel", fin)
    grads = [make((2, 3, image_h(2), 31), F32, DEV, "channels_last"), make((2, 5), F32, DEV), y]
    for _ in range(2):
        close_sum(T.gradnorm.sqnorm(grads, None, 1.0, RED_NONE), RG.sqnorm(grads, None, 1.0, RED_NONE))
    assert len(built) == 3 and (red.n, fin.n) == (2, 2)  # layout, slots, pointers: once
    fresh = [g.clone(memory_format=torch.preserve_format) for g in grads[:2]] + [y]
    close_sum(T.gradnorm.sqnorm(fresh, None, 1.0, RED_NONE), RG.sqnorm(fresh, None, 1.0, RED_NONE))
    assert len(built) == 4  # new data pointers: the pointer table only
    # a second dtype forms a second group: two reduction launches, still one finish
    mixed = grads + [make((2, 6), F16, DEV)]
    close_sum(T.gradnorm.sqnorm(mixed, None, 1.0, RED_NONE), RG.sqnorm(mixed, None, 1.0, RED_NONE))
    assert (red.n, fin.n) == (5, 4)


def test_special_layouts(seed):
    # expanded (stride 0) and > MAXD unmergeable dims (contiguous fallback)
    e = torch.randn(3, 1, 5, dtype=F64, device=DEV).expand(3, 4, 5)
    big = torch.randn(2, 4, 4, 4, 4, 4, 4, dtype=F64, device=DEV)[:, ::2, ::2, ::2, ::2, ::2, ::2]
    for g in (e, big):
        close_sum(T.gradnorm.sqnorm([g], None, 1.0, RED_NONE), RG.sqnorm([g], None, 1.0, RED_NONE))
        coef = torch.randn(g.shape[0], dtype=F64, device=DEV)
        close_scaled(T.gradnorm.scale([g], coef, 3.0, True)[0], g, coef, 3.0, True)


# ============================================================================================
# noise family (docs/semantics.md#path-length-regularization-stylegan2 stream, generated in registers)


@pytest.mark.parametrize("offset", [4 * (2**32 - 7), 2**40 + 4 * 12345, 2**62 - 2**20])
def test_noise_64bit_counter_path(seed, offset):
    """Counters at and beyond 2**32 (counter word 1 = c >> 32), checked on a small tensor."""
    s = (seed << 31) | 1
    n = 77
    exp = P.normal_stream(n, s, DEV, offset=offset)
    out = T.noise.noise_axpy_at(None, torch.tensor(1.0, device=DEV), s, 1.0, [n], F32, offset)
    torch.testing.assert_close(out, exp, rtol=0, atol=1e-5)
    if offset < 2**32 * 4:  # the window crosses c = 2**32, where a 32-bit counter would wrap to 0
        assert not torch.allclose(out[-8:], P.normal_stream(8, s, DEV, offset=0)[:8], atol=1e-3)
    x = make((n,), F64, DEV)
    dot = T.noise.noise_dot_at(x, s, 0.5, offset)
    torch.testing.assert_close(dot, 0.5 * (x * exp.double()).sum(), rtol=1e-6, atol=1e-6)


def test_noise_dot_split_over_programs(seed, monkeypatch):
    n = 3 * U.chunk_size(3 * 10**4, 3 * 10**4) + 44  # several chunks, a ragged tail
    x = make((2, 3, n // 6 + 1, 2), F32, DEV, "channels_last")
    fin = Counter(U._finish_kernel)
    monkeypatch.setattr(U, "_finish_kernel", fin)
    terms = x * P.normal_like(tuple(x.shape), seed, DEV) * 0.5
    close_sum(T.noise.noise_dot(x, seed, 0.5), terms.sum(), terms.abs().sum(), factor=4)
    assert fin.n == 1 and x.numel() > 2 * U.chunk_size(x.numel(), x.numel())


def test_noise_large_seed_and_determinism(seed):
    x = make((1, 3, 4, 5), F32, DEV)
    s = 2**63 - 1 - seed
    terms = x * P.normal_like(tuple(x.shape), s, DEV)
    a, b = T.noise.noise_dot(x, s, 1.0), T.noise.noise_dot(x, s, 1.0)
    assert torch.equal(a, b)
    close_sum(a, terms.sum(), terms.abs().sum(), factor=4)
    assert not torch.allclose(a, T.noise.noise_dot(x, s - 1, 1.0))


# ============================================================================================
# augmentation family


def _diffaug(x, policy, gen=None):
    B, _, H, W = x.shape
    params = RA.sample_diffaug_params(B, H, W, policy, x.device, gen)
    return params, pack_diffaug_params(params, B)


POLICIES = [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")]


def test_diff_augment_single_colour_ops_and_wide_channels(seed):
    x = make((1, 11, 6, 9), torch.float64, DEV, "channels_last")  # C > channel block, batch 1
    B, C, H, W = x.shape
    for keys in (["brightness"], ["saturation"], ["contrast"], ["saturation", "contrast", "cutout"]):
        full = RA.sample_diffaug_params(B, H, W, ("color", "translation", "cutout"), DEV)
        params = {k: full[k] for k in keys}
        f, i, flags = pack_diffaug_params(params, B)
        assert_close(T.augment.diff_augment(x, f, i, flags), RA.diff_augment(x, params), torch.float64)


def _inner(a, b):
    return (a.double() * b.double()).sum()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(3, 3, 9, 12), (2, 3, 23, 29)])  # the second: contrast sums over 3 tiles
def test_diff_augment_adjoint_is_exact(seed, layout, shape):
    """<A x, g> = <x, Aᵀ g> for the linear part A (flags without brightness), float64."""
    x = make(shape, torch.float64, DEV, layout)
    g = make(shape, torch.float64, DEV, "channels_last" if layout != "channels_last" else "strided")
    for policy in POLICIES:
        _, (f, i, flags) = _diffaug(x, policy)
        lin = flags & ~1
        ax = T.augment.diff_augment(x, f, i, lin)
        atg = T.augment.diff_augment_adj(g, f, i, flags)  # brightness is ignored by the adjoint
        torch.testing.assert_close(_inner(ax, g), _inner(x, atg), rtol=1e-12, atol=1e-10)
        assert atg.is_contiguous()


# ============================================================================================
# the compiled path, without a GPU: every kernel through Triton's full pipeline to an sm_90/sm_80 cubin

_COMPILE_SCRIPT = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.runtime.autotuner import Autotuner
    import ganreg_ext.triton_kernels as T
    from ganreg_ext.triton_kernels import _utils as U

    def check(kernel, sig, consts, cc=90):
        fn = kernel.fn if isinstance(kernel, Autotuner) else kernel
        full = {n: "constexpr" if n in consts else sig[n] for n in fn.arg_names}
        # pointer arguments 16-byte aligned, as Triton's launcher specializes aligned tensors
        attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in sig if sig[n].startswith("*")}
        return triton.compile(triton.compiler.ASTSource(fn, full, consts, attrs), target=GPUTarget("cuda", cc, 32)).asm["ptx"]

    lay = {k: "i64" for k in "n sab sbb n1 n2 n3 sa0 sa1 sa2 sa3 sb0 sb1 sb2 sb3".split()}
    tabs = dict(ptr_tab="*i64", lay_tab="*i64", slot_tab="*i64", S="i32", chunk="i32", **lay)
    red = dict(a_ptr="*fp16", b_ptr="*bf16", part_ptr="*fp32", inv_ptr="*fp32", inv_value="fp64", S_total="i32",
               slot_base="i32", **tabs)
    check(T.gradnorm._reduce_kernel, red, dict(NDIM=4, MODE=2, ACC=tl.float32, INV_PTR=False, ALIGN=False,
          SINGLE=False, VA=8, VB=8, BLOCK=4096))
    check(T.gradnorm._reduce_kernel, red, dict(NDIM=3, MODE=1, ACC=tl.float32, INV_PTR=False, ALIGN=False,
          SINGLE=True, VA=8, VB=8, BLOCK=4096), cc=80)
    red.update(a_ptr="*fp32", b_ptr="*fp32")
    for single in (True, False):  # aligned: 128-bit loads, from argument and from table pointers
        ptx = check(T.gradnorm._reduce_kernel, red, dict(NDIM=1, MODE=0, ACC=tl.float32, INV_PTR=True, ALIGN=True,
                    SINGLE=single, VA=4, VB=4, BLOCK=4096))
        assert "ld.global.v4" in ptx, f"aligned sqnorm (single={single}) is not vectorized"
    sc = dict(g_ptr="*fp64", o_ptr="*fp64", coef_ptr="*fp64", coef_stride="i32", factor="fp64", **tabs)
    check(T.gradnorm._scale_kernel, sc, dict(NDIM=2, PER_SAMPLE=True, ACC=tl.float64, ALIGN=False, SINGLE=False,
          VA=2, VB=2, BLOCK=2048), cc=80)
    for single in (True, False):
        ptx = check(T.gradnorm._scale_kernel, sc, dict(NDIM=1, PER_SAMPLE=True, ACC=tl.float64, ALIGN=True,
                    SINGLE=single, VA=2, VB=2, BLOCK=2048))
        assert "st.global.v2" in ptx or "st.global.v4" in ptx, f"aligned scale (single={single}) is not vectorized"
    check(U._finish_kernel, dict(p_ptr="*fp32", out_ptr="*fp32", R="i32", S="i32", weight="fp64", div="fp64"),
          dict(ALL=True, BLOCK=U.FINISH_BLOCK))
    check(U._finish_kernel, dict(p_ptr="*fp64", out_ptr="*fp64", R="i32", S="i32", weight="fp64", div="fp64"),
          dict(ALL=False, BLOCK=U.FINISH_BLOCK))
    ints = {k: "i64" for k in ("total", "n1", "n2", "n3", "st0", "st1", "st2", "st3")}
    check(T.noise._noise_dot_kernel, dict(x_ptr="*bf16", part_ptr="*fp32", seed="i64", base_c="i64", chunk_c="i32",
          **ints), dict(NDIM=3, ACC=tl.float32, BLOCK_C=T.noise.DOT_GPU.kwargs["BLOCK_C"]))
    check(T.noise._noise_axpy_kernel, dict(x_ptr="*fp16", out_ptr="*fp16", alpha_ptr="*fp32", seed="i64", base_c="i64",
          scale="fp64", size_class="i32", **ints), dict(HAS_X=True, NDIM=2, ACC=tl.float32, BLOCK_C=256))
    ints = {k: "i32" for k in ("total", "size_class", "n1", "n2", "n3", "sa0", "sa1", "sa2", "sa3", "sb0", "sb1",
            "sb2", "sb3")}
    check(T.consistency._diff_scale_kernel, dict(a_ptr="*fp16", b_ptr="*fp16", oa_ptr="*fp16", ob_ptr="*fp16",
          coef_ptr="*fp32", **ints), dict(NDIM=2, ACC=tl.float32, BLOCK=1024))
    img = dict(C="i32", H="i32", W="i32", ch="i32", cw="i32", size_class="i32")
    check(T.augment._diffaug_fwd_kernel, dict(x_ptr="*fp16", out_ptr="*fp16", f_ptr="*fp32", i_ptr="*i32",
          sum_ptr="*fp32", sxb="i64", sxc="i32", sxh="i32", sxw="i32", **img), dict(FLAGS=31, ACC=tl.float32, CB=4, BLOCK_P=256))
    for so in (True, False):
        check(T.augment._diffaug_adj_kernel, dict(g_ptr="*fp64", out_ptr="*fp64", f_ptr="*fp32", i_ptr="*i32",
              sum_ptr="*fp64", sgb="i64", sgc="i32", sgh="i32", sgw="i32", **img),
              dict(FLAGS=31, ACC=tl.float64, CB=4, SUM_ONLY=so, BLOCK_P=T.augment.SUM_P))
    st = dict(C="i32", H="i32", W="i32", sxb="i32", sxc="i32", sxh="i32", sxw="i32", size_class="i32")
    check(T.augment._cr_fwd_kernel, dict(x_ptr="*bf16", out_ptr="*bf16", i_ptr="*i32", **st), dict(CB=4, BLOCK_P=512))
    st = {k.replace("sx", "sg"): v for k, v in st.items()}
    check(T.augment._cr_adj_kernel, dict(g_ptr="*fp32", out_ptr="*fp32", i_ptr="*i32", **st),
          dict(ACC=tl.float32, CB=4, BLOCK_P=256))
    print("compiled all")
    """
)


@pytest.mark.slow
def test_kernels_compile_for_hopper_and_ampere_without_gpu():
    """The interpreter does not type-check like the compiler: build every kernel (frontend, LLVM,
    ptxas) for sm_90 (some for sm_80) in a process without ``TRITON_INTERPRET``; aligned
    single-tensor and table-pointer paths must give vector accesses."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "compiled all" in res.stdout, res.stderr[-4000:]


@pytest.mark.skipif(not U.INTERPRET, reason="the interpreter's bfloat16 rounding (compiled kernels round to nearest even)")
def test_interpreter_rounds_bfloat16_like_the_gpu():
    """``_utils`` makes the interpreter's float32/float64 → bfloat16 casts round to nearest even (it
    truncates on its own: about half of random values one unit low), as compiled kernels and torch
    do: explicit casts and the implicit cast of a store; an explicit RTZ cast still truncates."""
    import triton
    import triton.language as tl

    @triton.jit
    def cast(x_ptr, o_ptr, MODE: tl.constexpr):
        i = tl.arange(0, 64)
        x = tl.load(x_ptr + i)
        if MODE == 0:
            tl.store(o_ptr + i, x.to(tl.bfloat16))
        elif MODE == 1:
            tl.store(o_ptr + i, x)
        else:
            tl.store(o_ptr + i, x.to(tl.bfloat16, fp_downcast_rounding="rtz"))

    x = torch.randn(64)
    x[:6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 3.4e38, 1.00390625, 1.01171875])  # ties
    rtz = (x.view(torch.int32) >> 16).to(torch.int16).view(torch.bfloat16)
    assert (rtz != x.to(torch.bfloat16)).sum() > 10  # what truncation would give differs
    for mode, want in ((0, x.to(torch.bfloat16)), (1, x.to(torch.bfloat16)), (2, rtz)):
        out = torch.full((64,), float("nan"), dtype=torch.bfloat16)
        cast[(1,)](x, out, MODE=mode)
        assert torch.equal(out[1:], want[1:]) and out[0].isnan(), mode
    out = torch.empty(64, dtype=torch.bfloat16)
    cast[(1,)](x.double(), out, MODE=0)
    assert torch.equal(out[1:], x.double().to(torch.bfloat16)[1:])
