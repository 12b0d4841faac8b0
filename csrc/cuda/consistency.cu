// CUDA kernels of the consistency family: sq_diff_sum (the shared deterministic multi-tensor
// reduction) and diff_scale (one elementwise pass writing both outputs, contiguous).
#include <torch/library.h>

#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

void check_pair(const at::Tensor& a, const at::Tensor& b) {
  check_cuda_tensor(a, "a");
  check_cuda_tensor(b, "b");
  TORCH_CHECK(a.device() == b.device(), "b must be on the device of a (", a.device(), "), got ", b.device());
  TORCH_CHECK(a.sizes() == b.sizes(), "b must have the shape of a ", a.sizes(), ", got ", b.sizes());
}

at::Tensor sq_diff_sum(const at::Tensor& a, const at::Tensor& b) {
  check_pair(a, b);
  return multi_reduce(kSqDiff, {a}, {b}, false, 1.0, "sq_diff_sum");
}

template <typename T>
__global__ void __launch_bounds__(kThreads) diff_scale_kernel(const T* __restrict__ a, const T* __restrict__ b, Plan p,
                                                              int64_t n, const acc_t<T>* __restrict__ coef,
                                                              T* __restrict__ oa, T* __restrict__ ob) {
  using A = acc_t<T>;
  const A c = coef[0];
  const bool dense = plan_dense(p, 0) && plan_dense(p, 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const A av = static_cast<A>(dense ? a[i] : a[plan_offset(p, 0, i)]);
    const A bv = static_cast<A>(dense ? b[i] : b[plan_offset(p, 1, i)]);
    const A d = av - bv;
    oa[i] = static_cast<T>(d * c);
    ob[i] = static_cast<T>(d * -c);
  }
}

std::tuple<at::Tensor, at::Tensor> diff_scale(const at::Tensor& a, const at::Tensor& b0, const at::Tensor& coef) {
  check_pair(a, b0);
  TORCH_CHECK(coef.device() == a.device(), "diff_scale: coef must be on ", a.device(), ", got ", coef.device());
  TORCH_CHECK(coef.numel() == 1, "diff_scale: coef must be a 0-d tensor, got shape ", coef.sizes());
  c10::cuda::CUDAGuard guard(a.device());
  const at::Tensor b = b0.scalar_type() == a.scalar_type() ? b0 : b0.to(a.scalar_type());
  at::Tensor oa = new_output_contiguous(a), ob = new_output_contiguous(b);
  const int64_t n = a.numel();
  if (n > 0) {
    const Plan p = make_plan({a, b}, false, false, "diff_scale");
    const at::Tensor c = coef.reshape({}).to(acc_dtype(a.scalar_type()));
    const auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "ganreg_diff_scale_cuda", [&] {
      using A = acc_t<scalar_t>;
      diff_scale_kernel<scalar_t><<<grid_for(n / kThreads + 1, a.get_device(), 16), kThreads, 0, stream.stream()>>>(
          a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), p, n, c.const_data_ptr<A>(),
          oa.data_ptr<scalar_t>(), ob.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  if (ob.scalar_type() != b0.scalar_type()) ob = ob.to(b0.scalar_type());
  return {oa, ob};
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CUDA, m) {
  m.impl("sq_diff_sum", &ganreg::cuda::sq_diff_sum);
  m.impl("diff_scale", &ganreg::cuda::diff_scale);
}
