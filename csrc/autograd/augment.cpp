// Autograd of the augment ops (docs/ARCHITECTURE.md): diff_augment ↔ diff_augment_adj, cr_augment ↔ cr_augment_adj.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

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

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("diff_augment", [](const at::Tensor& x, const at::Tensor& fp, const at::Tensor& ip, int64_t flags) {
    return DiffAugmentFn<false>::apply(x, fp, ip, flags);
  });
  m.impl("diff_augment_adj", [](const at::Tensor& x, const at::Tensor& fp, const at::Tensor& ip, int64_t flags) {
    return DiffAugmentFn<true>::apply(x, fp, ip, flags);
  });
  m.impl("cr_augment", [](const at::Tensor& x, const at::Tensor& ip) { return CrAugmentFn<false>::apply(x, ip); });
  m.impl("cr_augment_adj", [](const at::Tensor& x, const at::Tensor& ip) { return CrAugmentFn<true>::apply(x, ip); });
}
