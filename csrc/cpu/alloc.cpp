// Large CPU outputs come from a small reuse cache of 2 MiB-aligned, huge-page-advised blocks.
//
// Why: glibc returns large freed blocks to the OS (mmap/trim), so a kernel's next large output lands
// in freshly mapped pages: one page fault per 4 KiB (6,144 for a 25 MB R1 gradient) and the kernel
// zeroing every page, ~1–3 ms per call on the 2-core machine, in some calls and not others — the
// run-to-run spread of the fused timings. Reusing the block of the same size class (freed by the
// caller's previous step) touches no fresh page; a fresh block gets transparent huge pages (512×
// fewer faults). Bounded: at most GANREG_CPU_REUSE_MB (default 256) MiB are kept; 0 disables.
#include <c10/core/Allocator.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "common/reduce.h"

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
  size_t cached = 0;
  size_t limit = 0;
};

ReuseCache& cache() {
  static ReuseCache* c = [] {
    auto* r = new ReuseCache();  // never destroyed: tensors may be freed during static destruction
    const char* env = std::getenv("GANREG_CPU_REUSE_MB");
    r->limit = static_cast<size_t>(env ? std::atoll(env) : 256) << 20;
    return r;
  }();
  return *c;
}

void release(void* ctx) {
  auto* b = static_cast<Block*>(ctx);
  ReuseCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
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
      }
    }
    if (!ptr) {
      ptr = std::aligned_alloc(kHuge, bytes);
      TORCH_CHECK(ptr, "ganreg_ext: out of memory allocating ", bytes, " bytes");
      madvise(ptr, bytes, MADV_HUGEPAGE);  // advice only: ignored where THP is off
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

bool reuse_enabled() { return cache().limit > 0; }

}  // namespace ganreg
