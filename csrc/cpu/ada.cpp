// CPU kernels of ADA (adaptive discriminator augmentation): ada_augment (resample through each
// sample's affine map with the stretched Keys cubic and reflect padding, colour matrix, cutout) and
// ada_augment_adj, the exact adjoint of its linear part. Math in common/ada.h (shared with CUDA, same
// order of operations as ganreg_ext/reference/ada.py). Inputs any strides; outputs contiguous NCHW.
//
// Forward: parallel over fixed (sample, block of output rows) tiles; the tap weights of Vectorized<A>
// consecutive output pixels are computed lane-wise with at::vec (the same operations, in the same
// order, as the scalar helpers), then each pixel gathers its Tx·Ty taps for every channel.
// Adjoint (scatter-add): parallel over fixed (sample, row chunk) units, each accumulating into its own
// accumulation-type buffer in pixel order; with several chunks per sample (small batches) the chunk
// buffers are summed in chunk order. The chunking depends on the shapes only, so the result is
// bitwise the same for any thread count.
#include <torch/library.h>

#include "common/ada.h"
#include "cpu/reduce_cpu.h"

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

// The taps of KP consecutive output pixels of one row: weights w[t·KP + l] and element offsets
// o[t·KP + l] = R(i_t)·stride per axis (lane l = pixel x0 + l; lanes >= m are not indexed).
template <typename A>
struct Taps {
  using V = Vectorized<A>;
  static constexpr int KP = V::size();
  alignas(64) A wx[kAdaMaxTaps * KP];
  alignas(64) A wy[kAdaMaxTaps * KP];
  int64_t ox[kAdaMaxTaps * KP];
  int64_t oy[kAdaMaxTaps * KP];

  // one axis: ada_axis_taps lane-wise
  static void axis(const V& pos, A k, int T, int64_t n, int64_t stride, int m, A* w, int64_t* off) {
    const V fl = (pos - V(A(2) * k)).floor();
    const V fl1 = fl + V(A(1)), vk(k);
    V sum(A(0));
    for (int t = 0; t < T; ++t) {
      const V v = keys_vec<A>((pos - (fl1 + V(static_cast<A>(t)))) / vk);
      v.store(w + t * KP);
      sum = sum + v;
    }
    for (int t = 0; t < T; ++t) (V::loadu(w + t * KP) / sum).store(w + t * KP);
    alignas(64) A f[KP];
    fl.store(f);
    for (int l = 0; l < m; ++l) {
      const int64_t i0 = ada_index(f[l]) + 1;
      if (i0 >= 0 && i0 + T <= n) {
        for (int t = 0; t < T; ++t) off[t * KP + l] = (i0 + t) * stride;
      } else {
        for (int t = 0; t < T; ++t) off[t * KP + l] = ada_reflect(i0 + t, n) * stride;
      }
    }
  }

  void compute(const AdaSample<A>& s, int64_t x0, int m, int64_t y, int64_t H, int64_t W, int64_t sh, int64_t sw) {
    alignas(64) A xs[KP];
    for (int l = 0; l < KP; ++l) xs[l] = static_cast<A>(x0 + l);
    const V X = V::loadu(xs);
    const A Y = static_cast<A>(y);
    const V u = V(s.g00) * X + V(s.g01 * Y) + V(s.g02);  // (g00·x + g01·y) + g02, as ada_u
    const V v = V(s.g10) * X + V(s.g11 * Y) + V(s.g12);
    axis(u, s.kx, s.tx, W, sw, m, wx, ox);
    axis(v, s.ky, s.ty, H, sh, m, wy, oy);
  }

  // Σ_j wy_j · Σ_t wx_t · xc[oy_j + ox_t] for lane l
  template <typename T>
  A resample(const T* xc, int l, int tx, int ty) const {
    A acc = A(0);
    for (int j = 0; j < ty; ++j) {
      const T* row = xc + oy[j * KP + l];
      A s = A(0);
      for (int t = 0; t < tx; ++t) s += wx[t * KP + l] * static_cast<A>(row[ox[t * KP + l]]);
      acc += wy[j * KP + l] * s;
    }
    return acc;
  }

  // the adjoint of resample: acc[oy_j + ox_t] += wx_t · (wy_j · h) for lane l
  void scatter(A* acc, int l, int tx, int ty, A h) const {
    for (int j = 0; j < ty; ++j) {
      A* row = acc + oy[j * KP + l];
      const A hy = wy[j * KP + l] * h;
      for (int t = 0; t < tx; ++t) row[ox[t * KP + l]] += wx[t * KP + l] * hy;
    }
  }
};

// The sample's colour matrix [C, C + 1] in A.
template <typename A>
inline void load_color(const AdaParams& p, int64_t b, int64_t C, A* m) {
  if (p.color == nullptr) return;
  const float* src = p.color + b * C * (C + 1);
  for (int64_t i = 0; i < C * (C + 1); ++i) m[i] = static_cast<A>(src[i]);
}

template <typename T>
void ada_forward(const T* x, T* out, const AdaImg& g, const AdaParams& p) {
  using A = acc_t<T>;
  constexpr int KP = Taps<A>::KP;
  const int64_t C = g.C, H = g.H, W = g.W, HW = H * W;
  const int64_t R = std::min(H, std::max<int64_t>(1, ceil_div(2048, W)));  // ~2048 output pixels per tile
  const int64_t nblk = ceil_div(H, R);
  parallel_tiles(g.B * nblk, g.B * C * HW * 16, [&](int64_t lo, int64_t hi) {
    Taps<A> tp;
    A m[kAdaMaxColor * (kAdaMaxColor + 1)];
    A r[kAdaMaxColor];
    for (int64_t tile = lo; tile < hi; ++tile) {
      const int64_t b = tile / nblk, y0 = (tile % nblk) * R, y1 = std::min(H, y0 + R);
      const AdaSample<A> s = ada_sample<A>(p.geom + 6 * b, p.cut ? p.cut + 3 * b : nullptr);
      load_color<A>(p, b, C, m);
      const T* xb = x + b * g.sn;
      T* ob = out + b * C * HW;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x0 = 0; x0 < W; x0 += KP) {
          const int n = static_cast<int>(std::min<int64_t>(KP, W - x0));
          tp.compute(s, x0, n, y, H, W, g.sh, g.sw);
          for (int l = 0; l < n; ++l) {
            const int64_t px = y * W + x0 + l;
            const A keep = ada_keep<A>(s, x0 + l, y, H, W);
            if (p.color != nullptr) {
              for (int64_t c = 0; c < C; ++c) r[c] = tp.resample(xb + c * g.sc, l, s.tx, s.ty);
              for (int64_t o = 0; o < C; ++o) {
                const A* mo = m + o * (C + 1);
                A acc = A(0);
                for (int64_t c = 0; c < C; ++c) acc += mo[c] * r[c];
                if (p.affine) acc = acc + mo[C];
                ob[o * HW + px] = static_cast<T>(s.cut ? acc * keep : acc);
              }
            } else {
              for (int64_t c = 0; c < C; ++c) {
                const A v = tp.resample(xb + c * g.sc, l, s.tx, s.ty);
                ob[c * HW + px] = static_cast<T>(s.cut ? v * keep : v);
              }
            }
          }
        }
      }
    }
  });
}

// Row chunks per sample of the adjoint: enough (sample, chunk) units for 8 threads, from the shapes
// only (never the thread count: the summation order must not depend on it), buffers <= 256 MB.
inline int64_t adjoint_chunks(const AdaImg& g, int64_t elem) {
  int64_t K = std::min<int64_t>(g.H, ceil_div(8, std::max<int64_t>(g.B, 1)));
  const int64_t per = std::max<int64_t>(1, g.B * g.C * g.H * g.W * elem);
  K = std::min<int64_t>(K, std::max<int64_t>(1, (int64_t(256) << 20) / per));
  return std::max<int64_t>(K, 1);
}

template <typename T>
void ada_adjoint(const T* gin, T* out, const AdaImg& g, const AdaParams& p) {
  using A = acc_t<T>;
  constexpr int KP = Taps<A>::KP;
  constexpr bool same = std::is_same_v<T, A>;
  const int64_t C = g.C, H = g.H, W = g.W, HW = H * W, CHW = C * HW;
  const int64_t K = adjoint_chunks(g, sizeof(A));
  // K > 1: one buffer per (sample, chunk), summed below; K == 1: the output itself (T == A) or a
  // per-thread buffer converted when the sample is done.
  std::vector<A> chunks(K > 1 ? static_cast<size_t>(g.B * K * CHW) : size_t(0));
  parallel_tiles(g.B * K, g.B * CHW * 16, [&](int64_t lo, int64_t hi) {
    Taps<A> tp;
    A m[kAdaMaxColor * (kAdaMaxColor + 1)];
    A gv[kAdaMaxColor];
    std::vector<A> local(K == 1 && !same ? static_cast<size_t>(CHW) : size_t(0));
    for (int64_t unit = lo; unit < hi; ++unit) {
      const int64_t b = unit / K, k = unit % K, y0 = k * H / K, y1 = (k + 1) * H / K;
      const AdaSample<A> s = ada_sample<A>(p.geom + 6 * b, p.cut ? p.cut + 3 * b : nullptr);
      load_color<A>(p, b, C, m);
      A* acc = K > 1 ? chunks.data() + unit * CHW : same ? reinterpret_cast<A*>(out + b * CHW) : local.data();
      std::fill(acc, acc + CHW, A(0));
      const T* gb = gin + b * g.sn;
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x0 = 0; x0 < W; x0 += KP) {
          const int n = static_cast<int>(std::min<int64_t>(KP, W - x0));
          tp.compute(s, x0, n, y, H, W, W, 1);  // offsets into the contiguous accumulator
          for (int l = 0; l < n; ++l) {
            const int64_t xi = x0 + l;
            const A keep = ada_keep<A>(s, xi, y, H, W);
            const T* gp = gb + y * g.sh + xi * g.sw;
            if (p.color != nullptr) {
              for (int64_t o = 0; o < C; ++o) gv[o] = static_cast<A>(gp[o * g.sc]);
              for (int64_t c = 0; c < C; ++c) {
                A h = A(0);
                for (int64_t o = 0; o < C; ++o) h += m[o * (C + 1) + c] * gv[o];
                tp.scatter(acc + c * HW, l, s.tx, s.ty, s.cut ? h * keep : h);
              }
            } else {
              for (int64_t c = 0; c < C; ++c) {
                const A h = static_cast<A>(gp[c * g.sc]);
                tp.scatter(acc + c * HW, l, s.tx, s.ty, s.cut ? h * keep : h);
              }
            }
          }
        }
      }
      if (K == 1 && !same) at::vec::convert(acc, out + b * CHW, CHW);
    }
  });
  if (K == 1) return;
  // Σ over the chunks of each sample, in chunk order
  constexpr int64_t kSpan = 8192;
  const int64_t per = ceil_div(CHW, kSpan);
  parallel_tiles(g.B * per, g.B * CHW * K, [&](int64_t lo, int64_t hi) {
    std::vector<A> tmp(kSpan);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / per, e0 = (t % per) * kSpan, n = std::min(kSpan, CHW - e0);
      const A* src = chunks.data() + b * K * CHW + e0;
      std::copy(src, src + n, tmp.data());
      for (int64_t k = 1; k < K; ++k) {
        const A* sk = src + k * CHW;
        for (int64_t e = 0; e < n; ++e) tmp[e] += sk[e];
      }
      at::vec::convert(tmp.data(), out + b * CHW + e0, n);
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
  const AdaImg g{x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const AdaParams p{gc.const_data_ptr<float>(), cc.defined() ? cc.const_data_ptr<float>() : nullptr,
                    kc.defined() ? kc.const_data_ptr<float>() : nullptr, affine};
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
