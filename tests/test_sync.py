"""No host synchronisation inside a training step (issue 12): every public op, forward and backward,
with its scalars given as 0-d tensors on the device (``gamma``, ``weight``, ``inv_scale``, ``sigma``,
``pl_mean``, the modules' buffers), never copies device data to the host.

On a GPU: ``torch.cuda.set_sync_debug_mode("error")`` turns any synchronising copy into an error.
On a CPU (the same check, as far as a CPU can show it): every tensor the caller hands over is marked
as device data, and reading a marked tensor on the host (``item``, ``float``, ``int``, ``bool``,
``tolist``) raises.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import ganreg_ext as gx
from helpers import FUSED_BACKENDS

BACKENDS = ["reference"] + FUSED_BACKENDS
_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")


@contextlib.contextmanager
def no_host_reads(device: str, marked: list[torch.Tensor]):
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return
    ids = {id(t) for t in marked}
    saved = {name: getattr(torch.Tensor, name) for name in _READS}

    def guard(name):
        def read(self, *args, **kwargs):
            if id(self) in ids:
                raise AssertionError(f"host read of device data: Tensor.{name} on a tensor of shape {tuple(self.shape)}")
            return saved[name](self, *args, **kwargs)

        return read

    try:
        for name in _READS:
            setattr(torch.Tensor, name, guard(name))
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


_HOST_READ_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::is_nonzero")


@contextlib.contextmanager
def no_dispatcher_host_reads(allowed=()):
    """Fails when any op called inside reads a tensor's value on the host through the dispatcher,
    from Python OR from C++ (an ``x.item<double>()`` inside a CPU kernel calls ``aten::item`` →
    ``aten::_local_scalar_dense`` through the dispatcher, which the profiler's RecordFunction
    hooks see; a Python-level patch of ``Tensor.item`` does not). ``allowed``: substrings of a read's
    chain (innermost op first) that make it legal."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        yield
    reads = []
    for e in prof.events():
        if e.name in _HOST_READ_OPS:
            chain, p = [], e.cpu_parent
            while p is not None:
                chain.append(p.name)
                p = p.cpu_parent
            read = f"{e.name} inside {' < '.join(chain) or 'the caller'}"
            if not any(a in read for a in allowed):
                reads.append(read)
    if reads:
        raise AssertionError(f"host read of tensor data: {reads[:5]}")


def _calls(backend: str, device: str):
    """(name, fn(inputs) -> loss, inputs) for every public op with device scalars."""

    made = {}

    def t(v):  # one marked 0-d device tensor per value, made before any guarded call
        return made.setdefault(v, torch.tensor(v, device=device))

    for v in (10.0, 0.5, 1.0, 0.25, 0.1, 0.3, 2.0):
        t(v)
    scalars = list(made.values())

    def rg(*shape):
        return torch.randn(*shape, device=device).requires_grad_()

    pl = gx.PathLengthRegularizer(backend=backend).to(device)
    noise = gx.InstanceNoise(0.5, 10, backend=backend).to(device)
    lecam = gx.LeCamRegularizer().to(device)
    dp = gx.sample_diffaug_params(4, 8, 8, device=device)
    cp = gx.sample_cr_params(4, 8, 8, device=device)
    ws = rg(4, 3, 5)
    W = torch.randn(15, 3 * 8 * 8, device=device)

    def pl_step(ws):
        return pl(torch.tanh(ws.reshape(4, -1) @ W).reshape(4, 3, 8, 8), ws, seed=3)

    kw = dict(backend=backend)
    yield "r1", lambda g: gx.r1_penalty(g, gamma=t(10.0), inv_scale=t(0.5), **kw), [rg(4, 3, 8, 8)], scalars
    yield "r2_list", lambda g, h: gx.r2_penalty([g, h], gamma=t(1.0), reduction="sum", **kw), [rg(4, 3, 8, 8), rg(4, 7)], scalars
    yield "grad_sqnorm", lambda g: gx.grad_sqnorm(g, inv_scale=t(0.25), **kw).sum(), [rg(4, 3, 8, 8)], scalars
    yield "wgan_gp", lambda g: gx.gradient_penalty(g, weight=t(10.0), one_sided=True, **kw), [rg(4, 3, 8, 8)], scalars
    yield "roth", lambda g, a: gx.roth_penalty(g, a, g, a, gamma=t(0.1), **kw), [rg(4, 3, 8, 8), rg(4)], scalars
    yield "pl_penalty", lambda g: gx.path_length_penalty(g, t(0.5), **kw)[0].sum(), [rg(4, 3, 5)], scalars
    yield "pl_regularizer", pl_step, [ws], [pl.pl_mean]
    yield "noise_dot", lambda x: gx.path_length_noise_dot(x, seed=7, **kw), [rg(4, 3, 8, 8)], []
    yield "instance_noise", lambda x: gx.instance_noise(x, t(0.3), seed=5, **kw).sum(), [rg(4, 3, 8, 8)], scalars
    yield "InstanceNoise", lambda x: noise(x, seed=5).sum(), [rg(4, 3, 8, 8)], [noise.t]
    yield "cr", lambda a, b: gx.consistency_loss(a, b, weight=t(2.0), **kw), [rg(4, 1), rg(4, 1)], scalars
    yield "bcr", lambda a, b: gx.bcr_loss(a, b, b, a, t(1.0), t(1.0), **kw), [rg(4), rg(4)], scalars
    yield "zcr", lambda a, b: gx.zcr_generator_loss(a, b, weight=t(0.5), **kw), [rg(4, 3, 8, 8), rg(4, 3, 8, 8)], scalars
    yield "diff_augment", lambda x: gx.diff_augment(x, params=dp, **kw).sum(), [rg(4, 3, 8, 8)], list(dp.values())
    yield "cr_augment", lambda x: gx.cr_augment(x, params=cp, **kw).sum(), [rg(4, 3, 8, 8)], list(cp.values())
    yield "lecam", lambda a, b: lecam(a, b), [rg(4), rg(4)], [lecam.ema_real, lecam.ema_fake]
    if backend != "reference":  # the eager reference sizes its gather from the params (a host read)
        ap = gx.sample_ada_params(4, 8, 8, t(0.3), device=device, cutout=True)
        ada = gx.AdaptiveAugment(interval=1, p=0.2, backend=backend).to(device)

        def ada_step(x):  # augment with the buffer p, then the controller's update (adjusts p)
            y = ada(x)
            ada.update(y.detach().mean((1, 2, 3)))
            return y.sum()

        yield (
            "ada_augment",
            lambda x: gx.ada_augment(x, ap, **kw).sum(),
            [rg(4, 3, 8, 8)],
            [v for v in ap.values() if isinstance(v, torch.Tensor)],
        )
        yield "AdaptiveAugment", ada_step, [rg(4, 3, 8, 8)], [ada.p, ada.r_t, ada._stat]
    b, f = rg(3), torch.tensor([1.0, 3.0, 2.0], device=device)  # an asymmetric filter
    yield "bias_act", lambda x: gx.bias_act(x, b, act="swish", clamp=1.5, **kw).sum(), [rg(4, 3, 8, 8)], []
    yield "upfirdn2d", lambda x: gx.upfirdn2d(x, f, up=2, padding=[1, 1, 1, 1], **kw).sum(), [rg(4, 3, 8, 8)], []
    yield (
        "filtered_lrelu",
        lambda x: gx.filtered_lrelu(x, f, f, b, up=2, down=2, padding=2, clamp=1.0, **kw).sum(),
        [rg(4, 3, 8, 8)],
        [],
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_host_sync_in_a_step(backend, device):
    if backend != "reference" and backend not in gx.available_backends():
        pytest.skip(f"{backend} is unavailable here")
    for name, fn, inputs, extra in _calls(backend, device):
        fn(*inputs)  # warm-up: first calls may resolve backends, compile kernels, build caches
        with no_host_reads(device, inputs + list(extra)):
            loss = fn(*inputs)
            loss.backward()
        assert torch.isfinite(loss.detach()).all(), name


# Host reads that are legal on the CPU backends because the data is host memory (no device sync):
# the native kernels read their 0-d scalar arguments on the host when those are CPU tensors
# (csrc/cpu/gradnorm.cpp inv_scale, csrc/cpu/noise.cpp alpha, csrc/cpu/consistency.cpp coef; the CUDA
# kernels do so only for CPU scalars), and cr_augment checks user-given CPU translations with a
# ValueError (augment._check_cr_range: an asynchronous device assert for device parameters).
CPU_SCALAR_READS = ("::sqnorm", "::noise_axpy", "::diff_scale")
CPU_CHECK_READS = {name: ("aten::is_nonzero",) for name in ("cr_augment", "AdaptiveAugment")}


@pytest.mark.parametrize("backend", [b for b in FUSED_BACKENDS if b != "triton"])
def test_no_host_read_inside_the_native_kernels(backend, device):
    """Every public op on a native backend, forward and backward, with the C++-level guard: no
    ``item``/``_local_scalar_dense`` anywhere below the call, the kernels' own C++ included, except
    the listed reads of CPU scalars (host memory on these CPU backends)."""
    found = {}
    for name, fn, inputs, _ in _calls(backend, device):
        fn(*inputs)
        try:
            with no_dispatcher_host_reads(CPU_SCALAR_READS + CPU_CHECK_READS.get(name, ())):
                fn(*inputs).backward()
        except AssertionError as e:
            found[name] = str(e)
    assert not found, found


def test_the_cpp_guard_catches_a_host_read_inside_a_cpp_kernel():
    """The plant: ATen's C++ ``repeat_interleave`` kernel sizes its output with ``.item()`` on the
    repeats, in C++; the guard names it (and a Python ``.item()`` too)."""
    with pytest.raises(AssertionError, match=r"aten::item inside aten::repeat_interleave"):
        with no_dispatcher_host_reads():
            torch.repeat_interleave(torch.randn(3), torch.tensor([1, 2, 3]))
    with pytest.raises(AssertionError, match="aten::item"):
        with no_dispatcher_host_reads():
            torch.randn(()).item()
    with no_dispatcher_host_reads():
        torch.randn(4).sum()


def test_the_cpu_guard_catches_a_host_read():
    x = torch.randn(3)
    with pytest.raises(AssertionError, match="host read"):
        with no_host_reads("cpu", [x]):
            x.tolist()
