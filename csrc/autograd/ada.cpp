// Autograd of the ada ops (docs/ARCHITECTURE.md): ada_augment ↔ ada_augment_adj.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, or the fake kernel under
// torch.compile); each backward is made of the family's registered ops called WITH autograd, so
// every order of derivative works. Schemas: csrc/ops.cpp.
#include "common.h"

namespace ganreg {
namespace {

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

}  // namespace
}  // namespace ganreg

GANREG_LIBRARY_IMPL(Autograd, m) {
  using namespace ganreg;
  using OptT = std::optional<at::Tensor>;
  m.impl("ada_augment", [](const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout,
                           bool affine) { return AdaAugmentFn<false>::apply(x, geom, color, cutout, affine); });
  m.impl("ada_augment_adj", [](const at::Tensor& g, const at::Tensor& geom, const OptT& color, const OptT& cutout) {
    return AdaAugmentFn<true>::apply(g, geom, color, cutout, false);
  });
}
