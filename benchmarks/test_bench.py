"""pytest-benchmark suite: each case (smallest quick size per family) × impl × mode, with the same
correctness check against the eager reference as the runner before anything is timed
(``python -m benchmarks suite [pytest flags]`` = ``pytest benchmarks/test_bench.py --benchmark-only``).

The front door's own tests (every subcommand answers ``--help``; every entry point has a subcommand)
are here too; they take no ``benchmark`` fixture, so ``--benchmark-only`` skips them.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import cases as C
from benchmarks import timing as T
from benchmarks import train as TR
from benchmarks.checks import fused_backends, grad, max_err, outputs

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
        return C.compiled(lambda i: case.fn(i, "reference"), inp)
    if impl not in fused_backends(device):
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
    want = outputs(case, inp, lambda i: case.fn(i, "reference"), dbl=False)
    ok, err, msg = max_err(outputs(case, inp, fn, dbl=False), want, *case.tol)
    assert ok, f"{impl} differs from the reference: {msg}"

    def done(x):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return x

    if mode == "fwd":
        run, setup = (lambda: done(fn(inp))), None
    elif mode == "bwd":
        run = lambda out: done(grad(out, inp.leaves, inp.grad_out))  # noqa: E731
        setup = lambda: ((done(fn(inp)),), {})  # noqa: E731
    else:
        run, setup = (lambda: done(grad(fn(inp), inp.leaves, inp.grad_out))), None
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
    if backend != "reference" and backend not in fused_backends(bench_device):
        pytest.skip(f"backend {impl!r} is not available on {bench_device.type}")
    (case,) = TR.train_cases([family], bench_device.type, quick=True, tiny=True)
    steps = TR.make_steps(case, sorted({"reference", backend}), bench_device)
    if backend != "reference":
        want = steps["reference"].grads()
        got = steps[backend].grads()
        ok, err, msg = max_err([got[0], *got[1]], [want[0], *want[1]], *TR.TOL)
        assert ok, msg
    step = steps[backend]

    def run():
        out = step()
        if bench_device.type == "cuda":
            torch.cuda.synchronize(bench_device)
        return out

    benchmark.group = f"{family} {case.size}"
    benchmark.pedantic(run, rounds=max(20, pytestconfig.getoption("--bench-rounds")), warmup_rounds=2, iterations=1)


def main(argv=None) -> int:
    """``python -m benchmarks suite [pytest flags]``: this file under pytest-benchmark, timed rows only."""
    return int(pytest.main([__file__, "--benchmark-only", *(sys.argv[1:] if argv is None else argv)]))


# ------------------------------------------------------------------------------ the front door

HERE = Path(__file__).resolve().parent
FRONT = importlib.import_module("benchmarks.__main__")


def _entry_points() -> set[str]:
    """Every module of benchmarks/ with a ``main()``: an entry point the front door must list."""
    return {
        f"benchmarks.{p.stem}"
        for p in HERE.glob("*.py")
        if p.stem != "__main__" and re.search(r"^def main\(", p.read_text(), re.M)
    }


def test_front_door_lists_every_entry_point():
    listed = [mod for mod, _ in FRONT.COMMANDS.values()]
    assert len(set(listed)) == len(listed), "two subcommands run the same module"
    missing = _entry_points() - set(listed)
    assert not missing, f"entry points without a subcommand in benchmarks/__main__.py: {sorted(missing)}"
    assert "ganreg_ext.demo.timing" in listed
    for mod in listed:  # python -m benchmarks.<module> keeps working
        path = Path(importlib.import_module(mod).__file__)
        assert re.search(r"^def main\(argv=None\)", path.read_text(), re.M), mod
        assert 'if __name__ == "__main__":' in path.read_text(), mod
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=HERE.parent, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name, (_, line) in FRONT.COMMANDS.items():
        assert f"  {name} " in res.stdout and line in res.stdout, name
    assert FRONT.main(["no-such-subcommand"]) == 2


@pytest.mark.parametrize("name", list(FRONT.COMMANDS))
def test_subcommand_help(name, capsys):
    try:
        rc = FRONT.main([name, "--help"])
    except SystemExit as e:  # argparse's --help
        rc = e.code
    assert rc in (0, None)
    assert "usage:" in capsys.readouterr().out.lower()
