"""The CPU backend's reuse cache of large output blocks (``csrc/cpu/alloc.cpp``, docs/memory.md).

CPU kernel outputs of at least 4 MiB come from a cache of 2 MiB-aligned blocks (sizes rounded up to
2 MiB) instead of PyTorch's CPU allocator: a block freed by a tensor is kept (up to the limit) and
handed to the next output of the same rounded size, which spares that output the page faults and
zeroing of freshly mapped pages. The limit is env ``GANREG_CPU_REUSE_MB`` (MiB, read once at load;
default 256; 0 disables the cache) or :func:`set_cpu_cache_limit`.

PyTorch never sees these blocks: ``torch.profiler`` and ``torch.cuda``-style statistics leave them
out, so the cache counts them itself (:func:`cpu_cache_stats`). Held bytes = ``allocated`` (blocks of
live tensors) + ``cached`` (idle blocks); :func:`empty_cpu_cache` returns the idle ones to the OS.
"""

from __future__ import annotations

import contextlib

import torch

from ._dispatch import BackendUnavailable

DEFAULT_CPU_CACHE_MB = 256
ENV_VAR = "GANREG_CPU_REUSE_MB"
_FIELDS = ("limit_bytes", "allocated_bytes", "cached_bytes", "peak_bytes", "hits", "misses", "cached_blocks")

__all__ = [
    "DEFAULT_CPU_CACHE_MB", "cpu_cache_limit", "cpu_cache_stats", "empty_cpu_cache", "reset_cpu_cache_peak",
    "set_cpu_cache_limit",
]  # fmt: skip


def _C():
    """``torch.ops.ganreg_C`` with the cache ops, or :class:`BackendUnavailable` saying why not."""
    try:
        from .ops import native  # noqa: F401  (loads ganreg_ext._C)
    except ImportError as e:
        raise BackendUnavailable(f"the CPU reuse cache lives in ganreg_ext._C, which did not load: {e}") from e
    ops = torch.ops.ganreg_C
    if not hasattr(ops, "cpu_cache_stats"):
        raise BackendUnavailable(
            "ganreg_ext._C predates the CPU cache counters; rebuild it (pip install --no-build-isolation -e .)"
        )
    return ops


def cpu_cache_stats() -> dict[str, int]:
    """The cache's counters: ``limit_bytes``; ``allocated_bytes`` (blocks held by live tensors);
    ``cached_bytes`` / ``cached_blocks`` (idle blocks); ``peak_bytes`` = max(allocated + cached) since
    :func:`reset_cpu_cache_peak` (or load); ``hits`` / ``misses`` (outputs served from an idle block /
    from a fresh one) since that reset."""
    return dict(zip(_FIELDS, (int(v) for v in _C().cpu_cache_stats())))


def empty_cpu_cache() -> None:
    """Free every idle block (``cached_bytes`` → 0). Blocks of live tensors stay until they die."""
    _C().cpu_cache_empty()


def reset_cpu_cache_peak() -> None:
    """Restart ``peak_bytes`` from the bytes held now (allocated + cached) and zero hits and misses."""
    _C().cpu_cache_reset_peak()


def set_cpu_cache_limit(nbytes: int) -> int:
    """Set the cache's limit in bytes (0 disables it: large outputs then come from PyTorch's allocator,
    and blocks of live tensors are freed when they die); idle blocks beyond it are freed at once.
    Returns the previous limit."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be an int >= 0, got {nbytes!r}")
    return int(_C().cpu_cache_set_limit(nbytes))


@contextlib.contextmanager
def cpu_cache_limit(nbytes: int):
    """Context manager: the cache's limit is ``nbytes`` inside (0: the cache is off), restored after."""
    old = set_cpu_cache_limit(nbytes)
    try:
        yield
    finally:
        set_cpu_cache_limit(old)
