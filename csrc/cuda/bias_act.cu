// CUDA kernels of the bias_act family (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d; math in common/bias_act.h):
//   bias_act(x, b, dim, act, alpha, gain, clamp)            y = clamp(gain·f(x + b))
//   bias_act_grad(x, b, y, mults, dim, act, ..., order)     Π mults · gain · f^(order)(x + b) · [|y0| < clamp]
// One flat, coalesced pass over the output's memory (the output is `empty_like`: dense layouts such
// as channels_last are kept). Operands with the output's strides are read in place, each in its own
// dtype; an operand with other strides (a rare mix of layouts, or a non-dense view) is first copied
// into the output's layout. The bias index of memory element i is (i / stride_dim) % size_dim, with
// 32-bit multiply-shift division when the tensor has < 2^31 elements (kIndex32Limit). Per-call constants (the
// derivative polynomials) are computed on the host and passed by value: no host sync, no upload.
#include <torch/library.h>

#include <string>

#include "common/bias_act.h"
#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

constexpr int kMaxMults = 8;

// Division by a runtime constant d >= 1: q = (umulhi(n, m) + n) >> s with s = ceil(log2 d) and
// m = floor(2^32·(2^s − d)/d) + 1 (Granlund–Montgomery), exact for n < 2^31.
template <typename I>
struct Divider {
  I d = 1;
  explicit Divider(I d_ = 1) : d(d_) {}
  __device__ __forceinline__ I div(I n) const { return n / d; }
};
template <>
struct Divider<uint32_t> {
  uint32_t d = 1, m = 1;
  int s = 0;
  explicit Divider(uint32_t d_ = 1) : d(d_) {
    s = 0;
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

// dtype codes of the operands (read element by element, warp-uniform switch)
enum Kind : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

inline int kind_of(at::ScalarType s) {
  return s == at::kDouble ? kF64 : s == at::kHalf ? kF16 : s == at::kBFloat16 ? kBF16 : kF32;
}

template <typename A, typename I>
__device__ __forceinline__ A ld(const void* p, int k, I i) {
  switch (k) {
    case kF64:
      return static_cast<A>(static_cast<const double*>(p)[i]);
    case kF16:
      return static_cast<A>(static_cast<float>(static_cast<const at::Half*>(p)[i]));
    case kBF16:
      return static_cast<A>(static_cast<float>(static_cast<const at::BFloat16*>(p)[i]));
    default:
      return static_cast<A>(static_cast<const float*>(p)[i]);
  }
}

template <typename A, typename I>
__device__ __forceinline__ void st(void* p, int k, I i, A v) {
  switch (k) {
    case kF64:
      static_cast<double*>(p)[i] = static_cast<double>(v);
      return;
    case kF16:
      static_cast<at::Half*>(p)[i] = at::Half(static_cast<float>(v));
      return;
    case kBF16:
      static_cast<at::BFloat16*>(p)[i] = at::BFloat16(static_cast<float>(v));
      return;
    default:
      static_cast<float*>(p)[i] = static_cast<float>(v);
  }
}

// Everything a launch needs, by value (a few hundred bytes; __grid_constant__ in the kernels: read
// in place from the parameter space, never copied to local memory).
template <typename A, typename I>
struct EwArgs {
  const void* x = nullptr;
  const void* y = nullptr;
  const void* m[kMaxMults] = {};
  const A* b = nullptr;  // contiguous, math type; nullptr: no bias
  void* out = nullptr;
  int xk = 0, yk = 0, ok = 0, nm = 0;
  int mk[kMaxMults] = {};
  bool has_x = false, has_y = false, need_z = false, need_y = false;
  I n = 0;
  I bsz = 1;  // b index of memory element i: (i / bsd) % bsz
  Divider<I> bsd{1}, bszd{1};
};

template <typename A, typename I>
__device__ __forceinline__ A bias_at(const EwArgs<A, I>& a, I i) {
  const I q = a.bsd.div(i);
  return a.b[q - a.bszd.div(q) * a.bsz];
}

template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) bias_act_kernel(const __grid_constant__ EwArgs<A, I> a,
                                                            const __grid_constant__ ActParams<A> p) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    A z = ld<A>(a.x, a.xk, i);
    if (a.b != nullptr) z += bias_at(a, i);
    st<A>(a.out, a.ok, i, act_forward<A>(p, z));
  }
}

template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) bias_act_grad_kernel(const __grid_constant__ EwArgs<A, I> a,
                                                                 const __grid_constant__ ActParams<A> p) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  const bool smooth = !act_piecewise_linear(p.act);
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    A pr = ld<A>(a.m[0], a.mk[0], i);
#pragma unroll
    for (int k = 1; k < kMaxMults; ++k)  // constant indices: the pointers stay in the kernel parameters
      if (k < a.nm) pr *= ld<A>(a.m[k], a.mk[k], i);
    A z = A(0);
    if (a.need_z) {
      z = ld<A>(a.x, a.xk, i);
      if (a.b != nullptr) z += bias_at(a, i);
    }
    const A yv = a.need_y ? ld<A>(a.y, a.yk, i) : A(0);
    A d;
    if (smooth) d = act_deriv_smooth<A>(p, z);
    else if (a.has_x) d = act_deriv_pl_z<A>(p, z);
    else d = act_deriv_pl_y<A>(p, yv);
    A v = pr * (p.gain * d);
    if (p.clamp >= A(0))  // the mask multiplies (NaN·0 = NaN, docs/semantics.md)
      v = a.has_y ? act_masked<A>(p, v, yv, p.clamp_y) : act_masked<A>(p, v, act_f<A>(p, z) * p.gain, p.clamp);
    st<A>(a.out, a.ok, i, v);
  }
}

// ------------------------------------------------------------------------------------ host side

void check_on(const at::Tensor& t, const at::Tensor& ref, const char* name) {
  check_cuda_tensor(t, name);
  TORCH_CHECK(t.device() == ref.device(), name, " must be on ", ref.device(), ", got ", t.device());
}

// t with the strides of out (out is dense): t itself when it already has them, else a copy into
// out's layout (t's dtype kept).
at::Tensor like_out(const at::Tensor& t, const at::Tensor& out) {
  bool same = true;
  for (int64_t d = 0; d < out.dim() && same; ++d) same = out.size(d) == 1 || t.stride(d) == out.stride(d);
  if (same) return t;
  at::Tensor c = at::empty_like(out, t.options());
  c.copy_(t);
  return c;
}


struct BiasArg {
  at::Tensor vals;  // contiguous, math dtype (kept alive for the launch)
  int64_t sd = 1, sz = 1;
};

BiasArg bias_arg(const std::optional<at::Tensor>& b, const at::Tensor& ref, const at::Tensor& out, int64_t dim,
                 bool dbl, const char* op) {
  BiasArg ba;
  if (!b.has_value()) return ba;
  check_on(*b, ref, "b");
  const int64_t D = ref.dim();
  TORCH_CHECK(dim >= 0 && dim < D, op, ": dim must be in [0, ", D, ") for an input of shape ", ref.sizes(), ", got ",
              dim);
  TORCH_CHECK(b->dim() == 1 && b->size(0) == ref.size(dim), op, ": b must be 1-D of size x.shape[", dim, "] = ",
              ref.size(dim), ", got shape ", b->sizes());
  ba.vals = b->to(dbl ? at::kDouble : at::kFloat).contiguous();
  ba.sz = ref.size(dim);
  ba.sd = ba.sz == 1 ? 1 : out.stride(dim);
  return ba;
}

template <typename A, typename I, typename F>
void launch(EwArgs<A, I>& a, const BiasArg& ba, int64_t n, int device, F&& kernel_launch) {
  a.n = static_cast<I>(n);
  a.b = ba.vals.defined() ? ba.vals.const_data_ptr<A>() : nullptr;
  a.bsz = static_cast<I>(ba.sz);
  a.bsd = Divider<I>(static_cast<I>(ba.sd));
  a.bszd = Divider<I>(static_cast<I>(ba.sz));
  const int grid = grid_for(n / kThreads + 1, device, 16);
  kernel_launch(grid);
}

at::Tensor bias_act(const at::Tensor& x0, const std::optional<at::Tensor>& b, int64_t dim, int64_t act, double alpha,
                    double gain, double clamp) {
  check_cuda_tensor(x0, "x");
  check_act(act, clamp, "bias_act");
  DeviceGuard guard(x0.device());
  at::Tensor out = new_output_like(x0);
  // math in float32, float64 when x or b is float64 (the accumulation rule)
  const bool dbl = x0.scalar_type() == at::kDouble || (b.has_value() && b->scalar_type() == at::kDouble);
  const BiasArg ba = bias_arg(b, x0, out, dim, dbl, "bias_act");
  const int64_t n = out.numel();
  if (n == 0) return out;
  const at::Tensor x = like_out(x0, out);
  const auto stream = current_stream();
  auto run = [&](auto atag, auto itag) {
    using A = decltype(atag);
    using I = decltype(itag);
    EwArgs<A, I> a;
    a.x = x.const_data_ptr();
    a.xk = kind_of(x.scalar_type());
    a.out = out.data_ptr();
    a.ok = kind_of(out.scalar_type());
    const auto p = make_act_params<A>(static_cast<int>(act), 0, alpha, gain, clamp);
    launch<A, I>(a, ba, n, x.get_device(), [&](int grid) {
      GANREG_LAUNCH(bias_act_kernel<A, I>, grid, kThreads, 0, stream.stream())(a, p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  };
  const bool small = n < kIndex32Limit;
  if (dbl) {
    if (small) run(double(0), uint32_t(0));
    else run(double(0), int64_t(0));
  } else {
    if (small) run(float(0), uint32_t(0));
    else run(float(0), int64_t(0));
  }
  return out;
}

at::Tensor bias_act_grad(const std::optional<at::Tensor>& x0, const std::optional<at::Tensor>& b,
                         const std::optional<at::Tensor>& y0, at::TensorList mults0, int64_t dim, int64_t act,
                         double alpha, double gain, double clamp, int64_t order) {
  check_act(act, clamp, "bias_act_grad");
  TORCH_CHECK(order >= 1, "bias_act_grad: order must be >= 1, got ", order);
  TORCH_CHECK(order <= kMaxActOrder, "bias_act_grad: derivatives of order > ", kMaxActOrder,
              " are not supported (got order ", order, ")");
  TORCH_CHECK(!mults0.empty(), "bias_act_grad: mults must be a non-empty list of tensors");
  const at::Tensor& m0 = mults0[0];
  check_cuda_tensor(m0, "mults[0]");
  for (size_t i = 1; i < mults0.size(); ++i) {
    const std::string name = "mults[" + std::to_string(i) + "]";
    check_on(mults0[i], m0, name.c_str());
    TORCH_CHECK(mults0[i].sizes() == m0.sizes(), "bias_act_grad: ", name, " must have the shape of mults[0] ",
                m0.sizes(), ", got ", mults0[i].sizes());
  }
  for (const auto& [t, name] : {std::pair{&x0, "x"}, std::pair{&y0, "y"}}) {
    if (!t->has_value()) continue;
    check_on(**t, m0, name);
    TORCH_CHECK((*t)->sizes() == m0.sizes(), "bias_act_grad: ", name, " must have the shape of mults[0] ",
                m0.sizes(), ", got ", (*t)->sizes());
  }
  const bool smooth = !act_piecewise_linear(static_cast<int>(act));
  TORCH_CHECK(!smooth || x0.has_value(), "bias_act_grad: x is required for a smooth activation (act=", act, ")");
  TORCH_CHECK(x0.has_value() || y0.has_value() || (act == kActLinear && clamp < 0),
              "bias_act_grad: x or y is required (act=", act, ", clamp=", clamp, ")");
  DeviceGuard guard(m0.device());
  at::Tensor out = new_output_like(m0);
  const int64_t n = out.numel();
  bool dbl = false;
  for (const auto& t : mults0) dbl = dbl || t.scalar_type() == at::kDouble;
  for (const auto* t : {&x0, &b, &y0}) dbl = dbl || (t->has_value() && (*t)->scalar_type() == at::kDouble);
  const BiasArg ba = x0.has_value() ? bias_arg(b, m0, out, dim, dbl, "bias_act_grad") : BiasArg{};
  if (n == 0) return out;

  const bool has_x = x0.has_value(), has_y = y0.has_value(), cl = clamp >= 0;
  const bool need_z = smooth || (has_x && act != kActLinear) || (cl && !has_y);
  const bool need_y = has_y && (cl || (!has_x && act != kActLinear));
  const at::Tensor x = need_z ? like_out(*x0, out) : at::Tensor();
  const at::Tensor y = need_y ? like_out(*y0, out) : at::Tensor();
  std::vector<at::Tensor> mults;
  for (const auto& t : mults0) mults.push_back(like_out(t, out));
  if (mults.size() > static_cast<size_t>(kMaxMults)) {  // fold the extra multipliers (math dtype)
    at::Tensor rest = mults[kMaxMults - 1].to(dbl ? at::kDouble : at::kFloat);
    for (size_t k = kMaxMults; k < mults.size(); ++k) rest = rest * mults[k];
    mults.resize(kMaxMults - 1);
    mults.push_back(like_out(rest, out));
  }
  const auto stream = current_stream();
  auto run = [&](auto atag, auto itag) {
    using A = decltype(atag);
    using I = decltype(itag);
    EwArgs<A, I> a;
    if (need_z) {
      a.x = x.const_data_ptr();
      a.xk = kind_of(x.scalar_type());
    }
    if (need_y) {
      a.y = y.const_data_ptr();
      a.yk = kind_of(y.scalar_type());
    }
    a.nm = static_cast<int>(mults.size());
    for (int k = 0; k < a.nm; ++k) {
      a.m[k] = mults[k].const_data_ptr();
      a.mk[k] = kind_of(mults[k].scalar_type());
    }
    a.out = out.data_ptr();
    a.ok = kind_of(out.scalar_type());
    a.has_x = has_x;
    a.has_y = has_y;
    a.need_z = need_z;
    a.need_y = need_y;
    auto p = make_act_params<A>(static_cast<int>(act), static_cast<int>(order), alpha, gain, clamp);
    if (has_y && cl) p.clamp_y = static_cast<A>(clamp_in_dtype(clamp, y0->scalar_type()));
    launch<A, I>(a, need_z ? ba : BiasArg{}, n, out.get_device(), [&](int grid) {
      GANREG_LAUNCH(bias_act_grad_kernel<A, I>, grid, kThreads, 0, stream.stream())(a, p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  };
  const bool small = n < kIndex32Limit;
  if (dbl) {
    if (small) run(double(0), uint32_t(0));
    else run(double(0), int64_t(0));
  } else {
    if (small) run(float(0), uint32_t(0));
    else run(float(0), int64_t(0));
  }
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("bias_act", &ganreg::cuda::bias_act);
  m.impl("bias_act_grad", &ganreg::cuda::bias_act_grad);
}
