"""upfirdn2d family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu, docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d): upsample (zero insertion), pad (negative
crops), FIR filter, downsample, per channel of an NCHW tensor, in one pass.

Along one axis (``x`` and ``y`` alike): ``out[k] = gain·Σ_t xu[k·down + t − p0]·F[t]``,
``xu[i] = x[i/up]`` when ``i % up == 0`` and ``0 ≤ i < n·up``, else 0; ``F = f`` reversed (a true
convolution) unless ``flip_filter`` (a correlation); ``out_n = (n·up + p0 + p1 − taps) // down + 1``.
A 2-D filter ``[fh, fw]`` is used as is, a 1-D filter ``[fw]`` means the separable ``f ⊗ f``.

Polyphase: output ``k`` only meets the taps ``t ≡ p0 − k·down (mod up)``, so each output pixel
visits ``ceil(fh/upy)·ceil(fw/upx)`` taps (the inserted zeros are never read): with
``t0 = (p0 − k·down) mod up`` the taps are ``t0 + j·up`` and the inputs ``(k·down + t0 − p0)/up + j``
(an exact division), ``j = 0, 1, …``. The tap loops are runtime loops (any filter size, no
recompilation per size); taps outside the filter and inputs outside the image are masked.

One program per (plane ``n·C + c``, tile of ``BH × BW`` output pixels), a 1-D grid (no 65535 limit
on the plane count). The input is read in place through its four strides (contiguous,
channels_last, any strided view); the filter through its strides and in either direction (no
flipped copy). Accumulation in float32 (float64 for float64 ``x``), taps summed in a fixed order
per pixel (deterministic for any tile config), so the tile config is autotuned on GPU, keyed by
the filter mode, the taps per pixel and the output size class. Output contiguous NCHW, dtype of x.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ganreg_ext._contract import acc_dtype, empty

from ._utils import autotuned, ceil_div, cfg, launcher, scalar_as, size_class, tl_dtype

TILE_GPU = [
    cfg(4, BH=8, BW=64),
    cfg(4, BH=16, BW=32),
    cfg(8, BH=16, BW=64),
    cfg(4, BH=4, BW=128),
    cfg(8, BH=32, BW=32),
]
TILE_INTERP = cfg(4, BH=16, BW=32)  # interpreted: few programs (each op costs ~0.3 ms)


@autotuned(TILE_GPU, TILE_INTERP, key=["SEP", "ny", "nx", "size_class"])
@triton.jit(do_not_specialize=["gain", "px0", "py0"])
def _upfirdn2d_kernel(
    x_ptr,
    f_ptr,
    o_ptr,
    C,
    H,
    W,
    OH,
    OW,
    sxn,
    sxc,
    sxh,
    sxw,
    sf0,
    sf1,
    fh,
    fw,
    upx,
    upy,
    downx,
    downy,
    px0,
    py0,
    ny,
    nx,
    gain: tl.float64,
    size_class,
    SEP: tl.constexpr,
    FLIP: tl.constexpr,
    ACC: tl.constexpr,
    BH: tl.constexpr,
    BW: tl.constexpr,
):
    """``o[p, oy, ox] = gain·Σ_{jy < ny, jx < nx} x[p, iy0 + jy, ix0 + jx]·F[ty0 + jy·upy, tx0 + jx·upx]``
    (module docstring) for one tile of plane ``p``."""
    pid = tl.program_id(0).to(tl.int64)
    tiles_x = (OW + BW - 1) // BW
    tiles = ((OH + BH - 1) // BH) * tiles_x
    plane = pid // tiles
    tile = pid % tiles
    oy = (tile // tiles_x) * BH + tl.arange(0, BH).to(tl.int64)
    ox = (tile % tiles_x) * BW + tl.arange(0, BW).to(tl.int64)
    xb = x_ptr + (plane // C) * sxn + (plane % C) * sxc
    # first tap (phase) and first input of every output row / column
    ry = oy * downy - py0
    ty0 = ((-ry) % upy + upy) % upy
    iy0 = (ry + ty0) // upy  # exact: ry + ty0 ≡ 0 (mod upy)
    rx = ox * downx - px0
    tx0 = ((-rx) % upx + upx) % upx
    ix0 = (rx + tx0) // upx
    acc = tl.zeros([BH, BW], ACC)
    for jy in range(0, ny):
        ty = ty0 + jy * upy
        iy = iy0 + jy
        my = (ty < fh) & (iy >= 0) & (iy < H)
        if FLIP:
            fy_i = ty
        else:
            fy_i = fh - 1 - ty
        if SEP:
            fy = tl.load(f_ptr + fy_i * sf0, mask=my, other=0).to(ACC)
        xrow = xb + iy * sxh
        for jx in range(0, nx):
            tx = tx0 + jx * upx
            ix = ix0 + jx
            mx = (tx < fw) & (ix >= 0) & (ix < W)
            if FLIP:
                fx_i = tx
            else:
                fx_i = fw - 1 - tx
            m2 = my[:, None] & mx[None, :]
            if SEP:
                fv = fy[:, None] * tl.load(f_ptr + fx_i * sf0, mask=mx, other=0).to(ACC)[None, :]
            else:
                fv = tl.load(f_ptr + fy_i[:, None] * sf0 + fx_i[None, :] * sf1, mask=m2, other=0).to(ACC)
            xv = tl.load(xrow[:, None] + (ix * sxw)[None, :], mask=m2, other=0).to(ACC)
            acc += xv * fv
    res = acc * scalar_as(gain, ACC)
    om = (oy < OH)[:, None] & (ox < OW)[None, :]
    tl.store(o_ptr + plane * OH * OW + oy[:, None] * OW + ox[None, :], res.to(o_ptr.dtype.element_ty), mask=om)


def _pair(v, name: str, n: int) -> list[int]:
    v = [int(a) for a in v]
    if len(v) != n:
        raise ValueError(f"upfirdn2d: {name} must have {n} entries, got {v}")
    return v


@launcher
def upfirdn2d(x, f, up, down, padding, flip_filter, gain):
    """Upsample by zero insertion (``up = [upx, upy]``), pad (``padding = [px0, px1, py0, py1]``,
    negative crops), FIR filter (``f`` 2-D ``[fh, fw]`` or 1-D ``[fw]`` = separable ``f ⊗ f``; a true
    convolution unless ``flip_filter``), keep every ``down = [downx, downy]``-th output from 0, times
    ``gain``; per channel of NCHW ``x``. ``out = (n·up + p0 + p1 − taps) // down + 1`` per axis (≥ 1,
    else ValueError). Output contiguous NCHW, dtype of ``x``; math in float32 (float64 for float64
    ``x``; ``f`` converted to it). ``x`` is read in place in any layout; one launch."""
    upx, upy = _pair(up, "up", 2)
    downx, downy = _pair(down, "down", 2)
    px0, px1, py0, py1 = _pair(padding, "padding", 4)
    if x.dim() != 4:
        raise ValueError(f"upfirdn2d: x must be 4-D NCHW, got shape {tuple(x.shape)}")
    if f.dim() not in (1, 2) or f.numel() == 0:
        raise ValueError(f"upfirdn2d: f must be a non-empty 1-D or 2-D filter, got shape {tuple(f.shape)}")
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1, got up={[upx, upy]}, down={[downx, downy]}")
    if f.device != x.device:
        raise ValueError(f"upfirdn2d: f is on {f.device}, x on {x.device}")
    N, C, H, W = x.shape
    sep = f.dim() == 1
    fw = f.shape[-1]
    fh = fw if sep else f.shape[0]
    oh = (H * upy + py0 + py1 - fh) // downy + 1
    ow = (W * upx + px0 + px1 - fw) // downx + 1
    if oh < 1 or ow < 1:
        raise ValueError(
            f"upfirdn2d: empty output {oh}x{ow} for input {H}x{W}, filter {fh}x{fw}, up {[upx, upy]}, "
            f"down {[downx, downy]}, padding {[px0, px1, py0, py1]}"
        )
    out = empty((N, C, oh, ow), x.dtype, x.device)
    if N * C == 0:
        return out
    ny, nx = ceil_div(fh, upy), ceil_div(fw, upx)
    sf0 = f.stride(0)
    sf1 = 0 if sep else f.stride(1)

    def grid(meta):
        return (N * C * ceil_div(oh, meta["BH"]) * ceil_div(ow, meta["BW"]),)

    _upfirdn2d_kernel[grid](
        x,
        f,
        out,
        C,
        H,
        W,
        oh,
        ow,
        *x.stride(),
        sf0,
        sf1,
        fh,
        fw,
        upx,
        upy,
        downx,
        downy,
        px0,
        py0,
        ny,
        nx,
        float(gain),
        size_class(out.numel()),
        SEP=sep,
        FLIP=bool(flip_filter),
        ACC=tl_dtype(acc_dtype(x.dtype)),
    )
    return out
