// Large CPU outputs come from a small reuse cache of 2 MiB-aligned, huge-page-advised blocks.
//
// Why: glibc returns large freed blocks to the OS (mmap/trim), so a kernel's next large output lands
// in freshly mapped pages: one page fault per 4 KiB (6,144 for a 25 MB R1 gradient) and the kernel
// zeroing every page, ~1–3 ms per call on the 2-core machine, in some calls and not others — the
// run-to-run spread of the fused timings. Reusing the block of the same size class (freed by the
// caller's previous step) touches no fresh page; a fresh block gets transparent huge pages (512×
// fewer faults). Bounded: at most GANREG_CPU_REUSE_MB (default 256) MiB are kept; 0 disables.
//
// torch.profiler and torch's CPU allocator statistics never see these blocks, so the cache keeps its
// own counters (docs/memory.md): bytes handed out to live tensors, bytes cached idle, the peak of
// their sum since the last reset, hits and misses. cpu_cache_stats / cpu_cache_empty /
// cpu_cache_reset_peak / cpu_cache_set_limit (ops in csrc/ops.cpp, Python in ganreg_ext/memory.py).
#include <c10/core/Allocator.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "common/reduce.h"
#include "common/output.h"

namespace ganreg {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

struct Block {
  void* ptr;
  size_t bytes;
};

struct ReuseCache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;
  size_t cached = 0;     // idle bytes in free_blocks
  size_t allocated = 0;  // bytes of blocks handed out to live tensors
  size_t peak = 0;       // max(allocated + cached) since the last reset
  size_t limit = 0;
  int64_t hits = 0, misses = 0;
  void bump_peak() { peak = std::max(peak, allocated + cached); }
};

ReuseCache& cache() {
  static ReuseCache* c = [] {
    auto* r = new ReuseCache();  // never destroyed: tensors may be freed during static destruction
    const char* env = std::getenv("GANREG_CPU_REUSE_MB");
    const long long mb = env ? std::atoll(env) : 256;
    r->limit = static_cast<size_t>(std::max(mb, 0LL)) << 20;
    return r;
  }();
  return *c;
}

void release(void* ctx) {
  auto* b = static_cast<Block*>(ctx);
  ReuseCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.allocated -= b->bytes;
    if (c.cached + b->bytes <= c.limit) {
      c.free_blocks.emplace(b->bytes, b->ptr);
      c.cached += b->bytes;
      b = (delete b, nullptr);
      return;
    }
  }
  std::free(b->ptr);
  delete b;
}

struct ReuseAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    const size_t bytes = (n + kHuge - 1) / kHuge * kHuge;
    void* ptr = nullptr;
    ReuseCache& c = cache();
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.free_blocks.find(bytes);
      if (it != c.free_blocks.end()) {
        ptr = it->second;
        c.free_blocks.erase(it);
        c.cached -= bytes;
        c.allocated += bytes;
        ++c.hits;
      }
    }
    if (!ptr) {
      ptr = std::aligned_alloc(kHuge, bytes);
      TORCH_CHECK(ptr, "ganreg_ext: out of memory allocating ", bytes, " bytes");
      madvise(ptr, bytes, MADV_HUGEPAGE);  // advice only: ignored where THP is off
      std::lock_guard<std::mutex> lock(c.mu);
      c.allocated += bytes;
      ++c.misses;
      c.bump_peak();
    }
    return {ptr, new Block{ptr, bytes}, &release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};

}  // namespace

at::Tensor empty_reuse(at::IntArrayRef size, at::IntArrayRef strides, at::ScalarType dtype) {
  static ReuseAllocator alloc;
  return at::detail::empty_strided_generic(size, strides, &alloc, c10::DispatchKeySet(c10::DispatchKey::CPU), dtype);
}

bool reuse_enabled() {
  ReuseCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.limit > 0;
}

namespace {
// Frees idle blocks until at most `keep` bytes stay cached (largest first). Caller holds c.mu.
void trim_locked(ReuseCache& c, size_t keep) {
  while (c.cached > keep && !c.free_blocks.empty()) {
    auto it = std::prev(c.free_blocks.end());
    std::free(it->second);
    c.cached -= it->first;
    c.free_blocks.erase(it);
  }
}
}  // namespace

// [limit, allocated, cached, peak, hits, misses, blocks cached] (bytes, counts).
std::vector<int64_t> cpu_cache_stats() {
  ReuseCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {static_cast<int64_t>(c.limit), static_cast<int64_t>(c.allocated), static_cast<int64_t>(c.cached),
          static_cast<int64_t>(c.peak),  c.hits,                             c.misses,
          static_cast<int64_t>(c.free_blocks.size())};
}

// Returns every idle block to the OS (live tensors keep theirs; they are freed, not cached, only if
// the limit is then 0).
void cpu_cache_empty() {
  ReuseCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  trim_locked(c, 0);
}

// The peak restarts from what is held now (allocated + cached); hits and misses restart from 0.
void cpu_cache_reset_peak() {
  ReuseCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.peak = c.allocated + c.cached;
  c.hits = c.misses = 0;
}

// Sets the limit in bytes (0 disables the cache: new large outputs come from at::empty) and trims the
// idle blocks to it; returns the previous limit.
int64_t cpu_cache_set_limit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "cpu_cache_set_limit: the limit must be >= 0 bytes, got ", bytes);
  ReuseCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  const auto old = static_cast<int64_t>(c.limit);
  c.limit = static_cast<size_t>(bytes);
  trim_locked(c, c.limit);
  return old;
}

}  // namespace ganreg
