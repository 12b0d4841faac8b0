"""The CUDA kernels' own source, run on the CPU under the CUDA execution model (test backend
``cuda_emu``, csrc/emu): shapes that reach every GPU-only path (several tiles per image, odd tile
edges, every up/down factor and padding sign, vector loads and their fallback, the shrunken-tile and
direct kernels, plane loops past the grid limit, grid-stride loops with 1 SM, 64-bit index paths,
multi-tensor descriptor tables uploaded or split under capture, ADA's atomic adjoint), each under
forward, reverse and random scheduling of blocks, warps and lanes, compared with the reference.
The launch log names the kernel that ran, so each test also proves it took the path it is about."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganreg_ext as gx
from helpers import EMU_UNAVAILABLE, NOISE_ATOL, TOL, assert_close, assert_sum_close, leaf, make

pytestmark = pytest.mark.skipif(EMU_UNAVAILABLE is not None, reason=f"cuda_emu is not loaded: {EMU_UNAVAILABLE}")

ROOT = Path(__file__).resolve().parents[1]
B = "cuda_emu"


def E():
    return torch.ops.ganreg_emu


@contextlib.contextmanager
def emu(sm=-1, smem=-1, order=-1, seed=-1, capturing=-1):
    """Emulation inputs for the block: SM count, dynamic shared-memory budget (bytes), scheduling
    order (0 forward, 1 reverse, 2 random), its seed, and what cudaStreamIsCapturing answers."""
    old = E().emu_config(sm, smem, order, seed, capturing)
    E().emu_launches(True)
    try:
        yield
    finally:
        E().emu_config(*old)


def launches() -> list[str]:
    return list(E().emu_launches(True))


def ran(name: str, log: list[str]) -> list[str]:
    return [entry for entry in log if entry.startswith(name)]


ORDERS = {"forward": 0, "reverse": 1, "random": 2}


@pytest.fixture(params=list(ORDERS))
def order(request, seed):
    """Each test under the three scheduling orders (random: the test's seed)."""
    with emu(order=ORDERS[request.param], seed=seed):
        yield request.param


@pytest.fixture
def random_order(seed):
    """Kernels without barriers or shuffles (elementwise, atomics): random order, the test's seed."""
    with emu(order=2, seed=seed):
        yield "random"


def ref64(fn, *tensors):
    """fn on float64 copies (the exact reference)."""
    return fn(*(t.detach().double() for t in tensors))


# ---------------------------------------------------------------- the module and the emulator


def test_emu_build_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "csrc/emu/build.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_emulator_reports_a_divergent_barrier():
    with pytest.raises(RuntimeError, match="divergent __syncthreads"):
        E().emu_selftest(0, 128, 1)


def test_emulator_reports_an_exited_lane_in_a_shuffle():
    with pytest.raises(RuntimeError, match="exited"):
        E().emu_selftest(1, 64, 1)


def test_emulator_reports_a_shared_memory_overrun():
    with pytest.raises(RuntimeError, match="past its 256 bytes of dynamic shared memory"):
        E().emu_selftest(2, 64, 1)


def test_emulator_exposes_a_missing_barrier():
    """buf[t + 32] read without a barrier: wrong in forward order (the next warp has not written),
    and in random order for some seed; right only by luck."""
    want = torch.tensor([float(b * 1000 + (t + 32) % 128) for b in range(3) for t in range(128)])
    with emu(order=0):
        assert not torch.equal(E().emu_selftest(3, 128, 3), want)
    wrong = 0
    for s in range(3):
        with emu(order=2, seed=s):
            wrong += not torch.equal(E().emu_selftest(3, 128, 3), want)
    assert wrong >= 2


@pytest.mark.parametrize("threads", [32, 96, 256, 1024])
def test_emulator_shuffles_and_barriers(order, threads):
    got = E().emu_selftest(4, threads, 2)
    assert got[0] == got[1] == threads * (threads - 1) / 2  # out[block] = Σ threadIdx


def test_emulator_checks_the_launch_configuration():
    with emu(smem=100):  # the tile kernel's window does not fit: the direct kernel, never a bad launch
        gx.upfirdn2d(torch.randn(1, 1, 8, 8), torch.ones(3), backend=B)
        assert ran("upfirdn2d_direct_kernel", launches())
    assert E().emu_grid_yz() < 65535


# ---------------------------------------------------------------- upfirdn2d


def _ufd(x, f, up, down, pad, flip=False, gain=1.0, backend=B):
    return gx.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain, backend=backend)


def _check_ufd(x, f, up, down, pad, flip=False, gain=1.0, dtype=None, grad=True):
    got = _ufd(x, f, up, down, pad, flip, gain)
    want = _ufd(x.double(), f.double(), up, down, pad, flip, gain, "reference")
    assert got.shape == want.shape and got.is_contiguous()
    assert_close(got, want.to(got.dtype), dtype or x.dtype, 2)
    if grad:
        xl = leaf(x)
        g = torch.randn_like(got)
        (dx,) = torch.autograd.grad(_ufd(xl, f, up, down, pad, flip, gain), xl, g)
        xd = leaf(x.double())
        (dd,) = torch.autograd.grad(_ufd(xd, f.double(), up, down, pad, flip, gain, "reference"), xd, g.double())
        assert_close(dx, dd.to(dx.dtype), dtype or x.dtype, 2)


@pytest.mark.parametrize("up", [1, 2, 3, 4])
@pytest.mark.parametrize("down", [1, 2, 3, 4])
def test_upfirdn2d_every_factor_and_padding_sign(order, up, down):
    """Several tiles in both directions with odd edges, every up/down pair, padding of both signs,
    separable and 2-D filters (float64: exact up to the order of the sums)."""
    x = torch.randn(1, 2, 45 + down * 7, 70 + down * 11, dtype=torch.float64)
    for f, pad in (
        (torch.randn(5, dtype=torch.float64), [3, -1, -2, 4]),
        (torch.randn(3, 4, dtype=torch.float64), [-1, 2, 1, 0]),
    ):
        _check_ufd(x, f, [up, up], [down, down], pad, flip=bool(up % 2), gain=1.5, grad=up * down <= 4)
    _check_ufd(x, torch.randn(4, dtype=torch.float64), [up, 1], [1, down], [1, 2, -1, 1])  # per-axis factors
    log = launches()
    tiles = ran("upfirdn2d_tile_kernel", log)
    assert tiles and all(int(e.split("grid=(")[1].split(",")[0]) >= 1 for e in tiles)


def test_upfirdn2d_several_tiles_each_way(order):
    x = torch.randn(2, 3, 70, 150)
    _check_ufd(x, torch.randn(4), [2, 2], [1, 1], [2, 1, 2, 1])  # out 140 x 300: 5 x 5 tiles, odd edges
    grids = [e.split("grid=")[1].split(" ")[0] for e in ran("upfirdn2d_tile_kernel", launches())]
    assert "(5,5,6)" in grids, grids


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_upfirdn2d_vector_loads_and_their_fallback(order, dtype):
    vw = 16 // torch.empty((), dtype=dtype).element_size()
    x = make((2, 3, 24, 8 * vw), dtype)  # rows 16-byte aligned: 128-bit loads
    f = torch.randn(4)
    _check_ufd(x, f, [2, 2], [1, 1], [1, 2, 2, 1])
    assert ran("upfirdn2d_tile_kernel<T,A,VW>", launches())
    for y in (x[..., 1:], make((2, 3, 24, 8 * vw + 1), dtype), make((2, 3, 24, 8 * vw), dtype, layout="channels_last")):
        _check_ufd(y, f, [1, 1], [2, 2], [1, 1, 1, 1], grad=False)  # misaligned, odd width, element stride C
        log = launches()
        assert ran("upfirdn2d_tile_kernel<T,A,1>", log) and not ran("upfirdn2d_tile_kernel<T,A,VW>", log)


def test_upfirdn2d_shrunken_tile_and_direct_kernel(order):
    x = torch.randn(1, 2, 50, 90, dtype=torch.float64)
    f = torch.randn(12, dtype=torch.float64)
    for budget, kernel in ((48 * 1024, "tile"), (24 * 1024, "tile"), (600, "direct")):
        with emu(smem=budget):
            _check_ufd(x, f, [1, 1], [2, 2], [5, 6, 5, 6], grad=False)
            _check_ufd(x, f.outer(f[:10]), [2, 2], [1, 1], [3, 3, 3, 3], grad=False)  # 2-D, 120 taps (StyleGAN3 R)
            log = launches()
        assert ran(f"upfirdn2d_{kernel}_kernel", log), log
        assert all(int(e.split("smem=")[1]) <= budget for e in log)
    # 24 KiB: the tile shrank further (float64, 12 taps, down 2: 64x8 at 48 KiB, 32x8 here)
    with emu(smem=24 * 1024):
        _ufd(x, f, [1, 1], [2, 2], [5, 6, 5, 6])
        small = ran("upfirdn2d_tile_kernel", launches())
    _ufd(x, f, [1, 1], [2, 2], [5, 6, 5, 6])
    full = ran("upfirdn2d_tile_kernel", launches())
    assert small[0].split("grid=")[1] != full[0].split("grid=")[1]


def test_upfirdn2d_planes_past_the_grid_limit(order):
    lim = E().emu_grid_yz()
    x = torch.randn(3, lim, 20, 33)  # 3·lim planes: each z-block loops over 3
    _check_ufd(x, torch.randn(3), [2, 2], [1, 1], [1, 1, 1, 1])
    assert any(f",{lim}) " in e for e in ran("upfirdn2d_tile_kernel", launches()))


def test_upfirdn2d_more_tile_rows_than_the_grid_allows(order):
    """More tile rows than grid.y's limit: the direct kernel (the CPU and Triton backends accept the
    shape; the CUDA launcher used to raise "output too large")."""
    lim = E().emu_grid_yz()
    x = torch.randn(1, 2, 32 * lim + 9, 5)
    _check_ufd(x, torch.ones(2) / 2, [1, 1], [1, 1], [0, 1, 0, 1], grad=False)
    assert ran("upfirdn2d_direct_kernel", launches())


def test_filtered_lrelu_stylegan3_sizes(order):
    x = torch.randn(2, 6, 20, 20, requires_grad=True)
    fu, fd = gx.setup_filter(torch.randn(12).abs()), gx.setup_filter(torch.randn(12).abs())
    b = torch.randn(6, requires_grad=True)
    kw = dict(up=2, down=2, padding=[11, 10, 11, 10], gain=2**0.5, slope=0.2, clamp=256.0)
    got = gx.filtered_lrelu(x, fu, fd, b, backend=B, **kw)
    want = gx.filtered_lrelu(x.double(), fu.double(), fd.double(), b.double(), backend="reference", **kw)
    assert_close(got, want.float(), torch.float32, 4)
    g = torch.randn_like(got)
    dg = torch.autograd.grad(got, (x, b), g)
    dw = torch.autograd.grad(want, (x, b), g.double())
    for a, e in zip(dg, dw):
        assert_close(a, e.float(), torch.float32, 8)


# ---------------------------------------------------------------- bias_act

ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"]


@pytest.mark.parametrize("act,sm", [(a, 1 if i % 2 else 132) for i, a in enumerate(ACTS)] + [("lrelu", 1), ("swish", 132)])
def test_bias_act_grid_stride_int64_and_layouts(random_order, act, sm):
    """Tensors larger than one grid (1 SM: every thread loops), above this build's 32-bit index limit
    (2^16 elements: the int64 path) and below it, contiguous, channels_last and strided, bias along
    dim 1 and the last dim, clamp, up to the second derivative; float64 against the reference."""
    with emu(sm=sm):
        for shape, layout, dim in (
            ((3, 37, 29, 31), "channels_last", 1),
            ((2, 5, 9, 11), "strided", 3),
            ((4, 33, 7, 9), "contiguous", 1),
        ):
            x = leaf(make(shape, torch.float64, layout=layout))
            b = leaf(torch.randn(shape[dim], dtype=torch.float64))
            for clamp in (None, 0.7):
                kw = dict(dim=dim, act=act, clamp=clamp)
                got = gx.bias_act(x, b, backend=B, **kw)
                want = gx.bias_act(x, b, backend="reference", **kw)
                assert got.stride() == torch.empty_like(x).stride()
                assert_close(got, want)
                g = torch.randn_like(want)
                dg = torch.autograd.grad(got, (x, b), g, create_graph=True)
                dw = torch.autograd.grad(want, (x, b), g, create_graph=True)
                for a, e in zip(dg, dw):
                    assert_close(a, e)
                u = torch.randn_like(x)
                if dw[0].requires_grad:  # f'' (piecewise-linear: 0, or no graph at all)
                    d2g = torch.autograd.grad(dg[0], x, u, allow_unused=True)[0]
                    d2w = torch.autograd.grad(dw[0], x, u, allow_unused=True)[0]
                    if d2w is not None:
                        assert d2g is not None
                        assert_close(d2g, d2w)
        log = launches()
    types = " ".join(ran("bias_act", log))
    assert "long int" in types and "unsigned int" in types, "the int64 and the 32-bit index paths must both run"
    if sm == 1:
        assert all("grid=(16,1,1)" in e or "grid=(" in e for e in log)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_bias_act_low_precision_and_mixed_operands(random_order, dtype):
    x = leaf(make((3, 40, 17, 19), dtype, layout="channels_last"))
    b = leaf(torch.randn(40, dtype=dtype))
    # clamp in float32 only: in float16/bfloat16 the native mask is |y| < clamp on the stored y, the
    # reference's on the unrounded value (elements within a rounding of the bound differ)
    clamp = 2.0 if dtype == torch.float32 else None
    for act in ("lrelu", "swish"):
        got = gx.bias_act(x, b, act=act, clamp=clamp, backend=B)
        want = gx.bias_act(x, b, act=act, clamp=clamp, backend="reference")
        assert_close(got, want, dtype, 2)
        g = torch.randn_like(got)
        dg = torch.autograd.grad(got, (x, b), g)
        dw = torch.autograd.grad(want, (x, b), g)
        assert_close(dg[0], dw[0], dtype, 2)
        assert_close(dg[1], dw[1], dtype, 40)  # a sum over 3·17·19 terms


# ---------------------------------------------------------------- gradient norms (multi-tensor)


def _grad_list(dtypes):
    shapes = [(5, 3), (5, 1000), (5, 3, 70, 80), (5, 2, 33, 31), (5, 7), (5, 64, 64), (5, 11, 13, 17), (5, 4096)]
    layouts = ["contiguous", "strided", "channels_last", "contiguous"]
    return [make(s, dtypes[i % len(dtypes)], layout=layouts[i % 4]) for i, s in enumerate(shapes * 2)]


@pytest.mark.parametrize("capturing", [0, 1])
@pytest.mark.parametrize("sm", [1, 132])
@pytest.mark.parametrize("mixed", [False, True])
def test_sqnorm_scale_dot_multi_tensor_lists(order, capturing, sm, mixed):
    """16 tensors (more than one descriptor table: uploaded, or split into several launches under
    capture), tiny ones one warp each, large ones split into chunks, mixed dtypes and layouts; every
    reduction; the backward (scale) and double backward (dot) through the C++ autograd."""
    dtypes = [torch.float32, torch.float16, torch.bfloat16] if mixed else [torch.float32]
    gs = [leaf(t) for t in _grad_list(dtypes)]
    with emu(sm=sm, capturing=capturing):
        per = gx.grad_sqnorm(gs, inv_scale=0.5, backend=B)
        want = sum((g.double() * 0.5).square().flatten(1).sum(1) for g in gs)
        abs_sum = want
        assert_sum_close(per.double(), want, abs_sum, eps=torch.finfo(torch.float32).eps)
        tot = gx.grad_sqnorm(gs, per_sample=False, backend=B)
        assert_sum_close(tot.double(), want.sum() * 4, abs_sum.sum() * 4, eps=torch.finfo(torch.float32).eps)
        w = torch.rand(5, dtype=per.dtype, requires_grad=True)
        dgs = torch.autograd.grad(per, gs, w, create_graph=True)  # scale
        for g, d in zip(gs, dgs):
            e = 2 * 0.25 * w.detach().double().view(-1, *[1] * (g.dim() - 1)) * g.double()
            assert_close(d, e.to(d.dtype), d.dtype, 2)
        v = [torch.randn_like(g) for g in gs]
        (dw,) = torch.autograd.grad(dgs, w, v)  # dot
        e = sum(0.5 * (g.double() * t.double()).flatten(1).sum(1) for g, t in zip(gs, v))
        assert_sum_close(
            dw.double(),
            e,
            sum((0.5 * g.double() * t.double()).abs().flatten(1).sum(1) for g, t in zip(gs, v)),
            eps=torch.finfo(torch.float32).eps,
        )
        log = launches()
    reduce = ran("reduce_tiles_kernel", log)
    assert len(reduce) >= (2 if capturing else 1) * (len(dtypes))
    if sm == 1:  # 8 blocks per SM at most: the tiles are looped over
        assert all(int(e.split("grid=(")[1].split(",")[0]) <= 8 for e in reduce)


def test_r1_many_rows_and_float64(order):
    """700 tiny samples in two tensors: the per-row finalize over a grid-stride loop (1 SM); float64."""
    g = [torch.randn(700, 3, dtype=torch.float64), torch.randn(700, 2, 2, dtype=torch.float64)]
    with emu(sm=1):
        for red in ("none", "sum", "mean"):
            got = gx.r1_penalty(g, gamma=4.0, reduction=red, backend=B)
            want = gx.r1_penalty(g, gamma=4.0, reduction=red, backend="reference")
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        assert ran("finalize_kernel", launches())


# ---------------------------------------------------------------- noise, consistency, augment


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_noise_dot_and_axpy_tiles_and_tails(order, seed, dtype):
    with emu(sm=1):
        for shape, layout in (((3, 5, 41, 47), "strided"), ((2, 3, 64, 64), "channels_last")):  # 3 tiles + a tail
            x = make(shape, dtype, layout=layout)
            got = gx.path_length_noise_dot(x, seed, backend=B)
            want = gx.path_length_noise_dot(x, seed, backend="reference")
            n = gx.path_length_noise(shape, seed, dtype=torch.float64)
            # each normal within NOISE_ATOL of the reference's, plus float32 rounding of the sum
            bound = (x.double().abs() * (NOISE_ATOL + 64 * torch.finfo(torch.float32).eps * n.abs())).sum()
            assert_sum_close(got.double(), want.double(), bound, ulps=1, eps=1.0)
            got = gx.instance_noise(x, 0.3, seed, backend=B)
            want = gx.instance_noise(x, 0.3, seed, backend="reference")
            # float32 normals on every backend: NOISE_ATOL apart at most, times sigma
            torch.testing.assert_close(got, want, rtol=TOL[dtype][0], atol=TOL[dtype][1] + 0.3 * NOISE_ATOL)
        assert ran("noise_dot_kernel", launches())


def test_consistency_mixed_dtypes_and_strides(order):
    a = leaf(make((4, 3, 50, 61), torch.float32, layout="strided"))
    b = leaf(make((4, 3, 50, 61), torch.float32, layout="channels_last"))
    with emu(sm=1):
        got = gx.consistency_loss(a, b, backend=B)
        want = gx.consistency_loss(a.double(), b.double(), backend="reference")
        assert_sum_close(got.double(), want, want, eps=torch.finfo(torch.float32).eps)
        da, db = torch.autograd.grad(got, (a, b))
        ea, eb = torch.autograd.grad(want, (a, b))
        assert_close(da, ea.float(), torch.float32, 2)
        assert_close(db, eb.float(), torch.float32, 2)
        # the raw ops read mixed dtypes as they are (float32 a, float16 b: float32 math)
        h = make((4, 3, 50, 61), torch.float16, layout="strided")
        d = a.detach().double() - h.double()
        got = E().sq_diff_sum(a.detach(), h, 0.5)
        assert_sum_close(got.double(), 0.5 * d.square().sum(), 0.5 * d.square().sum(), eps=torch.finfo(torch.float32).eps)
        oa, ob = E().diff_scale(a.detach(), h, torch.tensor(0.25))
        assert oa.dtype == torch.float32 and ob.dtype == torch.float16
        assert_close(oa, (0.25 * d).float(), torch.float32)
        assert_close(ob, (-0.25 * d).half(), torch.float16)
        assert ran("diff_scale_kernel", launches())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_diff_augment_and_cr_several_chunks(order, dtype):
    """80x80 images: per-sample sums of several chunks (the adjoint's masked sums), every policy."""
    x = leaf(make((5, 3, 80, 80), dtype, layout="strided"))
    with emu(sm=1):
        for policy in ("color", "translation", "cutout", "color,translation,cutout"):
            p = gx.sample_diffaug_params(5, 80, 80, policy)
            got = gx.diff_augment(x, policy, p, backend=B)
            want = gx.diff_augment(x, policy, p, backend="reference")
            assert_close(got, want, dtype, 4)
            g = torch.randn_like(want)
            assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], dtype, 8)
        p = gx.sample_cr_params(5, 80, 80)
        got = gx.cr_augment(x, p, backend=B)
        want = gx.cr_augment(x, p, backend="reference")
        torch.testing.assert_close(got, want.contiguous(), rtol=0, atol=0)
        g = torch.randn_like(want)
        assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], dtype, 2)
        log = launches()
    for k in ("masked_sum_kernel", "sum_rows_kernel", "diff_augment_kernel", "cr_kernel", "reduce_tiles_kernel"):
        assert ran(k, log), k


# ---------------------------------------------------------------- ADA


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_ada_forward_and_atomic_adjoint_batch_8_plus(random_order, dtype, channels):
    """Batch 9, odd sizes, every transform group + cutout: the forward and its adjoint (atomicAdd
    scatter), and the double backward, against the reference's autograd."""
    H, W = 21, 26
    p = gx.sample_ada_params(9, H, W, 0.9, "bgc" if channels != 4 else "bg", cutout=True)  # colour: 1 or 3
    x = leaf(make((9, channels, H, W), dtype, layout="channels_last"))
    with emu(sm=1):
        got = gx.ada_augment(x, p, backend=B)
        want = gx.ada_augment(x, p, backend="reference")
        assert_close(got, want, dtype, 8)
        g = torch.randn_like(want).requires_grad_()
        dg = torch.autograd.grad(got, x, g, create_graph=True)[0]
        dw = torch.autograd.grad(want, x, g, create_graph=True)[0]
        assert_close(dg, dw, dtype, 16)
        u = torch.randn_like(x)
        assert_close(torch.autograd.grad(dg, g, u, allow_unused=True)[0], torch.autograd.grad(dw, g, u)[0], dtype, 16)
        log = launches()
    assert ran("ada_forward_kernel", log) and ran("ada_adjoint_kernel", log)
