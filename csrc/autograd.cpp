// Autograd of the native ops, in C++ (TORCH_LIBRARY_IMPL(ganreg_C, Autograd)): one registered op per
// kernel, no Python frame in the forward, backward or double backward. Each forward calls the op
// below the autograd key (the CPU/CUDA kernel, or the fake kernel under torch.compile); each
// backward is made of the family's other registered ops, called through the dispatcher WITH
// autograd, so every order of derivative works:
//   sqnorm ↔ scale ↔ dot,  noise_dot ↔ noise_axpy,  sq_diff_sum → diff_scale ↺,
//   diff_augment ↔ diff_augment_adj,  cr_augment ↔ cr_augment_adj.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "common/augment.h"

namespace ganreg {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Tensors = std::vector<at::Tensor>;
using OptT = std::optional<at::Tensor>;

enum { kRedNone = 0, kRedSum = 1, kRedMean = 2, kRedTotal = 3 };  // ganreg_ext/_contract.py

template <typename Sig>
c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// Typed handles of the ops (looked up once).
#define GANREG_OP(fn, name, ...)                \
  c10::TypedOperatorHandle<__VA_ARGS__>& fn() {  \
    static auto h = op<__VA_ARGS__>(name);       \
    return h;                                    \
  }
GANREG_OP(sqnorm_op, "ganreg_C::sqnorm", at::Tensor(at::TensorList, const OptT&, double, int64_t))
GANREG_OP(scale_op, "ganreg_C::scale", Tensors(at::TensorList, const at::Tensor&, double, bool))
GANREG_OP(dot_op, "ganreg_C::dot", at::Tensor(at::TensorList, at::TensorList, bool))
GANREG_OP(noise_dot_op, "ganreg_C::noise_dot", at::Tensor(const at::Tensor&, int64_t, double))
GANREG_OP(noise_axpy_op, "ganreg_C::noise_axpy",
          at::Tensor(const OptT&, const at::Tensor&, int64_t, double, c10::IntArrayRef, at::ScalarType))
GANREG_OP(sq_diff_sum_op, "ganreg_C::sq_diff_sum", at::Tensor(const at::Tensor&, const at::Tensor&, double))
GANREG_OP(diff_scale_op, "ganreg_C::diff_scale",
          std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&))
using AugSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t);
GANREG_OP(diff_augment_op, "ganreg_C::diff_augment", AugSig)
GANREG_OP(diff_augment_adj_op, "ganreg_C::diff_augment_adj", AugSig)
using CrSig = at::Tensor(const at::Tensor&, const at::Tensor&);
GANREG_OP(cr_augment_op, "ganreg_C::cr_augment", CrSig)
GANREG_OP(cr_augment_adj_op, "ganreg_C::cr_augment_adj", CrSig)
#undef GANREG_OP

// The gradient of a tensor that entered as `like` (dtype and shape), from one computed in another dtype.
at::Tensor as_grad_of(const at::Tensor& g, const at::Tensor& like) {
  at::Tensor out = g.scalar_type() == like.scalar_type() ? g : g.to(like.scalar_type());
  return out.sizes() == like.sizes() ? out : out.reshape(like.sizes());
}

// ---------------------------------------------------------------------------------- gradnorm

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

// ------------------------------------------------------------------------------------- noise

// scale·Σ x·n  →  ∂/∂x = noise_axpy(None, gout)  (the noise is regenerated from the seed)
struct NoiseDotFn : torch::autograd::Function<NoiseDotFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t seed, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["size"] = x.sizes().vec();
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return noise_dot_op().call(x, seed, scale);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const auto size = ctx->saved_data["size"].toIntVector();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {noise_axpy_op().call(std::nullopt, gout[0], ctx->saved_data["seed"].toInt(),
                                 ctx->saved_data["scale"].toDouble(), size, dtype),
            at::Tensor(), at::Tensor()};
  }
};

// x + alpha·scale·n  →  ∂/∂x = gout, ∂/∂alpha = noise_dot(gout)
struct NoiseAxpyFn : torch::autograd::Function<NoiseAxpyFn> {
  static at::Tensor forward(AutogradContext* ctx, const OptT& x, const at::Tensor& alpha, int64_t seed, double scale,
                            c10::IntArrayRef size, at::ScalarType dtype) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["x_dtype"] = x.has_value() ? static_cast<int64_t>(x->scalar_type()) : int64_t(-1);
    ctx->saved_data["alpha_dtype"] = static_cast<int64_t>(alpha.scalar_type());
    return noise_axpy_op().call(x, alpha, seed, scale, size, dtype);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const int64_t xd = ctx->saved_data["x_dtype"].toInt();
    const bool has_x = xd >= 0;
    at::Tensor dx, dalpha;
    if (has_x && ctx->needs_input_grad(0)) dx = gout[0].to(static_cast<at::ScalarType>(xd));
    if (ctx->needs_input_grad(has_x ? 1 : 0))
      dalpha = noise_dot_op()
                   .call(gout[0], ctx->saved_data["seed"].toInt(), ctx->saved_data["scale"].toDouble())
                   .to(static_cast<at::ScalarType>(ctx->saved_data["alpha_dtype"].toInt()));
    return {dx, dalpha, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ------------------------------------------------------------------------------- consistency

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

// --------------------------------------------------------------------------------- augment

// Linear (up to DiffAugment's brightness offset) for fixed params: the backward is the adjoint
// kernel and the adjoint's backward the forward without the offset. Params never get gradients.
template <bool ADJ>
struct DiffAugmentFn : torch::autograd::Function<DiffAugmentFn<ADJ>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& fp, const at::Tensor& ip,
                            int64_t flags) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({fp, ip});
    ctx->saved_data["flags"] = flags;
    return (ADJ ? diff_augment_adj_op() : diff_augment_op()).call(x, fp, ip, flags);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const auto s = ctx->get_saved_variables();
    const int64_t flags = ctx->saved_data["flags"].toInt();
    at::Tensor d = ADJ ? diff_augment_op().call(gout[0], s[0], s[1], flags & ~int64_t(kBrightness))
                       : diff_augment_adj_op().call(gout[0], s[0], s[1], flags);
    return {d, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

template <bool ADJ>
struct CrAugmentFn : torch::autograd::Function<CrAugmentFn<ADJ>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& ip) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({ip});
    return (ADJ ? cr_augment_adj_op() : cr_augment_op()).call(x, ip);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const auto ip = ctx->get_saved_variables()[0];
    return {(ADJ ? cr_augment_op() : cr_augment_adj_op()).call(gout[0], ip), at::Tensor()};
  }
};

}  // namespace
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("sqnorm", [](at::TensorList g, const OptT& inv, double w, int64_t red) {
    return SqnormFn::apply(g, inv, w, red);
  });
  m.impl("scale", [](at::TensorList g, const at::Tensor& c, double f, bool ps) { return ScaleFn::apply(g, c, f, ps); });
  m.impl("dot", [](at::TensorList a, at::TensorList b, bool ps) { return DotFn::apply(a, b, ps); });
  m.impl("noise_dot", [](const at::Tensor& x, int64_t seed, double scale) { return NoiseDotFn::apply(x, seed, scale); });
  m.impl("noise_axpy", [](const OptT& x, const at::Tensor& alpha, int64_t seed, double scale, c10::IntArrayRef size,
                          at::ScalarType dtype) { return NoiseAxpyFn::apply(x, alpha, seed, scale, size, dtype); });
  m.impl("sq_diff_sum", [](const at::Tensor& a, const at::Tensor& b, double w) { return SqDiffSumFn::apply(a, b, w); });
  m.impl("diff_scale", [](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    auto r = DiffScaleFn::apply(a, b, c);
    return std::make_tuple(r[0], r[1]);
  });
  m.impl("diff_augment", [](const at::Tensor& x, const at::Tensor& fp, const at::Tensor& ip, int64_t flags) {
    return DiffAugmentFn<false>::apply(x, fp, ip, flags);
  });
  m.impl("diff_augment_adj", [](const at::Tensor& x, const at::Tensor& fp, const at::Tensor& ip, int64_t flags) {
    return DiffAugmentFn<true>::apply(x, fp, ip, flags);
  });
  m.impl("cr_augment", [](const at::Tensor& x, const at::Tensor& ip) { return CrAugmentFn<false>::apply(x, ip); });
  m.impl("cr_augment_adj", [](const at::Tensor& x, const at::Tensor& ip) { return CrAugmentFn<true>::apply(x, ip); });
}
