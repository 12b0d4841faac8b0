// CUDA kernels of the gradient-norm family (sqnorm, scale, dot) and the shared multi-tensor
// reduction: one launch over a device-side descriptor table for the whole list, FIXED tiles of
// kChunk elements (split-K for large samples) writing partials, and a fixed-order second stage.
#include <torch/library.h>

#include <sstream>
#include <string>

#include "cuda/cuda_utils.cuh"

namespace ganreg {

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

namespace cuda {
namespace {

template <int MODE, typename A>
__device__ __forceinline__ A term(A x, A y, A inv) {
  if (MODE == kSq) {
    const A t = x * inv;
    return t * t;
  } else if (MODE == kDot) {
    return x * y;
  } else if (MODE == kSqDiff) {
    const A d = x - y;
    return d * d;
  } else {
    return x;
  }
}

// This thread's share of Σ term over elements [s, e) of sample b.
template <typename T, int MODE>
__device__ acc_t<T> range_sum(const TDesc& d, int64_t b, int64_t s, int64_t e, acc_t<T> inv) {
  using A = acc_t<T>;
  constexpr bool two = MODE == kDot || MODE == kSqDiff;
  const Plan& p = d.plan;
  const T* x = static_cast<const T*>(d.x) + b * p.bstride[0];
  const T* y = two ? static_cast<const T*>(d.y) + b * p.bstride[1] : nullptr;
  A acc = A(0);
  if (plan_dense(p, 0) && (!two || plan_dense(p, 1))) {
    x += s;
    if (two) y += s;
    const int64_t len = e - s;
    int64_t i0 = 0;
    constexpr int N = Pack<T>::N;
    if ((reinterpret_cast<uintptr_t>(x) & 15u) == 0 && (!two || (reinterpret_cast<uintptr_t>(y) & 15u) == 0)) {
      const int64_t nv = len / N;
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        const Pack<T> px = reinterpret_cast<const Pack<T>*>(x)[v];
        Pack<T> py;
        if (two) py = reinterpret_cast<const Pack<T>*>(y)[v];
#pragma unroll
        for (int k = 0; k < N; ++k)
          acc += term<MODE, A>(static_cast<A>(px.v[k]), two ? static_cast<A>(py.v[k]) : A(0), inv);
      }
      i0 = nv * N;
    }
    for (int64_t i = i0 + threadIdx.x; i < len; i += blockDim.x)
      acc += term<MODE, A>(static_cast<A>(x[i]), two ? static_cast<A>(y[i]) : A(0), inv);
  } else {
    for (int64_t i = s + threadIdx.x; i < e; i += blockDim.x)
      acc += term<MODE, A>(static_cast<A>(x[plan_offset(p, 0, i)]), two ? static_cast<A>(y[plan_offset(p, 1, i)]) : A(0),
                           inv);
  }
  return acc;
}

template <typename T, int MODE>
__global__ void __launch_bounds__(kThreads) reduce_tiles_kernel(const TDesc* __restrict__ tab, int nt, int64_t ntiles,
                                                                acc_t<T>* __restrict__ parts, acc_t<T> inv) {
  using A = acc_t<T>;
  for (int64_t g = blockIdx.x; g < ntiles; g += gridDim.x) {
    const TDesc& d = tab[find_desc(tab, nt, g)];
    const int64_t local = g - d.tile_begin;
    if (d.K == 1) {
      const int64_t b0 = local * d.G;
      const int64_t b1 = b0 + d.G < d.plan.B ? b0 + d.G : d.plan.B;
      for (int64_t b = b0; b < b1; ++b) {
        const A v = block_sum<A>(range_sum<T, MODE>(d, b, 0, d.plan.n, inv));
        if (threadIdx.x == 0) parts[d.part_begin + b] = v;
      }
    } else {
      const int64_t b = local / d.K, k = local % d.K;
      const int64_t s = k * kChunk, e = s + kChunk < d.plan.n ? s + kChunk : d.plan.n;
      const A v = block_sum<A>(range_sum<T, MODE>(d, b, s, e, inv));
      if (threadIdx.x == 0) parts[d.part_begin + b * d.K + k] = v;
    }
  }
}

// out[b] = Σ_t Σ_k parts[t][b][k], fixed order (per-thread strided sums, then a fixed tree).
template <typename A>
__global__ void __launch_bounds__(kThreads) finalize_kernel(const TDesc* __restrict__ tab, int nt,
                                                            const A* __restrict__ parts, int64_t nout,
                                                            A* __restrict__ out) {
  for (int64_t b = blockIdx.x; b < nout; b += gridDim.x) {
    A acc = A(0);
    for (int t = 0; t < nt; ++t) {
      const int64_t K = tab[t].K, base = tab[t].part_begin + b * K;
      for (int64_t k = threadIdx.x; k < K; k += blockDim.x) acc += parts[base + k];
    }
    acc = block_sum<A>(acc);
    if (threadIdx.x == 0) out[b] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scale_tiles_kernel(const TDesc* __restrict__ tab, int nt, int64_t ntiles,
                                                               const acc_t<T>* __restrict__ coef, bool per_sample,
                                                               acc_t<T> factor) {
  using A = acc_t<T>;
  for (int64_t g = blockIdx.x; g < ntiles; g += gridDim.x) {
    const TDesc& d = tab[find_desc(tab, nt, g)];
    const Plan& p = d.plan;
    const int64_t local = g - d.tile_begin;
    int64_t b0, b1, s, e;
    if (d.K == 1) {
      b0 = local * d.G;
      b1 = b0 + d.G < p.B ? b0 + d.G : p.B;
      s = 0;
      e = p.n;
    } else {
      b0 = local / d.K;
      b1 = b0 + 1;
      s = (local % d.K) * kChunk;
      e = s + kChunk < p.n ? s + kChunk : p.n;
    }
    for (int64_t b = b0; b < b1; ++b) {
      const A c = factor * coef[per_sample ? b : 0];
      const T* x = static_cast<const T*>(d.x) + b * p.bstride[0];
      T* o = static_cast<T*>(d.out) + b * p.bstride[1];
      if (plan_dense(p, 0) && plan_dense(p, 1)) {
        x += s;
        o += s;
        const int64_t len = e - s;
        int64_t i0 = 0;
        constexpr int N = Pack<T>::N;
        if ((reinterpret_cast<uintptr_t>(x) & 15u) == 0 && (reinterpret_cast<uintptr_t>(o) & 15u) == 0) {
          const int64_t nv = len / N;
          for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
            Pack<T> px = reinterpret_cast<const Pack<T>*>(x)[v];
#pragma unroll
            for (int k = 0; k < N; ++k) px.v[k] = static_cast<T>(static_cast<A>(px.v[k]) * c);
            reinterpret_cast<Pack<T>*>(o)[v] = px;
          }
          i0 = nv * N;
        }
        for (int64_t i = i0 + threadIdx.x; i < len; i += blockDim.x) o[i] = static_cast<T>(static_cast<A>(x[i]) * c);
      } else {
        for (int64_t i = s + threadIdx.x; i < e; i += blockDim.x)
          o[plan_offset(p, 1, i)] = static_cast<T>(static_cast<A>(x[plan_offset(p, 0, i)]) * c);
      }
    }
  }
}

void check_list(const std::vector<at::Tensor>& xs, const char* name, bool per_sample) {
  ganreg::check_list(xs, name, per_sample, [&](const at::Tensor& x) {
    check_cuda_tensor(x, name);
    TORCH_CHECK(x.device() == xs[0].device(), name, ": all tensors must be on one device, got ", xs[0].device(),
                " and ", x.device());
  });
}

// One dtype per launch: other dtypes in the list are converted to the first one's.
std::vector<at::Tensor> same_dtype(const std::vector<at::Tensor>& xs, at::ScalarType s) {
  std::vector<at::Tensor> out;
  for (const auto& x : xs) out.push_back(x.scalar_type() == s ? x : x.to(s));
  return out;
}

at::Tensor sqnorm(at::TensorList grads, double inv_scale, bool per_sample) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", per_sample);
  return multi_reduce(kSq, xs, {}, per_sample, inv_scale, "sqnorm");
}

at::Tensor dot(at::TensorList a, at::TensorList b, bool per_sample) {
  std::vector<at::Tensor> xs(a.begin(), a.end()), ys(b.begin(), b.end());
  check_list(xs, "a", per_sample);
  check_list(ys, "b", per_sample);
  check_paired(xs, ys);
  return multi_reduce(kDot, xs, ys, per_sample, 1.0, "dot");
}

std::vector<at::Tensor> scale(at::TensorList grads, const at::Tensor& coef, double factor, bool per_sample) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", per_sample);
  TORCH_CHECK(coef.device() == xs[0].device(), "scale: coef must be on ", xs[0].device(), ", got ", coef.device());
  const int64_t B = per_sample ? xs[0].size(0) : 1;
  TORCH_CHECK(coef.numel() == B, "scale: coef must have ", B, " element(s), got shape ", coef.sizes());
  c10::cuda::CUDAGuard guard(xs[0].device());
  const auto dt = xs[0].scalar_type();
  std::vector<at::Tensor> xin = same_dtype(xs, dt);
  std::vector<at::Tensor> outs;
  std::vector<TDesc> ds;
  for (const auto& x : xin) {
    outs.push_back(new_output_like(x));
    TDesc d{};
    d.plan = make_plan({x, outs.back()}, per_sample, true, "scale");
    d.x = x.data_ptr();
    d.out = outs.back().data_ptr();
    ds.push_back(d);
  }
  int64_t ntiles, nparts;
  tile_descs(ds, &ntiles, &nparts);
  if (ntiles > 0) {
    const auto stream = c10::cuda::getCurrentCUDAStream();
    at::Tensor tab = upload(ds, xs[0].device());
    at::Tensor c = coef.to(acc_dtype(dt)).contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dt, "ganreg_scale_cuda", [&] {
      using A = acc_t<scalar_t>;
      scale_tiles_kernel<scalar_t><<<grid_for(ntiles, xs[0].get_device()), kThreads, 0, stream.stream()>>>(
          reinterpret_cast<const TDesc*>(tab.data_ptr()), (int)ds.size(), ntiles, c.const_data_ptr<A>(), per_sample,
          static_cast<A>(factor));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].scalar_type() != xs[i].scalar_type()) outs[i] = outs[i].to(xs[i].scalar_type());
  return outs;
}

template <int MODE>
at::Tensor multi_reduce_mode(const std::vector<at::Tensor>& xs0, const std::vector<at::Tensor>& ys0, bool per_sample,
                             double inv, const char* what) {
  constexpr bool two = MODE == kDot || MODE == kSqDiff;
  c10::cuda::CUDAGuard guard(xs0[0].device());
  const auto dt = xs0[0].scalar_type();
  std::vector<at::Tensor> xs = same_dtype(xs0, dt), ys = two ? same_dtype(ys0, dt) : std::vector<at::Tensor>{};
  std::vector<TDesc> ds;
  for (size_t t = 0; t < xs.size(); ++t) {
    TDesc d{};
    d.plan = two ? make_plan({xs[t], ys[t]}, per_sample, true, what) : make_plan({xs[t]}, per_sample, true, what);
    d.x = xs[t].data_ptr();
    d.y = two ? ys[t].data_ptr() : nullptr;
    ds.push_back(d);
  }
  int64_t ntiles, nparts;
  tile_descs(ds, &ntiles, &nparts);
  const int64_t nout = per_sample ? xs[0].size(0) : 1;
  const auto adt = acc_dtype(dt);
  at::Tensor out = new_output(per_sample ? at::IntArrayRef({nout}) : at::IntArrayRef({}), xs[0].options().dtype(adt));
  if (nout == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int dev = xs[0].get_device();
  at::Tensor tab = upload(ds, xs[0].device());
  at::Tensor parts = at::empty({nparts > 0 ? nparts : 1}, xs[0].options().dtype(adt));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dt, "ganreg_reduce_cuda", [&] {
    using A = acc_t<scalar_t>;
    const TDesc* tp = reinterpret_cast<const TDesc*>(tab.data_ptr());
    if (ntiles > 0) {
      reduce_tiles_kernel<scalar_t, MODE><<<grid_for(ntiles, dev), kThreads, 0, stream.stream()>>>(
          tp, (int)ds.size(), ntiles, parts.data_ptr<A>(), static_cast<A>(inv));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    finalize_kernel<A><<<grid_for(nout, dev, 32), kThreads, 0, stream.stream()>>>(tp, (int)ds.size(),
                                                                                   parts.data_ptr<A>(), nout,
                                                                                   out.data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

at::Tensor multi_reduce(int mode, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys, bool per_sample,
                        double inv, const char* what) {
  switch (mode) {
    case kSq:
      return multi_reduce_mode<kSq>(xs, ys, per_sample, inv, what);
    case kDot:
      return multi_reduce_mode<kDot>(xs, ys, per_sample, inv, what);
    case kSqDiff:
      return multi_reduce_mode<kSqDiff>(xs, ys, per_sample, inv, what);
    default:
      return multi_reduce_mode<kSum>(xs, ys, per_sample, inv, what);
  }
}

}  // namespace cuda
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CUDA, m) {
  m.impl("sqnorm", &ganreg::cuda::sqnorm);
  m.impl("scale", &ganreg::cuda::scale);
  m.impl("dot", &ganreg::cuda::dot);
}
