// CUDA kernels of the gradient-norm family (sqnorm, scale, dot) and the shared multi-tensor
// reduction: FIXED tiles of kChunk elements (split-K for large samples, one warp per small sample)
// write partials [B][P] (P = partials per sample over the whole list), one launch per dtype group
// over descriptor tables passed by value; a fixed-order finalize applies weight and the reduction.
#include <torch/library.h>

#include <sstream>
#include <string>

#include "cuda/cuda_utils.cuh"

namespace ganreg {

#ifndef GANREG_CUDA_EMU
std::string cuda_build_info() {
  std::ostringstream s;
  s << "\"cuda_version\": \"" << __CUDACC_VER_MAJOR__ << "." << __CUDACC_VER_MINOR__ << "\", \"cuda_arch_list\": [";
#ifdef __CUDA_ARCH_LIST__
  const int archs[] = {__CUDA_ARCH_LIST__};
  for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); ++i) s << (i ? ", " : "") << archs[i];
#endif
  s << "]";
  return s.str();
}
#endif

namespace cuda {
namespace {

template <int MODE, typename A>
__device__ __forceinline__ A term(A x, A y, A inv) {
  if constexpr (MODE == kSq) {
    const A t = x * inv;
    return t * t;
  } else if constexpr (MODE == kDot) {
    return x * y;
  } else if constexpr (MODE == kSqDiff) {
    const A d = x - y;
    return d * d;
  } else {
    return x;
  }
}

// This thread's share (index t of nt) of Σ term over elements [s, e) of sample b. Every element is
// converted to the accumulation type A before the arithmetic (TX, TY: storage types of x, y).
template <typename TX, typename TY, typename A, int MODE>
__device__ __forceinline__ A range_sum(const TDesc& d, int64_t b, int64_t s, int64_t e, int t, int nt, A inv) {
  constexpr bool two = MODE == kDot || MODE == kSqDiff;
  const Plan& p = d.plan;
  const TX* x = static_cast<const TX*>(d.x) + b * p.bstride[0];
  const TY* y = two ? static_cast<const TY*>(d.y) + b * p.bstride[1] : nullptr;
  A acc = A(0);
  if (plan_dense(p, 0) && (!two || plan_dense(p, 1))) {
    x += s;
    if (two) y += s;
    const int64_t len = e - s;
    // vectors of N elements: 16-byte loads of the wider operand
    constexpr int N = static_cast<int>(16 / (sizeof(TX) > sizeof(TY) ? sizeof(TX) : sizeof(TY)));
    using VX = Vec<TX, N>;
    using VY = Vec<TY, N>;
    int64_t i0 = 0;
    if (aligned_for<VX>(x) && (!two || aligned_for<VY>(y))) {
      const int64_t nv = len / N;
#pragma unroll 4  // several loads in flight per thread; the order of the adds is unchanged
      for (int64_t v = t; v < nv; v += nt) {
        const VX px = reinterpret_cast<const VX*>(x)[v];
        if constexpr (two) {
          const VY py = reinterpret_cast<const VY*>(y)[v];
#pragma unroll
          for (int k = 0; k < N; ++k) acc += term<MODE, A>(static_cast<A>(px.v[k]), static_cast<A>(py.v[k]), inv);
        } else {
#pragma unroll
          for (int k = 0; k < N; ++k) acc += term<MODE, A>(static_cast<A>(px.v[k]), A(0), inv);
        }
      }
      i0 = nv * N;
    }
    for (int64_t i = i0 + t; i < len; i += nt)
      acc += term<MODE, A>(static_cast<A>(x[i]), two ? static_cast<A>(y[i]) : A(0), inv);
  } else {
    for (int64_t i = s + t; i < e; i += nt)
      acc += term<MODE, A>(static_cast<A>(x[plan_offset(p, 0, i)]), two ? static_cast<A>(y[plan_offset(p, 1, i)]) : A(0),
                           inv);
  }
  return acc;
}

// parts[b·P + part + k] = wout · Σ term over unit (b, k). wout = 1, or the weight when the partial is
// the result (each row has one partial: no finalize).
template <typename TX, typename TY, typename A, int MODE>
__global__ void __launch_bounds__(kThreads)
    reduce_tiles_kernel(const __grid_constant__ Table tab, A* __restrict__ parts, int64_t P, Scalar inv_s, A wout) {
  const A inv = MODE == kSq ? inv_s.get<A>() : A(1);
  for (int64_t g = blockIdx.x; g < tab.ntiles; g += gridDim.x) {
    const TDesc& d = find_desc(tab, g);
    for_units(d, g - d.tile_begin, [&](int64_t b, int64_t k, int64_t s, int64_t e, int t, int nt, bool warp) {
      A v = range_sum<TX, TY, A, MODE>(d, b, s, e, t, nt, inv);
      v = warp ? warp_sum(v) : block_sum(v);
      if (t == 0) parts[b * P + d.part + k] = v * wout;
    });
  }
}

constexpr int kFinalThreads = 1024;

// kRedNone: out[b] = weight·Σ_j parts[b·P + j], one warp per row. Otherwise ONE block sums all B·P
// partials (fixed strided order, then a fixed tree): weight·Σ, or weight·(Σ/B) for kRedMean.
template <typename A>
__global__ void __launch_bounds__(kFinalThreads)
    finalize_kernel(const A* __restrict__ parts, int64_t B, int64_t P, int reduction, A weight, A* __restrict__ out) {
  if (reduction == kRedNone) {
    const int lane = threadIdx.x & 31;
    const int64_t nw = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
    for (int64_t b = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; b < B; b += nw) {
      A acc = A(0);
      for (int64_t j = lane; j < P; j += 32) acc += parts[b * P + j];
      acc = warp_sum(acc);
      if (lane == 0) out[b] = weight * acc;
    }
  } else {
    A acc = A(0);
    for (int64_t j = threadIdx.x; j < B * P; j += blockDim.x) acc += parts[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = reduction == kRedMean ? weight * (acc / static_cast<A>(B)) : weight * acc;
  }
}

template <int MODE>
at::Tensor multi_reduce_mode(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys, int64_t reduction,
                             double weight, const Scalar& inv, const char* what) {
  constexpr bool two = MODE == kDot || MODE == kSqDiff;
  TORCH_CHECK(reduction >= kRedNone && reduction <= kRedTotal, what,
              ": reduction must be 0 (none), 1 (sum), 2 (mean) or 3 (total), got ", reduction);
  TORCH_CHECK(!(MODE == kSqDiff || MODE == kSum) || xs.size() == 1, what, ": internal: one tensor expected");
  const bool per_sample = reduction != kRedTotal;
  const at::Device dev = xs[0].device();
  const bool dbl = any_double(xs, ys);
  const auto adt = dbl ? at::kDouble : at::kFloat;
  // descriptors in list order; P partials per row (K per sample of each tensor, tensor-major)
  std::vector<TDesc> ds(xs.size());
  int64_t P = 0;
  for (size_t t = 0; t < xs.size(); ++t) {
    TDesc& d = ds[t];
    d.plan = two ? make_plan({xs[t], ys[t]}, per_sample, true, what) : make_plan({xs[t]}, per_sample, true, what);
    d.x = xs[t].const_data_ptr();
    d.y = two ? ys[t].const_data_ptr() : nullptr;
    tile_desc(d);
    d.part = P;
    P += d.K;
  }
  const int64_t B = per_sample ? xs[0].size(0) : 1;
  at::Tensor out = new_output(reduction == kRedNone ? at::IntArrayRef({B}) : at::IntArrayRef({}), xs[0].options().dtype(adt));
  if (reduction == kRedNone && B == 0) return out;
  // each row has one partial: the tiles write weight·partial straight into out (one launch)
  const bool direct = reduction == kRedNone ? P == 1 : B * P == 1;
  at::Tensor parts = direct ? out : at::empty({std::max<int64_t>(B * P, 1)}, out.options());
  const int dev_index = dev.index();
  const auto stream = current_stream();
  // one tile launch per (x dtype, y dtype) group, all writing into `parts`
  std::vector<bool> done(xs.size(), false);
  for (size_t t0 = 0; t0 < xs.size(); ++t0) {
    if (done[t0]) continue;
    const auto sx = xs[t0].scalar_type(), sy = two ? ys[t0].scalar_type() : sx;
    std::vector<TDesc> group;
    for (size_t t = t0; t < xs.size(); ++t) {
      if (done[t] || xs[t].scalar_type() != sx || (two ? ys[t].scalar_type() : sx) != sy) continue;
      done[t] = true;
      if (ds[t].ntiles > 0) group.push_back(ds[t]);
    }
    // A: the list's accumulation type. Float64 storage only ever meets A = double; kSqDiff and kSum
    // reduce one tensor (pair), whose own rule gives A: other combinations are not compiled.
    auto launch_group = [&](auto tx, auto ty, auto acc) {
      using TX = typename decltype(tx)::type;
      using TY = typename decltype(ty)::type;
      using A = typename decltype(acc)::type;
      constexpr bool has_double = std::is_same_v<TX, double> || std::is_same_v<TY, double>;
      constexpr bool single = MODE == kSqDiff || MODE == kSum;
      if constexpr (single ? std::is_same_v<A, double> == has_double : std::is_same_v<A, double> || !has_double) {
        launch_tables(group, dev, [&](const Table& tab) {
          GANREG_LAUNCH(reduce_tiles_kernel<TX, TY, A, MODE>, grid_for(tab.ntiles, dev_index), kThreads, 0, stream.stream())(
              tab, parts.data_ptr<A>(), P, inv, static_cast<A>(direct ? weight : 1.0));
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      }
    };
    dispatch_float(sx, what, [&](auto tx) {
      dispatch_acc(dbl, [&](auto acc) {
        if constexpr (two) dispatch_float(sy, what, [&](auto ty) { launch_group(tx, ty, acc); });
        else launch_group(tx, tx, acc);
      });
    });
  }
  if (!direct) {
    const bool rows = reduction == kRedNone;
    dispatch_acc(dbl, [&](auto acc) {
      using A = typename decltype(acc)::type;
      GANREG_LAUNCH(finalize_kernel<A>, rows ? grid_for(ceil_div(B, kThreads / 32), dev_index) : 1, rows ? kThreads : kFinalThreads, 0, stream.stream())(parts.const_data_ptr<A>(), B, P, static_cast<int>(reduction),
                                                 static_cast<A>(weight), out.data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

// out = factor·coef_b·x in A, stored as T (the tensor's own dtype).
template <typename T, typename A>
__device__ __forceinline__ void scale_range(const TDesc& d, int64_t b, int64_t s, int64_t e, int t, int nt, A c) {
  const Plan& p = d.plan;
  const T* x = static_cast<const T*>(d.x) + b * p.bstride[0];
  T* o = static_cast<T*>(d.out) + b * p.bstride[1];
  if (plan_dense(p, 0) && plan_dense(p, 1)) {
    x += s;
    o += s;
    const int64_t len = e - s;
    constexpr int N = static_cast<int>(16 / sizeof(T));
    using V = Vec<T, N>;
    int64_t i0 = 0;
    if (aligned_for<V>(x) && aligned_for<V>(o)) {
      const int64_t nv = len / N;
#pragma unroll 4
      for (int64_t v = t; v < nv; v += nt) {
        V px = reinterpret_cast<const V*>(x)[v];
#pragma unroll
        for (int k = 0; k < N; ++k) px.v[k] = static_cast<T>(static_cast<A>(px.v[k]) * c);
        reinterpret_cast<V*>(o)[v] = px;
      }
      i0 = nv * N;
    }
    for (int64_t i = i0 + t; i < len; i += nt) o[i] = static_cast<T>(static_cast<A>(x[i]) * c);
  } else {
    for (int64_t i = s + t; i < e; i += nt)
      o[plan_offset(p, 1, i)] = static_cast<T>(static_cast<A>(x[plan_offset(p, 0, i)]) * c);
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads)
    scale_tiles_kernel(const __grid_constant__ Table tab, Scalar coef, double factor) {
  for (int64_t g = blockIdx.x; g < tab.ntiles; g += gridDim.x) {
    const TDesc& d = find_desc(tab, g);
    for_units(d, g - d.tile_begin, [&](int64_t b, int64_t, int64_t s, int64_t e, int t, int nt, bool) {
      // factor·coef in double, then A (as the CPU kernel)
      scale_range<T, A>(d, b, s, e, t, nt, static_cast<A>(factor * coef.get<double>(b)));
    });
  }
}

void check_list(const std::vector<at::Tensor>& xs, const char* name, bool per_sample) {
  ganreg::check_list(xs, name, per_sample, [&](const at::Tensor& x) {
    check_cuda_tensor(x, name);
    TORCH_CHECK(x.device() == xs[0].device(), name, ": all tensors must be on one device, got ", xs[0].device(),
                " and ", x.device());
  });
}

// inv_scale: None → 1; a CPU scalar is read on the host (no device sync); a scalar on the grads'
// device is read inside the kernel.
at::Tensor sqnorm(at::TensorList grads, const std::optional<at::Tensor>& inv_scale, double weight, int64_t reduction) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", reduction != kRedTotal);
  DeviceGuard guard(xs[0].device());
  Scalar inv;
  if (inv_scale.has_value() && inv_scale->defined()) {
    const at::Tensor& s = *inv_scale;
    TORCH_CHECK(s.numel() == 1, "sqnorm: inv_scale must be a 0-d tensor, got shape ", s.sizes());
    TORCH_CHECK(s.is_floating_point(), "sqnorm: inv_scale must be a floating-point tensor, got ", s.scalar_type());
    if (s.is_cpu()) {
      inv.value = s.item<double>();
    } else {
      TORCH_CHECK(s.device() == xs[0].device(), "sqnorm: inv_scale must be on the CPU or on the device of grads (",
                  xs[0].device(), "), got one on ", s.device());
      check_cuda_tensor(s, "inv_scale");
      inv = device_scalar(s);
    }
  }
  return multi_reduce(kSq, xs, {}, reduction, weight, inv, "sqnorm");
}

at::Tensor dot(at::TensorList a, at::TensorList b, bool per_sample) {
  std::vector<at::Tensor> xs(a.begin(), a.end()), ys(b.begin(), b.end());
  check_list(xs, "a", per_sample);
  check_list(ys, "b", per_sample);
  TORCH_CHECK(ys[0].device() == xs[0].device(), "dot: a and b must be on one device, got a on ", xs[0].device(),
              " and b on ", ys[0].device());
  check_paired(xs, ys);
  DeviceGuard guard(xs[0].device());
  return multi_reduce(kDot, xs, ys, per_sample ? kRedNone : kRedTotal, 1.0, Scalar{}, "dot");
}

std::vector<at::Tensor> scale(at::TensorList grads, const at::Tensor& coef, double factor, bool per_sample) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", per_sample);
  const at::Device dev = xs[0].device();
  TORCH_CHECK(coef.device() == dev, "scale: coef must be on ", dev, ", got ", coef.device());
  check_cuda_tensor(coef, "coef");
  const int64_t B = per_sample ? xs[0].size(0) : 1;
  TORCH_CHECK(coef.numel() == B, "scale: coef must have ", B, " element(s), got shape ", coef.sizes());
  DeviceGuard guard(dev);
  const bool dbl = any_double(xs);
  const at::Tensor c = coef.dim() <= 1 ? coef : coef.reshape({-1});  // [B] of any stride (expanded too)
  const Scalar cs = device_scalar(c);
  std::vector<at::Tensor> outs;
  std::vector<TDesc> ds(xs.size());
  for (size_t t = 0; t < xs.size(); ++t) {
    outs.push_back(new_output_like(xs[t]));
    ds[t].plan = make_plan({xs[t], outs.back()}, per_sample, true, "scale");
    ds[t].x = xs[t].const_data_ptr();
    ds[t].out = outs.back().data_ptr();
    tile_desc(ds[t]);
  }
  const int dev_index = dev.index();
  const auto stream = current_stream();
  std::vector<bool> done(xs.size(), false);
  for (size_t t0 = 0; t0 < xs.size(); ++t0) {  // one launch per dtype group: outputs in their own dtype
    if (done[t0]) continue;
    const auto st = xs[t0].scalar_type();
    std::vector<TDesc> group;
    for (size_t t = t0; t < xs.size(); ++t) {
      if (done[t] || xs[t].scalar_type() != st) continue;
      done[t] = true;
      if (ds[t].ntiles > 0) group.push_back(ds[t]);
    }
    dispatch_float(st, "scale", [&](auto tag) {
      using T = typename decltype(tag)::type;
      dispatch_acc(dbl, [&](auto atag) {
        using A = typename decltype(atag)::type;
        if constexpr (std::is_same_v<A, double> || !std::is_same_v<T, double>) {
          launch_tables(group, dev, [&](const Table& tab) {
            GANREG_LAUNCH(scale_tiles_kernel<T, A>, grid_for(tab.ntiles, dev_index), kThreads, 0, stream.stream())(tab, cs, factor);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          });
        }
      });
    });
  }
  return outs;
}

}  // namespace

at::Tensor multi_reduce(int mode, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys,
                        int64_t reduction, double weight, const Scalar& inv, const char* what) {
  switch (mode) {
    case kSq:
      return multi_reduce_mode<kSq>(xs, ys, reduction, weight, inv, what);
    case kDot:
      return multi_reduce_mode<kDot>(xs, ys, reduction, weight, inv, what);
    case kSqDiff:
      return multi_reduce_mode<kSqDiff>(xs, ys, reduction, weight, inv, what);
    default:
      return multi_reduce_mode<kSum>(xs, ys, reduction, weight, inv, what);
  }
}

}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("sqnorm", &ganreg::cuda::sqnorm);
  m.impl("scale", &ganreg::cuda::scale);
  m.impl("dot", &ganreg::cuda::dot);
}
