// CUDA kernels of the augmentation family: DiffAugment forward/adjoint (one thread per output
// pixel, all channels; per-sample means from deterministic tile reductions) and the CR transform
// forward/adjoint (one thread per element). Outputs contiguous NCHW, inputs any strides.
#include <torch/library.h>

#include "common/augment.h"
#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

struct Img {
  int64_t B, C, H, W, sn, sc, sh, sw;
};

Img img_of(const at::Tensor& x, const char* name) {
  check_cuda_tensor(x, name);
  TORCH_CHECK(x.dim() == 4, name, " must be NCHW (4 dimensions), got shape ", x.sizes());
  return Img{x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
}

void check_params(const at::Tensor& p, const at::Tensor& x, const char* name, at::ScalarType dt, int64_t B,
                  int64_t cols) {
  TORCH_CHECK(p.device() == x.device(), name, " must be on ", x.device(), ", got ", p.device());
  TORCH_CHECK(p.scalar_type() == dt, name, " must be ", dt, ", got ", p.scalar_type());
  TORCH_CHECK(p.dim() == 2 && p.size(0) == B && p.size(1) == cols, name, " must have shape [", B, ", ", cols,
              "], got ", p.sizes());
}

template <typename T>
__device__ __forceinline__ acc_t<T> ld(const T* x, const Img& g, int64_t b, int64_t c, int64_t r, int64_t q) {
  return static_cast<acc_t<T>>(x[b * g.sn + c * g.sc + r * g.sh + q * g.sw]);
}

// Per-sample Σ of the adjoint's h0 = T^T(mask·g): fixed tiles (b, pixel chunk) → parts[b*K + k].
template <typename T>
__global__ void __launch_bounds__(kThreads) masked_sum_kernel(const T* __restrict__ g, Img im,
                                                              const float* __restrict__ fp,
                                                              const int32_t* __restrict__ ip, int64_t flags, int64_t K,
                                                              int64_t chunk, acc_t<T>* __restrict__ parts) {
  using A = acc_t<T>;
  const int64_t npix = im.H * im.W;
  for (int64_t t = blockIdx.x; t < im.B * K; t += gridDim.x) {
    const int64_t b = t / K, k = t % K;
    const auto D = diffaug_sample<A>(fp + 3 * b, ip + 4 * b, flags, im.H, im.W);
    const int64_t s = k * chunk, e = s + chunk < npix ? s + chunk : npix;
    A acc = A(0);
    for (int64_t pix = s + threadIdx.x; pix < e; pix += blockDim.x) {
      const int64_t i = pix / im.W, j = pix - i * im.W;  // output position of g
      const int64_t p = i + D.tx, q = j + D.ty;             // where it lands in h0
      if (p < 0 || p >= im.H || q < 0 || q >= im.W || diffaug_cut(D, i, j)) continue;
      for (int64_t c = 0; c < im.C; ++c) acc += ld<T>(g, im, b, c, i, j);
    }
    acc = block_sum<A>(acc);
    if (threadIdx.x == 0) parts[t] = acc;
  }
}

template <typename A>
__global__ void __launch_bounds__(kThreads) sum_rows_kernel(const A* __restrict__ parts, int64_t B, int64_t K,
                                                            A* __restrict__ out) {
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    A acc = A(0);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) acc += parts[b * K + k];
    acc = block_sum<A>(acc);
    if (threadIdx.x == 0) out[b] = acc;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) diff_augment_kernel(const T* __restrict__ x, Img im,
                                                                const float* __restrict__ fp,
                                                                const int32_t* __restrict__ ip, int64_t flags,
                                                                const acc_t<T>* __restrict__ sums, bool adjoint,
                                                                T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t C = im.C, H = im.H, W = im.W, npix = H * W;
  const bool sat = flags & kSaturation, con = flags & kContrast;
  const A invC = A(1) / static_cast<A>(C), invN = A(1) / static_cast<A>(C * npix);
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < im.B * npix;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / npix, pix = idx - b * npix, i = pix / W, j = pix - i * W;
    const auto D = diffaug_sample<A>(fp + 3 * b, ip + 4 * b, flags, H, W);
    T* o = out + b * C * npix + pix;
    if (!adjoint) {
      const int64_t si = i + D.tx, sj = j + D.ty;
      if (si < 0 || si >= H || sj < 0 || sj >= W || diffaug_cut(D, i, j)) {
        for (int64_t c = 0; c < C; ++c) o[c * npix] = static_cast<T>(0);
        continue;
      }
      const A M = con ? sums[b] * invN + D.bright : A(0);
      A mc = A(0);
      if (sat) {
        for (int64_t c = 0; c < C; ++c) mc += ld<T>(x, im, b, c, si, sj) + D.bright;
        mc *= invC;
      }
      for (int64_t c = 0; c < C; ++c)
        o[c * npix] = static_cast<T>(diffaug_colour<A>(ld<T>(x, im, b, c, si, sj) + D.bright, mc, M, flags, D));
    } else {
      const int64_t gi = i - D.tx, gj = j - D.ty;
      const bool ok = gi >= 0 && gi < H && gj >= 0 && gj < W && !diffaug_cut(D, gi, gj);
      const A M = con ? sums[b] * invN : A(0);
      const A k = D.con, sv = D.sat;
      A mc = A(0);
      if (sat) {
        if (ok)
          for (int64_t c = 0; c < C; ++c) mc += ld<T>(x, im, b, c, gi, gj);
        mc *= invC;
        if (con) mc = k * mc + (A(1) - k) * M;
      }
      for (int64_t c = 0; c < C; ++c) {
        A h = ok ? ld<T>(x, im, b, c, gi, gj) : A(0);
        if (con) h = k * h + (A(1) - k) * M;
        if (sat) h = sv * h + (A(1) - sv) * mc;
        o[c * npix] = static_cast<T>(h);
      }
    }
  }
}

at::Tensor diff_augment_impl(const at::Tensor& x, const at::Tensor& fparams0, const at::Tensor& iparams0,
                             int64_t flags, bool adjoint) {
  const Img im = img_of(x, adjoint ? "g" : "x");
  check_params(fparams0, x, "fparams", at::kFloat, im.B, 3);
  check_params(iparams0, x, "iparams", at::kInt, im.B, 4);
  TORCH_CHECK(flags >= 0 && flags < 32, "flags must be a bit set of BRIGHTNESS..CUTOUT (0..31), got ", flags);
  DeviceGuard guard(x.device());
  at::Tensor out = new_output_contiguous(x);
  if (x.numel() == 0) return out;
  const at::Tensor fp = fparams0.contiguous(), ip = iparams0.contiguous();
  const auto stream = current_stream();
  const int dev = x.get_device();
  const auto adt = acc_dtype(x.scalar_type());
  at::Tensor sums;
  if (flags & kContrast) {
    if (!adjoint) {
      sums = multi_reduce(kSum, {x}, {}, kRedNone, 1.0, Scalar{}, "diff_augment");
    } else {
      const int64_t npix = im.H * im.W;
      const int64_t chunk = kChunk / (im.C > 0 ? im.C : 1) > 256 ? kChunk / im.C : 256;
      const int64_t K = (npix + chunk - 1) / chunk;
      at::Tensor parts = at::empty({im.B * K}, x.options().dtype(adt));
      sums = at::empty({im.B}, x.options().dtype(adt));
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_diffaug_sum", [&] {
        using A = acc_t<scalar_t>;
        GANREG_LAUNCH(masked_sum_kernel<scalar_t>, grid_for(im.B * K, dev), kThreads, 0, stream.stream())(
            x.const_data_ptr<scalar_t>(), im, fp.const_data_ptr<float>(), ip.const_data_ptr<int32_t>(), flags, K,
            chunk, parts.data_ptr<A>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        GANREG_LAUNCH(sum_rows_kernel<A>, grid_for(im.B, dev, 32), kThreads, 0, stream.stream())(parts.data_ptr<A>(), im.B, K,
                                                                                      sums.data_ptr<A>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_diff_augment_cuda", [&] {
    using A = acc_t<scalar_t>;
    const int64_t work = im.B * im.H * im.W;
    GANREG_LAUNCH(diff_augment_kernel<scalar_t>, grid_for(work / kThreads + 1, dev, 16), kThreads, 0, stream.stream())(
        x.const_data_ptr<scalar_t>(), im, fp.const_data_ptr<float>(), ip.const_data_ptr<int32_t>(), flags,
        sums.defined() ? sums.const_data_ptr<A>() : nullptr, adjoint, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor diff_augment(const at::Tensor& x, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(x, fparams, iparams, flags, false);
}

at::Tensor diff_augment_adj(const at::Tensor& g, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(g, fparams, iparams, flags, true);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) cr_kernel(const T* __restrict__ x, Img im, const int32_t* __restrict__ ip,
                                                      bool adjoint, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t C = im.C, H = im.H, W = im.W, total = im.B * C * H * W;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = idx % W, i = (idx / W) % H, c = (idx / (W * H)) % C, b = idx / (W * H * C);
    const bool flip = ip[3 * b] != 0;
    const int64_t tx = ip[3 * b + 1], ty = ip[3 * b + 2];
    if (!adjoint) {
      int64_t r, q;
      cr_source(i, j, H, W, flip, tx, ty, &r, &q);
      out[idx] = x[b * im.sn + c * im.sc + r * im.sh + q * im.sw];
    } else {
      int64_t rows[3], cols[3];
      const int nr = cr_preimages(i, H, tx, rows);
      const int nc = cr_preimages(flip ? W - 1 - j : j, W, ty, cols);
      A s = A(0);
      for (int a = 0; a < nr; ++a)
        for (int e = 0; e < nc; ++e) s += ld<T>(x, im, b, c, rows[a], cols[e]);
      out[idx] = static_cast<T>(s);
    }
  }
}

at::Tensor cr_impl(const at::Tensor& x, const at::Tensor& iparams0, bool adjoint) {
  const Img im = img_of(x, adjoint ? "g" : "x");
  check_params(iparams0, x, "iparams", at::kInt, im.B, 3);
  DeviceGuard guard(x.device());
  at::Tensor out = new_output_contiguous(x);
  const int64_t total = x.numel();
  if (total == 0) return out;
  const at::Tensor ip = iparams0.contiguous();
  const auto stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_cr_augment_cuda", [&] {
    GANREG_LAUNCH(cr_kernel<scalar_t>, grid_for(total / kThreads + 1, x.get_device(), 16), kThreads, 0, stream.stream())(
        x.const_data_ptr<scalar_t>(), im, ip.const_data_ptr<int32_t>(), adjoint, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor cr_augment(const at::Tensor& x, const at::Tensor& iparams) { return cr_impl(x, iparams, false); }
at::Tensor cr_augment_adj(const at::Tensor& g, const at::Tensor& iparams) { return cr_impl(g, iparams, true); }

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) {
  m.impl("diff_augment", &ganreg::cuda::diff_augment);
  m.impl("diff_augment_adj", &ganreg::cuda::diff_augment_adj);
  m.impl("cr_augment", &ganreg::cuda::cr_augment);
  m.impl("cr_augment_adj", &ganreg::cuda::cr_augment_adj);
}
