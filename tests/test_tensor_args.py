"""0-d tensor arguments (issue 13): ``gamma``, ``weight``, ``lambda_*``, ``inv_scale`` and ``sigma`` may be
0-d float tensors, on the inputs' device (never read on the host: no synchronisation inside a training
step: test_sync checks that) or on the CPU; the result and its gradients equal those with the same Python float."""

from __future__ import annotations

import pytest
import torch

import ganreg_ext as gx
from helpers import CONS, GN, NOISE, assert_close, every_backend, make, need

# name: (ops, fn(x, y, value, backend), value)
CASES = {
    "r1_penalty/gamma": (GN, lambda x, y, v, b: gx.r1_penalty(x, gamma=v, reduction="none", backend=b), 3.0),
    "r2_penalty/gamma": (GN, lambda x, y, v, b: gx.r2_penalty(x, gamma=v, backend=b), 0.7),
    "gradient_penalty/weight": (GN, lambda x, y, v, b: gx.gradient_penalty(x, weight=v, backend=b), 2.5),
    "grad_sqnorm/inv_scale": (GN, lambda x, y, v, b: gx.grad_sqnorm([x, y], inv_scale=v, backend=b), 0.25),
    "grad_sqnorm/inv_scale-total": (GN, lambda x, y, v, b: gx.grad_sqnorm([x, y], False, inv_scale=v, backend=b), 2.0**-10),
    "r1_penalty/inv_scale": (GN, lambda x, y, v, b: gx.r1_penalty(x, inv_scale=v, backend=b), 0.5),
    "gradient_penalty/inv_scale": (GN, lambda x, y, v, b: gx.gradient_penalty(x, inv_scale=v, backend=b), 0.5),
    "roth_penalty/gamma": (GN, lambda x, y, v, b: gx.roth_penalty(x, x[:, 0, 0, 0], y, y[:, 0, 0, 0], gamma=v, backend=b), 0.3),
    "consistency_loss/weight": (CONS, lambda x, y, v, b: gx.consistency_loss(x, y, weight=v, backend=b), 1.5),
    "bcr_loss/lambda_real": (CONS, lambda x, y, v, b: gx.bcr_loss(x, y, y, x, lambda_real=v, backend=b), 4.0),
    "bcr_loss/lambda_fake": (CONS, lambda x, y, v, b: gx.bcr_loss(x, y, y, x, lambda_fake=v, backend=b), 0.25),
    "zcr_discriminator_loss/weight": (CONS, lambda x, y, v, b: gx.zcr_discriminator_loss(x, y, weight=v, backend=b), 20.0),
    "zcr_generator_loss/weight": (CONS, lambda x, y, v, b: gx.zcr_generator_loss(x, y, weight=v, backend=b), 0.5),
    "instance_noise/sigma": (NOISE, lambda x, y, v, b: gx.instance_noise(x, v, seed=5, backend=b), 0.3),
}


@every_backend
@pytest.mark.parametrize("case", list(CASES))
def test_zero_dim_tensor_equals_float(case, backend, device, seed):
    ops, fn, value = CASES[case]
    need(backend, *ops)
    x0, y0 = make((3, 2, 5, 4), device=device, layout="channels_last"), make((3, 2, 5, 4), device=device)
    res = []
    for v in [value] + [torch.tensor(value, device=d) for d in dict.fromkeys((device, "cpu"))]:
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        out = fn(x, y, v, backend)  # (a device tensor is never read on the host: test_sync)
        out.backward(torch.ones_like(out) * 0.7)
        res.append((out.detach(), x.grad, y.grad))
    for k, (t_out, t_gx, t_gy) in enumerate(res[1:]):
        f_out, f_gx, f_gy = res[0]
        assert t_out.dtype == f_out.dtype and t_out.shape == f_out.shape and t_out.device == f_out.device
        assert_close(t_out, f_out, msg=f"output (tensor {k})")
        assert_close(t_gx, f_gx, msg=f"gradient (tensor {k})")
        if f_gy is not None:
            assert_close(t_gy, f_gy, msg=f"gradient 2 (tensor {k})")


BAD = {  # argument name: fn(value)
    "gamma": lambda v: gx.r1_penalty(torch.randn(2, 3), gamma=v),
    "weight": lambda v: gx.gradient_penalty(torch.randn(2, 3), weight=v),
    "lambda_real": lambda v: gx.bcr_loss(torch.randn(2), torch.randn(2), torch.randn(2), torch.randn(2), lambda_real=v),
    "sigma": lambda v: gx.instance_noise(torch.randn(2, 3), v, seed=1),
    "inv_scale": lambda v: gx.grad_sqnorm(torch.randn(2, 3), inv_scale=v),
}


@pytest.mark.parametrize("name", list(BAD))
def test_tensor_arg_must_be_a_0d_float(name):
    """A tensor is never read on the host (a negative one is the caller's responsibility, see test_sync),
    but one that is not a 0-d float is refused."""
    for bad in (torch.ones(2), torch.tensor(1)):
        with pytest.raises((ValueError, TypeError), match=name):
            BAD[name](bad)
