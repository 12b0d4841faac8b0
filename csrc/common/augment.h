// DiffAugment / CR index and colour math shared by the CPU and CUDA kernels (ARCHITECTURE.md).
#pragma once

#include <cstdint>

#include "macros.h"

namespace ganreg {

enum DiffAugFlags : int64_t {
  kBrightness = 1,
  kSaturation = 2,
  kContrast = 4,
  kTranslation = 8,
  kCutout = 16,
};

// Per-sample DiffAugment parameters unpacked from fparams [B,3] f32 and iparams [B,4] i32.
template <typename acc_t>
struct DiffAugSample {
  acc_t bright;    // u_b - 0.5 (0 without BRIGHTNESS)
  acc_t sat;       // 2 u_s (used only with SATURATION)
  acc_t con;       // u_c + 0.5 (used only with CONTRAST)
  int32_t tx, ty;  // translation (0 without TRANSLATION)
  int64_t cut_r0, cut_c0, ch, cw;  // cutout square rows [cut_r0, cut_r0+ch), cols [cut_c0, cut_c0+cw)
  bool has_cut;
};

// Cutout size int(size * 0.5 + 0.5).
GANREG_HD int64_t cutout_extent(int64_t n) { return static_cast<int64_t>(static_cast<double>(n) * 0.5 + 0.5); }

template <typename acc_t>
GANREG_HD DiffAugSample<acc_t> diffaug_sample(const float* fp, const int32_t* ip, int64_t flags, int64_t H, int64_t W) {
  DiffAugSample<acc_t> s;
  s.bright = (flags & kBrightness) ? static_cast<acc_t>(fp[0]) - acc_t(0.5) : acc_t(0);
  s.sat = static_cast<acc_t>(fp[1]) * acc_t(2);
  s.con = static_cast<acc_t>(fp[2]) + acc_t(0.5);
  s.tx = (flags & kTranslation) ? ip[0] : 0;
  s.ty = (flags & kTranslation) ? ip[1] : 0;
  s.has_cut = (flags & kCutout) != 0;
  s.ch = cutout_extent(H);
  s.cw = cutout_extent(W);
  s.cut_r0 = static_cast<int64_t>(ip[2]) - s.ch / 2;
  s.cut_c0 = static_cast<int64_t>(ip[3]) - s.cw / 2;
  return s;
}

// Is output pixel (i, j) zeroed by the cutout?
template <typename acc_t>
GANREG_HD bool diffaug_cut(const DiffAugSample<acc_t>& s, int64_t i, int64_t j) {
  return s.has_cut && i >= s.cut_r0 && i < s.cut_r0 + s.ch && j >= s.cut_c0 && j < s.cut_c0 + s.cw;
}

// Colour transform of one channel value x (brightness already folded into x1 = x + bright):
// saturation (x1 - m_c)*sat + m_c with m_c = mean_c x1, then contrast (x2 - M)*con + M.
template <typename acc_t>
GANREG_HD acc_t diffaug_colour(acc_t x1, acc_t mean_c, acc_t mean_chw, int64_t flags, const DiffAugSample<acc_t>& s) {
  acc_t y = x1;
  if (flags & kSaturation) y = (y - mean_c) * s.sat + mean_c;
  if (flags & kContrast) y = (y - mean_chw) * s.con + mean_chw;
  return y;
}

// Reflect padding index (edge not repeated), valid for -(n-1) <= p <= 2(n-1); clamped beyond.
GANREG_HD int64_t reflect_index(int64_t p, int64_t n) {
  if (n <= 1) return 0;
  if (p < 0) p = -p;
  if (p >= n) p = 2 * (n - 1) - p;
  return p < 0 ? 0 : (p >= n ? n - 1 : p);
}

// CR forward: the source (row, col) of x for output pixel (i, j).
GANREG_HD void cr_source(int64_t i, int64_t j, int64_t H, int64_t W, bool flip, int64_t tx, int64_t ty, int64_t* r,
                         int64_t* q) {
  *r = reflect_index(i + tx, H);
  const int64_t c = reflect_index(j + ty, W);
  *q = flip ? W - 1 - c : c;
}

// CR adjoint: the <= 2 output coordinates i (along an axis of size n, shift t) whose reflected
// index is r. Returns the count written to out[0..1].
GANREG_HD int cr_preimages(int64_t r, int64_t n, int64_t t, int64_t out[3]) {
  int k = 0;
  int64_t cand[3];
  int nc = 0;
  cand[nc++] = r;
  if (r > 0) cand[nc++] = -r;
  if (r < n - 1) cand[nc++] = 2 * (n - 1) - r;
  for (int m = 0; m < nc; ++m) {
    const int64_t i = cand[m] - t;
    if (i >= 0 && i < n) out[k++] = i;
  }
  return k;
}

}  // namespace ganreg
