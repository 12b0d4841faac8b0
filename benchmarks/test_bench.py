"""pytest-benchmark suite: each case (smallest quick size per family) × impl × mode, with the same
correctness check against the eager reference as the runner before anything is timed."""

from __future__ import annotations

import pytest
import torch

from benchmarks import cases as C
from benchmarks import run as R
from benchmarks import timing as T
from benchmarks import train as TR

IMPLS = ("eager", "compile", "cpu", "cuda", "triton")


def _small_cases(device: str) -> list[C.Case]:
    out = []
    for fam in C.BUILDERS:
        shapes = C.sizes(fam, device, quick=True)
        cs = [C.BUILDERS[fam](s) for s in shapes]
        out.append(min(cs, key=lambda c: c.numel))
    return out


_DEV = "cuda" if torch.cuda.is_available() else "cpu"
CASES = _small_cases(_DEV)


def _selected(config, family: str) -> bool:
    ops = config.getoption("--bench-ops")
    return ops == "all" or family in C.expand_ops([ops])


def _impl_fn(case: C.Case, impl: str, inp: C.Inputs, device, config):
    if impl == "eager":
        return lambda i: case.fn(i, "reference")
    if impl == "compile":
        if not config.getoption("--bench-compile"):
            pytest.skip("torch.compile rows are opt-in: --bench-compile")
        if case.compile_slow:
            pytest.skip("compiling the integer-Philox reference takes minutes")
        compiled = torch.compile(
            lambda *leaves: case.fn(C.Inputs(list(leaves), inp.kw, inp.grad_out), "reference"), dynamic=False
        )
        return lambda i: compiled(*i.leaves)
    if impl not in R.fused_backends(device):
        pytest.skip(f"backend {impl!r} is not available on {device.type}")
    return lambda i: case.fn(i, impl)


@pytest.mark.parametrize("mode", C.MODES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_op(benchmark, case, impl, mode, bench_device, pytestconfig):
    if not _selected(pytestconfig, case.family):
        pytest.skip("not in --bench-ops")
    dev = bench_device
    gen = torch.Generator(device=dev).manual_seed(0)
    inp = case.make(dev, torch.float32, gen)
    fn = _impl_fn(case, impl, inp, dev, pytestconfig)
    ref = case.fn(inp, "reference")
    want = [ref.detach(), *R._grad(ref, inp.leaves, inp.grad_out)]
    out = fn(inp)
    ok, err, msg = R._max_err([out.detach(), *R._grad(out, inp.leaves, inp.grad_out)], want, *case.tol)
    assert ok, f"{impl} differs from the reference: {msg}"

    def done(x):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return x

    if mode == "fwd":
        run, setup = (lambda: done(fn(inp))), None
    elif mode == "bwd":
        run = lambda out: done(R._grad(out, inp.leaves, inp.grad_out))  # noqa: E731
        setup = lambda: ((done(fn(inp)),), {})  # noqa: E731
    else:
        run, setup = (lambda: done(R._grad(fn(inp), inp.leaves, inp.grad_out))), None
    benchmark.group = f"{case.key} {C.MODE_LABEL[mode]}"
    peak = T.peak_memory_bytes(lambda s: run(*s[0]) if setup else run(), dev, setup)
    benchmark.extra_info.update(floor_bytes=case.floor_bytes(mode, torch.float32), numel=case.numel, peak_mem_bytes=peak)
    benchmark.pedantic(run, setup=setup, rounds=max(20, pytestconfig.getoption("--bench-rounds")), warmup_rounds=3, iterations=1)


@pytest.mark.parametrize("impl", ("eager", "cpu", "cuda", "triton"))
@pytest.mark.parametrize("family", C.TRAIN_OPS)
def test_train_step(benchmark, family, impl, bench_device, pytestconfig):
    if not _selected(pytestconfig, family):
        pytest.skip("not in --bench-ops")
    backend = "reference" if impl == "eager" else impl
    if backend != "reference" and backend not in R.fused_backends(bench_device):
        pytest.skip(f"backend {impl!r} is not available on {bench_device.type}")
    (case,) = TR.train_cases([family], bench_device.type, quick=True, tiny=True)
    steps = TR.make_steps(case, sorted({"reference", backend}), bench_device)
    if backend != "reference":
        want = steps["reference"].grads()
        got = steps[backend].grads()
        ok, err, msg = R._max_err([got[0], *got[1]], [want[0], *want[1]], 1e-3, 1e-5)
        assert ok, msg
    step = steps[backend]

    def run():
        out = step()
        if bench_device.type == "cuda":
            torch.cuda.synchronize(bench_device)
        return out

    benchmark.group = f"{family} {case.size}"
    benchmark.pedantic(run, rounds=max(20, pytestconfig.getoption("--bench-rounds")), warmup_rounds=2, iterations=1)
