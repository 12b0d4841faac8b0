// CPU kernels of the bias_act family (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d; math in common/bias_act.h):
//   bias_act(x, b, dim, act, alpha, gain, clamp)            y = clamp(gain·f(x + b))
//   bias_act_grad(x, b, y, mults, dim, act, ..., order)     Π mults · gain · f^(order)(x + b) · [|y0| < clamp]
// Elementwise over any strides and layouts: the operands are walked in the memory order of the output
// (`empty_like`, so channels_last stays channels_last and nothing is copied), in runs along the
// innermost coalesced dimension; b is a virtual operand with stride 1 along `dim` and 0 elsewhere, so
// inside a run it is either one value or a contiguous vector. Each run is processed in blocks of
// kBlk elements converted to the math type (float32, float64 for float64) in per-thread buffers
// (no copy for dense operands already in that type) and computed with at::vec (AVX2) including the
// tails (masked loads), so results do not depend on the layout or the thread count.
#include <torch/library.h>

#include "common/bias_act.h"
#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

constexpr int64_t kBlk = 256;      // elements per compute block (buffers stay in L1)
constexpr int64_t kEwTile = 16384;  // elements per parallel tile

// ----------------------------------------------------------------------------- iteration

struct EwIter {
  int nops = 0, ndim = 0;
  int64_t numel = 1;
  std::vector<int64_t> sizes;    // [ndim], outer → inner
  std::vector<int64_t> strides;  // [ndim * nops]: strides[d * nops + op] in elements
};

// st[op] = element strides of operand op over `shape` (operand 0 = the output: its memory order is
// the iteration order). Size-1 dims are dropped, then dims contiguous for every operand coalesced.
EwIter make_iter(at::IntArrayRef shape, const std::vector<std::vector<int64_t>>& st) {
  EwIter it;
  it.nops = static_cast<int>(st.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    it.numel *= shape[d];
    if (shape[d] != 1) dims.push_back(d);
  }
  std::stable_sort(dims.begin(), dims.end(), [&](int64_t a, int64_t b) { return st[0][a] > st[0][b]; });
  for (int64_t d : dims) {
    if (!it.sizes.empty()) {
      bool ok = true;
      const size_t last = it.sizes.size() - 1;
      for (int o = 0; o < it.nops && ok; ++o) ok = it.strides[last * it.nops + o] == st[o][d] * shape[d];
      if (ok) {
        it.sizes[last] *= shape[d];
        for (int o = 0; o < it.nops; ++o) it.strides[last * it.nops + o] = st[o][d];
        continue;
      }
    }
    it.sizes.push_back(shape[d]);
    for (int o = 0; o < it.nops; ++o) it.strides.push_back(st[o][d]);
  }
  if (it.sizes.empty()) {
    it.sizes.push_back(1);
    for (int o = 0; o < it.nops; ++o) it.strides.push_back(1);
  }
  it.ndim = static_cast<int>(it.sizes.size());
  return it;
}

// f(off, inner, len): runs of elements [s, e) (iteration order); off[op] = element offset of the
// run's first element, inner[op] = the operands' innermost strides.
template <typename F>
void for_runs(const EwIter& it, int64_t s, int64_t e, F&& f) {
  if (s >= e) return;
  const int nd = it.ndim, no = it.nops;
  int64_t idx[16];
  int64_t off[16];
  TORCH_CHECK(nd <= 16 && no <= 16, "bias_act: internal: too many dims/operands");
  int64_t rem = s;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % it.sizes[d];
    rem /= it.sizes[d];
  }
  for (int o = 0; o < no; ++o) {
    off[o] = 0;
    for (int d = 0; d < nd; ++d) off[o] += idx[d] * it.strides[d * no + o];
  }
  const int64_t* inner = &it.strides[(nd - 1) * no];
  const int64_t n_in = it.sizes[nd - 1];
  while (s < e) {
    const int64_t len = std::min(n_in - idx[nd - 1], e - s);
    f(static_cast<const int64_t*>(off), inner, len);
    s += len;
    if (s >= e) break;
    for (int o = 0; o < no; ++o) off[o] += len * inner[o];
    idx[nd - 1] += len;
    for (int d = nd - 1; d > 0 && idx[d] == it.sizes[d]; --d) {
      for (int o = 0; o < no; ++o) off[o] += it.strides[(d - 1) * no + o] - it.sizes[d] * it.strides[d * no + o];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// ------------------------------------------------------------------------- typed block load/store

struct Operand {
  const void* base = nullptr;
  at::ScalarType dt = at::kFloat;
};

template <typename A, typename T>
inline void conv_in(const T* p, int64_t st, int64_t n, A* buf) {
  if (st == 1) {
    at::vec::convert(p, buf, n);
  } else if (st == 0) {
    std::fill(buf, buf + n, static_cast<A>(p[0]));
  } else {
    for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<A>(p[i * st]);
  }
}

// n elements of operand o from element offset off, stride st, as A (the memory itself when it is a
// dense run of A).
template <typename A>
inline const A* load_in(const Operand& o, int64_t off, int64_t st, int64_t n, A* buf) {
  switch (o.dt) {
    case at::kFloat: {
      const float* p = static_cast<const float*>(o.base) + off;
      if (std::is_same_v<A, float> && st == 1) return reinterpret_cast<const A*>(p);
      conv_in<A>(p, st, n, buf);
      return buf;
    }
    case at::kDouble: {
      const double* p = static_cast<const double*>(o.base) + off;
      if (std::is_same_v<A, double> && st == 1) return reinterpret_cast<const A*>(p);
      conv_in<A>(p, st, n, buf);
      return buf;
    }
    case at::kHalf:
      conv_in<A>(static_cast<const at::Half*>(o.base) + off, st, n, buf);
      return buf;
    default:
      conv_in<A>(static_cast<const at::BFloat16*>(o.base) + off, st, n, buf);
      return buf;
  }
}

template <typename A, typename T>
inline void conv_out(const A* buf, int64_t n, T* p, int64_t st) {
  if (st == 1) {
    at::vec::convert(buf, p, n);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i * st] = static_cast<T>(buf[i]);
  }
}

// Where to compute n output elements: the output memory itself (dense run of A) or buf.
template <typename A>
inline A* out_ptr(void* base, at::ScalarType dt, int64_t off, int64_t st, A* buf) {
  if (st == 1 && ((std::is_same_v<A, float> && dt == at::kFloat) || (std::is_same_v<A, double> && dt == at::kDouble)))
    return static_cast<A*>(base) + off;
  return buf;
}

template <typename A>
inline void store_out(const A* buf, void* base, at::ScalarType dt, int64_t off, int64_t st, int64_t n) {
  switch (dt) {
    case at::kFloat: {
      float* p = static_cast<float*>(base) + off;
      if (reinterpret_cast<const void*>(buf) != p) conv_out<A>(buf, n, p, st);
      return;
    }
    case at::kDouble: {
      double* p = static_cast<double*>(base) + off;
      if (reinterpret_cast<const void*>(buf) != p) conv_out<A>(buf, n, p, st);
      return;
    }
    case at::kHalf:
      conv_out<A>(buf, n, static_cast<at::Half*>(base) + off, st);
      return;
    default:
      conv_out<A>(buf, n, static_cast<at::BFloat16*>(base) + off, st);
      return;
  }
}

// ------------------------------------------------------------------------------- vector math

template <typename A>
using Vec = Vectorized<A>;

template <typename A>
inline Vec<A> vpoly(const A* c, int n, Vec<A> v) {
  Vec<A> r(c[n - 1]);
  for (int i = n - 2; i >= 0; --i) r = at::vec::fmadd(r, v, Vec<A>(c[i]));
  return r;
}

template <typename A>
inline Vec<A> vsigmoid(Vec<A> z) {
  const Vec<A> one(A(1));
  return one / (one + z.neg().exp());
}

// f(z) (without gain), the vector form of act_f.
template <typename A, int ACT>
inline Vec<A> vf(const ActParams<A>& p, Vec<A> z) {
  using V = Vec<A>;
  const V zero(A(0));
  if constexpr (ACT == kActRelu) {
    return V::blendv(z, zero, z < zero);
  } else if constexpr (ACT == kActLrelu) {
    return V::blendv(z, z * V(p.alpha), z < zero);
  } else if constexpr (ACT == kActTanh) {
    return z.tanh();
  } else if constexpr (ACT == kActSigmoid) {
    return vsigmoid<A>(z);
  } else if constexpr (ACT == kActElu) {
    return V::blendv(z, z.expm1(), z < zero);
  } else if constexpr (ACT == kActSelu) {
    return V(A(kSeluLambda)) * V::blendv(z, V(A(kSeluAlpha)) * z.expm1(), z < zero);
  } else if constexpr (ACT == kActSoftplus) {
    return at::vec::maximum(z, zero) + z.abs().neg().exp().log1p();
  } else if constexpr (ACT == kActSwish) {
    return z * vsigmoid<A>(z);
  } else {
    return z;
  }
}

// f^(order)(z), order >= 1, smooth activations (vector form of act_deriv_smooth).
template <typename A, int ACT>
inline Vec<A> vd(const ActParams<A>& p, Vec<A> z) {
  using V = Vec<A>;
  const V zero(A(0));
  if constexpr (ACT == kActTanh) {
    return vpoly<A>(p.p0, p.n0, z.tanh());
  } else if constexpr (ACT == kActSigmoid || ACT == kActSoftplus) {
    return vpoly<A>(p.p0, p.n0, vsigmoid<A>(z));
  } else if constexpr (ACT == kActSwish) {
    const V s = vsigmoid<A>(z);
    return at::vec::fmadd(z, vpoly<A>(p.p0, p.n0, s), V(p.korder) * vpoly<A>(p.p1, p.n1, s));
  } else if constexpr (ACT == kActElu) {  // z >= 0 selects the constant: a NaN z takes e^z (NaN)
    return V::blendv(z.exp(), V(p.order == 1 ? A(1) : A(0)), z >= zero);
  } else if constexpr (ACT == kActSelu) {
    return V(A(kSeluLambda)) * V::blendv(V(A(kSeluAlpha)) * z.exp(), V(p.order == 1 ? A(1) : A(0)), z >= zero);
  } else {
    return zero;
  }
}

// f'(·) of a piecewise-linear activation (order 1) from v = z (FROM_Y false) or v = y·gain > 0.
template <typename A, int ACT, bool FROM_Y>
inline Vec<A> vd_pl(const ActParams<A>& p, Vec<A> v) {
  using V = Vec<A>;
  const V zero(A(0));
  if constexpr (FROM_Y) v = v * V(p.gain);
  if constexpr (ACT == kActRelu) {
    return V::blendv(zero, V(A(1)), v > zero);
  } else if constexpr (ACT == kActLrelu) {
    return V::blendv(V(p.alpha), V(A(1)), v > zero);
  } else {
    return V(A(1));
  }
}

// val·[|y0| < clamp] (act_masked): a multiplication, so a NaN val stays NaN where y0 is clamped.
template <typename A>
inline Vec<A> vclamp_mask(A clamp, Vec<A> val, Vec<A> y0) {
  using V = Vec<A>;
  const V c(clamp), nc(-clamp);
  return val * V::blendv(V(A(0)), V(A(1)), (y0 < c) & (y0 > nc));
}

// f(j, r) for the vectors of a block of n elements (cpu_utils.h for_blocks, no streaming): full
// vectors (r = K, a constant once inlined: plain loads/stores), then one masked tail (r < K).
template <typename A, typename F>
inline void for_vectors(int64_t n, F&& f) {
  for_blocks<Vec<A>::size()>(n, -1, [&](int64_t j, int r, bool) { f(j, r); });
}

// z = x + b for a block: b is one value (bst == 0) or a contiguous vector.
template <typename A>
inline const A* add_bias(const A* x, const A* b, int64_t bst, int64_t n, A* zbuf) {
  if (b == nullptr) return x;
  if (bst == 0) {
    const Vec<A> bv(b[0]);
    for_vectors<A>(n, [&](int64_t j, int64_t r) { vstore<A>(zbuf + j, vload<A>(x + j, r) + bv, r); });
  } else {
    for_vectors<A>(n, [&](int64_t j, int64_t r) { vstore<A>(zbuf + j, vload<A>(x + j, r) + vload<A>(b + j, r), r); });
  }
  return zbuf;
}

// ------------------------------------------------------------------------------------ checks

struct BiasInfo {
  bool has = false;
  int64_t dim = 0;
};

BiasInfo check_bias(const std::optional<at::Tensor>& b, at::IntArrayRef shape, int64_t dim, const char* op) {
  BiasInfo bi;
  if (!b.has_value()) return bi;
  check_cpu(*b, "b");
  check_float(*b, "b");
  const int64_t D = static_cast<int64_t>(shape.size());
  TORCH_CHECK(dim >= 0 && dim < D, op, ": dim must be in [0, ", D, ") for an input of shape ", shape, ", got ", dim);
  TORCH_CHECK(b->dim() == 1 && b->size(0) == shape[dim], op, ": b must be 1-D of size x.shape[", dim, "] = ",
              shape[dim], ", got shape ", b->sizes());
  bi.has = true;
  bi.dim = dim;
  return bi;
}

// The bias as a contiguous vector of A and its virtual strides (1 along dim, 0 elsewhere).
template <typename A>
std::vector<A> bias_values(const std::optional<at::Tensor>& b) {
  std::vector<A> v;
  if (!b.has_value()) return v;
  const at::Tensor bc = b->to(std::is_same_v<A, double> ? at::kDouble : at::kFloat).contiguous();
  v.assign(bc.const_data_ptr<A>(), bc.const_data_ptr<A>() + bc.numel());
  return v;
}

std::vector<int64_t> bias_strides(const BiasInfo& bi, int64_t D) {
  std::vector<int64_t> s(D, 0);
  if (bi.has) s[bi.dim] = 1;
  return s;
}


template <typename F>
void dispatch_act(int64_t act, F&& f) {
  switch (act) {
    case kActLinear:
      return f(std::integral_constant<int, kActLinear>{});
    case kActRelu:
      return f(std::integral_constant<int, kActRelu>{});
    case kActLrelu:
      return f(std::integral_constant<int, kActLrelu>{});
    case kActTanh:
      return f(std::integral_constant<int, kActTanh>{});
    case kActSigmoid:
      return f(std::integral_constant<int, kActSigmoid>{});
    case kActElu:
      return f(std::integral_constant<int, kActElu>{});
    case kActSelu:
      return f(std::integral_constant<int, kActSelu>{});
    case kActSoftplus:
      return f(std::integral_constant<int, kActSoftplus>{});
    default:
      return f(std::integral_constant<int, kActSwish>{});
  }
}

// --------------------------------------------------------------------------------- bias_act

template <typename A, int ACT>
void bias_act_run(const EwIter& it, const Operand& x, const A* bvals, void* out, at::ScalarType odt,
                  const ActParams<A>& p) {
  const bool clamp = p.clamp >= A(0);
  const Vec<A> gain(p.gain), c(p.clamp), nc(-p.clamp);
  const int64_t ntiles = ceil_div(it.numel, kEwTile);
  parallel_tiles(ntiles, it.numel * 4, [&](int64_t lo, int64_t hi) {
    const ActParams<A> pl = p;  // locals: the masked stores (memcpy) would force reloads of captured ones
    const bool do_clamp = clamp;
    alignas(64) A xbuf[kBlk], zbuf[kBlk], obuf[kBlk];
    for (int64_t t = lo; t < hi; ++t) {
      for_runs(it, t * kEwTile, std::min(it.numel, (t + 1) * kEwTile), [&](const int64_t* off, const int64_t* st,
                                                                              int64_t len) {
        for (int64_t i = 0; i < len; i += kBlk) {
          const int64_t n = std::min(kBlk, len - i);
          const A* xp = load_in<A>(x, off[2] + i * st[2], st[2], n, xbuf);
          const A* zp = add_bias<A>(xp, bvals ? bvals + off[1] + i * st[1] : nullptr, st[1], n, zbuf);
          A* op = out_ptr<A>(out, odt, off[0] + i * st[0], st[0], obuf);
          auto at_j = [&](int64_t j, int64_t r) {
            Vec<A> y = vf<A, ACT>(pl, vload<A>(zp + j, r)) * gain;
            if (do_clamp) y = at::vec::clamp(y, nc, c);
            vstore<A>(op + j, y, r);
          };
          for_vectors<A>(n, at_j);
          store_out<A>(op, out, odt, off[0] + i * st[0], st[0], n);
        }
      });
    }
  });
}

at::Tensor bias_act(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim, int64_t act, double alpha,
                    double gain, double clamp) {
  check_cpu(x, "x");
  check_float(x, "x");
  check_act(act, clamp, "bias_act");
  const BiasInfo bi = check_bias(b, x.sizes(), dim, "bias_act");
  at::Tensor out = new_output_like(x);
  if (x.numel() == 0) return out;
  const int64_t D = x.dim();
  const EwIter it = make_iter(x.sizes(), {out.strides().vec(), bias_strides(bi, D), x.strides().vec()});
  // math in float32, float64 when x or b is float64 (the accumulation rule)
  const bool dbl = x.scalar_type() == at::kDouble || (b.has_value() && b->scalar_type() == at::kDouble);
  const Operand xo{x.const_data_ptr(), x.scalar_type()};
  auto run = [&](auto tag) {
    using A = decltype(tag);
    const auto p = make_act_params<A>(static_cast<int>(act), 0, alpha, gain, clamp);
    const std::vector<A> bv = bias_values<A>(b);
    dispatch_act(act, [&](auto ac) {
      bias_act_run<A, decltype(ac)::value>(it, xo, bi.has ? bv.data() : nullptr, out.data_ptr(), out.scalar_type(),
                                           p);
    });
  };
  if (dbl) run(double(0));
  else run(float(0));
  return out;
}

// ---------------------------------------------------------------------------- bias_act_grad

// Operand slots of the grad iteration: 0 out, 1 b (virtual), 2 x, 3 y, 4.. mults.
template <typename A, int ACT>
void bias_act_grad_run(const EwIter& it, const Operand& x, bool has_x, const A* bvals, const Operand& y, bool has_y,
                       const std::vector<Operand>& mults, void* out, at::ScalarType odt, const ActParams<A>& p) {
  constexpr bool smooth = !act_piecewise_linear(ACT);
  const bool clamp = p.clamp >= A(0);
  const bool need_z = smooth || (has_x && ACT != kActLinear) || (clamp && !has_y);
  const bool need_y = has_y && (clamp || (!has_x && ACT != kActLinear));
  const int nm = static_cast<int>(mults.size());
  const Vec<A> gain(p.gain);
  const int64_t ntiles = ceil_div(it.numel, kEwTile);
  parallel_tiles(ntiles, it.numel * (2 + nm), [&](int64_t lo, int64_t hi) {
    // locals: the masked stores (memcpy) would force reloads of captured flags in the inner loop
    const ActParams<A> pl = p;
    const bool l_need_z = need_z, l_has_x = has_x, l_has_y = has_y, l_clamp = clamp;
    const int l_nm = nm;
    std::vector<A> bufs(static_cast<size_t>(kBlk) * (4 + nm));
    A* xbuf = bufs.data();
    A* zbuf = xbuf + kBlk;
    A* ybuf = zbuf + kBlk;
    A* obuf = ybuf + kBlk;
    std::vector<const A*> mp(nm);
    for (int64_t t = lo; t < hi; ++t) {
      for_runs(it, t * kEwTile, std::min(it.numel, (t + 1) * kEwTile), [&](const int64_t* off, const int64_t* st,
                                                                              int64_t len) {
        for (int64_t i = 0; i < len; i += kBlk) {
          const int64_t n = std::min(kBlk, len - i);
          const A* zp = nullptr;
          if (need_z) {
            const A* xp = load_in<A>(x, off[2] + i * st[2], st[2], n, xbuf);
            zp = add_bias<A>(xp, bvals ? bvals + off[1] + i * st[1] : nullptr, st[1], n, zbuf);
          }
          const A* yp = need_y ? load_in<A>(y, off[3] + i * st[3], st[3], n, ybuf) : nullptr;
          for (int m = 0; m < nm; ++m)
            mp[m] = load_in<A>(mults[m], off[4 + m] + i * st[4 + m], st[4 + m], n, obuf + kBlk * (1 + m));
          A* op = out_ptr<A>(out, odt, off[0] + i * st[0], st[0], obuf);
          const A* m0 = mp[0];
          auto at_j = [&](int64_t j, int64_t r) {
            Vec<A> pr = vload<A>(m0 + j, r);
            for (int m = 1; m < l_nm; ++m) pr = pr * vload<A>(mp[m] + j, r);
            Vec<A> z;
            if (l_need_z) z = vload<A>(zp + j, r);
            Vec<A> d;
            if constexpr (smooth) {
              d = vd<A, ACT>(pl, z);
            } else if (pl.order != 1) {
              d = Vec<A>(A(0));  // piecewise linear: f^(k) = 0 for k >= 2 (still times Π mults: NaN stays)
            } else if (l_has_x) {
              d = vd_pl<A, ACT, false>(pl, z);
            } else {
              d = ACT == kActLinear ? Vec<A>(A(1)) : vd_pl<A, ACT, true>(pl, vload<A>(yp + j, r));
            }
            Vec<A> val = pr * (gain * d);
            if (l_clamp) {
              val = l_has_y ? vclamp_mask<A>(pl.clamp_y, val, vload<A>(yp + j, r))
                            : vclamp_mask<A>(pl.clamp, val, vf<A, ACT>(pl, z) * gain);
            }
            vstore<A>(op + j, val, r);
          };
          for_vectors<A>(n, at_j);
          store_out<A>(op, out, odt, off[0] + i * st[0], st[0], n);
        }
      });
    }
  });
}

at::Tensor bias_act_grad(const std::optional<at::Tensor>& x, const std::optional<at::Tensor>& b,
                         const std::optional<at::Tensor>& y, at::TensorList mults, int64_t dim, int64_t act,
                         double alpha, double gain, double clamp, int64_t order) {
  check_act(act, clamp, "bias_act_grad");
  TORCH_CHECK(order >= 1, "bias_act_grad: order must be >= 1, got ", order);
  TORCH_CHECK(order <= kMaxActOrder, "bias_act_grad: derivatives of order > ", kMaxActOrder,
              " are not supported (got order ", order, ")");
  TORCH_CHECK(!mults.empty(), "bias_act_grad: mults must be a non-empty list of tensors");
  const at::Tensor& m0 = mults[0];
  for (size_t i = 0; i < mults.size(); ++i) {
    const std::string name = "mults[" + std::to_string(i) + "]";
    check_cpu(mults[i], name.c_str());
    check_float(mults[i], name.c_str());
    TORCH_CHECK(mults[i].sizes() == m0.sizes(), "bias_act_grad: ", name, " must have the shape of mults[0] ",
                m0.sizes(), ", got ", mults[i].sizes());
  }
  const bool smooth = !act_piecewise_linear(static_cast<int>(act));
  for (const auto& [t, name] : {std::pair{&x, "x"}, std::pair{&y, "y"}}) {
    if (!t->has_value()) continue;
    check_cpu(**t, name);
    check_float(**t, name);
    TORCH_CHECK((*t)->sizes() == m0.sizes(), "bias_act_grad: ", name, " must have the shape of mults[0] ",
                m0.sizes(), ", got ", (*t)->sizes());
  }
  TORCH_CHECK(!smooth || x.has_value(), "bias_act_grad: x is required for a smooth activation (act=", act, ")");
  TORCH_CHECK(x.has_value() || y.has_value() || (act == kActLinear && clamp < 0),
              "bias_act_grad: x or y is required (act=", act, ", clamp=", clamp, ")");
  const BiasInfo bi = x.has_value() ? check_bias(b, m0.sizes(), dim, "bias_act_grad") : BiasInfo{};
  at::Tensor out = new_output_like(m0);
  if (out.numel() == 0) return out;

  bool dbl = m0.scalar_type() == at::kDouble;
  for (const auto& t : mults) dbl = dbl || t.scalar_type() == at::kDouble;
  for (const auto* t : {&x, &b, &y}) dbl = dbl || (t->has_value() && (*t)->scalar_type() == at::kDouble);

  const int64_t D = m0.dim();
  std::vector<std::vector<int64_t>> st{out.strides().vec(), bias_strides(bi, D),
                                       x ? x->strides().vec() : std::vector<int64_t>(D, 0),
                                       y ? y->strides().vec() : std::vector<int64_t>(D, 0)};
  std::vector<Operand> mo;
  for (const auto& t : mults) {
    st.push_back(t.strides().vec());
    mo.push_back({t.const_data_ptr(), t.scalar_type()});
  }
  TORCH_CHECK(st.size() <= 16, "bias_act_grad: at most 12 multipliers are supported, got ", mults.size());
  const EwIter it = make_iter(m0.sizes(), st);
  const Operand xo{x ? x->const_data_ptr() : nullptr, x ? x->scalar_type() : at::kFloat};
  const Operand yo{y ? y->const_data_ptr() : nullptr, y ? y->scalar_type() : at::kFloat};
  auto run = [&](auto tag) {
    using A = decltype(tag);
    auto p = make_act_params<A>(static_cast<int>(act), static_cast<int>(order), alpha, gain, clamp);
    if (y.has_value() && clamp >= 0) p.clamp_y = static_cast<A>(clamp_in_dtype(clamp, y->scalar_type()));
    const std::vector<A> bv = bias_values<A>(bi.has ? b : std::nullopt);
    dispatch_act(act, [&](auto ac) {
      bias_act_grad_run<A, decltype(ac)::value>(it, xo, x.has_value(), bi.has ? bv.data() : nullptr, yo,
                                                y.has_value(), mo, out.data_ptr(), out.scalar_type(), p);
    });
  };
  if (dbl) run(double(0));
  else run(float(0));
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("bias_act", &ganreg::cpu::bias_act);
  m.impl("bias_act_grad", &ganreg::cpu::bias_act_grad);
}
