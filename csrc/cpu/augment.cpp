// CPU kernels of the augmentation family: DiffAugment forward/adjoint and the CR transform
// forward/adjoint (index and colour math in common/augment.h). Outputs are contiguous NCHW;
// inputs may have any strides. Parallel over samples; per-sample statistics are summed in a
// fixed order, so results do not depend on the thread count.
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

template <typename T>
void diff_augment_sample(const T* x, T* o, const Img& g, const float* fp, const int32_t* ip, int64_t flags, int64_t b,
                         bool adjoint, std::vector<acc_t<T>>& rowbuf) {
  using A = acc_t<T>;
  const int64_t C = g.C, H = g.H, W = g.W;
  const auto D = diffaug_sample<A>(fp + 3 * b, ip + 4 * b, flags, H, W);
  const T* xb = x + b * g.sn;
  T* ob = o + b * C * H * W;
  const A invC = A(1) / static_cast<A>(C);
  const bool sat = flags & kSaturation, con = flags & kContrast;
  auto ld = [&](int64_t c, int64_t r, int64_t q) { return static_cast<A>(xb[c * g.sc + r * g.sh + q * g.sw]); };
  if (!adjoint) {
    // forward: out[c,i,j] = colour(x[c,i+tx,j+ty] + bright) (0 outside / in the cutout)
    A M = A(0);
    if (con) {
      A s = A(0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < H; ++r)
          for (int64_t q = 0; q < W; ++q) s += ld(c, r, q);
      M = s / static_cast<A>(C * H * W) + D.bright;
    }
    for (int64_t i = 0; i < H; ++i) {
      const int64_t si = i + D.tx;
      const bool row_ok = si >= 0 && si < H;
      if (row_ok && sat) {
        for (int64_t j = 0; j < W; ++j) {
          const int64_t sj = j + D.ty;
          A s = A(0);
          if (sj >= 0 && sj < W)
            for (int64_t c = 0; c < C; ++c) s += ld(c, si, sj) + D.bright;
          rowbuf[j] = s * invC;
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        T* orow = ob + (c * H + i) * W;
        for (int64_t j = 0; j < W; ++j) {
          const int64_t sj = j + D.ty;
          A v = A(0);
          if (row_ok && sj >= 0 && sj < W && !diffaug_cut(D, i, j))
            v = diffaug_colour<A>(ld(c, si, sj) + D.bright, sat ? rowbuf[j] : A(0), M, flags, D);
          orow[j] = static_cast<T>(v);
        }
      }
    }
  } else {
    // adjoint: h0[c,p,q] = (mask·g)[c,p−tx,q−ty]; contrast h1 = k·h0 + (1−k)·mean_chw h0;
    // saturation h2 = s·h1 + (1−s)·mean_c h1
    auto h0 = [&](int64_t c, int64_t p, int64_t q) {
      const int64_t i = p - D.tx, j = q - D.ty;
      if (i < 0 || i >= H || j < 0 || j >= W || diffaug_cut(D, i, j)) return A(0);
      return ld(c, i, j);
    };
    A M = A(0);
    if (con) {
      A s = A(0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < H; ++p)
          for (int64_t q = 0; q < W; ++q) s += h0(c, p, q);
      M = s / static_cast<A>(C * H * W);
    }
    const A k = D.con, sv = D.sat;
    for (int64_t p = 0; p < H; ++p) {
      if (sat) {
        for (int64_t q = 0; q < W; ++q) {
          A s = A(0);
          for (int64_t c = 0; c < C; ++c) s += h0(c, p, q);
          const A m0 = s * invC;
          rowbuf[q] = con ? k * m0 + (A(1) - k) * M : m0;
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        T* orow = ob + (c * H + p) * W;
        for (int64_t q = 0; q < W; ++q) {
          A h = h0(c, p, q);
          if (con) h = k * h + (A(1) - k) * M;
          if (sat) h = sv * h + (A(1) - sv) * rowbuf[q];
          orow[q] = static_cast<T>(h);
        }
      }
    }
  }
}

at::Tensor diff_augment_impl(const at::Tensor& x, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags,
                             bool adjoint) {
  const char* name = adjoint ? "g" : "x";
  const Img g = img_of(x, name);
  check_params(fparams, "fparams", at::kFloat, g.B, 3);
  check_params(iparams, "iparams", at::kInt, g.B, 4);
  TORCH_CHECK(flags >= 0 && flags < 32, "flags must be a bit set of BRIGHTNESS..CUTOUT (0..31), got ", flags);
  at::Tensor out = new_output_contiguous(x);
  const at::Tensor fp = fparams.contiguous(), ip = iparams.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_diff_augment", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    parallel_tiles(g.B, x.numel(), [&](int64_t lo, int64_t hi) {
      std::vector<acc_t<scalar_t>> rowbuf(g.W);
      for (int64_t b = lo; b < hi; ++b)
        diff_augment_sample<scalar_t>(xp, op, g, fp.const_data_ptr<float>(), ip.const_data_ptr<int32_t>(), flags, b,
                                      adjoint, rowbuf);
    });
  });
  return out;
}

at::Tensor diff_augment(const at::Tensor& x, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(x, fparams, iparams, flags, false);
}

at::Tensor diff_augment_adj(const at::Tensor& g, const at::Tensor& fparams, const at::Tensor& iparams, int64_t flags) {
  return diff_augment_impl(g, fparams, iparams, flags, true);
}

template <typename T>
void cr_sample(const T* x, T* o, const Img& g, const int32_t* ip, int64_t b, bool adjoint) {
  const int64_t C = g.C, H = g.H, W = g.W;
  const bool flip = ip[3 * b] != 0;
  const int64_t tx = ip[3 * b + 1], ty = ip[3 * b + 2];
  const T* xb = x + b * g.sn;
  T* ob = o + b * C * H * W;
  if (!adjoint) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i) {
        T* orow = ob + (c * H + i) * W;
        for (int64_t j = 0; j < W; ++j) {
          int64_t r, q;
          cr_source(i, j, H, W, flip, tx, ty, &r, &q);
          orow[j] = xb[c * g.sc + r * g.sh + q * g.sw];
        }
      }
  } else {
    using A = acc_t<T>;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < H; ++r) {
        int64_t rows[3];
        const int nr = cr_preimages(r, H, tx, rows);
        T* orow = ob + (c * H + r) * W;
        for (int64_t qx = 0; qx < W; ++qx) {
          const int64_t q = flip ? W - 1 - qx : qx;
          int64_t cols[3];
          const int nc = cr_preimages(q, W, ty, cols);
          A s = A(0);
          for (int a = 0; a < nr; ++a)
            for (int e = 0; e < nc; ++e) s += static_cast<A>(xb[c * g.sc + rows[a] * g.sh + cols[e] * g.sw]);
          orow[qx] = static_cast<T>(s);
        }
      }
  }
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
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ganreg_cr_augment", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    parallel_tiles(g.B, x.numel(), [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) cr_sample<scalar_t>(xp, op, g, ipp, b, adjoint);
    });
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
