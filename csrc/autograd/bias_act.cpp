// Autograd of the bias_act ops (docs/ARCHITECTURE.md): bias_act → bias_act_grad ↺.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

// y = clamp(gain·f(x + b)); ∂/∂x = bias_act_grad([gy], order 1); the vjp of bias_act_grad(mults, k)
// is bias_act_grad(mults \ m_i ∪ {u}, k) for each multiplier and bias_act_grad(mults ∪ {u}, k+1) for
// x: a closed family, every order one fused pass. ∂/∂b = ∂/∂x summed over every dim but `dim`.

// What the backward needs, and nothing more (docs/blocks.md "Saved tensors"): linear without clamp
// nothing (f' = 1, so an in-place edit of the output stays legal, as StyleGAN2's resnet D does with
// `y.add_(x)`); linear with clamp x and b (the mask is recomputed from z = x + b, so the output
// stays free too); relu/lrelu the output y (f' and the mask from its sign and size); smooth
// activations x and b (every derivative order, and the mask, from z).
enum class Saved { kNothing, kInput, kOutput };
Saved bias_act_saves(int64_t act, double clamp) {
  if (act == kActLinear) return clamp >= 0 ? Saved::kInput : Saved::kNothing;
  return act_piecewise_linear(static_cast<int>(act)) ? Saved::kOutput : Saved::kInput;
}

at::Tensor bias_grad(const at::Tensor& dx, int64_t dim, at::ScalarType dtype) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < dx.dim(); ++d)
    if (d != dim) dims.push_back(d);
  return (dims.empty() ? dx : dx.sum(dims)).to(dtype);  // sum over no dim is a sum over all in ATen
}

struct BiasActFn : torch::autograd::Function<BiasActFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const OptT& b, int64_t dim, int64_t act,
                            double alpha, double gain, double clamp) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor y = bias_act_op().call(x, b, dim, act, alpha, gain, clamp);
    switch (bias_act_saves(act, clamp)) {
      case Saved::kNothing:
        ctx->save_for_backward({at::Tensor(), at::Tensor(), at::Tensor()});
        break;
      case Saved::kOutput:
        ctx->save_for_backward({at::Tensor(), at::Tensor(), y});
        break;
      case Saved::kInput:
        ctx->save_for_backward({x, b.value_or(at::Tensor()), at::Tensor()});
        break;
    }
    ctx->saved_data["b_dtype"] = b.has_value() ? static_cast<int64_t>(b->scalar_type()) : int64_t(-1);
    ctx->saved_data["params"] = std::vector<double>{alpha, gain, clamp};
    ctx->saved_data["ints"] = std::vector<int64_t>{dim, act};
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list gy) {
    const auto s = ctx->get_saved_variables();
    const auto p = ctx->saved_data["params"].toDoubleVector();
    const auto i = ctx->saved_data["ints"].toIntVector();
    auto opt = [](const at::Tensor& t) { return t.defined() ? OptT(t) : OptT(); };
    at::Tensor dx = bias_act_grad_op().call(opt(s[0]), opt(s[1]), opt(s[2]), {gy[0]}, i[0], i[1], p[0], p[1], p[2], 1);
    const int64_t bd = ctx->saved_data["b_dtype"].toInt();
    at::Tensor db = bd >= 0 && ctx->needs_input_grad(1) ? bias_grad(dx, i[0], static_cast<at::ScalarType>(bd))
                                                        : at::Tensor();
    return {dx, db, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct BiasActGradFn : torch::autograd::Function<BiasActGradFn> {
  static at::Tensor forward(AutogradContext* ctx, const OptT& x, const OptT& b, const OptT& y, at::TensorList mults,
                            int64_t dim, int64_t act, double alpha, double gain, double clamp, int64_t order) {
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensors saved{x.value_or(at::Tensor()), b.value_or(at::Tensor()), y.value_or(at::Tensor())};
    saved.insert(saved.end(), mults.begin(), mults.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["params"] = std::vector<double>{alpha, gain, clamp};
    ctx->saved_data["ints"] = std::vector<int64_t>{dim, act, order};
    return bias_act_grad_op().call(x, b, y, mults, dim, act, alpha, gain, clamp, order);
  }
  static variable_list backward(AutogradContext* ctx, variable_list u) {
    const auto s = ctx->get_saved_variables();
    const auto p = ctx->saved_data["params"].toDoubleVector();
    const auto i = ctx->saved_data["ints"].toIntVector();
    auto opt = [](const at::Tensor& t) { return t.defined() ? OptT(t) : OptT(); };
    const OptT x = opt(s[0]), b = opt(s[1]), y = opt(s[2]);
    const Tensors mults(s.begin() + 3, s.end());
    const size_t n = mults.size();
    // variable indices (needs_input_grad): the defined ones of x, b, y, then the multipliers
    size_t v = 0;
    const int vx = x ? static_cast<int>(v++) : -1, vb = b ? static_cast<int>(v++) : -1;
    if (y) ++v;
    variable_list out(3 + n + 6);
    for (size_t k = 0; k < n; ++k) {
      if (!ctx->needs_input_grad(v + k)) continue;
      Tensors m(mults);
      m.erase(m.begin() + static_cast<int64_t>(k));
      m.push_back(u[0]);
      out[3 + k] = bias_act_grad_op().call(x, b, y, m, i[0], i[1], p[0], p[1], p[2], i[2]);
    }
    const bool need_x = vx >= 0 && ctx->needs_input_grad(vx), need_b = vb >= 0 && ctx->needs_input_grad(vb);
    if (need_x || need_b) {
      Tensors m(mults);
      m.push_back(u[0]);
      const at::Tensor dx = bias_act_grad_op().call(x, b, y, m, i[0], i[1], p[0], p[1], p[2], i[2] + 1);
      if (need_x) out[0] = dx;
      if (need_b) out[1] = bias_grad(dx, i[0], b->scalar_type());
    }
    return out;  // y enters only through the sign/clamp mask: derivative 0 almost everywhere
  }
};

}  // namespace
}  // namespace ganreg

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("bias_act", [](const at::Tensor& x, const OptT& b, int64_t dim, int64_t act, double alpha, double gain,
                        double clamp) { return BiasActFn::apply(x, b, dim, act, alpha, gain, clamp); });
  m.impl("bias_act_grad", [](const OptT& x, const OptT& b, const OptT& y, at::TensorList mults, int64_t dim,
                             int64_t act, double alpha, double gain, double clamp, int64_t order) {
    return BiasActGradFn::apply(x, b, y, mults, dim, act, alpha, gain, clamp, order);
  });
}
