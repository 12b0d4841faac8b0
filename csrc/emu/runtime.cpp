// The scheduler of the emulated CUDA execution model (cuda_emu.h explains the model) and the
// test hooks of the ganreg_emu module: ganreg_emu::emu_config and ganreg_emu::emu_launches.
#include "emu/cuda_emu.h"

#include <sys/mman.h>
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <mutex>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulation's fiber switch is written for x86-64"
#endif

// switch(save, to): push the callee-saved registers, store rsp in *save, load `to`, pop, return there.
// A new fiber's stack holds the registers' initial values and the address of ganreg_emu_entry, which
// calls r13(r12) (the fiber's main function and its argument) with a 16-byte aligned stack.
asm(R"(
.text
.p2align 4
.globl ganreg_emu_switch
.hidden ganreg_emu_switch
.type ganreg_emu_switch,@function
ganreg_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size ganreg_emu_switch, .-ganreg_emu_switch
.p2align 4
.globl ganreg_emu_entry
.hidden ganreg_emu_entry
.type ganreg_emu_entry,@function
ganreg_emu_entry:
  movq %r12, %rdi
  callq *%r13
  ud2
.size ganreg_emu_entry, .-ganreg_emu_entry
)");

extern "C" void ganreg_emu_switch(void** save, void* to);
extern "C" void ganreg_emu_entry();

namespace ganreg {
namespace emu {
namespace {

constexpr size_t kStack = size_t(128) << 10;  // per thread of a block
constexpr size_t kGuard = 4096;
constexpr int kMaxThreads = 1024;
constexpr size_t kCanary = 16384;  // bytes after the dynamic shared memory, checked after each block

enum State : int { kReady = 0, kAtSync = 1, kAtWarp = 2, kExited = 3 };

struct Fiber {
  void* sp = nullptr;
  int state = kReady;
  uint3 tid{0, 0, 0};
  int lane = 0, warp = 0;
  const char* file = nullptr;  // call site of the barrier / exchange it waits at
  int line = 0;
  uint64_t ex = 0;  // exchanges this lane has taken part in
};

struct WarpEx {
  unsigned arrived[2] = {0, 0}, read[2] = {0, 0}, mask[2] = {0, 0};
  uint64_t slot[2][32] = {};
  const char* file[2] = {nullptr, nullptr};
  int line[2] = {0, 0};
};

struct Rng {
  uint64_t s;
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  template <typename V>
  void shuffle(V& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[next() % i]);
  }
};

// Per OS thread: the fiber stacks (mapped once, reused) and the state of the running block.
struct Runner {
  char* stacks = nullptr;
  Fiber fibers[kMaxThreads];
  WarpEx warps[kMaxThreads / 32];
  int nthreads = 0, nwarps = 0;
  void* sched_sp = nullptr;
  Fiber* cur = nullptr;
  void (*invoke)(const void*) = nullptr;
  const void* ctx = nullptr;
  std::vector<unsigned char> smem;
  size_t smem_bytes = 0;
  std::string error;  // set by device-side checks: the block is abandoned
  uint3 block{0, 0, 0};

  Runner() {
    const size_t per = kStack + kGuard;
    void* m = mmap(nullptr, per * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    TORCH_CHECK(m != MAP_FAILED, "cuda_emu: cannot map the fiber stacks");
    stacks = static_cast<char*>(m);
    for (int i = 0; i < kMaxThreads; ++i) mprotect(stacks + i * per, kGuard, PROT_NONE);  // overflow → SIGSEGV
  }
};

thread_local Runner* t_runner = nullptr;

Runner& runner() {
  if (t_runner == nullptr) t_runner = new Runner();  // never freed: reused by every launch of this thread
  return *t_runner;
}

void fiber_main(Fiber* f);

void prepare(Runner& r, int i) {
  Fiber& f = r.fibers[i];
  char* top = r.stacks + static_cast<size_t>(i) * (kStack + kGuard) + kGuard + kStack;
  uintptr_t R = (reinterpret_cast<uintptr_t>(top) - 64) & ~uintptr_t(15);
  void** s = reinterpret_cast<void**>(R);
  s[-1] = reinterpret_cast<void*>(&ganreg_emu_entry);  // ret target
  s[-2] = nullptr;                                      // rbp
  s[-3] = nullptr;                                      // rbx
  s[-4] = &f;                                           // r12: argument
  s[-5] = reinterpret_cast<void*>(&fiber_main);         // r13: function
  s[-6] = nullptr;                                      // r14
  s[-7] = nullptr;                                      // r15
  f.sp = s - 7;
  f.state = kReady;
  f.file = nullptr;
  f.line = 0;
  f.ex = 0;
}

void fiber_main(Fiber* f) {
  Runner& r = *t_runner;
  r.invoke(r.ctx);
  f->state = kExited;
  ganreg_emu_switch(&f->sp, r.sched_sp);
  __builtin_unreachable();
}

// the running fiber gives control back to the scheduler
void yield(Runner& r) { ganreg_emu_switch(&r.cur->sp, r.sched_sp); }

[[noreturn]] void device_error(Runner& r, const std::string& msg) {
  if (r.error.empty()) r.error = msg;
  r.cur->state = kExited;  // never resumed: the block is abandoned
  ganreg_emu_switch(&r.cur->sp, r.sched_sp);
  __builtin_unreachable();
}

std::string where(const char* file, int line) {
  std::string f = file ? file : "?";
  const auto p = f.rfind("csrc/");
  return (p == std::string::npos ? f : f.substr(p)) + ":" + std::to_string(line);
}

std::string thread_name(const Fiber& f) {
  std::ostringstream s;
  s << "thread (" << f.tid.x << "," << f.tid.y << "," << f.tid.z << ")";
  return s.str();
}

std::mutex g_log_mu;
std::vector<std::string> g_log;  // launches since the last emu_launches(clear=True)
Config g_config;
uint64_t g_launches = 0;

}  // namespace

Config& config() { return g_config; }

void syncthreads(const char* file, int line) {
  Runner& r = runner();
  TORCH_CHECK(r.cur != nullptr, "cuda_emu: __syncthreads called outside a kernel");
  r.cur->state = kAtSync;
  r.cur->file = file;
  r.cur->line = line;
  yield(r);
}

uint64_t exchange(const char* file, int line, unsigned mask, uint64_t bits, int kind, int arg, int width) {
  Runner& r = runner();
  TORCH_CHECK(r.cur != nullptr, "cuda_emu: warp exchange called outside a kernel");
  Fiber& f = *r.cur;
  const int lane = f.lane;
  if (!((mask >> lane) & 1u))
    device_error(r, "warp exchange at " + where(file, line) + ": " + thread_name(f) + " (lane " +
                        std::to_string(lane) + ") is not in its own mask");
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    device_error(r, "warp shuffle at " + where(file, line) + ": width " + std::to_string(width) + " is not a power of 2 <= 32");
  const int base = r.fibers[0].lane;  // 0
  (void)base;
  const int first = f.warp * 32;
  for (int l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    if (first + l >= r.nthreads)
      device_error(r, "warp exchange at " + where(file, line) + ": mask 0x" + [&] {
        std::ostringstream s;
        s << std::hex << mask;
        return s.str();
      }() + " names lane " + std::to_string(l) + ", which does not exist in a block of " + std::to_string(r.nthreads) + " threads");
  }
  WarpEx& w = r.warps[f.warp];
  const int b = static_cast<int>(f.ex & 1);
  if (w.arrived[b] == 0) {
    w.mask[b] = mask;
    w.file[b] = file;
    w.line[b] = line;
  } else if (w.mask[b] != mask || w.file[b] != file || w.line[b] != line) {
    device_error(r, "divergent warp exchange in warp " + std::to_string(f.warp) + ": " + thread_name(f) + " at " +
                        where(file, line) + ", other lanes at " + where(w.file[b], w.line[b]));
  }
  w.slot[b][lane] = bits;
  w.arrived[b] |= 1u << lane;
  f.file = file;
  f.line = line;
  if (w.arrived[b] != mask) {
    for (int l = 0; l < 32; ++l)
      if (((mask >> l) & 1u) && r.fibers[first + l].state == kExited)
        device_error(r, "warp exchange at " + where(file, line) + ": lane " + std::to_string(l) + " of warp " +
                            std::to_string(f.warp) + " has exited but is in the mask");
    f.state = kAtWarp;
    yield(r);  // resumed when the last lane of the mask arrives
  } else {
    for (int l = 0; l < 32; ++l)
      if (((mask >> l) & 1u) && r.fibers[first + l].state == kAtWarp) r.fibers[first + l].state = kReady;
  }
  // read the partner's value (CUDA semantics within segments of `width` lanes)
  const int seg = lane & ~(width - 1), in = lane - seg;
  int src = lane;
  switch (kind) {
    case 0:  // idx
      src = seg + (arg & (width - 1));
      break;
    case 1:  // up
      src = in - arg >= 0 ? lane - arg : lane;
      break;
    case 2:  // down
      src = in + arg < width ? lane + arg : lane;
      break;
    case 3:  // xor
      src = ((in ^ arg) < width) ? seg + (in ^ arg) : lane;
      break;
    default:  // syncwarp
      break;
  }
  if (kind <= 3 && !((mask >> src) & 1u))
    device_error(r, "warp shuffle at " + where(file, line) + ": lane " + std::to_string(lane) + " reads lane " +
                        std::to_string(src) + ", which is not in the mask");
  const uint64_t out = w.slot[b][src];
  w.read[b] |= 1u << lane;
  if (w.read[b] == w.mask[b]) w.arrived[b] = w.read[b] = 0;  // the buffer is free for exchange ex + 2
  ++f.ex;
  f.state = kReady;
  return out;
}

void syncwarp(const char* file, int line, unsigned mask) { exchange(file, line, mask, 0, 4, 0, 32); }

void* dynamic_smem() {
  Runner& r = runner();
  return r.smem_bytes ? r.smem.data() : nullptr;
}

void run_launch(const LaunchCfg& cfg, void (*invoke)(const void*), const void* ctx) {
  const Config c = g_config;
  const dim3 g = cfg.grid, bl = cfg.block;
  const std::string kname = std::string(cfg.name) + " (" + where(cfg.file, cfg.line) + ")";
  const int64_t nthreads = int64_t(bl.x) * bl.y * bl.z;
  TORCH_CHECK(bl.x >= 1 && bl.y >= 1 && bl.z >= 1 && bl.x <= 1024 && bl.y <= 1024 && bl.z <= 64 && nthreads <= 1024,
              "cuda_emu: invalid block (", bl.x, ",", bl.y, ",", bl.z, ") for ", kname);
  TORCH_CHECK(g.x >= 1 && g.y >= 1 && g.z >= 1 && g.x <= 2147483647u && g.y <= kEmuGridYZ && g.z <= kEmuGridYZ,
              "cuda_emu: invalid grid (", g.x, ",", g.y, ",", g.z, ") for ", kname, " (this build's limit of grid.y/z is ",
              kEmuGridYZ, ")");
  TORCH_CHECK(static_cast<int64_t>(cfg.smem) <= c.smem_budget, "cuda_emu: ", cfg.smem,
              " bytes of dynamic shared memory requested by ", kname, ", over the budget of ", c.smem_budget);
  {
    std::lock_guard<std::mutex> lk(g_log_mu);
    std::ostringstream s;
    s << cfg.name;
    if (cfg.signature) {
      const std::string sig = cfg.signature;
      const auto p = sig.find("[with ");
      if (p != std::string::npos) s << " " << sig.substr(p);
    }
    s << " grid=(" << g.x << "," << g.y << "," << g.z << ") block=(" << bl.x << "," << bl.y << "," << bl.z
      << ") smem=" << cfg.smem;
    if (g_log.size() < 100000) g_log.push_back(s.str());
  }
  Runner& r = runner();
  TORCH_CHECK(r.cur == nullptr && r.invoke == nullptr, "cuda_emu: a kernel launched from device code");
  const uint64_t launch_no = g_launches++;
  Rng rng{static_cast<uint64_t>(c.seed) * 0x2545F4914F6CDD1Dull + launch_no};
  r.invoke = invoke;
  r.ctx = ctx;
  r.nthreads = static_cast<int>(nthreads);
  r.nwarps = (r.nthreads + 31) / 32;
  r.smem_bytes = cfg.smem;
  r.error.clear();
  const dim3 saved_bd = blockDim, saved_gd = gridDim;
  blockDim = bl;
  gridDim = g;
  struct Reset {
    Runner& r;
    dim3 bd, gd;
    ~Reset() {
      r.invoke = nullptr;
      r.ctx = nullptr;
      r.cur = nullptr;
      blockDim = bd;
      gridDim = gd;
    }
  } reset{r, saved_bd, saved_gd};

  const int64_t nblocks = int64_t(g.x) * g.y * g.z;
  std::vector<int64_t> border;
  if (c.order != 0) {
    border.resize(nblocks);
    std::iota(border.begin(), border.end(), 0);
    if (c.order == 1) std::reverse(border.begin(), border.end());
    else rng.shuffle(border);
  }
  std::vector<int> worder(r.nwarps), lorder(32);
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    const int64_t lin = c.order == 0 ? bi : border[bi];
    r.block = uint3{static_cast<unsigned>(lin % g.x), static_cast<unsigned>((lin / g.x) % g.y),
                    static_cast<unsigned>(lin / (int64_t(g.x) * g.y))};
    if (cfg.smem) r.smem.assign(cfg.smem + kCanary, 0xFF);  // NaN in every float type, canary after
    for (int i = 0; i < r.nthreads; ++i) {
      prepare(r, i);
      Fiber& f = r.fibers[i];
      f.tid = uint3{static_cast<unsigned>(i % bl.x), static_cast<unsigned>((i / bl.x) % bl.y),
                    static_cast<unsigned>(i / (bl.x * bl.y))};
      f.lane = i & 31;
      f.warp = i >> 5;
    }
    for (int w = 0; w < r.nwarps; ++w) r.warps[w] = WarpEx{};
    blockIdx = r.block;
    while (true) {
      std::iota(worder.begin(), worder.end(), 0);
      if (c.order == 1) std::reverse(worder.begin(), worder.end());
      else if (c.order == 2) rng.shuffle(worder);
      for (int w : worder) {
        const int first = w * 32, nl = std::min(32, r.nthreads - first);
        bool any = true;
        while (any && r.error.empty()) {
          any = false;
          lorder.resize(nl);
          std::iota(lorder.begin(), lorder.end(), 0);
          if (c.order == 1) std::reverse(lorder.begin(), lorder.end());
          else if (c.order == 2) rng.shuffle(lorder);
          for (int l : lorder) {
            Fiber& f = r.fibers[first + l];
            if (f.state != kReady) continue;
            any = true;
            r.cur = &f;
            threadIdx = f.tid;
            ganreg_emu_switch(&r.sched_sp, f.sp);
            r.cur = nullptr;
            if (!r.error.empty()) break;
          }
        }
        if (!r.error.empty()) break;
      }
      if (!r.error.empty()) break;
      int exited = 0, at_sync = 0, at_warp = 0;
      const Fiber* s0 = nullptr;
      const Fiber* w0 = nullptr;
      bool same_site = true;
      for (int i = 0; i < r.nthreads; ++i) {
        const Fiber& f = r.fibers[i];
        if (f.state == kExited) ++exited;
        else if (f.state == kAtWarp) {
          ++at_warp;
          if (!w0) w0 = &f;
        } else if (f.state == kAtSync) {
          ++at_sync;
          if (!s0) s0 = &f;
          else if (f.file != s0->file || f.line != s0->line) same_site = false;
        }
      }
      if (exited == r.nthreads) break;
      std::ostringstream msg;
      if (at_warp == 0 && same_site) {
        for (int i = 0; i < r.nthreads; ++i)
          if (r.fibers[i].state == kAtSync) r.fibers[i].state = kReady;
        continue;
      }
      msg << "deadlock in block (" << r.block.x << "," << r.block.y << "," << r.block.z << "): ";
      if (!same_site) {
        msg << "divergent __syncthreads: threads wait at";
        std::vector<std::pair<std::string, int>> sites;
        for (int i = 0; i < r.nthreads; ++i) {
          const Fiber& f = r.fibers[i];
          if (f.state != kAtSync) continue;
          const std::string s = where(f.file, f.line);
          auto it = std::find_if(sites.begin(), sites.end(), [&](auto& p) { return p.first == s; });
          if (it == sites.end()) sites.push_back({s, 1});
          else ++it->second;
        }
        for (auto& [s, n] : sites) msg << " " << s << " (" << n << " threads)";
      } else {
        msg << at_sync << " threads wait at __syncthreads" << (s0 ? " (" + where(s0->file, s0->line) + ")" : "") << ", "
            << at_warp << " at a warp exchange (" << where(w0->file, w0->line) << ") whose lanes never all arrive";
      }
      msg << ", " << exited << " exited";
      r.error = msg.str();
      break;
    }
    if (r.error.empty() && cfg.smem) {
      for (size_t i = 0; i < kCanary; ++i)
        if (r.smem[cfg.smem + i] != 0xFF) {
          r.error = "wrote past its " + std::to_string(cfg.smem) + " bytes of dynamic shared memory (byte " +
                    std::to_string(cfg.smem + i) + ") in block (" + std::to_string(r.block.x) + "," +
                    std::to_string(r.block.y) + "," + std::to_string(r.block.z) + ")";
          break;
        }
    }
    if (!r.error.empty()) break;
  }
  TORCH_CHECK(r.error.empty(), "cuda_emu: ", kname, ": ", r.error);
}

}  // namespace emu
}  // namespace ganreg

namespace {

// emu_config(sm_count, smem_budget, order, seed, capturing) -> the previous values; a negative
// argument keeps the current value.
std::vector<int64_t> emu_config(int64_t sm_count, int64_t smem_budget, int64_t order, int64_t seed, int64_t capturing) {
  auto& c = ganreg::emu::config();
  std::vector<int64_t> old{c.sm_count, c.smem_budget, c.order, c.seed, c.capturing ? 1 : 0};
  TORCH_CHECK(order < 3, "emu_config: order must be 0 (forward), 1 (reverse) or 2 (random), got ", order);
  if (sm_count >= 0) c.sm_count = static_cast<int>(std::max<int64_t>(sm_count, 1));
  if (smem_budget >= 0) c.smem_budget = smem_budget;
  if (order >= 0) c.order = static_cast<int>(order);
  if (seed >= 0) c.seed = seed;
  if (capturing >= 0) c.capturing = capturing != 0;
  return old;
}

// The launches since the last clear: "name grid=(x,y,z) block=(x,y,z) smem=bytes".
std::vector<std::string> emu_launches(bool clear) {
  std::lock_guard<std::mutex> lk(ganreg::emu::g_log_mu);
  std::vector<std::string> out = ganreg::emu::g_log;
  if (clear) ganreg::emu::g_log.clear();
  return out;
}

// Kernels with the bugs the emulation must expose (tests/test_cuda_emu.py proves it does).
void divergent_barrier(float* out) {
  if (threadIdx.x < 32) __syncthreads();  // only warp 0 waits here
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
void exited_lane_shuffle(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}
void smem_overrun(float* out) {
  float* s = static_cast<float*>(ganreg::emu::dynamic_smem());
  s[threadIdx.x + 1] = 1.0f;  // one float past the blockDim.x floats of the launch
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}
void missing_barrier(float* out) {
  __shared__ float buf[1024];
  buf[threadIdx.x] = static_cast<float>(blockIdx.x * 1000 + threadIdx.x);
  // no __syncthreads: another warp's value may not be written yet
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[(threadIdx.x + 32) % blockDim.x];
}
void shuffle_sum(float* out) {  // correct code: a warp sum by shuffles, then a barrier and a block sum
  float v = static_cast<float>(threadIdx.x);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  __shared__ float sums[32];
  if ((threadIdx.x & 31) == 0) sums[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0;
    for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) t += sums[w];
    out[blockIdx.x] = t;
  }
}

// emu_selftest(which, threads, blocks): run self-test kernel `which` (0 divergent barrier, 1 shuffle
// with an exited lane, 2 shared-memory overrun, 3 missing barrier, 4 correct shuffle + block sum).
at::Tensor emu_selftest(int64_t which, int64_t threads, int64_t blocks) {
  at::Tensor out = at::zeros({blocks * threads});
  float* o = out.data_ptr<float>();
  const dim3 g(static_cast<unsigned>(blocks)), b(static_cast<unsigned>(threads));
  const size_t smem = which == 2 ? static_cast<size_t>(threads) * sizeof(float) : 0;
  using ganreg::emu::LaunchSite;
  void (*kernels[])(float*) = {divergent_barrier, exited_lane_shuffle, smem_overrun, missing_barrier, shuffle_sum};
  TORCH_CHECK(which >= 0 && which < 5, "emu_selftest: which must be in [0, 5)");
  LaunchSite(g, b, smem, nullptr, "selftest", __FILE__, __LINE__).bind(kernels[which])(o);
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ganreg_emu, m) {
  m.def("emu_selftest(int which, int threads, int blocks) -> Tensor", &emu_selftest);
  m.def("emu_config(int sm_count, int smem_budget, int order, int seed, int capturing) -> int[]", &emu_config);
  m.def("emu_launches(bool clear) -> str[]", &emu_launches);
  m.def("emu_grid_yz() -> int", []() -> int64_t { return ganreg::emu::kEmuGridYZ; });
}
