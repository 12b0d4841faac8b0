// bias_act activation math shared by the CPU and CUDA kernels (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d, docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu):
// activation codes, f(z), the k-th derivative f^(k)(z) for k = 1..kMaxActOrder from polynomials
// whose coefficients are computed on the host once per (act, order), and the clamp mask.
//
//   y = clamp(gain·f(z), ±clamp),  z = x + b
//   bias_act_grad = Π mults · gain · f^(k)(z) · [|y0| < clamp]
//
// Derivative polynomials (k >= 1), written from the ODEs of each activation:
//   tanh     t = tanh z:  t' = 1 − t²       P_0 = t,  P_{k+1}(t) = P_k'(t)·(1 − t²),  f^(k) = P_k(t)
//   sigmoid  s = σ(z):    s' = s − s²       S_0 = s,  S_{k+1}(s) = S_k'(s)·(s − s²),  f^(k) = S_k(s)
//   softplus f' = σ                          f^(k) = S_{k−1}(s)
//   swish    f = z·σ(z)  (Leibniz)           f^(k) = z·S_k(s) + k·S_{k−1}(s)
//   elu      f^(k) = z >= 0 ? [k == 1] : e^z            selu  λ·(z >= 0 ? [k == 1] : α_s·e^z)
//   linear / relu / lrelu: piecewise linear, f' ∈ {1, 0 or alpha}, f^(k) = 0 for k >= 2; f' may be
//   taken from the sign of y·gain when only the output y is known.
//
// NaN (docs/semantics.md, bias_act; the reference's arithmetic): f^(k)(NaN) is NaN for the smooth
// activations (elu/selu test z >= 0, so NaN takes the e^z branch), the branch a comparison with NaN
// selects for the piecewise-linear ones (relu 0, lrelu alpha, linear 1; 0 for k >= 2); the clamp
// mask MULTIPLIES (act_masked): a NaN derivative or multiplier survives it (NaN·0 = NaN).
#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace ganreg {

// Activation codes (ganreg_ext/_contract.py ACT_CODES).
enum ActCode : int {
  kActLinear = 0,
  kActRelu = 1,
  kActLrelu = 2,
  kActTanh = 3,
  kActSigmoid = 4,
  kActElu = 5,
  kActSelu = 6,
  kActSoftplus = 7,
  kActSwish = 8,
};
constexpr int kNumActs = 9;
constexpr int kMaxActOrder = 8;           // bias_act_grad orders 1..8 (_contract.py MAX_ACT_ORDER)
constexpr int kActPolyLen = kMaxActOrder + 2;  // P_k / S_k have degree k + 1 <= 9
constexpr double kSeluLambda = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;

GANREG_HD constexpr bool act_piecewise_linear(int act) { return act <= kActLrelu; }

// Per-call constants of bias_act / bias_act_grad in the math type A (float or double). p0/p1 are
// polynomial coefficients (index = power), evaluated by Horner's rule:
//   tanh p0 = P_k; sigmoid p0 = S_k; softplus p0 = S_{k−1}; swish p0 = S_k, p1 = S_{k−1}.
template <typename A>
struct ActParams {
  int act = 0;
  int order = 0;  // 0: the forward f
  int n0 = 0, n1 = 0;
  A alpha = A(0), gain = A(1), clamp = A(-1);  // clamp < 0: no clamp
  A clamp_y = A(-1);  // clamp rounded to the dtype of a given y (what a clamped y holds)
  A korder = A(0);                             // the order as A (swish)
  A p0[kActPolyLen] = {};
  A p1[kActPolyLen] = {};
};

// ------------------------------------------------------------------------------- host: coefficients

// out = p'(v)·(m0 + m1·v + m2·v²): one step of a derivative family; returns the coefficient count.
inline int act_poly_step(const double* p, int n, double m0, double m1, double m2, double* out) {
  for (int i = 0; i < kActPolyLen; ++i) out[i] = 0.0;
  const double mm[3] = {m0, m1, m2};
  int no = 1;
  for (int i = 1; i < n; ++i)  // p[i]·v^i → i·p[i]·v^(i−1)
    for (int j = 0; j < 3; ++j) {
      const int e = i - 1 + j;
      if (mm[j] == 0.0 || e >= kActPolyLen) continue;
      out[e] += p[i] * i * mm[j];
      if (e + 1 > no) no = e + 1;
    }
  return no;
}

// Coefficients of the k-th member of the family B_0 = v, B_{k+1} = B_k'(v)·(m0 + m1·v + m2·v²).
inline int act_family(int k, double m0, double m1, double m2, double* out) {
  double cur[kActPolyLen] = {0.0, 1.0};
  int n = 2;
  for (int i = 0; i < k; ++i) {
    double nxt[kActPolyLen] = {};
    n = act_poly_step(cur, n, m0, m1, m2, nxt);
    for (int j = 0; j < kActPolyLen; ++j) cur[j] = nxt[j];
  }
  for (int j = 0; j < kActPolyLen; ++j) out[j] = cur[j];
  return n;
}

// Host-side construction (the callers check 0 <= act < kNumActs and 0 <= order <= kMaxActOrder).
template <typename A>
ActParams<A> make_act_params(int act, int order, double alpha, double gain, double clamp) {
  ActParams<A> p;
  p.act = act;
  p.order = order;
  p.alpha = static_cast<A>(alpha);
  p.gain = static_cast<A>(gain);
  p.clamp = static_cast<A>(clamp);
  p.clamp_y = static_cast<A>(clamp);
  p.korder = static_cast<A>(order);
  double c0[kActPolyLen] = {}, c1[kActPolyLen] = {};
  if (order >= 1) {
    if (act == kActTanh) {
      p.n0 = act_family(order, 1.0, 0.0, -1.0, c0);  // t' = 1 − t²
    } else if (act == kActSigmoid) {
      p.n0 = act_family(order, 0.0, 1.0, -1.0, c0);  // s' = s − s²
    } else if (act == kActSoftplus) {
      p.n0 = act_family(order - 1, 0.0, 1.0, -1.0, c0);
    } else if (act == kActSwish) {
      p.n0 = act_family(order, 0.0, 1.0, -1.0, c0);
      p.n1 = act_family(order - 1, 0.0, 1.0, -1.0, c1);
    }
  }
  for (int i = 0; i < kActPolyLen; ++i) {
    p.p0[i] = static_cast<A>(c0[i]);
    p.p1[i] = static_cast<A>(c1[i]);
  }
  return p;
}

// ------------------------------------------------------------------------- host + device: scalar math

template <typename A>
GANREG_HD A act_exp(A v) {
  return ::exp(v);
}
template <>
GANREG_HD float act_exp<float>(float v) {
  return ::expf(v);
}
template <typename A>
GANREG_HD A act_expm1(A v) {
  return ::expm1(v);
}
template <>
GANREG_HD float act_expm1<float>(float v) {
  return ::expm1f(v);
}
template <typename A>
GANREG_HD A act_log1p(A v) {
  return ::log1p(v);
}
template <>
GANREG_HD float act_log1p<float>(float v) {
  return ::log1pf(v);
}
template <typename A>
GANREG_HD A act_tanh(A v) {
  return ::tanh(v);
}
template <>
GANREG_HD float act_tanh<float>(float v) {
  return ::tanhf(v);
}
template <typename A>
GANREG_HD A act_sigmoid(A v) {
  return A(1) / (A(1) + act_exp<A>(-v));
}

// Horner's rule over n <= kActPolyLen coefficients; the loop is unrolled with constant indices so
// the coefficients stay in the kernel parameters (no local-memory copy of the struct on the GPU).
template <typename A>
GANREG_HD A act_poly(const A* c, int n, A v) {
  A r = A(0);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int i = kActPolyLen - 1; i >= 0; --i)
    if (i < n) r = (i == n - 1) ? c[i] : r * v + c[i];
  return r;
}

// f(z) (without gain). NaN propagates through every branch.
template <typename A>
GANREG_HD A act_f(const ActParams<A>& p, A z) {
  switch (p.act) {
    case kActRelu:
      return z < A(0) ? A(0) : z;
    case kActLrelu:
      return z < A(0) ? z * p.alpha : z;
    case kActTanh:
      return act_tanh<A>(z);
    case kActSigmoid:
      return act_sigmoid<A>(z);
    case kActElu:
      return z < A(0) ? act_expm1<A>(z) : z;
    case kActSelu:
      return A(kSeluLambda) * (z < A(0) ? A(kSeluAlpha) * act_expm1<A>(z) : z);
    case kActSoftplus: {
      const A m = z < A(0) ? A(0) : z;
      const A a = z < A(0) ? -z : z;
      return m + act_log1p<A>(act_exp<A>(-a));  // stable; NaN propagates through m
    }
    case kActSwish:
      return z * act_sigmoid<A>(z);
    default:
      return z;
  }
}

// y = clamp(gain·f(z)).
template <typename A>
GANREG_HD A act_forward(const ActParams<A>& p, A z) {
  A y = act_f<A>(p, z) * p.gain;
  if (p.clamp >= A(0)) y = y > p.clamp ? p.clamp : (y < -p.clamp ? -p.clamp : y);
  return y;
}

// f^(order)(z) for the smooth activations, order >= 1.
template <typename A>
GANREG_HD A act_deriv_smooth(const ActParams<A>& p, A z) {
  switch (p.act) {
    case kActTanh:
      return act_poly<A>(p.p0, p.n0, act_tanh<A>(z));
    case kActSigmoid:
    case kActSoftplus:
      return act_poly<A>(p.p0, p.n0, act_sigmoid<A>(z));
    case kActSwish: {
      const A s = act_sigmoid<A>(z);
      return z * act_poly<A>(p.p0, p.n0, s) + p.korder * act_poly<A>(p.p1, p.n1, s);
    }
    case kActElu:  // z >= 0, not z < 0: a NaN z takes e^z (NaN), as the reference
      return z >= A(0) ? (p.order == 1 ? A(1) : A(0)) : act_exp<A>(z);
    case kActSelu:
      return A(kSeluLambda) * (z >= A(0) ? (p.order == 1 ? A(1) : A(0)) : A(kSeluAlpha) * act_exp<A>(z));
    default:
      return A(0);
  }
}

// f'(z) of a piecewise-linear activation from z (order 1; 0 for order >= 2).
template <typename A>
GANREG_HD A act_deriv_pl_z(const ActParams<A>& p, A z) {
  if (p.order != 1) return A(0);
  if (p.act == kActRelu) return z > A(0) ? A(1) : A(0);
  if (p.act == kActLrelu) return z > A(0) ? A(1) : p.alpha;
  return A(1);
}

// f'(z) of a piecewise-linear activation from the sign of y·gain (order 1; 0 for order >= 2).
template <typename A>
GANREG_HD A act_deriv_pl_y(const ActParams<A>& p, A y) {
  if (p.order != 1) return A(0);
  if (p.act == kActRelu) return y * p.gain > A(0) ? A(1) : A(0);
  if (p.act == kActLrelu) return y * p.gain > A(0) ? A(1) : p.alpha;
  return A(1);
}

// Clamp mask: 1 unless |y0| >= c, with c = p.clamp for y0 = gain·f(z) recomputed, c = p.clamp_y
// (the clamp rounded to y's dtype, the value a clamped y holds) for a stored y.
template <typename A>
GANREG_HD bool act_unclamped(const ActParams<A>& p, A y0, A c) {
  return p.clamp < A(0) || (y0 < c && y0 > -c);
}

// v·[|y0| < c]: the clamp mask as a multiplication, as the reference computes it, so a NaN (or an
// infinite) v stays NaN where y0 is clamped (a select `keep ? v : 0` would return 0 there).
template <typename A>
GANREG_HD A act_masked(const ActParams<A>& p, A v, A y0, A c) {
  return v * (act_unclamped<A>(p, y0, c) ? A(1) : A(0));
}

}  // namespace ganreg

// ------------------------------------------------------------------------ host code (both builds)
#include <ATen/ATen.h>

namespace ganreg {

// The CPU and CUDA kernels' check of the activation code and clamp.
inline void check_act(int64_t act, double clamp, const char* op) {
  TORCH_CHECK(act >= 0 && act < kNumActs, op, ": act must be an activation code in [0, ", kNumActs,
              ") (ganreg_ext._contract.ACT_CODES), got ", act);
  TORCH_CHECK(!std::isnan(clamp), op, ": clamp must not be NaN (use a negative value for no clamp)");
}

// The clamp as stored in dtype dt (a clamped y holds exactly this value).
inline double clamp_in_dtype(double clamp, at::ScalarType dt) {
  switch (dt) {
    case at::kHalf:
      return static_cast<float>(at::Half(static_cast<float>(clamp)));
    case at::kBFloat16:
      return static_cast<float>(at::BFloat16(static_cast<float>(clamp)));
    case at::kFloat:
      return static_cast<float>(clamp);
    default:
      return clamp;
  }
}

}  // namespace ganreg
