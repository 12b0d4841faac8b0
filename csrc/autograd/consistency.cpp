// Autograd of the consistency ops (docs/ARCHITECTURE.md): sq_diff_sum → diff_scale ↺.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

// weight·Σ (a−b)²  →  (∂/∂a, ∂/∂b) = diff_scale(a, b, 2·weight·gout)
struct SqDiffSumFn : torch::autograd::Function<SqDiffSumFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, double weight) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({a, b});
    ctx->saved_data["weight"] = weight;
    return sq_diff_sum_op().call(a, b, weight);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const auto s = ctx->get_saved_variables();
    auto [da, db] = diff_scale_op().call(s[0], s[1], gout[0] * (2.0 * ctx->saved_data["weight"].toDouble()));
    return {da, db, at::Tensor()};
  }
};

// (c·(a−b), −c·(a−b))  →  (∂/∂a, ∂/∂b) = diff_scale(ga, gb, c), ∂/∂c = Σ (ga−gb)·(a−b)
struct DiffScaleFn : torch::autograd::Function<DiffScaleFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                               const at::Tensor& coef) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({a, b, coef});
    auto [oa, ob] = diff_scale_op().call(a, b, coef);
    return {oa, ob};
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const auto s = ctx->get_saved_variables();
    variable_list out(3);
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1)) {
      auto [da, db] = diff_scale_op().call(g[0], g[1], s[2]);
      out[0] = as_grad_of(da, s[0]);
      out[1] = as_grad_of(db, s[1]);
    }
    if (ctx->needs_input_grad(2)) {
      const auto acc = s[0].scalar_type() == at::kDouble || s[1].scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
      out[2] = as_grad_of(((g[0].to(acc) - g[1].to(acc)) * (s[0].to(acc) - s[1].to(acc))).sum(), s[2]);
    }
    return out;
  }
};

}  // namespace
}  // namespace ganreg

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("sq_diff_sum", [](const at::Tensor& a, const at::Tensor& b, double w) { return SqDiffSumFn::apply(a, b, w); });
  m.impl("diff_scale", [](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    auto r = DiffScaleFn::apply(a, b, c);
    return std::make_tuple(r[0], r[1]);
  });
}
