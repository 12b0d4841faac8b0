"""bias_act family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu, docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d): ``bias_act`` and ``bias_act_grad``.

``bias_act(x, b) = clamp(gain·f(x + b), ±clamp)`` and ``bias_act_grad(x, b, y, mults, order) =
(Π mults)·gain·f^(order)(x + b)·[|y0| < clamp]`` are elementwise kernels (autotuned on GPU, keyed by
a size class; no reduction, so no ordering concern). Math in float32, float64 when any operand is
float64; outputs ``torch.empty_like`` of ``x`` (forward) or of ``mults[0]`` (gradient).

Layouts. A kernel walks the output in memory order (flat index ``i`` = output offset: the output
is dense). The bias channel is ``(i // out.stride(dim)) % x.shape[dim]``. Every input is read in
place: an input whose strides match the output's uses ``i`` directly (the common case:
contiguous or channels_last everywhere); any other layout (a contiguous ``x`` with a channels_last
gradient, an innermost-strided slice, an expanded tensor) goes through ≤ 4 merged (size, stride)
dims ordered by the output's memory order (``_utils.collapse``), the forward's as kernel arguments,
the gradient's from a small cached int64 table. Only inputs that still need more than 4 dims after
merging (rank ≥ 5 with unmergeable strides) are first copied into the output's layout.

The multiplier list is ONE kernel argument (a tuple of pointers, any length, one compiled variant
per length and per set of layouts): one launch whatever the order.

Derivatives (``k = order``, 1..8), with ``q`` the accurately computed ``1 − t²`` or ``s(1 − s)``:
tanh ``P_k(t) = q·R_k(t)``, ``t = tanh z``, ``R_1 = 1``, ``R_{k+1} = −2t·R_k + (1 − t²)·R_k'`` (so
``P_{k+1} = P_k'·(1 − t²)``); sigmoid ``S_k(s) = q·2^{1−k}·R_k(w)`` with ``w = 2s − 1 = tanh(z/2)``
(``σ(z) = (1 + tanh(z/2))/2``: the polynomials in ``w`` are far better conditioned than those in
``s``); softplus ``S_{k−1}``; swish ``z·S_k + k·S_{k−1}``; elu/selu and the piecewise-linear acts in
closed form. The coefficients of ``z·A(u) + B(u)`` (``f^(k) = q·(z·A(u) + B(u))``, plus ``s`` for
softplus/swish at ``k = 1``) are built on the host per (act, order) from exact integers and passed as
a cached ``[2, 8]`` float64 device tensor (``_utils.device_table``: CUDA-graph capture safe; an
untuned size class met during capture raises, see ``_utils.autotuned``). Transcendentals use only
``tl.exp`` (no libdevice, no ``log``): ``expm1`` and ``log1p`` by short series where ``exp(x) − 1`` or
``log(1 + u)`` would cancel. Every division is rounded to nearest (``_utils.div_rn``: ``tl.div_rn`` in
float32, where Triton's plain ``/`` is approximate on a GPU), as in the ADA kernels.

NaN (docs/semantics.md, ``bias_act``): the derivative of a smooth activation at a NaN input is NaN
and survives the clamp mask (a multiplication, NaN·0 = NaN); the piecewise-linear ones take the
branch a comparison with NaN selects (relu 0, lrelu α, linear 1), as the reference does.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ganreg_ext._contract import ACT_CODES, MAX_ACT_ORDER, PIECEWISE_LINEAR, acc_dtype, empty

from ._utils import (
    autotuned,
    ceil_div,
    cfg,
    collapse,
    device_table,
    div_rn,
    full_like,
    helper,
    launcher,
    offset4,
    pad_dims,
    scalar_as,
    size_class,
    tl_dtype,
)

ELEM_GPU = [cfg(4, BLOCK=1024), cfg(8, BLOCK=2048), cfg(4, BLOCK=2048), cfg(8, BLOCK=4096)]
ELEM_INTERP = cfg(4, BLOCK=256)
NC = 8  # coefficients per polynomial row: R_k has degree k − 1 ≤ 7
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
LINEAR, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH = range(9)
assert tuple(ACT_CODES.values()) == tuple(range(9))


# ----------------------------------------------------------------------------------- device math


@helper
def _expm1(x, ex, ACC: tl.constexpr):
    """``exp(x) − 1`` for ``x ≤ 0`` given ``ex = exp(x)``: a series ``x·(1 + x/2·(1 + x/3·(…)))`` for
    ``x > −0.5`` (truncation below the dtype's eps), ``ex − 1`` below (no cancellation there)."""
    p = x * 0 + 1.0
    if ACC == tl.float64:
        for n in tl.static_range(16, 1, -1):
            p = 1.0 + div_rn(p * x, n, ACC)
    else:
        for n in tl.static_range(9, 1, -1):
            p = 1.0 + div_rn(p * x, n, ACC)
    return tl.where(x > -0.5, x * p, ex - 1.0)


@helper
def _log1p01(u, ACC: tl.constexpr):
    """``log(1 + u)`` for ``0 ≤ u ≤ 1`` without ``log``: ``2·atanh(r)``, ``r = u/(2 + u) ≤ 1/3``,
    ``2r·Σ_j r^{2j}/(2j + 1)`` (relative truncation ≤ 9^−N)."""
    r = div_rn(u, 2.0 + u, ACC)
    r2 = r * r
    if ACC == tl.float64:
        p = r2 * 0 + 1.0 / 35.0
        for j in tl.static_range(16, -1, -1):
            p = p * r2 + 1.0 / (2 * j + 1)
    else:
        p = r2 * 0 + 1.0 / 15.0
        for j in tl.static_range(6, -1, -1):
            p = p * r2 + 1.0 / (2 * j + 1)
    return 2.0 * r * p


@helper
def _tanh_parts(z, HALF: tl.constexpr, ACC: tl.constexpr):
    """``(u, q, ex)`` with ``u = tanh(z)`` and ``q = 1 − u²`` (``HALF``: ``u = tanh(z/2) = 2σ(z) − 1``
    and ``q = σ(z)(1 − σ(z)) = (1 − u²)/4``); ``ex = exp(−2|z|)`` (``HALF``: ``exp(−|z|)``). From
    ``em = expm1(−2a)``: ``tanh a = −em/(2 + em)``, ``1 − tanh² a = 4·ex/(2 + em)²``, no cancellation."""
    a = tl.abs(z)
    if HALF:
        xx = -a
    else:
        xx = -2.0 * a
    ex = tl.exp(xx)
    em = _expm1(xx, ex, ACC)
    den = 2.0 + em
    ua = div_rn(-em, den, ACC)
    u = tl.where(z < 0, -ua, ua)
    q = div_rn(ex, den * den, ACC)
    if not HALF:
        q = 4.0 * q
    return u, q, ex


@helper
def _sigmoid_from(z, ex, ACC: tl.constexpr):
    """``σ(z)`` from ``ex = exp(−|z|)`` (either sign, no overflow)."""
    r = div_rn(full_like(ex, 1.0), 1.0 + ex, ACC)
    return tl.where(z >= 0, r, ex * r)


@helper
def _act(z, alpha, ACT: tl.constexpr, ACC: tl.constexpr):
    """``f(z)`` of activation code ``ACT`` (NaN propagates)."""
    if ACT == 0:
        y = z
    elif ACT == 1:
        y = tl.where(z < 0, 0.0, z)
    elif ACT == 2:
        y = tl.where(z < 0, alpha * z, z)
    elif ACT == 3:
        y, q, ex = _tanh_parts(z, False, ACC)
    elif ACT == 4:
        y = _sigmoid_from(z, tl.exp(-tl.abs(z)), ACC)
    elif ACT == 5:
        zn = tl.where(z > 0, 0.0, z)
        y = tl.where(z >= 0, z, _expm1(zn, tl.exp(zn), ACC))
    elif ACT == 6:
        zn = tl.where(z > 0, 0.0, z)
        y = 1.0507009873554805 * tl.where(z >= 0, z, 1.6732632423543772 * _expm1(zn, tl.exp(zn), ACC))
    elif ACT == 7:
        y = tl.where(z > 0, z, 0.0) + _log1p01(tl.exp(-tl.abs(z)), ACC)
    else:
        y = z * _sigmoid_from(z, tl.exp(-tl.abs(z)), ACC)
    return y


@helper
def _horner(c_ptr, u, ACC: tl.constexpr):
    """``Σ_j c[j]·u^j`` over the ``NC = 8`` coefficients at ``c_ptr``."""
    p = u * 0
    for j in tl.static_range(7, -1, -1):
        p = p * u + tl.load(c_ptr + j).to(ACC)
    return p


@helper
def _deriv(z, first, alpha, coef_ptr, ACT: tl.constexpr, ACC: tl.constexpr):
    """``f^(k)(z)`` for the acts that need ``z`` (``first`` = ``[k == 1]`` as ``ACC``; the table at
    ``coef_ptr`` holds the rows ``A``, ``B`` of module docstring for (ACT, k))."""
    if ACT == 0:
        d = full_like(z, first)  # not z·0 + first: NaN for an infinite z, where f' = 1
    elif ACT == 1:
        d = tl.where(z > 0, first, 0.0)
    elif ACT == 2:
        d = tl.where(z > 0, first, alpha * first)
    elif ACT == 5:
        d = tl.where(z >= 0, first, tl.exp(tl.where(z > 0, 0.0, z)))
    elif ACT == 6:
        d = 1.0507009873554805 * tl.where(z >= 0, first, 1.6732632423543772 * tl.exp(tl.where(z > 0, 0.0, z)))
    else:
        u, q, ex = _tanh_parts(z, ACT != 3, ACC)
        inner = _horner(coef_ptr + 8, u, ACC)
        if ACT == 8:
            inner = inner + z * _horner(coef_ptr, u, ACC)
        d = q * inner
        if ACT >= 7:  # softplus, swish: + s at k = 1
            d = d + first * _sigmoid_from(z, ex, ACC)
    return d


@helper
def _offset(i, tab_ptr, row: tl.constexpr, n1, n2, n3, SAME: tl.constexpr, NDIM: tl.constexpr):
    """Offset of output index ``i`` in input slot ``row``: ``i`` itself when its layout is the
    output's (``SAME``), else through its merged strides (table row ``row``)."""
    if SAME:
        off = i
    else:
        s0 = tl.load(tab_ptr + 4 * row)
        s1 = tl.load(tab_ptr + 4 * row + 1)
        s2 = tl.load(tab_ptr + 4 * row + 2)
        s3 = tl.load(tab_ptr + 4 * row + 3)
        off = offset4(i, n1, n2, n3, s0, s1, s2, s3, NDIM)
    return off


# --------------------------------------------------------------------------------------- kernels


@autotuned(ELEM_GPU, ELEM_INTERP, key=["NDIM", "ACT", "HAS_B", "CLAMP", "SAME", "size_class"])
@triton.jit(do_not_specialize=["alpha", "gain", "clamp"])
def _bias_act_kernel(
    x_ptr,
    b_ptr,
    o_ptr,
    total,
    size_class,
    n1,
    n2,
    n3,
    sx0,
    sx1,
    sx2,
    sx3,
    b_stride,
    c_stride,
    c_size,
    alpha: tl.float64,
    gain: tl.float64,
    clamp: tl.float64,
    NDIM: tl.constexpr,
    ACT: tl.constexpr,
    HAS_B: tl.constexpr,
    CLAMP: tl.constexpr,
    SAME: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``o[i] = clamp(gain·f(x + b[c(i)]))`` over the output in memory order."""
    pid = tl.program_id(0).to(tl.int64)
    i = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = i < total
    if SAME:
        ox = i
    else:
        ox = offset4(i, n1, n2, n3, sx0, sx1, sx2, sx3, NDIM)
    z = tl.load(x_ptr + ox, mask=m, other=0).to(ACC)
    if HAS_B:
        c = (i // c_stride) % c_size
        z = z + tl.load(b_ptr + c * b_stride, mask=m, other=0).to(ACC)
    y = scalar_as(gain, ACC) * _act(z, scalar_as(alpha, ACC), ACT, ACC)
    if CLAMP:
        cl = scalar_as(clamp, ACC)
        y = tl.where(y > cl, cl, tl.where(y < -cl, -cl, y))
    tl.store(o_ptr + i, y.to(o_ptr.dtype.element_ty), mask=m)


@autotuned(ELEM_GPU, ELEM_INTERP, key=["NDIM", "NM", "ACT", "HAS_X", "HAS_B", "HAS_Y", "CLAMP", "SAME", "size_class"])
@triton.jit(do_not_specialize=["alpha", "gain", "clamp", "order"])
def _bias_act_grad_kernel(
    x_ptr,
    b_ptr,
    y_ptr,
    mults,
    o_ptr,
    coef_ptr,
    tab_ptr,
    total,
    size_class,
    n1,
    n2,
    n3,
    b_stride,
    c_stride,
    c_size,
    alpha: tl.float64,
    gain: tl.float64,
    clamp: tl.float64,
    order,
    NDIM: tl.constexpr,
    NM: tl.constexpr,
    ACT: tl.constexpr,
    HAS_X: tl.constexpr,
    HAS_B: tl.constexpr,
    HAS_Y: tl.constexpr,
    CLAMP: tl.constexpr,
    SAME: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``o[i] = (Π_j mults_j[i])·gain·f^(order)(z)·[|y0| < clamp]``. ``SAME`` bit ``r`` (slot ``r``:
    0 x, 1 y, 2 + j mult j) says slot ``r`` has the output's layout; other slots read their merged
    strides from row ``r`` of ``tab_ptr``. Without ``x`` (piecewise-linear acts) f' comes from the
    sign of ``y·gain``."""
    pid = tl.program_id(0).to(tl.int64)
    i = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = i < total
    g = scalar_as(gain, ACC)
    al = scalar_as(alpha, ACC)
    first = (order == 1).to(ACC)
    p = tl.load(mults[0] + _offset(i, tab_ptr, 2, n1, n2, n3, (SAME >> 2) & 1, NDIM), mask=m, other=0).to(ACC)
    for j in tl.static_range(1, NM):
        oj = _offset(i, tab_ptr, 2 + j, n1, n2, n3, (SAME >> (2 + j)) & 1, NDIM)
        p = p * tl.load(mults[j] + oj, mask=m, other=0).to(ACC)
    if HAS_Y:
        yv = tl.load(y_ptr + _offset(i, tab_ptr, 1, n1, n2, n3, (SAME >> 1) & 1, NDIM), mask=m, other=0).to(ACC)
    if HAS_X:
        z = tl.load(x_ptr + _offset(i, tab_ptr, 0, n1, n2, n3, SAME & 1, NDIM), mask=m, other=0).to(ACC)
        if HAS_B:
            c = (i // c_stride) % c_size
            z = z + tl.load(b_ptr + c * b_stride, mask=m, other=0).to(ACC)
        d = _deriv(z, first, al, coef_ptr, ACT, ACC)
    else:  # piecewise-linear: f' from the sign of y·gain, f^(k) = 0 for k ≥ 2
        if ACT == 0:
            d = full_like(p, first)
        else:
            pos = yv * g > 0
            if ACT == 1:
                d = tl.where(pos, first, 0.0)
            else:
                d = tl.where(pos, first, al * first)
    out = p * g * d
    if CLAMP:
        cl = scalar_as(clamp, ACC)
        if HAS_Y:  # compared in y's dtype: a clamped y holds the clamp rounded to it
            y0 = yv
            cl = cl.to(y_ptr.dtype.element_ty).to(ACC)
        else:
            y0 = g * _act(z, al, ACT, ACC)
        out = out * (tl.abs(y0) < cl).to(ACC)
    tl.store(o_ptr + i, out.to(o_ptr.dtype.element_ty), mask=m)


# ---------------------------------------------------------------------------------- host side


def _padd(a: list, b: list) -> list:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n)]


def _pmul(a: list, b: list) -> list:
    r = [0] * (len(a) + len(b) - 1)
    for i, u in enumerate(a):
        for j, v in enumerate(b):
            r[i + j] += u * v
    return r


def _pder(a: list) -> list:
    return [i * a[i] for i in range(1, len(a))] or [0]


@functools.cache
def tanh_r(k: int) -> tuple:
    """Integer coefficients (ascending powers of ``t``) of ``R_k`` with ``tanh^(k)(z) = (1 − t²)·R_k(t)``,
    ``t = tanh z``: ``R_1 = 1``, ``R_{k+1} = −2t·R_k + (1 − t²)·R_k'``."""
    if k == 1:
        return (1,)
    r = list(tanh_r(k - 1))
    return tuple(_padd(_pmul([0, -2], r), _pmul([1, 0, -1], _pder(r))))


def sigmoid_r(k: int) -> list:
    """``R̃_k`` with ``σ^(k)(z) = s(1 − s)·R̃_k(w)``, ``w = 2σ(z) − 1``: ``2^{1−k}·R_k`` of tanh
    (``σ(z) = (1 + tanh(z/2))/2``; exact in binary floating point)."""
    return [c * 2.0 ** (1 - k) for c in tanh_r(k)]


def coefficients(act: int, order: int) -> list[list[float]]:
    """Rows ``A``, ``B`` (``NC`` coefficients each) of ``f^(k) = q·(z·A(u) + B(u))`` (+ ``s`` for
    softplus/swish at ``k = 1``), for the smooth acts of the polynomial family."""
    zero: list = []
    if act == TANH:
        a, b = zero, list(tanh_r(order))
    elif act == SIGMOID:
        a, b = zero, sigmoid_r(order)
    elif act == SOFTPLUS:  # S_{k-1}: s at k = 1 (added in the kernel)
        a, b = zero, (sigmoid_r(order - 1) if order >= 2 else zero)
    elif act == SWISH:  # z·S_k + k·S_{k-1}
        a, b = sigmoid_r(order), ([order * c for c in sigmoid_r(order - 1)] if order >= 2 else zero)
    else:
        a, b = zero, zero
    return [[float(r[j]) if j < len(r) else 0.0 for j in range(NC)] for r in (a, b)]


def _coef_table(act: int, order: int, device: torch.device) -> torch.Tensor:
    """The ``[2, NC]`` float64 rows of :func:`coefficients` on ``device`` (``_utils.device_table``:
    cached, and CUDA-graph capture safe)."""
    return device_table(tuple(tuple(r) for r in coefficients(act, order)), torch.float64, device)


def _stride_table(rows: tuple, device: torch.device) -> torch.Tensor:
    return device_table(tuple(tuple(r) for r in rows), torch.int64, device)


def _check_act(act: int) -> None:
    if act not in range(len(ACT_CODES)):
        raise ValueError(f"act must be an activation code 0..{len(ACT_CODES) - 1} (_contract.ACT_CODES), got {act}")


def _channel(t: torch.Tensor, b, dim: int, out: torch.Tensor, name: str):
    """``(dim, b_stride, c_stride, c_size)`` of the bias broadcast along ``dim`` (checked)."""
    if b is None:
        return 0, 0, 1, 1
    if t.dim() == 0:
        raise ValueError(f"{name}: b needs x to have at least one dimension")
    d = dim + t.dim() if dim < 0 else dim
    if not 0 <= d < t.dim():
        raise ValueError(f"{name}: dim {dim} out of range for a {t.dim()}-d tensor")
    if b.dim() != 1 or b.shape[0] != t.shape[d]:
        raise ValueError(f"{name}: b must be 1-D of size x.shape[{dim}] = {t.shape[d]}, got shape {tuple(b.shape)}")
    return d, b.stride(0), max(out.stride(d), 1), t.shape[d]


@launcher
def bias_act(x, b, dim, act, alpha, gain, clamp):
    """``y = clamp(gain·f(x + b), ±clamp)`` (``b`` None or 1-D along ``dim``; ``clamp < 0``: none),
    activation code ``act`` (``_contract.ACT_CODES``); ``torch.empty_like(x)`` (layout kept), dtype of
    ``x``, math in float32 (float64 if ``x`` or ``b`` is float64). Inputs in place, any strides
    (module docstring); one launch."""
    _check_act(act)
    out = empty(x.shape, x.dtype, x.device, like=x)
    total = x.numel()
    _, b_stride, c_stride, c_size = _channel(x, b, dim, out, "bias_act")
    if total == 0:
        return out
    plan = collapse(tuple(x.shape), (x.stride(), out.stride()), 1)
    if plan is None:  # > 4 unmergeable dims: read a copy in the output's layout
        x = torch.empty_like(out).copy_(x)
        plan = collapse(tuple(x.shape), (x.stride(), out.stride()), 1)
    sizes, (sx, so) = plan
    same = sx == so
    (_, n1, n2, n3), (sx4,) = pad_dims(sizes, (sx,))

    def grid(meta):
        return (ceil_div(total, meta["BLOCK"]),)

    acc = acc_dtype(x.dtype, *(() if b is None else (b.dtype,)))
    _bias_act_kernel[grid](
        x,
        x if b is None else b,
        out,
        total,
        size_class(total),
        n1,
        n2,
        n3,
        *sx4,
        b_stride,
        c_stride,
        c_size,
        float(alpha),
        float(gain),
        float(clamp),
        NDIM=1 if same else len(sizes),
        ACT=int(act),
        HAS_B=b is not None,
        CLAMP=clamp >= 0,
        SAME=bool(same),
        ACC=tl_dtype(acc),
    )
    return out


@launcher
def bias_act_grad(x, b, y, mults, dim, act, alpha, gain, clamp, order):
    """``out = (Π_i mults_i)·gain·f^(order)(x + b)·m`` with ``m = [|y0| < clamp]`` when ``clamp ≥ 0``
    (``y0 = y`` if given, compared with ``clamp`` rounded to y's dtype as ``y.abs() < clamp`` does in
    eager PyTorch; else ``gain·f(x + b)`` recomputed), else 1. Piecewise-linear acts (linear,
    relu, lrelu) accept ``x = None`` with ``y`` given (f' from the sign of ``y·gain``, f^(k) = 0 for
    k ≥ 2); smooth acts need ``x``. ``order`` 1..8. Output ``torch.empty_like(mults[0])``, dtype of
    ``mults[0]``; math in float32 (float64 if any operand is float64). Every tensor must have the
    shape of ``mults[0]``; inputs are read in place in any layout (module docstring); one launch for
    any number of multipliers."""
    _check_act(act)
    if not isinstance(order, int) or not 1 <= order <= MAX_ACT_ORDER:
        raise ValueError(f"bias_act_grad: order must be an int in 1..{MAX_ACT_ORDER}, got {order!r}")
    mults = list(mults)
    if not mults:
        raise ValueError("bias_act_grad: mults must hold at least one tensor")
    if x is None and act not in PIECEWISE_LINEAR:
        raise ValueError(f"bias_act_grad: act {act} is smooth: its derivative needs x (got x = None)")
    if x is None and y is None and (act != LINEAR or clamp >= 0):
        raise ValueError("bias_act_grad: with x = None, y is needed (the sign of y gives f', |y| the clamp mask)")
    shape = mults[0].shape
    for name, t in [("x", x), ("y", y)] + [(f"mults[{j}]", m) for j, m in enumerate(mults)]:
        if t is not None and t.shape != shape:
            raise ValueError(f"bias_act_grad: {name} has shape {tuple(t.shape)}, expected {tuple(shape)} (mults[0])")
    out = empty(shape, mults[0].dtype, mults[0].device, like=mults[0])
    total = out.numel()
    _, b_stride, c_stride, c_size = _channel(out, b if x is not None else None, dim, out, "bias_act_grad")
    if total == 0:
        return out
    if x is not None and clamp < 0:
        y = None  # f' from x and no mask: y is not read
    slots = [x, y] + mults  # slot r of the SAME bits / stride table
    present = [t for t in slots if t is not None]
    plan = collapse(tuple(shape), (out.stride(),) + tuple(t.stride() for t in present), 0)
    if plan is None:  # > 4 unmergeable dims: copy the other layouts into the output's
        slots = [t if t is None or t.stride() == out.stride() else torch.empty_like(out, dtype=t.dtype).copy_(t) for t in slots]
        present = [t for t in slots if t is not None]
        plan = collapse(tuple(shape), (out.stride(),) + tuple(t.stride() for t in present), 0)
    sizes, strides = plan
    so, it = strides[0], iter(strides[1:])
    merged = [None if t is None else next(it) for t in slots]
    same_bits = sum(1 << r for r, s in enumerate(merged) if s is None or s == so)
    all_same = all(s is None or s == so for s in merged)
    (_, n1, n2, n3), tab_rows = pad_dims(sizes, [so if s is None else s for s in merged])
    tab = out if all_same else _stride_table(tuple(tab_rows), out.device)
    x, y, mults = slots[0], slots[1], slots[2:]
    has_x = x is not None
    coef = _coef_table(int(act), order, out.device) if has_x and act in (TANH, SIGMOID, SOFTPLUS, SWISH) else out
    dtypes = [t.dtype for t in present] + ([b.dtype] if has_x and b is not None else [])

    def grid(meta):
        return (ceil_div(total, meta["BLOCK"]),)

    _bias_act_grad_kernel[grid](
        x if has_x else out,
        b if has_x and b is not None else out,
        out if y is None else y,
        tuple(mults),
        out,
        coef,
        tab,
        total,
        size_class(total),
        n1,
        n2,
        n3,
        b_stride,
        c_stride,
        c_size,
        float(alpha),
        float(gain),
        float(clamp),
        int(order),
        NDIM=1 if all_same else len(sizes),
        NM=len(mults),
        ACT=int(act),
        HAS_X=has_x,
        HAS_B=has_x and b is not None,
        HAS_Y=y is not None,
        CLAMP=clamp >= 0,
        SAME=same_bits,
        ACC=tl_dtype(acc_dtype(*dtypes)),
    )
    return out
