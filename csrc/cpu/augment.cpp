// CPU kernels of the augmentation family: DiffAugment forward/adjoint and the CR transform
// forward/adjoint (index and colour math in common/augment.h). Outputs are contiguous NCHW;
// inputs may have any strides. Vectorized along W (rows), parallel over fixed (sample, row-block)
// tiles; per-sample statistics are per-(sample, channel) partials summed in a fixed order, so
// results do not depend on the thread count.
#include <torch/library.h>

#include "common/augment.h"
#include "cpu/reduce_cpu.h"

namespace ganreg {
namespace cpu {
namespace {

struct Img {
  int64_t B, C, H, W, sn, sc, sh, sw;
};

Img img_of(const at::Tensor& x, const char* name) {
  check_cpu(x, name);
  check_float(x, name);
  TORCH_CHECK(x.dim() == 4, name, " must be NCHW (4 dimensions), got shape ", x.sizes());
  return Img{x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
}

void check_params(const at::Tensor& p, const char* name, at::ScalarType dt, int64_t B, int64_t cols) {
  check_cpu(p, name);
  TORCH_CHECK(p.scalar_type() == dt, name, " must be ", dt, ", got ", p.scalar_type());
  TORCH_CHECK(p.dim() == 2 && p.size(0) == B && p.size(1) == cols, name, " must have shape [", B, ", ", cols,
              "], got ", p.sizes());
}

// ---------------------------------------------------------------------------------------------
// Row primitives. Rows are W elements along the contiguous (NCHW) axis: every kernel below works on
// whole rows with at::vec vectors, reads a strided input through a small per-thread row buffer, and
// is parallel over fixed (sample, row-block) tiles; the only reductions (the contrast means) are
// per (sample, channel) partials summed in channel order, so nothing depends on the thread count.

// Pointer to n elements src[0], src[sw], ... as A: src itself when it already is a dense A row,
// else converted/gathered into buf.
template <typename T, typename A>
inline const A* row_in(const T* src, int64_t sw, int64_t n, A* buf) {
  if constexpr (std::is_same_v<T, A>) {
    if (sw == 1) return src;
  }
  if (sw == 1) {
    at::vec::convert(src, buf, n);
  } else {
    for (int64_t k = 0; k < n; ++k) buf[k] = static_cast<A>(src[k * sw]);
  }
  return buf;
}

template <typename T>
inline void zero_row(T* p, int64_t n) {
  if (n > 0) std::memset(static_cast<void*>(p), 0, n * sizeof(T));
}

// Fixed-order vector sum of row segments (same lanes for any split of the work across threads).
template <typename A>
struct RowSum {
  using V = Vectorized<A>;
  static constexpr int64_t K = V::size();
  V a0 = V(A(0)), a1 = V(A(0));
  void add(const A* p, int64_t n) {
    int64_t k = 0;
    for (; k + 2 * K <= n; k += 2 * K) {
      a0 = a0 + V::loadu(p + k);
      a1 = a1 + V::loadu(p + k + K);
    }
    for (; k < n; k += K) a0 = a0 + V::loadu(p + k, std::min<int64_t>(K, n - k));
  }
  A result() const { return hsum<A>(a0 + a1); }
};

struct RowTiles {
  int64_t R, nblk, ntiles;
};

// (sample, block of R rows) tiles of about 4096 elements each.
inline RowTiles row_tiles(const Img& g) {
  const int64_t per_row = std::max<int64_t>(1, g.C * g.W);
  const int64_t R = std::min<int64_t>(std::max<int64_t>(1, g.H), std::max<int64_t>(1, ceil_div(4096, per_row)));
  const int64_t nblk = ceil_div(std::max<int64_t>(g.H, 1), R);
  return RowTiles{R, nblk, g.B * nblk};
}

// Per (sample, channel) sums of the contrast statistics: forward Σ x over the whole plane; adjoint
// Σ of the masked, translated gradient h0 (the rows/columns that land inside, minus the cutout).
template <typename T>
void diffaug_plane_sums(const T* x, const Img& g, const float* fp, const int32_t* ip, int64_t flags, bool adjoint,
                        std::vector<double>& parts) {
  using A = acc_t<T>;
  const int64_t C = g.C, H = g.H, W = g.W;
  parallel_tiles(g.B * C, g.B * C * H * W, [&](int64_t lo, int64_t hi) {
    std::vector<A> buf(W);
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t b = u / C, c = u % C;
      const auto D = diffaug_sample<A>(fp + 3 * b, ip + 4 * b, flags, H, W);
      const T* xc = x + b * g.sn + c * g.sc;
      RowSum<A> acc;
      if (!adjoint) {
        if (std::is_same_v<T, A> && g.sw == 1 && g.sh == W) {
          acc.add(reinterpret_cast<const A*>(xc), H * W);
        } else {
          for (int64_t r = 0; r < H; ++r) acc.add(row_in<T, A>(xc + r * g.sh, g.sw, W, buf.data()), W);
        }
      } else {
        // source rows i with p = i + tx inside, columns j with q = j + ty inside
        const int64_t i0 = std::max<int64_t>(0, -D.tx), i1 = std::min<int64_t>(H, H - D.tx);
        const int64_t j0 = std::max<int64_t>(0, -D.ty), j1 = std::min<int64_t>(W, W - D.ty);
        const int64_t cc0 = D.cut_c0, cc1 = D.cut_c0 + D.cw;
        for (int64_t i = i0; i < i1 && j0 < j1; ++i) {
          const A* row = row_in<T, A>(xc + i * g.sh + j0 * g.sw, g.sw, j1 - j0, buf.data()) - j0;
          const bool cut = D.has_cut && i >= D.cut_r0 && i < D.cut_r0 + D.ch;
          if (!cut) {
            acc.add(row + j0, j1 - j0);
          } else {
            const int64_t a = std::min(j1, std::max(j0, cc0)), e = std::max(j0, std::min(j1, cc1));
            acc.add(row + j0, a - j0);
            acc.add(row + e, j1 - e);
          }
        }
      }
      parts[u] = static_cast<double>(acc.result());
    }
  });
}

template <typename T>
void diffaug_rows(const T* x, T* o, const Img& g, const float* fp, const int32_t* ip, int64_t flags, bool adjoint,
                  const std::vector<double>& parts) {
  using A = acc_t<T>;
  using V = Vectorized<A>;
  constexpr int64_t K = V::size();
  constexpr bool same = std::is_same_v<T, A>;
  const int64_t C = g.C, H = g.H, W = g.W;
  const bool sat = flags & kSaturation, con = flags & kContrast;
  const RowTiles rt = row_tiles(g);
  parallel_tiles(rt.ntiles, g.B * C * H * W, [&](int64_t lo, int64_t hi) {
    std::vector<A> buf(C * W), obuf(same ? 0 : C * W);
    std::vector<const A*> in(C);
    std::vector<A*> out(C);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / rt.nblk, r0 = (t % rt.nblk) * rt.R, r1 = std::min(H, r0 + rt.R);
      const auto D = diffaug_sample<A>(fp + 3 * b, ip + 4 * b, flags, H, W);
      const T* xb = x + b * g.sn;
      T* ob = o + b * C * H * W;
      A M = A(0);
      if (con) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += parts[b * C + c];
        M = static_cast<A>(s / static_cast<double>(C * H * W));
        if (!adjoint) M += D.bright;
      }
      const V vb(D.bright), vsat(D.sat), vcon(D.con), vM(M), vC(static_cast<A>(C));
      const V vk1(A(1) - D.con), vs1(A(1) - D.sat);
      const int64_t cc0 = std::max<int64_t>(0, D.cut_c0), cc1 = std::min<int64_t>(W, D.cut_c0 + D.cw);
      for (int64_t i = r0; i < r1; ++i) {
        // forward: output row i reads source row si = i + tx, columns [j0, j1) read j + ty.
        // adjoint: output row p = i reads source row si = i - tx, columns [j0, j1) read q - ty.
        const int64_t si = adjoint ? i - D.tx : i + D.tx;
        const int64_t sh = adjoint ? -D.ty : D.ty;
        const int64_t j0 = std::max<int64_t>(0, -sh), j1 = std::min<int64_t>(W, W - sh);
        const bool row_ok = si >= 0 && si < H && j0 < j1;
        const bool cut = D.has_cut && (adjoint ? si : i) >= D.cut_r0 && (adjoint ? si : i) < D.cut_r0 + D.ch;
        if (!adjoint) {
          if (!row_ok) {
            for (int64_t c = 0; c < C; ++c) zero_row(ob + (c * H + i) * W, W);
            continue;
          }
          const int64_t n = j1 - j0;
          for (int64_t c = 0; c < C; ++c) {
            in[c] = row_in<T, A>(xb + c * g.sc + si * g.sh + (j0 + sh) * g.sw, g.sw, n, buf.data() + c * W);
            out[c] = same ? reinterpret_cast<A*>(ob + (c * H + i) * W) + j0 : obuf.data() + c * W;
          }
          for (int64_t k = 0; k < n; k += K) {
            const int64_t m = std::min<int64_t>(K, n - k);
            V mc;
            if (sat) {
              V s(A(0));
              for (int64_t c = 0; c < C; ++c) s = s + (V::loadu(in[c] + k, m) + vb);
              mc = s / vC;
            }
            for (int64_t c = 0; c < C; ++c) {
              V y = V::loadu(in[c] + k, m) + vb;
              if (sat) y = at::vec::fmadd(y - mc, vsat, mc);
              if (con) y = at::vec::fmadd(y - vM, vcon, vM);
              if (m == K)
                y.store(out[c] + k);
              else
                y.store(out[c] + k, m);
            }
          }
          for (int64_t c = 0; c < C; ++c) {
            T* orow = ob + (c * H + i) * W;
            if (!same) at::vec::convert(out[c], orow + j0, n);
            zero_row(orow, j0);
            zero_row(orow + j1, W - j1);
            if (cut && cc0 < cc1) zero_row(orow + cc0, cc1 - cc0);
          }
        } else {
          // h0 = translated, masked gradient (zeros outside), then contrast and saturation
          for (int64_t c = 0; c < C; ++c) {
            A* h = buf.data() + c * W;
            if (row_ok) {
              const A* src = row_in<T, A>(xb + c * g.sc + si * g.sh + (j0 + sh) * g.sw, g.sw, j1 - j0, h + j0);
              if (src != h + j0) std::memcpy(h + j0, src, (j1 - j0) * sizeof(A));
              std::fill(h, h + j0, A(0));
              std::fill(h + j1, h + W, A(0));
              if (cut) {
                // source columns [cut_c0, cut_c0 + cw) sit at q = j + ty
                const int64_t a = std::max<int64_t>(0, D.cut_c0 + D.ty), e = std::min<int64_t>(W, D.cut_c0 + D.cw + D.ty);
                if (a < e) std::fill(h + a, h + e, A(0));
              }
            } else {
              std::fill(h, h + W, A(0));
            }
            out[c] = same ? reinterpret_cast<A*>(ob + (c * H + i) * W) : obuf.data() + c * W;
          }
          for (int64_t k = 0; k < W; k += K) {
            const int64_t m = std::min<int64_t>(K, W - k);
            V mc;
            if (sat) {
              V s(A(0));
              for (int64_t c = 0; c < C; ++c) s = s + V::loadu(buf.data() + c * W + k, m);
              mc = s / vC;
              if (con) mc = at::vec::fmadd(vcon, mc, vk1 * vM);
            }
            for (int64_t c = 0; c < C; ++c) {
              V h = V::loadu(buf.data() + c * W + k, m);
              if (con) h = at::vec::fmadd(vcon, h, vk1 * vM);
              if (sat) h = at::vec::fmadd(vsat, h, vs1 * mc);
              if (m == K)
                h.store(out[c] + k);
              else
                h.store(out[c] + k, m);
            }
          }
          if (!same)
            for (int64_t c = 0; c < C; ++c) at::vec::convert(out[c], ob + (c * H + i) * W, W);
        }
      }
    }
  });
}

at::Tensor diff_augment_impl(const at::Tensor& x, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags,
                             bool adjoint) {
  const char* name = adjoint ? "g" : "x";
  const Img g = img_of(x, name);
  check_params(fparams, "fparams", at::kFloat, g.B, 3);
  check_params(iparams, "iparams", at::kInt, g.B, 4);
  TORCH_CHECK(flags >= 0 && flags < 32, "flags must be a bit set of BRIGHTNESS..CUTOUT (0..31), got ", flags);
  at::Tensor out = new_output_contiguous(x);
  if (x.numel() == 0) return out;
  const at::Tensor fp = fparams.contiguous(), ip = iparams.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_diff_augment", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const float* fpp = fp.const_data_ptr<float>();
    const int32_t* ipp = ip.const_data_ptr<int32_t>();
    std::vector<double> parts;
    if (flags & kContrast) {
      parts.assign(g.B * g.C, 0.0);
      diffaug_plane_sums<scalar_t>(xp, g, fpp, ipp, flags, adjoint, parts);
    }
    diffaug_rows<scalar_t>(xp, op, g, fpp, ipp, flags, adjoint, parts);
  });
  return out;
}

at::Tensor diff_augment(const at::Tensor& x, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(x, fparams, iparams, flags, false);
}

at::Tensor diff_augment_adj(const at::Tensor& g, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(g, fparams, iparams, flags, true);
}

// CR forward: out row i of channel c is source row reflect(i + tx) read through the column table
// col[j] (flip and reflect folded in); the linear middle part [ja, jb) is a plain (or reversed) copy.
// CR adjoint: output (r, qx) sums g over the <= 2 rows x <= 2 columns whose reflection lands there.
template <typename T>
void cr_rows(const T* x, T* o, const Img& g, const int32_t* ip, bool adjoint) {
  using A = acc_t<T>;
  const int64_t C = g.C, H = g.H, W = g.W;
  const RowTiles rt = row_tiles(g);
  parallel_tiles(rt.ntiles, g.B * C * H * W, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> c0(W), c1(W);
    int64_t cached_b = -1, ja = 0, jb = 0, base = 0, dir = 1;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / rt.nblk, r0 = (t % rt.nblk) * rt.R, r1 = std::min(H, r0 + rt.R);
      const bool flip = ip[3 * b] != 0;
      const int64_t tx = ip[3 * b + 1], ty = ip[3 * b + 2];
      if (b != cached_b) {
        cached_b = b;
        // column tables: c0/c1 the first/second source column (-1: none); [ja, jb) where the
        // table is the single linear map col = base + dir * j
        for (int64_t j = 0; j < W; ++j) {
          if (!adjoint) {
            int64_t r, q;
            cr_source(0, j, H, W, flip, 0, ty, &r, &q);
            c0[j] = q;
            c1[j] = -1;
          } else {
            const int64_t q = flip ? W - 1 - j : j;
            int64_t cols[3];
            const int nc = cr_preimages(q, W, ty, cols);
            c0[j] = nc > 0 ? cols[0] : -1;
            c1[j] = nc > 1 ? cols[1] : -1;
          }
        }
        // forward: j + ty inside → col = flip ? W-1-ty-j : j+ty; adjoint: q - ty inside, single
        if (!adjoint) {
          ja = std::max<int64_t>(0, -ty);
          jb = std::min<int64_t>(W, W - ty);
          base = flip ? W - 1 - ty : ty;
        } else {
          // q = flip ? W-1-j : j; col = q - ty
          ja = jb = 0;  // the longest run
          for (int64_t j = 0, start = -1; j <= W; ++j) {
            const bool lin = j < W && c1[j] < 0 && c0[j] >= 0 && c0[j] == (flip ? W - 1 - j : j) - ty;
            if (lin && start < 0) start = j;
            if (!lin && start >= 0) {
              if (j - start > jb - ja) ja = start, jb = j;
              start = -1;
            }
          }
          base = flip ? W - 1 - ty : -ty;
        }
        dir = flip ? -1 : 1;
        if (ja >= jb) ja = jb = 0;
      }
      const T* xb = x + b * g.sn;
      T* ob = o + b * C * H * W;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = r0; i < r1; ++i) {
          T* orow = ob + (c * H + i) * W;
          int64_t rows[3];
          int nr;
          if (!adjoint) {
            rows[0] = reflect_index(i + tx, H);
            nr = 1;
          } else {
            nr = cr_preimages(i, H, tx, rows);
          }
          if (nr == 0) {
            zero_row(orow, W);
            continue;
          }
          const T* s0 = xb + c * g.sc + rows[0] * g.sh;
          if (nr == 1) {
            // single source row: a gather (copy in the linear middle), sums only where c1 >= 0
            if (g.sw == 1 && dir == 1) {
              if (jb > ja) std::memcpy(orow + ja, s0 + base + ja, (jb - ja) * sizeof(T));
            } else {
              const T* sp = s0 + base * g.sw;
              const int64_t st = dir * g.sw;
              for (int64_t j = ja; j < jb; ++j) orow[j] = sp[j * st];
            }
            for (int64_t j = 0; j < W; ++j) {
              if (j == ja) j = std::max(j, jb);
              if (j >= W) break;
              if (c0[j] < 0)
                orow[j] = T(0);
              else if (c1[j] < 0)
                orow[j] = s0[c0[j] * g.sw];
              else
                orow[j] = static_cast<T>(static_cast<A>(s0[c0[j] * g.sw]) + static_cast<A>(s0[c1[j] * g.sw]));
            }
          } else {
            for (int64_t j = 0; j < W; ++j) {
              A s = A(0);
              for (int a = 0; a < nr; ++a) {
                const T* sr = xb + c * g.sc + rows[a] * g.sh;
                if (c0[j] >= 0) s += static_cast<A>(sr[c0[j] * g.sw]);
                if (c1[j] >= 0) s += static_cast<A>(sr[c1[j] * g.sw]);
              }
              orow[j] = static_cast<T>(s);
            }
          }
        }
    }
  });
}

at::Tensor cr_impl(const at::Tensor& x, const at::Tensor& iparams, bool adjoint) {
  const Img g = img_of(x, adjoint ? "g" : "x");
  check_params(iparams, "iparams", at::kInt, g.B, 3);
  at::Tensor out = new_output_contiguous(x);
  const at::Tensor ip = iparams.contiguous();
  const int32_t* ipp = ip.const_data_ptr<int32_t>();
  for (int64_t b = 0; b < g.B; ++b) {
    TORCH_CHECK(std::abs((int64_t)ipp[3 * b + 1]) <= std::max<int64_t>(g.H - 1, 0) &&
                    std::abs((int64_t)ipp[3 * b + 2]) <= std::max<int64_t>(g.W - 1, 0),
                "iparams: CR translation of sample ", b, " must satisfy |t| <= size-1, got (", ipp[3 * b + 1], ", ",
                ipp[3 * b + 2], ") for H, W = ", g.H, ", ", g.W);
  }
  if (x.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_cr_augment", [&] {
    cr_rows<scalar_t>(x.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g, ipp, adjoint);
  });
  return out;
}

at::Tensor cr_augment(const at::Tensor& x, const at::Tensor& iparams) { return cr_impl(x, iparams, false); }
at::Tensor cr_augment_adj(const at::Tensor& g, const at::Tensor& iparams) { return cr_impl(g, iparams, true); }

}  // namespace
}  // namespace cpu
}  // namespace ganreg

TORCH_LIBRARY_IMPL(ganreg_C, CPU, m) {
  m.impl("diff_augment", &ganreg::cpu::diff_augment);
  m.impl("diff_augment_adj", &ganreg::cpu::diff_augment_adj);
  m.impl("cr_augment", &ganreg::cpu::cr_augment);
  m.impl("cr_augment_adj", &ganreg::cpu::cr_augment_adj);
}
