"""Fixes of issues 21/22 in the CPU and Triton kernels, each with the test that caught it:

* bias_act NaN policy (docs/semantics.md, bias_act): every fused backend gives the reference's
  answer for NaN/±inf inputs and multipliers — NaN for a smooth activation also where clamped
  (the CPU kernel masked it to 0), NaN for elu/selu (native kernels gave a finite value), the
  piecewise-linear branch values, NaN multipliers kept at derivative orders ≥ 2;
* Triton bias_act divides with ``tl.div_rn`` (IEEE) in float32, like the ADA kernels;
* Triton ADA: int32 pixel/tap indices are guarded (launcher limits; taps reduced modulo the
  reflection period before the int32 conversion);
* Triton first-use work under CUDA-graph capture: no pinned host→device table copy is recorded,
  and autotuning a new key refuses clearly.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import math

import pytest
import torch

import ganreg_ext as gx
from ganreg_ext import _dispatch
from ganreg_ext._contract import ACT_CODES
from ganreg_ext.reference import ada as ref_ada
from ganreg_ext.reference import bias_act as ref
from helpers import fused, need

NAN, INF = float("nan"), float("inf")
ACTS = list(ACT_CODES)
PL = ("linear", "relu", "lrelu")


def _same(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """NaN exactly where the reference has NaN, infinities equal, finite values close."""
    assert torch.equal(actual.isnan(), expected.isnan()), f"NaN pattern: got {actual.tolist()}, reference {expected.tolist()}"
    fin = expected.isfinite()
    assert torch.equal(actual[~fin & ~expected.isnan()], expected[~fin & ~expected.isnan()])
    torch.testing.assert_close(actual[fin], expected[fin], rtol=rtol, atol=rtol)


def _special_inputs(device, dtype=torch.float64):
    """x with NaN, ±inf and random finite values (some beyond any clamp), multipliers with a NaN
    (at a NaN x, at a clamped x) and an inf (at x = 0.3, where every derivative order used is
    clearly non-zero: the kernels need not reproduce the reference's underflow of f' to exactly 0
    at saturated x, which would turn inf·f' into NaN)."""
    n = 24
    x = torch.randn(n, dtype=dtype) * 2
    x[:6] = torch.tensor([NAN, NAN, INF, -INF, NAN, 0.5], dtype=dtype)
    x[6] = 40.0  # clamped with a finite derivative
    m = torch.rand(n, dtype=dtype) + 0.5
    m[[1, 7]] = NAN  # NaN multiplier at a NaN x and where clamped
    x[7] = 40.0
    m[8] = INF
    x[8] = 0.3
    return x.to(device), m.to(device)


# ------------------------------------------------------------------------------------- bias_act NaN


@fused
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_grad_nan_policy_matches_reference(backend, device, act):
    """bias_act_grad of every order 1, 2, clamp off/on, with x (and y) or y alone: the fused
    backend's NaN/inf pattern and values equal the reference's (float64)."""
    need(backend, "bias_act", "bias_act_grad")
    grad_op = _dispatch.registered("bias_act_grad", backend)
    fwd_op = _dispatch.registered("bias_act", backend)
    code, gain = ACT_CODES[act], 1.3
    x, m = _special_inputs(device)
    modes = ("x", "xy", "y") if act in PL else ("x", "xy")
    for clamp, order, mode in itertools.product((-1.0, 0.7), (1, 2), modes):
        y = ref.bias_act(x.cpu(), None, 0, code, 0.2, gain, clamp)
        _same(fwd_op(x, None, 0, code, 0.2, gain, clamp).cpu(), y, 1e-12)
        xx = None if mode == "y" else x
        yy = None if mode == "x" else y.to(device)
        want = ref.bias_act_grad(
            None if xx is None else xx.cpu(), None, None if yy is None else y, [m.cpu()], 0, code, 0.2, gain, clamp, order
        )
        got = grad_op(xx, None, yy, [m], 0, code, 0.2, gain, clamp, order).cpu()
        try:
            _same(got, want, 1e-10)
        except AssertionError as e:
            raise AssertionError(f"{act} clamp={clamp} order={order} mode={mode}: {e}") from None


def test_reference_nan_policy_is_the_documented_one():
    """docs/semantics.md (bias_act, NaN): the reference's answers the backends must give."""
    g, a = 1.3, 0.2
    x = torch.tensor([NAN], dtype=torch.float64)
    one = [torch.ones(1, dtype=torch.float64)]

    def d(act, clamp, order=1, y=None, xx=x):
        return ref.bias_act_grad(xx, None, y, one, 0, ACT_CODES[act], a, g, clamp, order).item()

    for act in ("tanh", "sigmoid", "elu", "selu", "softplus", "swish"):
        assert math.isnan(d(act, -1.0)) and math.isnan(d(act, 0.7)), act  # NaN, also where clamped
    assert d("linear", -1.0) == pytest.approx(g) and d("relu", -1.0) == 0.0 and d("lrelu", -1.0) == pytest.approx(a * g)
    for act in PL:
        assert d(act, 0.7) == 0.0 and d(act, -1.0, order=2) == 0.0
        assert d(act, -1.0, y=x, xx=None) == d(act, -1.0)  # from y alone: the same
    nan_mult = [torch.tensor([NAN], dtype=torch.float64)]
    for act in ACTS:  # a NaN multiplier stays NaN: every order, clamped or not
        for clamp, order in itertools.product((-1.0, 0.7), (1, 2)):
            z = torch.tensor([40.0], dtype=torch.float64)
            assert math.isnan(ref.bias_act_grad(z, None, None, nan_mult, 0, ACT_CODES[act], a, g, clamp, order).item())


@fused
@pytest.mark.parametrize("act", ["tanh", "swish", "elu", "selu", "lrelu", "relu"])
def test_bias_act_autograd_nan_input(backend, device, act):
    """Through the public op and autograd (first and second order, clamp off/on): the gradient
    equals the reference backend's at finite inputs, and at NaN inputs follows the documented
    policy (docs/semantics.md, bias_act and NaN): NaN for the smooth acts, α·gain for lrelu and 0
    for relu, 0 for both where clamped."""
    need(backend, "bias_act", "bias_act_grad")
    x0 = torch.randn(3, 5, dtype=torch.float64) * 2
    nan_at = torch.zeros(3, 5, dtype=torch.bool)
    nan_at[0, 1] = nan_at[2, 3] = True
    x0[nan_at] = NAN
    b0 = torch.randn(5, dtype=torch.float64) * 0.5
    for clamp in (None, 0.8):
        grads = {}
        for bk, dev in (("reference", "cpu"), (backend, device)):
            x = x0.to(dev).requires_grad_()
            b = b0.to(dev).requires_grad_()
            y = gx.bias_act(x, b, act=act, clamp=clamp, backend=bk)
            (g1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
            g2 = torch.autograd.grad(g1.sum(), x)[0] if g1.requires_grad else torch.zeros_like(g1)
            grads[bk] = (g1.detach().cpu(), g2.cpu())
        for got, want in zip(grads[backend], grads["reference"]):
            _same(got[~nan_at], want[~nan_at], 1e-10)
        g1 = grads[backend][0][nan_at]
        if act not in PL:
            assert g1.isnan().all(), g1
        elif act == "relu" or clamp is not None:
            assert (g1 == 0).all(), g1
        else:
            assert torch.allclose(g1, torch.full_like(g1, 0.2 * math.sqrt(2))), g1


# ------------------------------------------------------------------------------ Triton: divisions


def _device_functions(module):
    """(name, ast of the function) of every @helper / @triton.jit function of ``module``."""
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            (isinstance(dd, ast.Name) and dd.id == "helper") or "jit" in ast.unparse(dd) for dd in node.decorator_list
        ):
            yield node.name, node


def _static_names(fn: ast.FunctionDef) -> set[str]:
    """Loop variables of ``tl.static_range`` (compile-time constants)."""
    names = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and "static_range" in ast.unparse(n.iter):
            names.add(n.target.id)
    return names


def _is_static(e: ast.AST, names: set[str]) -> bool:
    if isinstance(e, ast.Constant):
        return True
    if isinstance(e, ast.Name):
        return e.id in names
    if isinstance(e, ast.BinOp):
        return _is_static(e.left, names) and _is_static(e.right, names)
    if isinstance(e, ast.UnaryOp):
        return _is_static(e.operand, names)
    return False


@pytest.mark.parametrize("family", ["bias_act", "ada"])
def test_triton_float_divisions_are_div_rn(family):
    """No run-time ``/`` in the device code (Triton's float32 ``/`` is approximate on a GPU; the
    interpreter divides exactly either way, so this is checked on the source): divisions go through
    ``_utils.div_rn`` (``tl.div_rn`` in float32), only compile-time constants use ``/``."""
    mod = importlib.import_module(f"ganreg_ext.triton_kernels.{family}")
    bad = []
    for name, fn in _device_functions(mod):
        if name in ("_div", "div_rn"):  # the rounding helper itself (its float64 branch is IEEE `/`)
            continue
        names = _static_names(fn)
        for n in ast.walk(fn):
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and not _is_static(n, names):
                bad.append(f"{name}: {ast.unparse(n)}")
    assert not bad, f"approximate float32 divisions in triton_kernels/{family}.py: {bad}"
    assert "div_rn" in inspect.getsource(mod)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "elu"])
def test_triton_bias_act_float32_matches_reference(act):
    """Triton float32 bias_act and its first derivative against the float64 reference, within a
    few float32 ulps of the result (the divisions round to nearest; on the interpreter ``/`` is
    exact too, so the source test above is what tells the two apart here). Acts whose derivative
    has no cancellation (swish's ``z·S₁ + S₀`` has roots)."""
    need("triton", "bias_act", "bias_act_grad")
    from ganreg_ext.triton_kernels import bias_act as tb

    code = ACT_CODES[act]
    x = torch.randn(4096) * 4
    y = tb.bias_act(x, None, 0, code, 0.2, 1.0, -1.0)
    g = tb.bias_act_grad(x, None, None, [torch.ones_like(x)], 0, code, 0.2, 1.0, -1.0, 1)
    y64 = ref.bias_act(x.double(), None, 0, code, 0.2, 1.0, -1.0)
    g64 = ref.bias_act_grad(x.double(), None, None, [torch.ones_like(x, dtype=torch.float64)], 0, code, 0.2, 1.0, -1.0, 1)
    eps = torch.finfo(torch.float32).eps
    for got, want in ((y, y64), (g, g64)):
        err = (got.double() - want).abs() / (want.abs() + 1e-30)
        # relative error over the elements whose result is not a cancellation (|want| ≥ 1e-3)
        big = want.abs() >= 1e-3
        assert err[big].max().item() <= 8 * eps, err[big].max().item()


# ------------------------------------------------------------------------------ Triton ADA: int32


def _identity_geom(B, dtype=torch.float32):
    g = torch.zeros(B, 2, 3, dtype=dtype)
    g[:, 0, 0] = 1
    g[:, 1, 1] = 1
    return g


@pytest.mark.parametrize("H,W", [(46341, 46341), (1, 2**30), (2**30 + 8, 1)])
def test_triton_ada_refuses_sizes_that_overflow_int32(H, W):
    """H·W ≥ 2**31 (or a side ≥ 2**30) would wrap the Triton kernels' int32 pixel and tap indices:
    the launchers raise a clear ValueError before allocating anything (expanded, memory-free input)."""
    need("triton", "ada_augment", "ada_augment_adj")
    from ganreg_ext.triton_kernels import ada as ta

    x = torch.ones(1, 1, 1, 1).expand(1, 1, H, W)
    geom = _identity_geom(1)
    with pytest.raises(ValueError, match="too large for the Triton ADA kernels"):
        ta.ada_augment(x, geom, None, None, False)
    with pytest.raises(ValueError, match="too large for the Triton ADA kernels"):
        ta.ada_augment_adj(x, geom, None, None)


def test_triton_ada_limits_admit_the_largest_legal_plane():
    """The check is not over-eager: the limits sit at the int32 boundary (checked arithmetically;
    the shapes are too large to run here)."""
    from ganreg_ext.triton_kernels import ada as ta

    assert ta.MAX_PLANE + 1024 == 2**31 - 1 and 2 * (ta.MAX_SIDE - 1) + 16 < 2**31
    assert ta.MIN_TILE == min([c.kwargs["BLOCK_P"] for c in ta.TILE_GPU] + [ta.ADJ_P, ta.TILE_INTERP.kwargs["BLOCK_P"]])
    x = torch.ones(1, 1, 1, 1).expand(1, 1, 46340, 46340)  # H·W = 2147395600 < MAX_PLANE: admitted
    assert ta._check(x, _identity_geom(1), None, None, "t") == (1, 1, 46340, 46340)


@pytest.mark.parametrize("shift", [3.0e9 + 0.25, -5.0e9 - 0.75])
def test_triton_ada_far_taps_match_reference(shift):
    """A translation beyond ±2**31 pixels (float64, exact): the taps' reflected indices equal the
    reference's int64 ones (an int32 conversion of the first tap overflowed)."""
    need("triton", "ada_augment", "ada_augment_adj")
    from ganreg_ext.triton_kernels import ada as ta

    B, C, H, W = 2, 3, 7, 9
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    geom = _identity_geom(B, torch.float64)
    geom[0, 0, 2] = shift  # x axis
    geom[1, 1, 2] = shift  # y axis
    geom[1, 0, 0] = 1.7  # a stretched filter too
    want = ref_ada.ada_augment(x, geom, None, None, False)
    got = ta.ada_augment(x, geom, None, None, False)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(x)
    # adjoint: <A x, g> = <x, A* g>
    lhs = (want * g).sum()
    rhs = (x * ta.ada_augment_adj(g, geom, None, None)).sum()
    torch.testing.assert_close(rhs, lhs, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------- Triton: CUDA-graph capture


def test_device_table_under_capture_records_no_pinned_copy(monkeypatch):
    """During capture a table not yet cached is built by fills (no pinned host→device copy, whose
    staging buffer would be reused before a replay) and not cached; outside capture it is uploaded
    once and cached; a cached table is reused under capture. (A ``meta`` device stands in for CUDA.)"""
    from ganreg_ext.triton_kernels import _utils

    rows = ((1.5, -2.0, 3.25), (4.0, 5.0, -6.5))
    dev = torch.device("meta")
    monkeypatch.setattr(_utils, "_TABLES", {})
    uploads = []
    monkeypatch.setattr(_utils, "_upload", lambda r, dt, d: uploads.append(r) or torch.empty((2, 3), dtype=dt, device=d))
    monkeypatch.setattr(_utils, "capturing", lambda: True)
    t = _utils.device_table(rows, torch.float64, dev)
    assert t.shape == (2, 3) and t.device.type == "meta" and not uploads and not _utils._TABLES
    # the fill construction gives the exact values (checked where it can run: on the CPU)
    filled = _utils._filled(rows, torch.float64, torch.device("cpu"))
    assert torch.equal(filled, torch.tensor(rows, dtype=torch.float64))
    monkeypatch.setattr(_utils, "capturing", lambda: False)
    t1 = _utils.device_table(rows, torch.float64, dev)
    assert uploads == [rows] and len(_utils._TABLES) == 1
    monkeypatch.setattr(_utils, "capturing", lambda: True)
    assert _utils.device_table(rows, torch.float64, dev) is t1 and uploads == [rows]


def _autotuners():
    from triton.runtime.autotuner import Autotuner

    for fam in ("bias_act", "ada", "augment", "consistency", "upfirdn2d", "noise", "gradnorm"):
        mod = importlib.import_module(f"ganreg_ext.triton_kernels.{fam}")
        for name, obj in vars(mod).items():
            if isinstance(obj, Autotuner):
                yield f"{fam}.{name}", obj


def test_autotuning_refuses_graph_capture_clearly(monkeypatch):
    """Tuning a new key launches and times every config and synchronizes: under capture each
    autotuned Triton kernel raises a clear error instead (warm up before capturing)."""
    from ganreg_ext.triton_kernels import _utils

    tuners = list(_autotuners())
    assert any(n.startswith("bias_act.") for n, _ in tuners) and any(n.startswith("ada.") for n, _ in tuners)
    monkeypatch.setattr(_utils, "capturing", lambda: True)
    for _name, tuner in tuners:
        with pytest.raises(RuntimeError, match=r"autotuning _\w+ for a new size class .*CUDA graph is being captured.*warm-up"):
            tuner._bench(config=tuner.configs[0])
