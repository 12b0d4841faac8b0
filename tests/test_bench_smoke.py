"""Smoke test of the benchmark runner (benchmarks/run.py): tiny sizes, ``--quick --ops r1,diff_augment``,
in-process. Asserts that results are produced and correct, never timings.

Where the C++ ``cpu`` backend is not built yet, a stand-in ``cpu`` backend made of torch ops is
registered for the test so the fused-row path (correctness check, speedup columns) is exercised.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

import ganreg_ext as gx
from ganreg_ext import _dispatch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import run as bench_run  # noqa: E402

ARGS = ["--device", "cpu", "--quick", "--tiny", "--ops", "r1,diff_augment", "--no-compile"]
FAST = ["--min-reps", "3", "--max-reps", "3", "--warmup", "1", "--copy-mib", "8", "--target-s", "0"]


def _sqnorm(grads, inv, per_sample):
    total = 0
    for g in grads:
        sq = (g.float() * inv).square()
        total = total + (sq.reshape(g.shape[0], -1).sum(1) if per_sample else sq.sum())
    return total


def _scale(grads, coef, factor, per_sample):
    return [(factor * (coef.view(-1, *[1] * (g.dim() - 1)) if per_sample else coef) * g.float()).to(g.dtype) for g in grads]


def _dot(a, b, per_sample):
    total = 0
    for x, y in zip(a, b):
        p = x.float() * y.float()
        total = total + (p.reshape(x.shape[0], -1).sum(1) if per_sample else p.sum())
    return total


@pytest.fixture
def stub_cpu(monkeypatch):
    """Make a ``cpu`` backend available: the real one if built, else torch-op stand-ins for R1's ops."""
    kernels = {op: dict(impls) for op, impls in _dispatch._KERNELS.items()}
    monkeypatch.setattr(_dispatch, "_KERNELS", kernels)
    if "cpu" not in gx.available_backends():
        status = dict(_dispatch._status)
        status["cpu"] = (True, "test stand-in (torch ops)")
        monkeypatch.setattr(_dispatch, "_status", status)
        for op, fn in (("sqnorm", _sqnorm), ("scale", _scale), ("dot", _dot)):
            kernels.setdefault(op, {})["cpu"] = fn
    return kernels


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_runner_quick_tiny(tmp_path, stub_cpu):
    out = tmp_path / "res"
    assert bench_run.main(ARGS + FAST + ["--out", str(out)]) == 0
    for name in ("results.csv", "results.md", "meta.json", "r1.png", "diff_augment.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = _rows(out)
    assert {r["family"] for r in rows} == {"r1", "diff_augment"}
    bad = [r for r in rows if r["status"].startswith(("WRONG", "error"))]
    assert not bad, bad
    # every case has eager fwd / bwd / fwd+bwd figures, and the fused cpu backend ran R1 correctly
    for fam in ("r1", "diff_augment"):
        for mode in ("fwd", "bwd", "fwdbwd"):
            ok = [r for r in rows if r["family"] == fam and r["mode"] == mode and r["impl"] == "eager" and r["status"] == "ok"]
            assert len(ok) == 2, (fam, mode)
            assert all(float(r["median_ms"]) > 0 and int(r["reps"]) >= 3 for r in ok)
    fused = [r for r in rows if r["family"] == "r1" and r["impl"] == "cpu"]
    assert fused and all(r["status"] == "ok" for r in fused), fused
    assert all(float(r["x_eager"]) > 0 and float(r["max_abs_err"]) < 1e-3 for r in fused)
    assert all(float(r["gbps"]) > 0 for r in fused)
    md = (out / "results.md").read_text()
    assert "r1_penalty" in md and "diff_augment" in md and "torch " in md
    # --report-only rebuilds the report from the CSV
    (out / "results.md").unlink()
    assert bench_run.main(["--report-only", "--no-plots", "--out", str(out)]) == 0
    assert (out / "results.md").is_file()


def test_runner_flags_wrong_fused_result(tmp_path, stub_cpu):
    """A fused kernel that is wrong must be reported WRONG and not timed."""
    stub_cpu.setdefault("sqnorm", {})["cpu"] = lambda g, inv, ps: _sqnorm(g, inv, ps) * 1.01
    for op, fn in (("scale", _scale), ("dot", _dot)):
        stub_cpu.setdefault(op, {}).setdefault("cpu", fn)
    if "cpu" not in _dispatch.available_backends():
        pytest.skip("no cpu backend")
    out = tmp_path / "res"
    args = ["--device", "cpu", "--quick", "--tiny", "--ops", "r1", "--no-compile", "--no-memory", "--no-plots"]
    assert bench_run.main(args + FAST + ["--out", str(out)]) == 0
    fused = [r for r in _rows(out) if r["impl"] == "cpu"]
    assert fused and all(r["status"].startswith("WRONG") and r["median_ms"] == "" for r in fused)


@pytest.mark.slow
def test_runner_compile_row(tmp_path):
    """torch.compile of the reference runs, is checked and reports its compile time (slow: compiles)."""
    out = tmp_path / "res"
    args = ["--device", "cpu", "--tiny", "--ops", "r1", "--impls", "compile", "--no-memory", "--no-plots"]
    assert bench_run.main(args + FAST + ["--out", str(out)]) == 0
    rows = [r for r in _rows(out) if r["impl"] == "compile"]
    assert rows and all(r["status"] == "ok" and float(r["compile_s"]) > 0 for r in rows)
    torch._dynamo.reset()


def test_runner_train_step(tmp_path, stub_cpu):
    """The D step with R1 runs for eager and the fused cpu backend, gradients checked first."""
    out = tmp_path / "res"
    args = ["--device", "cpu", "--tiny", "--ops", "train_d_r1", "--no-plots", "--out", str(out)]
    assert bench_run.main(args + FAST) == 0
    rows = _rows(out)
    assert {r["impl"] for r in rows} == {"eager", "cpu"}
    assert all(r["status"] == "ok" and float(r["steps_per_s"]) > 0 for r in rows), rows
