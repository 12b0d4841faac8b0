"""Mixed precision (docs/semantics.md#gradient-norm-penalties-r1-r2-wgan-gp-roth-et-al-dragan-grad_sqnorm ``inv_scale``, docs/semantics.md#notation-and-contracts-shared-by-every-op autocast), on every available backend.

* Penalties from *scaled* float16/bfloat16 gradients with ``inv_scale = 1/scale`` equal the
  unscaled float32 penalty, without overflow (float16 gradients of a loss scaled by 2**16, squared
  in float16, would overflow: the unscale must happen in float32 before squaring).
* The ``GradScaler`` gradient-penalty recipe of the PyTorch AMP docs, done with ``inv_scale``.
* Ops inside ``torch.autocast(<device>, dtype=torch.bfloat16)`` give the SPEC dtypes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ganreg_ext as gx
from helpers import CONS, CR, DA, GN, NOISE, NOISE_ATOL, TOL, assert_close, every_backend, need

HALF = [torch.float16, torch.bfloat16]
SCALES = [1.0, 2.0**16]


def _scaled_grads(dtype, scale, device, shape=(4, 3, 8, 8)):
    """Gradients of a loss scaled by ``scale`` as AMP produces them: stored in ``dtype`` with
    magnitudes up to ~1e3 (the unscaled values are ~1e3/scale), plus the exact float32 unscaled copy."""
    true = torch.randn(shape, device=device) * (1e3 / 3) / scale
    scaled = (true * scale).to(dtype)
    assert torch.isfinite(scaled).all()
    return scaled, scaled.float() / scale  # the unscaled gradient the half tensor represents


PENALTIES = {
    "grad_sqnorm": lambda g, **kw: gx.grad_sqnorm(g, **kw),
    "grad_sqnorm/total": lambda g, **kw: gx.grad_sqnorm(g, per_sample=False, **kw),
    "r1_penalty": lambda g, **kw: gx.r1_penalty(g, gamma=10.0, **kw),
    "r2_penalty": lambda g, **kw: gx.r2_penalty(g, gamma=1.0, reduction="none", **kw),
    "gradient_penalty": lambda g, **kw: gx.gradient_penalty(g, **kw),
}


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: f"2**{int(torch.log2(torch.tensor(s)))}")
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("fn", list(PENALTIES), ids=str)
@every_backend
def test_inv_scale_matches_unscaled_fp32(backend, device, fn, dtype, scale):
    need(backend, *GN)
    scaled, unscaled = _scaled_grads(dtype, scale, device)
    if scale == 2.0**16 and dtype == torch.float16:
        # the hazard the fused unscale avoids: squaring these in float16 overflows
        assert not torch.isfinite(scaled.square().sum()).item() or not torch.isfinite(scaled.square()).all()
    got = PENALTIES[fn](scaled, inv_scale=1.0 / scale, backend=backend)
    want = PENALTIES[fn](unscaled, backend="reference")
    assert got.dtype == torch.float32, got.dtype
    assert torch.isfinite(got).all(), f"{fn}[{backend}] overflowed: {got}"
    assert_close(got, want)  # the same float32 terms: float32 bounds


@pytest.mark.parametrize("dtype", HALF, ids=str)
@every_backend
def test_inv_scale_tensor_and_list(backend, device, dtype):
    """``inv_scale`` may be a 0-d tensor (``1 / scaler.get_scale()`` on a device) and ``grads`` a list."""
    need(backend, *GN)
    scale = 2.0**16
    a, ua = _scaled_grads(dtype, scale, device, (3, 2, 4, 4))
    b, ub = _scaled_grads(dtype, scale, device, (3, 7))
    want = gx.r1_penalty([ua, ub], backend="reference")
    for where in ("cpu", device):  # a host scalar, or one on the gradients' device (read in the kernel)
        got = gx.r1_penalty([a, b], inv_scale=torch.tensor(1.0 / scale, device=where), backend=backend)
        assert_close(got, want)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@every_backend
def test_inv_scale_backward_of_scaled_penalty(backend, device, dtype):
    """AMP backpropagates ``scaler.scale(penalty)``: the gradient into the scaled half gradients is
    ``scale · γ · inv² · g = γ·g/scale``, representable in float16, and matches float32."""
    need(backend, *GN)
    scale = 2.0**16
    scaled, unscaled = _scaled_grads(dtype, scale, device)
    g = scaled.clone().requires_grad_()
    (gx.r1_penalty(g, inv_scale=1.0 / scale, backend=backend) * scale).backward()
    u = unscaled.clone().requires_grad_()
    gx.r1_penalty(u, backend="reference").backward()
    assert g.grad.dtype == dtype and torch.isfinite(g.grad).all()
    assert_close(g.grad, u.grad.to(dtype))  # the same value, rounded once to the half dtype


class _D(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(8 * 8 * 8, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


@pytest.mark.parametrize("amp_dtype", HALF, ids=str)
@every_backend
def test_gradscaler_r1_recipe(backend, device, amp_dtype):
    """The AMP docs' gradient-penalty recipe with ``inv_scale``: scaled input gradients under
    autocast, the penalty unscaled inside the kernel; equals the float32 penalty and its gradients."""
    need(backend, *GN)
    torch.manual_seed(0)
    D = _D().to(device)
    x = torch.randn(4, 3, 8, 8, device=device) * 3

    # float32 truth
    xr = x.clone().requires_grad_()
    g32 = gx.input_gradients(D(xr), xr)
    want = gx.r1_penalty(g32, backend="reference")
    want_grads = torch.autograd.grad(want, list(D.parameters()), allow_unused=True, materialize_grads=True)

    # float16 cannot hold d(scale·Σ logits)/d logits = 2**16 itself (max 65504): the scaler would skip
    # that step and halve the scale, so the float16 run starts one step later, at 2**15
    init_scale = 2.0**16 if amp_dtype == torch.bfloat16 else 2.0**15
    scaler = torch.amp.GradScaler(device, init_scale=init_scale)
    xr = x.clone().requires_grad_()
    with torch.autocast(device, dtype=amp_dtype):
        logits = D(xr)
    g = gx.input_gradients(logits, xr, scaler=scaler)  # autograd.grad(scaler.scale(logits.sum()), ...)
    with torch.autocast(device, dtype=amp_dtype):
        got = gx.r1_penalty(g, inv_scale=1.0 / scaler.get_scale(), backend=backend)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    torch.testing.assert_close(got, want, rtol=5e-2, atol=1e-3)

    opt = torch.optim.SGD(D.parameters(), lr=0.0)
    opt.zero_grad()
    scaler.scale(got).backward()
    scaler.unscale_(opt)
    for p, w in zip(D.parameters(), want_grads):
        if p.grad is None:  # the last bias does not reach the input gradients
            assert not w.any()
            continue
        assert torch.isfinite(p.grad).all()
        torch.testing.assert_close(p.grad, w, rtol=0.1, atol=0.1 * w.abs().max().item() + 1e-4)
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == init_scale, "the step was skipped: inf/NaN found in the gradients"


@every_backend
def test_gradscaler_param_grad_norm_recipe(backend, device):
    """The AMP docs' recipe verbatim (penalty on the parameter-gradient norm), with the unscale fused:
    ``grad_sqnorm(scaled_grads, per_sample=False, inv_scale=1/scale)``."""
    need(backend, *GN)
    torch.manual_seed(1)
    D = _D().to(device)
    x = torch.randn(4, 3, 8, 8, device=device)
    scaler = torch.amp.GradScaler(device, init_scale=2.0**16)
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = gx.ns_d_loss(D(x), D(x.flip(0)))
    scaled = torch.autograd.grad(scaler.scale(loss), list(D.parameters()), create_graph=True)
    got = gx.grad_sqnorm(list(scaled), per_sample=False, inv_scale=1.0 / scaler.get_scale(), backend=backend)
    # docs version: grad_params = [p * inv_scale ...]; grad_norm = sum of squares
    want = sum((s.float() / scaler.get_scale()).square().sum() for s in scaled)
    assert_close(got, want)
    opt = torch.optim.SGD(D.parameters(), lr=1e-3)
    scaler.scale(loss + got).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in D.parameters())


# ---------------------------------------------------------------- dtypes under autocast

F32 = torch.float32


def _params(sampler, x):
    """The same augmentation parameters for the backend and the reference, on ``x``'s device."""
    return {k: v.to(x.device) for k, v in sampler(4, 8, 8, generator=torch.Generator().manual_seed(0)).items()}


# (id, ops, fn(x, backend) -> output, expected dtype (None = dtype of the input))
AUTOCAST = [
    ("grad_sqnorm", GN, lambda x, b: gx.grad_sqnorm(x, backend=b), F32),
    ("r1_penalty", GN, lambda x, b: gx.r1_penalty(x, backend=b), F32),
    ("r2_penalty", GN, lambda x, b: gx.r2_penalty(x, reduction="none", backend=b), F32),
    ("gradient_penalty", GN, lambda x, b: gx.gradient_penalty(x, backend=b), F32),
    ("roth_penalty", GN, lambda x, b: gx.roth_penalty(x, x[:, 0, 0, 0], x, x[:, 0, 0, 1], backend=b), F32),
    ("path_length_noise_dot", NOISE, lambda x, b: gx.path_length_noise_dot(x, seed=3, backend=b), F32),
    ("path_length_penalty", GN, lambda x, b: gx.path_length_penalty(x.reshape(4, 3, -1), 0.0, backend=b)[0], F32),
    ("path_length_penalty/mean", GN, lambda x, b: gx.path_length_penalty(x.reshape(4, 3, -1), 0.0, backend=b)[1], F32),
    ("consistency_loss", CONS, lambda x, b: gx.consistency_loss(x, x.flip(0), backend=b), F32),
    ("zcr_generator_loss", CONS, lambda x, b: gx.zcr_generator_loss(x, x.flip(0), backend=b), F32),
    ("instance_noise", NOISE, lambda x, b: gx.instance_noise(x, 0.1, seed=3, backend=b), None),
    (
        "diff_augment",
        DA,
        lambda x, b: gx.diff_augment(x, params=_params(gx.sample_diffaug_params, x), backend=b),
        None,
    ),
    ("cr_augment", CR, lambda x, b: gx.cr_augment(x, params=_params(gx.sample_cr_params, x), backend=b), None),
]


@pytest.mark.parametrize("in_dtype", [torch.bfloat16, torch.float32], ids=str)
@every_backend
@pytest.mark.parametrize("case", AUTOCAST, ids=[c[0] for c in AUTOCAST])
def test_autocast_dtypes(case, backend, device, in_dtype):
    name, ops, fn, expected = case
    need(backend, *ops)
    x = torch.randn(4, 3, 8, 8, device=device).to(in_dtype).requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        out = fn(x, backend)
    assert out.dtype == (expected or in_dtype), f"{name}[{backend}] under autocast: {out.dtype}"
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == in_dtype and torch.isfinite(x.grad).all()
    ref = fn(x.detach(), "reference")
    rtol, atol = TOL[ref.dtype]  # the ops do not autocast: the same inputs, tolerance of the output dtype
    if name == "path_length_noise_dot":
        atol += NOISE_ATOL * float(x.detach().double().abs().sum())
    torch.testing.assert_close(out.detach(), ref, rtol=rtol, atol=atol)


@every_backend
def test_autocast_full_d_step(backend, device):
    """A D step with R1 inside autocast(bfloat16): logits are bf16, the penalty float32, the step finite."""
    need(backend, *GN)
    torch.manual_seed(2)
    D = _D().to(device)
    x = torch.randn(4, 3, 8, 8, device=device).requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        logits = D(x)
        assert logits.dtype == torch.bfloat16
        g = gx.input_gradients(logits, x)
        pen = gx.r1_penalty(g, backend=backend)
        loss = gx.ns_d_loss(logits, D(x.detach().flip(0))) + pen
    assert pen.dtype == torch.float32 and loss.dtype == torch.float32
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters())
