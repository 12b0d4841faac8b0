// CPU kernels of the gradient-norm family: sqnorm, scale, dot (ARCHITECTURE.md raw kernel contract).
#include <torch/library.h>

#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

void check_list(const std::vector<at::Tensor>& xs, const char* name, bool per_sample) {
  ganreg::check_list(xs, name, per_sample, [&](const at::Tensor& x) {
    check_cpu(x, name);
    check_float(x, name);
  });
}

// inv_scale: a 0-d tensor (None = 1), read on the host: it is a CPU tensor like the grads.
at::Tensor sqnorm(at::TensorList grads, const std::optional<at::Tensor>& inv_scale, double weight, int64_t reduction) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", reduction != kRedTotal);
  double inv = 1.0;
  if (inv_scale.has_value()) {
    check_cpu(*inv_scale, "inv_scale");
    TORCH_CHECK(inv_scale->numel() == 1, "sqnorm: inv_scale must be a 0-d tensor, got shape ", inv_scale->sizes());
    inv = inv_scale->item<double>();
  }
  return multi_reduce<kSq>(xs, {}, reduction, inv, weight, "sqnorm");
}

at::Tensor dot(at::TensorList a, at::TensorList b, bool per_sample) {
  std::vector<at::Tensor> xs(a.begin(), a.end()), ys(b.begin(), b.end());
  check_list(xs, "a", per_sample);
  check_list(ys, "b", per_sample);
  check_paired(xs, ys);
  return multi_reduce<kDot>(xs, ys, per_sample ? kRedNone : kRedTotal, 1.0, 1.0, "dot");
}

template <typename T>
void scale_range(const Plan& p, const T* x, T* o, int64_t b, int64_t s, int64_t e, double c, bool stream) {
  using A = acc_t<T>;
  using V = Vectorized<A>;
  const A ca = static_cast<A>(c);
  const V cv(ca);
  const int nd = p.ndim;
  for_each_segment(p, b, s, e, [&](const int64_t* off, int64_t len, int64_t) {
    const T* xs = x + off[0];
    T* os = o + off[1];
    const int64_t sx = p.strides[0][nd - 1], so = p.strides[1][nd - 1];
    if (sx == 1 && so == 1) {
      for_blocks<VecIO<T>::kBlock>(len, stream ? stream_head(os) : -1, [&](int64_t i, int m, bool nt) {
        V a0, a1;
        load_block(xs + i, a0, a1, m);
        store_block(os + i, a0 * cv, a1 * cv, m, nt);
      });
    } else {
      for (int64_t i = 0; i < len; ++i) os[i * so] = static_cast<T>(static_cast<A>(xs[i * sx]) * ca);
    }
  });
}

std::vector<at::Tensor> scale(at::TensorList grads, const at::Tensor& coef, double factor, bool per_sample) {
  std::vector<at::Tensor> xs(grads.begin(), grads.end());
  check_list(xs, "grads", per_sample);
  check_cpu(coef, "coef");
  const int64_t B = per_sample ? xs[0].size(0) : 1;
  TORCH_CHECK(coef.numel() == B, "scale: coef must have ", B, " element(s) (", per_sample ? "[B]" : "0-d",
              "), got shape ", coef.sizes());
  at::Tensor cd = coef.to(at::kDouble).contiguous();
  const double* cp = cd.const_data_ptr<double>();
  std::vector<at::Tensor> outs;
  std::vector<Plan> plans;
  int64_t work = 0;
  for (const auto& x : xs) {
    outs.push_back(new_output_like(x));
    plans.push_back(make_plan({x, outs.back()}, per_sample, true, "scale"));
    work += x.numel();
  }
  int64_t ntiles, nparts, bytes = 0;
  for (const auto& o : outs) bytes += o.nbytes();
  const bool stream = bytes >= kStreamBytes;
  auto tiles = make_tiles(plans, &ntiles, &nparts);
  parallel_tiles(ntiles, work, [&](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g)
      tile_units(tiles, g, [&](int t, int64_t b, int64_t s, int64_t e, int64_t) {
        const double c = factor * cp[per_sample ? b : 0];
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xs[t].scalar_type(), "ganreg_scale", [&] {
          scale_range<scalar_t>(plans[t], xs[t].const_data_ptr<scalar_t>(), outs[t].data_ptr<scalar_t>(), b, s, e, c,
                                stream);
        });
      });
    if (stream) stream_fence();
  });
  return outs;
}

}  // namespace
}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("sqnorm", &ganreg::cpu::sqnorm);
  m.impl("scale", &ganreg::cpu::scale);
  m.impl("dot", &ganreg::cpu::dot);
}
