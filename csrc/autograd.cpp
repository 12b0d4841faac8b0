// Autograd of the native ops, in C++ (TORCH_LIBRARY_IMPL(ganreg_C, Autograd)): one registered op per
// kernel, no Python frame in the forward, backward or double backward. Each forward calls the op
// below the autograd key (the CPU/CUDA kernel, or the fake kernel under torch.compile); each
// backward is made of the family's other registered ops, called through the dispatcher WITH
// autograd, so every order of derivative works:
//   sqnorm ↔ scale ↔ dot,  noise_dot ↔ noise_axpy,  sq_diff_sum → diff_scale ↺,
//   diff_augment ↔ diff_augment_adj,  cr_augment ↔ cr_augment_adj,  ada_augment ↔ ada_augment_adj.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "common/op_namespace.h"  // GANREG_NS: ganreg_C, or ganreg_emu (csrc/emu)

#include "common/augment.h"
#include "common/bias_act.h"
#include "common/reduce.h"

namespace ganreg {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Tensors = std::vector<at::Tensor>;
using OptT = std::optional<at::Tensor>;


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
GANREG_OP(sqnorm_op, GANREG_NS_STR "::sqnorm", at::Tensor(at::TensorList, const OptT&, double, int64_t))
GANREG_OP(scale_op, GANREG_NS_STR "::scale", Tensors(at::TensorList, const at::Tensor&, double, bool))
GANREG_OP(dot_op, GANREG_NS_STR "::dot", at::Tensor(at::TensorList, at::TensorList, bool))
GANREG_OP(noise_dot_op, GANREG_NS_STR "::noise_dot", at::Tensor(const at::Tensor&, int64_t, double))
GANREG_OP(noise_axpy_op, GANREG_NS_STR "::noise_axpy",
          at::Tensor(const OptT&, const at::Tensor&, int64_t, double, c10::IntArrayRef, at::ScalarType))
GANREG_OP(sq_diff_sum_op, GANREG_NS_STR "::sq_diff_sum", at::Tensor(const at::Tensor&, const at::Tensor&, double))
GANREG_OP(diff_scale_op, GANREG_NS_STR "::diff_scale",
          std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&))
GANREG_OP(bias_act_op, GANREG_NS_STR "::bias_act",
          at::Tensor(const at::Tensor&, const OptT&, int64_t, int64_t, double, double, double))
GANREG_OP(bias_act_grad_op, GANREG_NS_STR "::bias_act_grad",
          at::Tensor(const OptT&, const OptT&, const OptT&, at::TensorList, int64_t, int64_t, double, double, double,
                     int64_t))
GANREG_OP(upfirdn2d_op, GANREG_NS_STR "::upfirdn2d",
          at::Tensor(const at::Tensor&, const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, bool,
                     double))
using AugSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t);
GANREG_OP(diff_augment_op, GANREG_NS_STR "::diff_augment", AugSig)
GANREG_OP(diff_augment_adj_op, GANREG_NS_STR "::diff_augment_adj", AugSig)
using CrSig = at::Tensor(const at::Tensor&, const at::Tensor&);
GANREG_OP(cr_augment_op, GANREG_NS_STR "::cr_augment", CrSig)
GANREG_OP(cr_augment_adj_op, GANREG_NS_STR "::cr_augment_adj", CrSig)
GANREG_OP(ada_augment_op, GANREG_NS_STR "::ada_augment",
          at::Tensor(const at::Tensor&, const at::Tensor&, const OptT&, const OptT&, bool))
GANREG_OP(ada_augment_adj_op, GANREG_NS_STR "::ada_augment_adj",
          at::Tensor(const at::Tensor&, const at::Tensor&, const OptT&, const OptT&))
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

// ------------------------------------------------------------------------------------- ADA
// Affine in the image for fixed params: the backward of ada_augment is the adjoint kernel, and the
// adjoint's backward is ada_augment without the colour offset (affine=false). geom/color/cutout are
// constants (no gradient); color and cutout may be None (saved as undefined tensors).
template <bool ADJ>
struct AdaAugmentFn : torch::autograd::Function<AdaAugmentFn<ADJ>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& geom, const OptT& color,
                            const OptT& cutout, bool affine) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({geom, color.value_or(at::Tensor()), cutout.value_or(at::Tensor())});
    return ADJ ? ada_augment_adj_op().call(x, geom, color, cutout)
               : ada_augment_op().call(x, geom, color, cutout, affine);
  }
  static variable_list backward(AutogradContext* ctx, variable_list gout) {
    const auto s = ctx->get_saved_variables();
    auto opt = [](const at::Tensor& t) { return t.defined() ? OptT(t) : OptT(); };
    at::Tensor d = ADJ ? ada_augment_op().call(gout[0], s[0], opt(s[1]), opt(s[2]), false)
                       : ada_augment_adj_op().call(gout[0], s[0], opt(s[1]), opt(s[2]));
    return {d, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ---------------------------------------------------------------------------------- bias_act
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
  return dx.sum(dims).to(dtype);
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

// --------------------------------------------------------------------------------- upfirdn2d
// Linear in x; the adjoint is an upfirdn2d with up/down swapped, the filter flipped and the padding
// [taps − p0 − 1, n·up − out·down + p0 − up + 1] per axis. The filter is a constant.

struct Upfirdn2dFn : torch::autograd::Function<Upfirdn2dFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up,
                            c10::IntArrayRef down, c10::IntArrayRef pad, bool flip, double gain) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor y = upfirdn2d_op().call(x, f, up, down, pad, flip, gain);
    const int64_t fw = f.size(-1), fh = f.size(0);
    const int64_t w = x.size(3), h = x.size(2), ow = y.size(3), oh = y.size(2);
    ctx->save_for_backward({f});
    ctx->saved_data["up"] = up.vec();
    ctx->saved_data["down"] = down.vec();
    ctx->saved_data["pad"] = std::vector<int64_t>{fw - pad[0] - 1, w * up[0] - ow * down[0] + pad[0] - up[0] + 1,
                                                  fh - pad[2] - 1, h * up[1] - oh * down[1] + pad[2] - up[1] + 1};
    ctx->saved_data["flip"] = flip;
    ctx->saved_data["gain"] = gain;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list dy) {
    const at::Tensor f = ctx->get_saved_variables()[0];
    const auto up = ctx->saved_data["up"].toIntVector(), down = ctx->saved_data["down"].toIntVector();
    const auto pad = ctx->saved_data["pad"].toIntVector();
    at::Tensor dx = upfirdn2d_op().call(dy[0], f, down, up, pad, !ctx->saved_data["flip"].toBool(),
                                        ctx->saved_data["gain"].toDouble());
    return {dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace
}  // namespace ganreg

namespace ganreg {
namespace {
// The fused penalties' device-agnostic forward (CPU and CUDA keys; fake kernels in Python).
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

#ifdef GANREG_WITH_CUDA
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
  m.impl("ada_augment", [](const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout,
                           bool affine) { return AdaAugmentFn<false>::apply(x, geom, color, cutout, affine); });
  m.impl("ada_augment_adj", [](const at::Tensor& g, const at::Tensor& geom, const OptT& color, const OptT& cutout) {
    return AdaAugmentFn<true>::apply(g, geom, color, cutout, false);
  });
  m.impl("bias_act", [](const at::Tensor& x, const OptT& b, int64_t dim, int64_t act, double alpha, double gain,
                        double clamp) { return BiasActFn::apply(x, b, dim, act, alpha, gain, clamp); });
  m.impl("bias_act_grad", [](const OptT& x, const OptT& b, const OptT& y, at::TensorList mults, int64_t dim,
                             int64_t act, double alpha, double gain, double clamp, int64_t order) {
    return BiasActGradFn::apply(x, b, y, mults, dim, act, alpha, gain, clamp, order);
  });
  m.impl("upfirdn2d", [](const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up, c10::IntArrayRef down,
                         c10::IntArrayRef pad, bool flip, double gain) {
    return Upfirdn2dFn::apply(x, f, up, down, pad, flip, gain);
  });
}
