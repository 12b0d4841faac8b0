// CPU kernels of the consistency family: sq_diff_sum = Σ (a−b)² and diff_scale = (c·(a−b), −c·(a−b)).
#include <torch/library.h>

#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

void check_pair(const at::Tensor& a, const at::Tensor& b) {
  check_cpu(a, "a");
  check_cpu(b, "b");
  check_float(a, "a");
  check_float(b, "b");
  TORCH_CHECK(a.sizes() == b.sizes(), "b must have the shape of a ", a.sizes(), ", got ", b.sizes());
}

at::Tensor sq_diff_sum(const at::Tensor& a, const at::Tensor& b, double weight) {
  check_pair(a, b);
  return multi_reduce<kSqDiff>({a}, {b}, kRedTotal, 1.0, weight, "sq_diff_sum");
}

template <typename T>
void diff_scale_range(const Plan& p, const T* a, const T* b, T* oa, T* ob, acc_t<T> c, int64_t s, int64_t e,
                      bool stream) {
  using A = acc_t<T>;
  using V = Vectorized<A>;
  const V cv(c), ncv(-c);
  const int nd = p.ndim;
  for_each_segment(p, 0, s, e, [&](const int64_t* off, int64_t len, int64_t) {
    const T* ap = a + off[0];
    const T* bp = b + off[1];
    T* oap = oa + off[2];
    T* obp = ob + off[3];
    const int64_t sa = p.strides[0][nd - 1], sb = p.strides[1][nd - 1];
    const int64_t soa = p.strides[2][nd - 1], sob = p.strides[3][nd - 1];
    if (sa == 1 && sb == 1 && soa == 1 && sob == 1) {
      // both outputs are fresh allocations of the same size: same alignment, one head for both
      const bool nt_ok = stream && stream_head(oap) == stream_head(obp);
      for_blocks<VecIO<T>::kBlock>(len, nt_ok ? stream_head(oap) : -1, [&](int64_t i, int m, bool nt) {
        V a0, a1, b0, b1;
        load_block(ap + i, a0, a1, m);
        load_block(bp + i, b0, b1, m);
        const V d0 = a0 - b0, d1 = a1 - b1;
        store_block(oap + i, d0 * cv, d1 * cv, m, nt);
        store_block(obp + i, d0 * ncv, d1 * ncv, m, nt);
      });
    } else {
      for (int64_t i = 0; i < len; ++i) {
        const A d = static_cast<A>(ap[i * sa]) - static_cast<A>(bp[i * sb]);
        oap[i * soa] = static_cast<T>(d * c);
        obp[i * sob] = static_cast<T>(d * -c);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> diff_scale(const at::Tensor& a, const at::Tensor& b0, const at::Tensor& coef) {
  check_pair(a, b0);
  check_cpu(coef, "coef");
  TORCH_CHECK(coef.numel() == 1, "diff_scale: coef must be a 0-d tensor, got shape ", coef.sizes());
  const at::Tensor b = b0.scalar_type() == a.scalar_type() ? b0 : b0.to(a.scalar_type());
  at::Tensor oa = new_output_contiguous(a), ob = new_output_contiguous(b);
  const Plan p = make_plan({a, b, oa, ob}, false, false, "diff_scale");
  const double c = coef.item<double>();
  const int64_t n = a.numel(), ntiles = ceil_div(n, kChunk);
  const bool stream = oa.nbytes() + ob.nbytes() >= kStreamBytes;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "ganreg_diff_scale", [&] {
    using A = acc_t<scalar_t>;
    parallel_tiles(ntiles, n, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t)
        diff_scale_range<scalar_t>(p, a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                                   oa.data_ptr<scalar_t>(), ob.data_ptr<scalar_t>(), static_cast<A>(c), t * kChunk,
                                   std::min(n, (t + 1) * kChunk), stream);
      if (stream) stream_fence();
    });
  });
  if (ob.scalar_type() != b0.scalar_type()) ob = ob.to(b0.scalar_type());
  return {oa, ob};
}

}  // namespace
}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("sq_diff_sum", &ganreg::cpu::sq_diff_sum);
  m.impl("diff_scale", &ganreg::cpu::diff_scale);
}
