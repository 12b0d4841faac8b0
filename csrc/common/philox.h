// Philox4x32-10 and the normal stream of docs/semantics.md#path-length-regularization-stylegan2, as __host__ __device__ functions.
//
// Element i (flat row-major index over the logical shape) uses counter
// (c & 0xffffffff, c >> 32, 0, 0) with c = i >> 2 and key (seed & 0xffffffff, seed >> 32).
// Each word x becomes u = (v < 0 ? -v-1 : v) * 4.6566127342e-10f (v = int32(x), float32 math);
// r01 = sqrt(-2 ln max(u0, 1e-7)), r23 likewise from u2, and the four elements of the counter are
// r01 cos(2pi u1), r01 sin(2pi u1), r23 cos(2pi u3), r23 sin(2pi u3).  This file is the math that
// both devices run; reference/philox.py is the truth.
#pragma once

#include <cstdint>
#include <cmath>

#include "macros.h"

namespace ganreg {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr float kUniformScale = 4.6566127342e-10f;
constexpr float kTwoPi = 6.283185307179586f;
constexpr float kMinUniform = 1e-7f;

struct Philox4 {
  uint32_t x, y, z, w;
};

GANREG_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
#endif
}

// The 10 Philox rounds on lanes of type U: uint32_t here and on the GPU, an 8-lane SIMD word on the
// CPU (cpu/noise.cpp), which provides U(uint32_t) broadcast, ^, + and mulhilo32(U, U, U*).
template <typename U>
GANREG_HD void philox_rounds(U& c0, U& c1, U& c2, U& c3, U k0, U k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    U hi0, hi1;
    const U lo0 = mulhilo32(U(kPhiloxM0), c0, &hi0);
    const U lo1 = mulhilo32(U(kPhiloxM1), c2, &hi1);
    const U n0 = hi1 ^ c1 ^ k0;
    const U n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 = k0 + U(kPhiloxW0);
    k1 = k1 + U(kPhiloxW1);
  }
}

// Philox4x32-10 (Random123) of counter (c0, c1, c2, c3) under key (k0, k1).
GANREG_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  philox_rounds<uint32_t>(c0, c1, c2, c3, k0, k1);
  return Philox4{c0, c1, c2, c3};
}

// The counter of stream counter index c (= element index >> 2).
GANREG_HD Philox4 philox_stream(uint64_t c, uint64_t seed) {
  return philox4x32_10(static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// u = (v < 0 ? -v-1 : v) * 4.6566127342e-10f with v the word bit-cast to int32 (~v == -v-1).
GANREG_HD float philox_uniform(uint32_t word) {
  const int32_t v = static_cast<int32_t>(word);
  const int32_t a = v < 0 ? ~v : v;
  return static_cast<float>(a) * kUniformScale;
}

// sqrt(-2 ln max(u, 1e-7)) in float32.
GANREG_HD float box_muller_radius(float u) {
  u = u < kMinUniform ? kMinUniform : u;
#if defined(__CUDA_ARCH__)
  // nvcc --use_fast_math turns logf into the approximate __logf, whose absolute error near u = 1
  // is amplified by the sqrt; log1pf keeps full accuracy there (u - 1 is exact for u >= 0.5).
  const float lg = u < 0.5f ? logf(u) : log1pf(u - 1.0f);
  return sqrtf(-2.0f * lg);
#else
  return std::sqrt(-2.0f * std::log(u));
#endif
}

// sin and cos of th = float32(2pi) * u.
GANREG_HD void box_muller_sincos(float u, float* s, float* c) {
#if defined(__CUDA_ARCH__)
  // sincospif is exempt from --use_fast_math (no intrinsic); |2pi*u - fl(2pi*u)| <= 2.4e-7.
  sincospif(2.0f * u, s, c);
#else
  const float th = kTwoPi * u;
  *s = std::sin(th);
  *c = std::cos(th);
#endif
}

// The four normals of one counter.
GANREG_HD void normal4(const Philox4& w, float out[4]) {
  const float r01 = box_muller_radius(philox_uniform(w.x));
  const float r23 = box_muller_radius(philox_uniform(w.z));
  float s1, c1, s3, c3;
  box_muller_sincos(philox_uniform(w.y), &s1, &c1);
  box_muller_sincos(philox_uniform(w.w), &s3, &c3);
  out[0] = r01 * c1;
  out[1] = r01 * s1;
  out[2] = r23 * c3;
  out[3] = r23 * s3;
}

// Element i of the stream.
GANREG_HD float normal_at(uint64_t i, uint64_t seed) {
  float n[4];
  normal4(philox_stream(i >> 2, seed), n);
  return n[i & 3];
}

}  // namespace ganreg
