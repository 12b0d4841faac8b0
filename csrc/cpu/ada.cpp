// CPU kernels of ADA (adaptive discriminator augmentation): ada_augment (resample through each
// sample's affine map with the stretched Keys cubic and reflect padding, colour matrix, cutout) and
// ada_augment_adj, the exact adjoint of its linear part. Math in common/ada.h (shared with CUDA, same
// order of operations as ganreg_ext/reference/ada.py). Inputs any strides; outputs contiguous NCHW.
//
// Both kernels work on planes whose rows carry P = max(16, ceil(W/4)) reflected columns on each side
// (Pad): the forward reads a padded float32/float64 copy of the input (one conversion pass, any input
// strides and dtype), the adjoint scatters into a padded accumulator and folds the padding columns
// back onto the columns they reflect to (in a fixed order). The output is walked in groups of
// KP = Vectorized<A>::size() pixels of a row: the tap weights of a group are computed lane-wise with
// at::vec (the operations of the scalar helpers, in their order); rows are reflected through the
// per-tap row offsets. Then per pixel, when its x-tap window (rounded up to whole vectors) lies inside
// the padded row (≈97-99% of the pixels of ADA's maps):
//  - forward: a dot product over each tap row with ceil(Tx/KP) vector loads (lanes beyond Tx are
//    blended to 0 before the multiply, so a NaN/Inf outside the real taps never leaks in);
//  - adjoint: a masked vector read-modify-write per tap row (lanes beyond Tx written back unchanged);
// else scalar loops over the reflected tap columns.
// Forward: parallel over fixed (sample, block of output rows) tiles, every output pixel computed on
// its own. Adjoint: parallel over fixed (sample, row chunk) units, each accumulating into its own
// buffer in pixel order; with several chunks per sample (small batches) the chunk buffers are summed
// in chunk order. The chunking depends on the shapes only: both kernels give bitwise the same result
// for any thread count.
#include <torch/library.h>

#include "common/ada.h"
#include "cpu/reduce_cpu.h"

#include <memory>

namespace ganreg {
namespace cpu {
namespace {

using OptT = std::optional<at::Tensor>;

struct AdaImg {
  int64_t B, C, H, W, sn, sc, sh, sw;
};

struct AdaParams {
  const float* geom;
  const float* color;  // [B, C, C + 1] or nullptr
  const float* cut;    // [B, 3] or nullptr
  bool affine;
};

// Keys cubic, lane-wise (the operations of ada_keys; NaN → 0).
template <typename A>
inline Vectorized<A> keys_vec(const Vectorized<A>& s) {
  using V = Vectorized<A>;
  const V a = s.abs();
  const V a2 = a * a, a3 = a * a * a;
  const V near = V(A(1.5)) * a3 - V(A(2.5)) * a2 + V(A(1));
  const V far = V(A(-0.5)) * a3 + V(A(2.5)) * a2 - V(A(4)) * a + V(A(2));
  const V r = V::blendv(V(A(0)), far, a < V(A(2)));
  return V::blendv(r, near, a <= V(A(1)));
}

// Lane masks of a tap window of T taps split in vectors of KP: mask[q] lane e set iff q·KP + e < T.
template <typename A>
struct TapMask {
  using V = Vectorized<A>;
  static constexpr int KP = V::size();
  static constexpr int NQ = kAdaMaxTaps / KP;
  V m[NQ];
  int nq;  // vectors per tap row: ceil(T / KP)
  explicit TapMask(int T) : nq((T + KP - 1) / KP) {
    for (int q = 0; q < NQ; ++q) m[q] = V::arange(static_cast<A>(q * KP), A(1)) < V(static_cast<A>(T));
  }
};

// Planes with rows padded by P reflected columns on each side (row stride Wp = W + 2P): the forward
// reads its input from such a copy, the adjoint accumulates into one. Column i in [−P, W + P) of a row
// sits at element P + i, and holds (forward) / is folded back onto (adjoint) column R_W(i).
struct Pad {
  int64_t P, Wp;
};
inline Pad pad_of(int64_t W) {
  const int64_t P = std::max<int64_t>(16, ceil_div(W, 4));
  return {P, W + 2 * P};
}

// The taps of KP consecutive output pixels (lanes) of one row, for planes of padded rows (Pad):
// weights w[t·KP + l] per axis, the reflected row offsets oy[t·KP + l] = R_H(j_t)·Wp, the unreflected
// first x tap ix0[l], and the x-weights again pixel-major (wxp[l·16 + t], zero from Tx up to the
// vector span) for the vector paths. Lanes >= m (past the row end) are not indexed.
template <typename A>
struct Taps {
  using V = Vectorized<A>;
  static constexpr int KP = V::size();
  alignas(64) A wx[kAdaMaxTaps * KP];
  alignas(64) A wy[kAdaMaxTaps * KP];
  alignas(64) A wxp[KP * kAdaMaxTaps];
  int64_t oy[kAdaMaxTaps * KP];
  int64_t ox[kAdaMaxTaps];  // the reflected x offsets of one lane (scalar path)
  int64_t ix0[KP];
  A fx[KP];  // floor(u − 2kx) per lane

  // the normalised weights of one axis (ada_axis_taps lane-wise); returns floor(pos − 2k) per lane
  static V weights(const V& pos, A k, int T, A* w) {
    const V fl = (pos - V(A(2) * k)).floor();
    const V fl1 = fl + V(A(1)), vk(k);
    V sum(A(0));
    for (int t = 0; t < T; ++t) {
      const V v = keys_vec<A>((pos - (fl1 + V(static_cast<A>(t)))) / vk);
      v.store(w + t * KP);
      sum = sum + v;
    }
    for (int t = 0; t < T; ++t) (V::loadu(w + t * KP) / sum).store(w + t * KP);
    return fl;
  }

  void compute(const AdaSample<A>& s, int64_t x0, int m, int64_t y, int64_t H, int64_t Wp) {
    alignas(64) A xs[KP];
    alignas(64) A f[KP];
    for (int l = 0; l < KP; ++l) xs[l] = static_cast<A>(x0 + l);
    const V X = V::loadu(xs);
    const A Y = static_cast<A>(y);
    const V u = V(s.g00) * X + V(s.g01 * Y) + V(s.g02);  // (g00·x + g01·y) + g02, as ada_u
    const V v = V(s.g10) * X + V(s.g11 * Y) + V(s.g12);
    weights(u, s.kx, s.tx, wx).store(fx);
    for (int l = 0; l < m; ++l) ix0[l] = ada_index(fx[l]) + 1;
    weights(v, s.ky, s.ty, wy).store(f);
    for (int l = 0; l < m; ++l) {
      const int64_t i0 = ada_index(f[l]) + 1;
      if (i0 >= 0 && i0 + s.ty <= H) {
        for (int t = 0; t < s.ty; ++t) oy[t * KP + l] = (i0 + t) * Wp;
      } else {
        for (int t = 0; t < s.ty; ++t) oy[t * KP + l] = ada_tap_index(f[l], t, H) * Wp;
      }
    }
    const int span = ((s.tx + KP - 1) / KP) * KP;
    for (int l = 0; l < m; ++l) {
      A* d = wxp + l * kAdaMaxTaps;
      for (int t = 0; t < s.tx; ++t) d[t] = wx[t * KP + l];
      for (int t = s.tx; t < span; ++t) d[t] = A(0);
    }
  }

  // Lane l's x-tap vectors lie inside the padded row (else: the scalar path).
  bool in_pad(int l, const AdaSample<A>& s, int64_t W, int64_t P) const {
    const int span = ((s.tx + KP - 1) / KP) * KP;
    return ix0[l] >= -P && ix0[l] + span <= W + P;
  }

  // the reflected x offsets of lane l (scalar path)
  void x_offsets(int l, int tx, int64_t W) {
    for (int t = 0; t < tx; ++t) ox[t] = ada_tap_index(fx[l], t, W);
  }

  // Σ_j wy_j · Σ_t wx_t · xc[oy_j + ox_t] for lane l (scalar; x_offsets(l) first). xc: column 0.
  A resample(const A* xc, int l, int tx, int ty) const {
    A acc = A(0);
    for (int j = 0; j < ty; ++j) {
      const A* row = xc + oy[j * KP + l];
      A s = A(0);
      for (int t = 0; t < tx; ++t) s += wx[t * KP + l] * row[ox[t]];
      acc += wy[j * KP + l] * s;
    }
    return acc;
  }

  // the same for NC channels (planes cs apart) of a lane in_pad, on padded rows: vector loads along
  // the taps (lanes beyond Tx blended to 0), one accumulator per channel; r[c] = the results
  template <int NC>
  void resample_rows(const A* xc, int64_t cs, int l, int ty, const TapMask<A>& mk, A* r) const {
    const A* w = wxp + l * kAdaMaxTaps;
    const A* base = xc + ix0[l];
    V acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = V(A(0));
    for (int j = 0; j < ty; ++j) {
      const A* row = base + oy[j * KP + l];
      const V wyj(wy[j * KP + l]);
      for (int q = 0; q < mk.nq; ++q) {
        const V wq = V::loadu(w + q * KP) * wyj;
        for (int c = 0; c < NC; ++c)
          acc[c] = acc[c] + wq * V::blendv(V(A(0)), V::loadu(row + c * cs + q * KP), mk.m[q]);
      }
    }
    for (int c = 0; c < NC; ++c) r[c] = at::vec::vec_reduce_all<A>([](V& x, V& y) { return x + y; }, acc[c]);
  }

  // every channel of a lane in_pad: r[c · KP] for c < C
  void resample_all(const A* xc, int64_t cs, int64_t C, int l, int ty, const TapMask<A>& mk, A* r) const {
    A v[4];
    for (int64_t c0 = 0; c0 < C; c0 += 4) {
      const A* x0 = xc + c0 * cs;
      const int64_t n = std::min<int64_t>(4, C - c0);
      if (n == 4)
        resample_rows<4>(x0, cs, l, ty, mk, v);
      else if (n == 3)
        resample_rows<3>(x0, cs, l, ty, mk, v);
      else if (n == 2)
        resample_rows<2>(x0, cs, l, ty, mk, v);
      else
        resample_rows<1>(x0, cs, l, ty, mk, v);
      for (int64_t c = 0; c < n; ++c) r[(c0 + c) * KP] = v[c];
    }
  }

  // the adjoint of resample: acc[oy_j + ox_t] += wx_t · (wy_j · h) for lane l (scalar; x_offsets first)
  void scatter(A* acc, int l, int tx, int ty, A h) const {
    for (int j = 0; j < ty; ++j) {
      A* row = acc + oy[j * KP + l];
      const A hy = wy[j * KP + l] * h;
      for (int t = 0; t < tx; ++t) row[ox[t]] += wx[t * KP + l] * hy;
    }
  }

  // the same for a lane in_pad, into padded rows (unreflected columns, folded back later): a masked
  // vector read-modify-write per tap row (lanes beyond Tx written back unchanged)
  void scatter_row(A* acc, int l, int ty, A h, const TapMask<A>& mk) const {
    const A* w = wxp + l * kAdaMaxTaps;
    A* base = acc + ix0[l];
    for (int j = 0; j < ty; ++j) {
      A* row = base + oy[j * KP + l];
      const V hy(wy[j * KP + l] * h);
      for (int q = 0; q < mk.nq; ++q) {
        const V old = V::loadu(row + q * KP);
        V::blendv(old, old + V::loadu(w + q * KP) * hy, mk.m[q]).store(row + q * KP);
      }
    }
  }
};

// keep(x, y) of the group's lanes (ada_keep lane-wise).
template <typename A>
inline Vectorized<A> keep_vec(const AdaSample<A>& s, int64_t x0, int64_t y, int64_t H, int64_t W) {
  using V = Vectorized<A>;
  if (!s.cut) return V(A(1));
  if (ada_cut_out(y, H, s.cy, s.half)) return V(A(1));
  const V d = (V::arange(static_cast<A>(x0), A(1)) + V(A(0.5))) / V(static_cast<A>(W)) - V(s.cx);
  return V::blendv(V(A(0)), V(A(1)), d.abs() >= V(s.half));
}

// The sample's colour matrix [C, C + 1] in A.
template <typename A>
inline void load_color(const AdaParams& p, int64_t b, int64_t C, A* m) {
  if (p.color == nullptr) return;
  const float* src = p.color + b * C * (C + 1);
  for (int64_t i = 0; i < C * (C + 1); ++i) m[i] = static_cast<A>(src[i]);
}

// x (any strides, T) → padded rows in A: xp[(b·C + c)·H + y][P + i] = x[b, c, y, R_W(i)].
template <typename T>
void pad_input(const T* x, const AdaImg& g, const Pad& pd, acc_t<T>* xp) {
  using A = acc_t<T>;
  const int64_t W = g.W, P = pd.P, Wp = pd.Wp, rows = g.B * g.C * g.H;
  parallel_tiles(ceil_div(rows, 16), rows * Wp, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo * 16; r < std::min(rows, hi * 16); ++r) {
      const int64_t b = r / (g.C * g.H), c = (r / g.H) % g.C, y = r % g.H;
      const T* src = x + b * g.sn + c * g.sc + y * g.sh;
      A* dst = xp + r * Wp;
      if (g.sw == 1) {
        at::vec::convert(src, dst + P, W);
      } else {
        for (int64_t i = 0; i < W; ++i) dst[P + i] = static_cast<A>(src[i * g.sw]);
      }
      for (int64_t i = -P; i < 0; ++i) dst[P + i] = dst[P + ada_reflect(i, W)];
      for (int64_t i = W; i < W + P; ++i) dst[P + i] = dst[P + ada_reflect(i, W)];
    }
  });
}

template <typename T>
void ada_forward(const T* x, T* out, const AdaImg& g, const AdaParams& p) {
  using A = acc_t<T>;
  using V = Vectorized<A>;
  using TP = Taps<A>;
  constexpr int KP = TP::KP;
  const int64_t C = g.C, H = g.H, W = g.W, HW = H * W;
  const Pad pd = pad_of(W);
  std::unique_ptr<A[]> xpad(new A[static_cast<size_t>(g.B * C * H * pd.Wp)]);  // every element written below
  pad_input<T>(x, g, pd, xpad.get());
  const int64_t R = std::min(H, std::max<int64_t>(1, ceil_div(2048, W)));  // ~2048 output pixels per tile
  const int64_t nblk = ceil_div(H, R);
  parallel_tiles(g.B * nblk, g.B * C * HW * 16, [&](int64_t lo, int64_t hi) {
    TP tp;
    A m[kAdaMaxColor * (kAdaMaxColor + 1)];
    std::vector<A> rbuf(C * KP);  // resampled channels of the group, [c][lane]
    alignas(64) A obuf[KP];
    for (int64_t tile = lo; tile < hi; ++tile) {
      const int64_t b = tile / nblk, y0 = (tile % nblk) * R, y1 = std::min(H, y0 + R);
      const AdaSample<A> s = ada_sample<A>(p.geom + 6 * b, p.cut ? p.cut + 3 * b : nullptr);
      const TapMask<A> mk(s.tx);
      load_color<A>(p, b, C, m);
      const A* xb = xpad.get() + b * C * H * pd.Wp + pd.P;  // column 0 of row 0 of channel 0
      T* ob = out + b * C * HW;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x0 = 0; x0 < W; x0 += KP) {
          const int n = static_cast<int>(std::min<int64_t>(KP, W - x0));
          tp.compute(s, x0, n, y, H, pd.Wp);
          for (int l = 0; l < n; ++l) {
            if (tp.in_pad(l, s, W, pd.P)) {
              tp.resample_all(xb, H * pd.Wp, C, l, s.ty, mk, rbuf.data() + l);
            } else {
              tp.x_offsets(l, s.tx, W);
              for (int64_t c = 0; c < C; ++c) rbuf[c * KP + l] = tp.resample(xb + c * H * pd.Wp, l, s.tx, s.ty);
            }
          }
          for (int l = n; l < KP; ++l)
            for (int64_t c = 0; c < C; ++c) rbuf[c * KP + l] = A(0);
          const V keep = keep_vec<A>(s, x0, y, H, W);
          T* orow = ob + y * W + x0;
          for (int64_t o = 0; o < C; ++o) {
            V acc;
            if (p.color != nullptr) {
              const A* mo = m + o * (C + 1);
              acc = V(A(0));
              for (int64_t c = 0; c < C; ++c) acc = acc + V(mo[c]) * V::loadu(rbuf.data() + c * KP);
              if (p.affine) acc = acc + V(mo[C]);
            } else {
              acc = V::loadu(rbuf.data() + o * KP);
            }
            if (s.cut) acc = acc * keep;
            if constexpr (std::is_same_v<T, A>) {
              if (n == KP)
                acc.store(orow + o * HW);
              else
                acc.store(orow + o * HW, n);
            } else {
              acc.store(obuf);
              for (int l = 0; l < n; ++l) orow[o * HW + l] = static_cast<T>(obuf[l]);
            }
          }
        }
      }
    }
  });
}

// Row chunks per sample of the adjoint: enough (sample, chunk) units for 8 threads, from the shapes
// only (never the thread count: the summation order must not depend on it), buffers <= 256 MB.
inline int64_t adjoint_chunks(const AdaImg& g, int64_t row_elems, int64_t elem) {
  int64_t K = std::min<int64_t>(g.H, ceil_div(8, std::max<int64_t>(g.B, 1)));
  const int64_t per = std::max<int64_t>(1, g.B * g.C * g.H * row_elems * elem);
  K = std::min<int64_t>(K, std::max<int64_t>(1, (int64_t(256) << 20) / per));
  return std::max<int64_t>(K, 1);
}

// Padded accumulator rows → output rows: out[r] = acc[P + r] + the padding columns that reflect onto
// r, added in column order (i = −P..−1, then W..W+P−1).
template <typename T, typename A>
inline void fold_row(const A* acc, const Pad& pd, int64_t W, A* tmp, T* dst) {
  const A* a = acc + pd.P;
  std::copy(a, a + W, tmp);
  for (int64_t i = -pd.P; i < 0; ++i) tmp[ada_reflect(i, W)] += a[i];
  for (int64_t i = W; i < W + pd.P; ++i) tmp[ada_reflect(i, W)] += a[i];
  at::vec::convert(tmp, dst, W);
}

template <typename T>
void ada_adjoint(const T* gin, T* out, const AdaImg& g, const AdaParams& p) {
  using A = acc_t<T>;
  using TP = Taps<A>;
  constexpr int KP = TP::KP;
  const int64_t C = g.C, H = g.H, W = g.W, HW = H * W;
  const Pad pd = pad_of(W);
  const int64_t plane = H * pd.Wp, CP = C * plane;  // accumulator: C planes of padded rows
  const int64_t K = adjoint_chunks(g, pd.Wp, sizeof(A));
  // K > 1: one accumulator per (sample, chunk), summed and folded below; K == 1: a per-thread
  // accumulator, folded into the output when its sample is done.
  std::vector<A> chunks(K > 1 ? static_cast<size_t>(g.B * K * CP) : size_t(0));
  parallel_tiles(g.B * K, g.B * C * HW * 16, [&](int64_t lo, int64_t hi) {
    TP tp;
    A m[kAdaMaxColor * (kAdaMaxColor + 1)];
    A gv[kAdaMaxColor];
    std::vector<A> local(K == 1 ? static_cast<size_t>(CP) : size_t(0)), tmp(W);
    for (int64_t unit = lo; unit < hi; ++unit) {
      const int64_t b = unit / K, k = unit % K, y0 = k * H / K, y1 = (k + 1) * H / K;
      const AdaSample<A> s = ada_sample<A>(p.geom + 6 * b, p.cut ? p.cut + 3 * b : nullptr);
      const TapMask<A> mk(s.tx);
      load_color<A>(p, b, C, m);
      A* accp = K > 1 ? chunks.data() + unit * CP : local.data();
      std::fill(accp, accp + CP, A(0));
      A* acc = accp + pd.P;  // column 0 of row 0 of channel 0
      const T* gb = gin + b * g.sn;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x0 = 0; x0 < W; x0 += KP) {
          const int n = static_cast<int>(std::min<int64_t>(KP, W - x0));
          tp.compute(s, x0, n, y, H, pd.Wp);
          alignas(64) A kb[KP];
          keep_vec<A>(s, x0, y, H, W).store(kb);
          for (int l = 0; l < n; ++l) {
            const int64_t xi = x0 + l;
            const T* gp = gb + y * g.sh + xi * g.sw;
            const bool vec = tp.in_pad(l, s, W, pd.P);
            if (!vec) tp.x_offsets(l, s.tx, W);
            auto scatter = [&](A* accc, A h) {
              if (vec)
                tp.scatter_row(accc, l, s.ty, h, mk);
              else
                tp.scatter(accc, l, s.tx, s.ty, h);
            };
            if (p.color != nullptr) {
              for (int64_t o = 0; o < C; ++o) gv[o] = static_cast<A>(gp[o * g.sc]);
              for (int64_t c = 0; c < C; ++c) {
                A h = A(0);
                for (int64_t o = 0; o < C; ++o) h += m[o * (C + 1) + c] * gv[o];
                scatter(acc + c * plane, s.cut ? h * kb[l] : h);
              }
            } else {
              for (int64_t c = 0; c < C; ++c) {
                const A h = static_cast<A>(gp[c * g.sc]);
                scatter(acc + c * plane, s.cut ? h * kb[l] : h);
              }
            }
          }
        }
      }
      if (K == 1)
        for (int64_t r = 0; r < C * H; ++r) fold_row<T, A>(accp + r * pd.Wp, pd, W, tmp.data(), out + b * C * HW + r * W);
    }
  });
  if (K == 1) return;
  // Σ over the chunks of each sample in chunk order, then the fold; parallel over (sample, rows)
  constexpr int64_t kRows = 16;
  const int64_t per = ceil_div(C * H, kRows);
  parallel_tiles(g.B * per, g.B * CP * K, [&](int64_t lo, int64_t hi) {
    std::vector<A> sum(pd.Wp), tmp(W);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / per, r0 = (t % per) * kRows, r1 = std::min(C * H, r0 + kRows);
      for (int64_t r = r0; r < r1; ++r) {
        const A* src = chunks.data() + b * K * CP + r * pd.Wp;
        std::copy(src, src + pd.Wp, sum.data());
        for (int64_t k = 1; k < K; ++k) {
          const A* sk = src + k * CP;
          for (int64_t e = 0; e < pd.Wp; ++e) sum[e] += sk[e];
        }
        fold_row<T, A>(sum.data(), pd, W, tmp.data(), out + b * C * HW + r * W);
      }
    }
  });
}

at::Tensor ada_impl(const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout, bool affine,
                    bool adjoint) {
  const char* op = adjoint ? "ada_augment_adj" : "ada_augment";
  const char* xname = adjoint ? "g" : "x";
  TORCH_CHECK(x.device().is_cpu(), op, ": ", xname, " must be a CPU tensor, got one on ", x.device());
  ada_check(x, geom, color, cutout, op, xname);
  at::Tensor out = new_output_contiguous(x);
  if (out.numel() == 0) return out;
  const at::Tensor gc = geom.contiguous();
  const at::Tensor cc = color.has_value() ? color->contiguous() : at::Tensor();
  const at::Tensor kc = cutout.has_value() ? cutout->contiguous() : at::Tensor();
  const AdaParams p{gc.const_data_ptr<float>(), cc.defined() ? cc.const_data_ptr<float>() : nullptr,
                    kc.defined() ? kc.const_data_ptr<float>() : nullptr, affine};
  const AdaImg g{x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_ada_augment", [&] {
    if (adjoint)
      ada_adjoint<scalar_t>(x.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g, p);
    else
      ada_forward<scalar_t>(x.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g, p);
  });
  return out;
}

at::Tensor ada_augment(const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout,
                       bool affine) {
  return ada_impl(x, geom, color, cutout, affine, false);
}

at::Tensor ada_augment_adj(const at::Tensor& g, const at::Tensor& geom, const OptT& color, const OptT& cutout) {
  return ada_impl(g, geom, color, cutout, false, true);
}

}  // namespace
}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("ada_augment", &ganreg::cpu::ada_augment);
  m.impl("ada_augment_adj", &ganreg::cpu::ada_augment_adj);
}
