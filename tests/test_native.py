"""What only the native extension has (``csrc/``, ``ganreg_ext/ops/native.py``); values, dtypes,
layouts, gradients and bad input of every op are tested through the public API, on every backend,
by the family test files (docs/testing.md).

Here: the build (OpenMP, AVX2 guard, sm_80/sm_90 cubins, every kernel registered), the Philox stream
at raw counters (both CPU code paths, counters ≥ 2**32), the CPU kernels' streaming stores, the C++
argument checks behind the Python ones, the poisoning allocator, 1-vs-2-thread bitwise determinism,
the op layer (one schema list, the C++ autograd on every fused backend) and the raw reductions.
"""

from __future__ import annotations

import glob
import os
import subprocess

import pytest
import torch

import ganreg_ext as gx
import ganreg_ext.ops.native as native  # noqa: E402  (CI builds the extension: a missing _C fails here)
from ganreg_ext import _dispatch
from ganreg_ext.reference import gradnorm as ref_gn
from ganreg_ext.reference import philox as ref_philox
from helpers import assert_ref64, make

C = torch.ops.ganreg_C
INFO = native.build_info()
HAS_GPU = torch.cuda.is_available() and "cuda" in native.NATIVE_DEVICES
gpu_only = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device and the CUDA build of ganreg_ext._C")
DEVICES = ["cpu"] + (["cuda"] if HAS_GPU else [])


def sqn(grads, inv=1.0, per_sample=True, weight=1.0):
    """``C.sqnorm`` in (inv, per_sample) terms: reduction 0 (per sample) or 3 (total)."""
    inv_t = None if inv == 1.0 else torch.tensor(inv, dtype=torch.float64)
    return C.sqnorm(grads, inv_t, weight, 0 if per_sample else 3)


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


# --------------------------------------------------------------------------------------------- CPU-only kernel paths


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
    coef = torch.tensor([0.75, -3.0, 4.5], dtype=torch.float64).view(3, 1, 1, 1)
    assert_ref64(out, x.double() * coef, msg="scale")
    da, db = C.diff_scale(x, y, torch.tensor(0.7))
    d = (x.double() - y.double()) * 0.7
    assert_ref64(da, d, terms=0.7 * (x.double().abs() + y.double().abs()), msg="diff_scale a")
    assert_ref64(db, -d, terms=0.7 * (x.double().abs() + y.double().abs()), msg="diff_scale b")


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


# --------------------------------------------------------------------------------------------- CUDA


@gpu_only
def test_cuda_philox_large_counter_and_determinism(seed):
    # noise over a tensor whose logical index passes 2**32 would need 16 GiB; check the stream via
    # noise_axpy at a normal size against the CPU kernel instead, plus run-to-run determinism.
    y = C.noise_axpy(None, torch.tensor(1.0, device="cuda"), seed, 1.0, [1 << 20], torch.float32)
    torch.testing.assert_close(y.cpu(), C.normal_stream(seed, 0, 1 << 20, False), rtol=0, atol=1e-5)
    g = torch.randn(8, 3, 256, 256, device="cuda")
    assert torch.equal(sqn([g], 1.0, True), sqn([g], 1.0, True))
    assert torch.equal(C.noise_dot(g, seed, 0.1), C.noise_dot(g, seed, 0.1))


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
