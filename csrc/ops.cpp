// Schemas of the native ops (TORCH_LIBRARY(ganreg_C)), the poison flag, build info and the stub
// module init so `import ganreg_ext._C` works. Kernels live in cpu/*.cpp and cuda/*.cu; the raw
// kernel contract is docs/ARCHITECTURE.md.
//
// Built a second time as ganreg_ext._triton_autograd (setup.py: -DGANREG_NS=ganreg_triton
// -DGANREG_AUTOGRAD_ONLY -DGANREG_PY_MODULE=_triton_autograd): the schemas only, no utility op and no
// kernel; with csrc/autograd/*.cpp it gives the Triton ops the same C++ autograd, and
// ganreg_ext/ops/triton.py registers the Triton launchers as their CPU/CUDA kernels.
#include <Python.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <string>
#include <vector>

#include "common/op_namespace.h"
#include "common/reduce.h"
#include "common/output.h"

#ifndef GANREG_PY_MODULE
#define GANREG_PY_MODULE _C
#endif

#ifndef GANREG_AUTOGRAD_ONLY
namespace ganreg {

static std::atomic<bool> g_poison{false};

bool poison_enabled() { return g_poison.load(std::memory_order_relaxed); }

static void set_poison(bool flag) { g_poison.store(flag, std::memory_order_relaxed); }

// Test hook: an output allocated like every kernel's (any device), left unwritten (NaN while poisoning is on).
static at::Tensor new_output_like_hook(const at::Tensor& like) { return new_output_like(like); }

#ifndef GANREG_CUDA_EMU
namespace cpu {
at::Tensor normal_stream(int64_t seed, int64_t offset, int64_t numel, bool scalar);  // cpu/noise.cpp
}
#endif

// The CPU reuse cache's counters and controls (cpu/alloc.cpp, docs/memory.md).
std::vector<int64_t> cpu_cache_stats();
void cpu_cache_empty();
void cpu_cache_reset_peak();
int64_t cpu_cache_set_limit(int64_t bytes);

#ifdef GANREG_WITH_CUDA
std::string cuda_build_info();  // cuda/gradnorm.cu
#endif

static std::string build_info() {
  std::ostringstream s;
  s << "{";
#ifdef GANREG_WITH_CUDA
  s << "\"with_cuda\": true, " << cuda_build_info() << ", ";
#else
  s << "\"with_cuda\": false, \"cuda_version\": null, \"cuda_arch_list\": [], ";
#endif
#ifdef __AVX2__
  s << "\"avx2\": true, ";
#else
  s << "\"avx2\": false, ";
#endif
#ifdef _OPENMP
  s << "\"openmp\": true, ";
#else
  s << "\"openmp\": false, ";
#endif
#if defined(__clang__)
  s << "\"compiler\": \"clang " << __clang_version__ << "\", ";
#elif defined(__GNUC__)
  s << "\"compiler\": \"gcc " << __VERSION__ << "\", ";
#else
  s << "\"compiler\": \"unknown\", ";
#endif
  s << "\"chunk\": " << kChunk << "}";
  return s.str();
}

// Test hook: how many threads an at::parallel_for over n units compiled HERE (with this file's flags,
// like every CPU kernel) actually ran on. 1 with several torch threads means a serial build.
static int64_t parallel_threads(int64_t n) {
  std::atomic<int64_t> seen{0};
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    const int64_t t = at::get_thread_num() + 1;
    int64_t cur = seen.load();
    while (cur < t && !seen.compare_exchange_weak(cur, t)) {
    }
  });
  return seen.load();
}

}  // namespace ganreg
#endif  // GANREG_AUTOGRAD_ONLY

GANREG_LIBRARY(m) {
  m.def("sqnorm(Tensor[] grads, Tensor? inv_scale, float weight, int reduction) -> Tensor");
  m.def("scale(Tensor[] grads, Tensor coef, float factor, bool per_sample) -> Tensor[]");
  m.def("dot(Tensor[] a, Tensor[] b, bool per_sample) -> Tensor");
  m.def("grad_penalty(Tensor[] grads, Tensor? inv_scale, float center, float weight, float eps, bool one_sided, int reduction) -> Tensor");
  m.def("path_length(Tensor pl_grads, Tensor pl_mean, float decay) -> (Tensor, Tensor)");
  m.def("noise_dot(Tensor x, int seed, float scale) -> Tensor");
  m.def("noise_axpy(Tensor? x, Tensor alpha, int seed, float scale, int[] size, ScalarType dtype) -> Tensor");
  m.def("sq_diff_sum(Tensor a, Tensor b, float weight) -> Tensor");
  m.def("diff_scale(Tensor a, Tensor b, Tensor coef) -> (Tensor, Tensor)");
  m.def("diff_augment(Tensor x, Tensor fparams, Tensor iparams, int flags) -> Tensor");
  m.def("diff_augment_adj(Tensor g, Tensor fparams, Tensor iparams, int flags) -> Tensor");
  m.def("cr_augment(Tensor x, Tensor iparams) -> Tensor");
  m.def("cr_augment_adj(Tensor g, Tensor iparams) -> Tensor");
  m.def("bias_act(Tensor x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) -> Tensor");
  m.def("bias_act_grad(Tensor? x, Tensor? b, Tensor? y, Tensor[] mults, int dim, int act, float alpha, float gain, float clamp, int order) -> Tensor");
  m.def("upfirdn2d(Tensor x, Tensor f, int[] up, int[] down, int[] padding, bool flip_filter, float gain) -> Tensor");
  m.def("ada_augment(Tensor x, Tensor geom, Tensor? color, Tensor? cutout, bool affine) -> Tensor");
  m.def("ada_augment_adj(Tensor g, Tensor geom, Tensor? color, Tensor? cutout) -> Tensor");
#ifndef GANREG_AUTOGRAD_ONLY  // utility ops and test hooks of the native kernels
  // test hook: elements [offset, offset+numel) of the docs/semantics.md#path-length-regularization-stylegan2 stream (CPU), scalar or vector path
#ifndef GANREG_CUDA_EMU  // the emulation module (csrc/emu) has no CPU kernels
  m.def("normal_stream(int seed, int offset, int numel, bool scalar) -> Tensor", &ganreg::cpu::normal_stream);
#endif
  m.def("set_poison(bool flag) -> ()", &ganreg::set_poison);
  m.def("new_output_like(Tensor like) -> Tensor", &ganreg::new_output_like_hook);
  m.def("build_info() -> str", &ganreg::build_info);
  m.def("parallel_threads(int n) -> int", &ganreg::parallel_threads);
  m.def("cpu_cache_stats() -> int[]", &ganreg::cpu_cache_stats);
  m.def("cpu_cache_empty() -> ()", &ganreg::cpu_cache_empty);
  m.def("cpu_cache_reset_peak() -> ()", &ganreg::cpu_cache_reset_peak);
  m.def("cpu_cache_set_limit(int bytes) -> int", &ganreg::cpu_cache_set_limit);
#endif
}

#define GANREG_PYINIT_(name) PyInit_##name
#define GANREG_PYINIT(name) GANREG_PYINIT_(name)

static struct PyModuleDef ganreg_module = {PyModuleDef_HEAD_INIT, GANREG_STR(GANREG_PY_MODULE),
                                           "ganreg_ext native ops (torch.ops." GANREG_NS_STR ")", -1, nullptr};

PyMODINIT_FUNC GANREG_PYINIT(GANREG_PY_MODULE)(void) { return PyModule_Create(&ganreg_module); }
