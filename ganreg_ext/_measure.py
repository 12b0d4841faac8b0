"""Measuring primitives shared by the demo's timing table (``ganreg_ext/demo/timing.py``) and the
benchmark harness (``benchmarks/timing.py`` re-exports them): interleaved timing, the peak memory of
one call, and silencing the profiler's console lines. They live in the package because the demo ships
without ``benchmarks/``.

Interleaved timing (:func:`interleaved`): rounds of one call of each implementation, the order
alternating from round to round, so a busy machine slows every implementation alike and the ratios
stay meaningful; median and quartiles of the recorded rounds.

Peak memory (:func:`peak_memory`): on CUDA ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus the bytes allocated before the call (the *extra* memory the call
needs; inputs are not counted). On CPU (:data:`CPU_PEAK_METHOD`), the sum of two peaks of one extra call:

- PyTorch's allocator: the call runs under ``torch.profiler`` with ``profile_memory=True``; its raw
  ``[memory]`` records (every CPU tensor allocation and free, with its size) are replayed in time order
  and the running maximum of the net allocated bytes is that peak (the output is freed inside the
  profiled region, so it counts at its peak, not at the end);
- this package's CPU reuse cache (``csrc/cpu/alloc.cpp``, docs/memory.md), which serves the fused
  kernels' outputs of ≥ 4 MiB and which the profiler never sees: the cache is emptied and its peak
  reset before the call, and its peak of (bytes handed out + bytes cached idle) minus what it held at
  the reset (the set-up's outputs) is added.

The sum is an upper bound of the bytes held at any one instant (the two peaks may fall at different
moments) and never less than either; with the cache off (``GANREG_CPU_REUSE_MB=0``) every output comes
from PyTorch's allocator and the cache term is 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Stats:
    median_ms: float
    q1_ms: float
    q3_ms: float
    reps: int
    min_ms: float = math.nan
    faults: float | None = None  # minor page faults per timed call (interleaved(faults=True))

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms


def quantiles(ms: list[float]) -> Stats:
    """Median, quartiles (inclusive method) and minimum of the times ``ms``."""
    ms = sorted(ms)
    if len(ms) >= 2:
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = q3 = ms[0]
    return Stats(statistics.median(ms), q1, q3, len(ms), ms[0])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def interleaved(
    runs: dict[str, Callable[[], object]],
    reps: int,
    warmup: int = 2,
    *,
    device: torch.device | None = None,
    before: Callable[[str], object] | None = None,
    faults: bool = False,
) -> dict[str, Stats]:
    """:class:`Stats` (ms) per name of ``runs``: ``warmup`` unrecorded rounds, then ``reps`` recorded
    ones, each round one call of every function, the order alternating from round to round.
    ``before(name)`` runs untimed before every call (a cache flush, a module swap, a seed); CUDA is
    synchronized after each call, inside the timing; ``faults``: count the minor page faults of the
    timed calls too (``Stats.faults``, per call)."""
    device = device or torch.device("cpu")
    names = list(runs)
    ms: dict[str, list[float]] = {n: [] for n in names}
    flt = dict.fromkeys(names, 0)
    for i in range(warmup + reps):
        for n in names if i % 2 == 0 else names[::-1]:
            if before is not None:
                before(n)
            f0 = _minor_faults() if faults else 0
            t0 = time.perf_counter()
            runs[n]()
            sync(device)
            dt = time.perf_counter() - t0
            if i >= warmup:
                ms[n].append(dt * 1e3)
                if faults:
                    flt[n] += _minor_faults() - f0
    out = {}
    for n in names:
        out[n] = quantiles(ms[n])
        out[n].faults = flt[n] / reps if faults else None
    return out


@contextlib.contextmanager
def quiet_fds():
    """Silence file descriptors 1 and 2 (Kineto prints profiler start/stop and ``USDT … profiler_start``
    lines there for every session, past Python's ``sys.stdout``)."""
    saved = []
    try:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(null, fd)
        os.close(null)
    except OSError:  # no real file descriptors (a captured stream): nothing to silence
        pass
    try:
        yield
    finally:
        for fd, old in saved:
            os.dup2(old, fd)
            os.close(old)


CPU_PEAK_METHOD = (
    "CPU peak = torch.profiler peak of PyTorch's allocator + peak of the ganreg_ext reuse cache "
    "(handed out + cached, emptied and reset before the call), an upper bound of the bytes held at once"
)


def cache_module():
    """``ganreg_ext.memory`` when the CPU reuse cache's counters can be read here, else None."""
    try:
        from . import memory

        memory.cpu_cache_stats()
        return memory
    except Exception:  # no ganreg_ext._C (reference-only build): the cache does not exist
        return None


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
    mem = cache_module()
    try:
        from torch.profiler import ProfilerActivity, profile

        if mem is not None:
            mem.empty_cpu_cache()
            mem.reset_cpu_cache_peak()
            held0 = mem.cpu_cache_stats()["peak_bytes"]
        with quiet_fds(), profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
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
