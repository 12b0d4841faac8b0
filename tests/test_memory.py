"""The CPU reuse cache's counters (csrc/cpu/alloc.cpp, ganreg_ext/memory.py, docs/memory.md) and the
benchmarks' peak memory that counts them (ganreg_ext/_measure.py, re-exported by benchmarks/timing.py), issue 22.

A 64 MiB ``bias_act`` output on the ``cpu`` backend comes from the cache, not from PyTorch's allocator:
while it lives the cache counts it as allocated, once freed as cached, and ``empty_cpu_cache`` frees
it. The benchmarks' peak of that call must be at least its output size (it read 0 from the profiler).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganreg_ext as gx
from helpers import AVAILABLE

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import timing as T  # noqa: E402

MIB = 1 << 20
SHAPE = (16, 64, 128, 128)  # 16 Mi float32 elements = 64 MiB, a multiple of the cache's 2 MiB rounding
NBYTES = 64 * MIB

pytestmark = pytest.mark.skipif("cpu" not in AVAILABLE, reason="the cpu backend (ganreg_ext._C) is not available here")


@pytest.fixture
def inputs():
    gen = torch.Generator().manual_seed(22)
    x = torch.randn(SHAPE, generator=gen)
    b = torch.randn(SHAPE[1], generator=gen)
    return x, b


@pytest.fixture(autouse=True)
def default_cache():
    """Every test starts with the default limit and an empty cache, and leaves the limit as it was."""
    with gx.cpu_cache_limit(256 * MIB):
        gx.empty_cpu_cache()
        gx.reset_cpu_cache_peak()
        yield
    gx.empty_cpu_cache()


def _fused(x, b):
    return gx.bias_act(x, b, act="lrelu", backend="cpu")


def _check_values(y, x, b):
    want = gx.bias_act(x[:2], b, act="lrelu", backend="reference")
    torch.testing.assert_close(y[:2], want)


def test_stats_follow_a_large_output(inputs):
    x, b = inputs
    s0 = gx.cpu_cache_stats()
    assert s0["limit_bytes"] == 256 * MIB and s0["cached_bytes"] == 0 and s0["cached_blocks"] == 0
    assert s0["hits"] == 0 and s0["misses"] == 0

    y = _fused(x, b)
    _check_values(y, x, b)
    s1 = gx.cpu_cache_stats()
    assert s1["allocated_bytes"] - s0["allocated_bytes"] == NBYTES, s1  # the live output, counted exactly
    assert s1["misses"] == 1 and s1["hits"] == 0 and s1["cached_bytes"] == 0
    assert s1["peak_bytes"] >= s0["allocated_bytes"] + NBYTES
    ptr = y.data_ptr()

    del y  # freed: back into the cache, still held
    s2 = gx.cpu_cache_stats()
    assert s2["allocated_bytes"] == s0["allocated_bytes"]
    assert s2["cached_bytes"] == NBYTES and s2["cached_blocks"] == 1
    assert s2["peak_bytes"] == s1["peak_bytes"]  # handed out -> cached keeps the sum

    y = _fused(x, b)  # the same rounded size: the idle block is reused
    s3 = gx.cpu_cache_stats()
    assert y.data_ptr() == ptr and s3["hits"] == 1 and s3["misses"] == 1 and s3["cached_bytes"] == 0
    _check_values(y, x, b)
    del y

    gx.empty_cpu_cache()
    s4 = gx.cpu_cache_stats()
    assert s4["cached_bytes"] == 0 and s4["cached_blocks"] == 0 and s4["allocated_bytes"] == s0["allocated_bytes"]
    gx.reset_cpu_cache_peak()
    s5 = gx.cpu_cache_stats()
    assert s5["peak_bytes"] == s5["allocated_bytes"] + s5["cached_bytes"] and s5["hits"] == s5["misses"] == 0


def test_empty_keeps_live_blocks(inputs):
    x, b = inputs
    y = _fused(x, b)
    before = gx.cpu_cache_stats()["allocated_bytes"]
    gx.empty_cpu_cache()
    assert gx.cpu_cache_stats()["allocated_bytes"] == before >= NBYTES
    _check_values(y, x, b)  # the live output's memory was not freed under it


def test_limit_off_and_too_small(inputs):
    x, b = inputs
    with gx.cpu_cache_limit(0):  # off: the output comes from PyTorch's allocator
        s0 = gx.cpu_cache_stats()
        y = _fused(x, b)
        s1 = gx.cpu_cache_stats()
        assert s1["limit_bytes"] == 0
        assert s1["allocated_bytes"] == s0["allocated_bytes"] and s1["misses"] == s0["misses"]
        _check_values(y, x, b)
        del y
    with gx.cpu_cache_limit(NBYTES - 2 * MIB):  # on, but a freed 64 MiB block does not fit: freed
        y = _fused(x, b)
        assert gx.cpu_cache_stats()["misses"] == 1
        del y
        s = gx.cpu_cache_stats()
        assert s["cached_bytes"] == 0 and s["peak_bytes"] >= NBYTES
    assert gx.cpu_cache_stats()["limit_bytes"] == 256 * MIB  # restored
    with pytest.raises(ValueError):
        gx.set_cpu_cache_limit(-1)


def test_lowering_the_limit_frees_idle_blocks(inputs):
    x, b = inputs
    del_me = _fused(x, b)
    del del_me
    assert gx.cpu_cache_stats()["cached_bytes"] == NBYTES
    old = gx.set_cpu_cache_limit(32 * MIB)
    try:
        assert old == 256 * MIB and gx.cpu_cache_stats()["cached_bytes"] == 0
    finally:
        gx.set_cpu_cache_limit(old)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm-cache"])
def test_benchmark_peak_counts_the_cache(inputs, warm):
    """timing.peak_memory: ≥ the output's size for the fused op, whether or not an idle block of that
    size waits in the cache (a hit would otherwise count 0); the profiler alone sees ~0."""
    x, b = inputs
    if warm:
        del_me = _fused(x, b)
        del del_me
    p = T.peak_memory(lambda _: _fused(x, b), torch.device("cpu"))
    assert p is not None
    assert p.cache_bytes >= NBYTES and p.total >= NBYTES and p.total == p.torch_bytes + p.cache_bytes
    assert p.torch_bytes < NBYTES // 2, p  # the output is not also counted by the profiler (no double count)
    assert T.peak_memory_bytes(lambda _: _fused(x, b), torch.device("cpu")) >= NBYTES
    with T.reuse_cache(False):  # cache off: the profiler sees the output itself, the cache term is 0
        q = T.peak_memory(lambda _: _fused(x, b), torch.device("cpu"))
        assert T.reuse_cache_limit() == 0
    assert q.cache_bytes == 0 and q.torch_bytes >= NBYTES
    assert T.reuse_cache_limit() == 256 * MIB


def test_eager_peak_unchanged(inputs):
    """The reference path never touches the cache: its peak is the profiler's alone, ≥ the output."""
    x, b = inputs
    p = T.peak_memory(lambda _: gx.bias_act(x, b, act="lrelu", backend="reference"), torch.device("cpu"))
    assert p.cache_bytes == 0 and p.torch_bytes >= NBYTES


def test_backend_info_and_cli_show_the_cache(inputs):
    x, b = inputs
    y = _fused(x, b)
    info = gx.backend_info()["cpu_cache"]
    assert info["limit_bytes"] == 256 * MIB and info["allocated_bytes"] >= NBYTES
    del y
    for mb, limit in (("8", "limit 8.0 MiB"), ("0", "limit 0 (off)")):
        env = {**os.environ, "GANREG_CPU_REUSE_MB": mb}
        out = subprocess.run(
            [sys.executable, "-m", "ganreg_ext", "info"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )
        assert out.returncode == 0, out.stderr
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("CPU reuse cache:")), None)
        assert line is not None, out.stdout
        assert f"{limit} (GANREG_CPU_REUSE_MB, default 256 MiB)" in line and "current 0.0 MiB" in line, line
        assert "peak 0.0 MiB" in line and "hits 0, misses 0" in line, line
