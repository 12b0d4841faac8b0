"""Philox4x32-10 and the normal stream of docs/semantics.md#path-length-regularization-stylegan2, in integer torch ops (the truth for every backend).

Element ``i`` (flat row-major index over the logical shape) uses counter
``(c & 0xffffffff, c >> 32, 0, 0)`` with ``c = i >> 2`` and key ``(seed & 0xffffffff, seed >> 32)``.
The four words become uniforms ``u = (v < 0 ? -v-1 : v) * 4.6566127342e-10`` (``v`` the word
bit-cast to int32, computed in float32 as Triton does) and Box–Muller gives
``r01·cos(2π u1), r01·sin(2π u1), r23·cos(2π u3), r23·sin(2π u3)`` for ``i & 3 = 0..3``,
``r01 = sqrt(-2 ln max(u0, 1e-7))``. For ``c < 2**32`` this is Triton's ``tl.randn4x(seed, c)``.
"""

from __future__ import annotations

import math

import torch

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF
UNIFORM_SCALE = 4.6566127342e-10


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit words of ``a * m`` for ``a`` in [0, 2**32) as int64, without int64 overflow."""
    m_hi, m_lo = m >> 16, m & 0xFFFF
    p_lo = a * m_lo  # < 2**48
    t = a * m_hi + (p_lo >> 16)  # a*m == t * 2**16 + (p_lo & 0xffff), t < 2**49
    return t >> 16, ((t & 0xFFFF) << 16) | (p_lo & 0xFFFF)


def philox4x32(counter: list[torch.Tensor], key: tuple[int, int], rounds: int = 10) -> list[torch.Tensor]:
    """Philox4x32-``rounds`` (Random123) on int64 tensors holding uint32 words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return [c0, c1, c2, c3]


def _uniform(word: torch.Tensor) -> torch.Tensor:
    v = torch.where(word >= 2**31, word - 2**32, word)  # bit-cast to int32
    v = torch.where(v < 0, -v - 1, v).to(torch.int32)
    return v.to(torch.float32) * torch.tensor(UNIFORM_SCALE, dtype=torch.float32)


def normal_stream(numel: int, seed: int, device=None, offset: int = 0) -> torch.Tensor:
    """Elements ``offset .. offset+numel-1`` of the docs/semantics.md#path-length-regularization-stylegan2 normal stream, float32, shape ``[numel]``."""
    idx = torch.arange(offset, offset + numel, dtype=torch.int64, device=device)
    c = idx >> 2
    zeros = torch.zeros_like(c)
    words = philox4x32([c & MASK32, c >> 32, zeros, zeros], (seed & MASK32, (seed >> 32) & MASK32))
    u0, u1, u2, u3 = (_uniform(w) for w in words)
    two_pi = torch.tensor(2 * math.pi, dtype=torch.float32)
    r01 = torch.sqrt(-2.0 * torch.log(torch.clamp(u0, min=1e-7)))
    r23 = torch.sqrt(-2.0 * torch.log(torch.clamp(u2, min=1e-7)))
    th1, th3 = two_pi * u1, two_pi * u3
    lane = idx & 3
    return torch.where(
        lane == 0,
        r01 * torch.cos(th1),
        torch.where(lane == 1, r01 * torch.sin(th1), torch.where(lane == 2, r23 * torch.cos(th3), r23 * torch.sin(th3))),
    )


def normal_like(shape, seed: int, device=None) -> torch.Tensor:
    """The stream over a logical (row-major) shape, float32."""
    return normal_stream(math.prod(shape), seed, device).reshape(shape)
