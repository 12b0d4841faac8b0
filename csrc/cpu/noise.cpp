// CPU kernels of the noise family: noise_dot = Σ x·y and noise_axpy = x + alpha·y with y = scale·n,
// n the docs/semantics.md#path-length-regularization-stylegan2 Philox normal stream over the logical (row-major) index, generated on the fly.
// y is formed in float32 as n / float32(1/scale), exactly like the reference's n / sqrt(H·W)
// (so float64 results match the reference to float64 precision).
// Philox runs 8 counters per AVX2 vector (32×32→64-bit lane products); Box–Muller calls SLEEF's AVX2
// logf / sincosf directly.
#include <torch/library.h>

#ifdef __AVX2__
#include <immintrin.h>
#include <sleef.h>
#endif

#include "common/philox.h"
#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

constexpr int64_t kBlock = 32;                   // elements per generated block (8 counters)
constexpr int64_t kNoiseChunk = 256 * kBlock;    // fixed tile of the noise reductions

// Scalar reference path: elements 32·blk .. 32·blk+31 of the stream (common/philox.h).
void normal_block32_scalar(uint64_t blk, uint64_t seed, float* out) {
  for (int j = 0; j < 8; ++j) normal4(philox_stream(blk * 8 + j, seed), out + 4 * j);
}

#ifdef __AVX2__
// 8 lanes of uint32 for philox_rounds (common/philox.h).
struct U8 {
  __m256i v;
  U8() = default;
  explicit U8(__m256i x) : v(x) {}
  explicit U8(uint32_t x) : v(_mm256_set1_epi32(static_cast<int>(x))) {}
  friend U8 operator^(U8 a, U8 b) { return U8(_mm256_xor_si256(a.v, b.v)); }
  friend U8 operator+(U8 a, U8 b) { return U8(_mm256_add_epi32(a.v, b.v)); }
};

// 32×32→64-bit lane products: low words returned, high words in *hi.
inline U8 mulhilo32(U8 m, U8 a, U8* hi) {
  const __m256i pe = _mm256_mul_epu32(a.v, m.v);                         // lanes 0,2,4,6
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a.v, 32), m.v);  // lanes 1,3,5,7
  hi->v = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
  return U8(_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA));
}

inline __m256 uniform8(U8 w) {
  const __m256i a = _mm256_xor_si256(w.v, _mm256_srai_epi32(w.v, 31));  // v < 0 ? ~v : v
  return _mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(kUniformScale));
}

void normal_block32_avx2(uint64_t blk, uint64_t seed, float* out) {
  alignas(32) uint32_t clo[8], chi[8];
  for (int j = 0; j < 8; ++j) {
    const uint64_t c = blk * 8 + j;
    clo[j] = static_cast<uint32_t>(c);
    chi[j] = static_cast<uint32_t>(c >> 32);
  }
  U8 x0(_mm256_load_si256(reinterpret_cast<const __m256i*>(clo)));
  U8 x1(_mm256_load_si256(reinterpret_cast<const __m256i*>(chi)));
  U8 x2(0u), x3(0u);
  philox_rounds<U8>(x0, x1, x2, x3, U8(static_cast<uint32_t>(seed)), U8(static_cast<uint32_t>(seed >> 32)));
  // SLEEF's AVX2 entry points directly (no dispatch), one sincos (u35, as at::vec sin/cos) for both
  const __m256 minu = _mm256_set1_ps(kMinUniform), m2 = _mm256_set1_ps(-2.0f), twopi = _mm256_set1_ps(kTwoPi);
  const __m256 r01 = _mm256_sqrt_ps(_mm256_mul_ps(m2, Sleef_logf8_u10avx2(_mm256_max_ps(uniform8(x0), minu))));
  const __m256 r23 = _mm256_sqrt_ps(_mm256_mul_ps(m2, Sleef_logf8_u10avx2(_mm256_max_ps(uniform8(x2), minu))));
  const Sleef___m256_2 sc1 = Sleef_sincosf8_u35avx2(_mm256_mul_ps(twopi, uniform8(x1)));
  const Sleef___m256_2 sc3 = Sleef_sincosf8_u35avx2(_mm256_mul_ps(twopi, uniform8(x3)));
  const __m256 A = _mm256_mul_ps(r01, sc1.y), B = _mm256_mul_ps(r01, sc1.x);
  const __m256 C = _mm256_mul_ps(r23, sc3.y), D = _mm256_mul_ps(r23, sc3.x);
  // 4×8 transpose: out[4j + {0,1,2,3}] = A[j], B[j], C[j], D[j]
  const __m256 t0 = _mm256_unpacklo_ps(A, B), t1 = _mm256_unpackhi_ps(A, B);
  const __m256 t2 = _mm256_unpacklo_ps(C, D), t3 = _mm256_unpackhi_ps(C, D);
  const __m256 s0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 s1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 s2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  const __m256 s3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  _mm256_storeu_ps(out + 0, _mm256_permute2f128_ps(s0, s1, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(s2, s3, 0x20));
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(s0, s1, 0x31));
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(s2, s3, 0x31));
}
#endif

inline void normal_block32(uint64_t blk, uint64_t seed, float* out) {
#ifdef __AVX2__
  normal_block32_avx2(blk, seed, out);
#else
  normal_block32_scalar(blk, seed, out);
#endif
}

// x values of logical elements [i, i+m) as A, zero-padded to 32.
template <typename T, typename A>
inline void load_block(const Plan& p, const T* x, bool dense, int64_t i, int64_t m, A* buf) {
  if (dense) {
    for (int64_t k = 0; k < m; ++k) buf[k] = static_cast<A>(x[i + k]);
  } else {
    gather<T, A>(p, 0, x, 0, i, m, buf);
  }
  for (int64_t k = m; k < kBlock; ++k) buf[k] = A(0);
}

template <typename T>
double noise_dot_range(const Plan& p, const T* x, uint64_t seed, float div, int64_t s, int64_t e) {
  using A = acc_t<T>;
  using V = Vectorized<A>;
  constexpr int kV = V::size();
  const bool dense = plan_dense(p, 0);
  alignas(64) float nb[kBlock];
  alignas(64) A xb[kBlock], na[kBlock];
  V acc[4] = {V(A(0)), V(A(0)), V(A(0)), V(A(0))};
  for (int64_t i = s; i < e; i += kBlock) {
    const int64_t m = std::min<int64_t>(kBlock, e - i);
    normal_block32(static_cast<uint64_t>(i) / kBlock, seed, nb);
    load_block<T, A>(p, x, dense, i, m, xb);
    for (int k = 0; k < kBlock; ++k) na[k] = static_cast<A>(nb[k] / div);
    for (int q = 0; q < kBlock / kV; ++q)
      acc[q % 4] = at::vec::fmadd(V::loadu(xb + q * kV), V::loadu(na + q * kV), acc[q % 4]);
  }
  return static_cast<double>(hsum<A>((acc[0] + acc[1]) + (acc[2] + acc[3])));
}

at::Tensor noise_dot(const at::Tensor& x, int64_t seed, double scale) {
  check_cpu(x, "x");
  check_float(x, "x");
  TORCH_CHECK(seed >= 0, "noise_dot: seed must be a non-negative 63-bit integer, got ", seed);
  const Plan p = make_plan({x}, false, false, "noise_dot");
  const int64_t n = x.numel();
  const int64_t ntiles = ceil_div(n, kNoiseChunk);
  std::vector<double> parts(ntiles, 0.0);
  const float div = static_cast<float>(1.0 / scale);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_noise_dot", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    parallel_tiles(ntiles, 8 * n, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t)
        parts[t] = noise_dot_range<scalar_t>(p, xp, static_cast<uint64_t>(seed), div, t * kNoiseChunk,
                                             std::min(n, (t + 1) * kNoiseChunk));
    });
  });
  double total = 0;
  for (double v : parts) total += v;
  const auto adt = acc_dtype(x.scalar_type());
  at::Tensor out = new_output({}, x.options().dtype(adt));
  if (adt == at::kDouble)
    *out.data_ptr<double>() = total;
  else
    *out.data_ptr<float>() = static_cast<float>(total);
  return out;
}

template <typename T>
void noise_axpy_range(const Plan* p, const T* x, T* o, acc_t<T> coef, float div, uint64_t seed, int64_t s,
                      int64_t e) {
  using A = acc_t<T>;
  const bool dense = p && plan_dense(*p, 0);
  alignas(64) float nb[kBlock];
  alignas(64) A xb[kBlock];
  for (int64_t i = s; i < e; i += kBlock) {
    const int64_t m = std::min<int64_t>(kBlock, e - i);
    normal_block32(static_cast<uint64_t>(i) / kBlock, seed, nb);
    for (int k = 0; k < kBlock; ++k) nb[k] = nb[k] / div;
    if (x) {
      load_block<T, A>(*p, x, dense, i, m, xb);
      for (int64_t k = 0; k < m; ++k) o[i + k] = static_cast<T>(xb[k] + coef * static_cast<A>(nb[k]));
    } else {
      for (int64_t k = 0; k < m; ++k) o[i + k] = static_cast<T>(coef * static_cast<A>(nb[k]));
    }
  }
}

at::Tensor noise_axpy(const std::optional<at::Tensor>& x_opt, const at::Tensor& alpha, int64_t seed, double scale,
                      at::IntArrayRef size, at::ScalarType dtype) {
  check_cpu(alpha, "alpha");
  TORCH_CHECK(alpha.numel() == 1, "noise_axpy: alpha must be a 0-d tensor, got shape ", alpha.sizes());
  TORCH_CHECK(seed >= 0, "noise_axpy: seed must be a non-negative 63-bit integer, got ", seed);
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
              "noise_axpy: dtype must be float16, bfloat16, float32 or float64, got ", dtype);
  at::Tensor x;
  if (x_opt.has_value() && x_opt->defined()) {
    x = *x_opt;
    check_cpu(x, "x");
    check_float(x, "x");
    TORCH_CHECK(x.sizes() == size, "noise_axpy: x must have shape ", size, ", got ", x.sizes());
    if (x.scalar_type() != dtype) x = x.to(dtype);
  }
  at::Tensor out = new_output(size, alpha.options().dtype(dtype).memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = out.numel();
  std::optional<Plan> p;
  if (x.defined()) p = make_plan({x}, false, false, "noise_axpy");
  const double a = alpha.item<double>();
  const float div = static_cast<float>(1.0 / scale);
  const int64_t ntiles = ceil_div(n, kNoiseChunk);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "ganreg_noise_axpy", [&] {
    using A = acc_t<scalar_t>;
    const scalar_t* xp = x.defined() ? x.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.data_ptr<scalar_t>();
    parallel_tiles(ntiles, 8 * n, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t)
        noise_axpy_range<scalar_t>(p ? &*p : nullptr, xp, op, static_cast<A>(a), div, static_cast<uint64_t>(seed),
                                   t * kNoiseChunk, std::min(n, (t + 1) * kNoiseChunk));
    });
  });
  return out;
}

}  // namespace

// Test hook: elements [offset, offset+numel) of the stream, through the vector or scalar path.
at::Tensor normal_stream(int64_t seed, int64_t offset, int64_t numel, bool scalar) {
  TORCH_CHECK(seed >= 0 && offset >= 0 && numel >= 0, "normal_stream: seed, offset and numel must be >= 0");
  at::Tensor out = new_output({numel}, at::TensorOptions().dtype(at::kFloat));
  float* o = out.data_ptr<float>();
  alignas(64) float nb[kBlock];
  for (int64_t i = offset - offset % kBlock; i < offset + numel; i += kBlock) {
    const uint64_t blk = static_cast<uint64_t>(i) / kBlock;
    if (scalar)
      normal_block32_scalar(blk, static_cast<uint64_t>(seed), nb);
    else
      normal_block32(blk, static_cast<uint64_t>(seed), nb);
    for (int64_t k = 0; k < kBlock; ++k)
      if (i + k >= offset && i + k < offset + numel) o[i + k - offset] = nb[k];
  }
  return out;
}

}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("noise_dot", &ganreg::cpu::noise_dot);
  m.impl("noise_axpy", &ganreg::cpu::noise_axpy);
}
