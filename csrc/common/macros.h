// Shared macros for code compiled by both the host compiler and nvcc.
#pragma once

#if defined(__CUDACC__)
#define GANREG_HD __host__ __device__ __forceinline__
#else
#define GANREG_HD inline
#endif
