// CUDA kernel of upfirdn2d (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d; index math in common/upfirdn2d.h).
//
// A block computes a TH×TW tile of output pixels of one (n, c) plane (and loops over planes):
//  1. the filter (flipped unless flip_filter; 2-D: gain folded) is staged in shared memory once;
//  2. the input window the tile reads — at most ((T−1)·down + taps − 1)/up + 2 samples per axis,
//     the inserted zeros are never materialized — is loaded into shared memory converted to the
//     math type, zero outside the image; rows are read with 128-bit loads when the rows are
//     16-byte aligned (the window start is rounded down to a vector boundary), else coalesced scalars;
//  3. separable (1-D f): a horizontal polyphase pass over the window's rows into shared memory,
//     then the vertical polyphase pass per output; 2-D f: the 2-D polyphase sum per output. Only
//     taps meeting an input sample are visited (t ≡ −(k·down − p0) mod up);
//  4. outputs are written coalesced (threads along the row) to the contiguous NCHW output.
// Windows over the shared-memory budget (huge filters or down factors) and outputs with more tile
// rows than the grid's y limit (65,535) use a direct kernel that reads x from global memory with the
// same polyphase loops (a grid-stride loop: any size).
#include <torch/library.h>

#include "common/upfirdn2d.h"
#include "cuda/cuda_utils.cuh"

namespace ganreg {
namespace cuda {
namespace {

struct UfdArgs {
  const void* x = nullptr;
  const void* f = nullptr;  // filter in the math type, contiguous
  void* out = nullptr;
  int64_t planes = 0, C = 0, H = 0, W = 0, sn = 0, sc = 0, sh = 0, sw = 0, OH = 0, OW = 0;
  int upx = 1, upy = 1, dx = 1, dy = 1, px0 = 0, py0 = 0, fw = 1, fh = 1;
  bool separable = false, flip = false;
  double gain = 1.0;
  int TW = 64, TH = 32;      // output tile
  int in_w = 0, in_h = 0;    // shared input window (in_w a multiple of vec)
  int vec = 1;               // elements per 128-bit load (1: scalar loads)
};

template <typename T, int V>
__device__ __forceinline__ void load_vec(const T* p, T (&v)[V]) {
  const Vec<T, V> w = *reinterpret_cast<const Vec<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; ++k) v[k] = w.v[k];
}

// F[t] of the flipped (unless flip) filter, times gain for a 2-D filter.
template <typename A>
__device__ __forceinline__ A filter_tap(const UfdArgs& a, const A* f, int ty, int tx) {
  if (a.separable) return f[a.flip ? tx : a.fw - 1 - tx];
  const int sy = a.flip ? ty : a.fh - 1 - ty, sx = a.flip ? tx : a.fw - 1 - tx;
  return f[sy * a.fw + sx] * static_cast<A>(a.gain);
}

// Polyphase taps of the outputs k0 + kl (kl < tile) along one axis, in 32-bit arithmetic per output:
// with base0 = k0·down − p0, r0 = (−base0) mod up and M0 = (base0 + r0)/up (= the first input the
// tile reads), output k0 + kl starts at tap t0 = (r0 − kl·down) mod up on input M0 + mrel.
struct AxisTile {
  int r0;
  int64_t M0;
};
__device__ __forceinline__ AxisTile axis_tile(int64_t k0, int up, int down, int p0) {
  const int64_t base0 = k0 * down - p0;
  const int r0 = static_cast<int>(ufd_mod(-base0, up));
  return AxisTile{r0, (base0 + r0) / up};
}
__device__ __forceinline__ void axis_tap(const AxisTile& at, int kl, int up, int down, int& t0, int& mrel) {
  int t = (at.r0 - kl * down) % up;
  t0 = t < 0 ? t + up : t;
  mrel = (kl * down + t0 - at.r0) / up;  // a multiple of up, >= 0
}

template <typename T, typename A, int V>
__global__ void __launch_bounds__(kThreads) upfirdn2d_tile_kernel(UfdArgs a) {
  GANREG_DYNAMIC_SMEM(unsigned char, smem_raw);
  A* sf = reinterpret_cast<A*>(smem_raw);
  const int nf = a.separable ? a.fw : a.fw * a.fh;
  A* sx = sf + ((nf + 3) & ~3);
  A* sh = sx + a.in_w * a.in_h;  // separable: [in_h][TW]
  const A* fg = static_cast<const A*>(a.f);
  for (int i = threadIdx.x; i < nf; i += blockDim.x)
    sf[i] = a.separable ? filter_tap<A>(a, fg, 0, i) : filter_tap<A>(a, fg, i / a.fw, i % a.fw);

  const int64_t ox0 = static_cast<int64_t>(blockIdx.x) * a.TW, oy0 = static_cast<int64_t>(blockIdx.y) * a.TH;
  const int tw = static_cast<int>(min(static_cast<int64_t>(a.TW), a.OW - ox0));
  const int th = static_cast<int>(min(static_cast<int64_t>(a.TH), a.OH - oy0));
  const AxisTile atx = axis_tile(ox0, a.upx, a.dx, a.px0), aty = axis_tile(oy0, a.upy, a.dy, a.py0);
  const int64_t mx0 = atx.M0, my0 = aty.M0;
  const int64_t ax0 = V > 1 ? ufd_floor_div(mx0, V) * V : mx0;  // window origin (vector aligned)
  const int cx0 = static_cast<int>(mx0 - ax0);                  // window column of input mx0
  // rows of the window the tile reads
  const int rows = static_cast<int>(
      min(static_cast<int64_t>(a.in_h), ufd_in_hi(oy0 + th - 1, a.upy, a.dy, a.py0, a.fh) - my0 + 1));
  const T* xg = static_cast<const T*>(a.x);
  T* og = static_cast<T*>(a.out);
  const A gain = static_cast<A>(a.gain);

  for (int64_t pl = blockIdx.z; pl < a.planes; pl += gridDim.z) {
    const int64_t n = pl / a.C, c = pl - n * a.C;
    const T* xp = xg + n * a.sn + c * a.sc;
    T* op = og + (pl * a.OH + oy0) * a.OW + ox0;
    __syncthreads();  // the previous plane is done with sx / sh (and sf is written)
    // 2. input window → shared (zero outside the image)
    if (V > 1) {
      const int vw = a.in_w / V;
      for (int idx = threadIdx.x; idx < rows * vw; idx += blockDim.x) {
        const int r = idx / vw, cv = idx - r * vw;
        const int64_t gy = my0 + r, gx = ax0 + static_cast<int64_t>(cv) * V;
        A* d = sx + r * a.in_w + cv * V;
        if (gy >= 0 && gy < a.H && gx >= 0 && gx < a.W) {  // W % V == 0: a vector is all in or all out
          T v[V];
          load_vec<T, V>(xp + gy * a.sh + gx, v);
#pragma unroll
          for (int k = 0; k < V; ++k) d[k] = static_cast<A>(v[k]);
        } else {
#pragma unroll
          for (int k = 0; k < V; ++k) d[k] = A(0);
        }
      }
    } else {
      for (int idx = threadIdx.x; idx < rows * a.in_w; idx += blockDim.x) {
        const int r = idx / a.in_w, cc = idx - r * a.in_w;
        const int64_t gy = my0 + r, gx = ax0 + cc;
        sx[idx] = (gy >= 0 && gy < a.H && gx >= 0 && gx < a.W) ? static_cast<A>(xp[gy * a.sh + gx * a.sw]) : A(0);
      }
    }
    __syncthreads();
    if (a.separable) {
      // 3a. horizontal pass: sh[r][kx] = Σ_t F[t]·x[r][m]
      for (int idx = threadIdx.x; idx < rows * tw; idx += blockDim.x) {
        const int r = idx / tw, kx = idx - r * tw;
        int t0, mrel;
        axis_tap(atx, kx, a.upx, a.dx, t0, mrel);
        const A* row = sx + r * a.in_w + cx0 + mrel;
        A s = A(0);
        for (int t = t0, m = 0; t < a.fw; t += a.upx, ++m) s += sf[t] * row[m];
        sh[r * a.TW + kx] = s;
      }
      __syncthreads();
      // 3b. vertical pass
      for (int idx = threadIdx.x; idx < th * a.TW; idx += blockDim.x) {
        const int ky = idx / a.TW, kx = idx - ky * a.TW;
        if (kx >= tw) continue;
        int t0, mrel;
        axis_tap(aty, ky, a.upy, a.dy, t0, mrel);
        const A* col = sh + mrel * a.TW + kx;
        A s = A(0);
        for (int t = t0, m = 0; t < a.fh; t += a.upy, m += a.TW) s += sf[t] * col[m];
        op[static_cast<int64_t>(ky) * a.OW + kx] = static_cast<T>(s * gain);
      }
    } else {
      // 3. 2-D polyphase sum per output
      for (int idx = threadIdx.x; idx < th * a.TW; idx += blockDim.x) {
        const int ky = idx / a.TW, kx = idx - ky * a.TW;
        if (kx >= tw) continue;
        int ty0, ry, tx0, rx;
        axis_tap(aty, ky, a.upy, a.dy, ty0, ry);
        axis_tap(atx, kx, a.upx, a.dx, tx0, rx);
        const A* win = sx + ry * a.in_w + cx0 + rx;
        A s = A(0);
        for (int t = ty0; t < a.fh; t += a.upy, win += a.in_w) {
          const A* frow = sf + t * a.fw;
          for (int u = tx0, m = 0; u < a.fw; u += a.upx, ++m) s += frow[u] * win[m];
        }
        op[static_cast<int64_t>(ky) * a.OW + kx] = static_cast<T>(s);
      }
    }
  }
}

// Fallback without shared memory: one thread per output, x read from global memory.
template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) upfirdn2d_direct_kernel(UfdArgs a) {
  const T* xg = static_cast<const T*>(a.x);
  const A* fg = static_cast<const A*>(a.f);
  T* og = static_cast<T*>(a.out);
  const int64_t total = a.planes * a.OH * a.OW;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t kx = i % a.OW, r = i / a.OW, ky = r % a.OH, pl = r / a.OH;
    const int64_t n = pl / a.C, c = pl - n * a.C;
    const T* xp = xg + n * a.sn + c * a.sc;
    const UfdTap ty = ufd_first_tap(ky, a.upy, a.dy, a.py0);
    const UfdTap tx = ufd_first_tap(kx, a.upx, a.dx, a.px0);
    A s = A(0);
    int64_t my = ty.m0;
    for (int t = static_cast<int>(ty.t0); t < a.fh; t += a.upy, ++my) {
      if (my < 0 || my >= a.H) continue;
      A rs = A(0);
      int64_t mx = tx.m0;
      for (int u = static_cast<int>(tx.t0); u < a.fw; u += a.upx, ++mx) {
        if (mx < 0 || mx >= a.W) continue;
        const A v = static_cast<A>(xp[my * a.sh + mx * a.sw]);
        rs += (a.separable ? filter_tap<A>(a, fg, 0, u) : filter_tap<A>(a, fg, t, u)) * v;
      }
      s += a.separable ? filter_tap<A>(a, fg, 0, t) * rs : rs;
    }
    og[i] = static_cast<T>(a.separable ? s * static_cast<A>(a.gain) : s);
  }
}

size_t smem_bytes(const UfdArgs& a, size_t esize) {
  const int nf = a.separable ? a.fw : a.fw * a.fh;
  size_t n = static_cast<size_t>((nf + 3) & ~3) + static_cast<size_t>(a.in_w) * a.in_h;
  if (a.separable) n += static_cast<size_t>(a.in_h) * a.TW;
  return n * esize;
}

void window(UfdArgs& a) {
  a.in_w = static_cast<int>(((a.TW - 1) * static_cast<int64_t>(a.dx) + a.fw - 1) / a.upx + 2);
  if (a.vec > 1) a.in_w = (a.in_w + 2 * a.vec - 2) / a.vec * a.vec;  // slack for the aligned origin
  a.in_h = static_cast<int>(((a.TH - 1) * static_cast<int64_t>(a.dy) + a.fh - 1) / a.upy + 2);
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up, c10::IntArrayRef down,
                     c10::IntArrayRef padding, bool flip_filter, double gain) {
  check_cuda_tensor(x, "x");
  check_cuda_tensor(f, "f");
  const UfdGeom geo = ufd_check(x, f, up, down, padding);
  const bool separable = geo.separable;
  const int64_t fw = geo.fw, fh = geo.fh, H = geo.H, W = geo.W, OW = geo.OW, OH = geo.OH;
  TORCH_CHECK(fw <= (1 << 20) && fh <= (1 << 20) && up[0] <= (1 << 20) && up[1] <= (1 << 20) &&
                  down[0] <= (1 << 20) && down[1] <= (1 << 20) && std::abs(padding[0]) <= (int64_t(1) << 30) &&
                  std::abs(padding[2]) <= (int64_t(1) << 30),
              "upfirdn2d: filter, up/down factors or padding too large");
  DeviceGuard guard(x.device());
  at::Tensor out = new_output({x.size(0), x.size(1), OH, OW}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  if (H == 0 || W == 0) return out.zero_();
  const bool dbl = x.scalar_type() == at::kDouble;
  const at::Tensor fa = f.to(dbl ? at::kDouble : at::kFloat).contiguous();  // no-op when already so
  UfdArgs a;
  a.x = x.const_data_ptr();
  a.f = fa.const_data_ptr();
  a.out = out.data_ptr();
  a.planes = x.size(0) * x.size(1);
  a.C = x.size(1);
  a.H = H;
  a.W = W;
  a.sn = x.stride(0);
  a.sc = x.stride(1);
  a.sh = x.stride(2);
  a.sw = x.stride(3);
  a.OH = OH;
  a.OW = OW;
  a.upx = static_cast<int>(up[0]);
  a.upy = static_cast<int>(up[1]);
  a.dx = static_cast<int>(down[0]);
  a.dy = static_cast<int>(down[1]);
  a.px0 = static_cast<int>(padding[0]);
  a.py0 = static_cast<int>(padding[2]);
  a.fw = static_cast<int>(fw);
  a.fh = static_cast<int>(fh);
  a.separable = separable;
  a.flip = flip_filter;
  a.gain = gain;
  const auto stream = current_stream();
  const int dev = x.get_device();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_upfirdn2d_cuda", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    constexpr int VW = 16 / sizeof(T);
    // 128-bit row loads: unit element stride, every row start 16-byte aligned, W a multiple of VW
    const bool aligned = a.sw == 1 && W % VW == 0 && a.sh % VW == 0 && a.sn % VW == 0 && a.sc % VW == 0 &&
                         reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
    a.vec = aligned ? VW : 1;
    // output tile: 64×32, halved (rows first) until the window fits the shared-memory budget
    const size_t budget = smem_budget(dev);
    a.TW = 64;
    a.TH = 32;
    window(a);
    while (smem_bytes(a, sizeof(A)) > budget && (a.TH > 8 || a.TW > 32)) {
      if (a.TH > 8) a.TH /= 2;
      else a.TW /= 2;
      window(a);
    }
    // narrow outputs: do not waste a 64-wide tile
    while (a.TW > 32 && a.TW / 2 >= OW) {
      a.TW /= 2;
      window(a);
    }
    const size_t smem = smem_bytes(a, sizeof(A));
    const int64_t gx = ceil_div(OW, a.TW), gy = ceil_div(OH, a.TH);
    // tiles: the window fits the budget and the tiles the grid (x < 2^31, y <= kMaxGridYZ); planes
    // beyond grid.z's limit are looped over. Otherwise the direct kernel.
    if (smem <= budget && gx <= INT32_MAX && gy <= kMaxGridYZ) {
      const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                      static_cast<unsigned>(std::min<int64_t>(a.planes, kMaxGridYZ)));
      if (a.vec > 1) {
        GANREG_LAUNCH(upfirdn2d_tile_kernel<T, A, VW>, grid, kThreads, smem, stream.stream())(a);
      } else {
        GANREG_LAUNCH(upfirdn2d_tile_kernel<T, A, 1>, grid, kThreads, smem, stream.stream())(a);
      }
    } else {
      const int64_t total = a.planes * OH * OW;
      GANREG_LAUNCH(upfirdn2d_direct_kernel<T, A>, grid_for(total / kThreads + 1, dev, 16), kThreads, 0, stream.stream())(a);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace ganreg

GANREG_LIBRARY_IMPL(GANREG_DEVICE_KEY, m) { m.impl("upfirdn2d", &ganreg::cuda::upfirdn2d); }
