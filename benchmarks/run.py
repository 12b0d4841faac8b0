"""Benchmark sweep: every op family, forward / backward / forward+backward, eager ``reference`` vs
``torch.compile`` of the reference vs every fused backend available on the device, plus two real
training steps (D with R1, G with path length). Writes CSV, a markdown report and PNG plots.

    python -m benchmarks ops [--device cpu|cuda] [--ops r1,diff_augment ...] [--quick] [--out DIR]
    (or python -m benchmarks.run ...)

Default output: ``benchmarks/results/<device-slug>/`` (``cpu-<cpu model>`` or e.g. ``h100``).
``--report-only`` rebuilds ``results.md`` and the plots from an existing ``results.csv`` (e.g.
after a run was cut off by a time limit: the CSV is written case by case).

Method (see also benchmarks/timing.py and benchmarks/checks.py):
- inputs random normal (never zeros), fixed seeds; float32 unless ``--dtype``;
- before timing, every non-reference implementation's output and input gradients are checked
  against the eager reference (``torch.testing.assert_close``); a wrong row is not timed;
- ``torch.compile(fullgraph=False, dynamic=False)`` of the *public* function with
  ``backend="reference"``; the first call (forward+backward compile) is timed and reported as
  ``compile_s``, never included in the timings;
- fwd: the call with the inputs requiring grad (the graph is built, as in training);
  bwd: ``autograd.grad`` of a fresh untimed forward; fwd+bwd: both; dbl (overhead family): a
  penalty on ``create_graph=True`` gradients, or R1 through the op, then its backward;
- median and IQR of ≥ 20 repetitions after warm-up; peak extra memory of one call; CUDA flushes L2
  before each repetition, CPU flushes its caches when the case's working set exceeds the LLC
  (``cache`` column); the overhead family times µs per call in blocks, warm;
- noise families: ×eager / ×compile are against the ``randn_like`` code users run (``baseline``
  column), ×ref against the eager integer-Philox reference; every extra baseline is checked before it
  is timed where it can be (``cases.ExtraCheck``: the noise code with the reference's noise swapped in,
  the ADA grid_sample chain on band-limited images), its ``status`` says how (or that it is not);
- GB/s = the floor bytes of the op (``cases.py``) / median time, and % of the device bandwidth:
  the copy_ bandwidth measured in the same run on CPU, the nominal HBM peak on H100/H200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from . import cases as C
from . import report
from . import timing as T
from . import train as TR
from .checks import errmsg, fused_backends, grad, max_err, outputs

FIELDS = [
    "family", "op", "size", "numel", "dtype", "mode", "impl", "kind", "status", "median_ms", "q1_ms", "q3_ms",
    "iqr_ms", "reps", "x_eager", "x_compile", "floor_bytes", "floor_ms", "gbps", "pct_bw", "peak_mem_mib",
    "compile_s", "max_abs_err", "steps_per_s", "baseline", "x_ref", "cache", "peak_cache_mib", "ms_reuse_off",
]  # fmt: skip
NO_COMPILE_TRAIN = "skipped: torch.compile (AOTAutograd) has no double backward, which R1 and path length need"
TOL_DTYPE = {torch.float32: 1.0, torch.float64: 1.0, torch.float16: 20.0, torch.bfloat16: 160.0}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# ------------------------------------------------------------------------------------------- env


def environment(device: torch.device, args) -> dict:
    import ganreg_ext as gx

    return {
        **T.header(device),
        "device_slug": T.device_slug(device),
        "triton": T.triton_version(),
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "loadavg": T.loadavg(),
        "backends_available": gx.available_backends(),
        "fused_benchmarked": fused_backends(device),
        "dtype": args.dtype,
        "quick": args.quick,
        "min_reps": args.min_reps,
        "argv": args.argv,
        "cpu_reuse_cache_mib": None if T.reuse_cache_limit() is None else T.reuse_cache_limit() / 2**20,
        "reuse_off_timed": bool(args.reuse_off) and device.type == "cpu",
        "peak_method": T.CPU_PEAK_METHOD if device.type == "cpu" else "CUDA max_memory_allocated after reset_peak_memory_stats",
    }


# ------------------------------------------------------------------------------------- running


def _extra_check(case: C.Case, impl: str) -> C.ExtraCheck | None:
    """The check of an extra baseline row (``impl`` = its name or ``compile_<name>``), or None."""
    name = impl.removeprefix("compile_")
    chk = case.extra_check.get(name)
    if chk is None or (impl != name and not chk.compiled):
        return None
    return chk


class Runner:
    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.dtype = DTYPES[args.dtype]
        self.t_start = time.perf_counter()
        self.out = Path(args.out)
        self.csv_path = self.out / "results.csv"
        self.rows: list[dict] = []
        self.impl_filter = set(args.impls.split(",")) if args.impls else None
        self.bw = 0.0
        self.bw_ref = 0.0
        self.bw_src = ""
        self.compile_spent = 0.0
        self.llc = T.llc_bytes()

    # -------------------------------------------------------------------------------- helpers
    def over_budget(self) -> bool:
        return self.args.budget is not None and time.perf_counter() - self.t_start > self.args.budget

    def want(self, impl: str, kind: str) -> bool:
        if self.impl_filter is None:
            return not (kind == "compile" and self.args.no_compile)
        return impl in self.impl_filter or kind in self.impl_filter or impl == "eager"

    def emit(self, row: dict) -> None:
        full = {k: row.get(k, "") for k in FIELDS}
        self.rows.append(full)
        report.append_csv(self.csv_path, FIELDS, full)

    def bench(self, run, setup=None, flush: bool = False):
        a = self.args
        return T.bench(
            run, self.device, setup, warmup=a.warmup, min_reps=a.min_reps, max_reps=a.max_reps, target_s=a.target_s, flush=flush
        )

    def perf_fields(self, st: T.Stats, floor_bytes: int | None) -> dict:
        d = {"median_ms": st.median_ms, "q1_ms": st.q1_ms, "q3_ms": st.q3_ms, "iqr_ms": st.iqr_ms, "reps": st.reps}
        if floor_bytes:
            gbps = floor_bytes / (st.median_ms * 1e-3) / 1e9
            d.update(
                floor_bytes=floor_bytes,
                floor_ms=floor_bytes / self.bw_ref * 1e3,
                gbps=gbps,
                pct_bw=100 * gbps * 1e9 / self.bw_ref,
            )
        elif floor_bytes == 0:
            d.update(floor_bytes=0)
        return d

    # ------------------------------------------------------------------------------ op cases
    def compile_skip(self, case, philox_ok: bool = False) -> str | None:
        """Why ``torch.compile`` is not run for ``case`` (None: run it); ``philox_ok``: for the
        compiled randn_like baselines, which compile fast."""
        a = self.args
        if isinstance(case.compile_slow, str) and not philox_ok:
            return case.compile_slow
        if case.compile_slow and not a.compile_noise and not philox_ok:
            return (
                "skipped: compiling the integer-Philox reference takes > 10 min on a 2-core CPU (--compile-noise runs it); "
                "see the compile_* baseline"
            )
        if a.compile_sizes == "primary" and not case.primary:
            return "skipped: --compile-sizes primary (compiled only at the largest size)"
        if a.compile_budget is not None and self.compile_spent > a.compile_budget:
            return f"skipped: compile budget ({a.compile_budget:.0f} s of compilation spent)"
        return None

    def impls_for(self, case: C.Case, inp: C.Inputs) -> list[tuple[str, str, object]]:
        impls: list[tuple[str, str, object]] = [("eager", "eager", lambda i: case.fn(i, "reference"))]
        if self.want("compile", "compile") and self.compile_skip(case) is None:
            impls.append(("compile", "compile", C.compiled(lambda i: case.fn(i, "reference"), inp)))
        for b in fused_backends(self.device):
            if self.want(b, "fused"):
                impls.append((b, "fused", lambda i, b=b: case.fn(i, b)))
        for name, fn in case.extra.items():
            if self.impl_filter is not None and name in self.impl_filter or (self.impl_filter is None and self.args.extras):
                impls.append((name, "extra", fn))
                if self.want("compile", "compile") and self.compile_skip(case, philox_ok=True) is None:
                    impls.append((f"compile_{name}", "extra", C.compiled(fn, inp)))
        return impls

    def _modes(self, case: C.Case, fn, inp: C.Inputs):
        """mode -> (setup, run) of ``fn`` (an implementation: ``fn(inputs) -> output``)."""
        leaves, gout = inp.leaves, inp.grad_out
        out = {}
        for mode in case.modes:
            if mode == "fwd":
                out[mode] = None, (lambda _s: fn(inp))
            elif mode == "bwd":
                out[mode] = (lambda: fn(inp)), (lambda o: grad(o, leaves, gout))
            elif mode == "fwdbwd":
                out[mode] = None, (lambda _s: grad(fn(inp), leaves, gout))
            else:  # dbl
                out[mode] = None, (lambda _s: grad(case.dbl(inp, fn), leaves, None))
        return out

    def _time(self, case: C.Case, run, setup, flush: bool, kind: str = "") -> tuple[T.Stats, T.MemPeak | None, T.Stats | None]:
        """(timing, peak memory, timing with the CPU reuse cache off: fused rows whose call took
        blocks from the cache, with ``--reuse-off``; else None)."""
        dev = self.device
        if case.latency:
            st = T.per_call(lambda: run(None), dev)
        else:
            st = self.bench(run, setup, flush)
        mem = T.peak_memory(run, dev, setup) if not self.args.no_memory else None
        off = None
        if self.args.reuse_off and kind == "fused" and dev.type == "cpu" and not case.latency and mem and mem.cache_bytes:
            with T.reuse_cache(False):
                off = self.bench(run, setup, flush)
        return st, mem, off

    def run_case(self, idx: int, total: int, case: C.Case) -> None:
        import ganreg_ext as gx

        dev, dt = self.device, self.dtype
        base = {"family": case.family, "op": case.op, "size": case.size, "numel": case.numel, "dtype": self.args.dtype}
        if self.over_budget():
            for mode in case.modes:
                self.emit({**base, "mode": mode, "impl": "*", "status": "skipped: time budget"})
            print(f"[{idx}/{total}] {case.key} {case.op}: skipped (time budget)", flush=True)
            return
        gen = torch.Generator(device=dev).manual_seed(1000 + idx)
        inp = case.make(dev, dt, gen)
        leaves = inp.leaves
        ref = lambda i: case.fn(i, "reference")  # noqa: E731
        want = outputs(case, inp, ref, dbl=False)
        want_dbl = [g if g is None else g.detach() for g in grad(case.dbl(inp, ref), leaves, None)] if case.dbl else None
        rtol, atol = (t * TOL_DTYPE[dt] for t in case.tol)
        torch._dynamo.reset()
        # CPU: flush the caches before each repetition when the working set exceeds the LLC
        flush = dev.type == "cpu" and not case.latency and (case.floor_bytes("fwdbwd", dt) or 0) > self.llc
        if case.latency:
            cache = "warm, per call"
        else:
            cache = "L2 flushed" if dev.type == "cuda" else ("flushed" if flush else "warm (< LLC)")
        results: dict[tuple[str, str], float] = {}
        line = []
        why_no_compile = self.compile_skip(case)
        for impl, kind, fn in self.impls_for(case, inp):
            row0 = {**base, "impl": impl, "kind": kind, "cache": cache}
            compile_s, err = "", ""
            if impl != "eager" and self.over_budget():
                for mode in case.modes:
                    self.emit({**row0, "mode": mode, "status": "skipped: time budget"})
                line.append(f"{impl} skipped")
                continue
            try:
                T.sync(dev)
                t0 = time.perf_counter()
                got = outputs(case, inp, fn, dbl=False)
                T.sync(dev)
                if impl.startswith("compile"):
                    compile_s = time.perf_counter() - t0
                    self.compile_spent += compile_s
                chk = _extra_check(case, impl) if kind == "extra" else None
                if kind != "extra" or chk is not None:
                    if chk is None:
                        ok, err, msg = max_err(got, want, rtol, atol)
                    else:
                        ok, err, msg = chk.fn(case, inp, fn)
                    if not ok:
                        for mode in case.modes:
                            self.emit(
                                {**row0, "mode": mode, "status": f"WRONG: {msg}", "max_abs_err": err, "compile_s": compile_s}
                            )
                        line.append(f"{impl} WRONG")
                        print(f"    {impl}: WRONG vs reference, not timed: {msg}", flush=True)
                        continue
                del got
            except gx.BackendUnavailable as e:
                for mode in case.modes:
                    self.emit({**row0, "mode": mode, "status": f"unavailable: {e}"})
                line.append(f"{impl} n/a")
                continue
            except Exception as e:  # a failing impl must not stop the sweep
                msg = errmsg(e)
                for mode in case.modes:
                    self.emit({**row0, "mode": mode, "status": f"error: {msg}"})
                line.append(f"{impl} ERROR")
                print(f"    {impl}: error, not timed: {msg}", flush=True)
                if self.args.verbose:
                    traceback.print_exc()
                continue
            if kind != "extra":
                status = "ok"
            elif chk is not None:
                status = f"ok ({chk.label})"
            else:
                status = "ok (unchecked: compiled randn_like, other noise)"
            for mode, (setup, run) in self._modes(case, fn, inp).items():
                try:
                    if mode == "dbl" and kind != "extra":
                        got = [g if g is None else g.detach() for g in run(None)]
                        # second-order sums grow (Σ over taps of products): absolute tolerance relative
                        # to the largest value, as float32 rounding of a sum scales with its terms
                        big = max([1.0] + [float(w.abs().max()) for w in want_dbl if w is not None and w.numel()])
                        ok, e2, msg = max_err(got, want_dbl, rtol, atol * big)
                        if not ok:
                            self.emit({**row0, "mode": mode, "status": f"WRONG: double backward {msg}", "max_abs_err": e2})
                            continue
                    st, mem, off = self._time(case, run, setup, flush, kind)
                except Exception as e:
                    self.emit({**row0, "mode": mode, "status": f"error: {errmsg(e)}"})
                    continue
                results[(impl, mode)] = st.median_ms
                row = {**row0, "mode": mode, "status": status, "compile_s": compile_s, "max_abs_err": err}
                row.update(self.perf_fields(st, case.floor_bytes(mode, dt)))
                row["peak_mem_mib"] = "" if mem is None else mem.total / 2**20
                row["peak_cache_mib"] = "" if mem is None else mem.cache_bytes / 2**20
                row["ms_reuse_off"] = "" if off is None else off.median_ms
                self.emit(row)
            last = case.modes[-1] if case.latency else "fwdbwd"
            unit, mult = ("us", 1e3) if case.latency else ("ms", 1.0)
            line.append(f"{impl} {results.get((impl, last), float('nan')) * mult:.3g}{unit}")
        if why_no_compile and self.want("compile", "compile"):
            for mode in case.modes:
                self.emit({**base, "mode": mode, "impl": "compile", "kind": "compile", "status": why_no_compile})
        self._speedups((case.family, case.op, case.size), results, case.baseline)
        label = C.MODE_LABEL[case.modes[-1]] if case.latency else "fwd+bwd"
        print(f"[{idx}/{total}] {case.op} {case.size} {label}: " + ", ".join(line), flush=True)

    def run_layers(self) -> None:
        """Overhead family: µs per call of each layer of R1 without grad at the overhead size: the raw
        registered op, the public ``grad_sqnorm``, the public ``r1_penalty`` (fused, eager, compiled)."""
        import ganreg_ext as gx

        dev = self.device
        g = torch.randn(C.OVERHEAD_SHAPE, device=dev, generator=torch.Generator(device=dev).manual_seed(7))
        base = {"family": "overhead", "op": report.LAYERS, "size": C._label(g.shape), "numel": g.numel()}
        base.update(dtype="float32", mode="nograd", cache="warm, per call")
        want_r1, want_s = gx.r1_penalty(g, backend="reference"), gx.grad_sqnorm(g, backend="reference")
        impls = [("r1_penalty[eager]", "eager", lambda: gx.r1_penalty(g, backend="reference"), want_r1)]
        if self.want("compile", "compile"):
            compiled = torch.compile(lambda t: gx.r1_penalty(t, backend="reference"), dynamic=False)
            impls.append(("r1_penalty[compile]", "compile", lambda: compiled(g), want_r1))
        for b in fused_backends(dev):
            impls.append((f"r1_penalty[{b}]", "fused", lambda b=b: gx.r1_penalty(g, backend=b), want_r1))
            impls.append((f"grad_sqnorm[{b}]", "fused", lambda b=b: gx.grad_sqnorm(g, backend=b), want_s))
        for ns in ("ganreg_C",) + (("ganreg_triton",) if dev.type == "cuda" else ()):
            name = f"torch.ops.{ns}.sqnorm"
            if not hasattr(getattr(torch.ops, ns), "sqnorm"):
                self.emit({**base, "impl": name, "kind": "raw", "status": f"skipped: {name} is not registered in this build"})
                continue
            op = getattr(torch.ops, ns).sqnorm  # schema sqnorm(grads, inv_scale, weight, reduction); 0 = per sample
            impls.append((name, "raw", lambda op=op: op([g], None, 1.0, 0), want_s))
        with torch.no_grad():
            for impl, kind, fn, want in impls:
                row0 = {**base, "impl": impl, "kind": kind}
                try:
                    ok, err, msg = max_err([fn()], [want], 1e-5, 1e-6)
                    if not ok:
                        self.emit({**row0, "status": f"WRONG: {msg}", "max_abs_err": err})
                        continue
                    st = T.per_call(fn, dev)
                    mem = T.peak_memory_bytes(lambda _, fn=fn: fn(), dev) if not self.args.no_memory else None
                except Exception as e:
                    self.emit({**row0, "status": f"error: {errmsg(e)}"})
                    continue
                row = {**row0, "status": "ok", "max_abs_err": err, "peak_mem_mib": "" if mem is None else mem / 2**20}
                row.update(self.perf_fields(st, g.numel() * 4))
                self.emit(row)
                print(f"    layers: {impl} {st.median_ms * 1e3:.3g} us", flush=True)

    def _speedups(self, key: tuple, results: dict, baseline: str | None = None) -> None:
        """×eager / ×compile against what users run eagerly (the reference, or for the noise families
        the ``randn_like`` code ``case.baseline`` and its compile); ×ref against the eager reference
        when that is not the headline baseline (the integer-Philox noise reference)."""
        for row in self.rows:
            if (row["family"], row["op"], row["size"]) != key or not str(row["status"]).startswith("ok"):
                continue
            mode, ms = row["mode"], row["median_ms"]
            user = baseline if (baseline, mode) in results else "eager"
            comp = f"compile_{user}" if user != "eager" else "compile"
            row["baseline"] = user
            for ref, col in ((user, "x_eager"), (comp, "x_compile"), ("eager" if user != "eager" else None, "x_ref")):
                b = results.get((ref, mode))
                if b and ms:
                    row[col] = b / ms
        # rewrite the CSV so the speedup columns are in it (cheap, keeps the incremental file valid)
        self.write_csv()

    def write_csv(self) -> None:
        report.write_csv(self.csv_path, FIELDS, self.rows)

    # ----------------------------------------------------------------------------- train steps
    def run_train(self, idx: int, total: int, case: TR.TrainCase) -> None:
        import ganreg_ext as gx

        dev = self.device
        base = {
            "family": case.family,
            "op": case.op,
            "size": case.size,
            "numel": case.batch * 3 * case.res**2,
            "dtype": "float32",
            "mode": "step",
        }
        if self.over_budget():
            self.emit({**base, "impl": "*", "status": "skipped: time budget"})
            print(f"[{idx}/{total}] {case.key}: skipped (time budget)", flush=True)
            return
        backends = ["reference"] + [b for b in fused_backends(dev) if self.want(b, "fused")]
        steps = TR.make_steps(case, backends, dev)
        want_loss, want_grads = steps["reference"].grads()
        a = self.args
        timed = lambda step: T.bench(step, dev, warmup=a.warmup, min_reps=a.min_reps, max_reps=a.min_reps, target_s=0.0)  # noqa: E731
        results, line = {}, []
        for b, step in steps.items():
            impl = "eager" if b == "reference" else b
            row0 = {**base, "impl": impl, "kind": "eager" if b == "reference" else "fused", "cache": "warm"}
            err = 0.0
            try:
                if b != "reference":
                    loss, grads = step.grads()
                    ok, err, msg = max_err([loss] + grads, [want_loss] + want_grads, *TR.TOL)
                    if not ok:
                        self.emit({**row0, "status": f"WRONG: {msg}", "max_abs_err": err})
                        print(f"    {impl}: WRONG vs reference, not timed: {msg}", flush=True)
                        continue
                st = timed(step)
                mem = T.peak_memory(step, dev) if not a.no_memory else None
                off = None
                if a.reuse_off and b != "reference" and dev.type == "cpu" and mem and mem.cache_bytes:
                    with T.reuse_cache(False):
                        off = timed(step)
            except gx.BackendUnavailable as e:
                self.emit({**row0, "status": f"unavailable: {e}"})
                continue
            except Exception as e:
                msg = errmsg(e)
                self.emit({**row0, "status": f"error: {msg}"})
                print(f"    {impl}: error: {msg}", flush=True)
                if self.args.verbose:
                    traceback.print_exc()
                continue
            results[(impl, "step")] = st.median_ms
            row = {**row0, "status": "ok", "max_abs_err": err, "steps_per_s": 1e3 / st.median_ms}
            row.update(self.perf_fields(st, None))
            row["peak_mem_mib"] = "" if mem is None else mem.total / 2**20
            row["peak_cache_mib"] = "" if mem is None else mem.cache_bytes / 2**20
            row["ms_reuse_off"] = "" if off is None else off.median_ms
            self.emit(row)
            line.append(f"{impl} {st.median_ms:.3g}ms")
        self.emit({**base, "impl": "compile", "kind": "compile", "status": NO_COMPILE_TRAIN})
        self._speedups((case.family, case.op, case.size), results)
        print(f"[{idx}/{total}] {case.op} {case.size}: " + ", ".join(line), flush=True)

    # ------------------------------------------------------------------------------------ main
    def run(self) -> None:
        a = self.args
        fams = C.expand_ops(a.ops or ["all"])
        op_cases = [c for c in C.build(fams, self.device.type, a.quick, a.tiny) if c.primary or a.sizes == "all"]
        tr_cases = TR.train_cases([f for f in fams if f in C.TRAIN_OPS], self.device.type, a.quick, a.tiny)
        total = len(op_cases) + len(tr_cases)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.csv_path.exists():
            self.csv_path.unlink()
        env = environment(self.device, a)
        fused = env["fused_benchmarked"] or "none available"
        head = f"ganreg_ext benchmarks on {env['device']} | torch {env['torch']} triton {env['triton']} | "
        print(head + f"threads {env['threads']} | fused: {fused} | {total} cases -> {self.out}", flush=True)
        self.bw = T.copy_bandwidth(self.device, nbytes=(a.copy_mib << 20))
        self.bw_ref, self.bw_src = T.device_peak_bandwidth(self.device, self.bw)
        env.update(copy_gbps=self.bw / 1e9, bw_ref_gbps=self.bw_ref / 1e9, bw_src=self.bw_src, llc_mib=self.llc / 2**20)
        print(f"copy_ bandwidth {self.bw / 1e9:.1f} GB/s; % of bandwidth relative to {self.bw_src}", flush=True)
        (self.out / "meta.json").write_text(json.dumps(env, indent=2))
        i = 0
        for case in op_cases:
            i += 1
            self.run_case(i, total, case)
        if "overhead" in fams and not self.over_budget():
            self.run_layers()
        for case in tr_cases:
            i += 1
            self.run_train(i, total, case)
        env["elapsed_s"] = time.perf_counter() - self.t_start
        env["loadavg_end"] = T.loadavg()
        (self.out / "meta.json").write_text(json.dumps(env, indent=2))
        self.write_csv()


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--ops",
        nargs="*",
        default=None,
        help=f"families (comma or space separated): {', '.join(C.ALL_OPS)}; aliases {', '.join(C.ALIASES)}",
    )
    p.add_argument("--quick", action="store_true", help="a few sizes per family (CPU: < 10 min on 2 cores)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (smoke tests)")
    p.add_argument("--sizes", choices=["all", "primary"], default="all", help="primary: only the largest size per family")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results/<device-slug>/)")
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument(
        "--impls",
        default=None,
        help="only these impls/kinds, comma separated (eager always runs): compile,cpu,cuda,triton,fused,nvlabs_randn,...",
    )
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it dominates the run time on small machines)")
    p.add_argument(
        "--compile-sizes",
        choices=["all", "primary"],
        default=None,
        help="compile at every size, or only the largest per family (default: primary with --quick on CPU, else all)",
    )
    p.add_argument(
        "--compile-budget",
        type=float,
        default=None,
        help="seconds of torch.compile after which later cases skip it (default 240 with --quick on CPU)",
    )
    p.add_argument(
        "--compile-noise",
        action="store_true",
        help="also torch.compile the integer-Philox noise references (very slow to compile on CPU)",
    )
    p.add_argument(
        "--extras",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="unchecked extra baselines (NVlabs randn_like noise)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument(
        "--reuse-off",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CPU: time fused rows that use the reuse cache again with it off (ms_reuse_off column)",
    )
    p.add_argument("--min-reps", type=int, default=20)
    p.add_argument("--max-reps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--target-s", type=float, default=None, help="timed seconds per figure beyond min reps (default 0.1 quick, 0.5 full)"
    )
    p.add_argument("--copy-mib", type=int, default=256, help="size of the copy_ bandwidth probe")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds; cases that start later are recorded as skipped (default 540 with --quick)",
    )
    p.add_argument("--report-only", action="store_true", help="rebuild results.md and plots from OUT/results.csv")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    a.argv = T.argv_line(argv)
    if a.target_s is None:
        a.target_s = 0.1 if (a.quick or a.tiny) else 0.5
    if a.budget is None and a.quick:
        a.budget = 540.0
    return a


def _device_defaults(a) -> None:
    """CPU compiles are slow (~10-60 s per graph on 2 busy cores): quick CPU sweeps compile less."""
    cpu_quick = a.quick and a.device == "cpu"
    if a.compile_sizes is None:
        a.compile_sizes = "primary" if cpu_quick else "all"
    if a.compile_budget is None and cpu_quick:
        a.compile_budget = 240.0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is visible to torch", file=sys.stderr)
        return 2
    _device_defaults(a)
    device = torch.device(a.device)
    if a.out is None:
        a.out = str(report.results_dir(device))
    if not a.report_only:
        # torch.compile: one graph per case and shape; never hit the recompile limit in a sweep
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        Runner(a, device).run()
    report.write(Path(a.out), plots=not a.no_plots)
    print(f"wrote {Path(a.out) / 'results.csv'}, results.md" + ("" if a.no_plots else " and plots"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
