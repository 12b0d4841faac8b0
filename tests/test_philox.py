"""Philox4x32-10 and the docs/semantics.md#path-length-regularization-stylegan2 normal stream (the truth every backend's noise is tested against).

* Random123 known-answer vectors for the raw generator;
* the counter/key layout (element i → counter c = i >> 2, lane i & 3; key = seed lo/hi words;
  counter word 1 = c >> 32) against an independent scalar Python Philox written here;
* bitwise equality with Triton's ``tl.randn4x`` (run under the interpreter on CPU machines);
* a normality test on 10**6 samples.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import ganreg_ext as gx
from ganreg_ext.reference import philox as P

M32 = 0xFFFFFFFF

# ---------------------------------------------------------------------------------------------
# an independent scalar Philox4x32-10 (python ints), straight from Salmon et al. 2011 / Random123


def _philox_scalar(ctr, key, rounds=10):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(rounds):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        hi0, lo0 = p0 >> 32, p0 & M32
        hi1, lo1 = p1 >> 32, p1 & M32
        c0, c1, c2, c3 = (hi1 ^ c1 ^ k0) & M32, lo1, (hi0 ^ c3 ^ k1) & M32, lo0
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def _normal_scalar(i: int, seed: int) -> float:
    """Element ``i`` of the docs/semantics.md#path-length-regularization-stylegan2 stream, computed from the words of one scalar Philox call."""
    c = i >> 2
    words = _philox_scalar((c & M32, c >> 32, 0, 0), (seed & M32, seed >> 32))
    u = []
    for w in words:
        v = w - 2**32 if w >= 2**31 else w
        v = -v - 1 if v < 0 else v
        u.append(float(np.float32(v) * np.float32(4.6566127342e-10)))
    r01 = math.sqrt(-2 * math.log(max(u[0], 1e-7)))
    r23 = math.sqrt(-2 * math.log(max(u[2], 1e-7)))
    lane = i & 3
    return [r01 * math.cos(2 * math.pi * u[1]), r01 * math.sin(2 * math.pi * u[1]),
            r23 * math.cos(2 * math.pi * u[3]), r23 * math.sin(2 * math.pi * u[3])][lane]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# known-answer vectors (Random123 kat_vectors, philox4x32 10 rounds)

KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32, M32, M32, M32), (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("ctr,key,expected", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers(ctr, key, expected):
    out = P.philox4x32([torch.tensor([w], dtype=torch.int64) for w in ctr], key)
    assert [int(w.item()) for w in out] == list(expected)
    assert _philox_scalar(ctr, key) == expected  # the test's own Philox is right too


def test_philox_vectorized_matches_scalar(seed):
    g = torch.Generator().manual_seed(seed)
    ctr = [torch.randint(0, 2**32, (64,), generator=g, dtype=torch.int64) for _ in range(4)]
    key = tuple(int(k) for k in torch.randint(0, 2**32, (2,), generator=g, dtype=torch.int64))
    out = P.philox4x32(ctr, key)
    for j in range(64):
        exp = _philox_scalar(tuple(int(c[j]) for c in ctr), key)
        assert tuple(int(w[j]) for w in out) == exp, j


# ---------------------------------------------------------------------------------------------
# counter / key layout


@pytest.mark.parametrize("offset", [0, 2**32 - 6, 4 * 2**32 + 3, 4 * (2**40 + 12345) + 1])
def test_stream_layout_matches_scalar_philox(seed, offset):
    """Element i: counter (c & 0xffffffff, c >> 32, 0, 0), c = i >> 2, lane i & 3, key (seed lo, seed hi);
    offsets past 4·2**32 exercise counter word 1, seeds past 2**32 the key's high word."""
    big_seed = seed | (int(torch.randint(1, 2**31, ()).item()) << 32)  # a non-zero high key word
    for s in (seed, big_seed):
        n = 23
        got = P.normal_stream(n, s, offset=offset)
        exp = torch.tensor([_normal_scalar(offset + k, s) for k in range(n)], dtype=torch.float64)
        torch.testing.assert_close(got.double(), exp, rtol=0, atol=2e-5)


def test_counter_word1_is_used(seed):
    """Counters c and c + 2**32 must differ (word 1 carries c >> 32, not dropped)."""
    a = P.normal_stream(8, seed, offset=0)
    b = P.normal_stream(8, seed, offset=4 * 2**32)
    assert not torch.equal(a, b)


def test_seed_high_word_is_used(seed):
    a = P.normal_stream(16, seed)
    b = P.normal_stream(16, seed + 2**32)
    assert not torch.equal(a, b)


def test_normal_like_is_row_major_stream(seed):
    shape = (2, 3, 5, 7)
    flat = P.normal_stream(math.prod(shape), seed)
    torch.testing.assert_close(P.normal_like(shape, seed), flat.reshape(shape), rtol=0, atol=0)
    y = gx.path_length_noise(shape, seed)
    torch.testing.assert_close(y, flat.reshape(shape) / math.sqrt(5 * 7), rtol=1e-6, atol=1e-7)
    # a sub-range of the stream equals the slice of a longer stream
    torch.testing.assert_close(P.normal_stream(9, seed, offset=13), flat[13:22], rtol=0, atol=0)


def test_stream_is_deterministic_and_seed_dependent(seed):
    a = P.normal_stream(1000, seed)
    assert torch.equal(a, P.normal_stream(1000, seed))
    assert not torch.equal(a, P.normal_stream(1000, seed + 1))


# ---------------------------------------------------------------------------------------------
# Triton's tl.randn4x


def _triton_randn4x(seed: int, counters: torch.Tensor) -> torch.Tensor:
    triton = pytest.importorskip("triton")
    import triton.language as tl

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")

    @triton.jit
    def _kernel(out_ptr, c_ptr, seed, N: tl.constexpr):
        k = tl.arange(0, N)
        c = tl.load(c_ptr + k)
        n0, n1, n2, n3 = tl.randn4x(seed, c)
        tl.store(out_ptr + 4 * k + 0, n0)
        tl.store(out_ptr + 4 * k + 1, n1)
        tl.store(out_ptr + 4 * k + 2, n2)
        tl.store(out_ptr + 4 * k + 3, n3)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    counters = counters.to(dev)
    out = torch.empty(4 * counters.numel(), dtype=torch.float32, device=dev)
    _kernel[(1,)](out, counters, seed, N=counters.numel())
    return out.cpu()


@pytest.mark.parametrize("base", [0, 2**32 - 8, 2**33 + 5])
def test_matches_triton_randn4x(seed, base):
    seed = seed | (7 << 32)  # a 64-bit seed: the high word goes to key word 1
    n_ctr = 16
    counters = torch.arange(base, base + n_ctr, dtype=torch.int64)
    if base + n_ctr < 2**31:
        counters = counters.to(torch.int32)
    got = P.normal_stream(4 * n_ctr, seed, offset=4 * base)
    exp = _triton_randn4x(seed, counters)
    torch.testing.assert_close(got, exp, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# normality


def test_normality_1e6(seed):
    scipy_stats = pytest.importorskip("scipy.stats")
    n = 10**6
    x = P.normal_stream(n, seed).double()
    assert torch.isfinite(x).all()
    mean, var = x.mean().item(), x.var().item()
    assert abs(mean) < 5 / math.sqrt(n), mean
    assert abs(var - 1) < 5 * math.sqrt(2 / n), var
    # the four lanes are each standard normal, and neighbouring lanes uncorrelated
    lanes = x.view(-1, 4)
    for k in range(4):
        assert abs(lanes[:, k].mean().item()) < 5 / math.sqrt(n / 4)
        assert abs(lanes[:, k].var().item() - 1) < 5 * math.sqrt(2 / (n / 4))
    corr = torch.corrcoef(lanes.T)
    off = corr - torch.eye(4, dtype=corr.dtype)
    assert off.abs().max().item() < 5 / math.sqrt(n / 4)
    res = scipy_stats.kstest(x.numpy(), "norm")
    assert res.pvalue > 1e-5, res
