// What every family's autograd file (csrc/autograd/<family>.cpp) shares: typed handles of the ops and
// small helpers. The autograd of every fused backend's ops is this C++ (TORCH_LIBRARY_IMPL(GANREG_NS,
// Autograd), one file per family), compiled once per op namespace: ganreg_C (the CPU/CUDA kernels),
// ganreg_triton (ganreg_ext._triton_autograd; the kernels are the Triton launchers, registered from
// Python) and the tests' ganreg_emu. One registered op per kernel, no Python frame in the autograd.
// Each forward calls the op below the autograd key (the CPU/CUDA kernel, the Triton launcher, or the
// fake kernel under torch.compile); each backward is made of the family's other registered ops, called through the dispatcher WITH
// autograd, so every order of derivative works:
//   sqnorm ↔ scale ↔ dot,  noise_dot ↔ noise_axpy,  sq_diff_sum → diff_scale ↺,
//   diff_augment ↔ diff_augment_adj,  cr_augment ↔ cr_augment_adj,  ada_augment ↔ ada_augment_adj.
#pragma once

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "../common/op_namespace.h"  // GANREG_NS: ganreg_C, ganreg_emu (csrc/emu) or ganreg_triton (setup.py)

#include "../common/augment.h"
#include "../common/bias_act.h"
#include "../common/reduce.h"

namespace ganreg {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Tensors = std::vector<at::Tensor>;
using OptT = std::optional<at::Tensor>;

template <typename Sig>
inline c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// Typed handles of the ops (looked up once).
#define GANREG_OP(fn, name, ...)                      \
  inline c10::TypedOperatorHandle<__VA_ARGS__>& fn() {  \
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
inline at::Tensor as_grad_of(const at::Tensor& g, const at::Tensor& like) {
  at::Tensor out = g.scalar_type() == like.scalar_type() ? g : g.to(like.scalar_type());
  return out.sizes() == like.sizes() ? out : out.reshape(like.sizes());
}

}  // namespace
}  // namespace ganreg
