"""C++/CUDA-specific tests of the native backends (``csrc/``, ``ganreg_ext/ops/native.py``).

CPU kernels against the reference for every op (odd sizes, batch 1, channels_last, non-contiguous,
all four dtypes, poisoned outputs via conftest), the Philox stream against ``reference/philox.py``
including counters >= 2**32, 1-vs-2-thread bitwise determinism, gradcheck/gradgradcheck through the
public functions with ``backend="cpu"``, and the build (sm_80/sm_90 cubins, CUDA kernels registered).
GPU-only tests run the same comparisons on CUDA when a device is present.
"""

from __future__ import annotations

import glob
import os
import subprocess

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
import ganreg_ext.ops.native as native  # noqa: E402  (CI builds the extension: a missing _C fails here)
from ganreg_ext import _dispatch
from ganreg_ext.reference import gradnorm as ref_gn
from ganreg_ext.reference import philox as ref_philox
from helpers import DTYPES, LAYOUTS, TOL, assert_close, assert_sum_close, make

C = torch.ops.ganreg_C
INFO = native.build_info()
HAS_GPU = torch.cuda.is_available() and "cuda" in native.NATIVE_DEVICES
gpu_only = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and the CUDA build of ganreg_ext._C")
DEVICES = ["cpu"] + (["cuda"] if HAS_GPU else [])


def acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def sqn(grads, inv=1.0, per_sample=True, weight=1.0):
    """``C.sqnorm`` in the old (inv, per_sample) terms: reduction 0 (per sample) or 3 (total)."""
    inv_t = None if inv == 1.0 else torch.tensor(inv, dtype=torch.float64)
    return C.sqnorm(grads, inv_t, weight, 0 if per_sample else 3)


def noise_tol(dtype):
    """The noise stream is float32 math with libm/SLEEF/MKL transcendental functions that differ in the
    last ulp between backends (docs/semantics.md#path-length-regularization-stylegan2: agree to 1e-5 absolute), so float64 noise ops agree with the
    reference to float32 precision, not to float64 precision."""
    return torch.float32 if dtype == torch.float64 else dtype


def assert_noise_dot_close(got, want, x, seed, dtype, factor=10):
    """``path_length_noise_dot`` of two backends: a signed sum, so the summation-order error scales
    with Σ|x·y| (``assert_sum_close``), at the noise tolerance of ``dtype``."""
    y = gx.path_length_noise(x.shape, seed, device=x.device, dtype=torch.float64)
    mag = (x.double() * y).abs().sum()
    assert got.dtype == want.dtype
    f32 = torch.finfo(torch.float32).eps  # the stream is float32 math in every backend
    assert_sum_close(got, want, mag, *(factor * t for t in TOL[noise_tol(dtype)]), eps=f32)


# --------------------------------------------------------------------------------------------- build


def test_registration_and_build_info():
    assert "cpu" in native.NATIVE_DEVICES
    assert "cpu" in gx.available_backends()
    for op in native.OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"ganreg_C::{op}", "CPU"), op
        assert _dispatch.has_op(op, "cpu"), op
    for key in ("with_cuda", "cuda_version", "cuda_arch_list", "avx2", "openmp", "compiler"):
        assert key in INFO
    assert gx.backend_info()["build"]["avx2"] == INFO["avx2"]


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs two CPU cores")
def test_cpu_kernels_run_multithreaded():
    """ATen's header-only at::parallel_for is serial in code built without -fopenmp (the kernels then
    silently use one core whatever torch.set_num_threads says): the extension must be built with it."""
    assert INFO["openmp"], "ganreg_ext._C was built without OpenMP: every CPU kernel is single-threaded"
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert C.parallel_threads(64) == 2
        torch.set_num_threads(1)
        assert C.parallel_threads(64) == 1
    finally:
        torch.set_num_threads(n)


def test_avx2_build_is_withheld_on_a_cpu_without_avx2(monkeypatch):
    """An AVX2 build on a CPU without AVX2 would die with SIGILL: the cpu backend is refused by name."""
    import io

    if not INFO["avx2"]:
        pytest.skip("built without AVX2")
    assert native.CPU_UNUSABLE is None  # this machine runs the kernels
    monkeypatch.setattr(native, "open", lambda *a, **k: io.StringIO("flags\t: fpu sse sse2 avx\n"), raising=False)
    why = native._cpu_lacks_avx2()
    assert "avx2" in why and "fma" in why and "GANREG_NO_AVX2=1" in why


@pytest.mark.skipif(not INFO["with_cuda"], reason="ganreg_ext._C was built without CUDA (no nvcc at build time)")
def test_cuda_build_has_sm80_sm90_and_kernels():
    missing = [op for op in native.OPS if not torch._C._dispatch_has_kernel_for_dispatch_key(f"ganreg_C::{op}", "CUDA")]
    assert not missing, f"no CUDA kernel registered for {missing}"
    assert "cuda" in native.NATIVE_DEVICES
    assert {800, 900} <= set(INFO["cuda_arch_list"])
    so = glob.glob(os.path.join(os.path.dirname(gx.__file__), "_C*.so"))
    assert so, "built _C*.so not found"
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        pytest.skip(f"cuobjdump not found at {tool}")
    out = subprocess.run([tool, "--list-elf", so[0]], capture_output=True, text=True, check=True).stdout
    assert "sm_80" in out and "sm_90" in out, out


# --------------------------------------------------------------------------------------------- philox


@pytest.mark.parametrize("scalar", [False, True], ids=["avx2", "scalar"])
@pytest.mark.parametrize("offset", [0, 13, 4 * 2**32 - 37, 2**40 + 3], ids=["0", "13", "cross2^32", "2^40"])
def test_philox_stream_matches_reference(seed, scalar, offset):
    seed63 = (seed * 0x9E3779B97F4A7C15) & (2**63 - 1)  # exercise the high key word too
    n = 1001
    got = C.normal_stream(seed63, offset, n, scalar)
    want = ref_philox.normal_stream(n, seed63, offset=offset)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # bitwise on most elements (libm vs SLEEF may differ in the last ulp)
    assert (got == want).float().mean() > 0.5


def test_philox_scalar_and_vector_paths_agree(seed):
    a = C.normal_stream(seed, 5, 4096, False)
    b = C.normal_stream(seed, 5, 4096, True)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_noise_stream_statistics(seed):
    n = C.normal_stream(seed, 0, 1 << 20, False).double()
    assert abs(n.mean().item()) < 5e-3 and abs(n.var().item() - 1) < 1e-2
    assert torch.isfinite(n).all()


# --------------------------------------------------------------------------------------------- per op, CPU


SHAPES4 = [(1, 3, 5, 7), (3, 2, 9, 11), (2, 3, 100, 90)]  # batch 1, odd sizes, > one 16384-element chunk


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES4, ids=str)
def test_sqnorm_dot_scale_cpu(seed, dtype, layout, shape):
    g = make(shape, dtype, "cpu", layout)
    h = make((shape[0], 5), dtype, "cpu")  # second tensor of the list (multi-input D)
    for per_sample in (True, False):
        for inv in (1.0, 0.25):
            got = sqn([g, h], inv, per_sample)
            want = ref_gn.sqnorm([g, h], None if inv == 1.0 else torch.tensor(inv), 1.0, 0 if per_sample else 3)
            assert got.dtype == acc(dtype) and got.shape == want.shape
            assert_close(got, want.to(got.dtype), dtype, 4)
    a2 = make(shape, dtype, "cpu", "contiguous")
    got = C.dot([g, h], [a2, h], True)
    terms = (g.to(acc(dtype)) * a2.to(acc(dtype))).flatten(1)
    want = terms.sum(1) + h.to(acc(dtype)).square().sum(1)
    mag = terms.abs().sum(1) + h.to(acc(dtype)).square().sum(1)
    assert_sum_close(got, want, mag, *(4 * t for t in TOL[dtype]))  # signed sum: may cancel to ~0
    coef = torch.rand(shape[0], dtype=acc(dtype))
    outs = C.scale([g, h], coef, 3.0, True)
    assert outs[0].stride() == torch.empty_like(g).stride() and outs[0].dtype == dtype
    want0 = (3.0 * coef.view(-1, 1, 1, 1) * g.to(acc(dtype))).to(dtype)
    assert_close(outs[0], want0, dtype)
    assert_close(outs[1], (3.0 * coef.view(-1, 1) * h.to(acc(dtype))).to(dtype), dtype)
    tot = C.scale([g], torch.tensor(0.5, dtype=acc(dtype)), 3.0, False)[0]
    assert_close(tot, (1.5 * g.to(acc(dtype))).to(dtype), dtype)


def test_sqnorm_permuted_and_overlapping_cpu(seed):
    base = torch.randn(4, 6, 5, 3)
    for g in (base.permute(0, 3, 1, 2), base.permute(2, 0, 1, 3), base.expand(2, 4, 6, 5, 3)[1], base[:, ::2, 1:]):
        torch.testing.assert_close(sqn([g], 1.0, True), ref_gn.sqnorm([g], None, 1.0, 0), rtol=2e-5, atol=1e-5)
    g = base.transpose(0, 1)  # batch not outermost in memory
    torch.testing.assert_close(sqn([g], 1.0, True), g.square().flatten(1).sum(1), rtol=2e-5, atol=1e-5)
    # per_sample=False over tensors of different shapes (parameter gradients)
    ps = [torch.randn(7, 3), torch.randn(5), torch.randn(())]
    torch.testing.assert_close(sqn(ps, 1.0, False), sum(p.square().sum() for p in ps), rtol=2e-5, atol=1e-5)


def test_assert_sum_close_rejects_a_missing_term(seed):
    """The signed-sum bound tolerates reordering but not one dropped term of typical size."""
    terms = torch.randn(2, 6000)
    exp, mag = terms.sum(1), terms.abs().sum(1)
    assert_sum_close(terms.flip(1).sum(1), exp, mag, *TOL[torch.float32])
    k = int(terms[0].abs().argsort()[3000])  # a median-size term
    dropped = exp.clone()
    dropped[0] -= terms[0, k]
    with pytest.raises(AssertionError, match="sum mismatch"):
        assert_sum_close(dropped, exp, mag, *TOL[torch.float32])


def test_nan_propagates_cpu():
    g = torch.randn(3, 4, 40, 40)
    g[1, 2, 3, 4] = float("nan")
    s = sqn([g], 1.0, True)
    assert torch.isnan(s[1]) and torch.isfinite(s[[0, 2]]).all()
    g[1, 2, 3, 4] = float("inf")
    assert torch.isinf(sqn([g], 1.0, True)[1])
    assert torch.isnan(C.noise_dot(torch.full((2, 3, 4, 4), float("nan")), 1, 1.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_noise_ops_cpu(seed, dtype, layout):
    x = make((2, 3, 17, 23), dtype, "cpu", layout)
    got = gx.path_length_noise_dot(x, seed, backend="cpu")
    want = gx.path_length_noise_dot(x, seed, backend="reference")
    assert_noise_dot_close(got, want, x, seed, dtype)
    got = gx.instance_noise(x, 0.3, seed, backend="cpu")
    want = gx.instance_noise(x, 0.3, seed, backend="reference")
    assert got.is_contiguous() and got.dtype == dtype
    assert_close(got, want, noise_tol(dtype))
    y = C.noise_axpy(None, torch.tensor(1.0), seed, 0.125, [3, 5, 7, 11], dtype)
    assert_close(y, (ref_philox.normal_like((3, 5, 7, 11), seed) / 8).to(dtype), noise_tol(dtype))


def test_noise_dot_large_cpu(seed):
    x = torch.randn(2, 3, 129, 67).contiguous(memory_format=torch.channels_last)  # several 8192-element tiles
    got = gx.path_length_noise_dot(x, seed, backend="cpu")
    want = gx.path_length_noise_dot(x, seed, backend="reference")
    assert_noise_dot_close(got, want, x, seed, torch.float32, factor=1)
    got64 = gx.path_length_noise_dot(x.double(), seed, backend="cpu")
    want64 = gx.path_length_noise_dot(x.double(), seed, backend="reference")
    assert_noise_dot_close(got64, want64, x, seed, torch.float64, factor=1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_consistency_ops_cpu(seed, dtype, layout):
    a = make((3, 5, 33, 17), dtype, "cpu", layout)
    b = make((3, 5, 33, 17), dtype, "cpu", "contiguous")
    got = C.sq_diff_sum(a, b, 1.0)
    want = (a.to(acc(dtype)) - b.to(acc(dtype))).square().sum()
    assert got.dtype == acc(dtype)
    assert_close(got, want, dtype, 10)
    c = torch.tensor(0.7, dtype=acc(dtype))
    da, db = C.diff_scale(a, b, c)
    assert da.is_contiguous() and db.is_contiguous() and da.dtype == dtype
    d = (a.to(acc(dtype)) - b.to(acc(dtype))) * 0.7
    assert_close(da, d.to(dtype), dtype)
    assert_close(db, (-d).to(dtype), dtype)
    assert_close(gx.consistency_loss(a, b, 2.0, backend="cpu"), gx.consistency_loss(a, b, 2.0, backend="reference"), dtype, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "offset"])
def test_streaming_stores_large_outputs_cpu(seed, dtype, layout):
    """Outputs of >= 8 MiB (kStreamBytes) are written with non-temporal stores after a peeled,
    unaligned head: odd per-sample sizes put every segment start at a different alignment."""
    shape = (3, 5, 419, 1001) if dtype == torch.float32 else (3, 5, 839, 1001)
    if layout == "offset":  # dense rows starting one element past an aligned address
        x = make(shape[:-1] + (shape[-1] + 1,), dtype, "cpu")[..., 1:]
    else:
        x = make(shape, dtype, "cpu", layout)
    y = make(shape, dtype, "cpu", "contiguous")
    (out,) = C.scale([x], torch.tensor([0.5, -2.0, 3.0]), 1.5, True)
    assert out.nbytes >= 8 << 20
    coef = torch.tensor([0.75, -3.0, 4.5]).view(3, 1, 1, 1)
    assert_close(out, (x.float() * coef).to(dtype), dtype)
    da, db = C.diff_scale(x, y, torch.tensor(0.7))
    d = (x.float() - y.float()) * 0.7
    assert_close(da, d.to(dtype), dtype)
    assert_close(db, (-d).to(dtype), dtype)


POLICIES = ["color,translation,cutout", "color", "translation", "cutout", "color,cutout", "translation,cutout"]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_diff_augment_cpu(seed, policy, dtype, layout):
    x = make((3, 3, 12, 9), dtype, "cpu", layout).requires_grad_()
    params = gx.sample_diffaug_params(3, 12, 9, policy)
    got = gx.diff_augment(x, policy, params, backend="cpu")
    want = gx.diff_augment(x, policy, params, backend="reference")
    assert got.is_contiguous() and got.dtype == dtype
    assert_close(got, want, dtype, 4)
    gout = torch.randn(want.shape).to(dtype)
    (g1,) = torch.autograd.grad(got, x, gout)
    (g2,) = torch.autograd.grad(want, x, gout)
    assert_close(g1, g2, dtype, 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (4, 2, 17, 11), (2, 3, 1, 9)], ids=str)
def test_cr_augment_cpu(seed, dtype, layout, shape):
    x = make(shape, dtype, "cpu", layout).requires_grad_()
    params = gx.sample_cr_params(shape[0], shape[2], shape[3])
    got = gx.cr_augment(x, params, backend="cpu")
    want = gx.cr_augment(x, params, backend="reference")
    assert got.is_contiguous() and got.dtype == dtype
    torch.testing.assert_close(got, want.contiguous(), rtol=0, atol=0)
    gout = torch.randn(shape).to(dtype)
    (g1,) = torch.autograd.grad(got, x, gout)
    (g2,) = torch.autograd.grad(want, x, gout)
    assert_close(g1, g2, dtype, 2)


def test_cr_adjoint_extreme_shifts():
    """Every shift |t| <= size/8 and flip against the reference adjoint, including the edges."""
    x = torch.randn(1, 2, 16, 8, dtype=torch.float64, requires_grad=True)
    for flip in (False, True):
        for tx in range(-2, 3):
            for ty in (-1, 0, 1):
                params = {"flip": torch.tensor([flip]), "translation": torch.tensor([[tx, ty]])}
                gout = torch.randn(1, 2, 16, 8, dtype=torch.float64)
                (g1,) = torch.autograd.grad(gx.cr_augment(x, params, backend="cpu"), x, gout)
                (g2,) = torch.autograd.grad(gx.cr_augment(x, params, backend="reference"), x, gout)
                torch.testing.assert_close(g1, g2)


def test_bad_input_messages():
    a = torch.randn(2, 3)
    with pytest.raises(RuntimeError, match="shape"):
        C.dot([a], [torch.randn(2, 4)], True)
    with pytest.raises(RuntimeError, match="grads"):
        sqn([torch.zeros(2, 3, dtype=torch.int32)])
    with pytest.raises(RuntimeError, match="batch size"):
        sqn([a, torch.randn(3, 3)])
    with pytest.raises(RuntimeError, match="iparams"):
        C.cr_augment(torch.randn(2, 3, 8, 8), torch.zeros(2, 2, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="fparams"):
        C.diff_augment(torch.randn(2, 3, 8, 8), torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.int32), 1)
    with pytest.raises(RuntimeError, match="coef"):
        C.scale([a], torch.ones(3), 1.0, True)


def test_poison_reaches_native():
    """With poisoning on (conftest), a native output that a kernel forgot to write would be NaN."""
    _dispatch.set_poison(True)
    assert torch.isnan(C.new_output_like(torch.zeros(64))).all()  # the allocator every kernel uses really poisons
    assert torch.isnan(C.new_output_like(torch.zeros(2, 3 << 20))).all()  # large: the reuse cache's blocks too
    out = C.noise_axpy(None, torch.tensor(0.0), 1, 1.0, [5], torch.float32)
    assert torch.equal(out, torch.zeros(5))  # fully written despite the NaN fill


# --------------------------------------------------------------------------------------------- determinism


def test_bitwise_same_for_1_and_2_threads(seed):
    g = torch.randn(4, 3, 96, 96)
    gl = [g, torch.randn(4, 1000), g.contiguous(memory_format=torch.channels_last)]
    params = gx.sample_diffaug_params(4, 96, 96, "color,translation,cutout")
    fp, ip, flags = gx.augment.pack_diffaug_params(params, 4)
    b = torch.randn_like(g)

    def run():
        return [
            sqn(gl, 0.5, True),
            sqn(gl, 1.0, False),
            C.dot(gl, gl, True),
            C.noise_dot(g, seed, 0.01),
            C.sq_diff_sum(g, b, 1.0),
            C.diff_augment(g, fp, ip, flags),
            C.diff_augment_adj(g, fp, ip, flags),
        ]

    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(prev)
    for x, y in zip(one, two):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------------------------- autograd


def test_gradcheck_public_functions_cpu(seed):
    kw = dict(backend="cpu")
    g = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 7, dtype=torch.float64, requires_grad=True)
    f = lambda g, v: gx.r1_penalty([g, v], **kw)  # noqa: E731
    assert gradcheck(f, (g, v)) and gradgradcheck(f, (g, v))
    f = lambda g: gx.gradient_penalty(g, **kw)  # noqa: E731
    assert gradcheck(f, (g,)) and gradgradcheck(f, (g,))
    f = lambda x: gx.path_length_noise_dot(x, seed, **kw)  # noqa: E731
    assert gradcheck(f, (g,)) and gradgradcheck(f, (g,))
    f = lambda x: gx.instance_noise(x, 0.5, seed, **kw)  # noqa: E731
    assert gradcheck(f, (g,)) and gradgradcheck(f, (g,))
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    f = lambda a, b: gx.consistency_loss(a, b, 0.7, **kw)  # noqa: E731
    assert gradcheck(f, (a, b)) and gradgradcheck(f, (a, b))
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64, requires_grad=True)
    p = gx.sample_diffaug_params(2, 8, 6)
    f = lambda x: gx.diff_augment(x, params=p, **kw)  # noqa: E731
    assert gradcheck(f, (x,)) and gradgradcheck(f, (x,))
    p = gx.sample_cr_params(2, 8, 6)
    f = lambda x: gx.cr_augment(x, params=p, **kw)  # noqa: E731
    assert gradcheck(f, (x,)) and gradgradcheck(f, (x,))


def test_path_length_double_backward_cpu(seed):
    ws = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3 * 5 * 5, dtype=torch.float64)
    img = torch.tanh(ws @ w).view(2, 3, 5, 5)
    (gc,) = torch.autograd.grad(gx.path_length_noise_dot(img, seed, backend="cpu"), ws, create_graph=True)
    (gr,) = torch.autograd.grad(gx.path_length_noise_dot(img, seed, backend="reference"), ws, create_graph=True)
    torch.testing.assert_close(gc, gr, rtol=1e-5, atol=1e-5)  # float32 noise stream (noise_tol)
    gc.square().sum().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()


# --------------------------------------------------------------------------------------------- CUDA


@gpu_only
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cuda_matches_cpu_and_reference(seed, dtype, layout):
    for shape in SHAPES4:
        g = make(shape, dtype, "cuda", layout)
        h = make((shape[0], 5), dtype, "cuda")
        for per_sample in (True, False):
            got = sqn([g, h], 0.5, per_sample)
            want = ref_gn.sqnorm([g, h], torch.tensor(0.5), 1.0, 0 if per_sample else 3)
            assert_close(got, want.to(got.dtype), dtype, 4)
        got = C.dot([g, h], [g, h], True)
        assert_close(got, ref_gn.sqnorm([g, h], None, 1.0, 0).to(got.dtype), dtype, 4)
        coef = torch.rand(shape[0], dtype=acc(dtype), device="cuda")
        out = C.scale([g], coef, 2.0, True)[0]
        assert out.stride() == torch.empty_like(g).stride()
        assert_close(out, (2.0 * coef.view(-1, 1, 1, 1) * g.to(acc(dtype))).to(dtype), dtype)
        assert_noise_dot_close(
            gx.path_length_noise_dot(g, seed, backend="cuda"),
            gx.path_length_noise_dot(g, seed, backend="reference"),
            g,
            seed,
            dtype,
        )
        assert_close(
            gx.instance_noise(g, 0.3, seed, backend="cuda"),
            gx.instance_noise(g, 0.3, seed, backend="reference"),
            noise_tol(dtype),
        )
        b = make(shape, dtype, "cuda")
        assert_close(C.sq_diff_sum(g, b, 1.0), (g.to(acc(dtype)) - b.to(acc(dtype))).square().sum(), dtype, 10)
        da, db = C.diff_scale(g, b, torch.tensor(0.5, device="cuda", dtype=acc(dtype)))
        assert_close(da, ((g.to(acc(dtype)) - b.to(acc(dtype))) * 0.5).to(dtype), dtype)
        x = g.detach().requires_grad_()
        for policy in POLICIES:
            p = gx.sample_diffaug_params(shape[0], shape[2], shape[3], policy, device="cuda")
            got = gx.diff_augment(x, policy, p, backend="cuda")
            want = gx.diff_augment(x, policy, p, backend="reference")
            assert_close(got, want, dtype, 4)
            gout = torch.randn_like(want)
            assert_close(torch.autograd.grad(got, x, gout)[0], torch.autograd.grad(want, x, gout)[0], dtype, 4)
        p = gx.sample_cr_params(shape[0], shape[2], shape[3], device="cuda")
        got = gx.cr_augment(x, p, backend="cuda")
        want = gx.cr_augment(x, p, backend="reference")
        torch.testing.assert_close(got, want.contiguous(), rtol=0, atol=0)
        gout = torch.randn_like(want)
        assert_close(torch.autograd.grad(got, x, gout)[0], torch.autograd.grad(want, x, gout)[0], dtype, 2)


@gpu_only
def test_cuda_philox_large_counter_and_determinism(seed):
    # noise over a tensor whose logical index passes 2**32 would need 16 GiB; check the stream via
    # noise_axpy at a normal size against the CPU kernel instead, plus run-to-run determinism.
    y = C.noise_axpy(None, torch.tensor(1.0, device="cuda"), seed, 1.0, [1 << 20], torch.float32)
    torch.testing.assert_close(y.cpu(), C.normal_stream(seed, 0, 1 << 20, False), rtol=0, atol=1e-5)
    g = torch.randn(8, 3, 256, 256, device="cuda")
    assert torch.equal(sqn([g], 1.0, True), sqn([g], 1.0, True))
    assert torch.equal(C.noise_dot(g, seed, 0.1), C.noise_dot(g, seed, 0.1))


@gpu_only
def test_cuda_gradcheck(seed):
    g = torch.randn(2, 3, 4, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    for f in (
        lambda g: gx.r1_penalty(g, backend="cuda"),
        lambda g: gx.path_length_noise_dot(g, seed, backend="cuda"),
        lambda g: gx.diff_augment(
            g,
            params=gx.sample_diffaug_params(2, 4, 5, device="cuda", generator=torch.Generator("cuda").manual_seed(seed)),
            backend="cuda",
        ),
    ):
        assert gradcheck(f, (g,)) and gradgradcheck(f, (g,))


def test_mixed_dtype_list_accumulates_like_reference():
    """Found by fuzzing: a float64 first tensor followed by float32 denormals; the reference
    accumulates the whole list in float64, so the float32 squares must not underflow to 0."""
    a = torch.tensor([[1.5410e-40]], dtype=torch.float64)
    b = torch.tensor([[1.5410e-40]], dtype=torch.float32)
    for per_sample in (True, False):
        want = gx.grad_sqnorm([a, b], per_sample=per_sample, backend="reference")
        got = gx.grad_sqnorm([a, b], per_sample=per_sample, backend="cpu")
        assert got.dtype == want.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        assert want.item() > 4e-80


# --------------------------------------------------------------------------------------------- op layer


def _namespace_schemas(ns: str) -> dict[str, str]:
    """``{op: schema without the namespace}`` of every op registered under ``ns``."""
    names = [n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith(ns + "::")]
    return {n: str(getattr(getattr(torch.ops, ns), n).default._schema).split("::", 1)[1] for n in names}


def test_triton_ops_have_the_native_schemas():
    """One list of schemas (csrc/ops.cpp): ganreg_ext._triton_autograd defines under ganreg_triton
    exactly the kernel ops of the Python fake kernels (``FAKES``), each with ganreg_C's schema verbatim,
    and no utility op (those belong to the native kernels)."""
    import ganreg_ext._triton_autograd  # noqa: F401  (built with _C, whether or not Triton is installed)
    from ganreg_ext.ops import FAMILIES

    ops = {op for mod in FAMILIES.values() for op in mod.FAKES}
    triton, native = _namespace_schemas("ganreg_triton"), _namespace_schemas("ganreg_C")
    assert set(triton) == ops, (sorted(set(triton) - ops), sorted(ops - set(triton)))
    assert triton == {op: native[op] for op in ops}


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_autograd_is_the_cpp_one_on_every_fused_backend(backend, device, seed):
    """Each backward formula exists once: the Triton ops' autograd is csrc/autograd's C++ nodes, the
    same as the native ops' (no Python autograd), down to the double backward."""
    if backend not in gx.available_backends():
        pytest.skip(f"backend {backend!r} is unavailable here")
    g = torch.randn(4, 3, 8, 8, device=device, requires_grad=True)
    (d,) = torch.autograd.grad(gx.r1_penalty(g, backend=backend), g, create_graph=True)
    assert "ScaleFn" in d.grad_fn.name()
    x, b = torch.randn(2, 4, 3, 3, device=device, requires_grad=True), torch.randn(4, device=device, requires_grad=True)
    y = gx.bias_act(x, b, act="lrelu", backend=backend)
    assert "BiasActFn" in y.grad_fn.name()
    (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    assert "BiasActGradFn" in dx.grad_fn.name()
    pen = gx.gradient_penalty(g, backend=backend)
    assert "GradPenaltyFn" in pen.grad_fn.name()


def test_autograd_is_cpp_and_one_node_per_call(seed):
    """One registered op per public call: R1's forward is one C++ autograd node (no Python frame)
    whose backward is another native op (scale), itself a C++ node."""
    g = torch.randn(4, 3, 8, 8, requires_grad=True)
    r = gx.r1_penalty(g, backend="cpu")
    assert "SqnormFn" in r.grad_fn.name() and r.grad_fn.next_functions[0][0].name() == "torch::autograd::AccumulateGrad"
    (d,) = torch.autograd.grad(r, g, create_graph=True)
    assert "ScaleFn" in d.grad_fn.name()
    torch.testing.assert_close(d, 10.0 * g / 4)  # γ·g / B for the mean


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", [0, 1, 2, 3])
def test_sqnorm_weight_and_reductions(seed, device, reduction):
    g = torch.randn(5, 3, 7, 9, device=device)
    h = torch.randn(5, 11, device=device)
    inv = torch.tensor(0.37, device=device)
    got = C.sqnorm([g, h], inv, 2.5, reduction)
    want = ref_gn.sqnorm([g.double(), h.double()], inv.double(), 2.5, reduction).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    # backward of each reduction: d/dg = 2·w·inv²·g (· gout_b, / B for the mean), distinct random gout
    x = g.clone().requires_grad_()
    out = C.sqnorm([x], inv, 2.5, reduction)
    gout = torch.rand_like(out) + 0.5
    (d,) = torch.autograd.grad(out, x, gout)
    k = 2 * 2.5 * 0.37**2 * (gout.view(-1, 1, 1, 1) if reduction == 0 else gout / (5 if reduction == 2 else 1))
    torch.testing.assert_close(d, k * g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_dtype_lists_follow_the_accumulation_rule(seed, device):
    """float16 first, float32 values beyond float16's range second: accumulated in float32 without
    converting the float32 tensor to float16 (which would overflow to inf); float64 anywhere → float64."""
    a = torch.randn(3, 40, device=device).half()
    b = torch.randn(3, 50, device=device) * 1e5
    for got, want in (
        (sqn([a, b]), (a.float().square().sum(1) + b.square().sum(1))),
        (C.dot([a, b], [a, b], True), (a.float().square().sum(1) + b.square().sum(1))),
    ):
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    c = torch.randn(3, 5, device=device, dtype=torch.float64)
    got = sqn([b, c])
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, b.double().square().sum(1) + c.square().sum(1), rtol=1e-12, atol=0)
    out = C.scale([a, b], torch.rand(3, device=device), 2.0, True)
    assert [o.dtype for o in out] == [torch.float16, torch.float32] and torch.isfinite(out[1]).all()
