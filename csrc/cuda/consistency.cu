// CUDA kernels of the consistency family: sq_diff_sum = weight·Σ(a−b)² (the shared deterministic
// multi-tensor reduction) and diff_scale (one elementwise pass writing both outputs, contiguous, each
// in its input's dtype: mixed a/b dtypes are read as they are, never converted).
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

at::Tensor sq_diff_sum(const at::Tensor& a, const at::Tensor& b, double weight) {
  check_pair(a, b);
  DeviceGuard guard(a.device());
  return multi_reduce(kSqDiff, {a}, {b}, kRedTotal, weight, Scalar{}, "sq_diff_sum");
}

// One thread per logical element; a and b keep their dtypes (converted to A element by element).
template <typename TA, typename TB, typename A>
__global__ void __launch_bounds__(kThreads) diff_scale_kernel(const TA* __restrict__ a, const TB* __restrict__ b, Plan p,
                                                              int64_t n, Scalar coef, TA* __restrict__ oa,
                                                              TB* __restrict__ ob) {
  const A c = coef.get<A>();
  const bool dense = plan_dense(p, 0) && plan_dense(p, 1);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const A av = static_cast<A>(dense ? a[i] : a[plan_offset(p, 0, i)]);
    const A bv = static_cast<A>(dense ? b[i] : b[plan_offset(p, 1, i)]);
    const A d = av - bv;
    oa[i] = static_cast<TA>(d * c);
    ob[i] = static_cast<TB>(d * -c);
  }
}

std::tuple<at::Tensor, at::Tensor> diff_scale(const at::Tensor& a, const at::Tensor& b, const at::Tensor& coef) {
  check_pair(a, b);
  TORCH_CHECK(coef.device() == a.device(), "diff_scale: coef must be on ", a.device(), ", got ", coef.device());
  check_cuda_tensor(coef, "coef");
  TORCH_CHECK(coef.numel() == 1, "diff_scale: coef must be a 0-d tensor, got shape ", coef.sizes());
  DeviceGuard guard(a.device());
  at::Tensor oa = new_output_contiguous(a), ob = new_output_contiguous(b);
  const int64_t n = a.numel();
  if (n == 0) return {oa, ob};
  const Plan p = make_plan({a, b}, false, false, "diff_scale");
  const Scalar c = device_scalar(coef);
  const auto stream = current_stream();
  const int grid = grid_for(n / kThreads + 1, a.get_device(), 16);
  dispatch_float(a.scalar_type(), "diff_scale", [&](auto ta) {
    dispatch_float(b.scalar_type(), "diff_scale", [&](auto tb) {
      using TA = typename decltype(ta)::type;
      using TB = typename decltype(tb)::type;
      // the contract's accumulation type of the pair
      using A = std::conditional_t<std::is_same_v<TA, double> || std::is_same_v<TB, double>, double, float>;
      GANREG_LAUNCH(diff_scale_kernel<TA, TB, A>, grid, kThreads, 0, stream.stream())(
          a.const_data_ptr<TA>(), b.const_data_ptr<TB>(), p, n, c, oa.data_ptr<TA>(), ob.data_ptr<TB>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {oa, ob};
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("sq_diff_sum", &ganreg::cuda::sq_diff_sum);
  m.impl("diff_scale", &ganreg::cuda::diff_scale);
}
