"""Timing, peak memory and bandwidth primitives shared by the runner and the pytest suite.

- GPU: ``triton.testing.do_bench`` style — warm-up, then per repetition: the untimed set-up, an L2
  flush (a 256 MB write, as do_bench does), then the timed call between two CUDA events; the times
  are read after one ``torch.cuda.synchronize``.
- CPU: the same loop with ``time.perf_counter`` around each call; with ``flush=True`` (the runner
  sets it when a case's working set exceeds the last-level cache) a buffer of twice the LLC is
  rewritten before each repetition, so no input is timed cache-resident.
- Per-call latency (:func:`per_call`, the overhead family): blocks of ``n`` back-to-back calls (``n``
  calibrated so that a block lasts ≥ 2 ms; CUDA synchronized at the end of each block), median of
  ≥ 20 blocks divided by ``n``: warm caches, launch overhead included, no flush.

Every figure is the median and the inter-quartile range of at least ``min_reps`` repetitions
(20 by default) after warm-up.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
bytes allocated before the call (the *extra* memory the call needs; inputs are not counted). On CPU
(:data:`CPU_PEAK_METHOD`), the sum of two peaks of one extra call:

- PyTorch's allocator: the call runs under ``torch.profiler`` with ``profile_memory=True``; its raw
  ``[memory]`` records (every CPU tensor allocation and free, with its size) are replayed in time order
  and the running maximum of the net allocated bytes is that peak (the output is freed inside the
  profiled region, so it counts at its peak, not at the end);
- this package's CPU reuse cache (``csrc/cpu/alloc.cpp``, docs/memory.md), which serves the fused
  kernels' outputs of ≥ 4 MiB and which the profiler never sees: the cache is emptied and its peak
  reset before the call, and its peak of (bytes handed out + bytes cached idle) minus what it held at
  the reset (the set-up's outputs) is added.

The sum is an upper bound of the bytes held at any one instant (the two peaks may fall at different
moments) and never less than either; with the cache off (``GANREG_CPU_REUSE_MB=0`` or
:func:`reuse_cache`) every output comes from PyTorch's allocator and the cache term is 0.

Reuse cache on/off (:func:`reuse_cache`): the cache hands a kernel the block its previous output
freed, so the fused path's large outputs touch no freshly mapped page, while the eager baseline's
outputs (PyTorch's allocator, glibc) pay the page faults and the kernel's zeroing of fresh pages in
the timing loop. Timing a fused row again with the cache off shows how much of its lead that is.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Stats:
    median_ms: float
    q1_ms: float
    q3_ms: float
    reps: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms


def _quantiles(ms: list[float]) -> Stats:
    ms = sorted(ms)
    if len(ms) >= 2:
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = q3 = ms[0]
    return Stats(statistics.median(ms), q1, q3, len(ms))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_FLUSH: dict = {}


def llc_bytes() -> int:
    """Size of the last-level cache one core sees (sysfs of cpu0; else sysconf; else 32 MiB)."""
    best = (0, 0)
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level, size = int((d / "level").read_text()), (d / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        best = max(best, (level, int(size.rstrip("KMG")) * mult))
    if best[1]:
        return best[1]
    try:
        return os.sysconf("SC_LEVEL3_CACHE_SIZE") or 32 << 20
    except (ValueError, OSError):
        return 32 << 20


def flush_caches(device: torch.device) -> None:
    """Evict caches: a 256 MB write on CUDA (as ``do_bench``), a rewrite of 2×LLC bytes on CPU."""
    buf = _FLUSH.get(device)
    if buf is None:
        nbytes = 256 << 20 if device.type == "cuda" else 2 * llc_bytes()
        buf = _FLUSH[device] = torch.ones(nbytes // 4, dtype=torch.int32, device=device)
    buf.add_(1)


def bench(
    run: Callable,
    device: torch.device,
    setup: Callable | None = None,
    *,
    warmup: int = 3,
    min_reps: int = 20,
    max_reps: int = 200,
    target_s: float = 0.25,
    flush: bool = False,
) -> Stats:
    """Median/IQR in ms of ``run(state)`` with ``state = setup()`` made untimed before each call.

    At least ``min_reps`` repetitions, more (up to ``max_reps``) while the timed total stays under
    ``target_s``. CUDA always flushes L2 before each call; CPU flushes its caches when ``flush``.
    """
    setup = setup or (lambda: None)
    for _ in range(warmup):
        run(setup())
    sync(device)
    ms: list[float] = []
    if device.type == "cuda":
        # do_bench style: estimate, then a fixed number of event-timed calls
        n = max(min_reps, 1)
        state = setup()
        t0 = time.perf_counter()
        run(state)
        sync(device)
        est = max(time.perf_counter() - t0, 1e-6)
        n = int(min(max_reps, max(min_reps, target_s / est)))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for i in range(n):
            state = setup()
            flush_caches(device)
            starts[i].record()
            run(state)
            ends[i].record()
        torch.cuda.synchronize(device)
        ms = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        return _quantiles(ms)
    total = 0.0
    while len(ms) < min_reps or (len(ms) < max_reps and total < target_s):
        state = setup()
        if flush:
            flush_caches(device)
        t0 = time.perf_counter()
        run(state)
        dt = time.perf_counter() - t0
        ms.append(dt * 1e3)
        total += dt
    return _quantiles(ms)


def per_call(run: Callable, device: torch.device, *, blocks: int = 20, block_s: float = 2e-3, warmup: int = 5) -> Stats:
    """Median/IQR in ms *per call* of ``run()``, timed in blocks of back-to-back calls (see the module docstring)."""
    for _ in range(warmup):
        run()
    sync(device)
    n, dt = 1, 0.0
    while dt < block_s and n < 1 << 16:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        sync(device)
        dt = time.perf_counter() - t0
    ms = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        sync(device)
        ms.append((time.perf_counter() - t0) * 1e3 / n)
    st = _quantiles(ms)
    st.reps = blocks * n
    return st


CPU_PEAK_METHOD = (
    "CPU peak = torch.profiler peak of PyTorch's allocator + peak of the ganreg_ext reuse cache "
    "(handed out + cached, emptied and reset before the call), an upper bound of the bytes held at once"
)


def _cache():
    """ganreg_ext.memory when the CPU reuse cache's counters can be read here, else None."""
    try:
        from ganreg_ext import memory

        memory.cpu_cache_stats()
        return memory
    except Exception:  # no ganreg_ext._C (reference-only build): the cache does not exist
        return None


@contextlib.contextmanager
def reuse_cache(on: bool):
    """Run the block with the CPU reuse cache on (its current limit, else the default 256 MiB) or off
    (limit 0, idle blocks freed); the previous limit is restored after. A no-op without ``_C``."""
    mem = _cache()
    if mem is None:
        yield
        return
    old = mem.cpu_cache_stats()["limit_bytes"]
    mem.set_cpu_cache_limit((old or mem.DEFAULT_CPU_CACHE_MB << 20) if on else 0)
    try:
        yield
    finally:
        mem.set_cpu_cache_limit(old)


def reuse_cache_limit() -> int | None:
    """The CPU reuse cache's limit in bytes now (0: off), or None without ``_C``."""
    mem = _cache()
    return None if mem is None else mem.cpu_cache_stats()["limit_bytes"]


@dataclass
class MemPeak:
    """Peak extra bytes of one call: ``total`` = ``torch_bytes`` + ``cache_bytes`` (module docstring)."""

    total: int
    torch_bytes: int
    cache_bytes: int


def peak_memory(run: Callable, device: torch.device, setup: Callable | None = None) -> MemPeak | None:
    """Extra bytes at the peak of one ``run(setup())``, with the CPU split into PyTorch's allocator and
    the reuse cache (see the module docstring); None when the CPU profiler is unavailable."""
    state = (setup or (lambda: None))()
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = run(state)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return MemPeak(int(peak), int(peak), 0)
    mem = _cache()
    try:
        from torch.profiler import ProfilerActivity, profile

        if mem is not None:
            mem.empty_cpu_cache()
            mem.reset_cpu_cache_peak()
            held0 = mem.cpu_cache_stats()["peak_bytes"]
        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
            out = run(state)
            del out
        cache_peak = mem.cpu_cache_stats()["peak_bytes"] - held0 if mem is not None else 0
        # every allocation (+bytes) and free (−bytes), in time order, from the raw Kineto records
        events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e[0])
        cur = peak = 0
        for _, nbytes in events:
            cur += nbytes
            peak = max(peak, cur)
        return MemPeak(int(peak + cache_peak), int(peak), int(cache_peak))
    except Exception:  # profiler unavailable in this build: report nothing rather than a guess
        return None


def peak_memory_bytes(run: Callable, device: torch.device, setup: Callable | None = None) -> int | None:
    """Extra bytes held at the peak of one ``run(setup())``, the reuse cache included (module docstring)."""
    p = peak_memory(run, device, setup)
    return None if p is None else p.total


@contextlib.contextmanager
def _quiet_stderr():
    """Kineto prints profiler start/stop lines on fd 2 for every session: silence them."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def copy_bandwidth(device: torch.device, nbytes: int = 256 * 1024 * 1024, min_reps: int = 20) -> float:
    """Achieved ``dst.copy_(src)`` bandwidth in bytes/s (read + write counted: 2·nbytes per copy)."""
    src = torch.randn(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    st = bench(lambda _: dst.copy_(src), device, warmup=2, min_reps=min_reps, max_reps=min_reps, target_s=0.0)
    return 2 * nbytes / (st.median_ms * 1e-3)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def device_slug(device: torch.device) -> str:
    """Folder name of a device's results: e.g. ``h200``, ``cpu-amd-epyc``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        m = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Z]?)\b", name.replace("NVIDIA", ""))
        return m.group(1).lower() if m else slug(name.replace("NVIDIA", ""))
    model = re.sub(r"\((R|TM)\)|CPU|Processor|\d+-Core|@.*$", " ", cpu_model(), flags=re.I)
    return "cpu-" + slug(model)


# nominal peak HBM bandwidth (bytes/s) by device name
PEAK_BW = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100", 2.0e12), ("L40S", 0.864e12), ("A10G", 0.6e12))


def device_peak_bandwidth(device: torch.device, measured_copy: float) -> tuple[float, str]:
    """(bandwidth the % column is relative to, where it comes from)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, bw in PEAK_BW:
            if key in name:
                return bw, f"{key} nominal peak {bw / 1e12:.2f} TB/s"
    return measured_copy, f"measured copy_ {measured_copy / 1e9:.1f} GB/s (same run)"
