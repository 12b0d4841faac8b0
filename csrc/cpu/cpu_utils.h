// CPU helpers: vector load/store in the accumulation type, segment iteration over a Plan, and
// fixed-order horizontal sums (bitwise identical for any thread count).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "common/reduce.h"
#include "common/output.h"

namespace ganreg {
namespace cpu {

using at::vec::Vectorized;

// One vector of A from/to p[0, n): a full vector when n ≥ its size, else the first n lanes
// (the rest loaded as 0, not stored).
template <typename A>
inline Vectorized<A> vload(const A* p, int64_t n) {
  return n >= Vectorized<A>::size() ? Vectorized<A>::loadu(p) : Vectorized<A>::loadu(p, static_cast<int>(n));
}
template <typename A>
inline void vstore(A* p, const Vectorized<A>& v, int64_t n) {
  if (n >= Vectorized<A>::size()) v.store(p);
  else v.store(p, static_cast<int>(n));
}

// Load/store 2 vectors of the accumulation type (kBlock elements) from/to T.
template <typename T>
struct VecIO;

// float and double: the vector type is the element type.
template <typename T>
struct VecIOSame {
  using V = Vectorized<T>;
  static constexpr int kV = V::size();
  static constexpr int kBlock = 2 * kV;
  static inline void load(const T* p, V& a, V& b) {
    a = V::loadu(p);
    b = V::loadu(p + kV);
  }
  static inline void load(const T* p, V& a, V& b, int n) {
    a = V::loadu(p, std::min(n, kV));
    b = n > kV ? V::loadu(p + kV, n - kV) : V(T(0));
  }
  static inline void store(T* p, const V& a, const V& b) {
    a.store(p);
    b.store(p + kV);
  }
  static inline void store(T* p, const V& a, const V& b, int n) {
    a.store(p, std::min(n, kV));
    if (n > kV) b.store(p + kV, n - kV);
  }
};
template <>
struct VecIO<float> : VecIOSame<float> {};
template <>
struct VecIO<double> : VecIOSame<double> {};

template <typename H>
struct VecIO16 {
  using V = Vectorized<float>;
  using VH = Vectorized<H>;
  static constexpr int kV = V::size();
  static constexpr int kBlock = VH::size();
  static_assert(kBlock == 2 * kV, "16-bit vector holds two float vectors");
  static inline void load(const H* p, V& a, V& b) { std::tie(a, b) = at::vec::convert_to_float<H>(VH::loadu(p)); }
  static inline void load(const H* p, V& a, V& b, int n) {
    std::tie(a, b) = at::vec::convert_to_float<H>(VH::loadu(p, n));
  }
  static inline void store(H* p, const V& a, const V& b) { at::vec::convert_from_float<H>(a, b).store(p); }
  static inline void store(H* p, const V& a, const V& b, int n) { at::vec::convert_from_float<H>(a, b).store(p, n); }
};
template <>
struct VecIO<at::Half> : VecIO16<at::Half> {};
template <>
struct VecIO<at::BFloat16> : VecIO16<at::BFloat16> {};

// Outputs at least this large are written with non-temporal (streaming) stores: they do not fit in
// cache anyway, and streaming skips the read-for-ownership of every destination line (for a
// read-one-write-one kernel: 2 instead of 3 passes over memory; ~10-15 % on 25 MB outputs).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Elements before p reaches a 32-byte boundary (peeled with plain stores before streaming).
template <typename T>
inline int64_t stream_head(const T* p) {
  return static_cast<int64_t>(((32 - (reinterpret_cast<uintptr_t>(p) & 31)) & 31) / sizeof(T));
}

// Visit a contiguous run of `len` elements in blocks of K: f(i, m, nt), m valid elements (K except at
// the ends), nt = the block's output is 32-byte aligned and may be streamed. head = stream_head of
// the output when streaming, -1 otherwise.
template <int K, typename F>
inline void for_blocks(int64_t len, int64_t head, F&& f) {
  int64_t i = 0;
  if (head >= 0) {
    const int64_t m = std::min(head, len);
    if (m > 0) f(int64_t(0), (int)m, false);
    for (i = m; i + K <= len; i += K) f(i, K, true);
  }
  for (; i + K <= len; i += K) f(i, K, false);
  if (i < len) f(i, (int)(len - i), false);
}

// Load / store m elements of one block (masked when m < kBlock; streaming store when nt).
template <typename T>
inline void load_block(const T* p, Vectorized<acc_t<T>>& a, Vectorized<acc_t<T>>& b, int m) {
  if (m == VecIO<T>::kBlock)
    VecIO<T>::load(p, a, b);
  else
    VecIO<T>::load(p, a, b, m);
}

template <typename T>
inline void store_block(T* p, const Vectorized<acc_t<T>>& a, const Vectorized<acc_t<T>>& b, int m, bool nt) {
#if defined(CPU_CAPABILITY_AVX2)
  if (nt) {
    if constexpr (std::is_same_v<T, float>) {
      _mm256_stream_ps(p, a);
      _mm256_stream_ps(p + 8, b);
    } else if constexpr (std::is_same_v<T, double>) {
      _mm256_stream_pd(p, a);
      _mm256_stream_pd(p + 4, b);
    } else {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), at::vec::convert_from_float<T>(a, b));
    }
    return;
  }
#endif
  if (m == VecIO<T>::kBlock)
    VecIO<T>::store(p, a, b);
  else
    VecIO<T>::store(p, a, b, m);
}

// Make streaming stores visible before the kernel returns (call once per thread after its loop).
inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

// Fixed-order horizontal sum of a vector.
template <typename A>
inline A hsum(const Vectorized<A>& v) {
  alignas(64) A buf[Vectorized<A>::size()];
  v.store(buf);
  A s = 0;
  for (int i = 0; i < Vectorized<A>::size(); ++i) s += buf[i];
  return s;
}

// Call f(offsets[nops], len, e) for consecutive row segments of elements [start, end) of sample b
// (plan order); offsets are element offsets of each operand, e the in-sample index of the first.
template <typename F>
inline void for_each_segment(const Plan& p, int64_t b, int64_t start, int64_t end, F&& f) {
  if (start >= end) return;
  const int nd = p.ndim;
  const int64_t inner = p.sizes[nd - 1];
  int64_t idx[kMaxDims];
  int64_t rem = start;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % p.sizes[d];
    rem /= p.sizes[d];
  }
  int64_t off[kMaxOps];
  for (int o = 0; o < p.nops; ++o) {
    off[o] = b * p.bstride[o];
    for (int d = 0; d < nd; ++d) off[o] += idx[d] * p.strides[o][d];
  }
  int64_t s = start;
  while (s < end) {
    const int64_t len = std::min(inner - idx[nd - 1], end - s);
    f(off, len, s);
    s += len;
    if (s >= end) break;
    // advance by len along the innermost dim, carrying into outer dims
    for (int o = 0; o < p.nops; ++o) off[o] += len * p.strides[o][nd - 1];
    idx[nd - 1] += len;
    for (int d = nd - 1; d > 0 && idx[d] == p.sizes[d]; --d) {
      for (int o = 0; o < p.nops; ++o) off[o] += p.strides[o][d - 1] - p.sizes[d] * p.strides[o][d];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// Gather elements [start, start+n) (plan order, sample b) of operand op into an acc buffer.
template <typename T, typename A>
inline void gather(const Plan& p, int op, const T* base, int64_t b, int64_t start, int64_t n, A* buf) {
  for_each_segment(p, b, start, start + n, [&](const int64_t* off, int64_t len, int64_t e) {
    const T* src = base + off[op];
    const int64_t st = p.strides[op][p.ndim - 1];
    A* dst = buf + (e - start);
    if (st == 1) {
      for (int64_t i = 0; i < len; ++i) dst[i] = static_cast<A>(src[i]);
    } else {
      for (int64_t i = 0; i < len; ++i) dst[i] = static_cast<A>(src[i * st]);
    }
  });
}

// parallel_for over [0, n) tiles; runs inline when the total work is small. Results never depend
// on the split because every tile writes its own partial.
template <typename F>
inline void parallel_tiles(int64_t ntiles, int64_t work, F&& f) {
  if (ntiles <= 0) return;
  if (work < 32768 || ntiles == 1) {
    f(0, ntiles);
  } else {
    at::parallel_for(0, ntiles, 1, f);
  }
}

}  // namespace cpu
}  // namespace ganreg
