"""One command for a GPU machine (H100/H200; no internet; its own torch and Python): build, the CUDA
and Triton tests on CUDA tensors, a determinism pass, compute-sanitizer memcheck, the overhead family
and the benchmark sweep, then ONE verdict table (benchmarks/verdict.py).

    python3 -m benchmarks gpu [--out DIR] [--budget 470]   # or: bash benchmarks/gpu_check.sh, make gpu-check
    python3 -m benchmarks gpu --dry-run                    # any machine: the steps and the GPU test ids; runs nothing

Steps, each under its own time limit (a failure or a timeout never stops the others), the whole run
within --budget seconds (default 470: 8 minutes less a margin):
  1 build       pip install --no-build-isolation --no-deps --no-index -e . ; when ganreg_ext._C then does
                not import: python setup.py build_ext --inplace. TORCH_CUDA_ARCH_LIST as given, else setup.py's
                default 8.0;9.0+PTX (what tests/test_native.py asserts); nvcc --threads 3; MAX_JOBS = cores.
  2 in parallel info; tests_cuda, tests_triton (pytest -v, no -x, -n with pytest-xdist when installed);
                check_1, check_2 (python -m benchmarks check in two processes: vs the reference, a repeated
                call bitwise equal, SHA-256 of every result compared across the two); memcheck (compute-sanitizer
                on that check at a tiny odd shape; "refused" when the container runtime does not allow it).
  3 overhead    python -m benchmarks ops --ops overhead (µs per call of every public function)
  4 sweep       python -m benchmarks ops --quick --ops sweep --sizes primary (the largest GPU size of every family,
                L2 flushed, eager + compile + cuda + triton)
  5 verdict     op × backend: correct / wrong / not run; ms, ×eager, ×compile, % of HBM peak; µs per call

Output in <base>/benchmarks/results/<gpu-slug>/, <base> = --out or $OUT when set, else the repository:
verdict.md / .csv / .json, summary.txt, logs/<step>.log, check_1.json, check_2.json, check_memcheck.json,
overhead/ and sweep/ (results.csv, results.md, plots). Exit status 1 when a function is wrong or the
build failed, else 0.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# test steps: name, pytest -k expression (the tests that run on CUDA tensors), xdist workers, limit s
TESTS = (
    ("tests_cuda", "cuda and not triton and not cuda_emu", 4, 150),
    ("tests_triton", "triton and not without_gpu", 6, 150),
)
MEMCHECK_SHAPE = "3x3x13x11"
BUILD_S, CHECKS_S, OVERHEAD_S = 270, 150, 90  # limits; the sweep gets what is left
RESERVE_AFTER_BUILD, RESERVE_BENCH = 150, 100  # seconds kept for what follows


@dataclass
class Step:
    name: str
    argv: list[str]
    limit: float
    env: dict | None = None


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compiled Triton on the GPU
    env.update(PYTHONUNBUFFERED="1", KINETO_LOG_LEVEL="5", **extra)
    return env


def compute_sanitizer() -> str | None:
    cands = [
        shutil.which("compute-sanitizer"),
        os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "bin", "compute-sanitizer"),
    ]
    cands += sorted(glob.glob("/usr/local/cuda*/bin/compute-sanitizer"), reverse=True)
    return next((c for c in cands if c and os.access(c, os.X_OK)), None)


def pytest_argv(expr: str, workers: int, collect: bool = False) -> list[str]:
    argv = [PY, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-k", expr]
    if collect:
        return argv + ["--collect-only", "-q"]
    argv += ["-v", "-rfE"]
    if importlib.util.find_spec("xdist"):
        argv += ["-n", str(workers)]
    if importlib.util.find_spec("pytest_timeout"):
        argv += ["--timeout", "120"]
    return argv


def plan(dest: Path) -> dict[str, list[Step]]:
    """The steps by phase, with their full limits (clipped to the budget when they start)."""
    build_env = _env(MAX_JOBS=os.environ.get("MAX_JOBS", str(os.cpu_count() or 8)))
    build_env.setdefault("NVCC_APPEND_FLAGS", "--threads 3")  # sm_80, sm_90 and the PTX compiled in parallel
    checks = [Step("info", [PY, "-m", "ganreg_ext", "info"], 30)]
    checks += [Step(name, pytest_argv(expr, n), limit) for name, expr, n, limit in TESTS]
    check = [PY, "-m", "benchmarks", "check", "--device", "cuda", "--json"]
    checks += [Step(f"check_{i}", check + [str(dest / f"check_{i}.json")], 90) for i in (1, 2)]
    san = compute_sanitizer() or "compute-sanitizer"  # not run when absent
    memcheck = [san, "--tool", "memcheck", "--leak-check", "no", *check, str(dest / "check_memcheck.json"), "--shape", MEMCHECK_SHAPE]  # fmt: skip
    # without the caching allocator every tensor is its own allocation: out-of-bounds accesses are visible
    checks.append(Step("memcheck", memcheck, CHECKS_S, _env(PYTORCH_NO_CUDA_MEMORY_CACHING="1")))
    bench = [PY, "-m", "benchmarks", "ops", "--device", "cuda"]
    return {
        "build": [
            Step("build", [PY, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-v", "-e", "."], BUILD_S, build_env),
            Step("build_inplace", [PY, "setup.py", "build_ext", "--inplace"], BUILD_S, {**build_env, "NVCC_APPEND_FLAGS": ""}),
        ],
        "checks": checks,
        "bench": [
            Step("overhead", bench + ["--ops", "overhead", "--out", str(dest / "overhead"), "--no-plots"], OVERHEAD_S),
            Step("sweep", bench + ["--quick", "--ops", "sweep", "--sizes", "primary", "--out", str(dest / "sweep")], 0),
        ],
    }  # fmt: skip


def run_step(step: Step, logs: Path) -> dict:
    """Run one step under its limit (its whole process group is killed at the limit); never raises."""
    log = logs / f"{step.name}.log"
    t0 = time.monotonic()
    if step.limit < 10:
        result = "skipped: no time left"
        log.write_text(result + "\n")
    else:
        with log.open("w") as f:
            f.write("$ " + shlex.join(step.argv) + "\n")
            f.flush()
            try:
                p = subprocess.Popen(step.argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=step.env or _env(), start_new_session=True)  # fmt: skip
            except OSError as e:
                result = f"could not start: {e}"
            else:
                try:
                    result = f"rc={p.wait(timeout=step.limit)}"
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    result = "timeout"
    rec = {"step": step.name, "result": result, "s": time.monotonic() - t0, "limit": step.limit, "log": log.name}
    print(f"  {step.name}: {result} in {rec['s']:.0f} s (limit {step.limit:.0f} s)", flush=True)
    return rec


def _built() -> bool:
    return subprocess.run([PY, "-c", "import ganreg_ext._C"], cwd=ROOT, capture_output=True).returncode == 0


def _clip(steps: list[Step], limit) -> list[Step]:
    return [Step(s.name, s.argv, min(s.limit, limit), s.env) for s in steps]


def environment(gpu: str) -> dict:
    import torch

    from . import timing as T

    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True,
    ).stdout.strip() if shutil.which("nvidia-smi") else "nvidia-smi absent"  # fmt: skip
    return {
        "date": T.now(utc=True),
        "gpu": gpu,
        "nvidia-smi": smi,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda,
        "triton": T.triton_version(),
        "TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST", "unset (setup.py default 8.0;9.0+PTX)"),
        "ninja": shutil.which("ninja") or "absent (the build is serial)",
        "pytest-xdist": bool(importlib.util.find_spec("xdist")),
        "compute-sanitizer": compute_sanitizer() or "absent",
    }


def dry_run() -> int:
    """Print every step as it would run on a GPU, and the GPU test ids (collected, never run)."""
    import torch

    dest = Path("<out>/benchmarks/results/<gpu-slug>")
    print(__doc__.split("\n\n")[2])
    for phase, steps in plan(dest).items():
        print(f"\n[{phase}]" + (" (in parallel)" if phase == "checks" else ""))
        for s in steps:
            print(f"  {s.name:14s} limit {s.limit or 'rest':>4} s: {shlex.join(s.argv)}")
        if phase == "checks" and not compute_sanitizer():
            print(
                "  (compute-sanitizer is not found here: PATH, $CUDA_HOME/bin, /usr/local/cuda*/bin; memcheck is not run without it)"
            )
    fake = [] if torch.cuda.is_available() else ["-p", "benchmarks._as_gpu"]
    if fake:
        print("\nNo GPU here: the ids are collected as on a GPU machine (torch.cuda.is_available() answered True "
              "during collection, benchmarks/_as_gpu.py); the cuda ids need a CUDA build of ganreg_ext._C.")  # fmt: skip
    collect = lambda t: subprocess.run(
        pytest_argv(t[1], t[2], collect=True) + fake, cwd=ROOT, capture_output=True, text=True, env=_env()
    )  # noqa: E731
    with ThreadPoolExecutor(len(TESTS)) as ex:
        done = list(ex.map(collect, TESTS))
    total, broken = 0, []
    for (name, expr, *_), res in zip(TESTS, done):
        ids = [ln for ln in res.stdout.splitlines() if ln.startswith("tests/") and "::" in ln]
        print(f"\n[{name}] pytest -k {expr!r}: {len(ids)} tests (collect rc={res.returncode})")
        print("\n".join(f"  {i}" for i in ids))
        if res.returncode not in (0, 5):
            broken.append(name)
            print(res.stdout[-3000:] + res.stderr[-2000:])
        total += len(ids)
    print(f"\n{total} GPU tests in {len(TESTS)} steps" + (f"; COLLECTION ERRORS in {', '.join(broken)}" if broken else ""))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks gpu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", default=os.environ.get("OUT"), help="base folder (default $OUT, else the repository)")
    p.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 470)))
    p.add_argument("--dry-run", action="store_true", help="list the steps and the GPU test ids; run nothing")
    a = p.parse_args(argv)
    if a.dry_run:
        return dry_run()
    t0 = time.monotonic()
    left = lambda: a.budget - (time.monotonic() - t0)  # noqa: E731
    import torch

    from . import timing as T
    from . import verdict as V

    if not torch.cuda.is_available():
        print("no CUDA device is visible to torch: nothing to check here (--dry-run shows the plan)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    dest = Path(a.out or ROOT) / "benchmarks" / "results" / T.device_slug(torch.device("cuda"))
    logs = dest / "logs"
    for old in [logs, dest / "overhead", dest / "sweep", *dest.glob("check_*.json")]:  # a previous run's
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
    logs.mkdir(parents=True)
    env = environment(gpu)
    print(json.dumps(env, indent=1), flush=True)
    steps = plan(dest)
    recs = []
    print("[build]", flush=True)
    build, inplace = steps["build"]
    recs.append(run_step(_clip([build], left() - RESERVE_AFTER_BUILD)[0], logs))
    if not _built():  # e.g. no `wheel` for pip's editable install, and no internet to fetch it
        recs.append(run_step(_clip([inplace], min(BUILD_S - recs[-1]["s"], left() - RESERVE_AFTER_BUILD))[0], logs))
    built = _built()
    print("[checks, in parallel]", flush=True)
    checks = _clip([s for s in steps["checks"] if s.name != "memcheck" or compute_sanitizer()], left() - RESERVE_BENCH)
    with ThreadPoolExecutor(len(checks)) as ex:
        recs += list(ex.map(lambda s: run_step(s, logs), checks))
    print("[benchmarks]", flush=True)
    for s in steps["bench"]:
        limit = min(s.limit, 0.4 * (left() - 15)) if s.name == "overhead" else left() - 15
        argv = s.argv + ["--budget", f"{max(limit - 25, 5):.0f}", "--compile-budget", f"{limit / 3:.0f}"]
        recs.append(run_step(Step(s.name, argv, limit), logs))
        out = dest / s.name
        if recs[-1]["result"] != "rc=0" and (out / "results.csv").exists():  # cut off: rebuild the report
            recs.append(run_step(Step(f"{s.name}_report", [PY, "-m", "benchmarks", "ops", "--report-only", "--out", str(out)], min(30, left())), logs))  # fmt: skip
    peak = next((f"{k} nominal {bw / 1e12:.2f} TB/s" for k, bw in T.PEAK_BW if k in gpu), "unknown GPU: no nominal peak")
    meta = {**env, "HBM peak (the % column)": peak, "build": "ok" if built else "FAILED (see logs/build*.log)"}
    meta["elapsed"] = f"{time.monotonic() - t0:.0f} s of {a.budget:.0f} s"
    rows = V.collect(dest, recs, meta, test_steps=[t[0] for t in TESTS])
    path = dest / "verdict.md"
    (dest / "summary.txt").write_text("\n".join(f"{r['step']} {r['result']} {r['s']:.0f}s limit={r['limit']:.0f}s log=logs/{r['log']}" for r in recs) + "\n")  # fmt: skip
    print(path.read_text(), flush=True)
    print(f"wrote {path} (+ .csv, .json), summary.txt, logs/", flush=True)
    return 1 if not built or any(r["verdict"] == "wrong" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
