"""Smoke tests of the benchmark tooling: the runner (benchmarks/run.py) at tiny sizes, its overhead
family, op_check + the GPU verdict table (benchmarks/op_check.py, verdict.py), and the GPU check's
dry run (benchmarks/gpu_check.py). They assert that results are produced and judged right, never timings.

Only the public API is touched: where the C++ ``cpu`` backend is not built, the public functions are
wrapped so that ``backend="cpu"`` runs the reference (the fused-row path is still exercised), and a
deliberately wrong fused result is made by wrapping ``gx.r1_penalty``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

import ganreg_ext as gx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import cases as C  # noqa: E402
from benchmarks import gpu_check, op_check  # noqa: E402
from benchmarks import run as bench_run  # noqa: E402
from benchmarks import verdict as V  # noqa: E402

ARGS = ["--device", "cpu", "--quick", "--tiny", "--ops", "r1,diff_augment", "--no-compile"]
FAST = ["--min-reps", "3", "--max-reps", "3", "--warmup", "1", "--copy-mib", "8", "--target-s", "0"]
OPS = [c.op for c in C.overhead_cases()]


def _as_reference(fn):
    def wrapped(*args, backend=None, **kw):
        return fn(*args, backend="reference" if backend == "cpu" else backend, **kw)

    return wrapped


@pytest.fixture
def stub_cpu(monkeypatch):
    """A ``cpu`` fused backend for the runner: the real one if built, else the reference behind
    ``backend="cpu"`` of every public function the benchmarks call."""
    monkeypatch.setattr(bench_run, "fused_backends", lambda device: ["cpu"] if device.type == "cpu" else [])
    if "cpu" not in gx.available_backends():
        for name in OPS:
            if name != "PathLengthRegularizer":
                monkeypatch.setattr(gx, name, _as_reference(getattr(gx, name)))

        class PL(gx.PathLengthRegularizer):
            def __init__(self, *args, backend=None, **kw):
                super().__init__(*args, backend="reference" if backend == "cpu" else backend, **kw)

        monkeypatch.setattr(gx, "PathLengthRegularizer", PL)


@pytest.fixture
def wrong_r1(monkeypatch, stub_cpu):
    """``r1_penalty`` with ``backend="cpu"`` returns 1% too much."""
    r1 = gx.r1_penalty

    def wrong(*args, backend=None, **kw):
        out = r1(*args, backend=backend, **kw)
        return out * 1.01 if backend == "cpu" else out

    monkeypatch.setattr(gx, "r1_penalty", wrong)


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
            assert all(float(r["median_ms"]) > 0 and int(r["reps"]) >= 3 and r["cache"] for r in ok)
    fused = [r for r in rows if r["family"] == "r1" and r["impl"] == "cpu"]
    assert fused and all(r["status"] == "ok" for r in fused), fused
    assert all(float(r["x_eager"]) > 0 and float(r["max_abs_err"]) < 1e-3 and r["baseline"] == "eager" for r in fused)
    assert all(float(r["gbps"]) > 0 for r in fused)
    md = (out / "results.md").read_text()
    assert "r1_penalty" in md and "diff_augment" in md and "torch " in md and "LLC" in md
    # --report-only rebuilds the report from the CSV
    (out / "results.md").unlink()
    assert bench_run.main(["--report-only", "--no-plots", "--out", str(out)]) == 0
    assert (out / "results.md").is_file()


def test_runner_flags_wrong_fused_result(tmp_path, wrong_r1):
    """A fused kernel that is wrong must be reported WRONG and not timed."""
    out = tmp_path / "res"
    args = ["--device", "cpu", "--quick", "--tiny", "--ops", "r1", "--no-compile", "--no-memory", "--no-plots"]
    assert bench_run.main(args + FAST + ["--out", str(out)]) == 0
    fused = [r for r in _rows(out) if r["impl"] == "cpu"]
    assert fused and all(r["status"].startswith("WRONG") and r["median_ms"] == "" for r in fused)


def test_noise_family_headline_is_against_randn_like(tmp_path, stub_cpu):
    """Noise families: ×eager against the randn_like code users run, ×ref against the Philox reference."""
    out = tmp_path / "res"
    args = ["--device", "cpu", "--tiny", "--ops", "instance_noise", "--no-compile", "--no-memory", "--no-plots"]
    assert bench_run.main(args + FAST + ["--out", str(out)]) == 0
    fused = [r for r in _rows(out) if r["impl"] == "cpu" and r["mode"] == "fwd"]
    assert fused and all(r["baseline"] == "torch_randn" and float(r["x_eager"]) > 0 and float(r["x_ref"]) > 0 for r in fused)
    assert "Philox ref" in (out / "results.md").read_text()


def test_overhead_family_tiny(tmp_path, stub_cpu):
    """Every public function: fwd, fwd+bwd and (where it applies) the double backward, eager and fused,
    checked against the reference first; plus the per-layer rows."""
    out = tmp_path / "res"
    args = ["--device", "cpu", "--tiny", "--ops", "overhead", "--no-compile", "--no-memory", "--no-plots"]
    assert bench_run.main(args + FAST + ["--out", str(out)]) == 0
    rows = _rows(out)
    bad = [(r["op"], r["mode"], r["impl"], r["status"]) for r in rows if r["status"].startswith(("WRONG", "error"))]
    assert not bad, bad
    ok = {(r["op"], r["mode"], r["impl"]) for r in rows if r["status"].startswith("ok")}
    for case in C.overhead_cases():
        for mode in case.modes:
            assert {(case.op, mode, "eager"), (case.op, mode, "cpu")} <= ok, (case.op, mode)
    assert {"fwd", "fwdbwd", "dbl"} <= {m for op, m, _ in ok if op == "r1_penalty"}
    assert all(float(r["median_ms"]) > 0 for r in rows if r["status"].startswith("ok"))
    layers = {r["impl"]: r for r in rows if r["op"] == "layers (no grad)"}
    assert layers["r1_penalty[eager]"]["status"] == "ok" and layers["grad_sqnorm[cpu]"]["status"] == "ok"
    raw = layers["torch.ops.ganreg_C.sqnorm"]["status"]
    assert raw == "ok" or raw.startswith("skipped: torch.ops.ganreg_C.sqnorm is not registered"), raw
    md = (out / "results.md").read_text()
    assert "µs per call" in md and "PathLengthRegularizer" in md


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
    rows = [r for r in _rows(out) if r["impl"] != "compile"]
    assert {r["impl"] for r in rows} == {"eager", "cpu"}
    assert all(r["status"] == "ok" and float(r["steps_per_s"]) > 0 for r in rows), rows


def test_verdict_marks_a_wrong_fused_result(tmp_path, wrong_r1):
    """op_check in two runs + a test log → the verdict files: the wrong function is "wrong", the others
    "correct" (with their evidence) or "not run"."""
    ops = "r1_penalty,grad_sqnorm,diff_augment"
    for i in (1, 2):
        argv = [
            "--device",
            "cpu",
            "--backends",
            "cpu",
            "--shape",
            "2x3x8x8",
            "--ops",
            ops,
            "--json",
            str(tmp_path / f"check_{i}.json"),
        ]
        assert op_check.main(argv) == 1  # r1_penalty is wrong
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "tests_cuda.log").write_text(
        "PASSED tests/test_augment.py::test_matrix_diff_augment[cpu-float32-contiguous]\n"
    )
    rows = {r["op"]: r for r in V.collect(tmp_path, [], {"gpu": "test"}, backends=["cpu"])}
    assert rows["r1_penalty"]["verdict"] == "wrong" and "check wrong" in rows["r1_penalty"]["why"]
    assert rows["grad_sqnorm"]["verdict"] == "correct" and rows["grad_sqnorm"]["bitwise"] == "yes (2 processes)"
    assert rows["diff_augment"]["tests"] == "1/1 passed" and rows["diff_augment"]["check"] == "ok"
    assert rows["instance_noise"]["verdict"] == "not run"
    md = (tmp_path / "verdict.md").read_text()
    assert "| r1_penalty | cpu | **wrong** |" in md and "memcheck: not run" in md
    assert (tmp_path / "verdict.csv").is_file() and (tmp_path / "verdict.json").is_file()
    # a second process with other bytes is wrong too
    runs = [json.loads((tmp_path / f"check_{i}.json").read_text())["records"] for i in (1, 2)]
    runs[1] = [{**r, "hash": "0" * 64} if r["op"] == "grad_sqnorm" else r for r in runs[1]]
    rows = {r["op"]: r for r in V.build(["cpu"], runs, {}, V.parse_sanitizer("", "absent"), [])}
    assert rows["grad_sqnorm"]["verdict"] == "wrong" and rows["grad_sqnorm"]["bitwise"] == "no"


def test_verdict_parsers():
    log = (
        "$ python -m pytest tests -k x\n[gw1] [ 10%] PASSED tests/test_gradnorm.py::test_matrix_penalties[cuda-float32-contiguous] \n"
        "tests/test_triton_kernels.py::test_sqnorm_matches_reference[float32-contiguous] FAILED [ 20%]\n"
    )
    got = V.parse_pytest(log)
    assert got == {
        "tests/test_gradnorm.py::test_matrix_penalties[cuda-float32-contiguous]": "PASSED",
        "tests/test_triton_kernels.py::test_sqnorm_matches_reference[float32-contiguous]": "FAILED",
    }
    assert "r1_penalty" in V.ops_of_test("tests/test_triton_kernels.py::test_sqnorm_matches_reference[x]")
    assert V.ops_of_test("tests/test_compile.py::test_every_op_registered") == (V.OTHER,)
    san = "BEGIN r1_penalty cuda contiguous\n========= Invalid __global__ read of size 4 bytes\nEND r1_penalty cuda contiguous: ok\n"
    got = V.parse_sanitizer(san + "========= ERROR SUMMARY: 1 error\n", "rc=1")
    assert got["state"] == "errors (1)" and got["bad"] == [("r1_penalty", "cuda")]
    assert V.parse_sanitizer("========= ERROR SUMMARY: 0 errors\n", "rc=0")["state"] == "clean"
    refused = V.parse_sanitizer("========= Error: Target application terminated before first instrumented API call\n", "rc=255")
    assert refused["state"] == "refused"
    assert V.parse_sanitizer("", "skipped: no time left")["state"] == "not run"


def test_gpu_check_dry_run_lists_gpu_tests(capsys):
    """The dry run prints every step and the GPU test ids with their count, and needs no GPU."""
    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    for step in ("build", "build_inplace", "info", "tests_cuda", "tests_triton", "check_1", "check_2", "overhead", "sweep"):
        assert f"  {step} " in out, step
    total = int(out.rsplit("\n", 2)[-2].split()[0])
    assert total > 0 and "\n  tests/test_" in out


# ------------------------------------------------------------------ extra baselines are checked


def _ada_inputs(shape=(2, 3, 48, 48), seed=3):
    case = C.ada_case(shape)
    return case, case.make(torch.device("cpu"), torch.float32, torch.Generator().manual_seed(seed))


def test_ada_chain_check_passes_the_chain_and_fails_planted_errors():
    """The grid_sample chain passes its check (same transform, other resampling filter); a chain with
    the geometry shifted by half a pixel, without cutout or without the colour matrix fails it."""
    case, inp = _ada_inputs()
    chk = case.extra_check["grid_sample_chain"]
    ok, err, msg = chk.fn(case, inp, case.extra["grid_sample_chain"])
    assert ok and err < C.ADA_OUT_TOL, msg

    def planted(edit):
        def call(i):
            p = edit(dict(i.kw["params"]))
            return C.ada_grid_sample_chain(i.leaves[0], p, C.ada_margin(p["geom"], *i.leaves[0].shape[2:]))

        return call

    def shift(p):
        p["geom"] = p["geom"].clone()
        p["geom"][:, 0, 2] += 0.5
        return p

    def no_colour(p):
        b, rows, cols = p["color"].shape  # homogeneous [B, 4, 4]
        p["color"] = torch.eye(rows, cols).expand(b, -1, -1).clone()
        return p

    for edit in (shift, lambda p: {k: v for k, v in p.items() if k != "cutout"}, no_colour):
        ok, _, msg = chk.fn(case, inp, planted(edit))
        assert not ok and "band-limited" in msg


def test_same_noise_check_passes_the_randn_like_code_and_fails_a_wrong_formula():
    """NVlabs' noise-dot with the reference's noise swapped in equals the reference; the same code
    with the wrong normalization (√(H·W) missing) fails."""
    case = C.pl_noise_dot_case((2, 3, 16, 16))
    inp = case.make(torch.device("cpu"), torch.float32, torch.Generator().manual_seed(0))
    chk = case.extra_check["nvlabs_randn"]
    real = torch.randn_like
    ok, _, msg = chk.fn(case, inp, case.extra["nvlabs_randn"])
    assert ok, msg
    ok, _, _ = chk.fn(case, inp, lambda i: (i.leaves[0] * torch.randn_like(i.leaves[0])).sum())
    assert not ok
    assert torch.randn_like is real  # restored after the check


def test_extra_rows_say_how_they_were_checked(tmp_path, stub_cpu):
    """The runner labels an extra row by its check; a compiled noise extra stays 'unchecked'."""
    case = C.pl_noise_dot_case((2, 3, 8, 8))
    assert bench_run._extra_check(case, "nvlabs_randn") is case.extra_check["nvlabs_randn"]
    assert bench_run._extra_check(case, "compile_nvlabs_randn") is None
    ada = C.ada_case((2, 3, 8, 8))
    assert bench_run._extra_check(ada, "compile_grid_sample_chain") is ada.extra_check["grid_sample_chain"]
    rc = bench_run.main(ARGS[:4] + ["--ops", "pl_noise_dot", "--no-compile", "--out", str(tmp_path), "--no-plots"] + FAST)
    assert rc == 0
    extra = [r for r in _rows(tmp_path) if r["impl"] == "nvlabs_randn"]
    assert extra and all(r["status"].startswith("ok (checked: same formula") for r in extra)
