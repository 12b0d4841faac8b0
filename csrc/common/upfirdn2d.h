// upfirdn2d index math shared by the CPU and CUDA kernels (PLAN-wave2 "Issue 14", SPEC §7).
//
// Per axis (input length n, up u, down d, padding p0/p1, filter taps, F = f reversed unless flip):
//   out[k] = gain·Σ_t xu[k·d + t − p0]·F[t],  xu[i] = x[i/u] if i % u == 0 and 0 <= i < n·u, else 0
//   out_len = floor((n·u + p0 + p1 − taps) / d) + 1
// Polyphase: with base = k·d − p0, only the taps t ≡ −base (mod u) meet an input sample, namely
// x[(base + t)/u]; the inserted zeros are never multiplied. For the outputs k = q + Q·j (phase
// q < Q = u/g, g = gcd(u, d)) the tap set is the same and the input index advances by S = d/g per j.
#pragma once

#include <cstdint>

#include "macros.h"

namespace ganreg {

GANREG_HD int64_t ufd_floor_div(int64_t a, int64_t b) {  // b > 0
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
GANREG_HD int64_t ufd_mod(int64_t a, int64_t b) {  // b > 0, result in [0, b)
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}
GANREG_HD int64_t ufd_gcd(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Output length along one axis (may be < 1: the callers reject it).
GANREG_HD int64_t ufd_out_len(int64_t n, int64_t up, int64_t p0, int64_t p1, int64_t taps, int64_t down) {
  return ufd_floor_div(n * up + p0 + p1 - taps, down) + 1;
}

// First tap of output k meeting an input sample, and that sample's index: t0 = (−base) mod u,
// m0 = (base + t0)/u; the next taps are t0 + i·u on m0 + i.
struct UfdTap {
  int64_t t0, m0;
};
GANREG_HD UfdTap ufd_first_tap(int64_t k, int64_t up, int64_t down, int64_t p0) {
  const int64_t base = k * down - p0;
  const int64_t t0 = ufd_mod(-base, up);
  return UfdTap{t0, (base + t0) / up};
}

// The input range [lo, hi] (not clipped) read by the outputs [k0, k1] along one axis.
GANREG_HD int64_t ufd_in_lo(int64_t k0, int64_t up, int64_t down, int64_t p0) {
  return -ufd_floor_div(-(k0 * down - p0), up);  // ceil(base / up)
}
GANREG_HD int64_t ufd_in_hi(int64_t k1, int64_t up, int64_t down, int64_t p0, int64_t taps) {
  return ufd_floor_div(k1 * down - p0 + taps - 1, up);
}

}  // namespace ganreg
