"""Timing, peak memory, bandwidth and environment primitives shared by every benchmark entry point
(``python -m benchmarks <subcommand>``).

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

Peak memory (:func:`peak_memory`), interleaved timing (:func:`interleaved`), :func:`sync` and
:func:`quiet_fds` come from ``ganreg_ext/_measure.py`` (the demo's timing table uses them too, and the
package ships without ``benchmarks/``); its docstring states the method: on CUDA
``max_memory_allocated`` after ``reset_peak_memory_stats``, on CPU (:data:`CPU_PEAK_METHOD`) the
``torch.profiler`` peak of PyTorch's allocator plus the peak of this package's CPU reuse cache, which
the profiler never sees.

Environment (:func:`header`, :func:`loadavg`, :func:`triton_version`, :func:`now`): the lines every
results file starts with.

Reuse cache on/off (:func:`reuse_cache`): the cache hands a kernel the block its previous output
freed, so the fused path's large outputs touch no freshly mapped page, while the eager baseline's
outputs (PyTorch's allocator, glibc) pay the page faults and the kernel's zeroing of fresh pages in
the timing loop. Timing a fused row again with the cache off shows how much of its lead that is.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ganreg_ext._measure import (  # noqa: F401  (re-exported: the one implementation, shared with the demo)
    CPU_PEAK_METHOD,
    MemPeak,
    Stats,
    cache_module,
    interleaved,
    peak_memory,
    peak_memory_bytes,
    quantiles,
    quiet_fds,
    sync,
)

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
        return quantiles(ms)
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
    return quantiles(ms)


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
    st = quantiles(ms)
    st.reps = blocks * n
    return st


@contextlib.contextmanager
def reuse_cache(on: bool):
    """Run the block with the CPU reuse cache on (its current limit, else the default 256 MiB) or off
    (limit 0, idle blocks freed); the previous limit is restored after. A no-op without ``_C``."""
    mem = cache_module()
    if mem is None:
        yield
        return
    old = mem.cpu_cache_stats()["limit_bytes"]
    with mem.cpu_cache_limit((old or mem.DEFAULT_CPU_CACHE_MB << 20) if on else 0):
        yield


def reuse_cache_limit() -> int | None:
    """The CPU reuse cache's limit in bytes now (0: off), or None without ``_C``."""
    mem = cache_module()
    return None if mem is None else mem.cpu_cache_stats()["limit_bytes"]


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


# ------------------------------------------------------------------------------- environment


def now(utc: bool = False) -> str:
    """The date line of a results file: local time with its zone (or UTC), to the minute."""
    t = _dt.datetime.now(_dt.timezone.utc) if utc else _dt.datetime.now().astimezone()
    return t.strftime("%Y-%m-%d %H:%M %Z")


def loadavg() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def device_name(device: torch.device) -> str:
    """``NVIDIA H100 80GB HBM3`` or ``CPU: <model>``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_model()}"


def header(device: torch.device) -> dict:
    """What every results file states first: date, device, torch version, torch threads."""
    return {"date": now(), "device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads()}


def argv_line(argv=None) -> str:
    """The arguments of this run as one string: ``argv`` when a caller (the front door, a test) passed
    them, else the command line's."""
    return " ".join(sys.argv[1:] if argv is None else argv)
