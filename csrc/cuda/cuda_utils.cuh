// CUDA helpers: warp/block reductions with shuffles (fixed order ⇒ deterministic), launch sizing
// from the SM count, scalars read inside kernels, and the multi-tensor tile descriptors, passed to
// kernels BY VALUE (no host→device copy: CUDA-graph capture safe).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>
#ifdef GANREG_CUDA_EMU
#include "emu/cuda_emu.h"  // the test-only build on the CPU (csrc/emu): device code runs on fibers
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/op_namespace.h"
#include "common/reduce.h"
#include "common/output.h"

// ---------------------------------------------------------------- what both compilers read
// A kernel launch both nvcc and the emulation build (g++, -DGANREG_CUDA_EMU) compile:
//   GANREG_LAUNCH(kernel<T, A>, grid, block, smem, stream)(args...)
// nvcc: kernel<T, A><<<grid, block, smem, stream>>>(args...). The kernel may be a template-id with
// up to 4 arguments (the macro counts its arguments; the last four are the launch configuration).
#define GANREG_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define GANREG_NARGS(...) GANREG_NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1)
#define GANREG_CAT_(a, b) a##b
#define GANREG_CAT(a, b) GANREG_CAT_(a, b)
#define GANREG_LAUNCH(...) GANREG_CAT(GANREG_LAUNCH_, GANREG_NARGS(__VA_ARGS__))(__VA_ARGS__)
#ifdef GANREG_CUDA_EMU
#define GANREG_LAUNCH_AT_(name, g, b, s, st) ::ganreg::emu::LaunchSite(g, b, s, st, name, __FILE__, __LINE__)
#define GANREG_LAUNCH_5(k, g, b, s, st) GANREG_LAUNCH_AT_(#k, g, b, s, st).bind(&k)
#define GANREG_LAUNCH_6(k, t1, g, b, s, st) GANREG_LAUNCH_AT_(#k "," #t1, g, b, s, st).bind(&k, t1)
#define GANREG_LAUNCH_7(k, t1, t2, g, b, s, st) GANREG_LAUNCH_AT_(#k "," #t1 "," #t2, g, b, s, st).bind(&k, t1, t2)
#define GANREG_LAUNCH_8(k, t1, t2, t3, g, b, s, st) \
  GANREG_LAUNCH_AT_(#k "," #t1 "," #t2 "," #t3, g, b, s, st).bind(&k, t1, t2, t3)
// dynamic shared memory: exactly the launch's bytes (NaN-filled per block, canary after it)
#define GANREG_DYNAMIC_SMEM(T, name) T* const name = static_cast<T*>(::ganreg::emu::dynamic_smem())
// the kernels register for CPU tensors in the emulation module's namespace (-DGANREG_NS=ganreg_emu)
#define GANREG_DEVICE_KEY CPU
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)  // the emulated launch throws its errors itself
#else
#define GANREG_LAUNCH_5(k, g, b, s, st) k<<<g, b, s, st>>>
#define GANREG_LAUNCH_6(k, t1, g, b, s, st) k, t1<<<g, b, s, st>>>
#define GANREG_LAUNCH_7(k, t1, t2, g, b, s, st) k, t1, t2<<<g, b, s, st>>>
#define GANREG_LAUNCH_8(k, t1, t2, t3, g, b, s, st) k, t1, t2, t3<<<g, b, s, st>>>
#define GANREG_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]
#define GANREG_DEVICE_KEY CUDA
#endif

namespace ganreg {
namespace cuda {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Sum over the warp; the result is valid in lane 0. Fixed shuffle tree ⇒ deterministic.
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block; the result is valid in thread 0. Fixed shuffle tree ⇒ deterministic.
template <typename A>
__device__ __forceinline__ A block_sum(A v) {
  __shared__ A warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : A(0);
  if (warp == 0) v = warp_sum(v);
  __syncthreads();  // warp_sums may be reused by the next call
  return v;
}

// N elements of T loaded/stored as one vector (16 bytes for N = 16 / sizeof(T)).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

template <typename V, typename T>
__device__ __forceinline__ bool aligned_for(const T* p) {
  return (reinterpret_cast<uintptr_t>(p) & (sizeof(V) - 1)) == 0;
}

// ---------------------------------------------------------------- host-side CUDA (the emulation replaces it)
#ifdef GANREG_CUDA_EMU
constexpr unsigned kMaxGridYZ = emu::kEmuGridYZ;  // grid.y / grid.z limit (lowered: the plane loops run)
// tensors with at least this many elements take the 64-bit index paths (2^31 on the device; lowered
// here so tests reach them with small tensors)
constexpr int64_t kIndex32Limit = int64_t(1) << 16;
inline int sm_count(int) { return emu::config().sm_count; }
inline size_t smem_budget(int) { return static_cast<size_t>(emu::config().smem_budget); }
struct DeviceGuard {
  explicit DeviceGuard(const at::Device&) {}
};
struct Stream {
  cudaStream_t stream() const { return nullptr; }
};
inline Stream current_stream() { return Stream{}; }
inline bool stream_is_capturing() { return emu::config().capturing; }
inline bool on_device(const at::Tensor& t) { return t.is_cpu(); }
constexpr const char* kDeviceName = "CPU tensor (cuda_emu)";
#else
constexpr unsigned kMaxGridYZ = 65535;
constexpr int64_t kIndex32Limit = int64_t(1) << 31;  // elements: 64-bit index paths from here on
inline int sm_count(int device) {
  static int cache[64] = {0};
  if (device < 0 || device >= 64) device = 0;
  if (cache[device] == 0) {
    int n = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    cache[device] = n > 0 ? n : 1;
  }
  return cache[device];
}
// dynamic shared memory a block may use without the opt-in attribute (every GPU since Kepler)
inline size_t smem_budget(int) { return 48 * 1024; }
using DeviceGuard = c10::cuda::CUDAGuard;
inline c10::cuda::CUDAStream current_stream() { return c10::cuda::getCurrentCUDAStream(); }
inline bool stream_is_capturing() {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(c10::cuda::getCurrentCUDAStream().stream(), &st));
  return st != cudaStreamCaptureStatusNone;
}
inline bool on_device(const at::Tensor& t) { return t.is_cuda(); }
constexpr const char* kDeviceName = "CUDA tensor";
#endif

// Grid size: enough blocks to fill the GPU (a few per SM), never more than the work.
inline int grid_for(int64_t work_items, int device, int per_sm = 8) {
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * per_sm;
  int64_t g = work_items < cap ? work_items : cap;
  return static_cast<int>(g < 1 ? 1 : g);
}

// Call f(tag) with tag's ::type the C++ type of a floating dtype.
template <typename T>
struct Tag {
  using type = T;
};
template <typename F>
void dispatch_float(at::ScalarType s, const char* what, F&& f) {
  switch (s) {
    case at::kFloat:
      return f(Tag<float>{});
    case at::kDouble:
      return f(Tag<double>{});
    case at::kHalf:
      return f(Tag<at::Half>{});
    case at::kBFloat16:
      return f(Tag<at::BFloat16>{});
    default:
      TORCH_CHECK(false, what, ": unsupported dtype ", s);
  }
}

// Call f(tag) with the accumulation type: double if dbl, else float.
template <typename F>
void dispatch_acc(bool dbl, F&& f) {
  if (dbl) f(Tag<double>{});
  else f(Tag<float>{});
}

// A scalar operand: a host value, or element i·stride of a device tensor read by the kernel (no
// host sync, no conversion launch: any float dtype is read as is).
struct Scalar {
  double value = 1.0;
  const void* ptr = nullptr;
  int64_t stride = 0;
  int kind = 0;  // dtype of *ptr: 0 float32, 1 float64, 2 float16, 3 bfloat16

  template <typename A>
  __device__ __forceinline__ A get(int64_t i = 0) const {
    if (ptr == nullptr) return static_cast<A>(value);
    const int64_t o = i * stride;
    switch (kind) {
      case 1:
        return static_cast<A>(static_cast<const double*>(ptr)[o]);
      case 2:
        return static_cast<A>(static_cast<float>(static_cast<const at::Half*>(ptr)[o]));
      case 3:
        return static_cast<A>(static_cast<float>(static_cast<const at::BFloat16*>(ptr)[o]));
      default:
        return static_cast<A>(static_cast<const float*>(ptr)[o]);
    }
  }
};

// A device tensor of one element, or of at most 1 dimension, as a Scalar (the tensor must outlive the launch).
inline Scalar device_scalar(const at::Tensor& t) {
  const auto s = t.scalar_type();
  Scalar out;
  out.ptr = t.const_data_ptr();
  out.stride = t.numel() > 1 ? t.stride(0) : 0;
  out.kind = s == at::kDouble ? 1 : s == at::kHalf ? 2 : s == at::kBFloat16 ? 3 : 0;
  return out;
}

// One tensor (operands x, y or out) of a multi-tensor launch. Fixed tiling (results never depend on
// the grid): K chunks of kChunk elements per sample; samples of at most kSmall elements in tiles of
// G = kSmallGroup samples, one warp each (tiny samples do not serialize on a block and its
// __syncthreads); other samples one per tile.
struct TDesc {
  Plan plan;
  const void* x = nullptr;
  const void* y = nullptr;
  void* out = nullptr;
  int64_t K = 0, G = 1, ntiles = 0;
  int64_t tile_begin = 0;  // first tile in its launch (strictly increasing: empty tensors are left out)
  int64_t part = 0;        // column of its first partial in the [B][P] partials of a reduction
};
constexpr int64_t kSmall = kChunk / kWarps;
constexpr int64_t kSmallGroup = 4 * kWarps;

inline void tile_desc(TDesc& d) {
  const Plan& p = d.plan;
  d.K = 0;
  d.G = 1;
  d.ntiles = 0;
  if (p.n == 0 || p.B == 0) return;
  if (p.n > kChunk) {
    d.K = ceil_div(p.n, kChunk);
    d.ntiles = p.B * d.K;
  } else {
    d.K = 1;
    d.G = p.n <= kSmall ? kSmallGroup : 1;
    d.ntiles = ceil_div(p.B, d.G);
  }
}

// Descriptor table passed by value (kernel parameters, 4 KB limit with the other arguments). A long
// list outside graph capture is uploaded once instead (`big`); during capture it is split into
// several launches of kTab descriptors, because a staged host→device copy would be replayed from a
// recycled pinned buffer.
constexpr size_t kParamBytes = 4096, kOtherParamBytes = 112;
constexpr int kTab = static_cast<int>((kParamBytes - kOtherParamBytes - 24) / sizeof(TDesc));
static_assert(kTab >= 1, "TDesc does not fit in the kernel parameters");
struct Table {
  TDesc d[kTab];
  const TDesc* big = nullptr;
  int64_t nt = 0, ntiles = 0;
};
static_assert(sizeof(Table) + kOtherParamBytes <= kParamBytes, "kernel parameters over 4 KB");

__device__ __forceinline__ const TDesc* descs(const Table& tab) { return tab.big ? tab.big : tab.d; }

// The descriptor of global tile g: the last one with tile_begin <= g (binary search).
__device__ __forceinline__ const TDesc& find_desc(const Table& tab, int64_t g) {
  const TDesc* d = descs(tab);
  int lo = 0, hi = static_cast<int>(tab.nt) - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (d[mid].tile_begin <= g) lo = mid;
    else hi = mid - 1;
  }
  return d[lo];
}

// f(b, k, s, e, t, nt, warp) for each unit (sample b, chunk k = elements [s, e)) of tile `local` of
// tensor d; t/nt: this thread's index/count in the unit's group (its warp when `warp`, else the
// block: then every thread of the block makes the same calls). One call site: f is inlined once.
template <typename F>
__device__ __forceinline__ void for_units(const TDesc& d, int64_t local, F&& f) {
  const int64_t n = d.plan.n;
  const bool warp = d.G > 1;
  int64_t b = local, b1 = local + 1, step = 1, k = 0, s = 0, e = n;
  int t = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  if (d.K > 1) {
    b = local / d.K;
    b1 = b + 1;
    k = local - b * d.K;
    s = k * kChunk;
    e = s + kChunk < n ? s + kChunk : n;
  } else if (warp) {
    b = local * d.G + (threadIdx.x >> 5);
    b1 = (local + 1) * d.G < d.plan.B ? (local + 1) * d.G : d.plan.B;
    step = blockDim.x >> 5;
    t = static_cast<int>(threadIdx.x & 31);
    nt = 32;
  }
  for (; b < b1; b += step) f(b, k, s, e, t, nt, warp);
}

// Copy a host array of PODs to the device on the current stream (pinned staging, no host sync).
template <typename D>
at::Tensor upload(const D* v, size_t n, const at::Device& dev) {
  const int64_t bytes = static_cast<int64_t>(n * sizeof(D));
#ifdef GANREG_CUDA_EMU
  at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte));  // "device" memory is host memory
  std::memcpy(host.data_ptr(), v, bytes);
  return host;
#else
  at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  std::memcpy(host.data_ptr(), v, bytes);
  return host.to(dev, /*non_blocking=*/true);
#endif
}

// launch(table) for the descriptors ds (one dtype group, none empty) on the current stream.
template <typename F>
void launch_tables(std::vector<TDesc>& ds, const at::Device& dev, F&& launch) {
  if (ds.empty()) return;
  bool upload_all = false;
  if (ds.size() > static_cast<size_t>(kTab)) upload_all = !stream_is_capturing();
  const size_t step = upload_all ? ds.size() : static_cast<size_t>(kTab);
  for (size_t i0 = 0; i0 < ds.size(); i0 += step) {
    const size_t i1 = std::min(ds.size(), i0 + step);
    Table tab;
    for (size_t i = i0; i < i1; ++i) {
      ds[i].tile_begin = tab.ntiles;
      tab.ntiles += ds[i].ntiles;
    }
    tab.nt = static_cast<int64_t>(i1 - i0);
    at::Tensor keep;  // the uploaded table: freed after the launch (stream-ordered reuse)
    if (upload_all) {
      keep = upload(ds.data(), ds.size(), dev);
      tab.big = static_cast<const TDesc*>(keep.const_data_ptr());
    } else {
      std::copy(ds.begin() + i0, ds.begin() + i1, tab.d);
    }
    launch(tab);
  }
}

inline void check_cuda_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(on_device(t), name, " must be a ", kDeviceName, ", got one on ", t.device());
  const auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must be float16, bfloat16, float32 or float64, got ", s);
}

inline at::ScalarType acc_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// The accumulation rule (ganreg_ext/_contract.py): float64 if any operand is float64, else float32.
inline bool any_double(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys = {}) {
  for (const auto* v : {&xs, &ys})
    for (const auto& t : *v)
      if (t.scalar_type() == at::kDouble) return true;
  return false;
}

enum ReduceMode { kSq = 0, kDot = 1, kSqDiff = 2, kSum = 3 };

// weight · Σ over the tensor list (inv applied before squaring in kSq), reduced per `reduction`
// (kRed*), accumulated per the contract's rule; ys pairs with xs (kDot, kSqDiff) and may differ in
// dtype. One tile launch per dtype group + one finalize (none when each row has one partial).
// Defined in gradnorm.cu, used by the other families. The caller holds a CUDAGuard.
at::Tensor multi_reduce(int mode, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys,
                        int64_t reduction, double weight, const Scalar& inv, const char* what);

}  // namespace cuda
}  // namespace ganreg
