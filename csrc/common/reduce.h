// Iteration plans (stride-sorted, coalesced views of one sample) and fixed tiling for deterministic
// reductions. Plan/tiling are plain structs usable on both devices; the builders are host code
// (parsed by nvcc in both passes). Output allocation: common/output.h.
#pragma once

#include <cstdint>

#include "macros.h"

namespace ganreg {

// Accumulation type: float for float16/bfloat16/float32, double for float64 (both devices).
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

// Reduction codes of the fused reductions (ganreg_ext/_contract.py RED_*): per-sample [B], Σ_b,
// mean_b, or the sum of everything (each tensor one sample).
enum Reduction : int64_t { kRedNone = 0, kRedSum = 1, kRedMean = 2, kRedTotal = 3 };

constexpr int kMaxDims = 8;  // coalesced sample dims (more are rejected with a clear message)
constexpr int kMaxOps = 4;   // operands sharing one iteration order
// Fixed reduction tile (elements): partial sums per (tensor, sample, chunk) are reduced in a fixed
// order, so results do not depend on the number of threads / blocks.
constexpr int64_t kChunk = 16384;

// One sample of up to kMaxOps operands as `ndim` dims (outermost first), same element order for all.
struct Plan {
  int ndim = 1;
  int nops = 1;
  int64_t B = 1;  // samples
  int64_t n = 0;  // elements per sample
  int64_t sizes[kMaxDims] = {0};
  int64_t strides[kMaxOps][kMaxDims] = {{0}};
  int64_t bstride[kMaxOps] = {0};
};

// Element offset of operand `op` for in-sample element e (plan order).
GANREG_HD int64_t plan_offset(const Plan& p, int op, int64_t e) {
  int64_t off = 0;
  for (int d = p.ndim - 1; d > 0; --d) {
    const int64_t sz = p.sizes[d];
    const int64_t q = e / sz;
    off += (e - q * sz) * p.strides[op][d];
    e = q;
  }
  return off + e * p.strides[op][0];
}

GANREG_HD bool plan_dense(const Plan& p, int op) { return p.ndim == 1 && p.strides[op][0] == 1; }

}  // namespace ganreg

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace ganreg {

// Build a plan over `tensors` (same shape). per_sample: dim 0 is the batch; otherwise the whole
// tensor is one sample. reorder: sort sample dims by operand 0's strides (largest first) so dense
// layouts (channels_last, any permutation) are read in memory order; otherwise logical order.
inline Plan make_plan(const std::vector<at::Tensor>& tensors, bool per_sample, bool reorder, const char* what) {
  TORCH_CHECK(!tensors.empty() && (int)tensors.size() <= kMaxOps, what, ": internal: bad operand count");
  const at::Tensor& t0 = tensors[0];
  for (const auto& t : tensors)
    TORCH_CHECK(t.sizes() == t0.sizes(), what, ": tensors must have the same shape, got ", t0.sizes(), " and ",
                t.sizes());
  Plan p;
  p.nops = (int)tensors.size();
  const int64_t D = t0.dim();
  int first = 0;
  if (per_sample) {
    TORCH_CHECK(D >= 1, what, ": per-sample tensors need a batch dimension, got a 0-d tensor");
    p.B = t0.size(0);
    for (int o = 0; o < p.nops; ++o) p.bstride[o] = tensors[o].stride(0);
    first = 1;
  }
  std::vector<int64_t> dims;
  for (int64_t d = first; d < D; ++d)
    if (t0.size(d) != 1) dims.push_back(d);
  if (reorder) {
    std::stable_sort(dims.begin(), dims.end(), [&](int64_t a, int64_t b) { return t0.stride(a) > t0.stride(b); });
  }
  // coalesce (outer, inner) pairs that are contiguous for every operand
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides(p.nops);
  for (int64_t d : dims) {
    if (!sizes.empty()) {
      bool ok = true;
      for (int o = 0; o < p.nops; ++o)
        ok = ok && strides[o].back() == tensors[o].stride(d) * tensors[o].size(d);
      if (ok) {
        sizes.back() *= t0.size(d);
        for (int o = 0; o < p.nops; ++o) strides[o].back() = tensors[o].stride(d);
        continue;
      }
    }
    sizes.push_back(t0.size(d));
    for (int o = 0; o < p.nops; ++o) strides[o].push_back(tensors[o].stride(d));
  }
  if (sizes.empty()) {
    sizes.push_back(1);
    for (int o = 0; o < p.nops; ++o) strides[o].push_back(1);
  }
  TORCH_CHECK((int)sizes.size() <= kMaxDims, what, ": at most ", kMaxDims,
              " non-mergeable dimensions are supported, got a tensor of shape ", t0.sizes(), " strides ",
              t0.strides());
  p.ndim = (int)sizes.size();
  p.n = 1;
  for (int d = 0; d < p.ndim; ++d) {
    p.sizes[d] = sizes[d];
    p.n *= sizes[d];
    for (int o = 0; o < p.nops; ++o) p.strides[o][d] = strides[o][d];
  }
  return p;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Checks of a tensor-list argument shared by the CPU and CUDA kernels: non-empty, check_one(tensor)
// (device, dtype) on each, and one batch size when per_sample. Messages name the argument.
template <typename F>
inline void check_list(const std::vector<at::Tensor>& xs, const char* name, bool per_sample, F&& check_one) {
  TORCH_CHECK(!xs.empty(), name, " must be a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) {
    check_one(xs[i]);
    if (per_sample) {
      TORCH_CHECK(xs[i].dim() >= 1, name, "[", i, "] must have a batch dimension, got a 0-d tensor");
      TORCH_CHECK(xs[i].size(0) == xs[0].size(0), name, "[", i, "] has batch size ", xs[i].size(0), ", expected ",
                  xs[0].size(0));
    }
  }
}

// dot's lists a and b pair up tensor by tensor.
inline void check_paired(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys) {
  TORCH_CHECK(xs.size() == ys.size(), "dot: a and b must have the same length, got ", xs.size(), " and ", ys.size());
  for (size_t i = 0; i < xs.size(); ++i)
    TORCH_CHECK(xs[i].sizes() == ys[i].sizes(), "dot: b[", i, "] must have the shape of a[", i, "] ", xs[i].sizes(),
                ", got ", ys[i].sizes());
}

}  // namespace ganreg
