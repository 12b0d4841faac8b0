// Deterministic multi-tensor reductions on CPU: Σ (inv·x)², Σ a·b, Σ (a−b)² per sample or in total.
// Work is split into FIXED tiles (tensor, samples, chunk of kChunk elements); each tile writes its
// own partial and the partials are summed in index order, so 1 and N threads agree bitwise.
#pragma once

#include "cpu/cpu_utils.h"

namespace ganreg {
namespace cpu {

enum ReduceMode { kSq = 0, kDot = 1, kSqDiff = 2 };

template <typename T, int MODE>
struct SegSum {
  using A = acc_t<T>;
  using IO = VecIO<T>;
  using V = Vectorized<A>;
  V v0 = V(A(0)), v1 = V(A(0)), v2 = V(A(0)), v3 = V(A(0));
  A s = 0;
  A inv;
  bool scaled;
  explicit SegSum(A inv_) : inv(inv_), scaled(inv_ != A(1)) {}

  inline void term(V x, V y, V& acc) const {
    if (MODE == kSq) {
      if (scaled) x = x * V(inv);
      acc = at::vec::fmadd(x, x, acc);
    } else if (MODE == kDot) {
      acc = at::vec::fmadd(x, y, acc);
    } else {
      const V d = x - y;
      acc = at::vec::fmadd(d, d, acc);
    }
  }
  inline A term(A x, A y) const {
    if (MODE == kSq) {
      const A t = scaled ? x * inv : x;
      return t * t;
    } else if (MODE == kDot) {
      return x * y;
    } else {
      const A d = x - y;
      return d * d;
    }
  }
  // x (and y for two-operand modes) with element strides sx, sy
  void run(const T* x, int64_t sx, const T* y, int64_t sy, int64_t len) {
    constexpr int K = IO::kBlock;
    const bool two = MODE != kSq;
    if (sx == 1 && (!two || sy == 1)) {
      int64_t i = 0;
      V a0, a1, a2, a3;
      V b0(A(0)), b1(A(0)), b2(A(0)), b3(A(0));
      for (; i + 2 * K <= len; i += 2 * K) {
        IO::load(x + i, a0, a1);
        IO::load(x + i + K, a2, a3);
        if (two) {
          IO::load(y + i, b0, b1);
          IO::load(y + i + K, b2, b3);
        }
        term(a0, b0, v0);
        term(a1, b1, v1);
        term(a2, b2, v2);
        term(a3, b3, v3);
      }
      for (; i < len; i += K) {
        const int m = (int)std::min<int64_t>(K, len - i);
        IO::load(x + i, a0, a1, m);
        if (two) IO::load(y + i, b0, b1, m);
        term(a0, b0, v0);
        term(a1, b1, v1);
      }
    } else {
      for (int64_t i = 0; i < len; ++i)
        s += term(static_cast<A>(x[i * sx]), two ? static_cast<A>(y[i * sy]) : A(0));
    }
  }
  A result() const { return hsum<A>((v0 + v1) + (v2 + v3)) + s; }
};

struct TileInfo {
  int64_t B, n, K, G, ntiles, tile_begin, part_begin;
};

inline std::vector<TileInfo> make_tiles(const std::vector<Plan>& plans, int64_t* ntiles, int64_t* nparts) {
  std::vector<TileInfo> tiles;
  int64_t tb = 0, pb = 0;
  for (const Plan& p : plans) {
    TileInfo ti{p.B, p.n, 0, 1, 0, tb, pb};
    if (p.n > 0 && p.B > 0) {
      if (p.n <= kChunk) {
        ti.K = 1;
        ti.G = std::max<int64_t>(1, kChunk / p.n);
        ti.ntiles = ceil_div(p.B, ti.G);
      } else {
        ti.K = ceil_div(p.n, kChunk);
        ti.ntiles = p.B * ti.K;
      }
    }
    tiles.push_back(ti);
    tb += ti.ntiles;
    pb += ti.B * ti.K;
  }
  *ntiles = tb;
  *nparts = pb;
  return tiles;
}

// Call f(tensor t, sample b, element range [s, e), partial index) for every unit of global tile g.
template <typename F>
inline void tile_units(const std::vector<TileInfo>& tiles, int64_t g, F&& f) {
  size_t t = 0;
  while (t + 1 < tiles.size() && tiles[t + 1].tile_begin <= g) ++t;
  while (tiles[t].ntiles == 0 || g >= tiles[t].tile_begin + tiles[t].ntiles) ++t;  // skip empty tensors
  const TileInfo& ti = tiles[t];
  const int64_t local = g - ti.tile_begin;
  if (ti.K == 1) {
    const int64_t b0 = local * ti.G, b1 = std::min(ti.B, b0 + ti.G);
    for (int64_t b = b0; b < b1; ++b) f((int)t, b, int64_t(0), ti.n, ti.part_begin + b);
  } else {
    const int64_t b = local / ti.K, k = local % ti.K;
    f((int)t, b, k * kChunk, std::min(ti.n, (k + 1) * kChunk), ti.part_begin + b * ti.K + k);
  }
}

template <int MODE>
inline double reduce_range(const Plan& p, const at::Tensor& x, const at::Tensor* y, int64_t b, int64_t s, int64_t e,
                           double inv) {
  double out = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_reduce", [&] {
    using A = acc_t<scalar_t>;
    SegSum<scalar_t, MODE> acc(static_cast<A>(inv));
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* yp = y ? y->const_data_ptr<scalar_t>() : nullptr;
    const int nd = p.ndim;
    for_each_segment(p, b, s, e, [&](const int64_t* off, int64_t len, int64_t) {
      acc.run(xp + off[0], p.strides[0][nd - 1], yp ? yp + off[1] : nullptr, yp ? p.strides[1][nd - 1] : 0, len);
    });
    out = static_cast<double>(acc.result());
  });
  return out;
}

// The accumulation rule (ganreg_ext/_contract.py): float64 if any operand is float64, else float32.
inline at::ScalarType list_acc_dtype(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys) {
  for (const auto* v : {&xs, &ys})
    for (const auto& t : *v)
      if (t.scalar_type() == at::kDouble) return at::kDouble;
  return at::kFloat;
}

// Operand t read in the list's accumulation dtype: kernels accumulate in acc_t<T> of the storage
// type, which is the list's rule except for lower-precision tensors in a float64 list (and pairs of
// different dtypes in dot): only those rare mixes are converted.
inline at::Tensor as_acc(const at::Tensor& t, const at::Tensor& other, at::ScalarType acc) {
  if (acc == at::kDouble && t.scalar_type() != at::kDouble) return t.to(at::kDouble);
  if (other.defined() && other.scalar_type() != t.scalar_type()) return t.to(acc);
  return t;
}

// weight · Σ over the tensor list, then the reduction: [B] (kRedNone), Σ_b or mean_b (0-d), or the
// sum of everything (kRedTotal: each tensor is one sample). Fixed order at every level.
template <int MODE>
at::Tensor multi_reduce(const std::vector<at::Tensor>& xs0, const std::vector<at::Tensor>& ys0, int64_t reduction,
                        double inv, double weight, const char* what) {
  TORCH_CHECK(reduction >= kRedNone && reduction <= kRedTotal, what, ": reduction code must be 0..3, got ", reduction);
  const bool per_sample = reduction != kRedTotal;
  const at::ScalarType out_dtype = list_acc_dtype(xs0, ys0);
  std::vector<at::Tensor> xs, ys;
  std::vector<Plan> plans;
  int64_t work = 0;
  for (size_t t = 0; t < xs0.size(); ++t) {
    const at::Tensor none;
    xs.push_back(as_acc(xs0[t], MODE == kSq ? none : ys0[t], out_dtype));
    if (MODE == kSq) {
      plans.push_back(make_plan({xs[t]}, per_sample, true, what));
    } else {
      ys.push_back(as_acc(ys0[t], xs0[t], out_dtype));
      plans.push_back(make_plan({xs[t], ys[t]}, per_sample, true, what));
    }
    work += xs[t].numel();
  }
  int64_t ntiles, nparts;
  auto tiles = make_tiles(plans, &ntiles, &nparts);
  std::vector<double> parts(nparts, 0.0);
  parallel_tiles(ntiles, work, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g)
      tile_units(tiles, g, [&](int t, int64_t b, int64_t s, int64_t e, int64_t part) {
        parts[part] = reduce_range<MODE>(plans[t], xs[t], MODE == kSq ? nullptr : &ys[t], b, s, e, inv);
      });
  });
  const int64_t B = per_sample ? xs[0].size(0) : 1;
  std::vector<double> sums(B, 0.0);
  for (size_t t = 0; t < tiles.size(); ++t) {
    const TileInfo& ti = tiles[t];
    for (int64_t b = 0; b < ti.B; ++b)
      for (int64_t k = 0; k < ti.K; ++k) sums[per_sample ? b : 0] += parts[ti.part_begin + b * ti.K + k];
  }
  if (reduction == kRedSum || reduction == kRedMean) {
    double total = 0;
    for (int64_t b = 0; b < B; ++b) total += sums[b];
    sums.assign(1, reduction == kRedMean ? total / static_cast<double>(B) : total);
  }
  const int64_t nout = reduction == kRedNone ? B : 1;
  at::Tensor out = new_output(reduction == kRedNone ? at::IntArrayRef({B}) : at::IntArrayRef({}),
                              xs0[0].options().dtype(out_dtype));
  if (out_dtype == at::kDouble) {
    double* o = out.data_ptr<double>();
    for (int64_t b = 0; b < nout; ++b) o[b] = weight * sums[b];
  } else {
    float* o = out.data_ptr<float>();
    for (int64_t b = 0; b < nout; ++b) o[b] = static_cast<float>(weight * sums[b]);
  }
  return out;
}

inline at::ScalarType acc_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_float(const at::Tensor& t, const char* name) {
  auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must be float16, bfloat16, float32 or float64, got ", s);
}

inline void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got one on ", t.device());
}

}  // namespace cpu
}  // namespace ganreg
