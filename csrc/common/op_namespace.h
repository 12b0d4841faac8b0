// The op namespace the native ops register under: ganreg_C (the package's ganreg_ext._C), or another
// name for a second build of the same sources (csrc/emu/build.py compiles the CUDA kernels on the CPU
// with -DGANREG_NS=ganreg_emu; setup.py builds the schemas and C++ autograd of the Triton ops as
// ganreg_ext._triton_autograd with -DGANREG_NS=ganreg_triton). TORCH_LIBRARY pastes its namespace
// argument, so it is expanded first.
#pragma once

#include <torch/library.h>

#ifndef GANREG_NS
#define GANREG_NS ganreg_C
#endif
#define GANREG_STR_(x) #x
#define GANREG_STR(x) GANREG_STR_(x)
#define GANREG_NS_STR GANREG_STR(GANREG_NS)
#define GANREG_LIBRARY_(ns, m) TORCH_LIBRARY(ns, m)
#define GANREG_LIBRARY(m) GANREG_LIBRARY_(GANREG_NS, m)
#define GANREG_LIBRARY_IMPL_(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)
#define GANREG_LIBRARY_IMPL(key, m) GANREG_LIBRARY_IMPL_(GANREG_NS, key, m)
