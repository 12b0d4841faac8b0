// The CUDA execution model on the CPU, for the test-only `ganreg_emu` module (csrc/emu/build.py):
// the SAME csrc/cuda/*.cu sources, compiled by g++ with -DGANREG_CUDA_EMU, run their device code here.
//
// - Blocks run one after another (order forward, reverse or random from a seed). The threads of a
//   block are fibers on the calling OS thread (a hand-written x86-64 stack switch, runtime.cpp),
//   scheduled warp by warp between block barriers: one warp's lanes run (in lane order forward,
//   reverse or random) until each waits at __syncthreads, at a warp exchange, or has exited; then the
//   next warp. Within a warp there is no lockstep: warp-synchronous code without a *_sync call breaks.
// - __syncthreads is a barrier of the block's threads (exited threads count as arrived); threads that
//   wait at different __syncthreads call sites, or a barrier that can never complete, are reported as
//   an error (c10::Error from the launch), never a hang.
// - Warp shuffles / __syncwarp exchange values through per-warp double-buffered scratch; every lane
//   of the mask must take part (from the same call site), an exited lane in the mask is an error.
// - Dynamic shared memory is sized exactly to the launch's bytes, filled with NaN bytes (0xFF) per
//   block, followed by a canary checked after the block. Static __shared__ variables are
//   `static thread_local` (one instance per OS thread: blocks do not overlap).
// - Launch checks as on the device: block <= 1024 threads, grid.y/z <= kEmuGridYZ (lowered so the
//   loops over planes run with small tensors), dynamic shared memory <= the configured budget.
// - The SM count, the shared-memory budget, the scheduling order and the stream-capture state are
//   inputs (ganreg_emu::emu_config) so every launch-sizing branch of the host code runs.
// Limits: no performance, register or occupancy truth; code under `#if __CUDA_ARCH__` takes its host
// path; atomics are exact read-modify-writes in scheduling order.
#pragma once

#include <c10/util/Exception.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __shared__ static thread_local
#define __syncthreads() ::ganreg::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::ganreg::emu::syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(m, v, l, ...) ::ganreg::emu::shfl(__FILE__, __LINE__, 0, m, v, l, ##__VA_ARGS__)
#define __shfl_up_sync(m, v, d, ...) ::ganreg::emu::shfl(__FILE__, __LINE__, 1, m, v, d, ##__VA_ARGS__)
#define __shfl_down_sync(m, v, d, ...) ::ganreg::emu::shfl(__FILE__, __LINE__, 2, m, v, d, ##__VA_ARGS__)
#define __shfl_xor_sync(m, v, d, ...) ::ganreg::emu::shfl(__FILE__, __LINE__, 3, m, v, d, ##__VA_ARGS__)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = void*;

// the built-in variables of the running thread (set by the scheduler at every fiber switch)
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

namespace ganreg {

// device min/max (CUDA overloads them for the integer and floating types)
template <typename T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
inline T max(T a, T b) {
  return a < b ? b : a;
}

inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}
inline float __fdiv_rn(float a, float b) { return a / b; }  // IEEE division, round to nearest
inline double __ddiv_rn(double a, double b) { return a / b; }

// atomics: exact, in scheduling order (fibers never run concurrently)
template <typename T>
inline T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}

namespace emu {

// Grid y/z limit of this build (65,535 on the device): small, so the plane loops run in tests.
#ifndef GANREG_EMU_GRID_YZ
#define GANREG_EMU_GRID_YZ 12
#endif
constexpr unsigned kEmuGridYZ = GANREG_EMU_GRID_YZ;

struct Config {
  int sm_count = 132;               // cudaDevAttrMultiProcessorCount
  int64_t smem_budget = 48 * 1024;  // dynamic shared memory a block may use (bytes)
  int order = 2;                    // 0 forward, 1 reverse, 2 random (blocks, warps, lanes)
  int64_t seed = 0;                 // of the random order
  bool capturing = false;           // what cudaStreamIsCapturing answers
};
Config& config();

void syncthreads(const char* file, int line);
void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu);
uint64_t exchange(const char* file, int line, unsigned mask, uint64_t bits, int kind, int arg, int width);
void* dynamic_smem();

template <typename T>
inline T shfl(const char* file, int line, int kind, unsigned mask, T v, int arg, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a type over 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = exchange(file, line, mask, bits, kind, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

struct LaunchCfg {
  dim3 grid, block;
  size_t smem;
  const char* name;
  const char* file;
  int line;
  const char* signature = nullptr;  // the kernel's parameter types (launch log)
};
// Runs every block of the launch; invoke(ctx) is the body of one thread. Throws c10::Error on a bad
// configuration or a device-side error (divergent barrier, shuffle misuse, shared-memory overrun).
void run_launch(const LaunchCfg& cfg, void (*invoke)(const void*), const void* ctx);

template <typename... P>
struct Launch {
  LaunchCfg cfg;
  void (*kernel)(P...);
  template <typename... Args>
  void operator()(Args&&... args) const {
    // the parameters are copied once, by value, converted to the kernel's parameter types (as <<<>>>)
    struct Ctx {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...> params;
    } ctx{kernel, std::tuple<std::decay_t<P>...>(std::forward<Args>(args)...)};
    run_launch(
        cfg, [](const void* c) {
          const Ctx* x = static_cast<const Ctx*>(c);
          std::apply(x->kernel, x->params);  // each thread gets its own copy of the parameters
        },
        &ctx);
  }
};

struct LaunchSite {
  LaunchCfg cfg;
  LaunchSite(dim3 grid, dim3 block, size_t smem, cudaStream_t, const char* name, const char* file, int line)
      : cfg{grid, block, smem, name, file, line} {}
  template <typename... P>
  Launch<P...> bind(void (*k)(P...)) const {
    LaunchCfg c = cfg;
    c.signature = __PRETTY_FUNCTION__;  // "... [with P = {parameter types}]"
    return Launch<P...>{c, k};
  }
};

}  // namespace emu
}  // namespace ganreg

using ganreg::__fdiv_rn;
using ganreg::__umulhi;
using ganreg::atomicAdd;
