// CUDA kernels of ADA (adaptive discriminator augmentation): ada_augment and its adjoint
// ada_augment_adj (math in common/ada.h, shared with the CPU kernels: same formulas, same order of
// operations as ganreg_ext/reference/ada.py). Inputs any strides; outputs contiguous NCHW.
//
// Forward: one thread per output pixel (grid-stride, 64-bit indices): the pixel's Tx + Ty tap
// weights are computed once and used for every channel, then the colour matrix and the cutout.
// Adjoint: one thread per output pixel of g, scatter-adding wx·wy·h_c (h_c = keep·Σ_o color[o, c]·g_o)
// into a zeroed accumulator (the output itself for float32/float64, else a float32 buffer converted
// at the end) with atomicAdd. The order of the atomic additions is unspecified, so the adjoint (the
// forward's backward) is NOT bitwise reproducible from run to run: last-bit differences in float32
// (float64 accumulation for float64 g: the same, far below float32 precision), like torch's
// grid_sample backward; under torch.use_deterministic_algorithms(True) it raises (warns with
// warn_only=True), as torch's atomic kernels do. Exactly-zero contributions are skipped (adding ±0
// never changes a sum that starts at +0).
#include <torch/library.h>

#include "common/ada.h"
#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

using OptT = std::optional<at::Tensor>;

struct AdaArgs {
  const float* geom;   // [B, 2, 3] contiguous
  const float* color;  // [B, C, C + 1] contiguous or nullptr
  const float* cut;    // [B, 3] contiguous or nullptr
  int64_t B, C, H, W;
  int64_t sn, sc, sh, sw;  // strides of the input (x, or g for the adjoint)
  bool affine;
};

// One output pixel (flat index idx over B·H·W): its sample's transform, the taps of each axis and
// the cutout mask; the forward and the adjoint start from it.
template <typename A>
struct AdaPixel {
  int64_t b, px, yo, xo;
  AdaSample<A> s;
  A wx[kAdaMaxTaps], wy[kAdaMaxTaps];
  int ix[kAdaMaxTaps], iy[kAdaMaxTaps];
  A keep;
};

template <typename A>
__device__ __forceinline__ AdaPixel<A> ada_pixel(const AdaArgs& a, int64_t idx) {
  AdaPixel<A> p;
  const int64_t HW = a.H * a.W;
  p.b = idx / HW;
  p.px = idx - p.b * HW;
  p.yo = p.px / a.W;
  p.xo = p.px - p.yo * a.W;
  p.s = ada_sample<A>(a.geom + 6 * p.b, a.cut ? a.cut + 3 * p.b : nullptr);
  const A X = static_cast<A>(p.xo), Y = static_cast<A>(p.yo);
  ada_axis_taps<A, int>(ada_u(p.s, X, Y), p.s.kx, p.s.tx, a.W, p.wx, p.ix);
  ada_axis_taps<A, int>(ada_v(p.s, X, Y), p.s.ky, p.s.ty, a.H, p.wy, p.iy);
  p.keep = ada_keep<A>(p.s, p.xo, p.yo, a.H, a.W);
  return p;
}

// Σ_j wy_j · Σ_t wx_t · xc[iy_j·sh + ix_t·sw]
template <typename T, typename A>
__device__ __forceinline__ A resample(const T* __restrict__ xc, const AdaArgs& a, const A* wx, const int* ix, int tx,
                                      const A* wy, const int* iy, int ty) {
  A acc = A(0);
  for (int j = 0; j < ty; ++j) {
    const T* row = xc + static_cast<int64_t>(iy[j]) * a.sh;
    A s = A(0);
    for (int t = 0; t < tx; ++t) s += wx[t] * static_cast<A>(row[static_cast<int64_t>(ix[t]) * a.sw]);
    acc += wy[j] * s;
  }
  return acc;
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) ada_forward_kernel(const T* __restrict__ x, AdaArgs a, T* __restrict__ out) {
  const int64_t HW = a.H * a.W, total = a.B * HW, C = a.C;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const AdaPixel<A> p = ada_pixel<A>(a, idx);
    const int64_t b = p.b;
    const AdaSample<A>& s = p.s;
    const T* xb = x + b * a.sn;
    T* ob = out + b * C * HW + p.px;
    if (a.color != nullptr) {
      A r[kAdaMaxColor];
      for (int64_t c = 0; c < C; ++c) r[c] = resample<T, A>(xb + c * a.sc, a, p.wx, p.ix, s.tx, p.wy, p.iy, s.ty);
      const float* m = a.color + b * C * (C + 1);
      for (int64_t o = 0; o < C; ++o) {
        const float* mo = m + o * (C + 1);
        A acc = A(0);
        for (int64_t c = 0; c < C; ++c) acc += static_cast<A>(mo[c]) * r[c];
        if (a.affine) acc = acc + static_cast<A>(mo[C]);
        ob[o * HW] = static_cast<T>(s.cut ? acc * p.keep : acc);
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const A v = resample<T, A>(xb + c * a.sc, a, p.wx, p.ix, s.tx, p.wy, p.iy, s.ty);
        ob[c * HW] = static_cast<T>(s.cut ? v * p.keep : v);
      }
    }
  }
}

// acc[iy_j·W + ix_t] += wx_t · (wy_j · h)  (exact zeros skipped: adding ±0 never changes the sum)
template <typename A>
__device__ __forceinline__ void scatter(A* __restrict__ acc, int64_t W, const A* wx, const int* ix, int tx,
                                        const A* wy, const int* iy, int ty, A h) {
  for (int j = 0; j < ty; ++j) {
    A* row = acc + static_cast<int64_t>(iy[j]) * W;
    const A hy = wy[j] * h;
    for (int t = 0; t < tx; ++t) {
      const A v = wx[t] * hy;
      if (v != A(0)) atomicAdd(row + ix[t], v);
    }
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) ada_adjoint_kernel(const T* __restrict__ g, AdaArgs a, A* __restrict__ acc) {
  const int64_t HW = a.H * a.W, total = a.B * HW, C = a.C;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const AdaPixel<A> p = ada_pixel<A>(a, idx);
    const int64_t b = p.b;
    const AdaSample<A>& s = p.s;
    const T* gp = g + b * a.sn + p.yo * a.sh + p.xo * a.sw;
    A* ab = acc + b * C * HW;
    if (a.color != nullptr) {
      A gv[kAdaMaxColor];
      for (int64_t o = 0; o < C; ++o) gv[o] = static_cast<A>(gp[o * a.sc]);
      const float* m = a.color + b * C * (C + 1);
      for (int64_t c = 0; c < C; ++c) {
        A h = A(0);
        for (int64_t o = 0; o < C; ++o) h += static_cast<A>(m[o * (C + 1) + c]) * gv[o];
        scatter<A>(ab + c * HW, a.W, p.wx, p.ix, s.tx, p.wy, p.iy, s.ty, s.cut ? h * p.keep : h);
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        const A h = static_cast<A>(gp[c * a.sc]);
        scatter<A>(ab + c * HW, a.W, p.wx, p.ix, s.tx, p.wy, p.iy, s.ty, s.cut ? h * p.keep : h);
      }
    }
  }
}

at::Tensor ada_impl(const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout, bool affine,
                    bool adjoint) {
  const char* op = adjoint ? "ada_augment_adj" : "ada_augment";
  const char* xname = adjoint ? "g" : "x";
  TORCH_CHECK(on_device(x), op, ": ", xname, " must be a ", kDeviceName, ", got one on ", x.device());
  ada_check(x, geom, color, cutout, op, xname);
  DeviceGuard guard(x.device());
  at::Tensor out = new_output_contiguous(x);
  if (out.numel() == 0) return out;
  const at::Tensor gc = geom.contiguous();
  const at::Tensor cc = color.has_value() ? color->contiguous() : at::Tensor();
  const at::Tensor kc = cutout.has_value() ? cutout->contiguous() : at::Tensor();
  AdaArgs a;
  a.geom = gc.const_data_ptr<float>();
  a.color = cc.defined() ? cc.const_data_ptr<float>() : nullptr;
  a.cut = kc.defined() ? kc.const_data_ptr<float>() : nullptr;
  a.B = x.size(0);
  a.C = x.size(1);
  a.H = x.size(2);
  a.W = x.size(3);
  a.sn = x.stride(0);
  a.sc = x.stride(1);
  a.sh = x.stride(2);
  a.sw = x.stride(3);
  a.affine = affine;
  const auto stream = current_stream();
  const int64_t work = a.B * a.H * a.W;
  const int grid = grid_for(work / kThreads + 1, x.get_device(), 16);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_ada_augment_cuda", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    if (!adjoint) {
      GANREG_LAUNCH(ada_forward_kernel<T, A>, grid, kThreads, 0, stream.stream())(x.const_data_ptr<T>(), a, out.data_ptr<T>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      at::globalContext().alertNotDeterministic("ganreg_C::ada_augment_adj (CUDA: atomicAdd scatter)");
      constexpr bool same = std::is_same_v<T, A>;
      at::Tensor acc = same ? out.zero_()
                            : at::zeros(x.sizes(), x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous));
      GANREG_LAUNCH(ada_adjoint_kernel<T, A>, grid, kThreads, 0, stream.stream())(x.const_data_ptr<T>(), a, acc.data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (!same) out.copy_(acc);
    }
  });
  return out;
}

at::Tensor ada_augment(const at::Tensor& x, const at::Tensor& geom, const OptT& color, const OptT& cutout,
                       bool affine) {
  return ada_impl(x, geom, color, cutout, affine, false);
}

at::Tensor ada_augment_adj(const at::Tensor& g, const at::Tensor& geom, const OptT& color, const OptT& cutout) {
  return ada_impl(g, geom, color, cutout, false, true);
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("ada_augment", &ganreg::cuda::ada_augment);
  m.impl("ada_augment_adj", &ganreg::cuda::ada_augment_adj);
}
