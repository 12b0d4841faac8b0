// csrc/cuda/gradnorm.cu compiled by g++ for the emulated CUDA backend (csrc/emu/cuda_emu.h; g++ does not
// compile .cu files by their extension).
#include "cuda/gradnorm.cu"
