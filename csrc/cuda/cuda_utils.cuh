// CUDA helpers: block reductions with warp shuffles (fixed order ⇒ deterministic), launch sizing
// from the SM count, device-side descriptor tables, and the multi-tensor tile descriptor.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/reduce.h"

namespace ganreg {
namespace cuda {

constexpr int kThreads = 256;

// Sum over the block; the result is valid in thread 0. Fixed shuffle tree ⇒ deterministic.
template <typename A>
__device__ __forceinline__ A block_sum(A v) {
  __shared__ A warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : A(0);
  if (warp == 0) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  __syncthreads();  // warp_sums may be reused by the next call
  return v;
}

// 16-byte vector of T for 128-bit loads/stores.
template <typename T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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

// Grid size: enough blocks to fill the GPU (a few per SM), never more than the work.
inline int grid_for(int64_t work_items, int device, int per_sm = 8) {
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * per_sm;
  int64_t g = work_items < cap ? work_items : cap;
  return static_cast<int>(g < 1 ? 1 : g);
}

// One tensor (operands x, y/out) of a multi-tensor launch, tiled like the CPU kernels:
// K chunks of kChunk elements per sample, or G whole samples per tile when K == 1.
struct TDesc {
  Plan plan;
  const void* x;
  const void* y;
  void* out;
  int64_t K, G, ntiles, tile_begin, part_begin;
};

// Fill the tiling fields of descs; returns (ntiles, nparts).
inline void tile_descs(std::vector<TDesc>& ds, int64_t* ntiles, int64_t* nparts) {
  int64_t tb = 0, pb = 0;
  for (TDesc& d : ds) {
    const Plan& p = d.plan;
    d.K = 0;
    d.G = 1;
    d.ntiles = 0;
    if (p.n > 0 && p.B > 0) {
      if (p.n <= kChunk) {
        d.K = 1;
        d.G = kChunk / p.n > 1 ? kChunk / p.n : 1;
        d.ntiles = (p.B + d.G - 1) / d.G;
      } else {
        d.K = (p.n + kChunk - 1) / kChunk;
        d.ntiles = p.B * d.K;
      }
    }
    d.tile_begin = tb;
    d.part_begin = pb;
    tb += d.ntiles;
    pb += p.B * d.K;
  }
  *ntiles = tb;
  *nparts = pb;
}

// Copy a host array of PODs to the device on the current stream (pinned staging, no host sync).
template <typename D>
at::Tensor upload(const std::vector<D>& v, const at::Device& dev) {
  const int64_t bytes = static_cast<int64_t>(v.size() * sizeof(D));
  at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  std::memcpy(host.data_ptr(), v.data(), bytes);
  return host.to(dev, /*non_blocking=*/true);
}

__device__ __forceinline__ int find_desc(const TDesc* tab, int nt, int64_t g) {
  int t = 0;
  while (t + 1 < nt && tab[t + 1].tile_begin <= g) ++t;
  while (t + 1 < nt && g >= tab[t].tile_begin + tab[t].ntiles) ++t;
  return t;
}

inline void check_cuda_tensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got one on ", t.device());
  const auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must be float16, bfloat16, float32 or float64, got ", s);
}

inline at::ScalarType acc_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

enum ReduceMode { kSq = 0, kDot = 1, kSqDiff = 2, kSum = 3 };

// Σ over the tensor list (per sample [B] or 0-d), one launch for the whole list + a fixed-order
// second stage. Defined in gradnorm.cu, used by the other families.
at::Tensor multi_reduce(int mode, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys,
                        bool per_sample, double inv, const char* what);

}  // namespace cuda
}  // namespace ganreg
