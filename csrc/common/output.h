// Output allocation for every kernel (host code, CPU and CUDA): NaN-filled while the tests' poison
// flag is on, and large CPU outputs from the reuse cache of cpu/alloc.cpp (docs/memory.md).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>

namespace ganreg {

bool poison_enabled();

// Large CPU outputs: a reuse cache of huge-page blocks (cpu/alloc.cpp explains why).
constexpr int64_t kReuseBytes = int64_t(4) << 20;
at::Tensor empty_reuse(at::IntArrayRef size, at::IntArrayRef strides, at::ScalarType dtype);
bool reuse_enabled();

inline at::Tensor poisoned(at::Tensor out) {
  if (poison_enabled() && out.is_floating_point()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

// Output allocation for every kernel: NaN-filled when the poison flag is on (tests).
inline at::Tensor new_output(at::IntArrayRef size, const at::TensorOptions& opts) {
  const int64_t bytes = c10::multiply_integers(size) * static_cast<int64_t>(opts.dtype().itemsize());
  if (opts.device().is_cpu() && bytes >= kReuseBytes && reuse_enabled()) {
    const at::Tensor meta = at::empty(size, opts.device(at::kMeta));  // the strides of the memory format
    return poisoned(empty_reuse(size, meta.strides(), meta.scalar_type()));
  }
  return poisoned(at::empty(size, opts));
}

// Like torch.empty_like (preserve_format: dense inputs keep their strides).
inline at::Tensor new_output_like(const at::Tensor& t) {
  if (t.is_cpu() && t.nbytes() >= static_cast<size_t>(kReuseBytes) && reuse_enabled()) {
    const at::Tensor meta = at::empty_like(t, t.options().device(at::kMeta));
    return poisoned(empty_reuse(t.sizes(), meta.strides(), t.scalar_type()));
  }
  return poisoned(at::empty_like(t));
}

inline at::Tensor new_output_contiguous(const at::Tensor& t) {
  return new_output(t.sizes(), t.options().memory_format(at::MemoryFormat::Contiguous));
}

}  // namespace ganreg
