// CPU kernel of upfirdn2d (docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d; index math in common/upfirdn2d.h).
//
// Per (n, c) plane, polyphase (the inserted zeros are never multiplied), in bands of output rows
// (fixed from the shapes: results do not depend on the thread count):
//  - horizontal: each input row the band reads is converted to the math type (float32, float64 for
//    float64) and split into S = downx/g sub-rows (x[r], x[r+S], ...), so every output phase
//    q < Q = upx/g (outputs q, q+Q, q+2Q, ...) is a short FIR over CONTIGUOUS inputs: at::vec
//    loads/FMAs over j with the phase's taps in registers; the borders (taps partly outside the
//    row) are scalar. Rows are kept phase-major (all of phase 0, then phase 1, ...).
//  - separable 1-D filter: the band's input rows are filtered horizontally once into a per-thread
//    buffer, then each output row is the vertical FIR (≤ ceil(fh/upy) rows) over those.
//    2-D filter: each output row accumulates the horizontal FIRs of its input rows with the
//    matching filter rows.
//  - the phase-major result is interleaved into the contiguous NCHW output row.
#include <torch/library.h>

#include <numeric>

#include "common/upfirdn2d.h"
#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

// ------------------------------------------------------------------------------ horizontal plan

struct HTap {
  int64_t t;       // filter tap index
  int64_t base;    // element offset of the tap's input for j = 0 in the prepared row (may be < 0)
  int64_t lo, hi;  // valid j: [lo, hi)
};
struct HPhase {
  int64_t J = 0, off = 0;  // outputs of this phase, first one's offset in the phase-major row
  int64_t jA = 0, jB = 0;  // j where every tap is valid
  std::vector<HTap> taps;
};
struct HPlan {
  int64_t Q = 1, S = 1, W = 0, OW = 0;
  std::vector<int64_t> sub_off, sub_len;  // sub-row r: x[r + S·u], u < sub_len[r]
  std::vector<HPhase> ph;
};

HPlan make_hplan(int64_t W, int64_t OW, int64_t up, int64_t down, int64_t p0, int64_t taps) {
  HPlan hp;
  const int64_t g = ufd_gcd(up, down);
  hp.Q = up / g;
  hp.S = down / g;
  hp.W = W;
  hp.OW = OW;
  int64_t o = 0;
  for (int64_t r = 0; r < hp.S; ++r) {
    const int64_t len = r < W ? (W - r + hp.S - 1) / hp.S : 0;
    hp.sub_off.push_back(o);
    hp.sub_len.push_back(len);
    o += len;
  }
  int64_t off = 0;
  for (int64_t q = 0; q < hp.Q; ++q) {
    HPhase P;
    P.J = q < OW ? (OW - q + hp.Q - 1) / hp.Q : 0;
    P.off = off;
    off += P.J;
    const UfdTap ft = ufd_first_tap(q, up, down, p0);
    P.jA = 0;
    P.jB = P.J;
    for (int64_t t = ft.t0, m = ft.m0; t < taps; t += up, ++m) {
      const int64_t r = ufd_mod(m, hp.S), u = ufd_floor_div(m, hp.S);
      HTap tp{t, hp.sub_off[r] + u, std::max<int64_t>(0, -u), std::max<int64_t>(0, hp.sub_len[r] - u)};
      P.jA = std::max(P.jA, tp.lo);
      P.jB = std::min(P.jB, tp.hi);
      P.taps.push_back(tp);
    }
    P.jA = std::min(P.jA, P.J);
    P.jB = std::max(P.jB, P.jA);
    hp.ph.push_back(std::move(P));
  }
  return hp;
}

// --------------------------------------------------------------------------- row primitives

template <typename A>
using Vec = Vectorized<A>;

// d[j] (+)= Σ_i c[i]·p[i][j] for j in [0, n): NT taps (0 = runtime nt), summed in tap order. The taps'
// pointers and coefficients are copied to locals (the vector stores may alias anything: read through
// p they would be reloaded every step); 4 vectors per step (4 independent FMA chains), then 1.
template <typename A, int NT>
inline void fir_run(const A* const* p, const A* c, int nt_rt, int64_t n, A* d, bool acc) {
  using V = Vec<A>;
  constexpr int64_t K = V::size();
  constexpr int kMax = NT > 0 ? NT : 16;
  const int nt = NT > 0 ? NT : nt_rt;
  V cv[kMax];
  const A* pp[kMax];
  for (int i = 0; i < nt; ++i) {
    cv[i] = V(c[i]);
    pp[i] = p[i];
  }
  int64_t j = 0;
  for (; j + 4 * K <= n; j += 4 * K) {
    V a0 = acc ? V::loadu(d + j) : V(A(0)), a1 = acc ? V::loadu(d + j + K) : V(A(0));
    V a2 = acc ? V::loadu(d + j + 2 * K) : V(A(0)), a3 = acc ? V::loadu(d + j + 3 * K) : V(A(0));
    for (int i = 0; i < nt; ++i) {
      const A* q = pp[i] + j;
      a0 = at::vec::fmadd(cv[i], V::loadu(q), a0);
      a1 = at::vec::fmadd(cv[i], V::loadu(q + K), a1);
      a2 = at::vec::fmadd(cv[i], V::loadu(q + 2 * K), a2);
      a3 = at::vec::fmadd(cv[i], V::loadu(q + 3 * K), a3);
    }
    a0.store(d + j);
    a1.store(d + j + K);
    a2.store(d + j + 2 * K);
    a3.store(d + j + 3 * K);
  }
  for (; j < n; j += K) {
    const int64_t r = n - j;
    V a0 = acc ? vload<A>(d + j, r) : V(A(0));
    for (int i = 0; i < nt; ++i) a0 = at::vec::fmadd(cv[i], vload<A>(pp[i] + j, r), a0);
    vstore<A>(d + j, a0, r);
  }
}

template <typename A>
inline void fir_dispatch(const A* const* p, const A* c, int nt, int64_t n, A* d, bool acc) {
  switch (nt) {
    case 1:
      return fir_run<A, 1>(p, c, nt, n, d, acc);
    case 2:
      return fir_run<A, 2>(p, c, nt, n, d, acc);
    case 3:
      return fir_run<A, 3>(p, c, nt, n, d, acc);
    case 4:
      return fir_run<A, 4>(p, c, nt, n, d, acc);
    case 5:
      return fir_run<A, 5>(p, c, nt, n, d, acc);
    case 6:
      return fir_run<A, 6>(p, c, nt, n, d, acc);
    default:
      // up to 16 taps in registers per pass; more: several accumulating passes (same order of sums)
      for (int i0 = 0; i0 < nt; i0 += 16) {
        fir_run<A, 0>(p + i0, c + i0, std::min(16, nt - i0), n, d, acc || i0 > 0);
      }
  }
}

// Horizontal polyphase FIR of one prepared row `x` with taps F (F[t], t < taps) into the
// phase-major row d (acc: add to d).
template <typename A>
void hrow(const HPlan& hp, const A* F, const A* x, A* d, bool acc, std::vector<const A*>& pbuf,
          std::vector<A>& cbuf) {
  for (const HPhase& P : hp.ph) {
    A* dq = d + P.off;
    const int nt = static_cast<int>(P.taps.size());
    if (nt == 0 || P.J == 0) {
      if (!acc) std::fill(dq, dq + P.J, A(0));
      continue;
    }
    // borders: per-tap range checks
    auto edge = [&](int64_t j) {
      A s = A(0);
      for (const HTap& tp : P.taps)
        if (j >= tp.lo && j < tp.hi) s += F[tp.t] * x[tp.base + j];
      dq[j] = acc ? dq[j] + s : s;
    };
    for (int64_t j = 0; j < P.jA; ++j) edge(j);
    for (int64_t j = P.jB; j < P.J; ++j) edge(j);
    if (P.jB > P.jA) {
      pbuf.resize(nt);
      cbuf.resize(nt);
      for (int i = 0; i < nt; ++i) {
        pbuf[i] = x + (P.taps[i].base + P.jA);
        cbuf[i] = F[P.taps[i].t];
      }
      fir_dispatch<A>(pbuf.data(), cbuf.data(), nt, P.jB - P.jA, dq + P.jA, acc);
    }
  }
}

// Phase-major row src (length OW) → NCHW output row dst (interleaved), converted to T.
template <typename T, typename A>
void store_row(const HPlan& hp, const A* src, T* dst, A* tmp) {
  const int64_t OW = hp.OW;
  if (hp.Q == 1) {
    if (reinterpret_cast<const void*>(src) != reinterpret_cast<const void*>(dst)) at::vec::convert(src, dst, OW);
    return;
  }
  A* row = std::is_same_v<T, A> ? reinterpret_cast<A*>(dst) : tmp;
  if (hp.Q == 2) {
    using V = Vec<A>;
    constexpr int64_t K = V::size();
    const A* a = src + hp.ph[0].off;
    const A* b = src + hp.ph[1].off;
    const int64_t J1 = hp.ph[1].J;
    int64_t j = 0;
    for (; j + K <= J1; j += K) {
      const auto pr = at::vec::interleave2<A>(V::loadu(a + j), V::loadu(b + j));
      pr.first.store(row + 2 * j);
      pr.second.store(row + 2 * j + K);
    }
    for (; j < hp.ph[0].J; ++j) {
      row[2 * j] = a[j];
      if (j < J1) row[2 * j + 1] = b[j];
    }
  } else {
    for (int64_t q = 0; q < hp.Q; ++q) {
      const HPhase& P = hp.ph[q];
      for (int64_t j = 0; j < P.J; ++j) row[q + hp.Q * j] = src[P.off + j];
    }
  }
  if (row != reinterpret_cast<A*>(dst)) at::vec::convert(row, dst, OW);
}

// e[u] = s[2u], o[u] = s[2u + 1] for u < n.
template <typename A>
inline void deinterleave_pairs(const A* s, int64_t n, A* e, A* o) {
  using V = Vec<A>;
  constexpr int64_t K = V::size();
  int64_t u = 0;
  for (; u + K <= n; u += K) {
    const auto pr = at::vec::deinterleave2<A>(V::loadu(s + 2 * u), V::loadu(s + 2 * u + K));
    pr.first.store(e + u);
    pr.second.store(o + u);
  }
  for (; u < n; ++u) {
    e[u] = s[2 * u];
    o[u] = s[2 * u + 1];
  }
}

// Input row (W elements, element stride sw) → prepared row: converted to A and split into the S
// sub-rows of hp. Returns the row itself when it already is a dense A row and S == 1.
template <typename T, typename A>
const A* prepare_row(const HPlan& hp, const T* src, int64_t sw, A* buf) {
  const int64_t W = hp.W;
  if (hp.S == 1) {
    if constexpr (std::is_same_v<T, A>) {
      if (sw == 1) return src;
    }
    if (sw == 1) {
      at::vec::convert(src, buf, W);
    } else {
      for (int64_t k = 0; k < W; ++k) buf[k] = static_cast<A>(src[k * sw]);
    }
    return buf;
  }
  if constexpr (std::is_same_v<T, A>) {
    if (hp.S == 2 && sw == 1) {  // vector deinterleave (x[2u] → sub-row 0, x[2u + 1] → sub-row 1)
      const int64_t n1 = hp.sub_len[1];
      deinterleave_pairs<A>(src, n1, buf, buf + hp.sub_off[1]);
      if (hp.sub_len[0] > n1) buf[n1] = src[2 * n1];  // odd W: the last even element
      return buf;
    }
  }
  for (int64_t r = 0; r < hp.S; ++r) {
    A* d = buf + hp.sub_off[r];
    const T* s = src + r * sw;
    const int64_t st = hp.S * sw, n = hp.sub_len[r];
    for (int64_t u = 0; u < n; ++u) d[u] = static_cast<A>(s[u * st]);
  }
  return buf;
}

// Software prefetch of the row kPrefetchRows ahead, input and output, on the banded path: the hardware
// prefetchers stop at 4 KiB page boundaries (every 4 rows of 256 float32), and the prefetch bridges
// them (4×16×256² alone, 2 threads: filtering 1.2–1.4× faster, 2× down 1.1×; measured).
constexpr int64_t kPrefetchRows = 4;

inline void prefetch_bytes(const void* p, int64_t bytes, bool write) {
  const char* q = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) {
    if (write)
      __builtin_prefetch(q + o, 1, 0);
    else
      __builtin_prefetch(q + o, 0, 0);
  }
}

// ------------------------------------------------------------------------- small planes (flat)
//
// A plane of at most kFlatPlane elements is filtered whole, without per-row borders or tails: it is
// split into Sy×Sx sub-planes (rows m ≡ ry mod Sy, columns ≡ rx mod Sx) and zero-padded so that every
// tap of every output phase reads inside its own padded row. The outputs k, j of phase (qy, qx) then
// read sub-plane (ry_t, rx_t) at (Ly + uy_t + k)·Wr + Lx + ux_t + j for every k, j: ONE FIR over the
// contiguous run of Jy·Wr elements (the columns j ≥ Jx are computed and dropped). Same taps, same
// order of sums as the banded path.

constexpr int64_t kFlatPlane = 160 * 160;
// Flat planes of at least kFactorPlane elements run a rank-1 2-D filter separably when they are only
// filtered (up = down = 1); with up/down sampling, and on smaller planes, the 2-D taps were as fast or
// faster (measured, upfirdn2d() explains).
constexpr int64_t kFactorPlane = 32 * 32;
// Planes are filtered G at a time, G = kFlatGroup / (elements of one plane's buffers) (≥ 1): the
// sub-planes of the G planes lie one after another, so each FIR run covers all G (the rows between
// planes are computed and dropped, like the columns j ≥ J): one run per phase instead of one per
// plane. Every output keeps its taps and order of sums: the result does not depend on G.
constexpr int64_t kFlatGroup = 32 * 1024;

// One axis: Q output phases and S input sub-rows (polyphase), the pad L before each padded row and
// the padded length R.
struct FlatTap {
  int64_t t, r, u;  // filter tap, input sub-row (index mod S), offset: output k reads sub-row r at u + k
};
struct FlatAxis {
  int64_t Q = 1, S = 1, L = 0, R = 0, Jmax = 0;
  std::vector<int64_t> len;             // sub-row r: inputs r, r + S, ... (len[r] of them)
  std::vector<int64_t> J;               // outputs of phase q: q, q + Q, ...
  std::vector<std::vector<FlatTap>> taps;  // per phase, in tap order
};

FlatAxis make_flat_axis(int64_t n, int64_t on, int64_t up, int64_t down, int64_t p0, int64_t taps) {
  FlatAxis a;
  const int64_t g = ufd_gcd(up, down);
  a.Q = up / g;
  a.S = down / g;
  int64_t umin = 0, umax = 0, lmax = 0;
  for (int64_t r = 0; r < a.S; ++r) {
    a.len.push_back(r < n ? (n - r + a.S - 1) / a.S : 0);
    lmax = std::max(lmax, a.len.back());
  }
  for (int64_t q = 0; q < a.Q; ++q) {
    a.J.push_back(q < on ? (on - q + a.Q - 1) / a.Q : 0);
    a.Jmax = std::max(a.Jmax, a.J.back());
    std::vector<FlatTap> tq;
    const UfdTap ft = ufd_first_tap(q, up, down, p0);
    for (int64_t t = ft.t0, m = ft.m0; t < taps; t += up, ++m) {
      const FlatTap tp{t, ufd_mod(m, a.S), ufd_floor_div(m, a.S)};
      umin = std::min(umin, tp.u);
      umax = std::max(umax, tp.u);
      tq.push_back(tp);
    }
    a.taps.push_back(std::move(tq));
  }
  a.L = -umin;
  a.R = std::max(a.L + lmax, a.L + umax + a.Jmax);  // valid outputs read [L + u, L + u + J) ⊂ [0, R)
  return a;
}

template <typename T, typename A>
void upfirdn2d_flat(const at::Tensor& x, const std::vector<A>& F, bool separable, int64_t fh, int64_t fw,
                    int64_t upx, int64_t upy, int64_t downx, int64_t downy, int64_t px0, int64_t py0, at::Tensor& out) {
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  const int64_t sn = x.stride(0), sc = x.stride(1), sh = x.stride(2), sw = x.stride(3);
  const FlatAxis ax = make_flat_axis(W, OW, upx, downx, px0, fw);
  const FlatAxis ay = make_flat_axis(H, OH, upy, downy, py0, fh);
  const int64_t Wr = ax.R, Hr = ay.R;
  const int64_t sub = (Hr + 1) * Wr;  // one padded sub-plane (+ one row: the last run reads past its end)
  const int64_t nsub = ay.S * ax.S, nh = separable ? ay.S * ax.Q : 0, nout = ay.Q * ax.Q;
  const T* xp = x.const_data_ptr<T>();
  T* op = out.data_ptr<T>();
  const int64_t planes = x.size(0) * C;
  const int64_t per_out = fw * (separable ? 2 : fh) / std::max<int64_t>(1, upx * upy);
  // downx = 2 on a contiguous plane of even width: de-interleave the plane with vector shuffles
  const bool split2 = ax.S == 2 && sw == 1 && sh == W && W % 2 == 0;
  // G planes at a time (kFlatGroup): sub-plane s of plane g at (s·G + g)·sub
  const int64_t G = std::max<int64_t>(1, std::min<int64_t>(planes, kFlatGroup / ((nsub + nh + nout) * sub)));
  parallel_tiles(ceil_div(planes, G), planes * OH * OW * std::max<int64_t>(1, per_out), [&](int64_t lo, int64_t hi) {
    std::vector<A> P(static_cast<size_t>(nsub * G * sub), A(0));  // padding stays 0: data lands on the same places
    std::vector<A> Hb(static_cast<size_t>(nh * G * sub)), O(static_cast<size_t>(nout * G * sub));
    // tmp: one output row, or (split2 with a converted dtype) the plane in the math type
    std::vector<A> tmp(static_cast<size_t>(split2 && !std::is_same_v<T, A> ? std::max(OW, H * W) : OW));
    std::vector<A> eo(split2 ? H * W : 0);
    std::vector<const A*> pbuf;
    std::vector<A> cbuf;
    auto run = [&](A* d, int64_t n) {  // d[0, n) = Σ_i cbuf[i]·pbuf[i][0, n) (0 without taps)
      if (pbuf.empty()) std::fill_n(d, n, A(0));
      else fir_dispatch<A>(pbuf.data(), cbuf.data(), static_cast<int>(pbuf.size()), n, d, false);
    };
    for (int64_t pl0 = lo * G; pl0 < std::min(planes, hi * G); pl0 += G) {
      const int64_t ng = std::min(G, planes - pl0);
      // input → padded sub-planes (math type)
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t pl = pl0 + g;
        const T* xpl = xp + (pl / C) * sn + (pl % C) * sc;
        if (split2) {  // downx = 2, contiguous plane, W even: de-interleave the whole plane at once
          const A* s = std::is_same_v<T, A> ? reinterpret_cast<const A*>(xpl) : tmp.data();
          if (!std::is_same_v<T, A>) at::vec::convert(xpl, tmp.data(), H * W);
          deinterleave_pairs<A>(s, H * W / 2, eo.data(), eo.data() + H * W / 2);
          for (int64_t m = 0, ry = 0, k = 0; m < H; ++m, (++ry == ay.S ? (ry = 0, ++k) : 0)) {  // m = k·S + ry
            A* prow = P.data() + (ry * ax.S * G + g) * sub + (ay.L + k) * Wr + ax.L;
            std::copy_n(eo.data() + m * (W / 2), W / 2, prow);
            std::copy_n(eo.data() + H * W / 2 + m * (W / 2), W / 2, prow + G * sub);
          }
          continue;
        }
        for (int64_t m = 0, ry = 0, k = 0; m < H; ++m, (++ry == ay.S ? (ry = 0, ++k) : 0)) {  // m = k·S + ry
          A* prow = P.data() + (ry * ax.S * G + g) * sub + (ay.L + k) * Wr + ax.L;
          const T* src = xpl + m * sh;
          if (ax.S == 1 && sw == 1) {
            at::vec::convert(src, prow, W);
          } else {
            for (int64_t rx = 0; rx < ax.S; ++rx) {
              A* d = prow + rx * G * sub;
              const T* sx = src + rx * sw;
              const int64_t st = ax.S * sw;
              for (int64_t u = 0; u < ax.len[rx]; ++u) d[u] = static_cast<A>(sx[u * st]);
            }
          }
        }
      }
      const int64_t span = (ng - 1) * sub;  // a run over ng planes: plane 0's length + span
      if (separable) {  // horizontal pass of every padded row of every row sub-plane, per column phase
        for (int64_t qx = 0; qx < ax.Q; ++qx)
          for (int64_t ry = 0; ry < ay.S && ax.J[qx] > 0; ++ry) {
            pbuf.clear();
            cbuf.clear();
            for (const FlatTap& tx : ax.taps[qx]) {
              pbuf.push_back(P.data() + (ry * ax.S + tx.r) * G * sub + ax.L + tx.u);
              cbuf.push_back(F[tx.t]);
            }
            run(Hb.data() + (ry * ax.Q + qx) * G * sub, span + Hr * Wr);
          }
      }
      for (int64_t qy = 0; qy < ay.Q; ++qy)
        for (int64_t qx = 0; qx < ax.Q; ++qx) {
          if (ax.J[qx] == 0) continue;
          pbuf.clear();
          cbuf.clear();
          for (const FlatTap& ty : ay.taps[qy]) {
            if (separable) {
              pbuf.push_back(Hb.data() + (ty.r * ax.Q + qx) * G * sub + (ay.L + ty.u) * Wr);
              cbuf.push_back(F[fw + ty.t]);  // vertical taps (gain folded in)
              continue;
            }
            for (const FlatTap& tx : ax.taps[qx]) {
              pbuf.push_back(P.data() + (ty.r * ax.S + tx.r) * G * sub + (ay.L + ty.u) * Wr + ax.L + tx.u);
              cbuf.push_back(F[ty.t * fw + tx.t]);
            }
          }
          run(O.data() + (qy * ax.Q + qx) * G * sub, span + ay.J[qy] * Wr);
        }
      // phases → NCHW output rows
      for (int64_t g = 0; g < ng; ++g) {
        T* opl = op + (pl0 + g) * OH * OW;
        for (int64_t oy = 0, qy = 0, k = 0; oy < OH; ++oy, (++qy == ay.Q ? (qy = 0, ++k) : 0)) {  // oy = k·Q + qy
          T* orow = opl + oy * OW;
          const A* s0 = O.data() + (qy * ax.Q * G + g) * sub + k * Wr;  // phase (qy, qx): + qx·G·sub
          if (ax.Q == 1) {
            at::vec::convert(s0, orow, OW);
            continue;
          }
          A* row = std::is_same_v<T, A> ? reinterpret_cast<A*>(orow) : tmp.data();
          if (ax.Q == 2) {  // J[0] = J[1] or J[1] + 1
            using V = Vec<A>;
            constexpr int64_t K = V::size();
            const A *a = s0, *b = s0 + G * sub;
            int64_t j = 0;
            for (; j + K <= ax.J[1]; j += K) {
              const auto pr = at::vec::interleave2<A>(V::loadu(a + j), V::loadu(b + j));
              pr.first.store(row + 2 * j);
              pr.second.store(row + 2 * j + K);
            }
            for (; j < ax.J[0]; ++j) {
              row[2 * j] = a[j];
              if (j < ax.J[1]) row[2 * j + 1] = b[j];
            }
          } else {
            for (int64_t qx = 0; qx < ax.Q; ++qx) {
              const A* sq = s0 + qx * G * sub;
              for (int64_t j = 0; j < ax.J[qx]; ++j) row[qx + ax.Q * j] = sq[j];
            }
          }
          if (row != reinterpret_cast<A*>(orow)) at::vec::convert(row, orow, OW);
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------------- kernel

struct VTap {
  int64_t row;  // input row
  int64_t t;    // filter tap (row of the 2-D filter)
};

// Input rows of output row ky (vertical polyphase), in tap order.
inline void vtaps(int64_t ky, int64_t up, int64_t down, int64_t p0, int64_t taps, int64_t H, std::vector<VTap>& out) {
  out.clear();
  const UfdTap ft = ufd_first_tap(ky, up, down, p0);
  for (int64_t t = ft.t0, m = ft.m0; t < taps; t += up, ++m)
    if (m >= 0 && m < H) out.push_back({m, t});
}

template <typename T, typename A>
void upfirdn2d_cpu(const at::Tensor& x, const std::vector<A>& F, bool separable, int64_t fh, int64_t fw,
                   int64_t upx, int64_t upy, int64_t downx, int64_t downy, int64_t px0, int64_t py0, at::Tensor& out) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out.size(2), OW = out.size(3);
  const int64_t sn = x.stride(0), sc = x.stride(1), sh = x.stride(2), sw = x.stride(3);
  const HPlan hp = make_hplan(W, OW, upx, downx, px0, fw);
  const T* xp = x.const_data_ptr<T>();
  T* op = out.data_ptr<T>();
  // bands of output rows: the rows they read (prepared + filtered) stay in L2 (~192 KB)
  const int64_t row_bytes = (W + (separable ? OW : 0)) * static_cast<int64_t>(sizeof(A));
  const int64_t budget_rows = std::max<int64_t>(4, (int64_t(192) << 10) / std::max<int64_t>(1, row_bytes));
  const int64_t vt = (fh + upy - 1) / upy;
  const int64_t BR = std::max<int64_t>(1, std::min(OH, (budget_rows - vt) * upy / downy));
  const int64_t nb = ceil_div(OH, BR);
  const int64_t max_in = std::min<int64_t>(H, ((BR - 1) * downy + fh - 1) / upy + 3);
  const bool direct = std::is_same_v<T, A> && sw == 1 && hp.S == 1;
  const int64_t planes = N * C;
  parallel_tiles(planes * nb, planes * OH * OW * std::max<int64_t>(1, fw * (separable ? 2 : fh)) / (upx * upy),
                 [&](int64_t lo, int64_t hi) {
    std::vector<A> xin(direct ? 0 : static_cast<size_t>(max_in * W));
    std::vector<A> hbuf(separable ? static_cast<size_t>(max_in * OW) : 0);
    std::vector<A> acc(OW), tmp(OW);
    std::vector<const A*> rows(std::max<int64_t>(1, max_in)), pbuf;
    std::vector<A> cbuf, vc;
    std::vector<VTap> taps;
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t pl = u / nb, band = u % nb;
      const int64_t n = pl / C, c = pl % C;
      const T* xpl = xp + n * sn + c * sc;
      T* opl = op + pl * OH * OW;
      const int64_t ky0 = band * BR, ky1 = std::min(OH, ky0 + BR);
      const int64_t r0 = std::max<int64_t>(0, ufd_in_lo(ky0, upy, downy, py0));
      const int64_t r1 = std::min<int64_t>(H - 1, ufd_in_hi(ky1 - 1, upy, downy, py0, fh));
      // prepare (and, separable, filter horizontally) the band's input rows
      for (int64_t r = r0; r <= r1; ++r) {
        const int64_t i = r - r0;
        TORCH_CHECK(i < max_in, "upfirdn2d: internal: band row overflow");
        if (sw == 1 && r + kPrefetchRows < H) prefetch_bytes(xpl + (r + kPrefetchRows) * sh, W * sizeof(T), false);
        const A* pr = prepare_row<T, A>(hp, xpl + r * sh, sw, direct ? nullptr : xin.data() + i * W);
        if (separable) {
          hrow<A>(hp, F.data(), pr, hbuf.data() + i * OW, false, pbuf, cbuf);
          rows[i] = hbuf.data() + i * OW;
        } else {
          rows[i] = pr;
        }
      }
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        vtaps(ky, upy, downy, py0, fh, H, taps);
        T* orow = opl + ky * OW;
        if (ky + kPrefetchRows < OH) prefetch_bytes(orow + kPrefetchRows * OW, OW * sizeof(T), true);
        A* dst = (hp.Q == 1 && std::is_same_v<T, A>) ? reinterpret_cast<A*>(orow) : acc.data();
        if (taps.empty()) {
          std::fill(dst, dst + OW, A(0));
        } else if (separable) {
          const int nt = static_cast<int>(taps.size());
          pbuf.resize(nt);
          vc.resize(nt);
          for (int i = 0; i < nt; ++i) {
            pbuf[i] = rows[taps[i].row - r0];
            vc[i] = F[fw + taps[i].t];  // vertical taps (gain folded in), after the fw horizontal ones
          }
          fir_dispatch<A>(pbuf.data(), vc.data(), nt, OW, dst, false);
        } else {
          bool first = true;
          for (const VTap& tp : taps) {
            hrow<A>(hp, F.data() + tp.t * fw, rows[tp.row - r0], dst, !first, pbuf, cbuf);
            first = false;
          }
        }
        store_row<T, A>(hp, dst, orow, tmp.data());
      }
    }
  });
}

// A 2-D filter g[fh·fw] as the outer product v ⊗ h (g[i, j] ≈ v[i]·h[j]): pivot p = the largest
// |g|, h = g[p's row] / √|p|, v = g[p's column]·sign(p) / √|p| (exact for setup_filter's
// outer(f, f) / Σ²). Rank 1 when every |v[i]·h[j] − g[i, j]| ≤ tol·|p|.
bool rank1_factors(const std::vector<double>& g, int64_t fh, int64_t fw, double tol, std::vector<double>& v,
                   std::vector<double>& h) {
  int64_t pi = 0;
  for (int64_t i = 1; i < fh * fw; ++i)
    if (std::abs(g[i]) > std::abs(g[pi])) pi = i;
  const double p = g[pi];
  if (!(p != 0.0) || !std::isfinite(p)) return false;
  const int64_t r0 = pi / fw, c0 = pi % fw;
  const double sq = std::sqrt(std::abs(p)), sgn = p > 0 ? 1.0 : -1.0;
  v.assign(fh, 0.0);
  h.assign(fw, 0.0);
  for (int64_t j = 0; j < fw; ++j) h[j] = g[r0 * fw + j] / sq;
  for (int64_t i = 0; i < fh; ++i) v[i] = g[i * fw + c0] * sgn / sq;
  for (int64_t i = 0; i < fh; ++i)
    for (int64_t j = 0; j < fw; ++j)
      if (!(std::abs(v[i] * h[j] - g[i * fw + j]) <= tol * std::abs(p))) return false;
  return true;
}

}  // namespace

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, c10::IntArrayRef up, c10::IntArrayRef down,
                     c10::IntArrayRef padding, bool flip_filter, double gain) {
  check_cpu(x, "x");
  check_float(x, "x");
  check_float(f, "f");
  const UfdGeom geo = ufd_check(x, f, up, down, padding);
  const int64_t fw = geo.fw, fh = geo.fh, H = geo.H, W = geo.W, OW = geo.OW, OH = geo.OH;
  at::Tensor out = new_output({x.size(0), x.size(1), OH, OW}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  if (H == 0 || W == 0) return out.zero_();
  const bool dbl = x.scalar_type() == at::kDouble;
  // The taps, reversed (a true convolution) unless flip_filter. Separable: F = [fw horizontal taps,
  // fh vertical taps·gain]; 2-D: F = the fh·fw taps·gain. A 2-D filter of rank 1 within rounding
  // (setup_filter's outer(f, f) / Σ², e.g. StyleGAN's [1, 3, 3, 1]) runs separably, fh + fw instead
  // of fh·fw multiply-adds per output, where that was measured faster: every plane of the banded path
  // (1.2–1.8× at 256²), and flat planes of at least kFactorPlane elements that are only filtered
  // (1.2–1.5× at 32²–64²). With up/down sampling the flat path's extra horizontal pass costs about
  // what it saves, and planes below 32² (the CPU demo's 16²) keep the 2-D taps and their bits. The
  // applied filter differs from the given one by a few units in the last place of its largest tap
  // (rank1_factors).
  const bool flat = H * W <= kFlatPlane && OH * OW <= kFlatPlane;
  const bool filter_only = up[0] == 1 && up[1] == 1 && down[0] == 1 && down[1] == 1;
  const bool factor = !flat || (filter_only && H * W >= kFactorPlane);
  bool separable = geo.separable;
  const at::Tensor fd = f.to(at::kDouble).contiguous();
  std::vector<double> fr, fv, fhz;  // reversed (unless flip) taps: 2-D; vertical and horizontal 1-D
  const double* fp = fd.const_data_ptr<double>();
  if (separable) {
    fhz.resize(fw);
    for (int64_t t = 0; t < fw; ++t) fhz[t] = flip_filter ? fp[t] : fp[fw - 1 - t];
    fv = fhz;
  } else {
    fr.resize(fh * fw);
    for (int64_t i = 0; i < fh * fw; ++i) fr[i] = flip_filter ? fp[i] : fp[fh * fw - 1 - i];
    separable = factor && rank1_factors(fr, fh, fw, dbl ? 1e-15 : 1e-7, fv, fhz);
  }
  auto build = [&](auto tag) {
    using A = decltype(tag);
    std::vector<A> F;
    if (separable) {
      for (int64_t t = 0; t < fw; ++t) F.push_back(static_cast<A>(fhz[t]));
      for (int64_t t = 0; t < fh; ++t) F.push_back(static_cast<A>(fv[t]) * static_cast<A>(gain));
    } else {
      for (int64_t i = 0; i < fh * fw; ++i) F.push_back(static_cast<A>(gain) * static_cast<A>(fr[i]));
    }
    return F;
  };
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_upfirdn2d", [&] {
    using A = acc_t<scalar_t>;
    const std::vector<A> F = build(A(0));
    if (flat)
      upfirdn2d_flat<scalar_t, A>(x, F, separable, fh, fw, up[0], up[1], down[0], down[1], padding[0], padding[2], out);
    else
      upfirdn2d_cpu<scalar_t, A>(x, F, separable, fh, fw, up[0], up[1], down[0], down[1], padding[0], padding[2], out);
  });
  return out;
}

}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) { m.impl("upfirdn2d", &ganreg::cpu::upfirdn2d); }
