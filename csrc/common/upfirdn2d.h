// upfirdn2d index math shared by the CPU and CUDA kernels (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d, docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu).
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

// ------------------------------------------------------------------------ host code (both builds)
#include <ATen/ATen.h>

namespace ganreg {

struct UfdGeom {
  bool separable;
  int64_t fw, fh, H, W, OW, OH;
};

// Argument checks shared by the CPU and CUDA kernels (after their device checks), and the geometry.
inline UfdGeom ufd_check(const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up, c10::IntArrayRef down,
                         c10::IntArrayRef padding) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be NCHW (4 dimensions), got shape ", x.sizes());
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the device of x (", x.device(), "), got ",
              f.device());
  TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "upfirdn2d: f must be 1-D [fw] (separable) or 2-D [fh, fw], got shape ",
              f.sizes());
  TORCH_CHECK(f.numel() >= 1, "upfirdn2d: f must not be empty, got shape ", f.sizes());
  TORCH_CHECK(up.size() == 2, "upfirdn2d: up must be [upx, upy], got ", up);
  TORCH_CHECK(down.size() == 2, "upfirdn2d: down must be [downx, downy], got ", down);
  TORCH_CHECK(padding.size() == 4, "upfirdn2d: padding must be [px0, px1, py0, py1], got ", padding);
  TORCH_CHECK(up[0] >= 1 && up[1] >= 1, "upfirdn2d: up must be >= 1, got ", up);
  TORCH_CHECK(down[0] >= 1 && down[1] >= 1, "upfirdn2d: down must be >= 1, got ", down);
  const bool separable = f.dim() == 1;
  const int64_t fw = f.size(-1), fh = separable ? fw : f.size(0);
  const int64_t H = x.size(2), W = x.size(3);
  const int64_t OW = ufd_out_len(W, up[0], padding[0], padding[1], fw, down[0]);
  const int64_t OH = ufd_out_len(H, up[1], padding[2], padding[3], fh, down[1]);
  TORCH_CHECK(OW >= 1 && OH >= 1, "upfirdn2d: the output would be empty: out_w = (", W, "·", up[0], " + ", padding[0],
              " + ", padding[1], " − ", fw, ") // ", down[0], " + 1 = ", OW, ", out_h = (", H, "·", up[1], " + ",
              padding[2], " + ", padding[3], " − ", fh, ") // ", down[1], " + 1 = ", OH, " (both must be >= 1)");
  return {separable, fw, fh, H, W, OW, OH};
}

}  // namespace ganreg
