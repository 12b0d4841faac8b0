// Autograd of the upfirdn2d ops (docs/ARCHITECTURE.md): upfirdn2d ↺ (its adjoint is an upfirdn2d).
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

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

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("upfirdn2d", [](const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up, c10::IntArrayRef down,
                         c10::IntArrayRef pad, bool flip, double gain) {
    return Upfirdn2dFn::apply(x, f, up, down, pad, flip, gain);
  });
}
