"""Triton-specific tests of ``triton_kernels`` (on CPU machines under ``TRITON_INTERPRET=1``, which
conftest sets; outputs of every kernel start NaN-poisoned).

Every raw kernel against the reference: fresh seeds, odd sizes, batch 1, channels_last, strided
and expanded inputs, all four dtypes; the multi-tensor single-launch path and its split-K
(several programs per sample) with the deterministic second stage; the 64-bit Philox counter
path (a large logical offset on a small tensor); exact adjoints of the augmentations; NaN
propagation; gradcheck/gradgradcheck in float64 through the public functions with
``backend="triton"``. All tensors are small: the interpreter runs one program at a time.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.autograd import gradcheck as _gradcheck
from torch.autograd import gradgradcheck as _gradgradcheck

import ganreg_ext as gx
from ganreg_ext.augment import pack_diffaug_params
from ganreg_ext.reference import augment as RA
from ganreg_ext.reference import consistency as RC
from ganreg_ext.reference import gradnorm as RG
from ganreg_ext.reference import noise as RN
from ganreg_ext.reference import philox as P
from helpers import DTYPES, LAYOUTS, TOL, assert_sum_close, backend_device, make

if "triton" not in gx.available_backends():
    pytest.skip("the triton backend is unavailable here (needs CUDA or TRITON_INTERPRET=1)", allow_module_level=True)

import triton_kernels as T  # noqa: E402
from triton_kernels import _utils as U  # noqa: E402

DEV = backend_device("triton")
ACC_TOL = {torch.float64: (1e-11, 1e-12), torch.float32: (2e-5, 1e-5)}  # sums: only the order differs


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def close_sum(actual, expected, dtype, factor=1.0, abs_sum=None):
    """Reductions of the same (cast) inputs: compare at the accumulation dtype's tolerance. Signed
    sums pass ``abs_sum`` = Σ|terms|: their rounding error scales with it, not with the result."""
    rtol, atol = ACC_TOL[_acc(dtype)]
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if abs_sum is not None:
        assert_sum_close(actual, expected, abs_sum, rtol * factor, atol * factor)
    else:
        torch.testing.assert_close(actual, expected, rtol=rtol * factor, atol=atol * factor)


def close(actual, expected, dtype, factor=1.0):
    rtol, atol = TOL[dtype]
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=rtol * factor, atol=atol * factor)


class Counter:
    """Counts the launches of a ``@triton.jit``/autotuned kernel (module attribute replaced)."""

    def __init__(self, kernel):
        self.kernel, self.n = kernel, 0

    def __getitem__(self, grid):
        self.n += 1
        return self.kernel[grid]


# ============================================================================================
# layout planning


def test_collapse_dense_layouts_to_one_dim():
    x = torch.empty(2, 3, 5, 7)
    for t in (x, x.contiguous(memory_format=torch.channels_last), x.permute(0, 3, 1, 2)):
        sizes, (st,) = U.collapse(t.shape, [t.stride()], order_by=0, skip_batch=True)
        assert sizes == [105] and st == [1], (t.stride(), sizes, st)
    # logical order: channels_last keeps C and HW apart; contiguous merges everything
    cl = x.contiguous(memory_format=torch.channels_last)
    assert U.collapse(cl.shape, [cl.stride()]) == ([2, 3, 35], [[105, 1, 3]])
    assert U.collapse(x.shape, [x.stride()]) == ([210], [[1]])
    # innermost-strided slice: two dims, no copy
    s = make((2, 3, 5, 7), layout="strided")
    assert U.collapse(s.shape, [s.stride()], order_by=0, skip_batch=True) == ([15, 7], [[15, 2]])
    # more than MAXD unmergeable dims -> None (the caller's documented contiguous fallback)
    big = torch.empty(2, 4, 4, 4, 4, 4, 4)[:, ::2, ::2, ::2, ::2, ::2, ::2]
    assert U.collapse(big.shape, [big.stride()], order_by=0, skip_batch=True) is None


def test_empty_like_strided_keeps_layout_and_poison():
    for t in (make((2, 3, 4, 5), layout="channels_last"), make((2, 3, 4, 5), layout="strided"), torch.randn(3, 4).t()):
        out = U.empty_like_strided(t)
        assert out.stride() == torch.empty_like(t).stride() and out.shape == t.shape
        assert torch.isnan(out).all()  # conftest poisons


def test_interpreter_uses_one_config():
    kernels = [
        T.gradnorm._reduce_kernel,
        T.gradnorm._scale_kernel,
        T.noise._noise_dot_kernel,
        T.noise._noise_axpy_kernel,
        T.consistency._diff_scale_kernel,
        T.augment._diffaug_fwd_kernel,
        T.augment._diffaug_adj_tuned,
        T.augment._cr_fwd_kernel,
        T.augment._cr_adj_kernel,
    ]
    for k in kernels:
        assert len(k.configs) == (1 if U.INTERPRET else len(k.configs)) and len(k.configs) >= 1


# ============================================================================================
# gradient-norm family


def _grads(dtype, layout, B):
    """A multi-input list: an image gradient in ``layout`` (3 chunks per sample: split-K) and a
    small vector gradient, odd sizes."""
    other = "strided" if layout == "contiguous" else "contiguous"
    return [make((B, 3, 33, 31), dtype, DEV, layout), make((B, 7, 5), dtype, DEV, other)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sqnorm_matches_reference(seed, dtype, layout):
    B = 1 if layout == "strided" else 3
    grads = _grads(dtype, layout, B)
    inv = 0.37
    for per_sample in (True, False):
        out = T.gradnorm.sqnorm(grads, inv, per_sample)
        assert out.shape == ((B,) if per_sample else ())
        close_sum(out, RG.grad_sqnorm(grads, per_sample, inv), dtype)


def test_sqnorm_inv_scale_avoids_fp16_overflow(seed):
    # AMP-scaled fp16 gradients: g² (and g itself times a few) would overflow fp16
    g = (torch.randn(2, 3, 9, 11, device=DEV).clamp(-4, 4) * 1.5e4).half()
    assert torch.isfinite(g).all()
    out = T.gradnorm.sqnorm([g], 1 / 65536, True)
    close_sum(out, RG.grad_sqnorm([g], True, 1 / 65536), torch.float16)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_mixed_layouts(seed, dtype):
    B = 2
    a = [make((B, 3, 33, 31), dtype, DEV, "channels_last"), make((B, 7, 5), dtype, DEV, "contiguous")]
    b = [make((B, 3, 33, 31), dtype, DEV, "strided"), make((B, 7, 5), dtype, DEV, "strided")]
    acc = _acc(dtype)
    terms = torch.cat([(x.to(acc) * y.to(acc)).reshape(B, -1) for x, y in zip(a, b)], 1)
    exp, mag = terms.sum(1), terms.abs().sum(1)
    for per_sample in (True, False):
        got = T.gradnorm.dot(a, b, per_sample)
        close_sum(got, exp if per_sample else exp.sum(), dtype, abs_sum=mag if per_sample else mag.sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_scale_values_and_strides(seed, dtype, layout):
    B = 3
    grads = [make((B, 3, 9, 11), dtype, DEV, layout), make((B, 5), dtype, DEV)]
    acc = _acc(dtype)
    for per_sample in (True, False):
        coef = torch.randn((B,) if per_sample else (), dtype=acc, device=DEV)
        outs = T.gradnorm.scale(grads, coef, -1.75, per_sample)
        for g, o in zip(grads, outs):
            c = coef.view(-1, *([1] * (g.dim() - 1))) if per_sample else coef
            close(o, (-1.75 * c * g.to(acc)).to(dtype), dtype)
            assert o.stride() == torch.empty_like(g).stride() and o.dtype == g.dtype
    # an expanded coef (stride 0, as autograd hands out for ``s.sum().backward()``)
    coef = torch.full((), 0.5, dtype=acc, device=DEV).expand(B)
    close(T.gradnorm.scale(grads, coef, 2.0, True)[0], grads[0], dtype)


def test_single_launch_for_a_list_and_split_k(seed, monkeypatch):
    f32 = torch.float32
    grads = [make((2, 3, 33, 31), f32, DEV, "channels_last"), make((2, 5), f32, DEV), make((2, 3, 4, 4), f32, DEV, "strided")]
    red, sums, sc = Counter(T.gradnorm._reduce_kernel), Counter(U._sum_rows_kernel), Counter(T.gradnorm._scale_kernel)
    monkeypatch.setattr(T.gradnorm, "_reduce_kernel", red)
    monkeypatch.setattr(U, "_sum_rows_kernel", sums)
    monkeypatch.setattr(T.gradnorm, "_scale_kernel", sc)
    s = T.gradnorm.sqnorm(grads, 1.0, True)
    assert (red.n, sums.n) == (1, 1)
    close_sum(s, RG.grad_sqnorm(grads, True, 1.0), torch.float32)
    T.gradnorm.scale(grads, torch.ones(2, device=DEV), 2.0, True)
    assert sc.n == 1
    # split-K really splits: the big tensor needs several programs per sample
    assert 3 * 33 * 31 > U.chunk_size(2 * 3 * 33 * 31, 3 * 33 * 31)
    # a second dtype forms a second group (one launch each), same single second stage
    red.n = sums.n = 0
    mixed = grads + [make((2, 6), torch.float16, DEV)]
    close_sum(T.gradnorm.sqnorm(mixed, 1.0, True), RG.grad_sqnorm(mixed, True, 1.0), torch.float32)
    assert (red.n, sums.n) == (2, 1)


def test_reductions_deterministic_and_nan_propagates(seed):
    grads = [make((3, 3, 33, 31), torch.float32, DEV, "channels_last"), make((3, 9), torch.float32, DEV)]
    a, b = T.gradnorm.sqnorm(grads, 1.0, True), T.gradnorm.sqnorm(grads, 1.0, True)
    assert torch.equal(a, b)
    grads[0][1, 2, 30, 7] = float("nan")
    grads[1][2, 4] = float("inf")
    out = T.gradnorm.sqnorm(grads, 1.0, True)
    assert torch.isfinite(out[0]) and torch.isnan(out[1]) and torch.isinf(out[2])
    assert torch.isnan(T.gradnorm.dot(grads, grads, False))


def test_per_sample_false_shapes_differ_and_special_layouts(seed):
    grads = [make((4, 3), torch.float64, DEV), make((7,), torch.float64, DEV), torch.randn((), dtype=torch.float64)]
    close_sum(T.gradnorm.sqnorm(grads, 2.0, False), RG.grad_sqnorm(grads, False, 2.0), torch.float64)
    # expanded (stride 0) and > MAXD unmergeable dims (contiguous fallback)
    e = torch.randn(3, 1, 5, dtype=torch.float64).expand(3, 4, 5)
    big = torch.randn(2, 4, 4, 4, 4, 4, 4, dtype=torch.float64)[:, ::2, ::2, ::2, ::2, ::2, ::2]
    for g in (e, big):
        close_sum(T.gradnorm.sqnorm([g], 1.0, True), RG.grad_sqnorm([g], True, 1.0), torch.float64)
        outs = T.gradnorm.scale([g], torch.full((g.shape[0],), 3.0, dtype=torch.float64), 1.0, True)
        torch.testing.assert_close(outs[0], 3 * g)


# ============================================================================================
# noise family (SPEC §3 stream, generated in registers)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_noise_dot_matches_reference(seed, dtype, layout):
    x = make((2, 3, 5, 7), dtype, DEV, layout)  # 210 elements: not a multiple of 4
    s = (seed << 30) | 12345  # 61-bit seed: both key words matter
    n = P.normal_like(tuple(x.shape), s, DEV).to(_acc(dtype))
    exp = 0.25 * (x.to(_acc(dtype)) * n).sum()
    mag = 0.25 * (x.to(_acc(dtype)) * n).abs().sum()
    # the stream is float32 in every backend: float64 agrees to float32 level only
    close_sum(T.noise.noise_dot(x, s, 0.25), exp, torch.float32, factor=4, abs_sum=mag)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_noise_axpy_matches_reference(seed, dtype, layout):
    x = make((3, 2, 7, 5), dtype, DEV, layout)
    s = seed * 7919 + 2**40
    alpha = torch.tensor(0.3, dtype=_acc(dtype), device=DEV)
    out = T.noise.noise_axpy(x, alpha, s, 2.0, list(x.shape), dtype)
    assert out.is_contiguous() and out.dtype == dtype
    # the stream is float32 in every backend: float64 results agree to float32 level only
    noise_close(out, RN.instance_noise(x, 0.6, s), dtype)
    # x = None: the noise alone, any output dtype
    y = T.noise.noise_axpy(None, torch.tensor(1.0, device=DEV), s, 1.0, [2, 3, 11], dtype)
    noise_close(y, P.normal_like((2, 3, 11), s, DEV).to(dtype), dtype)


def noise_close(actual, expected, dtype):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    rtol, atol = (1e-6, 1e-6) if dtype == torch.float64 else TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("offset", [4 * (2**32 - 7), 2**40 + 4 * 12345, 2**62 - 2**20])
def test_noise_64bit_counter_path(seed, offset):
    """Counters at and beyond 2**32 (counter word 1 = c >> 32), checked on a small tensor."""
    s = (seed << 31) | 1
    n = 77
    exp = P.normal_stream(n, s, DEV, offset=offset)
    out = T.noise.noise_axpy_at(None, torch.tensor(1.0, device=DEV), s, 1.0, [n], torch.float32, offset=offset)
    torch.testing.assert_close(out, exp, rtol=0, atol=1e-5)
    if offset < 2**32 * 4:  # the window crosses c = 2**32, where a 32-bit counter would wrap to 0
        assert not torch.allclose(out[-8:], P.normal_stream(8, s, DEV, offset=0)[:8], atol=1e-3)
    x = make((n,), torch.float64, DEV)
    dot = T.noise.noise_dot_at(x, s, 0.5, offset=offset)
    torch.testing.assert_close(dot, 0.5 * (x * exp.double()).sum(), rtol=1e-6, atol=1e-6)


def test_noise_dot_split_over_programs(seed, monkeypatch):
    x = make((2, 3, 25, 21), torch.float32, DEV, "channels_last")  # 3150 elements: several programs
    counter = Counter(U._sum_rows_kernel)
    monkeypatch.setattr(U, "_sum_rows_kernel", counter)
    terms = x * P.normal_like(tuple(x.shape), seed, DEV) * 0.5
    close_sum(T.noise.noise_dot(x, seed, 0.5), terms.sum(), torch.float32, factor=4, abs_sum=terms.abs().sum())
    assert counter.n == 1 and x.numel() > 4 * 64


def test_noise_large_seed_and_determinism(seed):
    x = make((1, 3, 4, 5), torch.float32, DEV)
    s = 2**63 - 1 - seed
    terms = x * P.normal_like(tuple(x.shape), s, DEV)
    a, b = T.noise.noise_dot(x, s, 1.0), T.noise.noise_dot(x, s, 1.0)
    assert torch.equal(a, b)
    close_sum(a, terms.sum(), torch.float32, abs_sum=terms.abs().sum())
    assert not torch.allclose(a, T.noise.noise_dot(x, s - 1, 1.0))


# ============================================================================================
# consistency family


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sq_diff_sum_and_diff_scale(seed, dtype, layout):
    a = make((3, 5, 9, 7), dtype, DEV, layout)
    b = make((3, 5, 9, 7), dtype, DEV, "strided" if layout != "strided" else "channels_last")
    close_sum(T.consistency.sq_diff_sum(a, b), RC.sq_diff_sum(a, b), dtype)
    acc = _acc(dtype)
    coef = torch.tensor(-0.7, dtype=acc, device=DEV)
    oa, ob = T.consistency.diff_scale(a, b, coef)
    d = coef * (a.to(acc) - b.to(acc))
    assert oa.is_contiguous() and ob.is_contiguous()
    close(oa, d.to(dtype), dtype)
    close(ob, (-d).to(dtype), dtype)


def test_consistency_0d_and_nan(seed):
    a, b = torch.randn((), device=DEV), torch.randn((), device=DEV)
    close_sum(T.consistency.sq_diff_sum(a, b), RC.sq_diff_sum(a, b), torch.float32)
    x = make((4, 6), torch.float32, DEV)
    y = x.clone()
    y[2, 3] = float("nan")
    assert torch.isnan(T.consistency.sq_diff_sum(x, y))


# ============================================================================================
# augmentation family


def _diffaug(x, policy, gen=None):
    B, _, H, W = x.shape
    params = RA.sample_diffaug_params(B, H, W, policy, x.device, gen)
    return params, pack_diffaug_params(params, B)


POLICIES = [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_diff_augment_matches_reference(seed, dtype, layout):
    x = make((2, 3, 13, 11), dtype, DEV, layout)
    for policy in POLICIES:
        params, (f, i, flags) = _diffaug(x, policy)
        out = T.augment.diff_augment(x, f, i, flags)
        assert out.is_contiguous() and out.dtype == dtype
        close(out, RA.diff_augment(x, params), dtype, factor=2)


def test_diff_augment_single_colour_ops_and_wide_channels(seed):
    x = make((1, 11, 6, 9), torch.float64, DEV, "channels_last")  # C > channel block, batch 1
    B, C, H, W = x.shape
    for keys in (["brightness"], ["saturation"], ["contrast"], ["saturation", "contrast", "cutout"]):
        full = RA.sample_diffaug_params(B, H, W, ("color", "translation", "cutout"), DEV)
        params = {k: full[k] for k in keys}
        f, i, flags = pack_diffaug_params(params, B)
        close(T.augment.diff_augment(x, f, i, flags), RA.diff_augment(x, params), torch.float64)


def _inner(a, b):
    return (a.double() * b.double()).sum()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_diff_augment_adjoint_is_exact(seed, layout):
    """<A x, g> = <x, Aᵀ g> for the linear part A (flags without brightness), float64."""
    x = make((3, 3, 9, 12), torch.float64, DEV, layout)
    g = make((3, 3, 9, 12), torch.float64, DEV, "channels_last" if layout != "channels_last" else "strided")
    for policy in POLICIES:
        _, (f, i, flags) = _diffaug(x, policy)
        lin = flags & ~1
        ax = T.augment.diff_augment(x, f, i, lin)
        atg = T.augment.diff_augment_adj(g, f, i, flags)  # brightness is ignored by the adjoint
        torch.testing.assert_close(_inner(ax, g), _inner(x, atg), rtol=1e-12, atol=1e-10)
        assert atg.is_contiguous()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cr_augment_matches_reference(seed, dtype, layout):
    x = make((3, 3, 17, 10), dtype, DEV, layout)
    B, _, H, W = x.shape
    params = RA.sample_cr_params(B, H, W, DEV)
    iparams = torch.cat([params["flip"].to(torch.int32).view(B, 1), params["translation"].to(torch.int32)], 1)
    out = T.augment.cr_augment(x, iparams)
    assert out.is_contiguous() and out.dtype == dtype
    torch.testing.assert_close(out, RA.cr_augment(x, params), rtol=0, atol=0)


def _reflect(p, n):
    p = torch.where(p < 0, -p, p)
    return torch.where(p >= n, 2 * (n - 1) - p, p)


@pytest.mark.parametrize("H,W", [(7, 5), (1, 6), (2, 2)])
def test_cr_extreme_shifts_and_adjoint(seed, H, W):
    """|t| up to N−1 (beyond the reference's padding): forward by the contract's formula, adjoint exact."""
    B, C = 6, 2
    x = make((B, C, H, W), torch.float64, DEV, "channels_last")
    g = make((B, C, H, W), torch.float64, DEV, "strided")
    tx = torch.tensor([H - 1, -(H - 1), 0, 1 - H, H - 1, 0])[:B]
    ty = torch.tensor([W - 1, -(W - 1), W - 1, 0, -(W - 1) // 2, 1 - W])[:B]
    flip = torch.tensor([1, 0, 1, 1, 0, 0])[:B]
    iparams = torch.stack([flip, tx, ty], 1).to(torch.int32).to(DEV)
    out = T.augment.cr_augment(x, iparams)
    rows = _reflect(torch.arange(H).view(1, H, 1) + tx.view(B, 1, 1), H).expand(B, H, W)
    cols = _reflect(torch.arange(W).view(1, 1, W) + ty.view(B, 1, 1), W).expand(B, H, W)
    cols = torch.where(flip.view(B, 1, 1) == 1, W - 1 - cols, cols)
    exp = x.permute(0, 2, 3, 1)[torch.arange(B).view(B, 1, 1), rows, cols].permute(0, 3, 1, 2)
    torch.testing.assert_close(out, exp, rtol=0, atol=0)
    torch.testing.assert_close(_inner(out, g), _inner(x, T.augment.cr_augment_adj(g, iparams)), rtol=1e-12, atol=1e-10)


def test_augment_nan_propagates(seed):
    x = make((2, 3, 8, 8), torch.float32, DEV)
    x[1, 0, 3, 3] = float("nan")
    params = {"brightness": torch.rand(2), "saturation": torch.rand(2), "contrast": torch.rand(2)}
    f, i, flags = pack_diffaug_params(params, 2)
    out = T.augment.diff_augment(x, f, i, flags)
    assert torch.isnan(out[1]).all() and torch.isfinite(out[0]).all()  # contrast spreads it over the sample


# ============================================================================================
# gradcheck / gradgradcheck (float64) through the public functions with backend="triton"


def gradcheck(fn, inputs):
    # fast mode (random projections of the Jacobian): few kernel launches, which the interpreter needs
    return _gradcheck(fn, inputs, fast_mode=True)


def gradgradcheck(fn, inputs):
    return _gradgradcheck(fn, inputs, fast_mode=True)


def _x(*shape, layout="contiguous"):
    return make(shape, torch.float64, DEV, layout).requires_grad_()


def test_gradcheck_gradnorm_penalties(seed):
    g1, g2 = _x(2, 2, 3, 3, layout="channels_last"), _x(2, 4)
    fn = lambda a, b: gx.r1_penalty([a, b], gamma=3.0, backend="triton")  # noqa: E731
    assert gradcheck(fn, (g1, g2)) and gradgradcheck(fn, (g1, g2))
    gp = lambda a: gx.gradient_penalty(a, center=0.5, backend="triton", reduction="sum")  # noqa: E731
    assert gradcheck(gp, (g1,)) and gradgradcheck(gp, (g1,))
    tot = lambda a, b: gx.grad_sqnorm([a, b], per_sample=False, inv_scale=0.5, backend="triton")  # noqa: E731
    assert gradcheck(tot, (g1, g2)) and gradgradcheck(tot, (g1, g2))


def test_gradcheck_noise_ops(seed):
    s = seed + 2**33
    img = _x(2, 2, 3, 4, layout="strided")
    nd = lambda a: gx.path_length_noise_dot(a, s, backend="triton")  # noqa: E731
    assert gradcheck(nd, (img,)) and gradgradcheck(nd, (img,))
    inn = lambda a: gx.instance_noise(a, 0.3, s, backend="triton")  # noqa: E731
    assert gradcheck(inn, (img,)) and gradgradcheck(inn, (img,))
    # backward of the noise-dot is the stream itself: d/dx Σ x·y = y
    (grad,) = torch.autograd.grad(nd(img), img)
    torch.testing.assert_close(grad, gx.path_length_noise(img.shape, s, DEV, torch.float64), rtol=1e-6, atol=1e-7)


def test_gradcheck_consistency_and_augment(seed):
    a, b = _x(3, 5), _x(3, 5, layout="strided")
    cl = lambda p, q: gx.consistency_loss(p, q, weight=2.0, backend="triton")  # noqa: E731
    assert gradcheck(cl, (a, b)) and gradgradcheck(cl, (a, b))
    x = _x(2, 3, 4, 5, layout="channels_last")
    params = gx.sample_diffaug_params(2, 4, 5, "color,translation,cutout", DEV)
    da = lambda t: gx.diff_augment(t, params=params, backend="triton")  # noqa: E731
    assert gradcheck(da, (x,)) and gradgradcheck(da, (x,))
    crp = RA.sample_cr_params(2, 4, 5, DEV)
    crp["translation"] = torch.tensor([[-1, 1], [0, -1]])
    ca = lambda t: gx.cr_augment(t, params=crp, backend="triton")  # noqa: E731
    assert gradcheck(ca, (x,)) and gradgradcheck(ca, (x,))


def test_public_results_match_reference(seed):
    g = make((2, 3, 8, 8), torch.float32, DEV, "channels_last")
    close_sum(gx.r1_penalty(g, backend="triton"), gx.r1_penalty(g, backend="reference"), torch.float32)
    nd = [gx.path_length_noise_dot(g, seed, backend=b) for b in ("triton", "reference")]
    torch.testing.assert_close(nd[0], nd[1], rtol=1e-5, atol=1e-5)
    assert math.isfinite(float(gx.consistency_loss(g, g.flip(0), backend="triton")))


# ============================================================================================
# the compiled path, without a GPU: every kernel through Triton's full pipeline to an sm_90/sm_80 cubin

_COMPILE_SCRIPT = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.runtime.autotuner import Autotuner
    import triton_kernels as T
    from triton_kernels import _utils as U

    def check(kernel, sig, consts, cc=90):
        fn = kernel.fn if isinstance(kernel, Autotuner) else kernel
        full = {n: "constexpr" if n in consts else sig[n] for n in fn.arg_names}
        # pointer arguments 16-byte aligned, as Triton's launcher specializes aligned tensors
        attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in sig if sig[n].startswith("*")}
        return triton.compile(triton.compiler.ASTSource(fn, full, consts, attrs), target=GPUTarget("cuda", cc, 32)).asm["ptx"]

    tab = dict(tab_ptr="*i64", slot_ptr="*i64")
    red = dict(**tab, part_ptr="*fp32", a_ref="*fp16", b_ref="*bf16", inv_scale="fp64", S="i32", S_total="i32", slot_base="i32")
    check(T.gradnorm._reduce_kernel, red, dict(NDIM=4, MODE=2, ACC=tl.float32, CHUNK=4096, BLOCK=1024,
          ALIGN=False, SINGLE=False, VA=8, VB=8))
    # one aligned dense tensor: 128-bit loads
    ptx = check(T.gradnorm._reduce_kernel, red, dict(NDIM=1, MODE=0, ACC=tl.float32, CHUNK=4096, BLOCK=1024,
                ALIGN=True, SINGLE=True, VA=8, VB=8))
    assert "ld.global.v4" in ptx, "sqnorm of one aligned tensor is not vectorized"
    sc = dict(**tab, coef_ptr="*fp64", coef_stride="i32", g_ref="*fp64", o_ref="*fp64", factor="fp64", S="i32")
    check(T.gradnorm._scale_kernel, sc, dict(NDIM=2, PER_SAMPLE=True, ACC=tl.float64, CHUNK=4096, BLOCK=2048,
          ALIGN=False, SINGLE=False, VA=2, VB=2), cc=80)
    ptx = check(T.gradnorm._scale_kernel, sc, dict(NDIM=1, PER_SAMPLE=True, ACC=tl.float64, CHUNK=4096, BLOCK=2048,
                ALIGN=True, SINGLE=True, VA=2, VB=2))
    assert "st.global.v4" in ptx or "st.global.v2" in ptx, "scale of one aligned tensor is not vectorized"
    check(U._sum_rows_kernel, dict(p_ptr="*fp32", out_ptr="*fp32", S="i32", mult="fp64"), dict(BLOCK=1024))
    ints = {k: "i64" for k in ("total", "n1", "n2", "n3", "st0", "st1", "st2", "st3")}
    check(T.noise._noise_dot_kernel, dict(x_ptr="*bf16", part_ptr="*fp32", seed="i64", base_c="i64", **ints),
          dict(NDIM=3, ACC=tl.float32, CHUNK_C=1024, BLOCK_C=512))
    check(T.noise._noise_axpy_kernel, dict(x_ptr="*fp16", out_ptr="*fp16", alpha_ptr="*fp32", seed="i64", base_c="i64",
          scale="fp64", **ints), dict(HAS_X=True, NDIM=2, ACC=tl.float32, BLOCK_C=256))
    ints = {k: "i32" for k in ("total", "n1", "n2", "n3", "sa0", "sa1", "sa2", "sa3", "sb0", "sb1", "sb2", "sb3")}
    check(T.consistency._diff_scale_kernel, dict(a_ptr="*fp16", b_ptr="*fp16", oa_ptr="*fp16", ob_ptr="*fp16",
          coef_ptr="*fp32", **ints), dict(NDIM=2, ACC=tl.float32, BLOCK=1024))
    img = dict(C="i32", H="i32", W="i32", ch="i32", cw="i32")
    check(T.augment._diffaug_fwd_kernel, dict(x_ptr="*fp16", out_ptr="*fp16", f_ptr="*fp32", i_ptr="*i32",
          sum_ptr="*fp32", sxb="i64", sxc="i32", sxh="i32", sxw="i32", **img), dict(FLAGS=31, ACC=tl.float32, CB=4, BLOCK_P=256))
    for so in (True, False):
        check(T.augment._diffaug_adj_kernel, dict(g_ptr="*fp64", out_ptr="*fp64", f_ptr="*fp32", i_ptr="*i32",
              sum_ptr="*fp64", sgb="i64", sgc="i32", sgh="i32", sgw="i32", **img),
              dict(FLAGS=31, ACC=tl.float64, CB=4, SUM_ONLY=so, BLOCK_P=256))
    st = dict(C="i32", H="i32", W="i32", sxb="i32", sxc="i32", sxh="i32", sxw="i32")
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
    ptxas) for sm_90 (one for sm_80) in a process without ``TRITON_INTERPRET``."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "compiled all" in res.stdout, res.stderr[-4000:]
