// ADA (adaptive discriminator augmentation) math shared by the CPU and CUDA kernels: the Keys cubic,
// reflect padding, the per-axis tap window and the per-sample parameters, in the order of operations
// of the eager reference (ganreg_ext/reference/ada.py), so every backend computes the same numbers.
//
// Per sample b, output pixel (x = column, y = row), in the accumulation type A (float; double for
// float64 inputs; the float32 parameters are converted to A first):
//   u = (g00·x + g01·y) + g02,  v = (g10·x + g11·y) + g12          (input position, pixel indices)
//   kx = clamp(hypot(g00, g01), 1, 4), ky = clamp(hypot(g10, g11), 1, 4)   (anti-aliasing stretch)
//   x-taps i_t = (floor(u − 2·kx) + 1) + t, t < Tx = ceil(4·kx), w_t = keys((u − i_t)/kx) / Σ_t keys(·)
//   (y likewise), input index R_W(i_t) / R_H(j) with reflect padding (period 2(n − 1)).
//   r_c = Σ_j wy_j · Σ_t wx_t · x[b, c, R_H(j), R_W(i_t)]
//   out_o = keep · (Σ_c color[o, c]·r_c + (affine ? color[o, C] : 0))   (color None: out_c = keep·r_c)
//   keep = 0 iff |(x + ½)/W − cx| < s/2 and |(y + ½)/H − cy| < s/2  (cutout (cx, cy, s); None: 1)
// The identity map gives weights exactly [0, 1, 0, 0]: pixels move bitwise.
#pragma once

#include <math.h>

#include <cstdint>

#include "macros.h"

namespace ganreg {

constexpr int kAdaMaxTaps = 16;  // ceil(4 · KMAX), KMAX = 4: the largest tap window per axis
constexpr int kAdaMaxColor = 4;  // channels a colour matrix may mix (RGBA)

GANREG_HD float ada_floor(float v) { return floorf(v); }
GANREG_HD double ada_floor(double v) { return floor(v); }
GANREG_HD float ada_ceil(float v) { return ceilf(v); }
GANREG_HD double ada_ceil(double v) { return ceil(v); }
GANREG_HD float ada_hypot(float a, float b) { return hypotf(a, b); }
GANREG_HD double ada_hypot(double a, double b) { return hypot(a, b); }

// Keys' cubic convolution kernel (a = −0.5), as the reference writes it (NaN → 0, like its where()).
template <typename A>
GANREG_HD A ada_keys(A s) {
  const A a = s < A(0) ? -s : s;
  const A a2 = a * a, a3 = a * a * a;
  if (a <= A(1)) return A(1.5) * a3 - A(2.5) * a2 + A(1);
  if (a < A(2)) return A(-0.5) * a3 + A(2.5) * a2 - A(4) * a + A(2);
  return A(0);
}

// Reflect padding (−1 → 1, n → n − 2), periodic with period 2(n − 1); n == 1 → 0. Any int64 i.
GANREG_HD int64_t ada_reflect(int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (n <= 1) return 0;
  const int64_t period = 2 * (n - 1);
  int64_t m = i % period;
  if (m < 0) m += period;
  return m >= n ? period - m : m;
}

// An integral float (a tap position) as an index; NaN and out-of-range values → 0 (their weights are
// NaN or meaningless anyway: the index only has to stay inside the image).
template <typename A>
GANREG_HD int64_t ada_index(A f) {
  return (f > A(-4.0e18) && f < A(4.0e18)) ? static_cast<int64_t>(f) : int64_t(0);
}

// Filter stretch of one row of the map: clamp(hypot(a, b), 1, 4) (NaN stays NaN, like torch.clamp).
template <typename A>
GANREG_HD A ada_stretch(A a, A b) {
  const A h = ada_hypot(a, b);
  return h < A(1) ? A(1) : (h > A(4) ? A(4) : h);
}

// Taps per axis: ceil(4k) in [4, 16] (a NaN stretch: 16, its weights are NaN).
template <typename A>
GANREG_HD int ada_ntaps(A k) {
  const A c = ada_ceil(A(4) * k);
  return (c >= A(4) && c <= A(kAdaMaxTaps)) ? static_cast<int>(c) : kAdaMaxTaps;
}

// First tap position (as float) minus one: floor(pos − 2k); tap t sits at (fl + 1) + t.
template <typename A>
GANREG_HD A ada_tap_floor(A pos, A k) {
  return ada_floor(pos - A(2) * k);
}

// Reflected input index of tap t of a window whose floor(pos − 2k) is fl: from the tap position as a
// float, (fl + 1) + t, like the reference (the same as the integer fl + 1 + t below 2^24 (float32)).
template <typename A>
GANREG_HD int64_t ada_tap_index(A fl, int t, int64_t n) {
  return ada_reflect(ada_index((fl + A(1)) + static_cast<A>(t)), n);
}

// One axis: the T normalised weights w[t] and reflected indices idx[t] (in [0, n)) of position pos.
template <typename A, typename I>
GANREG_HD void ada_axis_taps(A pos, A k, int T, int64_t n, A* w, I* idx) {
  const A fl = ada_tap_floor(pos, k);
  A sum = A(0);
  for (int t = 0; t < T; ++t) {
    const A i = (fl + A(1)) + static_cast<A>(t);
    const A v = ada_keys<A>((pos - i) / k);
    w[t] = v;
    sum += v;
    idx[t] = static_cast<I>(ada_reflect(ada_index(i), n));
  }
  for (int t = 0; t < T; ++t) w[t] = w[t] / sum;
}

// Per-sample parameters in the accumulation type.
template <typename A>
struct AdaSample {
  A g00, g01, g02, g10, g11, g12;  // output (x, y) → input (u, v)
  A kx, ky;                        // filter stretches
  int tx, ty;                      // taps per axis
  bool cut;                        // a cutout is given
  A cx, cy, half;                  // cutout centre (fractions of W, H) and half size
};

// geom: the sample's 6 floats (row-major [2, 3]); cutout: its 3 floats or nullptr.
template <typename A>
GANREG_HD AdaSample<A> ada_sample(const float* geom, const float* cutout) {
  AdaSample<A> s;
  s.g00 = static_cast<A>(geom[0]);
  s.g01 = static_cast<A>(geom[1]);
  s.g02 = static_cast<A>(geom[2]);
  s.g10 = static_cast<A>(geom[3]);
  s.g11 = static_cast<A>(geom[4]);
  s.g12 = static_cast<A>(geom[5]);
  s.kx = ada_stretch(s.g00, s.g01);
  s.ky = ada_stretch(s.g10, s.g11);
  s.tx = ada_ntaps(s.kx);
  s.ty = ada_ntaps(s.ky);
  s.cut = cutout != nullptr;
  s.cx = s.cut ? static_cast<A>(cutout[0]) : A(0);
  s.cy = s.cut ? static_cast<A>(cutout[1]) : A(0);
  s.half = s.cut ? static_cast<A>(cutout[2]) / A(2) : A(0);
  return s;
}

// Input position of output pixel (x, y) (the reference's order: g00·x + g01·y, then + g02).
template <typename A>
GANREG_HD A ada_u(const AdaSample<A>& s, A x, A y) {
  return s.g00 * x + s.g01 * y + s.g02;
}
template <typename A>
GANREG_HD A ada_v(const AdaSample<A>& s, A x, A y) {
  return s.g10 * x + s.g11 * y + s.g12;
}

// Cutout, per axis: is coordinate p (of n) outside the rectangle's span c ± half? ((p + ½)/n in A.)
template <typename A>
GANREG_HD bool ada_cut_out(int64_t p, int64_t n, A c, A half) {
  const A d = (static_cast<A>(p) + A(0.5)) / static_cast<A>(n) - c;
  return (d < A(0) ? -d : d) >= half;
}

// keep(x, y) as a factor 1 or 0 (the reference multiplies by it: NaN·0 stays NaN).
template <typename A>
GANREG_HD A ada_keep(const AdaSample<A>& s, int64_t x, int64_t y, int64_t H, int64_t W) {
  if (!s.cut) return A(1);
  return (ada_cut_out(y, H, s.cy, s.half) || ada_cut_out(x, W, s.cx, s.half)) ? A(1) : A(0);
}

}  // namespace ganreg

// ------------------------------------------------------------------------ host code (both builds)
#include <ATen/ATen.h>

#include <optional>

namespace ganreg {

// Argument checks shared by the CPU and CUDA kernels (after their device check of x): x NCHW float;
// geom float32 [B, 2, 3]; color float32 [B, C, C + 1] with C <= 4, or None; cutout float32 [B, 3],
// or None; all on x's device. `op` names the op, `xname` the image argument.
inline void ada_check(const at::Tensor& x, const at::Tensor& geom, const std::optional<at::Tensor>& color,
                      const std::optional<at::Tensor>& cutout, const char* op, const char* xname) {
  const auto s = x.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, op, ": ", xname,
              " must be float16, bfloat16, float32 or float64, got ", s);
  TORCH_CHECK(x.dim() == 4, op, ": ", xname, " must be NCHW (4 dimensions), got shape ", x.sizes());
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(x.size(2) < (int64_t(1) << 31) && x.size(3) < (int64_t(1) << 31), op, ": ", xname,
              " height and width must be < 2^31, got shape ", x.sizes());
  auto param = [&](const at::Tensor& p, const char* name) {
    TORCH_CHECK(p.device() == x.device(), op, ": ", name, " must be on the device of ", xname, " (", x.device(),
                "), got ", p.device());
    TORCH_CHECK(p.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", p.scalar_type());
  };
  param(geom, "geom");
  TORCH_CHECK(geom.dim() == 3 && geom.size(0) == B && geom.size(1) == 2 && geom.size(2) == 3, op,
              ": geom must have shape [B, 2, 3] = [", B, ", 2, 3], got ", geom.sizes());
  if (color.has_value()) {
    param(*color, "color");
    TORCH_CHECK(C <= kAdaMaxColor, op, ": color mixes at most ", kAdaMaxColor, " channels, got ", xname,
                " with C = ", C, " (pass color=None for more channels)");
    TORCH_CHECK(color->dim() == 3 && color->size(0) == B && color->size(1) == C && color->size(2) == C + 1, op,
                ": color must have shape [B, C, C + 1] = [", B, ", ", C, ", ", C + 1, "], got ", color->sizes());
  }
  if (cutout.has_value()) {
    param(*cutout, "cutout");
    TORCH_CHECK(cutout->dim() == 2 && cutout->size(0) == B && cutout->size(1) == 3, op,
                ": cutout must have shape [B, 3] = [", B, ", 3], got ", cutout->sizes());
  }
}

}  // namespace ganreg
