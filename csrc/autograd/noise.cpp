// Autograd of the noise ops (docs/ARCHITECTURE.md): noise_dot ↔ noise_axpy.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

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

}  // namespace
}  // namespace ganreg

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("noise_dot", [](const at::Tensor& x, int64_t seed, double scale) { return NoiseDotFn::apply(x, seed, scale); });
  m.impl("noise_axpy", [](const OptT& x, const at::Tensor& alpha, int64_t seed, double scale, c10::IntArrayRef size,
                          at::ScalarType dtype) { return NoiseAxpyFn::apply(x, alpha, seed, scale, size, dtype); });
}
