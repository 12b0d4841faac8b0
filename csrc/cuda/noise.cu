// CUDA kernels of the noise family (docs/semantics.md#path-length-regularization-stylegan2 Philox stream generated in-kernel, never stored).
// y = n / float32(1/scale) in float32 with IEEE division (as the reference's n / sqrt(H·W)).
// noise_dot: fixed tiles of kNoiseChunk logical elements → partials → fixed-order final sum.
// noise_axpy: one thread per Philox counter (4 elements), grid-stride, contiguous output.
#include <torch/library.h>

#include "common/philox.h"
#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

constexpr int64_t kNoiseChunk = 8192;  // elements per reduction tile (multiple of 4)

template <typename T>
__device__ __forceinline__ acc_t<T> load_logical(const Plan& p, const T* x, bool dense, int64_t i) {
  return static_cast<acc_t<T>>(dense ? x[i] : x[plan_offset(p, 0, i)]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) noise_dot_kernel(const T* __restrict__ x, Plan p, int64_t n, uint64_t seed,
                                                             float div, int64_t ntiles, acc_t<T>* __restrict__ parts) {
  using A = acc_t<T>;
  const bool dense = plan_dense(p, 0);
  for (int64_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const int64_t s = t * kNoiseChunk, e = s + kNoiseChunk < n ? s + kNoiseChunk : n;
    A acc = A(0);
    for (int64_t c = s / 4 + threadIdx.x; 4 * c < e; c += blockDim.x) {
      float nv[4];
      normal4(philox_stream(static_cast<uint64_t>(c), seed), nv);
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        const int64_t i = 4 * c + l;
        if (i < e) acc += load_logical<T>(p, x, dense, i) * static_cast<A>(__fdiv_rn(nv[l], div));
      }
    }
    acc = block_sum<A>(acc);
    if (threadIdx.x == 0) parts[t] = acc;
  }
}

template <typename A>
__global__ void __launch_bounds__(kThreads) sum_scaled_kernel(const A* __restrict__ parts, int64_t np, A scale,
                                                              A* __restrict__ out) {
  A acc = A(0);
  for (int64_t k = threadIdx.x; k < np; k += blockDim.x) acc += parts[k];
  acc = block_sum<A>(acc);
  if (threadIdx.x == 0) *out = acc * scale;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) noise_axpy_kernel(const T* __restrict__ x, Plan p, T* __restrict__ out,
                                                              int64_t n, uint64_t seed, Scalar alpha,
                                                              float div) {
  using A = acc_t<T>;
  const A coef = alpha.get<A>();
  const bool dense = x != nullptr && plan_dense(p, 0);
  const int64_t ncounters = (n + 3) / 4;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < ncounters;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float nv[4];
    normal4(philox_stream(static_cast<uint64_t>(c), seed), nv);
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int64_t i = 4 * c + l;
      if (i < n) {
        const A xv = x ? load_logical<T>(p, x, dense, i) : A(0);
        out[i] = static_cast<T>(xv + coef * static_cast<A>(__fdiv_rn(nv[l], div)));
      }
    }
  }
}

at::Tensor noise_dot(const at::Tensor& x, int64_t seed, double scale) {
  check_cuda_tensor(x, "x");
  TORCH_CHECK(seed >= 0, "noise_dot: seed must be a non-negative 63-bit integer, got ", seed);
  DeviceGuard guard(x.device());
  const Plan p = make_plan({x}, false, false, "noise_dot");
  const int64_t n = x.numel();
  const auto adt = acc_dtype(x.scalar_type());
  at::Tensor out = new_output({}, x.options().dtype(adt));
  const int64_t ntiles = (n + kNoiseChunk - 1) / kNoiseChunk;
  at::Tensor parts = at::empty({ntiles > 0 ? ntiles : 1}, x.options().dtype(adt));
  const auto stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_noise_dot_cuda", [&] {
    using A = acc_t<scalar_t>;
    if (ntiles > 0) {
      GANREG_LAUNCH(noise_dot_kernel<scalar_t>, grid_for(ntiles, x.get_device()), kThreads, 0, stream.stream())(
          x.const_data_ptr<scalar_t>(), p, n, static_cast<uint64_t>(seed), static_cast<float>(1.0 / scale), ntiles,
          parts.data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    GANREG_LAUNCH(sum_scaled_kernel<A>, 1, kThreads, 0, stream.stream())(parts.data_ptr<A>(), ntiles, A(1),
                                                              out.data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor noise_axpy(const std::optional<at::Tensor>& x_opt, const at::Tensor& alpha, int64_t seed, double scale,
                      at::IntArrayRef size, at::ScalarType dtype) {
  TORCH_CHECK(alpha.numel() == 1, "noise_axpy: alpha must be a 0-d tensor, got shape ", alpha.sizes());
  check_cuda_tensor(alpha, "alpha");
  TORCH_CHECK(seed >= 0, "noise_axpy: seed must be a non-negative 63-bit integer, got ", seed);
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
              "noise_axpy: dtype must be float16, bfloat16, float32 or float64, got ", dtype);
  DeviceGuard guard(alpha.device());
  at::Tensor x;
  if (x_opt.has_value() && x_opt->defined()) {
    x = *x_opt;
    check_cuda_tensor(x, "x");
    TORCH_CHECK(x.device() == alpha.device(), "noise_axpy: x must be on ", alpha.device(), ", got ", x.device());
    TORCH_CHECK(x.sizes() == size, "noise_axpy: x must have shape ", size, ", got ", x.sizes());
    if (x.scalar_type() != dtype) x = x.to(dtype);
  }
  at::Tensor out = new_output(size, alpha.options().dtype(dtype).memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = out.numel();
  if (n == 0) return out;
  Plan p;
  if (x.defined()) p = make_plan({x}, false, false, "noise_axpy");
  const Scalar a = device_scalar(alpha);  // read in the kernel as it is: no conversion launch
  const auto stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "ganreg_noise_axpy_cuda", [&] {
    GANREG_LAUNCH(noise_axpy_kernel<scalar_t>, grid_for((n + 3) / 4 / kThreads + 1, alpha.get_device(), 16), kThreads, 0, stream.stream())(x.defined() ? x.const_data_ptr<scalar_t>() : nullptr, p,
                                                     out.data_ptr<scalar_t>(), n, static_cast<uint64_t>(seed),
                                                     a, static_cast<float>(1.0 / scale));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("noise_dot", &ganreg::cuda::noise_dot);
  m.impl("noise_axpy", &ganreg::cuda::noise_axpy);
}
