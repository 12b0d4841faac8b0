// Autograd of the gradnorm ops (docs/ARCHITECTURE.md): sqnorm ↔ scale ↔ dot, and the fused penalties grad_penalty / path_length (their device-agnostic
// forward is registered for CPU and CUDA here too).
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

// s = weight · reduce_b Σ_t Σ_i (inv·g_t)²  →  ∂/∂g_t = 2·weight·inv²·(gout_b or gout/B)·g_t = scale(...)
struct SqnormFn : torch::autograd::Function<SqnormFn> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList grads, const OptT& inv, double weight,
                            int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward(grads.vec());
    ctx->saved_data["inv"] = inv;
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["reduction"] = reduction;
    return sqnorm_op().call(grads, inv, weight, reduction);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const Tensors grads = ctx->get_saved_variables();
    const int64_t red = ctx->saved_data["reduction"].toInt();
    double factor = 2.0 * ctx->saved_data["weight"].toDouble();
    if (red == kRedMean) factor /= static_cast<double>(grads[0].size(0));
    at::Tensor coef = gout[0];
    const OptT inv = ctx->saved_data["inv"].toOptional<at::Tensor>();
    // a tensor op, never a host read: a device inv_scale stays there, and tracing (fake tensors) works
    if (inv.has_value()) coef = coef * inv->square().to(coef.scalar_type());
    variable_list out = scale_op().call(grads, coef, factor, red == kRedNone);
    out.resize(grads.size() + 3);  // inv, weight, reduction: no gradient
    return out;
  }
};

// out_t = factor·coef_b·g_t  →  ∂/∂g_t = scale(gout_t, coef), ∂/∂coef_b = factor·Σ_t ⟨gout_t, g_t⟩_b
struct ScaleFn : torch::autograd::Function<ScaleFn> {
  static variable_list forward(AutogradContext* ctx, at::TensorList grads, const at::Tensor& coef, double factor,
                               bool per_sample) {
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensors saved = grads.vec();
    saved.push_back(coef);
    ctx->save_for_backward(saved);
    ctx->saved_data["factor"] = factor;
    ctx->saved_data["per_sample"] = per_sample;
    return scale_op().call(grads, coef, factor, per_sample);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gouts) {
    Tensors saved = ctx->get_saved_variables();
    const at::Tensor coef = saved.back();
    saved.pop_back();
    const size_t n = saved.size();
    const double factor = ctx->saved_data["factor"].toDouble();
    const bool per_sample = ctx->saved_data["per_sample"].toBool();
    variable_list out(n + 3);
    bool any = false;
    for (size_t i = 0; i < n; ++i) any = any || ctx->needs_input_grad(i);
    if (any) {
      const Tensors d = scale_op().call(gouts, coef, factor, per_sample);
      for (size_t i = 0; i < n; ++i) out[i] = d[i];
    }
    if (ctx->needs_input_grad(n)) out[n] = as_grad_of(dot_op().call(gouts, saved, per_sample) * factor, coef);
    return out;
  }
};

// Σ_t ⟨a_t, b_t⟩_b  →  ∂/∂a_t = scale(b_t, gout), ∂/∂b_t = scale(a_t, gout)
struct DotFn : torch::autograd::Function<DotFn> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList a, at::TensorList b, bool per_sample) {
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensors saved = a.vec();
    saved.insert(saved.end(), b.begin(), b.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["n"] = static_cast<int64_t>(a.size());
    ctx->saved_data["per_sample"] = per_sample;
    return dot_op().call(a, b, per_sample);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const Tensors saved = ctx->get_saved_variables();
    const size_t n = static_cast<size_t>(ctx->saved_data["n"].toInt());
    const bool per_sample = ctx->saved_data["per_sample"].toBool();
    const Tensors a(saved.begin(), saved.begin() + n), b(saved.begin() + n, saved.end());
    variable_list out(2 * n + 1);
    bool need_a = false, need_b = false;
    for (size_t i = 0; i < n; ++i) {
      need_a = need_a || ctx->needs_input_grad(i);
      need_b = need_b || ctx->needs_input_grad(n + i);
    }
    if (need_a) {
      const Tensors d = scale_op().call(b, gout[0], 1.0, per_sample);
      for (size_t i = 0; i < n; ++i) out[i] = as_grad_of(d[i], a[i]);
    }
    if (need_b) {
      const Tensors d = scale_op().call(a, gout[0], 1.0, per_sample);
      for (size_t i = 0; i < n; ++i) out[n + i] = as_grad_of(d[i], b[i]);
    }
    return out;
  }
};

// ------------------------------------------------------------- fused penalty epilogues (O(B) work)
// One autograd node per public call: the forward is the sqnorm kernel plus an O(B) epilogue (ATen ops
// below autograd), the backward an O(B) coefficient and one `scale` pass over the gradients. Under
// create_graph the backward recomputes s = sqnorm(g) through autograd, so the coefficient's
// dependence on g is differentiated too (double backward exact); otherwise it reuses the saved s.

at::Tensor reduce_batch(const at::Tensor& v, int64_t reduction) {
  return reduction == kRedMean ? v.mean() : reduction == kRedSum ? v.sum() : v;
}

// ∂L/∂(per-sample value) from the gradient of the reduced output.
at::Tensor per_sample_grad(const at::Tensor& gout, int64_t reduction, int64_t B) {
  if (reduction == kRedNone) return gout;
  const at::Tensor g = gout.expand({B});
  return reduction == kRedMean ? g / static_cast<double>(B) : g;
}

// The saved s, or (create_graph) s recomputed through autograd.
at::Tensor sample_sqnorm(AutogradContext* ctx, const Tensors& grads, const OptT& inv, double weight) {
  if (at::GradMode::is_enabled()) return sqnorm_op().call(grads, inv, weight, kRedNone);
  return ctx->saved_data["s"].toTensor();
}

// WGAN-GP: pen_b = w·d_b², d_b = n_b − c (one-sided: relu), n_b = sqrt(s_b + eps); then reduced.
at::Tensor grad_penalty_forward(at::TensorList grads, const OptT& inv, double center, double weight, double eps,
                                bool one_sided, int64_t reduction, at::Tensor* s_out) {
  const at::Tensor s = sqnorm_op().call(grads, inv, 1.0, kRedNone);
  if (s_out) *s_out = s;
  at::Tensor d = (s + eps).sqrt() - center;
  if (one_sided) d = d.clamp_min(0);
  return reduce_batch(d.square() * weight, reduction);
}

struct GradPenaltyFn : torch::autograd::Function<GradPenaltyFn> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList grads, const OptT& inv, double center, double weight,
                            double eps, bool one_sided, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor s;
    at::Tensor out = grad_penalty_forward(grads, inv, center, weight, eps, one_sided, reduction, &s);
    ctx->save_for_backward(grads.vec());
    ctx->saved_data["s"] = s;
    ctx->saved_data["inv"] = inv;
    ctx->saved_data["params"] = std::vector<double>{center, weight, eps};
    ctx->saved_data["one_sided"] = one_sided;
    ctx->saved_data["reduction"] = reduction;
    return out;
  }
  // ∂pen_b/∂g = 2·inv²·w·d_b/n_b·g (0 where n_b = 0, like vector_norm; NaN propagates)
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const Tensors grads = ctx->get_saved_variables();
    const OptT inv = ctx->saved_data["inv"].toOptional<at::Tensor>();
    const auto p = ctx->saved_data["params"].toDoubleVector();
    const int64_t red = ctx->saved_data["reduction"].toInt();
    const at::Tensor s = sample_sqnorm(ctx, grads, inv, 1.0);
    const at::Tensor n = (s + p[2]).sqrt();
    const at::Tensor pos = (n <= 0).logical_not();
    const at::Tensor n_safe = at::where(pos, n, at::ones_like(n));  // no inf in the unselected branch
    at::Tensor d = n - p[0];
    if (ctx->saved_data["one_sided"].toBool()) d = d.clamp_min(0);
    at::Tensor coef = at::where(pos, d * (2.0 * p[1]) / n_safe, at::zeros_like(n));
    coef = coef * per_sample_grad(gout[0], red, s.size(0)).to(coef.scalar_type());
    if (inv.has_value()) coef = coef * inv->square().to(coef.scalar_type());
    variable_list out = scale_op().call(grads, coef, 1.0, true);
    out.resize(grads.size() + 6);
    return out;
  }
};

// Path length (docs/semantics.md#path-length-regularization-stylegan2): len_b = sqrt(s_b / num_ws), new_mean = m + decay·(E_b len − m),
// pen_b = (len_b − new_mean)²; the gradient also flows through new_mean; pl_mean m is a constant.
std::tuple<at::Tensor, at::Tensor, at::Tensor> path_length_forward(const at::Tensor& g, const at::Tensor& pl_mean,
                                                                   double decay) {
  const double num_ws = g.dim() == 3 ? static_cast<double>(g.size(1)) : 1.0;
  const at::Tensor len = sqnorm_op().call({g}, std::nullopt, 1.0 / num_ws, kRedNone).sqrt();
  // not pl_mean.to(dtype): that returns the input itself, which an op below autograd must not pass on
  const at::Tensor m = pl_mean.scalar_type() == len.scalar_type() ? pl_mean : pl_mean.to(len.scalar_type());
  const at::Tensor new_mean = m + (len.mean() - m) * decay;
  return {(len - new_mean).square(), new_mean, len};
}

struct PathLengthFn : torch::autograd::Function<PathLengthFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& pl_mean, double decay) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [pen, new_mean, len] = path_length_forward(g, pl_mean, decay);
    ctx->save_for_backward({g});
    ctx->saved_data["len"] = len;
    ctx->saved_data["pl_mean"] = pl_mean.clone();  // its value now: the caller updates the buffer in place
    ctx->saved_data["decay"] = decay;
    return {pen, new_mean};
  }
  // ∂/∂len_j = 2·gp_j·r_j − (decay/B)·Σ_b 2·gp_b·r_b + gm·decay/B  (r = len − new_mean),
  // ∂len_j/∂g = g / (num_ws·len_j)  (0 where len_j = 0)
  static variable_list backward(AutogradContext* ctx, variable_list gouts) {
    const at::Tensor g = ctx->get_saved_variables()[0];
    const double decay = ctx->saved_data["decay"].toDouble();
    const double num_ws = g.dim() == 3 ? static_cast<double>(g.size(1)) : 1.0;
    const double B = static_cast<double>(g.size(0));
    const at::Tensor len = at::GradMode::is_enabled()
                               ? sqnorm_op().call({g}, std::nullopt, 1.0 / num_ws, kRedNone).sqrt()
                               : ctx->saved_data["len"].toTensor();
    const at::Tensor m = ctx->saved_data["pl_mean"].toTensor().to(len.scalar_type());
    const at::Tensor r = len - (m + (len.mean() - m) * decay);
    const at::Tensor t = gouts[0].to(len.scalar_type()) * r * 2.0;
    const at::Tensor dlen = t - (t.sum() - gouts[1].to(len.scalar_type())) * (decay / B);
    const at::Tensor pos = (len <= 0).logical_not();
    const at::Tensor len_safe = at::where(pos, len, at::ones_like(len));
    const at::Tensor coef = at::where(pos, dlen / len_safe, at::zeros_like(len));
    return {scale_op().call({g}, coef, 1.0 / num_ws, true)[0], at::Tensor(), at::Tensor()};
  }
};

}  // namespace
}  // namespace ganreg

namespace ganreg {
namespace {
// The fused penalties' device-agnostic forward (CPU and CUDA keys; fake kernels in Python): the
// namespace's own sqnorm plus the O(B) epilogue, so the same forward serves the Triton ops
// (ganreg_triton, built with GANREG_AUTOGRAD_ONLY: registered for CUDA too, where Triton runs).
at::Tensor grad_penalty_kernel(at::TensorList grads, const OptT& inv, double c, double w, double eps, bool one_sided,
                               int64_t red) {
  return grad_penalty_forward(grads, inv, c, w, eps, one_sided, red, nullptr);
}
std::tuple<at::Tensor, at::Tensor> path_length_kernel(const at::Tensor& g, const at::Tensor& pl_mean, double decay) {
  auto [pen, new_mean, len] = path_length_forward(g, pl_mean, decay);
  return {pen, new_mean};
}
}  // namespace
}  // namespace ganreg

GANREG_LIBRARY_IMPL(CPU, m) {
  m.impl("grad_penalty", &ganreg::grad_penalty_kernel);
  m.impl("path_length", &ganreg::path_length_kernel);
}

#if defined(GANREG_WITH_CUDA) || defined(GANREG_AUTOGRAD_ONLY)
GANREG_LIBRARY_IMPL(CUDA, m) {
  m.impl("grad_penalty", &ganreg::grad_penalty_kernel);
  m.impl("path_length", &ganreg::path_length_kernel);
}
#endif

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("grad_penalty", [](at::TensorList g, const OptT& inv, double c, double w, double eps, bool one_sided,
                            int64_t red) { return GradPenaltyFn::apply(g, inv, c, w, eps, one_sided, red); });
  m.impl("path_length", [](const at::Tensor& g, const at::Tensor& pl_mean, double decay) {
    auto r = PathLengthFn::apply(g, pl_mean, decay);
    return std::make_tuple(r[0], r[1]);
  });
  m.impl("sqnorm", [](at::TensorList g, const OptT& inv, double w, int64_t red) {
    return SqnormFn::apply(g, inv, w, red);
  });
  m.impl("scale", [](at::TensorList g, const at::Tensor& c, double f, bool ps) { return ScaleFn::apply(g, c, f, ps); });
  m.impl("dot", [](at::TensorList a, at::TensorList b, bool ps) { return DotFn::apply(a, b, ps); });
}
